//! Routes: how a proxy matches, rewrites, splits, times out and retries the HTTP and gRPC
//! requests of one target. The policy server builds them from Gateway API `HTTPRoute` and
//! `GRPCRoute` objects (or a default catch-all); the proxy matches them per request.

pub(crate) mod proto;
#[cfg(test)]
mod tests;

use std::{ops::RangeInclusive, time::Duration};

/// Names a route or a backend in metrics and metadata.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RouteRef {
    /// A built-in default, e.g. `http`.
    Default(String),
    /// A resource.
    Resource {
        /// API group (`core` for Services).
        group: String,
        /// Kind, e.g. `HTTPRoute`.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Port, for Services (0 when not set).
        port: u16,
    },
}

impl RouteRef {
    /// The `*_group` metric label (empty for defaults).
    pub fn group(&self) -> &str {
        match self {
            Self::Default(_) => "",
            Self::Resource { group, .. } => group,
        }
    }

    /// The `*_kind` metric label (`default` for defaults).
    pub fn kind(&self) -> &str {
        match self {
            Self::Default(_) => "default",
            Self::Resource { kind, .. } => kind,
        }
    }

    /// The `*_namespace` metric label (empty for defaults).
    pub fn namespace(&self) -> &str {
        match self {
            Self::Default(_) => "",
            Self::Resource { namespace, .. } => namespace,
        }
    }

    /// The `*_name` metric label.
    pub fn name(&self) -> &str {
        match self {
            Self::Default(name) | Self::Resource { name, .. } => name,
        }
    }
}

/// Which API a route speaks; gRPC routes match on service and method, and retry on codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// HTTP.
    #[default]
    Http,
    /// gRPC.
    Grpc,
}

/// A route: the rules of one `HTTPRoute` or `GRPCRoute`, first matching rule wins.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// The route object.
    pub meta: RouteRef,
    /// HTTP or gRPC.
    pub kind: RouteKind,
    /// Hosts the route applies to (`*.example.com` for a suffix); empty: every host.
    pub hosts: Vec<String>,
    /// Rules.
    pub rules: Vec<Rule>,
}

/// One rule of a route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The rule applies when any match holds; empty: every request.
    pub matches: Vec<RequestMatch>,
    /// Filters applied to every request of the rule.
    pub filters: Vec<Filter>,
    /// Weighted backends; empty: requests fail with 500 (a route with no valid backend).
    pub backends: Vec<RouteBackend>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Retries, when set.
    pub retry: Option<Retry>,
}

/// A request condition: every part that is set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RequestMatch {
    /// The path.
    pub path: Option<PathMatch>,
    /// Headers, all of which must match.
    pub headers: Vec<NameMatch>,
    /// Query parameters, all of which must match.
    pub query: Vec<NameMatch>,
    /// The method.
    pub method: Option<http::Method>,
    /// The gRPC service and method (gRPC routes).
    pub rpc: Option<RpcMatch>,
}

/// A path condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathMatch {
    /// The whole path.
    Exact(String),
    /// A prefix ending at a segment boundary (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`).
    Prefix(String),
    /// A regular expression matched against the whole path.
    Regex(String),
}

/// A header or query-parameter condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NameMatch {
    /// Header (case-insensitive) or parameter (case-sensitive) name.
    pub name: String,
    /// The value condition.
    pub value: ValueMatch,
}

/// A value condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ValueMatch {
    /// The whole value.
    Exact(String),
    /// A regular expression matched against the whole value.
    Regex(String),
}

/// A gRPC condition: the parts that are set must equal the request's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RpcMatch {
    /// Fully qualified service, e.g. `grpc.health.v1.Health`.
    pub service: Option<String>,
    /// Method, e.g. `Check`.
    pub method: Option<String>,
}

/// A request or response rewrite.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Filter {
    /// Rewrites request headers.
    RequestHeaders(HeaderModifier),
    /// Rewrites response headers.
    ResponseHeaders(HeaderModifier),
    /// Answers with a redirect instead of forwarding.
    Redirect(Redirect),
}

/// Header edits, applied as remove, set, then add.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeaderModifier {
    /// Headers appended.
    pub add: Vec<(String, String)>,
    /// Headers replaced.
    pub set: Vec<(String, String)>,
    /// Headers removed.
    pub remove: Vec<String>,
}

/// A redirect answer; unset parts keep the request's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Redirect {
    /// `http` or `https`.
    pub scheme: Option<String>,
    /// Host.
    pub host: Option<String>,
    /// Path rewrite.
    pub path: Option<PathModifier>,
    /// Port.
    pub port: Option<u16>,
    /// Status, 301 or 302.
    pub status: u16,
}

/// How a redirect rewrites the path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathModifier {
    /// Replaces the whole path.
    Full(String),
    /// Replaces the prefix the rule matched.
    Prefix(String),
}

/// A backend with its share of a rule's requests.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteBackend {
    /// The backend.
    pub backend: Backend,
    /// Relative weight; 0 takes no requests.
    pub weight: u32,
    /// Filters applied to requests sent to this backend.
    pub filters: Vec<Filter>,
}

/// A load-balanced backend, discovered through `Destination.Get`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Backend {
    /// The Service port (a [`RouteRef::Resource`] of kind `Service`).
    pub meta: RouteRef,
    /// The `Destination.Get` path, `<svc>.<ns>.svc.<domain>:<port>`.
    pub path: String,
}

/// Route timeouts; unset ones do not apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// The whole request, retries included (Gateway API `request`).
    pub request: Option<Duration>,
    /// Each try's response (Gateway API `backendRequest`).
    pub response: Option<Duration>,
    /// Idle time of the request's stream.
    pub idle: Option<Duration>,
}

/// gRPC status codes a route may retry on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrpcCode {
    /// 1.
    Cancelled,
    /// 4.
    DeadlineExceeded,
    /// 8.
    ResourceExhausted,
    /// 13.
    Internal,
    /// 14.
    Unavailable,
}

impl GrpcCode {
    /// The code's number.
    pub fn code(self) -> u32 {
        match self {
            Self::Cancelled => 1,
            Self::DeadlineExceeded => 4,
            Self::ResourceExhausted => 8,
            Self::Internal => 13,
            Self::Unavailable => 14,
        }
    }

    /// The code with number `code`, when it is retryable.
    pub fn from_code(code: u32) -> Option<Self> {
        [
            Self::Cancelled,
            Self::DeadlineExceeded,
            Self::ResourceExhausted,
            Self::Internal,
            Self::Unavailable,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

/// Exponential backoff between tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backoff {
    /// First delay.
    pub min: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Random extra delay, in thousandths of the delay.
    pub jitter_permille: u32,
}

/// Retries of a rule's failed requests.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Retry {
    /// Retries per request (not counting the first try).
    pub limit: u32,
    /// Requests whose body is larger are not retried.
    pub max_request_bytes: u32,
    /// HTTP statuses that are retried (HTTP routes).
    pub statuses: Vec<RangeInclusive<u16>>,
    /// gRPC codes that are retried (gRPC routes).
    pub codes: Vec<GrpcCode>,
    /// Each try's timeout; a try that times out is retried.
    pub timeout: Option<Duration>,
    /// Delay between tries.
    pub backoff: Option<Backoff>,
}

/// Consecutive-failure accrual: an endpoint that fails `max_failures` requests in a row
/// leaves the balancer for a backoff, then gets one probe request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FailureAccrual {
    /// Failures in a row that eject an endpoint (0: never).
    pub max_failures: u32,
    /// Ejection backoff.
    pub backoff: Backoff,
}

impl Default for FailureAccrual {
    /// Linkerd's default: 7 failures, ejected 1 s doubling to 60 s, jitter 0.5.
    fn default() -> Self {
        Self {
            max_failures: 7,
            backoff: Backoff {
                min: Duration::from_secs(1),
                max: Duration::from_secs(60),
                jitter_permille: 500,
            },
        }
    }
}

impl Route {
    /// The catch-all route of a Service with no routes: every request to `backend`.
    pub fn default_http(backend: Backend) -> Self {
        Self {
            meta: RouteRef::Default("http".into()),
            kind: RouteKind::Http,
            hosts: Vec::new(),
            rules: vec![Rule {
                matches: vec![RequestMatch {
                    path: Some(PathMatch::Prefix("/".into())),
                    ..RequestMatch::default()
                }],
                backends: vec![RouteBackend {
                    backend,
                    weight: 1,
                    filters: Vec::new(),
                }],
                ..Rule::default()
            }],
        }
    }
}
