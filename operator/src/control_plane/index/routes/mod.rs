//! Gateway API routes attached to Services (GAMMA): which HTTPRoutes and GRPCRoutes apply to
//! a Service port, and the ordered outbound routes proxies receive for it. Routes attached to
//! Servers are in [`inbound`].
//!
//! A route attaches to a Service through a `parentRefs` entry of kind `Service` (group `core`
//! or `""`) in the route's namespace, or in the one the entry names, on the entry's port and
//! on the port named by its `sectionName` (neither set: every port). A route in the Service's own namespace is a *producer* route and applies
//! to every client; a route in another namespace is a *consumer* route and applies only to
//! clients in that namespace, which then see no producer routes. When GRPCRoutes attach, only
//! they apply (the Service speaks gRPC).
//!
//! Routes with an invalid field are left out (see [`status`] for how that is reported); when no
//! valid route attaches, the Service keeps its default catch-all route.

pub mod annotations;
pub mod convert;
pub mod error;
pub mod inbound;
pub mod status;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;
use trellis_api::{outbound::ServiceRef, route::Route};
use trellis_crds::gateway::{ParentReference, grpc_route::GRPCRoute, http_route::HTTPRoute};

use self::convert::{Context, Converted, Entry};
use super::Index;

/// HTTPRoutes and GRPCRoutes by `(namespace, name)`.
#[derive(Debug, Default)]
pub struct RoutesIndex {
    /// HTTPRoutes.
    pub http: HashMap<(String, String), HTTPRoute>,
    /// GRPCRoutes.
    pub grpc: HashMap<(String, String), GRPCRoute>,
}

/// A route of either kind.
#[derive(Clone, Copy, Debug)]
pub enum AnyRoute<'a> {
    /// An HTTPRoute.
    Http(&'a HTTPRoute),
    /// A GRPCRoute.
    Grpc(&'a GRPCRoute),
}

impl<'a> AnyRoute<'a> {
    /// The route's metadata.
    pub fn meta(&self) -> &'a ObjectMeta {
        match self {
            Self::Http(r) => &r.metadata,
            Self::Grpc(r) => &r.metadata,
        }
    }

    /// The route's kind, `HTTPRoute` or `GRPCRoute`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Http(_) => "HTTPRoute",
            Self::Grpc(_) => "GRPCRoute",
        }
    }

    /// The route's namespace.
    pub fn namespace(&self) -> &'a str {
        self.meta().namespace.as_deref().unwrap_or_default()
    }

    /// The route's name.
    pub fn name(&self) -> &'a str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// The route's parents.
    pub fn parent_refs(&self) -> &'a [ParentReference] {
        match self {
            Self::Http(r) => &r.spec.parent_refs,
            Self::Grpc(r) => &r.spec.parent_refs,
        }
    }

    fn is_grpc(&self) -> bool {
        matches!(self, Self::Grpc(_))
    }

    /// Gateway API's tie-break between routes: oldest first, then by `namespace/name`.
    fn age_key(&self) -> (Option<&'a Time>, &'a str, &'a str) {
        (
            self.meta().creation_timestamp.as_ref(),
            self.namespace(),
            self.name(),
        )
    }

    fn convert(&self, service: Option<&BTreeMap<String, String>>, ctx: &Context<'_>) -> Converted {
        match self {
            Self::Http(r) => convert::http_route(r, service, ctx),
            Self::Grpc(r) => convert::grpc_route(r, service, ctx),
        }
    }

    /// Whether `parent` attaches this route to Service `namespace/name` on `port` (`None`:
    /// any port), whose name is `port_name`: the parent's `port` must be that port and its
    /// `sectionName` that port's name, when they are set.
    fn attaches_via(
        &self,
        parent: &ParentReference,
        namespace: &str,
        name: &str,
        port: Option<(u16, Option<&str>)>,
    ) -> bool {
        parent.is_service()
            && parent.name == name
            && parent.namespace.as_deref().unwrap_or(self.namespace()) == namespace
            && match port {
                None => true,
                Some((number, port_name)) => {
                    parent.port.is_none_or(|p| p == i32::from(number))
                        && parent
                            .section_name
                            .as_deref()
                            .is_none_or(|s| Some(s) == port_name)
                }
            }
    }

    fn attaches(&self, namespace: &str, name: &str, port: Option<(u16, Option<&str>)>) -> bool {
        self.parent_refs()
            .iter()
            .any(|p| self.attaches_via(p, namespace, name, port))
    }
}

impl RoutesIndex {
    /// Every route.
    pub fn all(&self) -> impl Iterator<Item = AnyRoute<'_>> {
        self.http
            .values()
            .map(AnyRoute::Http)
            .chain(self.grpc.values().map(AnyRoute::Grpc))
    }

    pub(super) fn known(&self, kind: &str) -> Option<Vec<(String, String)>> {
        match kind {
            "HTTPRoute" => Some(self.http.keys().cloned().collect()),
            "GRPCRoute" => Some(self.grpc.keys().cloned().collect()),
            _ => None,
        }
    }
}

/// A route entry with what orders it among the Service's entries.
struct Ranked<'a> {
    route: AnyRoute<'a>,
    entry: Entry,
}

impl Ranked<'_> {
    /// Sorts most specific first, then oldest route, then by name, then spec order.
    fn sort(entries: &mut [Self]) {
        entries.sort_by(|a, b| {
            b.entry
                .precedence
                .cmp(&a.entry.precedence)
                .then_with(|| a.route.age_key().cmp(&b.route.age_key()))
                .then_with(|| a.route.kind().cmp(b.route.kind()))
                .then_with(|| a.entry.rule.cmp(&b.entry.rule))
                .then_with(|| a.entry.match_index.cmp(&b.entry.match_index))
        });
    }
}

impl Index {
    /// Adds or updates an HTTPRoute.
    pub fn apply_http_route(&mut self, route: &HTTPRoute) {
        let key = (route.namespace().unwrap_or_default(), route.name_any());
        if self.routes.http.get(&key) == Some(route) {
            return;
        }
        self.routes.http.insert(key, route.clone());
        self.status_input_changed();
        self.policy_changed();
    }

    /// Removes an HTTPRoute.
    pub fn delete_http_route(&mut self, ns: &str, name: &str) {
        if self
            .routes
            .http
            .remove(&(ns.to_string(), name.to_string()))
            .is_some()
        {
            self.status_input_changed();
            self.policy_changed();
        }
    }

    /// Adds or updates a GRPCRoute.
    pub fn apply_grpc_route(&mut self, route: &GRPCRoute) {
        let key = (route.namespace().unwrap_or_default(), route.name_any());
        if self.routes.grpc.get(&key) == Some(route) {
            return;
        }
        self.routes.grpc.insert(key, route.clone());
        self.status_input_changed();
        self.policy_changed();
    }

    /// Removes a GRPCRoute.
    pub fn delete_grpc_route(&mut self, ns: &str, name: &str) {
        if self
            .routes
            .grpc
            .remove(&(ns.to_string(), name.to_string()))
            .is_some()
        {
            self.status_input_changed();
            self.policy_changed();
        }
    }

    /// The routes that apply to Service `namespace/name` on `port` for a client in
    /// `client_ns`: its consumer routes there if any, else its producer routes; only the
    /// GRPCRoutes when any attaches.
    fn applicable_routes(
        &self,
        namespace: &str,
        name: &str,
        port: Option<u16>,
        client_ns: Option<&str>,
    ) -> Vec<AnyRoute<'_>> {
        let port_name = |number: u16| {
            self.endpoints
                .services
                .get(&(namespace.to_string(), name.to_string()))
                .and_then(|s| s.ports.get(&number))
                .and_then(|(port_name, _)| port_name.as_deref())
        };
        let port = port.map(|p| (p, port_name(p)));
        let attached: Vec<AnyRoute<'_>> = self
            .routes
            .all()
            .filter(|r| r.attaches(namespace, name, port))
            .collect();
        let consumer_ns =
            client_ns.filter(|c| *c != namespace && attached.iter().any(|r| r.namespace() == *c));
        let from = consumer_ns.unwrap_or(namespace);
        let mut routes: Vec<AnyRoute<'_>> = attached
            .into_iter()
            .filter(|r| r.namespace() == from)
            .collect();
        if routes.iter().any(AnyRoute::is_grpc) {
            routes.retain(AnyRoute::is_grpc);
        }
        routes
    }

    /// Every valid entry of the routes applicable to `service`, most specific first.
    fn ranked_entries(&self, service: &ServiceRef, client_ns: Option<&str>) -> Vec<Ranked<'_>> {
        let svc_annotations = self
            .endpoints
            .services
            .get(&(service.namespace.clone(), service.name.clone()))
            .map(|s| &s.annotations);
        let ctx = Context {
            services: &self.endpoints.services,
            domain: &self.settings.cluster_domain,
            parent: service,
        };
        let mut ranked: Vec<Ranked<'_>> = self
            .applicable_routes(
                &service.namespace,
                &service.name,
                Some(service.port),
                client_ns,
            )
            .into_iter()
            .flat_map(|route| {
                let converted = route.convert(svc_annotations, &ctx);
                let entries = if converted.is_valid() {
                    converted.entries
                } else {
                    tracing::debug!(
                        kind = route.kind(),
                        ns = route.namespace(),
                        name = route.name(),
                        "Invalid route left out"
                    );
                    Vec::new()
                };
                entries
                    .into_iter()
                    .map(move |entry| Ranked { route, entry })
            })
            .collect();
        Ranked::sort(&mut ranked);
        ranked
    }

    /// The outbound routes of `service` for a client in `client_ns`, most specific first;
    /// `None` when no valid route attaches (the Service's default route applies).
    pub fn service_routes(
        &self,
        service: &ServiceRef,
        client_ns: Option<&str>,
    ) -> Option<Vec<Route>> {
        let routes: Vec<Route> = self
            .ranked_entries(service, client_ns)
            .into_iter()
            .map(|r| r.entry.route)
            .collect();
        (!routes.is_empty()).then_some(routes)
    }
}
