//! The outbound TLS client: SNI and server verification by the peer's identity.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, pki_types::ServerName, version::TLS13};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::{Error, Store, provider};

/// Connects to peers whose certificate must carry an expected identity.
#[derive(Clone, Debug)]
pub struct Client {
    config: Arc<ClientConfig>,
}

impl Client {
    /// A client that verifies servers against `roots` and presents `store`'s certificate
    /// once it holds one (pass `None` for the identity controller, before certification).
    pub fn new(roots: Arc<RootCertStore>, store: Option<Arc<Store>>) -> Result<Self, Error> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&TLS13])?
            .with_root_certificates(roots);
        let config = match store {
            Some(store) => builder.with_client_cert_resolver(store),
            None => builder.with_no_client_auth(),
        };
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The same client, offering `alpn` (e.g. the transport-header protocol).
    pub fn with_alpn(&self, alpn: &[u8]) -> Self {
        let mut config = (*self.config).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        Self {
            config: Arc::new(config),
        }
    }

    /// Handshakes on `io` with SNI `server_id` and fails unless the server's certificate
    /// chains to the anchors and has `server_id` as a SAN.
    pub async fn connect<T>(&self, io: T, server_id: &str) -> std::io::Result<TlsStream<T>>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(server_id.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        TlsConnector::from(self.config.clone())
            .connect(name, io)
            .await
    }
}
