//! The status Trellis wants on each route: per Service parent, `Accepted` and `ResolvedRefs`.
//!
//! Server parents (inbound routes) get the same conditions: `Accepted` is False with
//! `NoMatchingParent` when the Server does not exist in the route's namespace, and with
//! `UnsupportedValue` when a field cannot be used inbound; `ResolvedRefs` is True, since
//! inbound routes do not use their backends.
//!
//! For Service parents:
//! - `Accepted` is False with `NoMatchingParent` when the parent Service does not exist, and
//!   with `UnsupportedValue` when a field or annotation is invalid (the message names every
//!   bad field, like `spec.rules[0].timeouts.request`); such a route is not sent to proxies.
//! - `ResolvedRefs` is False with `BackendNotFound` (or `InvalidKind`, `RefNotPermitted`) when
//!   a backend cannot be used; the message names it. The route is still served without that
//!   backend, and a rule left with no backend answers 500.
//! - An HTTPRoute on a Service that GRPCRoutes also attach to keeps `Accepted` True, with a
//!   message naming a GRPCRoute: proxies get the GRPCRoutes only.
//! - An *overlap*, a match equal to one of an older route on the same Service (same
//!   precedence, hosts and conditions), keeps `Accepted` True, because the route's other
//!   matches still apply, but the condition's message names the rule, the match and the older
//!   route that takes its requests.

use trellis_api::outbound::ServiceRef;
use trellis_crds::gateway::{ParentReference, conditions, reasons};

use super::{AnyRoute, convert::Context};
use crate::control_plane::index::Index;

/// The `controllerName` Trellis writes in `status.parents[]`.
pub const CONTROLLER_NAME: &str = "trellis.dev/policy-controller";

/// A condition the controller wants on an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedCondition {
    /// Type, like `Accepted`.
    pub type_: &'static str,
    /// Whether it holds.
    pub status: bool,
    /// Reason.
    pub reason: &'static str,
    /// Message (may be empty).
    pub message: String,
}

impl WantedCondition {
    fn new(type_: &'static str, status: bool, reason: &'static str, message: String) -> Self {
        Self {
            type_,
            status,
            reason,
            message,
        }
    }
}

/// The conditions Trellis wants for one Service parent of a route.
#[derive(Clone, Debug, PartialEq)]
pub struct ParentStatus {
    /// The parent, as the route names it.
    pub parent_ref: ParentReference,
    /// `Accepted` and `ResolvedRefs`.
    pub conditions: Vec<WantedCondition>,
}

impl Index {
    /// The status of every Service and Server parent of `route` (other parents are not
    /// Trellis's).
    pub fn route_status(&self, route: AnyRoute<'_>) -> Vec<ParentStatus> {
        route
            .parent_refs()
            .iter()
            .filter(|p| p.is_service() || p.is_server())
            .map(|parent| ParentStatus {
                parent_ref: parent.clone(),
                conditions: if parent.is_server() {
                    self.server_parent_conditions(route, parent)
                } else {
                    self.parent_conditions(route, parent)
                },
            })
            .collect()
    }

    fn server_parent_conditions(
        &self,
        route: AnyRoute<'_>,
        parent: &ParentReference,
    ) -> Vec<WantedCondition> {
        let ns = route.namespace();
        let exists = self
            .policy
            .servers
            .contains_key(&(ns.to_string(), parent.name.clone()));
        let converted = route.convert_inbound();
        let accepted = if !route.attaches_to_server_via(parent, ns, &parent.name) {
            WantedCondition::new(
                conditions::ACCEPTED,
                false,
                reasons::NO_MATCHING_PARENT,
                format!(
                    "Server {}/{} is in another namespace than the route; a route attaches only \
                     to Servers in its own namespace",
                    parent.namespace.as_deref().unwrap_or_default(),
                    parent.name
                ),
            )
        } else if !exists {
            WantedCondition::new(
                conditions::ACCEPTED,
                false,
                reasons::NO_MATCHING_PARENT,
                format!("Server {ns}/{} not found", parent.name),
            )
        } else if !converted.invalid.is_empty() {
            WantedCondition::new(
                conditions::ACCEPTED,
                false,
                reasons::UNSUPPORTED_VALUE,
                converted
                    .invalid
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        } else {
            WantedCondition::new(conditions::ACCEPTED, true, reasons::ACCEPTED, String::new())
        };
        let resolved = WantedCondition::new(
            conditions::RESOLVED_REFS,
            true,
            reasons::RESOLVED_REFS,
            String::new(),
        );
        vec![accepted, resolved]
    }

    fn parent_conditions(
        &self,
        route: AnyRoute<'_>,
        parent: &ParentReference,
    ) -> Vec<WantedCondition> {
        let namespace = parent
            .namespace
            .clone()
            .unwrap_or_else(|| route.namespace().to_string());
        let port = parent.port.and_then(|p| u16::try_from(p).ok());
        let service = ServiceRef {
            namespace,
            name: parent.name.clone(),
            port: port.unwrap_or_default(),
        };
        let info = self
            .endpoints
            .services
            .get(&(service.namespace.clone(), service.name.clone()));
        let ctx = Context {
            services: &self.endpoints.services,
            domain: &self.settings.cluster_domain,
            parent: &service,
        };
        let converted = route.convert(info.map(|s| &s.annotations), &ctx);
        let accepted = if info.is_none() {
            WantedCondition::new(
                conditions::ACCEPTED,
                false,
                reasons::NO_MATCHING_PARENT,
                format!("Service {}/{} not found", service.namespace, service.name),
            )
        } else if !converted.is_valid() {
            let message = converted
                .invalid
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            WantedCondition::new(
                conditions::ACCEPTED,
                false,
                reasons::UNSUPPORTED_VALUE,
                message,
            )
        } else {
            let overlaps = self.overlaps(route, &service, port, &ctx, &converted);
            WantedCondition::new(
                conditions::ACCEPTED,
                true,
                reasons::ACCEPTED,
                overlaps.join("; "),
            )
        };
        let resolved = match converted.unresolved.first() {
            None => WantedCondition::new(
                conditions::RESOLVED_REFS,
                true,
                reasons::RESOLVED_REFS,
                String::new(),
            ),
            Some(first) => WantedCondition::new(
                conditions::RESOLVED_REFS,
                false,
                first.reason(),
                converted
                    .unresolved
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        vec![accepted, resolved]
    }

    /// Messages naming each match of `route` that an older route on the same Service port
    /// takes first.
    fn overlaps(
        &self,
        route: AnyRoute<'_>,
        service: &ServiceRef,
        port: Option<u16>,
        ctx: &Context<'_>,
        mine: &super::convert::Converted,
    ) -> Vec<String> {
        let info = self
            .endpoints
            .services
            .get(&(service.namespace.clone(), service.name.clone()));
        let applicable = self.applicable_routes(
            &service.namespace,
            &service.name,
            port,
            Some(route.namespace()),
        );
        let mut messages = Vec::new();
        if let Some(grpc) = applicable.iter().find(|r| r.is_grpc() && !route.is_grpc()) {
            messages.push(format!(
                "GRPCRoute {}/{} also attaches to Service {}/{}, so proxies get its GRPCRoutes \
                 only",
                grpc.namespace(),
                grpc.name(),
                service.namespace,
                service.name
            ));
            return messages;
        }
        let older = applicable
            .into_iter()
            .filter(|other| other.kind() == route.kind() && other.age_key() < route.age_key());
        for other in older {
            let theirs = other.convert(info.map(|s| &s.annotations), ctx);
            if !theirs.is_valid() {
                continue;
            }
            for entry in &mine.entries {
                let shadowed = theirs.entries.iter().any(|o| {
                    o.precedence == entry.precedence
                        && o.route.hosts == entry.route.hosts
                        && o.route.rules.first().map(|r| &r.matches)
                            == entry.route.rules.first().map(|r| &r.matches)
                });
                if shadowed {
                    messages.push(format!(
                        "spec.rules[{}].matches[{}] overlaps {} {}/{}, which is older and takes \
                         its requests",
                        entry.rule,
                        entry.match_index,
                        other.kind(),
                        other.namespace(),
                        other.name()
                    ));
                }
            }
        }
        messages
    }
}
