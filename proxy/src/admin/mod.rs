//! Admin server (`:4191`): `/live`, `/ready` and `/metrics`.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown};
use tokio::net::TcpListener;

use crate::{drain::Drain, metrics::Metrics, transport::listen};

/// Content type of the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether the proxy is ready: set once it holds its first certificate.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A latch that is not ready yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the proxy ready.
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What the admin handlers read.
#[derive(Clone, Debug)]
pub struct Admin {
    readiness: Readiness,
    metrics: Arc<Metrics>,
}

impl Admin {
    /// An admin server over the proxy's readiness and metrics.
    pub fn new(readiness: Readiness, metrics: Arc<Metrics>) -> Self {
        Self { readiness, metrics }
    }

    /// Answers one admin request.
    pub fn handle<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        let text = |status: StatusCode, body: &'static str| {
            let mut rsp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            *rsp.status_mut() = status;
            rsp
        };
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        match req.uri().path() {
            "/live" => text(StatusCode::OK, "live\n"),
            "/ready" if self.readiness.is_ready() => text(StatusCode::OK, "ready\n"),
            "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            "/metrics" => match self.metrics.encode() {
                Ok(body) => {
                    let mut rsp = Response::new(Full::new(Bytes::from(body)));
                    rsp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static(METRICS_CONTENT_TYPE),
                    );
                    rsp
                }
                Err(error) => {
                    tracing::error!(%error, "Failed to encode metrics");
                    text(StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n")
                }
            },
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// Serves HTTP/1 admin requests on `listener` until `drain` starts, then lets open
    /// connections finish their requests.
    pub async fn serve(self, listener: TcpListener, drain: Drain) {
        let graceful = GracefulShutdown::new();
        while let Some((stream, peer)) = listen::accept(&listener, &drain).await {
            let admin = self.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let rsp = admin.handle(&req);
                async move { Ok::<_, Infallible>(rsp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            let conn = graceful.watch(conn);
            drain.spawn(async move {
                if let Err(error) = conn.await {
                    tracing::debug!(%peer, %error, "Admin connection failed");
                }
            });
        }
        graceful.shutdown().await;
    }
}

#[cfg(test)]
mod tests;
