use http::{HeaderValue, Request, Response, StatusCode, Version, header};

use super::*;

fn request(version: Version, uri: &str) -> Request<()> {
    let mut req = Request::builder()
        .version(version)
        .uri(uri)
        .body(())
        .unwrap();
    req.headers_mut()
        .insert(header::HOST, HeaderValue::from_static("web.shop:8080"));
    req
}

#[test]
fn upgrade_carries_the_version_and_downgrade_restores_it() {
    for (version, proto) in [
        (Version::HTTP_11, "HTTP/1.1"),
        (Version::HTTP_10, "HTTP/1.0"),
    ] {
        // Client proxy: HTTP/1 becomes HTTP/2 with an absolute URI and the header.
        let mut req = request(version, "/books?page=2");
        req.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert_eq!(orig_proto::upgrade(&mut req), Some(version));
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.uri(), "http://web.shop:8080/books?page=2");
        assert_eq!(req.headers()[L5D_ORIG_PROTO], proto);
        assert!(!req.headers().contains_key(header::HOST));
        assert!(!req.headers().contains_key(header::CONNECTION));

        // Server proxy: back to HTTP/1.1 with Host from the authority.
        let orig = orig_proto::downgrade(&mut req);
        assert_eq!(orig.as_ref().map(|v| v.to_str().unwrap()), Some(proto));
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.headers()[header::HOST], "web.shop:8080");
        assert!(!req.headers().contains_key(L5D_ORIG_PROTO));

        // The header goes back on the response, and the client proxy restores the version.
        let mut rsp = Response::new(());
        orig_proto::annotate(&mut rsp, orig);
        assert_eq!(rsp.headers()[L5D_ORIG_PROTO], proto);
        *rsp.version_mut() = Version::HTTP_2;
        orig_proto::restore(&mut rsp, Some(version));
        assert_eq!(rsp.version(), version);
        assert!(!rsp.headers().contains_key(L5D_ORIG_PROTO));
    }
}

#[test]
fn http2_requests_are_left_alone() {
    let mut req = request(Version::HTTP_2, "http://web.shop:8080/");
    assert_eq!(orig_proto::upgrade(&mut req), None);
    assert!(!req.headers().contains_key(L5D_ORIG_PROTO));
    assert_eq!(orig_proto::downgrade(&mut req), None);
    assert_eq!(req.version(), Version::HTTP_2);
}

#[test]
fn only_http1_upgrade_requests_are_spliced() {
    let mut req = request(Version::HTTP_11, "/ws");
    assert!(!upgrade::is_upgrade(&req));
    req.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    assert!(upgrade::is_upgrade(&req));
    *req.version_mut() = Version::HTTP_2;
    assert!(!upgrade::is_upgrade(&req));
}

#[test]
fn proxy_errors_name_their_reason() {
    let rsp = proxy_error(StatusCode::BAD_GATEWAY, "endpoint unreachable");
    assert_eq!(rsp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(rsp.headers()[L5D_PROXY_ERROR], "endpoint unreachable");
    let rsp = proxy_error(StatusCode::BAD_REQUEST, "bad\nvalue");
    assert!(!rsp.headers().contains_key(L5D_PROXY_ERROR));
}

#[test]
fn forbidden_is_403_or_grpc_permission_denied() {
    let http = Request::new(());
    let rsp = forbidden(&http, "unauthorized connection");
    assert_eq!(rsp.status(), StatusCode::FORBIDDEN);
    assert_eq!(rsp.headers()[L5D_PROXY_ERROR], "unauthorized connection");

    let mut grpc = Request::new(());
    grpc.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc+proto"),
    );
    assert!(is_grpc(&grpc));
    let rsp = forbidden(&grpc, "denied");
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(grpc_status(&rsp), Some(GRPC_PERMISSION_DENIED));
    assert_eq!(rsp.headers()["grpc-message"], "denied");
}

#[test]
fn grpc_status_reads_numbers_only() {
    let mut rsp = Response::new(());
    assert_eq!(grpc_status(&rsp), None);
    rsp.headers_mut()
        .insert("grpc-status", HeaderValue::from_static("14"));
    assert_eq!(grpc_status(&rsp), Some(14));
    rsp.headers_mut()
        .insert("grpc-status", HeaderValue::from_static("oops"));
    assert_eq!(grpc_status(&rsp), None);
}

#[test]
fn trailers_sent_over_http2_lose_connection_specific_fields() {
    let mut trailers = http::HeaderMap::new();
    for name in orig_proto::CONNECTION_SPECIFIC {
        trailers.insert(name, http::HeaderValue::from_static("x"));
    }
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frame = orig_proto::strip_trailers(hyper::body::Frame::trailers(trailers));
    let kept = frame.into_trailers().expect("still trailers");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept["grpc-status"], "0");
}
