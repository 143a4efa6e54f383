//! In-process outbound over real sockets: discovery from fake destination and outbound
//! policy controllers, HTTP/1 from the app carried as HTTP/2 over mTLS to peer proxies, P2C
//! peak-EWMA balancing across endpoints, endpoint removal, fail-static, fallback to the
//! original destination, opaque policies skipping detection, discovery updates reaching new
//! connections, idle targets dropping their watches, and outbound metrics with `dst_*` labels.

use std::{collections::BTreeSet, net::SocketAddr, sync::atomic::Ordering, time::Duration};

use tokio::net::TcpStream;
use trellis_api::{linkerd2_proxy_api::destination::WeightedAddr, outbound::AppProtocol};
use trellis_proxy::{
    app::{self, config},
    test_util::{LOCAL_IDENTITY, TestPki},
};
use trellis_tests::{
    assert_eventually,
    control::{
        FakeDestination, FakeOutboundPolicy, FakePolicy, Stoppable, meshed_endpoint,
        opaque_transport_endpoint, servers,
    },
    proxy::{
        Mesh, WAIT, assert_metrics_contain, echo_server, get, header_only, http_app_named,
        http1_send, outbound_to, shutdown_all, spawn, tcp_roundtrip, to, upgrade_and_echo,
    },
};

const WEB_IDENTITY: &str = "web.shop.serviceaccount.identity.trellis.cluster.local";
const WEB_FQN: &str = "web.shop.svc.cluster.local";

/// A Service IP that is never dialled: discovery resolves it to the peers on loopback.
fn service_ip() -> SocketAddr {
    "198.18.0.10:80".parse().unwrap()
}

/// A meshed backend: an HTTP app named `name` behind its own proxy, whose policy
/// controller admits every client on the app's port.
async fn backend(mesh: &Mesh, name: &'static str) -> app::Running {
    let app = http_app_named(name).await;
    let policy = FakePolicy::default();
    policy.set(app.port(), servers::unauthenticated(name));
    let policy_addr = policy.spawn().await.to_string();
    mesh.proxy(
        WEB_IDENTITY,
        &[(config::ENV_POLICY_SVC_ADDR, &policy_addr)],
        to(app),
    )
    .await
}

async fn request(outbound: SocketAddr, path: &str) -> http::Response<String> {
    http1_send(
        TcpStream::connect(outbound).await.unwrap(),
        get(path, WEB_FQN),
    )
    .await
}

/// A destination controller that knows [`service_ip`] as the web Service, whose endpoints
/// are `endpoints`.
fn web_service(endpoints: Vec<WeightedAddr>) -> FakeDestination {
    let dst = FakeDestination::default();
    dst.set_service(service_ip(), WEB_FQN);
    dst.set_endpoints(&format!("{WEB_FQN}:80"), endpoints);
    dst
}

/// The `web-0` backend, and a destination controller whose web Service has it as its one
/// endpoint.
async fn web0_service(mesh: &Mesh) -> (app::Running, FakeDestination) {
    let web0 = backend(mesh, "web-0").await;
    let endpoint = meshed_endpoint(web0.inbound_addr, WEB_IDENTITY, "web-0");
    (web0, web_service(vec![endpoint]))
}

/// A client proxy reaching [`service_ip`] through the destination controller at `dst`.
async fn web_client(mesh: &Mesh, dst: SocketAddr) -> app::Running {
    let dst = dst.to_string();
    mesh.proxy(
        LOCAL_IDENTITY,
        &[(config::ENV_DESTINATION_SVC_ADDR, &dst)],
        outbound_to(service_ip()),
    )
    .await
}

#[tokio::test]
async fn http_is_balanced_over_mtls_h2_across_endpoints() {
    let mesh = Mesh::new().await;
    let web0 = backend(&mesh, "web-0").await;
    let web1 = backend(&mesh, "web-1").await;

    let dst = web_service(vec![
        meshed_endpoint(web0.inbound_addr, WEB_IDENTITY, "web-0"),
        meshed_endpoint(web1.inbound_addr, WEB_IDENTITY, "web-1"),
    ]);
    let path = format!("{WEB_FQN}:80");
    let client = web_client(&mesh, dst.clone().spawn().await).await;
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
    let want = format!(
        "response_total{{direction=\"outbound\",target_addr=\"{}\",target_ip=\"127.0.0.1\",target_port=\"{}\",tls=\"true\",server_id=\"{WEB_IDENTITY}\",dst_namespace=\"shop\",dst_pod=\"web-0\",dst_service=\"web\",status_code=\"200\",classification=\"success\"",
        web0.inbound_addr,
        web0.inbound_addr.port()
    );
    assert_metrics_contain(client.admin_addr, &want).await;

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
    shutdown_all([client, web0, web1]).await;
}

#[tokio::test]
async fn endpoints_stay_when_the_controller_goes_away() {
    let mesh = Mesh::new().await;
    let (web0, dst) = web0_service(&mesh).await;
    // The controller lives on its own runtime and thread so the test can stop it.
    let controller = Stoppable::start(move || dst.spawn()).await;
    let client = web_client(&mesh, controller.addr).await;
    let outbound = client.outbound_addrs[0];
    assert!(request(outbound, "/a").await.body().ends_with("app=web-0"));
    controller.stop().await;
    // New connections and requests still reach the last known endpoint.
    for _ in 0..3 {
        assert!(request(outbound, "/b").await.body().ends_with("app=web-0"));
    }
    shutdown_all([client, web0]).await;
}

#[tokio::test]
async fn addresses_outside_the_profile_networks_are_not_looked_up() {
    let pki = TestPki::new();
    let app = echo_server(b"").await;
    let dst = FakeDestination::default();
    dst.set_service(app, "web.shop.svc.cluster.local");
    let lookups = dst.profile_streams.clone();
    let dst_addr = dst.spawn().await.to_string();
    let proxy = spawn(
        &pki.anchor_pem,
        &[
            (config::ENV_DESTINATION_SVC_ADDR, &dst_addr),
            (
                config::ENV_DESTINATION_PROFILE_NETWORKS,
                "10.0.0.0/8,fd00::/8",
            ),
        ],
        to(app),
    )
    .await;
    // Loopback is outside 10.0.0.0/8: forwarded with no profile lookup, though the
    // controller would have called it a Service.
    assert_eq!(
        tcp_roundtrip(proxy.outbound_addrs[0], b"\x00plain").await,
        b"\x00plain"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(lookups.load(Ordering::SeqCst), 0);
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn unknown_targets_go_to_the_original_destination() {
    trellis_tests::trace_init();
    let pki = TestPki::new();
    let app = echo_server(b"").await;
    let dst_addr = FakeDestination::default().spawn().await.to_string();
    let proxy = spawn(
        &pki.anchor_pem,
        &[(config::ENV_DESTINATION_SVC_ADDR, &dst_addr)],
        to(app),
    )
    .await;
    assert_eq!(
        tcp_roundtrip(proxy.outbound_addrs[0], b"\x00plain").await,
        b"\x00plain"
    );
    assert_metrics_contain(proxy.admin_addr, "direction=\"outbound\",peer=\"dst\"").await;
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn http1_upgrades_pass_through_meshed_targets() {
    let mesh = Mesh::new().await;
    let (web0, dst) = web0_service(&mesh).await;
    let client = web_client(&mesh, dst.spawn().await).await;
    let io = TcpStream::connect(client.outbound_addrs[0]).await.unwrap();
    upgrade_and_echo(io, WEB_FQN, b"websocket frames").await;
    shutdown_all([client, web0]).await;
}

#[tokio::test]
async fn http2_from_the_app_stays_http2_end_to_end() {
    let mesh = Mesh::new().await;
    let (web0, dst) = web0_service(&mesh).await;
    let client = web_client(&mesh, dst.spawn().await).await;
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
    shutdown_all([client, web0]).await;
}

/// The line of a peer's metrics counting an mTLS connection from this test's client proxy
/// to its app at `target`.
fn inbound_mtls_open(target: SocketAddr) -> String {
    format!(
        "tcp_open_total{{direction=\"inbound\",peer=\"src\",target_addr=\"{target}\",target_ip=\"127.0.0.1\",target_port=\"{}\",tls=\"true\",client_id=\"{LOCAL_IDENTITY}\"",
        target.port()
    )
}

/// A meshed peer in front of a TCP echo app that first sends `greeting`, and a destination
/// controller whose web Service reaches that app through the peer's inbound port with a
/// transport header. Returns the peer, the app's address and the controller.
async fn opaque_peer(
    mesh: &Mesh,
    greeting: &'static [u8],
) -> (app::Running, SocketAddr, FakeDestination) {
    let app = echo_server(greeting).await;
    let peer = mesh.proxy(WEB_IDENTITY, &[], header_only()).await;
    let dst = web_service(vec![opaque_transport_endpoint(
        app,
        WEB_IDENTITY,
        peer.inbound_addr.port(),
    )]);
    (peer, app, dst)
}

#[tokio::test]
async fn opaque_traffic_carries_a_transport_header_to_the_peer_inbound_port() {
    let mesh = Mesh::new().await;
    // The peer's app is a TCP echo server on an opaque port; the peer's own original
    // destination is irrelevant: the header names the port.
    let (peer, echo, dst) = opaque_peer(&mesh, b"").await;
    let client = web_client(&mesh, dst.spawn().await).await;
    assert_eq!(
        tcp_roundtrip(client.outbound_addrs[0], b"\x00opaque payload").await,
        b"\x00opaque payload"
    );
    // The peer saw an mTLS client with the caller's identity, targeting the echo port.
    assert_metrics_contain(peer.admin_addr, &inbound_mtls_open(echo)).await;
    shutdown_all([client, peer]).await;
}

/// A client proxy whose outbound connections all target `orig_dst`, discovering through
/// `dst` and `policy`, with `extra` settings.
async fn client_of(
    mesh: &Mesh,
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
    mesh.proxy(LOCAL_IDENTITY, &env, outbound_to(orig_dst))
        .await
}

/// A client proxy whose outbound connections all target `orig_dst`, discovering through
/// (clones of) `dst` and `policy`, and keeping an unused target's watches for `idle`.
async fn watched_client(
    mesh: &Mesh,
    dst: &FakeDestination,
    policy: &FakeOutboundPolicy,
    orig_dst: SocketAddr,
    idle: &str,
) -> app::Running {
    client_of(
        mesh,
        dst.clone().spawn().await,
        policy.clone().spawn().await,
        orig_dst,
        &[(config::ENV_OUTBOUND_DISCOVERY_IDLE_TIMEOUT, idle)],
    )
    .await
}

/// Connects to `outbound` and, sending nothing first, expects the `220 ready` banner, then
/// an echo.
async fn banner_then_echo(outbound: SocketAddr) {
    use tokio::io::AsyncReadExt;
    let mut stream = TcpStream::connect(outbound).await.unwrap();
    let mut buf = [0; 11];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .expect("the banner arrives without the client sending first")
        .unwrap();
    assert_eq!(&buf, b"220 ready\r\n");
    assert_eq!(
        trellis_tests::proxy::roundtrip(&mut stream, b"QUIT\r\n").await,
        b"QUIT\r\n"
    );
}

/// A meshed peer in front of a server-speaks-first app, and the client's discovery for it:
/// a Service at [`service_ip`] whose policy is opaque. Returns the peer, the banner app's
/// address, and both fakes.
async fn opaque_service(
    mesh: &Mesh,
) -> (
    app::Running,
    SocketAddr,
    FakeDestination,
    FakeOutboundPolicy,
) {
    let (peer, banner, dst) = opaque_peer(mesh, b"220 ready\r\n").await;
    let policy = FakeOutboundPolicy::default();
    policy.set(service_ip(), &format!("{WEB_FQN}:80"), AppProtocol::Opaque);
    (peer, banner, dst, policy)
}

#[tokio::test]
async fn the_last_policy_stays_when_the_policy_controller_goes_away() {
    let mesh = Mesh::new().await;
    let (peer, _, dst, policy) = opaque_service(&mesh).await;
    let controller = Stoppable::start(move || policy.spawn()).await;
    // The target stays known (no idle eviction) while its policy watch retries.
    let client = client_of(
        &mesh,
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
    shutdown_all([client, peer]).await;
}

#[tokio::test]
async fn opaque_policies_skip_detection_for_server_speaks_first_protocols() {
    let mesh = Mesh::new().await;
    // A server-speaks-first app behind a meshed peer, reached with a transport header.
    let (peer, banner, dst, policy) = opaque_service(&mesh).await;
    // Detection would wait far longer than the test does.
    let client = client_of(
        &mesh,
        dst.spawn().await,
        policy.spawn().await,
        service_ip(),
        &[(config::ENV_OUTBOUND_DETECT_TIMEOUT, "1h")],
    )
    .await;
    banner_then_echo(client.outbound_addrs[0]).await;
    // It went over mTLS to the peer, which forwarded to the banner port.
    assert_metrics_contain(peer.admin_addr, &inbound_mtls_open(banner)).await;
    shutdown_all([client, peer]).await;
}

#[tokio::test]
async fn a_target_first_unknown_is_meshed_once_the_control_plane_knows_it() {
    let mesh = Mesh::new().await;
    let web0 = backend(&mesh, "web-0").await;
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
    let client = watched_client(&mesh, &dst, &policy, direct, "1h").await;
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
    shutdown_all([client, web0]).await;
}

#[tokio::test]
async fn policy_updates_move_new_requests_to_the_new_backend() {
    let mesh = Mesh::new().await;
    let web0 = backend(&mesh, "web-0").await;
    let web1 = backend(&mesh, "web-1").await;
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
    let client = watched_client(&mesh, &dst, &policy, service_ip(), "1h").await;
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
    shutdown_all([client, web0, web1]).await;
}

/// Sends `GET /held` over the connection of `send`; returns the response status.
async fn held(send: &mut hyper::client::conn::http1::SendRequest<String>) -> http::StatusCode {
    send.send_request(get("/held", WEB_FQN))
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn idle_targets_drop_their_watches() {
    let mesh = Mesh::new().await;
    let (web0, dst) = web0_service(&mesh).await;
    let policy = FakeOutboundPolicy::default();
    policy.set(service_ip(), &format!("{WEB_FQN}:80"), AppProtocol::Detect);
    let client = watched_client(&mesh, &dst, &policy, service_ip(), "200ms").await;
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
    assert_eq!(held(&mut send).await, 200);
    assert_eq!(open(), (1, 1, 1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(open(), (1, 1, 1));
    assert_eq!(held(&mut send).await, 200);

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
    shutdown_all([client, web0]).await;
}
