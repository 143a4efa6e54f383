//! Conversions between outbound domain types and `linkerd2_proxy_api::outbound` messages.

use std::time::Duration;

use linkerd2_proxy_api::{meta, net, outbound as api};

use super::{AppProtocol, DETECT_TIMEOUT, OutboundPolicy, ServiceRef, TrafficSpec, TrafficTarget};
use crate::{
    error::InvalidMessage,
    route::{Backend, Route, RouteKind, RouteRef, proto as route_proto},
};

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
    (&Backend {
        meta: p.service.route_ref(),
        path: p.backend_path.clone(),
    })
        .into()
}

fn opaque_routes(p: &OutboundPolicy) -> Vec<api::OpaqueRoute> {
    use api::opaque_route::{Distribution, RouteBackend, Rule, distribution};
    vec![api::OpaqueRoute {
        metadata: Some(default_meta("opaq")),
        rules: vec![Rule {
            backends: Some(Distribution {
                kind: Some(distribution::Kind::FirstAvailable(
                    distribution::FirstAvailable {
                        backends: vec![RouteBackend {
                            backend: Some(backend(p)),
                            ..RouteBackend::default()
                        }],
                    },
                )),
            }),
            filters: Vec::new(),
        }],
    }]
}

fn is_grpc(p: &OutboundPolicy) -> bool {
    p.routes.iter().any(|r| r.kind == RouteKind::Grpc)
}

impl From<OutboundPolicy> for api::OutboundPolicy {
    fn from(p: OutboundPolicy) -> Self {
        use api::proxy_protocol::{Detect, Grpc, Http1, Http2, Kind, Opaque};
        let accrual = p.failure_accrual.as_ref().map(api::FailureAccrual::from);
        let http_routes = || {
            p.routes
                .iter()
                .filter(|r| r.kind == RouteKind::Http)
                .map(route_proto::http_route_to)
                .collect::<Vec<_>>()
        };
        let http1 = || Http1 {
            routes: http_routes(),
            failure_accrual: accrual,
        };
        let http2 = || Http2 {
            routes: http_routes(),
            failure_accrual: accrual,
        };
        let opaque = || Opaque {
            routes: opaque_routes(&p),
        };
        let kind = match p.protocol {
            AppProtocol::Opaque => Kind::Opaque(opaque()),
            _ if is_grpc(&p) => Kind::Grpc(Grpc {
                routes: p
                    .routes
                    .iter()
                    .filter(|r| r.kind == RouteKind::Grpc)
                    .map(route_proto::grpc_route_to)
                    .collect(),
                failure_accrual: accrual,
            }),
            AppProtocol::Detect => Kind::Detect(Detect {
                timeout: dur(DETECT_TIMEOUT),
                opaque: Some(opaque()),
                http1: Some(http1()),
                http2: Some(http2()),
            }),
            AppProtocol::Http1 => Kind::Http1(http1()),
            AppProtocol::Http2 => Kind::Http2(http2()),
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

/// The first balancer backend's path among `backends`.
fn first_path(
    backends: impl IntoIterator<Item = api::Backend>,
) -> Result<Option<String>, InvalidMessage> {
    for b in backends {
        if let Some(b) = route_proto::backend(b)? {
            return Ok(Some(b.path));
        }
    }
    Ok(None)
}

/// Every backend of opaque routes' rules.
fn opaque_backends(routes: Vec<api::OpaqueRoute>) -> impl Iterator<Item = api::Backend> {
    use api::opaque_route::distribution::Kind;
    routes
        .into_iter()
        .flat_map(|r| r.rules)
        .filter_map(|rule| rule.backends?.kind)
        .flat_map(|kind| -> Vec<api::Backend> {
            match kind {
                Kind::Empty(_) => Vec::new(),
                Kind::FirstAvailable(fa) => {
                    fa.backends.into_iter().filter_map(|b| b.backend).collect()
                }
                Kind::RandomAvailable(ra) => ra
                    .backends
                    .into_iter()
                    .filter_map(|w| w.backend?.backend)
                    .collect(),
            }
        })
}

fn http_routes(routes: Vec<api::HttpRoute>) -> Result<Vec<Route>, InvalidMessage> {
    routes.into_iter().map(Route::try_from).collect()
}

/// The Service's own backend: the opaque routes' first, else the first route backend
/// named after the Service, else the first route backend.
fn service_path(
    service: &ServiceRef,
    routes: &[Route],
    opaque: Option<api::proxy_protocol::Opaque>,
) -> Result<Option<String>, InvalidMessage> {
    if let Some(path) = first_path(opaque_backends(
        opaque.map(|o| o.routes).unwrap_or_default(),
    ))? {
        return Ok(Some(path));
    }
    let backends = || {
        routes
            .iter()
            .flat_map(|r| &r.rules)
            .flat_map(|r| &r.backends)
    };
    let own = service.route_ref();
    Ok(backends()
        .find(|b| {
            RouteRef::name(&b.backend.meta) == own.name()
                && b.backend.meta.namespace() == own.namespace()
        })
        .or_else(|| backends().next())
        .map(|b| b.backend.path.clone()))
}

/// Reads the protocol, the routes and the Service's backend. gRPC counts as HTTP/2; TLS
/// policies, and policies with no balancer backend (only `forward` ones), fail.
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
        let (protocol, routes, accrual, opaque) = match kind {
            Kind::Detect(d) => {
                let (Some(_), Some(opaque), Some(http1), Some(_)) =
                    (d.timeout, d.opaque, d.http1, d.http2)
                else {
                    return Err(InvalidMessage::new(
                        "protocol.detect",
                        "timeout, opaque, http1 and http2 are all required",
                    ));
                };
                (
                    AppProtocol::Detect,
                    http_routes(http1.routes)?,
                    http1.failure_accrual,
                    Some(opaque),
                )
            }
            Kind::Http1(h) => (
                AppProtocol::Http1,
                http_routes(h.routes)?,
                h.failure_accrual,
                None,
            ),
            Kind::Http2(h) => (
                AppProtocol::Http2,
                http_routes(h.routes)?,
                h.failure_accrual,
                None,
            ),
            Kind::Grpc(g) => (
                AppProtocol::Http2,
                g.routes
                    .into_iter()
                    .map(Route::try_from)
                    .collect::<Result<_, _>>()?,
                g.failure_accrual,
                None,
            ),
            Kind::Opaque(o) => (AppProtocol::Opaque, Vec::new(), None, Some(o)),
            Kind::Tls(_) => {
                return Err(InvalidMessage::new(
                    "protocol.kind",
                    "tls policies are not supported",
                ));
            }
        };
        let backend_path = service_path(&service, &routes, opaque)?
            .ok_or_else(|| InvalidMessage::new("protocol.routes", "no balancer backend"))?;
        Ok(Self {
            service,
            backend_path,
            protocol,
            routes,
            failure_accrual: route_proto::failure_accrual(accrual)?,
        })
    }
}
