//! In-process inbound policy: default policies, `WatchPort` from a fake controller, and the
//! three ways to deny (HTTP 403, gRPC PermissionDenied, closed TCP), over real sockets.

use std::{net::SocketAddr, sync::atomic::Ordering, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use trellis_proxy::{
    app::{self, config},
    test_util::{LOCAL_IDENTITY, TestPki},
};
use trellis_tests::{
    assert_eventually,
    control::{FakePolicy, servers},
    proxy::{
        Mesh, WAIT, assert_metrics_contain, connect_remote, echo_server, get, http_app, http_get,
        http2_send, spawn, to,
    },
};

const CLIENT_IDENTITY: &str = "client.shop.serviceaccount.identity.trellis.cluster.local";

/// Sends one HTTP/1 request on `io`; returns the status and the `l5d-proxy-error` header.
async fn http1_request<T>(io: T) -> (u16, Option<String>)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    let rsp = send.send_request(get("/", "web")).await.unwrap();
    let err = rsp
        .headers()
        .get("l5d-proxy-error")
        .map(|v| v.to_str().unwrap().to_string());
    (rsp.status().as_u16(), err)
}

/// Sends one gRPC-shaped request over HTTP/2 on `io`; returns the HTTP status and grpc-status.
async fn grpc_request<T>(io: T) -> (u16, Option<String>)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let req = http::Request::post("http://web/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .body(String::new())
        .unwrap();
    let rsp = http2_send(io, req).await;
    let status = rsp
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    (rsp.status().as_u16(), status)
}

/// True when the peer closes `io` without sending anything after `msg`.
async fn closed_after<T: AsyncRead + AsyncWrite + Unpin>(mut io: T, msg: &[u8]) -> bool {
    let _ = io.write_all(msg).await;
    let mut buf = [0; 16];
    matches!(io.read(&mut buf).await, Ok(0) | Err(_))
}

async fn echoes<T: AsyncRead + AsyncWrite + Unpin>(mut io: T, msg: &[u8]) -> bool {
    io.write_all(msg).await.unwrap();
    let mut buf = vec![0; msg.len()];
    io.read_exact(&mut buf).await.is_ok() && buf == msg
}

/// An uncertified proxy with `overrides` in front of `app`.
async fn proxy_for(app: SocketAddr, overrides: &[(&str, &str)]) -> app::Running {
    trellis_tests::trace_init();
    spawn(&TestPki::new().anchor_pem, overrides, to(app)).await
}

/// An uncertified proxy in front of `app` whose policies come from `policy`, with
/// `overrides`.
async fn watched_proxy(
    app: SocketAddr,
    policy: &FakePolicy,
    overrides: &[(&str, &str)],
) -> app::Running {
    let policy_addr = policy.clone().spawn().await.to_string();
    let mut env = vec![(config::ENV_POLICY_SVC_ADDR, policy_addr.as_str())];
    env.extend_from_slice(overrides);
    proxy_for(app, &env).await
}

#[tokio::test]
async fn deny_default_refuses_http_grpc_and_tcp_but_not_localhost() {
    let app_addr = echo_server(b"").await;
    let proxy = proxy_for(app_addr, &[(config::ENV_INBOUND_DEFAULT_POLICY, "deny")]).await;
    let inbound = proxy.inbound_addr;

    let (status, err) = http1_request(connect_remote(inbound).await).await;
    assert_eq!(status, 403);
    assert!(err.unwrap().contains("unauthorized"));

    let (status, grpc_status) = grpc_request(connect_remote(inbound).await).await;
    assert_eq!(status, 200);
    assert_eq!(grpc_status.as_deref(), Some("7"), "PermissionDenied");

    assert!(closed_after(connect_remote(inbound).await, b"\x00opaque bytes").await);

    // 127.0.0.1 has the implicit localhost authorization.
    assert!(echoes(TcpStream::connect(inbound).await.unwrap(), b"\x00local").await);

    // Each denial is counted, by protocol class, with the server that refused it.
    let (_, metrics) = http_get(proxy.admin_addr, "/metrics").await;
    let total = |family: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .inspect(|l| assert!(l.contains(r#"srv_kind="default""#), "{l}"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(total("inbound_http_authz_deny_total"), 2.0, "{metrics}");
    assert_eq!(total("inbound_tcp_authz_deny_total"), 1.0, "{metrics}");
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn all_unauthenticated_default_admits_remote_clients() {
    let proxy = proxy_for(echo_server(b"").await, &[]).await;
    assert!(echoes(connect_remote(proxy.inbound_addr).await, b"\x00hello").await);
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn watched_policy_admits_only_the_listed_identity() {
    let mesh = Mesh::new().await;
    let fake_policy = FakePolicy::default();
    let watches = fake_policy.watches.clone();
    let app_addr = echo_server(b"").await;
    fake_policy.set(
        app_addr.port(),
        servers::meshed_only("web-http", &[CLIENT_IDENTITY]),
    );
    let policy_addr = fake_policy.clone().spawn().await.to_string();
    let ports = app_addr.port().to_string();
    let proxy = mesh
        .proxy(
            LOCAL_IDENTITY,
            &[
                (config::ENV_POLICY_SVC_ADDR, &policy_addr),
                (config::ENV_INBOUND_PORTS, &ports),
            ],
            to(app_addr),
        )
        .await;
    let inbound = proxy.inbound_addr;

    // Plaintext from a remote client is refused once the policy has arrived.
    assert_eventually!(
        closed_after(connect_remote(inbound).await, b"\x00x").await,
        WAIT
    );
    let (status, _) = http1_request(connect_remote(inbound).await).await;
    assert_eq!(status, 403);

    // The listed identity gets through over mTLS; another identity gets 403.
    let tls = mesh
        .client_tls(Some(CLIENT_IDENTITY))
        .connect(connect_remote(inbound).await, LOCAL_IDENTITY)
        .await
        .unwrap();
    assert!(echoes(tls, b"\x00meshed").await);
    let other = "other.shop.serviceaccount.identity.trellis.cluster.local";
    let tls = mesh
        .client_tls(Some(other))
        .connect(connect_remote(inbound).await, LOCAL_IDENTITY)
        .await
        .unwrap();
    assert_eq!(http1_request(tls).await.0, 403);

    // The metrics carry the server's labels.
    let (_, body) = http_get(proxy.admin_addr, "/metrics").await;
    assert!(
        body.contains(&format!(
            "client_id=\"{CLIENT_IDENTITY}\",srv_group=\"policy.trellis.dev\",srv_kind=\"server\",srv_name=\"web-http\",srv_port=\"{}\"",
            app_addr.port()
        )),
        "{body}"
    );
    assert!(watches.load(Ordering::SeqCst) >= 1);
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn policy_updates_apply_to_new_connections() {
    let fake_policy = FakePolicy::default();
    let app_addr = echo_server(b"").await;
    let proxy = watched_proxy(app_addr, &fake_policy, &[]).await;
    let inbound = proxy.inbound_addr;
    // NotFound at first: the default (all-unauthenticated) applies.
    assert!(echoes(connect_remote(inbound).await, b"\x00before").await);
    // The controller now requires an identity: plaintext is refused (the watch retries
    // after NotFound with backoff, so this converges).
    fake_policy.set(
        app_addr.port(),
        servers::meshed_only("web", &[CLIENT_IDENTITY]),
    );
    assert_eventually!(
        closed_after(connect_remote(inbound).await, b"\x00after").await,
        WAIT
    );
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn an_open_opaque_connection_closes_when_the_policy_no_longer_admits_it() {
    let fake_policy = FakePolicy::default();
    let app_addr = echo_server(b"").await;
    let proxy = watched_proxy(app_addr, &fake_policy, &[]).await;
    let mut io = connect_remote(proxy.inbound_addr).await;
    // NotFound at first: the default (all-unauthenticated) admits plaintext.
    assert!(echoes(&mut io, b"\x00before").await);
    fake_policy.set(
        app_addr.port(),
        servers::meshed_only("web", &[CLIENT_IDENTITY]),
    );
    // Bytes echo until the watch converges; then the proxy closes the connection.
    let mut closed = false;
    for _ in 0..100 {
        if !echoes(&mut io, b"ping").await {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        closed,
        "the open connection was closed by the policy change"
    );
    assert_metrics_contain(proxy.admin_addr, "inbound_tcp_authz_deny_total").await;
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn a_policy_change_applies_to_requests_on_an_open_connection() {
    let fake_policy = FakePolicy::default();
    let app_addr = http_app().await;
    let proxy = watched_proxy(app_addr, &fake_policy, &[]).await;
    // One keep-alive connection, as a pooled connection between proxies would be.
    let io = hyper_util::rt::TokioIo::new(connect_remote(proxy.inbound_addr).await);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(
        send.send_request(get("/before", "web"))
            .await
            .unwrap()
            .status(),
        200
    );

    // The controller now requires an identity: the next request on the same connection is
    // refused (the watch converges after NotFound with backoff).
    fake_policy.set(
        app_addr.port(),
        servers::meshed_only("web", &[CLIENT_IDENTITY]),
    );
    let mut status = 0;
    for _ in 0..100 {
        send.ready().await.expect("the connection stays open");
        status = send
            .send_request(get("/after", "web"))
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 403, "the new policy applies on the open connection");
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn the_first_connection_to_an_unlisted_port_waits_for_its_policy() {
    let fake_policy = FakePolicy::default();
    let app_addr = echo_server(b"").await;
    fake_policy.set(
        app_addr.port(),
        servers::meshed_only("web", &[CLIENT_IDENTITY]),
    );
    // The app's port is not among INBOUND_PORTS, so no watch runs for it before the first
    // connection, and the default policy (all-unauthenticated) would admit plaintext.
    let proxy = watched_proxy(app_addr, &fake_policy, &[(config::ENV_INBOUND_PORTS, "1")]).await;
    assert!(
        closed_after(connect_remote(proxy.inbound_addr).await, b"\x00first").await,
        "the very first connection is judged by the controller's policy"
    );
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn route_authorizations_admit_one_path_and_refuse_another_on_the_same_port() {
    use trellis_api::{
        inbound::{DefaultPolicy, InboundRoute, InboundRule, Protocol, ServerPolicy},
        route::{PathMatch, RequestMatch, RouteKind, RouteRef},
    };
    let route = |name: &str, prefix: &str, authorizations| InboundRoute {
        meta: RouteRef::Resource {
            group: "gateway.networking.k8s.io".into(),
            kind: "HTTPRoute".into(),
            namespace: "shop".into(),
            name: name.into(),
            port: 0,
        },
        kind: RouteKind::Http,
        hosts: Vec::new(),
        rules: vec![InboundRule {
            matches: vec![RequestMatch {
                path: Some(PathMatch::Prefix(prefix.into())),
                ..RequestMatch::default()
            }],
            filters: Vec::new(),
        }],
        authorizations,
    };
    let fake_policy = FakePolicy::default();
    let app_addr = http_app().await;
    let server = ServerPolicy {
        protocol: Protocol::Http1,
        // The server itself admits nobody: only the public route's authorization does.
        authorizations: Vec::new(),
        routes: vec![
            route(
                "public",
                "/public",
                DefaultPolicy::AllUnauthenticated.authorizations(&[]),
            ),
            route("admin", "/admin", Vec::new()),
        ],
        ..DefaultPolicy::Deny.server(&[], false)
    };
    fake_policy.set(app_addr.port(), server.into());
    let proxy = watched_proxy(app_addr, &fake_policy, &[]).await;
    let inbound = proxy.inbound_addr;
    let status = |path: &'static str| async move {
        let io = hyper_util::rt::TokioIo::new(connect_remote(inbound).await);
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        send.send_request(get(path, "web"))
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eventually!(status("/public/page").await == 200, WAIT);
    assert_eq!(status("/admin/users").await, 403);
    assert_eq!(status("/elsewhere").await, 404);
    assert!(proxy.shutdown().await);
}
