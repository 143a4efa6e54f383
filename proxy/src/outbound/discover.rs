//! Outbound discovery: per original destination, `OutboundPolicies.Watch` and `GetProfile`
//! at once, then `Destination.Get` for the backend they name.
//!
//! Each target gets one task that follows both streams, derives the current [`Resolution`]
//! from them and moves the endpoint watch when the backend changes, so later updates reach
//! new connections and requests. Failures keep the last state (fail static). A target unused
//! for the discovery idle timeout is dropped with its watches and its balancer.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use parking_lot::Mutex;
use tokio::{sync::watch, time::Instant};
use tonic::transport::Channel;
use tracing::Instrument;
use trellis_api::{
    destination::{Endpoint, RetryBudget, Update},
    linkerd2_proxy_api::{
        destination::{GetDestination, destination_client::DestinationClient},
        outbound::outbound_policies_client::OutboundPoliciesClient,
    },
    outbound::AppProtocol,
    route::{self, FailureAccrual},
};

use super::{
    balance::Balancer,
    policy::{self, PolicyState},
    profile::{self, ProfileState},
    route::{RouteTable, Routes, retry::Budget},
};
use crate::{
    drain::Drain,
    retry::{self, Next},
    tls,
};

#[cfg(test)]
mod tests;

/// How long a new target waits for the controller's first answers before it is resolved
/// with what is known (nothing: the original destination).
pub const PROFILE_TIMEOUT: Duration = Duration::from_secs(3);
/// A watched endpoint set, keyed by address.
pub type EndpointSet = Arc<BTreeMap<SocketAddr, Endpoint>>;

/// What discovery says about an original destination.
#[derive(Clone, Debug)]
pub enum Resolution {
    /// Not meshed or not known: go to the original destination.
    Forward,
    /// The policy controller rejected the target: connections fail.
    Reject,
    /// A Service: HTTP is routed to its route backends' balancers, other traffic goes to
    /// one of the Service's own endpoints.
    Balance {
        /// `<svc>.<ns>.svc.<domain>:<port>`: the Service's own backend.
        name: String,
        /// The Service's own endpoint set.
        endpoints: watch::Receiver<EndpointSet>,
        /// The protocol the policy (or an opaque profile) names.
        protocol: AppProtocol,
        /// The routes, compiled.
        routes: Routes,
        /// The endpoint set of every backend the routes name, by path.
        backends: BTreeMap<String, watch::Receiver<EndpointSet>>,
        /// Endpoint ejection, when enabled.
        accrual: Option<FailureAccrual>,
        /// The retry budget a ServiceProfile sets.
        budget: Option<RetryBudget>,
    },
    /// One known endpoint (a pod IP).
    Endpoint {
        /// The endpoint.
        endpoint: Endpoint,
        /// The profile marks it opaque.
        opaque: bool,
    },
}

impl Resolution {
    /// How the connection's protocol is found: only `Detect` reads from the client first.
    pub fn protocol(&self) -> AppProtocol {
        match self {
            Self::Forward | Self::Reject => AppProtocol::Opaque,
            Self::Balance { protocol, .. } => *protocol,
            Self::Endpoint { opaque: true, .. } => AppProtocol::Opaque,
            Self::Endpoint { opaque: false, .. } => AppProtocol::Detect,
        }
    }
}

/// What a target's profile and policy call for, before any endpoint watch.
#[derive(Clone, Debug, PartialEq)]
enum Plan {
    Forward,
    Reject,
    Balance {
        path: String,
        protocol: AppProtocol,
        parent: route::RouteRef,
        routes: Vec<route::Route>,
        accrual: Option<FailureAccrual>,
        budget: Option<RetryBudget>,
    },
    Endpoint {
        endpoint: Endpoint,
        opaque: bool,
    },
}

/// The routes of a target with no routes of its own: every request to `path`.
fn default_routes(path: &str) -> Vec<route::Route> {
    vec![route::Route::default_http(route::Backend {
        meta: route::RouteRef::Default("service".into()),
        path: path.to_string(),
    })]
}

/// Derives the plan: a policy names the backend and protocol (an opaque profile wins); with
/// no policy, the profile's endpoint, else its Service, else the original destination.
fn plan(target: SocketAddr, profile: &ProfileState, policy: &PolicyState) -> Plan {
    let profile = match profile {
        ProfileState::Known(p) => Some(p),
        _ => None,
    };
    let opaque = profile.is_some_and(|p| p.opaque_protocol);
    let budget = profile.and_then(|p| p.retry_budget.clone());
    // A ServiceProfile's routes or split win over the policy's routes, as in Linkerd.
    let profile_routes = |path: &str| profile.and_then(|p| profile::routes(p, path));
    match policy {
        PolicyState::Rejected => return Plan::Reject,
        PolicyState::Known(p) => {
            let routes = match profile_routes(&p.backend_path) {
                Some(routes) => routes,
                None if p.routes.is_empty() => default_routes(&p.backend_path),
                None => p.routes.clone(),
            };
            return Plan::Balance {
                path: p.backend_path.clone(),
                protocol: if opaque {
                    AppProtocol::Opaque
                } else {
                    p.protocol
                },
                parent: p.service.route_ref(),
                routes,
                accrual: p.failure_accrual,
                budget,
            };
        }
        _ => {}
    }
    let Some(profile) = profile else {
        return Plan::Forward;
    };
    if let Some(endpoint) = &profile.endpoint {
        return Plan::Endpoint {
            endpoint: endpoint.clone(),
            opaque,
        };
    }
    if profile.fully_qualified_name.is_empty() {
        return Plan::Forward;
    }
    let path = format!("{}:{}", profile.fully_qualified_name, target.port());
    Plan::Balance {
        routes: profile_routes(&path).unwrap_or_else(|| default_routes(&path)),
        parent: route::RouteRef::Default(profile.fully_qualified_name.clone()),
        path,
        protocol: if opaque {
            AppProtocol::Opaque
        } else {
            AppProtocol::Detect
        },
        accrual: Some(FailureAccrual::default()),
        budget,
    }
}

/// The control-plane clients discovery uses.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// `Destination` (`GetProfile`, `Get`).
    pub destination: DestinationClient<Channel>,
    /// Waited on before destination calls (mTLS needs this proxy's certificate).
    pub destination_creds: Option<Arc<tls::Store>>,
    /// The destination context token.
    pub context: String,
    /// `OutboundPolicies`.
    pub policy: OutboundPoliciesClient<Channel>,
    /// Waited on before policy calls.
    pub policy_creds: Option<Arc<tls::Store>>,
    /// The workload sent in policy lookups.
    pub workload: String,
    /// Addresses in these networks are discovered; others go to their original
    /// destination with no lookup (empty: every address is discovered).
    pub profile_networks: Vec<ipnet::IpNet>,
}

/// One target's shared state: its resolution, its balancers, its retry budget, and when
/// it was last used.
#[derive(Debug)]
struct Target {
    resolution: watch::Receiver<Option<Resolution>>,
    balancers: Mutex<HashMap<String, (Option<FailureAccrual>, Balancer)>>,
    budget: Mutex<(Option<RetryBudget>, Arc<Budget>)>,
    last_used: Mutex<Instant>,
}

/// A retry budget following `spec` (Linkerd's default without one).
pub fn budget_for(spec: Option<&RetryBudget>) -> Budget {
    match spec {
        Some(b) => Budget::new(
            b.ttl.clamp(Duration::from_secs(1), Duration::from_secs(60)),
            b.min_retries_per_second,
            b.retry_ratio.clamp(0.0, 1000.0),
        ),
        None => Budget::default(),
    }
}

/// A target in use by a connection; it is not evicted while held.
#[derive(Debug)]
pub struct Lease(Arc<Target>, watch::Receiver<Option<Resolution>>);

impl Lease {
    /// The target's balancer for each of `backends`, built by `make` (from the endpoint set
    /// and the accrual) when there is none for it yet; balancers of backends no longer
    /// named are dropped.
    pub fn balancers(
        &self,
        backends: &BTreeMap<String, watch::Receiver<EndpointSet>>,
        accrual: Option<FailureAccrual>,
        make: impl Fn(watch::Receiver<EndpointSet>, Option<FailureAccrual>) -> Balancer,
    ) -> HashMap<String, Balancer> {
        let mut cache = self.0.balancers.lock();
        cache.retain(|path, (a, _)| backends.contains_key(path) && *a == accrual);
        backends
            .iter()
            .map(|(path, rx)| {
                let (_, balancer) = cache
                    .entry(path.clone())
                    .or_insert_with(|| (accrual, make(rx.clone(), accrual)));
                (path.clone(), balancer.clone())
            })
            .collect()
    }

    /// The target's later resolutions (the one `resolve` answered counts as seen).
    pub fn updates(&self) -> watch::Receiver<Option<Resolution>> {
        self.1.clone()
    }

    /// The target's retry budget: `spec` (a ServiceProfile's), or Linkerd's default. A new
    /// spec starts a new budget.
    pub fn budget(&self, spec: Option<&RetryBudget>) -> Arc<Budget> {
        let mut slot = self.0.budget.lock();
        if slot.0.as_ref() != spec {
            *slot = (spec.cloned(), Arc::new(budget_for(spec)));
        }
        slot.1.clone()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        *self.0.last_used.lock() = Instant::now();
    }
}

/// Aborts its task when dropped.
#[derive(Debug)]
struct Task(tokio::task::JoinHandle<()>);

impl Task {
    /// Spawns `fut` in the current span (the target's).
    fn spawn(fut: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(tokio::spawn(fut.in_current_span()))
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug)]
struct Inner {
    discovery: Discovery,
    idle_timeout: Duration,
    targets: Mutex<HashMap<SocketAddr, Arc<Target>>>,
    drain: Drain,
}

/// Resolves original destinations, keeping one set of watches per target while it is used.
#[derive(Debug)]
pub struct Resolver {
    inner: Arc<Inner>,
}

impl Resolver {
    /// A resolver over `discovery`; a target's watches are dropped after `idle_timeout`
    /// without connections, and all of them when `drain` starts.
    pub fn new(discovery: Discovery, idle_timeout: Duration, drain: Drain) -> Self {
        Self {
            inner: Arc::new(Inner {
                discovery,
                idle_timeout,
                targets: Mutex::default(),
                drain,
            }),
        }
    }

    /// Resolves `addr`, starting its watches when it is new; waits up to
    /// [`PROFILE_TIMEOUT`] for the controller's first answers. Hold the [`Lease`] while the
    /// connection lasts.
    pub async fn resolve(&self, addr: SocketAddr) -> (Resolution, Lease) {
        let target = {
            let mut targets = self.inner.targets.lock();
            match targets.get(&addr) {
                Some(t) => t.clone(),
                None => {
                    let t = spawn_target(self.inner.clone(), addr);
                    targets.insert(addr, t.clone());
                    t
                }
            }
        };
        *target.last_used.lock() = Instant::now();
        let mut rx = target.resolution.clone();
        // The target's task answers within PROFILE_TIMEOUT; the margin covers scheduling.
        let res = match tokio::time::timeout(
            PROFILE_TIMEOUT + Duration::from_secs(1),
            rx.wait_for(Option::is_some),
        )
        .await
        {
            Ok(Ok(res)) => res.clone().unwrap_or(Resolution::Forward),
            _ => Resolution::Forward,
        };
        (res, Lease(target, rx))
    }

    /// Whether `ip` is in the profile networks, so discovery may know it.
    pub fn discovers(&self, ip: std::net::IpAddr) -> bool {
        let nets = &self.inner.discovery.profile_networks;
        nets.is_empty() || nets.iter().any(|n| n.contains(&ip))
    }

    /// How many targets are being watched.
    pub fn targets(&self) -> usize {
        self.inner.targets.lock().len()
    }
}

impl Inner {
    /// Removes `target` when no connection holds it and it has been idle long enough.
    fn evict(&self, addr: SocketAddr, target: &Arc<Target>) -> bool {
        let mut targets = self.targets.lock();
        // The map and the target's own task hold it; anything more is a connection.
        let unused = Arc::strong_count(target) <= 2
            && target.last_used.lock().elapsed() >= self.idle_timeout;
        if unused && targets.get(&addr).is_some_and(|t| Arc::ptr_eq(t, target)) {
            targets.remove(&addr);
            return true;
        }
        false
    }
}

fn spawn_target(inner: Arc<Inner>, addr: SocketAddr) -> Arc<Target> {
    let (tx, rx) = watch::channel(None);
    let target = Arc::new(Target {
        resolution: rx,
        balancers: Mutex::default(),
        budget: Mutex::new((None, Arc::default())),
        last_used: Mutex::new(Instant::now()),
    });
    let task = run_target(inner.clone(), addr, target.clone(), tx);
    let span = tracing::debug_span!("discover", %addr);
    tokio::spawn(
        async move {
            tokio::select! {
                () = task => {}
                () = inner.drain.signaled() => {}
            }
        }
        .instrument(span),
    );
    target
}

/// Follows `addr`'s profile and policy, publishing its resolution, until it is evicted.
async fn run_target(
    inner: Arc<Inner>,
    addr: SocketAddr,
    target: Arc<Target>,
    tx: watch::Sender<Option<Resolution>>,
) {
    let d = &inner.discovery;
    let (profile_tx, mut profiles) = watch::channel(ProfileState::Pending);
    let _profile_watch = Task::spawn(retry::once_certified(
        d.destination_creds.clone(),
        profile::watch(d.destination.clone(), addr, d.context.clone(), profile_tx),
    ));
    let (policy_tx, mut policies) = watch::channel(PolicyState::Pending);
    let watch_policy = || {
        Task::spawn(retry::once_certified(
            d.policy_creds.clone(),
            policy::watch(
                d.policy.clone(),
                addr,
                d.workload.clone(),
                policy_tx.clone(),
            ),
        ))
    };
    let mut policy_watch = watch_policy();
    let mut endpoints = Watches::default();
    let first_deadline = Instant::now() + PROFILE_TIMEOUT;
    let mut last_fqn = String::new();
    // Whether the last wake-up may have changed the resolution.
    let mut changed = true;
    loop {
        let profile = profiles.borrow_and_update().clone();
        let mut policy = policies.borrow_and_update().clone();
        // A target the policy controller did not know may have become a Service: ask again.
        if let ProfileState::Known(p) = &profile
            && p.fully_qualified_name != last_fqn
        {
            last_fqn = p.fully_qualified_name.clone();
            if !last_fqn.is_empty() && policy.is_absent() {
                tracing::debug!(fqn = %last_fqn, "Target became a Service; asking for its policy again");
                policy_tx.send_replace(PolicyState::Pending);
                policies.borrow_and_update();
                policy = PolicyState::Pending;
                policy_watch = watch_policy();
            }
        }
        let answered =
            !matches!(profile, ProfileState::Pending) && !matches!(policy, PolicyState::Pending);
        let ready = answered || tx.borrow().is_some() || Instant::now() >= first_deadline;
        if changed && ready {
            if !answered && tx.borrow().is_none() {
                tracing::warn!(
                    timeout = ?PROFILE_TIMEOUT,
                    "Discovery has not answered; connections made now are forwarded to the original destination, unbalanced, for their whole life"
                );
            }
            let res = resolution(addr, &profile, &policy, &mut endpoints, &inner);
            tracing::debug!(?res, "Target resolved");
            tx.send_replace(Some(res));
        }
        // A target still in use when its idle time came is checked again a timeout later.
        let now = Instant::now();
        let idle_at = Some(*target.last_used.lock() + inner.idle_timeout)
            .filter(|at| *at > now)
            .unwrap_or(now + inner.idle_timeout);
        changed = true;
        tokio::select! {
            Ok(()) = profiles.changed() => {}
            Ok(()) = policies.changed() => {}
            () = tokio::time::sleep_until(first_deadline), if tx.borrow().is_none() => {}
            () = tokio::time::sleep_until(idle_at) => {
                changed = false;
                if inner.evict(addr, &target) {
                    tracing::debug!("Target unused; dropping its watches");
                    drop(policy_watch);
                    return;
                }
            }
        }
    }
}

/// The endpoint watches of a target, by backend path.
type Watches = HashMap<String, (watch::Receiver<EndpointSet>, Task)>;

/// The resolution for a plan, keeping an endpoint watch for each backend it names (and
/// dropping the others).
fn resolution(
    addr: SocketAddr,
    profile: &ProfileState,
    policy: &PolicyState,
    endpoints: &mut Watches,
    inner: &Inner,
) -> Resolution {
    match plan(addr, profile, policy) {
        Plan::Forward => {
            endpoints.clear();
            Resolution::Forward
        }
        Plan::Reject => {
            endpoints.clear();
            Resolution::Reject
        }
        Plan::Endpoint { endpoint, opaque } => {
            endpoints.clear();
            Resolution::Endpoint { endpoint, opaque }
        }
        Plan::Balance {
            path,
            protocol,
            parent,
            routes,
            accrual,
            budget,
        } => {
            let routes = RouteTable::new(parent.clone(), &routes).unwrap_or_else(|error| {
                tracing::warn!(%error, "Routes cannot be used; sending every request to the Service");
                RouteTable::new(parent, &default_routes(&path)).unwrap_or_default()
            });
            let mut paths = routes.backend_paths();
            paths.insert(path.clone());
            endpoints.retain(|p, _| paths.contains(p));
            let mut watch_for = |p: &String| {
                let (rx, _) = endpoints.entry(p.clone()).or_insert_with(|| {
                    let (tx, rx) = watch::channel(EndpointSet::default());
                    let task = Task::spawn(watch_endpoints(
                        inner.discovery.destination.clone(),
                        p.clone(),
                        inner.discovery.context.clone(),
                        tx,
                    ));
                    (rx, task)
                });
                rx.clone()
            };
            let own = watch_for(&path);
            let backends = paths.iter().map(|p| (p.clone(), watch_for(p))).collect();
            Resolution::Balance {
                endpoints: own,
                name: path,
                protocol,
                routes: Arc::new(routes),
                backends,
                accrual,
                budget,
            }
        }
    }
}

/// Follows `Destination.Get` for `path`, resubscribing with backoff and keeping the last
/// set while the controller is unreachable.
async fn watch_endpoints(
    client: DestinationClient<Channel>,
    path: String,
    context_token: String,
    tx: watch::Sender<EndpointSet>,
) {
    let req = GetDestination {
        scheme: String::new(),
        path: path.clone(),
        context_token,
    };
    let open = retry::reopen(client, req, |mut client, req| async move {
        client.get(req).await
    });
    let on_update = |update: Result<Update, _>, first: bool| {
        // A resubscription starts from an empty set, applied at its first update.
        let mut set = if first {
            BTreeMap::new()
        } else {
            (**tx.borrow()).clone()
        };
        match update {
            Ok(update) => apply(&mut set, update),
            Err(error) => {
                tracing::debug!(%path, %error, "Ignoring an invalid endpoint update");
                return;
            }
        }
        tracing::debug!(%path, endpoints = set.len(), "Endpoints updated");
        tx.send_replace(Arc::new(set));
    };
    let on_end = |status: &tonic::Status| {
        if retry::is_rejection(status) {
            tracing::warn!(%path, %status, "Endpoint watch rejected");
            return Next::Stop;
        }
        Next::Retry
    };
    retry::follow("endpoints", open, on_update, on_end).await;
}

/// Applies one `Get` update to an endpoint set; each endpoint carries its set's labels
/// under its own.
fn apply(set: &mut BTreeMap<SocketAddr, Endpoint>, update: Update) {
    match update {
        Update::Add {
            set_labels,
            endpoints,
        } => {
            for mut ep in endpoints {
                let own = std::mem::replace(&mut ep.labels, set_labels.clone());
                ep.labels.extend(own);
                set.insert(ep.addr, ep);
            }
        }
        Update::Remove(addrs) => {
            for addr in addrs {
                set.remove(&addr);
            }
        }
        Update::NoEndpoints { .. } => set.clear(),
    }
}
