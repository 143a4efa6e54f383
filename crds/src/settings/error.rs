//! Why a Mesh spec could not become [`MeshSettings`](super::MeshSettings): every bad field,
//! each with its path, its value and the fix.

use std::fmt;

/// One invalid field of a Mesh spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {value} {problem}")]
pub struct FieldError {
    /// Path of the field from the object's root, like `spec.identity.issuer.lifetime`.
    pub path: String,
    /// The rejected value, quoted as the user wrote it (JSON).
    pub value: String,
    /// What is wrong and how to fix it, like `is not a duration: write it like 8760h`.
    pub problem: String,
}

impl FieldError {
    /// An error for the field at `path`, whose value is `value` (written as JSON).
    pub fn new(
        path: impl Into<String>,
        value: impl fmt::Debug,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            value: format!("{value:?}"),
            problem: problem.into(),
        }
    }
}

/// Every invalid field of a Mesh spec, in the order they were checked (never empty).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Mesh spec: {}", .fields.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Error {
    /// The invalid fields.
    pub fields: Vec<FieldError>,
}

impl Error {
    /// The paths of the invalid fields, like `["spec.identity.issuer.lifetime"]`.
    pub fn paths(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.path.as_str()).collect()
    }
}
