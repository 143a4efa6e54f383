//! ServiceProfile: per-route behaviour of one service (classification, retries, timeouts, splits).

use kube::core::Rule;
use serde::{Deserialize, Serialize};

use crate::common::duration::Duration;

/// Most routes one ServiceProfile may declare.
pub const MAX_ROUTES: u32 = 128;
/// Most response classes one route may declare.
pub const MAX_RESPONSE_CLASSES: u32 = 16;
/// Most terms in one `all` or `any` list.
pub const MAX_MATCH_TERMS: u32 = 16;
/// Most destinations one traffic split may list.
pub const MAX_DST_OVERRIDES: u32 = 16;
/// Longest `pathRegex`.
pub const MAX_PATH_REGEX_LENGTH: u32 = 1024;

/// What an authority in `dstOverrides` must match: a DNS name with an optional port.
pub const AUTHORITY_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:[0-9]{1,5})?$";

const NAME_IS_FQDN_RULE: &str = r"self.metadata.name.matches(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$')";

policy_status_kind! {
    /// Routes, retry budget and traffic split of the service this profile is named after.
    #[kube(
        group = "trellis.dev",
        kind = "ServiceProfile",
        shortname = "tsp",
        doc = "A ServiceProfile describes the routes of one service so that proxies can report \
               per-route metrics, classify failures, retry and time out requests, and split \
               traffic. It must be named after the service's fully qualified name, like \
               web.shop.svc.cluster.local, and live in the service's namespace.",
        validation = Rule::new(NAME_IS_FQDN_RULE)
            .message("metadata.name must be the service's fully qualified name, like web.shop.svc.cluster.local (or an external host such as api.example.com)")
    )]
    accepted_column = "Whether proxies use this profile";
    #[derive(Default)]
    pub struct ServiceProfileSpec {
        /// Routes of the service. A request is counted against, and handled by, the first route
        /// whose condition it matches. Route names must be unique. At most 128.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schemars(length(max = MAX_ROUTES))]
        #[schemars(extend(
            "x-kubernetes-list-type" = "map",
            "x-kubernetes-list-map-keys" = ["name"],
        ))]
        pub routes: Vec<Route>,
        /// Limits retries across all routes, so retries cannot multiply load during an outage.
        /// Optional; when absent, retryRatio 0.2, minRetriesPerSecond 10 and ttl 10s apply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub retry_budget: Option<RetryBudget>,
        /// Traffic split: send requests for this service to these authorities instead, in
        /// proportion to their weights. Authorities must be unique and at least one weight must be
        /// above 0. At most 16.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schemars(length(max = MAX_DST_OVERRIDES))]
        #[schemars(extend(
            "x-kubernetes-list-type" = "map",
            "x-kubernetes-list-map-keys" = ["authority"],
            "x-kubernetes-validations" = [
                Rule::new("size(self) == 0 || self.exists(d, d.weight > 0)")
                    .message("at least one dstOverrides entry needs a weight above 0; raise a weight or remove dstOverrides"),
            ],
        ))]
        pub dst_overrides: Vec<WeightedDestination>,
    }
}

/// A named set of requests, with how to classify, retry and time them out.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Name of the route, shown in metrics (for example `GET /books/{id}`). Unique within the
    /// profile.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Which requests belong to this route.
    pub condition: RequestMatch,
    /// How responses are classified; the first class whose condition matches decides
    /// whether the response is a failure. Responses matching no class are failures when their
    /// status is 5xx. At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RESPONSE_CLASSES))]
    pub response_classes: Vec<ResponseClass>,
    /// Whether failed requests of this route may be retried (within the retry budget). Only
    /// mark routes whose requests are safe to repeat. Default false.
    #[serde(default)]
    pub is_retryable: bool,
    /// How long the proxy waits for a response, retries included, before failing the request
    /// with 504. A duration like `500ms` or `10s`. Optional: no timeout when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// HTTP request methods: `GET`, `HEAD`, `POST`, `PUT`, `DELETE`, `CONNECT`, `OPTIONS`,
/// `TRACE`, `PATCH`.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
}

const REQUEST_MATCH_NOT_EMPTY: &str = "has(self.method) || has(self.pathRegex) || \
     has(self.all) || has(self.any) || has(self.not)";
const REQUEST_TERM_NOT_EMPTY: &str = "has(self.method) || has(self.pathRegex) || has(self.not)";
const REQUEST_LEAF_NOT_EMPTY: &str = "has(self.method) || has(self.pathRegex)";

/// A condition on requests. Every field that is set must match: `method`, `pathRegex`,
/// every term of `all`, at least one term of `any`, and not `not`.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        Rule::new(REQUEST_MATCH_NOT_EMPTY)
            .message("a request condition must set at least one of method, pathRegex, all, any and not"),
    ],
))]
pub struct RequestMatch {
    /// The request's method must be this one. Valid values: GET, HEAD, POST, PUT, DELETE,
    /// CONNECT, OPTIONS, TRACE, PATCH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// A regular expression (RE2 syntax) the whole request path must match, like
    /// `/books/[^/]+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_PATH_REGEX_LENGTH))]
    pub path_regex: Option<String>,
    /// Terms that must all match. At most 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_MATCH_TERMS))]
    pub all: Option<Vec<RequestMatchTerm>>,
    /// Terms of which at least one must match. At most 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_MATCH_TERMS))]
    pub any: Option<Vec<RequestMatchTerm>>,
    /// A term that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<RequestMatchTerm>,
}

/// A request condition inside `all`, `any` or `not`: `method`, `pathRegex` and not `not`
/// must all match. (Conditions nest at most three levels deep.)
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        Rule::new(REQUEST_TERM_NOT_EMPTY)
            .message("a request condition term must set at least one of method, pathRegex and not"),
    ],
))]
pub struct RequestMatchTerm {
    /// The request's method must be this one. Valid values: GET, HEAD, POST, PUT, DELETE,
    /// CONNECT, OPTIONS, TRACE, PATCH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// A regular expression (RE2 syntax) the whole request path must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_PATH_REGEX_LENGTH))]
    pub path_regex: Option<String>,
    /// A condition that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<RequestMatchLeaf>,
}

/// The innermost request condition: `method` and `pathRegex` must both match when set.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        Rule::new(REQUEST_LEAF_NOT_EMPTY)
            .message("a request condition term must set method or pathRegex"),
    ],
))]
pub struct RequestMatchLeaf {
    /// The request's method must be this one. Valid values: GET, HEAD, POST, PUT, DELETE,
    /// CONNECT, OPTIONS, TRACE, PATCH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// A regular expression (RE2 syntax) the whole request path must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_PATH_REGEX_LENGTH))]
    pub path_regex: Option<String>,
}

/// Whether responses matching a condition are failures.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResponseClass {
    /// Which responses this class covers.
    pub condition: ResponseMatch,
    /// Whether the matching responses count as failures (for success-rate metrics and
    /// retries). Default false.
    #[serde(default)]
    pub is_failure: bool,
}

const RESPONSE_MATCH_NOT_EMPTY: &str =
    "has(self.status) || has(self.all) || has(self.any) || has(self.not)";

/// A condition on responses. Every field that is set must match: `status`, every term of
/// `all`, at least one term of `any`, and not `not`.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        Rule::new(RESPONSE_MATCH_NOT_EMPTY)
            .message("a response condition must set at least one of status, all, any and not"),
    ],
))]
pub struct ResponseMatch {
    /// The response status must lie in this range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusRange>,
    /// Terms that must all match. At most 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_MATCH_TERMS))]
    pub all: Option<Vec<ResponseMatchTerm>>,
    /// Terms of which at least one must match. At most 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_MATCH_TERMS))]
    pub any: Option<Vec<ResponseMatchTerm>>,
    /// A term that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<ResponseMatchTerm>,
}

/// A response condition inside `all`, `any` or `not`: `status` must match and `not` must
/// not. (Conditions nest at most three levels deep.)
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        Rule::new("has(self.status) || has(self.not)")
            .message("a response condition term must set status or not"),
    ],
))]
pub struct ResponseMatchTerm {
    /// The response status must lie in this range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusRange>,
    /// A status range the response must not be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<ResponseMatchLeaf>,
}

/// The innermost response condition: a status range.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResponseMatchLeaf {
    /// The response status must lie in this range.
    pub status: StatusRange,
}

fn default_status_min() -> i32 {
    100
}

fn default_status_max() -> i32 {
    599
}

/// An inclusive range of HTTP status codes; `min` must not be above `max`.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        Rule::new("self.min <= self.max")
            .message("min must not be above max: swap them, or write one status as min and max")
            .field_path(".min"),
    ],
))]
pub struct StatusRange {
    /// Lowest status in the range, 100-599. Default 100.
    #[serde(default = "default_status_min")]
    #[schemars(range(min = 100, max = 599))]
    pub min: i32,
    /// Highest status in the range, 100-599. Default 599.
    #[serde(default = "default_status_max")]
    #[schemars(range(min = 100, max = 599))]
    pub max: i32,
}

impl Default for StatusRange {
    fn default() -> Self {
        Self {
            min: default_status_min(),
            max: default_status_max(),
        }
    }
}

fn default_retry_ratio() -> f64 {
    0.2
}

fn default_min_retries_per_second() -> i32 {
    10
}

fn default_retry_ttl() -> Duration {
    Duration::new("10s")
}

/// How many retries the proxy may add on top of original requests.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetryBudget {
    /// Retries allowed per original request, from 0 to 1: 0.2 lets retries add at most 20%
    /// more load. Default 0.2.
    #[serde(default = "default_retry_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub retry_ratio: f64,
    /// Retries allowed every second regardless of the ratio, so low-traffic services can
    /// still retry. 0-10000; default 10.
    #[serde(default = "default_min_retries_per_second")]
    #[schemars(range(min = 0, max = 10000))]
    pub min_retries_per_second: i32,
    /// The window over which requests and retries are counted, a duration like `10s`.
    /// Default `10s`.
    #[serde(default = "default_retry_ttl")]
    pub ttl: Duration,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            retry_ratio: default_retry_ratio(),
            min_retries_per_second: default_min_retries_per_second(),
            ttl: default_retry_ttl(),
        }
    }
}

/// One destination of a traffic split.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct WeightedDestination {
    /// Where to send the requests: a service's DNS name with an optional port, like
    /// `web-v2.shop.svc.cluster.local:8080`.
    #[schemars(length(min = 1, max = 261), regex(pattern = AUTHORITY_PATTERN))]
    pub authority: String,
    /// Share of requests, relative to the other destinations' weights: 0-1000000. 0 sends
    /// nothing to this destination.
    #[schemars(range(min = 0, max = 1_000_000))]
    pub weight: i32,
}
