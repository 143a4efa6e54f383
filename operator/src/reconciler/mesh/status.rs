//! Status of a Mesh: component readiness from Deployments, meshed-pod counts, and the
//! conditions written from them.

use k8s_openapi::{
    api::apps::v1::Deployment,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use trellis_crds::{
    common::condition::{FALSE, TRUE},
    v1alpha1::mesh::{ComponentStatus, MeshStatus, conditions, reasons},
};

use super::{failures::PodProblem, pods::PodCounts};
use crate::reconciler::render::{Component, VERSION_LABEL};

/// Readiness of one component, from its Deployment (absent when `None`).
pub fn component_status(
    component: &Component,
    deployment: Option<&Deployment>,
    version: &str,
) -> ComponentStatus {
    let Some(deployment) = deployment else {
        return ComponentStatus {
            name: component.name.clone(),
            ready: false,
            version: None,
            message: Some(format!("deployment {} not found", component.deployment)),
        };
    };
    let status = deployment.status.clone().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0) >= generation;
    let want = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(component.replicas);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let template_version = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get(VERSION_LABEL))
        .cloned();
    let rolled = observed && updated >= want && total <= want;
    let ready = rolled && available >= want;
    let message = if ready {
        format!(
            "deployment {} {available}/{want} available",
            component.deployment
        )
    } else if !rolled {
        format!(
            "deployment {} rolling out: {updated}/{want} updated, {available}/{want} available",
            component.deployment
        )
    } else {
        format!(
            "deployment {} {available}/{want} available",
            component.deployment
        )
    };
    ComponentStatus {
        name: component.name.clone(),
        ready,
        version: if rolled {
            template_version.or_else(|| Some(version.to_string()))
        } else {
            None
        },
        message: Some(message),
    }
}

/// Sets condition `type_` in `list`, keeping `lastTransitionTime` unless the status flips.
#[expect(
    clippy::too_many_arguments,
    reason = "a condition's fields plus the previous list and the clock"
)]
pub fn set_condition(
    list: &mut Vec<Condition>,
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { TRUE } else { FALSE };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    list.retain(|c| c.type_ != type_);
    list.push(Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    });
}

/// What the reconcile found, turned into status by [`build`].
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The Mesh's generation.
    pub generation: Option<i64>,
    /// The version asked for.
    pub desired_version: String,
    /// Component readiness (empty when the rollout was held back).
    pub components: Vec<ComponentStatus>,
    /// User-fixable problem that held the rollout back: (reason, message).
    pub blocked: Option<(&'static str, String)>,
    /// Applying failed: the message.
    pub apply_error: Option<String>,
    /// Enabled extension parts this release cannot run.
    pub unavailable: Vec<String>,
    /// Identity warning that does not block: (reason, message).
    pub identity_warning: Option<(&'static str, String)>,
    /// Identity status to publish.
    pub identity: Option<trellis_crds::v1alpha1::mesh::IdentityStatus>,
    /// Meshed and up-to-date pods; `None` keeps the previous counts (not counted, or the
    /// pod list failed).
    pub pods: Option<PodCounts>,
    /// Why pods of not-ready components do not run (missing images, crash loops).
    pub pod_problems: Vec<PodProblem>,
}

/// A condition to set: type, status, reason and message.
type Desired = (&'static str, bool, &'static str, String);

/// Builds the status from an observation and the previous status.
pub fn build(previous: &MeshStatus, obs: &Observation, now: Timestamp) -> MeshStatus {
    let prev = previous.conditions.as_slice();
    let mut status = MeshStatus {
        observed_generation: obs.generation,
        conditions: Vec::new(),
        version: previous.version.clone(),
        components_ready: previous.components_ready.clone(),
        components: previous.components.clone(),
        meshed_pods: obs.pods.map(|p| p.meshed).or(previous.meshed_pods),
        up_to_date_pods: obs.pods.map(|p| p.up_to_date).or(previous.up_to_date_pods),
        identity: obs.identity.clone().or_else(|| previous.identity.clone()),
    };
    let mut desired = if obs.blocked.is_none() {
        rollout(previous, obs, &mut status)
    } else {
        // Held back: keep Ready and components as last observed; say nothing moves.
        let message = "rollout held back until the spec is fixed (see Degraded)";
        vec![
            (
                conditions::PROGRESSING,
                false,
                reasons::IDLE,
                message.to_string(),
            ),
            (
                conditions::RECONCILING,
                false,
                reasons::IDLE,
                message.to_string(),
            ),
        ]
    };
    desired.push(reconciled(obs));
    desired.extend(degraded(obs));
    desired.extend(identity_healthy(obs, &status));
    let mut conds = prev.to_vec();
    for (type_, value, reason, message) in desired {
        set_condition(
            &mut conds,
            prev,
            type_,
            value,
            reason,
            message,
            obs.generation,
            now,
        );
    }
    let order = [
        conditions::READY,
        conditions::RECONCILED,
        conditions::PROGRESSING,
        conditions::DEGRADED,
        conditions::IDENTITY_HEALTHY,
        conditions::RECONCILING,
        conditions::STALLED,
    ];
    conds.sort_by_key(|c| {
        order
            .iter()
            .position(|o| *o == c.type_)
            .unwrap_or(order.len())
    });
    status.conditions = conds;
    status
}

/// A rollout that went ahead: components, version and Ready, Progressing and Reconciling.
fn rollout(previous: &MeshStatus, obs: &Observation, status: &mut MeshStatus) -> Vec<Desired> {
    status.components = obs.components.clone();
    let ready = obs.components.iter().filter(|c| c.ready).count();
    let total = obs.components.len();
    status.components_ready = Some(format!("{ready}/{total}"));
    let all_ready = ready == total && obs.apply_error.is_none();
    if all_ready {
        status.version = Some(obs.desired_version.clone());
    }
    let not_ready = obs
        .components
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.message.clone().unwrap_or_else(|| c.name.clone()))
        .collect::<Vec<_>>()
        .join("; ");
    let ready_condition = if all_ready {
        let message = format!(
            "{ready}/{total} components ready at version {}",
            obs.desired_version
        );
        (conditions::READY, true, reasons::COMPONENTS_READY, message)
    } else {
        let message = if not_ready.is_empty() {
            obs.apply_error.clone().unwrap_or_default()
        } else {
            not_ready.clone()
        };
        (
            conditions::READY,
            false,
            reasons::COMPONENTS_NOT_READY,
            message,
        )
    };
    let desired = &obs.desired_version;
    let (progressing, reason, message) = if all_ready {
        (false, reasons::IDLE, "nothing in flight".to_string())
    } else if previous.version.is_none() {
        let message = format!("installing {desired}: {not_ready}");
        (true, reasons::INSTALLING, message)
    } else if previous.version.as_deref() != Some(desired.as_str()) {
        let from = previous.version.clone().unwrap_or_default();
        let message = format!("upgrading {from} to {desired}: {not_ready}");
        (true, reasons::UPGRADING, message)
    } else {
        let message = format!("restoring: {not_ready}");
        (true, reasons::INSTALLING, message)
    };
    vec![
        ready_condition,
        (
            conditions::PROGRESSING,
            progressing,
            reason,
            message.clone(),
        ),
        (conditions::RECONCILING, progressing, reason, message),
    ]
}

/// Reconciled: whether the spec of this generation was applied.
fn reconciled(obs: &Observation) -> Desired {
    let (value, reason, message) = match &obs.apply_error {
        Some(e) => (false, reasons::RECONCILE_FAILED, e.clone()),
        None if obs.blocked.is_some() => (
            false,
            reasons::RECONCILE_FAILED,
            "the spec was not applied; the running mesh is unchanged (see Degraded)".to_string(),
        ),
        None => (
            true,
            reasons::RECONCILE_SUCCEEDED,
            format!("generation {} applied", obs.generation.unwrap_or(0)),
        ),
    };
    (conditions::RECONCILED, value, reason, message)
}

/// Degraded and Stalled: a held-back rollout, else failing pods, else unavailable
/// extensions, else nothing.
fn degraded(obs: &Observation) -> [Desired; 2] {
    let problem = obs
        .blocked
        .clone()
        .or_else(|| {
            (!obs.pod_problems.is_empty()).then(|| {
                let reason = if obs.pod_problems.iter().any(|p| p.image) {
                    reasons::IMAGE_UNAVAILABLE
                } else {
                    reasons::COMPONENT_FAILING
                };
                let messages: Vec<&str> = obs
                    .pod_problems
                    .iter()
                    .map(|p| p.message.as_str())
                    .collect();
                (reason, messages.join("; "))
            })
        })
        .or_else(|| {
            (!obs.unavailable.is_empty())
                .then(|| (reasons::EXTENSION_UNAVAILABLE, obs.unavailable.join("; ")))
        });
    let (value, reason, message) = match problem {
        Some((reason, message)) => (true, reason, message),
        None => (
            false,
            reasons::RECONCILE_SUCCEEDED,
            "nothing needs attention".to_string(),
        ),
    };
    [
        (conditions::DEGRADED, value, reason, message.clone()),
        (conditions::STALLED, value, reason, message),
    ]
}

/// IdentityHealthy: false for unusable material or an identity warning; `None` (left as
/// it was) while another problem holds the rollout back.
fn identity_healthy(obs: &Observation, status: &MeshStatus) -> Option<Desired> {
    let type_ = conditions::IDENTITY_HEALTHY;
    match (&obs.blocked, &obs.identity_warning) {
        (Some((reason, message)), _) if *reason == reasons::INVALID_IDENTITY_MATERIAL => {
            Some((type_, false, reason, message.clone()))
        }
        (_, Some((reason, message))) => Some((type_, false, reason, message.clone())),
        (None, None) => {
            let message = match &status.identity {
                Some(id) => format!(
                    "trust anchor valid until {}, issuer valid until {}",
                    id.trust_anchor_not_after
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .unwrap_or_default(),
                    id.issuer_not_after
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .unwrap_or_default()
                ),
                None => "identity material valid".to_string(),
            };
            Some((type_, true, reasons::IDENTITY_VALID, message))
        }
        _ => None,
    }
}
