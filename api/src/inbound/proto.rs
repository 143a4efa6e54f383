//! Conversions between inbound domain types and `linkerd2_proxy_api::inbound` messages.

use std::collections::HashMap;

use linkerd2_proxy_api::{http_route, inbound as api, meta, net};

use super::{
    Authorization, ClientAuthentication, Meta, Network, PortSpec, Protocol, ServerPolicy, Workload,
};
use crate::error::InvalidMessage;

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

fn default_http_route() -> api::HttpRoute {
    api::HttpRoute {
        metadata: Some(Meta::Default("default".into()).into()),
        hosts: Vec::new(),
        authorizations: Vec::new(),
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

fn default_grpc_route() -> api::GrpcRoute {
    api::GrpcRoute {
        metadata: Some(Meta::Default("default".into()).into()),
        hosts: Vec::new(),
        authorizations: Vec::new(),
        rules: vec![api::grpc_route::Rule {
            matches: vec![linkerd2_proxy_api::grpc_route::GrpcRouteMatch::default()],
            filters: Vec::new(),
        }],
    }
}

impl From<Protocol> for api::ProxyProtocol {
    fn from(p: Protocol) -> Self {
        use api::proxy_protocol::{Detect, Grpc, Http1, Http2, Kind, Opaque, Tls};
        let kind = match p {
            Protocol::Detect { timeout } => Kind::Detect(Detect {
                timeout: prost_types::Duration::try_from(timeout).ok(),
                http_routes: vec![default_http_route()],
                http_local_rate_limit: None,
            }),
            Protocol::Opaque => Kind::Opaque(Opaque {}),
            Protocol::Tls => Kind::Tls(Tls {}),
            Protocol::Http1 => Kind::Http1(Http1 {
                routes: vec![default_http_route()],
                local_rate_limit: None,
            }),
            Protocol::Http2 => Kind::Http2(Http2 {
                routes: vec![default_http_route()],
                local_rate_limit: None,
            }),
            Protocol::Grpc => Kind::Grpc(Grpc {
                routes: vec![default_grpc_route()],
            }),
        };
        Self { kind: Some(kind) }
    }
}

impl From<ServerPolicy> for api::Server {
    fn from(s: ServerPolicy) -> Self {
        Self {
            protocol: Some(s.protocol.into()),
            server_ips: Vec::new(),
            authorizations: s.authorizations.into_iter().map(Into::into).collect(),
            labels: s.meta.labels(),
        }
    }
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
        Ok(ServerPolicy {
            meta: Meta::from_labels(&server.labels)?,
            protocol: server
                .protocol
                .ok_or_else(|| InvalidMessage::new("protocol.kind", "missing"))?
                .try_into()?,
            authorizations: server
                .authorizations
                .into_iter()
                .map(Authorization::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}
