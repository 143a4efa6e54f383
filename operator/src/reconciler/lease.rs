//! Single-writer Lease: only the replica holding the `coordination.k8s.io` Lease reconciles.
//!
//! The holder renews every `renew_interval`; another replica takes over once the record has
//! not changed for `lease_duration`, judged by its own monotonic clock (so clock skew between
//! nodes does no harm). A holder that has not renewed within `renew_deadline` (shorter than
//! the duration) gives the Lease up, even while a request to the apiserver still hangs, so it
//! has stopped writing before anyone else may take over. Writes use the last seen
//! `resourceVersion` as a precondition, so of two replicas racing for the Lease exactly one
//! wins. On graceful shutdown the holder clears `holderIdentity` so a successor need not wait.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{PostParams, Resource},
};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::reconciler::error::Error;

#[cfg(test)]
mod tests;

/// Where the Lease lives and who we are.
#[derive(Debug, Clone)]
pub struct LeaseParams {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (`holderIdentity`).
    pub holder: String,
    /// How long a holder may go without renewing.
    pub duration: Duration,
    /// How often the holder renews.
    pub renew_interval: Duration,
    /// How long the holder may go without a successful renewal before it stops writing.
    pub renew_deadline: Duration,
}

impl LeaseParams {
    /// Checks `renew_interval < renew_deadline < duration`.
    pub fn check(&self) -> Result<(), Error> {
        if self.renew_interval < self.renew_deadline && self.renew_deadline < self.duration {
            return Ok(());
        }
        Err(Error::LeaseTimings {
            interval: self.renew_interval,
            deadline: self.renew_deadline,
            duration: self.duration,
        })
    }
}

/// A held Lease: renewed in the background until dropped, released or lost.
#[derive(Debug)]
pub struct LeaseGuard {
    held: watch::Receiver<bool>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LeaseGuard {
    /// Whether this replica still holds the Lease.
    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }

    /// A receiver that turns `false` when the Lease is lost.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.held.clone()
    }

    /// Completes when the Lease is lost.
    pub async fn lost(&self) {
        let mut held = self.held.clone();
        let _ = held.wait_for(|held| !held).await;
    }

    /// Stops renewing and clears `holderIdentity` so a successor takes over at once.
    pub async fn release(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaseGuard {
    /// Dropping without [`LeaseGuard::release`] stops renewing but leaves the record, like a
    /// crash: others take over once the lease duration has passed.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// Waits until this replica holds the Lease, or `shutdown` fires (then `None`).
///
/// One loop over the Lease record (create, take over an expired one, or wait): its states
/// share the last-seen record and clock, so they stay together in one function.
pub async fn acquire(
    client: Client,
    params: LeaseParams,
    shutdown: CancellationToken,
) -> Result<Option<LeaseGuard>, Error> {
    let api: Api<Lease> = Api::namespaced(client, &params.namespace);
    let lease_ref = format!("Lease {}/{}", params.namespace, params.name);
    // The record we last saw and when (our monotonic clock) it last changed.
    let mut seen: Option<(String, Instant)> = None;
    loop {
        let current = match api.get_opt(&params.name).await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!(lease = %lease_ref, error = %e, "Cannot read the Lease");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(params.renew_interval.min(Duration::from_secs(2))) => {}
                }
                continue;
            }
        };
        let current = match current {
            Some(lease) => lease,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(params.name.clone()),
                        namespace: Some(params.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec::default()),
                };
                match api.create(&PostParams::default(), &lease).await {
                    Ok(lease) => lease,
                    Err(kube::Error::Api(s)) if s.code == 409 => continue,
                    Err(e) => {
                        return Err(Error::kube(format!(
                            "create {lease_ref} (does namespace {} exist?)",
                            params.namespace
                        ))(e));
                    }
                }
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let version = current.meta().resource_version.clone().unwrap_or_default();
        let changed_at = match &seen {
            Some((v, at)) if *v == version => *at,
            _ => Instant::now(),
        };
        seen = Some((version, changed_at));
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(params.duration);
        let free = holder.is_empty() || holder == params.holder || changed_at.elapsed() >= duration;
        if free {
            let mut lease = current.clone();
            let transitions = spec.lease_transitions.unwrap_or(0);
            lease.spec = Some(LeaseSpec {
                holder_identity: Some(params.holder.clone()),
                lease_duration_seconds: Some(seconds(params.duration)),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(if holder == params.holder {
                    transitions
                } else {
                    transitions + 1
                }),
                ..spec.clone()
            });
            match api
                .replace(&params.name, &PostParams::default(), &lease)
                .await
            {
                Ok(lease) => {
                    tracing::info!(lease = %lease_ref, holder = %params.holder, previous = %holder, "Acquired the Lease");
                    return Ok(Some(spawn_renewal(api, params, lease)));
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    tracing::debug!(lease = %lease_ref, "Another replica won the Lease");
                }
                Err(e) => tracing::warn!(lease = %lease_ref, error = %e, "Cannot take the Lease"),
            }
        } else {
            tracing::debug!(lease = %lease_ref, %holder, "Waiting for the Lease");
        }
        let wait = params.renew_interval.min(Duration::from_secs(2));
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(wait) => {}
        }
    }
}

fn spawn_renewal(api: Api<Lease>, params: LeaseParams, lease: Lease) -> LeaseGuard {
    let (tx, rx) = watch::channel(true);
    // Only `release` stops renewal gracefully; tying it to the process shutdown would report
    // the Lease as lost while the release is still being written.
    let stop = CancellationToken::new();
    let task_stop = stop.clone();
    let task = tokio::spawn(async move {
        let mut lease = lease;
        let mut deadline = Instant::now() + params.renew_deadline;
        loop {
            tokio::select! {
                () = task_stop.cancelled() => break,
                () = tokio::time::sleep(params.renew_interval) => {}
            }
            // Every attempt, retries included, must end by the deadline: a hung request
            // must not keep this replica writing.
            let renewed = tokio::select! {
                () = task_stop.cancelled() => break,
                renewed = tokio::time::timeout_at(deadline, renew(&api, &params, &lease)) => renewed,
            };
            match renewed {
                Ok(Renewal::Renewed(current)) => {
                    lease = *current;
                    deadline = Instant::now() + params.renew_deadline;
                }
                Ok(Renewal::Taken(holder)) => {
                    tracing::warn!(lease = %params.name, %holder, "Lost the Lease to another replica");
                    let _ = tx.send(false);
                    return;
                }
                Err(_elapsed) => {
                    tracing::warn!(
                        lease = %params.name,
                        deadline = ?params.renew_deadline,
                        "Could not renew the Lease in time; stopping writes"
                    );
                    let _ = tx.send(false);
                    return;
                }
            }
        }
        // Graceful release: clear the holder so a successor need not wait.
        let _ = tx.send(false);
        let mut released = lease.clone();
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
            spec.acquire_time = None;
            spec.renew_time = None;
        }
        match api
            .replace(&params.name, &PostParams::default(), &released)
            .await
        {
            Ok(_) => tracing::info!(lease = %params.name, "Released the Lease"),
            Err(e) => tracing::warn!(lease = %params.name, error = %e, "Cannot release the Lease"),
        }
    });
    LeaseGuard {
        held: rx,
        stop,
        task: Some(task),
    }
}

/// How a renewal ended.
enum Renewal {
    /// The Lease is ours, at this version.
    Renewed(Box<Lease>),
    /// Someone else holds it (empty when nobody does, or it is gone).
    Taken(String),
}

/// Renews `lease`, retrying transient failures every second; the caller bounds the time.
async fn renew(api: &Api<Lease>, params: &LeaseParams, lease: &Lease) -> Renewal {
    let mut lease = lease.clone();
    loop {
        let mut next = lease.clone();
        if let Some(spec) = next.spec.as_mut() {
            spec.renew_time = Some(now());
        }
        let error = match api
            .replace(&params.name, &PostParams::default(), &next)
            .await
        {
            Ok(renewed) => return Renewal::Renewed(Box::new(renewed)),
            Err(e) => e,
        };
        // A conflict means someone else wrote the Lease: re-read and check.
        match api.get_opt(&params.name).await {
            Ok(Some(current)) => {
                let holder = current
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.clone())
                    .unwrap_or_default();
                if holder != params.holder {
                    return Renewal::Taken(holder);
                }
                lease = current;
            }
            Ok(None) => return Renewal::Taken(String::new()),
            Err(e) => {
                tracing::debug!(lease = %params.name, error = %e, renew_error = %error, "Cannot renew the Lease; retrying");
            }
        }
        tokio::time::sleep(Duration::from_secs(1).min(params.renew_interval)).await;
    }
}
