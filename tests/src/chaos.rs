//! Chaos under load: a mesh in network namespaces (see [`crate::mesh`]) with a `web`
//! Service, web pods and a client pod sending steady load ([`crate::load`]), for the chaos
//! tests (`tests/tests/chaos.rs`, `tests/tests/restart_apiserver.rs`).
//!
//! Tests print `chaos: <scenario>: <phase>: …` lines with the requests sent, failed and when
//! traffic recovered (`--nocapture` shows them). They share the mesh's bridge and the
//! apiserver, so [`serial`] runs them one at a time.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use k8s_openapi::api::{core::v1::Pod, discovery::v1::EndpointSlice};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use parking_lot::Mutex;
use serde_json::json;
use tokio::time::Instant;

use crate::{
    DEFAULT_TIMEOUT, eventually,
    k8s::with_temp_ns,
    load::{Load, Report},
    mesh::MeshNet,
    netns::PodNs,
    proxy::serve_http_app,
};

/// The tests run one at a time: they share the bridge and the apiserver.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The web pods' HTTP port.
pub const HTTP: u16 = 80;
/// Four workers, one request each per 50 ms: 80 requests per second.
pub const WORKERS: usize = 4;
/// The pause between one worker's requests.
pub const INTERVAL: Duration = Duration::from_millis(50);
/// How long calm phases last, and faults by default.
pub const PHASE: Duration = Duration::from_secs(5);

/// The paths an app has seen.
pub type Seen = Arc<Mutex<Vec<String>>>;

/// The app label of web pods outside the Service.
pub const SPARE: &str = "spare";

/// A mesh with a `web` Service, `web-*` pods serving HTTP and a `client` pod.
#[derive(Debug)]
pub struct Fixture {
    /// The mesh.
    pub mesh: MeshNet,
    /// The workloads' namespace.
    pub ns: String,
    client: Arc<PodNs>,
    svc: SocketAddr,
    /// Per web pod: its address and the paths its app has seen.
    pub webs: BTreeMap<&'static str, (Ipv4Addr, Seen)>,
}

impl Fixture {
    /// Starts the mesh with web pods named `webs` (`(name, app label)`: only `app=web` is
    /// behind the Service) and the client.
    pub async fn start(client: Client, ns: &str, webs: &[(&'static str, &str)]) -> Self {
        let mut mesh = MeshNet::start(client, ns).await;
        let svc_ip = mesh.add_service("web", &[("http", HTTP)]).await;
        let client = mesh.add_pod("client", "client", "client", &[]).await;
        let mut fixture = Self {
            mesh,
            ns: ns.to_string(),
            client,
            svc: (svc_ip, HTTP).into(),
            webs: BTreeMap::new(),
        };
        for (name, app) in webs {
            fixture.add_web(name, app).await;
        }
        fixture
    }

    /// Adds web pod `name`, labelled `app=<app>` once its app listens (kwok reports pods
    /// ready before their network namespace exists).
    pub async fn add_web(&mut self, name: &'static str, app: &str) {
        let pod = self
            .mesh
            .add_pod(name, SPARE, "web", &[("http", HTTP)])
            .await;
        let seen = serve_http_app(pod.listen(HTTP), name);
        self.webs.insert(name, (pod.addr(), seen));
        if app != SPARE {
            self.relabel(name, app).await;
        }
    }

    /// Starts the load, and returns once it flows (discovery can lag the pods at first).
    ///
    /// A one-worker load first warms the client proxy's discovery of the Service, until a
    /// request has gone through its balancer. The faults are measured on a warm mesh: a
    /// connection made while a target's first discovery is unanswered past the proxy's
    /// discovery timeout is forwarded unbalanced for its whole life, a cold-start finding
    /// of its own (see `docs/hardening.md`).
    pub async fn load(&self) -> Load {
        let host = format!("web.{}.svc.cluster.local", self.ns);
        let warm = Load::start(self.client.clone(), self.svc, &host, 1, INTERVAL);
        eventually(
            "a request balanced by the client proxy",
            DEFAULT_TIMEOUT,
            || async {
                let metrics = self.mesh.metrics("client").await;
                let balanced = crate::real_node::metric_sum(
                    &metrics,
                    "request_total",
                    &[("direction", "outbound")],
                );
                if balanced >= 1.0 {
                    Ok(())
                } else {
                    Err(balanced)
                }
            },
        )
        .await;
        warm.stop().await;
        let load = Load::start(self.client.clone(), self.svc, &host, WORKERS, INTERVAL);
        load.await_successes(Instant::now(), 2 * WORKERS).await;
        load
    }

    /// How many requests web pod `name`'s app has answered.
    pub fn served(&self, name: &str) -> usize {
        self.webs[name].1.lock().len()
    }

    /// Waits until web pod `name`'s app gets load.
    pub async fn await_traffic(&self, name: &str) {
        let before = self.served(name);
        eventually(&format!("load reaches {name}"), DEFAULT_TIMEOUT, || async {
            let n = self.served(name);
            if n > before { Ok(()) } else { Err(n) }
        })
        .await;
    }

    /// Replaces the pods behind the Service, `out`, by `into` (relabelling, and retrying
    /// while the apiserver refuses), and times it: until the EndpointSlices list only `into`,
    /// and until `into` gets load. (Replacing rather than adding: a peak-EWMA balancer under
    /// light load keeps sending to the warm endpoints it has, so an added one could wait for
    /// its default RTT to decay.)
    pub async fn swap(&self, out: &[&str], into: &str) -> Swapped {
        let start = Instant::now();
        for (name, app) in std::iter::once((into, "web")).chain(out.iter().map(|n| (*n, SPARE))) {
            self.relabel(name, app).await;
        }
        let slices: Api<EndpointSlice> = Api::namespaced(self.mesh.client.clone(), &self.ns);
        let selector = ListParams::default().labels("kubernetes.io/service-name=web");
        let want = vec![self.webs[into].0.to_string()];
        eventually(
            &format!("the EndpointSlices list only {into}"),
            DEFAULT_TIMEOUT,
            || async {
                let list = slices
                    .list(&selector)
                    .await
                    .map_err(|e| vec![e.to_string()])?;
                let ready: Vec<String> = list
                    .items
                    .iter()
                    .flat_map(|s| s.endpoints.iter().flatten())
                    .filter(|ep| ep.conditions.as_ref().and_then(|c| c.ready) != Some(false))
                    .flat_map(|ep| ep.addresses.clone())
                    .collect();
                if ready == want { Ok(()) } else { Err(ready) }
            },
        )
        .await;
        let listed = start.elapsed();
        self.await_traffic(into).await;
        Swapped {
            listed,
            traffic: start.elapsed(),
        }
    }

    /// Relabels pod `name` `app=<app>` (in or out of the Service), retrying while the
    /// apiserver refuses.
    pub async fn relabel(&self, name: &str, app: &str) {
        let pods: Api<Pod> = Api::namespaced(self.mesh.client.clone(), &self.ns);
        let patch = json!({ "metadata": { "labels": { "app": app } } });
        eventually(&format!("{name} relabelled"), DEFAULT_TIMEOUT, || async {
            pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| e.to_string())
        })
        .await;
    }
}

/// How long replacing the pods behind the Service took.
#[derive(Clone, Copy, Debug)]
pub struct Swapped {
    /// Until the EndpointSlices listed only the new pod.
    pub listed: Duration,
    /// Until the new pod got load.
    pub traffic: Duration,
}

/// Prints a phase's report and returns it.
pub fn report(scenario: &str, phase: &str, report: Report) -> Report {
    eprintln!("chaos: {scenario}: {phase}: {report}");
    report
}

/// Runs `test` alone, in a fresh namespace.
pub async fn serial<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let _serial = SERIAL.lock().await;
    with_temp_ns(name, test).await;
}
