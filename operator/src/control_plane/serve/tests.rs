use trellis_api::inbound::DefaultPolicy;
use trellis_crds::v1alpha1::mesh::Mesh;

use super::*;
use crate::{control_plane::index::ClusterSettings, test_util::obj};

fn mesh(identity: serde_json::Value) -> Mesh {
    obj(serde_json::json!({
        "apiVersion": "trellis.dev/v1alpha1", "kind": "Mesh",
        "metadata": {"name": "default"},
        "spec": {"identity": identity, "proxy": {"defaultInboundPolicy": "deny"}}
    }))
}

#[test]
fn mesh_settings_reach_identity_and_index() {
    let mesh = mesh(serde_json::json!({
        "trustDomain": "example.org", "workloadCertificateLifetime": "1h", "clockSkewAllowance": "30s"
    }));
    let index = Index::shared(ClusterSettings::default());
    let (tx, rx) = tokio::sync::watch::channel(IdentitySettings::default());
    apply_mesh(&mesh, &tx, &index).unwrap();
    let identity = rx.borrow().clone();
    assert_eq!(identity.trust_domain, "example.org");
    assert_eq!(identity.leaf.lifetime, std::time::Duration::from_secs(3600));
    assert_eq!(identity.leaf.clock_skew, std::time::Duration::from_secs(30));
    let settings = index.read().settings().clone();
    assert_eq!(settings.trust_domain, "example.org");
    assert_eq!(settings.default_inbound_policy, DefaultPolicy::Deny);
}

#[test]
fn an_invalid_spec_is_an_error_naming_the_field_and_changes_nothing() {
    let mesh = mesh(serde_json::json!({
        "trustDomain": "example.org", "workloadCertificateLifetime": "soon"
    }));
    let index = Index::shared(ClusterSettings::default());
    let (tx, rx) = tokio::sync::watch::channel(IdentitySettings::default());
    let error = apply_mesh(&mesh, &tx, &index).unwrap_err();
    assert_eq!(error.paths(), ["spec.identity.workloadCertificateLifetime"]);
    assert_eq!(*rx.borrow(), IdentitySettings::default());
    assert_eq!(*index.read().settings(), ClusterSettings::default());
}
