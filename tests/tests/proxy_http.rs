//! In-process inbound HTTP over real sockets: forwarding to the app, the HTTP/2 →
//! HTTP/1 downgrade with `l5d-orig-proto`, `l5d-client-id`, upgrades, and HTTP golden metrics.

use std::{net::SocketAddr, time::Duration};

use trellis_proxy::{
    app::{self, config},
    test_util::LOCAL_IDENTITY,
};
use trellis_tests::proxy::{
    Mesh, WAIT, connect_remote, http_app, http_get, http1_send, http2_send, serve_http_app, to,
    upgrade_and_echo,
};

const CLIENT_IDENTITY: &str = "client.shop.serviceaccount.identity.trellis.cluster.local";

/// A certified proxy in front of a fresh [`http_app`], with `overrides`.
async fn proxy_for_app(mesh: &Mesh, overrides: &[(&str, &str)]) -> (app::Running, SocketAddr) {
    let app = http_app().await;
    (mesh.proxy(LOCAL_IDENTITY, overrides, to(app)).await, app)
}

fn get(path: &str) -> http::Request<String> {
    trellis_tests::proxy::get(path, "web.shop.svc.cluster.local")
}

#[tokio::test]
async fn inbound_http1_is_forwarded_and_counted() {
    let mesh = Mesh::new().await;
    let (proxy, app) = proxy_for_app(&mesh, &[]).await;

    let rsp = http1_send(connect_remote(proxy.inbound_addr).await, get("/hello")).await;
    assert_eq!(rsp.status(), 200);
    assert_eq!(rsp.body(), "version=HTTP/1.1 client-id= path=/hello");
    let rsp = http1_send(connect_remote(proxy.inbound_addr).await, get("/status/503")).await;
    assert_eq!(rsp.status(), 503);

    let (_, body) = http_get(proxy.admin_addr, "/metrics").await;
    let endpoint = format!(
        "direction=\"inbound\",target_addr=\"{app}\",target_ip=\"127.0.0.1\",target_port=\"{}\",tls=\"no_identity\",no_tls_reason=\"loopback\",srv_group=\"\",srv_kind=\"default\",srv_name=\"all-unauthenticated\",srv_port=\"{}\"",
        app.port(),
        app.port()
    );
    for want in [
        format!("request_total{{{endpoint}}} 2"),
        format!(
            "response_total{{{endpoint},status_code=\"200\",classification=\"success\",grpc_status=\"\",error=\"\"}} 1"
        ),
        format!(
            "response_total{{{endpoint},status_code=\"503\",classification=\"failure\",grpc_status=\"\",error=\"\"}} 1"
        ),
        format!("response_latency_ms_bucket{{le=\"50000.0\",{endpoint},status_code=\"200\"}} 1"),
        format!("response_latency_ms_count{{{endpoint},status_code=\"200\"}} 1"),
    ] {
        assert!(body.contains(&want), "want {want} in\n{body}");
    }
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn inbound_downgrades_orig_proto_and_names_the_meshed_client() {
    let mesh = Mesh::new().await;
    let (proxy, _) = proxy_for_app(&mesh, &[]).await;

    let client = mesh.client_tls(Some(CLIENT_IDENTITY));
    let tls = client
        .connect(connect_remote(proxy.inbound_addr).await, LOCAL_IDENTITY)
        .await
        .unwrap();
    let req = http::Request::get("http://web.shop.svc.cluster.local/orig")
        .header("l5d-orig-proto", "HTTP/1.1")
        // A client must not be able to claim an identity.
        .header("l5d-client-id", "forged")
        .body(String::new())
        .unwrap();
    let rsp = http2_send(tls, req).await;
    assert_eq!(rsp.status(), 200);
    assert_eq!(
        rsp.body(),
        &format!("version=HTTP/1.1 client-id={CLIENT_IDENTITY} path=/orig")
    );
    assert_eq!(rsp.headers()["l5d-orig-proto"], "HTTP/1.1");

    // Without the header, HTTP/2 stays HTTP/2 to the app.
    let tls = client
        .connect(connect_remote(proxy.inbound_addr).await, LOCAL_IDENTITY)
        .await
        .unwrap();
    let rsp = http2_send(
        tls,
        http::Request::get("http://web/h2")
            .body(String::new())
            .unwrap(),
    )
    .await;
    assert_eq!(
        rsp.body(),
        &format!("version=HTTP/2.0 client-id={CLIENT_IDENTITY} path=/h2")
    );
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn inbound_http1_upgrades_pass_through() {
    let mesh = Mesh::new().await;
    let (proxy, _) = proxy_for_app(&mesh, &[]).await;

    let io = connect_remote(proxy.inbound_addr).await;
    upgrade_and_echo(io, "web", b"frames after the upgrade").await;
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_closes_idle_keep_alive() {
    let mesh = Mesh::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = listener.local_addr().unwrap();
    let seen = serve_http_app(listener, "");
    // Long enough that a clean shutdown proves connections were drained.
    let overrides = [(config::ENV_SHUTDOWN_GRACE_PERIOD, "1h")];
    let proxy = mesh.proxy(LOCAL_IDENTITY, &overrides, to(app)).await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(
        connect_remote(proxy.inbound_addr).await,
    ))
    .await
    .unwrap();
    tokio::spawn(conn);
    // A keep-alive connection that served one request and one that is idle.
    assert_eq!(
        send.send_request(get("/first")).await.unwrap().status(),
        200
    );
    let _idle = connect_remote(proxy.inbound_addr).await;
    // A request in flight when shutdown starts still completes.
    let in_flight = tokio::spawn(async move { send.send_request(get("/slow")).await });
    // Shut down only once the app holds the request (it answers 100 ms later).
    tokio::time::timeout(WAIT, async {
        while !seen.lock().iter().any(|path| path == "/slow") {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the slow request reaches the app");
    let clean = tokio::time::timeout(WAIT, proxy.shutdown()).await;
    let rsp = in_flight.await.unwrap().unwrap();
    assert_eq!(rsp.status(), 200);
    // The idle connection, still in detection, was closed without waiting for its timeout.
    assert_eq!(clean.ok(), Some(true), "shutdown drained within the wait");
}
