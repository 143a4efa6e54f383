use serde_json::{Value, json};
use trellis_api::{
    inbound::{ClientAuthentication, Meta, PortSpec, ServerPolicy, Workload},
    route::{Filter, PathMatch, RouteKind, RouteRef},
};
use trellis_crds::{
    common::status::reasons as policy_reasons,
    gateway::{conditions, grpc_route::GRPCRoute, http_route::HTTPRoute, reasons},
    v1alpha1::{authorization_policy::AuthorizationPolicy, server::Server},
};

use crate::{
    control_plane::index::{ClusterSettings, Index, routes::AnyRoute},
    test_util::{mk_pod, obj},
};

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-02T00:00:00Z";

fn index_with_server(access_policy: &str) -> Index {
    let mut index = Index::new(ClusterSettings::default());
    index.apply_pod(&mk_pod("shop", "web-1", "198.18.128.1", true, json!({})));
    index.apply_policy(&server("web-http", access_policy));
    index
}

fn server(name: &str, access_policy: &str) -> Server {
    obj(json!({
        "apiVersion": "policy.trellis.dev/v1alpha1", "kind": "Server",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": "http",
                 "proxyProtocol": "HTTP/1", "accessPolicy": access_policy}
    }))
}

fn server_parent(name: &str) -> Value {
    json!([{"group": "policy.trellis.dev", "kind": "Server", "name": name}])
}

fn http_route(name: &str, created: &str, parents: Value, rules: Value) -> HTTPRoute {
    obj(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
        "spec": {"parentRefs": parents, "rules": rules},
    }))
}

fn prefix_route(name: &str, created: &str, prefix: &str) -> HTTPRoute {
    http_route(
        name,
        created,
        server_parent("web-http"),
        json!([{"matches": [{"path": {"type": "PathPrefix", "value": prefix}}]}]),
    )
}

/// An AuthorizationPolicy `name` on `target` (`kind/name`) for ServiceAccount `client`.
fn policy(name: &str, kind: &str, target: &str, client: &str) -> AuthorizationPolicy {
    obj(json!({
        "apiVersion": "policy.trellis.dev/v1alpha1", "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"targetRef": {"kind": kind, "name": target},
                 "requiredAuthenticationRefs": [{"kind": "ServiceAccount", "name": client}]}
    }))
}

fn inbound(index: &Index) -> ServerPolicy {
    index
        .inbound_policy(&PortSpec {
            workload: Workload {
                namespace: "shop".into(),
                pod: "web-1".into(),
            },
            port: 8080,
        })
        .unwrap()
}

fn names(meta: impl IntoIterator<Item = Meta>) -> Vec<String> {
    meta.into_iter().map(|m| m.name().to_string()).collect()
}

fn identity(sa: &str) -> ClientAuthentication {
    ClientAuthentication::MeshTls {
        identities: vec![format!(
            "{sa}.shop.serviceaccount.identity.trellis.cluster.local"
        )],
        suffixes: Vec::new(),
    }
}

#[test]
fn routes_attach_to_their_server_most_specific_first() {
    let mut index = index_with_server("deny");
    assert!(inbound(&index).routes.is_empty(), "no route: the catch-all");
    index.apply_http_route(&prefix_route("admin", T0, "/admin"));
    index.apply_http_route(&prefix_route("public", T1, "/public"));
    // Routes on a Service, or on another Server, are not this Server's.
    index.apply_http_route(&http_route(
        "outbound",
        T0,
        json!([{"group": "core", "kind": "Service", "name": "web"}]),
        json!([{"matches": [{"path": {"type": "Exact", "value": "/x"}}]}]),
    ));
    index.apply_http_route(&http_route(
        "other",
        T0,
        server_parent("other"),
        json!([{}]),
    ));

    let routes = inbound(&index).routes;
    let paths: Vec<_> = routes
        .iter()
        .map(|r| r.rules[0].matches[0].path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            Some(PathMatch::Prefix("/public".into())),
            Some(PathMatch::Prefix("/admin".into())),
        ],
        "the longer prefix first"
    );
    assert_eq!(routes[0].kind, RouteKind::Http);
    assert_eq!(
        routes[0].meta,
        RouteRef::Resource {
            group: "gateway.networking.k8s.io".into(),
            kind: "HTTPRoute".into(),
            namespace: "shop".into(),
            name: "public".into(),
            port: 0,
        }
    );
}

#[test]
fn request_filters_apply_and_backends_are_ignored() {
    let mut index = index_with_server("deny");
    index.apply_http_route(&http_route(
        "edit",
        T0,
        server_parent("web-http"),
        json!([{
            "filters": [{"type": "RequestHeaderModifier",
                         "requestHeaderModifier": {"set": [{"name": "x-a", "value": "b"}]}},
                        {"type": "RequestRedirect", "requestRedirect": {"path": {
                            "type": "ReplaceFullPath", "replaceFullPath": "/new"}}}],
            "backendRefs": [{"name": "nowhere", "port": 80}],
        }]),
    ));
    let routes = inbound(&index).routes;
    assert_eq!(routes.len(), 1);
    let rule = &routes[0].rules[0];
    assert_eq!(
        rule.matches[0].path,
        Some(PathMatch::Prefix("/".into())),
        "no match: every request"
    );
    assert!(matches!(
        rule.filters[..],
        [Filter::RequestHeaders(_), Filter::Redirect(_)]
    ));

    let conditions = index.route_status(AnyRoute::Http(
        &index.routes.http[&("shop".to_string(), "edit".to_string())],
    ));
    assert_eq!(conditions.len(), 1);
    assert!(
        conditions[0].conditions.iter().all(|c| c.status),
        "{conditions:?}"
    );
}

#[test]
fn grpc_routes_attach_too() {
    let mut index = index_with_server("deny");
    let route: GRPCRoute = obj(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
        "metadata": {"name": "health", "namespace": "shop", "creationTimestamp": T0},
        "spec": {"parentRefs": server_parent("web-http"),
                 "rules": [{"matches": [{"method": {"service": "grpc.health.v1.Health"}}]}]},
    }));
    index.apply_grpc_route(&route);
    let routes = inbound(&index).routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].kind, RouteKind::Grpc);
    let rpc = routes[0].rules[0].matches[0].rpc.clone().unwrap();
    assert_eq!(rpc.service.as_deref(), Some("grpc.health.v1.Health"));
}

#[test]
fn a_route_policy_authorizes_its_route_only() {
    let mut index = index_with_server("deny");
    index.apply_http_route(&prefix_route("admin", T0, "/admin"));
    index.apply_http_route(&prefix_route("public", T0, "/public"));
    index.apply_policy(&policy("public-clients", "HTTPRoute", "public", "client"));
    // A policy on a GRPCRoute of the same name is not the HTTPRoute's.
    index.apply_policy(&policy("grpc-clients", "GRPCRoute", "public", "other"));
    let server = inbound(&index);
    assert!(server.authorizations.is_empty(), "accessPolicy deny");
    let public = server.routes.iter().find(|r| r.meta.name() == "public");
    let public = public.unwrap();
    assert_eq!(
        names(public.authorizations.iter().map(|a| a.meta.clone())),
        ["public-clients"]
    );
    assert_eq!(public.authorizations[0].authentication, identity("client"));
    let admin = server.routes.iter().find(|r| r.meta.name() == "admin");
    assert!(admin.unwrap().authorizations.is_empty());

    // A server policy stays on the server, where it covers every route.
    index.apply_policy(&policy("ops", "Server", "web-http", "ops"));
    let server = inbound(&index);
    assert_eq!(
        names(server.authorizations.iter().map(|a| a.meta.clone())),
        ["ops"]
    );
    assert!(
        server
            .routes
            .iter()
            .all(|r| r.meta.name() == "public" || r.authorizations.is_empty())
    );

    index.delete_policy::<AuthorizationPolicy>("shop", "public-clients");
    assert!(
        inbound(&index)
            .routes
            .iter()
            .all(|r| r.authorizations.is_empty())
    );
}

#[test]
fn route_policy_status_names_a_missing_route() {
    let mut index = index_with_server("deny");
    let p = policy("public-clients", "HTTPRoute", "public", "client");
    index.apply_policy(&p);
    let status = index.authorization_policy_status("shop", &p);
    assert!(!status.status);
    assert_eq!(status.reason, policy_reasons::REF_NOT_FOUND);
    assert!(
        status.message.contains("HTTPRoute shop/public"),
        "{status:?}"
    );

    index.apply_http_route(&prefix_route("public", T0, "/public"));
    let status = index.authorization_policy_status("shop", &p);
    assert!(status.status, "{status:?}");
}

#[test]
fn server_parent_status() {
    let mut index = Index::new(ClusterSettings::default());
    let route = prefix_route("public", T0, "/public");
    index.apply_http_route(&route);
    let status = &index.route_status(AnyRoute::Http(&route))[0];
    let accepted = &status.conditions[0];
    assert_eq!(accepted.type_, conditions::ACCEPTED);
    assert!(!accepted.status);
    assert_eq!(accepted.reason, reasons::NO_MATCHING_PARENT);
    assert_eq!(accepted.message, "Server shop/web-http not found");

    index.apply_policy(&server("web-http", "deny"));
    let status = &index.route_status(AnyRoute::Http(&route))[0];
    assert!(status.conditions.iter().all(|c| c.status), "{status:?}");
    assert_eq!(status.conditions[1].type_, conditions::RESOLVED_REFS);

    let elsewhere = http_route(
        "elsewhere",
        T0,
        json!([{"group": "policy.trellis.dev", "kind": "Server", "namespace": "other",
                "name": "web-http"}]),
        json!([{}]),
    );
    let status = &index.route_status(AnyRoute::Http(&elsewhere))[0];
    assert_eq!(status.conditions[0].reason, reasons::NO_MATCHING_PARENT);
    assert!(status.conditions[0].message.contains("another namespace"));
}

#[test]
fn a_response_header_filter_makes_an_inbound_route_invalid() {
    let mut index = index_with_server("deny");
    let route = http_route(
        "edit",
        T0,
        server_parent("web-http"),
        json!([{"filters": [{"type": "ResponseHeaderModifier",
                             "responseHeaderModifier": {"set": [{"name": "x", "value": "y"}]}}]}]),
    );
    index.apply_http_route(&route);
    assert!(inbound(&index).routes.is_empty(), "left out");
    let accepted = &index.route_status(AnyRoute::Http(&route))[0].conditions[0];
    assert!(!accepted.status);
    assert_eq!(accepted.reason, reasons::UNSUPPORTED_VALUE);
    assert!(
        accepted
            .message
            .starts_with("spec.rules[0].filters[0].type"),
        "{accepted:?}"
    );
}
