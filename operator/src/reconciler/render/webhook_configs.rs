//! Admission webhook configurations, with the operator-managed `caBundle`.
//!
//! The proxy injector is called for pods in every namespace except `kube-system` and the
//! control-plane namespace, including namespaces that opted out (`trellis.dev/inject:
//! disabled`, whether annotated or labelled): the selector does not look at that, and the
//! injector decides per pod itself: the pod's own `trellis.dev/inject` annotation, or else its
//! namespace's, must say `enabled` or `ingress` (see `trellis_webhooks::inject`). This is how
//! Linkerd scopes its injector, and it lets a pod opt in inside a namespace that has not.
//! The validator is called for policy objects everywhere except `kube-system`.
//!
//! The injector fails open, so a control plane that is down or not yet serving never blocks
//! pods (the operator reports every pod that asked for a proxy and got none: see
//! `reconciler::mesh::uninjected`). The validator fails closed by default
//! (`spec.controlPlane.validatorFailurePolicy`): a policy object nobody checked never
//! reaches the proxies. Two controller replicas, a PodDisruptionBudget and a readiness that
//! includes the webhook server keep it answering through restarts and drains.

use k8s_openapi::{
    ByteString,
    api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    },
};
use serde_json::{Value, json};
use trellis_api::well_known::WEBHOOK_SERVICE;

use super::{Plan, RenderInput, cluster_name, labels, push};
use crate::reconciler::error::Error;

/// Component label of the webhook configurations.
pub const WEBHOOKS_COMPONENT: &str = "webhooks";
/// Suffix of the mutating (proxy injector) configuration's name.
pub const INJECTOR_SUFFIX: &str = "proxy-injector";
/// Suffix of the validating configuration's name.
pub const VALIDATOR_SUFFIX: &str = "validator";
/// Namespaces no webhook is ever called for: the cluster's own system pods.
pub const SYSTEM_NAMESPACE: &str = "kube-system";
/// Label the apiserver sets on every namespace to its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// Seconds the apiserver waits for a webhook before applying its failure policy.
pub const WEBHOOK_TIMEOUT_SECONDS: i32 = 5;

/// The proxy injector's `namespaceSelector` for a control plane in `control_plane_namespace`.
///
/// It selects every namespace except `kube-system` and the control-plane namespace (its pods
/// must start while the injector is down). Whether a selected pod is injected is the
/// injector's decision from the pod's and the namespace's annotations, the pod's winning in
/// both directions; so a namespace annotated `disabled` is still selected, because a pod in
/// it may opt in on its own.
pub fn injector_namespace_selector(control_plane_namespace: &str) -> Value {
    json!({
        "matchExpressions": [
            { "key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": [SYSTEM_NAMESPACE, control_plane_namespace] },
        ],
    })
}

/// The validator's `namespaceSelector`: every namespace except `kube-system`.
///
/// Policy objects (Servers, AuthorizationPolicies, ServiceProfiles) apply to meshed pods,
/// and a pod can be meshed in any namespace by its own annotation, so they are validated in
/// every namespace whatever its `trellis.dev/inject` label says, the control-plane namespace
/// included (validating a policy object never waits on a pod there). Only `kube-system` is
/// left out, as for every webhook.
pub fn validator_namespace_selector() -> Value {
    json!({
        "matchExpressions": [
            { "key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": [SYSTEM_NAMESPACE] },
        ],
    })
}

/// Renders both webhook configurations into `plan`.
pub fn render(input: &RenderInput<'_>, plan: &mut Plan) -> Result<(), Error> {
    let ca_bundle = serde_json::to_value(ByteString(
        input.identity.webhook_ca_bundle.clone().into_bytes(),
    ))
    .map_err(|source| Error::Encode {
        what: "webhook caBundle".to_string(),
        source,
    })?;
    let client_config = |path: &str| {
        json!({
            "service": { "name": WEBHOOK_SERVICE, "namespace": input.settings.namespace, "path": path, "port": 443 },
            "caBundle": ca_bundle,
        })
    };
    push::<MutatingWebhookConfiguration>(
        plan,
        input,
        json!({
            "metadata": { "name": cluster_name(input.mesh_name, INJECTOR_SUFFIX), "labels": labels(input, WEBHOOKS_COMPONENT) },
            "webhooks": [{
                "name": "proxy-injector.trellis.dev",
                "admissionReviewVersions": ["v1"],
                "clientConfig": client_config("/inject"),
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "timeoutSeconds": WEBHOOK_TIMEOUT_SECONDS,
                "reinvocationPolicy": "Never",
                "namespaceSelector": injector_namespace_selector(&input.settings.namespace),
                "rules": [{ "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "Namespaced" }],
            }],
        }),
    )?;
    push::<ValidatingWebhookConfiguration>(
        plan,
        input,
        json!({
            "metadata": { "name": cluster_name(input.mesh_name, VALIDATOR_SUFFIX), "labels": labels(input, WEBHOOKS_COMPONENT) },
            "webhooks": [{
                "name": "validator.trellis.dev",
                "admissionReviewVersions": ["v1"],
                "clientConfig": client_config("/validate"),
                "failurePolicy": input.settings.control_plane.validator_failure_policy.as_str(),
                "sideEffects": "None",
                "timeoutSeconds": WEBHOOK_TIMEOUT_SECONDS,
                "namespaceSelector": validator_namespace_selector(),
                "rules": [
                    { "apiGroups": ["policy.trellis.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"], "resources": ["*"], "scope": "Namespaced" },
                    { "apiGroups": ["trellis.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"], "resources": ["serviceprofiles"], "scope": "Namespaced" },
                ],
            }],
        }),
    )
}
