//! Peer identities: the first SAN of a client's certificate, and checks of a leaf for a name.

use std::sync::Arc;

use rustls::{
    RootCertStore,
    client::{WebPkiServerVerifier, danger::ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::{Error, provider};

/// A peer's identity: the first DNS or URI SAN of its leaf certificate.
pub fn peer_identity(leaf: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::DNSName(n) => Some((*n).to_string()),
        GeneralName::URI(u) => Some((*u).to_string()),
        _ => None,
    })
}

/// Checks that `chain` (leaf first) reaches `roots` and that the leaf is valid for `name`.
pub fn check_leaf(
    roots: &Arc<RootCertStore>,
    chain: &[CertificateDer<'static>],
    name: &str,
) -> Result<(), Error> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| Error::Credentials {
            reason: format!("verifier: {e}"),
        })?;
    let (leaf, intermediates) = chain.split_first().ok_or_else(|| Error::Credentials {
        reason: "empty certificate chain".into(),
    })?;
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| Error::Credentials {
        reason: format!("{name:?} is not a DNS name: {e}"),
    })?;
    verifier
        .verify_server_cert(leaf, intermediates, &server_name, &[], UnixTime::now())
        .map_err(|e| Error::Credentials {
            reason: format!("certificate for {name} does not verify: {e}"),
        })?;
    Ok(())
}
