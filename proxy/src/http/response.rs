//! Responses the proxy makes itself, and what it reads from the responses it forwards.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};

use super::{Body, GRPC_PERMISSION_DENIED, L5D_PROXY_ERROR};

/// True for gRPC requests (`content-type: application/grpc...`).
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The `grpc-status` a response carries in its headers (trailers-only responses).
pub fn grpc_status<B>(rsp: &Response<B>) -> Option<u32> {
    rsp.headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// An empty `status` response naming `reason` in `l5d-proxy-error` (when it is a valid
/// header value).
pub fn proxy_error(status: StatusCode, reason: &str) -> Response<Body> {
    let mut rsp = Response::new(Either::Right(Full::new(Bytes::new())));
    *rsp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(reason) {
        rsp.headers_mut().insert(L5D_PROXY_ERROR, v);
    }
    rsp
}

/// The response to a request the policy forbids: `403` for HTTP, a trailers-only
/// `PermissionDenied` for gRPC; both name the reason in `l5d-proxy-error`.
pub fn forbidden<B>(req: &Request<B>, reason: &str) -> Response<Body> {
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
    rsp.map(Either::Right)
}
