//! GRPCRoute: gRPC service/method and header matches, filters and weighted backends of a
//! parent Service.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    BackendRef, HeaderModifier, NameValueMatch, ParentReference, RouteStatus, StringMatchType,
};

/// Routes gRPC calls sent to the parents (Services) by rules, first match wins.
#[derive(
    kube::CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default,
)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "GRPCRoute",
    plural = "grpcroutes",
    namespaced,
    status = "RouteStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteSpec {
    /// The objects the route attaches to.
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// Host names the route applies to; empty: every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Rules.
    #[serde(default)]
    pub rules: Vec<GrpcRouteRule>,
}

/// One rule: its matches, filters and backends.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteRule {
    /// Optional name of the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The rule applies when any match holds; empty: every call.
    #[serde(default)]
    pub matches: Vec<GrpcRouteMatch>,
    /// Filters applied to the rule's calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<GrpcRouteFilter>,
    /// Weighted backends; empty: the parent Service.
    #[serde(default)]
    pub backend_refs: Vec<GrpcBackendRef>,
}

/// A call condition; every part set must hold.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteMatch {
    /// The service and method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<GrpcMethodMatch>,
    /// Headers, all of which must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<NameValueMatch>,
}

/// A service and method condition; unset parts match anything.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GrpcMethodMatch {
    /// How the names are compared; default `Exact`.
    #[serde(default, rename = "type")]
    pub type_: StringMatchType,
    /// Fully qualified service, like `grpc.health.v1.Health`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Method, like `Check`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// The kinds of gRPC filter.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrpcFilterType {
    /// Rewrites request headers.
    RequestHeaderModifier,
    /// Rewrites response headers.
    ResponseHeaderModifier,
    /// A filter the mesh does not implement (RequestMirror, ExtensionRef, …).
    #[serde(other)]
    Unsupported,
}

/// A request or response rewrite.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRouteFilter {
    /// Which filter; the field of the same name holds its settings.
    #[serde(rename = "type")]
    pub type_: GrpcFilterType,
    /// Settings of `RequestHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
    /// Settings of `ResponseHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,
}

/// A weighted backend with its own filters.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GrpcBackendRef {
    /// The backend.
    #[serde(flatten)]
    pub backend_ref: BackendRef,
    /// Filters applied to calls sent to this backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<GrpcRouteFilter>,
}
