//! Renders a Mesh spec into the ordered list of objects the control plane needs.
//!
//! Rendering is pure: it reads the spec, the operator's image settings and the identity
//! material the reconciler already holds, and never generates or rotates anything. Every
//! object carries only Trellis's own labels (never the Mesh's labels or annotations) and an
//! owner reference to the Mesh.

pub mod controller;
pub mod extensions;
pub mod secrets;
pub mod webhook_configs;

use k8s_openapi::{
    Resource as K8sResource, api::rbac::v1::ClusterRoleBinding,
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    api::{ApiResource, DynamicObject},
    core::Resource,
};
use serde_json::{Value, json};
use trellis_api::well_known::MANAGED_BY_LABEL;
use trellis_crds::settings::MeshSettings;

use crate::reconciler::error::Error;

/// Label with the name of the Mesh an object belongs to; pruning and watches select on it.
pub const MESH_LABEL: &str = "trellis.dev/mesh";
/// Label naming the component an object belongs to.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Label naming the product every rendered object is part of.
pub const PART_OF_LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "trellis");
/// Label with the Trellis version an object was rendered for.
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";
/// Annotation that makes the operator leave a rendered object alone (`"true"`).
pub const IGNORE_ANNOTATION: &str = "trellis.dev/ignore";
/// ConfigMap with the proxy defaults the injector reads.
pub const PROXY_DEFAULTS_CONFIGMAP: &str = "trellis-proxy-defaults";

/// Images the operator renders; the control plane runs `<repository>/controller:<version>`.
#[derive(Debug, Clone)]
pub struct Images {
    /// Repository of the Trellis images.
    pub repository: String,
    /// Image of the viz extension's bundled Prometheus.
    pub prometheus: String,
    /// Image of the tracing extension's OpenTelemetry collector.
    pub otel_collector: String,
}

/// Public identity material the rendered objects refer to (no private keys).
#[derive(Debug, Clone, Default)]
pub struct IdentityRefs {
    /// Name of the issuer Secret the controller mounts.
    pub issuer_secret: String,
    /// Serial (hex) of the issuer certificate; a change rolls the controller.
    pub issuer_serial: String,
    /// PEM trust bundle proxies verify peers against.
    pub trust_bundle: String,
    /// PEM CA bundle of the webhook serving certificate.
    pub webhook_ca_bundle: String,
    /// Serial (hex) of the webhook serving certificate; a change rolls the controller.
    pub webhook_serial: String,
    /// Secrets the operator generated and keeps (trust anchor, issuer, webhook TLS).
    pub secrets: Vec<GeneratedSecret>,
}

/// A `kubernetes.io/tls` Secret with material the operator generated.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GeneratedSecret {
    /// Secret name.
    pub name: String,
    /// Component label value, like `identity`.
    pub component: String,
    /// Keys and PEM values (`tls.crt`, `tls.key`, `ca.crt`).
    pub data: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for GeneratedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("GeneratedSecret")
            .field("name", &self.name)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Everything a render needs.
#[derive(Debug, Clone)]
pub struct RenderInput<'a> {
    /// Name of the Mesh.
    pub mesh_name: &'a str,
    /// UID of the Mesh (for owner references).
    pub mesh_uid: &'a str,
    /// The Mesh spec, checked.
    pub settings: &'a MeshSettings,
    /// Image settings.
    pub images: &'a Images,
    /// Identity material references.
    pub identity: &'a IdentityRefs,
    /// Whether the operator owns the namespace (created it) and so renders it.
    pub own_namespace: bool,
}

/// One rendered object and how to reach its API.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Group, version, kind and plural of the object.
    pub resource: ApiResource,
    /// Whether the kind is namespaced.
    pub namespaced: bool,
    /// The object to apply.
    pub object: DynamicObject,
}

impl Rendered {
    /// `Kind namespace/name`, for messages.
    pub fn describe(&self) -> String {
        match &self.object.metadata.namespace {
            Some(ns) => format!(
                "{} {ns}/{}",
                self.resource.kind,
                self.object.metadata.name.as_deref().unwrap_or_default()
            ),
            None => format!(
                "{} {}",
                self.resource.kind,
                self.object.metadata.name.as_deref().unwrap_or_default()
            ),
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }
}

/// A workload whose readiness the Mesh status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Component name in status, like `controller`.
    pub name: String,
    /// Deployment that runs it, in the Mesh namespace.
    pub deployment: String,
    /// Replicas asked for.
    pub replicas: i32,
    /// Image it runs.
    pub image: String,
}

/// The result of a render.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Objects in apply order: namespace, accounts, RBAC, config, services, workloads,
    /// webhook configurations last.
    pub objects: Vec<Rendered>,
    /// Workloads whose readiness decides Ready.
    pub components: Vec<Component>,
    /// Enabled extension parts that this release cannot run, with the reason.
    pub unavailable: Vec<String>,
}

/// Renders the whole plan for a Mesh.
pub fn render(input: &RenderInput<'_>) -> Result<Plan, Error> {
    let mut plan = Plan::default();
    controller::render(input, &mut plan)?;
    secrets::render(input, &mut plan)?;
    extensions::render(input, &mut plan)?;
    webhook_configs::render(input, &mut plan)?;
    Ok(plan)
}

/// Name of a cluster-scoped object of `mesh`, unique per Mesh: `trellis-<mesh>-<suffix>`.
pub fn cluster_name(mesh: &str, suffix: &str) -> String {
    format!("trellis-{mesh}-{suffix}")
}

/// The labels every object of `component` carries.
pub fn labels(input: &RenderInput<'_>, component: &str) -> Value {
    json!({
        MANAGED_BY_LABEL.0: MANAGED_BY_LABEL.1,
        PART_OF_LABEL.0: PART_OF_LABEL.1,
        COMPONENT_LABEL: component,
        MESH_LABEL: input.mesh_name,
    })
}

/// The selector labels of a component's pods (stable across versions).
pub fn selector(input: &RenderInput<'_>, component: &str) -> Value {
    json!({
        PART_OF_LABEL.0: PART_OF_LABEL.1,
        COMPONENT_LABEL: component,
        MESH_LABEL: input.mesh_name,
    })
}

fn owner_reference(input: &RenderInput<'_>) -> OwnerReference {
    OwnerReference {
        api_version: trellis_crds::v1alpha1::mesh::Mesh::api_version(&()).into_owned(),
        kind: trellis_crds::v1alpha1::mesh::Mesh::kind(&()).into_owned(),
        name: input.mesh_name.to_string(),
        uid: input.mesh_uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Adds the ClusterRoleBinding `name` that grants the ClusterRole of the same name to the
/// ServiceAccount `account` in `ns`.
pub fn push_cluster_role_binding(
    plan: &mut Plan,
    input: &RenderInput<'_>,
    (name, labels): (&str, &Value),
    (account, ns): (&str, &str),
) -> Result<(), Error> {
    push::<ClusterRoleBinding>(
        plan,
        input,
        json!({
            "metadata": { "name": name, "labels": labels },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name },
            "subjects": [{ "kind": "ServiceAccount", "name": account, "namespace": ns }],
        }),
    )
}

/// Adds `value` (a full object of kind `K`, without apiVersion, kind or owner references)
/// to the plan, checking that it decodes as `K`.
pub fn push<K>(plan: &mut Plan, input: &RenderInput<'_>, mut value: Value) -> Result<(), Error>
where
    K: K8sResource + Resource<DynamicType = ()> + serde::de::DeserializeOwned,
{
    let resource = ApiResource::erase::<K>(&());
    let namespaced = value
        .pointer("/metadata/namespace")
        .is_some_and(Value::is_string);
    if let Some(object) = value.as_object_mut() {
        object.insert("apiVersion".into(), json!(resource.api_version));
        object.insert("kind".into(), json!(resource.kind));
    }
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("ownerReferences".into(), json!([owner_reference(input)]));
    }
    let what = format!(
        "{} {}",
        resource.kind,
        value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    );
    // Decoding as the typed object catches a misspelt or mistyped field here, in tests.
    serde_json::from_value::<K>(value.clone()).map_err(|source| Error::Encode {
        what: what.clone(),
        source,
    })?;
    let object: DynamicObject =
        serde_json::from_value(value).map_err(|source| Error::Encode { what, source })?;
    plan.objects.push(Rendered {
        resource,
        namespaced,
        object,
    });
    Ok(())
}

#[cfg(test)]
mod tests;
