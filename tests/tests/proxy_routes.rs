//! In-process outbound routing over real sockets: a client proxy gets routes from a fake
//! outbound policy controller and sends requests through mTLS to meshed backend proxies.
//! Covers header and path rules, filters and redirects, a weighted split, request and
//! backend timeouts, retries and their budget, gRPC retries on codes, failure accrual and
//! endpoints that cannot be reached.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use trellis_api::{
    outbound::{AppProtocol, OutboundPolicy, ServiceRef},
    route::{
        Backend, Backoff, FailureAccrual, Filter, GrpcCode, HeaderModifier, NameMatch, PathMatch,
        PathModifier, Redirect, RequestMatch, Retry, Route, RouteBackend, RouteKind, RouteRef,
        RpcMatch, Rule, Timeouts, ValueMatch,
    },
};
use trellis_proxy::{
    app::{self, config},
    test_util::LOCAL_IDENTITY,
};
use trellis_tests::{
    control::{FakeDestination, FakeOutboundPolicy, FakePolicy, meshed_endpoint, servers},
    proxy::{Mesh, assert_metrics_contain, outbound_to, shutdown_all, to},
};

/// The parent and route labels of the test's routes, as Linkerd names them.
const ROUTE_LABELS: &str = "parent_group=\"core\",parent_kind=\"Service\",parent_namespace=\"shop\",parent_name=\"web\",parent_port=\"80\",parent_section_name=\"\",route_group=\"gateway.networking.k8s.io\",route_kind=\"HTTPRoute\",route_namespace=\"shop\",route_name=\"web\"";

const WEB_IDENTITY: &str = "web.shop.serviceaccount.identity.trellis.cluster.local";

/// A Service IP that is never dialled: discovery resolves it to the peers on loopback.
fn service_ip() -> SocketAddr {
    "198.18.0.10:80".parse().unwrap()
}

fn path_of(name: &str) -> String {
    format!("{name}.shop.svc.cluster.local:80")
}

/// Requests an app has seen, by path.
type Seen = Arc<Mutex<HashMap<String, Vec<http::HeaderMap>>>>;

/// A scripted app named `name`:
/// - `/flaky/<id>`: 503 the first time, then 200;
/// - `/fail`: always 503;
/// - `…/slow/<ms>`: answers after `ms` milliseconds;
/// - `/shop.Cart/<method>`: gRPC, trailers-only `UNAVAILABLE` the first time per method,
///   then `OK`;
/// - anything else: 200 with `app=<name> path=<path> x-route=<header>`.
async fn scripted_app(name: &'static str) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = log.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(name, seen.clone(), req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn answer(
    name: &'static str,
    seen: Seen,
    req: Request<Incoming>,
) -> Result<Response<Full<bytes::Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let tries = {
        let mut seen = seen.lock();
        let list = seen.entry(path.clone()).or_default();
        list.push(req.headers().clone());
        list.len()
    };
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut rsp = Response::new(Full::new(bytes::Bytes::new()));
    if path.starts_with("/flaky/") && tries == 1 || path == "/fail" {
        *rsp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    } else if let Some((_, ms)) = path.rsplit_once("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
    } else if path.starts_with("/shop.Cart/") {
        let headers = rsp.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        let code = if tries == 1 { "14" } else { "0" };
        headers.insert("grpc-status", HeaderValue::from_static(code));
    } else {
        let route = seen.lock()[&path]
            .last()
            .and_then(|h| h.get("x-route").cloned())
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        *rsp.body_mut() = Full::new(
            format!(
                "app={name} path={path} x-route={route} body={}",
                String::from_utf8_lossy(&body)
            )
            .into(),
        );
    }
    Ok(rsp)
}

/// A meshed backend: `app` behind its own proxy, admitting every client.
async fn backend(mesh: &Mesh, app: SocketAddr, name: &str) -> app::Running {
    let policy = FakePolicy::default();
    policy.set(app.port(), servers::unauthenticated(name));
    let policy_addr = policy.spawn().await.to_string();
    mesh.proxy(
        WEB_IDENTITY,
        &[(config::ENV_POLICY_SVC_ADDR, &policy_addr)],
        to(app),
    )
    .await
}

fn service_backend(name: &str, weight: u32) -> RouteBackend {
    RouteBackend {
        backend: Backend {
            meta: RouteRef::Resource {
                group: "core".into(),
                kind: "Service".into(),
                namespace: "shop".into(),
                name: name.into(),
                port: 80,
            },
            path: path_of(name),
        },
        weight,
        filters: Vec::new(),
    }
}

fn prefix(p: &str) -> RequestMatch {
    RequestMatch {
        path: Some(PathMatch::Prefix(p.into())),
        ..RequestMatch::default()
    }
}

fn http_route(rules: Vec<Rule>) -> Route {
    Route {
        meta: RouteRef::Resource {
            group: "gateway.networking.k8s.io".into(),
            kind: "HTTPRoute".into(),
            namespace: "shop".into(),
            name: "web".into(),
            port: 0,
        },
        kind: RouteKind::Http,
        hosts: Vec::new(),
        rules,
    }
}

fn policy(routes: Vec<Route>, accrual: Option<FailureAccrual>) -> OutboundPolicy {
    let mut p = OutboundPolicy::service_default(
        ServiceRef {
            namespace: "shop".into(),
            name: "web".into(),
            port: 80,
        },
        path_of("web"),
        AppProtocol::Detect,
    );
    p.routes = routes;
    p.failure_accrual = accrual;
    p
}

/// The mesh, and a client proxy whose outbound connections all go to [`service_ip`],
/// discovering through `dst` and `policies`.
async fn client(mesh: &Mesh, dst: &FakeDestination, policies: &FakeOutboundPolicy) -> app::Running {
    let dst = dst.clone().spawn().await.to_string();
    let policy = policies.clone().spawn().await.to_string();
    mesh.proxy(
        LOCAL_IDENTITY,
        &[
            (config::ENV_DESTINATION_SVC_ADDR, &dst),
            (config::ENV_POLICY_SVC_ADDR, &policy),
        ],
        outbound_to(service_ip()),
    )
    .await
}

/// A destination controller knowing [`service_ip`] as `web`, whose backends' endpoints are
/// the given proxies' inbound addresses.
fn destination(backends: &[(&str, &[SocketAddr])]) -> FakeDestination {
    let dst = FakeDestination::default();
    dst.set_service(service_ip(), "web.shop.svc.cluster.local");
    for (name, addrs) in backends {
        let endpoints = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| meshed_endpoint(*a, WEB_IDENTITY, &format!("{name}-{i}")))
            .collect();
        dst.set_endpoints(&path_of(name), endpoints);
    }
    dst
}

/// An HTTP/1 keep-alive connection to the client proxy's outbound listener.
struct Client(hyper::client::conn::http1::SendRequest<String>);

impl Client {
    async fn connect(outbound: SocketAddr) -> Self {
        let io = TokioIo::new(TcpStream::connect(outbound).await.unwrap());
        let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        Self(send)
    }

    async fn send(&mut self, req: http::Request<String>) -> Response<String> {
        self.0.ready().await.unwrap();
        let rsp = self.0.send_request(req).await.unwrap();
        let (parts, body) = rsp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Response::from_parts(parts, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Response<String> {
        let mut req = http::Request::builder()
            .uri(path)
            .header("host", "web.shop.svc.cluster.local");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(String::new()).unwrap()).await
    }
}

fn proxy_error(rsp: &Response<String>) -> &str {
    rsp.headers()
        .get("l5d-proxy-error")
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

#[tokio::test]
async fn rules_route_by_path_and_header_and_apply_their_filters() {
    let mesh = Mesh::new().await;
    let (v1_app, _) = scripted_app("v1").await;
    let (v2_app, _) = scripted_app("v2").await;
    let v1 = backend(&mesh, v1_app, "v1").await;
    let v2 = backend(&mesh, v2_app, "v2").await;
    let dst = destination(&[
        ("web-v1", &[v1.inbound_addr]),
        ("web-v2", &[v2.inbound_addr]),
    ]);
    let policies = FakeOutboundPolicy::default();
    let canary = RequestMatch {
        headers: vec![NameMatch {
            name: "x-version".into(),
            value: ValueMatch::Exact("2".into()),
        }],
        ..prefix("/")
    };
    policies.set_policy(
        service_ip(),
        policy(
            vec![http_route(vec![
                Rule {
                    matches: vec![prefix("/")],
                    backends: vec![service_backend("web-v1", 1)],
                    ..Rule::default()
                },
                Rule {
                    matches: vec![prefix("/v2"), canary],
                    filters: vec![
                        Filter::RequestHeaders(HeaderModifier {
                            set: vec![("x-route".into(), "canary".into())],
                            ..HeaderModifier::default()
                        }),
                        Filter::ResponseHeaders(HeaderModifier {
                            add: vec![("x-served-by".into(), "canary-rule".into())],
                            ..HeaderModifier::default()
                        }),
                    ],
                    backends: vec![service_backend("web-v2", 1)],
                    ..Rule::default()
                },
                Rule {
                    matches: vec![prefix("/old")],
                    filters: vec![Filter::Redirect(Redirect {
                        scheme: None,
                        host: Some("new.example.com".into()),
                        path: Some(PathModifier::Prefix("/new".into())),
                        port: None,
                        status: 301,
                    })],
                    ..Rule::default()
                },
                Rule {
                    matches: vec![prefix("/nowhere")],
                    ..Rule::default()
                },
            ])],
            None,
        ),
    );
    let client = client(&mesh, &dst, &policies).await;
    let mut c = Client::connect(client.outbound_addrs[0]).await;

    let rsp = c.get("/hello", &[]).await;
    assert!(
        rsp.body().starts_with("app=v1 path=/hello x-route= "),
        "{rsp:?}"
    );
    assert!(rsp.headers().get("x-served-by").is_none());

    let rsp = c.get("/v2/items", &[]).await;
    assert!(
        rsp.body()
            .starts_with("app=v2 path=/v2/items x-route=canary "),
        "{rsp:?}"
    );
    assert_eq!(rsp.headers()["x-served-by"], "canary-rule");

    let rsp = c.get("/hello", &[("x-version", "2")]).await;
    assert!(rsp.body().starts_with("app=v2 path=/hello"), "{rsp:?}");
    let rsp = c.get("/hello", &[("x-version", "3")]).await;
    assert!(rsp.body().starts_with("app=v1 path=/hello"), "{rsp:?}");
    // `/v2x` is not under the `/v2` prefix.
    let rsp = c.get("/v2x", &[]).await;
    assert!(rsp.body().starts_with("app=v1 "), "{rsp:?}");

    let rsp = c.get("/old/page?q=1", &[]).await;
    assert_eq!(rsp.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        rsp.headers()["location"],
        "http://new.example.com/new/page?q=1"
    );

    let rsp = c.get("/nowhere", &[]).await;
    assert_eq!(rsp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(proxy_error(&rsp), "the route has no valid backend");

    // A route table that no longer matches `/hello`: 404 from the proxy.
    policies.set_policy(
        service_ip(),
        policy(
            vec![http_route(vec![Rule {
                matches: vec![prefix("/v2")],
                backends: vec![service_backend("web-v2", 1)],
                ..Rule::default()
            }])],
            None,
        ),
    );
    trellis_tests::assert_eventually!(
        {
            let mut c = Client::connect(client.outbound_addrs[0]).await;
            c.get("/hello", &[]).await.status() == StatusCode::NOT_FOUND
        },
        trellis_tests::proxy::WAIT
    );
    shutdown_all([client, v1, v2]).await;
}

#[tokio::test]
async fn a_90_10_split_holds_within_3_percent_over_2000_requests() {
    let mesh = Mesh::new().await;
    let (v1_app, _) = scripted_app("v1").await;
    let (v2_app, _) = scripted_app("v2").await;
    let v1 = backend(&mesh, v1_app, "v1").await;
    let v2 = backend(&mesh, v2_app, "v2").await;
    let dst = destination(&[
        ("web-v1", &[v1.inbound_addr]),
        ("web-v2", &[v2.inbound_addr]),
    ]);
    let policies = FakeOutboundPolicy::default();
    policies.set_policy(
        service_ip(),
        policy(
            vec![http_route(vec![Rule {
                backends: vec![service_backend("web-v1", 90), service_backend("web-v2", 10)],
                ..Rule::default()
            }])],
            None,
        ),
    );
    let client = client(&mesh, &dst, &policies).await;
    let total = 2000;
    // Four keep-alive connections: the split is per request, not per connection.
    let counts = futures::future::join_all((0..4).map(|_| async {
        let mut c = Client::connect(client.outbound_addrs[0]).await;
        let mut v2 = 0;
        for _ in 0..total / 4 {
            let rsp = c.get("/split", &[]).await;
            assert_eq!(rsp.status(), 200, "{rsp:?}");
            v2 += usize::from(rsp.body().starts_with("app=v2"));
        }
        v2
    }))
    .await;
    let share = counts.iter().sum::<usize>() as f64 / total as f64;
    assert!(
        (0.07..=0.13).contains(&share),
        "web-v2 got {share:.3} of requests, want 0.10 ± 0.03"
    );
    shutdown_all([client, v1, v2]).await;
}

#[tokio::test]
async fn request_and_backend_timeouts_answer_504() {
    let mesh = Mesh::new().await;
    let (app, _) = scripted_app("v1").await;
    let v1 = backend(&mesh, app, "v1").await;
    let dst = destination(&[("web-v1", &[v1.inbound_addr])]);
    let policies = FakeOutboundPolicy::default();
    let rule = |p: &str, timeouts| Rule {
        matches: vec![prefix(p)],
        backends: vec![service_backend("web-v1", 1)],
        timeouts,
        ..Rule::default()
    };
    policies.set_policy(
        service_ip(),
        policy(
            vec![http_route(vec![
                rule(
                    "/request",
                    Timeouts {
                        request: Some(Duration::from_millis(200)),
                        ..Timeouts::default()
                    },
                ),
                rule(
                    "/backend",
                    Timeouts {
                        response: Some(Duration::from_millis(200)),
                        ..Timeouts::default()
                    },
                ),
            ])],
            None,
        ),
    );
    let client = client(&mesh, &dst, &policies).await;
    let outbound = client.outbound_addrs[0];
    // Warm discovery and the connection to the backend first.
    assert_eq!(
        Client::connect(outbound)
            .await
            .get("/request/x", &[])
            .await
            .status(),
        200
    );

    for (path, reason) in [
        ("/request/slow/2000", "request timeout"),
        ("/backend/slow/2000", "response timeout"),
    ] {
        let started = tokio::time::Instant::now();
        let rsp = Client::connect(outbound).await.get(path, &[]).await;
        assert_eq!(rsp.status(), StatusCode::GATEWAY_TIMEOUT, "{path}: {rsp:?}");
        assert_eq!(proxy_error(&rsp), reason);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    // Fast requests on the same rules are not cut.
    let rsp = Client::connect(outbound)
        .await
        .get("/backend/slow/10", &[])
        .await;
    assert_eq!(rsp.status(), 200);
    shutdown_all([client, v1]).await;
}

fn retry(limit: u32, statuses: Vec<std::ops::RangeInclusive<u16>>, codes: Vec<GrpcCode>) -> Retry {
    Retry {
        limit,
        max_request_bytes: 64 * 1024,
        statuses,
        codes,
        timeout: None,
        backoff: Some(Backoff {
            min: Duration::from_millis(5),
            max: Duration::from_millis(20),
            jitter_permille: 0,
        }),
    }
}

#[tokio::test]
async fn a_retry_succeeds_on_the_second_try_and_the_budget_caps_retries() {
    let mesh = Mesh::new().await;
    let (app, seen) = scripted_app("v1").await;
    let v1 = backend(&mesh, app, "v1").await;
    let dst = destination(&[("web-v1", &[v1.inbound_addr])]);
    let policies = FakeOutboundPolicy::default();
    policies.set_policy(
        service_ip(),
        policy(
            vec![http_route(vec![Rule {
                backends: vec![service_backend("web-v1", 1)],
                retry: Some(retry(3, vec![500..=599], Vec::new())),
                ..Rule::default()
            }])],
            None,
        ),
    );
    let client = client(&mesh, &dst, &policies).await;
    let mut c = Client::connect(client.outbound_addrs[0]).await;

    // A POST with a body: the retry replays it.
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/flaky/a")
        .header("host", "web.shop.svc.cluster.local")
        .header("content-length", "5")
        .body("hello".to_string())
        .unwrap();
    let rsp = c.send(req).await;
    assert_eq!(rsp.status(), 200, "{rsp:?}");
    assert!(rsp.body().ends_with("body=hello"), "{rsp:?}");
    let tries = seen.lock()["/flaky/a"].clone();
    assert_eq!(tries.len(), 2, "the first try failed, the retry succeeded");
    assert!(tries[0].get("l5d-retry-attempt").is_none());
    assert_eq!(tries[1]["l5d-retry-attempt"], "1");
    for metric in [
        format!("outbound_http_route_retry_requests_total{{{ROUTE_LABELS}}} 1"),
        format!("outbound_http_route_retry_successes_total{{{ROUTE_LABELS}}} 1"),
        format!(
            "outbound_http_route_request_statuses_total{{{ROUTE_LABELS},http_status=\"200\",error=\"\"}} 1"
        ),
        format!(
            "outbound_http_route_backend_requests_total{{{ROUTE_LABELS},backend_group=\"core\",backend_kind=\"Service\",backend_namespace=\"shop\",backend_name=\"web-v1\",backend_port=\"80\",backend_section_name=\"\"}} 1"
        ),
    ] {
        assert_metrics_contain(client.admin_addr, &metric).await;
    }

    // Under a backend that always fails, the budget (20 % of requests plus a reserve of
    // 10 per second over 10 s) bounds retries far below the limit of 3 per request.
    let requests = 300;
    for _ in 0..requests {
        assert_eq!(c.get("/fail", &[]).await.status(), 503);
    }
    let tries = seen.lock()["/fail"].len();
    let retries = tries - requests;
    assert!(retries > 0, "some requests were retried");
    let bound = requests / 5 + 100 + 10;
    assert!(
        retries <= bound,
        "{retries} retries for {requests} requests; the budget allows about {bound} (a limit of 3 alone would allow {})",
        requests * 3
    );
    assert_metrics_contain(
        client.admin_addr,
        &format!("outbound_http_route_retry_overflow_total{{{ROUTE_LABELS}}}"),
    )
    .await;
    shutdown_all([client, v1]).await;
}

#[tokio::test]
async fn grpc_requests_are_retried_on_their_codes() {
    let mesh = Mesh::new().await;
    let (app, seen) = scripted_app("cart").await;
    let cart = backend(&mesh, app, "cart").await;
    let dst = destination(&[("cart", &[cart.inbound_addr])]);
    let policies = FakeOutboundPolicy::default();
    let rule = |method: &str, codes| Rule {
        matches: vec![RequestMatch {
            rpc: Some(RpcMatch {
                service: Some("shop.Cart".into()),
                method: Some(method.into()),
            }),
            ..RequestMatch::default()
        }],
        backends: vec![service_backend("cart", 1)],
        retry: Some(retry(2, Vec::new(), codes)),
        ..Rule::default()
    };
    let mut route = http_route(vec![
        rule("Add", vec![GrpcCode::Unavailable]),
        rule("Remove", vec![GrpcCode::Internal]),
    ]);
    route.kind = RouteKind::Grpc;
    policies.set_policy(service_ip(), policy(vec![route], None));
    let client = client(&mesh, &dst, &policies).await;

    let io = TokioIo::new(TcpStream::connect(client.outbound_addrs[0]).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut call = async |method: &str| {
        let req = http::Request::builder()
            .method(Method::POST)
            .uri(format!(
                "http://cart.shop.svc.cluster.local/shop.Cart/{method}"
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(bytes::Bytes::from_static(&[0, 0, 0, 0, 0])))
            .unwrap();
        let rsp = send.send_request(req).await.unwrap();
        rsp.headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_string())
    };
    // UNAVAILABLE is retried on Add: the second try answers OK.
    assert_eq!(call("Add").await.as_deref(), Some("0"));
    assert_eq!(seen.lock()["/shop.Cart/Add"].len(), 2);
    // Remove retries only INTERNAL, so its UNAVAILABLE reaches the client.
    assert_eq!(call("Remove").await.as_deref(), Some("14"));
    assert_eq!(seen.lock()["/shop.Cart/Remove"].len(), 1);
    shutdown_all([client, cart]).await;
}

/// Sends `n` requests over four connections; returns how many were not 200.
async fn failures(outbound: SocketAddr, n: usize) -> usize {
    futures::future::join_all((0..4).map(|_| async {
        let mut c = Client::connect(outbound).await;
        let mut failed = 0;
        for _ in 0..n / 4 {
            failed += usize::from(c.get("/work", &[]).await.status() != 200);
        }
        failed
    }))
    .await
    .into_iter()
    .sum()
}

#[tokio::test]
async fn failure_accrual_ejects_an_endpoint_that_keeps_failing() {
    let mesh = Mesh::new().await;
    let (ok_app, _) = scripted_app("ok").await;
    let ok = [
        backend(&mesh, ok_app, "ok-0").await,
        backend(&mesh, ok_app, "ok-1").await,
    ];
    // The third endpoint's proxy is up but its app is gone: every request gets a 502.
    let dead_app = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let failing = backend(&mesh, dead_app, "failing").await;
    let dst = destination(&[(
        "web",
        &[ok[0].inbound_addr, ok[1].inbound_addr, failing.inbound_addr],
    )]);
    let policies = FakeOutboundPolicy::default();
    let accrual = FailureAccrual {
        max_failures: 7,
        // Long enough that no probe falls inside the measurement.
        backoff: Backoff {
            min: Duration::from_secs(30),
            max: Duration::from_secs(60),
            jitter_permille: 0,
        },
    };
    policies.set_policy(
        service_ip(),
        policy(
            vec![http_route(vec![Rule {
                backends: vec![service_backend("web", 1)],
                ..Rule::default()
            }])],
            Some(accrual),
        ),
    );
    let client = client(&mesh, &dst, &policies).await;
    let outbound = client.outbound_addrs[0];
    let warmup = failures(outbound, 100).await;
    // Seven in a row eject it; requests already sent to it on the other three connections
    // may fail too.
    assert!(
        (1..=10).contains(&warmup),
        "{warmup} failures before ejection; want 1..=10"
    );
    let n = 2000;
    let failed = failures(outbound, n).await;
    let success = 1.0 - failed as f64 / n as f64;
    assert!(
        success >= 0.999,
        "success rate {success:.4} after ejection ({failed} of {n} failed)"
    );
    let [ok0, ok1] = ok;
    shutdown_all([client, ok0, ok1, failing]).await;
}

#[tokio::test]
async fn an_endpoint_that_cannot_be_reached_gets_no_requests() {
    let mesh = Mesh::new().await;
    let (ok_app, _) = scripted_app("ok").await;
    let ok = [
        backend(&mesh, ok_app, "ok-0").await,
        backend(&mesh, ok_app, "ok-1").await,
    ];
    // A listed endpoint nothing listens on (its pod is gone).
    let gone = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let dst = destination(&[("web", &[ok[0].inbound_addr, ok[1].inbound_addr, gone])]);
    let policies = FakeOutboundPolicy::default();
    policies.set_policy(
        service_ip(),
        policy(
            vec![http_route(vec![Rule {
                backends: vec![service_backend("web", 1)],
                ..Rule::default()
            }])],
            Some(FailureAccrual::default()),
        ),
    );
    let client = client(&mesh, &dst, &policies).await;
    let n = 2000;
    let failed = failures(client.outbound_addrs[0], n).await;
    let success = 1.0 - failed as f64 / n as f64;
    assert!(
        success >= 0.999,
        "success rate {success:.4} with one endpoint of three gone"
    );

    // With every endpoint gone, requests are shed with 503 once failfast starts.
    dst.set_endpoints(
        &path_of("web"),
        vec![meshed_endpoint(gone, WEB_IDENTITY, "gone")],
    );
    let started = tokio::time::Instant::now();
    let mut c = Client::connect(client.outbound_addrs[0]).await;
    let rsp = c.get("/work", &[]).await;
    assert_eq!(rsp.status(), StatusCode::SERVICE_UNAVAILABLE, "{rsp:?}");
    assert_eq!(proxy_error(&rsp), "no ready endpoints (failfast)");
    assert!(started.elapsed() < Duration::from_secs(5));
    let started = tokio::time::Instant::now();
    assert_eq!(
        c.get("/work", &[]).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "failfast answers at once"
    );
    let [ok0, ok1] = ok;
    shutdown_all([client, ok0, ok1]).await;
}

#[tokio::test]
async fn service_profile_routes_retry_and_split_over_the_policy_routes() {
    use trellis_api::destination::{
        Profile, RequestMatch as P, Route as ProfileRoute, WeightedDst,
    };
    let mesh = Mesh::new().await;
    let (v1_app, v1_seen) = scripted_app("v1").await;
    let (v2_app, v2_seen) = scripted_app("v2").await;
    let v1 = backend(&mesh, v1_app, "v1").await;
    let v2 = backend(&mesh, v2_app, "v2").await;
    let dst = destination(&[
        ("web-v1", &[v1.inbound_addr]),
        ("web-v2", &[v2.inbound_addr]),
    ]);
    dst.set_profile(
        service_ip(),
        Profile {
            fully_qualified_name: "web.shop.svc.cluster.local".into(),
            routes: vec![ProfileRoute {
                name: "flaky".into(),
                condition: P::Path("/flaky/.*".into()),
                response_classes: Vec::new(),
                is_retryable: true,
                timeout: None,
            }],
            dst_overrides: ["web-v1", "web-v2"]
                .map(|name| WeightedDst {
                    authority: path_of(name),
                    weight: 5000,
                })
                .into(),
            ..Profile::default()
        },
    );
    // The policy's own route would send everything to web-v1; the profile wins.
    let policies = FakeOutboundPolicy::default();
    policies.set_policy(
        service_ip(),
        policy(
            vec![http_route(vec![Rule {
                backends: vec![service_backend("web-v1", 1)],
                ..Rule::default()
            }])],
            None,
        ),
    );
    let client = client(&mesh, &dst, &policies).await;
    let mut c = Client::connect(client.outbound_addrs[0]).await;
    for i in 0..20 {
        let rsp = c.get(&format!("/flaky/{i}"), &[]).await;
        assert_eq!(
            rsp.status(),
            200,
            "retried within the profile's budget: {rsp:?}"
        );
    }
    let (n1, n2) = (v1_seen.lock().len(), v2_seen.lock().len());
    assert_eq!(n1 + n2, 20, "every flaky path is seen by one backend");
    assert!(
        n1 > 0 && n2 > 0,
        "the split reaches both backends ({n1}/{n2})"
    );
    // A path no profile route matches is not retried.
    assert_eq!(c.get("/fail", &[]).await.status(), 503);
    let fails = v1_seen.lock().get("/fail").map_or(0, Vec::len)
        + v2_seen.lock().get("/fail").map_or(0, Vec::len);
    assert_eq!(fails, 1);
    shutdown_all([client, v1, v2]).await;
}

#[tokio::test]
async fn an_open_connection_follows_a_weight_change() {
    let mesh = Mesh::new().await;
    let (v1_app, _) = scripted_app("v1").await;
    let (v2_app, _) = scripted_app("v2").await;
    let v1 = backend(&mesh, v1_app, "v1").await;
    let v2 = backend(&mesh, v2_app, "v2").await;
    let dst = destination(&[
        ("web-v1", &[v1.inbound_addr]),
        ("web-v2", &[v2.inbound_addr]),
    ]);
    let policies = FakeOutboundPolicy::default();
    let split = |w1, w2| {
        policy(
            vec![http_route(vec![Rule {
                backends: vec![service_backend("web-v1", w1), service_backend("web-v2", w2)],
                ..Rule::default()
            }])],
            None,
        )
    };
    policies.set_policy(service_ip(), split(1, 0));
    let client = client(&mesh, &dst, &policies).await;
    // One keep-alive connection for the whole test, as a pooled app client would hold.
    let mut c = Client::connect(client.outbound_addrs[0]).await;
    for _ in 0..20 {
        assert!(c.get("/", &[]).await.body().starts_with("app=v1"));
    }
    policies.set_policy(service_ip(), split(0, 1));
    let mut moved = false;
    for _ in 0..100 {
        if c.get("/", &[]).await.body().starts_with("app=v2") {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(moved, "the open connection's requests moved to web-v2");
    for _ in 0..20 {
        assert!(c.get("/", &[]).await.body().starts_with("app=v2"));
    }
    shutdown_all([client, v1, v2]).await;
}

#[tokio::test]
async fn a_streamed_body_is_replayed_and_one_over_the_limit_is_sent_once() {
    let mesh = Mesh::new().await;
    let (app, seen) = scripted_app("v1").await;
    let v1 = backend(&mesh, app, "v1").await;
    let dst = destination(&[("web-v1", &[v1.inbound_addr])]);
    let policies = FakeOutboundPolicy::default();
    policies.set_policy(
        service_ip(),
        policy(
            vec![http_route(vec![Rule {
                backends: vec![service_backend("web-v1", 1)],
                retry: Some(retry(2, vec![500..=599], Vec::new())),
                ..Rule::default()
            }])],
            None,
        ),
    );
    let client = client(&mesh, &dst, &policies).await;
    // Chunked bodies (no content-length), as streaming clients and gRPC send them.
    let post = |path: &str, chunks: Vec<Vec<u8>>| {
        let frames = chunks.into_iter().map(|c| {
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from(c)))
        });
        http::Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", "web.shop.svc.cluster.local")
            .body(http_body_util::StreamBody::new(futures::stream::iter(
                frames,
            )))
            .unwrap()
    };
    let send = async |req| {
        let io = TokioIo::new(TcpStream::connect(client.outbound_addrs[0]).await.unwrap());
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let rsp = send.send_request(req).await.unwrap();
        let status = rsp.status();
        let body = rsp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };

    let (status, body) = send(post(
        "/flaky/chunked",
        vec![b"hel".to_vec(), b"lo".to_vec()],
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("body=hello"), "{body}");
    assert_eq!(seen.lock()["/flaky/chunked"].len(), 2);

    // 100 KiB is over the 64 KiB the route buffers: the failed first try is the answer.
    let big = vec![vec![b'x'; 25 * 1024]; 4];
    let (status, _) = send(post("/flaky/big", big)).await;
    assert_eq!(status, 503);
    assert_eq!(seen.lock()["/flaky/big"].len(), 1, "not retried");
    shutdown_all([client, v1]).await;
}
