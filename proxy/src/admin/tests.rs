use http_body_util::BodyExt;

use super::*;

async fn get(admin: &Admin, path: &str) -> (StatusCode, String) {
    let req = Request::get(path).body(()).unwrap();
    let rsp = admin.handle(&req);
    let status = rsp.status();
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn ready_turns_200_only_when_set() {
    let readiness = Readiness::new();
    let admin = Admin::new(readiness.clone(), Arc::new(Metrics::new()));
    assert_eq!(get(&admin, "/live").await.0, StatusCode::OK);
    assert_eq!(
        get(&admin, "/ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    readiness.set_ready();
    assert_eq!(get(&admin, "/ready").await.0, StatusCode::OK);
    assert_eq!(get(&admin, "/nope").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let metrics = Arc::new(Metrics::new());
    let labels = crate::metrics::labels::endpoint(
        crate::metrics::labels::Direction::Inbound,
        "10.0.0.1:8080".parse().unwrap(),
        &crate::metrics::TlsLabel::NoIdentity("no_tls_from_remote"),
        &[],
    );
    let conn = metrics.tcp.open("src", labels);
    let admin = Admin::new(Readiness::new(), metrics.clone());
    let (status, body) = get(&admin, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(r#"tcp_open_total{direction="inbound",peer="src",target_addr="10.0.0.1:8080",target_ip="10.0.0.1",target_port="8080",tls="no_identity",no_tls_reason="no_tls_from_remote"} 1"#),
        "{body}"
    );
    assert!(body.contains("tcp_open_connections{"), "{body}");
    drop(conn);
    let (_, body) = get(&admin, "/metrics").await;
    assert!(
        body.contains(r#"tcp_close_total{"#) && body.contains(r#"errno=""} 1"#),
        "{body}"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
}
