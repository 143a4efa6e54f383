//! In-process proxy against a fake identity controller: certification over TLS (or plaintext
//! on loopback), readiness, retries, refresh, and inbound mTLS termination with the client's
//! identity.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::net::TcpStream;
use trellis_proxy::{
    app::{self, Options, config},
    test_util::{LOCAL_IDENTITY, TestPki},
    tls,
};
use trellis_tests::{
    assert_eventually,
    control::FakeIdentity,
    proxy::{
        CERT_LIFETIME, Mesh, WAIT, assert_metrics_contain, echo_server, ready, roundtrip, spawn, to,
    },
};

const CLIENT_IDENTITY: &str = "client.shop.serviceaccount.identity.trellis.cluster.local";

/// A fresh PKI and a fake identity controller certifying for `lifetime`, failing its first
/// `fail_first` calls; returns the PKI, the controller's call counter and address.
async fn identity_controller(
    lifetime: Duration,
    fail_first: usize,
    tls: bool,
) -> (
    Arc<TestPki>,
    Arc<std::sync::atomic::AtomicUsize>,
    SocketAddr,
) {
    trellis_tests::trace_init();
    let pki = Arc::new(TestPki::new());
    let fake = FakeIdentity::new(pki.clone(), lifetime);
    fake.fail_first.store(fail_first, Ordering::SeqCst);
    let calls = fake.calls.clone();
    let addr = fake.spawn(tls).await;
    (pki, calls, addr)
}

#[tokio::test]
async fn proxy_certifies_over_tls_and_turns_ready() {
    let (pki, calls, addr) = identity_controller(CERT_LIFETIME, 0, true).await;
    // `localhost` without the trailing dot is not loopback: TLS, checked against the name.
    let svc = format!("localhost:{}", addr.port());
    let env = trellis_tests::proxy::env(&pki.anchor_pem, &[(config::ENV_IDENTITY_SVC_ADDR, &svc)]);
    let dir = env[config::ENV_IDENTITY_DIR].clone();
    let proxy = app::spawn(config::Config::parse(&env).unwrap(), Options::default())
        .await
        .unwrap();
    assert_eventually!(ready(proxy.admin_addr).await, WAIT);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let leaf = proxy.creds.current().expect("certified");
    assert_eq!(
        tls::verify::peer_identity(&leaf.cert[0]).as_deref(),
        Some(LOCAL_IDENTITY)
    );
    assert!(std::path::Path::new(&dir).join("key.p8").exists());
    assert!(std::path::Path::new(&dir).join("csr.der").exists());
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn loopback_identity_is_plaintext() {
    let (pki, _, addr) = identity_controller(CERT_LIFETIME, 0, false).await;
    let svc = addr.to_string();
    let proxy = spawn(
        &pki.anchor_pem,
        &[(config::ENV_IDENTITY_SVC_ADDR, &svc)],
        Options::default(),
    )
    .await;
    assert_eventually!(ready(proxy.admin_addr).await, WAIT);
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn identity_server_with_the_wrong_name_is_refused() {
    let (pki, calls, addr) = identity_controller(CERT_LIFETIME, 0, true).await;
    let svc = format!("localhost:{}", addr.port());
    let proxy = spawn(
        &pki.anchor_pem,
        &[
            (config::ENV_IDENTITY_SVC_ADDR, &svc),
            (
                config::ENV_IDENTITY_SVC_NAME,
                "impostor.trellis-system.serviceaccount.identity.trellis.cluster.local",
            ),
            (config::ENV_IDENTITY_MIN_REFRESH, "50ms"),
        ],
        Options::default(),
    )
    .await;
    // Several attempts happen; none reaches the server, and the proxy stays unready.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!ready(proxy.admin_addr).await);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(proxy.creds.current().is_none());
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn failures_are_retried_and_certificates_refreshed() {
    // Certificates live 2s: refresh at 70% (1.4s), after one failed attempt.
    let (pki, calls, addr) = identity_controller(Duration::from_secs(2), 1, false).await;
    let svc = addr.to_string();
    let proxy = spawn(
        &pki.anchor_pem,
        &[
            (config::ENV_IDENTITY_SVC_ADDR, &svc),
            (config::ENV_IDENTITY_MIN_REFRESH, "100ms"),
        ],
        Options::default(),
    )
    .await;
    assert_eventually!(ready(proxy.admin_addr).await, WAIT);
    let first = proxy.creds.current().unwrap();
    assert_eventually!(calls.load(Ordering::SeqCst) >= 3, WAIT);
    assert_eventually!(
        proxy.creds.current().unwrap().cert[0] != first.cert[0],
        WAIT
    );
    assert!(proxy.shutdown().await);
}

/// A certified proxy in front of an echo app; returns the mesh, the proxy and the app.
async fn certified_proxy() -> (Mesh, app::Running, SocketAddr) {
    let mesh = Mesh::new().await;
    let app_addr = echo_server(b"").await;
    let proxy = mesh.proxy(LOCAL_IDENTITY, &[], to(app_addr)).await;
    (mesh, proxy, app_addr)
}

#[tokio::test]
async fn inbound_terminates_mtls_and_labels_the_client_identity() {
    let (mesh, proxy, app_addr) = certified_proxy().await;

    let tcp = TcpStream::connect(proxy.inbound_addr).await.unwrap();
    let mut tls = mesh
        .client_tls(Some(CLIENT_IDENTITY))
        .connect(tcp, LOCAL_IDENTITY)
        .await
        .unwrap();
    assert_eq!(
        roundtrip(&mut tls, b"\x00hello through mtls").await,
        b"\x00hello through mtls"
    );
    drop(tls);

    let want = format!(
        "tcp_open_total{{direction=\"inbound\",peer=\"src\",target_addr=\"{app_addr}\",target_ip=\"127.0.0.1\",target_port=\"{}\",tls=\"true\",client_id=\"{CLIENT_IDENTITY}\",srv_group=\"\",srv_kind=\"default\",srv_name=\"all-unauthenticated\",srv_port=\"{}\"}} 1",
        app_addr.port(),
        app_addr.port()
    );
    assert_metrics_contain(proxy.admin_addr, &want).await;
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn inbound_mtls_without_a_client_certificate_has_no_client_id() {
    let (mesh, proxy, _) = certified_proxy().await;
    let tcp = TcpStream::connect(proxy.inbound_addr).await.unwrap();
    let mut tls = mesh
        .client_tls(None)
        .connect(tcp, LOCAL_IDENTITY)
        .await
        .unwrap();
    roundtrip(&mut tls, b"\x00x").await;
    drop(tls);
    assert_metrics_contain(proxy.admin_addr, "tls=\"true\",client_id=\"\"").await;
    assert!(proxy.shutdown().await);
}

#[tokio::test]
async fn tls_for_another_name_passes_through_opaque() {
    let (mesh, proxy, _) = certified_proxy().await;
    // The client asks for another server: the proxy must not terminate, so the echo app
    // reflects the ClientHello and the handshake fails on the client.
    let tcp = TcpStream::connect(proxy.inbound_addr).await.unwrap();
    let res = mesh
        .client_tls(None)
        .connect(
            tcp,
            "other.shop.serviceaccount.identity.trellis.cluster.local",
        )
        .await;
    assert!(res.is_err());
    assert_metrics_contain(
        proxy.admin_addr,
        "tls=\"opaque\",sni=\"other.shop.serviceaccount.identity.trellis.cluster.local\"",
    )
    .await;
    assert!(proxy.shutdown().await);
}
