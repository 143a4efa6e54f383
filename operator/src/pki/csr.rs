//! Certificate signing requests: parsing and the shape checks Certify requires.

use rcgen::{CertificateSigningRequestParams, DnType, DnValue, IsCa, SanType};
use rustls::pki_types::CertificateSigningRequestDer;

/// Why a CSR was refused.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// The bytes are not a DER CSR with a valid signature.
    #[error("malformed csr: {0}")]
    Malformed(#[source] rcgen::Error),
    /// The CSR parses but does not have the shape a proxy's CSR has.
    #[error("csr for {identity}: {reason}")]
    Shape {
        /// The identity the request names.
        identity: String,
        /// What is wrong.
        reason: String,
    },
}

/// Parses a DER CSR and checks its signature.
pub fn parse(der: &[u8]) -> Result<CertificateSigningRequestParams, CsrError> {
    CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(der))
        .map_err(CsrError::Malformed)
}

/// Checks that `csr` asks for exactly `identity`: one DNS SAN equal to it, no other SANs, a
/// subject that holds at most a common name equal to it, an ECDSA key, and no requested
/// extension that could widen the certificate (key usages, extended key usages, basic
/// constraints). The parser already refuses every other extension.
pub fn check(csr: &CertificateSigningRequestParams, identity: &str) -> Result<(), CsrError> {
    let shape = |reason: String| CsrError::Shape {
        identity: identity.to_string(),
        reason,
    };
    let mut dns = Vec::new();
    for san in &csr.params.subject_alt_names {
        match san {
            SanType::DnsName(name) => dns.push(name.as_str().to_string()),
            other => {
                return Err(shape(format!(
                    "SAN {other:?} is not allowed: only one DNS SAN equal to the identity"
                )));
            }
        }
    }
    match dns.as_slice() {
        [name] if name == identity => {}
        [name] => {
            return Err(shape(format!(
                "SAN {name} does not match the requested identity"
            )));
        }
        names => {
            return Err(shape(format!(
                "needs exactly one DNS SAN equal to the identity, has {names:?}"
            )));
        }
    }
    if let Some(cn) = csr.params.distinguished_name.get(&DnType::CommonName) {
        let cn = match cn {
            DnValue::Utf8String(s) => s.clone(),
            DnValue::PrintableString(s) => s.as_str().to_string(),
            DnValue::Ia5String(s) => s.as_str().to_string(),
            other => format!("{other:?}"),
        };
        if !cn.is_empty() && cn != identity {
            return Err(shape(format!(
                "common name {cn} does not match the requested identity"
            )));
        }
    }
    let params = &csr.params;
    if let Some((other, _)) = params
        .distinguished_name
        .iter()
        .find(|(ty, _)| **ty != DnType::CommonName)
    {
        return Err(shape(format!(
            "subject attribute {other:?} is not allowed: the subject holds only the identity"
        )));
    }
    if !params.key_usages.is_empty() {
        return Err(shape(format!(
            "requested key usages {:?} are not allowed: the issuer sets them",
            params.key_usages
        )));
    }
    if !params.extended_key_usages.is_empty() {
        return Err(shape(format!(
            "requested extended key usages {:?} are not allowed: the issuer sets them",
            params.extended_key_usages
        )));
    }
    if !matches!(params.is_ca, IsCa::NoCa) {
        return Err(shape(
            "requested basic constraints are not allowed: a leaf is never a CA".to_string(),
        ));
    }
    let alg = csr.public_key.algorithm();
    if alg != &rcgen::PKCS_ECDSA_P256_SHA256 && alg != &rcgen::PKCS_ECDSA_P384_SHA384 {
        return Err(shape(format!("key algorithm {alg:?} is not ECDSA")));
    }
    Ok(())
}
