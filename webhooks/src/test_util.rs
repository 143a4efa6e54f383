//! Fakes and fixtures for router tests: lookups backed by maps, and AdmissionReview bodies.

use std::{collections::BTreeMap, sync::Arc};

use axum::body::Body;
use futures::future::BoxFuture;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::LabelSelector};
use kube::core::{DynamicObject, Selector, SelectorExt, admission::AdmissionReview};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tower::ServiceExt;
use trellis_crds::{
    settings::MeshSettings,
    v1alpha1::{mesh::MeshSpec, server::Server},
};

use crate::{
    State,
    error::LookupError,
    inject::template::InjectConfig,
    lookup::{NamespaceLookup, PolicyLookup},
    router,
};

/// Test trust bundle.
pub(crate) const TRUST_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
/// Default proxy image in tests.
pub(crate) const PROXY_IMAGE: &str = "registry.test/trellis/proxy:0.1.0";
/// Repository of [`PROXY_IMAGE`], whose tag is the default Mesh's version.
pub(crate) const IMAGE_REPOSITORY: &str = "registry.test/trellis";

/// Namespaces (name → annotations), Servers and pods held in memory; `fail` makes every
/// lookup fail.
#[derive(Default)]
pub(crate) struct FakeLookup {
    pub(crate) namespaces: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    pub(crate) servers: Mutex<Vec<Server>>,
    pub(crate) pods: Mutex<Vec<Pod>>,
    pub(crate) fail: Mutex<bool>,
}

impl FakeLookup {
    fn check(&self) -> Result<(), LookupError> {
        if *self.fail.lock() {
            Err("apiserver unavailable".into())
        } else {
            Ok(())
        }
    }
}

impl NamespaceLookup for FakeLookup {
    fn namespace_annotations<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<BTreeMap<String, String>>, LookupError>> {
        Box::pin(async move {
            self.check()?;
            Ok(self.namespaces.lock().get(name).cloned())
        })
    }
}

impl PolicyLookup for FakeLookup {
    fn servers<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Server>, LookupError>> {
        Box::pin(async move {
            self.check()?;
            Ok(self
                .servers
                .lock()
                .iter()
                .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
                .cloned()
                .collect())
        })
    }

    fn server_exists<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool, LookupError>> {
        Box::pin(async move {
            self.check()?;
            Ok(self.servers.lock().iter().any(|s| {
                s.metadata.namespace.as_deref() == Some(namespace)
                    && s.metadata.name.as_deref() == Some(name)
            }))
        })
    }

    fn pods<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a LabelSelector,
    ) -> BoxFuture<'a, Result<Vec<Pod>, LookupError>> {
        Box::pin(async move {
            self.check()?;
            let selector = Selector::try_from(selector.clone())?;
            let empty = BTreeMap::new();
            Ok(self
                .pods
                .lock()
                .iter()
                .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
                .filter(|p| selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty)))
                .cloned()
                .collect())
        })
    }
}

/// Injection settings from a default Mesh.
pub(crate) fn mk_config() -> InjectConfig {
    let mesh = MeshSettings::try_from(&MeshSpec::default()).unwrap();
    InjectConfig::from_settings(&mesh, IMAGE_REPOSITORY, TRUST_PEM)
}

/// State over a fake lookup with namespace `ns` annotated with `annotations`.
pub(crate) fn mk_state(ns: &str, annotations: &[(&str, &str)]) -> (State, Arc<FakeLookup>) {
    let lookup = Arc::new(FakeLookup::default());
    lookup.namespaces.lock().insert(
        ns.to_string(),
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    (
        State::new(mk_config(), lookup.clone(), lookup.clone()),
        lookup,
    )
}

/// An AdmissionReview body for `operation` on `object` of the given group/version/kind.
pub(crate) fn mk_review(
    (group, version, kind, resource): (&str, &str, &str, &str),
    namespace: &str,
    name: &str,
    operation: &str,
    object: Value,
) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0b9e5a0c-1111-2222-3333-444455556666",
            "kind": { "group": group, "version": version, "kind": kind },
            "resource": { "group": group, "version": version, "resource": resource },
            "namespace": namespace,
            "name": name,
            "operation": operation,
            "userInfo": { "username": "system:serviceaccount:kube-system:replicaset-controller" },
            "object": object,
            "oldObject": null,
            "dryRun": false,
        }
    })
}

/// A pod CREATE review.
pub(crate) fn mk_pod_review(namespace: &str, pod: Value) -> Value {
    mk_review(("", "v1", "Pod", "pods"), namespace, "", "CREATE", pod)
}

/// A minimal app pod with `annotations`, one container exposing port 8080.
pub(crate) fn mk_pod(annotations: &[(&str, &str)]) -> Value {
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "generateName": "web-", "labels": { "app": "web" }, "annotations": annotations },
        "spec": {
            "serviceAccountName": "web",
            "containers": [{ "name": "app", "image": "registry.test/web:1", "ports": [{ "containerPort": 8080 }] }],
        }
    })
}

/// Posts `body` to `path` and returns the status and the body parsed as JSON (or a string).
pub(crate) async fn post(state: State, path: &str, body: impl Into<Body>) -> (StatusCode, Value) {
    let response = router(state)
        .oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(body.into())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

/// Posts a review and returns its response, asserting HTTP 200 and a matching uid.
pub(crate) async fn review(
    state: State,
    path: &str,
    review: &Value,
) -> kube::core::admission::AdmissionResponse {
    let (status, body) = post(state, path, review.to_string()).await;
    assert_eq!(status, StatusCode::OK, "body: {body}");
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(body).unwrap();
    let response = review.response.expect("a response");
    assert_eq!(response.uid, "0b9e5a0c-1111-2222-3333-444455556666");
    response
}
