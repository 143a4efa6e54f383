//! Serving HTTP on an accepted connection, with graceful shutdown when draining starts.

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

/// Runs a hyper connection to its end, shutting it down gracefully once `drain` starts.
/// A macro because HTTP/1 and HTTP/2 connections share no trait for `graceful_shutdown`.
macro_rules! until_drained {
    ($conn:expr, $drain:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        tokio::select! {
            res = conn.as_mut() => res,
            () = $drain.signaled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    }};
}

/// Serves HTTP (HTTP/2 when `h2`, else HTTP/1 with upgrades) on `io` with `svc`. When
/// `drain` starts, the connection finishes its in-flight requests and closes (HTTP/1 stops
/// keep-alive, HTTP/2 sends GOAWAY).
pub async fn serve<T, S, B>(io: T, h2: bool, svc: S, drain: crate::drain::Drain)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(io);
    let res = if h2 {
        until_drained!(
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, svc),
            drain
        )
    } else {
        until_drained!(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .with_upgrades(),
            drain
        )
    };
    if let Err(error) = res {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}
