//! The status shared by the policy kinds and ServiceProfile: observed generation and conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types of [`PolicyStatus`].
pub mod conditions {
    /// The controller read the object, found it valid and found what it references:
    /// proxies receive it. False means proxies ignore it; the reason and message say why.
    pub const ACCEPTED: &str = "Accepted";
}

/// Condition reasons of [`PolicyStatus`].
pub mod reasons {
    /// Accepted is True: the object is in use.
    pub const ACCEPTED: &str = "Accepted";
    /// The object is valid by schema but cannot be used (for example a regular expression
    /// that does not compile); the message names the field.
    pub const INVALID: &str = "Invalid";
    /// An object the spec references (target, authentication, identity) does not exist.
    pub const REF_NOT_FOUND: &str = "RefNotFound";
    /// The object conflicts with another one (for example two Servers selecting the same
    /// pod port); the message names the other object.
    pub const CONFLICT: &str = "Conflict";
}

/// What the Trellis controller observed about a policy object or ServiceProfile.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The `metadata.generation` this status describes; older than the object's generation
    /// while the controller has not yet processed the latest spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current state: an `Accepted` condition telling whether proxies use this object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::condition::schema")]
    pub conditions: Vec<Condition>,
}
