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

    /// The endpoint's identity is the name its TLS is dialled and checked with: the
    /// DNS-like identity, or for a URI identity its (required) `server_name`.
    /// An `opaque_transport` port outside `1..=65534` is ignored, as Linkerd's proxy does.
    fn try_from(wa: api::WeightedAddr) -> Result<Self, Self::Error> {
        let addr = tcp_addr(wa.addr, "addr")?;
        let identity = wa.tls_identity.map(tls_name).transpose()?.flatten();
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
                    .and_then(|t| u16::try_from(t.inbound_port).ok())
                    .filter(|p| *p != 0 && *p != u16::MAX);
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

/// The name TLS to an endpoint uses; `None` when the identity names nothing.
fn tls_name(id: api::TlsIdentity) -> Result<Option<String>, InvalidMessage> {
    let server_name = id.server_name.map(|n| n.name).filter(|n| !n.is_empty());
    let name = match id.strategy {
        Some(api::tls_identity::Strategy::DnsLikeIdentity(d)) => Some(d.name),
        Some(api::tls_identity::Strategy::UriLikeIdentity(_)) => {
            Some(server_name.ok_or_else(|| {
                InvalidMessage::new("tls_identity.server_name", "required with a URI identity")
            })?)
        }
        None => None,
    };
    Ok(name.filter(|n| !n.is_empty()))
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

    /// Addresses that cannot be used are skipped, so one bad endpoint does not hide the
    /// others (as Linkerd's proxy does).
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
                    .filter_map(|a| Endpoint::try_from(a).ok())
                    .collect(),
            }),
            api::update::Update::Remove(set) => Ok(Self::Remove(
                set.addrs
                    .into_iter()
                    .filter_map(|a| tcp_addr(Some(a), "remove.addrs").ok())
                    .collect(),
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

/// What a proxy takes from a profile. The name loses its trailing dot; routes, budgets and
/// an endpoint that break the contract are left out (the rest of the profile still applies).
impl From<api::DestinationProfile> for Profile {
    fn from(p: api::DestinationProfile) -> Self {
        Self {
            fully_qualified_name: p.fully_qualified_name.trim_end_matches('.').to_string(),
            opaque_protocol: p.opaque_protocol,
            routes: p
                .routes
                .into_iter()
                .filter_map(|r| Route::try_from(r).ok())
                .collect(),
            retry_budget: p.retry_budget.and_then(|b| RetryBudget::try_from(b).ok()),
            dst_overrides: p
                .dst_overrides
                .into_iter()
                .map(|d| WeightedDst {
                    authority: d.authority,
                    weight: d.weight,
                })
                .collect(),
            endpoint: p.endpoint.and_then(|e| Endpoint::try_from(e).ok()),
        }
    }
}

fn std_duration(d: prost_types::Duration, field: &'static str) -> Result<Duration, InvalidMessage> {
    Duration::try_from(d).map_err(|e| InvalidMessage::new(field, e.to_string()))
}

impl TryFrom<api::RetryBudget> for RetryBudget {
    type Error = InvalidMessage;

    fn try_from(b: api::RetryBudget) -> Result<Self, Self::Error> {
        let ttl = b
            .ttl
            .ok_or_else(|| InvalidMessage::missing("retry_budget.ttl"))?;
        Ok(Self {
            retry_ratio: b.retry_ratio,
            min_retries_per_second: b.min_retries_per_second,
            ttl: std_duration(ttl, "retry_budget.ttl")?,
        })
    }
}

impl TryFrom<api::Route> for Route {
    type Error = InvalidMessage;

    fn try_from(r: api::Route) -> Result<Self, Self::Error> {
        let condition = r
            .condition
            .ok_or_else(|| InvalidMessage::missing("route.condition"))?;
        Ok(Self {
            name: r.metrics_labels.get("route").cloned().unwrap_or_default(),
            condition: RequestMatch::try_from(condition)?,
            response_classes: r
                .response_classes
                .into_iter()
                .map(ResponseClass::try_from)
                .collect::<Result<_, _>>()?,
            is_retryable: r.is_retryable,
            timeout: r
                .timeout
                .map(|t| std_duration(t, "route.timeout"))
                .transpose()?,
        })
    }
}

impl TryFrom<api::RequestMatch> for RequestMatch {
    type Error = InvalidMessage;

    fn try_from(m: api::RequestMatch) -> Result<Self, Self::Error> {
        use api::request_match::Match;
        let seq = |s: api::request_match::Seq| {
            s.matches
                .into_iter()
                .map(Self::try_from)
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(
            match m
                .r#match
                .ok_or_else(|| InvalidMessage::missing("route.condition"))?
            {
                Match::All(s) => Self::All(seq(s)?),
                Match::Any(s) => Self::Any(seq(s)?),
                Match::Not(m) => Self::Not(Box::new(Self::try_from(*m)?)),
                Match::Path(p) => Self::Path(p.regex),
                Match::Method(m) => {
                    Self::Method(http::Method::try_from(m).map_err(|e| {
                        InvalidMessage::new("route.condition.method", e.to_string())
                    })?)
                }
            },
        )
    }
}

impl TryFrom<api::ResponseClass> for ResponseClass {
    type Error = InvalidMessage;

    fn try_from(rc: api::ResponseClass) -> Result<Self, Self::Error> {
        let condition = rc
            .condition
            .ok_or_else(|| InvalidMessage::missing("response_class.condition"))?;
        Ok(Self {
            condition: ResponseMatch::try_from(condition)?,
            is_failure: rc.is_failure,
        })
    }
}

impl TryFrom<api::ResponseMatch> for ResponseMatch {
    type Error = InvalidMessage;

    fn try_from(m: api::ResponseMatch) -> Result<Self, Self::Error> {
        use api::response_match::Match;
        let seq = |s: api::response_match::Seq| {
            s.matches
                .into_iter()
                .map(Self::try_from)
                .collect::<Result<Vec<_>, _>>()
        };
        let status = |v: u32| {
            u16::try_from(v)
                .map_err(|_| InvalidMessage::new("response_class.condition.status", "above 65535"))
        };
        Ok(
            match m
                .r#match
                .ok_or_else(|| InvalidMessage::missing("response_class.condition"))?
            {
                Match::All(s) => Self::All(seq(s)?),
                Match::Any(s) => Self::Any(seq(s)?),
                Match::Not(m) => Self::Not(Box::new(Self::try_from(*m)?)),
                Match::Status(r) => Self::Status {
                    min: status(r.min)?,
                    max: status(r.max)?,
                },
            },
        )
    }
}
