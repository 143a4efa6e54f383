//! The local cluster's real node: namespaces whose pods run there, plain HTTP to pod IPs
//! (the host reaches the node's bridge), the demo client's counts, Deployment rollouts and
//! container memory from cgroups.
//!
//! The node is tainted, so pods stay on kwok's fake node unless their namespace opts in
//! ([`namespace`], the same annotations as `tests/cluster/cluster real-node`). Images come
//! from `tests/images/build`, which `tests/test-all` runs before the tests.

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client as HttpClient, rt::TokioExecutor};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Namespace, core::v1::Pod};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use serde::Deserialize;
use serde_json::json;

use crate::eventually;

/// Field manager of the annotations [`namespace`] applies.
const FIELD_MANAGER_REAL_NODE: &str = "trellis-tests-real-node";

/// The real node's name.
pub const NODE_NAME: &str = "trellis-node-0";
/// The node's label, which the namespace node selector asks for.
pub const NODE_SELECTOR: &str = "trellis.dev/node=real";
/// The node's taint key.
pub const TAINT_KEY: &str = "trellis.dev/real-node";

/// The repository every image is built under (the operator's default).
pub const IMAGE_REPOSITORY: &str = "ghcr.io/trellis-mesh";

/// The release version: the image tag `tests/images/build` gives by default.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The second tag `tests/test-all` gives the same images, for upgrade tests.
pub fn next_version() -> String {
    format!("{}-next", version())
}

/// The demo app's image at the release version.
pub fn demo_image() -> String {
    format!("{IMAGE_REPOSITORY}/demo:{}", version())
}

/// Creates `name` if missing and makes its pods run on the real node; `annotations` are added.
pub async fn namespace(client: &Client, name: &str, annotations: &[(&str, &str)]) {
    let mut all: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    all.insert(
        "scheduler.alpha.kubernetes.io/node-selector".to_string(),
        NODE_SELECTOR.to_string(),
    );
    all.insert(
        "scheduler.alpha.kubernetes.io/defaultTolerations".to_string(),
        json!([{ "key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule" }]).to_string(),
    );
    let api: Api<Namespace> = Api::all(client.clone());
    let patch = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": name, "annotations": all },
    });
    // A field manager of its own: a later apply of the same namespace (config/install/) by
    // the tests' manager must not take these annotations away.
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER_REAL_NODE).force(),
        &Patch::Apply(&patch),
    )
    .await
    .unwrap_or_else(|e| panic!("apply namespace {name}: {e}"));
}

/// Waits until Deployment `name` has rolled out: every replica updated and available, and
/// no old ones left.
pub async fn rollout(client: &Client, ns: &str, name: &str, timeout: Duration) -> Deployment {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    eventually(
        &format!("Deployment {ns}/{name} rolled out"),
        timeout,
        || async {
            let d = api.get(name).await.map_err(|e| e.to_string())?;
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let st = d.status.clone().unwrap_or_default();
            let observed =
                st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
            let done = observed
                && st.updated_replicas.unwrap_or(0) == want
                && st.available_replicas.unwrap_or(0) == want
                && st.replicas.unwrap_or(0) == want;
            if done {
                return Ok(d);
            }
            Err(format!(
                "{st:?}; pods: {}",
                pod_summary(&pods, &selector_of(&d)).await
            ))
        },
    )
    .await
}

/// `k=v,...` from a Deployment's match labels.
pub fn selector_of(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// One line per pod: name, phase, node and each waiting container's reason (for failures).
pub async fn pod_summary(pods: &Api<Pod>, selector: &str) -> String {
    let Ok(list) = pods.list(&ListParams::default().labels(selector)).await else {
        return "(cannot list pods)".to_string();
    };
    list.items
        .iter()
        .map(|p| {
            let st = p.status.clone().unwrap_or_default();
            let waiting: Vec<String> = st
                .init_container_statuses
                .iter()
                .flatten()
                .chain(st.container_statuses.iter().flatten())
                .filter_map(|c| {
                    let w = c.state.as_ref()?.waiting.as_ref()?;
                    Some(format!(
                        "{}: {} {}",
                        c.name,
                        w.reason.clone().unwrap_or_default(),
                        w.message.clone().unwrap_or_default()
                    ))
                })
                .collect();
            format!(
                "{} {} on {} {waiting:?}",
                p.metadata.name.clone().unwrap_or_default(),
                st.phase.unwrap_or_default(),
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The running, ready pods matching `selector`.
pub async fn ready_pods(client: &Client, ns: &str, selector: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.list(&ListParams::default().labels(selector))
        .await
        .unwrap_or_else(|e| panic!("list pods {ns} {selector}: {e}"))
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect()
}

/// The pod's IP.
pub fn pod_ip(pod: &Pod) -> IpAddr {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| panic!("pod {:?} has no IP", pod.metadata.name))
}

/// Plain HTTP/1.1 `method` to `http://ip:port/path` from the host; (status, body) or a message.
pub async fn http(
    method: &str,
    ip: IpAddr,
    port: u16,
    path: &str,
) -> Result<(u16, String), String> {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{ip}:{port}{path}"))
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .map_err(|_| format!("{method} {ip}:{port}{path}: timed out"))?
        .map_err(|e| format!("{method} {ip}:{port}{path}: {e}"))?;
    let status = resp.status().as_u16();
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .map_err(|_| "body timed out".to_string())?
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The demo client's counts (`trellis-demo-app client`, `GET /stats`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Stats {
    /// Requests sent.
    pub sent: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Outcome key (status code, `grpc-<code>`, `error:<kind>`) → count.
    pub outcomes: BTreeMap<String, u64>,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Server name (`x-demo-server`) → answers.
    #[serde(default)]
    pub servers: BTreeMap<String, u64>,
}

impl Stats {
    /// Answers from servers whose name starts with `prefix` (a Deployment's pods).
    pub fn answered_by(&self, prefix: &str) -> u64 {
        self.servers
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Count of one outcome.
    pub fn outcome(&self, key: &str) -> u64 {
        self.outcomes.get(key).copied().unwrap_or(0)
    }
}

/// Reads (`GET /stats`) or resets (`POST /reset`, returning the counts before) a demo client.
pub async fn stats(ip: IpAddr, port: u16, reset: bool) -> Result<Stats, String> {
    let (method, path) = if reset {
        ("POST", "/reset")
    } else {
        ("GET", "/stats")
    };
    let (status, body) = http(method, ip, port, path).await?;
    if status != 200 {
        return Err(format!("{method} {path}: {status} {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("stats {body:?}: {e}"))
}

/// The proxy's Prometheus text from its admin port (4191) on the pod's IP.
pub async fn proxy_metrics(ip: IpAddr) -> Result<String, String> {
    let (status, body) = http(
        "GET",
        ip,
        trellis_api::well_known::PROXY_ADMIN_PORT,
        "/metrics",
    )
    .await?;
    (status == 200)
        .then_some(body)
        .ok_or_else(|| format!("/metrics answered {status}"))
}

/// Sum of the samples of `metric` whose label set contains every `labels` pair.
pub fn metric_sum(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Memory of a container from its cgroup (v1 `memory` hierarchy or v2): (usage, working set
/// = usage minus inactive file cache), in bytes. `None` when the cgroup is not found.
pub fn container_memory(container_id: &str) -> Option<(u64, u64)> {
    let id = container_id.rsplit("://").next()?;
    for root in ["/sys/fs/cgroup/memory/kubepods", "/sys/fs/cgroup/kubepods"] {
        let Some(dir) = find_dir(std::path::Path::new(root), id, 3) else {
            continue;
        };
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        let usage = read("memory.usage_in_bytes")
            .or_else(|| read("memory.current"))?
            .trim()
            .parse::<u64>()
            .ok()?;
        let stat = read("memory.stat").unwrap_or_default();
        let inactive = stat
            .lines()
            .find_map(|l| {
                l.strip_prefix("total_inactive_file ")
                    .or_else(|| l.strip_prefix("inactive_file "))
            })
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        return Some((usage, usage.saturating_sub(inactive)));
    }
    None
}

fn find_dir(dir: &std::path::Path, name: &str, depth: u32) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if entry.file_name().to_string_lossy() == name {
            return Some(path);
        }
        if depth > 0
            && let Some(found) = find_dir(&path, name, depth - 1)
        {
            return Some(found);
        }
    }
    None
}

/// SIGKILLs a container through the node's containerd (`ctr tasks kill`): a crash, not a
/// graceful stop. `container_id` is a pod status's `containerID` (`containerd://<id>`).
pub async fn kill_container(container_id: &str) {
    let id = container_id.rsplit("://").next().unwrap_or(container_id);
    let ctr = crate::cluster::cache_dir()
        .join(format!(
            "containerd-{}",
            crate::cluster::pinned("CONTAINERD_VERSION")
        ))
        .join("ctr");
    let socket = crate::cluster::repo_root().join("tests/cluster/.run/node/ctd.sock");
    let out = tokio::process::Command::new(&ctr)
        .arg("--address")
        .arg(&socket)
        .args([
            "--namespace",
            "k8s.io",
            "tasks",
            "kill",
            "--signal",
            "SIGKILL",
            id,
        ])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", ctr.display()));
    assert!(
        out.status.success(),
        "ctr tasks kill {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
