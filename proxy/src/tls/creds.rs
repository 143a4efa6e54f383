//! The proxy's current certificate, hot-swappable, as a rustls certificate resolver.

use std::sync::Arc;

use parking_lot::RwLock;
use rustls::{
    SignatureScheme,
    client::ResolvesClientCert,
    pki_types::{CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::sync::watch;

use super::{Error, provider};

/// Holds the certificate the proxy presents; empty until identity is first certified.
#[derive(Debug)]
pub struct Store {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    local_name: String,
    certified: watch::Sender<bool>,
}

impl Store {
    /// An empty store for `local_name`.
    pub fn new(local_name: String) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(None),
            local_name,
            certified: watch::Sender::new(false),
        })
    }

    /// This proxy's identity name.
    pub fn local_name(&self) -> &str {
        &self.local_name
    }

    /// Installs a new leaf (first in `chain`) and its key; new handshakes use it at once.
    /// The caller verifies the chain first (see [`super::verify::check_leaf`]).
    pub fn set(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), Error> {
        let signer =
            provider()
                .key_provider
                .load_private_key(key)
                .map_err(|e| Error::Credentials {
                    reason: format!("private key: {e}"),
                })?;
        if chain.is_empty() {
            return Err(Error::Credentials {
                reason: "empty certificate chain".into(),
            });
        }
        *self.current.write() = Some(Arc::new(CertifiedKey::new(chain, signer)));
        self.certified.send_replace(true);
        Ok(())
    }

    /// The current certificate, if any.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().clone()
    }

    /// Resolves once the store holds a certificate.
    pub async fn certified(&self) {
        let mut rx = self.certified.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

impl ResolvesServerCert for Store {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

impl ResolvesClientCert for Store {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.current()
    }

    fn has_certs(&self) -> bool {
        self.current.read().is_some()
    }
}
