//! Admin HTTP server: `/live`, `/ready` and Prometheus `/metrics` (port 9990 by default).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{
    Router, extract::State, http::StatusCode, http::header, response::IntoResponse, routing::get,
};
use parking_lot::RwLock;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// Why the admin server cannot bind or serve.
#[derive(Debug, thiserror::Error)]
#[error("admin server on {addr}: {source}")]
pub struct AdminError {
    /// The address.
    pub addr: SocketAddr,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// The metrics registry every part of the process registers into and `/metrics` encodes.
pub type SharedRegistry = Arc<RwLock<Registry>>;

/// Whether the process is ready; `/ready` answers 200 once every part has said so.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<RwLock<Vec<Part>>>);

/// A named part of the process and its readiness flag.
type Part = (String, Arc<AtomicBool>);

impl Readiness {
    /// Registers a part that must become ready; returns its flag.
    pub fn register(&self, part: &str) -> ReadyFlag {
        let flag = Arc::new(AtomicBool::new(false));
        self.0.write().push((part.to_string(), flag.clone()));
        ReadyFlag(flag)
    }

    /// The parts that are not ready yet (empty when the process is ready).
    pub fn not_ready(&self) -> Vec<String> {
        self.0
            .read()
            .iter()
            .filter(|(_, flag)| !flag.load(Ordering::Acquire))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// One part's readiness flag.
#[derive(Debug, Clone)]
pub struct ReadyFlag(Arc<AtomicBool>);

impl ReadyFlag {
    /// Marks the part ready (or not).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
}

#[derive(Clone)]
struct AdminState {
    registry: SharedRegistry,
    readiness: Readiness,
}

/// The admin router, without a socket (tests call it with `oneshot`).
pub fn router(registry: SharedRegistry, readiness: Readiness) -> Router {
    Router::new()
        .route("/live", get(|| async { "live\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(AdminState {
            registry,
            readiness,
        })
}

async fn ready(State(state): State<AdminState>) -> impl IntoResponse {
    let missing = state.readiness.not_ready();
    if missing.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", missing.join(", ")),
        )
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry.read()) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("encode metrics: {e}\n"),
        ),
    }
}

/// A bound admin server; [`AdminServer::serve`] runs it until `shutdown` completes.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
    registry: SharedRegistry,
    readiness: Readiness,
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(
        addr: SocketAddr,
        registry: SharedRegistry,
        readiness: Readiness,
    ) -> Result<Self, AdminError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AdminError { addr, source })?;
        Ok(Self {
            listener,
            registry,
            readiness,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, AdminError> {
        self.listener.local_addr().map_err(|source| AdminError {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdminError> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, "Admin server listening");
        axum::serve(self.listener, router(self.registry, self.readiness))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| AdminError { addr, source })
    }
}

#[cfg(test)]
mod tests;
