//! The subset of Gateway API (`gateway.networking.k8s.io/v1`) the mesh reads: `HTTPRoute`
//! and `GRPCRoute` attached to Services (GAMMA), with their route status.
//!
//! These types are not in [`crate::all`]: the upstream project owns the CRDs, and tests install
//! its YAML. Fields the mesh does not use are left out (serde ignores them), and enums have an
//! `Unknown` variant so a value added by a newer Gateway API release never fails a whole list.

pub mod duration;
pub mod grpc_route;
pub mod http_route;
#[cfg(test)]
mod tests;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the Gateway API kinds.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The version the mesh reads.
pub const VERSION: &str = "v1";

/// Condition types of a route's `status.parents[].conditions`.
pub mod conditions {
    /// The route is valid and attached to its parent.
    pub const ACCEPTED: &str = "Accepted";
    /// Every reference of the route (backends) was resolved.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
}

/// Condition reasons of a route's `status.parents[].conditions`.
pub mod reasons {
    /// Accepted is True.
    pub const ACCEPTED: &str = "Accepted";
    /// ResolvedRefs is True.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// The parent the route names does not exist.
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    /// A backend the route names does not exist.
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    /// A backend is of a kind the mesh cannot route to.
    pub const INVALID_KIND: &str = "InvalidKind";
    /// A backend is in another namespace, which needs a ReferenceGrant (not supported).
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    /// A field (or annotation) has a value the mesh cannot use; the message names it.
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
}

/// Checks that a path, header or query regular expression compiles as proxies compile it.
pub fn check_regex(value: &str) -> Result<(), crate::error::Error> {
    regex::Regex::new(value)
        .map(drop)
        .map_err(|source| crate::error::Error::InvalidRegex {
            value: value.to_string(),
            source,
        })
}

/// A reference from a route to the object it attaches to (for the mesh: a Service).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group of the parent; `""` or `core` for a Service. Default `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the parent; `Service` for the mesh. Default `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace of the parent; default the route's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the parent.
    pub name: String,
    /// Section (listener or port name) of the parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// Port of the parent; unset: every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

impl ParentReference {
    /// Whether the parent is a core Service (the GAMMA mesh attachment).
    pub fn is_service(&self) -> bool {
        self.kind.as_deref() == Some("Service")
            && matches!(self.group.as_deref(), Some("" | "core"))
    }

    /// Whether the parent is a Trellis Server (an inbound route).
    pub fn is_server(&self) -> bool {
        self.kind.as_deref() == Some("Server") && self.group.as_deref() == Some(crate::POLICY_GROUP)
    }
}

/// A reference from a rule to a backend (for the mesh: a Service port).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// API group of the backend; default `""` (core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the backend; default `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the backend.
    pub name: String,
    /// Namespace of the backend; default the route's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Port of the backend Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Relative share of the rule's requests; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

impl BackendRef {
    /// Whether the backend is a core Service (the only kind the mesh routes to).
    pub fn is_service(&self) -> bool {
        matches!(self.group.as_deref(), None | Some("" | "core"))
            && matches!(self.kind.as_deref(), None | Some("Service"))
    }
}

/// How a string is compared.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StringMatchType {
    /// The whole value.
    #[default]
    Exact,
    /// A regular expression over the whole value.
    RegularExpression,
    /// A type this release does not know.
    #[serde(other)]
    Unknown,
}

/// A header (or query parameter) condition.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub struct NameValueMatch {
    /// How `value` is compared; default `Exact`.
    #[serde(default, rename = "type")]
    pub type_: StringMatchType,
    /// Header or parameter name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A header name and value.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct HeaderValue {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// Header edits (`RequestHeaderModifier`, `ResponseHeaderModifier`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct HeaderModifier {
    /// Headers replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderValue>,
    /// Headers appended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderValue>,
    /// Headers removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A route's status: one entry per parent, per controller.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    /// The parents the route names, as each controller sees them.
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

/// One controller's view of one parent of a route.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parent.
    pub parent_ref: ParentReference,
    /// The controller writing this entry (for Trellis `trellis.dev/policy-controller`).
    pub controller_name: String,
    /// `Accepted` and `ResolvedRefs`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}
