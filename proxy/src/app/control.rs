//! Control-plane channels: plaintext h2c to loopback addresses, TLS verifying the server's
//! identity otherwise (with this proxy's certificate once it has one).
//!
//! Watches are long-lived streams on which the proxy sends nothing, so a connection whose peer
//! vanished behind a partition would look open forever: HTTP/2 keepalive pings find it, and
//! the watches resubscribe on a new one.

use std::{pin::Pin, sync::Arc, time::Duration};

use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tonic::transport::{Channel, Endpoint};

use super::config::ControlAddr;
use crate::tls;

/// How often an idle control-plane connection is pinged.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the connection is closed.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long connecting (TCP and TLS) to the control plane may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    let endpoint = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|source| Error::Uri {
            addr: authority.clone(),
            source,
        })?
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
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
        let connect = async move {
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let io: Pin<Box<dyn Io>> = match identity {
                None => Box::pin(tcp),
                Some(id) => Box::pin(client.connect(tcp, &id).await?),
            };
            Ok::<_, std::io::Error>(TokioIo::new(io))
        };
        async move {
            tokio::time::timeout(CONNECT_TIMEOUT, connect)
                .await
                .unwrap_or_else(|_| {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connecting took longer than {CONNECT_TIMEOUT:?}"),
                    ))
                })
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}
