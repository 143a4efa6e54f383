use std::time::Duration;

use serde_json::{Value, json};
use trellis_api::{
    inbound::Workload,
    outbound::{OutboundPolicy, TrafficSpec, TrafficTarget},
    route::{
        FailureAccrual, GrpcCode, NameMatch, PathMatch, RouteKind, RouteRef, RpcMatch, ValueMatch,
    },
};
use trellis_crds::gateway::{conditions, grpc_route::GRPCRoute, http_route::HTTPRoute, reasons};

use super::{AnyRoute, status::WantedCondition};
use crate::{
    control_plane::index::{ClusterSettings, Index},
    test_util::{mk_service, obj},
};

fn index_with(services: &[&str]) -> Index {
    let mut index = Index::new(ClusterSettings::default());
    for name in services {
        index.apply_service(&mk_service("shop", name, json!({})));
    }
    index
}

fn http_route(ns: &str, name: &str, created: &str, annotations: Value, spec: Value) -> HTTPRoute {
    obj(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created,
                     "annotations": annotations},
        "spec": spec,
    }))
}

fn web_parent() -> Value {
    json!([{"group": "core", "kind": "Service", "name": "web", "port": 80}])
}

fn outbound(index: &Index, client_ns: Option<&str>) -> OutboundPolicy {
    index
        .outbound_policy(&TrafficSpec {
            source: client_ns.map(|ns| Workload {
                namespace: ns.into(),
                pod: "client".into(),
            }),
            target: TrafficTarget::Authority("web.shop.svc.cluster.local:80".into()),
        })
        .unwrap()
}

fn status_of(index: &Index, route: &HTTPRoute) -> Vec<WantedCondition> {
    let mut parents = index.route_status(AnyRoute::Http(route));
    assert_eq!(parents.len(), 1, "{parents:?}");
    parents.remove(0).conditions
}

fn condition<'a>(conditions: &'a [WantedCondition], type_: &str) -> &'a WantedCondition {
    conditions.iter().find(|c| c.type_ == type_).unwrap()
}

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-02T00:00:00Z";

#[test]
fn no_route_keeps_the_default_route() {
    let index = index_with(&["web"]);
    let policy = outbound(&index, None);
    assert_eq!(policy.routes.len(), 1);
    assert_eq!(policy.routes[0].meta, RouteRef::Default("http".into()));
    assert_eq!(policy.failure_accrual, Some(FailureAccrual::default()));
}

#[test]
fn matches_split_and_timeouts_are_carried() {
    let mut index = index_with(&["web", "web-v1", "web-v2"]);
    let route = http_route(
        "shop",
        "canary",
        T0,
        json!({}),
        json!({
            "parentRefs": web_parent(),
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/books"},
                             "headers": [{"name": "x-canary", "value": "true"}],
                             "queryParams": [{"type": "RegularExpression", "name": "p", "value": "[0-9]+"}],
                             "method": "GET"}],
                "filters": [{"type": "RequestHeaderModifier",
                             "requestHeaderModifier": {"set": [{"name": "x-a", "value": "b"}]}}],
                "backendRefs": [{"name": "web-v1", "port": 80, "weight": 90},
                                {"name": "web-v2", "port": 8080, "weight": 10}],
                "timeouts": {"request": "10s", "backendRequest": "500ms"},
            }],
        }),
    );
    index.apply_http_route(&route);
    let policy = outbound(&index, None);
    assert_eq!(policy.routes.len(), 1);
    let r = &policy.routes[0];
    assert_eq!(r.kind, RouteKind::Http);
    assert_eq!(
        r.meta,
        RouteRef::Resource {
            group: "gateway.networking.k8s.io".into(),
            kind: "HTTPRoute".into(),
            namespace: "shop".into(),
            name: "canary".into(),
            port: 0,
        }
    );
    let rule = &r.rules[0];
    let m = &rule.matches[0];
    assert_eq!(m.path, Some(PathMatch::Prefix("/books".into())));
    assert_eq!(
        m.headers,
        [NameMatch {
            name: "x-canary".into(),
            value: ValueMatch::Exact("true".into())
        }]
    );
    assert_eq!(m.query[0].value, ValueMatch::Regex("[0-9]+".into()));
    assert_eq!(m.method, Some(http::Method::GET));
    assert_eq!(rule.filters.len(), 1);
    let split: Vec<(&str, u32)> = rule
        .backends
        .iter()
        .map(|b| (b.backend.path.as_str(), b.weight))
        .collect();
    assert_eq!(
        split,
        [
            ("web-v1.shop.svc.cluster.local:80", 90),
            ("web-v2.shop.svc.cluster.local:8080", 10)
        ]
    );
    assert_eq!(rule.backends[0].backend.meta.kind(), "Service");
    assert_eq!(rule.timeouts.request, Some(Duration::from_secs(10)));
    assert_eq!(rule.timeouts.response, Some(Duration::from_millis(500)));
    assert_eq!(rule.retry, None);

    let status = status_of(&index, &route);
    assert!(condition(&status, conditions::ACCEPTED).status);
    assert!(condition(&status, conditions::RESOLVED_REFS).status);
}

#[test]
fn no_backend_refs_route_to_the_parent_service() {
    let mut index = index_with(&["web"]);
    index.apply_http_route(&http_route(
        "shop",
        "r",
        T0,
        json!({}),
        json!({"parentRefs": web_parent(), "rules": [{"matches": [{"path": {"type": "Exact", "value": "/a"}}]}]}),
    ));
    let policy = outbound(&index, None);
    let backends = &policy.routes[0].rules[0].backends;
    assert_eq!(backends.len(), 1);
    assert_eq!(backends[0].backend.path, "web.shop.svc.cluster.local:80");
    assert_eq!(backends[0].weight, 1);
}

#[test]
fn retry_and_timeout_annotations() {
    let mut index = index_with(&["web"]);
    index.apply_http_route(&http_route(
        "shop",
        "r",
        T0,
        json!({
            "retry.linkerd.io/http": "gateway-error,429,500-501",
            "retry.linkerd.io/limit": "3",
            "retry.trellis.dev/timeout": "300ms",
            "timeout.linkerd.io/request": "5s",
            "timeout.trellis.dev/response": "1s",
        }),
        json!({"parentRefs": web_parent(), "rules": [{"timeouts": {"request": "7s"}}]}),
    ));
    let policy = outbound(&index, None);
    let rule = &policy.routes[0].rules[0];
    let retry = rule.retry.clone().unwrap();
    assert_eq!(retry.limit, 3);
    assert_eq!(retry.statuses, [502..=504, 429..=429, 500..=501]);
    assert_eq!(retry.timeout, Some(Duration::from_millis(300)));
    assert_eq!(retry.max_request_bytes, 64 * 1024);
    assert_eq!(
        rule.timeouts.request,
        Some(Duration::from_secs(7)),
        "the spec field wins over the annotation"
    );
    assert_eq!(rule.timeouts.response, Some(Duration::from_secs(1)));
}

#[test]
fn service_annotations_are_route_defaults_and_set_failure_accrual() {
    let mut index = Index::new(ClusterSettings::default());
    index.apply_service(&mk_service(
        "shop",
        "web",
        json!({
            "retry.linkerd.io/limit": "2",
            "balancer.linkerd.io/failure-accrual": "consecutive",
            "balancer.linkerd.io/failure-accrual-consecutive-max-failures": "3",
            "balancer.linkerd.io/failure-accrual-consecutive-min-penalty": "2s",
            "balancer.linkerd.io/failure-accrual-consecutive-jitter-ratio": "0.25",
        }),
    ));
    let policy = outbound(&index, None);
    let retry = policy.routes[0].rules[0].retry.clone().unwrap();
    assert_eq!(retry.limit, 2);
    assert_eq!(retry.statuses, [500..=599], "5xx by default");
    let accrual = policy.failure_accrual.unwrap();
    assert_eq!(accrual.max_failures, 3);
    assert_eq!(accrual.backoff.min, Duration::from_secs(2));
    assert_eq!(accrual.backoff.max, Duration::from_secs(60));
    assert_eq!(accrual.backoff.jitter_permille, 250);

    index.apply_service(&mk_service(
        "shop",
        "web",
        json!({"balancer.linkerd.io/failure-accrual": "disabled"}),
    ));
    assert_eq!(outbound(&index, None).failure_accrual, None);
}

#[test]
fn grpc_routes_make_the_policy_grpc() {
    let mut index = index_with(&["web"]);
    let http = http_route(
        "shop",
        "http",
        T0,
        json!({}),
        json!({"parentRefs": web_parent(), "rules": [{}]}),
    );
    index.apply_http_route(&http);
    let route: GRPCRoute = obj(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
        "metadata": {"name": "g", "namespace": "shop",
                     "annotations": {"retry.linkerd.io/grpc": "unavailable,internal"}},
        "spec": {"parentRefs": web_parent(),
                 "rules": [{"matches": [{"method": {"service": "shop.Books", "method": "List"}}]}]},
    }));
    index.apply_grpc_route(&route);
    let policy = outbound(&index, None);
    assert_eq!(policy.routes.len(), 1, "only the GRPCRoute applies");
    let r = &policy.routes[0];
    assert_eq!(r.kind, RouteKind::Grpc);
    assert_eq!(
        r.rules[0].matches[0].rpc,
        Some(RpcMatch {
            service: Some("shop.Books".into()),
            method: Some("List".into())
        })
    );
    let retry = r.rules[0].retry.clone().unwrap();
    assert_eq!(retry.codes, [GrpcCode::Internal, GrpcCode::Unavailable]);
    assert!(retry.statuses.is_empty());
    let accepted = status_of(&index, &http)
        .into_iter()
        .find(|c| c.type_ == conditions::ACCEPTED)
        .unwrap();
    assert!(
        accepted.message.contains("GRPCRoute shop/g also attaches"),
        "{}",
        accepted.message
    );
}

#[test]
fn missing_backends_are_left_out_and_reported() {
    let mut index = index_with(&["web", "web-v1"]);
    let route = http_route(
        "shop",
        "r",
        T0,
        json!({}),
        json!({"parentRefs": web_parent(), "rules": [
            {"matches": [{"path": {"value": "/a"}}],
             "backendRefs": [{"name": "web-v1", "port": 80, "weight": 90},
                             {"name": "nope", "port": 80, "weight": 10}]},
            {"matches": [{"path": {"value": "/b"}}],
             "backendRefs": [{"name": "gone", "port": 80}]},
        ]}),
    );
    index.apply_http_route(&route);
    let policy = outbound(&index, None);
    assert_eq!(policy.routes.len(), 2);
    let a = policy
        .routes
        .iter()
        .find(|r| r.rules[0].matches[0].path == Some(PathMatch::Prefix("/a".into())))
        .unwrap();
    assert_eq!(a.rules[0].backends.len(), 1);
    assert_eq!(a.rules[0].backends[0].weight, 90);
    let b = policy
        .routes
        .iter()
        .find(|r| r.rules[0].matches[0].path == Some(PathMatch::Prefix("/b".into())))
        .unwrap();
    assert!(b.rules[0].backends.is_empty(), "all backends invalid: 500");

    let status = status_of(&index, &route);
    assert!(condition(&status, conditions::ACCEPTED).status);
    let resolved = condition(&status, conditions::RESOLVED_REFS);
    assert!(!resolved.status);
    assert_eq!(resolved.reason, reasons::BACKEND_NOT_FOUND);
    assert!(
        resolved
            .message
            .contains("spec.rules[0].backendRefs[1]: Service shop/nope not found"),
        "{}",
        resolved.message
    );
    assert!(
        resolved.message.contains("shop/gone"),
        "{}",
        resolved.message
    );
}

#[test]
fn precedence_orders_routes_and_overlaps_are_reported() {
    let mut index = index_with(&["web", "a", "b", "c"]);
    let backend = |name: &str| json!([{"name": name, "port": 80}]);
    // Newer, with a match equal to the older route's and a more specific one.
    let newer = http_route(
        "shop",
        "newer",
        T1,
        json!({}),
        json!({"parentRefs": web_parent(), "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": backend("b")},
            {"matches": [{"path": {"type": "Exact", "value": "/api/x"}}], "backendRefs": backend("c")},
        ]}),
    );
    let older = http_route(
        "shop",
        "older",
        T0,
        json!({}),
        json!({"parentRefs": web_parent(), "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": backend("a")},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": backend("a")},
        ]}),
    );
    index.apply_http_route(&newer);
    index.apply_http_route(&older);
    let policy = outbound(&index, None);
    let order: Vec<(String, String, String)> = policy
        .routes
        .iter()
        .map(|r| {
            let path = match &r.rules[0].matches[0].path {
                Some(PathMatch::Exact(p)) => format!("={p}"),
                Some(PathMatch::Prefix(p)) => p.clone(),
                other => format!("{other:?}"),
            };
            (
                path,
                r.meta.name().to_string(),
                r.rules[0].backends[0].backend.meta.name().to_string(),
            )
        })
        .collect();
    let expect = |p: &str, r: &str, b: &str| (p.to_string(), r.to_string(), b.to_string());
    assert_eq!(
        order,
        [
            expect("=/api/x", "newer", "c"),
            expect("/api", "older", "a"),
            expect("/api", "newer", "b"),
            expect("/", "older", "a"),
        ]
    );

    let status = status_of(&index, &newer);
    let accepted = condition(&status, conditions::ACCEPTED);
    assert!(accepted.status, "an overlap keeps the route accepted");
    assert!(
        accepted
            .message
            .contains("spec.rules[0].matches[0] overlaps HTTPRoute shop/older"),
        "{}",
        accepted.message
    );
    assert!(
        condition(&status_of(&index, &older), conditions::ACCEPTED)
            .message
            .is_empty()
    );
}

#[test]
fn invalid_routes_are_refused_with_the_field() {
    let mut index = index_with(&["web"]);
    let cases = [
        (
            json!({}),
            json!([{"timeouts": {"request": "ten seconds"}}]),
            "spec.rules[0].timeouts.request",
        ),
        (
            json!({}),
            json!([{"backendRefs": [{"name": "web", "port": 80, "weight": -1}]}]),
            "spec.rules[0].backendRefs[0].weight: weight -1 is negative",
        ),
        (
            json!({}),
            json!([{"matches": [{"path": {"type": "RegularExpression", "value": "(/a"}}]}]),
            "spec.rules[0].matches[0].path.value",
        ),
        (
            json!({}),
            json!([{"filters": [{"type": "URLRewrite"}]}]),
            "spec.rules[0].filters[0].type",
        ),
        (
            json!({"retry.linkerd.io/http": "5xx,teapot"}),
            json!([{}]),
            "metadata.annotations[retry.linkerd.io/http]",
        ),
        (
            json!({"timeout.linkerd.io/request": "soon"}),
            json!([{}]),
            "metadata.annotations[timeout.linkerd.io/request]",
        ),
    ];
    for (annotations, rules, field) in cases {
        let route = http_route(
            "shop",
            "bad",
            T0,
            annotations,
            json!({"parentRefs": web_parent(), "rules": rules}),
        );
        index.apply_http_route(&route);
        let policy = outbound(&index, None);
        assert_eq!(
            policy.routes[0].meta,
            RouteRef::Default("http".into()),
            "an invalid route is not served: {field}"
        );
        let status = status_of(&index, &route);
        let accepted = condition(&status, conditions::ACCEPTED);
        assert!(!accepted.status, "{field}");
        assert_eq!(accepted.reason, reasons::UNSUPPORTED_VALUE);
        assert!(
            accepted.message.contains(field),
            "{field}: {}",
            accepted.message
        );
    }
}

#[test]
fn missing_parent_is_no_matching_parent() {
    let index = index_with(&[]);
    let route = http_route(
        "shop",
        "r",
        T0,
        json!({}),
        json!({"parentRefs": web_parent(), "rules": [{}]}),
    );
    let status = status_of(&index, &route);
    let accepted = condition(&status, conditions::ACCEPTED);
    assert!(!accepted.status);
    assert_eq!(accepted.reason, reasons::NO_MATCHING_PARENT);
    assert!(accepted.message.contains("shop/web"));
}

#[test]
fn ports_and_consumer_routes() {
    let mut index = index_with(&["web", "web-v2"]);
    // A producer route on another port does not apply to port 80.
    index.apply_http_route(&http_route(
        "shop",
        "other-port",
        T0,
        json!({}),
        json!({"parentRefs": [{"group": "", "kind": "Service", "name": "web", "port": 8080}], "rules": [{}]}),
    ));
    assert_eq!(
        outbound(&index, None).routes[0].meta,
        RouteRef::Default("http".into())
    );
    // A sectionName that is not the port's name does not attach either; the port's does.
    index.apply_http_route(&http_route(
        "shop",
        "admin-section",
        T0,
        json!({}),
        json!({"parentRefs": [{"group": "", "kind": "Service", "name": "web", "sectionName": "admin"}], "rules": [{}]}),
    ));
    assert_eq!(
        outbound(&index, None).routes[0].meta,
        RouteRef::Default("http".into())
    );
    index.apply_http_route(&http_route(
        "shop",
        "http-section",
        T0,
        json!({}),
        json!({"parentRefs": [{"group": "", "kind": "Service", "name": "web", "sectionName": "http"}],
               "rules": [{"matches": [{"path": {"type": "Exact", "value": "/s"}}]}]}),
    ));
    assert_eq!(outbound(&index, None).routes[0].meta.name(), "http-section");
    index.delete_http_route("shop", "http-section");
    // A producer route on every port.
    index.apply_http_route(&http_route(
        "shop",
        "producer",
        T0,
        json!({}),
        json!({"parentRefs": [{"group": "core", "kind": "Service", "name": "web"}], "rules": [{}]}),
    ));
    // A consumer route in namespace `client`, whose backends are its own namespace's.
    index.apply_service(&mk_service("client", "web-local", json!({})));
    index.apply_http_route(&http_route(
        "client",
        "consumer",
        T0,
        json!({}),
        json!({"parentRefs": [{"group": "core", "kind": "Service", "name": "web", "namespace": "shop"}],
               "rules": [{"backendRefs": [{"name": "web-local", "port": 80}]}]}),
    ));
    let name = |p: &OutboundPolicy| p.routes[0].meta.name().to_string();
    assert_eq!(name(&outbound(&index, None)), "producer");
    assert_eq!(name(&outbound(&index, Some("shop"))), "producer");
    assert_eq!(name(&outbound(&index, Some("elsewhere"))), "producer");
    let consumer = outbound(&index, Some("client"));
    assert_eq!(name(&consumer), "consumer");
    assert_eq!(
        consumer.routes[0].rules[0].backends[0].backend.path,
        "web-local.client.svc.cluster.local:80"
    );
}

#[test]
fn route_changes_wake_streams() {
    let mut index = index_with(&["web"]);
    let mut changes = index.changes();
    changes.borrow_and_update();
    let route = http_route(
        "shop",
        "r",
        T0,
        json!({}),
        json!({"parentRefs": web_parent(), "rules": [{}]}),
    );
    index.apply_http_route(&route);
    assert!(changes.has_changed().unwrap());
    changes.borrow_and_update();
    index.apply_http_route(&route);
    assert!(
        !changes.has_changed().unwrap(),
        "an identical object changes nothing"
    );
    index.delete_http_route("shop", "r");
    assert!(changes.has_changed().unwrap());
    assert_eq!(
        outbound(&index, None).routes[0].meta,
        RouteRef::Default("http".into())
    );
}
