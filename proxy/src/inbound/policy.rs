//! Inbound policy: decides per connection whether a peer may reach a server.
//!
//! Policies arrive from the policy controller's `WatchPort` as wire `Server` messages and are
//! converted here into [`ServerPolicy`]; a message that breaks the contract becomes a policy
//! that denies everything. Until the controller answers, each port runs on the configured
//! default policy.

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use ipnet::IpNet;
use trellis_api::linkerd2_proxy_api::inbound as wire;

use crate::app::config::DefaultPolicy;

/// Detect timeout of the synthesised default policies.
pub const DEFAULT_POLICY_DETECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a server speaks, as policy says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerProtocol {
    /// Detect the protocol, giving up after `timeout`.
    Detect {
        /// Detection timeout.
        timeout: Duration,
    },
    /// Opaque TCP: no detection.
    Opaque,
    /// TLS that is not terminated.
    Tls,
    /// HTTP/1.
    Http1,
    /// HTTP/2.
    Http2,
    /// gRPC.
    Grpc,
}

/// How a client must authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// Anyone, with or without TLS.
    Unauthenticated,
    /// Any TLS client, with or without identity.
    TlsUnauthenticated,
    /// A meshed client whose identity is listed or ends with one of the suffixes.
    TlsIdentities {
        /// Exact identities.
        identities: Vec<String>,
        /// Suffixes as label lists; an empty list matches any identity.
        suffixes: Vec<Vec<String>>,
    },
}

/// One authorization: which networks, which clients, and its metric labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// Client networks, each with its exceptions.
    pub networks: Vec<(IpNet, Vec<IpNet>)>,
    /// Required authentication.
    pub authentication: Authentication,
    /// `group`, `kind`, `name` for the `authz_*` labels.
    pub labels: BTreeMap<String, String>,
}

/// The policy of one inbound port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPolicy {
    /// Protocol.
    pub protocol: ServerProtocol,
    /// Authorizations; none means deny.
    pub authorizations: Vec<Authorization>,
    /// `group`, `kind`, `name` for the `srv_*` labels.
    pub labels: BTreeMap<String, String>,
}

/// The TLS state of an inbound connection, as policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientTls {
    /// No TLS terminated by this proxy.
    None,
    /// mTLS terminated; the client's identity if it presented a certificate.
    Established(Option<String>),
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("unauthorized connection from {client_ip} to server {server}")]
pub struct Unauthorized {
    /// The client's IP.
    pub client_ip: IpAddr,
    /// The server's name label.
    pub server: String,
}

fn all_networks() -> Vec<(IpNet, Vec<IpNet>)> {
    ["0.0.0.0/0", "::/0"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .map(|n| (n, Vec::new()))
        .collect()
}

fn labels(group: &str, kind: &str, name: &str) -> BTreeMap<String, String> {
    [("group", group), ("kind", kind), ("name", name)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl ServerPolicy {
    /// The configured default policy (`cluster` networks for the `cluster-*` defaults).
    pub fn default_for(default: DefaultPolicy, cluster: &[IpNet]) -> Self {
        let any_identity = Authentication::TlsIdentities {
            identities: Vec::new(),
            suffixes: vec![Vec::new()],
        };
        let cluster: Vec<_> = cluster.iter().map(|n| (*n, Vec::new())).collect();
        let authz = |networks, authentication| {
            vec![Authorization {
                networks,
                authentication,
                labels: labels("", "default", default.name()),
            }]
        };
        let authorizations = match default {
            DefaultPolicy::AllUnauthenticated | DefaultPolicy::Audit => {
                authz(all_networks(), Authentication::Unauthenticated)
            }
            DefaultPolicy::AllAuthenticated => authz(all_networks(), any_identity),
            DefaultPolicy::ClusterUnauthenticated => {
                authz(cluster, Authentication::Unauthenticated)
            }
            DefaultPolicy::ClusterAuthenticated => authz(cluster, any_identity),
            DefaultPolicy::Deny => Vec::new(),
        };
        Self {
            protocol: ServerProtocol::Detect {
                timeout: DEFAULT_POLICY_DETECT_TIMEOUT,
            },
            authorizations,
            labels: labels("", "default", default.name()),
        }
    }

    /// The same policy, detecting with `timeout` (the configured inbound detect timeout).
    pub fn with_detect_timeout(mut self, timeout: Duration) -> Self {
        if let ServerProtocol::Detect { timeout: t } = &mut self.protocol {
            *t = timeout;
        }
        self
    }

    /// A policy that denies everything, installed when the controller sends an invalid one.
    pub fn invalid() -> Self {
        Self {
            protocol: ServerProtocol::Opaque,
            authorizations: Vec::new(),
            labels: labels("", "default", "invalid"),
        }
    }

    /// The server's `name` label.
    pub fn name(&self) -> &str {
        self.labels.get("name").map(String::as_str).unwrap_or("")
    }

    /// The authorization that admits this client, if any. `127.0.0.1` and `::1` are always
    /// admitted (the implicit localhost authorization), with no authorization to label.
    pub fn authorize(
        &self,
        client_ip: IpAddr,
        tls: &ClientTls,
    ) -> Result<Option<&Authorization>, Unauthorized> {
        if client_ip == IpAddr::from([127, 0, 0, 1])
            || client_ip == IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
        {
            return Ok(None);
        }
        self.authorizations
            .iter()
            .find(|a| a.admits(client_ip, tls))
            .map(Some)
            .ok_or_else(|| Unauthorized {
                client_ip,
                server: self.name().to_string(),
            })
    }
}

impl Authorization {
    fn admits(&self, client_ip: IpAddr, tls: &ClientTls) -> bool {
        let in_network = self.networks.iter().any(|(net, except)| {
            net.contains(&client_ip) && !except.iter().any(|e| e.contains(&client_ip))
        });
        in_network && self.authentication.admits(tls)
    }
}

impl Authentication {
    fn admits(&self, tls: &ClientTls) -> bool {
        match (self, tls) {
            (Self::Unauthenticated, _) => true,
            (Self::TlsUnauthenticated, ClientTls::Established(_)) => true,
            (
                Self::TlsIdentities {
                    identities,
                    suffixes,
                },
                ClientTls::Established(Some(id)),
            ) => {
                identities.iter().any(|i| i == id)
                    || suffixes.iter().any(|parts| suffix_matches(parts, id))
            }
            _ => false,
        }
    }
}

fn suffix_matches(parts: &[String], id: &str) -> bool {
    if parts.is_empty() {
        return true;
    }
    let labels: Vec<&str> = id.split('.').collect();
    labels.len() >= parts.len()
        && labels
            .iter()
            .rev()
            .zip(parts.iter().rev())
            .all(|(l, p)| *l == p)
}

/// A `Server` message that breaks the contract, and which field.
#[derive(Debug, thiserror::Error)]
#[error("invalid inbound policy: {field}: {reason}")]
pub struct InvalidServer {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidServer {
    InvalidServer {
        field,
        reason: reason.into(),
    }
}

fn wire_authz(authz: wire::Authz) -> Result<Authorization, InvalidServer> {
    use wire::authn::{Permit, permit_mesh_tls::Clients};
    if authz.networks.is_empty() {
        return Err(invalid("authorizations.networks", "empty"));
    }
    let net = |n: trellis_api::linkerd2_proxy_api::net::IpNetwork| {
        IpNet::try_from(n).map_err(|e| invalid("authorizations.networks", e.to_string()))
    };
    let mut networks = Vec::new();
    for n in authz.networks {
        let Some(main) = n.net else {
            return Err(invalid("authorizations.networks.net", "missing"));
        };
        let except = n.except.into_iter().map(net).collect::<Result<_, _>>()?;
        networks.push((net(main)?, except));
    }
    let permit = authz
        .authentication
        .and_then(|a| a.permit)
        .ok_or_else(|| invalid("authorizations.authentication", "missing"))?;
    let authentication = match permit {
        Permit::Unauthenticated(_) => Authentication::Unauthenticated,
        Permit::MeshTls(mtls) => match mtls.clients {
            Some(Clients::Unauthenticated(_)) => Authentication::TlsUnauthenticated,
            Some(Clients::Identities(ids)) => Authentication::TlsIdentities {
                identities: ids.identities.into_iter().map(|i| i.name).collect(),
                suffixes: ids.suffixes.into_iter().map(|s| s.parts).collect(),
            },
            None => {
                return Err(invalid(
                    "authorizations.authentication.meshTLS.clients",
                    "missing",
                ));
            }
        },
    };
    let mut labels: BTreeMap<String, String> = authz.labels.into_iter().collect();
    if let Some(meta) = authz.metadata.and_then(|m| m.kind) {
        use trellis_api::linkerd2_proxy_api::meta::metadata::Kind;
        match meta {
            Kind::Default(name) => {
                labels.insert("kind".into(), "default".into());
                labels.insert("name".into(), name);
            }
            Kind::Resource(r) => {
                labels.insert("group".into(), r.group);
                labels.insert("kind".into(), r.kind);
                labels.insert("name".into(), r.name);
            }
        }
    }
    Ok(Authorization {
        networks,
        authentication,
        labels,
    })
}

impl TryFrom<wire::Server> for ServerPolicy {
    type Error = InvalidServer;

    fn try_from(server: wire::Server) -> Result<Self, InvalidServer> {
        use wire::proxy_protocol::Kind;
        let kind = server
            .protocol
            .and_then(|p| p.kind)
            .ok_or_else(|| invalid("protocol.kind", "missing"))?;
        let protocol = match kind {
            Kind::Detect(d) => {
                let timeout = d
                    .timeout
                    .ok_or_else(|| invalid("protocol.detect.timeout", "missing"))?;
                let timeout = Duration::try_from(timeout)
                    .map_err(|e| invalid("protocol.detect.timeout", e.to_string()))?;
                ServerProtocol::Detect { timeout }
            }
            Kind::Opaque(_) => ServerProtocol::Opaque,
            Kind::Tls(_) => ServerProtocol::Tls,
            Kind::Http1(_) => ServerProtocol::Http1,
            Kind::Http2(_) => ServerProtocol::Http2,
            Kind::Grpc(_) => ServerProtocol::Grpc,
        };
        let labels: BTreeMap<String, String> = server.labels.into_iter().collect();
        if !labels.contains_key("name") {
            return Err(invalid("labels", "must contain name"));
        }
        let authorizations = server
            .authorizations
            .into_iter()
            .map(wire_authz)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            protocol,
            authorizations,
            labels,
        })
    }
}

#[cfg(test)]
mod tests;
