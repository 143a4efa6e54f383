//! Every sample in `config/samples/` reads into its Rust type; the cluster test
//! (`tests/tests/cluster_crds.rs`) checks that the apiserver accepts them too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking"
)]

use std::fs;

use kube::Resource;
use serde::de::DeserializeOwned;
use trellis_crds::{
    manifest,
    v1alpha1::{
        authorization_policy::AuthorizationPolicy,
        mesh::{DEFAULT_MESH_NAME, Mesh, MeshSpec},
        mesh_tls_authentication::MeshTLSAuthentication,
        network_authentication::NetworkAuthentication,
        server::Server,
        service_profile::ServiceProfile,
    },
};

fn sample<K>(file: &str) -> K
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let path = manifest::repo_root().join("config/samples").join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(
        value["apiVersion"].as_str(),
        Some(K::api_version(&()).as_ref()),
        "{file}"
    );
    assert_eq!(
        value["kind"].as_str(),
        Some(K::kind(&()).as_ref()),
        "{file}"
    );
    serde_yaml::from_value(value).unwrap_or_else(|e| panic!("{file} does not match the types: {e}"))
}

#[test]
fn quick_start_mesh_is_the_default_mesh() {
    let mesh: Mesh = sample("mesh.yaml");
    assert_eq!(mesh.metadata.name.as_deref(), Some(DEFAULT_MESH_NAME));
    assert_eq!(mesh.spec, MeshSpec::default());
}

#[test]
fn policy_samples_read() {
    let server: Server = sample("server.yaml");
    let policy: AuthorizationPolicy = sample("authorization_policy.yaml");
    let mtls: MeshTLSAuthentication = sample("mesh_tls_authentication.yaml");
    let network: NetworkAuthentication = sample("network_authentication.yaml");
    // The policy sample refers to the other samples by name.
    assert_eq!(
        Some(policy.spec.target_ref.name.as_str()),
        server.metadata.name.as_deref()
    );
    let refs: Vec<_> = policy
        .spec
        .required_authentication_refs
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert!(refs.contains(&mtls.metadata.name.as_deref().unwrap_or_default()));
    assert!(refs.contains(&network.metadata.name.as_deref().unwrap_or_default()));
}

#[test]
fn service_profile_sample_reads() {
    let profile: ServiceProfile = sample("service_profile.yaml");
    assert!(
        profile
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| n.ends_with(".svc.cluster.local"))
    );
    assert!(!profile.spec.routes.is_empty());
    for route in &profile.spec.routes {
        if let Some(timeout) = &route.timeout {
            timeout
                .to_std()
                .unwrap_or_else(|e| panic!("route {}: {e}", route.name));
        }
    }
}
