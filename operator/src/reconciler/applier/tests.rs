//! The applier against a scripted apiserver: the exact apply, list and delete requests.

use http::{Method, Response};
use k8s_openapi::api::{
    admissionregistration::v1::MutatingWebhookConfiguration,
    core::v1::{ConfigMap, Namespace},
};
use kube::client::Body;
use serde_json::{Value, json};
use trellis_crds::v1alpha1::mesh::MeshSpec;

use super::*;
use crate::{
    reconciler::render::push,
    test_util::{ApiServer, RenderFixture, mock_apiserver, not_found, obj, ok, settings},
};

/// Where the plan's namespace, ConfigMap and webhook configuration are applied.
const NAMESPACE: &str = "/api/v1/namespaces/mesh-ns";
const CONFIG: &str = "/api/v1/namespaces/mesh-ns/configmaps/config";
const INJECTOR: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/m1-proxy-injector";

/// A plan of a webhook configuration, a ConfigMap and the namespace, in that (wrong) order:
/// the applier must still apply the namespace first and the webhook configuration last.
fn plan() -> Plan {
    let settings = settings(&MeshSpec::default());
    let fixture = RenderFixture::default();
    let input = fixture.input(&settings);
    let mut plan = Plan::default();
    push::<MutatingWebhookConfiguration>(
        &mut plan,
        &input,
        json!({"metadata": {"name": "m1-proxy-injector"}}),
    )
    .unwrap();
    push::<ConfigMap>(
        &mut plan,
        &input,
        json!({"metadata": {"name": "config", "namespace": "mesh-ns"}, "data": {"k": "v"}}),
    )
    .unwrap();
    push::<Namespace>(&mut plan, &input, json!({"metadata": {"name": "mesh-ns"}})).unwrap();
    plan
}

/// Answers the next request with `response` after checking its method and path.
async fn expect(
    apiserver: &mut ApiServer,
    method: Method,
    path: &str,
    response: impl FnOnce(&Value) -> Response<Body>,
) -> (String, Value) {
    let (request, send) = apiserver.next_request().await.expect("a request");
    assert_eq!(request.method(), method, "{}", request.uri());
    assert_eq!(request.uri().path(), path);
    let query = request.uri().query().unwrap_or_default().to_string();
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    send.send_response(response(&body));
    (query, body)
}

/// Existing ConfigMaps `(name, ignored)` of the Mesh (`ignored` only sets the annotation).
fn config_maps(names: &[(&str, bool)]) -> Existing {
    let items = names
        .iter()
        .map(|(name, ignored)| meta("ConfigMap", name, *ignored))
        .collect();
    Existing {
        kinds: vec![(ApiResource::erase::<ConfigMap>(&()), true, items)],
        ignored: BTreeSet::new(),
    }
}

fn meta(kind: &str, name: &str, ignored: bool) -> PartialObjectMeta<DynamicObject> {
    let annotations = if ignored {
        json!({IGNORE_ANNOTATION: "true"})
    } else {
        json!({})
    };
    obj(json!({
        "apiVersion": "v1", "kind": kind,
        "metadata": {"name": name, "annotations": annotations},
    }))
}

/// Starts applying [`plan`] over nothing existing, against a scripted apiserver.
fn apply_plan() -> (tokio::task::JoinHandle<Result<(), Error>>, ApiServer) {
    let (client, apiserver) = mock_apiserver();
    let applier = Applier::new(client, "mesh-ns", "m1");
    let plan = plan();
    let task = tokio::spawn(async move { applier.apply(&plan, &Existing::default()).await });
    (task, apiserver)
}

#[tokio::test]
async fn applies_a_plan_in_stages_with_server_side_apply() {
    let (task, mut apiserver) = apply_plan();
    let (query, body) = expect(&mut apiserver, Method::PATCH, NAMESPACE, ok).await;
    assert!(query.contains("fieldManager=trellis-operator") && query.contains("force=true"));
    assert_eq!(body["kind"], "Namespace");
    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    let (_, body) = expect(&mut apiserver, Method::PATCH, CONFIG, ok).await;
    assert_eq!(body["data"]["k"], "v");
    expect(&mut apiserver, Method::PATCH, INJECTOR, ok).await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_failed_stage_stops_the_apply_and_names_the_object() {
    let (task, mut apiserver) = apply_plan();
    expect(&mut apiserver, Method::PATCH, NAMESPACE, |_| not_found()).await;
    let error = task.await.unwrap().unwrap_err();
    assert!(
        error.to_string().starts_with("apply Namespace mesh-ns: "),
        "{error}"
    );
}

#[tokio::test]
async fn ignored_objects_are_neither_applied_nor_pruned() {
    let (client, mut apiserver) = mock_apiserver();
    let applier = Applier::new(client, "mesh-ns", "m1");
    let plan = plan();
    let existing = Existing {
        ignored: [("ConfigMap".to_string(), "config".to_string())].into(),
        ..config_maps(&[("config", true)])
    };
    let task = tokio::spawn(async move {
        applier.apply(&plan, &existing).await?;
        applier.prune(&plan, existing).await
    });
    expect(&mut apiserver, Method::PATCH, NAMESPACE, ok).await;
    expect(&mut apiserver, Method::PATCH, INJECTOR, ok).await;
    assert!(task.await.unwrap().unwrap().is_empty());
}

#[tokio::test]
async fn prunes_a_stale_object_and_keeps_the_rendered_ones() {
    let (client, mut apiserver) = mock_apiserver();
    let applier = Applier::new(client, "mesh-ns", "m1");
    let plan = plan();
    let existing = config_maps(&[("config", false), ("stale", false), ("gone", false)]);
    let task = tokio::spawn(async move { applier.prune(&plan, existing).await });
    let (_, body) = expect(
        &mut apiserver,
        Method::DELETE,
        "/api/v1/namespaces/mesh-ns/configmaps/stale",
        |_| ok(&json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
    )
    .await;
    assert_eq!(body["propagationPolicy"], "Background");
    // Already deleted by someone else: not an error, and not reported.
    expect(
        &mut apiserver,
        Method::DELETE,
        "/api/v1/namespaces/mesh-ns/configmaps/gone",
        |_| not_found(),
    )
    .await;
    assert_eq!(task.await.unwrap().unwrap(), ["ConfigMap stale"]);
}

#[tokio::test]
async fn lists_every_managed_kind_by_the_mesh_selector() {
    let (client, mut apiserver) = mock_apiserver();
    let applier = Applier::new(client, "mesh-ns", "m1");
    let task = tokio::spawn(async move { applier.existing().await });
    let kinds = managed_kinds();
    let mut seen = Vec::new();
    for _ in &kinds {
        let (request, send) = apiserver.next_request().await.expect("a list");
        assert_eq!(request.method(), Method::GET);
        let query = request.uri().query().unwrap_or_default().to_string();
        assert!(
            query.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dtrellis-operator%2Ctrellis.dev%2Fmesh%3Dm1"),
            "{query}"
        );
        let path = request.uri().path().to_string();
        let items = if path == "/api/v1/namespaces/mesh-ns/secrets" {
            json!([{"metadata": {"name": "kept", "annotations": {IGNORE_ANNOTATION: "true"}}}])
        } else {
            json!([])
        };
        seen.push(path);
        send.send_response(ok(&json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
            "metadata": {}, "items": items,
        })));
    }
    let existing = task.await.unwrap().unwrap();
    assert_eq!(existing.kinds.len(), kinds.len());
    assert!(seen.contains(&"/apis/apps/v1/namespaces/mesh-ns/deployments".to_string()));
    assert!(seen.contains(&"/apis/rbac.authorization.k8s.io/v1/clusterroles".to_string()));
    assert_eq!(
        existing.ignored,
        BTreeSet::from([("Secret".to_string(), "kept".to_string())])
    );
}
