//! The TLS listener: serves the router over HTTPS with a certificate that can be replaced
//! while running (new connections get the new one; no restart).

use std::{future::Future, path::Path, sync::Arc, time::Duration};

use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use parking_lot::RwLock;
use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::{State, error::Error, router};

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for requests in flight before closing their connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook's serving certificate, replaceable at runtime.
///
/// The operator feeds it from the `trellis-webhook-tls` Secret (`tls.crt`, `tls.key`) and
/// calls [`CertResolver::reload_pem`] whenever the Secret changes.
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

impl CertResolver {
    /// A resolver serving the PEM certificate chain `cert_pem` with the PEM private key
    /// `key_pem`.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = certified_key(&provider, cert_pem, key_pem)?;
        Ok(Self {
            current: RwLock::new(Arc::new(key)),
            provider,
        })
    }

    /// A resolver serving the PEM files at `cert_path` and `key_path`.
    pub fn from_pem_files(cert_path: &Path, key_path: &Path) -> Result<Self, Error> {
        let (cert, key) = read_files(cert_path, key_path)?;
        Self::from_pem(&cert, &key)
    }

    /// Replaces the certificate; on error the current one stays in use.
    pub fn reload_pem(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), Error> {
        let key = certified_key(&self.provider, cert_pem, key_pem)?;
        *self.current.write() = Arc::new(key);
        tracing::info!("Webhook certificate reloaded");
        Ok(())
    }

    /// Replaces the certificate from PEM files; on error the current one stays in use.
    pub fn reload_pem_files(&self, cert_path: &Path, key_path: &Path) -> Result<(), Error> {
        let (cert, key) = read_files(cert_path, key_path)?;
        self.reload_pem(&cert, &key)
    }

    /// A rustls server configuration (HTTP/2 and HTTP/1.1) that always uses the current
    /// certificate of `self`.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, Error> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls {
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

fn read_files(cert_path: &Path, key_path: &Path) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| Error::Tls {
            reason: format!("cannot read {}: {e}", path.display()),
        })
    };
    Ok((read(cert_path)?, read(key_path)?))
}

fn certified_key(
    provider: &CryptoProvider,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, Error> {
    let tls = |reason: String| Error::Tls { reason };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(format!("certificate PEM does not parse: {e}")))?;
    if chain.is_empty() {
        return Err(tls("no certificate in the PEM".to_string()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| tls(format!("private key PEM does not parse: {e}")))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| tls(format!("certificate and key do not fit: {e}")))
}

/// Serves [`router`]`(state)` over TLS on `listener` until `shutdown` completes.
///
/// Each connection uses the certificate `certs` holds when it starts. At shutdown the
/// listener closes, and open connections finish their requests in flight (up to
/// [`DRAIN_TIMEOUT`]) before they close.
pub async fn serve(
    listener: TcpListener,
    certs: Arc<CertResolver>,
    state: State,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let acceptor = TlsAcceptor::from(Arc::new(certs.server_config()?));
    let app = router(state);
    let local = listener.local_addr().map_err(Error::Io)?;
    tracing::info!(%local, "Webhook server listening");
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "Accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "Webhook connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(%local, "Webhook connections still open after the drain timeout");
    }
    tracing::info!(%local, "Webhook server stopped");
    Ok(())
}
