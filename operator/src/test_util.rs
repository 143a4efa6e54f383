//! Fixtures shared by the operator's unit tests: objects decoded from JSON, apiserver
//! clients (offline or scripted) and the inputs of rendering.

use http::{Request, Response};
use k8s_openapi::api::{
    core::v1::{Pod, Service},
    discovery::v1::EndpointSlice,
};
use kube::{Client, client::Body};
use serde_json::{Value, json};
use trellis_api::well_known;
use trellis_crds::{settings::MeshSettings, v1alpha1::mesh::MeshSpec};

use crate::{
    control_plane::index::endpoints::SERVICE_NAME_LABEL,
    reconciler::render::{IdentityRefs, Images, RenderInput},
};

/// Decodes a JSON fixture into a typed object.
pub(crate) fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// A Service `ns/name` with one `http` port (80 → `http`).
pub(crate) fn mk_service(ns: &str, name: &str, annotations: Value) -> Service {
    obj(json!({
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"clusterIP": "198.19.0.10", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
}

/// An EndpointSlice of Service `svc` with port 8080 and one endpoint per `(pod, ip, ready)`.
pub(crate) fn mk_slice(
    ns: &str,
    name: &str,
    svc: &str,
    pods: &[(&str, &str, bool)],
) -> EndpointSlice {
    let endpoints: Vec<_> = pods
        .iter()
        .map(|(pod, ip, ready)| {
            json!({
                "addresses": [ip],
                "conditions": {"ready": ready},
                "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}
            })
        })
        .collect();
    obj(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {SERVICE_NAME_LABEL: svc}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": endpoints
    }))
}

/// A pod of Deployment `web` (ServiceAccount `web`, port `http` 8080), meshed or not.
pub(crate) fn mk_pod(ns: &str, name: &str, ip: &str, meshed: bool, annotations: Value) -> Pod {
    let mut labels = json!({"app": "web", "pod-template-hash": "abc12"});
    if meshed {
        labels[well_known::CONTROL_PLANE_NS_LABEL] = "trellis-system".into();
    }
    obj(json!({
        "metadata": {
            "name": name, "namespace": ns, "labels": labels, "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc12", "uid": "u", "controller": true}]
        },
        "spec": {"serviceAccountName": "web", "containers": [{"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": ip, "podIPs": [{"ip": ip}]}
    }))
}

/// A client whose every request fails: for code that must not call the apiserver, or is
/// fed objects directly.
pub(crate) fn offline_client() -> Client {
    let service = tower::service_fn(|_: Request<Body>| async {
        Err::<Response<Body>, _>(std::io::Error::other("no apiserver in unit tests"))
    });
    Client::new(service, "default")
}

/// The test's side of a scripted apiserver.
pub(crate) type ApiServer = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// A client talking to a scripted apiserver: the test takes each request from the handle
/// and answers it.
pub(crate) fn mock_apiserver() -> (Client, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// A 200 response with `body` as JSON.
pub(crate) fn ok(body: &Value) -> Response<Body> {
    Response::new(Body::from(serde_json::to_vec(body).unwrap()))
}

/// A 404 `Status` response.
pub(crate) fn not_found() -> Response<Body> {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": "NotFound", "code": 404, "message": "not found"});
    Response::builder()
        .status(404)
        .body(Body::from(serde_json::to_vec(&status).unwrap()))
        .unwrap()
}

/// The settings of `spec`, which must check.
pub(crate) fn settings(spec: &MeshSpec) -> MeshSettings {
    MeshSettings::try_from(spec).unwrap()
}

/// What rendering needs besides the settings, with test values.
#[derive(Debug)]
pub(crate) struct RenderFixture {
    /// Images under `example.test/trellis`.
    pub(crate) images: Images,
    /// Public identity material with fixed serials.
    pub(crate) refs: IdentityRefs,
}

impl Default for RenderFixture {
    fn default() -> Self {
        Self {
            images: Images {
                repository: "example.test/trellis".to_string(),
                prometheus: "prom/prometheus:v3".to_string(),
                otel_collector: "otel/collector:1".to_string(),
            },
            refs: IdentityRefs {
                issuer_secret: "trellis-identity-issuer".to_string(),
                issuer_serial: "01".to_string(),
                trust_bundle: "PEM".to_string(),
                webhook_ca_bundle: "CA".to_string(),
                webhook_serial: "02".to_string(),
                secrets: Vec::new(),
            },
        }
    }
}

impl RenderFixture {
    /// The render input of Mesh `m1` (uid `uid-1`, owning its namespace) for `settings`.
    pub(crate) fn input<'a>(&'a self, settings: &'a MeshSettings) -> RenderInput<'a> {
        RenderInput {
            mesh_name: "m1",
            mesh_uid: "uid-1",
            settings,
            images: &self.images,
            identity: &self.refs,
            own_namespace: true,
        }
    }
}
