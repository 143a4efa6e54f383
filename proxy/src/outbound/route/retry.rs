//! Retries: which responses a rule retries, how often, and the budget that bounds them.

use std::{ops::RangeInclusive, time::Duration};

use http::Response;
use tower::retry::budget::{Budget as _, TpsBudget};
use trellis_api::route::{self as api, GrpcCode};

use crate::http::grpc_status;

/// Header set on every retried try, naming the try (`1` for the first retry).
pub const L5D_RETRY_ATTEMPT: &str = "l5d-retry-attempt";

/// Linkerd's default retry budget: 20 % of requests on top of 10 retries per second,
/// counted over 10 s.
pub fn default_budget() -> TpsBudget {
    TpsBudget::new(Duration::from_secs(10), 10, 0.2)
}

/// A rule's retries, compiled.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries per request.
    pub limit: u32,
    /// Requests with larger (or unknown-length) bodies are sent once.
    pub max_request_bytes: u32,
    statuses: Vec<RangeInclusive<u16>>,
    codes: Vec<u32>,
    /// Each try's timeout.
    pub timeout: Option<Duration>,
    backoff: Option<api::Backoff>,
}

impl RetryPolicy {
    /// Compiles `r`.
    pub fn new(r: &api::Retry) -> Self {
        Self {
            limit: r.limit,
            max_request_bytes: r.max_request_bytes,
            statuses: r.statuses.clone(),
            codes: r.codes.iter().map(|c: &GrpcCode| c.code()).collect(),
            timeout: r.timeout,
            backoff: r.backoff,
        }
    }

    /// Whether `rsp` is a failure this rule retries: an HTTP status in its ranges, or a
    /// gRPC status in its codes (trailers-only responses, where the status is a header).
    pub fn is_retryable<B>(&self, rsp: &Response<B>) -> bool {
        let status = rsp.status().as_u16();
        if self.statuses.iter().any(|r| r.contains(&status)) {
            return true;
        }
        grpc_status(rsp).is_some_and(|code| self.codes.contains(&code))
    }

    /// The delay before retry number `attempt` (1-based): the backoff's minimum doubled per
    /// earlier retry, capped, with its jitter; none without a backoff.
    pub fn delay(&self, attempt: u32) -> Duration {
        let Some(b) = self.backoff else {
            return Duration::ZERO;
        };
        let base = b
            .min
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(b.max);
        let jitter = base.mul_f64(f64::from(b.jitter_permille) / 1000.0 * rand::random::<f64>());
        base + jitter
    }
}

/// A retry budget shared by a target's requests.
#[derive(Debug)]
pub struct Budget(TpsBudget);

impl Default for Budget {
    fn default() -> Self {
        Self(default_budget())
    }
}

impl Budget {
    /// A budget of `ratio` retries per request, plus `min_per_second`, over `ttl`.
    pub fn new(ttl: Duration, min_per_second: u32, ratio: f32) -> Self {
        Self(TpsBudget::new(ttl, min_per_second, ratio))
    }

    /// Records an original request.
    pub fn deposit(&self) {
        self.0.deposit();
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn withdraw(&self) -> bool {
        self.0.withdraw()
    }
}
