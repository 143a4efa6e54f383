//! In-process inbound HTTP over real sockets: forwarding to the app, the HTTP/2 →
//! HTTP/1 downgrade with `l5d-orig-proto`, `l5d-client-id`, upgrades, and HTTP golden metrics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail by panicking"
)]

use std::{sync::Arc, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trellis_proxy::{
    app::{self, Options, config},
    test_util::{LOCAL_IDENTITY, TestPki},
    tls,
    transport::OrigDst,
};
use trellis_tests::{
    assert_eventually,
    control::FakeIdentity,
    proxy::{config, connect_remote, http_app, http_get, http1_send, http2_send},
};

const CLIENT_IDENTITY: &str = "client.shop.serviceaccount.identity.trellis.cluster.local";
const WAIT: Duration = Duration::from_secs(20);

async fn proxy_for(app: std::net::SocketAddr, pki: &Arc<TestPki>) -> app::Running {
    let identity = FakeIdentity::new(pki.clone(), Duration::from_secs(3600))
        .spawn(false)
        .await
        .to_string();
    let proxy = app::spawn(
        config(
            &pki.anchor_pem,
            &[(config::ENV_IDENTITY_SVC_ADDR, &identity)],
        ),
        Options {
            inbound_orig_dst: OrigDst::Fixed(app),
            outbound_orig_dst: OrigDst::Fixed(app),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eventually!(http_get(proxy.admin_addr, "/ready").await.0 == 200, WAIT);
    proxy
}

fn get(path: &str) -> http::Request<String> {
    http::Request::get(path)
        .header("host", "web.shop.svc.cluster.local")
        .body(String::new())
        .unwrap()
}

#[tokio::test]
async fn inbound_http1_is_forwarded_and_counted() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let app = http_app().await;
    let proxy = proxy_for(app, &pki).await;

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
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let app = http_app().await;
    let proxy = proxy_for(app, &pki).await;

    let store = tls::Store::new(CLIENT_IDENTITY.into());
    let leaf = pki.issue(CLIENT_IDENTITY);
    store.set(leaf.chain.clone(), leaf.key()).unwrap();
    let client = tls::client::Client::new(pki.roots(), Some(store)).unwrap();
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
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let app = http_app().await;
    let proxy = proxy_for(app, &pki).await;

    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(
        connect_remote(proxy.inbound_addr).await,
    ))
    .await
    .unwrap();
    tokio::spawn(conn.with_upgrades());
    let req = http::Request::get("/ws")
        .header("host", "web")
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(String::new())
        .unwrap();
    let rsp = send.send_request(req).await.unwrap();
    assert_eq!(rsp.status(), 101);
    let mut io = hyper_util::rt::TokioIo::new(hyper::upgrade::on(rsp).await.unwrap());
    io.write_all(b"frames after the upgrade").await.unwrap();
    let mut buf = [0; 24];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"frames after the upgrade");
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_closes_idle_keep_alive() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let app = http_app().await;
    let identity = FakeIdentity::new(pki.clone(), Duration::from_secs(3600))
        .spawn(false)
        .await
        .to_string();
    let proxy = app::spawn(
        config(
            &pki.anchor_pem,
            &[
                (config::ENV_IDENTITY_SVC_ADDR, &identity),
                // Long enough that a clean shutdown proves connections were drained.
                (config::ENV_SHUTDOWN_GRACE_PERIOD, "1h"),
            ],
        ),
        Options {
            inbound_orig_dst: OrigDst::Fixed(app),
            outbound_orig_dst: OrigDst::Fixed(app),
            ..Default::default()
        },
    )
    .await
    .unwrap();
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
    tokio::time::sleep(Duration::from_millis(20)).await;
    let clean = tokio::time::timeout(WAIT, proxy.shutdown()).await;
    let rsp = in_flight.await.unwrap().unwrap();
    assert_eq!(rsp.status(), 200);
    // The idle connection, still in detection, was closed without waiting for its timeout.
    assert_eq!(clean.ok(), Some(true), "shutdown drained within the wait");
}
