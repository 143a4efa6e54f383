//! HTTPRoute: HTTP matches, filters, weighted backends and timeouts of a parent Service.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BackendRef, HeaderModifier, NameValueMatch, ParentReference, RouteStatus};

/// Routes HTTP requests sent to the parents (Services) by rules, first match wins.
#[derive(
    kube::CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default,
)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    plural = "httproutes",
    namespaced,
    status = "RouteStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The objects the route attaches to.
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// Host names (`Host` header) the route applies to; empty: every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Rules.
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
}

/// One rule: its matches, filters, backends and timeouts.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Optional name of the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The rule applies when any match holds; empty: every request.
    #[serde(default)]
    pub matches: Vec<HttpRouteMatch>,
    /// Filters applied to the rule's requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Weighted backends; empty: the parent Service.
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
}

/// A request condition; every part set must hold.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// The path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
    /// Headers, all of which must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<NameValueMatch>,
    /// Query parameters, all of which must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<NameValueMatch>,
    /// The method, like `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// How a path is compared.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PathMatchType {
    /// The whole path.
    Exact,
    /// A prefix ending at a segment boundary.
    #[default]
    PathPrefix,
    /// A regular expression over the whole path.
    RegularExpression,
    /// A type this release does not know.
    #[serde(other)]
    Unknown,
}

/// A path condition.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathMatch {
    /// How `value` is compared; default `PathPrefix`.
    #[serde(default, rename = "type")]
    pub type_: PathMatchType,
    /// The path; default `/`.
    #[serde(default = "root")]
    pub value: String,
}

fn root() -> String {
    "/".to_string()
}

/// The kinds of HTTP filter.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpFilterType {
    /// Rewrites request headers.
    RequestHeaderModifier,
    /// Rewrites response headers.
    ResponseHeaderModifier,
    /// Answers with a redirect.
    RequestRedirect,
    /// A filter the mesh does not implement (URLRewrite, RequestMirror, ExtensionRef, …).
    #[serde(other)]
    Unsupported,
}

/// A request or response rewrite.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// Which filter; the field of the same name holds its settings.
    #[serde(rename = "type")]
    pub type_: HttpFilterType,
    /// Settings of `RequestHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
    /// Settings of `ResponseHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,
    /// Settings of `RequestRedirect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<HttpRequestRedirect>,
}

/// A redirect answer; unset parts keep the request's.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestRedirect {
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Path rewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathModifier>,
    /// Port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Status, 301 or 302 (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
}

/// How a redirect rewrites the path.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathModifierType {
    /// Replace the whole path with `replaceFullPath`.
    ReplaceFullPath,
    /// Replace the matched prefix with `replacePrefixMatch`.
    ReplacePrefixMatch,
    /// A type this release does not know.
    #[serde(other)]
    Unknown,
}

/// A path rewrite.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathModifier {
    /// Which rewrite.
    #[serde(rename = "type")]
    pub type_: PathModifierType,
    /// The new path (`ReplaceFullPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    /// The new prefix (`ReplacePrefixMatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

/// A weighted backend with its own filters.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// The backend.
    #[serde(flatten)]
    pub backend_ref: BackendRef,
    /// Filters applied to requests sent to this backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
}

/// Timeouts of a rule, as Gateway API durations (`10s`, `500ms`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    /// The whole request, retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// Each try of the request to a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}
