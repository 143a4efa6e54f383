use trellis_api::well_known::{CONTROLLER_NAME, WEBHOOK_SERVICE};
use trellis_crds::v1alpha1::mesh::{IssuerSource, MeshSpec, TrustAnchorSource};

use super::*;
use crate::test_util::{RenderFixture, settings};

/// The plan of the default spec changed by `edit`.
fn plan_with(edit: impl FnOnce(&mut MeshSpec)) -> Plan {
    let mut spec = MeshSpec::default();
    edit(&mut spec);
    plan_for(&spec)
}

fn plan_for(spec: &MeshSpec) -> Plan {
    render(&RenderFixture::default().input(&settings(spec))).unwrap()
}

fn find<'a>(plan: &'a Plan, kind: &str, name: &str) -> &'a Rendered {
    plan.objects
        .iter()
        .find(|o| o.resource.kind == kind && o.name() == name)
        .unwrap_or_else(|| panic!("{kind} {name} not rendered"))
}

#[test]
fn default_spec_renders_the_control_plane() {
    let plan = plan_for(&MeshSpec::default());
    let deployment = find(&plan, "Deployment", CONTROLLER_NAME);
    let data = &deployment.object.data;
    assert_eq!(data["spec"]["replicas"], 2);
    assert_eq!(
        data["spec"]["template"]["spec"]["containers"][0]["image"],
        format!(
            "example.test/trellis/controller:{}",
            MeshSpec::default().version
        )
    );
    assert_eq!(
        data["spec"]["template"]["spec"]["containers"][0]["args"][0],
        "controller"
    );
    let env = data["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    assert!(
        env.iter()
            .any(|e| e["name"] == "TRELLIS_OPERATOR_IMAGE_REPOSITORY"
                && e["value"] == "example.test/trellis"),
        "the controller names the proxy image like the operator: {env:?}"
    );
    find(&plan, "Service", WEBHOOK_SERVICE);
    find(&plan, "Namespace", "trellis-system");
    find(&plan, "ClusterRole", "trellis-m1-controller");
    let injector = find(
        &plan,
        "MutatingWebhookConfiguration",
        "trellis-m1-proxy-injector",
    );
    assert_eq!(
        injector.object.data["webhooks"][0]["failurePolicy"],
        "Ignore"
    );
    assert_eq!(
        injector.object.data["webhooks"][0]["namespaceSelector"],
        serde_json::json!({
            "matchExpressions": [
                { "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "trellis-system"] },
            ],
        }),
        "the injector is called for every namespace but kube-system and the control plane's"
    );
    assert_eq!(
        plan.objects.first().map(|o| o.resource.kind.as_str()),
        Some("Namespace")
    );
    assert_eq!(plan.components.len(), 1);
    assert!(plan.unavailable.is_empty());
}

#[test]
fn every_object_is_owned_and_labelled_only_with_our_labels() {
    let plan = plan_for(&MeshSpec::default());
    for object in &plan.objects {
        let meta = &object.object.metadata;
        let owners = meta.owner_references.as_ref().expect("owner references");
        assert_eq!(owners[0].uid, "uid-1", "{}", object.describe());
        let labels = meta.labels.as_ref().expect("labels");
        assert!(
            labels
                .keys()
                .all(|k| k.starts_with("app.kubernetes.io/") || k == MESH_LABEL),
            "{}: {labels:?}",
            object.describe()
        );
        assert!(meta.annotations.is_none(), "{}", object.describe());
    }
}

#[test]
fn high_availability_adds_replicas_pdb_and_anti_affinity() {
    let mut spec = MeshSpec::default();
    spec.control_plane.high_availability = true;
    let plan = plan_for(&spec);
    let deployment = find(&plan, "Deployment", CONTROLLER_NAME);
    assert_eq!(deployment.object.data["spec"]["replicas"], 3);
    assert!(
        deployment.object.data["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
            .is_object()
    );
    find(&plan, "PodDisruptionBudget", CONTROLLER_NAME);
}

#[test]
fn default_runs_two_controllers_with_a_pdb_and_one_runs_without() {
    let plan = plan_for(&MeshSpec::default());
    let deployment = find(&plan, "Deployment", CONTROLLER_NAME);
    assert_eq!(deployment.object.data["spec"]["replicas"], 2);
    let pdb = find(&plan, "PodDisruptionBudget", CONTROLLER_NAME);
    assert_eq!(pdb.object.data["spec"]["maxUnavailable"], 1);

    let single = plan_with(|spec| spec.control_plane.replicas = Some(1));
    assert_eq!(
        find(&single, "Deployment", CONTROLLER_NAME).object.data["spec"]["replicas"],
        1
    );
    assert!(
        !single
            .objects
            .iter()
            .any(|o| o.resource.kind == "PodDisruptionBudget"),
        "a PDB over one replica would block every node drain"
    );
}

#[test]
fn version_sets_the_image_tag() {
    let plan = plan_with(|spec| spec.version = "9.8.7".to_string());
    assert_eq!(
        plan.components[0].image,
        "example.test/trellis/controller:9.8.7"
    );
}

#[test]
fn extensions_render_upstream_programs_and_report_the_rest() {
    let mut spec = MeshSpec::default();
    spec.extensions.tracing.enabled = true;
    spec.extensions.viz.enabled = true;
    spec.extensions.multicluster.enabled = true;
    // Multicluster needs trust anchors every linked cluster shares, and so a supplied issuer
    // (the spec check says so).
    spec.identity.trust_anchors.source = TrustAnchorSource::ConfigMap;
    spec.identity.trust_anchors.name = Some("shared-anchors".to_string());
    spec.identity.issuer.source = IssuerSource::Secret;
    spec.identity.issuer.secret_name = Some("issuer".to_string());
    let plan = plan_for(&spec);
    find(&plan, "Deployment", extensions::TRACING_COLLECTOR);
    find(&plan, "Deployment", extensions::VIZ_PROMETHEUS);
    find(&plan, "ClusterRole", "trellis-m1-viz-prometheus");
    assert_eq!(plan.components.len(), 3);
    assert_eq!(plan.unavailable.len(), 2, "{:?}", plan.unavailable);
    assert!(plan.unavailable[1].contains("multicluster"));
    assert!(
        !plan
            .objects
            .iter()
            .any(|o| o.name().contains("multicluster"))
    );
}

#[test]
fn a_foreign_namespace_is_not_rendered() {
    let fixture = RenderFixture::default();
    let settings = settings(&MeshSpec::default());
    let plan = render(&RenderInput {
        own_namespace: false,
        ..fixture.input(&settings)
    })
    .unwrap();
    assert!(!plan.objects.iter().any(|o| o.resource.kind == "Namespace"));
}

#[test]
fn webhook_selectors_follow_the_control_plane_namespace() {
    let plan = plan_with(|spec| spec.namespace = "mesh-cp".to_string());
    let injector = &find(
        &plan,
        "MutatingWebhookConfiguration",
        "trellis-m1-proxy-injector",
    )
    .object
    .data["webhooks"][0];
    assert_eq!(
        injector["namespaceSelector"],
        webhook_configs::injector_namespace_selector("mesh-cp")
    );
    let expressions = injector["namespaceSelector"]["matchExpressions"]
        .as_array()
        .unwrap();
    assert!(
        expressions.iter().all(|e| e["operator"] == "NotIn"),
        "the injector is never limited to opted-in namespaces (a pod may opt in alone): {expressions:?}"
    );
    assert!(
        expressions.contains(&serde_json::json!({
            "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "mesh-cp"],
        })),
        "{expressions:?}"
    );
    assert!(
        injector["namespaceSelector"].get("matchLabels").is_none(),
        "{injector}"
    );
    assert_eq!(injector["failurePolicy"], "Ignore");
    assert_eq!(
        injector["timeoutSeconds"],
        webhook_configs::WEBHOOK_TIMEOUT_SECONDS
    );
    assert_eq!(injector["clientConfig"]["service"]["namespace"], "mesh-cp");

    let validator = &find(
        &plan,
        "ValidatingWebhookConfiguration",
        "trellis-m1-validator",
    )
    .object
    .data["webhooks"][0];
    assert_eq!(
        validator["namespaceSelector"],
        serde_json::json!({
            "matchExpressions": [
                { "key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"] },
            ],
        }),
        "policy objects are validated in every namespace but kube-system, whatever its inject label"
    );
    assert_eq!(
        validator["failurePolicy"], "Fail",
        "the validator fails closed by default"
    );
    let ignoring = plan_with(|spec| {
        spec.control_plane.validator_failure_policy =
            trellis_crds::v1alpha1::mesh::FailurePolicy::Ignore;
    });
    assert_eq!(
        find(
            &ignoring,
            "ValidatingWebhookConfiguration",
            "trellis-m1-validator"
        )
        .object
        .data["webhooks"][0]["failurePolicy"],
        "Ignore"
    );
    assert_eq!(
        validator["timeoutSeconds"],
        webhook_configs::WEBHOOK_TIMEOUT_SECONDS
    );
}

#[test]
fn proxy_defaults_write_durations_in_go_syntax() {
    use std::time::Duration;
    let cases = [
        (Duration::from_secs(24 * 3600), "24h"),
        (Duration::from_secs(20), "20s"),
        (Duration::from_secs(5400), "1h30m"),
        (Duration::from_millis(1500), "1s500ms"),
        (Duration::ZERO, "0s"),
    ];
    for (duration, text) in cases {
        assert_eq!(controller::go_duration(duration), text);
    }
    let plan = plan_for(&MeshSpec::default());
    let defaults = find(&plan, "ConfigMap", PROXY_DEFAULTS_CONFIGMAP);
    let text = defaults.object.data["data"]["proxy-defaults.json"]
        .as_str()
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(text).unwrap();
    let spec = MeshSpec::default();
    assert_eq!(
        json["workloadCertificateLifetime"],
        spec.identity.workload_certificate_lifetime.as_str()
    );
    assert_eq!(
        json["clockSkewAllowance"],
        spec.identity.clock_skew_allowance.as_str()
    );
}

#[test]
fn controller_may_watch_routes_and_write_route_and_policy_status() {
    let plan = plan_for(&MeshSpec::default());
    let role = &find(&plan, "ClusterRole", "trellis-m1-controller")
        .object
        .data;
    let allows = |group: &str, resource: &str, verb: &str| {
        role["rules"].as_array().unwrap().iter().any(|r| {
            let has = |field: &str, v: &str| r[field].as_array().unwrap().iter().any(|x| x == v);
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    };
    for resource in ["httproutes", "grpcroutes"] {
        for verb in ["get", "list", "watch"] {
            assert!(
                allows("gateway.networking.k8s.io", resource, verb),
                "{verb} {resource}"
            );
        }
        let status = format!("{resource}/status");
        assert!(
            allows("gateway.networking.k8s.io", &status, "patch"),
            "{status}"
        );
    }
    for status in ["servers/status", "authorizationpolicies/status"] {
        assert!(allows("policy.trellis.dev", status, "patch"), "{status}");
    }
}
