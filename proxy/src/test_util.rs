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

/// A test PKI: a trust anchor and an intermediate issuer it signed (as the identity
/// controller holds them), which issues leaf certificates.
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The anchor certificate (PEM).
    pub anchor_pem: String,
    /// The issuer certificate (PEM), an ECDSA P-256 intermediate CA.
    pub issuer_cert_pem: String,
    /// The issuer key (PKCS#8 PEM).
    pub issuer_key_pem: String,
    issuer_params: rcgen::CertificateParams,
    issuer_der: rustls::pki_types::CertificateDer<'static>,
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

/// The parameters of a CA named `cn`, valid from an hour ago for 30 days.
#[expect(clippy::expect_used, reason = "test fixture")]
fn ca_params(cn: &str) -> rcgen::CertificateParams {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
    use std::time::{Duration, SystemTime};
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (SystemTime::now() - Duration::from_secs(3600)).into();
    params.not_after = (SystemTime::now() + Duration::from_secs(30 * 24 * 3600)).into();
    params
}

impl TestPki {
    /// A fresh anchor and issuer for the default trust domain.
    pub fn new() -> Self {
        Self::generate(trellis_api::well_known::DEFAULT_TRUST_DOMAIN)
    }

    /// A fresh anchor (`root.trellis.<trust_domain>`) and issuer
    /// (`identity.trellis.<trust_domain>`).
    #[expect(clippy::expect_used, reason = "test fixture")]
    pub fn generate(trust_domain: &str) -> Self {
        use rcgen::{Issuer, KeyPair};
        let anchor_key = KeyPair::generate().expect("generate anchor key");
        let anchor_params = ca_params(&format!("root.trellis.{trust_domain}"));
        let anchor = anchor_params
            .self_signed(&anchor_key)
            .expect("self-sign anchor");
        let anchor_issuer = Issuer::new(anchor_params, anchor_key);
        let issuer_key = KeyPair::generate().expect("generate issuer key");
        let issuer_params = ca_params(&format!("identity.trellis.{trust_domain}"));
        let issuer = issuer_params
            .signed_by(&issuer_key, &anchor_issuer)
            .expect("sign issuer");
        Self {
            anchor_pem: anchor.pem(),
            issuer_cert_pem: issuer.pem(),
            issuer_key_pem: issuer_key.serialize_pem(),
            issuer_params,
            issuer_der: issuer.der().clone(),
        }
    }

    /// The issuer certificate, DER (the intermediate of every leaf).
    pub fn issuer_der(&self) -> rustls::pki_types::CertificateDer<'static> {
        self.issuer_der.clone()
    }

    /// The anchor certificate, DER.
    #[expect(clippy::expect_used, reason = "test fixture")]
    pub fn anchor_der(&self) -> Vec<u8> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        CertificateDer::from_pem_slice(self.anchor_pem.as_bytes())
            .expect("anchor PEM")
            .to_vec()
    }

    /// Issues a leaf for `name` (DNS SAN and CN), valid for serverAuth and clientAuth; its
    /// chain is the leaf, then the issuer.
    #[expect(clippy::expect_used, reason = "test fixture")]
    pub fn issue(&self, name: &str) -> TestLeaf {
        let key = rcgen::KeyPair::generate().expect("generate leaf key");
        let cert = self.sign(&key, name);
        TestLeaf {
            chain: vec![cert, self.issuer_der()],
            key: rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    /// Signs a leaf for `name` over `key`'s public key, with the issuer.
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
        let issuer_key = rcgen::KeyPair::from_pem(&self.issuer_key_pem).expect("issuer key");
        let issuer = Issuer::from_params(&self.issuer_params, issuer_key);
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
