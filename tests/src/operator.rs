//! An operator running in-process against the local cluster, limited by a label selector to
//! one test's Mesh, with helpers to apply that Mesh and wait on its status.
//!
//! Every Mesh has a test-unique name, so the cluster-scoped objects it renders never collide.

use std::{net::SocketAddr, time::Duration};

use k8s_openapi::{
    api::{
        admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
        apps::v1::Deployment,
        core::v1::{Namespace, Pod, Secret},
        rbac::v1::{ClusterRole, ClusterRoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use trellis_api::well_known::{CONTROL_PLANE_NS_LABEL, CONTROLLER_NAME, PROXY_VERSION_ANNOTATION};
use trellis_crds::{
    common::condition::{TRUE, find},
    v1alpha1::mesh::{Mesh, conditions},
};
use trellis_operator::{
    admin::{AdminServer, Readiness, SharedRegistry},
    config::OperatorConfig,
    reconciler::{self, error::Error},
};

use crate::{DEFAULT_TIMEOUT, cluster, eventually, k8s};

/// Label that limits each test's operator to its own Mesh.
pub const TEST_MESH_LABEL: &str = "trellis.dev/test-mesh";
/// Bound for the operator to undo drift or roll a change.
pub const RESTORE_TIMEOUT: Duration = Duration::from_secs(30);
/// A window without Mesh reconciles longer than the debounce (0.5 s) plus one reconcile.
pub const QUIET: Duration = Duration::from_secs(3);

/// An operator running in this process.
#[allow(missing_debug_implementations, reason = "holds a task handle")]
pub struct Running {
    /// Cancels the operator (a graceful stop).
    pub shutdown: CancellationToken,
    /// The operator's task.
    pub task: JoinHandle<Result<(), Error>>,
    /// Its admin server (`/metrics`, `/ready`).
    pub admin: SocketAddr,
}

impl Running {
    /// Stops it gracefully (it releases the Lease).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Stops it like a crash: no Lease release, nothing more written.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
        self.shutdown.cancel();
    }

    /// The admin server's `/metrics` text.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.admin).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: admin\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    /// Mesh reconciles started so far.
    pub async fn mesh_reconciles(&self) -> u64 {
        let metrics = self.metrics().await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("trellis_operator_reconciles_total{controller=\"mesh\"} "))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// Waits until no Mesh reconcile has started for [`QUIET`], so that what changes next is
    /// not picked up by a reconcile already on its way (each status write reconciles again).
    pub async fn await_quiet(&self) {
        eventually(
            "the Mesh controller to go quiet",
            DEFAULT_TIMEOUT,
            || async {
                let before = self.mesh_reconciles().await;
                tokio::time::sleep(QUIET).await;
                let after = self.mesh_reconciles().await;
                if before == after {
                    Ok(())
                } else {
                    Err(format!("{} reconciles in {QUIET:?}", after - before))
                }
            },
        )
        .await;
    }
}

/// An operator config for replica `replica` of `h`: its Lease in the test namespace, fast
/// lease timings, only `h`'s Mesh, and images from a registry that does not exist.
pub fn operator_config(h: &Harness, replica: &str) -> OperatorConfig {
    let mut config = OperatorConfig::with_replica_name(replica);
    config.lease_namespace = h.ns.clone();
    config.lease_name = "trellis-operator".to_string();
    config.lease_duration = Duration::from_secs(4);
    config.lease_renew_interval = Duration::from_secs(1);
    config.lease_renew_deadline = Duration::from_secs(3);
    config.mesh_selector = Some(format!("{TEST_MESH_LABEL}={}", h.mesh));
    config.image_repository = "test.trellis.invalid/trellis".to_string();
    config
}

/// Starts an operator with `config` and its admin server on a free loopback port.
pub async fn start_operator(client: Client, config: OperatorConfig) -> Running {
    let registry = SharedRegistry::default();
    let readiness = Readiness::default();
    let shutdown = CancellationToken::new();
    let admin = AdminServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        registry.clone(),
        readiness.clone(),
    )
    .await
    .unwrap();
    let addr = admin.local_addr().unwrap();
    tokio::spawn(admin.serve(shutdown.clone().cancelled_owned()));
    let token = shutdown.clone();
    let task =
        tokio::spawn(
            async move { reconciler::run(client, config, &registry, &readiness, token).await },
        );
    Running {
        shutdown,
        task,
        admin: addr,
    }
}

/// One test's Mesh: its names and a client.
#[derive(Clone)]
#[allow(missing_debug_implementations, reason = "kube::Client is not Debug")]
pub struct Harness {
    /// Client for the local cluster.
    pub client: Client,
    /// The test namespace (holds the Lease).
    pub ns: String,
    /// Mesh name (test-unique).
    pub mesh: String,
    /// The control-plane namespace (`spec.namespace`).
    pub cp: String,
}

impl Harness {
    /// Starts an operator replica named `replica` with [`operator_config`].
    /// Starts an operator with `config` and its admin server on a free loopback port.
    pub async fn start_operator(&self, replica: &str) -> Running {
        start_operator(self.client.clone(), operator_config(self, replica)).await
    }

    /// Starts one operator, applies the sample Mesh with `spec` merged in and waits until it
    /// is Ready at the default version.
    pub async fn start_ready(&self, spec: Value) -> (Running, Mesh) {
        let op = self.start_operator("solo").await;
        self.apply_mesh(spec).await;
        let mesh = self.await_ready(&version()).await;
        (op, mesh)
    }

    /// How many `K` (cluster-scoped) carry this Mesh's `trellis.dev/mesh` label.
    pub async fn labelled<K>(&self) -> usize
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::all(self.client.clone());
        let selector = ListParams::default().labels(&format!("trellis.dev/mesh={}", self.mesh));
        api.list_metadata(&selector)
            .await
            .expect("list labelled objects")
            .items
            .len()
    }

    /// Every Mesh.
    pub fn meshes(&self) -> Api<Mesh> {
        Api::all(self.client.clone())
    }

    /// Deployments of the control-plane namespace.
    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.cp)
    }

    /// Secrets of the control-plane namespace.
    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.cp)
    }

    /// The sample Mesh, renamed for this test, with `spec` merged in; server-side applied.
    pub async fn apply_mesh(&self, spec: Value) -> Mesh {
        let sample =
            std::fs::read_to_string(cluster::repo_root().join("config/samples/mesh.yaml")).unwrap();
        let mut mesh: Value = serde_yaml::from_str(&sample).unwrap();
        mesh["metadata"] = json!({
            "name": self.mesh,
            "labels": { TEST_MESH_LABEL: self.mesh, "argocd.argoproj.io/instance": "must-not-be-copied" },
            "annotations": { "example.com/owner": "must-not-be-copied" },
        });
        // kwok runs the controller pods, so nothing answers the validating webhook: it must
        // not fail closed, or every test's policy objects would be refused while this Mesh
        // exists. A test that sets the policy itself keeps its own.
        let mut full_spec = json!({
            "namespace": self.cp,
            "controlPlane": { "validatorFailurePolicy": "Ignore" },
        });
        if let (Some(base), Some(extra)) = (full_spec.as_object_mut(), spec.as_object()) {
            for (k, v) in extra {
                match (base.get_mut(k), v) {
                    (Some(Value::Object(base)), Value::Object(extra)) if k == "controlPlane" => {
                        base.extend(extra.clone());
                    }
                    _ => {
                        base.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        mesh["spec"] = full_spec;
        k8s::server_side_apply(&self.meshes(), &self.mesh, &mesh).await
    }

    /// Waits as [`Self::await_ready`] does, then asserts that the Mesh is not Degraded.
    pub async fn await_healthy(&self, version: &str) -> Mesh {
        let mesh = self.await_ready(version).await;
        let degraded = condition(&mesh, conditions::DEGRADED);
        assert_eq!(degraded.status, "False", "{}", degraded.message);
        mesh
    }

    /// Waits for Ready True at `version` with every component ready, returning the Mesh.
    pub async fn await_ready(&self, version: &str) -> Mesh {
        k8s::await_object(&self.meshes(), &self.mesh, DEFAULT_TIMEOUT, |m| {
            let status = m.status.as_ref().ok_or("no status")?;
            let ready = find(&status.conditions, conditions::READY).ok_or("no Ready condition")?;
            let fresh = status.observed_generation == m.metadata.generation
                && ready.observed_generation == m.metadata.generation;
            if ready.status == TRUE
                && fresh
                && status.version.as_deref() == Some(version)
                && !status.components.is_empty()
                && status.components.iter().all(|c| c.ready)
            {
                Ok(())
            } else {
                Err(format!(
                    "{:?}",
                    status
                        .conditions
                        .iter()
                        .map(|c| (&c.type_, &c.status, &c.message))
                        .collect::<Vec<_>>()
                ))
            }
        })
        .await
    }

    /// Waits for `status.meshedPods` and `status.upToDatePods` to be these counts.
    pub async fn await_pod_counts(&self, meshed: i32, up_to_date: i32) -> Mesh {
        k8s::await_object(&self.meshes(), &self.mesh, DEFAULT_TIMEOUT, |m| {
            let status = m.status.as_ref().ok_or("no status")?;
            let counts = (status.meshed_pods, status.up_to_date_pods);
            if counts == (Some(meshed), Some(up_to_date)) {
                Ok(())
            } else {
                Err(format!("(meshedPods, upToDatePods) = {counts:?}"))
            }
        })
        .await
    }

    /// The rendered controller Deployment.
    pub async fn controller(&self) -> Deployment {
        self.deployments().get(CONTROLLER_NAME).await.unwrap()
    }

    /// The value at `key` of Secret `name` in the control-plane namespace.
    pub async fn secret_value(&self, name: &str, key: &str) -> String {
        let secret = self.secrets().get(name).await.unwrap();
        String::from_utf8(secret.data.unwrap()[key].0.clone()).unwrap()
    }

    /// Removes what the test left, whether or not an operator still runs.
    pub async fn reap(&self) {
        let meshes = self.meshes();
        if meshes.get_opt(&self.mesh).await.ok().flatten().is_some() {
            let _ = meshes
                .patch(
                    &self.mesh,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
                )
                .await;
            let _ = meshes.delete(&self.mesh, &DeleteParams::background()).await;
        }
        let selector = format!("trellis.dev/mesh={}", self.mesh);
        let lp = ListParams::default().labels(&selector);
        delete_labelled::<ClusterRole>(&self.client, &lp).await;
        delete_labelled::<ClusterRoleBinding>(&self.client, &lp).await;
        delete_labelled::<MutatingWebhookConfiguration>(&self.client, &lp).await;
        delete_labelled::<ValidatingWebhookConfiguration>(&self.client, &lp).await;
        if self.cp != self.ns {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            let _ = namespaces
                .delete(&self.cp, &DeleteParams::background())
                .await;
        }
    }
}

/// Deletes every cluster-scoped `K` that `lp` selects, in the background; errors are ignored
/// (this is clean-up).
async fn delete_labelled<K>(client: &Client, lp: &ListParams)
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    let _ = api.delete_collection(&DeleteParams::background(), lp).await;
}

/// Runs `body` with a harness; `own_namespace` makes `spec.namespace` one the operator creates.
pub async fn with_mesh<F, Fut>(name: &str, own_namespace: bool, body: F)
where
    F: FnOnce(Harness) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    k8s::with_temp_ns(name, move |client, ns| async move {
        k8s::install_crds(&client).await;
        let h = Harness {
            client,
            mesh: ns.clone(),
            cp: if own_namespace {
                format!("{ns}-cp")
            } else {
                ns.clone()
            },
            ns,
        };
        let outcome = tokio::spawn(body(h.clone())).await;
        h.reap().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    })
    .await;
}

/// The default Mesh version.
pub fn version() -> String {
    trellis_crds::v1alpha1::mesh::MeshSpec::default().version
}

/// [`with_mesh`] with one operator started and the sample Mesh Ready (see
/// [`Harness::start_ready`]); `body` gets the Ready Mesh, and the operator stops after it.
pub async fn with_ready_mesh<F, Fut>(name: &str, own_namespace: bool, body: F)
where
    F: FnOnce(Harness, Mesh) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    with_mesh(name, own_namespace, |h| async move {
        let (op, mesh) = h.start_ready(json!({})).await;
        body(h, mesh).await;
        op.stop().await;
    })
    .await;
}

/// A pod kwok runs, labelled as the injector labels the pods of the control plane in
/// `control_plane_ns` (unlabelled when `None`), with proxy version `proxy_version`.
pub fn test_pod(name: &str, control_plane_ns: Option<&str>, proxy_version: &str) -> Pod {
    let labels = match control_plane_ns {
        Some(ns) => json!({ CONTROL_PLANE_NS_LABEL: ns }),
        None => json!({}),
    };
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": { PROXY_VERSION_ANNOTATION: proxy_version },
        },
        "spec": {
            "nodeName": "kwok-node-0",
            "containers": [{ "name": "app", "image": "test.trellis.invalid/app" }],
        },
    }))
    .unwrap()
}

/// The condition `type_` of `mesh`, which must be there.
pub fn condition(mesh: &Mesh, type_: &str) -> Condition {
    let status = mesh.status.as_ref().expect("the Mesh has a status");
    find(&status.conditions, type_)
        .cloned()
        .unwrap_or_else(|| panic!("the Mesh has no {type_} condition"))
}

/// The image of the first container of `d`.
pub fn image_of(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

/// Quantile `q` of a Prometheus histogram from /metrics text, interpolated linearly inside
/// the bucket that holds it (as PromQL's `histogram_quantile` does).
pub fn histogram_quantile(metrics: &str, name: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rank = q * buckets.last()?.1;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let share = if count > below {
                (rank - below) / (count - below)
            } else {
                1.0
            };
            return Some(lower + (le - lower) * share);
        }
        (lower, below) = (le, count);
    }
    None
}
