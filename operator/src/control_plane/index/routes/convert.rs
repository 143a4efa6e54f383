//! One HTTPRoute or GRPCRoute → the outbound [`Route`]s proxies match, for one parent Service
//! port, with the problems found on the way.
//!
//! Each (rule, match) pair becomes its own [`Route`] with one rule and one match, ranked by
//! [`Precedence`]: proxies take the first route that matches, so sorting these entries gives
//! Gateway API's precedence across every route of a Service, not only within one route.

use std::{collections::HashMap, time::Duration};

use trellis_api::{
    outbound::ServiceRef,
    route::{
        Backend, Filter, HeaderModifier, NameMatch, PathMatch, PathModifier, Redirect,
        RequestMatch, Route, RouteBackend, RouteKind, RouteRef, RpcMatch, Rule, Timeouts,
        ValueMatch,
    },
};
use trellis_crds::gateway::{
    self, BackendRef, NameValueMatch, StringMatchType,
    grpc_route::{GRPCRoute, GrpcFilterType, GrpcRouteFilter, GrpcRouteRule},
    http_route::{
        HTTPRoute, HttpFilterType, HttpPathMatch, HttpRouteFilter, HttpRouteRule,
        HttpRouteTimeouts, PathMatchType, PathModifierType,
    },
};

use super::{
    annotations::Annotations,
    error::{RouteError, Unresolved},
};
use crate::control_plane::index::endpoints::ServiceInfo;

/// What a conversion reads besides the route.
#[derive(Debug)]
pub struct Context<'a> {
    /// Services by `(namespace, name)`, to resolve backends.
    pub services: &'a HashMap<(String, String), ServiceInfo>,
    /// The cluster's DNS domain, for backend paths.
    pub domain: &'a str,
    /// The parent Service port the route is resolved for; also the backend of rules with no
    /// `backendRefs`.
    pub parent: &'a ServiceRef,
}

/// How specific a match is; higher wins (Gateway API: exact path, then the longest path, then
/// method, then the most headers, then the most query parameters; for gRPC the longest
/// service, then the longest method, then the most headers). Regular-expression paths rank
/// between exact and prefix paths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Precedence {
    path_rank: u8,
    path_len: usize,
    rpc_service_len: usize,
    rpc_method_len: usize,
    method: bool,
    headers: usize,
    query: usize,
}

/// One (rule, match) of a route, as a proxy route.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Index of the rule in `spec.rules`.
    pub rule: usize,
    /// Index of the match in the rule's `matches` (0 when it has none).
    pub match_index: usize,
    /// How specific the match is.
    pub precedence: Precedence,
    /// A route with this one rule and match.
    pub route: Route,
}

/// A route converted for one parent Service port.
#[derive(Debug, Default)]
pub struct Converted {
    /// Its (rule, match) entries, in spec order.
    pub entries: Vec<Entry>,
    /// Fields that make the route unusable (`Accepted` False).
    pub invalid: Vec<RouteError>,
    /// Backends left out (`ResolvedRefs` False).
    pub unresolved: Vec<Unresolved>,
}

impl Converted {
    /// Whether the route has no invalid field (and may be sent to proxies).
    pub fn is_valid(&self) -> bool {
        self.invalid.is_empty()
    }
}

pub(super) fn route_ref(kind: &str, namespace: &str, name: &str) -> RouteRef {
    RouteRef::Resource {
        group: gateway::GROUP.to_string(),
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        port: 0,
    }
}

/// Converts an HTTPRoute; `service_annotations` are the parent Service's (route annotations
/// override them).
pub fn http_route(
    route: &HTTPRoute,
    service_annotations: Option<&std::collections::BTreeMap<String, String>>,
    ctx: &Context<'_>,
) -> Converted {
    let ns = route.metadata.namespace.clone().unwrap_or_default();
    let name = route.metadata.name.clone().unwrap_or_default();
    let meta = route_ref("HTTPRoute", &ns, &name);
    let empty = Default::default();
    let annotations = Annotations::new(
        route.metadata.annotations.as_ref().unwrap_or(&empty),
        service_annotations,
    );
    let mut out = Converted::default();
    let (annotated_timeouts, retry) =
        match (annotations.timeouts(), annotations.retry(RouteKind::Http)) {
            (Ok(t), Ok(r)) => (t, r),
            (t, r) => {
                out.invalid.extend(t.err());
                out.invalid.extend(r.err());
                return out;
            }
        };
    for (i, rule) in route.spec.rules.iter().enumerate() {
        let field = format!("spec.rules[{i}]");
        let filters = rule
            .filters
            .iter()
            .enumerate()
            .filter_map(|(j, f)| http_filter(f, &format!("{field}.filters[{j}]"), &mut out))
            .collect();
        let refs = rule.backend_refs.iter().enumerate().map(|(j, b)| {
            let field = format!("{field}.backendRefs[{j}]");
            let filters = b
                .filters
                .iter()
                .enumerate()
                .filter_map(|(k, f)| http_filter(f, &format!("{field}.filters[{k}]"), &mut out))
                .collect::<Vec<_>>();
            (field, &b.backend_ref, filters)
        });
        let refs: Vec<_> = refs.collect();
        let backends = backends(refs, &ns, ctx, &mut out);
        let timeouts = timeouts(
            rule.timeouts.as_ref(),
            &format!("{field}.timeouts"),
            annotated_timeouts,
            &mut out,
        );
        let template = Rule {
            matches: Vec::new(),
            filters,
            backends,
            timeouts,
            retry: retry.clone(),
        };
        let matches = http_matches(rule, &field, &mut out);
        push_entries(
            &mut out,
            i,
            matches,
            &template,
            &meta,
            RouteKind::Http,
            &route.spec.hostnames,
        );
    }
    out
}

/// Converts a GRPCRoute; `service_annotations` are the parent Service's.
pub fn grpc_route(
    route: &GRPCRoute,
    service_annotations: Option<&std::collections::BTreeMap<String, String>>,
    ctx: &Context<'_>,
) -> Converted {
    let ns = route.metadata.namespace.clone().unwrap_or_default();
    let name = route.metadata.name.clone().unwrap_or_default();
    let meta = route_ref("GRPCRoute", &ns, &name);
    let empty = Default::default();
    let annotations = Annotations::new(
        route.metadata.annotations.as_ref().unwrap_or(&empty),
        service_annotations,
    );
    let mut out = Converted::default();
    let (timeouts, retry) = match (annotations.timeouts(), annotations.retry(RouteKind::Grpc)) {
        (Ok(t), Ok(r)) => (t, r),
        (t, r) => {
            out.invalid.extend(t.err());
            out.invalid.extend(r.err());
            return out;
        }
    };
    for (i, rule) in route.spec.rules.iter().enumerate() {
        let field = format!("spec.rules[{i}]");
        let filters = rule
            .filters
            .iter()
            .enumerate()
            .filter_map(|(j, f)| grpc_filter(f, &format!("{field}.filters[{j}]"), &mut out))
            .collect();
        let refs: Vec<_> = rule
            .backend_refs
            .iter()
            .enumerate()
            .map(|(j, b)| {
                let field = format!("{field}.backendRefs[{j}]");
                let filters = b
                    .filters
                    .iter()
                    .enumerate()
                    .filter_map(|(k, f)| grpc_filter(f, &format!("{field}.filters[{k}]"), &mut out))
                    .collect::<Vec<_>>();
                (field, &b.backend_ref, filters)
            })
            .collect();
        let backends = backends(refs, &ns, ctx, &mut out);
        let template = Rule {
            matches: Vec::new(),
            filters,
            backends,
            timeouts,
            retry: retry.clone(),
        };
        let matches = grpc_matches(rule, &field, &mut out);
        push_entries(
            &mut out,
            i,
            matches,
            &template,
            &meta,
            RouteKind::Grpc,
            &route.spec.hostnames,
        );
    }
    out
}

/// The matches of an HTTPRoute rule (`field` is `spec.rules[i]`) with their precedence; a
/// rule with no match matches every request, as a `/` prefix.
pub(super) fn http_matches(
    rule: &HttpRouteRule,
    field: &str,
    out: &mut Converted,
) -> Vec<(RequestMatch, Precedence)> {
    if rule.matches.is_empty() {
        vec![(
            RequestMatch {
                path: Some(PathMatch::Prefix("/".into())),
                ..RequestMatch::default()
            },
            Precedence {
                path_rank: 1,
                path_len: 1,
                ..Precedence::default()
            },
        )]
    } else {
        rule.matches
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let field = format!("{field}.matches[{j}]");
                let path = m
                    .path
                    .as_ref()
                    .and_then(|p| path_match(p, &format!("{field}.path"), out));
                let headers = name_matches(&m.headers, &format!("{field}.headers"), out);
                let query = name_matches(&m.query_params, &format!("{field}.queryParams"), out);
                let method = m.method.as_ref().and_then(|s| {
                    http::Method::from_bytes(s.as_bytes())
                        .map_err(|_| {
                            out.invalid.push(RouteError::Unsupported {
                                field: format!("{field}.method"),
                                value: s.clone(),
                                expected: "an HTTP method like GET",
                            })
                        })
                        .ok()
                });
                let (path_rank, path_len) = match &path {
                    Some(PathMatch::Exact(p)) => (3, p.len()),
                    Some(PathMatch::Regex(p)) => (2, p.len()),
                    Some(PathMatch::Prefix(p)) => (1, p.len()),
                    None => (0, 0),
                };
                let precedence = Precedence {
                    path_rank,
                    path_len,
                    method: method.is_some(),
                    headers: headers.len(),
                    query: query.len(),
                    ..Precedence::default()
                };
                let m = RequestMatch {
                    path,
                    headers,
                    query,
                    method,
                    rpc: None,
                };
                (m, precedence)
            })
            .collect()
    }
}

/// The matches of a GRPCRoute rule (`field` is `spec.rules[i]`) with their precedence.
pub(super) fn grpc_matches(
    rule: &GrpcRouteRule,
    field: &str,
    out: &mut Converted,
) -> Vec<(RequestMatch, Precedence)> {
    if rule.matches.is_empty() {
        vec![(RequestMatch::default(), Precedence::default())]
    } else {
        rule.matches
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let field = format!("{field}.matches[{j}]");
                let headers = name_matches(&m.headers, &format!("{field}.headers"), out);
                let rpc = m.method.as_ref().and_then(|method| match method.type_ {
                    StringMatchType::Exact => Some(RpcMatch {
                        service: method.service.clone(),
                        method: method.method.clone(),
                    }),
                    StringMatchType::RegularExpression | StringMatchType::Unknown => {
                        out.invalid.push(RouteError::Unsupported {
                            field: format!("{field}.method.type"),
                            value: format!("{:?}", method.type_),
                            expected: "Exact",
                        });
                        None
                    }
                });
                let precedence = Precedence {
                    rpc_service_len: rpc
                        .as_ref()
                        .and_then(|r| r.service.as_ref())
                        .map_or(0, String::len),
                    rpc_method_len: rpc
                        .as_ref()
                        .and_then(|r| r.method.as_ref())
                        .map_or(0, String::len),
                    headers: headers.len(),
                    ..Precedence::default()
                };
                let m = RequestMatch {
                    headers,
                    rpc,
                    ..RequestMatch::default()
                };
                (m, precedence)
            })
            .collect()
    }
}

fn push_entries(
    out: &mut Converted,
    rule: usize,
    matches: Vec<(RequestMatch, Precedence)>,
    template: &Rule,
    meta: &RouteRef,
    kind: RouteKind,
    hosts: &[String],
) {
    for (match_index, (m, precedence)) in matches.into_iter().enumerate() {
        out.entries.push(Entry {
            rule,
            match_index,
            precedence,
            route: Route {
                meta: meta.clone(),
                kind,
                hosts: hosts.to_vec(),
                rules: vec![Rule {
                    matches: vec![m],
                    ..template.clone()
                }],
            },
        });
    }
}

fn path_match(p: &HttpPathMatch, field: &str, out: &mut Converted) -> Option<PathMatch> {
    match p.type_ {
        PathMatchType::Exact => Some(PathMatch::Exact(p.value.clone())),
        PathMatchType::PathPrefix => Some(PathMatch::Prefix(p.value.clone())),
        PathMatchType::RegularExpression => {
            check_regex(&p.value, &format!("{field}.value"), out)?;
            Some(PathMatch::Regex(p.value.clone()))
        }
        PathMatchType::Unknown => {
            out.invalid.push(RouteError::Unsupported {
                field: format!("{field}.type"),
                value: "unknown".into(),
                expected: "Exact, PathPrefix or RegularExpression",
            });
            None
        }
    }
}

fn check_regex(value: &str, field: &str, out: &mut Converted) -> Option<()> {
    match gateway::check_regex(value) {
        Ok(()) => Some(()),
        Err(source) => {
            out.invalid.push(RouteError::Regex {
                field: field.to_string(),
                source,
            });
            None
        }
    }
}

fn name_matches(matches: &[NameValueMatch], field: &str, out: &mut Converted) -> Vec<NameMatch> {
    matches
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let value = match m.type_ {
                StringMatchType::Exact => ValueMatch::Exact(m.value.clone()),
                StringMatchType::RegularExpression => {
                    check_regex(&m.value, &format!("{field}[{i}].value"), out)?;
                    ValueMatch::Regex(m.value.clone())
                }
                StringMatchType::Unknown => {
                    out.invalid.push(RouteError::Unsupported {
                        field: format!("{field}[{i}].type"),
                        value: "unknown".into(),
                        expected: "Exact or RegularExpression",
                    });
                    return None;
                }
            };
            Some(NameMatch {
                name: m.name.clone(),
                value,
            })
        })
        .collect()
}

fn header_modifier(m: &gateway::HeaderModifier) -> HeaderModifier {
    let pairs = |v: &[gateway::HeaderValue]| {
        v.iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect()
    };
    HeaderModifier {
        add: pairs(&m.add),
        set: pairs(&m.set),
        remove: m.remove.clone(),
    }
}

fn missing(field: &str, name: &str, out: &mut Converted) -> Option<Filter> {
    out.invalid.push(RouteError::Unsupported {
        field: format!("{field}.{name}"),
        value: String::new(),
        expected: "the settings of the filter's type",
    });
    None
}

pub(super) fn http_filter(f: &HttpRouteFilter, field: &str, out: &mut Converted) -> Option<Filter> {
    match f.type_ {
        HttpFilterType::RequestHeaderModifier => match &f.request_header_modifier {
            Some(m) => Some(Filter::RequestHeaders(header_modifier(m))),
            None => missing(field, "requestHeaderModifier", out),
        },
        HttpFilterType::ResponseHeaderModifier => match &f.response_header_modifier {
            Some(m) => Some(Filter::ResponseHeaders(header_modifier(m))),
            None => missing(field, "responseHeaderModifier", out),
        },
        HttpFilterType::RequestRedirect => match &f.request_redirect {
            Some(r) => redirect(r, &format!("{field}.requestRedirect"), out),
            None => missing(field, "requestRedirect", out),
        },
        HttpFilterType::Unsupported => {
            out.invalid.push(RouteError::Unsupported {
                field: format!("{field}.type"),
                value: "this filter".into(),
                expected: "RequestHeaderModifier, ResponseHeaderModifier or RequestRedirect",
            });
            None
        }
    }
}

fn redirect(
    r: &gateway::http_route::HttpRequestRedirect,
    field: &str,
    out: &mut Converted,
) -> Option<Filter> {
    let status = match r.status_code {
        None => 302,
        Some(s @ (301 | 302)) => s as u16,
        Some(other) => {
            out.invalid.push(RouteError::Unsupported {
                field: format!("{field}.statusCode"),
                value: other.to_string(),
                expected: "301 or 302",
            });
            return None;
        }
    };
    let port = match r.port.map(u16::try_from) {
        None => None,
        Some(Ok(p)) if p > 0 => Some(p),
        Some(_) => {
            out.invalid.push(RouteError::Unsupported {
                field: format!("{field}.port"),
                value: format!("{:?}", r.port),
                expected: "a port from 1 to 65535",
            });
            return None;
        }
    };
    let path = match &r.path {
        None => None,
        Some(p) => match (p.type_, &p.replace_full_path, &p.replace_prefix_match) {
            (PathModifierType::ReplaceFullPath, Some(full), _) => {
                Some(PathModifier::Full(full.clone()))
            }
            (PathModifierType::ReplacePrefixMatch, _, Some(prefix)) => {
                Some(PathModifier::Prefix(prefix.clone()))
            }
            _ => {
                out.invalid.push(RouteError::Unsupported {
                    field: format!("{field}.path"),
                    value: format!("{:?}", p.type_),
                    expected: "ReplaceFullPath with replaceFullPath, or ReplacePrefixMatch with \
                               replacePrefixMatch",
                });
                return None;
            }
        },
    };
    Some(Filter::Redirect(Redirect {
        scheme: r.scheme.clone(),
        host: r.hostname.clone(),
        path,
        port,
        status,
    }))
}

pub(super) fn grpc_filter(f: &GrpcRouteFilter, field: &str, out: &mut Converted) -> Option<Filter> {
    match f.type_ {
        GrpcFilterType::RequestHeaderModifier => match &f.request_header_modifier {
            Some(m) => Some(Filter::RequestHeaders(header_modifier(m))),
            None => missing(field, "requestHeaderModifier", out),
        },
        GrpcFilterType::ResponseHeaderModifier => match &f.response_header_modifier {
            Some(m) => Some(Filter::ResponseHeaders(header_modifier(m))),
            None => missing(field, "responseHeaderModifier", out),
        },
        GrpcFilterType::Unsupported => {
            out.invalid.push(RouteError::Unsupported {
                field: format!("{field}.type"),
                value: "this filter".into(),
                expected: "RequestHeaderModifier or ResponseHeaderModifier",
            });
            None
        }
    }
}

/// The rule's backends; unresolved ones are recorded and left out. No `backendRefs`: the
/// parent Service.
fn backends(
    refs: Vec<(String, &BackendRef, Vec<Filter>)>,
    route_ns: &str,
    ctx: &Context<'_>,
    out: &mut Converted,
) -> Vec<RouteBackend> {
    if refs.is_empty() {
        return vec![RouteBackend {
            backend: service_backend(ctx.parent, ctx.domain),
            weight: 1,
            filters: Vec::new(),
        }];
    }
    refs.into_iter()
        .filter_map(|(field, b, filters)| {
            let weight = match b.weight {
                None => 1,
                Some(w) => match u32::try_from(w) {
                    Ok(w) => w,
                    Err(_) => {
                        out.invalid.push(RouteError::NegativeWeight {
                            field: format!("{field}.weight"),
                            weight: w,
                        });
                        return None;
                    }
                },
            };
            if !b.is_service() {
                out.unresolved.push(Unresolved::InvalidKind {
                    field,
                    kind: format!(
                        "{}/{}",
                        b.group.as_deref().unwrap_or(""),
                        b.kind.as_deref().unwrap_or("Service")
                    ),
                });
                return None;
            }
            let namespace = b.namespace.clone().unwrap_or_else(|| route_ns.to_string());
            if namespace != route_ns {
                out.unresolved.push(Unresolved::NotPermitted {
                    field,
                    namespace,
                    name: b.name.clone(),
                });
                return None;
            }
            if !ctx
                .services
                .contains_key(&(namespace.clone(), b.name.clone()))
            {
                out.unresolved.push(Unresolved::NotFound {
                    field,
                    namespace,
                    name: b.name.clone(),
                });
                return None;
            }
            let port = match b.port.map(u16::try_from) {
                None => ctx.parent.port,
                Some(Ok(p)) if p > 0 => p,
                Some(_) => {
                    out.invalid.push(RouteError::Unsupported {
                        field: format!("{field}.port"),
                        value: format!("{:?}", b.port),
                        expected: "a port from 1 to 65535",
                    });
                    return None;
                }
            };
            let service = ServiceRef {
                namespace,
                name: b.name.clone(),
                port,
            };
            Some(RouteBackend {
                backend: service_backend(&service, ctx.domain),
                weight,
                filters,
            })
        })
        .collect()
}

fn service_backend(service: &ServiceRef, domain: &str) -> Backend {
    Backend {
        meta: service.route_ref(),
        path: format!(
            "{}.{}.svc.{domain}:{}",
            service.name, service.namespace, service.port
        ),
    }
}

/// The rule's timeouts: spec fields over annotations. `0s` turns a timeout off.
fn timeouts(
    spec: Option<&HttpRouteTimeouts>,
    field: &str,
    annotated: Timeouts,
    out: &mut Converted,
) -> Timeouts {
    let mut parse = |value: &Option<String>, name: &str, fallback: Option<Duration>| match value {
        None => fallback,
        Some(v) => match gateway::duration::parse(v) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(source) => {
                out.invalid.push(RouteError::Duration {
                    field: format!("{field}.{name}"),
                    source,
                });
                None
            }
        },
    };
    match spec {
        None => annotated,
        Some(t) => Timeouts {
            request: parse(&t.request, "request", annotated.request),
            response: parse(&t.backend_request, "backendRequest", annotated.response),
            idle: annotated.idle,
        },
    }
}
