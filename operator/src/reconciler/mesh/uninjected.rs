//! Pods that asked for a proxy and run without one, reported on the lease holder.
//!
//! The proxy injector fails open, so a pod created while no controller answered (or while
//! the control plane had no trust anchors, or before its namespace opted in) runs unmeshed:
//! plaintext, outside every policy. Such a pod is reported once, with a Warning Event
//! `ProxyNotInjected` on the pod that says how to fix it, and counted in
//! `trellis_operator_uninjected_pods` (pods running so now) and
//! `trellis_operator_uninjected_pods_reported_total`.
//!
//! A pod is reported when, while some Mesh exists, it is not terminated, has no
//! `trellis.dev/control-plane-ns` label (the injector sets it on every pod it injects), its
//! own `trellis.dev/inject` annotation or else its namespace's says `enabled` or `ingress`,
//! it is not in `kube-system` or a control-plane namespace, the operator does not manage it,
//! and (read from the full pod, for these few candidates only) it neither runs on the host
//! network nor holds a `trellis-proxy` container. These are the injector's own rules (see
//! `trellis_webhooks::inject`), so a pod it skipped on purpose is never reported.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        events::{Event, EventType},
        reflector::Store,
        watcher,
    },
};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use trellis_api::well_known::{CONTROL_PLANE_NS_LABEL, INJECT_ANNOTATION, MANAGED_BY_LABEL};
use trellis_crds::v1alpha1::mesh::Mesh;
use trellis_webhooks::inject::{
    annotations::{InjectMode, inject_mode},
    template::PROXY_CONTAINER,
};

use super::pods::{NOT_TERMINATED, RECOUNT_INTERVAL};
use crate::{
    reconciler::{Context, render::webhook_configs::SYSTEM_NAMESPACE},
    watch_backoff::WatchBackoff,
};

/// Reason of the Event on a pod that asked for a proxy and has none.
pub const REASON: &str = "ProxyNotInjected";

/// What the check needs of one pod without the injector's label.
#[derive(Debug, Clone)]
struct Unlabelled {
    uid: String,
    /// Its `trellis.dev/inject` annotation, if any ([`inject_only`]).
    annotations: BTreeMap<String, String>,
    operator_managed: bool,
}

/// The pods and namespaces the check reads, fed by two metadata-only watches, and the
/// pods it has decided about.
#[derive(Debug, Default)]
struct Tracker {
    /// Pods without `trellis.dev/control-plane-ns`, by (namespace, name).
    pods: HashMap<(String, String), Unlabelled>,
    /// The `trellis.dev/inject` annotation of every namespace, by name.
    namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Reported pods still running, by UID.
    reported: HashSet<String>,
    /// Candidates the full pod showed are left alone on purpose (host network), by UID.
    excluded: HashSet<String>,
}

impl Tracker {
    fn apply_pod(&mut self, event: watcher::Event<PartialObjectMeta<Pod>>) {
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                let key = key(&pod);
                if pod.metadata.deletion_timestamp.is_some() {
                    self.forget(&key);
                    return;
                }
                let (managed_by, operator) = MANAGED_BY_LABEL;
                let operator_managed =
                    pod.labels().get(managed_by).map(String::as_str) == Some(operator);
                let pod = Unlabelled {
                    uid: pod.uid().unwrap_or_default(),
                    annotations: inject_only(pod.annotations()),
                    operator_managed,
                };
                self.pods.insert(key, pod);
            }
            watcher::Event::Delete(pod) => self.forget(&key(&pod)),
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    fn forget(&mut self, key: &(String, String)) {
        if let Some(pod) = self.pods.remove(key) {
            self.reported.remove(&pod.uid);
            self.excluded.remove(&pod.uid);
        }
    }

    fn apply_namespace(&mut self, event: watcher::Event<PartialObjectMeta<Namespace>>) {
        match event {
            watcher::Event::Apply(ns) | watcher::Event::InitApply(ns) => {
                self.namespaces
                    .insert(ns.name_any(), inject_only(ns.annotations()));
            }
            watcher::Event::Delete(ns) => {
                self.namespaces.remove(&ns.name_any());
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    /// Pods that ask for a proxy by their metadata and are not decided yet.
    fn candidates(&self, control_plane_namespaces: &HashSet<String>) -> Vec<(String, String)> {
        let empty = BTreeMap::new();
        self.pods
            .iter()
            .filter(|((ns, _), pod)| {
                !pod.operator_managed
                    && ns != SYSTEM_NAMESPACE
                    && !control_plane_namespaces.contains(ns)
                    && !self.reported.contains(&pod.uid)
                    && !self.excluded.contains(&pod.uid)
                    && matches!(
                        inject_mode(&pod.annotations, self.namespaces.get(ns).unwrap_or(&empty)),
                        Some(InjectMode::Enabled | InjectMode::Ingress)
                    )
            })
            .map(|(key, _)| key.clone())
            .collect()
    }
}

/// The `trellis.dev/inject` annotation of `annotations` alone: all the check reads, so the
/// tracker holds a short string per pod, not every pod's annotations.
fn inject_only(annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    annotations
        .get_key_value(INJECT_ANNOTATION)
        .map(|(k, v)| (k.clone(), v.clone()))
        .into_iter()
        .collect()
}

fn key<K: Resource>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// Whether the injector would leave `pod` alone whatever the annotations say, or it holds
/// a proxy already.
fn left_alone(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.host_network == Some(true)
            || spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .any(|c| c.name == PROXY_CONTAINER)
    })
}

/// Watches pods without the injector's label and namespaces, and every
/// [`RECOUNT_INTERVAL`] reports the pods that asked for a proxy and got none (see the
/// module doc). Runs on the lease holder until `stop`; a failing watch logs a warning and
/// retries with backoff.
pub async fn report(
    client: Client,
    ctx: std::sync::Arc<Context>,
    meshes: Store<Mesh>,
    stop: CancellationToken,
) {
    let pods: Api<PartialObjectMeta<Pod>> = Api::all(client.clone());
    let pod_config = watcher::Config::default()
        .labels(&format!("!{CONTROL_PLANE_NS_LABEL}"))
        .fields(NOT_TERMINATED);
    let pod_events = watcher(pods, pod_config).backoff(WatchBackoff::default());
    let namespaces: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
    let ns_events =
        watcher(namespaces, watcher::Config::default()).backoff(WatchBackoff::default());
    let (mut pod_events, mut ns_events) = (std::pin::pin!(pod_events), std::pin::pin!(ns_events));
    let mut tracker = Tracker::default();
    let mut tick = tokio::time::interval(RECOUNT_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            event = pod_events.next() => match event {
                Some(Ok(event)) => tracker.apply_pod(event),
                Some(Err(e)) => tracing::warn!(error = %e, "Cannot watch pods for missed injections"),
                None => return,
            },
            event = ns_events.next() => match event {
                Some(Ok(event)) => tracker.apply_namespace(event),
                Some(Err(e)) => tracing::warn!(error = %e, "Cannot watch namespaces for missed injections"),
                None => return,
            },
            _ = tick.tick() => check(&client, &ctx, &meshes, &mut tracker).await,
        }
    }
}

/// Reports the new candidates that the full pod confirms, and publishes the gauge.
async fn check(client: &Client, ctx: &Context, meshes: &Store<Mesh>, tracker: &mut Tracker) {
    let meshes = meshes.state();
    if !ctx.is_leader() || meshes.is_empty() {
        return;
    }
    let control_plane_namespaces: HashSet<String> =
        meshes.iter().map(|m| m.spec.namespace.clone()).collect();
    for (ns, name) in tracker.candidates(&control_plane_namespaces) {
        let pod = match Api::<Pod>::namespaced(client.clone(), &ns)
            .get_opt(&name)
            .await
        {
            Ok(Some(pod)) => pod,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(namespace = %ns, pod = %name, error = %e, "Cannot read a pod that may lack its proxy");
                continue;
            }
        };
        let uid = pod.uid().unwrap_or_default();
        if left_alone(&pod) {
            tracker.excluded.insert(uid);
            continue;
        }
        tracing::warn!(namespace = %ns, pod = %name, "Pod asked for a proxy and runs without one");
        let event = Event {
            type_: EventType::Warning,
            reason: REASON.to_string(),
            note: Some(format!(
                "pod asks for the trellis proxy (trellis.dev/inject on the pod or namespace {ns}) \
                 but runs without it, unmeshed: the proxy injector was unreachable or could not \
                 inject when it was created, or injection was enabled after. Recreate it (kubectl \
                 rollout restart on its workload) once `kubectl get mesh` shows Ready"
            )),
            action: "Inject".to_string(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &pod.object_ref(&())).await {
            tracing::debug!(error = %e, "Cannot publish event");
        }
        ctx.metrics.uninjected_reported.inc();
        tracker.reported.insert(uid);
    }
    ctx.metrics
        .uninjected
        .set(i64::try_from(tracker.reported.len()).unwrap_or(i64::MAX));
}

#[cfg(test)]
mod tests;
