//! Gateway API routes attached to Servers: the inbound routes of a Server's port.
//!
//! A route attaches to a Server through a `parentRefs` entry of group `policy.trellis.dev` and
//! kind `Server` naming a Server of the route's own namespace (its `port` and `sectionName`
//! are not used). Its matches and its RequestHeaderModifier and RequestRedirect filters apply;
//! `backendRefs` are ignored, since the request goes to the pod's own port. A
//! ResponseHeaderModifier, which inbound proxies cannot apply, makes the route invalid for a
//! Server parent, and invalid routes are left out.
//!
//! As for outbound routes, each (rule, match) pair becomes its own [`InboundRoute`] and they
//! are sorted by Gateway API precedence (most specific match, then oldest route, then name,
//! then spec order), so a proxy taking the first, or the most specific, match agrees.

use std::cmp::Reverse;

use trellis_api::{
    inbound::{InboundRoute, InboundRule},
    route::{Filter, RequestMatch, RouteKind},
};
use trellis_crds::gateway::{ParentReference, grpc_route::GRPCRoute, http_route::HTTPRoute};

use super::{
    AnyRoute,
    convert::{self, Converted, Precedence},
    error::RouteError,
};
use crate::control_plane::index::Index;

/// One (rule, match) of a route, as an inbound route with no authorizations yet.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundEntry {
    /// Index of the rule in `spec.rules`.
    pub rule: usize,
    /// Index of the match in the rule's `matches` (0 when it has none).
    pub match_index: usize,
    /// How specific the match is.
    pub precedence: Precedence,
    /// A route with this one rule and match.
    pub route: InboundRoute,
}

/// A route converted for a Server parent.
#[derive(Debug, Default)]
pub struct InboundConverted {
    /// Its (rule, match) entries, in spec order.
    pub entries: Vec<InboundEntry>,
    /// Fields that make the route unusable (`Accepted` False).
    pub invalid: Vec<RouteError>,
}

impl<'a> AnyRoute<'a> {
    /// Whether `parent` names Server `namespace/name` from a route in that namespace.
    pub(super) fn attaches_to_server_via(
        &self,
        parent: &ParentReference,
        namespace: &str,
        name: &str,
    ) -> bool {
        parent.is_server()
            && parent.name == name
            && self.namespace() == namespace
            && parent.namespace.as_deref().unwrap_or(namespace) == namespace
    }

    /// Whether the route attaches to Server `namespace/name`.
    pub fn attaches_to_server(&self, namespace: &str, name: &str) -> bool {
        self.parent_refs()
            .iter()
            .any(|p| self.attaches_to_server_via(p, namespace, name))
    }

    /// The route as inbound routes.
    pub fn convert_inbound(&self) -> InboundConverted {
        match self {
            Self::Http(r) => http_route(r),
            Self::Grpc(r) => grpc_route(r),
        }
    }
}

fn http_route(route: &HTTPRoute) -> InboundConverted {
    let mut out = Converted::default();
    let mut entries = Vec::new();
    for (i, rule) in route.spec.rules.iter().enumerate() {
        let field = format!("spec.rules[{i}]");
        let filters = rule
            .filters
            .iter()
            .enumerate()
            .filter_map(|(j, f)| {
                let field = format!("{field}.filters[{j}]");
                let filter = convert::http_filter(f, &field, &mut out)?;
                inbound_filter(filter, &field, &mut out)
            })
            .collect();
        let matches = convert::http_matches(rule, &field, &mut out);
        push_entries(&mut entries, i, matches, filters, AnyRoute::Http(route));
    }
    InboundConverted {
        entries,
        invalid: out.invalid,
    }
}

fn grpc_route(route: &GRPCRoute) -> InboundConverted {
    let mut out = Converted::default();
    let mut entries = Vec::new();
    for (i, rule) in route.spec.rules.iter().enumerate() {
        let field = format!("spec.rules[{i}]");
        let filters = rule
            .filters
            .iter()
            .enumerate()
            .filter_map(|(j, f)| {
                let field = format!("{field}.filters[{j}]");
                let filter = convert::grpc_filter(f, &field, &mut out)?;
                inbound_filter(filter, &field, &mut out)
            })
            .collect();
        let matches = convert::grpc_matches(rule, &field, &mut out);
        push_entries(&mut entries, i, matches, filters, AnyRoute::Grpc(route));
    }
    InboundConverted {
        entries,
        invalid: out.invalid,
    }
}

/// `filter` if an inbound proxy can apply it (not a response-header edit).
fn inbound_filter(filter: Filter, field: &str, out: &mut Converted) -> Option<Filter> {
    match filter {
        Filter::RequestHeaders(_) | Filter::Redirect(_) => Some(filter),
        Filter::ResponseHeaders(_) => {
            out.invalid.push(RouteError::Unsupported {
                field: format!("{field}.type"),
                value: "ResponseHeaderModifier".into(),
                expected: "RequestHeaderModifier or RequestRedirect on a route whose parent is \
                           a Server",
            });
            None
        }
    }
}

fn push_entries(
    entries: &mut Vec<InboundEntry>,
    rule: usize,
    matches: Vec<(RequestMatch, Precedence)>,
    filters: Vec<Filter>,
    route: AnyRoute<'_>,
) {
    let (kind, hosts) = match route {
        AnyRoute::Http(r) => (RouteKind::Http, &r.spec.hostnames),
        AnyRoute::Grpc(r) => (RouteKind::Grpc, &r.spec.hostnames),
    };
    let meta = convert::route_ref(route.kind(), route.namespace(), route.name());
    for (match_index, (m, precedence)) in matches.into_iter().enumerate() {
        entries.push(InboundEntry {
            rule,
            match_index,
            precedence,
            route: InboundRoute {
                meta: meta.clone(),
                kind,
                hosts: hosts.clone(),
                rules: vec![InboundRule {
                    matches: vec![m],
                    filters: filters.clone(),
                }],
                authorizations: Vec::new(),
            },
        });
    }
}

impl Index {
    /// The routes attached to Server `namespace/name`, most specific first, each with the
    /// authorizations of the AuthorizationPolicies that target it; empty when no valid route
    /// attaches.
    pub fn server_routes(&self, namespace: &str, name: &str) -> Vec<InboundRoute> {
        let mut ranked: Vec<(AnyRoute<'_>, InboundEntry)> = Vec::new();
        for route in self
            .routes
            .all()
            .filter(|r| r.attaches_to_server(namespace, name))
        {
            let converted = route.convert_inbound();
            if !converted.invalid.is_empty() {
                tracing::debug!(
                    kind = route.kind(),
                    ns = route.namespace(),
                    name = route.name(),
                    "Invalid inbound route left out"
                );
                continue;
            }
            let authorizations = self.route_authorizations(namespace, route);
            ranked.extend(converted.entries.into_iter().map(|mut entry| {
                entry.route.authorizations = authorizations.clone();
                (route, entry)
            }));
        }
        ranked.sort_by(|(ra, a), (rb, b)| {
            (
                Reverse(a.precedence),
                ra.age_key(),
                ra.kind(),
                a.rule,
                a.match_index,
            )
                .cmp(&(
                    Reverse(b.precedence),
                    rb.age_key(),
                    rb.kind(),
                    b.rule,
                    b.match_index,
                ))
        });
        ranked.into_iter().map(|(_, entry)| entry.route).collect()
    }
}

#[cfg(test)]
mod tests;
