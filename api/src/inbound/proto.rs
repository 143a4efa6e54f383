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
        let (group, kind, name) = match self {
            Meta::Default(name) => (String::new(), "default".to_string(), name.clone()),
            Meta::Resource { group, kind, name } => (group.clone(), kind.clone(), name.clone()),
        };
        HashMap::from([
            ("group".to_string(), group),
            ("kind".to_string(), kind),
            ("name".to_string(), name),
        ])
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
