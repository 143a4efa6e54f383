//! Rust types of every Trellis CustomResourceDefinition.
//!
//! This crate owns the schema users write against: doc comments become `kubectl explain`
//! text, serde defaults and CEL rules become apiserver validation. It must not depend on
//! tonic, prost or any other Trellis crate.

/// API group of Mesh and ServiceProfile.
pub const GROUP: &str = "trellis.dev";
/// API group of the policy kinds.
pub const POLICY_GROUP: &str = "policy.trellis.dev";
