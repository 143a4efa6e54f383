//! Listeners: bind, accept, read each connection's original destination, hand it off.

use std::{io, net::SocketAddr, time::Duration};

use nix::sys::socket::{setsockopt, sockopt};
use tokio::net::{TcpListener, TcpStream};

use super::OrigDst;
use crate::drain::Drain;

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// An accepted connection and its addresses.
#[derive(Debug)]
pub struct Accepted {
    /// The connection.
    pub stream: TcpStream,
    /// The peer's address.
    pub client_addr: SocketAddr,
    /// The address the peer connected to before redirection.
    pub orig_dst: SocketAddr,
    /// The listener's local address for this connection.
    pub local_addr: SocketAddr,
}

/// Binds a TCP listener.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Sets TCP keepalive with the given idle time on `stream`.
pub fn set_keepalive(stream: &TcpStream, idle: Duration) -> io::Result<()> {
    setsockopt(stream, sockopt::KeepAlive, &true)?;
    let secs = u32::try_from(idle.as_secs().max(1)).unwrap_or(u32::MAX);
    setsockopt(stream, sockopt::TcpKeepIdle, &secs)?;
    Ok(())
}

/// The next connection on `listener`, or `None` once `drain` starts. A failed accept (e.g.
/// out of file descriptors) is logged and tried again after [`ACCEPT_ERROR_BACKOFF`].
pub async fn accept(listener: &TcpListener, drain: &Drain) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            () = drain.signaled() => return None,
            res = listener.accept() => match res {
                Ok(conn) => return Some(conn),
                Err(error) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    let addr = listener.local_addr().ok();
                    tracing::warn!(%error, ?addr, "Failed to accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
        }
    }
}

/// Accepts connections until `drain` starts, running `handle` for each on a tracked task.
/// A connection whose original destination cannot be read is closed.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    orig_dst: OrigDst,
    keepalive: Option<Duration>,
    drain: Drain,
    handle: F,
) where
    F: Fn(Accepted) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    while let Some((stream, client_addr)) = accept(&listener, &drain).await {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "Failed to set TCP_NODELAY");
        }
        if let Some(idle) = keepalive
            && let Err(error) = set_keepalive(&stream, idle)
        {
            tracing::debug!(%error, "Failed to set TCP keepalive");
        }
        let local_addr = match stream.local_addr() {
            Ok(addr) => addr,
            Err(error) => {
                tracing::debug!(%client_addr, %error, "Connection closed before it was handled");
                continue;
            }
        };
        let orig_dst = match orig_dst.get(&stream) {
            Ok(addr) => addr,
            Err(error) => {
                tracing::warn!(%client_addr, %error, "Closing a connection without an original destination (is iptables redirection installed?)");
                continue;
            }
        };
        drain.spawn(handle(Accepted {
            stream,
            client_addr,
            orig_dst,
            local_addr,
        }));
    }
}

#[cfg(test)]
mod tests;
