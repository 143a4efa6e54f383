//! mTLS between proxies: TLS 1.3 only, identities as DNS SANs checked against trust anchors.
//!
//! [`creds::Store`] holds the current certificate and is swapped on refresh; the server and
//! client configs resolve certificates through it, so rotation needs no new config.

pub mod client;
pub mod creds;
pub mod server;
pub mod verify;

use std::sync::Arc;

use rustls::{
    RootCertStore,
    crypto::{CryptoProvider, ring},
    pki_types::{CertificateDer, pem::PemObject},
};

pub use creds::Store;

/// Errors building TLS state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trust anchors did not parse or were empty.
    #[error("trust anchors: {reason}; set TRELLIS_PROXY_IDENTITY_TRUST_ANCHORS to a PEM bundle")]
    Anchors {
        /// What was wrong.
        reason: String,
    },
    /// rustls rejected a configuration.
    #[error("tls configuration")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client certificate verifier")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    /// A certificate or key did not load.
    #[error("credentials: {reason}")]
    Credentials {
        /// What was wrong.
        reason: String,
    },
}

/// The crypto provider: ring, with only the TLS 1.3 suites the contract allows.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = ring::default_provider();
    provider.cipher_suites = vec![
        ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
        ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
        ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}

/// Parses a non-empty PEM bundle of trust anchors.
pub fn trust_anchors(pem: &str) -> Result<Arc<RootCertStore>, Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| Error::Anchors {
            reason: format!("bad PEM: {e}"),
        })?;
        roots.add(cert).map_err(|e| Error::Anchors {
            reason: format!("bad certificate: {e}"),
        })?;
    }
    if roots.is_empty() {
        return Err(Error::Anchors {
            reason: "no certificates".into(),
        });
    }
    Ok(Arc::new(roots))
}

#[cfg(test)]
mod tests;
