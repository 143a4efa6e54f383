//! The webhook server over TLS on 127.0.0.1:0: it answers AdmissionReviews, and a new
//! certificate takes effect for new connections without a restart.

use std::{net::Ipv4Addr, sync::Arc};
use trellis_tests::{admission::connect_tls, certs::localhost_server};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, pem::PemObject};
use tokio::sync::oneshot;
use trellis_crds::{settings::MeshSettings, v1alpha1::mesh::MeshSpec};
use trellis_webhooks::{
    INJECT_PATH, State,
    inject::template::InjectConfig,
    test_util::FakeLookup,
    tls::{CertResolver, serve},
};

#[tokio::test]
async fn serves_reviews_over_tls_and_reloads_the_certificate() {
    trellis_tests::trace_init();
    let pki_a = localhost_server("first");
    let pki_b = localhost_server("second");
    let certs = Arc::new(
        CertResolver::from_pem(pki_a.cert_pem.as_bytes(), pki_a.key_pem.as_bytes()).unwrap(),
    );
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

    let cas = [pki_a.ca_pem.as_str(), pki_b.ca_pem.as_str()];
    let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (tls, leaf) = connect_tls(addr, &cas).await.unwrap();
    assert_eq!(leaf, der(&pki_a.cert_pem));
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

    let bad = certs.reload_pem(pki_b.cert_pem.as_bytes(), pki_a.key_pem.as_bytes());
    assert!(
        bad.is_err(),
        "a key that does not fit the certificate is refused"
    );
    let (_, leaf) = connect_tls(addr, &cas).await.unwrap();
    assert_eq!(
        leaf,
        der(&pki_a.cert_pem),
        "a failed reload keeps the current certificate"
    );

    certs
        .reload_pem(pki_b.cert_pem.as_bytes(), pki_b.key_pem.as_bytes())
        .unwrap();
    let (_, leaf) = connect_tls(addr, &cas).await.unwrap();
    assert_eq!(
        leaf,
        der(&pki_b.cert_pem),
        "new connections get the reloaded certificate"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
