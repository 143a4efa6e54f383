//! Inbound policy: the Server policy for one port of a workload, as the policy server sends it.

mod proto;
#[cfg(test)]
mod tests;

use std::time::Duration;

use ipnet::IpNet;

use crate::{
    error::InvalidMessage,
    route::{Filter, RequestMatch, RouteKind, RouteRef},
};

/// Protocol-detection timeout of default and `unknown` servers.
pub const DEFAULT_DETECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Names an object in labels and metadata.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Meta {
    /// A built-in default, e.g. `all-unauthenticated`.
    Default(String),
    /// A resource: group, lowercase kind, name.
    Resource {
        /// API group.
        group: String,
        /// Kind, lowercase.
        kind: String,
        /// Name.
        name: String,
    },
}

impl Meta {
    /// The `group` label: empty for defaults.
    pub fn group(&self) -> &str {
        match self {
            Meta::Default(_) => "",
            Meta::Resource { group, .. } => group,
        }
    }

    /// The `kind` label: `default` for defaults.
    pub fn kind(&self) -> &str {
        match self {
            Meta::Default(_) => "default",
            Meta::Resource { kind, .. } => kind,
        }
    }

    /// The `name` label.
    pub fn name(&self) -> &str {
        match self {
            Meta::Default(name) | Meta::Resource { name, .. } => name,
        }
    }
}

/// How the proxy handles a port's traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Detect HTTP within `timeout`, else opaque.
    Detect {
        /// Detection timeout.
        timeout: Duration,
    },
    /// Opaque TCP.
    Opaque,
    /// TLS passed through.
    Tls,
    /// HTTP/1.
    Http1,
    /// HTTP/2.
    Http2,
    /// gRPC.
    Grpc,
}

/// Which clients an authorization admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAuthentication {
    /// Any client, TLS or not.
    Unauthenticated,
    /// Any TLS client, with or without identity.
    TlsUnauthenticated,
    /// Clients with one of these identities, or an identity with one of these suffixes
    /// (labels; an empty suffix matches every identity).
    MeshTls {
        /// Exact identity names.
        identities: Vec<String>,
        /// Identity suffixes, as label lists.
        suffixes: Vec<Vec<String>>,
    },
}

/// A client network, minus exceptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// The network.
    pub net: IpNet,
    /// Networks inside it that are excluded.
    pub except: Vec<IpNet>,
}

impl Network {
    /// Every IPv4 and IPv6 address.
    pub fn all() -> Vec<Network> {
        ["0.0.0.0/0", "::/0"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .map(|net| Network {
                net,
                except: Vec::new(),
            })
            .collect()
    }
}

/// One authorization of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// Who grants it (a policy or a default).
    pub meta: Meta,
    /// Client networks (never empty).
    pub networks: Vec<Network>,
    /// Client authentication.
    pub authentication: ClientAuthentication,
}

/// The policy of one inbound port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPolicy {
    /// The Server, or the default policy, that governs the port.
    pub meta: Meta,
    /// Protocol handling.
    pub protocol: Protocol,
    /// Authorizations of the whole server (with no route's either: deny all).
    pub authorizations: Vec<Authorization>,
    /// HTTP or gRPC routes attached to the server; a request that matches none is refused
    /// with 404. Empty: one catch-all route with no authorizations of its own.
    pub routes: Vec<InboundRoute>,
}

/// An inbound route (an `HTTPRoute` or `GRPCRoute` whose parent is a Server): its requests
/// are admitted by its own authorizations as well as the server's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundRoute {
    /// The route object.
    pub meta: RouteRef,
    /// HTTP or gRPC.
    pub kind: RouteKind,
    /// Hosts it applies to (`*.suffix` for a wildcard); empty: every host.
    pub hosts: Vec<String>,
    /// Rules; a request matching any rule is on this route.
    pub rules: Vec<InboundRule>,
    /// Authorizations that target the route.
    pub authorizations: Vec<Authorization>,
}

/// One rule of an inbound route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InboundRule {
    /// The rule applies when any match holds; empty: every request.
    pub matches: Vec<RequestMatch>,
    /// Request-header edits and redirects.
    pub filters: Vec<Filter>,
}

/// A default inbound policy name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DefaultPolicy {
    /// All networks, no authentication.
    AllUnauthenticated,
    /// All networks, mesh identity required.
    AllAuthenticated,
    /// Cluster networks, no authentication.
    ClusterUnauthenticated,
    /// Cluster networks, mesh identity required.
    ClusterAuthenticated,
    /// Nothing allowed.
    Deny,
    /// Everything allowed, recorded as audit.
    Audit,
}

impl DefaultPolicy {
    /// Every default policy.
    pub const ALL: [Self; 6] = [
        Self::AllUnauthenticated,
        Self::AllAuthenticated,
        Self::ClusterUnauthenticated,
        Self::ClusterAuthenticated,
        Self::Deny,
        Self::Audit,
    ];

    /// Parses the annotation / flag spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "all-unauthenticated" => Self::AllUnauthenticated,
            "all-authenticated" => Self::AllAuthenticated,
            "cluster-unauthenticated" => Self::ClusterUnauthenticated,
            "cluster-authenticated" => Self::ClusterAuthenticated,
            "deny" => Self::Deny,
            "audit" => Self::Audit,
            _ => return None,
        })
    }

    /// The annotation / flag spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllUnauthenticated => "all-unauthenticated",
            Self::AllAuthenticated => "all-authenticated",
            Self::ClusterUnauthenticated => "cluster-unauthenticated",
            Self::ClusterAuthenticated => "cluster-authenticated",
            Self::Deny => "deny",
            Self::Audit => "audit",
        }
    }

    /// The authorizations this default grants, given the cluster networks.
    pub fn authorizations(self, cluster_networks: &[IpNet]) -> Vec<Authorization> {
        let meta = Meta::Default(self.as_str().to_string());
        let cluster = || {
            cluster_networks
                .iter()
                .map(|net| Network {
                    net: *net,
                    except: Vec::new(),
                })
                .collect()
        };
        let any_identity = || ClientAuthentication::MeshTls {
            identities: Vec::new(),
            suffixes: vec![Vec::new()],
        };
        let (networks, authentication) = match self {
            Self::Deny => return Vec::new(),
            Self::AllUnauthenticated | Self::Audit => {
                (Network::all(), ClientAuthentication::Unauthenticated)
            }
            Self::AllAuthenticated => (Network::all(), any_identity()),
            Self::ClusterUnauthenticated => (cluster(), ClientAuthentication::Unauthenticated),
            Self::ClusterAuthenticated => (cluster(), any_identity()),
        };
        vec![Authorization {
            meta,
            networks,
            authentication,
        }]
    }

    /// The policy of a port with no Server: this default's authorizations, `detect` or opaque.
    pub fn server(self, cluster_networks: &[IpNet], opaque: bool) -> ServerPolicy {
        ServerPolicy {
            meta: Meta::Default(self.as_str().to_string()),
            protocol: if opaque {
                Protocol::Opaque
            } else {
                Protocol::Detect {
                    timeout: DEFAULT_DETECT_TIMEOUT,
                }
            },
            authorizations: self.authorizations(cluster_networks),
            routes: Vec::new(),
        }
    }
}

/// The workload a `PortSpec` or `TrafficSpec` names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Workload {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
}

impl Workload {
    /// Parses `{"ns":"<ns>","pod":"<pod>"}` or the legacy `ns:pod`.
    pub fn parse(s: &str) -> Result<Self, InvalidMessage> {
        let bad =
            || InvalidMessage::new("workload", format!("{s:?} is not {{\"ns\":..,\"pod\":..}}"));
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(s) {
            let field = |k: &str| {
                map.get(k)
                    .and_then(|v| v.as_str())
                    .filter(|v| !v.is_empty())
            };
            return match (field("ns"), field("pod")) {
                (Some(ns), Some(pod)) => Ok(Self {
                    namespace: ns.to_string(),
                    pod: pod.to_string(),
                }),
                _ => Err(bad()),
            };
        }
        match s.split_once(':') {
            Some((ns, pod)) if !ns.is_empty() && !pod.is_empty() && !pod.contains(':') => {
                Ok(Self {
                    namespace: ns.to_string(),
                    pod: pod.to_string(),
                })
            }
            _ => Err(bad()),
        }
    }
}

/// A validated `PortSpec`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortSpec {
    /// The workload.
    pub workload: Workload,
    /// The port (1..=65535).
    pub port: u16,
}
