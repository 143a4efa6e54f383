//! Identity objects: the generated Secrets (trust anchor, issuer, webhook TLS) and the
//! trust-roots ConfigMap that proxies and the controller read.

use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Secret},
};
use serde_json::json;
use trellis_api::well_known::{TRUST_ROOTS_CONFIGMAP, TRUST_ROOTS_KEY};

use super::{Plan, RenderInput, labels, push};
use crate::reconciler::error::Error;

/// Component label of identity objects.
pub const IDENTITY_COMPONENT: &str = "identity";

/// Renders the identity objects into `plan`.
pub fn render(input: &RenderInput<'_>, plan: &mut Plan) -> Result<(), Error> {
    let ns = input.settings.namespace.as_str();
    for secret in &input.identity.secrets {
        let data: serde_json::Map<String, serde_json::Value> = secret
            .data
            .iter()
            .map(|(k, v)| {
                let encoded =
                    serde_json::to_value(ByteString(v.clone().into_bytes())).unwrap_or_default();
                (k.clone(), encoded)
            })
            .collect();
        push::<Secret>(
            plan,
            input,
            json!({
                "metadata": { "name": secret.name, "namespace": ns, "labels": labels(input, &secret.component) },
                "type": "kubernetes.io/tls",
                "data": data,
            }),
        )?;
    }
    push::<ConfigMap>(
        plan,
        input,
        json!({
            "metadata": { "name": TRUST_ROOTS_CONFIGMAP, "namespace": ns, "labels": labels(input, IDENTITY_COMPONENT) },
            "data": { TRUST_ROOTS_KEY: input.identity.trust_bundle },
        }),
    )
}
