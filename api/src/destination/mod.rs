//! Destination discovery: endpoints of a Service and its profile, as the control plane sends them.

mod proto;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use crate::{error::InvalidMessage, well_known};

pub use self::proto::parse_context_token;

/// Balancer weight of an ordinary endpoint.
pub const DEFAULT_WEIGHT: u32 = 10_000;

/// The port `Get` uses when a path names none.
pub const DEFAULT_PORT: u16 = 80;

/// What a `GetDestination.path` names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `<svc>.<ns>.svc.<cluster-domain>:<port>`.
    Service {
        /// Service namespace.
        namespace: String,
        /// Service name.
        name: String,
        /// Service port.
        port: u16,
    },
    /// `<hostname>.<svc>.<ns>.svc.<cluster-domain>:<port>`: one pod of a Service.
    Pod {
        /// Service namespace.
        namespace: String,
        /// Service name.
        service: String,
        /// The pod's hostname (or name).
        hostname: String,
        /// Service port.
        port: u16,
    },
    /// `ip:port`.
    Addr(SocketAddr),
}

impl Target {
    /// Parses a destination path, for a cluster whose DNS domain is `cluster_domain`.
    ///
    /// Names outside `*.svc.<cluster_domain>` and names with too many labels are rejected; IPs
    /// are accepted (callers that do not serve IPs reject [`Target::Addr`]).
    pub fn parse(path: &str, cluster_domain: &str) -> Result<Self, InvalidMessage> {
        if path.is_empty() {
            return Err(InvalidMessage::missing("path"));
        }
        if let Ok(addr) = path.parse::<SocketAddr>() {
            return Ok(Self::Addr(addr));
        }
        let (host, port) = match path.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| InvalidMessage::new("path", format!("bad port in {path:?}")))?;
                (host, port)
            }
            None => (path, DEFAULT_PORT),
        };
        let host = host.trim_end_matches('.');
        let suffix = format!(".svc.{}", cluster_domain.trim_end_matches('.'));
        let Some(prefix) = host.strip_suffix(&suffix) else {
            return Err(InvalidMessage::new(
                "path",
                format!("{path:?} is not a Service name under svc.{cluster_domain}"),
            ));
        };
        let labels: Vec<&str> = prefix.split('.').collect();
        if labels.iter().any(|l| !is_dns_label(l)) {
            return Err(InvalidMessage::new(
                "path",
                format!("{path:?} has a label that is not a DNS-1123 label"),
            ));
        }
        match labels.as_slice() {
            [name, namespace] => Ok(Self::Service {
                namespace: (*namespace).to_string(),
                name: (*name).to_string(),
                port,
            }),
            [hostname, service, namespace] => Ok(Self::Pod {
                namespace: (*namespace).to_string(),
                service: (*service).to_string(),
                hostname: (*hostname).to_string(),
                port,
            }),
            _ => Err(InvalidMessage::new(
                "path",
                format!("{path:?} must be <svc>.<ns>.svc.{cluster_domain}[:port]"),
            )),
        }
    }
}

/// Whether `s` is a DNS-1123 label (lowercase alphanumerics and `-`, at most 63 characters).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The client context a proxy sends with each lookup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The client's namespace.
    pub namespace: Option<String>,
    /// The client's node.
    pub node_name: Option<String>,
    /// The client's pod.
    pub pod: Option<String>,
}

/// How a proxy should speak to an endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProtocolHint {
    /// No hint: the proxy detects the protocol.
    #[default]
    Unknown,
    /// The peer proxy accepts HTTP/2; HTTP/1 may be upgraded.
    H2,
    /// Opaque TCP: the transport header names no protocol.
    Opaque,
}

/// One endpoint of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The endpoint's address.
    pub addr: SocketAddr,
    /// Balancer weight ([`DEFAULT_WEIGHT`] for ordinary endpoints).
    pub weight: u32,
    /// Metric labels (`pod`, `deployment`, `serviceaccount`, …).
    pub labels: BTreeMap<String, String>,
    /// The peer's identity name, when the pod is meshed.
    pub identity: Option<String>,
    /// Protocol hint.
    pub hint: ProtocolHint,
    /// Port for opaque transport (the peer's inbound port), when a transport header is used.
    pub opaque_transport_port: Option<u16>,
}

impl Endpoint {
    /// An unmeshed endpoint with no labels.
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            weight: DEFAULT_WEIGHT,
            labels: BTreeMap::new(),
            identity: None,
            hint: ProtocolHint::Unknown,
            opaque_transport_port: None,
        }
    }

    /// Marks this endpoint as meshed with `identity`: an `h2` hint, or opaque transport on the
    /// proxy's inbound port when `opaque`.
    pub fn meshed(mut self, identity: String, opaque: bool) -> Self {
        self.identity = Some(identity);
        if opaque {
            self.hint = ProtocolHint::Opaque;
            self.opaque_transport_port = Some(well_known::PROXY_INBOUND_PORT);
        } else {
            self.hint = ProtocolHint::H2;
        }
        self
    }
}

/// One message of a `Get` stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// Endpoints added (or changed); `set_labels` apply to each.
    Add {
        /// Labels common to the set (`namespace`, `service`).
        set_labels: BTreeMap<String, String>,
        /// The endpoints.
        endpoints: Vec<Endpoint>,
    },
    /// Endpoints removed.
    Remove(Vec<SocketAddr>),
    /// No endpoints; `exists` says whether the Service exists.
    NoEndpoints {
        /// Whether the Service exists.
        exists: bool,
    },
}

/// An HTTP request condition of a profile route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestMatch {
    /// Every condition holds.
    All(Vec<RequestMatch>),
    /// Any condition holds.
    Any(Vec<RequestMatch>),
    /// The condition does not hold.
    Not(Box<RequestMatch>),
    /// The path matches this regular expression.
    Path(String),
    /// The method is this one.
    Method(http::Method),
}

/// An HTTP response condition of a response class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseMatch {
    /// Every condition holds.
    All(Vec<ResponseMatch>),
    /// Any condition holds.
    Any(Vec<ResponseMatch>),
    /// The condition does not hold.
    Not(Box<ResponseMatch>),
    /// The status is in `min..=max`.
    Status {
        /// Lowest status, inclusive.
        min: u16,
        /// Highest status, inclusive.
        max: u16,
    },
}

/// A response classification rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseClass {
    /// When the rule applies.
    pub condition: ResponseMatch,
    /// Whether matching responses are failures.
    pub is_failure: bool,
}

/// One route of a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The route's name (the `route` metric label).
    pub name: String,
    /// Which requests the route matches.
    pub condition: RequestMatch,
    /// Response classification.
    pub response_classes: Vec<ResponseClass>,
    /// Whether failed requests may be retried.
    pub is_retryable: bool,
    /// Request timeout.
    pub timeout: Option<Duration>,
}

/// How many retries a client may add.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryBudget {
    /// Retries as a ratio of original requests.
    pub retry_ratio: f32,
    /// Retries always allowed per second.
    pub min_retries_per_second: u32,
    /// Window over which requests are counted.
    pub ttl: Duration,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            retry_ratio: 0.2,
            min_retries_per_second: 10,
            ttl: Duration::from_secs(10),
        }
    }
}

/// A traffic split entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedDst {
    /// `name:port` of the backend.
    pub authority: String,
    /// Weight (10000 = 100%).
    pub weight: u32,
}

/// What `GetProfile` answers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// The Service's FQDN (no port), empty when the target is not a Service.
    pub fully_qualified_name: String,
    /// Whether connections are opaque TCP.
    pub opaque_protocol: bool,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
    /// Retry budget.
    pub retry_budget: Option<RetryBudget>,
    /// Traffic split.
    pub dst_overrides: Vec<WeightedDst>,
    /// The one endpoint, when the target is a pod.
    pub endpoint: Option<Endpoint>,
}

impl Profile {
    /// The profile of a Service with no ServiceProfile: its name and the default budget.
    pub fn default_for(fully_qualified_name: String) -> Self {
        Self {
            fully_qualified_name,
            retry_budget: Some(RetryBudget::default()),
            ..Self::default()
        }
    }
}
