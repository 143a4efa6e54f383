//! Extensions: what each enabled extension runs, and what this release cannot run yet.
//!
//! Every rendered workload runs a program that exists. The tracing extension's collector and
//! the viz extension's bundled Prometheus are upstream images; viz's metrics API, tap and
//! dashboard and the multicluster gateway and service mirror are Trellis programs that do not
//! exist yet, so they are reported as unavailable and never rendered as placeholders.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Service, ServiceAccount},
    rbac::v1::ClusterRole,
};
use serde_json::{Value, json};
use trellis_api::well_known::PROXY_ADMIN_PORT;
use trellis_crds::v1alpha1::mesh::PrometheusMode;

use super::{
    Component, Plan, RenderInput, cluster_name, labels, push, push_cluster_role_binding, selector,
};
use crate::reconciler::error::Error;

/// Name of the tracing collector's Deployment, Service and ConfigMap.
pub const TRACING_COLLECTOR: &str = "trellis-tracing-collector";
/// Component of the tracing collector.
pub const TRACING_COMPONENT: &str = "tracing-collector";
/// OTLP gRPC port of the collector.
pub const OTLP_GRPC_PORT: u16 = 4317;
/// Name of the viz extension's bundled Prometheus objects.
pub const VIZ_PROMETHEUS: &str = "trellis-viz-prometheus";
/// Component of the bundled Prometheus.
pub const VIZ_PROMETHEUS_COMPONENT: &str = "viz-prometheus";
/// Prometheus HTTP port.
pub const PROMETHEUS_PORT: u16 = 9090;

/// Renders the enabled extensions into `plan`.
pub fn render(input: &RenderInput<'_>, plan: &mut Plan) -> Result<(), Error> {
    let ext = &input.settings.extensions;
    if ext.tracing.enabled && ext.tracing.collector_endpoint.is_none() {
        tracing_collector(input, plan)?;
    }
    if ext.viz.enabled {
        if ext.viz.prometheus.mode() == PrometheusMode::Bundled {
            viz_prometheus(input, plan)?;
        }
        let mut missing = vec!["metrics API", "tap"];
        if ext.viz.dashboard {
            missing.push("dashboard");
        }
        plan.unavailable.push(format!(
            "extensions.viz: the viz {} are not available in Trellis {} yet{}; set extensions.viz.enabled to false to clear this",
            missing.join(", "),
            env!("CARGO_PKG_VERSION"),
            if ext.viz.prometheus.mode() == PrometheusMode::Bundled {
                " (only the bundled Prometheus is installed)"
            } else {
                ""
            }
        ));
    }
    if ext.multicluster.enabled {
        plan.unavailable.push(format!(
            "extensions.multicluster: the gateway and service mirror are not available in Trellis {} yet, so nothing is installed; set extensions.multicluster.enabled to false to clear this",
            env!("CARGO_PKG_VERSION")
        ));
    }
    Ok(())
}

#[expect(
    clippy::too_many_arguments,
    reason = "the few settings that differ between upstream workloads"
)]
fn upstream_deployment(
    input: &RenderInput<'_>,
    name: &str,
    component: &str,
    image: &str,
    args: Value,
    port: u16,
    config_mount: &str,
    service_account: Option<&str>,
) -> Value {
    let mut pod = json!({
        "securityContext": { "runAsNonRoot": true, "runAsUser": 65534, "seccompProfile": { "type": "RuntimeDefault" } },
        "containers": [{
            "name": component,
            "image": image,
            "args": args,
            "ports": [{ "name": "main", "containerPort": port }],
            "resources": { "requests": { "cpu": "50m", "memory": "128Mi" }, "limits": { "memory": "512Mi" } },
            "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } },
            "volumeMounts": [{ "name": "config", "mountPath": config_mount, "readOnly": true }],
        }],
        "volumes": [{ "name": "config", "configMap": { "name": name } }],
    });
    if let (Some(sa), Some(map)) = (service_account, pod.as_object_mut()) {
        map.insert("serviceAccountName".into(), json!(sa));
    }
    json!({
        "metadata": { "name": name, "namespace": input.settings.namespace, "labels": labels(input, component) },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": selector(input, component) },
            "template": {
                "metadata": { "labels": labels(input, component) },
                "spec": pod,
            },
        },
    })
}

fn service(input: &RenderInput<'_>, name: &str, component: &str, port: u16) -> Value {
    json!({
        "metadata": { "name": name, "namespace": input.settings.namespace, "labels": labels(input, component) },
        "spec": {
            "selector": selector(input, component),
            "ports": [{ "name": "main", "port": port, "targetPort": port, "protocol": "TCP" }],
        },
    })
}

fn tracing_collector(input: &RenderInput<'_>, plan: &mut Plan) -> Result<(), Error> {
    let ns = input.settings.namespace.as_str();
    let config = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:{OTLP_GRPC_PORT}\nexporters:\n  debug: {{}}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
    );
    push::<ConfigMap>(
        plan,
        input,
        json!({
            "metadata": { "name": TRACING_COLLECTOR, "namespace": ns, "labels": labels(input, TRACING_COMPONENT) },
            "data": { "config.yaml": config },
        }),
    )?;
    push::<Service>(
        plan,
        input,
        service(input, TRACING_COLLECTOR, TRACING_COMPONENT, OTLP_GRPC_PORT),
    )?;
    let image = input.images.otel_collector.clone();
    push::<Deployment>(
        plan,
        input,
        upstream_deployment(
            input,
            TRACING_COLLECTOR,
            TRACING_COMPONENT,
            &image,
            json!(["--config=/etc/otelcol/config.yaml"]),
            OTLP_GRPC_PORT,
            "/etc/otelcol",
            None,
        ),
    )?;
    plan.components.push(Component {
        name: TRACING_COMPONENT.to_string(),
        deployment: TRACING_COLLECTOR.to_string(),
        replicas: 1,
        image,
    });
    Ok(())
}

fn viz_prometheus(input: &RenderInput<'_>, plan: &mut Plan) -> Result<(), Error> {
    let ns = input.settings.namespace.as_str();
    let labels_v = labels(input, VIZ_PROMETHEUS_COMPONENT);
    let cluster_role = cluster_name(input.mesh_name, VIZ_PROMETHEUS_COMPONENT);
    push::<ServiceAccount>(
        plan,
        input,
        json!({ "metadata": { "name": VIZ_PROMETHEUS, "namespace": ns, "labels": labels_v } }),
    )?;
    push::<ClusterRole>(
        plan,
        input,
        json!({
            "metadata": { "name": cluster_role, "labels": labels_v },
            "rules": [{ "apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"] }],
        }),
    )?;
    push_cluster_role_binding(
        plan,
        input,
        (&cluster_role, &labels_v),
        (VIZ_PROMETHEUS, ns),
    )?;
    let config = format!(
        "global:\n  scrape_interval: 10s\nscrape_configs:\n- job_name: trellis-proxy\n  kubernetes_sd_configs:\n  - role: pod\n  relabel_configs:\n  - source_labels: [__meta_kubernetes_pod_container_name, __meta_kubernetes_pod_container_port_number]\n    action: keep\n    regex: trellis-proxy;{PROXY_ADMIN_PORT}\n"
    );
    push::<ConfigMap>(
        plan,
        input,
        json!({
            "metadata": { "name": VIZ_PROMETHEUS, "namespace": ns, "labels": labels_v },
            "data": { "prometheus.yml": config },
        }),
    )?;
    push::<Service>(
        plan,
        input,
        service(
            input,
            VIZ_PROMETHEUS,
            VIZ_PROMETHEUS_COMPONENT,
            PROMETHEUS_PORT,
        ),
    )?;
    let image = input.images.prometheus.clone();
    push::<Deployment>(
        plan,
        input,
        upstream_deployment(
            input,
            VIZ_PROMETHEUS,
            VIZ_PROMETHEUS_COMPONENT,
            &image,
            json!([
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.retention.time=6h"
            ]),
            PROMETHEUS_PORT,
            "/etc/prometheus",
            Some(VIZ_PROMETHEUS),
        ),
    )?;
    plan.components.push(Component {
        name: VIZ_PROMETHEUS_COMPONENT.to_string(),
        deployment: VIZ_PROMETHEUS.to_string(),
        replicas: 1,
        image,
    });
    Ok(())
}
