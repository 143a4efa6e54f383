//! In-process proxy over real sockets: listeners, original destinations, detection, TCP
//! forwarding, admin endpoints, TCP metrics and graceful shutdown.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use trellis_proxy::{
    app::{Options, Running, config},
    test_util::TestPki,
};
use trellis_tests::proxy::{
    assert_metrics_contain, echo_server, http_get, roundtrip, spawn, tcp_roundtrip, to,
};

/// An uncertified proxy (these tests never certify) with `overrides` and `options`.
async fn proxy(overrides: &[(&str, &str)], options: Options) -> Running {
    trellis_tests::trace_init();
    spawn(&TestPki::new().anchor_pem, overrides, options).await
}

#[tokio::test]
async fn admin_serves_live_ready_and_metrics() {
    let proxy = proxy(&[], Options::default()).await;
    assert_eq!(http_get(proxy.admin_addr, "/live").await.0, 200);
    // Not ready until the proxy holds a certificate.
    assert_eq!(http_get(proxy.admin_addr, "/ready").await.0, 503);
    proxy.readiness.set_ready();
    assert_eq!(http_get(proxy.admin_addr, "/ready").await.0, 200);
    let (status, body) = http_get(proxy.admin_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("proxy_build_info{version=\""), "{body}");
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn outbound_and_inbound_forward_tcp_to_the_original_destination() {
    let app = echo_server(b"").await;
    let proxy = proxy(&[], to(app)).await;
    // Opaque bytes reach the app intact both ways. Outbound traffic to an undiscovered
    // target is forwarded as bytes, so an HTTP/1 request line and an HTTP/2 preface do too
    // (inbound HTTP is proxied per request: see proxy_http.rs).
    let opaque = b"\x00\x01binary protocol";
    assert_eq!(tcp_roundtrip(proxy.inbound_addr, opaque).await, opaque);
    for msg in [
        &opaque[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        assert_eq!(tcp_roundtrip(proxy.outbound_addrs[0], msg).await, msg);
    }
    let body = assert_metrics_contain(
        proxy.admin_addr,
        "tcp_open_total{direction=\"outbound\",peer=\"dst\"",
    )
    .await;
    let target = format!("target_addr=\"{app}\"");
    let inbound_line = body
        .lines()
        .find(|l| {
            l.starts_with("tcp_read_bytes_total{direction=\"inbound\",peer=\"src\"")
                && l.contains(&target)
        })
        .unwrap_or_else(|| panic!("no inbound read bytes in {body}"));
    assert!(
        inbound_line.contains("tls=\"no_identity\",no_tls_reason=\"loopback\""),
        "{inbound_line}"
    );
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn server_first_protocols_work_on_opaque_ports_and_after_the_detect_timeout() {
    let app = echo_server(b"220 hello\r\n").await;
    let port = app.port().to_string();
    let proxy = proxy(
        &[
            (config::ENV_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION, &port),
            (config::ENV_OUTBOUND_DETECT_TIMEOUT, "100ms"),
        ],
        to(app),
    )
    .await;
    for addr in [proxy.inbound_addr, proxy.outbound_addrs[0]] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut greeting = [0; 11];
        stream.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting, b"220 hello\r\n");
    }
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn connections_without_a_redirect_are_closed() {
    let proxy = proxy(&[], Options::default()).await;
    // Without a redirect, SO_ORIGINAL_DST either fails or names the listener itself (a
    // loop); either way the connection is closed, not forwarded.
    let mut stream = TcpStream::connect(proxy.outbound_addrs[0]).await.unwrap();
    let _ = stream.write_all(b"hello").await;
    let mut buf = [0; 1];
    assert_eq!(stream.read(&mut buf).await.unwrap_or(0), 0);
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn shutdown_drains_open_connections_then_closes_the_rest() {
    let app = echo_server(b"").await;
    let proxy = proxy(&[(config::ENV_SHUTDOWN_GRACE_PERIOD, "200ms")], to(app)).await;
    let outbound = proxy.outbound_addrs[0];
    let mut stream = TcpStream::connect(outbound).await.unwrap();
    let mut buf = roundtrip(&mut stream, b"\x00ping").await;

    // The connection never ends on its own: the grace period runs out and it is closed.
    let clean = tokio::time::timeout(Duration::from_secs(30), proxy.shutdown())
        .await
        .expect("shutdown finishes after the grace period");
    assert!(!clean, "an idle connection outlived the grace period");
    assert_eq!(
        stream.read(&mut buf).await.unwrap_or(0),
        0,
        "connection closed"
    );
    // The listener is gone.
    assert!(TcpStream::connect(outbound).await.is_err());
}
