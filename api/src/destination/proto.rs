//! Conversions between destination domain types and `linkerd2_proxy_api::destination` messages.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use linkerd2_proxy_api::{destination as api, http_types, net};

use super::{
    Context, Endpoint, Profile, ProtocolHint, RequestMatch, ResponseClass, ResponseMatch,
    RetryBudget, Route, Update, WeightedDst,
};
use crate::error::InvalidMessage;

/// Parses a `context_token`: JSON `{"ns":..,"nodeName":..,"pod":..}`, or legacy `ns:<ns>`.
///
/// Anything else (including an empty token) is an empty context: the token is advisory.
pub fn parse_context_token(token: &str) -> Context {
    if let Some(ns) = token.strip_prefix("ns:") {
        return Context {
            namespace: Some(ns.to_string()),
            ..Context::default()
        };
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str(token) else {
        return Context::default();
    };
    let field = |k: &str| {
        map.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Context {
        namespace: field("ns"),
        node_name: field("nodeName"),
        pod: field("pod"),
    }
}

fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn labels(map: std::collections::BTreeMap<String, String>) -> HashMap<String, String> {
    map.into_iter().collect()
}

impl From<Endpoint> for api::WeightedAddr {
    fn from(ep: Endpoint) -> Self {
        let tls_identity = ep.identity.map(|name| api::TlsIdentity {
            strategy: Some(api::tls_identity::Strategy::DnsLikeIdentity(
                api::tls_identity::DnsLikeIdentity { name: name.clone() },
            )),
            server_name: Some(api::tls_identity::DnsLikeIdentity { name }),
        });
        let protocol = match ep.hint {
            ProtocolHint::Unknown => None,
            ProtocolHint::H2 => Some(api::protocol_hint::Protocol::H2(api::protocol_hint::H2 {})),
            ProtocolHint::Opaque => Some(api::protocol_hint::Protocol::Opaque(
                api::protocol_hint::Opaque {},
            )),
        };
        let opaque_transport =
            ep.opaque_transport_port
                .map(|port| api::protocol_hint::OpaqueTransport {
                    inbound_port: u32::from(port),
                });
        let protocol_hint =
            (protocol.is_some() || opaque_transport.is_some()).then_some(api::ProtocolHint {
                protocol,
                opaque_transport,
            });
        Self {
            addr: Some(net::TcpAddress::from(ep.addr)),
            weight: ep.weight,
            metric_labels: labels(ep.labels),
            tls_identity,
            protocol_hint,
            authority_override: None,
            http2: None,
            resource_ref: None,
        }
    }
}

impl TryFrom<api::WeightedAddr> for Endpoint {
    type Error = InvalidMessage;

    fn try_from(wa: api::WeightedAddr) -> Result<Self, Self::Error> {
        let addr = tcp_addr(wa.addr, "addr")?;
        let identity = wa.tls_identity.and_then(|id| match id.strategy {
            Some(api::tls_identity::Strategy::DnsLikeIdentity(d)) => Some(d.name),
            Some(api::tls_identity::Strategy::UriLikeIdentity(u)) => Some(u.uri),
            None => None,
        });
        let (hint, opaque_transport_port) = match wa.protocol_hint {
            None => (ProtocolHint::Unknown, None),
            Some(h) => {
                let hint = match h.protocol {
                    Some(api::protocol_hint::Protocol::H2(_)) => ProtocolHint::H2,
                    Some(api::protocol_hint::Protocol::Opaque(_)) => ProtocolHint::Opaque,
                    None => ProtocolHint::Unknown,
                };
                let port = h
                    .opaque_transport
                    .map(|t| {
                        u16::try_from(t.inbound_port).map_err(|_| {
                            InvalidMessage::new("opaque_transport.inbound_port", "not a port")
                        })
                    })
                    .transpose()?;
                (hint, port)
            }
        };
        Ok(Self {
            addr,
            weight: wa.weight,
            labels: wa.metric_labels.into_iter().collect(),
            identity,
            hint,
            opaque_transport_port,
        })
    }
}

fn tcp_addr(
    addr: Option<net::TcpAddress>,
    field: &'static str,
) -> Result<SocketAddr, InvalidMessage> {
    let addr = addr.ok_or_else(|| InvalidMessage::missing(field))?;
    let ip = addr
        .ip
        .ok_or_else(|| InvalidMessage::missing(field))
        .and_then(|ip| {
            std::net::IpAddr::try_from(ip).map_err(|e| InvalidMessage::new(field, e.to_string()))
        })?;
    let port =
        u16::try_from(addr.port).map_err(|_| InvalidMessage::new(field, "port above 65535"))?;
    Ok(SocketAddr::new(ip, port))
}

impl From<Update> for api::Update {
    fn from(update: Update) -> Self {
        let update = match update {
            Update::Add {
                set_labels,
                endpoints,
            } => api::update::Update::Add(api::WeightedAddrSet {
                addrs: endpoints.into_iter().map(Into::into).collect(),
                metric_labels: labels(set_labels),
            }),
            Update::Remove(addrs) => api::update::Update::Remove(api::AddrSet {
                addrs: addrs.into_iter().map(net::TcpAddress::from).collect(),
            }),
            Update::NoEndpoints { exists } => {
                api::update::Update::NoEndpoints(api::NoEndpoints { exists })
            }
        };
        Self {
            update: Some(update),
        }
    }
}

impl TryFrom<api::Update> for Update {
    type Error = InvalidMessage;

    fn try_from(update: api::Update) -> Result<Self, Self::Error> {
        match update
            .update
            .ok_or_else(|| InvalidMessage::missing("update"))?
        {
            api::update::Update::Add(set) => Ok(Self::Add {
                set_labels: set.metric_labels.into_iter().collect(),
                endpoints: set
                    .addrs
                    .into_iter()
                    .map(Endpoint::try_from)
                    .collect::<Result<_, _>>()?,
            }),
            api::update::Update::Remove(set) => Ok(Self::Remove(
                set.addrs
                    .into_iter()
                    .map(|a| tcp_addr(Some(a), "remove.addrs"))
                    .collect::<Result<_, _>>()?,
            )),
            api::update::Update::NoEndpoints(n) => Ok(Self::NoEndpoints { exists: n.exists }),
        }
    }
}

impl From<RequestMatch> for api::RequestMatch {
    fn from(m: RequestMatch) -> Self {
        use api::request_match::{Match, Seq};
        let seq = |ms: Vec<RequestMatch>| Seq {
            matches: ms.into_iter().map(Into::into).collect(),
        };
        let m = match m {
            RequestMatch::All(ms) => Match::All(seq(ms)),
            RequestMatch::Any(ms) => Match::Any(seq(ms)),
            RequestMatch::Not(m) => Match::Not(Box::new((*m).into())),
            RequestMatch::Path(regex) => Match::Path(api::PathMatch { regex }),
            RequestMatch::Method(method) => Match::Method(http_types::HttpMethod::from(method)),
        };
        Self { r#match: Some(m) }
    }
}

impl From<ResponseMatch> for api::ResponseMatch {
    fn from(m: ResponseMatch) -> Self {
        use api::response_match::{Match, Seq};
        let seq = |ms: Vec<ResponseMatch>| Seq {
            matches: ms.into_iter().map(Into::into).collect(),
        };
        let m = match m {
            ResponseMatch::All(ms) => Match::All(seq(ms)),
            ResponseMatch::Any(ms) => Match::Any(seq(ms)),
            ResponseMatch::Not(m) => Match::Not(Box::new((*m).into())),
            ResponseMatch::Status { min, max } => Match::Status(api::HttpStatusRange {
                min: u32::from(min),
                max: u32::from(max),
            }),
        };
        Self { r#match: Some(m) }
    }
}

impl From<ResponseClass> for api::ResponseClass {
    fn from(rc: ResponseClass) -> Self {
        Self {
            condition: Some(rc.condition.into()),
            is_failure: rc.is_failure,
        }
    }
}

impl From<Route> for api::Route {
    fn from(route: Route) -> Self {
        Self {
            condition: Some(route.condition.into()),
            response_classes: route.response_classes.into_iter().map(Into::into).collect(),
            metrics_labels: HashMap::from([("route".to_string(), route.name)]),
            is_retryable: route.is_retryable,
            timeout: route.timeout.map(proto_duration),
        }
    }
}

impl From<RetryBudget> for api::RetryBudget {
    fn from(b: RetryBudget) -> Self {
        Self {
            retry_ratio: b.retry_ratio,
            min_retries_per_second: b.min_retries_per_second,
            ttl: Some(proto_duration(b.ttl)),
        }
    }
}

impl From<WeightedDst> for api::WeightedDst {
    fn from(d: WeightedDst) -> Self {
        Self {
            authority: d.authority,
            weight: d.weight,
            backend_ref: None,
        }
    }
}

impl From<Profile> for api::DestinationProfile {
    fn from(p: Profile) -> Self {
        Self {
            fully_qualified_name: p.fully_qualified_name,
            opaque_protocol: p.opaque_protocol,
            routes: p.routes.into_iter().map(Into::into).collect(),
            retry_budget: p.retry_budget.map(Into::into),
            dst_overrides: p.dst_overrides.into_iter().map(Into::into).collect(),
            endpoint: p.endpoint.map(Into::into),
            parent_ref: None,
            profile_ref: None,
        }
    }
}
