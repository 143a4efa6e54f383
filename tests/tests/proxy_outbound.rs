//! In-process outbound over real sockets: discovery from a fake destination controller,
//! HTTP/1 from the app carried as HTTP/2 over mTLS to peer proxies, P2C peak-EWMA balancing
//! across endpoints, endpoint removal, fail-static, fallback to the original destination,
//! and outbound metrics with `dst_*` labels.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail by panicking"
)]

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpStream;
use trellis_proxy::{
    app::{self, Options, config},
    test_util::{LOCAL_IDENTITY, TestPki},
    transport::OrigDst,
};
use trellis_tests::{
    assert_eventually,
    control::{FakeDestination, FakeIdentity, meshed_endpoint},
    proxy::{config, echo_server, http_app_named, http_get, http1_send},
};

const WEB_IDENTITY: &str = "web.shop.serviceaccount.identity.trellis.cluster.local";
const WEB_FQN: &str = "web.shop.svc.cluster.local";
const WAIT: Duration = Duration::from_secs(20);

/// A Service IP that is never dialled: discovery resolves it to the peers on loopback.
fn service_ip() -> SocketAddr {
    "198.18.0.10:80".parse().unwrap()
}

async fn certified(
    pki: &Arc<TestPki>,
    identity_addr: &str,
    name: &str,
    extra: &[(&str, &str)],
    options: Options,
) -> app::Running {
    let mut overrides = vec![
        (config::ENV_IDENTITY_SVC_ADDR, identity_addr),
        (config::ENV_IDENTITY_LOCAL_NAME, name),
    ];
    overrides.extend_from_slice(extra);
    let proxy = app::spawn(config(&pki.anchor_pem, &overrides), options)
        .await
        .unwrap();
    assert_eventually!(http_get(proxy.admin_addr, "/ready").await.0 == 200, WAIT);
    proxy
}

/// A meshed backend: an HTTP app named `name` behind its own proxy.
async fn backend(pki: &Arc<TestPki>, identity_addr: &str, name: &'static str) -> app::Running {
    let app = http_app_named(name).await;
    certified(
        pki,
        identity_addr,
        WEB_IDENTITY,
        &[],
        Options {
            inbound_orig_dst: OrigDst::Fixed(app),
            outbound_orig_dst: OrigDst::Fixed(app),
            ..Default::default()
        },
    )
    .await
}

async fn request(outbound: SocketAddr, path: &str) -> http::Response<String> {
    let req = http::Request::get(path)
        .header("host", "web.shop.svc.cluster.local")
        .body(String::new())
        .unwrap();
    http1_send(TcpStream::connect(outbound).await.unwrap(), req).await
}

#[tokio::test]
async fn http_is_balanced_over_mtls_h2_across_endpoints() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let identity = FakeIdentity::new(pki.clone(), Duration::from_secs(3600))
        .spawn(false)
        .await
        .to_string();
    let web0 = backend(&pki, &identity, "web-0").await;
    let web1 = backend(&pki, &identity, "web-1").await;

    let dst = FakeDestination::default();
    dst.set_service(service_ip(), WEB_FQN);
    let path = format!("{WEB_FQN}:80");
    dst.set_endpoints(
        &path,
        vec![
            meshed_endpoint(web0.inbound_addr, WEB_IDENTITY, "web-0"),
            meshed_endpoint(web1.inbound_addr, WEB_IDENTITY, "web-1"),
        ],
    );
    let dst_addr = dst.clone().spawn().await.to_string();
    let client = certified(
        &pki,
        &identity,
        LOCAL_IDENTITY,
        &[(config::ENV_DESTINATION_SVC_ADDR, &dst_addr)],
        Options {
            inbound_orig_dst: OrigDst::Syscall,
            outbound_orig_dst: OrigDst::Fixed(service_ip()),
            ..Default::default()
        },
    )
    .await;
    let outbound = client.outbound_addrs[0];

    // The app's HTTP/1 reaches a backend app as HTTP/1.1, with the caller's identity.
    let rsp = request(outbound, "/hello").await;
    assert_eq!(rsp.status(), 200, "{rsp:?}");
    assert!(
        rsp.body().starts_with(&format!(
            "version=HTTP/1.1 client-id={LOCAL_IDENTITY} path=/hello app=web-"
        )),
        "{}",
        rsp.body()
    );
    assert!(rsp.headers().get("l5d-orig-proto").is_none());

    // Concurrent slow requests spread over both endpoints (peak-EWMA counts pending load).
    let rsps = futures::future::join_all((0..16).map(|_| request(outbound, "/slow"))).await;
    let apps: BTreeSet<String> = rsps
        .iter()
        .map(|r| r.body().rsplit("app=").next().unwrap().to_string())
        .collect();
    assert_eq!(
        apps,
        BTreeSet::from(["web-0".to_string(), "web-1".to_string()])
    );

    // Outbound metrics carry the peer identity and the discovery labels.
    let (_, body) = http_get(client.admin_addr, "/metrics").await;
    let want = format!(
        "response_total{{direction=\"outbound\",target_addr=\"{}\",target_ip=\"127.0.0.1\",target_port=\"{}\",tls=\"true\",server_id=\"{WEB_IDENTITY}\",dst_namespace=\"shop\",dst_pod=\"web-0\",dst_service=\"web\",status_code=\"200\",classification=\"success\"",
        web0.inbound_addr,
        web0.inbound_addr.port()
    );
    assert!(body.contains(&want), "want {want} in\n{body}");

    // Removing an endpoint moves all traffic to the other.
    dst.set_endpoints(
        &path,
        vec![meshed_endpoint(web1.inbound_addr, WEB_IDENTITY, "web-1")],
    );
    assert_eventually!(
        {
            let rsps = futures::future::join_all((0..8).map(|_| request(outbound, "/slow"))).await;
            rsps.iter().all(|r| r.body().ends_with("app=web-1"))
        },
        WAIT
    );
    for proxy in [client, web0, web1] {
        assert!(proxy.shutdown().await);
    }
}

#[tokio::test]
async fn endpoints_stay_when_the_controller_goes_away() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let identity = FakeIdentity::new(pki.clone(), Duration::from_secs(3600))
        .spawn(false)
        .await
        .to_string();
    let web0 = backend(&pki, &identity, "web-0").await;
    let dst = FakeDestination::default();
    dst.set_service(service_ip(), WEB_FQN);
    dst.set_endpoints(
        &format!("{WEB_FQN}:80"),
        vec![meshed_endpoint(web0.inbound_addr, WEB_IDENTITY, "web-0")],
    );
    // The controller lives on its own runtime and thread so the test can stop it.
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        addr_tx.send(rt.block_on(dst.spawn())).unwrap();
        let _ = rt.block_on(stop_rx);
    });
    let dst_addr = addr_rx.await.unwrap().to_string();
    let client = certified(
        &pki,
        &identity,
        LOCAL_IDENTITY,
        &[(config::ENV_DESTINATION_SVC_ADDR, &dst_addr)],
        Options {
            inbound_orig_dst: OrigDst::Syscall,
            outbound_orig_dst: OrigDst::Fixed(service_ip()),
            ..Default::default()
        },
    )
    .await;
    let outbound = client.outbound_addrs[0];
    assert!(request(outbound, "/a").await.body().ends_with("app=web-0"));
    stop_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || controller.join().unwrap())
        .await
        .unwrap();
    // New connections and requests still reach the last known endpoint.
    for _ in 0..3 {
        assert!(request(outbound, "/b").await.body().ends_with("app=web-0"));
    }
    for proxy in [client, web0] {
        assert!(proxy.shutdown().await);
    }
}

#[tokio::test]
async fn unknown_targets_go_to_the_original_destination() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let app = echo_server(b"").await;
    let dst_addr = FakeDestination::default().spawn().await.to_string();
    let proxy = app::spawn(
        config(
            &pki.anchor_pem,
            &[(config::ENV_DESTINATION_SVC_ADDR, &dst_addr)],
        ),
        Options {
            inbound_orig_dst: OrigDst::Fixed(app),
            outbound_orig_dst: OrigDst::Fixed(app),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut stream = TcpStream::connect(proxy.outbound_addrs[0]).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"\x00plain").await.unwrap();
    let mut buf = [0; 6];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"\x00plain");
    drop(stream);
    let (_, body) = http_get(proxy.admin_addr, "/metrics").await;
    assert!(
        body.contains("direction=\"outbound\",peer=\"dst\""),
        "{body}"
    );
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn http1_upgrades_pass_through_meshed_targets() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let identity = FakeIdentity::new(pki.clone(), Duration::from_secs(3600))
        .spawn(false)
        .await
        .to_string();
    let web0 = backend(&pki, &identity, "web-0").await;
    let dst = FakeDestination::default();
    dst.set_service(service_ip(), WEB_FQN);
    dst.set_endpoints(
        &format!("{WEB_FQN}:80"),
        vec![meshed_endpoint(web0.inbound_addr, WEB_IDENTITY, "web-0")],
    );
    let dst_addr = dst.spawn().await.to_string();
    let client = certified(
        &pki,
        &identity,
        LOCAL_IDENTITY,
        &[(config::ENV_DESTINATION_SVC_ADDR, &dst_addr)],
        Options {
            inbound_orig_dst: OrigDst::Syscall,
            outbound_orig_dst: OrigDst::Fixed(service_ip()),
            ..Default::default()
        },
    )
    .await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(
        TcpStream::connect(client.outbound_addrs[0]).await.unwrap(),
    ))
    .await
    .unwrap();
    tokio::spawn(conn.with_upgrades());
    let req = http::Request::get("/ws")
        .header("host", "web.shop.svc.cluster.local")
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(String::new())
        .unwrap();
    let rsp = send.send_request(req).await.unwrap();
    assert_eq!(rsp.status(), 101);
    let mut io = hyper_util::rt::TokioIo::new(hyper::upgrade::on(rsp).await.unwrap());
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    io.write_all(b"websocket frames").await.unwrap();
    let mut buf = [0; 16];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"websocket frames");
    drop(io);
    for proxy in [client, web0] {
        assert!(proxy.shutdown().await);
    }
}

#[tokio::test]
async fn http2_from_the_app_stays_http2_end_to_end() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let identity = FakeIdentity::new(pki.clone(), Duration::from_secs(3600))
        .spawn(false)
        .await
        .to_string();
    let web0 = backend(&pki, &identity, "web-0").await;
    let dst = FakeDestination::default();
    dst.set_service(service_ip(), WEB_FQN);
    dst.set_endpoints(
        &format!("{WEB_FQN}:80"),
        vec![meshed_endpoint(web0.inbound_addr, WEB_IDENTITY, "web-0")],
    );
    let dst_addr = dst.spawn().await.to_string();
    let client = certified(
        &pki,
        &identity,
        LOCAL_IDENTITY,
        &[(config::ENV_DESTINATION_SVC_ADDR, &dst_addr)],
        Options {
            inbound_orig_dst: OrigDst::Syscall,
            outbound_orig_dst: OrigDst::Fixed(service_ip()),
            ..Default::default()
        },
    )
    .await;
    let req = http::Request::post("http://web.shop.svc.cluster.local/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .body(String::new())
        .unwrap();
    let rsp = trellis_tests::proxy::http2_send(
        TcpStream::connect(client.outbound_addrs[0]).await.unwrap(),
        req,
    )
    .await;
    assert_eq!(rsp.status(), 200);
    assert_eq!(
        rsp.body(),
        &format!("version=HTTP/2.0 client-id={LOCAL_IDENTITY} path=/pkg.Svc/Call app=web-0")
    );
    for proxy in [client, web0] {
        assert!(proxy.shutdown().await);
    }
}

#[tokio::test]
async fn opaque_traffic_carries_a_transport_header_to_the_peer_inbound_port() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let identity = FakeIdentity::new(pki.clone(), Duration::from_secs(3600))
        .spawn(false)
        .await
        .to_string();
    // The peer's app is a TCP echo server on an opaque port; the peer's own original
    // destination is irrelevant: the header names the port.
    let echo = echo_server(b"").await;
    let peer = certified(
        &pki,
        &identity,
        WEB_IDENTITY,
        &[],
        Options {
            inbound_orig_dst: OrigDst::Fixed("127.0.0.1:1".parse().unwrap()),
            outbound_orig_dst: OrigDst::Syscall,
            ..Default::default()
        },
    )
    .await;
    let dst = FakeDestination::default();
    dst.set_service(service_ip(), WEB_FQN);
    dst.set_endpoints(
        &format!("{WEB_FQN}:80"),
        vec![trellis_tests::control::opaque_transport_endpoint(
            echo,
            WEB_IDENTITY,
            peer.inbound_addr.port(),
        )],
    );
    let dst_addr = dst.spawn().await.to_string();
    let client = certified(
        &pki,
        &identity,
        LOCAL_IDENTITY,
        &[(config::ENV_DESTINATION_SVC_ADDR, &dst_addr)],
        Options {
            inbound_orig_dst: OrigDst::Syscall,
            outbound_orig_dst: OrigDst::Fixed(service_ip()),
            ..Default::default()
        },
    )
    .await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(client.outbound_addrs[0]).await.unwrap();
    stream.write_all(b"\x00opaque payload").await.unwrap();
    let mut buf = [0; 15];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"\x00opaque payload");
    drop(stream);
    // The peer saw an mTLS client with the caller's identity, targeting the echo port.
    let (_, body) = http_get(peer.admin_addr, "/metrics").await;
    let want = format!(
        "tcp_open_total{{direction=\"inbound\",peer=\"src\",target_addr=\"{echo}\",target_ip=\"127.0.0.1\",target_port=\"{}\",tls=\"true\",client_id=\"{LOCAL_IDENTITY}\"",
        echo.port()
    );
    assert!(body.contains(&want), "want {want} in\n{body}");
    for proxy in [client, peer] {
        assert!(proxy.shutdown().await);
    }
}
