//! In-process fakes of the Linkerd proxy API (identity, destination, inbound and outbound
//! policy), served over real sockets, plaintext or TLS.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use rustls::pki_types::CertificateSigningRequestDer;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};
use trellis_api::linkerd2_proxy_api::identity::{
    CertifyRequest, CertifyResponse,
    identity_server::{Identity, IdentityServer},
};
use trellis_proxy::test_util::{CONTROL_IDENTITY, TestPki};

/// Binds `127.0.0.1:0`, spawns `serve` on the listener and returns the bound address: the
/// way tests start the operator's own servers (`certify::serve`, `destination::serve`, ...).
pub async fn spawn_on_loopback<F, Fut>(serve: F) -> SocketAddr
where
    F: FnOnce(TcpListener) -> Fut,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener));
    addr
}

/// Serves a tonic service on `127.0.0.1:0` over HTTP/2, with TLS as `CONTROL_IDENTITY`
/// (certified by `pki`) when `tls` is set. Returns the bound address.
pub async fn serve<S>(svc: S, tls: Option<&TestPki>) -> SocketAddr
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let acceptor = tls.map(|pki| {
        let leaf = pki.issue(CONTROL_IDENTITY);
        let config = rustls::ServerConfig::builder_with_provider(trellis_proxy::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(leaf.chain.clone(), leaf.key())
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    spawn_on_loopback(move |listener| async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let svc = TowerToHyperService::new(svc.clone());
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                match acceptor {
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                        }
                    }
                }
            });
        }
    })
    .await
}

/// A fake identity controller: checks the token and CSR shape, signs with a [`TestPki`].
#[derive(Clone, Debug)]
pub struct FakeIdentity {
    pki: Arc<TestPki>,
    lifetime: Duration,
    /// Certify calls answered (successfully or not).
    pub calls: Arc<AtomicUsize>,
    /// Calls to fail with `Unavailable` before answering.
    pub fail_first: Arc<AtomicUsize>,
}

impl FakeIdentity {
    /// A fake that issues certificates valid for `lifetime`.
    pub fn new(pki: Arc<TestPki>, lifetime: Duration) -> Self {
        Self {
            pki,
            lifetime,
            calls: Arc::default(),
            fail_first: Arc::default(),
        }
    }

    /// Serves it on `127.0.0.1:0`, with TLS when `tls`.
    pub async fn spawn(self, tls: bool) -> SocketAddr {
        let pki = self.pki.clone();
        serve(IdentityServer::new(self), tls.then_some(&*pki)).await
    }
}

#[tonic::async_trait]
impl Identity for FakeIdentity {
    async fn certify(
        &self,
        req: Request<CertifyRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Status::unavailable("fake identity: failing as asked"));
        }
        let req = req.into_inner();
        if req.token.is_empty() || req.identity.is_empty() {
            return Err(Status::invalid_argument("identity and token are required"));
        }
        let der = CertificateSigningRequestDer::from(req.certificate_signing_request);
        let csr = rcgen::CertificateSigningRequestParams::from_der(&der)
            .map_err(|e| Status::invalid_argument(format!("csr: {e}")))?;
        let sans: Vec<_> = csr.params.subject_alt_names.clone();
        if sans
            != vec![rcgen::SanType::DnsName(
                req.identity.clone().try_into().unwrap(),
            )]
        {
            return Err(Status::failed_precondition("csr SAN must be the identity"));
        }
        let cert = self.pki.sign(&csr.public_key, &req.identity);
        let valid_until = SystemTime::now() + self.lifetime;
        let secs = valid_until
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Ok(Response::new(CertifyResponse {
            leaf_certificate: cert.to_vec(),
            intermediate_certificates: vec![self.pki.issuer_der().to_vec()],
            valid_until: Some(prost_types::Timestamp {
                seconds: i64::try_from(secs).unwrap(),
                nanos: 0,
            }),
        }))
    }
}

/// A fake policy controller: `WatchPort` streams whatever [`FakePolicy::set`] last stored
/// for the port, and `NotFound` until then.
#[derive(Clone, Debug, Default)]
pub struct FakePolicy {
    servers: Table<u32, InboundServer>,
    /// `WatchPort` calls received.
    pub watches: Arc<AtomicUsize>,
}

type InboundServer = trellis_api::linkerd2_proxy_api::inbound::Server;

impl FakePolicy {
    /// Sets (and streams) the policy of `port`.
    pub fn set(&self, port: u16, server: InboundServer) {
        self.servers.send_modify(|s| {
            s.insert(u32::from(port), server);
        });
    }

    /// Serves it on `127.0.0.1:0` (plaintext, as for a loopback control plane).
    pub async fn spawn(self) -> SocketAddr {
        use trellis_api::linkerd2_proxy_api::inbound::inbound_server_policies_server::InboundServerPoliciesServer;
        serve(InboundServerPoliciesServer::new(self), None).await
    }
}

#[tonic::async_trait]
impl trellis_api::linkerd2_proxy_api::inbound::inbound_server_policies_server::InboundServerPolicies
    for FakePolicy
{
    async fn get_port(
        &self,
        req: Request<trellis_api::linkerd2_proxy_api::inbound::PortSpec>,
    ) -> Result<Response<InboundServer>, Status> {
        current(&self.servers, &req.into_inner().port, "no such port")
    }

    type WatchPortStream = AnswerStream<InboundServer>;

    async fn watch_port(
        &self,
        req: Request<trellis_api::linkerd2_proxy_api::inbound::PortSpec>,
    ) -> Result<Response<Self::WatchPortStream>, Status> {
        self.watches.fetch_add(1, Ordering::SeqCst);
        let port = req.into_inner().port;
        if !self.servers.borrow().contains_key(&port) {
            return Err(Status::not_found("no such port"));
        }
        Ok(Response::new(watch_key(&self.servers, port, None)))
    }
}

/// Wire `Server` builders for policy tests.
pub mod servers {
    use trellis_api::{
        inbound::{ClientAuthentication, Network},
        linkerd2_proxy_api::inbound as wire,
    };

    /// A `detect` server named `name` that admits every client, meshed or not.
    pub fn unauthenticated(name: &str) -> wire::Server {
        let mut server = meshed_only(name, &[]);
        server.authorizations[0].authentication =
            Some(ClientAuthentication::Unauthenticated.into());
        server
    }

    /// A `detect` server named `name` that admits only meshed clients with `identities`.
    pub fn meshed_only(name: &str, identities: &[&str]) -> wire::Server {
        let mesh_tls = ClientAuthentication::MeshTls {
            identities: identities.iter().map(|n| n.to_string()).collect(),
            suffixes: vec![],
        };
        wire::Server {
            protocol: Some(wire::ProxyProtocol {
                kind: Some(wire::proxy_protocol::Kind::Detect(
                    wire::proxy_protocol::Detect {
                        timeout: Some(prost_types::Duration {
                            seconds: 10,
                            nanos: 0,
                        }),
                        http_routes: vec![],
                        http_local_rate_limit: None,
                    },
                )),
            }),
            server_ips: vec![],
            authorizations: vec![wire::Authz {
                networks: Network::all().into_iter().map(Into::into).collect(),
                authentication: Some(mesh_tls.into()),
                labels: Default::default(),
                metadata: None,
            }],
            labels: [
                ("group", "policy.trellis.dev"),
                ("kind", "server"),
                ("name", name),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }
}

type DstProfile = trellis_api::linkerd2_proxy_api::destination::DestinationProfile;
type DstAddr = trellis_api::linkerd2_proxy_api::destination::WeightedAddr;
type DstUpdate = trellis_api::linkerd2_proxy_api::destination::Update;

/// A fake destination controller. `GetProfile` streams the profile set for `ip:port` (and,
/// like the real controller, a default profile naming no Service for others, so the proxy
/// forwards to the original destination); `Get` streams the endpoints set for a path as
/// `add`/`remove` updates.
#[derive(Clone, Debug, Default)]
pub struct FakeDestination {
    profiles: Arc<tokio::sync::watch::Sender<std::collections::HashMap<String, DstProfile>>>,
    endpoints: Arc<tokio::sync::watch::Sender<std::collections::HashMap<String, Vec<DstAddr>>>>,
    /// `GetProfile` streams open now.
    pub profile_streams: Arc<AtomicUsize>,
    /// `Get` streams open now.
    pub endpoint_streams: Arc<AtomicUsize>,
}

impl FakeDestination {
    /// Answers (and streams to) `GetProfile(target)` a Service profile named `fqn`.
    pub fn set_service(&self, target: SocketAddr, fqn: &str) {
        self.profiles.send_modify(|p| {
            p.insert(
                target.to_string(),
                DstProfile {
                    fully_qualified_name: fqn.to_string(),
                    ..Default::default()
                },
            );
        });
    }

    /// Answers (and streams to) `GetProfile(target)` `profile`.
    pub fn set_profile(&self, target: SocketAddr, profile: trellis_api::destination::Profile) {
        self.profiles.send_modify(|p| {
            p.insert(target.to_string(), profile.into());
        });
    }

    /// Sets (and streams) the endpoints of `path` (`<fqn>:<port>`).
    pub fn set_endpoints(&self, path: &str, addrs: Vec<DstAddr>) {
        self.endpoints.send_modify(|e| {
            e.insert(path.to_string(), addrs);
        });
    }

    /// Serves it on `127.0.0.1:0` (plaintext).
    pub async fn spawn(self) -> SocketAddr {
        use trellis_api::linkerd2_proxy_api::destination::destination_server::DestinationServer;
        serve(DestinationServer::new(self), None).await
    }
}

/// A meshed endpoint: `addr` with identity `identity`, an `h2` hint and `pod` labels.
pub fn meshed_endpoint(addr: SocketAddr, identity: &str, pod: &str) -> DstAddr {
    use trellis_api::linkerd2_proxy_api::destination::{
        ProtocolHint, TlsIdentity, protocol_hint, tls_identity,
    };
    DstAddr {
        addr: Some(addr.into()),
        weight: 10_000,
        metric_labels: [("pod".to_string(), pod.to_string())].into_iter().collect(),
        tls_identity: Some(TlsIdentity {
            strategy: Some(tls_identity::Strategy::DnsLikeIdentity(
                tls_identity::DnsLikeIdentity {
                    name: identity.to_string(),
                },
            )),
            server_name: None,
        }),
        protocol_hint: Some(ProtocolHint {
            protocol: Some(protocol_hint::Protocol::H2(protocol_hint::H2 {})),
            opaque_transport: None,
        }),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl trellis_api::linkerd2_proxy_api::destination::destination_server::Destination
    for FakeDestination
{
    type GetStream = AnswerStream<DstUpdate>;
    type GetProfileStream = AnswerStream<DstProfile>;

    async fn get(
        &self,
        req: Request<trellis_api::linkerd2_proxy_api::destination::GetDestination>,
    ) -> Result<Response<Self::GetStream>, Status> {
        use futures::StreamExt;
        use trellis_api::linkerd2_proxy_api::destination::{
            AddrSet, WeightedAddrSet, update::Update,
        };
        let path = req.into_inner().path;
        let open = OpenStream::new(&self.endpoint_streams);
        let label_set: std::collections::HashMap<String, String> =
            [("namespace", "shop"), ("service", "web")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let rx = tokio_stream::wrappers::WatchStream::new(self.endpoints.subscribe());
        let stream = rx
            .scan(Vec::<DstAddr>::new(), move |prev, all| {
                let next = all.get(&path).cloned().unwrap_or_default();
                let removed: Vec<_> = prev
                    .iter()
                    .filter(|p| !next.iter().any(|n| n.addr == p.addr))
                    .filter_map(|p| p.addr)
                    .collect();
                *prev = next.clone();
                let mut updates = Vec::new();
                if !removed.is_empty() {
                    updates.push(Ok(DstUpdate {
                        update: Some(Update::Remove(AddrSet { addrs: removed })),
                    }));
                }
                if !next.is_empty() {
                    updates.push(Ok(DstUpdate {
                        update: Some(Update::Add(WeightedAddrSet {
                            addrs: next,
                            metric_labels: label_set.clone(),
                        })),
                    }));
                }
                futures::future::ready(Some(futures::stream::iter(updates)))
            })
            .flatten()
            .map(move |update| {
                let _open = &open;
                update
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_profile(
        &self,
        req: Request<trellis_api::linkerd2_proxy_api::destination::GetDestination>,
    ) -> Result<Response<Self::GetProfileStream>, Status> {
        use futures::StreamExt;
        let path = req.into_inner().path;
        let open = OpenStream::new(&self.profile_streams);
        let stream = tokio_stream::wrappers::WatchStream::new(self.profiles.subscribe())
            .map(move |profiles| profiles.get(&path).cloned().unwrap_or_default())
            .scan(None, |last, profile| {
                // Only changes are sent, as the real controller does.
                let changed = last.as_ref() != Some(&profile);
                *last = Some(profile.clone());
                futures::future::ready(Some(changed.then_some(profile)))
            })
            .filter_map(futures::future::ready)
            .map(move |profile| {
                let _open = &open;
                Ok(profile)
            });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A meshed endpoint on an opaque port: `addr` is reached through the peer proxy's
/// `inbound_port` with a transport header naming `addr`'s port.
pub fn opaque_transport_endpoint(addr: SocketAddr, identity: &str, inbound_port: u16) -> DstAddr {
    use trellis_api::linkerd2_proxy_api::destination::protocol_hint;
    let mut ep = meshed_endpoint(addr, identity, "opaque-0");
    ep.protocol_hint = Some(trellis_api::linkerd2_proxy_api::destination::ProtocolHint {
        protocol: Some(protocol_hint::Protocol::Opaque(protocol_hint::Opaque {})),
        opaque_transport: Some(protocol_hint::OpaqueTransport {
            inbound_port: u32::from(inbound_port),
        }),
    });
    ep
}

/// The state of a fake: one value per key, every change streamed to its watchers.
type Table<K, V> = Arc<tokio::sync::watch::Sender<std::collections::HashMap<K, V>>>;

/// A server stream of `T`s, as the fakes' watch RPCs answer.
type AnswerStream<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The value of `key` in `table` now, or `NotFound` saying `missing`.
fn current<K, V>(table: &Table<K, V>, key: &K, missing: &str) -> Result<Response<V>, Status>
where
    K: Eq + std::hash::Hash,
    V: Clone,
{
    table
        .borrow()
        .get(key)
        .cloned()
        .map(Response::new)
        .ok_or_else(|| Status::not_found(missing))
}

/// Streams the value of `key` in `table` now and after each change, whenever it is set;
/// `open` (counting the stream) lives as long as the stream.
fn watch_key<K, V>(table: &Table<K, V>, key: K, open: Option<OpenStream>) -> AnswerStream<V>
where
    K: Eq + std::hash::Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    use futures::StreamExt;
    let stream = tokio_stream::wrappers::WatchStream::new(table.subscribe())
        .filter_map(move |values| futures::future::ready(values.get(&key).cloned()))
        .map(move |value| {
            let _open = &open;
            Ok(value)
        });
    Box::pin(stream)
}

/// Counts one open server stream until it is dropped (when the client goes away).
#[derive(Debug)]
struct OpenStream(Arc<AtomicUsize>);

impl OpenStream {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

type WirePolicy = trellis_api::linkerd2_proxy_api::outbound::OutboundPolicy;

/// A fake `OutboundPolicies` controller: `Watch` streams the policy set for a target address
/// and answers `NotFound` for others, like the real controller for a non-Service IP.
#[derive(Clone, Debug, Default)]
pub struct FakeOutboundPolicy {
    policies: Table<SocketAddr, WirePolicy>,
    /// `Watch` calls received.
    pub watches: Arc<AtomicUsize>,
    /// `Watch` streams open now.
    pub streams: Arc<AtomicUsize>,
}

impl FakeOutboundPolicy {
    /// Sets (and streams) the policy of `target`: one Service port whose balancer backend is
    /// `backend_path`, carrying `protocol`.
    pub fn set(
        &self,
        target: SocketAddr,
        backend_path: &str,
        protocol: trellis_api::outbound::AppProtocol,
    ) {
        use trellis_api::outbound::{OutboundPolicy, ServiceRef};
        let policy = OutboundPolicy::service_default(
            ServiceRef {
                namespace: "shop".into(),
                name: "web".into(),
                port: target.port(),
            },
            backend_path.to_string(),
            protocol,
        );
        self.policies.send_modify(|p| {
            p.insert(target, policy.into());
        });
    }

    /// Sets (and streams) `policy` as the policy of `target`.
    pub fn set_policy(&self, target: SocketAddr, policy: trellis_api::outbound::OutboundPolicy) {
        self.policies.send_modify(|p| {
            p.insert(target, policy.into());
        });
    }

    /// Serves it on `127.0.0.1:0` (plaintext).
    pub async fn spawn(self) -> SocketAddr {
        use trellis_api::linkerd2_proxy_api::outbound::outbound_policies_server::OutboundPoliciesServer;
        serve(OutboundPoliciesServer::new(self), None).await
    }

    fn lookup(
        &self,
        spec: trellis_api::linkerd2_proxy_api::outbound::TrafficSpec,
    ) -> Result<SocketAddr, Status> {
        use trellis_api::outbound::{TrafficSpec, TrafficTarget};
        let spec =
            TrafficSpec::try_from(spec).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let TrafficTarget::Addr(addr) = spec.target else {
            return Err(Status::invalid_argument("fake: only addresses"));
        };
        if !self.policies.borrow().contains_key(&addr) {
            return Err(Status::not_found(format!(
                "{addr} is not a Service address"
            )));
        }
        Ok(addr)
    }
}

#[tonic::async_trait]
impl trellis_api::linkerd2_proxy_api::outbound::outbound_policies_server::OutboundPolicies
    for FakeOutboundPolicy
{
    async fn get(
        &self,
        req: Request<trellis_api::linkerd2_proxy_api::outbound::TrafficSpec>,
    ) -> Result<Response<WirePolicy>, Status> {
        let addr = self.lookup(req.into_inner())?;
        current(&self.policies, &addr, "gone")
    }

    type WatchStream = AnswerStream<WirePolicy>;

    async fn watch(
        &self,
        req: Request<trellis_api::linkerd2_proxy_api::outbound::TrafficSpec>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.watches.fetch_add(1, Ordering::SeqCst);
        let addr = self.lookup(req.into_inner())?;
        let open = OpenStream::new(&self.streams);
        Ok(Response::new(watch_key(&self.policies, addr, Some(open))))
    }
}

/// A fake controller on a runtime and thread of its own, so a test can take it away.
#[derive(Debug)]
pub struct Stoppable {
    /// Where it serves.
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Stoppable {
    /// Runs `spawn` (e.g. `|| dst.spawn()`) on a new thread's runtime.
    pub async fn start<F, Fut>(spawn: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = SocketAddr>,
    {
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            addr_tx.send(rt.block_on(spawn())).unwrap();
            let _ = rt.block_on(stop_rx);
        });
        Self {
            addr: addr_rx.await.unwrap(),
            stop,
            thread,
        }
    }

    /// Stops it: its listener and every open stream go away.
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn spawn_on_loopback_serves_on_the_address_it_returns() {
        let addr = spawn_on_loopback(|listener| async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut tcp, b"hi")
                .await
                .unwrap();
        })
        .await;
        assert!(addr.ip().is_loopback());
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = [0; 2];
        tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf, b"hi");
    }

    #[tokio::test]
    async fn a_table_answers_now_and_streams_changes_while_counted_open() {
        let table: Table<u32, String> = Arc::default();
        let missing = current(&table, &1, "no such key").unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        assert_eq!(missing.message(), "no such key");
        table.send_modify(|t| {
            t.insert(1, "a".into());
        });
        assert_eq!(current(&table, &1, "").unwrap().into_inner(), "a");

        let streams = Arc::new(AtomicUsize::new(0));
        let mut stream = watch_key(&table, 1, Some(OpenStream::new(&streams)));
        assert_eq!(streams.load(Ordering::SeqCst), 1);
        assert_eq!(stream.next().await.unwrap().unwrap(), "a");
        table.send_modify(|t| {
            t.insert(1, "b".into());
        });
        assert_eq!(stream.next().await.unwrap().unwrap(), "b");
        drop(stream);
        assert_eq!(streams.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn meshed_only_admits_exactly_its_identities() {
        use trellis_api::linkerd2_proxy_api::inbound::authn::{Permit, permit_mesh_tls::Clients};
        let server = servers::meshed_only("web-http", &["a.ns", "b.ns"]);
        let authn = server.authorizations[0].authentication.clone().unwrap();
        let Some(Permit::MeshTls(tls)) = authn.permit else {
            panic!("not mesh TLS: {authn:?}");
        };
        let Some(Clients::Identities(ids)) = tls.clients else {
            panic!("no identities");
        };
        let names: Vec<_> = ids.identities.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a.ns", "b.ns"]);
        assert!(ids.suffixes.is_empty());
        assert_eq!(server.authorizations[0].networks.len(), 2);
        assert_eq!(server.labels["name"], "web-http");
    }
}
