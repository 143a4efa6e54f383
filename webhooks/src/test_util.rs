//! Fakes and fixtures for tests: lookups backed by maps (also for other crates' tests, with
//! the `test-util` feature), and AdmissionReview bodies for this crate's router tests.

use std::collections::BTreeMap;
#[cfg(test)]
use std::sync::Arc;

#[cfg(test)]
use axum::body::Body;
#[cfg(test)]
use http::{Request, StatusCode};
#[cfg(test)]
use http_body_util::BodyExt;
use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::LabelSelector};
#[cfg(test)]
use kube::core::{DynamicObject, admission::AdmissionReview};
use kube::core::{Selector, SelectorExt};
use parking_lot::Mutex;
#[cfg(test)]
use serde_json::{Value, json};
#[cfg(test)]
use tower::ServiceExt;
use trellis_crds::v1alpha1::server::Server;
#[cfg(test)]
use trellis_crds::{settings::MeshSettings, v1alpha1::mesh::MeshSpec};

#[cfg(test)]
use crate::{State, inject::template::InjectConfig, router};
use crate::{
    error::LookupError,
    lookup::{LookupFuture, NamespaceLookup, PolicyLookup},
};

/// Test trust bundle.
#[cfg(test)]
pub(crate) const TRUST_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
/// Default proxy image in tests.
#[cfg(test)]
pub(crate) const PROXY_IMAGE: &str = "registry.test/trellis/proxy:0.1.0";
/// Repository of [`PROXY_IMAGE`], whose tag is the default Mesh's version.
#[cfg(test)]
pub(crate) const IMAGE_REPOSITORY: &str = "registry.test/trellis";

/// Namespaces (name → annotations), Servers and pods held in memory; `fail` makes every
/// lookup fail.
#[derive(Debug, Default)]
pub struct FakeLookup {
    /// Namespace name → its annotations.
    pub namespaces: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// Servers of every namespace.
    pub servers: Mutex<Vec<Server>>,
    /// Pods of every namespace.
    pub pods: Mutex<Vec<Pod>>,
    /// Whether every lookup fails, as with an unreachable apiserver.
    pub fail: Mutex<bool>,
}

impl FakeLookup {
    /// A lookup holding one namespace, `name`, annotated with `annotations`.
    pub fn with_namespace(name: &str, annotations: &[(&str, &str)]) -> Self {
        let lookup = Self::default();
        lookup.namespaces.lock().insert(
            name.to_string(),
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        lookup
    }

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
    ) -> LookupFuture<'a, Option<BTreeMap<String, String>>> {
        Box::pin(async move {
            self.check()?;
            Ok(self.namespaces.lock().get(name).cloned())
        })
    }
}

impl PolicyLookup for FakeLookup {
    fn servers<'a>(&'a self, namespace: &'a str) -> LookupFuture<'a, Vec<Server>> {
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

    fn server_exists<'a>(&'a self, namespace: &'a str, name: &'a str) -> LookupFuture<'a, bool> {
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
    ) -> LookupFuture<'a, Vec<Pod>> {
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
#[cfg(test)]
pub(crate) fn mk_config() -> InjectConfig {
    let mesh = MeshSettings::try_from(&MeshSpec::default()).unwrap();
    InjectConfig::from_settings(&mesh, IMAGE_REPOSITORY, TRUST_PEM)
}

/// State over a fake lookup with namespace `ns` annotated with `annotations`.
#[cfg(test)]
pub(crate) fn mk_state(ns: &str, annotations: &[(&str, &str)]) -> (State, Arc<FakeLookup>) {
    let lookup = Arc::new(FakeLookup::with_namespace(ns, annotations));
    (
        State::new(mk_config(), lookup.clone(), lookup.clone()),
        lookup,
    )
}

/// An AdmissionReview body for `operation` on `object` of the given group/version/kind.
#[cfg(test)]
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
#[cfg(test)]
pub(crate) fn mk_pod_review(namespace: &str, pod: Value) -> Value {
    mk_review(("", "v1", "Pod", "pods"), namespace, "", "CREATE", pod)
}

/// A minimal app pod with `annotations`, one container exposing port 8080.
#[cfg(test)]
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
#[cfg(test)]
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
#[cfg(test)]
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
