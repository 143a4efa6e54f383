//! Opaque TCP forwarding between an accepted connection and a target.

use std::{io, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};

use crate::metrics::{
    Labels,
    tcp::{TcpConn, TcpMetrics, counted},
};

/// Failure to reach a target.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The connect did not finish in time.
    #[error("connect to {addr} timed out after {timeout:?}")]
    Timeout {
        /// The target.
        addr: SocketAddr,
        /// The timeout.
        timeout: Duration,
    },
    /// The connect failed.
    #[error("connect to {addr} failed")]
    Io {
        /// The target.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Connects to `addr` within `timeout`.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => Err(ConnectError::Timeout { addr, timeout }),
        Ok(Err(source)) => Err(ConnectError::Io { addr, source }),
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}

/// Forwards `client` to the server that `connect` opens, counting both connections on
/// `tcp` under `labels` (`peer="src"` for the client from the start, `peer="dst"` once the
/// server is connected). Ends when both sides close; an I/O error is labelled on the close.
pub async fn forward<C, S, E>(
    client: C,
    tcp: &TcpMetrics,
    labels: Labels,
    connect: impl Future<Output = Result<S, E>>,
) where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
    E: std::fmt::Display,
{
    let mut src = tcp.open("src", labels.clone());
    let server = match connect.await {
        Ok(server) => server,
        Err(error) => {
            tracing::info!(%error, "Target unreachable");
            return;
        }
    };
    let mut dst = tcp.open("dst", labels);
    if let Err(error) = copy(client, &src, server, &dst).await {
        tracing::debug!(%error, "Forwarded connection ended with an error");
        src.set_error(&error);
        dst.set_error(&error);
    }
}

/// Copies bytes both ways between `client` and `server` until both sides close, counting
/// them on the two connections' metrics.
async fn copy<C, S>(client: C, src: &TcpConn, server: S, dst: &TcpConn) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut client = counted(client, src);
    let mut server = counted(server, dst);
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
