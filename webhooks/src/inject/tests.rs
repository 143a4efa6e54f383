//! Router-level tests of the injector: the JSON patch applied to the pod, the opt-in rules,
//! annotation overrides, idempotence and malformed bodies.

use http::StatusCode;
use kube::core::admission::AdmissionResponse;
use serde_json::{Value, json};

use super::{annotations::port_list, template::native_sidecar_supported};
use crate::{
    INJECT_PATH, State,
    test_util::{PROXY_IMAGE, TRUST_PEM, mk_pod, mk_pod_review, mk_review, mk_state, post, review},
};

const NS: &str = "shop";

/// Applies the response's patch to `pod`; `None` when the response carries no patch.
fn patched(pod: &Value, response: &AdmissionResponse) -> Option<Value> {
    assert!(response.allowed, "the injector never refuses a pod");
    let bytes = response.patch.as_ref()?;
    let patch: json_patch::Patch = serde_json::from_slice(bytes).unwrap();
    let mut doc = pod.clone();
    json_patch::patch(&mut doc, &patch).expect("the patch applies to the pod it was made for");
    Some(doc)
}

async fn inject(state: &State, pod: &Value) -> (Option<Value>, AdmissionResponse) {
    let response = review(state.clone(), INJECT_PATH, &mk_pod_review(NS, pod.clone())).await;
    (patched(pod, &response), response)
}

fn container<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {list}"))
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    let full = format!("TRELLIS_PROXY_{name}");
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == full.as_str())
        .map(|e| &e["value"])
        .unwrap_or_else(|| panic!("no env {full} in {}", container["name"]))
}

#[tokio::test]
async fn namespace_annotation_injects_proxy_and_init_containers() {
    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    let pod = mk_pod(&[]);
    let (out, response) = inject(&state, &pod).await;
    let out = out.expect("pod in an annotated namespace is injected");
    assert_eq!(response.warnings, None);

    let init = &out["spec"]["initContainers"];
    assert_eq!(
        init[0]["name"], "trellis-proxy-init",
        "iptables first: {init}"
    );
    assert_eq!(
        init[1]["name"], "trellis-proxy",
        "then the native sidecar: {init}"
    );
    assert_eq!(init[1]["restartPolicy"], "Always");
    assert_eq!(init[1]["startupProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(
        out["spec"]["containers"].as_array().unwrap().len(),
        1,
        "app untouched"
    );
    assert_eq!(out["spec"]["containers"][0]["name"], "app");

    let proxy = container(init, "trellis-proxy");
    assert_eq!(proxy["image"], PROXY_IMAGE);
    assert_eq!(proxy["securityContext"]["runAsUser"], 2102);
    assert_eq!(
        proxy["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert!(proxy["securityContext"]["capabilities"]["add"].is_null());
    assert_eq!(proxy["readinessProbe"]["httpGet"]["port"], 4191);
    assert_eq!(proxy["livenessProbe"]["httpGet"]["path"], "/live");
    assert_eq!(env(proxy, "LOG"), "warn");
    assert_eq!(env(proxy, "INBOUND_DEFAULT_POLICY"), "all-unauthenticated");
    assert_eq!(
        env(proxy, "INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION"),
        "25,587,3306,4444,5432,6379,9300,11211"
    );
    assert_eq!(env(proxy, "INBOUND_PORTS"), "8080");
    assert_eq!(
        env(proxy, "DESTINATION_PROFILE_NETWORKS"),
        env(proxy, "POLICY_CLUSTER_NETWORKS"),
        "only cluster addresses are discovered"
    );
    assert_eq!(env(proxy, "IDENTITY_TRUST_ANCHORS"), TRUST_PEM);
    assert_eq!(
        env(proxy, "IDENTITY_TOKEN_FILE"),
        "/var/run/secrets/tokens/trellis-identity-token"
    );
    assert_eq!(
        env(proxy, "DESTINATION_SVC_ADDR"),
        "trellis-destination.trellis-system.svc.cluster.local.:8086"
    );
    assert_eq!(
        env(proxy, "IDENTITY_SVC_NAME"),
        "trellis-controller.trellis-system.serviceaccount.identity.trellis.cluster.local"
    );
    assert_eq!(
        env(proxy, "IDENTITY_LOCAL_NAME"),
        "$(_pod_sa).$(_pod_ns).serviceaccount.identity.trellis.cluster.local"
    );

    let init_container = container(init, "trellis-proxy-init");
    assert_eq!(
        init_container["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN", "NET_RAW"])
    );
    let args = init_container["args"].as_array().unwrap();
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--proxy-uid" && w[1] == "2102"),
        "{args:?}"
    );

    let volumes = out["spec"]["volumes"].as_array().unwrap();
    let token = volumes
        .iter()
        .find(|v| v["name"] == "trellis-identity-token")
        .expect("token volume");
    assert_eq!(
        token["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "identity.trellis.dev"
    );
    let dir = volumes
        .iter()
        .find(|v| v["name"] == "trellis-identity-end-entity")
        .expect("identity dir volume");
    assert_eq!(dir["emptyDir"]["medium"], "Memory");

    assert_eq!(
        out["metadata"]["annotations"]["trellis.dev/proxy-version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        out["metadata"]["labels"]["trellis.dev/control-plane-ns"],
        "trellis-system"
    );
    assert_eq!(
        out["metadata"]["labels"]["app"], "web",
        "existing labels kept"
    );
}

#[tokio::test]
async fn injection_is_idempotent() {
    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    let (once, _) = inject(&state, &mk_pod(&[])).await;
    let once = once.unwrap();
    let (twice, _) = inject(&state, &once).await;
    assert_eq!(twice, None, "an injected pod is left alone");
}

#[tokio::test]
async fn pod_annotation_wins_over_namespace() {
    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    let (out, _) = inject(&state, &mk_pod(&[("trellis.dev/inject", "disabled")])).await;
    assert_eq!(out, None, "inject: disabled opts out");

    let (state, _) = mk_state(NS, &[]);
    let (out, _) = inject(&state, &mk_pod(&[])).await;
    assert_eq!(out, None, "no annotation anywhere: no injection");
    let (out, _) = inject(&state, &mk_pod(&[("trellis.dev/inject", "enabled")])).await;
    assert!(out.is_some(), "the pod's own annotation enables injection");

    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "disabled")]);
    let (out, _) = inject(&state, &mk_pod(&[("trellis.dev/inject", "enabled")])).await;
    assert!(out.is_some(), "the pod's annotation beats the namespace's");
}

#[tokio::test]
async fn pod_annotation_opts_in_where_the_namespace_has_none() {
    for ns_annotations in [&[][..], &[("owner", "shop-team")][..]] {
        let (state, _) = mk_state(NS, ns_annotations);
        let (out, response) = inject(&state, &mk_pod(&[])).await;
        assert_eq!(out, None, "no annotation on pod or namespace: untouched");
        assert_eq!(response.patch, None);
        assert_eq!(response.warnings, None);

        let (out, _) = inject(&state, &mk_pod(&[("trellis.dev/inject", "enabled")])).await;
        let out = out.expect("the pod's own enabled annotation injects it");
        let proxy = container(&out["spec"]["initContainers"], "trellis-proxy");
        assert_eq!(proxy["image"], PROXY_IMAGE);

        let (out, _) = inject(&state, &mk_pod(&[("trellis.dev/inject", "ingress")])).await;
        let out = out.expect("the pod's own ingress annotation injects it");
        let proxy = container(&out["spec"]["initContainers"], "trellis-proxy");
        assert_eq!(env(proxy, "INGRESS_MODE"), "true");

        let (out, _) = inject(&state, &mk_pod(&[("trellis.dev/inject", "yes")])).await;
        assert_eq!(
            out, None,
            "an unknown pod value falls back to the namespace's (none)"
        );
    }
}

#[tokio::test]
async fn unknown_namespace_opts_nobody_in() {
    let (state, _) = mk_state("elsewhere", &[("trellis.dev/inject", "enabled")]);
    let (out, response) = inject(&state, &mk_pod(&[])).await;
    assert!(response.allowed);
    assert_eq!(
        out, None,
        "a namespace the lookup does not know is not opted in"
    );
    let (out, _) = inject(&state, &mk_pod(&[("trellis.dev/inject", "enabled")])).await;
    assert!(out.is_some(), "the pod's own annotation still counts");
}

#[tokio::test]
async fn disabled_pod_is_admitted_without_a_namespace_lookup() {
    let (state, lookup) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    *lookup.fail.lock() = true;
    let (out, response) = inject(&state, &mk_pod(&[("trellis.dev/inject", "disabled")])).await;
    assert!(response.allowed);
    assert_eq!(out, None, "inject: disabled never needs the namespace");
}

#[tokio::test]
async fn annotations_override_mesh_defaults() {
    let (state, _) = mk_state(
        NS,
        &[
            ("trellis.dev/inject", "enabled"),
            ("config.trellis.dev/proxy-log-level", "info"),
            ("config.trellis.dev/default-inbound-policy", "deny"),
        ],
    );
    let pod = mk_pod(&[
        ("config.trellis.dev/proxy-log-level", "debug"),
        ("config.trellis.dev/opaque-ports", "3306, 4000-4100"),
        ("config.trellis.dev/proxy-cpu-limit", "500m"),
        ("config.trellis.dev/proxy-memory-request", "64Mi"),
        ("config.trellis.dev/skip-outbound-ports", "6443"),
        ("config.trellis.dev/proxy-version", "0.2.0"),
    ]);
    let (out, response) = inject(&state, &pod).await;
    let out = out.unwrap();
    assert_eq!(response.warnings, None);
    let proxy = container(&out["spec"]["initContainers"], "trellis-proxy");
    assert_eq!(env(proxy, "LOG"), "debug", "pod beats namespace");
    assert_eq!(
        env(proxy, "INBOUND_DEFAULT_POLICY"),
        "deny",
        "namespace beats Mesh"
    );
    assert_eq!(
        env(proxy, "INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION"),
        "3306,4000-4100"
    );
    assert_eq!(proxy["resources"]["limits"]["cpu"], "500m");
    assert_eq!(proxy["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(proxy["image"], "registry.test/trellis/proxy:0.2.0");
    assert_eq!(
        out["metadata"]["annotations"]["trellis.dev/proxy-version"],
        "0.2.0"
    );
    let init = container(&out["spec"]["initContainers"], "trellis-proxy-init");
    let args = init["args"].as_array().unwrap();
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--outbound-ports-to-ignore" && w[1] == "6443"),
        "{args:?}"
    );
}

#[tokio::test]
async fn invalid_annotation_keeps_default_and_warns() {
    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    let mut pod = mk_pod(&[
        ("config.trellis.dev/proxy-log-level", "loud"),
        ("config.trellis.dev/opaque-ports", "70000"),
    ]);
    pod["spec"]["containers"][0]["ports"] =
        json!([{ "containerPort": 8080 }, { "containerPort": 5432 }]);
    let (out, response) = inject(&state, &pod).await;
    let out = out.unwrap();
    let proxy = container(&out["spec"]["initContainers"], "trellis-proxy").clone();
    assert_eq!(env(&proxy, "LOG"), "warn");
    let warnings = response.warnings.unwrap();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("config.trellis.dev/proxy-log-level")),
        "{warnings:?}"
    );
    assert!(warnings.iter().any(|w| w.contains("70000")), "{warnings:?}");
    assert!(
        warnings.iter().any(|w| w
            .contains("annotation config.trellis.dev/opaque-ports is invalid")
            && w.contains("like 25,4000-4100")),
        "the warning names the annotation and the fix: {warnings:?}"
    );
    assert_eq!(
        out["metadata"]["annotations"]["config.trellis.dev/opaque-ports"], "5432",
        "the invalid value is replaced by the ports the proxy treats as opaque"
    );
}

#[tokio::test]
async fn invalid_namespace_opaque_ports_are_not_copied_to_the_pod() {
    let (state, _) = mk_state(
        NS,
        &[
            ("trellis.dev/inject", "enabled"),
            ("config.trellis.dev/opaque-ports", "mysql"),
        ],
    );
    let (out, response) = inject(&state, &mk_pod(&[])).await;
    let annotations = &out.unwrap()["metadata"]["annotations"];
    assert!(
        annotations["config.trellis.dev/opaque-ports"].is_null(),
        "no invalid value and no default port exposed: {annotations}"
    );
    let warnings = response.warnings.unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("config.trellis.dev/opaque-ports is invalid")),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn unknown_inject_values_warn_with_the_accepted_values() {
    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "Disabled")]);
    let (out, response) = inject(&state, &mk_pod(&[("trellis.dev/inject", "false")])).await;
    assert_eq!(out, None, "unknown values opt nobody in");
    let warnings = response.warnings.unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains(r#"trellis.dev/inject="false" on the pod"#)
            && warnings[0].contains("use one of enabled, ingress, disabled"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains(r#"trellis.dev/inject="Disabled" on namespace shop"#),
        "{warnings:?}"
    );

    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    let (out, response) = inject(&state, &mk_pod(&[("trellis.dev/inject", "false")])).await;
    assert!(out.is_some(), "the namespace's enabled applies");
    let warnings = response.warnings.unwrap();
    assert!(
        warnings[0].contains("its namespace's annotation decides"),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn no_trust_anchors_admits_the_pod_unmodified_with_a_warning() {
    for bundle in [
        "",
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
    ] {
        let (state, _) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
        let mut config = (*state.inject_config()).clone();
        config.trust_anchors_pem = bundle.to_string();
        state.set_inject_config(config);
        let (out, response) = inject(&state, &mk_pod(&[])).await;
        assert_eq!(
            out, None,
            "{bundle:?}: never injected without trust anchors"
        );
        let warnings = response.warnings.unwrap_or_default();
        assert!(
            warnings.len() == 1
                && warnings[0].contains("trellis-proxy not injected")
                && warnings[0].contains("no trust anchors"),
            "{bundle:?}: {warnings:?}"
        );

        let (out, response) = inject(&state, &mk_pod(&[("trellis.dev/inject", "disabled")])).await;
        assert_eq!(
            (out, response.warnings),
            (None, None),
            "a pod that did not ask gets no warning"
        );
    }
}

#[tokio::test]
async fn regular_sidecar_where_native_sidecars_are_not_supported() {
    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    let mut config = (*state.inject_config()).clone();
    config.native_sidecar = false;
    state.set_inject_config(config);
    let (out, _) = inject(&state, &mk_pod(&[])).await;
    let out = out.unwrap();
    let proxy = &out["spec"]["containers"][0];
    assert_eq!(
        proxy["name"], "trellis-proxy",
        "the proxy goes first: {out}"
    );
    assert_eq!(out["spec"]["containers"][1]["name"], "app");
    assert!(proxy["restartPolicy"].is_null() && proxy["startupProbe"].is_null());
    let init = out["spec"]["initContainers"].as_array().unwrap();
    assert_eq!(init.len(), 1);
    assert_eq!(init[0]["name"], "trellis-proxy-init");

    let pod = mk_pod(&[("config.trellis.dev/proxy-enable-native-sidecar", "true")]);
    let (out, _) = inject(&state, &pod).await;
    let out = out.unwrap();
    let proxy = container(&out["spec"]["initContainers"], "trellis-proxy");
    assert_eq!(
        proxy["restartPolicy"], "Always",
        "the annotation still wins"
    );
    assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
}

#[test]
fn native_sidecars_from_kubernetes_1_29() {
    for (major, minor, native) in [
        ("1", "29", true),
        ("1", "36", true),
        ("1", "30+", true),
        ("2", "0", true),
        ("1", "28", false),
        ("1", "28+", false),
        ("1", "", false),
        ("", "", false),
    ] {
        assert_eq!(
            native_sidecar_supported(major, minor),
            native,
            "{major}.{minor}"
        );
    }
}

#[tokio::test]
async fn classic_sidecar_goes_first_among_containers() {
    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    let mut pod = mk_pod(&[("config.trellis.dev/proxy-enable-native-sidecar", "false")]);
    pod["spec"]["initContainers"] =
        json!([{ "name": "migrate", "image": "registry.test/migrate:1" }]);
    pod["spec"]["volumes"] = json!([{ "name": "data", "emptyDir": {} }]);
    let (out, _) = inject(&state, &pod).await;
    let out = out.unwrap();
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&out["spec"]["containers"]), ["trellis-proxy", "app"]);
    assert_eq!(
        names(&out["spec"]["initContainers"]),
        ["trellis-proxy-init", "migrate"]
    );
    assert_eq!(
        names(&out["spec"]["volumes"]),
        [
            "data",
            "trellis-identity-end-entity",
            "trellis-identity-token"
        ]
    );
    assert!(out["spec"]["containers"][0]["restartPolicy"].is_null());
}

#[tokio::test]
async fn host_network_and_control_plane_pods_are_left_alone() {
    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    let mut pod = mk_pod(&[]);
    pod["spec"]["hostNetwork"] = json!(true);
    let (out, _) = inject(&state, &pod).await;
    assert_eq!(out, None);

    let (state, _) = mk_state("trellis-system", &[("trellis.dev/inject", "enabled")]);
    let pod = mk_pod(&[("trellis.dev/inject", "enabled")]);
    let response = review(
        state,
        INJECT_PATH,
        &mk_pod_review("trellis-system", pod.clone()),
    )
    .await;
    assert_eq!(patched(&pod, &response), None);
}

#[tokio::test]
async fn non_create_operations_are_allowed_untouched() {
    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    let body = mk_review(
        ("", "v1", "Pod", "pods"),
        NS,
        "web-1",
        "UPDATE",
        mk_pod(&[]),
    );
    let response = review(state, INJECT_PATH, &body).await;
    assert!(response.allowed);
    assert_eq!(response.patch, None);
}

#[tokio::test]
async fn namespace_lookup_failure_is_a_server_error() {
    let (state, lookup) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    *lookup.fail.lock() = true;
    let (status, body) = post(
        state,
        INJECT_PATH,
        mk_pod_review(NS, mk_pod(&[])).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("namespace shop") && message.contains("apiserver unavailable"),
        "{message}"
    );
}

#[tokio::test]
async fn malformed_bodies_get_a_clear_error() {
    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("empty", String::new(), "the body is empty"),
        ("not JSON", "{not json".to_string(), "not JSON"),
        (
            "wrong kind",
            json!({ "apiVersion": "v1", "kind": "Pod" }).to_string(),
            "expected admission.k8s.io/v1/AdmissionReview",
        ),
        (
            "no request",
            json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview" }).to_string(),
            "it has no request",
        ),
        (
            "request without uid",
            json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": { "operation": "CREATE" } })
                .to_string(),
            "the request does not decode",
        ),
        (
            "object is not a pod",
            mk_pod_review(NS, json!({ "spec": { "containers": "app" } })).to_string(),
            "the request does not decode",
        ),
    ];
    for (case, body, expected) in cases {
        let (status, response) = post(state.clone(), INJECT_PATH, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {response}");
        let message = response["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: {response}"));
        assert!(
            message.starts_with("malformed AdmissionReview"),
            "{case}: {message}"
        );
        assert!(message.contains(expected), "{case}: {message}");
    }
}

#[test]
fn port_lists_are_normalized_and_checked() {
    assert_eq!(port_list(" 25, 4000-4100 ,").unwrap(), "25,4000-4100");
    assert_eq!(port_list("").unwrap(), "");
    assert!(port_list("0").is_err());
    assert!(port_list("5-3").is_err());
    assert!(port_list("http").is_err());
}

#[tokio::test]
async fn effective_config_is_recorded_on_the_pod() {
    let (state, _) = mk_state(
        NS,
        &[
            ("trellis.dev/inject", "enabled"),
            ("config.trellis.dev/proxy-log-level", "info"),
        ],
    );
    let mut pod = mk_pod(&[("config.trellis.dev/skip-outbound-ports", "6443")]);
    pod["spec"]["containers"][0]["ports"] =
        json!([{ "containerPort": 8080 }, { "containerPort": 5432 }]);
    let (out, _) = inject(&state, &pod).await;
    let annotations = &out.unwrap()["metadata"]["annotations"];
    assert_eq!(
        annotations["config.trellis.dev/proxy-log-level"], "info",
        "copied from the namespace"
    );
    assert_eq!(
        annotations["config.trellis.dev/skip-outbound-ports"], "6443",
        "pod's own kept"
    );
    assert_eq!(
        annotations["config.trellis.dev/opaque-ports"], "5432",
        "only the default opaque ports the pod exposes"
    );

    let (out, _) = inject(&state, &mk_pod(&[])).await;
    assert!(
        out.unwrap()["metadata"]["annotations"]["config.trellis.dev/opaque-ports"].is_null(),
        "no default opaque port exposed: no annotation"
    );
}

#[tokio::test]
async fn operator_managed_pods_are_left_alone() {
    let (state, _) = mk_state(NS, &[("trellis.dev/inject", "enabled")]);
    let mut pod = mk_pod(&[]);
    pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("trellis-operator");
    let (out, _) = inject(&state, &pod).await;
    assert_eq!(out, None);
}
