//! The webhook server over TLS on 127.0.0.1:0: it answers AdmissionReviews, and a new
//! certificate takes effect for new connections without a restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test by panicking"
)]

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
};
use trellis_tests::certs::{LocalhostPki, localhost_server};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use tokio::{net::TcpStream, sync::oneshot};
use tokio_rustls::TlsConnector;
use trellis_crds::{settings::MeshSettings, v1alpha1::mesh::MeshSpec};
use trellis_webhooks::{
    INJECT_PATH, State,
    inject::template::InjectConfig,
    test_util::FakeLookup,
    tls::{CertResolver, serve},
};

/// Connects over TLS trusting `cas`; returns the stream and the server's leaf certificate.
async fn connect(
    addr: SocketAddr,
    cas: &[&str],
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    CertificateDer<'static>,
) {
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots
            .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
            .unwrap();
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    (tls, leaf)
}

#[tokio::test]
async fn serves_reviews_over_tls_and_reloads_the_certificate() {
    trellis_tests::trace_init();
    let LocalhostPki {
        ca_pem: ca_a,
        cert_pem: cert_a,
        key_pem: key_a,
    } = localhost_server("first");
    let LocalhostPki {
        ca_pem: ca_b,
        cert_pem: cert_b,
        key_pem: key_b,
    } = localhost_server("second");
    let certs = Arc::new(CertResolver::from_pem(cert_a.as_bytes(), key_a.as_bytes()).unwrap());
    let mesh = MeshSettings::try_from(&MeshSpec::default()).unwrap();
    let config = InjectConfig::from_settings(&mesh, "registry.test", "");
    // Lookups with no namespaces and no Servers.
    let lookup = Arc::new(FakeLookup::default());
    let state = State::new(config, lookup.clone(), lookup);
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, certs.clone(), state, async {
        let _ = stopped.await;
    }));

    let (tls, leaf) = connect(addr, &[&ca_a, &ca_b]).await;
    assert_eq!(
        leaf,
        CertificateDer::from_pem_slice(cert_a.as_bytes()).unwrap()
    );
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let response = sender
        .send_request(
            http::Request::post(INJECT_PATH)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{not json")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("malformed AdmissionReview"),
        "{body:?}"
    );

    let bad = certs.reload_pem(cert_b.as_bytes(), key_a.as_bytes());
    assert!(
        bad.is_err(),
        "a key that does not fit the certificate is refused"
    );
    let (_, leaf) = connect(addr, &[&ca_a, &ca_b]).await;
    assert_eq!(
        leaf,
        CertificateDer::from_pem_slice(cert_a.as_bytes()).unwrap(),
        "a failed reload keeps the current certificate"
    );

    certs
        .reload_pem(cert_b.as_bytes(), key_b.as_bytes())
        .unwrap();
    let (_, leaf) = connect(addr, &[&ca_a, &ca_b]).await;
    assert_eq!(
        leaf,
        CertificateDer::from_pem_slice(cert_b.as_bytes()).unwrap(),
        "new connections get the reloaded certificate"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
