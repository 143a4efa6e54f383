use serde_json::json;
use trellis_crds::{common::status::reasons as policy_reasons, gateway::reasons};

use super::*;
use crate::{
    control_plane::index::ClusterSettings,
    test_util::{mk_service, obj},
};

fn now() -> Time {
    Time(Timestamp::from_second(1_800_000_000).unwrap())
}

fn route(status: serde_json::Value) -> HTTPRoute {
    obj(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "shop", "generation": 2, "resourceVersion": "7"},
        "spec": {"parentRefs": [{"group": "core", "kind": "Service", "name": "web"}],
                 "rules": [{"backendRefs": [{"name": "nope", "port": 80}]}]},
        "status": status,
    }))
}

fn route_write(writes: &[Write]) -> &serde_json::Value {
    writes
        .iter()
        .find_map(|w| match w {
            Write::Route { patch, .. } => Some(patch),
            _ => None,
        })
        .unwrap()
}

#[test]
fn route_status_is_written_once_and_keeps_other_controllers() {
    let mut index = Index::new(ClusterSettings::default());
    index.apply_service(&mk_service("shop", "web", json!({})));
    let gateway_entry = json!({
        "parentRef": {"name": "gw"}, "controllerName": "example.com/gateway",
        "conditions": [],
    });
    index.apply_http_route(&route(json!({"parents": [gateway_entry]})));
    let writes = pending(&index, &now());
    assert_eq!(writes.len(), 1, "{writes:?}");
    let patch = route_write(&writes);
    assert_eq!(patch["metadata"]["resourceVersion"], "7");
    let parents = patch["status"]["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0]["controllerName"], "example.com/gateway");
    assert_eq!(parents[1]["controllerName"], CONTROLLER_NAME);
    let conditions = parents[1]["conditions"].as_array().unwrap();
    assert_eq!(conditions[0]["type"], "Accepted");
    assert_eq!(conditions[0]["status"], "True");
    assert_eq!(conditions[0]["observedGeneration"], 2);
    assert_eq!(conditions[1]["type"], "ResolvedRefs");
    assert_eq!(conditions[1]["status"], "False");
    assert_eq!(conditions[1]["reason"], reasons::BACKEND_NOT_FOUND);

    // Once the object carries it, nothing more is written.
    index.apply_http_route(&route(patch["status"].clone()));
    assert_eq!(pending(&index, &Time(Timestamp::now())), []);

    // The backend appears: ResolvedRefs flips with a new transition time, Accepted keeps its.
    index.apply_service(&mk_service("shop", "nope", json!({})));
    let later = Time(Timestamp::from_second(1_900_000_000).unwrap());
    let writes = pending(&index, &later);
    let parents = route_write(&writes)["status"]["parents"].clone();
    let ours = &parents[1]["conditions"];
    assert_eq!(ours[1]["status"], "True");
    assert_eq!(ours[1]["lastTransitionTime"], json!(later));
    assert_eq!(ours[0]["lastTransitionTime"], json!(now()));
}

#[test]
fn policy_objects_get_accepted() {
    let mut index = Index::new(ClusterSettings::default());
    let server = |name: &str| -> Server {
        obj(json!({
            "apiVersion": "policy.trellis.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": name, "namespace": "shop", "generation": 1},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": "http"},
        }))
    };
    index.apply_policy(&server("web-a"));
    index.apply_policy(&server("web-b"));
    let authz = |target: &str| -> AuthorizationPolicy {
        obj(json!({
            "apiVersion": "policy.trellis.dev/v1alpha1", "kind": "AuthorizationPolicy",
            "metadata": {"name": format!("to-{target}"), "namespace": "shop", "generation": 1},
            "spec": {"targetRef": {"group": "policy.trellis.dev", "kind": "Server", "name": target},
                     "requiredAuthenticationRefs": [
                         {"group": "policy.trellis.dev", "kind": "MeshTLSAuthentication", "name": "clients"}]},
        }))
    };
    index.apply_policy(&authz("web-a"));
    index.apply_policy(&authz("missing"));
    let writes = pending(&index, &now());
    let condition = |w: &Write| match w {
        Write::Server { name, patch, .. } | Write::AuthorizationPolicy { name, patch, .. } => {
            (name.clone(), patch["status"]["conditions"][0].clone())
        }
        Write::Route { .. } => panic!("no routes"),
    };
    let found: Vec<_> = writes.iter().map(condition).collect();
    assert_eq!(found.len(), 4, "{found:?}");
    let get = |n: &str| found.iter().find(|(name, _)| name == n).unwrap().1.clone();
    assert_eq!(get("web-a")["status"], "True");
    assert_eq!(get("web-b")["status"], "False");
    assert_eq!(get("web-b")["reason"], policy_reasons::CONFLICT);
    assert!(
        get("web-b")["message"]
            .as_str()
            .unwrap()
            .contains("shop/web-a")
    );
    assert_eq!(get("to-missing")["reason"], policy_reasons::REF_NOT_FOUND);
    assert!(
        get("to-missing")["message"]
            .as_str()
            .unwrap()
            .contains("spec.targetRef: Server shop/missing not found")
    );
    let to_a = get("to-web-a");
    assert_eq!(
        to_a["status"], "False",
        "the MeshTLSAuthentication is missing"
    );
    assert!(
        to_a["message"]
            .as_str()
            .unwrap()
            .contains("spec.requiredAuthenticationRefs[0]")
    );
    let body = writes
        .iter()
        .find_map(|w| match w {
            Write::Server { patch, .. } => Some(patch.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(body["apiVersion"], "policy.trellis.dev/v1alpha1");
    assert_eq!(body["kind"], "Server");
    assert_eq!(body["status"]["observedGeneration"], 1);
}
