//! The control plane's listeners over TLS, in-process: Destination and Policy refuse clients
//! without a mesh certificate and accept meshed ones; Identity presents the controller's
//! certificate to clients that have none.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tonic::{
    Code,
    transport::{Channel, Endpoint},
};
use trellis_api::{
    linkerd2_proxy_api::{
        destination::{GetDestination, destination_client::DestinationClient},
        identity::{CertifyRequest, identity_client::IdentityClient},
        inbound::{PortSpec, inbound_server_policies_client::InboundServerPoliciesClient},
    },
    well_known,
};
use trellis_operator::{
    control_plane::{
        certify::{IdentityMetrics, IdentityService, ServiceAccountRef, TokenError, TokenVerifier},
        destination::{DestinationMetrics, DestinationService},
        index::{ClusterSettings, Index},
        policy::PolicyMetrics,
        tls::{ControllerCredentials, Transport},
    },
    pki::issuer::{IdentitySettings, Issuer, IssuerPem, LeafLifetime, SharedIssuer},
};
use trellis_tests::{
    certs::{TestPki, dns_sans, proxy_csr, verify_chain},
    control::spawn_on_loopback,
};

const TD: &str = "cluster.local";

fn controller_identity() -> String {
    well_known::identity_name(well_known::CONTROLLER_NAME, "trellis-system", TD)
}

fn issuer_pem(pki: &TestPki) -> IssuerPem {
    IssuerPem {
        cert_chain: pki.issuer_cert_pem.clone(),
        key: pki.issuer_key_pem.clone(),
        trust_anchors: pki.anchor_pem.clone(),
    }
}

fn lifetime() -> LeafLifetime {
    LeafLifetime {
        lifetime: Duration::from_secs(3600),
        clock_skew: Duration::from_secs(20),
    }
}

/// A fresh PKI for [`TD`], an issuer from it, and the controller's serving credentials.
fn controller_creds() -> (TestPki, SharedIssuer, Arc<ControllerCredentials>) {
    let pki = TestPki::generate(TD);
    let issuer = SharedIssuer::default();
    issuer.update(&issuer_pem(&pki)).unwrap();
    let (settings, rx) = tokio::sync::watch::channel(IdentitySettings::default());
    std::mem::forget(settings);
    let creds = ControllerCredentials::new(
        well_known::CONTROLLER_NAME.to_string(),
        "trellis-system".to_string(),
        issuer.clone(),
        rx,
    )
    .unwrap();
    assert_eq!(creds.identity(), controller_identity());
    (pki, issuer, Arc::new(creds))
}

/// A TLS client config trusting `pki`'s anchor, with a mesh certificate for `client` if given.
fn client_config(pki: &TestPki, client: Option<&str>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(pki.anchor_der())).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let issuer = Issuer::load(&issuer_pem(pki)).unwrap();
            let (key, csr) = proxy_csr(name);
            let csr = trellis_operator::pki::csr::parse(&csr).unwrap();
            let leaf = issuer.sign(csr, name, &lifetime()).unwrap();
            let mut chain = vec![CertificateDer::from(leaf.leaf_der)];
            chain.extend(leaf.intermediates_der.into_iter().map(CertificateDer::from));
            builder
                .with_client_auth_cert(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
                .unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

async fn tls_channel(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_static("http://controller.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let config = config.clone();
            async move {
                let tcp = TcpStream::connect(addr).await?;
                let name = ServerName::try_from(controller_identity()).unwrap();
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
}

#[tokio::test]
async fn destination_and_policy_require_a_mesh_certificate() {
    let (pki, _issuer, creds) = controller_creds();
    let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
    let index = Index::shared(ClusterSettings::default());

    let dst_addr = spawn_on_loopback(|listener| {
        trellis_operator::control_plane::destination::serve(
            listener,
            DestinationService::new(index.clone(), DestinationMetrics::default()),
            Transport::Tls(creds.clone()),
            shutdown.clone(),
        )
    })
    .await;
    let pol_addr = spawn_on_loopback(|listener| {
        trellis_operator::control_plane::policy::serve(
            listener,
            index,
            PolicyMetrics::default(),
            Transport::Tls(creds.clone()),
            shutdown.clone(),
        )
    })
    .await;
    let get = GetDestination {
        path: "web.shop.svc.cluster.local:80".into(),
        ..GetDestination::default()
    };
    let port = PortSpec {
        workload: r#"{"ns":"shop","pod":"web-1"}"#.into(),
        port: 8080,
    };

    // No client certificate: the handshake is refused, so no RPC reaches the server.
    let anonymous = client_config(&pki, None);
    for code in answers(dst_addr, pol_addr, anonymous, &get, &port).await {
        assert_ne!(code, Some(Code::NotFound), "the server must not answer");
    }

    // A certificate from another mesh (another anchor) is refused as well.
    let other = TestPki::generate(TD);
    let mut stranger = (*client_config(
        &other,
        Some("web.shop.serviceaccount.identity.trellis.cluster.local"),
    ))
    .clone();
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(pki.anchor_der())).unwrap();
    stranger =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_cert_resolver(stranger.client_auth_cert_resolver.clone());
    stranger.alpn_protocols = vec![b"h2".to_vec()];
    for code in answers(dst_addr, pol_addr, Arc::new(stranger), &get, &port).await {
        assert_ne!(code, Some(Code::NotFound), "the server must not answer");
    }

    // A meshed client reaches both servers (which answer NotFound: nothing is indexed).
    let meshed = client_config(
        &pki,
        Some("web.shop.serviceaccount.identity.trellis.cluster.local"),
    );
    let codes = answers(dst_addr, pol_addr, meshed, &get, &port).await;
    assert_eq!(codes, [Some(Code::NotFound); 2]);
}

/// How a destination `Get` at `dst` and a policy `GetPort` at `pol` end for a client with
/// `config`: the gRPC code (`Ok` for an answer), or `None` when the TLS handshake failed.
async fn answers(
    dst: SocketAddr,
    pol: SocketAddr,
    config: Arc<ClientConfig>,
    get: &GetDestination,
    port: &PortSpec,
) -> [Option<Code>; 2] {
    [
        answer(dst, config.clone(), |channel| async move {
            DestinationClient::new(channel).get(get.clone()).await
        })
        .await,
        answer(pol, config, |channel| async move {
            InboundServerPoliciesClient::new(channel)
                .get_port(port.clone())
                .await
        })
        .await,
    ]
}

/// How one call over a TLS channel to `addr` ends: its gRPC code (`Ok` for an answer), or
/// `None` when the TLS handshake failed.
async fn answer<T, F, Fut>(addr: SocketAddr, config: Arc<ClientConfig>, call: F) -> Option<Code>
where
    F: FnOnce(Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let channel = tls_channel(addr, config).await.ok()?;
    Some(match call(channel).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    })
}

struct RefuseAll;

impl TokenVerifier for RefuseAll {
    async fn verify(&self, _token: &str) -> Result<ServiceAccountRef, TokenError> {
        Err(TokenError::NotAuthenticated(
            "test verifier refuses every token".into(),
        ))
    }
}

#[tokio::test]
async fn identity_presents_the_controller_certificate() {
    let (pki, issuer, creds) = controller_creds();
    let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
    let (_settings, rx) = tokio::sync::watch::channel(IdentitySettings::default());
    let addr = spawn_on_loopback(|listener| {
        trellis_operator::control_plane::certify::serve(
            listener,
            IdentityService::new(issuer, RefuseAll, rx, IdentityMetrics::default()),
            Transport::Tls(creds),
            shutdown.clone(),
        )
    })
    .await;

    // A raw handshake without a client certificate: the server's chain verifies against the
    // anchor for the controller's identity name (rustls checks both).
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(controller_identity()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config(&pki, None))
        .connect(name, tcp)
        .await
        .unwrap();
    let chain: Vec<Vec<u8>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .unwrap()
        .iter()
        .map(|c| c.to_vec())
        .collect();
    let sans = verify_chain(&chain[0], &chain[1..], &pki.anchor_der());
    assert_eq!(sans, vec![controller_identity()]);
    assert_eq!(dns_sans(&chain[0]), vec![controller_identity()]);
    drop(tls);

    // And Certify is reachable over it without a client certificate.
    let channel = tls_channel(addr, client_config(&pki, None)).await.unwrap();
    let id = well_known::identity_name("web", "shop", TD);
    let (_key, csr) = proxy_csr(&id);
    let status = IdentityClient::new(channel)
        .certify(CertifyRequest {
            identity: id,
            token: b"token".to_vec(),
            certificate_signing_request: csr,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("token not authenticated"));
}

#[tokio::test]
async fn plaintext_is_refused_off_loopback() {
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = trellis_operator::control_plane::policy::serve(
        listener,
        Index::shared(ClusterSettings::default()),
        PolicyMetrics::default(),
        Transport::Plaintext,
        shutdown,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("only loopback"), "{err}");
}

#[tokio::test]
async fn health_reports_the_services_serving() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
    let addr = spawn_on_loopback(|listener| {
        trellis_operator::control_plane::policy::serve(
            listener,
            Index::shared(ClusterSettings::default()),
            PolicyMetrics::default(),
            Transport::Plaintext,
            shutdown.clone(),
        )
    })
    .await;
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in [
        "",
        "io.linkerd.proxy.inbound.InboundServerPolicies",
        "io.linkerd.proxy.outbound.OutboundPolicies",
    ] {
        let rsp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rsp.status(), ServingStatus::Serving, "{service:?}");
    }
}
