//! Client counters and the tiny HTTP server that reports them as JSON.

use std::{collections::BTreeMap, convert::Infallible, sync::Arc};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use hyper::{body::Incoming, service::service_fn};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::{self, Body, full};

/// Default address of the stats server.
pub const DEFAULT_STATS_ADDR: &str = "0.0.0.0:9000";

/// The result of one request, as the client counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The key counted in [`Snapshot::outcomes`]: a status code such as `"200"`, `grpc-<code>`
    /// or `error:<kind>`.
    pub key: String,
    /// Whether the request succeeded (2xx, `SERVING`, or an exact TCP echo).
    pub ok: bool,
    /// What went wrong, for failures.
    pub error: Option<String>,
    /// The server that answered, from its `x-demo-server` header (HTTP).
    pub server: Option<String>,
}

impl Outcome {
    /// A successful request counted under `key`.
    pub fn success(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            ok: true,
            error: None,
            server: None,
        }
    }

    /// A failed request counted under `key`, with what went wrong.
    pub fn failure(key: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            ok: false,
            error: Some(error.into()),
            server: None,
        }
    }
}

/// The counters at one moment; this is the JSON that `GET /stats` returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Requests completed (successes and failures).
    pub sent: u64,
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Requests per outcome key.
    pub outcomes: BTreeMap<String, u64>,
    /// What went wrong in the most recent failure.
    pub last_error: Option<String>,
    /// Answers per server name (`x-demo-server`), for traffic splits.
    #[serde(default)]
    pub servers: BTreeMap<String, u64>,
}

/// Counters shared by the client loop and the stats server.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Snapshot>,
}

impl Stats {
    /// Counts one completed request.
    pub fn record(&self, outcome: &Outcome) {
        let mut s = self.inner.lock();
        s.sent += 1;
        if outcome.ok {
            s.ok += 1;
        } else {
            s.failed += 1;
        }
        *s.outcomes.entry(outcome.key.clone()).or_default() += 1;
        if let Some(server) = &outcome.server {
            *s.servers.entry(server.clone()).or_default() += 1;
        }
        if let Some(error) = &outcome.error {
            s.last_error = Some(error.clone());
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.lock().clone()
    }

    /// Zeroes the counters and returns what they were.
    pub fn reset(&self) -> Snapshot {
        std::mem::take(&mut *self.inner.lock())
    }
}

/// Serves `GET /stats`, `POST /reset` and `GET /healthz` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, stats: Arc<Stats>, shutdown: CancellationToken) {
    let svc = service_fn(move |req: Request<Incoming>| {
        let res = handle(&stats, &req);
        async move { Ok::<_, Infallible>(res) }
    });
    server::serve_http(
        "stats",
        listener,
        svc,
        shutdown,
        server::DEFAULT_DRAIN_TIMEOUT,
    )
    .await;
}

fn handle(stats: &Stats, req: &Request<Incoming>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/stats") => json(&stats.snapshot()),
        (&Method::POST, "/reset") => json(&stats.reset()),
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn json(snapshot: &Snapshot) -> Response<Body> {
    match serde_json::to_vec(snapshot) {
        Ok(body) => {
            let mut res = Response::new(full(body));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode stats: {error}\n"),
        ),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res
}
