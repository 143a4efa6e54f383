//! HTTP golden metrics: requests, responses by status and classification, and latency.

use prometheus_client::metrics::{counter::Counter, histogram::Histogram};
use tokio::time::Instant;

use super::Labels;

/// Latency buckets (ms), as the contract lists them.
pub const LATENCY_BUCKETS_MS: [f64; 25] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 100.0, 200.0, 300.0, 400.0, 500.0,
    1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 10000.0, 20000.0, 30000.0, 40000.0, 50000.0,
];

fn new_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_MS)
}

families! {
    /// `request_total`, `response_total` and `response_latency_ms`.
    pub struct HttpMetrics {
        requests: Counter => "request", "HTTP requests";
        responses: Counter => "response", "HTTP responses";
        latency: Histogram = new_histogram
            => "response_latency_ms", "Time from request to response headers, in milliseconds";
    }
}

impl HttpMetrics {
    /// Counts a request; the returned handle records its response.
    pub fn request(&self, labels: Labels) -> RequestMetrics {
        self.requests.get_or_create(&labels).inc();
        RequestMetrics {
            metrics: self.clone(),
            labels,
            start: Instant::now(),
        }
    }
}

/// One request in flight.
#[derive(Debug)]
pub struct RequestMetrics {
    metrics: HttpMetrics,
    labels: Labels,
    start: Instant,
}

impl RequestMetrics {
    /// Records the response: `status` (0 when the proxy produced none), its gRPC status if
    /// any, and the error label (empty when none).
    pub fn respond(self, status: u16, grpc_status: Option<u32>, error: &str) {
        let failure = status >= 500
            || status == 0
            || grpc_status.is_some_and(|s| s != 0)
            || !error.is_empty();
        let code = if status == 0 {
            String::new()
        } else {
            status.to_string()
        };
        let mut latency = self.labels.clone();
        latency.push(("status_code".into(), code.clone()));
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        self.metrics.latency.get_or_create(&latency).observe(ms);
        let mut labels = self.labels;
        labels.push(("status_code".into(), code));
        labels.push((
            "classification".into(),
            if failure { "failure" } else { "success" }.into(),
        ));
        labels.push((
            "grpc_status".into(),
            grpc_status.map(|s| s.to_string()).unwrap_or_default(),
        ));
        labels.push(("error".into(), error.to_string()));
        self.metrics.responses.get_or_create(&labels).inc();
    }
}
