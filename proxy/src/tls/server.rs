//! The inbound TLS server: terminates mTLS and learns the client's identity.

use std::sync::Arc;

use rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier, version::TLS13};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::{Error, Store, provider, verify::peer_identity};

/// Terminates TLS for this proxy's identity; clients may present a certificate.
#[derive(Clone, Debug)]
pub struct Server {
    config: Arc<ServerConfig>,
}

impl Server {
    /// A server that presents `store`'s certificate and verifies client certificates
    /// against `roots` (clients without one are accepted, with no identity).
    pub fn new(roots: Arc<RootCertStore>, store: Arc<Store>) -> Result<Self, Error> {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .allow_unauthenticated()
            .build()?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&TLS13])?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(store);
        // Offered by peers that send a transport header; other clients offer none.
        config.alpn_protocols = vec![crate::transport::header::ALPN.to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// Completes the handshake on `io`; returns the stream and the client's identity.
    pub async fn accept<T>(&self, io: T) -> std::io::Result<(TlsStream<T>, Option<String>)>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = TlsAcceptor::from(self.config.clone()).accept(io).await?;
        let client_id = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(peer_identity);
        Ok((stream, client_id))
    }
}
