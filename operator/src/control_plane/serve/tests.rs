use super::*;
use crate::control_plane::index::ClusterSettings;

#[test]
fn mesh_settings_reach_identity_and_index() {
    use trellis_crds::v1alpha1::mesh::Mesh;
    let mesh: Mesh = serde_json::from_value(serde_json::json!({
        "apiVersion": "trellis.dev/v1alpha1", "kind": "Mesh",
        "metadata": {"name": "default"},
        "spec": {
            "identity": {"trustDomain": "example.org", "workloadCertificateLifetime": "1h", "clockSkewAllowance": "30s"},
            "proxy": {"defaultInboundPolicy": "deny"}
        }
    }))
    .unwrap();
    let index = Index::shared(ClusterSettings::default());
    let (tx, rx) = tokio::sync::watch::channel(IdentitySettings::default());
    apply_mesh(&mesh, &tx, &index);
    let identity = rx.borrow().clone();
    assert_eq!(identity.trust_domain, "example.org");
    assert_eq!(identity.leaf.lifetime, std::time::Duration::from_secs(3600));
    assert_eq!(identity.leaf.clock_skew, std::time::Duration::from_secs(30));
    let settings = index.read().settings().clone();
    assert_eq!(settings.trust_domain, "example.org");
    assert_eq!(settings.default_inbound_policy, "deny");
}
