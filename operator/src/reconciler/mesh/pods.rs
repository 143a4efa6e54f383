//! Meshed-pod counts of a Mesh (`kubectl get mesh` MESHED and, wide, UP-TO-DATE): counted in
//! every reconcile, and kept current between reconciles by [`keep_counts`].
//!
//! A pod counts for the Mesh whose `spec.namespace` is the value of its
//! `trellis.dev/control-plane-ns` label (set by the injector) unless it is terminated: phase
//! `Succeeded` or `Failed` (left out by a field selector, so the apiserver filters and the
//! operator needs only pod metadata) or a `deletionTimestamp`. It is up to date when its
//! `trellis.dev/proxy-version` annotation equals the Mesh's `spec.version`.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, reflector::Store, watcher},
};
use serde_json::json;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use trellis_api::well_known::{CONTROL_PLANE_NS_LABEL, FIELD_MANAGER, PROXY_VERSION_ANNOTATION};
use trellis_crds::v1alpha1::mesh::Mesh;

use crate::{
    reconciler::{Context, error::Error},
    watch_backoff::WatchBackoff,
};

/// Field selector that leaves out terminated pods (pods support `status.phase`).
pub const NOT_TERMINATED: &str = "status.phase!=Succeeded,status.phase!=Failed";
/// How often [`keep_counts`] compares its counts with each Mesh's status (in memory; it
/// writes only what differs). Also the least time between two of its writes to one Mesh.
pub const RECOUNT_INTERVAL: Duration = Duration::from_secs(2);

/// The two counts of one Mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PodCounts {
    /// Pods labelled with the Mesh's control-plane namespace, not terminated.
    pub meshed: i32,
    /// Those whose proxy version is the Mesh's `spec.version`.
    pub up_to_date: i32,
}

/// What the counts need of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counted {
    /// Value of `trellis.dev/control-plane-ns`.
    control_plane_ns: String,
    /// Value of `trellis.dev/proxy-version`, if any.
    proxy_version: Option<String>,
}

/// `Some` for a pod that counts for the control plane in its label; `None` for an
/// unlabelled or deleting pod. (Terminated phases are filtered by [`NOT_TERMINATED`].)
fn counted(meta: &ObjectMeta) -> Option<Counted> {
    if meta.deletion_timestamp.is_some() {
        return None;
    }
    let control_plane_ns = meta.labels.as_ref()?.get(CONTROL_PLANE_NS_LABEL)?.clone();
    let proxy_version = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROXY_VERSION_ANNOTATION))
        .cloned();
    Some(Counted {
        control_plane_ns,
        proxy_version,
    })
}

fn clamp(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn tally<'a>(
    pods: impl IntoIterator<Item = &'a Counted>,
    control_plane_ns: &str,
    version: &str,
) -> PodCounts {
    let (mut meshed, mut up_to_date) = (0usize, 0usize);
    for pod in pods {
        if pod.control_plane_ns == control_plane_ns {
            meshed += 1;
            if pod.proxy_version.as_deref() == Some(version) {
                up_to_date += 1;
            }
        }
    }
    PodCounts {
        meshed: clamp(meshed),
        up_to_date: clamp(up_to_date),
    }
}

/// Counts `pods` (their metadata) for the control plane in `control_plane_ns` at `version`.
pub fn count<'a>(
    pods: impl IntoIterator<Item = &'a ObjectMeta>,
    control_plane_ns: &str,
    version: &str,
) -> PodCounts {
    let pods: Vec<Counted> = pods.into_iter().filter_map(counted).collect();
    tally(&pods, control_plane_ns, version)
}

/// Lists the pods of the control plane in `control_plane_ns` (metadata only, label and
/// field selected by the apiserver) and counts them.
pub async fn observe(
    client: &Client,
    control_plane_ns: &str,
    version: &str,
) -> Result<PodCounts, Error> {
    let api: Api<Pod> = Api::all(client.clone());
    let selector = format!("{CONTROL_PLANE_NS_LABEL}={control_plane_ns}");
    let list = api
        .list_metadata(
            &ListParams::default()
                .labels(&selector)
                .fields(NOT_TERMINATED),
        )
        .await
        .map_err(Error::kube(format!("list pods labelled {selector}")))?;
    Ok(count(
        list.items.iter().map(|p| &p.metadata),
        control_plane_ns,
        version,
    ))
}

/// Every labelled, not terminated pod in the cluster, reduced to what the counts need,
/// fed by one watch. Counts are known once the first list is complete.
#[derive(Debug, Default)]
pub struct MeshedPods {
    /// Counted pods by (namespace, name).
    pods: HashMap<(String, String), Counted>,
    /// Pods of a list in progress; they replace `pods` when it is done.
    relist: Option<HashMap<(String, String), Counted>>,
    /// Whether one list has been completed.
    ready: bool,
}

impl MeshedPods {
    fn key(meta: &ObjectMeta) -> (String, String) {
        (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }

    /// Applies one watch event.
    pub fn apply(&mut self, event: watcher::Event<PartialObjectMeta<Pod>>) {
        match event {
            watcher::Event::Apply(pod) => {
                let key = Self::key(&pod.metadata);
                match counted(&pod.metadata) {
                    Some(c) => self.pods.insert(key, c),
                    None => self.pods.remove(&key),
                };
            }
            watcher::Event::Delete(pod) => {
                self.pods.remove(&Self::key(&pod.metadata));
            }
            watcher::Event::Init => self.relist = Some(HashMap::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(relist), Some(c)) = (self.relist.as_mut(), counted(&pod.metadata)) {
                    relist.insert(Self::key(&pod.metadata), c);
                }
            }
            watcher::Event::InitDone => {
                if let Some(relist) = self.relist.take() {
                    self.pods = relist;
                }
                self.ready = true;
            }
        }
    }

    /// The counts for the control plane in `control_plane_ns` at `version`; `None` until the
    /// first list is complete.
    pub fn counts(&self, control_plane_ns: &str, version: &str) -> Option<PodCounts> {
        self.ready
            .then(|| tally(self.pods.values(), control_plane_ns, version))
    }
}

/// Keeps MESHED and UP-TO-DATE current between reconciles, on the lease holder.
///
/// Design: one metadata-only watch of the pods that carry `trellis.dev/control-plane-ns`
/// (any value) and are not terminated ([`NOT_TERMINATED`]) feeds a [`MeshedPods`] that holds
/// two short strings per pod. Every [`RECOUNT_INTERVAL`] the counts of each Mesh in `meshes`
/// (the Mesh controller's own store, so the operator's `--mesh-selector` applies) are compared
/// in memory with its status, and only a difference is written: a merge patch of
/// `status.meshedPods` and `status.upToDatePods` alone. So a pod event costs a map update,
/// and the Mesh controller does not watch pods: pod events (status churn of thousands of
/// pods included) never reach it. Only a changed count does, indirectly: the write is a Mesh
/// event and the Mesh controller reconciles on every Mesh event, status-only ones included,
/// so it costs at most one reconcile per Mesh per interval (which counts the same and
/// writes no status). A `Controller::watches` on pods instead would reconcile on every pod
/// event and, as kube-runtime's debounce restarts with each new trigger, could postpone
/// the Mesh's own reconciles while pods keep changing.
///
/// Only Meshes whose counts a reconcile already published are refreshed, so the reconcile
/// alone decides which Mesh reports which namespace (a Mesh refused for a namespace another
/// Mesh holds never gets counts). The reconcile's own count (a list) and this one may briefly
/// disagree when one of them sees a pod change first; the next comparison settles it, and the
/// periodic comparison also repairs a reconcile write that lands after a newer count. A
/// failing watch logs a warning and retries with backoff; the counts then stay as the last
/// reconcile wrote them.
pub async fn keep_counts(
    client: Client,
    ctx: Arc<Context>,
    meshes: Store<Mesh>,
    stop: CancellationToken,
) {
    let api: Api<PartialObjectMeta<Pod>> = Api::all(client.clone());
    let config = watcher::Config::default()
        .labels(CONTROL_PLANE_NS_LABEL)
        .fields(NOT_TERMINATED);
    let events = watcher(api, config).backoff(WatchBackoff::default());
    let mut events = std::pin::pin!(events);
    let mut pods = MeshedPods::default();
    let mut tick = tokio::time::interval(RECOUNT_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            event = events.next() => match event {
                Some(Ok(event)) => pods.apply(event),
                Some(Err(e)) => tracing::warn!(
                    error = %e,
                    "Cannot watch meshed pods; MESHED and UP-TO-DATE are updated by reconciles only"
                ),
                None => return,
            },
            _ = tick.tick() => publish(&client, &ctx, &meshes, &pods).await,
        }
    }
}

/// Writes the counts of every Mesh in `meshes` whose status differs from `pods`.
async fn publish(client: &Client, ctx: &Context, meshes: &Store<Mesh>, pods: &MeshedPods) {
    if !ctx.is_leader() {
        return;
    }
    let api: Api<Mesh> = Api::all(client.clone());
    for mesh in meshes.state() {
        let Some(status) = &mesh.status else {
            continue;
        };
        if status.meshed_pods.is_none() || mesh.meta().deletion_timestamp.is_some() {
            continue;
        }
        let Some(counts) = pods.counts(&mesh.spec.namespace, &mesh.spec.version) else {
            return;
        };
        if status.meshed_pods == Some(counts.meshed)
            && status.up_to_date_pods == Some(counts.up_to_date)
        {
            continue;
        }
        let name = mesh.name_any();
        let patch = json!({
            "status": { "meshedPods": counts.meshed, "upToDatePods": counts.up_to_date },
        });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        match api
            .patch_status(&name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => tracing::debug!(
                mesh = %name,
                meshed = counts.meshed,
                up_to_date = counts.up_to_date,
                "Meshed-pod counts updated"
            ),
            Err(e) => tracing::warn!(mesh = %name, error = %e, "Cannot write meshed-pod counts"),
        }
    }
}
