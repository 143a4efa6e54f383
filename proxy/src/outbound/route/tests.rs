use std::time::Duration;

use http::{Method, Request, Response};
use trellis_api::route::{
    self as api, Backoff, GrpcCode, NameMatch, PathMatch, RequestMatch, Retry, RouteKind, RouteRef,
    RpcMatch, ValueMatch,
};

use super::{RouteTable, retry::RetryPolicy};

fn backend(name: &str, weight: u32) -> api::RouteBackend {
    api::RouteBackend {
        backend: api::Backend {
            meta: RouteRef::Default(name.into()),
            path: format!("{name}.shop.svc.cluster.local:80"),
        },
        weight,
        filters: Vec::new(),
    }
}

fn rule(matches: Vec<RequestMatch>, to: &str) -> api::Rule {
    api::Rule {
        matches,
        backends: vec![backend(to, 1)],
        ..api::Rule::default()
    }
}

fn path(p: PathMatch) -> RequestMatch {
    RequestMatch {
        path: Some(p),
        ..RequestMatch::default()
    }
}

fn route(name: &str, hosts: &[&str], rules: Vec<api::Rule>) -> api::Route {
    api::Route {
        meta: RouteRef::Default(name.into()),
        kind: RouteKind::Http,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        rules,
    }
}

fn req(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

/// The backend path the table picks for `r`, `None` when no rule matches.
fn pick(table: &RouteTable, r: &Request<()>) -> Option<String> {
    let s = table.select(r)?;
    Some(s.rule.pick_backend()?.path.split('.').next()?.to_string())
}

#[test]
fn the_most_specific_match_wins_across_routes() {
    let table = RouteTable::new(
        RouteRef::Default("svc".into()),
        &[
            route(
                "all",
                &[],
                vec![rule(vec![path(PathMatch::Prefix("/".into()))], "web")],
            ),
            route(
                "api",
                &[],
                vec![
                    rule(vec![path(PathMatch::Prefix("/api".into()))], "api"),
                    rule(vec![path(PathMatch::Exact("/api/login".into()))], "login"),
                    rule(
                        vec![RequestMatch {
                            path: Some(PathMatch::Prefix("/api".into())),
                            headers: vec![NameMatch {
                                name: "X-Canary".into(),
                                value: ValueMatch::Exact("yes".into()),
                            }],
                            ..RequestMatch::default()
                        }],
                        "canary",
                    ),
                    rule(
                        vec![RequestMatch {
                            path: Some(PathMatch::Regex("/items/[0-9]+".into())),
                            query: vec![NameMatch {
                                name: "v".into(),
                                value: ValueMatch::Exact("2".into()),
                            }],
                            method: Some(Method::PUT),
                            ..RequestMatch::default()
                        }],
                        "items",
                    ),
                ],
            ),
        ],
    )
    .unwrap();
    let cases = [
        (req(Method::GET, "/", &[]), "web"),
        (req(Method::GET, "/apix", &[]), "web"),
        (req(Method::GET, "/api", &[]), "api"),
        (req(Method::GET, "/api/users", &[]), "api"),
        (req(Method::GET, "/api/login", &[]), "login"),
        (req(Method::GET, "/api/x", &[("x-canary", "yes")]), "canary"),
        (req(Method::GET, "/api/x", &[("x-canary", "no")]), "api"),
        (req(Method::PUT, "/items/12?a=1&v=2", &[]), "items"),
        (req(Method::PUT, "/items/12?v=3", &[]), "web"),
        (req(Method::GET, "/items/12?v=2", &[]), "web"),
        (req(Method::PUT, "/items/12x?v=2", &[]), "web"),
    ];
    for (r, want) in cases {
        assert_eq!(
            pick(&table, &r).as_deref(),
            Some(want),
            "{} {}",
            r.method(),
            r.uri()
        );
    }
}

#[test]
fn hosts_and_missing_matches_leave_requests_unrouted() {
    let table = RouteTable::new(
        RouteRef::Default("svc".into()),
        &[route(
            "hosts",
            &["web.shop", "*.example.com"],
            vec![rule(vec![path(PathMatch::Prefix("/".into()))], "web")],
        )],
    )
    .unwrap();
    assert_eq!(
        pick(&table, &req(Method::GET, "http://web.shop/", &[])).as_deref(),
        Some("web")
    );
    assert_eq!(
        pick(
            &table,
            &req(Method::GET, "/", &[("host", "a.example.com:8080")])
        )
        .as_deref(),
        Some("web")
    );
    assert_eq!(
        pick(&table, &req(Method::GET, "/", &[("host", "example.com")])),
        None
    );
    assert_eq!(pick(&table, &req(Method::GET, "http://other/", &[])), None);
}

#[test]
fn grpc_rules_match_service_and_method() {
    let mut r = route(
        "grpc",
        &[],
        vec![rule(
            vec![RequestMatch {
                rpc: Some(RpcMatch {
                    service: Some("shop.Cart".into()),
                    method: Some("Add".into()),
                }),
                ..RequestMatch::default()
            }],
            "cart",
        )],
    );
    r.kind = RouteKind::Grpc;
    let table = RouteTable::new(RouteRef::Default("svc".into()), &[r]).unwrap();
    assert_eq!(
        pick(&table, &req(Method::POST, "/shop.Cart/Add", &[])).as_deref(),
        Some("cart")
    );
    assert_eq!(
        pick(&table, &req(Method::POST, "/shop.Cart/Remove", &[])),
        None
    );
}

#[test]
fn invalid_regular_expressions_fail_the_table() {
    let err = RouteTable::new(
        RouteRef::Default("svc".into()),
        &[route(
            "bad",
            &[],
            vec![rule(vec![path(PathMatch::Regex("(".into()))], "web")],
        )],
    )
    .unwrap_err();
    assert!(err.to_string().contains("\"(\""), "{err}");
}

#[test]
fn weights_split_requests() {
    let table = RouteTable::new(
        RouteRef::Default("svc".into()),
        &[route(
            "split",
            &[],
            vec![api::Rule {
                backends: vec![backend("v1", 90), backend("v2", 10), backend("off", 0)],
                ..api::Rule::default()
            }],
        )],
    )
    .unwrap();
    let r = req(Method::GET, "/", &[]);
    let n = 20_000;
    let v2 = (0..n)
        .filter(|_| pick(&table, &r).as_deref() == Some("v2"))
        .count();
    let share = v2 as f64 / n as f64;
    assert!((0.08..=0.12).contains(&share), "v2 got {share}");
    assert_eq!(
        table.backend_paths().len(),
        2,
        "a weight-0 backend is never used"
    );
}

#[test]
fn retry_policies_classify_statuses_and_grpc_codes() {
    let policy = RetryPolicy::new(&Retry {
        limit: 2,
        max_request_bytes: 1024,
        statuses: vec![500..=504],
        codes: vec![GrpcCode::Unavailable],
        timeout: None,
        backoff: Some(Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(25),
            jitter_permille: 0,
        }),
    });
    let rsp = |status: u16, grpc: Option<&str>| {
        let mut b = Response::builder().status(status);
        if let Some(code) = grpc {
            b = b.header("grpc-status", code);
        }
        b.body(()).unwrap()
    };
    assert!(policy.is_retryable(&rsp(503, None)));
    assert!(!policy.is_retryable(&rsp(505, None)));
    assert!(!policy.is_retryable(&rsp(200, None)));
    assert!(policy.is_retryable(&rsp(200, Some("14"))));
    assert!(!policy.is_retryable(&rsp(200, Some("2"))));
    assert_eq!(policy.delay(1), Duration::from_millis(10));
    assert_eq!(policy.delay(2), Duration::from_millis(20));
    assert_eq!(policy.delay(5), Duration::from_millis(25));
}
