//! Certificates both roles handle: PEM parsing into [`CertInfo`], key checks, and generation
//! of trust anchors, issuers and webhook serving certificates (ECDSA P-256, rcgen).

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use trellis_api::well_known::WEBHOOK_SERVICE;

/// Why a certificate could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused the key or the certificate.
    #[error("generate {what}: {source}")]
    Generate {
        /// Which certificate, like `trust anchor`.
        what: &'static str,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// A validity bound does not fit an X.509 time.
    #[error("certificate validity {0} is out of range: lower the lifetime")]
    OutOfRange(Timestamp),
}

/// Lifetime of the generated webhook serving certificate.
pub const WEBHOOK_CERT_LIFETIME: SignedDuration = SignedDuration::from_hours(365 * 24);
/// Generated certificates are valid from this long before they are made (clock skew).
pub const NOT_BEFORE_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// What is known about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// End of validity.
    pub not_after: Timestamp,
    /// Serial number, hex.
    pub serial: String,
    /// Whether the certificate is a CA.
    pub is_ca: bool,
    /// DER of the subject name.
    pub subject: Vec<u8>,
    /// DER of the issuer name.
    pub issuer: Vec<u8>,
    /// The subject public key bits.
    pub public_key: Vec<u8>,
}

/// Parses every certificate in a PEM bundle.
pub fn parse_pem_bundle(pem: &str) -> Result<Vec<CertInfo>, String> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| format!("not PEM: {e}"))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let cert = block
            .parse_x509()
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let not_after = Timestamp::from_second(cert.validity().not_after.timestamp())
            .map_err(|e| format!("expiry out of range: {e}"))?;
        out.push(CertInfo {
            not_after,
            serial: cert.raw_serial_as_string().replace(':', ""),
            is_ca: cert.is_ca(),
            subject: cert.subject().as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            public_key: cert.public_key().subject_public_key.data.to_vec(),
        });
    }
    if out.is_empty() {
        return Err("no PEM certificate found".to_string());
    }
    Ok(out)
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct CertKey {
    /// The certificate.
    pub cert: String,
    /// The private key (PKCS#8).
    pub key: String,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey").finish_non_exhaustive()
    }
}

fn offset(ts: Timestamp) -> Result<time::OffsetDateTime, CertError> {
    time::OffsetDateTime::from_unix_timestamp(ts.as_second()).map_err(|_| CertError::OutOfRange(ts))
}

fn ca_params(
    cn: String,
    path_len: Option<u8>,
    now: Timestamp,
    lifetime: SignedDuration,
) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = offset(now - NOT_BEFORE_SKEW)?;
    params.not_after = offset(now + lifetime)?;
    Ok(params)
}

fn new_key(what: &'static str) -> Result<KeyPair, CertError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|source| CertError::Generate { what, source })
}

/// Generates a self-signed trust anchor for `trust_domain`.
pub fn generate_anchor(
    trust_domain: &str,
    now: Timestamp,
    lifetime: SignedDuration,
) -> Result<CertKey, CertError> {
    let what = "trust anchor";
    let key = new_key(what)?;
    let params = ca_params(format!("root.trellis.{trust_domain}"), None, now, lifetime)?;
    let cert = params
        .self_signed(&key)
        .map_err(|source| CertError::Generate { what, source })?;
    Ok(CertKey {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Generates an issuer for `trust_domain`, signed by `anchor`.
pub fn generate_issuer(
    anchor: &CertKey,
    trust_domain: &str,
    now: Timestamp,
    lifetime: SignedDuration,
) -> Result<CertKey, CertError> {
    let what = "issuer";
    let anchor_key =
        KeyPair::from_pem(&anchor.key).map_err(|source| CertError::Generate { what, source })?;
    let signer = Issuer::from_ca_cert_pem(&anchor.cert, anchor_key)
        .map_err(|source| CertError::Generate { what, source })?;
    let key = new_key(what)?;
    let cn = format!("identity.trellis.{trust_domain}");
    let params = ca_params(cn, Some(0), now, lifetime)?;
    let cert = params
        .signed_by(&key, &signer)
        .map_err(|source| CertError::Generate { what, source })?;
    Ok(CertKey {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Generates a webhook CA and a serving certificate for the webhook Service in `namespace`;
/// returns (CA PEM, serving certificate and key).
pub fn generate_webhook(namespace: &str, now: Timestamp) -> Result<(String, CertKey), CertError> {
    let what = "webhook certificate";
    let ca_key = new_key(what)?;
    let cn = format!("webhook-ca.trellis.{namespace}");
    let ca_params = ca_params(cn, Some(0), now, WEBHOOK_CERT_LIFETIME)?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|source| CertError::Generate { what, source })?;
    let signer = Issuer::new(ca_params, ca_key);
    let dns = format!("{WEBHOOK_SERVICE}.{namespace}.svc");
    let mut params = CertificateParams::new(vec![dns.clone(), format!("{dns}.cluster.local")])
        .map_err(|source| CertError::Generate { what, source })?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, dns);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = offset(now - NOT_BEFORE_SKEW)?;
    params.not_after = offset(now + WEBHOOK_CERT_LIFETIME)?;
    let key = new_key(what)?;
    let cert = params
        .signed_by(&key, &signer)
        .map_err(|source| CertError::Generate { what, source })?;
    Ok((
        ca_cert.pem(),
        CertKey {
            cert: cert.pem(),
            key: key.serialize_pem(),
        },
    ))
}

/// Whether `key_pem` is the private key of `cert`.
pub fn key_matches(cert: &CertInfo, key_pem: &str) -> bool {
    KeyPair::from_pem(key_pem).is_ok_and(|key| key.public_key_raw() == cert.public_key.as_slice())
}

#[cfg(test)]
mod tests;
