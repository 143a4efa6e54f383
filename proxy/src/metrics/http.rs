//! HTTP golden metrics: requests, responses by status and classification, and latency.

use std::{collections::HashMap, sync::Arc};

use parking_lot::RwLock;
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
    /// The metrics of one label set, resolved once; see [`LabelledHttp`].
    pub fn labelled(&self, labels: Labels) -> LabelledHttp {
        let requests = self.requests.get_or_create(&labels).clone();
        LabelledHttp(Arc::new(Labelled {
            metrics: self.clone(),
            labels,
            requests,
            outcomes: RwLock::default(),
        }))
    }

    /// Counts a request with `labels`; the returned handle records its response.
    pub fn request(&self, labels: Labels) -> RequestMetrics {
        self.labelled(labels).request()
    }
}

/// The HTTP metrics of one label set (an outbound endpoint, or an inbound connection under its
/// policy), with the metric handles resolved once: counting a request is an atomic increment
/// instead of cloning and hashing the labels, and each response outcome (status and gRPC
/// status) is resolved on its first use. Responses with a proxy error are rare and resolved
/// each time.
#[derive(Clone, Debug)]
pub struct LabelledHttp(Arc<Labelled>);

#[derive(Debug)]
struct Labelled {
    metrics: HttpMetrics,
    labels: Labels,
    requests: Counter,
    outcomes: RwLock<HashMap<(u16, Option<u32>), Outcome>>,
}

/// The latency histogram and response counter of one response outcome.
#[derive(Clone, Debug)]
struct Outcome {
    latency: Histogram,
    responses: Counter,
}

impl LabelledHttp {
    /// The label set.
    pub fn labels(&self) -> &Labels {
        &self.0.labels
    }

    /// Counts a request; the returned handle records its response.
    pub fn request(&self) -> RequestMetrics {
        self.0.requests.inc();
        RequestMetrics {
            labelled: self.clone(),
            start: Instant::now(),
        }
    }

    /// The handles of one outcome, made on first use.
    fn outcome(&self, status: u16, grpc_status: Option<u32>, error: &str) -> Outcome {
        let key = (status, grpc_status);
        if error.is_empty()
            && let Some(outcome) = self.0.outcomes.read().get(&key)
        {
            return outcome.clone();
        }
        let failure = status >= 500
            || status == 0
            || grpc_status.is_some_and(|s| s != 0)
            || !error.is_empty();
        let code = if status == 0 {
            String::new()
        } else {
            status.to_string()
        };
        let mut latency = self.0.labels.clone();
        latency.push(("status_code".into(), code));
        let mut labels = latency.clone();
        labels.push((
            "classification".into(),
            if failure { "failure" } else { "success" }.into(),
        ));
        labels.push((
            "grpc_status".into(),
            grpc_status.map(|s| s.to_string()).unwrap_or_default(),
        ));
        labels.push(("error".into(), error.to_string()));
        let outcome = Outcome {
            latency: self.0.metrics.latency.get_or_create(&latency).clone(),
            responses: self.0.metrics.responses.get_or_create(&labels).clone(),
        };
        if error.is_empty() {
            self.0.outcomes.write().insert(key, outcome.clone());
        }
        outcome
    }
}

/// One request in flight.
#[derive(Debug)]
pub struct RequestMetrics {
    labelled: LabelledHttp,
    start: Instant,
}

impl RequestMetrics {
    /// Records the response: `status` (0 when the proxy produced none), its gRPC status if
    /// any, and the error label (empty when none).
    pub fn respond(self, status: u16, grpc_status: Option<u32>, error: &str) {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let outcome = self.labelled.outcome(status, grpc_status, error);
        outcome.latency.observe(ms);
        outcome.responses.inc();
    }
}
