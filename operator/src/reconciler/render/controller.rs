//! The control plane: namespace, ServiceAccount, RBAC, proxy defaults, Services and the
//! `controller` Deployment (with a PodDisruptionBudget and preferred anti-affinity whenever it
//! runs more than one replica: two by default, three with high availability).

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Namespace, Service, ServiceAccount},
    policy::v1::PodDisruptionBudget,
    rbac::v1::{ClusterRole, Role, RoleBinding},
};
use serde_json::{Value, json};
use trellis_api::well_known::{
    CONTROL_PLANE_ADMIN_PORT, CONTROLLER_NAME, DESTINATION_PORT, DESTINATION_SERVICE,
    IDENTITY_PORT, IDENTITY_SERVICE, POLICY_PORT, POLICY_SERVICE, TRUST_ROOTS_CONFIGMAP,
    WEBHOOK_PORT, WEBHOOK_SERVICE, WEBHOOK_TLS_SECRET,
};

use super::{
    Component, PROXY_DEFAULTS_CONFIGMAP, Plan, RenderInput, cluster_name, labels, push,
    push_cluster_role_binding, selector,
};
use crate::reconciler::error::Error;

/// Component name of the `controller` role in labels and status.
pub const CONTROLLER_COMPONENT: &str = "controller";
/// Pod-template annotation with the issuer serial; a new issuer rolls the controller.
pub const ISSUER_SERIAL_ANNOTATION: &str = "trellis.dev/issuer-serial";
/// Pod-template annotation with the webhook certificate serial.
pub const WEBHOOK_SERIAL_ANNOTATION: &str = "trellis.dev/webhook-serial";

/// How long a stopping controller keeps serving while not ready, so that kube-proxy and the
/// apiserver stop sending it proxies' streams and webhook calls before it stops listening
/// (the fail-closed validator would refuse a call that reached a closed port).
pub const CONTROLLER_SHUTDOWN_DELAY: std::time::Duration = std::time::Duration::from_secs(3);

/// Replicas of the controller Deployment (the settings apply the defaults).
pub fn replicas(input: &RenderInput<'_>) -> i32 {
    i32::from(input.settings.control_plane.replicas)
}

/// Renders the control plane into `plan`.
///
/// Longer than most functions: it is the object literals themselves, in apply order, and
/// splitting them would scatter one install across many helpers.
pub fn render(input: &RenderInput<'_>, plan: &mut Plan) -> Result<(), Error> {
    let ns = input.settings.namespace.as_str();
    let labels = labels(input, CONTROLLER_COMPONENT);
    if input.own_namespace {
        push::<Namespace>(
            plan,
            input,
            json!({ "metadata": { "name": ns, "labels": labels } }),
        )?;
    }
    push::<ServiceAccount>(
        plan,
        input,
        json!({ "metadata": { "name": CONTROLLER_NAME, "namespace": ns, "labels": labels } }),
    )?;
    let cluster_role = cluster_name(input.mesh_name, CONTROLLER_COMPONENT);
    push::<ClusterRole>(
        plan,
        input,
        json!({
            "metadata": { "name": cluster_role, "labels": labels },
            "rules": [
                { "apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"] },
                { "apiGroups": [""], "resources": ["services", "pods", "namespaces", "nodes"], "verbs": ["get", "list", "watch"] },
                { "apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"] },
                { "apiGroups": ["trellis.dev"], "resources": ["serviceprofiles", "meshes"], "verbs": ["get", "list", "watch"] },
                { "apiGroups": ["policy.trellis.dev"], "resources": ["servers", "authorizationpolicies", "meshtlsauthentications", "networkauthentications"], "verbs": ["get", "list", "watch"] },
                { "apiGroups": ["policy.trellis.dev"], "resources": ["servers/status", "authorizationpolicies/status", "meshtlsauthentications/status", "networkauthentications/status"], "verbs": ["patch"] },
                { "apiGroups": ["trellis.dev"], "resources": ["serviceprofiles/status"], "verbs": ["patch"] },
                { "apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes", "grpcroutes"], "verbs": ["get", "list", "watch"] },
                { "apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes/status", "grpcroutes/status"], "verbs": ["patch", "update"] },
                { "apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"] },
            ],
        }),
    )?;
    push_cluster_role_binding(plan, input, (&cluster_role, &labels), (CONTROLLER_NAME, ns))?;
    push::<Role>(
        plan,
        input,
        json!({
            "metadata": { "name": CONTROLLER_NAME, "namespace": ns, "labels": labels },
            "rules": [
                { "apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get", "list", "watch"] },
                { "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update", "patch"] },
            ],
        }),
    )?;
    push::<RoleBinding>(
        plan,
        input,
        json!({
            "metadata": { "name": CONTROLLER_NAME, "namespace": ns, "labels": labels },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CONTROLLER_NAME },
            "subjects": [{ "kind": "ServiceAccount", "name": CONTROLLER_NAME, "namespace": ns }],
        }),
    )?;
    push::<ConfigMap>(plan, input, proxy_defaults(input)?)?;
    for (name, port, target, port_name) in [
        (IDENTITY_SERVICE, IDENTITY_PORT, IDENTITY_PORT, "grpc"),
        (
            DESTINATION_SERVICE,
            DESTINATION_PORT,
            DESTINATION_PORT,
            "grpc",
        ),
        (POLICY_SERVICE, POLICY_PORT, POLICY_PORT, "grpc"),
        (WEBHOOK_SERVICE, 443, WEBHOOK_PORT, "webhook"),
    ] {
        push::<Service>(
            plan,
            input,
            json!({
                "metadata": { "name": name, "namespace": ns, "labels": labels },
                "spec": {
                    "type": "ClusterIP",
                    "selector": selector(input, CONTROLLER_COMPONENT),
                    "ports": [{ "name": port_name, "port": port, "targetPort": target, "protocol": "TCP" }],
                },
            }),
        )?;
    }
    let replicas = replicas(input);
    let image = input
        .settings
        .controller_image(&input.images.repository)
        .to_string();
    push::<Deployment>(plan, input, deployment(input, replicas, &image)?)?;
    if replicas > 1 {
        push::<PodDisruptionBudget>(
            plan,
            input,
            json!({
                "metadata": { "name": CONTROLLER_NAME, "namespace": ns, "labels": labels },
                "spec": {
                    "maxUnavailable": 1,
                    "selector": { "matchLabels": selector(input, CONTROLLER_COMPONENT) },
                },
            }),
        )?;
    }
    plan.components.push(Component {
        name: CONTROLLER_COMPONENT.to_string(),
        deployment: CONTROLLER_NAME.to_string(),
        replicas,
        image,
    });
    Ok(())
}

/// A duration in Go syntax with zero units left out, like `24h`, `1m30s` or `500ms`.
pub fn go_duration(d: std::time::Duration) -> String {
    let (secs, millis) = (d.as_secs(), d.subsec_millis());
    let parts = [
        (secs / 3600, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (u64::from(millis), "ms"),
    ];
    let text: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".to_string()
    } else {
        text
    }
}

fn proxy_defaults(input: &RenderInput<'_>) -> Result<Value, Error> {
    let proxy = &input.settings.proxy;
    let encode = |what: &str, value: Result<Value, serde_json::Error>| {
        value.map_err(|source| Error::Encode {
            what: format!("proxy defaults {what}"),
            source,
        })
    };
    let tracing = &input.settings.extensions.tracing;
    let collector = tracing.enabled.then(|| {
        tracing.collector_endpoint.clone().unwrap_or_else(|| {
            format!(
                "http://{}.{}.svc:{}",
                super::extensions::TRACING_COLLECTOR,
                input.settings.namespace,
                super::extensions::OTLP_GRPC_PORT
            )
        })
    });
    let defaults = json!({
        "version": input.settings.version,
        "image": input.settings.proxy_image(&input.images.repository).to_string(),
        "imagePullPolicy": encode("imagePullPolicy", serde_json::to_value(proxy.image_pull_policy))?,
        "resources": encode("resources", serde_json::to_value(&proxy.resources))?,
        "logLevel": proxy.log_level.as_str(),
        "defaultInboundPolicy": encode("defaultInboundPolicy", serde_json::to_value(proxy.default_inbound_policy))?,
        "opaquePorts": proxy.opaque_ports.entries(),
        "skipInboundPorts": proxy.skip_inbound_ports.entries(),
        "skipOutboundPorts": proxy.skip_outbound_ports.entries(),
        "cores": proxy.cores,
        "trustDomain": input.settings.identity.trust_domain,
        "workloadCertificateLifetime": go_duration(input.settings.identity.workload_certificate_lifetime),
        "clockSkewAllowance": go_duration(input.settings.identity.clock_skew_allowance),
        "identityAddress": format!("{IDENTITY_SERVICE}.{}.svc:{IDENTITY_PORT}", input.settings.namespace),
        "destinationAddress": format!("{DESTINATION_SERVICE}.{}.svc:{DESTINATION_PORT}", input.settings.namespace),
        "policyAddress": format!("{POLICY_SERVICE}.{}.svc:{POLICY_PORT}", input.settings.namespace),
        "tracing": {
            "enabled": tracing.enabled,
            "collectorEndpoint": collector,
            "sampling": tracing.sampling,
        },
    });
    let text = serde_json::to_string_pretty(&defaults).map_err(|source| Error::Encode {
        what: "proxy defaults".to_string(),
        source,
    })?;
    Ok(json!({
        "metadata": {
            "name": PROXY_DEFAULTS_CONFIGMAP,
            "namespace": input.settings.namespace,
            "labels": labels(input, CONTROLLER_COMPONENT),
        },
        "data": { "proxy-defaults.json": text },
    }))
}

/// The controller Deployment. Long because it is one object literal (containers, probes,
/// volumes and anti-affinity) that reads best whole.
fn deployment(input: &RenderInput<'_>, replicas: i32, image: &str) -> Result<Value, Error> {
    let spec = input.settings;
    let ns = spec.namespace.as_str();
    let cp = &spec.control_plane;
    let pod_labels = {
        let mut l = labels(input, CONTROLLER_COMPONENT);
        if let Some(map) = l.as_object_mut() {
            map.insert(super::VERSION_LABEL.into(), json!(spec.version));
        }
        l
    };
    let resources = match &cp.resources {
        Some(r) => serde_json::to_value(r).map_err(|source| Error::Encode {
            what: "controlPlane.resources".to_string(),
            source,
        })?,
        None => {
            json!({ "requests": { "cpu": "100m", "memory": "64Mi" }, "limits": { "memory": "256Mi" } })
        }
    };
    let affinity = if replicas > 1 {
        json!({
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": { "matchLabels": selector(input, CONTROLLER_COMPONENT) },
                    },
                }],
            },
        })
    } else {
        Value::Null
    };
    let mut pod_spec = json!({
        "serviceAccountName": CONTROLLER_NAME,
        "securityContext": { "runAsNonRoot": true, "seccompProfile": { "type": "RuntimeDefault" } },
        "containers": [{
            "name": CONTROLLER_COMPONENT,
            "image": image,
            "args": ["controller"],
            "env": [
                { "name": "TRELLIS_OPERATOR_LOG", "value": cp.log_level.as_str() },
                { "name": "TRELLIS_OPERATOR_LOG_FORMAT", "value": "json" },
                { "name": "TRELLIS_OPERATOR_REPLICA_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                { "name": "TRELLIS_OPERATOR_MESH_NAME", "value": input.mesh_name },
                { "name": "TRELLIS_OPERATOR_CONTROL_PLANE_NAMESPACE", "value": ns },
                { "name": "TRELLIS_OPERATOR_IMAGE_REPOSITORY", "value": input.images.repository },
                { "name": "TRELLIS_OPERATOR_SHUTDOWN_DELAY", "value": go_duration(CONTROLLER_SHUTDOWN_DELAY) },
            ],
            "ports": [
                { "name": "identity", "containerPort": IDENTITY_PORT },
                { "name": "destination", "containerPort": DESTINATION_PORT },
                { "name": "policy", "containerPort": POLICY_PORT },
                { "name": "webhook", "containerPort": WEBHOOK_PORT },
                { "name": "admin", "containerPort": CONTROL_PLANE_ADMIN_PORT },
            ],
            // Ready once the index is listed and the webhooks serve (see `Controller::run`):
            // probed often, so a rollout waits no longer than it must.
            "readinessProbe": { "httpGet": { "path": "/ready", "port": CONTROL_PLANE_ADMIN_PORT }, "periodSeconds": 2, "failureThreshold": 3 },
            "livenessProbe": { "httpGet": { "path": "/live", "port": CONTROL_PLANE_ADMIN_PORT }, "periodSeconds": 10, "failureThreshold": 3 },
            "resources": resources,
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "runAsUser": 2103,
                "capabilities": { "drop": ["ALL"] },
            },
            "volumeMounts": [
                { "name": "issuer", "mountPath": "/var/run/trellis/issuer", "readOnly": true },
                { "name": "trust-roots", "mountPath": "/var/run/trellis/trust-roots", "readOnly": true },
                { "name": "webhook-tls", "mountPath": "/var/run/trellis/webhook-tls", "readOnly": true },
            ],
        }],
        "volumes": [
            { "name": "issuer", "secret": { "secretName": input.identity.issuer_secret } },
            { "name": "trust-roots", "configMap": { "name": TRUST_ROOTS_CONFIGMAP } },
            { "name": "webhook-tls", "secret": { "secretName": WEBHOOK_TLS_SECRET } },
        ],
    });
    if !affinity.is_null()
        && let Some(map) = pod_spec.as_object_mut()
    {
        map.insert("affinity".into(), affinity);
    }
    Ok(json!({
        "metadata": { "name": CONTROLLER_NAME, "namespace": ns, "labels": labels(input, CONTROLLER_COMPONENT) },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": selector(input, CONTROLLER_COMPONENT) },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": if replicas > 1 { 1 } else { 0 }, "maxSurge": 1 } },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        ISSUER_SERIAL_ANNOTATION: input.identity.issuer_serial,
                        WEBHOOK_SERIAL_ANNOTATION: input.identity.webhook_serial,
                    },
                },
                "spec": pod_spec,
            },
        },
    }))
}
