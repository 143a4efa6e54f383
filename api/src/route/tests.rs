use std::time::Duration;

use linkerd2_proxy_api::outbound as api;

use super::{proto::*, *};

fn backend(name: &str) -> Backend {
    Backend {
        meta: RouteRef::Resource {
            group: "core".into(),
            kind: "Service".into(),
            namespace: "shop".into(),
            name: name.into(),
            port: 80,
        },
        path: format!("{name}.shop.svc.cluster.local:80"),
    }
}

fn weighted(name: &str, weight: u32) -> RouteBackend {
    RouteBackend {
        backend: backend(name),
        weight,
        filters: vec![Filter::RequestHeaders(HeaderModifier {
            set: vec![("x-backend".into(), name.into())],
            ..HeaderModifier::default()
        })],
    }
}

fn route_ref(kind: &str) -> RouteRef {
    RouteRef::Resource {
        group: "gateway.networking.k8s.io".into(),
        kind: kind.into(),
        namespace: "shop".into(),
        name: "canary".into(),
        port: 0,
    }
}

fn http_route() -> Route {
    Route {
        meta: route_ref("HTTPRoute"),
        kind: RouteKind::Http,
        hosts: vec!["web.shop".into(), "*.example.com".into()],
        rules: vec![
            Rule {
                matches: vec![RequestMatch {
                    path: Some(PathMatch::Prefix("/api".into())),
                    headers: vec![NameMatch {
                        name: "x-canary".into(),
                        value: ValueMatch::Exact("1".into()),
                    }],
                    query: vec![NameMatch {
                        name: "v".into(),
                        value: ValueMatch::Regex("[0-9]+".into()),
                    }],
                    method: Some(http::Method::POST),
                    rpc: None,
                }],
                filters: vec![
                    Filter::RequestHeaders(HeaderModifier {
                        add: vec![("x-a".into(), "1".into())],
                        set: vec![("x-s".into(), "2".into())],
                        remove: vec!["x-r".into()],
                    }),
                    Filter::ResponseHeaders(HeaderModifier {
                        set: vec![("x-route".into(), "canary".into())],
                        ..HeaderModifier::default()
                    }),
                ],
                backends: vec![weighted("web-v1", 90), weighted("web-v2", 10)],
                timeouts: Timeouts {
                    request: Some(Duration::from_secs(5)),
                    response: Some(Duration::from_millis(500)),
                    idle: None,
                },
                retry: Some(Retry {
                    limit: 2,
                    max_request_bytes: 64 * 1024,
                    statuses: vec![500..=599],
                    codes: Vec::new(),
                    timeout: Some(Duration::from_millis(200)),
                    backoff: Some(Backoff {
                        min: Duration::from_millis(25),
                        max: Duration::from_millis(250),
                        jitter_permille: 500,
                    }),
                }),
            },
            Rule {
                matches: vec![RequestMatch {
                    path: Some(PathMatch::Exact("/old".into())),
                    ..RequestMatch::default()
                }],
                filters: vec![Filter::Redirect(Redirect {
                    scheme: Some("https".into()),
                    host: Some("new.example.com".into()),
                    path: Some(PathModifier::Full("/new".into())),
                    port: Some(8443),
                    status: 301,
                })],
                backends: Vec::new(),
                ..Rule::default()
            },
        ],
    }
}

fn grpc_route() -> Route {
    Route {
        meta: route_ref("GRPCRoute"),
        kind: RouteKind::Grpc,
        hosts: Vec::new(),
        rules: vec![Rule {
            matches: vec![RequestMatch {
                rpc: Some(RpcMatch {
                    service: Some("shop.Cart".into()),
                    method: Some("Add".into()),
                }),
                ..RequestMatch::default()
            }],
            filters: Vec::new(),
            backends: vec![weighted("cart", 1)],
            timeouts: Timeouts::default(),
            retry: Some(Retry {
                limit: 3,
                max_request_bytes: 1024,
                statuses: Vec::new(),
                codes: vec![GrpcCode::Unavailable, GrpcCode::Internal],
                timeout: None,
                backoff: None,
            }),
        }],
    }
}

#[test]
fn http_routes_round_trip() {
    let route = http_route();
    assert_eq!(Route::try_from(http_route_to(&route)).unwrap(), route);
}

#[test]
fn grpc_routes_round_trip() {
    let route = grpc_route();
    let back = Route::try_from(grpc_route_to(&route)).unwrap();
    // The wire carries codes as flags, in code order.
    let mut expected = route;
    expected.rules[0].retry.as_mut().unwrap().codes.sort();
    assert_eq!(back, expected);
}

#[test]
fn failure_accrual_round_trips_and_zero_disables_it() {
    let accrual = FailureAccrual::default();
    let wire = api::FailureAccrual::from(&accrual);
    assert_eq!(failure_accrual(Some(wire)).unwrap(), Some(accrual));
    let off = FailureAccrual {
        max_failures: 0,
        ..accrual
    };
    assert_eq!(
        failure_accrual(Some(api::FailureAccrual::from(&off))).unwrap(),
        None
    );
    assert_eq!(failure_accrual(None).unwrap(), None);
}

#[test]
fn invalid_routes_name_the_bad_field() {
    type Break = fn(&mut api::HttpRoute);
    let cases: [(Break, &str); 5] = [
        (|r| r.metadata = None, "route.metadata"),
        (|r| r.rules[0].backends = None, "rule.backends"),
        (
            |r| {
                use api::http_route::filter::Kind;
                if let Some(Kind::Redirect(redirect)) = &mut r.rules[1].filters[0].kind {
                    redirect.status = 200;
                }
            },
            "redirect.status",
        ),
        (
            |r| {
                let retry = r.rules[0].retry.as_mut().unwrap();
                retry.conditions.as_mut().unwrap().status_ranges[0].start = 700;
            },
            "retry.conditions.status_ranges",
        ),
        (
            |r| {
                let backoff = r.rules[0].retry.as_mut().unwrap().backoff.as_mut().unwrap();
                backoff.max_backoff = Some(prost_types::Duration::default());
            },
            "backoff.max_backoff",
        ),
    ];
    for (break_it, field) in cases {
        let mut wire = http_route_to(&http_route());
        break_it(&mut wire);
        assert_eq!(Route::try_from(wire).unwrap_err().field, field);
    }
}

#[test]
fn grpc_codes_are_known_by_number() {
    for code in [1, 4, 8, 13, 14] {
        assert_eq!(GrpcCode::from_code(code).unwrap().code(), code);
    }
    assert_eq!(GrpcCode::from_code(2), None);
}
