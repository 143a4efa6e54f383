//! The in-memory index of cluster objects that the destination and policy servers read.
//!
//! One [`Index`] is fed by kube-runtime watches ([`run`]) and shared by every server through
//! [`SharedIndex`]. Endpoint streams subscribe to per-Service-port watch channels that are
//! recomputed when a Service, EndpointSlice or Pod changes; profile and policy streams follow
//! [`Index::changes`], a counter bumped on every change, and recompute their answer.

pub mod discover;
pub mod endpoints;
pub mod policy;
pub mod policy_status;
pub mod profiles;
pub mod routes;
#[cfg(test)]
mod tests;

use std::{collections::HashMap, fmt::Debug, sync::Arc};

use futures::StreamExt;
use k8s_openapi::api::{
    core::v1::{Namespace, Pod, Service},
    discovery::v1::EndpointSlice,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use trellis_api::{inbound::DefaultPolicy, well_known};
use trellis_crds::{
    gateway::{grpc_route::GRPCRoute, http_route::HTTPRoute},
    v1alpha1::{
        authorization_policy::AuthorizationPolicy, mesh_tls_authentication::MeshTLSAuthentication,
        network_authentication::NetworkAuthentication, server::Server,
        service_profile::ServiceProfile,
    },
};

use self::endpoints::{EndpointsIndex, PodInfo, SERVICE_NAME_LABEL, ServiceInfo, SliceInfo};
use crate::{control_plane::destination::EndpointSet, watch_backoff::WatchBackoff};

/// Cluster-wide settings the index applies (from the Mesh and the controller's flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Trust domain of identity names.
    pub trust_domain: String,
    /// DNS domain of the cluster.
    pub cluster_domain: String,
    /// The mesh-wide default inbound policy.
    pub default_inbound_policy: DefaultPolicy,
    /// Networks that `cluster-*` default policies allow.
    pub cluster_networks: Vec<ipnet::IpNet>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            trust_domain: well_known::DEFAULT_TRUST_DOMAIN.to_string(),
            cluster_domain: well_known::DEFAULT_CLUSTER_DOMAIN.to_string(),
            default_inbound_policy: DefaultPolicy::AllUnauthenticated,
            cluster_networks: default_cluster_networks(),
        }
    }
}

/// The private and benchmarking networks, as Linkerd's default `clusterNetworks`.
pub fn default_cluster_networks() -> Vec<ipnet::IpNet> {
    [
        "10.0.0.0/8",
        "100.64.0.0/10",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "fd00::/8",
    ]
    .iter()
    .filter_map(|n| n.parse().ok())
    .collect()
}

/// Key of an endpoint watch: namespace, service, port, and pod hostname for pod lookups.
pub type EndpointKey = (String, String, u16, Option<String>);

/// Every object the servers need, plus the channels open streams follow.
#[derive(Debug)]
pub struct Index {
    settings: ClusterSettings,
    /// Services, slices and pods.
    pub endpoints: EndpointsIndex,
    /// `(namespace, name)` → ServiceProfile.
    pub profiles: HashMap<(String, String), ServiceProfile>,
    /// Policy objects and namespace annotations.
    pub policy: policy::PolicyIndex,
    /// Gateway API routes.
    pub routes: routes::RoutesIndex,
    /// `(namespace, slice)` → the Service it belongs to.
    slice_owner: HashMap<(String, String), String>,
    endpoint_watches: HashMap<EndpointKey, watch::Sender<EndpointSet>>,
    changes: watch::Sender<u64>,
    status_inputs: watch::Sender<u64>,
}

/// The index, shared by the watches that write it and the servers that read it.
pub type SharedIndex = Arc<RwLock<Index>>;

impl Index {
    /// An empty index.
    pub fn new(settings: ClusterSettings) -> Self {
        Self {
            settings,
            endpoints: EndpointsIndex::default(),
            profiles: HashMap::new(),
            policy: policy::PolicyIndex::default(),
            routes: routes::RoutesIndex::default(),
            slice_owner: HashMap::new(),
            endpoint_watches: HashMap::new(),
            changes: watch::channel(0).0,
            status_inputs: watch::channel(0).0,
        }
    }

    /// An empty index behind a lock.
    pub fn shared(settings: ClusterSettings) -> SharedIndex {
        Arc::new(RwLock::new(Self::new(settings)))
    }

    /// The settings in force.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    /// Replaces the settings (e.g. when the Mesh changes) and refreshes every stream.
    pub fn set_settings(&mut self, settings: ClusterSettings) {
        if self.settings != settings {
            self.settings = settings;
            self.refresh_endpoints(|_| true);
        }
    }

    /// A counter bumped on every change; profile and policy streams follow it.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A counter bumped when an object that status depends on changes (Services, routes,
    /// policy objects), not on endpoint churn; the status writer follows it.
    pub fn status_inputs(&self) -> watch::Receiver<u64> {
        self.status_inputs.subscribe()
    }

    fn status_input_changed(&mut self) {
        self.status_inputs.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Subscribes to the endpoints of `key`.
    pub fn watch_endpoints(&mut self, key: EndpointKey) -> watch::Receiver<EndpointSet> {
        if let Some(tx) = self.endpoint_watches.get(&key) {
            return tx.subscribe();
        }
        let set = self.compute(&key);
        let (tx, rx) = watch::channel(set);
        self.endpoint_watches.insert(key, tx);
        rx
    }

    fn compute(&self, (ns, svc, port, pod): &EndpointKey) -> EndpointSet {
        let td = &self.settings.trust_domain;
        match pod {
            None => self.endpoints.endpoints(ns, svc, *port, td),
            Some(host) => self.endpoints.pod_endpoint(ns, svc, host, *port, td),
        }
    }

    fn refresh_endpoints(&mut self, affected: impl Fn(&EndpointKey) -> bool) {
        self.endpoint_watches
            .retain(|_, tx| tx.receiver_count() > 0);
        let keys: Vec<EndpointKey> = self
            .endpoint_watches
            .keys()
            .filter(|k| affected(k))
            .cloned()
            .collect();
        for key in keys {
            let set = self.compute(&key);
            if let Some(tx) = self.endpoint_watches.get(&key) {
                let sent = tx.send_if_modified(|old| {
                    if *old == set {
                        false
                    } else {
                        *old = set;
                        true
                    }
                });
                if sent {
                    let (ns, svc, port, _) = &key;
                    tracing::debug!(%ns, %svc, port, watchers = tx.receiver_count(), "Endpoints changed");
                }
            }
        }
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn refresh_service(&mut self, ns: &str, svc: &str) {
        self.refresh_endpoints(|(n, s, _, _)| n == ns && s == svc);
    }

    fn refresh_namespace(&mut self, ns: &str) {
        self.refresh_endpoints(|(n, _, _, _)| n == ns);
    }

    /// Adds or updates a Service.
    pub fn apply_service(&mut self, svc: &Service) {
        let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
        self.endpoints
            .services
            .insert((ns.clone(), name.clone()), ServiceInfo::from_service(svc));
        self.status_input_changed();
        self.refresh_service(&ns, &name);
    }

    /// Removes a Service.
    pub fn delete_service(&mut self, ns: &str, name: &str) {
        self.endpoints
            .services
            .remove(&(ns.to_string(), name.to_string()));
        self.status_input_changed();
        self.refresh_service(ns, name);
    }

    /// Adds or updates an EndpointSlice.
    pub fn apply_slice(&mut self, slice: &EndpointSlice) {
        let ns = slice.namespace().unwrap_or_default();
        let name = slice.name_any();
        let Some(svc) = slice.labels().get(SERVICE_NAME_LABEL).cloned() else {
            return;
        };
        if let Some(old) = self
            .slice_owner
            .insert((ns.clone(), name.clone()), svc.clone())
            && old != svc
            && let Some(slices) = self.endpoints.slices.get_mut(&(ns.clone(), old.clone()))
        {
            slices.remove(&name);
            self.refresh_service(&ns, &old);
        }
        let info = SliceInfo::from_slice(slice);
        tracing::debug!(%ns, %name, %svc, ready = info.endpoints.len(), "EndpointSlice applied");
        self.endpoints
            .slices
            .entry((ns.clone(), svc.clone()))
            .or_default()
            .insert(name, info);
        self.refresh_service(&ns, &svc);
    }

    /// Removes an EndpointSlice.
    pub fn delete_slice(&mut self, ns: &str, name: &str) {
        let Some(svc) = self.slice_owner.remove(&(ns.to_string(), name.to_string())) else {
            return;
        };
        let key = (ns.to_string(), svc.clone());
        if let Some(slices) = self.endpoints.slices.get_mut(&key) {
            slices.remove(name);
            if slices.is_empty() {
                self.endpoints.slices.remove(&key);
            }
        }
        self.refresh_service(ns, &svc);
    }

    /// Adds or updates a Pod.
    pub fn apply_pod(&mut self, pod: &Pod) {
        let ns = pod.namespace().unwrap_or_default();
        let info = PodInfo::from_pod(pod);
        let key = (ns.clone(), pod.name_any());
        if self.endpoints.pods.get(&key) == Some(&info) {
            return;
        }
        self.endpoints.pods.insert(key, info);
        self.refresh_namespace(&ns);
    }

    /// Removes a Pod.
    pub fn delete_pod(&mut self, ns: &str, name: &str) {
        if self
            .endpoints
            .pods
            .remove(&(ns.to_string(), name.to_string()))
            .is_some()
        {
            self.refresh_namespace(ns);
        }
    }

    /// Adds or updates a ServiceProfile.
    pub fn apply_profile(&mut self, profile: &ServiceProfile) {
        let key = (profile.namespace().unwrap_or_default(), profile.name_any());
        self.profiles.insert(key, profile.clone());
        self.refresh_endpoints(|_| false);
    }

    /// Removes a ServiceProfile.
    pub fn delete_profile(&mut self, ns: &str, name: &str) {
        self.profiles.remove(&(ns.to_string(), name.to_string()));
        self.refresh_endpoints(|_| false);
    }

    /// Records that policy changed, waking policy streams.
    pub fn policy_changed(&mut self) {
        self.refresh_endpoints(|_| false);
    }
}

/// How one kind is written into the index.
trait Indexed: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static {
    fn apply(index: &mut Index, obj: &Self);
    fn delete(index: &mut Index, ns: &str, name: &str);
    fn kind_name() -> &'static str;
    /// Whether the kind's CRD may be missing (Gateway API): a list that fails with 404
    /// counts as an empty, synced list, and the watch retries slowly.
    fn optional() -> bool {
        false
    }
}

/// Implements [`Indexed`] for each kind by naming its apply and delete methods on [`Index`].
macro_rules! indexed {
    ($($kind:ident => $apply:ident, $delete:ident $(, $optional:ident)?;)*) => {$(
        impl Indexed for $kind {
            fn apply(index: &mut Index, obj: &Self) {
                index.$apply(obj)
            }
            fn delete(index: &mut Index, ns: &str, name: &str) {
                index.$delete(ns, name)
            }
            fn kind_name() -> &'static str {
                stringify!($kind)
            }
            $(fn $optional() -> bool {
                true
            })?
        }
    )*};
}

indexed! {
    Service => apply_service, delete_service;
    EndpointSlice => apply_slice, delete_slice;
    Pod => apply_pod, delete_pod;
    ServiceProfile => apply_profile, delete_profile;
    HTTPRoute => apply_http_route, delete_http_route, optional;
    GRPCRoute => apply_grpc_route, delete_grpc_route, optional;
}

impl<K> Indexed for K
where
    K: policy::PolicyObject
        + Resource<DynamicType = ()>
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    fn apply(index: &mut Index, obj: &Self) {
        index.apply_policy(obj)
    }
    fn delete(index: &mut Index, ns: &str, name: &str) {
        index.delete_policy::<K>(ns, name)
    }
    fn kind_name() -> &'static str {
        K::KIND
    }
}

/// Namespaces are cluster-scoped: deleting one needs only its name.
impl Indexed for Namespace {
    fn apply(index: &mut Index, obj: &Self) {
        index.apply_namespace(obj)
    }
    fn delete(index: &mut Index, _ns: &str, name: &str) {
        index.delete_namespace(name)
    }
    fn kind_name() -> &'static str {
        "Namespace"
    }
}

/// Counts the kinds whose first list is in the index; calls its callback once all are.
#[derive(Clone)]
pub struct Synced {
    remaining: Arc<std::sync::atomic::AtomicUsize>,
    done: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Synced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Synced")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl Synced {
    /// Calls `done` once every kind [`run_synced`] follows has been listed.
    pub fn new(done: impl Fn() + Send + Sync + 'static) -> Self {
        Self {
            remaining: Arc::new(std::sync::atomic::AtomicUsize::new(FOLLOWED_KINDS)),
            done: Arc::new(done),
        }
    }

    /// One kind listed; the last one calls `done`.
    fn kind_done(&self) {
        if self
            .remaining
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            (self.done)();
        }
    }
}

/// How many kinds [`run`] follows.
const FOLLOWED_KINDS: usize = 11;

/// Follows one kind cluster-wide until `shutdown`, writing every event into `index`; tells
/// `synced` once, after the first full list.
async fn follow<K: Indexed>(
    index: SharedIndex,
    client: Client,
    synced: Option<Synced>,
    shutdown: CancellationToken,
) where
    K::DynamicType: Default,
{
    let mut synced = synced;
    let api: Api<K> = Api::all(client);
    let stream = watcher(api, watcher::Config::default()).backoff(WatchBackoff::default());
    let mut stream = std::pin::pin!(stream);
    let mut init: Option<Vec<K>> = None;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = stream.next() => event,
        };
        let event = match event {
            None => return,
            Some(Err(e)) if K::optional() && is_not_found(&e) => {
                if let Some(synced) = synced.take() {
                    tracing::info!(
                        kind = K::kind_name(),
                        "CRD not installed; its objects are ignored until it is"
                    );
                    synced.kind_done();
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(OPTIONAL_CRD_RETRY) => {}
                }
                continue;
            }
            Some(Err(e)) => {
                tracing::warn!(kind = K::kind_name(), error = %e, "Watch failed; retrying");
                continue;
            }
            Some(Ok(event)) => event,
        };
        match event {
            watcher::Event::Init => init = Some(Vec::new()),
            watcher::Event::InitApply(obj) => match &mut init {
                Some(buf) => buf.push(obj),
                None => K::apply(&mut index.write(), &obj),
            },
            watcher::Event::InitDone => {
                let objs = init.take().unwrap_or_default();
                let mut index = index.write();
                reset::<K>(&mut index, &objs);
                tracing::debug!(kind = K::kind_name(), count = objs.len(), "Index synced");
                if let Some(synced) = synced.take() {
                    synced.kind_done();
                }
            }
            watcher::Event::Apply(obj) => K::apply(&mut index.write(), &obj),
            watcher::Event::Delete(obj) => K::delete(
                &mut index.write(),
                &obj.meta().namespace.clone().unwrap_or_default(),
                &obj.meta().name.clone().unwrap_or_default(),
            ),
        }
    }
}

/// How often a watch of an optional kind whose CRD is missing lists again.
const OPTIONAL_CRD_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a watch failed because the resource is not served (its CRD is not installed).
fn is_not_found(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 404,
        watcher::Error::WatchError(status) => status.code == 404,
        _ => false,
    }
}

/// Replaces every object of kind `K` with `objs`: deletes the ones that are gone, applies all.
fn reset<K: Indexed>(index: &mut Index, objs: &[K]) {
    let keep: std::collections::HashSet<(String, String)> = objs
        .iter()
        .map(|o| {
            (
                o.meta().namespace.clone().unwrap_or_default(),
                o.meta().name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let known = index.known::<K>();
    for (ns, name) in known.into_iter().filter(|k| !keep.contains(k)) {
        K::delete(index, &ns, &name);
    }
    for obj in objs {
        K::apply(index, obj);
    }
}

impl Index {
    fn known<K: Indexed>(&self) -> Vec<(String, String)> {
        match K::kind_name() {
            "Service" => self.endpoints.services.keys().cloned().collect(),
            "EndpointSlice" => self.slice_owner.keys().cloned().collect(),
            "Pod" => self.endpoints.pods.keys().cloned().collect(),
            "ServiceProfile" => self.profiles.keys().cloned().collect(),
            other => self
                .routes
                .known(other)
                .unwrap_or_else(|| self.policy.known(other)),
        }
    }
}

/// Runs every watch that feeds `index` until `shutdown`.
pub async fn run(index: SharedIndex, client: Client, shutdown: CancellationToken) {
    run_watches(index, client, None, shutdown).await;
}

/// [`run`], telling `synced` when every kind has been listed once.
pub async fn run_synced(
    index: SharedIndex,
    client: Client,
    synced: Synced,
    shutdown: CancellationToken,
) {
    run_watches(index, client, Some(synced), shutdown).await;
}

async fn run_watches(
    index: SharedIndex,
    client: Client,
    synced: Option<Synced>,
    shutdown: CancellationToken,
) {
    let (i, c, s, d) = (&index, &client, &synced, &shutdown);
    tokio::join!(
        follow::<Service>(i.clone(), c.clone(), s.clone(), d.clone()),
        follow::<EndpointSlice>(i.clone(), c.clone(), s.clone(), d.clone()),
        follow::<Pod>(i.clone(), c.clone(), s.clone(), d.clone()),
        follow::<ServiceProfile>(i.clone(), c.clone(), s.clone(), d.clone()),
        follow::<Server>(i.clone(), c.clone(), s.clone(), d.clone()),
        follow::<AuthorizationPolicy>(i.clone(), c.clone(), s.clone(), d.clone()),
        follow::<MeshTLSAuthentication>(i.clone(), c.clone(), s.clone(), d.clone()),
        follow::<NetworkAuthentication>(i.clone(), c.clone(), s.clone(), d.clone()),
        follow::<Namespace>(i.clone(), c.clone(), s.clone(), d.clone()),
        follow::<HTTPRoute>(i.clone(), c.clone(), s.clone(), d.clone()),
        follow::<GRPCRoute>(i.clone(), c.clone(), s.clone(), d.clone()),
    );
}

/// Convenience for tests and callers: an index with these settings, fed from `client`.
pub fn spawn(
    settings: ClusterSettings,
    client: Client,
    shutdown: CancellationToken,
) -> SharedIndex {
    let index = Index::shared(settings);
    tokio::spawn(run(index.clone(), client, shutdown));
    index
}
