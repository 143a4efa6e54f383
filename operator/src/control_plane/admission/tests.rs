//! The webhook server's followers: it is ready only with a certificate, the Mesh and a PEM
//! trust bundle from the trust-roots ConfigMap, and the injector uses that whole bundle.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
    jiff::{SignedDuration, Timestamp},
};
use trellis_api::well_known;
use trellis_crds::v1alpha1::mesh::MeshSpec;

use super::{Followed, WebhookSettings};
use crate::{
    pki::cert::{generate_anchor, generate_webhook},
    test_util::offline_client,
};

fn settings() -> WebhookSettings {
    WebhookSettings {
        addr: ([127, 0, 0, 1], 0).into(),
        mesh_name: "trellis".to_string(),
        namespace: "trellis-system".to_string(),
        image_repository: "registry.test/trellis".to_string(),
        cluster_domain: "cluster.local".to_string(),
        cluster_networks: Vec::new(),
    }
}

fn tls_secret() -> Secret {
    let (_, serving) = generate_webhook("trellis-system", Timestamp::now()).unwrap();
    Secret {
        data: Some(BTreeMap::from([
            (
                well_known::TLS_CERT_KEY.to_string(),
                ByteString(serving.cert.into_bytes()),
            ),
            (
                well_known::TLS_KEY_KEY.to_string(),
                ByteString(serving.key.into_bytes()),
            ),
        ])),
        ..Secret::default()
    }
}

fn trust_roots(bundle: Option<&str>) -> ConfigMap {
    ConfigMap {
        data: bundle
            .map(|b| BTreeMap::from([(well_known::TRUST_ROOTS_KEY.to_string(), b.to_string())])),
        ..ConfigMap::default()
    }
}

fn anchor() -> String {
    generate_anchor(
        "cluster.local",
        Timestamp::now(),
        SignedDuration::from_hours(24),
    )
    .unwrap()
    .cert
}

#[tokio::test]
async fn ready_only_once_a_pem_trust_bundle_is_loaded() {
    let mut followed = Followed::new(settings(), offline_client(), true);
    followed.apply_tls_secret(&tls_secret());
    followed
        .apply_mesh(&MeshSpec::default())
        .expect("the default spec is valid");
    assert!(
        followed.ready().is_none(),
        "a certificate and the Mesh are not enough: pods would get no trust anchors"
    );

    for bad in [
        None,
        Some(""),
        Some("not pem"),
        Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
    ] {
        followed.apply_trust_roots(&trust_roots(bad));
        assert!(followed.ready().is_none(), "{bad:?} is not a trust bundle");
    }

    // During a rotation the ConfigMap holds both anchors; proxies must trust both.
    let bundle = format!("{}{}", anchor(), anchor());
    followed.apply_trust_roots(&trust_roots(Some(&bundle)));
    let (_, state) = followed
        .ready()
        .expect("ready with certificate, Mesh and bundle");
    let config = state.inject_config();
    assert_eq!(config.trust_anchors_pem, bundle);
    assert!(config.native_sidecar);

    followed.apply_trust_roots(&trust_roots(Some("")));
    assert_eq!(
        state.inject_config().trust_anchors_pem,
        bundle,
        "an emptied ConfigMap keeps the last good bundle"
    );
    let single = anchor();
    followed.apply_trust_roots(&trust_roots(Some(&single)));
    assert_eq!(state.inject_config().trust_anchors_pem, single);
}

#[tokio::test]
async fn regular_sidecar_where_the_cluster_has_no_native_sidecars() {
    let mut followed = Followed::new(settings(), offline_client(), false);
    followed.apply_trust_roots(&trust_roots(Some(&anchor())));
    followed
        .apply_mesh(&MeshSpec::default())
        .expect("the default spec is valid");
    followed.apply_tls_secret(&tls_secret());
    let (_, state) = followed.ready().expect("ready");
    assert!(!state.inject_config().native_sidecar);
}
