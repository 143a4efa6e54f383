//! Outbound HTTP: serves the application's requests, picks each one's route rule, applies
//! its filters, sends it to a weighted backend's balancer within the rule's timeouts, and
//! retries it within the target's budget.

use std::{collections::HashMap, sync::Arc, time::Duration};

use ::http::{HeaderValue, Request, Response, StatusCode, request};
use http_body_util::Either;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::{Service, ServiceExt};

use super::{
    balance::{Balancer, FAILFAST_TIMEOUT},
    failfast::FailFastError,
    route::{
        Routes,
        retry::{Budget, L5D_RETRY_ATTEMPT, RetryPolicy},
    },
};
use crate::{
    error::is_caused_by,
    http::{self, Body, L5D_DST_CANONICAL, ReqBody, proxy_error, replay::Replay, upgrade},
    metrics::route::{RouteHandles, RouteMetrics},
};
use trellis_api::route::RouteKind;

/// What a connection's requests are routed with.
#[derive(Debug)]
pub struct Router {
    /// Route metrics.
    pub metrics: RouteMetrics,
    /// The target's routes.
    pub routes: Routes,
    /// A balancer per backend path the routes name.
    pub backends: HashMap<String, Balancer>,
    /// The target's retry budget.
    pub budget: Arc<Budget>,
    /// `l5d-dst-canonical` of requests: the target's logical name.
    pub name: HeaderValue,
}

/// The outcome of one try that produced no response of the peer's.
struct Failed {
    response: Response<Body>,
    retryable: bool,
    /// The `error` label of route metrics.
    error: &'static str,
}

/// Routes one request.
async fn route(router: Arc<Router>, mut req: Request<Incoming>) -> Response<Body> {
    let start = tokio::time::Instant::now();
    req.headers_mut()
        .insert(L5D_DST_CANONICAL, router.name.clone());
    let Some(selected) = router.routes.select(&req) else {
        return proxy_error(StatusCode::NOT_FOUND, "no route matches the request");
    };
    let (route, rule) = (selected.route, selected.rule);
    let metrics = route.handles(&router.metrics, router.routes.parent());
    let grpc = route.kind == RouteKind::Grpc;
    if rule.filters.redirects()
        && let Some(rsp) = rule.filters.redirect(&req, rule.matched_prefix(&req))
    {
        metrics.complete(start.elapsed().as_secs_f64(), status_of(&rsp, grpc), "");
        return rsp;
    }
    rule.filters.request(&mut req);
    let Some(backend) = rule.pick_backend() else {
        metrics.complete(start.elapsed().as_secs_f64(), u32::MAX, "UNEXPECTED");
        return proxy_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the route has no valid backend",
        );
    };
    backend.filters.request(&mut req);
    let Some(balancer) = router.backends.get(&backend.path) else {
        metrics.complete(start.elapsed().as_secs_f64(), u32::MAX, "UNEXPECTED");
        return proxy_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the backend is not discovered",
        );
    };
    metrics.backend_request(&backend.path, &backend.meta);
    let per_try = rule
        .retry
        .as_ref()
        .and_then(|r| r.timeout)
        .or(rule.timeouts.response);
    let send = send(
        balancer,
        req,
        per_try,
        rule.retry.as_ref(),
        &router.budget,
        metrics,
    );
    let (mut rsp, error) = match rule.timeouts.request {
        Some(limit) => tokio::time::timeout(limit, send).await.unwrap_or_else(|_| {
            (
                proxy_error(StatusCode::GATEWAY_TIMEOUT, "request timeout"),
                "REQUEST_TIMEOUT",
            )
        }),
        None => send.await,
    };
    backend.filters.response(&mut rsp);
    rule.filters.response(&mut rsp);
    let status = if error.is_empty() {
        status_of(&rsp, grpc)
    } else {
        u32::MAX
    };
    metrics.complete(start.elapsed().as_secs_f64(), status, error);
    rsp
}

/// The status label of a response: its HTTP status, or for gRPC the `grpc-status` of a
/// trailers-only response (`u32::MAX`, an empty label, when it comes in trailers).
fn status_of<B>(rsp: &Response<B>, grpc: bool) -> u32 {
    if grpc {
        http::grpc_status(rsp).unwrap_or(u32::MAX)
    } else {
        u32::from(rsp.status().as_u16())
    }
}

/// Sends `req`, retrying it under `retry` while its body stays small enough to replay.
async fn send(
    balancer: &Balancer,
    req: Request<Incoming>,
    per_try: Option<Duration>,
    retry: Option<&RetryPolicy>,
    budget: &Budget,
    metrics: &RouteHandles,
) -> (Response<Body>, &'static str) {
    let Some(policy) = retry.filter(|p| p.limit > 0 && !upgrade::is_upgrade(&req)) else {
        return respond(try_once(balancer.clone(), req.map(Either::Left), per_try).await);
    };
    budget.deposit();
    let (parts, body) = req.into_parts();
    // The first try sends the client's body as it reads it, keeping up to the limit for
    // replays; `recorder` is never sent, it only makes them.
    let first = Replay::new(body, policy.max_request_bytes as usize);
    let Some(recorder) = first.replay() else {
        return respond(try_once(balancer.clone(), rebuild(&parts, first, 0), per_try).await);
    };
    let mut body = first;
    let mut attempt = 0;
    loop {
        let req = rebuild(&parts, body, attempt);
        let out = try_once(balancer.clone(), req, per_try).await;
        let retryable = match &out {
            Ok(rsp) => policy.is_retryable(rsp),
            Err(failed) => failed.retryable,
        };
        if !retryable {
            if attempt > 0 {
                metrics.retry_success();
            }
            return respond(out);
        }
        if attempt >= policy.limit {
            metrics.retry_limit_exceeded();
            return respond(out);
        }
        let Some(next) = recorder.replay() else {
            tracing::debug!("Request body larger than the retry limit; not retrying");
            return respond(out);
        };
        if !budget.withdraw() {
            tracing::debug!("Retry budget spent; answering with the failed try");
            metrics.retry_overflow();
            return respond(out);
        }
        metrics.retry();
        attempt += 1;
        body = next;
        tokio::time::sleep(policy.delay(attempt)).await;
    }
}

/// A try of a request: its head again (numbered when it is a retry) and `body`.
fn rebuild(parts: &request::Parts, body: Replay, attempt: u32) -> Request<ReqBody> {
    let mut req = Request::new(Either::Right(body));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    if attempt > 0 {
        req.headers_mut()
            .insert(L5D_RETRY_ATTEMPT, HeaderValue::from(attempt));
    }
    req
}

fn respond(out: Result<Response<Incoming>, Failed>) -> (Response<Body>, &'static str) {
    match out {
        Ok(rsp) => (rsp.map(Either::Left), ""),
        Err(failed) => (failed.response, failed.error),
    }
}

/// One try through `balancer`, within `per_try` when set.
async fn try_once(
    mut balancer: Balancer,
    mut req: Request<ReqBody>,
    per_try: Option<Duration>,
) -> Result<Response<Incoming>, Failed> {
    let app_upgrade = upgrade::on_request(&mut req);
    let call = async {
        let ready = match tokio::time::timeout(FAILFAST_TIMEOUT, balancer.ready()).await {
            Ok(Ok(svc)) => svc,
            Ok(Err(error)) => {
                tracing::info!(%error, "Balancer failed");
                return Err(Failed {
                    response: proxy_error(StatusCode::BAD_GATEWAY, "balancer failed"),
                    retryable: false,
                    error: "UNEXPECTED",
                });
            }
            Err(_) => {
                tracing::info!("The balancer's queue stayed full; shedding the request");
                return Err(Failed {
                    response: proxy_error(StatusCode::SERVICE_UNAVAILABLE, "queue full (failfast)"),
                    retryable: false,
                    error: "LOAD_SHED",
                });
            }
        };
        match ready.call(req).await {
            Ok(rsp) => Ok(rsp),
            Err(error) if is_caused_by::<FailFastError>(&*error) => Err(Failed {
                response: proxy_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no ready endpoints (failfast)",
                ),
                retryable: false,
                error: "FAILFAST",
            }),
            Err(error) => {
                tracing::info!(%error, "Endpoint request failed");
                Err(Failed {
                    response: proxy_error(StatusCode::BAD_GATEWAY, "endpoint unreachable"),
                    retryable: true,
                    error: "UNEXPECTED",
                })
            }
        }
    };
    let mut rsp = match per_try {
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(out) => out?,
            Err(_) => {
                return Err(Failed {
                    response: proxy_error(StatusCode::GATEWAY_TIMEOUT, "response timeout"),
                    retryable: true,
                    error: "RESPONSE_HEADERS_TIMEOUT",
                });
            }
        },
        None => call.await?,
    };
    upgrade::splice(app_upgrade, &mut rsp);
    Ok(rsp)
}

/// Serves the app's HTTP (HTTP/2 when `h2`) on `io`, routing every request with the router
/// `router` gives at that moment, until the app closes or `drain` starts.
pub async fn serve<T>(
    io: T,
    h2: bool,
    router: impl Fn() -> Arc<Router> + Send + Sync + 'static,
    drain: crate::drain::Drain,
) where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let fut = route(router(), req);
        async move { Ok::<_, std::convert::Infallible>(fut.await) }
    });
    http::serve(io, h2, svc, drain).await;
}
