//! TLS for the control plane's listeners: the controller's own certificate (issued from the
//! same issuer as proxies', renewed at 70% of its life or when the issuer changes) and an
//! accept loop that terminates TLS 1.3 and tells handlers which workload asks.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use parking_lot::Mutex;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use tokio::sync::watch;

use crate::pki::{
    csr,
    issuer::{IdentitySettings, Issuer, IssuerError, LeafLifetime, SharedIssuer},
};

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// No issuer is loaded, so the controller has no certificate.
    #[error("no issuer is loaded; the controller cannot get its certificate")]
    NoIssuer,
    /// Key or certificate generation failed.
    #[error("controller certificate: {0}")]
    Generate(#[source] rcgen::Error),
    /// Signing failed.
    #[error("controller certificate: {0}")]
    Sign(#[source] IssuerError),
    /// rustls refused the material.
    #[error("tls configuration: {0}")]
    Rustls(#[source] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
}

/// The rustls crypto provider every control-plane listener uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

struct Current {
    identity: String,
    issuer: Arc<Issuer>,
    key: Arc<CertifiedKey>,
    issued: SystemTime,
    valid_until: SystemTime,
}

/// The controller's own TLS identity, issued in-process from the shared issuer for its
/// ServiceAccount, in the trust domain and with the lifetime the Mesh sets.
pub struct ControllerCredentials {
    service_account: String,
    namespace: String,
    issuer: SharedIssuer,
    settings: watch::Receiver<IdentitySettings>,
    key: KeyPair,
    current: Mutex<Option<Current>>,
}

impl std::fmt::Debug for ControllerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerCredentials")
            .field("identity", &self.identity())
            .finish_non_exhaustive()
    }
}

impl ControllerCredentials {
    /// Credentials for the ServiceAccount `service_account` in `namespace`.
    pub fn new(
        service_account: String,
        namespace: String,
        issuer: SharedIssuer,
        settings: watch::Receiver<IdentitySettings>,
    ) -> Result<Self, TlsError> {
        Ok(Self {
            service_account,
            namespace,
            issuer,
            settings,
            key: KeyPair::generate().map_err(TlsError::Generate)?,
            current: Mutex::new(None),
        })
    }

    /// The identity name the certificate carries (it follows the Mesh's trust domain).
    pub fn identity(&self) -> String {
        let td = self.settings.borrow().trust_domain.clone();
        trellis_api::well_known::identity_name(&self.service_account, &self.namespace, &td)
    }

    /// The current certificate and the issuer it came from, renewing it when the issuer
    /// changed or 70% of its life has passed.
    fn get(&self) -> Result<(Arc<CertifiedKey>, Arc<Issuer>), TlsError> {
        let issuer = self.issuer.get().ok_or(TlsError::NoIssuer)?;
        let identity = self.identity();
        let lifetime: LeafLifetime = self.settings.borrow().leaf.clone();
        let mut current = self.current.lock();
        let now = SystemTime::now();
        if let Some(c) = current.as_ref() {
            let life = c.valid_until.duration_since(c.issued).unwrap_or_default();
            let renew_at = c.issued + life.mul_f32(0.7);
            if Arc::ptr_eq(&c.issuer, &issuer) && c.identity == identity && now < renew_at {
                return Ok((c.key.clone(), c.issuer.clone()));
            }
        }
        let mut params =
            CertificateParams::new(vec![identity.clone()]).map_err(TlsError::Generate)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, identity.clone());
        let csr_der = params
            .serialize_request(&self.key)
            .map_err(TlsError::Generate)?;
        let request = csr::parse(csr_der.der()).map_err(|e| TlsError::Verifier(e.to_string()))?;
        let issued = issuer
            .sign(request, &identity, &lifetime)
            .map_err(TlsError::Sign)?;
        let mut chain = vec![CertificateDer::from(issued.leaf_der)];
        chain.extend(
            issued
                .intermediates_der
                .into_iter()
                .map(CertificateDer::from),
        );
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        let certified =
            CertifiedKey::from_der(chain, key, &provider()).map_err(TlsError::Rustls)?;
        let certified = Arc::new(certified);
        tracing::info!(%identity, "Controller certificate issued");
        *current = Some(Current {
            identity,
            issuer: issuer.clone(),
            key: certified.clone(),
            issued: now,
            valid_until: issued.valid_until,
        });
        Ok((certified, issuer))
    }
}

#[derive(Debug)]
struct Resolver(Arc<ControllerCredentials>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.0.get() {
            Ok((key, _)) => Some(key),
            Err(e) => {
                tracing::warn!(error = %e, "No controller certificate for a TLS handshake");
                None
            }
        }
    }
}

/// Whether a listener requires a client certificate from the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Clients must present a certificate that chains to the trust anchors (destination, policy).
    RequireMeshIdentity,
    /// Clients are not authenticated (identity: its clients have no certificate yet).
    None,
}

/// Builds the rustls configuration for the current issuer: TLS 1.3, ALPN h2.
pub fn server_config(
    creds: &Arc<ControllerCredentials>,
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let (_, issuer) = creds.get()?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Rustls)?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::RequireMeshIdentity => {
            let mut roots = RootCertStore::empty();
            for der in issuer.anchors_der() {
                roots
                    .add(CertificateDer::from(der.clone()))
                    .map_err(TlsError::Rustls)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(Resolver(creds.clone())));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Who is on the other end of a TLS connection; handlers read it from request extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The client's address.
    pub addr: SocketAddr,
    /// The client's identity: the first DNS SAN of its certificate, if it sent one.
    pub identity: Option<String>,
}

/// A TLS connection that tonic can serve.
#[derive(Debug)]
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: PeerInfo,
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl tokio::io::AsyncRead for TlsConn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConn {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn first_dns_san(der: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::DNSName(d) => Some((*d).to_string()),
        _ => None,
    })
}

/// Handshake deadline for one connection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` and completes TLS handshakes (each in its own task, so a
/// slow or bad client holds up no one), yielding the connections that succeed.
pub fn incoming(
    listener: TcpListener,
    creds: Arc<ControllerCredentials>,
    client_auth: ClientAuth,
    shutdown: CancellationToken,
) -> ReceiverStream<std::io::Result<TlsConn>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "Accept failed");
                        continue;
                    }
                },
            };
            let config = match server_config(&creds, client_auth) {
                Ok(config) => config,
                Err(e) => {
                    tracing::warn!(error = %e, %addr, "Refusing connection: no TLS configuration");
                    continue;
                }
            };
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, %addr, "Cannot set TCP_NODELAY");
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, %addr, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%addr, "TLS handshake timed out");
                        return;
                    }
                };
                let identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(first_dns_san);
                let _ = tx
                    .send(Ok(TlsConn {
                        inner: tls,
                        peer: PeerInfo { addr, identity },
                    }))
                    .await;
            });
        }
    });
    ReceiverStream::new(rx)
}

/// How a listener speaks to its clients.
#[derive(Clone, Debug)]
pub enum Transport {
    /// Plaintext h2c; allowed only on loopback listeners (local runs and tests).
    Plaintext,
    /// TLS 1.3 with the controller's certificate.
    Tls(Arc<ControllerCredentials>),
}

/// Why a gRPC listener stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Plaintext was asked for on a non-loopback address.
    #[error("refusing plaintext on {0}: only loopback listeners may be plaintext")]
    PlaintextNotLoopback(SocketAddr),
    /// The listener's address is unknown.
    #[error("listener address: {0}")]
    Addr(#[source] std::io::Error),
    /// The server failed.
    #[error("grpc server: {0}")]
    Transport(#[source] tonic::transport::Error),
}

/// Serves `router` on `listener` with `transport` until `shutdown`, draining open streams.
///
/// The listener also serves gRPC health (`grpc.health.v1.Health`), reporting `services`
/// (and the whole server) as serving.
pub async fn serve_router(
    router: tonic::transport::server::Router,
    services: &[&'static str],
    listener: TcpListener,
    transport: Transport,
    client_auth: ClientAuth,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().map_err(ServeError::Addr)?;
    let (reporter, health) = tonic_health::server::health_reporter();
    for service in services {
        reporter
            .set_service_status(*service, tonic_health::ServingStatus::Serving)
            .await;
    }
    let router = router.add_service(health);
    match transport {
        Transport::Plaintext => {
            if !addr.ip().is_loopback() {
                return Err(ServeError::PlaintextNotLoopback(addr));
            }
            let incoming = tokio_stream::StreamExt::map(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                |conn| {
                    conn.inspect(|tcp| {
                        if let Err(e) = tcp.set_nodelay(true) {
                            tracing::debug!(error = %e, "Cannot set TCP_NODELAY");
                        }
                    })
                },
            );
            router
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                .await
        }
        Transport::Tls(creds) => {
            let incoming = incoming(listener, creds, client_auth, shutdown.clone());
            router
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                .await
        }
    }
    .map_err(ServeError::Transport)
}

/// [`serve_router`] for servers whose clients must present a mesh identity over TLS
/// (destination and policy).
pub async fn serve_mesh_only(
    router: tonic::transport::server::Router,
    services: &[&'static str],
    listener: TcpListener,
    transport: Transport,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let client_auth = ClientAuth::RequireMeshIdentity;
    serve_router(router, services, listener, transport, client_auth, shutdown).await
}

/// The client identity of a request served over TLS, if any.
pub fn peer_identity<T>(request: &tonic::Request<T>) -> Option<String> {
    request
        .extensions()
        .get::<PeerInfo>()
        .and_then(|p| p.identity.clone())
}
