//! The `controller` role serves the admission webhooks: run in-process against the local
//! cluster, it loads its serving certificate from the `trellis-webhook-tls` Secret, injects
//! the proxy with the followed Mesh's settings, the whole bundle of the trust-roots ConfigMap
//! (never an empty one) and, on this 1.36 cluster, as a native sidecar; and it picks up a
//! replaced Secret with no restart.
//!
//! Needs the local cluster (`tests/cluster/cluster up`). The controller's control-plane
//! namespace is the test namespace (it holds the test's Secrets); the Mesh it follows has a
//! test-unique name, a control-plane namespace of its own, and is deleted at the end.

use std::net::{Ipv4Addr, SocketAddr};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::{
    ByteString,
    api::core::v1::{ConfigMap, Namespace, Secret},
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use serde_json::{Value, json};
use trellis_api::well_known;
use trellis_crds::v1alpha1::mesh::Mesh;
use trellis_operator::{
    admin::{Readiness, SharedRegistry},
    config::ControllerConfig,
    control_plane::Controller,
};
use trellis_tests::{
    DEFAULT_TIMEOUT, admission,
    certs::{IssuerSecret, LocalhostPki, TestPki, localhost_server},
    eventually,
    k8s::{self, with_temp_ns},
};
use trellis_webhooks::{INJECT_PATH, inject::template::PROXY_CONTAINER};

const IMAGE_REPOSITORY: &str = "registry.test/trellis";
/// Reviews sent before the trust roots exist, each given [`PROBE_TIMEOUT`].
const PROBES_WITHOUT_TRUST_ROOTS: usize = 3;
/// How long one review before the trust roots may take (the server does not accept yet).
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Server-side applies `secret` (replacing its data).
async fn put_secret(client: &Client, ns: &str, secret: &Secret) {
    let name = secret.metadata.name.clone().unwrap();
    k8s::server_side_apply(
        &Api::<Secret>::namespaced(client.clone(), ns),
        &name,
        secret,
    )
    .await;
}

/// The trust-roots ConfigMap the operator renders, holding `bundle`.
fn trust_roots(ns: &str, bundle: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": well_known::TRUST_ROOTS_CONFIGMAP, "namespace": ns },
        "data": { well_known::TRUST_ROOTS_KEY: bundle },
    }))
    .unwrap()
}

/// The webhook serving Secret in `ns`, holding `pki`'s certificate and key.
fn webhook_tls_secret(ns: &str, pki: &LocalhostPki) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": well_known::WEBHOOK_TLS_SECRET, "namespace": ns },
        "type": "kubernetes.io/tls",
        "data": {
            well_known::TLS_CERT_KEY: ByteString(pki.cert_pem.as_bytes().to_vec()),
            well_known::TLS_KEY_KEY: ByteString(pki.key_pem.as_bytes().to_vec()),
        },
    }))
    .unwrap()
}

/// POSTs `review` to the injector over TLS; returns the AdmissionReview response.
async fn post_review(addr: SocketAddr, ca: &str, review: &Value) -> Result<Value, String> {
    let (tls, _) = admission::connect_tls(addr, &[ca]).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let response = sender
        .send_request(
            http::Request::post(INJECT_PATH)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(review).unwrap())))
                .unwrap(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != http::StatusCode::OK {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

fn pod_review(ns: &str) -> Value {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "web", "namespace": ns, "labels": { "app": "web" } },
        "spec": { "containers": [{ "name": "web", "image": "example.invalid/web:1", "ports": [{ "containerPort": 8080 }] }] },
    });
    admission::pod_create_review("6f1c2f0e-0000-4000-8000-000000000001", ns, Some("web"), pod)
}

/// The containers the JSON patch in `response` adds, anywhere in the pod.
fn added_containers(response: &Value) -> Vec<Value> {
    // kube encodes the patch bytes as a JSON array of numbers (the apiserver accepts that);
    // accept base64 too.
    let patch: Vec<u8> = match response["response"]["patch"].clone() {
        Value::String(b64) => {
            let ByteString(bytes) = serde_json::from_value(Value::String(b64)).unwrap();
            bytes
        }
        other => {
            serde_json::from_value(other).unwrap_or_else(|e| panic!("no patch in {response}: {e}"))
        }
    };
    let ops: Vec<Value> = serde_json::from_slice(&patch).unwrap();
    let mut out = Vec::new();
    for op in ops.iter().filter(|op| op["op"] == "add") {
        match &op["value"] {
            Value::Array(items) => out.extend(items.iter().cloned()),
            value => out.push(value.clone()),
        }
    }
    out.into_iter()
        .filter(|v| v.get("name").is_some() && v.get("image").is_some())
        .collect()
}

fn env_value(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

#[tokio::test]
async fn controller_serves_webhooks_with_the_secret_certificate() {
    with_temp_ns("cp-webhooks", |client, ns| async move {
        k8s::install_crds(&client).await;
        // Pods of this namespace are injected.
        Api::<Namespace>::all(client.clone())
            .patch(
                &ns,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "annotations": { well_known::INJECT_ANNOTATION: "enabled" } } })),
            )
            .await
            .unwrap();
        // The issuer Secret (for the identity server); its ca.crt is only the current anchor,
        // while the trust roots the injector hands to proxies are put later, mid-rotation.
        let pki = TestPki::generate("cluster.local");
        put_secret(&client, &ns, &pki.issuer_secret(&ns)).await;

        // A test-unique Mesh whose control plane would live elsewhere (so this namespace is
        // not the injector's excluded control-plane namespace).
        let mesh_name = format!("{ns}-mesh");
        let meshes: Api<Mesh> = Api::all(client.clone());
        let mesh: Mesh = serde_json::from_value(json!({
            "apiVersion": "trellis.dev/v1alpha1",
            "kind": "Mesh",
            "metadata": { "name": mesh_name },
            "spec": { "namespace": format!("{ns}-cp") },
        }))
        .unwrap();
        let mesh = k8s::server_side_apply(&meshes, &mesh_name, &mesh).await;
        // The Mesh is deleted also when the test fails.
        let outcome = tokio::spawn(run_controller(client.clone(), ns, mesh, pki)).await;
        if let Err(e) = meshes.delete(&mesh_name, &DeleteParams::background()).await {
            tracing::warn!(mesh = %mesh_name, error = %e, "Could not delete the test Mesh");
        }
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    })
    .await;
}

/// Runs the controller for `mesh` with its Secrets in `ns` and checks its webhooks.
async fn run_controller(client: Client, ns: String, mesh: Mesh, pki: TestPki) {
    let mesh_name = mesh.metadata.name.clone().unwrap();
    let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let config = ControllerConfig {
        identity_addr: loopback(0),
        destination_addr: loopback(0),
        policy_addr: loopback(0),
        webhook_addr: loopback(0),
        image_repository: IMAGE_REPOSITORY.to_string(),
        mesh_name: mesh_name.clone(),
        control_plane_namespace: ns.clone(),
        ..ControllerConfig::default()
    };
    let controller = Controller::bind(config).await.unwrap();
    let addr = controller.webhook_addr();
    assert_ne!(addr.port(), 0);
    let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
    let readiness = Readiness::default();
    let run = tokio::spawn({
        let client = client.clone();
        let shutdown = shutdown.clone();
        let readiness = readiness.clone();
        async move {
            let registry = SharedRegistry::default();
            controller
                .run(client, &registry, &readiness, shutdown)
                .await
        }
    });

    // The controller starts before its certificate exists and waits for it.
    let pki_a = localhost_server("first");
    put_secret(&client, &ns, &webhook_tls_secret(&ns, &pki_a)).await;
    let review = pod_review(&ns);
    // Until the trust roots exist the server must not inject: a proxy without the trust
    // bundle cannot start. The certificate and the Mesh are there, so a few reviews give a
    // server that serves too early the chance to answer one with a proxy.
    for _ in 0..PROBES_WITHOUT_TRUST_ROOTS {
        let attempt =
            tokio::time::timeout(PROBE_TIMEOUT, post_review(addr, &pki_a.ca_pem, &review)).await;
        if let Ok(Ok(response)) = attempt {
            assert!(
                response["response"]["patch"].is_null(),
                "the server answered with a patch before the trust roots were loaded: {response}"
            );
        }
    }
    // Not ready (out of the Service's endpoints) while the webhooks cannot serve.
    assert!(
        readiness.not_ready().contains(&"webhooks".to_string()),
        "ready without trust roots: {:?}",
        readiness.not_ready()
    );

    // Mid-rotation the ConfigMap holds the current anchor and the next one.
    let next = TestPki::generate("cluster.local");
    let bundle = format!("{}{}", pki.anchor_pem, next.anchor_pem);
    k8s::server_side_apply(
        &Api::<ConfigMap>::namespaced(client.clone(), &ns),
        well_known::TRUST_ROOTS_CONFIGMAP,
        &trust_roots(&ns, &bundle),
    )
    .await;
    let proxy = eventually(
        "the controller injects the proxy with the Mesh's settings",
        DEFAULT_TIMEOUT,
        || async {
            let response = post_review(addr, &pki_a.ca_pem, &review).await?;
            if response["response"]["allowed"] != true {
                return Err(format!("not allowed: {response}"));
            }
            let proxy = added_containers(&response)
                .into_iter()
                .find(|c| c["name"] == PROXY_CONTAINER)
                .ok_or_else(|| format!("no proxy container added: {response}"))?;
            let anchors = env_value(&proxy, "TRELLIS_PROXY_IDENTITY_TRUST_ANCHORS");
            assert_eq!(
                anchors.as_deref(),
                Some(bundle.as_str()),
                "every injected proxy gets the whole trust-roots bundle"
            );
            Ok(proxy)
        },
    )
    .await;
    assert_eq!(
        proxy["restartPolicy"], "Always",
        "the 1.36 apiserver runs native sidecars: {proxy}"
    );
    // Serving webhooks and an index listed from the cluster: the controller is ready.
    eventually("the controller ready", DEFAULT_TIMEOUT, || async {
        let missing = readiness.not_ready();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    })
    .await;
    assert_eq!(
        proxy["image"],
        format!("{IMAGE_REPOSITORY}/proxy:{}", mesh.spec.version),
        "{proxy}"
    );

    // Replacing the Secret changes the certificate of new connections, with no restart.
    let pki_b = localhost_server("second");
    put_secret(&client, &ns, &webhook_tls_secret(&ns, &pki_b)).await;
    let want = CertificateDer::from_pem_slice(pki_b.cert_pem.as_bytes()).unwrap();
    eventually(
        "new connections get the replaced certificate",
        DEFAULT_TIMEOUT,
        || async {
            let (_, leaf) = admission::connect_tls(addr, &[&pki_a.ca_pem, &pki_b.ca_pem]).await?;
            if leaf == want {
                Ok(())
            } else {
                Err("still the first certificate".to_string())
            }
        },
    )
    .await;
    let response = eventually("a review over the new certificate", DEFAULT_TIMEOUT, || {
        post_review(addr, &pki_b.ca_pem, &review)
    })
    .await;
    assert!(
        added_containers(&response)
            .iter()
            .any(|c| c["name"] == PROXY_CONTAINER),
        "{response}"
    );

    shutdown.cancel();
    run.await.unwrap().unwrap();
}
