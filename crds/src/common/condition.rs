//! Status conditions: the list schema shared by every kind and lookups over it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::{Schema, SchemaGenerator};

/// `Condition.status` when the condition holds.
pub const TRUE: &str = "True";
/// `Condition.status` when the condition does not hold.
pub const FALSE: &str = "False";
/// `Condition.status` when it is not known whether the condition holds.
pub const UNKNOWN: &str = "Unknown";

/// Most conditions a status may hold; bounds the list for the apiserver.
pub const MAX_CONDITIONS: u32 = 16;

/// The condition of type `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == TRUE)
}

/// Schema of a `conditions` list: metav1 Conditions merged by server-side apply as a map
/// keyed by `type`, so each writer owns its own condition types.
pub(crate) fn schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    let object = schema.ensure_object();
    object.insert("x-kubernetes-list-type".into(), "map".into());
    object.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    object.insert("maxItems".into(), MAX_CONDITIONS.into());
    schema
}

#[cfg(test)]
mod tests;
