//! Control-plane channels: plaintext h2c to loopback addresses, TLS verifying the server's
//! identity otherwise (with this proxy's certificate once it has one).

use std::{pin::Pin, sync::Arc};

use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tonic::transport::{Channel, Endpoint};

use super::config::ControlAddr;
use crate::tls;

/// Failure to set up a control-plane channel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address does not form a URI.
    #[error("control-plane address {addr} is not a valid URI")]
    Uri {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// A non-loopback address has no identity to verify.
    #[error("control-plane address {addr} needs a server identity (its *_SVC_NAME)")]
    NoIdentity {
        /// The address.
        addr: String,
    },
}

/// An I/O stream the channel can use: plain TCP or TLS over it.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A lazily connecting gRPC channel to `addr`. Loopback addresses are plaintext; others use
/// TLS with SNI and verification against the server's identity via `client`.
pub fn channel(addr: &ControlAddr, client: &tls::client::Client) -> Result<Channel, Error> {
    let authority = addr.authority();
    let endpoint =
        Endpoint::from_shared(format!("http://{authority}")).map_err(|source| Error::Uri {
            addr: authority.clone(),
            source,
        })?;
    let identity = if addr.is_loopback() {
        None
    } else {
        Some(addr.identity.clone().ok_or_else(|| Error::NoIdentity {
            addr: authority.clone(),
        })?)
    };
    let host = addr.host.clone();
    let port = addr.port;
    let client = Arc::new(client.clone());
    let connector = tower::service_fn(move |_: http::Uri| {
        let host = host.clone();
        let identity = identity.clone();
        let client = client.clone();
        async move {
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let io: Pin<Box<dyn Io>> = match identity {
                None => Box::pin(tcp),
                Some(id) => Box::pin(client.connect(tcp, &id).await?),
            };
            Ok::<_, std::io::Error>(TokioIo::new(io))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}
