//! The admission webhooks called by the real apiserver: proxy injection into kwok-run
//! Deployment pods, and cross-object validation of Servers and AuthorizationPolicies.
//!
//! Needs the local cluster (`tests/cluster/cluster up`). Each test starts the webhook server
//! on 127.0.0.1:0 with a certificate from a test CA (IP SAN 127.0.0.1), registers webhook
//! configurations with test-unique names whose `clientConfig.url` points at it, and deletes
//! them at the end. Their namespaceSelectors are the ones the operator renders
//! (`trellis_operator::render::webhooks`), narrowed to the test's namespace, so these tests
//! break when the rendered selectors regress. The server is up before registration, so
//! `failurePolicy: Fail` never blocks other pods.

use std::{collections::BTreeMap, future::Future, net::Ipv4Addr};

use k8s_openapi::{
    ByteString,
    api::{
        admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
        apps::v1::Deployment,
        core::v1::{Namespace, Pod},
    },
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot};
use trellis_crds::{
    settings::MeshSettings,
    v1alpha1::{mesh::MeshSpec, server::Server},
};
use trellis_operator::reconciler::render::webhook_configs::{
    NAMESPACE_NAME_LABEL, injector_namespace_selector, validator_namespace_selector,
};
use trellis_tests::{
    DEFAULT_TIMEOUT,
    certs::localhost_server,
    cluster::kubectl,
    eventually,
    k8s::{self, apply_yaml, await_object, with_temp_ns},
};
use trellis_webhooks::{
    INJECT_PATH, State, VALIDATE_PATH,
    inject::template::InjectConfig,
    tls::{CertResolver, serve},
};

const PROXY_IMAGE: &str = "registry.test/trellis/proxy:0.1.0";
/// Repository of [`PROXY_IMAGE`], whose tag is the default Mesh's version.
const IMAGE_REPOSITORY: &str = "registry.test/trellis";

/// Test-unique names of the registered webhook configurations.
struct Registration {
    mutating: String,
    validating: String,
}

/// Name of the test's mutating webhook configuration for namespace `ns`.
fn mutating_name(ns: &str) -> String {
    format!("trellis-test-inject-{ns}")
}

/// `selector` (as the operator renders it) narrowed to namespace `ns`: the rendered
/// expressions still decide, and no other namespace is ever sent to the test server.
fn scoped(selector: Value, ns: &str) -> Value {
    let mut selector = selector;
    assert!(
        selector["matchLabels"].get(NAMESPACE_NAME_LABEL).is_none(),
        "the rendered selector names a namespace: {selector}"
    );
    selector["matchLabels"][NAMESPACE_NAME_LABEL] = json!(ns);
    selector
}

/// The operator's injector selector for a control plane in `control_plane_ns`, narrowed to `ns`.
fn injector_selector(control_plane_ns: &str, ns: &str) -> Value {
    scoped(injector_namespace_selector(control_plane_ns), ns)
}

async fn register(client: &Client, ns: &str, port: u16, ca_pem: &str) -> Registration {
    let ca_bundle = serde_json::to_value(ByteString(ca_pem.as_bytes().to_vec())).unwrap();
    // The injector's control plane is the Mesh default's, as in the InjectConfig below.
    let injector_selector = injector_selector(&MeshSpec::default().namespace, ns);
    let validator_selector = scoped(validator_namespace_selector(), ns);
    // What both registrations share: the test server at `path`, failing closed.
    let webhook = |name: &str, path: &str, namespace_selector: Value, rule: Value| {
        json!({
            "name": name,
            "admissionReviewVersions": ["v1"],
            "clientConfig": { "url": format!("https://127.0.0.1:{port}{path}"), "caBundle": ca_bundle },
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "timeoutSeconds": 10,
            "namespaceSelector": namespace_selector,
            "rules": [rule],
        })
    };
    let registration = Registration {
        mutating: mutating_name(ns),
        validating: format!("trellis-test-validate-{ns}"),
    };
    let mut inject = webhook(
        "inject.test.trellis.dev",
        INJECT_PATH,
        injector_selector,
        json!({ "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "Namespaced" }),
    );
    inject["reinvocationPolicy"] = json!("Never");
    let validate = webhook(
        "validate.test.trellis.dev",
        VALIDATE_PATH,
        validator_selector,
        json!({ "apiGroups": ["policy.trellis.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"], "resources": ["servers", "authorizationpolicies"], "scope": "Namespaced" }),
    );
    let mutating: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": { "name": registration.mutating },
        "webhooks": [inject],
    }))
    .unwrap();
    let validating: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": { "name": registration.validating },
        "webhooks": [validate],
    }))
    .unwrap();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &mutating)
        .await
        .unwrap();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &validating)
        .await
        .unwrap();
    registration
}

async fn unregister(client: &Client, registration: &Registration) {
    let dp = DeleteParams::default();
    if let Err(e) = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .delete(&registration.mutating, &dp)
        .await
    {
        tracing::warn!(error = %e, "Could not delete the mutating webhook configuration");
    }
    if let Err(e) = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete(&registration.validating, &dp)
        .await
    {
        tracing::warn!(error = %e, "Could not delete the validating webhook configuration");
    }
}

/// Runs `test` in a fresh namespace with the webhook server running and registered for it;
/// the registrations are deleted and the server stopped afterwards, also on failure.
async fn with_webhooks<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Client, String) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_temp_ns(name, |client, ns| async move {
        k8s::install_crds(&client).await;
        let pki = localhost_server("127.0.0.1");
        let certs = std::sync::Arc::new(
            CertResolver::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes()).unwrap(),
        );
        let mesh = MeshSettings::try_from(&MeshSpec::default()).unwrap();
        let config = InjectConfig::from_settings(&mesh, IMAGE_REPOSITORY, &pki.ca_pem);
        let state = State::with_client(config, client.clone());
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, certs, state, async {
            let _ = stopped.await;
        }));
        let registration = register(&client, &ns, port, &pki.ca_pem).await;
        let outcome = tokio::spawn(test(client.clone(), ns.clone())).await;
        unregister(&client, &registration).await;
        let _ = stop.send(());
        server.await.unwrap().unwrap();
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    })
    .await;
}

fn pod(name: &str, annotations: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": name }, "annotations": annotations },
        "spec": { "containers": [{ "name": "app", "image": "example.invalid/app:1", "ports": [{ "containerPort": 8080 }] }] },
    }))
    .unwrap()
}

/// Creates `pod(name, annotations)` through `pods` (so through the webhooks) and returns it
/// as stored.
async fn create_pod(pods: &Api<Pod>, name: &str, annotations: Value) -> Pod {
    pods.create(&PostParams::default(), &pod(name, annotations))
        .await
        .unwrap()
}

/// Whether a dry-run pod annotated `trellis.dev/inject: enabled` comes back injected from
/// `ns`; the injector always injects it, so `false` means the apiserver did not call it.
async fn probe_injected(client: &Client, ns: &str) -> Result<bool, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let probe = pods
        .create(
            &params,
            &pod("probe", json!({ "trellis.dev/inject": "enabled" })),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(!init_names(&probe).is_empty())
}

/// Waits until the apiserver calls the injector for `ns` (a dry-run pod comes back injected).
async fn await_injector(client: &Client, ns: &str) {
    eventually(
        "the injector to be called by the apiserver",
        DEFAULT_TIMEOUT,
        || async {
            match probe_injected(client, ns).await? {
                true => Ok(()),
                false => Err("dry-run pod not injected yet".to_string()),
            }
        },
    )
    .await;
}

/// Waits until the apiserver stops calling the injector for `ns` (after a selector or label
/// change; callers first saw it called, so a pod left alone means the selector excluded it).
async fn await_injector_skipped(client: &Client, ns: &str, why: &str) {
    eventually(why, DEFAULT_TIMEOUT, || async {
        match probe_injected(client, ns).await? {
            false => Ok(()),
            true => Err("dry-run pod still injected".to_string()),
        }
    })
    .await;
}

fn init_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| c.name.clone())
        .collect()
}

fn proxy_env(pod: &Pod) -> BTreeMap<String, String> {
    let proxy = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .find(|c| c.name == "trellis-proxy")
        .expect("trellis-proxy init container");
    proxy
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect()
}

/// The `web` Deployment, its pods asking for a proxy CPU limit and an opaque port.
fn web() -> String {
    let annotations = json!({ "annotations": {
        "config.trellis.dev/proxy-cpu-limit": "250m",
        "config.trellis.dev/opaque-ports": "5432",
    } });
    k8s::deployment_yaml("web", 1, annotations, k8s::web_pod_spec())
}

#[tokio::test]
async fn injector_adds_proxy_to_deployment_pods_in_annotated_namespace() {
    with_webhooks("wh-inject", |client, ns| async move {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .patch(
                &ns,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": {
                    "trellis.dev/inject": "enabled",
                    "config.trellis.dev/proxy-log-level": "info",
                } } })),
            )
            .await
            .unwrap();
        await_injector(&client, &ns).await;

        apply_yaml(&client, Some(&ns), &web()).await.unwrap();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let opted_out = create_pod(
            &pods,
            "opted-out",
            json!({ "trellis.dev/inject": "disabled" }),
        )
        .await;
        assert_untouched(
            &opted_out,
            "inject: disabled on the pod beats the namespace's enabled",
        );

        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        await_object(&deployments, "web", DEFAULT_TIMEOUT, |d| {
            match d.status.as_ref().and_then(|s| s.available_replicas) {
                Some(1) => Ok(()),
                other => Err(format!("available replicas {other:?}")),
            }
        })
        .await;
        let listed = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap();
        let web = listed.items.first().expect("a web pod");
        assert_eq!(init_names(web), ["trellis-proxy-init", "trellis-proxy"]);
        let spec = web.spec.as_ref().unwrap();
        let proxy = spec
            .init_containers
            .iter()
            .flatten()
            .find(|c| c.name == "trellis-proxy")
            .unwrap();
        assert_eq!(
            proxy.restart_policy.as_deref(),
            Some("Always"),
            "native sidecar"
        );
        assert_eq!(proxy.image.as_deref(), Some(PROXY_IMAGE));
        assert_eq!(
            proxy.security_context.as_ref().and_then(|s| s.run_as_user),
            Some(2102)
        );
        let limits = proxy
            .resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .unwrap();
        assert_eq!(
            limits["cpu"].0, "250m",
            "pod annotation overrides resources"
        );

        let env = proxy_env(web);
        assert_eq!(
            env["TRELLIS_PROXY_LOG"], "info",
            "namespace annotation overrides the Mesh"
        );
        assert_eq!(
            env["TRELLIS_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION"],
            "5432"
        );
        assert_eq!(env["TRELLIS_PROXY_INBOUND_PORTS"], "8080");
        assert_eq!(
            env["TRELLIS_PROXY_INBOUND_DEFAULT_POLICY"],
            "all-unauthenticated"
        );
        assert!(env["TRELLIS_PROXY_IDENTITY_TRUST_ANCHORS"].contains("BEGIN CERTIFICATE"));
        assert_eq!(
            env["TRELLIS_PROXY_IDENTITY_TOKEN_FILE"],
            "/var/run/secrets/tokens/trellis-identity-token"
        );

        let volumes = spec.volumes.clone().unwrap_or_default();
        let token = volumes
            .iter()
            .find(|v| v.name == "trellis-identity-token")
            .expect("projected token volume");
        let projection = token.projected.as_ref().unwrap().sources.as_ref().unwrap()[0]
            .service_account_token
            .clone()
            .unwrap();
        assert_eq!(projection.audience.as_deref(), Some("identity.trellis.dev"));
        assert!(
            volumes
                .iter()
                .any(|v| v.name == "trellis-identity-end-entity")
        );
        assert_eq!(
            web.annotations()
                .get("trellis.dev/proxy-version")
                .map(String::as_str),
            Some(env!("CARGO_PKG_VERSION"))
        );
    })
    .await;
}

/// Asserts that `pod` was admitted exactly as written: one container, no init containers, no
/// Trellis volumes or annotations.
fn assert_untouched(pod: &Pod, what: &str) {
    assert_eq!(init_names(pod), Vec::<String>::new(), "{what}");
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.containers.len(), 1, "{what}");
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .all(|v| !v.name.starts_with("trellis-")),
        "{what}"
    );
    assert!(
        !pod.annotations().contains_key("trellis.dev/proxy-version"),
        "{what}"
    );
}

#[tokio::test]
async fn pod_annotation_opts_in_where_the_namespace_has_not() {
    with_webhooks("wh-pod-opt-in", |client, ns| async move {
        let namespace = Api::<Namespace>::all(client.clone())
            .get(&ns)
            .await
            .unwrap();
        assert!(
            !namespace.annotations().contains_key("trellis.dev/inject")
                && !namespace.labels().contains_key("trellis.dev/inject"),
            "the namespace has not opted in: {:?}",
            namespace.metadata
        );
        // The apiserver calls the injector for a namespace that has not opted in.
        await_injector(&client, &ns).await;

        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let plain = create_pod(&pods, "plain", json!({})).await;
        assert_untouched(&plain, "no annotation on pod or namespace: untouched");

        let opted_in = create_pod(
            &pods,
            "opted-in",
            json!({ "trellis.dev/inject": "enabled" }),
        )
        .await;
        assert_eq!(
            init_names(&opted_in),
            ["trellis-proxy-init", "trellis-proxy"],
            "the pod's own annotation opts it in"
        );
        assert_eq!(
            opted_in
                .annotations()
                .get("trellis.dev/proxy-version")
                .map(String::as_str),
            Some(env!("CARGO_PKG_VERSION"))
        );
        let env = proxy_env(&opted_in);
        assert_eq!(env["TRELLIS_PROXY_INBOUND_PORTS"], "8080");

        let fetched = pods.get("plain").await.unwrap();
        assert_untouched(&fetched, "the stored plain pod is untouched");
    })
    .await;
}

#[tokio::test]
async fn pod_annotation_wins_over_a_disabled_namespace_and_the_control_plane_is_skipped() {
    with_webhooks("wh-ns-opt-out", |client, ns| async move {
        await_injector(&client, &ns).await;

        // A namespace that opts out (annotation, mirrored onto the label by the operator)
        // still reaches the injector: its plain pods are left alone, a pod that asks for the
        // proxy gets it.
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let disabled = json!({ "metadata": {
            "annotations": { "trellis.dev/inject": "disabled" },
            "labels": { "trellis.dev/inject": "disabled" },
        } });
        namespaces
            .patch(&ns, &PatchParams::default(), &Patch::Merge(disabled))
            .await
            .unwrap();
        await_injector(&client, &ns).await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let plain = create_pod(&pods, "plain", json!({})).await;
        assert_untouched(
            &plain,
            "a pod in a disabled namespace without its own annotation",
        );
        let asked = create_pod(&pods, "asked", json!({ "trellis.dev/inject": "enabled" })).await;
        assert_eq!(
            init_names(&asked),
            ["trellis-proxy-init", "trellis-proxy"],
            "the pod's own annotation wins over the namespace's disabled"
        );

        // Rendered for a control plane in this namespace, the selector leaves it out.
        let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let name = mutating_name(&ns);
        let mut config = mutating.get(&name).await.unwrap();
        let webhook = config.webhooks.as_mut().unwrap().first_mut().unwrap();
        webhook.namespace_selector =
            Some(serde_json::from_value(injector_selector(&ns, &ns)).unwrap());
        mutating
            .replace(&name, &PostParams::default(), &config)
            .await
            .unwrap();
        await_injector_skipped(
            &client,
            &ns,
            "the injector to be skipped for the control-plane namespace",
        )
        .await;
    })
    .await;
}

fn server(name: &str, selector: Value, port: i32) -> Server {
    server_on(name, selector, json!(port))
}

/// A Server on `port`, a number or a container port name.
fn server_on(name: &str, selector: Value, port: Value) -> Server {
    serde_json::from_value(json!({
        "apiVersion": "policy.trellis.dev/v1alpha1",
        "kind": "Server",
        "metadata": { "name": name },
        "spec": { "podSelector": selector, "port": port },
    }))
    .unwrap()
}

fn api_message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message,
        other => other.to_string(),
    }
}

#[tokio::test]
async fn validator_refuses_overlapping_server_and_warns_on_missing_target() {
    with_webhooks("wh-validate", |client, ns| async move {
        let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
        let create = PostParams::default();
        servers
            .create(&create, &server("web-http", json!({ "matchLabels": { "app": "web" } }), 8080))
            .await
            .unwrap();

        let overlapping = server(
            "web-any",
            json!({ "matchExpressions": [{ "key": "app", "operator": "In", "values": ["web", "api"] }] }),
            8080,
        );
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        eventually("the validator to refuse the overlapping Server", DEFAULT_TIMEOUT, || async {
            match servers.create(&dry_run, &overlapping).await {
                Ok(_) => Err("admitted (webhook not active yet?)".to_string()),
                Err(e) => Ok(api_message(e)),
            }
        })
        .await;
        let message = api_message(servers.create(&create, &overlapping).await.unwrap_err());
        assert!(
            message.contains("Server web-any overlaps Server web-http on port 8080"),
            "{message}"
        );
        assert!(servers.get_opt("web-any").await.unwrap().is_none());

        servers
            .create(&create, &server("api-http", json!({ "matchLabels": { "app": "api" } }), 8080))
            .await
            .expect("a Server with a disjoint selector is admitted");
        servers
            .create(&create, &server("web-admin", json!({ "matchLabels": { "app": "web" } }), 9090))
            .await
            .expect("a Server on another port is admitted");

        // A named port is the same port as a number when a pod both select says so.
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let named_pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "named-1", "labels": { "app": "named" } },
            "spec": { "containers": [{ "name": "app", "image": "example.invalid/app:1",
                "ports": [{ "name": "http", "containerPort": 8080 }, { "name": "metrics", "containerPort": 9100 }] }] },
        }))
        .unwrap();
        pods.create(&create, &named_pod).await.unwrap();
        let named = json!({ "matchLabels": { "app": "named" } });
        servers
            .create(&create, &server("named-8080", named.clone(), 8080))
            .await
            .unwrap();
        let message = api_message(
            servers
                .create(&create, &server_on("named-http", named.clone(), json!("http")))
                .await
                .unwrap_err(),
        );
        assert!(
            message.contains(
                "Server named-http (port http) overlaps Server named-8080 (port 8080): both are \
                 port 8080 of pod named-1"
            ),
            "{message}"
        );
        servers
            .create(&create, &server_on("named-metrics", named, json!("metrics")))
            .await
            .expect("a named port that is another number on the pod is admitted");

        let policy = format!(
            "apiVersion: policy.trellis.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {{name: early, namespace: {ns}}}\n\
             spec:\n  targetRef: {{kind: Server, name: not-yet}}\n  requiredAuthenticationRefs: []\n"
        );
        let path = std::env::temp_dir().join(format!("{ns}-policy.yaml"));
        std::fs::write(&path, policy).unwrap();
        let (ok, stdout, stderr) = kubectl(&["apply", "-f", path.to_str().unwrap()]).await;
        let _ = std::fs::remove_file(&path);
        assert!(ok, "a policy for a missing Server is admitted: {stdout} {stderr}");
        assert!(
            stderr.contains("Warning: target Server not-yet does not exist in namespace"),
            "kubectl shows the webhook's warning: {stderr}"
        );
    })
    .await;
}
