//! Writes the status the index wants on HTTPRoutes, GRPCRoutes, Servers and
//! AuthorizationPolicies, whenever a Service, route or policy object changes, and only where
//! it differs.
//!
//! The `controller` role has no leader election, so every replica runs this writer. It stays
//! safe because writes are idempotent and conditional: a replica writes only when the object's
//! status (as its own watch saw it) differs from what it wants, route statuses are merge
//! patches preconditioned on the object's `resourceVersion` (a replica with a stale view gets a
//! conflict and retries on its next change), and policy statuses are server-side applied under
//! the field manager [`well_known::FIELD_MANAGER`]. `lastTransitionTime` moves only when a
//! condition's status changes.
//!
//! Route `status.parents` is an atomic list shared with other controllers (a Gateway
//! implementation may write its own entries): Trellis rewrites only the entries whose
//! `controllerName` is [`CONTROLLER_NAME`] and keeps the others.

use std::time::Duration;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use trellis_api::well_known;
use trellis_crds::{
    common::condition::{FALSE, TRUE},
    gateway::{RouteParentStatus, RouteStatus, grpc_route::GRPCRoute, http_route::HTTPRoute},
    v1alpha1::{authorization_policy::AuthorizationPolicy, server::Server},
};

pub use crate::control_plane::index::routes::status::CONTROLLER_NAME;
use crate::control_plane::index::{
    Index, SharedIndex,
    routes::{
        AnyRoute,
        status::{ParentStatus, WantedCondition},
    },
};

/// How long the writer waits after a change before writing, so a burst of changes (a list
/// after a restart) is written once.
const SETTLE: Duration = Duration::from_millis(200);
/// How long the writer waits before retrying after a failed write.
const RETRY: Duration = Duration::from_secs(5);

/// One status write.
#[derive(Debug, Clone, PartialEq)]
enum Write {
    /// A merge patch of a route's `status.parents`.
    Route {
        grpc: bool,
        namespace: String,
        name: String,
        patch: serde_json::Value,
    },
    /// A server-side apply of a Server's status.
    Server {
        namespace: String,
        name: String,
        patch: serde_json::Value,
    },
    /// A server-side apply of an AuthorizationPolicy's status.
    AuthorizationPolicy {
        namespace: String,
        name: String,
        patch: serde_json::Value,
    },
}

/// Writes statuses from `index` until `shutdown`, starting once `ready` is true (every kind
/// listed, so a missing parent is really missing).
pub async fn run(
    index: SharedIndex,
    client: Client,
    mut ready: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    tokio::select! {
        () = shutdown.cancelled() => return,
        r = ready.wait_for(|r| *r) => if r.is_err() { return },
    }
    let mut changes = index.read().status_inputs();
    tracing::info!("Status writer started");
    loop {
        changes.borrow_and_update();
        let writes = pending(&index.read(), &Time(Timestamp::now()));
        let mut failed = false;
        for write in writes {
            if let Err(error) = write.send(&client).await {
                failed = true;
                match &error {
                    kube::Error::Api(s) if s.code == 404 || s.code == 409 => {
                        tracing::debug!(?write, %error, "Status write raced; retrying on change")
                    }
                    _ => tracing::warn!(?write, %error, "Status write failed; retrying"),
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(RETRY), if failed => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(SETTLE) => {}
        }
    }
}

impl Write {
    async fn send(&self, client: &Client) -> Result<(), kube::Error> {
        let apply = PatchParams::apply(well_known::FIELD_MANAGER).force();
        match self {
            Self::Route {
                grpc: false,
                namespace,
                name,
                patch,
            } => {
                Api::<HTTPRoute>::namespaced(client.clone(), namespace)
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
                    .await?;
            }
            Self::Route {
                grpc: true,
                namespace,
                name,
                patch,
            } => {
                Api::<GRPCRoute>::namespaced(client.clone(), namespace)
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
                    .await?;
            }
            Self::Server {
                namespace,
                name,
                patch,
            } => {
                Api::<Server>::namespaced(client.clone(), namespace)
                    .patch_status(name, &apply, &Patch::Apply(patch))
                    .await?;
            }
            Self::AuthorizationPolicy {
                namespace,
                name,
                patch,
            } => {
                Api::<AuthorizationPolicy>::namespaced(client.clone(), namespace)
                    .patch_status(name, &apply, &Patch::Apply(patch))
                    .await?;
            }
        }
        tracing::debug!(write = ?self, "Status written");
        Ok(())
    }
}

/// Every write needed to bring the objects of `index` to the status it wants, `now` being
/// the transition time of conditions that change.
fn pending(index: &Index, now: &Time) -> Vec<Write> {
    let mut writes = Vec::new();
    let mut routes: Vec<AnyRoute<'_>> = index.routes.all().collect();
    routes.sort_by_key(|r| (r.kind(), r.namespace(), r.name()));
    for route in routes {
        let wanted = index.route_status(route);
        let (current, generation) = match route {
            AnyRoute::Http(r) => (r.status.as_ref(), r.metadata.generation),
            AnyRoute::Grpc(r) => (r.status.as_ref(), r.metadata.generation),
        };
        if let Some(parents) = route_parents(current, &wanted, generation, now) {
            writes.push(Write::Route {
                grpc: matches!(route, AnyRoute::Grpc(_)),
                namespace: route.namespace().to_string(),
                name: route.name().to_string(),
                patch: json!({
                    "metadata": {"resourceVersion": route.meta().resource_version},
                    "status": {"parents": parents},
                }),
            });
        }
    }
    let mut servers: Vec<_> = index.policy.servers.iter().collect();
    servers.sort_by_key(|(k, _)| *k);
    for ((ns, name), server) in servers {
        let wanted = index.server_status(ns, name, server);
        let current = server.status.as_ref().map(|s| s.conditions.as_slice());
        if let Some(patch) = policy_patch::<Server>(current, &wanted, server.meta().generation, now)
        {
            writes.push(Write::Server {
                namespace: ns.clone(),
                name: name.clone(),
                patch,
            });
        }
    }
    let mut policies: Vec<_> = index.policy.authorization_policies.iter().collect();
    policies.sort_by_key(|(k, _)| *k);
    for ((ns, name), policy) in policies {
        let wanted = index.authorization_policy_status(ns, policy);
        let current = policy.status.as_ref().map(|s| s.conditions.as_slice());
        if let Some(patch) =
            policy_patch::<AuthorizationPolicy>(current, &wanted, policy.meta().generation, now)
        {
            writes.push(Write::AuthorizationPolicy {
                namespace: ns.clone(),
                name: name.clone(),
                patch,
            });
        }
    }
    writes
}

/// The condition `wanted` as written, keeping `previous`'s transition time when its status
/// has not changed.
fn condition(
    wanted: &WantedCondition,
    previous: Option<&Condition>,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if wanted.status { TRUE } else { FALSE };
    let last_transition_time = previous
        .filter(|p| p.status == status)
        .map_or_else(|| now.clone(), |p| p.last_transition_time.clone());
    Condition {
        type_: wanted.type_.to_string(),
        status: status.to_string(),
        reason: wanted.reason.to_string(),
        message: wanted.message.clone(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// Whether `current` already says what `wanted` says.
fn same(current: &Condition, wanted: &WantedCondition, generation: Option<i64>) -> bool {
    current.type_ == wanted.type_
        && (current.status == TRUE) == wanted.status
        && current.reason == wanted.reason
        && current.message == wanted.message
        && current.observed_generation == generation
}

/// The new `status.parents` of a route, or `None` when Trellis's entries are already right.
fn route_parents(
    current: Option<&RouteStatus>,
    wanted: &[ParentStatus],
    generation: Option<i64>,
    now: &Time,
) -> Option<Vec<RouteParentStatus>> {
    let parents = current.map(|s| s.parents.as_slice()).unwrap_or_default();
    let (ours, others): (Vec<_>, Vec<_>) = parents
        .iter()
        .partition(|p| p.controller_name == CONTROLLER_NAME);
    let unchanged = ours.len() == wanted.len()
        && ours.iter().zip(wanted).all(|(o, w)| {
            o.parent_ref == w.parent_ref
                && o.conditions.len() == w.conditions.len()
                && o.conditions
                    .iter()
                    .zip(&w.conditions)
                    .all(|(c, w)| same(c, w, generation))
        });
    if unchanged {
        return None;
    }
    let mut next: Vec<RouteParentStatus> = others.into_iter().cloned().collect();
    next.extend(wanted.iter().map(|w| {
        let previous = ours.iter().find(|o| o.parent_ref == w.parent_ref);
        RouteParentStatus {
            parent_ref: w.parent_ref.clone(),
            controller_name: CONTROLLER_NAME.to_string(),
            conditions: w
                .conditions
                .iter()
                .map(|c| {
                    let prev =
                        previous.and_then(|p| p.conditions.iter().find(|x| x.type_ == c.type_));
                    condition(c, prev, generation, now)
                })
                .collect(),
        }
    }));
    Some(next)
}

/// The server-side-apply body of a policy object's status, or `None` when its `Accepted`
/// condition is already right.
fn policy_patch<K: Resource<DynamicType = ()>>(
    current: Option<&[Condition]>,
    wanted: &WantedCondition,
    generation: Option<i64>,
    now: &Time,
) -> Option<serde_json::Value> {
    let previous = current
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == wanted.type_);
    if previous.is_some_and(|p| same(p, wanted, generation)) {
        return None;
    }
    Some(json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": {
            "observedGeneration": generation,
            "conditions": [condition(wanted, previous, generation, now)],
        },
    }))
}

#[cfg(test)]
mod tests;
