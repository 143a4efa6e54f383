//! Router-level tests of the validating webhook: Server overlap, AuthorizationPolicy
//! targets, kinds without rules, and malformed bodies.

use std::sync::Arc;

use http::StatusCode;
use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::LabelSelector};
use serde_json::{Value, json};
use trellis_crds::v1alpha1::server::Server;

use super::server::selectors_overlap;
use crate::{
    State, VALIDATE_PATH,
    test_util::{FakeLookup, mk_review, mk_state, post, review},
};

const NS: &str = "shop";
const SERVERS: (&str, &str, &str, &str) = ("policy.trellis.dev", "v1alpha1", "Server", "servers");
const POLICIES: (&str, &str, &str, &str) = (
    "policy.trellis.dev",
    "v1alpha1",
    "AuthorizationPolicy",
    "authorizationpolicies",
);

fn mk_server(name: &str, selector: Value, port: Value) -> Value {
    json!({
        "apiVersion": "policy.trellis.dev/v1alpha1",
        "kind": "Server",
        "metadata": { "name": name, "namespace": NS },
        "spec": { "podSelector": selector, "port": port },
    })
}

/// Stores Server `name` (selecting `selector`, on `port`) in `lookup`, as if it existed.
fn add_server(lookup: &FakeLookup, name: &str, selector: Value, port: Value) {
    let server: Server = serde_json::from_value(mk_server(name, selector, port)).unwrap();
    lookup.servers.lock().push(server);
}

/// State whose lookup holds Server `name`, selecting the pods labelled `app: web`, on port
/// 8080.
fn state_with_web_server(name: &str) -> (State, Arc<FakeLookup>) {
    let (state, lookup) = mk_state(NS, &[]);
    add_server(
        &lookup,
        name,
        json!({ "matchLabels": { "app": "web" } }),
        json!(8080),
    );
    (state, lookup)
}

fn selector(value: Value) -> LabelSelector {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn overlapping_server_is_refused_with_both_names() {
    let (state, _) = state_with_web_server("web-http");

    let new = mk_server(
        "web-all",
        json!({ "matchExpressions": [{ "key": "app", "operator": "Exists" }] }),
        json!(8080),
    );
    let response = review(
        state.clone(),
        VALIDATE_PATH,
        &mk_review(SERVERS, NS, "web-all", "CREATE", new),
    )
    .await;
    assert!(!response.allowed);
    assert!(
        response
            .result
            .message
            .contains("Server web-all overlaps Server web-http on port 8080"),
        "{}",
        response.result.message
    );

    for (name, sel, port) in [
        (
            "other-port",
            json!({ "matchLabels": { "app": "web" } }),
            json!(9090),
        ),
        (
            "named-port-no-pods",
            json!({ "matchLabels": { "app": "web" } }),
            json!("http"),
        ),
        (
            "disjoint",
            json!({ "matchLabels": { "app": "api" } }),
            json!(8080),
        ),
        (
            "excluded",
            json!({ "matchExpressions": [{ "key": "app", "operator": "NotIn", "values": ["web"] }] }),
            json!(8080),
        ),
    ] {
        let response = review(
            state.clone(),
            VALIDATE_PATH,
            &mk_review(SERVERS, NS, name, "CREATE", mk_server(name, sel, port)),
        )
        .await;
        assert!(response.allowed, "{name}: {}", response.result.message);
    }

    let update = mk_server(
        "web-http",
        json!({ "matchLabels": { "app": "web", "tier": "a" } }),
        json!(8080),
    );
    let response = review(
        state,
        VALIDATE_PATH,
        &mk_review(SERVERS, NS, "web-http", "UPDATE", update),
    )
    .await;
    assert!(response.allowed, "a Server does not overlap itself");
}

fn mk_pod(name: &str, labels: Value, ports: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": NS, "labels": labels },
        "spec": { "containers": [{ "name": "app", "image": "registry.test/web:1", "ports": ports }] },
    }))
    .unwrap()
}

#[tokio::test]
async fn named_port_that_is_the_same_number_on_a_selected_pod_is_refused() {
    let (state, lookup) = state_with_web_server("web-8080");
    let named = |name: &str, port: &str| {
        mk_review(
            SERVERS,
            NS,
            name,
            "CREATE",
            mk_server(
                name,
                json!({ "matchLabels": { "app": "web" } }),
                json!(port),
            ),
        )
    };

    let response = review(state.clone(), VALIDATE_PATH, &named("web-http", "http")).await;
    assert!(
        response.allowed,
        "no pod to resolve http on: {}",
        response.result.message
    );

    lookup.pods.lock().push(mk_pod(
        "api-1",
        json!({ "app": "api" }),
        json!([{ "name": "http", "containerPort": 8080 }]),
    ));
    lookup.pods.lock().push(mk_pod(
        "web-1",
        json!({ "app": "web" }),
        json!([{ "name": "http", "containerPort": 9090 }, { "name": "admin", "containerPort": 8080 }]),
    ));
    let response = review(state.clone(), VALIDATE_PATH, &named("web-http", "http")).await;
    assert!(
        response.allowed,
        "http is 9090 on the pods both select: {}",
        response.result.message
    );

    let response = review(state.clone(), VALIDATE_PATH, &named("web-admin", "admin")).await;
    assert!(!response.allowed, "admin is 8080 on web-1");
    let message = &response.result.message;
    assert!(
        message.contains("Server web-admin (port admin) overlaps Server web-8080 (port 8080)")
            && message.contains("port 8080 of pod web-1"),
        "{message}"
    );

    // Two different names that are one port on a pod.
    lookup.servers.lock().clear();
    let http: Server = serde_json::from_value(mk_server(
        "web-http",
        json!({ "matchLabels": { "app": "web" } }),
        json!("http"),
    ))
    .unwrap();
    lookup.servers.lock().push(http);
    lookup.pods.lock().push(mk_pod(
        "web-2",
        json!({ "app": "web" }),
        json!([{ "name": "http", "containerPort": 7070, "protocol": "TCP" }, { "name": "web", "containerPort": 7070, "protocol": "UDP" }]),
    ));
    let response = review(state, VALIDATE_PATH, &named("web-web", "web")).await;
    assert!(!response.allowed);
    assert!(
        response.result.message.contains(
            "Server web-web (port web) overlaps Server web-http (port http): both are port 7070 of pod web-2"
        ),
        "{}",
        response.result.message
    );
}

#[test]
fn selector_overlap_is_exact_per_key() {
    let web = selector(json!({ "matchLabels": { "app": "web" } }));
    assert!(
        selectors_overlap(&web, &selector(json!({}))),
        "empty selects all"
    );
    assert!(selectors_overlap(
        &web,
        &selector(json!({ "matchLabels": { "tier": "front" } }))
    ));
    assert!(!selectors_overlap(
        &web,
        &selector(json!({ "matchLabels": { "app": "api" } }))
    ));
    assert!(!selectors_overlap(
        &web,
        &selector(json!({ "matchExpressions": [{ "key": "app", "operator": "DoesNotExist" }] }))
    ));
    assert!(!selectors_overlap(
        &selector(
            json!({ "matchExpressions": [{ "key": "app", "operator": "In", "values": ["a", "b"] }] })
        ),
        &selector(
            json!({ "matchExpressions": [{ "key": "app", "operator": "NotIn", "values": ["a", "b"] }] })
        ),
    ));
    assert!(selectors_overlap(
        &selector(
            json!({ "matchExpressions": [{ "key": "app", "operator": "In", "values": ["a", "b"] }] })
        ),
        &selector(
            json!({ "matchExpressions": [{ "key": "app", "operator": "NotIn", "values": ["a"] }] })
        ),
    ));
}

/// A review creating AuthorizationPolicy `allow-web` in [`NS`] that targets `target`.
fn mk_policy_review(target: Value) -> Value {
    let policy = json!({
        "apiVersion": "policy.trellis.dev/v1alpha1",
        "kind": "AuthorizationPolicy",
        "metadata": { "name": "allow-web", "namespace": NS },
        "spec": { "targetRef": target, "requiredAuthenticationRefs": [] },
    });
    mk_review(POLICIES, NS, "allow-web", "CREATE", policy)
}

#[tokio::test]
async fn policy_for_missing_server_is_admitted_with_a_warning() {
    let (state, lookup) = mk_state(NS, &[]);
    let body = mk_policy_review(json!({ "kind": "Server", "name": "web-http" }));
    let response = review(state.clone(), VALIDATE_PATH, &body).await;
    assert!(response.allowed);
    let warnings = response.warnings.unwrap_or_default();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("target Server web-http does not exist in namespace shop"));

    add_server(&lookup, "web-http", json!({}), json!(8080));
    let response = review(state, VALIDATE_PATH, &body).await;
    assert!(response.allowed);
    assert_eq!(response.warnings, None);
}

#[tokio::test]
async fn policy_for_another_namespace_is_refused() {
    let (state, _) = mk_state(NS, &[]);
    let body = mk_policy_review(json!({ "kind": "Namespace", "name": "other" }));
    let response = review(state.clone(), VALIDATE_PATH, &body).await;
    assert!(!response.allowed);
    assert!(
        response.result.message.contains("Namespace other"),
        "{}",
        response.result.message
    );

    let own = mk_policy_review(json!({ "kind": "Namespace", "name": NS }));
    assert!(review(state, VALIDATE_PATH, &own).await.allowed);
}

#[tokio::test]
async fn kinds_without_rules_and_deletes_are_admitted() {
    let (state, lookup) = mk_state(NS, &[]);
    *lookup.fail.lock() = true;
    let profile = json!({ "apiVersion": "trellis.dev/v1alpha1", "kind": "ServiceProfile", "metadata": { "name": "p" }, "spec": {} });
    let body = mk_review(
        (
            "trellis.dev",
            "v1alpha1",
            "ServiceProfile",
            "serviceprofiles",
        ),
        NS,
        "p",
        "CREATE",
        profile,
    );
    assert!(review(state.clone(), VALIDATE_PATH, &body).await.allowed);
    let delete = mk_review(SERVERS, NS, "web", "DELETE", Value::Null);
    assert!(review(state, VALIDATE_PATH, &delete).await.allowed);
}

/// The `error` of a JSON error response.
fn error_message(body: &Value) -> &str {
    body["error"].as_str().unwrap()
}

#[tokio::test]
async fn lookup_failure_and_malformed_bodies_are_errors() {
    let (state, lookup) = mk_state(NS, &[]);
    let (status, body) = post(state.clone(), VALIDATE_PATH, "[]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_message(&body).starts_with("malformed AdmissionReview"),
        "{body}"
    );

    *lookup.fail.lock() = true;
    let server = mk_server("web", json!({}), json!(80));
    let (status, body) = post(
        state,
        VALIDATE_PATH,
        mk_review(SERVERS, NS, "web", "CREATE", server).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        error_message(&body).contains("Servers in namespace shop"),
        "{body}"
    );
}
