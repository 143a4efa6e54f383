//! The Mesh controller: renders the control plane from a Mesh, applies it with server-side
//! apply, prunes what the spec no longer asks for, reports status, and cleans up
//! cluster-scoped objects through a finalizer when the Mesh is deleted.

pub mod certificates;
pub mod failures;
pub mod pods;
pub mod status;
pub mod uninjected;

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Namespace, Secret},
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType},
        finalizer::{Event as Finalizer, finalizer},
    },
};
use serde_json::json;
use tokio::time::Instant;
use tracing::instrument;
use trellis_api::well_known::FIELD_MANAGER;
use trellis_crds::{
    common::condition::is_true,
    settings::MeshSettings,
    v1alpha1::mesh::{IdentityStatus, Mesh, MeshStatus, RotationPhase, conditions, reasons},
};

use self::status::{Observation, component_status};
use super::Context;
use crate::reconciler::{
    applier::{Applier, Existing},
    error::Error,
    render::{self, RenderInput},
};

/// Finalizer that removes cluster-scoped leftovers before a Mesh goes.
pub const FINALIZER: &str = "mesh.trellis.dev/cleanup";
/// Requeue interval when nothing is in flight (certificate renewal checks).
pub const RESYNC: Duration = Duration::from_secs(300);
/// Requeue interval while a user-fixable problem holds the rollout back.
pub const BLOCKED_RETRY: Duration = Duration::from_secs(15);
/// Label of the controller in metrics.
const CONTROLLER: &str = "mesh";

/// Reconciles one Mesh (only while this replica holds the Lease).
#[instrument(skip_all, fields(kind = "Mesh", name = %mesh.name_any()))]
pub async fn reconcile(mesh: Arc<Mesh>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.is_leader() {
        return Ok(Action::await_change());
    }
    let api: Api<Mesh> = Api::all(ctx.client.clone());
    let run = finalizer(&api, FINALIZER, mesh.clone(), |event| async {
        match event {
            Finalizer::Apply(mesh) => apply(mesh, &ctx).await,
            Finalizer::Cleanup(mesh) => cleanup(mesh, &ctx).await,
        }
    });
    let run = async {
        run.await.map_err(|e| match e {
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            other => Error::Finalizer(Box::new(other)),
        })
    };
    ctx.measured(CONTROLLER, mesh.uid(), run).await
}

/// Retries a failed reconcile with per-object exponential backoff.
pub fn error_policy(mesh: Arc<Mesh>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.failed(CONTROLLER, &mesh.uid().unwrap_or_default(), error);
    tracing::warn!(mesh = %mesh.name_any(), error = %error, retry_in = ?delay, "Reconcile failed");
    Action::requeue(delay)
}

async fn publish(
    ctx: &Context,
    mesh: &Mesh,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &mesh.object_ref(&())).await {
        tracing::debug!(error = %e, "Cannot publish event");
    }
}

async fn write_status(
    client: &Client,
    mesh: &Mesh,
    previous: &MeshStatus,
    next: &MeshStatus,
) -> Result<(), Error> {
    if previous == next {
        return Ok(());
    }
    let name = mesh.name_any();
    let api: Api<Mesh> = Api::all(client.clone());
    let patch = json!({
        "apiVersion": Mesh::api_version(&()),
        "kind": Mesh::kind(&()),
        "status": next,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube(format!("write status of Mesh {name}")))?;
    Ok(())
}

async fn transition_events(ctx: &Context, mesh: &Mesh, previous: &MeshStatus, next: &MeshStatus) {
    let find = |s: &MeshStatus, t: &str| {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let was_ready = is_true(&previous.conditions, conditions::READY);
    let ready = is_true(&next.conditions, conditions::READY);
    if ready != was_ready {
        let message = find(next, conditions::READY)
            .map(|c| c.2)
            .unwrap_or_default();
        let (type_, reason) = if ready {
            (EventType::Normal, reasons::COMPONENTS_READY)
        } else {
            (EventType::Warning, reasons::COMPONENTS_NOT_READY)
        };
        publish(ctx, mesh, type_, reason, "Reconcile", message).await;
    }
    let upgrading = |s: &MeshStatus| {
        find(s, conditions::PROGRESSING).is_some_and(|c| c.0 == "True" && c.1 == reasons::UPGRADING)
    };
    if upgrading(next) && !upgrading(previous) {
        publish(
            ctx,
            mesh,
            EventType::Normal,
            reasons::UPGRADING,
            "Upgrade",
            format!(
                "upgrade from {} to {} started",
                previous.version.clone().unwrap_or_default(),
                mesh.spec.version
            ),
        )
        .await;
    }
    if previous.version.is_some() && next.version != previous.version {
        publish(
            ctx,
            mesh,
            EventType::Normal,
            "UpgradeFinished",
            "Upgrade",
            format!(
                "running version {}",
                next.version.clone().unwrap_or_default()
            ),
        )
        .await;
    }
    let degraded = find(next, conditions::DEGRADED).filter(|c| c.0 == "True");
    if let Some((_, reason, message)) = degraded
        && find(previous, conditions::DEGRADED).is_none_or(|c| c.0 != "True" || c.2 != message)
    {
        publish(ctx, mesh, EventType::Warning, &reason, "Reconcile", message).await;
    }
}

fn set_cert_metric(ctx: &Context, mesh: &str, cert: &str, at: Option<Timestamp>) {
    if let Some(at) = at {
        ctx.metrics
            .cert_expiry
            .get_or_create(&vec![
                ("mesh", mesh.to_string()),
                ("cert", cert.to_string()),
            ])
            .set(at.as_second());
    }
}

/// A user-fixable problem that holds the rollout back: condition reason and message.
type Blocked = (&'static str, String);

/// Sorts an error of a step: one the user must fix holds the rollout back ([`Blocked`]);
/// anything else fails the reconcile.
fn blocked_by(error: Error) -> Result<Blocked, Error> {
    match error {
        Error::InvalidIdentityMaterial(message) => {
            Ok((reasons::INVALID_IDENTITY_MATERIAL, message))
        }
        Error::InvalidSpec(message) => Ok((reasons::INVALID_SPEC, message)),
        other => Err(other),
    }
}

/// One Mesh reconcile: claim the namespace, ensure certificates, render, apply the plan,
/// prune, observe the components, and write status. A [`Blocked`] step writes status and
/// requeues after [`BLOCKED_RETRY`] without touching what runs.
async fn apply(mesh: Arc<Mesh>, ctx: &Context) -> Result<Action, Error> {
    let name = mesh.name_any();
    let uid = mesh.uid().ok_or(Error::MissingMetadata {
        kind: "Mesh",
        field: "metadata.uid",
    })?;
    let spec = &mesh.spec;
    let now = Timestamp::now();
    let previous = mesh.status.clone().unwrap_or_default();
    let started = Instant::now();
    let mut obs = Observation {
        generation: mesh.meta().generation,
        desired_version: spec.version.clone(),
        ..Observation::default()
    };
    let prepared = match prepare(ctx, &mesh, &uid, now, &mut obs).await? {
        Ok(prepared) => prepared,
        Err(blocked) => {
            obs.blocked = Some(blocked);
            return finish_blocked(ctx, &mesh, &previous, obs, now).await;
        }
    };
    let (material, plan) = prepared;
    tracing::debug!(elapsed = ?started.elapsed(), "Identity material ready and plan rendered");

    let applier = Applier::new(ctx.client.clone(), &spec.namespace, &name);
    let existing = applier.existing().await?;
    if let Err(error) = applier.apply(&plan, &existing).await {
        obs.apply_error = Some(error.to_string());
        let next = status::build(&previous, &obs, now);
        write_status(&ctx.client, &mesh, &previous, &next).await?;
        return Err(error);
    }
    tracing::debug!(elapsed = ?started.elapsed(), objects = plan.objects.len(), "Applied");
    for change in &material.changes {
        let note = change.note.clone();
        publish(
            ctx,
            &mesh,
            EventType::Normal,
            change.reason,
            "RotateIdentity",
            note,
        )
        .await;
    }
    prune(ctx, &mesh, &applier, &plan, existing).await?;
    tracing::debug!(elapsed = ?started.elapsed(), "Pruned");

    observe(ctx, &mesh, &plan, &mut obs).await?;
    let all_ready = obs.components.iter().all(|c| c.ready);
    let next = status::build(&previous, &obs, now);
    write_status(&ctx.client, &mesh, &previous, &next).await?;
    transition_events(ctx, &mesh, &previous, &next).await;
    Ok(Action::requeue(if all_ready {
        RESYNC
    } else {
        Duration::from_secs(30)
    }))
}

/// The steps before anything is written: check the spec into [`MeshSettings`] (an invalid
/// spec holds the rollout back, naming every bad field), claim the namespace, ensure the
/// certificates (recorded in `obs` and the metrics) and render the plan.
async fn prepare(
    ctx: &Context,
    mesh: &Mesh,
    uid: &str,
    now: Timestamp,
    obs: &mut Observation,
) -> Result<Result<(certificates::Outcome, render::Plan), Blocked>, Error> {
    let settings = match MeshSettings::try_from(&mesh.spec) {
        Ok(settings) => settings,
        Err(invalid) => return Ok(Err(invalid_spec(&invalid))),
    };
    let own_namespace = match claim_namespace(ctx, mesh, uid).await? {
        Ok(own) => own,
        Err(blocked) => return Ok(Err(blocked)),
    };
    let ns = settings.namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let material = match certificates::ensure(&secrets, &configmaps, &settings, now).await {
        Ok(material) => material,
        Err(e) => return blocked_by(e).map(Err),
    };
    record_certificates(ctx, &mesh.name_any(), &material, obs);
    let name = mesh.name_any();
    let input = RenderInput {
        mesh_name: &name,
        mesh_uid: uid,
        settings: &settings,
        images: &ctx.images,
        identity: &material.refs,
        own_namespace,
    };
    let plan = match render::render(&input) {
        Ok(plan) => plan,
        Err(e) => return blocked_by(e).map(Err),
    };
    obs.unavailable = plan.unavailable.clone();
    Ok(Ok((material, plan)))
}

/// The held-back rollout of a spec that does not check: reason `InvalidSpec`, and a message
/// that names every bad field.
fn invalid_spec(invalid: &trellis_crds::settings::error::Error) -> Blocked {
    (reasons::INVALID_SPEC, invalid.to_string())
}

/// Checks that the Mesh may use its namespace; returns whether the namespace is its own
/// (absent, or created by this Mesh; never adopted otherwise).
async fn claim_namespace(
    ctx: &Context,
    mesh: &Mesh,
    uid: &str,
) -> Result<Result<bool, Blocked>, Error> {
    let ns = mesh.spec.namespace.as_str();
    // Two Meshes must not share a namespace: the older one keeps it.
    let meshes: Api<Mesh> = Api::all(ctx.client.clone());
    let all = meshes
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("list Meshes"))?;
    let rival = all.items.iter().find(|other| {
        other.uid().as_deref() != Some(uid)
            && other.spec.namespace == mesh.spec.namespace
            && other.meta().deletion_timestamp.is_none()
            && (other.creation_timestamp(), other.name_any())
                < (mesh.creation_timestamp(), mesh.name_any())
    });
    if let Some(rival) = rival {
        return Ok(Err((
            reasons::INVALID_SPEC,
            format!(
                "spec.namespace {ns} is already used by Mesh {}: delete this Mesh and create it with another namespace",
                rival.name_any()
            ),
        )));
    }
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let existing = namespaces
        .get_opt(ns)
        .await
        .map_err(Error::kube(format!("get Namespace {ns}")))?;
    if existing
        .as_ref()
        .is_some_and(|n| n.meta().deletion_timestamp.is_some())
    {
        return Ok(Err((
            reasons::INVALID_SPEC,
            format!(
                "namespace {ns} is being deleted: wait for it to go, then the operator recreates it"
            ),
        )));
    }
    Ok(Ok(existing.as_ref().is_none_or(|n| {
        n.owner_references().iter().any(|o| o.uid == uid)
    })))
}

/// Puts the certificates' expiry into the metrics and the identity status.
fn record_certificates(
    ctx: &Context,
    name: &str,
    material: &certificates::Outcome,
    obs: &mut Observation,
) {
    set_cert_metric(ctx, name, "trust-anchor", material.anchor_not_after);
    set_cert_metric(ctx, name, "issuer", material.issuer_not_after);
    set_cert_metric(ctx, name, "webhook", material.webhook_not_after);
    obs.identity = Some(IdentityStatus {
        trust_anchor_not_after: material.anchor_not_after.map(Time),
        issuer_not_after: material.issuer_not_after.map(Time),
        issuer_serial: Some(material.refs.issuer_serial.clone()),
        rotation_phase: Some(RotationPhase::Stable),
    });
    obs.identity_warning = material.warning.clone();
}

/// Prunes what the spec no longer asks for and tells about it.
async fn prune(
    ctx: &Context,
    mesh: &Mesh,
    applier: &Applier,
    plan: &render::Plan,
    existing: Existing,
) -> Result<(), Error> {
    let pruned = applier.prune(plan, existing).await?;
    if !pruned.is_empty() {
        tracing::info!(mesh = %mesh.name_any(), objects = ?pruned, "Pruned objects the spec no longer asks for");
        publish(
            ctx,
            mesh,
            EventType::Normal,
            "Pruned",
            "Prune",
            format!(
                "removed what the spec no longer asks for: {}",
                pruned.join(", ")
            ),
        )
        .await;
    }
    Ok(())
}

/// Observes each component's Deployment (with the reasons its pods fail) and the meshed
/// pods into `obs`.
async fn observe(
    ctx: &Context,
    mesh: &Mesh,
    plan: &render::Plan,
    obs: &mut Observation,
) -> Result<(), Error> {
    let name = mesh.name_any();
    let ns = mesh.spec.namespace.as_str();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    for component in &plan.components {
        let deployment = deployments
            .get_opt(&component.deployment)
            .await
            .map_err(Error::kube(format!(
                "get Deployment {ns}/{}",
                component.deployment
            )))?;
        let mut status = component_status(component, deployment.as_ref(), &mesh.spec.version);
        if !status.ready
            && let Some(deployment) = &deployment
        {
            let problems = failures::of_deployment(&ctx.client, deployment).await;
            if let Some(message) = status.message.as_mut() {
                for problem in &problems {
                    message.push_str("; ");
                    message.push_str(&problem.message);
                }
            }
            obs.pod_problems.extend(problems);
        }
        ctx.metrics
            .component_ready
            .get_or_create(&vec![
                ("mesh", name.clone()),
                ("component", component.name.clone()),
            ])
            .set(i64::from(status.ready));
        obs.components.push(status);
    }
    // Meshed pods: a failed count keeps the previous one and fails nothing (between
    // reconciles `pods::keep_counts` keeps it current).
    obs.pods = match pods::observe(&ctx.client, ns, &mesh.spec.version).await {
        Ok(counts) => Some(counts),
        Err(e) => {
            tracing::warn!(mesh = %name, error = %e, "Cannot count meshed pods; keeping the previous counts");
            None
        }
    };
    Ok(())
}

async fn finish_blocked(
    ctx: &Context,
    mesh: &Mesh,
    previous: &MeshStatus,
    obs: Observation,
    now: Timestamp,
) -> Result<Action, Error> {
    if let Some((reason, message)) = &obs.blocked {
        tracing::info!(mesh = %mesh.name_any(), %reason, %message, "Rollout held back");
    }
    let next = status::build(previous, &obs, now);
    write_status(&ctx.client, mesh, previous, &next).await?;
    transition_events(ctx, mesh, previous, &next).await;
    Ok(Action::requeue(BLOCKED_RETRY))
}

/// Removes what the Mesh created: webhook configurations first, then every other rendered
/// object, then the namespace if this Mesh created it. Never waits on user workloads.
#[instrument(skip_all, fields(kind = "Mesh", name = %mesh.name_any()))]
pub async fn cleanup(mesh: Arc<Mesh>, ctx: &Context) -> Result<Action, Error> {
    let name = mesh.name_any();
    let ns = mesh.spec.namespace.as_str();
    let mut removed = Applier::new(ctx.client.clone(), ns, &name)
        .delete_all()
        .await?;
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    if let Some(namespace) = namespaces
        .get_opt(ns)
        .await
        .map_err(Error::kube(format!("get Namespace {ns}")))?
        && let Some(uid) = mesh.uid()
        && namespace.owner_references().iter().any(|o| o.uid == uid)
        && namespace.meta().deletion_timestamp.is_none()
    {
        match namespaces.delete(ns, &DeleteParams::background()).await {
            Ok(_) => removed += 1,
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube(format!("delete Namespace {ns}"))(e)),
        }
    }
    tracing::info!(mesh = %name, removed, "Removed the objects of a deleted Mesh");
    publish(
        ctx,
        &mesh,
        EventType::Normal,
        "Uninstalled",
        "Cleanup",
        format!("removed {removed} objects, webhook configurations first"),
    )
    .await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests;
