//! Outbound HTTP: serves the application's requests and sends each through a balancer.

use std::time::Duration;

use ::http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Either;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::{Service, ServiceExt};

use super::balance::Balancer;
use crate::http::{self, Body, L5D_DST_CANONICAL, proxy_error, upgrade};

/// How long a request waits for an endpoint before it fails (the contract's queue
/// `failfast_timeout`).
pub const FAILFAST_TIMEOUT: Duration = Duration::from_secs(3);

async fn route(
    mut balancer: Balancer,
    name: HeaderValue,
    mut req: Request<Incoming>,
) -> Response<Body> {
    req.headers_mut().insert(L5D_DST_CANONICAL, name);
    let ready = match tokio::time::timeout(FAILFAST_TIMEOUT, balancer.ready()).await {
        Ok(Ok(svc)) => svc,
        Ok(Err(error)) => {
            tracing::info!(%error, "Balancer failed");
            return proxy_error(StatusCode::BAD_GATEWAY, "balancer failed");
        }
        Err(_) => {
            tracing::info!("No endpoint became ready in time");
            return proxy_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no ready endpoints (failfast)",
            );
        }
    };
    let app_upgrade = upgrade::on_request(&mut req);
    match ready.call(req).await {
        Ok(mut rsp) => {
            upgrade::splice(app_upgrade, &mut rsp);
            rsp.map(Either::Left)
        }
        Err(error) => {
            tracing::info!(%error, "Endpoint request failed");
            proxy_error(StatusCode::BAD_GATEWAY, "endpoint unreachable")
        }
    }
}

/// Serves the app's HTTP (HTTP/2 when `h2`) on `io`, routing every request to `balancer`
/// with `l5d-dst-canonical: name`, until the app closes or `drain` starts.
pub async fn serve<T>(io: T, h2: bool, balancer: Balancer, name: String, drain: crate::drain::Drain)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let name = HeaderValue::from_str(&name).unwrap_or_else(|_| HeaderValue::from_static(""));
    let svc = hyper::service::service_fn(move |req| {
        let fut = route(balancer.clone(), name.clone(), req);
        async move { Ok::<_, std::convert::Infallible>(fut.await) }
    });
    http::serve(io, h2, svc, drain).await;
}
