//! HTTP/1 over HTTP/2 between proxies: the client proxy upgrades HTTP/1 requests to HTTP/2
//! naming the original version in `l5d-orig-proto`; the server proxy downgrades them.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri, Version, header};
use http_body_util::{BodyExt, combinators::MapFrame};
use hyper::body::Frame;

use super::{L5D_ORIG_PROTO, ReqBody};

/// The `l5d-orig-proto` value for an HTTP/1 `version`; `None` for HTTP/2.
pub fn header_value(version: Version) -> Option<&'static str> {
    match version {
        Version::HTTP_2 => None,
        Version::HTTP_10 => Some("HTTP/1.0"),
        _ => Some("HTTP/1.1"),
    }
}

/// Makes an HTTP/1 request an HTTP/2 one carrying `l5d-orig-proto`: the URI becomes
/// absolute (from `Host`) and hop-by-hop headers go. Returns the original version, or
/// `None` when the request was HTTP/2 already (and is left as it is).
pub fn upgrade<B>(req: &mut Request<B>) -> Option<Version> {
    let version = req.version();
    let proto = header_value(version)?;
    // HTTP/2 needs an absolute URI (`:authority`), taken from Host.
    if req.uri().authority().is_none()
        && let Some(host) = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    {
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        if let Ok(uri) = Uri::try_from(format!("http://{host}{path}")) {
            *req.uri_mut() = uri;
        }
    }
    let headers = req.headers_mut();
    headers.remove(header::HOST);
    headers.remove(header::CONNECTION);
    headers.remove("keep-alive");
    headers.remove(header::TRANSFER_ENCODING);
    headers.insert(L5D_ORIG_PROTO, HeaderValue::from_static(proto));
    *req.version_mut() = Version::HTTP_2;
    Some(version)
}

/// A request body sent over HTTP/2: the HTTP/1 body, its trailers without the
/// connection-specific fields HTTP/2 forbids.
pub type H2Body = MapFrame<ReqBody, fn(Frame<Bytes>) -> Frame<Bytes>>;

/// Fields HTTP/2 forbids (RFC 9113, section 8.2.2), in headers and trailers alike.
pub(crate) const CONNECTION_SPECIFIC: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
];

/// `body`, fit to be sent over HTTP/2. An HTTP/1 client may send any field in its trailers;
/// one HTTP/2 forbids would fail the stream without ending it, and the request would hang.
pub fn h2_body(body: ReqBody) -> H2Body {
    body.map_frame(strip_trailers as fn(Frame<Bytes>) -> Frame<Bytes>)
}

pub(crate) fn strip_trailers(mut frame: Frame<Bytes>) -> Frame<Bytes> {
    if let Some(trailers) = frame.trailers_mut() {
        for name in CONNECTION_SPECIFIC {
            trailers.remove(name);
        }
    }
    frame
}

/// Undoes [`upgrade`] on the response: drops `l5d-orig-proto` and restores the request's
/// original HTTP/1 version.
pub fn restore<B>(rsp: &mut Response<B>, orig: Option<Version>) {
    rsp.headers_mut().remove(L5D_ORIG_PROTO);
    if let Some(orig) = orig {
        *rsp.version_mut() = if orig == Version::HTTP_10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
    }
}

/// Takes `l5d-orig-proto` off a request and, on an HTTP/2 request, downgrades it to
/// HTTP/1.1 with `Host` from its authority. Returns the header, for [`annotate`].
pub fn downgrade<B>(req: &mut Request<B>) -> Option<HeaderValue> {
    let orig = req.headers_mut().remove(L5D_ORIG_PROTO)?;
    if req.version() == Version::HTTP_2 {
        let host = req.uri().authority().map(|a| a.as_str().to_string());
        *req.version_mut() = Version::HTTP_11;
        if let Some(host) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
            req.headers_mut().entry(header::HOST).or_insert(host);
        }
    }
    Some(orig)
}

/// Puts the `l5d-orig-proto` that [`downgrade`] took back on the response.
pub fn annotate<B>(rsp: &mut Response<B>, orig: Option<HeaderValue>) {
    if let Some(orig) = orig {
        rsp.headers_mut().insert(L5D_ORIG_PROTO, orig);
    }
}
