//! Admission webhook configurations, with the operator-managed `caBundle`.
//!
//! Both are scoped by the `trellis.dev/inject` namespace label, which the operator's namespace
//! controller mirrors from the annotation users set (values `enabled` or `ingress`). Both skip `kube-system` and the control-plane namespace and
//! fail open, so a control plane that is down or not yet serving never blocks admission
//! elsewhere.

use k8s_openapi::{
    ByteString,
    api::admissionregistration::v1::{
        MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
    },
};
use serde_json::json;
use trellis_api::well_known::{INJECT_ANNOTATION, WEBHOOK_SERVICE};

use super::{Plan, RenderInput, cluster_name, labels, push};
use crate::error::Error;

/// Component label of the webhook configurations.
pub const WEBHOOKS_COMPONENT: &str = "webhooks";
/// Suffix of the mutating (proxy injector) configuration's name.
pub const INJECTOR_SUFFIX: &str = "proxy-injector";
/// Suffix of the validating configuration's name.
pub const VALIDATOR_SUFFIX: &str = "validator";
/// Values of the namespace label `trellis.dev/inject` the injector is called for (the
/// injector itself treats `ingress` as an ingress-mode opt-in).
pub const INJECTOR_LABEL_VALUES: [&str; 2] = ["enabled", "ingress"];
/// Seconds the apiserver waits for a webhook before failing open.
pub const WEBHOOK_TIMEOUT_SECONDS: i32 = 5;

/// Renders both webhook configurations into `plan`.
pub fn render(input: &RenderInput<'_>, plan: &mut Plan) -> Result<(), Error> {
    let ca_bundle = serde_json::to_value(ByteString(
        input.identity.webhook_ca_bundle.clone().into_bytes(),
    ))
    .map_err(|source| Error::Encode {
        what: "webhook caBundle".to_string(),
        source,
    })?;
    let namespace_selector = json!({
        "matchExpressions": [
            { "key": INJECT_ANNOTATION, "operator": "In", "values": INJECTOR_LABEL_VALUES },
            { "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", input.spec.namespace] },
        ],
    });
    let client_config = |path: &str| {
        json!({
            "service": { "name": WEBHOOK_SERVICE, "namespace": input.spec.namespace, "path": path, "port": 443 },
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
                "namespaceSelector": namespace_selector,
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
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "timeoutSeconds": WEBHOOK_TIMEOUT_SECONDS,
                "namespaceSelector": namespace_selector,
                "rules": [
                    { "apiGroups": ["policy.trellis.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"], "resources": ["*"], "scope": "Namespaced" },
                    { "apiGroups": ["trellis.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"], "resources": ["serviceprofiles"], "scope": "Namespaced" },
                ],
            }],
        }),
    )
}
