//! Conversions between routes and the `http_route`, `grpc_route` and outbound route messages.

use std::time::Duration;

use linkerd2_proxy_api::{
    grpc_route as grpc, http_route as http_api, http_types, meta, outbound as api,
};

use super::{
    Backend, Backoff, FailureAccrual, Filter, GrpcCode, HeaderModifier, NameMatch, PathMatch,
    PathModifier, Redirect, RequestMatch, Retry, Route, RouteBackend, RouteKind, RouteRef,
    RpcMatch, Rule, Timeouts, ValueMatch,
};
use crate::{
    error::InvalidMessage,
    outbound::{EWMA_DECAY, EWMA_DEFAULT_RTT, QUEUE_CAPACITY, QUEUE_FAILFAST_TIMEOUT},
};

fn dur(d: Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
}

fn from_dur(field: &'static str, d: prost_types::Duration) -> Result<Duration, InvalidMessage> {
    Duration::try_from(d).map_err(|e| InvalidMessage::new(field, e.to_string()))
}

fn opt_dur(
    field: &'static str,
    d: Option<prost_types::Duration>,
) -> Result<Option<Duration>, InvalidMessage> {
    d.map(|d| from_dur(field, d)).transpose()
}

impl From<&RouteRef> for meta::Metadata {
    fn from(r: &RouteRef) -> Self {
        let kind = match r {
            RouteRef::Default(name) => meta::metadata::Kind::Default(name.clone()),
            RouteRef::Resource {
                group,
                kind,
                namespace,
                name,
                port,
            } => meta::metadata::Kind::Resource(meta::Resource {
                group: group.clone(),
                kind: kind.clone(),
                name: name.clone(),
                namespace: namespace.clone(),
                section: String::new(),
                port: u32::from(*port),
            }),
        };
        Self { kind: Some(kind) }
    }
}

impl TryFrom<meta::Metadata> for RouteRef {
    type Error = InvalidMessage;

    fn try_from(m: meta::Metadata) -> Result<Self, Self::Error> {
        match m.kind {
            Some(meta::metadata::Kind::Default(name)) => Ok(Self::Default(name)),
            Some(meta::metadata::Kind::Resource(r)) => Ok(Self::Resource {
                group: r.group,
                kind: r.kind,
                namespace: r.namespace,
                name: r.name,
                port: u16::try_from(r.port)
                    .map_err(|_| InvalidMessage::new("metadata.port", "above 65535"))?,
            }),
            None => Err(InvalidMessage::missing("metadata.kind")),
        }
    }
}

fn backoff_to(b: &Backoff) -> api::ExponentialBackoff {
    api::ExponentialBackoff {
        min_backoff: dur(b.min),
        max_backoff: dur(b.max),
        jitter_ratio: b.jitter_permille as f32 / 1000.0,
        ..api::ExponentialBackoff::default()
    }
}

fn backoff_from(b: api::ExponentialBackoff) -> Result<Backoff, InvalidMessage> {
    let min = from_dur(
        "backoff.min_backoff",
        b.min_backoff
            .ok_or_else(|| InvalidMessage::missing("backoff.min_backoff"))?,
    )?;
    let max = from_dur(
        "backoff.max_backoff",
        b.max_backoff
            .ok_or_else(|| InvalidMessage::missing("backoff.max_backoff"))?,
    )?;
    if max < min {
        return Err(InvalidMessage::new(
            "backoff.max_backoff",
            "shorter than min_backoff",
        ));
    }
    if !(0.0..=100.0).contains(&b.jitter_ratio) {
        return Err(InvalidMessage::new(
            "backoff.jitter_ratio",
            "outside 0..=100",
        ));
    }
    Ok(Backoff {
        min,
        max,
        jitter_permille: (b.jitter_ratio * 1000.0).round() as u32,
    })
}

impl From<&FailureAccrual> for api::FailureAccrual {
    fn from(f: &FailureAccrual) -> Self {
        Self {
            ejection: None,
            kind: Some(api::failure_accrual::Kind::ConsecutiveFailures(
                api::failure_accrual::ConsecutiveFailures {
                    max_failures: f.max_failures,
                    backoff: Some(backoff_to(&f.backoff)),
                },
            )),
        }
    }
}

/// Reads a failure-accrual message; `None` (no accrual) when it is absent or of a kind
/// this proxy does not implement.
pub(crate) fn failure_accrual(
    f: Option<api::FailureAccrual>,
) -> Result<Option<FailureAccrual>, InvalidMessage> {
    use api::failure_accrual::Kind;
    match f.and_then(|f| f.kind) {
        Some(Kind::ConsecutiveFailures(c)) if c.max_failures > 0 => Ok(Some(FailureAccrual {
            max_failures: c.max_failures,
            backoff: backoff_from(
                c.backoff
                    .ok_or_else(|| InvalidMessage::missing("failure_accrual.backoff"))?,
            )?,
        })),
        Some(Kind::Unified(u)) if u.max_consecutive_failures > 0 => Ok(Some(FailureAccrual {
            max_failures: u.max_consecutive_failures,
            backoff: backoff_from(
                u.backoff
                    .ok_or_else(|| InvalidMessage::missing("failure_accrual.backoff"))?,
            )?,
        })),
        _ => Ok(None),
    }
}

impl From<&Backend> for api::Backend {
    fn from(b: &Backend) -> Self {
        use api::backend::{self, balance_p2c};
        Self {
            metadata: Some((&b.meta).into()),
            queue: Some(api::Queue {
                capacity: QUEUE_CAPACITY,
                failfast_timeout: dur(QUEUE_FAILFAST_TIMEOUT),
            }),
            kind: Some(backend::Kind::Balancer(backend::BalanceP2c {
                discovery: Some(backend::EndpointDiscovery {
                    kind: Some(backend::endpoint_discovery::Kind::Dst(
                        backend::endpoint_discovery::DestinationGet {
                            path: b.path.clone(),
                        },
                    )),
                }),
                load: Some(balance_p2c::Load::PeakEwma(balance_p2c::PeakEwma {
                    default_rtt: dur(EWMA_DEFAULT_RTT),
                    decay: dur(EWMA_DECAY),
                })),
            })),
        }
    }
}

/// Reads a balancer backend; `None` for kinds this proxy cannot use (`forward`).
pub(crate) fn backend(b: api::Backend) -> Result<Option<Backend>, InvalidMessage> {
    use api::backend::{Kind, endpoint_discovery};
    let meta = RouteRef::try_from(
        b.metadata
            .ok_or_else(|| InvalidMessage::missing("backend.metadata"))?,
    )?;
    if b.queue.is_none() {
        return Err(InvalidMessage::missing("backend.queue"));
    }
    let Some(Kind::Balancer(bal)) = b.kind else {
        return Ok(None);
    };
    if bal.load.is_none() {
        return Err(InvalidMessage::missing("backend.balancer.load"));
    }
    match bal.discovery.and_then(|d| d.kind) {
        Some(endpoint_discovery::Kind::Dst(dst)) if !dst.path.is_empty() => Ok(Some(Backend {
            meta,
            path: dst.path,
        })),
        _ => Err(InvalidMessage::missing(
            "backend.balancer.discovery.dst.path",
        )),
    }
}

fn headers_to(pairs: &[(String, String)]) -> Option<http_types::Headers> {
    (!pairs.is_empty()).then(|| http_types::Headers {
        headers: pairs
            .iter()
            .map(|(name, value)| http_types::headers::Header {
                name: name.clone(),
                value: value.clone().into_bytes(),
            })
            .collect(),
    })
}

fn headers_from(h: Option<http_types::Headers>) -> Result<Vec<(String, String)>, InvalidMessage> {
    h.map(|h| h.headers)
        .unwrap_or_default()
        .into_iter()
        .map(|h| {
            let value = String::from_utf8(h.value)
                .map_err(|_| InvalidMessage::new("header_modifier.value", "not UTF-8"))?;
            Ok((h.name, value))
        })
        .collect()
}

pub(crate) fn request_modifier(m: &HeaderModifier) -> http_api::RequestHeaderModifier {
    http_api::RequestHeaderModifier {
        add: headers_to(&m.add),
        set: headers_to(&m.set),
        remove: m.remove.clone(),
    }
}

fn response_modifier(m: &HeaderModifier) -> http_api::ResponseHeaderModifier {
    http_api::ResponseHeaderModifier {
        add: headers_to(&m.add),
        set: headers_to(&m.set),
        remove: m.remove.clone(),
    }
}

pub(crate) fn modifier(
    add: Option<http_types::Headers>,
    set: Option<http_types::Headers>,
    remove: Vec<String>,
) -> Result<HeaderModifier, InvalidMessage> {
    Ok(HeaderModifier {
        add: headers_from(add)?,
        set: headers_from(set)?,
        remove,
    })
}

pub(crate) fn redirect_to(r: &Redirect) -> http_api::RequestRedirect {
    http_api::RequestRedirect {
        scheme: r.scheme.as_deref().map(http_types::Scheme::from),
        host: r.host.clone().unwrap_or_default(),
        path: r.path.as_ref().map(|p| http_api::PathModifier {
            replace: Some(match p {
                PathModifier::Full(s) => http_api::path_modifier::Replace::Full(s.clone()),
                PathModifier::Prefix(s) => http_api::path_modifier::Replace::Prefix(s.clone()),
            }),
        }),
        port: r.port.map(u32::from).unwrap_or_default(),
        status: u32::from(r.status),
    }
}

pub(crate) fn redirect_from(r: http_api::RequestRedirect) -> Result<Redirect, InvalidMessage> {
    let scheme = r
        .scheme
        .map(|s| {
            http::uri::Scheme::try_from(s)
                .map(|s| s.as_str().to_string())
                .map_err(|e| InvalidMessage::new("redirect.scheme", e.to_string()))
        })
        .transpose()?;
    let status = match r.status {
        0 => 302,
        s @ (301 | 302 | 303 | 307 | 308) => s as u16,
        s => {
            return Err(InvalidMessage::new(
                "redirect.status",
                format!("{s} is not a redirect status"),
            ));
        }
    };
    Ok(Redirect {
        scheme,
        host: Some(r.host).filter(|h| !h.is_empty()),
        path: r.path.and_then(|p| p.replace).map(|p| match p {
            http_api::path_modifier::Replace::Full(s) => PathModifier::Full(s),
            http_api::path_modifier::Replace::Prefix(s) => PathModifier::Prefix(s),
        }),
        port: match r.port {
            0 => None,
            p => Some(
                u16::try_from(p)
                    .map_err(|_| InvalidMessage::new("redirect.port", "above 65535"))?,
            ),
        },
        status,
    })
}

fn http_filter_to(f: &Filter) -> api::http_route::Filter {
    use api::http_route::filter::Kind;
    api::http_route::Filter {
        kind: Some(match f {
            Filter::RequestHeaders(m) => Kind::RequestHeaderModifier(request_modifier(m)),
            Filter::ResponseHeaders(m) => Kind::ResponseHeaderModifier(response_modifier(m)),
            Filter::Redirect(r) => Kind::Redirect(redirect_to(r)),
        }),
    }
}

fn http_filter_from(f: api::http_route::Filter) -> Result<Filter, InvalidMessage> {
    use api::http_route::filter::Kind;
    match f.kind {
        Some(Kind::RequestHeaderModifier(m)) => {
            Ok(Filter::RequestHeaders(modifier(m.add, m.set, m.remove)?))
        }
        Some(Kind::ResponseHeaderModifier(m)) => {
            Ok(Filter::ResponseHeaders(modifier(m.add, m.set, m.remove)?))
        }
        Some(Kind::Redirect(r)) => Ok(Filter::Redirect(redirect_from(r)?)),
        Some(Kind::FailureInjector(_)) => Err(InvalidMessage::new(
            "filter",
            "failure injection is not supported",
        )),
        None => Err(InvalidMessage::missing("filter.kind")),
    }
}

fn grpc_filter_to(f: &Filter) -> Option<api::grpc_route::Filter> {
    use api::grpc_route::filter::Kind;
    match f {
        Filter::RequestHeaders(m) => Some(api::grpc_route::Filter {
            kind: Some(Kind::RequestHeaderModifier(request_modifier(m))),
        }),
        // gRPC routes carry only request-header filters on the wire.
        Filter::ResponseHeaders(_) | Filter::Redirect(_) => None,
    }
}

fn grpc_filter_from(f: api::grpc_route::Filter) -> Result<Filter, InvalidMessage> {
    use api::grpc_route::filter::Kind;
    match f.kind {
        Some(Kind::RequestHeaderModifier(m)) => {
            Ok(Filter::RequestHeaders(modifier(m.add, m.set, m.remove)?))
        }
        Some(Kind::FailureInjector(_)) => Err(InvalidMessage::new(
            "filter",
            "failure injection is not supported",
        )),
        None => Err(InvalidMessage::missing("filter.kind")),
    }
}

fn value_to_header(m: &NameMatch) -> http_api::HeaderMatch {
    use http_api::header_match::Value;
    http_api::HeaderMatch {
        name: m.name.clone(),
        value: Some(match &m.value {
            ValueMatch::Exact(v) => Value::Exact(v.clone().into_bytes()),
            ValueMatch::Regex(r) => Value::Regex(r.clone()),
        }),
    }
}

fn header_from(m: http_api::HeaderMatch) -> Result<NameMatch, InvalidMessage> {
    use http_api::header_match::Value;
    let value = match m.value {
        Some(Value::Exact(v)) => ValueMatch::Exact(
            String::from_utf8(v).map_err(|_| InvalidMessage::new("header.exact", "not UTF-8"))?,
        ),
        Some(Value::Regex(r)) => ValueMatch::Regex(r),
        None => return Err(InvalidMessage::missing("header.value")),
    };
    Ok(NameMatch {
        name: m.name,
        value,
    })
}

pub(crate) fn http_match_to(m: &RequestMatch) -> http_api::HttpRouteMatch {
    use http_api::{path_match::Kind, query_param_match::Value};
    http_api::HttpRouteMatch {
        path: m.path.as_ref().map(|p| http_api::PathMatch {
            kind: Some(match p {
                PathMatch::Exact(s) => Kind::Exact(s.clone()),
                PathMatch::Prefix(s) => Kind::Prefix(s.clone()),
                PathMatch::Regex(s) => Kind::Regex(s.clone()),
            }),
        }),
        headers: m.headers.iter().map(value_to_header).collect(),
        query_params: m
            .query
            .iter()
            .map(|q| http_api::QueryParamMatch {
                name: q.name.clone(),
                value: Some(match &q.value {
                    ValueMatch::Exact(v) => Value::Exact(v.clone()),
                    ValueMatch::Regex(r) => Value::Regex(r.clone()),
                }),
            })
            .collect(),
        method: m.method.clone().map(Into::into),
    }
}

pub(crate) fn http_match_from(m: http_api::HttpRouteMatch) -> Result<RequestMatch, InvalidMessage> {
    use http_api::{path_match::Kind, query_param_match::Value};
    let path = match m.path.map(|p| p.kind) {
        None => None,
        Some(Some(Kind::Exact(s))) => Some(PathMatch::Exact(s)),
        Some(Some(Kind::Prefix(s))) => Some(PathMatch::Prefix(s)),
        Some(Some(Kind::Regex(s))) => Some(PathMatch::Regex(s)),
        Some(None) => return Err(InvalidMessage::missing("match.path.kind")),
    };
    let query = m
        .query_params
        .into_iter()
        .map(|q| {
            let value = match q.value {
                Some(Value::Exact(v)) => ValueMatch::Exact(v),
                Some(Value::Regex(r)) => ValueMatch::Regex(r),
                None => return Err(InvalidMessage::missing("match.query_params.value")),
            };
            Ok(NameMatch {
                name: q.name,
                value,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(RequestMatch {
        path,
        headers: m
            .headers
            .into_iter()
            .map(header_from)
            .collect::<Result<_, _>>()?,
        query,
        method: m
            .method
            .map(http::Method::try_from)
            .transpose()
            .map_err(|e| InvalidMessage::new("match.method", e.to_string()))?,
        rpc: None,
    })
}

pub(crate) fn grpc_match_to(m: &RequestMatch) -> grpc::GrpcRouteMatch {
    grpc::GrpcRouteMatch {
        rpc: m.rpc.as_ref().map(|r| grpc::GrpcRpcMatch {
            service: r.service.clone().unwrap_or_default(),
            method: r.method.clone().unwrap_or_default(),
        }),
        headers: m.headers.iter().map(value_to_header).collect(),
    }
}

pub(crate) fn grpc_match_from(m: grpc::GrpcRouteMatch) -> Result<RequestMatch, InvalidMessage> {
    Ok(RequestMatch {
        rpc: m.rpc.map(|r| RpcMatch {
            service: Some(r.service).filter(|s| !s.is_empty()),
            method: Some(r.method).filter(|s| !s.is_empty()),
        }),
        headers: m
            .headers
            .into_iter()
            .map(header_from)
            .collect::<Result<_, _>>()?,
        ..RequestMatch::default()
    })
}

fn timeouts_to(t: &Timeouts) -> http_api::Timeouts {
    http_api::Timeouts {
        response: t.response.and_then(dur),
        request: t.request.and_then(dur),
        idle: t.idle.and_then(dur),
    }
}

fn timeouts_from(t: Option<http_api::Timeouts>) -> Result<Timeouts, InvalidMessage> {
    let t = t.unwrap_or_default();
    Ok(Timeouts {
        response: opt_dur("timeouts.response", t.response)?,
        request: opt_dur("timeouts.request", t.request)?,
        idle: opt_dur("timeouts.idle", t.idle)?,
    })
}

fn http_retry_to(r: &Retry) -> api::http_route::Retry {
    use api::http_route::retry::{Conditions, conditions::StatusRange};
    api::http_route::Retry {
        max_retries: r.limit,
        max_request_bytes: r.max_request_bytes,
        conditions: Some(Conditions {
            status_ranges: r
                .statuses
                .iter()
                .map(|s| StatusRange {
                    start: u32::from(*s.start()),
                    end: u32::from(*s.end()),
                })
                .collect(),
        }),
        timeout: r.timeout.and_then(dur),
        backoff: r.backoff.as_ref().map(backoff_to),
    }
}

fn http_retry_from(r: api::http_route::Retry) -> Result<Retry, InvalidMessage> {
    let conditions = r
        .conditions
        .ok_or_else(|| InvalidMessage::missing("retry.conditions"))?;
    let statuses = conditions
        .status_ranges
        .into_iter()
        .map(|s| {
            let start = u16::try_from(s.start)
                .ok()
                .filter(|s| (100..600).contains(s));
            let end = match s.end {
                0 => start,
                e => u16::try_from(e).ok().filter(|e| (100..600).contains(e)),
            };
            match (start, end) {
                (Some(start), Some(end)) if start <= end => Ok(start..=end),
                _ => Err(InvalidMessage::new(
                    "retry.conditions.status_ranges",
                    format!("{}-{} is not a range of HTTP statuses", s.start, s.end),
                )),
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(Retry {
        limit: r.max_retries,
        max_request_bytes: r.max_request_bytes,
        statuses,
        codes: Vec::new(),
        timeout: opt_dur("retry.timeout", r.timeout)?,
        backoff: r.backoff.map(backoff_from).transpose()?,
    })
}

fn grpc_retry_to(r: &Retry) -> api::grpc_route::Retry {
    let has = |c| r.codes.contains(&c);
    api::grpc_route::Retry {
        max_retries: r.limit,
        max_request_bytes: r.max_request_bytes,
        conditions: Some(api::grpc_route::retry::Conditions {
            cancelled: has(GrpcCode::Cancelled),
            deadine_exceeded: has(GrpcCode::DeadlineExceeded),
            resource_exhausted: has(GrpcCode::ResourceExhausted),
            internal: has(GrpcCode::Internal),
            unavailable: has(GrpcCode::Unavailable),
        }),
        timeout: r.timeout.and_then(dur),
        backoff: r.backoff.as_ref().map(backoff_to),
    }
}

fn grpc_retry_from(r: api::grpc_route::Retry) -> Result<Retry, InvalidMessage> {
    let c = r
        .conditions
        .ok_or_else(|| InvalidMessage::missing("retry.conditions"))?;
    let codes = [
        (c.cancelled, GrpcCode::Cancelled),
        (c.deadine_exceeded, GrpcCode::DeadlineExceeded),
        (c.resource_exhausted, GrpcCode::ResourceExhausted),
        (c.internal, GrpcCode::Internal),
        (c.unavailable, GrpcCode::Unavailable),
    ]
    .into_iter()
    .filter_map(|(on, code)| on.then_some(code))
    .collect();
    Ok(Retry {
        limit: r.max_retries,
        max_request_bytes: r.max_request_bytes,
        statuses: Vec::new(),
        codes,
        timeout: opt_dur("retry.timeout", r.timeout)?,
        backoff: r.backoff.map(backoff_from).transpose()?,
    })
}

pub(crate) fn host_to(h: &str) -> http_api::HostMatch {
    use http_api::host_match::{Match, Suffix};
    let m = match h.strip_prefix("*.") {
        Some(suffix) => Match::Suffix(Suffix {
            reverse_labels: suffix.rsplit('.').map(str::to_string).collect(),
        }),
        None => Match::Exact(h.to_string()),
    };
    http_api::HostMatch { r#match: Some(m) }
}

pub(crate) fn host_from(h: http_api::HostMatch) -> Result<String, InvalidMessage> {
    use http_api::host_match::Match;
    match h.r#match {
        Some(Match::Exact(h)) => Ok(h),
        Some(Match::Suffix(s)) => {
            let labels: Vec<_> = s.reverse_labels.into_iter().rev().collect();
            Ok(format!("*.{}", labels.join(".")))
        }
        None => Err(InvalidMessage::missing("hosts.match")),
    }
}

/// Encodes a rule's backends as a distribution, for one route kind's prost types (each
/// kind has its own, of the same shape).
macro_rules! distribution_to {
    ($module:ident, $backends:expr, $filter:expr) => {{
        use api::$module::{Distribution, RouteBackend as Rb, WeightedRouteBackend, distribution};
        let backends: &[RouteBackend] = $backends;
        let kind = if backends.is_empty() {
            distribution::Kind::Empty(distribution::Empty {})
        } else {
            distribution::Kind::RandomAvailable(distribution::RandomAvailable {
                backends: backends
                    .iter()
                    .map(|b| WeightedRouteBackend {
                        weight: b.weight,
                        backend: Some(Rb {
                            backend: Some((&b.backend).into()),
                            filters: b.filters.iter().filter_map($filter).collect(),
                            ..Rb::default()
                        }),
                    })
                    .collect(),
            })
        };
        Distribution { kind: Some(kind) }
    }};
}

/// Decodes a distribution into weighted backends (first-available keeps only its first).
macro_rules! distribution_from {
    ($module:ident, $dist:expr, $filter:expr) => {{
        use api::$module::distribution::Kind;
        let mut out = Vec::new();
        let pairs = match $dist.and_then(|d| d.kind) {
            None => return Err(InvalidMessage::missing("rule.backends")),
            Some(Kind::Empty(_)) => Vec::new(),
            Some(Kind::FirstAvailable(fa)) => fa
                .backends
                .into_iter()
                .take(1)
                .map(|b| (1, Some(b)))
                .collect(),
            Some(Kind::RandomAvailable(ra)) => ra
                .backends
                .into_iter()
                .map(|w| (w.weight, w.backend))
                .collect(),
        };
        for (weight, rb) in pairs {
            let rb = rb.ok_or_else(|| InvalidMessage::missing("rule.backends.backend"))?;
            let Some(b) = rb.backend else {
                return Err(InvalidMessage::missing("rule.backends.backend.backend"));
            };
            if let Some(backend) = backend(b)? {
                out.push(RouteBackend {
                    backend,
                    weight,
                    filters: rb
                        .filters
                        .into_iter()
                        .map($filter)
                        .collect::<Result<_, _>>()?,
                });
            }
        }
        out
    }};
}

fn http_rule_to(r: &Rule) -> api::http_route::Rule {
    #[allow(deprecated)]
    api::http_route::Rule {
        matches: r.matches.iter().map(http_match_to).collect(),
        filters: r.filters.iter().map(http_filter_to).collect(),
        backends: Some(distribution_to!(http_route, &r.backends, |f| Some(
            http_filter_to(f)
        ))),
        request_timeout: r.timeouts.response.and_then(dur),
        timeouts: Some(timeouts_to(&r.timeouts)),
        retry: r.retry.as_ref().map(http_retry_to),
        allow_l5d_request_headers: false,
    }
}

fn http_rule_from(r: api::http_route::Rule) -> Result<Rule, InvalidMessage> {
    Ok(Rule {
        matches: r
            .matches
            .into_iter()
            .map(http_match_from)
            .collect::<Result<_, _>>()?,
        filters: r
            .filters
            .into_iter()
            .map(http_filter_from)
            .collect::<Result<_, _>>()?,
        backends: distribution_from!(http_route, r.backends, http_filter_from),
        timeouts: timeouts_from(r.timeouts)?,
        retry: r.retry.map(http_retry_from).transpose()?,
    })
}

fn grpc_rule_to(r: &Rule) -> api::grpc_route::Rule {
    #[allow(deprecated)]
    api::grpc_route::Rule {
        matches: r.matches.iter().map(grpc_match_to).collect(),
        filters: r.filters.iter().filter_map(grpc_filter_to).collect(),
        backends: Some(distribution_to!(grpc_route, &r.backends, grpc_filter_to)),
        request_timeout: r.timeouts.response.and_then(dur),
        timeouts: Some(timeouts_to(&r.timeouts)),
        retry: r.retry.as_ref().map(grpc_retry_to),
        allow_l5d_request_headers: false,
    }
}

fn grpc_rule_from(r: api::grpc_route::Rule) -> Result<Rule, InvalidMessage> {
    Ok(Rule {
        matches: r
            .matches
            .into_iter()
            .map(grpc_match_from)
            .collect::<Result<_, _>>()?,
        filters: r
            .filters
            .into_iter()
            .map(grpc_filter_from)
            .collect::<Result<_, _>>()?,
        backends: distribution_from!(grpc_route, r.backends, grpc_filter_from),
        timeouts: timeouts_from(r.timeouts)?,
        retry: r.retry.map(grpc_retry_from).transpose()?,
    })
}

/// An HTTP route as an outbound `HttpRoute`.
pub(crate) fn http_route_to(r: &Route) -> api::HttpRoute {
    api::HttpRoute {
        metadata: Some((&r.meta).into()),
        hosts: r.hosts.iter().map(|h| host_to(h)).collect(),
        rules: r.rules.iter().map(http_rule_to).collect(),
    }
}

/// A gRPC route as an outbound `GrpcRoute`.
pub(crate) fn grpc_route_to(r: &Route) -> api::GrpcRoute {
    api::GrpcRoute {
        metadata: Some((&r.meta).into()),
        hosts: r.hosts.iter().map(|h| host_to(h)).collect(),
        rules: r.rules.iter().map(grpc_rule_to).collect(),
    }
}

impl TryFrom<api::HttpRoute> for Route {
    type Error = InvalidMessage;

    fn try_from(r: api::HttpRoute) -> Result<Self, Self::Error> {
        Ok(Self {
            meta: RouteRef::try_from(
                r.metadata
                    .ok_or_else(|| InvalidMessage::missing("route.metadata"))?,
            )?,
            kind: RouteKind::Http,
            hosts: r
                .hosts
                .into_iter()
                .map(host_from)
                .collect::<Result<_, _>>()?,
            rules: r
                .rules
                .into_iter()
                .map(http_rule_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl TryFrom<api::GrpcRoute> for Route {
    type Error = InvalidMessage;

    fn try_from(r: api::GrpcRoute) -> Result<Self, Self::Error> {
        Ok(Self {
            meta: RouteRef::try_from(
                r.metadata
                    .ok_or_else(|| InvalidMessage::missing("route.metadata"))?,
            )?,
            kind: RouteKind::Grpc,
            hosts: r
                .hosts
                .into_iter()
                .map(host_from)
                .collect::<Result<_, _>>()?,
            rules: r
                .rules
                .into_iter()
                .map(grpc_rule_from)
                .collect::<Result<_, _>>()?,
        })
    }
}
