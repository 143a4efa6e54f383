use super::{
    StringMatchType, duration,
    grpc_route::GRPCRoute,
    http_route::{HTTPRoute, HttpFilterType, PathMatchType},
};

#[test]
fn http_route_reads_the_fields_the_mesh_uses() {
    let route: HTTPRoute = serde_yaml::from_str(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{group: core, kind: Service, name: web, port: 80}]
  rules:
  - matches:
    - path: {type: Exact, value: /books}
      headers: [{name: x-canary, value: "true"}]
      queryParams: [{type: RegularExpression, name: page, value: "[0-9]+"}]
      method: GET
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-a, value: b}], remove: [x-c]}
    - type: URLRewrite
      urlRewrite: {hostname: x}
    backendRefs:
    - {name: web-v1, port: 80, weight: 90}
    - {name: web-v2, port: 80, weight: 10}
    timeouts: {request: 10s, backendRequest: 500ms}
    someFutureField: 1
status:
  parents:
  - parentRef: {group: core, kind: Service, name: web}
    controllerName: trellis.dev/policy-controller
    conditions: []
"#,
    )
    .unwrap();
    assert!(route.spec.parent_refs[0].is_service());
    let rule = &route.spec.rules[0];
    let m = &rule.matches[0];
    assert_eq!(m.path.as_ref().unwrap().type_, PathMatchType::Exact);
    assert_eq!(m.query_params[0].type_, StringMatchType::RegularExpression);
    assert_eq!(m.headers[0].type_, StringMatchType::Exact);
    assert_eq!(rule.filters[1].type_, HttpFilterType::Unsupported);
    assert_eq!(rule.backend_refs[0].backend_ref.weight, Some(90));
    assert!(rule.backend_refs[1].backend_ref.is_service());
    assert_eq!(
        rule.timeouts.as_ref().unwrap().backend_request.as_deref(),
        Some("500ms")
    );
    assert_eq!(route.status.unwrap().parents.len(), 1);
}

#[test]
fn unknown_enum_values_do_not_fail_the_object() {
    let route: HTTPRoute = serde_json::from_value(serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {"rules": [{"matches": [{"path": {"type": "Glob", "value": "/a*"}}]}]}
    }))
    .unwrap();
    let path = route.spec.rules[0].matches[0].path.clone().unwrap();
    assert_eq!(path.type_, PathMatchType::Unknown);
}

#[test]
fn grpc_route_reads_method_matches() {
    let route: GRPCRoute = serde_json::from_value(serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
        "metadata": {"name": "r", "namespace": "shop"},
        "spec": {
            "parentRefs": [{"kind": "Service", "group": "", "name": "api"}],
            "rules": [{"matches": [{"method": {"service": "shop.Books", "method": "List"}}],
                       "backendRefs": [{"name": "api", "port": 8080}]}]
        }
    }))
    .unwrap();
    assert!(route.spec.parent_refs[0].is_service());
    let method = route.spec.rules[0].matches[0].method.clone().unwrap();
    assert_eq!(method.type_, StringMatchType::Exact);
    assert_eq!(method.service.as_deref(), Some("shop.Books"));
}

#[test]
fn gateway_durations() {
    use std::time::Duration;
    assert_eq!(duration::parse("10s").unwrap(), Duration::from_secs(10));
    assert_eq!(
        duration::parse("500ms").unwrap(),
        Duration::from_millis(500)
    );
    assert_eq!(duration::parse("1h30m").unwrap(), Duration::from_secs(5400));
    for bad in [
        "ten seconds",
        "",
        "1.5s",
        "-1s",
        "100000s",
        "1d",
        "1s1s1s1s1s",
    ] {
        assert!(duration::parse(bad).is_err(), "{bad}");
    }
}
