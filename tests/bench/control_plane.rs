//! Control-plane benchmark (see `benchmarking.md` §2.4): endpoint fan-out latency on 1,000
//! concurrent `Destination.Get` streams, Certify throughput on one core, and index memory.
//!
//! Run: `cargo bench -p trellis-tests --bench control_plane [-- fanout|certify|memory]`.
//! Needs the local cluster (`tests/cluster/cluster up`) for the API-server variants. Every
//! figure is printed with its same-run baseline and the ratio between them.
#![allow(
    clippy::print_stdout,
    missing_docs,
    reason = "a benchmark binary reports on stdout and fails by panicking"
)]

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use hdrhistogram::Histogram;
use k8s_openapi::api::{core::v1::Service, discovery::v1::EndpointSlice};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use parking_lot::Mutex;
use tokio::{net::TcpListener, sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;
use trellis_api::{
    linkerd2_proxy_api::{
        destination::{GetDestination, destination_client::DestinationClient, update},
        identity::{CertifyRequest, identity_client::IdentityClient},
    },
    well_known,
};
use trellis_operator::{
    control_plane::{
        certify::{
            IdentityMetrics, IdentityService, ServiceAccountRef, TokenError, TokenReviewVerifier,
            TokenVerifier,
        },
        destination::{DestinationMetrics, DestinationService},
        index::{ClusterSettings, Index, SharedIndex},
        tls::Transport,
    },
    pki::issuer::{IdentitySettings, SharedIssuer},
};
use trellis_tests::{
    certs::{TestPki, proxy_csr},
    control::spawn_on_loopback,
    k8s,
};

const STREAMS: usize = 1_000;
const CHANGES: usize = 20;
const SPACING: Duration = Duration::from_secs(2);
const NS: &str = "bench-cp";

fn service(ns: &str, name: &str) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .unwrap()
}

fn slice(ns: &str, name: &str, svc: &str, ips: &[String]) -> EndpointSlice {
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| serde_json::json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": ns, "labels": {
            "kubernetes.io/service-name": svc,
            "endpointslice.kubernetes.io/managed-by": "bench.trellis.dev"
        }},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": endpoints
    }))
    .unwrap()
}

fn ip(i: usize) -> String {
    format!("198.18.{}.{}", 128 + (i / 250) % 100, 1 + i % 250)
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Opens `STREAMS` Get streams (one connection each) on `path`; each reports, per change
/// number, when the Add carrying that change's address arrived.
async fn open_streams(
    addr: SocketAddr,
    path: &str,
    marker: Arc<Mutex<BTreeMap<SocketAddr, usize>>>,
) -> mpsc::UnboundedReceiver<(usize, Instant)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(STREAMS);
    for _ in 0..STREAMS {
        let mut client = DestinationClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let path = path.to_string();
        let tx = tx.clone();
        let ready = ready_tx.clone();
        let marker = marker.clone();
        tokio::spawn(async move {
            let req = GetDestination {
                path,
                ..GetDestination::default()
            };
            let mut stream = client.get(req).await.unwrap().into_inner();
            let mut first = true;
            while let Ok(Some(msg)) = stream.message().await {
                let now = Instant::now();
                if first {
                    first = false;
                    let _ = ready.send(()).await;
                }
                if let Some(update::Update::Add(set)) = msg.update {
                    for a in set.addrs.into_iter().filter_map(|w| w.addr) {
                        let sa = SocketAddr::new(
                            std::net::IpAddr::try_from(a.ip.unwrap()).unwrap(),
                            u16::try_from(a.port).unwrap(),
                        );
                        if let Some(change) = marker.lock().get(&sa).copied() {
                            let _ = tx.send((change, now));
                        }
                    }
                }
            }
        });
    }
    for _ in 0..STREAMS {
        ready_rx.recv().await.unwrap();
    }
    rx
}

async fn start_destination(index: SharedIndex, shutdown: &CancellationToken) -> SocketAddr {
    let service = DestinationService::new(index, DestinationMetrics::default());
    let shutdown = shutdown.clone();
    spawn_on_loopback(|listener| {
        trellis_operator::control_plane::destination::serve(
            listener,
            service,
            Transport::Plaintext,
            shutdown,
        )
    })
    .await
}

/// Runs `CHANGES` changes, each adding one address, and returns the latency histogram (µs)
/// from the change to its arrival on every stream.
async fn measure<F, Fut>(
    mut arrivals: mpsc::UnboundedReceiver<(usize, Instant)>,
    marker: Arc<Mutex<BTreeMap<SocketAddr, usize>>>,
    spacing: Duration,
    mut change: F,
) -> Histogram<u64>
where
    F: FnMut(usize, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut hist = Histogram::<u64>::new(3).unwrap();
    for n in 0..CHANGES {
        let addr: SocketAddr = format!("{}:8080", ip(10_000 + n)).parse().unwrap();
        marker.lock().insert(addr, n);
        let sent = Instant::now();
        change(n, addr).await;
        let mut got = 0;
        let deadline = sent + Duration::from_secs(30);
        while got < STREAMS {
            match tokio::time::timeout_at(deadline, arrivals.recv()).await {
                Ok(Some((c, at))) if c == n => {
                    hist.record(at.duration_since(sent).as_micros() as u64)
                        .unwrap();
                    got += 1;
                }
                Ok(Some(_)) => {}
                _ => panic!("change {n}: only {got} of {STREAMS} streams got it"),
            }
        }
        tokio::time::sleep(spacing).await;
    }
    hist
}

async fn fanout_index() -> Histogram<u64> {
    let shutdown = CancellationToken::new();
    let index = Index::shared(ClusterSettings::default());
    let ips: Vec<String> = (0..10).map(ip).collect();
    index.write().apply_service(&service(NS, "web"));
    index.write().apply_slice(&slice(NS, "web-1", "web", &ips));
    let addr = start_destination(index.clone(), &shutdown).await;
    let marker = Arc::new(Mutex::new(BTreeMap::new()));
    let arrivals = open_streams(
        addr,
        &format!("web.{NS}.svc.cluster.local:80"),
        marker.clone(),
    )
    .await;
    let ips = Arc::new(Mutex::new(ips));
    let hist = measure(arrivals, marker, Duration::from_millis(200), |_, a| {
        let index = index.clone();
        let ips = ips.clone();
        async move {
            let mut ips = ips.lock();
            ips.push(a.ip().to_string());
            index.write().apply_slice(&slice(NS, "web-1", "web", &ips));
        }
    })
    .await;
    shutdown.cancel();
    hist
}

/// The same changes through the API server: the index follows the cluster; a bare kube
/// watcher on the slice measures the API server's own watch lag as the baseline.
async fn fanout_apiserver(client: Client) -> (Histogram<u64>, Histogram<u64>) {
    let shutdown = CancellationToken::new();
    let ns = format!("bench-cp-{:06x}", rand::random::<u32>() % 0xff_ffff);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns, "labels": {"trellis.dev/test": "true"}}})).unwrap(),
        )
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    services
        .create(&PostParams::default(), &service(&ns, "web"))
        .await
        .unwrap();
    let mut ips: Vec<String> = (0..10).map(ip).collect();
    slices
        .create(&PostParams::default(), &slice(&ns, "web-1", "web", &ips))
        .await
        .unwrap();
    let index = trellis_operator::control_plane::index::spawn(
        ClusterSettings::default(),
        client.clone(),
        shutdown.clone(),
    );
    let addr = start_destination(index, &shutdown).await;
    let path = format!("web.{ns}.svc.cluster.local:80");
    // Wait until the index has the Service.
    loop {
        let mut c = DestinationClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        if c.get(GetDestination {
            path: path.clone(),
            ..GetDestination::default()
        })
        .await
        .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Baseline: a bare watcher on the slice.
    let (base_tx, mut base_rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let marker = Arc::new(Mutex::new(BTreeMap::new()));
    {
        let marker = marker.clone();
        let slices = slices.clone();
        tokio::spawn(async move {
            let mut stream =
                std::pin::pin!(watcher(slices, watcher::Config::default()).applied_objects());
            while let Some(Ok(s)) = futures::StreamExt::next(&mut stream).await {
                let now = Instant::now();
                for ep in s.endpoints.iter().flatten() {
                    for a in &ep.addresses {
                        let sa: SocketAddr = format!("{a}:8080").parse().unwrap();
                        if let Some(n) = marker.lock().get(&sa).copied() {
                            let _ = base_tx.send((n, now));
                        }
                    }
                }
            }
        });
    }
    let arrivals = open_streams(addr, &path, marker.clone()).await;
    let sent_at = Arc::new(Mutex::new(Vec::new()));
    let hist = {
        let sent_at = sent_at.clone();
        measure(arrivals, marker.clone(), SPACING, |_, a| {
            ips.push(a.ip().to_string());
            let obj = slice(&ns, "web-1", "web", &ips);
            let slices = slices.clone();
            let sent_at = sent_at.clone();
            async move {
                sent_at.lock().push(Instant::now());
                slices
                    .patch(
                        "web-1",
                        &PatchParams::apply("bench").force(),
                        &Patch::Apply(&obj),
                    )
                    .await
                    .unwrap();
            }
        })
        .await
    };
    let mut base = Histogram::<u64>::new(3).unwrap();
    let sent = sent_at.lock().clone();
    let mut seen = std::collections::BTreeSet::new();
    while let Ok((n, at)) = base_rx.try_recv() {
        if seen.insert(n) {
            base.record(at.duration_since(sent[n]).as_micros() as u64)
                .unwrap();
        }
    }
    shutdown.cancel();
    let _ = namespaces.delete(&ns, &DeleteParams::background()).await;
    (hist, base)
}

struct Accept;

impl TokenVerifier for Accept {
    async fn verify(&self, _token: &str) -> Result<ServiceAccountRef, TokenError> {
        Ok(ServiceAccountRef {
            namespace: "default".into(),
            name: "default".into(),
        })
    }
}

/// Serves Certify on a dedicated one-thread runtime (one core) and returns its address.
fn certify_server<V: TokenVerifier>(verifier: V, pki: &TestPki) -> SocketAddr {
    let pem = trellis_operator::pki::issuer::IssuerPem {
        cert_chain: pki.issuer_cert_pem.clone(),
        key: pki.issuer_key_pem.clone(),
        trust_anchors: pki.anchor_pem.clone(),
    };
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let issuer = SharedIssuer::default();
            issuer.update(&pem).unwrap();
            let (_tx, rx) = tokio::sync::watch::channel(IdentitySettings::default());
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let svc = IdentityService::new(issuer, verifier, rx, IdentityMetrics::default());
            trellis_operator::control_plane::certify::serve(
                listener,
                svc,
                Transport::Plaintext,
                CancellationToken::new(),
            )
            .await
            .unwrap();
        });
    });
    addr_rx.recv().unwrap()
}

/// Drives Certify open loop at rising rates for 3 s each; returns the highest rate with no
/// errors and a p99 under 1 s (no growing backlog), with that step's p50/p99 in ms.
async fn certify_capacity(addr: SocketAddr, token: String) -> (u64, f64, f64) {
    let id = well_known::identity_name("default", "default", well_known::DEFAULT_TRUST_DOMAIN);
    let csrs: Arc<Vec<Vec<u8>>> = Arc::new((0..64).map(|_| proxy_csr(&id).1).collect());
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut best = (0, 0.0, 0.0);
    for rate in [50u64, 100, 200, 400, 800, 1600, 3200, 6400, 12800] {
        let step = Duration::from_secs(3);
        let total = rate * step.as_secs();
        let interval = Duration::from_nanos(1_000_000_000 / rate);
        let start = Instant::now();
        let (tx, mut rx) = mpsc::unbounded_channel();
        for i in 0..total {
            let scheduled = start + interval * u32::try_from(i).unwrap();
            tokio::time::sleep_until(scheduled).await;
            let mut client = IdentityClient::new(channel.clone());
            let req = CertifyRequest {
                identity: id.clone(),
                token: token.as_bytes().to_vec(),
                certificate_signing_request: csrs[usize::try_from(i).unwrap() % csrs.len()].clone(),
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let ok = client.certify(req).await.is_ok();
                let _ = tx.send((ok, scheduled.elapsed()));
            });
        }
        drop(tx);
        let mut hist = Histogram::<u64>::new(3).unwrap();
        let mut errors = 0;
        while let Some((ok, latency)) = rx.recv().await {
            if !ok {
                errors += 1;
            }
            hist.record(latency.as_micros() as u64).unwrap();
        }
        let (p50, p99) = (pct(&hist, 0.5), pct(&hist, 0.99));
        println!("  certify {rate:>5}/s: errors {errors}, p50 {p50:.1} ms, p99 {p99:.1} ms");
        if errors > 0 || p99 > 1000.0 {
            break;
        }
        best = (rate, p50, p99);
    }
    best
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn memory() {
    let before = rss_kib();
    let index = Index::shared(ClusterSettings::default());
    for s in 0..1_000 {
        let name = format!("svc-{s}");
        let ips: Vec<String> = (0..10).map(|e| ip(s * 10 + e)).collect();
        let mut index = index.write();
        index.apply_service(&service(NS, &name));
        index.apply_slice(&slice(NS, &format!("{name}-1"), &name, &ips));
    }
    let loaded = rss_kib();
    // Churn: rewrite every slice once with one endpoint changed.
    for s in 0..1_000 {
        let name = format!("svc-{s}");
        let mut ips: Vec<String> = (0..10).map(|e| ip(s * 10 + e)).collect();
        ips[0] = ip(20_000 + s);
        index
            .write()
            .apply_slice(&slice(NS, &format!("{name}-1"), &name, &ips));
    }
    let churned = rss_kib();
    println!("memory: 1,000 Services x 10 endpoints");
    println!(
        "  process RSS before {before} KiB (baseline), loaded {loaded} KiB, after churn {churned} KiB"
    );
    println!(
        "  index cost {} KiB ({:.2}x baseline RSS)",
        loaded.saturating_sub(before),
        loaded as f64 / before.max(1) as f64
    );
    drop(index);
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mode = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "all".into());
    let all = mode == "all";
    if all || mode == "memory" {
        memory();
    }
    if all || mode == "fanout" {
        let injected = fanout_index().await;
        println!("fan-out, {STREAMS} Get streams, {CHANGES} changes injected into the index:");
        println!(
            "  p50 {:.2} ms, p99 {:.2} ms",
            pct(&injected, 0.5),
            pct(&injected, 0.99)
        );
        let client = trellis_tests::cluster::client().await;
        let (api, base) = fanout_apiserver(client).await;
        println!("fan-out through the API server (patch EndpointSlice → update on every stream):");
        println!(
            "  p50 {:.2} ms, p99 {:.2} ms",
            pct(&api, 0.5),
            pct(&api, 0.99)
        );
        println!(
            "  baseline: bare kube watcher on the slice p50 {:.2} ms, p99 {:.2} ms",
            pct(&base, 0.5),
            pct(&base, 0.99)
        );
        println!(
            "  ratio p50 {:.2}x, p99 {:.2}x",
            pct(&api, 0.5) / pct(&base, 0.5).max(0.001),
            pct(&api, 0.99) / pct(&base, 0.99).max(0.001)
        );
    }
    if all || mode == "certify" {
        let pki = TestPki::generate(well_known::DEFAULT_TRUST_DOMAIN);
        println!("certify, server on one core, in-process token check (signing cost, baseline):");
        let (base, _, _) = certify_capacity(certify_server(Accept, &pki), "t".into()).await;
        let client = trellis_tests::cluster::client().await;
        let token = k8s::identity_token(&client, "default", "default", 3600, None).await;
        println!("certify, server on one core, real TokenReview (not cached):");
        let (real, _, _) = certify_capacity(
            certify_server(TokenReviewVerifier::new(client), &pki),
            token,
        )
        .await;
        println!(
            "  sustained: real {real}/s, in-process {base}/s, ratio {:.2}",
            real as f64 / base.max(1) as f64
        );
    }
}
