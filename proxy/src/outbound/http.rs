//! Outbound HTTP: serves the application's requests and sends each through a balancer.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::{Service, ServiceExt};

use super::balance::Balancer;
use crate::inbound::http::Body;

/// How long a request waits for an endpoint before it fails (the contract's queue
/// `failfast_timeout`).
pub const FAILFAST_TIMEOUT: Duration = Duration::from_secs(3);
/// Header the peer uses for its own profile lookup.
pub const L5D_DST_CANONICAL: &str = "l5d-dst-canonical";

fn proxy_error(status: StatusCode, reason: &'static str) -> Response<Body> {
    let mut rsp = Response::new(Either::Right(Full::new(Bytes::new())));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        crate::http::L5D_PROXY_ERROR,
        HeaderValue::from_static(reason),
    );
    rsp
}

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
    let upgrade = (req.version() != http::Version::HTTP_2
        && req.headers().contains_key(http::header::UPGRADE))
    .then(|| hyper::upgrade::on(&mut req));
    match ready.call(req).await {
        Ok(mut rsp) => {
            if rsp.status() == StatusCode::SWITCHING_PROTOCOLS
                && let Some(app_upgrade) = upgrade
            {
                let peer_upgrade = hyper::upgrade::on(&mut rsp);
                tokio::spawn(async move {
                    match tokio::try_join!(app_upgrade, peer_upgrade) {
                        Ok((app, peer)) => {
                            let (mut app, mut peer) = (
                                hyper_util::rt::TokioIo::new(app),
                                hyper_util::rt::TokioIo::new(peer),
                            );
                            let _ = tokio::io::copy_bidirectional(&mut app, &mut peer).await;
                        }
                        Err(error) => tracing::debug!(%error, "Upgrade failed"),
                    }
                });
            }
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
    crate::http::serve(io, h2, svc, drain).await;
}
