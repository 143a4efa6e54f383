//! The environment the injector renders for a pod is one the proxy accepts: the env of the
//! injected trellis-proxy container, resolved as the kubelet does (field references, then
//! `$(VAR)` expansion), goes through `trellis_proxy::app::Config::parse` and carries the trust
//! anchors, identity, ports and `config.trellis.dev/*` overrides the pod asked for.

use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
    sync::Arc,
};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde_json::{Value, json};
use trellis_crds::{settings::MeshSettings, v1alpha1::mesh::MeshSpec};
use trellis_proxy::app::{
    Config,
    config::{DefaultPolicy, LogFormat},
};
use trellis_tests::{admission, certs::TestPki};
use trellis_webhooks::{
    State,
    inject::{
        Decision, admit,
        template::{InjectConfig, PROXY_CONTAINER},
    },
    test_util::FakeLookup,
};

const NS: &str = "shop";

/// Repository of the proxy image `registry.test/trellis/proxy:<version>`.
const IMAGE_REPOSITORY: &str = "registry.test/trellis";

fn mesh(spec: &MeshSpec) -> MeshSettings {
    MeshSettings::try_from(spec).unwrap()
}

fn state(config: InjectConfig, namespace: &[(&str, &str)]) -> State {
    // One namespace, `shop`, with the given annotations; no Servers, no pods.
    let lookup = Arc::new(FakeLookup::with_namespace(NS, namespace));
    State::new(config, lookup.clone(), lookup)
}

/// A scheduled pod `web-1` (service account `web`) with `annotations` and app ports 8080 and
/// 3306, as the apiserver sends it in a CREATE review.
fn request(annotations: Value) -> AdmissionRequest<Pod> {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "web-1", "namespace": NS, "labels": { "app": "web" }, "annotations": annotations },
        "spec": {
            "serviceAccountName": "web",
            "nodeName": "node-a",
            "containers": [{ "name": "app", "image": "registry.test/web:1",
                "ports": [{ "containerPort": 8080 }, { "containerPort": 3306 }] }],
        },
    });
    let review =
        admission::pod_create_review("2d0c5e7a-0000-4000-8000-000000000001", NS, None, pod);
    let review: AdmissionReview<Pod> = serde_json::from_value(review).unwrap();
    review.try_into().unwrap()
}

/// The injected proxy container, wherever it was put.
async fn injected_proxy(state: &State, request: &AdmissionRequest<Pod>) -> Container {
    match admit(state, request).await.unwrap() {
        Decision::Inject {
            additions,
            warnings,
        } => {
            assert_eq!(warnings, Vec::<String>::new());
            additions
                .init_containers
                .into_iter()
                .chain(additions.containers)
                .find(|c| c.name == PROXY_CONTAINER)
                .expect("a proxy container")
        }
        Decision::Skip { reason, warnings } => panic!("not injected: {reason:?} {warnings:?}"),
    }
}

/// The container's environment as the kubelet resolves it for `pod`: field references read
/// from the pod, then `$(NAME)` replaced by earlier variables.
fn kubelet_env(container: &Container, pod: &Pod) -> HashMap<String, String> {
    let spec = pod.spec.as_ref().unwrap();
    let mut env: HashMap<String, String> = HashMap::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => {
                let mut out = value.clone();
                for (name, resolved) in &env {
                    out = out.replace(&format!("$({name})"), resolved);
                }
                out
            }
            (None, Some(from)) => {
                let path = from.field_ref.as_ref().unwrap().field_path.as_str();
                match path {
                    "metadata.name" => pod.metadata.name.clone().unwrap(),
                    "metadata.namespace" => pod.metadata.namespace.clone().unwrap(),
                    "spec.serviceAccountName" => spec.service_account_name.clone().unwrap(),
                    "spec.nodeName" => spec.node_name.clone().unwrap(),
                    other => panic!("unexpected field reference {other}"),
                }
            }
            (None, None) => String::new(),
        };
        env.insert(var.name.clone(), value);
    }
    assert!(
        env.values().all(|v| !v.contains("$(")),
        "every reference resolves: {env:?}"
    );
    env
}

async fn parsed(state: &State, annotations: Value) -> Config {
    let request = request(annotations);
    let proxy = injected_proxy(state, &request).await;
    let env = kubelet_env(&proxy, request.object.as_ref().unwrap());
    Config::parse(&env).unwrap_or_else(|e| panic!("the proxy refuses the injected env: {e}"))
}

#[tokio::test]
async fn injected_env_parses_with_the_pods_settings() {
    // Mid-rotation: two anchors in the bundle.
    let anchors = format!(
        "{}{}",
        TestPki::generate("cluster.local").anchor_pem,
        TestPki::generate("cluster.local").anchor_pem
    );
    let config =
        InjectConfig::from_settings(&mesh(&MeshSpec::default()), IMAGE_REPOSITORY, &anchors);
    let state = state(
        config,
        &[
            ("trellis.dev/inject", "enabled"),
            ("config.trellis.dev/proxy-log-level", "info"),
            ("config.trellis.dev/default-inbound-policy", "deny"),
        ],
    );
    let parsed = parsed(
        &state,
        json!({
            "config.trellis.dev/proxy-log-level": "debug",
            "config.trellis.dev/proxy-log-format": "json",
            "config.trellis.dev/opaque-ports": "3306, 4000-4002",
        }),
    )
    .await;

    assert_eq!(parsed.identity.trust_anchors_pem, anchors.trim());
    assert_eq!(
        parsed.identity.local_name,
        "web.shop.serviceaccount.identity.trellis.cluster.local"
    );
    let controller =
        "trellis-controller.trellis-system.serviceaccount.identity.trellis.cluster.local";
    for (addr, port) in [
        (&parsed.identity.svc, 8080),
        (&parsed.destination, 8086),
        (&parsed.policy, 8090),
    ] {
        assert!(
            addr.host.ends_with(".trellis-system.svc.cluster.local."),
            "{addr:?}"
        );
        assert_eq!(addr.port, port, "{addr:?}");
        assert_eq!(addr.identity.as_deref(), Some(controller), "{addr:?}");
    }
    assert_eq!(
        parsed.identity.token_file.to_str(),
        Some("/var/run/secrets/tokens/trellis-identity-token")
    );
    let context: Value = serde_json::from_str(&parsed.destination_context).unwrap();
    assert_eq!(
        context,
        json!({ "ns": "shop", "nodeName": "node-a", "pod": "web-1" })
    );
    let workload: Value = serde_json::from_str(&parsed.policy_workload).unwrap();
    assert_eq!(workload, json!({ "ns": "shop", "pod": "web-1" }));

    assert_eq!(
        parsed.inbound.ports,
        BTreeSet::from([3306, 4191, 8080]),
        "app ports and the admin port"
    );
    assert_eq!(
        parsed.inbound.opaque_ports,
        BTreeSet::from([3306, 4000, 4001, 4002]),
        "the pod's opaque-ports annotation"
    );
    assert_eq!(
        parsed.inbound.listen_addr,
        "0.0.0.0:4143".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        parsed.outbound.listen_addrs,
        ["127.0.0.1:4140".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(
        parsed.admin_listen_addr,
        "0.0.0.0:4191".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        parsed.control_listen_addr,
        "0.0.0.0:4190".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(parsed.log.filter, "debug", "the pod beats the namespace");
    assert_eq!(parsed.log.format, LogFormat::Json);
    assert_eq!(
        parsed.default_policy,
        DefaultPolicy::Deny,
        "the namespace beats the Mesh"
    );
    assert!(!parsed.cluster_networks.is_empty());
    assert!(!parsed.ingress_mode);
}

#[tokio::test]
async fn ingress_and_regular_sidecar_env_parses_too() {
    let anchors = TestPki::generate("example.org").anchor_pem;
    let mut spec = MeshSpec::default();
    spec.identity.trust_domain = "example.org".to_string();
    let mut config = InjectConfig::from_settings(&mesh(&spec), IMAGE_REPOSITORY, &anchors);
    config.native_sidecar = false;
    let state = state(config, &[]);
    let request = request(json!({ "trellis.dev/inject": "ingress" }));
    let Decision::Inject { additions, .. } = admit(&state, &request).await.unwrap() else {
        panic!("ingress pods are injected");
    };
    assert_eq!(
        additions.containers.first().map(|c| c.name.as_str()),
        Some(PROXY_CONTAINER),
        "a regular sidecar is the first container"
    );
    let parsed = parsed(&state, json!({ "trellis.dev/inject": "ingress" })).await;
    assert!(parsed.ingress_mode);
    assert_eq!(
        parsed.identity.local_name,
        "web.shop.serviceaccount.identity.trellis.example.org"
    );
    assert_eq!(parsed.default_policy, DefaultPolicy::AllUnauthenticated);
    assert!(
        parsed.inbound.opaque_ports.contains(&3306) && parsed.inbound.opaque_ports.contains(&5432),
        "the Mesh's default opaque ports: {:?}",
        parsed.inbound.opaque_ports
    );
}
