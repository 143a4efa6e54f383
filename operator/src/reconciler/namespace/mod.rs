//! Mirrors each namespace's `trellis.dev/inject` annotation onto a label with the same key,
//! so label selectors (`kubectl get ns -l trellis.dev/inject=enabled`, webhook and policy
//! selectors) can find meshed namespaces; annotations cannot be selected on.
//!
//! Only the label is written, by server-side apply under [`INJECT_LABEL_FIELD_MANAGER`], so no
//! other field of the namespace is touched. Replicas and concurrent operators apply identical
//! values under the same manager, so they never conflict.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;

use tracing::instrument;
use trellis_api::well_known::INJECT_ANNOTATION;

use super::Context;
use crate::reconciler::error::Error;

/// Controller name in metrics.
pub const CONTROLLER: &str = "namespace";
/// Field manager that owns the mirrored `trellis.dev/inject` namespace label (and nothing else).
pub const INJECT_LABEL_FIELD_MANAGER: &str = "trellis-operator-inject-label";
/// What the `trellis.dev/inject` label of a namespace should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Desired {
    /// The label carries this value.
    Label(&'static str),
    /// No annotation: the label is removed.
    Absent,
    /// The annotation has a value the injector does not know: the label is removed and a
    /// warning logged.
    Unknown(String),
}

impl Desired {
    /// The label value to apply, if any.
    pub fn value(&self) -> Option<&'static str> {
        match self {
            Self::Label(value) => Some(value),
            Self::Absent | Self::Unknown(_) => None,
        }
    }
}

/// The desired label from a namespace's annotations.
pub fn desired_label(annotations: &BTreeMap<String, String>) -> Desired {
    match annotations.get(INJECT_ANNOTATION).map(String::as_str) {
        None => Desired::Absent,
        Some("enabled") => Desired::Label("enabled"),
        Some("ingress") => Desired::Label("ingress"),
        Some("disabled") => Desired::Label("disabled"),
        Some(other) => Desired::Unknown(other.to_string()),
    }
}

/// The server-side apply body that owns exactly the desired label (or no label).
pub fn apply_body(name: &str, value: Option<&str>) -> serde_json::Value {
    let labels = match value {
        Some(value) => json!({ INJECT_ANNOTATION: value }),
        None => json!({}),
    };
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name, "labels": labels },
    })
}

/// Reconciles one namespace (only while this replica holds the Lease).
#[instrument(skip_all, fields(kind = "Namespace", name = %ns.name_any()))]
pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.is_leader() || ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    ctx.measured(CONTROLLER, ns.uid(), mirror(&ns, &ctx)).await
}

async fn mirror(ns: &Namespace, ctx: &Context) -> Result<Action, Error> {
    let name = ns.name_any();
    let desired = desired_label(ns.annotations());
    if let Desired::Unknown(value) = &desired {
        tracing::warn!(
            namespace = %name,
            value = %value,
            "Unknown {INJECT_ANNOTATION} annotation value (expected enabled, ingress or disabled); not labelling"
        );
    }
    let current = ns.labels().get(INJECT_ANNOTATION).map(String::as_str);
    if current == desired.value() {
        return Ok(Action::await_change());
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let params = PatchParams::apply(INJECT_LABEL_FIELD_MANAGER).force();
    match api
        .patch(
            &name,
            &params,
            &Patch::Apply(apply_body(&name, desired.value())),
        )
        .await
    {
        Ok(_) => {
            tracing::info!(namespace = %name, label = ?desired.value(), "Mirrored {INJECT_ANNOTATION}");
            Ok(Action::await_change())
        }
        // Deleted meanwhile: nothing to label.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(source) => Err(Error::Kube {
            action: format!("apply label {INJECT_ANNOTATION} on Namespace {name}"),
            source,
        }),
    }
}

/// Retries a failed reconcile with per-object exponential backoff.
pub fn error_policy(ns: Arc<Namespace>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.failed(CONTROLLER, &ns.uid().unwrap_or_default(), error);
    tracing::warn!(namespace = %ns.name_any(), error = %error, retry_in = ?delay, "Reconcile failed");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests;
