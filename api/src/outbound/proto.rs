//! Conversions between outbound domain types and `linkerd2_proxy_api::outbound` messages.

use std::time::Duration;

use linkerd2_proxy_api::{http_route, meta, net, outbound as api};

use super::{
    AppProtocol, BREAKER_MAX_FAILURES, DETECT_TIMEOUT, EWMA_DECAY, EWMA_DEFAULT_RTT,
    OutboundPolicy, QUEUE_CAPACITY, QUEUE_FAILFAST_TIMEOUT, ServiceRef, TrafficSpec, TrafficTarget,
};
use crate::error::InvalidMessage;

fn dur(d: Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
}

impl TryFrom<api::TrafficSpec> for TrafficSpec {
    type Error = InvalidMessage;

    fn try_from(spec: api::TrafficSpec) -> Result<Self, Self::Error> {
        let target = match spec.target {
            None => None,
            Some(api::traffic_spec::Target::Authority(a)) => Some(TrafficTarget::Authority(a)),
            Some(api::traffic_spec::Target::Addr(addr)) => {
                let ip = addr
                    .ip
                    .ok_or_else(|| InvalidMessage::missing("target.addr.ip"))
                    .and_then(|ip| {
                        std::net::IpAddr::try_from(ip)
                            .map_err(|e| InvalidMessage::new("target.addr.ip", e.to_string()))
                    })?;
                let port = u16::try_from(addr.port)
                    .map_err(|_| InvalidMessage::new("target.addr.port", "above 65535"))?;
                Some(TrafficTarget::Addr(std::net::SocketAddr::new(ip, port)))
            }
        };
        Self::new(&spec.source_workload, target)
    }
}

impl From<TrafficSpec> for api::TrafficSpec {
    fn from(spec: TrafficSpec) -> Self {
        Self {
            source_workload: spec
                .source
                .map(|w| format!(r#"{{"ns":"{}","pod":"{}"}}"#, w.namespace, w.pod))
                .unwrap_or_default(),
            target: Some(match spec.target {
                TrafficTarget::Addr(a) => api::traffic_spec::Target::Addr(net::TcpAddress::from(a)),
                TrafficTarget::Authority(a) => api::traffic_spec::Target::Authority(a),
            }),
        }
    }
}

fn service_meta(s: &ServiceRef) -> meta::Metadata {
    meta::Metadata {
        kind: Some(meta::metadata::Kind::Resource(meta::Resource {
            group: "core".into(),
            kind: "Service".into(),
            name: s.name.clone(),
            namespace: s.namespace.clone(),
            section: String::new(),
            port: u32::from(s.port),
        })),
    }
}

fn default_meta(name: &str) -> meta::Metadata {
    meta::Metadata {
        kind: Some(meta::metadata::Kind::Default(name.into())),
    }
}

fn backend(p: &OutboundPolicy) -> api::Backend {
    use api::backend::{self, balance_p2c};
    api::Backend {
        metadata: Some(service_meta(&p.service)),
        queue: Some(api::Queue {
            capacity: QUEUE_CAPACITY,
            failfast_timeout: dur(QUEUE_FAILFAST_TIMEOUT),
        }),
        kind: Some(backend::Kind::Balancer(backend::BalanceP2c {
            discovery: Some(backend::EndpointDiscovery {
                kind: Some(backend::endpoint_discovery::Kind::Dst(
                    backend::endpoint_discovery::DestinationGet {
                        path: p.backend_path.clone(),
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

fn failure_accrual() -> api::FailureAccrual {
    api::FailureAccrual {
        ejection: None,
        kind: Some(api::failure_accrual::Kind::ConsecutiveFailures(
            api::failure_accrual::ConsecutiveFailures {
                max_failures: BREAKER_MAX_FAILURES,
                backoff: Some(api::ExponentialBackoff {
                    min_backoff: dur(Duration::from_secs(1)),
                    max_backoff: dur(Duration::from_secs(60)),
                    jitter_ratio: 0.5,
                    ..api::ExponentialBackoff::default()
                }),
            },
        )),
    }
}

/// A distribution that sends every request to `backend`, with no filters, for one route
/// kind's prost types (each kind has its own, of the same shape).
macro_rules! only_backend {
    ($module:ident, $backend:expr) => {{
        use api::$module::{Distribution, RouteBackend, distribution};
        Distribution {
            kind: Some(distribution::Kind::FirstAvailable(
                distribution::FirstAvailable {
                    backends: vec![RouteBackend {
                        backend: Some($backend),
                        ..RouteBackend::default()
                    }],
                },
            )),
        }
    }};
}

fn http_routes(p: &OutboundPolicy) -> Vec<api::HttpRoute> {
    use api::http_route::Rule;
    vec![api::HttpRoute {
        metadata: Some(default_meta("http")),
        hosts: Vec::new(),
        rules: vec![Rule {
            matches: vec![http_route::HttpRouteMatch {
                path: Some(http_route::PathMatch {
                    kind: Some(http_route::path_match::Kind::Prefix("/".into())),
                }),
                ..http_route::HttpRouteMatch::default()
            }],
            filters: Vec::new(),
            backends: Some(only_backend!(http_route, backend(p))),
            timeouts: Some(http_route::Timeouts::default()),
            ..Rule::default()
        }],
    }]
}

fn opaque_routes(p: &OutboundPolicy) -> Vec<api::OpaqueRoute> {
    use api::opaque_route::Rule;
    vec![api::OpaqueRoute {
        metadata: Some(default_meta("opaq")),
        rules: vec![Rule {
            backends: Some(only_backend!(opaque_route, backend(p))),
            filters: Vec::new(),
        }],
    }]
}

impl From<OutboundPolicy> for api::OutboundPolicy {
    fn from(p: OutboundPolicy) -> Self {
        use api::proxy_protocol::{Detect, Http1, Http2, Kind, Opaque};
        let http1 = || Http1 {
            routes: http_routes(&p),
            failure_accrual: Some(failure_accrual()),
        };
        let http2 = || Http2 {
            routes: http_routes(&p),
            failure_accrual: Some(failure_accrual()),
        };
        let opaque = || Opaque {
            routes: opaque_routes(&p),
        };
        let kind = match p.protocol {
            AppProtocol::Detect => Kind::Detect(Detect {
                timeout: dur(DETECT_TIMEOUT),
                opaque: Some(opaque()),
                http1: Some(http1()),
                http2: Some(http2()),
            }),
            AppProtocol::Http1 => Kind::Http1(http1()),
            AppProtocol::Http2 => Kind::Http2(http2()),
            AppProtocol::Opaque => Kind::Opaque(opaque()),
        };
        Self {
            protocol: Some(api::ProxyProtocol { kind: Some(kind) }),
            metadata: Some(service_meta(&p.service)),
        }
    }
}

impl TryFrom<meta::Metadata> for ServiceRef {
    type Error = InvalidMessage;

    fn try_from(m: meta::Metadata) -> Result<Self, Self::Error> {
        let Some(meta::metadata::Kind::Resource(r)) = m.kind else {
            return Err(InvalidMessage::new(
                "metadata",
                "must name a Service resource",
            ));
        };
        if r.group.is_empty() || r.kind.is_empty() || r.name.is_empty() || r.namespace.is_empty() {
            return Err(InvalidMessage::new(
                "metadata",
                "group, kind, name and namespace must be set",
            ));
        }
        let port = u16::try_from(r.port)
            .map_err(|_| InvalidMessage::new("metadata.port", "above 65535"))?;
        Ok(Self {
            namespace: r.namespace,
            name: r.name,
            port,
        })
    }
}

/// The `Destination.Get` path of a balancer backend, checking the contract's required fields.
fn balancer_path(b: &api::Backend) -> Result<Option<String>, InvalidMessage> {
    use api::backend::{Kind, endpoint_discovery};
    if b.metadata.is_none() {
        return Err(InvalidMessage::missing("backend.metadata"));
    }
    if b.queue.is_none() {
        return Err(InvalidMessage::missing("backend.queue"));
    }
    let Some(Kind::Balancer(bal)) = &b.kind else {
        return Ok(None);
    };
    if bal.load.is_none() {
        return Err(InvalidMessage::missing("backend.balancer.load"));
    }
    match bal.discovery.as_ref().and_then(|d| d.kind.as_ref()) {
        Some(endpoint_discovery::Kind::Dst(dst)) if !dst.path.is_empty() => {
            Ok(Some(dst.path.clone()))
        }
        _ => Err(InvalidMessage::missing(
            "backend.balancer.discovery.dst.path",
        )),
    }
}

/// The first balancer backend's path among `backends`.
fn first_path<'a>(
    backends: impl IntoIterator<Item = &'a api::Backend>,
) -> Result<Option<String>, InvalidMessage> {
    for b in backends {
        if let Some(path) = balancer_path(b)? {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Every backend of `routes`' rules, for one route kind (each kind has its own prost types
/// of the same shape).
macro_rules! route_backends {
    ($name:ident, $route:ty, $module:ident) => {
        fn $name(routes: &[$route]) -> impl Iterator<Item = &api::Backend> {
            use api::$module::distribution::Kind;
            routes
                .iter()
                .flat_map(|r| &r.rules)
                .filter_map(|rule| rule.backends.as_ref()?.kind.as_ref())
                .flat_map(|kind| -> Vec<&api::Backend> {
                    match kind {
                        Kind::Empty(_) => Vec::new(),
                        Kind::FirstAvailable(fa) => fa
                            .backends
                            .iter()
                            .filter_map(|b| b.backend.as_ref())
                            .collect(),
                        Kind::RandomAvailable(ra) => ra
                            .backends
                            .iter()
                            .filter_map(|w| w.backend.as_ref()?.backend.as_ref())
                            .collect(),
                    }
                })
        }
    };
}

route_backends!(http_backends, api::HttpRoute, http_route);
route_backends!(grpc_backends, api::GrpcRoute, grpc_route);
route_backends!(opaque_backends, api::OpaqueRoute, opaque_route);

/// Reads the protocol and the first balancer backend. gRPC counts as HTTP/2; TLS routes and
/// policies with no balancer backend (only `forward` ones) are not representable and fail.
impl TryFrom<api::OutboundPolicy> for OutboundPolicy {
    type Error = InvalidMessage;

    fn try_from(p: api::OutboundPolicy) -> Result<Self, Self::Error> {
        use api::proxy_protocol::Kind;
        let service = ServiceRef::try_from(
            p.metadata
                .ok_or_else(|| InvalidMessage::missing("metadata"))?,
        )?;
        let kind = p
            .protocol
            .and_then(|p| p.kind)
            .ok_or_else(|| InvalidMessage::missing("protocol.kind"))?;
        let (protocol, path) = match &kind {
            Kind::Detect(d) => {
                let (Some(_), Some(opaque), Some(http1), Some(_)) =
                    (&d.timeout, &d.opaque, &d.http1, &d.http2)
                else {
                    return Err(InvalidMessage::new(
                        "protocol.detect",
                        "timeout, opaque, http1 and http2 are all required",
                    ));
                };
                let path = match first_path(http_backends(&http1.routes))? {
                    Some(path) => Some(path),
                    None => first_path(opaque_backends(&opaque.routes))?,
                };
                (AppProtocol::Detect, path)
            }
            Kind::Http1(h) => (AppProtocol::Http1, first_path(http_backends(&h.routes))?),
            Kind::Http2(h) => (AppProtocol::Http2, first_path(http_backends(&h.routes))?),
            Kind::Grpc(g) => (AppProtocol::Http2, first_path(grpc_backends(&g.routes))?),
            Kind::Opaque(o) => (AppProtocol::Opaque, first_path(opaque_backends(&o.routes))?),
            Kind::Tls(_) => {
                return Err(InvalidMessage::new(
                    "protocol.kind",
                    "tls policies are not supported",
                ));
            }
        };
        Ok(Self {
            service,
            backend_path: path
                .ok_or_else(|| InvalidMessage::new("protocol.routes", "no balancer backend"))?,
            protocol,
        })
    }
}
