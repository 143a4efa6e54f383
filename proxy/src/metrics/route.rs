//! Per-route metrics, under Linkerd's names so its dashboards work: request statuses and
//! durations per route, requests per route backend, retries, and endpoint ejections.

use std::{collections::HashMap, sync::Arc};

use parking_lot::RwLock;
use prometheus_client::metrics::{counter::Counter, histogram::Histogram};
use trellis_api::route::{RouteKind, RouteRef};

use super::Labels;

/// Request duration buckets, in seconds (Linkerd's route histogram).
const DURATION_BUCKETS_S: [f64; 10] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

fn new_duration() -> Histogram {
    Histogram::new(DURATION_BUCKETS_S)
}

families! {
    /// The HTTP route families.
    pub struct HttpRouteMetrics {
        statuses: Counter => "outbound_http_route_request_statuses", "Completed requests by route, HTTP status and proxy error";
        duration: Histogram = new_duration => "outbound_http_route_request_duration_seconds", "Time from request to response headers, by route, in seconds";
        backend_requests: Counter => "outbound_http_route_backend_requests", "Requests sent to each route backend";
        retries: Counter => "outbound_http_route_retry_requests", "Retries sent";
        retry_successes: Counter => "outbound_http_route_retry_successes", "Retried requests that succeeded";
        retry_limit: Counter => "outbound_http_route_retry_limit_exceeded", "Requests that failed after their last allowed retry";
        retry_overflow: Counter => "outbound_http_route_retry_overflow", "Retries not sent because the budget was spent";
    }
}

families! {
    /// The gRPC route families.
    pub struct GrpcRouteMetrics {
        statuses: Counter => "outbound_grpc_route_request_statuses", "Completed requests by route, gRPC status and proxy error";
        duration: Histogram = new_duration => "outbound_grpc_route_request_duration_seconds", "Time from request to response headers, by route, in seconds";
        backend_requests: Counter => "outbound_grpc_route_backend_requests", "Requests sent to each route backend";
        retries: Counter => "outbound_grpc_route_retry_requests", "Retries sent";
        retry_successes: Counter => "outbound_grpc_route_retry_successes", "Retried requests that succeeded";
        retry_limit: Counter => "outbound_grpc_route_retry_limit_exceeded", "Requests that failed after their last allowed retry";
        retry_overflow: Counter => "outbound_grpc_route_retry_overflow", "Retries not sent because the budget was spent";
    }
}

families! {
    /// Failure-accrual state changes.
    pub struct AccrualMetrics {
        transitions: Counter => "outbound_http_balancer_endpoint_accrual_transitions", "Failure-accrual state changes of balancer endpoints (open: ejected, closed: recovered)";
    }
}

/// Every route family.
#[derive(Clone, Debug)]
pub struct RouteMetrics {
    http: HttpRouteMetrics,
    grpc: GrpcRouteMetrics,
    /// Endpoint ejections and recoveries.
    pub accrual: AccrualMetrics,
}

impl RouteMetrics {
    /// Creates and registers every family.
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        Self {
            http: HttpRouteMetrics::register(registry),
            grpc: GrpcRouteMetrics::register(registry),
            accrual: AccrualMetrics::register(registry),
        }
    }

    /// The handles of one route under `parent`, resolved once (see [`RouteHandles`]).
    pub fn route(&self, parent: &RouteRef, route: &RouteRef, kind: RouteKind) -> RouteHandles {
        let mut labels = resource("parent", parent);
        labels.extend(
            [
                ("route_group", route.group()),
                ("route_kind", route.kind()),
                ("route_namespace", route.namespace()),
                ("route_name", route.name()),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let families = match kind {
            RouteKind::Http => Families::Http(self.http.clone()),
            RouteKind::Grpc => Families::Grpc(self.grpc.clone()),
        };
        let (retries, retry_successes, retry_limit, retry_overflow) = {
            let (a, b, c, d) = families.counters();
            let get = |f: &CounterFamily| f.get_or_create(&labels).clone();
            (get(a), get(b), get(c), get(d))
        };
        let duration = families.duration().get_or_create(&labels).clone();
        RouteHandles(Arc::new(Handles {
            retries,
            retry_successes,
            retry_limit,
            retry_overflow,
            duration,
            statuses: RwLock::default(),
            backends: RwLock::default(),
            families,
            labels,
        }))
    }

    /// Counts an endpoint's failure-accrual change to `state` (`open`, `probation`,
    /// `closed`).
    pub fn accrual_transition(&self, endpoint: &str, state: &str) {
        self.accrual
            .transitions
            .get_or_create(&vec![
                ("target_addr".into(), endpoint.into()),
                ("state".into(), state.into()),
            ])
            .inc();
    }
}

/// `<prefix>_group`, `_kind`, `_namespace`, `_name`, `_port` and `_section_name` of `r`.
fn resource(prefix: &str, r: &RouteRef) -> Labels {
    let port = match r {
        RouteRef::Resource { port, .. } if *port != 0 => port.to_string(),
        _ => String::new(),
    };
    [
        ("group", r.group().to_string()),
        ("kind", r.kind().to_string()),
        ("namespace", r.namespace().to_string()),
        ("name", r.name().to_string()),
        ("port", port),
        ("section_name", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{prefix}_{k}"), v))
    .collect()
}

type CounterFamily = prometheus_client::metrics::family::Family<Labels, Counter>;

#[derive(Clone, Debug)]
enum Families {
    Http(HttpRouteMetrics),
    Grpc(GrpcRouteMetrics),
}

impl Families {
    /// Retries, retry successes, retry limit exceeded, retry overflow.
    fn counters(
        &self,
    ) -> (
        &CounterFamily,
        &CounterFamily,
        &CounterFamily,
        &CounterFamily,
    ) {
        match self {
            Self::Http(m) => (
                &m.retries,
                &m.retry_successes,
                &m.retry_limit,
                &m.retry_overflow,
            ),
            Self::Grpc(m) => (
                &m.retries,
                &m.retry_successes,
                &m.retry_limit,
                &m.retry_overflow,
            ),
        }
    }

    fn duration(&self) -> &prometheus_client::metrics::family::Family<Labels, Histogram> {
        match self {
            Self::Http(m) => &m.duration,
            Self::Grpc(m) => &m.duration,
        }
    }

    fn statuses(&self) -> &CounterFamily {
        match self {
            Self::Http(m) => &m.statuses,
            Self::Grpc(m) => &m.statuses,
        }
    }

    fn backend_requests(&self) -> &CounterFamily {
        match self {
            Self::Http(m) => &m.backend_requests,
            Self::Grpc(m) => &m.backend_requests,
        }
    }

    fn status_label(&self) -> &'static str {
        match self {
            Self::Http(_) => "http_status",
            Self::Grpc(_) => "grpc_status",
        }
    }
}

/// One route's metric handles. The fixed ones are resolved when the route is first used;
/// a status or a backend is resolved on its first use, then read from a small map.
#[derive(Clone, Debug)]
pub struct RouteHandles(Arc<Handles>);

#[derive(Debug)]
struct Handles {
    families: Families,
    labels: Labels,
    duration: Histogram,
    retries: Counter,
    retry_successes: Counter,
    retry_limit: Counter,
    retry_overflow: Counter,
    statuses: RwLock<HashMap<(u32, &'static str), Counter>>,
    backends: RwLock<HashMap<String, Counter>>,
}

impl RouteHandles {
    /// Records a completed request: its time to response headers, its status (the gRPC
    /// status for gRPC routes) and the proxy error label (empty when none).
    pub fn complete(&self, seconds: f64, status: u32, error: &'static str) {
        self.0.duration.observe(seconds);
        let key = (status, error);
        if let Some(c) = self.0.statuses.read().get(&key) {
            c.inc();
            return;
        }
        let mut labels = self.0.labels.clone();
        let status_label = if status == u32::MAX {
            String::new()
        } else {
            status.to_string()
        };
        labels.push((self.0.families.status_label().into(), status_label));
        labels.push(("error".into(), error.into()));
        let c = self.0.families.statuses().get_or_create(&labels).clone();
        c.inc();
        self.0.statuses.write().insert(key, c);
    }

    /// Counts a request sent to `backend`.
    pub fn backend_request(&self, path: &str, backend: &RouteRef) {
        if let Some(c) = self.0.backends.read().get(path) {
            c.inc();
            return;
        }
        let mut labels = self.0.labels.clone();
        labels.extend(resource("backend", backend));
        let c = self
            .0
            .families
            .backend_requests()
            .get_or_create(&labels)
            .clone();
        c.inc();
        self.0.backends.write().insert(path.to_string(), c);
    }

    /// Counts a retry sent.
    pub fn retry(&self) {
        self.0.retries.inc();
    }

    /// Counts a retried request that succeeded.
    pub fn retry_success(&self) {
        self.0.retry_successes.inc();
    }

    /// Counts a request that failed after its last allowed retry.
    pub fn retry_limit_exceeded(&self) {
        self.0.retry_limit.inc();
    }

    /// Counts a retry the budget refused.
    pub fn retry_overflow(&self) {
        self.0.retry_overflow.inc();
    }
}
