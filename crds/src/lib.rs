//! Rust types of every Trellis CustomResourceDefinition.
//!
//! This crate owns the schema users write against: doc comments become `kubectl explain`
//! text, serde defaults and CEL rules become apiserver validation. It must not depend on
//! tonic, prost or any other Trellis crate.
//!
//! Start with [`v1alpha1::mesh`] (the installation) and the policy kinds next to it;
//! [`all`] lists every CRD and [`manifest`] renders them for `config/crds/` (the `crdgen`
//! binary writes them, `tests/crds_up_to_date.rs` checks they have not drifted).
//! [`gateway`] holds the subset of upstream Gateway API kinds the mesh reads; their CRDs are
//! upstream's and are not generated here.

pub mod common;
mod describe;
pub mod error;
pub mod gateway;
pub mod manifest;
pub mod settings;
pub mod v1alpha1;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of Mesh and ServiceProfile.
pub const GROUP: &str = "trellis.dev";
/// API group of the policy kinds.
pub const POLICY_GROUP: &str = "policy.trellis.dev";
/// The version of every kind.
pub const VERSION: &str = "v1alpha1";

/// Label put on every Trellis CRD, naming its owner.
pub const PART_OF_LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "trellis");
/// Annotation on every Trellis CRD with the release that generated it, so an installer can
/// refuse to replace a newer schema with an older one.
pub const RELEASE_ANNOTATION: &str = "trellis.dev/release";

/// Every Trellis CustomResourceDefinition, labelled as Trellis's, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    use v1alpha1::{
        authorization_policy::AuthorizationPolicy, mesh::Mesh,
        mesh_tls_authentication::MeshTLSAuthentication,
        network_authentication::NetworkAuthentication, server::Server,
        service_profile::ServiceProfile,
    };
    [
        Mesh::crd(),
        ServiceProfile::crd(),
        Server::crd(),
        AuthorizationPolicy::crd(),
        MeshTLSAuthentication::crd(),
        NetworkAuthentication::crd(),
    ]
    .into_iter()
    .map(|mut crd| {
        let (key, value) = PART_OF_LABEL;
        crd.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value.to_string());
        crd.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                RELEASE_ANNOTATION.to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            );
        describe::tidy(&mut crd);
        crd
    })
    .collect()
}

#[cfg(test)]
mod tests;
