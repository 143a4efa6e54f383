//! HTTP helpers shared by the inbound and outbound stacks.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

/// Header naming an error the proxy made.
pub const L5D_PROXY_ERROR: &str = "l5d-proxy-error";
/// gRPC status code `PERMISSION_DENIED`.
pub const GRPC_PERMISSION_DENIED: u32 = 7;

/// True for gRPC requests (`content-type: application/grpc...`).
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The response to a request the policy forbids: `403` for HTTP, a trailers-only
/// `PermissionDenied` for gRPC; both name the reason in `l5d-proxy-error`.
pub fn forbidden<B>(req: &Request<B>, reason: &str) -> Response<Full<Bytes>> {
    let reason =
        HeaderValue::from_str(reason).unwrap_or_else(|_| HeaderValue::from_static("unauthorized"));
    let mut rsp = Response::new(Full::new(Bytes::new()));
    if is_grpc(req) {
        let headers = rsp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from(GRPC_PERMISSION_DENIED));
        headers.insert("grpc-message", reason.clone());
    } else {
        *rsp.status_mut() = StatusCode::FORBIDDEN;
        *rsp.body_mut() = Full::new(Bytes::from_static(b"forbidden\n"));
    }
    rsp.headers_mut().insert(L5D_PROXY_ERROR, reason);
    rsp
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
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, svc);
        tokio::pin!(conn);
        tokio::select! {
            res = conn.as_mut() => res,
            () = drain.signaled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    } else {
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, svc)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            res = conn.as_mut() => res,
            () = drain.signaled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    if let Err(error) = res {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}
