//! Test PKI helpers: the issuer Secret of a [`TestPki`], CSRs, chain checks and a localhost
//! server certificate.

use k8s_openapi::{ByteString, api::core::v1::Secret};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use trellis_api::well_known;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The one test PKI (anchor, intermediate issuer, leaves), defined beside the proxy's fixtures.
pub use trellis_proxy::test_util::TestPki;

/// The issuer of a [`TestPki`] as the Secret the control plane reads.
pub trait IssuerSecret {
    /// The issuer Secret (`well_known::ISSUER_SECRET`, type `kubernetes.io/tls`) in
    /// `namespace`.
    fn issuer_secret(&self, namespace: &str) -> Secret;
}

impl IssuerSecret for TestPki {
    fn issuer_secret(&self, namespace: &str) -> Secret {
        let mut secret = Secret::default();
        secret.metadata.name = Some(well_known::ISSUER_SECRET.to_string());
        secret.metadata.namespace = Some(namespace.to_string());
        secret.type_ = Some("kubernetes.io/tls".to_string());
        secret.data = Some(
            [
                (well_known::TLS_CERT_KEY, &self.issuer_cert_pem),
                (well_known::TLS_KEY_KEY, &self.issuer_key_pem),
                (well_known::TLS_CA_KEY, &self.anchor_pem),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect(),
        );
        secret
    }
}

/// An intermediate CA named `name` with a fresh P-256 key, signed by the CA whose PEM
/// certificate and key are `anchor_cert_pem` and `anchor_key_pem`: it may sign certificates
/// (path length 0) and `customize` sets the rest, such as its validity. Returns the PEM
/// certificate and key.
pub fn intermediate_ca(
    anchor_cert_pem: &str,
    anchor_key_pem: &str,
    name: &str,
    customize: impl FnOnce(&mut CertificateParams),
) -> (String, String) {
    let anchor_key = KeyPair::from_pem(anchor_key_pem).unwrap();
    let signer = rcgen::Issuer::from_ca_cert_pem(anchor_cert_pem, anchor_key).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    customize(&mut params);
    let cert = params.signed_by(&key, &signer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A fresh P-256 key (PKCS#8 DER) and a DER CSR whose CN and only DNS SAN are `name`, as a
/// proxy makes them.
pub fn proxy_csr(name: &str) -> (Vec<u8>, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    let csr = params.serialize_request(&key).unwrap();
    (key.serialize_der(), csr.der().to_vec())
}

/// The DNS SANs of a DER certificate.
pub fn dns_sans(der: &[u8]) -> Vec<String> {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    cert.subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that `leaf` chains through `intermediates` (leaf side first) to `anchor`, that every
/// certificate is valid now, and returns the leaf's DNS SANs. Panics with the broken link.
pub fn verify_chain(leaf: &[u8], intermediates: &[Vec<u8>], anchor: &[u8]) -> Vec<String> {
    let mut chain = vec![leaf.to_vec()];
    chain.extend(intermediates.iter().cloned());
    chain.push(anchor.to_vec());
    let certs: Vec<X509Certificate<'_>> = chain
        .iter()
        .map(|der| X509Certificate::from_der(der).unwrap().1)
        .collect();
    for pair in certs.windows(2) {
        let (child, parent) = (&pair[0], &pair[1]);
        assert_eq!(
            child.issuer(),
            parent.subject(),
            "issuer name of {}",
            child.subject()
        );
        child
            .verify_signature(Some(parent.public_key()))
            .unwrap_or_else(|e| {
                panic!(
                    "signature of {} by {}: {e}",
                    child.subject(),
                    parent.subject()
                )
            });
        assert!(
            child.validity().is_valid(),
            "{} is not valid now",
            child.subject()
        );
    }
    dns_sans(leaf)
}

/// Whether the DER certificate `child` is signed by the DER certificate `parent`.
pub fn signed_by(child: &[u8], parent: &[u8]) -> Result<(), String> {
    let (_, child) = X509Certificate::from_der(child).map_err(|e| e.to_string())?;
    let (_, parent) = X509Certificate::from_der(parent).map_err(|e| e.to_string())?;
    child
        .verify_signature(Some(parent.public_key()))
        .map_err(|e| e.to_string())
}

/// A CA and a server certificate it signed for IP 127.0.0.1, as PEM.
#[derive(Debug, Clone)]
pub struct LocalhostPki {
    /// The CA certificate (for `caBundle` or a client's roots).
    pub ca_pem: String,
    /// The server certificate.
    pub cert_pem: String,
    /// The server's PKCS#8 private key.
    pub key_pem: String,
}

/// A fresh CA named `<name> CA` and a server certificate for 127.0.0.1 named `name`.
pub fn localhost_server(name: &str) -> LocalhostPki {
    let mut ca = CertificateParams::default();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("self-signed CA");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name.push(DnType::CommonName, name);
    leaf.subject_alt_names = vec![rcgen::SanType::IpAddress(
        std::net::Ipv4Addr::LOCALHOST.into(),
    )];
    let key = KeyPair::generate().expect("server key");
    let cert = leaf.signed_by(&key, &issuer).expect("server certificate");
    LocalhostPki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::{CertificateDer, pem::PemObject};

    use super::*;

    #[test]
    fn an_intermediate_is_signed_by_its_anchor_and_customized() {
        let mut anchor = CertificateParams::default();
        anchor.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let anchor_key = KeyPair::generate().unwrap();
        let anchor_cert = anchor.self_signed(&anchor_key).unwrap();
        let not_after = time::OffsetDateTime::now_utc() + time::Duration::days(2);
        let (cert, key) = intermediate_ca(
            &anchor_cert.pem(),
            &anchor_key.serialize_pem(),
            "issuer",
            |params| params.not_after = not_after,
        );
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        assert_eq!(signed_by(&der, anchor_cert.der()), Ok(()));
        let (_, parsed) = X509Certificate::from_der(&der).unwrap();
        assert!(parsed.is_ca());
        assert_eq!(
            parsed.validity().not_after.timestamp(),
            not_after.unix_timestamp()
        );
        assert!(KeyPair::from_pem(&key).is_ok());
    }
}
