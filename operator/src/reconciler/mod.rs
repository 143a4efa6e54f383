//! The reconciler (the `operator` role): the Mesh and Namespace controllers, rendering and
//! the Lease, with their shared context, metrics and per-object backoff. [`run`] waits for
//! the Lease and then runs every controller (Meshes with their meshed-pod counts, and the
//! namespace inject-label mirror) until shutdown.
//!
//! It never imports the control plane ([`crate::control_plane`]); both share [`crate::pki`].

pub mod applier;
pub mod error;
pub mod lease;
pub mod mesh;
pub mod namespace;
pub mod render;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use kube::{
    Api, Client,
    api::ListParams,
    runtime::{
        Controller,
        controller::Action,
        controller::Config as ControllerConfig,
        events::{Recorder, Reporter},
        reflector::ObjectRef,
        watcher,
    },
};
use parking_lot::Mutex;
use prometheus_client::metrics::{
    counter::Counter,
    family::Family,
    gauge::Gauge,
    histogram::{Histogram, exponential_buckets},
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use trellis_api::well_known::{FIELD_MANAGER, MANAGED_BY_LABEL};
use trellis_crds::v1alpha1::mesh::Mesh;

use self::{
    error::Error,
    lease::LeaseParams,
    render::{Images, MESH_LABEL},
};
use crate::{
    admin::{Readiness, SharedRegistry},
    config::OperatorConfig,
    watch_backoff::WatchBackoff,
};

/// Shortest retry delay after a failed reconcile.
pub const BACKOFF_MIN: Duration = Duration::from_secs(5);
/// Longest retry delay after repeated failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How long running reconciles may take to finish at shutdown; inside the process's
/// [`crate::SHUTDOWN_GRACE`], so the Lease is still released.
pub const DRAIN: Duration = Duration::from_secs(10);
/// Pause between two reconciles of one object caused by a burst of watch events.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// Labels of per-controller metrics.
pub type ControllerLabels = Vec<(&'static str, String)>;

/// Reconcile metrics, registered in the shared registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Reconciles by controller.
    pub reconciles: Family<ControllerLabels, Counter>,
    /// Failed reconciles by controller and error label.
    pub errors: Family<ControllerLabels, Counter>,
    /// Reconcile duration in seconds by controller.
    pub duration: Family<ControllerLabels, Histogram>,
    /// Certificate expiry (Unix seconds) by mesh and certificate.
    pub cert_expiry: Family<ControllerLabels, Gauge>,
    /// Component readiness (1 ready, 0 not) by mesh and component.
    pub component_ready: Family<ControllerLabels, Gauge>,
    /// Running pods that asked for a proxy and have none (see [`mesh::uninjected`]).
    pub uninjected: Gauge,
    /// Such pods reported, since the process started.
    pub uninjected_reported: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them under `trellis_operator_*`.
    pub fn register(registry: &SharedRegistry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            cert_expiry: Family::default(),
            component_ready: Family::default(),
            uninjected: Gauge::default(),
            uninjected_reported: Counter::default(),
        };
        let mut registry = registry.write();
        let sub = registry.sub_registry_with_prefix("trellis_operator");
        let counters = [
            ("reconciles", "Reconciles started", &metrics.reconciles),
            (
                "reconcile_errors",
                "Reconciles that failed",
                &metrics.errors,
            ),
        ];
        for (name, help, family) in counters {
            sub.register(name, help, family.clone());
        }
        let gauges = [
            (
                "certificate_expiry_timestamp_seconds",
                "When a certificate the operator manages expires",
                &metrics.cert_expiry,
            ),
            (
                "component_ready",
                "Whether a control-plane component is ready",
                &metrics.component_ready,
            ),
        ];
        for (name, help, family) in gauges {
            sub.register(name, help, family.clone());
        }
        sub.register(
            "uninjected_pods",
            "Running pods that asked for a proxy and have none",
            metrics.uninjected.clone(),
        );
        sub.register(
            "uninjected_pods_reported",
            "Pods reported (Event ProxyNotInjected) for asking for a proxy and having none",
            metrics.uninjected_reported.clone(),
        );
        let duration = metrics.duration.clone();
        sub.register(
            "reconcile_duration_seconds",
            "Time a reconcile took",
            duration,
        );
        metrics
    }
}

/// Lets running reconciles finish, for at most [`DRAIN`]. The controllers' own graceful
/// shutdown never returns when it starts before their first list completes, so the drain also
/// ends as soon as no reconcile is running.
async fn drain(
    controllers: &mut (impl Future<Output = ((), ())> + Unpin),
    in_flight: &AtomicUsize,
) {
    let idle = async {
        while in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let drained = tokio::time::timeout(DRAIN, async {
        tokio::select! {
            _ = controllers => {}
            () = idle => {}
        }
    });
    if drained.await.is_err() {
        tracing::warn!(bound = ?DRAIN, "Reconciles did not finish in time; stopping them");
    }
}

/// Logs how one reconcile ended.
fn log_outcome<K, E>(result: Result<(ObjectRef<K>, Action), E>) -> std::future::Ready<()>
where
    K: kube::runtime::reflector::Lookup,
    E: std::fmt::Display,
{
    match result {
        Ok((obj, _)) => tracing::debug!(object = %obj, "Reconciled"),
        Err(e) => tracing::debug!(error = %e, "Reconcile failed"),
    }
    std::future::ready(())
}

/// What every reconcile gets.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Images to render.
    pub images: Images,
    /// Metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: Recorder,
    /// Per-object retry delay, keyed by UID.
    pub backoff: Mutex<HashMap<String, Duration>>,
    /// Whether this replica holds the Lease; reconciles write only while it does.
    pub leader: tokio::sync::watch::Receiver<bool>,
    /// Reconciles running now, so shutdown knows when nothing is left to drain.
    pub in_flight: AtomicUsize,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("images", &self.images)
            .field("leader", &self.is_leader())
            .finish_non_exhaustive()
    }
}

impl Context {
    /// The next retry delay for `uid`, doubling from [`BACKOFF_MIN`] to [`BACKOFF_MAX`].
    pub fn next_backoff(&self, uid: &str) -> Duration {
        let mut map = self.backoff.lock();
        let next = map
            .get(uid)
            .map(|d| (*d * 2).min(BACKOFF_MAX))
            .unwrap_or(BACKOFF_MIN);
        map.insert(uid.to_string(), next);
        next
    }

    /// Counts a failed reconcile of `controller` and returns the retry delay of `uid`.
    pub fn failed(&self, controller: &'static str, uid: &str, error: &Error) -> Duration {
        self.metrics
            .errors
            .get_or_create(&vec![
                ("controller", controller.to_string()),
                ("error", error.metric_label().to_string()),
            ])
            .inc();
        self.next_backoff(uid)
    }

    /// Forgets the retry delay of `uid` after a success.
    pub fn reset_backoff(&self, uid: &str) {
        self.backoff.lock().remove(uid);
    }

    /// Runs one reconcile of `controller`, counting it and its duration, and forgets the
    /// retry delay of the object `uid` when it succeeds.
    pub async fn measured(
        &self,
        controller: &str,
        uid: Option<String>,
        reconcile: impl Future<Output = Result<Action, Error>>,
    ) -> Result<Action, Error> {
        let labels = vec![("controller", controller.to_string())];
        self.metrics.reconciles.get_or_create(&labels).inc();
        let started = Instant::now();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = reconcile.await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let elapsed = started.elapsed().as_secs_f64();
        self.metrics
            .duration
            .get_or_create(&labels)
            .observe(elapsed);
        if result.is_ok()
            && let Some(uid) = uid
        {
            self.reset_backoff(&uid);
        }
        result
    }

    /// Whether this replica may write.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }
}

/// Checks that the apiserver serves the Mesh kind; the error names the fix.
pub async fn check_crds(client: &Client) -> Result<(), Error> {
    let meshes: Api<Mesh> = Api::all(client.clone());
    meshes
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map(|_| ())
        .map_err(|source| Error::CrdsMissing {
            kind: "meshes.trellis.dev",
            source,
        })
}

/// Runs the `operator` role: waits for the Lease, then reconciles until `shutdown` fires
/// (returns `Ok`) or the Lease is lost (returns [`Error::LeaseLost`]).
pub async fn run(
    client: Client,
    config: OperatorConfig,
    registry: &SharedRegistry,
    readiness: &Readiness,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let holder = config.replica_name();
    let params = LeaseParams {
        name: config.lease_name.clone(),
        namespace: config.lease_namespace.clone(),
        holder: holder.clone(),
        duration: config.lease_duration,
        renew_interval: config.lease_renew_interval,
        renew_deadline: config.lease_renew_deadline,
    };
    // Settings first: a bad one is reported before anything talks to the apiserver.
    params.check()?;
    check_crds(&client).await?;
    let metrics = Metrics::register(registry);
    // Waiting replicas are healthy and ready: they serve nothing until they lead.
    readiness.register("operator").set(true);
    let Some(guard) = lease::acquire(client.clone(), params, shutdown.clone()).await? else {
        return Ok(());
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        images: Images {
            repository: config.image_repository.clone(),
            prometheus: config.prometheus_image.clone(),
            otel_collector: config.otel_collector_image.clone(),
        },
        metrics,
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.to_string(),
                instance: Some(holder),
            },
        ),
        backoff: Mutex::default(),
        leader: guard.subscribe(),
        in_flight: AtomicUsize::new(0),
    });
    let stop = CancellationToken::new();
    let mut meshes = watcher::Config::default();
    if let Some(selector) = &config.mesh_selector {
        meshes = meshes.labels(selector);
    }
    let controller = futures::future::join(
        mesh_controller(
            client.clone(),
            ctx.clone(),
            meshes,
            config.concurrency,
            stop.clone(),
        ),
        namespace_controller(client, ctx.clone(), stop.clone()),
    );
    let mut controller = Box::pin(controller);
    let (lost, finished) = tokio::select! {
        _ = &mut controller => (false, true),
        () = shutdown.cancelled() => (false, false),
        () = guard.lost() => (true, false),
    };
    stop.cancel();
    if !finished {
        drain(&mut controller, &ctx.in_flight).await;
    }
    // Dropping the controllers stops every write before the Lease is released.
    drop(controller);
    if lost {
        return Err(Error::LeaseLost(config.lease_name));
    }
    guard.release().await;
    Ok(())
}

/// Child watches select on this label.
fn managed_selector() -> String {
    format!("{}={}", MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1)
}

/// Maps a rendered child to its Mesh through the `trellis.dev/mesh` label.
fn mesh_of<K: kube::Resource>(child: K) -> Option<ObjectRef<Mesh>> {
    child
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(MESH_LABEL))
        .map(|name| ObjectRef::new(name))
}

/// Mirrors the `trellis.dev/inject` annotation of every namespace onto a label.
fn namespace_controller(
    client: Client,
    ctx: Arc<Context>,
    stop: CancellationToken,
) -> impl std::future::Future<Output = ()> {
    use k8s_openapi::api::core::v1::Namespace;
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .with_config(ControllerConfig::default().debounce(DEBOUNCE))
        .trigger_backoff(WatchBackoff::default())
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(namespace::reconcile, namespace::error_policy, ctx)
        .for_each(log_outcome)
}

fn mesh_controller(
    client: Client,
    ctx: Arc<Context>,
    meshes_config: watcher::Config,
    concurrency: u16,
    stop: CancellationToken,
) -> impl std::future::Future<Output = ()> {
    use k8s_openapi::api::{
        admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
        apps::v1::Deployment,
        core::v1::{ConfigMap, Secret, Service, ServiceAccount},
        policy::v1::PodDisruptionBudget,
        rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
    };
    let wc = || watcher::Config::default().labels(&managed_selector());
    let meshes: Api<Mesh> = Api::all(client.clone());
    let controller = Controller::new(meshes, meshes_config);
    // Pods are not watched here: a pod event must not reconcile (render and apply) a Mesh.
    // `keep_counts` watches them and writes only the counts (see its doc).
    let counts = mesh::pods::keep_counts(
        client.clone(),
        ctx.clone(),
        controller.store(),
        stop.clone(),
    );
    let uninjected = mesh::uninjected::report(
        client.clone(),
        ctx.clone(),
        controller.store(),
        stop.clone(),
    );
    let controller = controller
        .with_config(
            ControllerConfig::default()
                .concurrency(concurrency)
                .debounce(DEBOUNCE),
        )
        .trigger_backoff(WatchBackoff::default())
        .watches(Api::<Deployment>::all(client.clone()), wc(), mesh_of)
        .watches(Api::<Service>::all(client.clone()), wc(), mesh_of)
        .watches(Api::<ConfigMap>::all(client.clone()), wc(), mesh_of)
        .watches(Api::<Secret>::all(client.clone()), wc(), mesh_of)
        .watches(Api::<ServiceAccount>::all(client.clone()), wc(), mesh_of)
        .watches(Api::<Role>::all(client.clone()), wc(), mesh_of)
        .watches(Api::<RoleBinding>::all(client.clone()), wc(), mesh_of)
        .watches(Api::<ClusterRole>::all(client.clone()), wc(), mesh_of)
        .watches(
            Api::<ClusterRoleBinding>::all(client.clone()),
            wc(),
            mesh_of,
        )
        .watches(
            Api::<PodDisruptionBudget>::all(client.clone()),
            wc(),
            mesh_of,
        )
        .watches(
            Api::<MutatingWebhookConfiguration>::all(client.clone()),
            wc(),
            mesh_of,
        )
        .watches(
            Api::<ValidatingWebhookConfiguration>::all(client),
            wc(),
            mesh_of,
        )
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(mesh::reconcile, mesh::error_policy, ctx)
        .for_each(log_outcome);
    async move {
        futures::future::join3(controller, counts, uninjected).await;
    }
}
