//! Conversions between inbound domain types and `linkerd2_proxy_api::inbound` messages.

use std::collections::HashMap;

use linkerd2_proxy_api::{http_route, inbound as api, meta, net};

use super::{
    Authorization, ClientAuthentication, InboundRoute, InboundRule, Meta, Network, PortSpec,
    Protocol, ServerPolicy, Workload,
};
use crate::{
    error::InvalidMessage,
    route::{Filter, RouteKind, RouteRef, proto as route_proto},
};

impl TryFrom<api::PortSpec> for PortSpec {
    type Error = InvalidMessage;

    fn try_from(spec: api::PortSpec) -> Result<Self, Self::Error> {
        let port = u16::try_from(spec.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                InvalidMessage::new("port", format!("{} is not in 1..=65535", spec.port))
            })?;
        Ok(Self {
            workload: Workload::parse(&spec.workload)?,
            port,
        })
    }
}

impl Meta {
    fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            ("group".to_string(), self.group().to_string()),
            ("kind".to_string(), self.kind().to_string()),
            ("name".to_string(), self.name().to_string()),
        ])
    }

    /// Reads the `group`/`kind`/`name` labels of a `Server` (kind `default` is a default).
    fn from_labels(labels: &HashMap<String, String>) -> Result<Self, InvalidMessage> {
        let name = labels
            .get("name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| InvalidMessage::new("labels", "must contain name"))?
            .clone();
        let kind = labels.get("kind").cloned().unwrap_or_default();
        Ok(if kind == "default" {
            Meta::Default(name)
        } else {
            Meta::Resource {
                group: labels.get("group").cloned().unwrap_or_default(),
                kind,
                name,
            }
        })
    }
}

impl TryFrom<meta::Metadata> for Meta {
    type Error = InvalidMessage;

    fn try_from(m: meta::Metadata) -> Result<Self, Self::Error> {
        match m.kind {
            Some(meta::metadata::Kind::Default(name)) => Ok(Meta::Default(name)),
            Some(meta::metadata::Kind::Resource(r)) => Ok(Meta::Resource {
                group: r.group,
                kind: r.kind,
                name: r.name,
            }),
            None => Err(InvalidMessage::new("metadata.kind", "missing")),
        }
    }
}

impl From<Meta> for meta::Metadata {
    fn from(m: Meta) -> Self {
        let kind = match m {
            Meta::Default(name) => meta::metadata::Kind::Default(name),
            Meta::Resource { group, kind, name } => {
                meta::metadata::Kind::Resource(meta::Resource {
                    group,
                    kind,
                    name,
                    ..meta::Resource::default()
                })
            }
        };
        Self { kind: Some(kind) }
    }
}

impl From<Network> for api::Network {
    fn from(n: Network) -> Self {
        Self {
            net: Some(net::IpNetwork::from(n.net)),
            except: n.except.into_iter().map(net::IpNetwork::from).collect(),
        }
    }
}

impl From<ClientAuthentication> for api::Authn {
    fn from(a: ClientAuthentication) -> Self {
        use api::authn::{Permit, PermitMeshTls, PermitUnauthenticated, permit_mesh_tls};
        let permit = match a {
            ClientAuthentication::Unauthenticated => {
                Permit::Unauthenticated(PermitUnauthenticated {})
            }
            ClientAuthentication::TlsUnauthenticated => Permit::MeshTls(PermitMeshTls {
                clients: Some(permit_mesh_tls::Clients::Unauthenticated(
                    PermitUnauthenticated {},
                )),
            }),
            ClientAuthentication::MeshTls {
                identities,
                suffixes,
            } => Permit::MeshTls(PermitMeshTls {
                clients: Some(permit_mesh_tls::Clients::Identities(
                    permit_mesh_tls::PermitClientIdentities {
                        identities: identities
                            .into_iter()
                            .map(|name| api::Identity { name })
                            .collect(),
                        suffixes: suffixes
                            .into_iter()
                            .map(|parts| api::IdentitySuffix { parts })
                            .collect(),
                    },
                )),
            }),
        };
        Self {
            permit: Some(permit),
        }
    }
}

impl From<Authorization> for api::Authz {
    fn from(a: Authorization) -> Self {
        Self {
            labels: a.meta.labels(),
            metadata: Some(a.meta.into()),
            networks: a.networks.into_iter().map(Into::into).collect(),
            authentication: Some(a.authentication.into()),
        }
    }
}

/// The authorizations a route carries on the wire: the server's, which apply to every route
/// (Linkerd's proxy checks only a route's list), then the route's own.
fn route_authz(server: &[Authorization], own: &[Authorization]) -> Vec<api::Authz> {
    server
        .iter()
        .chain(own.iter().filter(|a| !server.contains(a)))
        .cloned()
        .map(Into::into)
        .collect()
}

fn default_http_route(server: &[Authorization]) -> api::HttpRoute {
    api::HttpRoute {
        metadata: Some(Meta::Default("default".into()).into()),
        hosts: Vec::new(),
        authorizations: route_authz(server, &[]),
        rules: vec![api::http_route::Rule {
            matches: vec![http_route::HttpRouteMatch {
                path: Some(http_route::PathMatch {
                    kind: Some(http_route::path_match::Kind::Prefix("/".into())),
                }),
                ..http_route::HttpRouteMatch::default()
            }],
            filters: Vec::new(),
        }],
    }
}

fn default_grpc_route(server: &[Authorization]) -> api::GrpcRoute {
    api::GrpcRoute {
        metadata: Some(Meta::Default("default".into()).into()),
        hosts: Vec::new(),
        authorizations: route_authz(server, &[]),
        rules: vec![api::grpc_route::Rule {
            matches: vec![linkerd2_proxy_api::grpc_route::GrpcRouteMatch::default()],
            filters: Vec::new(),
        }],
    }
}

fn http_route_to(r: &InboundRoute, server: &[Authorization]) -> api::HttpRoute {
    use api::http_route::{Filter as F, Rule, filter::Kind};
    api::HttpRoute {
        metadata: Some((&r.meta).into()),
        hosts: r.hosts.iter().map(|h| route_proto::host_to(h)).collect(),
        authorizations: route_authz(server, &r.authorizations),
        rules: r
            .rules
            .iter()
            .map(|rule| Rule {
                matches: rule
                    .matches
                    .iter()
                    .map(route_proto::http_match_to)
                    .collect(),
                filters: rule
                    .filters
                    .iter()
                    .filter_map(|f| match f {
                        Filter::RequestHeaders(m) => Some(F {
                            kind: Some(Kind::RequestHeaderModifier(route_proto::request_modifier(
                                m,
                            ))),
                        }),
                        Filter::Redirect(r) => Some(F {
                            kind: Some(Kind::Redirect(route_proto::redirect_to(r))),
                        }),
                        Filter::ResponseHeaders(_) => None,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn grpc_route_to(r: &InboundRoute, server: &[Authorization]) -> api::GrpcRoute {
    use api::grpc_route::{Filter as F, Rule, filter::Kind};
    api::GrpcRoute {
        metadata: Some((&r.meta).into()),
        hosts: r.hosts.iter().map(|h| route_proto::host_to(h)).collect(),
        authorizations: route_authz(server, &r.authorizations),
        rules: r
            .rules
            .iter()
            .map(|rule| Rule {
                matches: rule
                    .matches
                    .iter()
                    .map(route_proto::grpc_match_to)
                    .collect(),
                filters: rule
                    .filters
                    .iter()
                    .filter_map(|f| match f {
                        Filter::RequestHeaders(m) => Some(F {
                            kind: Some(Kind::RequestHeaderModifier(route_proto::request_modifier(
                                m,
                            ))),
                        }),
                        Filter::Redirect(_) | Filter::ResponseHeaders(_) => None,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The wire protocol of `s`, carrying its routes (or the default catch-all route).
fn protocol_to(s: &ServerPolicy) -> api::ProxyProtocol {
    use api::proxy_protocol::{Detect, Grpc, Http1, Http2, Kind, Opaque, Tls};
    let http_routes = || {
        let routes: Vec<_> = s
            .routes
            .iter()
            .filter(|r| r.kind == RouteKind::Http)
            .map(|r| http_route_to(r, &s.authorizations))
            .collect();
        if routes.is_empty() {
            vec![default_http_route(&s.authorizations)]
        } else {
            routes
        }
    };
    let kind = match s.protocol {
        Protocol::Detect { timeout } => Kind::Detect(Detect {
            timeout: prost_types::Duration::try_from(timeout).ok(),
            http_routes: http_routes(),
            http_local_rate_limit: None,
        }),
        Protocol::Opaque => Kind::Opaque(Opaque {}),
        Protocol::Tls => Kind::Tls(Tls {}),
        Protocol::Http1 => Kind::Http1(Http1 {
            routes: http_routes(),
            local_rate_limit: None,
        }),
        Protocol::Http2 => Kind::Http2(Http2 {
            routes: http_routes(),
            local_rate_limit: None,
        }),
        Protocol::Grpc => {
            let routes: Vec<_> = s
                .routes
                .iter()
                .filter(|r| r.kind == RouteKind::Grpc)
                .map(|r| grpc_route_to(r, &s.authorizations))
                .collect();
            Kind::Grpc(Grpc {
                routes: if routes.is_empty() {
                    vec![default_grpc_route(&s.authorizations)]
                } else {
                    routes
                },
            })
        }
    };
    api::ProxyProtocol { kind: Some(kind) }
}

impl From<Protocol> for api::ProxyProtocol {
    fn from(p: Protocol) -> Self {
        protocol_to(&ServerPolicy {
            meta: Meta::Default(String::new()),
            protocol: p,
            authorizations: Vec::new(),
            routes: Vec::new(),
        })
    }
}

impl From<ServerPolicy> for api::Server {
    fn from(s: ServerPolicy) -> Self {
        Self {
            protocol: Some(protocol_to(&s)),
            server_ips: Vec::new(),
            authorizations: s.authorizations.into_iter().map(Into::into).collect(),
            labels: s.meta.labels(),
        }
    }
}

fn authorizations(list: Vec<api::Authz>) -> Result<Vec<Authorization>, InvalidMessage> {
    list.into_iter().map(Authorization::try_from).collect()
}

fn http_route_from(r: api::HttpRoute) -> Result<InboundRoute, InvalidMessage> {
    use api::http_route::filter::Kind;
    let rules = r
        .rules
        .into_iter()
        .map(|rule| {
            Ok(InboundRule {
                matches: rule
                    .matches
                    .into_iter()
                    .map(route_proto::http_match_from)
                    .collect::<Result<_, _>>()?,
                filters: rule
                    .filters
                    .into_iter()
                    .map(|f| match f.kind {
                        Some(Kind::RequestHeaderModifier(m)) => Ok(Filter::RequestHeaders(
                            route_proto::modifier(m.add, m.set, m.remove)?,
                        )),
                        Some(Kind::Redirect(r)) => {
                            Ok(Filter::Redirect(route_proto::redirect_from(r)?))
                        }
                        Some(Kind::FailureInjector(_)) => Err(InvalidMessage::new(
                            "routes.filter",
                            "failure injection is not supported",
                        )),
                        None => Err(InvalidMessage::missing("routes.filter.kind")),
                    })
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect::<Result<_, InvalidMessage>>()?;
    Ok(InboundRoute {
        meta: RouteRef::try_from(
            r.metadata
                .ok_or_else(|| InvalidMessage::missing("routes.metadata"))?,
        )?,
        kind: RouteKind::Http,
        hosts: r
            .hosts
            .into_iter()
            .map(route_proto::host_from)
            .collect::<Result<_, _>>()?,
        rules,
        authorizations: authorizations(r.authorizations)?,
    })
}

fn grpc_route_from(r: api::GrpcRoute) -> Result<InboundRoute, InvalidMessage> {
    use api::grpc_route::filter::Kind;
    let rules = r
        .rules
        .into_iter()
        .map(|rule| {
            Ok(InboundRule {
                matches: rule
                    .matches
                    .into_iter()
                    .map(route_proto::grpc_match_from)
                    .collect::<Result<_, _>>()?,
                filters: rule
                    .filters
                    .into_iter()
                    .map(|f| match f.kind {
                        Some(Kind::RequestHeaderModifier(m)) => Ok(Filter::RequestHeaders(
                            route_proto::modifier(m.add, m.set, m.remove)?,
                        )),
                        Some(Kind::FailureInjector(_)) => Err(InvalidMessage::new(
                            "routes.filter",
                            "failure injection is not supported",
                        )),
                        None => Err(InvalidMessage::missing("routes.filter.kind")),
                    })
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect::<Result<_, InvalidMessage>>()?;
    Ok(InboundRoute {
        meta: RouteRef::try_from(
            r.metadata
                .ok_or_else(|| InvalidMessage::missing("routes.metadata"))?,
        )?,
        kind: RouteKind::Grpc,
        hosts: r
            .hosts
            .into_iter()
            .map(route_proto::host_from)
            .collect::<Result<_, _>>()?,
        rules,
        authorizations: authorizations(r.authorizations)?,
    })
}

/// Whether `r` is the catch-all route a server with no routes carries.
fn is_default(r: &InboundRoute) -> bool {
    matches!(r.meta, RouteRef::Default(_))
        && r.authorizations.is_empty()
        && r.hosts.is_empty()
        && r.rules.iter().all(|rule| {
            rule.filters.is_empty()
                && rule.matches.iter().all(|m| {
                    m.headers.is_empty()
                        && m.query.is_empty()
                        && m.method.is_none()
                        && m.rpc
                            .as_ref()
                            .is_none_or(|r| r.service.is_none() && r.method.is_none())
                        && m.path
                            .as_ref()
                            .is_none_or(|p| *p == crate::route::PathMatch::Prefix("/".into()))
                })
        })
}

/// The routes of a wire protocol, each without the server's authorizations (which every
/// route carries on the wire); the lone default route reads as none.
fn routes_from(
    p: &api::ProxyProtocol,
    server: &[Authorization],
) -> Result<Vec<InboundRoute>, InvalidMessage> {
    use api::proxy_protocol::Kind;
    let routes: Vec<InboundRoute> = match &p.kind {
        Some(Kind::Detect(d)) => d
            .http_routes
            .iter()
            .cloned()
            .map(http_route_from)
            .collect::<Result<_, _>>()?,
        Some(Kind::Http1(h)) => h
            .routes
            .iter()
            .cloned()
            .map(http_route_from)
            .collect::<Result<_, _>>()?,
        Some(Kind::Http2(h)) => h
            .routes
            .iter()
            .cloned()
            .map(http_route_from)
            .collect::<Result<_, _>>()?,
        Some(Kind::Grpc(g)) => g
            .routes
            .iter()
            .cloned()
            .map(grpc_route_from)
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    let routes: Vec<InboundRoute> = routes
        .into_iter()
        .map(|mut r| {
            r.authorizations.retain(|a| !server.contains(a));
            r
        })
        .collect();
    if routes.len() == 1 && is_default(&routes[0]) {
        return Ok(Vec::new());
    }
    Ok(routes)
}

impl TryFrom<api::ProxyProtocol> for Protocol {
    type Error = InvalidMessage;

    fn try_from(p: api::ProxyProtocol) -> Result<Self, Self::Error> {
        use api::proxy_protocol::Kind;
        Ok(
            match p
                .kind
                .ok_or_else(|| InvalidMessage::new("protocol.kind", "missing"))?
            {
                Kind::Detect(d) => {
                    let timeout = d
                        .timeout
                        .ok_or_else(|| InvalidMessage::new("protocol.detect.timeout", "missing"))?;
                    let timeout = std::time::Duration::try_from(timeout).map_err(|e| {
                        InvalidMessage::new("protocol.detect.timeout", e.to_string())
                    })?;
                    Protocol::Detect { timeout }
                }
                Kind::Opaque(_) => Protocol::Opaque,
                Kind::Tls(_) => Protocol::Tls,
                Kind::Http1(_) => Protocol::Http1,
                Kind::Http2(_) => Protocol::Http2,
                Kind::Grpc(_) => Protocol::Grpc,
            },
        )
    }
}

impl TryFrom<api::Network> for Network {
    type Error = InvalidMessage;

    fn try_from(n: api::Network) -> Result<Self, Self::Error> {
        let ip_net = |n: net::IpNetwork| {
            ipnet::IpNet::try_from(n)
                .map_err(|e| InvalidMessage::new("authorizations.networks", e.to_string()))
        };
        let main = n
            .net
            .ok_or_else(|| InvalidMessage::new("authorizations.networks.net", "missing"))?;
        Ok(Network {
            net: ip_net(main)?,
            except: n.except.into_iter().map(ip_net).collect::<Result<_, _>>()?,
        })
    }
}

impl TryFrom<api::Authn> for ClientAuthentication {
    type Error = InvalidMessage;

    fn try_from(a: api::Authn) -> Result<Self, Self::Error> {
        use api::authn::{Permit, permit_mesh_tls::Clients};
        let permit = a
            .permit
            .ok_or_else(|| InvalidMessage::new("authorizations.authentication", "missing"))?;
        Ok(match permit {
            Permit::Unauthenticated(_) => ClientAuthentication::Unauthenticated,
            Permit::MeshTls(mtls) => match mtls.clients {
                Some(Clients::Unauthenticated(_)) => ClientAuthentication::TlsUnauthenticated,
                Some(Clients::Identities(ids)) => ClientAuthentication::MeshTls {
                    identities: ids.identities.into_iter().map(|i| i.name).collect(),
                    suffixes: ids.suffixes.into_iter().map(|s| s.parts).collect(),
                },
                None => {
                    return Err(InvalidMessage::new(
                        "authorizations.authentication.meshTLS.clients",
                        "missing",
                    ));
                }
            },
        })
    }
}

impl TryFrom<api::Authz> for Authorization {
    type Error = InvalidMessage;

    fn try_from(authz: api::Authz) -> Result<Self, Self::Error> {
        if authz.networks.is_empty() {
            return Err(InvalidMessage::new("authorizations.networks", "empty"));
        }
        // `metadata` names the authorization; servers that send only the deprecated labels,
        // or neither, still get it enforced (unnamed in metrics).
        let meta = match authz.metadata {
            Some(m) => Meta::try_from(m)?,
            None => Meta::from_labels(&authz.labels).unwrap_or(Meta::Default(String::new())),
        };
        Ok(Authorization {
            meta,
            networks: authz
                .networks
                .into_iter()
                .map(Network::try_from)
                .collect::<Result<_, _>>()?,
            authentication: authz
                .authentication
                .ok_or_else(|| InvalidMessage::new("authorizations.authentication", "missing"))?
                .try_into()?,
        })
    }
}

impl TryFrom<api::Server> for ServerPolicy {
    type Error = InvalidMessage;

    fn try_from(server: api::Server) -> Result<Self, Self::Error> {
        let protocol = server
            .protocol
            .ok_or_else(|| InvalidMessage::new("protocol.kind", "missing"))?;
        let authorizations = server
            .authorizations
            .into_iter()
            .map(Authorization::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServerPolicy {
            meta: Meta::from_labels(&server.labels)?,
            routes: routes_from(&protocol, &authorizations)?,
            protocol: protocol.try_into()?,
            authorizations,
        })
    }
}
