//! Fixtures for proxy tests: a minimal valid environment and helpers.

use std::collections::HashMap;

use crate::app::config::*;

/// A syntactically valid PEM bundle for config tests that never verify a certificate.
pub const FAKE_ANCHORS_PEM: &str = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";

/// Identity of the fake control plane used in tests.
pub const CONTROL_IDENTITY: &str =
    "trellis-controller.trellis-system.serviceaccount.identity.trellis.cluster.local";

/// A proxy's identity in tests.
pub const LOCAL_IDENTITY: &str = "default.shop.serviceaccount.identity.trellis.cluster.local";

/// The smallest valid environment: every required variable, control plane on
/// non-loopback names (so names are required), all listeners on `127.0.0.1:0`.
pub fn mk_env(anchors_pem: &str) -> HashMap<String, String> {
    let pairs = [
        (
            ENV_DESTINATION_SVC_ADDR,
            "trellis-destination.trellis-system.svc.cluster.local.:8086",
        ),
        (ENV_DESTINATION_SVC_NAME, CONTROL_IDENTITY),
        (
            ENV_POLICY_SVC_ADDR,
            "trellis-policy.trellis-system.svc.cluster.local.:8090",
        ),
        (ENV_POLICY_SVC_NAME, CONTROL_IDENTITY),
        (ENV_POLICY_WORKLOAD, r#"{"ns":"shop","pod":"web-0"}"#),
        (ENV_IDENTITY_DIR, "/var/run/trellis/identity/end-entity"),
        (ENV_IDENTITY_TRUST_ANCHORS, anchors_pem),
        (
            ENV_IDENTITY_TOKEN_FILE,
            "/var/run/secrets/tokens/trellis-identity-token",
        ),
        (
            ENV_IDENTITY_SVC_ADDR,
            "trellis-identity.trellis-system.svc.cluster.local.:8080",
        ),
        (ENV_IDENTITY_SVC_NAME, CONTROL_IDENTITY),
        (ENV_IDENTITY_LOCAL_NAME, LOCAL_IDENTITY),
    ];
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A test PKI: one trust anchor (a CA made with rcgen) that issues leaf certificates.
#[derive(Debug)]
pub struct TestPki {
    /// The anchor, as PEM.
    pub anchor_pem: String,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
}

/// A leaf certificate and its key.
#[derive(Debug)]
pub struct TestLeaf {
    /// The chain, leaf first.
    pub chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The PKCS#8 key.
    pub key: rustls::pki_types::PrivatePkcs8KeyDer<'static>,
}

impl TestLeaf {
    /// The key as a rustls private key.
    pub fn key(&self) -> rustls::pki_types::PrivateKeyDer<'static> {
        self.key.clone_key().into()
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A fresh anchor.
    #[expect(clippy::expect_used, reason = "test fixture")]
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "identity.trellis.cluster.local");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("self-sign CA");
        Self {
            anchor_pem: ca.pem(),
            ca_params,
            ca_key,
        }
    }

    /// Issues a leaf for `name` (DNS SAN and CN), valid for serverAuth and clientAuth.
    #[expect(clippy::expect_used, reason = "test fixture")]
    pub fn issue(&self, name: &str) -> TestLeaf {
        let key = rcgen::KeyPair::generate().expect("generate leaf key");
        let cert = self.sign(&key, name);
        TestLeaf {
            chain: vec![cert],
            key: rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    /// Signs a leaf for `name` over `key`'s public key.
    #[expect(clippy::expect_used, reason = "test fixture")]
    pub fn sign(
        &self,
        key: &impl rcgen::PublicKeyData,
        name: &str,
    ) -> rustls::pki_types::CertificateDer<'static> {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyUsagePurpose};
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        params
            .signed_by(key, &issuer)
            .expect("sign leaf")
            .der()
            .clone()
    }

    /// The anchors as a root store.
    #[expect(clippy::expect_used, reason = "test fixture")]
    pub fn roots(&self) -> std::sync::Arc<rustls::RootCertStore> {
        crate::tls::trust_anchors(&self.anchor_pem).expect("anchors parse")
    }
}
