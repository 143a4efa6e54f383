//! In-process outbound over real sockets: discovery from fake destination and outbound
//! policy controllers, HTTP/1 from the app carried as HTTP/2 over mTLS to peer proxies, P2C
//! peak-EWMA balancing across endpoints, endpoint removal, fail-static, fallback to the
//! original destination, opaque policies skipping detection, discovery updates reaching new
//! connections, idle targets dropping their watches, and outbound metrics with `dst_*` labels.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail by panicking"
)]

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::net::TcpStream;
use trellis_api::outbound::AppProtocol;
use trellis_proxy::{
    app::{self, Options, config},
    test_util::{LOCAL_IDENTITY, TestPki},
    transport::OrigDst,
};
use trellis_tests::{
    assert_eventually,
    control::{
        FakeDestination, FakeIdentity, FakeOutboundPolicy, FakePolicy, Stoppable, meshed_endpoint,
        opaque_transport_endpoint, servers,
    },
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

/// A meshed backend: an HTTP app named `name` behind its own proxy, whose policy
/// controller admits every client on the app's port.
async fn backend(pki: &Arc<TestPki>, identity_addr: &str, name: &'static str) -> app::Running {
    let app = http_app_named(name).await;
    let policy = FakePolicy::default();
    policy.set(app.port(), servers::unauthenticated(name));
    let policy_addr = policy.spawn().await.to_string();
    certified(
        pki,
        identity_addr,
        WEB_IDENTITY,
        &[(config::ENV_POLICY_SVC_ADDR, &policy_addr)],
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
    let controller = Stoppable::start(move || dst.spawn()).await;
    let dst_addr = controller.addr.to_string();
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
    controller.stop().await;
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
        vec![opaque_transport_endpoint(
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

/// A client proxy whose outbound connections all target `orig_dst`, discovering through
/// `dst` and `policy`, with `extra` settings.
async fn client_of(
    pki: &Arc<TestPki>,
    identity: &str,
    dst: SocketAddr,
    policy: SocketAddr,
    orig_dst: SocketAddr,
    extra: &[(&str, &str)],
) -> app::Running {
    let (dst, policy) = (dst.to_string(), policy.to_string());
    let mut env = vec![
        (config::ENV_DESTINATION_SVC_ADDR, dst.as_str()),
        (config::ENV_POLICY_SVC_ADDR, policy.as_str()),
    ];
    env.extend_from_slice(extra);
    certified(
        pki,
        identity,
        LOCAL_IDENTITY,
        &env,
        Options {
            inbound_orig_dst: OrigDst::Syscall,
            outbound_orig_dst: OrigDst::Fixed(orig_dst),
            ..Default::default()
        },
    )
    .await
}

/// Connects to `outbound` and, sending nothing first, expects the `220 ready` banner, then
/// an echo.
async fn banner_then_echo(outbound: SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(outbound).await.unwrap();
    let mut buf = [0; 11];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .expect("the banner arrives without the client sending first")
        .unwrap();
    assert_eq!(&buf, b"220 ready\r\n");
    stream.write_all(b"QUIT\r\n").await.unwrap();
    let mut buf = [0; 6];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"QUIT\r\n");
}

/// A meshed peer in front of a server-speaks-first app, and the client's discovery for it:
/// a Service at [`service_ip`] whose policy is opaque. Returns the peer, the banner app's
/// address, and both fakes.
async fn opaque_service(
    pki: &Arc<TestPki>,
    identity: &str,
) -> (
    app::Running,
    SocketAddr,
    FakeDestination,
    FakeOutboundPolicy,
) {
    let banner = echo_server(b"220 ready\r\n").await;
    let peer = certified(
        pki,
        identity,
        WEB_IDENTITY,
        &[],
        Options {
            inbound_orig_dst: OrigDst::Fixed("127.0.0.1:1".parse().unwrap()),
            outbound_orig_dst: OrigDst::Syscall,
            ..Default::default()
        },
    )
    .await;
    let path = format!("{WEB_FQN}:80");
    let dst = FakeDestination::default();
    dst.set_service(service_ip(), WEB_FQN);
    dst.set_endpoints(
        &path,
        vec![opaque_transport_endpoint(
            banner,
            WEB_IDENTITY,
            peer.inbound_addr.port(),
        )],
    );
    let policy = FakeOutboundPolicy::default();
    policy.set(service_ip(), &path, AppProtocol::Opaque);
    (peer, banner, dst, policy)
}

#[tokio::test]
async fn the_last_policy_stays_when_the_policy_controller_goes_away() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let identity = FakeIdentity::new(pki.clone(), Duration::from_secs(3600))
        .spawn(false)
        .await
        .to_string();
    let (peer, _, dst, policy) = opaque_service(&pki, &identity).await;
    let controller = Stoppable::start(move || policy.spawn()).await;
    // The target stays known (no idle eviction) while its policy watch retries.
    let client = client_of(
        &pki,
        &identity,
        dst.spawn().await,
        controller.addr,
        service_ip(),
        &[
            (config::ENV_OUTBOUND_DETECT_TIMEOUT, "1h"),
            (config::ENV_OUTBOUND_DISCOVERY_IDLE_TIMEOUT, "1h"),
        ],
    )
    .await;
    banner_then_echo(client.outbound_addrs[0]).await;
    controller.stop().await;
    // New connections still skip detection: the opaque policy is kept.
    for _ in 0..3 {
        banner_then_echo(client.outbound_addrs[0]).await;
    }
    for proxy in [client, peer] {
        assert!(proxy.shutdown().await);
    }
}

#[tokio::test]
async fn opaque_policies_skip_detection_for_server_speaks_first_protocols() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let identity = FakeIdentity::new(pki.clone(), Duration::from_secs(3600))
        .spawn(false)
        .await
        .to_string();
    // A server-speaks-first app behind a meshed peer, reached with a transport header.
    let (peer, banner, dst, policy) = opaque_service(&pki, &identity).await;
    // Detection would wait far longer than the test does.
    let client = client_of(
        &pki,
        &identity,
        dst.spawn().await,
        policy.spawn().await,
        service_ip(),
        &[(config::ENV_OUTBOUND_DETECT_TIMEOUT, "1h")],
    )
    .await;
    banner_then_echo(client.outbound_addrs[0]).await;
    // It went over mTLS to the peer, which forwarded to the banner port.
    let (_, body) = http_get(peer.admin_addr, "/metrics").await;
    let want = format!(
        "tcp_open_total{{direction=\"inbound\",peer=\"src\",target_addr=\"{banner}\",target_ip=\"127.0.0.1\",target_port=\"{}\",tls=\"true\",client_id=\"{LOCAL_IDENTITY}\"",
        banner.port()
    );
    assert!(body.contains(&want), "want {want} in\n{body}");
    for proxy in [client, peer] {
        assert!(proxy.shutdown().await);
    }
}

#[tokio::test]
async fn a_target_first_unknown_is_meshed_once_the_control_plane_knows_it() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let identity = FakeIdentity::new(pki.clone(), Duration::from_secs(3600))
        .spawn(false)
        .await
        .to_string();
    let web0 = backend(&pki, &identity, "web-0").await;
    // The target is a real app, reached directly while discovery does not know it.
    let direct = http_app_named("direct").await;
    let path = format!("{WEB_FQN}:{}", direct.port());
    let dst = FakeDestination::default();
    dst.set_endpoints(
        &path,
        vec![meshed_endpoint(web0.inbound_addr, WEB_IDENTITY, "web-0")],
    );
    let policy = FakeOutboundPolicy::default();
    // Idle eviction never re-resolves here: only the open watches can bring the change.
    let client = client_of(
        &pki,
        &identity,
        dst.clone().spawn().await,
        policy.clone().spawn().await,
        direct,
        &[(config::ENV_OUTBOUND_DISCOVERY_IDLE_TIMEOUT, "1h")],
    )
    .await;
    let outbound = client.outbound_addrs[0];
    let rsp = request(outbound, "/before").await;
    assert_eq!(
        rsp.body(),
        "version=HTTP/1.1 client-id= path=/before app=direct"
    );
    assert_eq!(policy.watches.load(Ordering::SeqCst), 1);

    // The Service gets indexed: its policy (HTTP/1, no detection) and then its profile.
    policy.set(direct, &path, AppProtocol::Http1);
    dst.set_service(direct, WEB_FQN);
    assert_eventually!(
        request(outbound, "/after")
            .await
            .body()
            .ends_with("app=web-0"),
        WAIT
    );
    let rsp = request(outbound, "/after").await;
    assert_eq!(
        rsp.body(),
        &format!("version=HTTP/1.1 client-id={LOCAL_IDENTITY} path=/after app=web-0")
    );
    // The policy was asked for again once the profile named a Service.
    assert_eq!(policy.watches.load(Ordering::SeqCst), 2);
    assert_eq!(policy.streams.load(Ordering::SeqCst), 1);
    for proxy in [client, web0] {
        assert!(proxy.shutdown().await);
    }
}

#[tokio::test]
async fn policy_updates_move_new_requests_to_the_new_backend() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let identity = FakeIdentity::new(pki.clone(), Duration::from_secs(3600))
        .spawn(false)
        .await
        .to_string();
    let web0 = backend(&pki, &identity, "web-0").await;
    let web1 = backend(&pki, &identity, "web-1").await;
    let (a, b) = ("a.shop.svc.cluster.local:80", "b.shop.svc.cluster.local:80");
    let dst = FakeDestination::default();
    dst.set_service(service_ip(), WEB_FQN);
    dst.set_endpoints(
        a,
        vec![meshed_endpoint(web0.inbound_addr, WEB_IDENTITY, "web-0")],
    );
    dst.set_endpoints(
        b,
        vec![meshed_endpoint(web1.inbound_addr, WEB_IDENTITY, "web-1")],
    );
    let policy = FakeOutboundPolicy::default();
    policy.set(service_ip(), a, AppProtocol::Detect);
    let client = client_of(
        &pki,
        &identity,
        dst.clone().spawn().await,
        policy.clone().spawn().await,
        service_ip(),
        &[(config::ENV_OUTBOUND_DISCOVERY_IDLE_TIMEOUT, "1h")],
    )
    .await;
    let outbound = client.outbound_addrs[0];
    // The policy's backend wins over the profile's Service name.
    assert!(request(outbound, "/a").await.body().ends_with("app=web-0"));
    policy.set(service_ip(), b, AppProtocol::Detect);
    assert_eventually!(
        request(outbound, "/b").await.body().ends_with("app=web-1"),
        WAIT
    );
    // The first backend's endpoint watch was dropped for the second's.
    assert_eventually!(dst.endpoint_streams.load(Ordering::SeqCst) == 1, WAIT);
    for proxy in [client, web0, web1] {
        assert!(proxy.shutdown().await);
    }
}

#[tokio::test]
async fn idle_targets_drop_their_watches() {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let identity = FakeIdentity::new(pki.clone(), Duration::from_secs(3600))
        .spawn(false)
        .await
        .to_string();
    let web0 = backend(&pki, &identity, "web-0").await;
    let path = format!("{WEB_FQN}:80");
    let dst = FakeDestination::default();
    dst.set_service(service_ip(), WEB_FQN);
    dst.set_endpoints(
        &path,
        vec![meshed_endpoint(web0.inbound_addr, WEB_IDENTITY, "web-0")],
    );
    let policy = FakeOutboundPolicy::default();
    policy.set(service_ip(), &path, AppProtocol::Detect);
    let client = client_of(
        &pki,
        &identity,
        dst.clone().spawn().await,
        policy.clone().spawn().await,
        service_ip(),
        &[(config::ENV_OUTBOUND_DISCOVERY_IDLE_TIMEOUT, "200ms")],
    )
    .await;
    let open = || {
        (
            policy.streams.load(Ordering::SeqCst),
            dst.profile_streams.load(Ordering::SeqCst),
            dst.endpoint_streams.load(Ordering::SeqCst),
        )
    };
    // A connection in use keeps its target's watches past the idle timeout.
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(
        TcpStream::connect(client.outbound_addrs[0]).await.unwrap(),
    ))
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let get = || {
        http::Request::get("/held")
            .header("host", "web.shop.svc.cluster.local")
            .body(String::new())
            .unwrap()
    };
    assert_eq!(send.send_request(get()).await.unwrap().status(), 200);
    assert_eq!(open(), (1, 1, 1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(open(), (1, 1, 1));
    assert_eq!(send.send_request(get()).await.unwrap().status(), 200);

    // Once the connection closes, the idle target's three watches end.
    drop(send);
    conn.await.unwrap().unwrap();
    assert_eventually!(open() == (0, 0, 0), WAIT);

    // The next connection starts them again.
    assert!(
        request(client.outbound_addrs[0], "/again")
            .await
            .body()
            .ends_with("app=web-0")
    );
    assert_eq!(open(), (1, 1, 1));
    for proxy in [client, web0] {
        assert!(proxy.shutdown().await);
    }
}
