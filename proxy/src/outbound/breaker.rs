//! Failure accrual: an endpoint that fails `max_failures` requests in a row leaves the
//! balancer (its readiness goes pending) for a backoff, then takes one probe request; a
//! successful probe brings it back, a failed one ejects it again for twice as long.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::Duration,
};

use futures::FutureExt as _;
use http::Response;
use parking_lot::Mutex;
use tokio::time::{Instant, Sleep, sleep_until};
use trellis_api::route::FailureAccrual;

use crate::{error::Error, metrics::route::RouteMetrics};

/// Where an endpoint's breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Taking requests.
    Closed,
    /// Ejected until the deadline.
    Open(Instant),
    /// Taking one probe request (`true` while it is in flight).
    Probation(bool),
}

#[derive(Debug)]
struct State {
    mode: Mode,
    consecutive: u32,
    ejections: u32,
    waker: Option<Waker>,
}

/// A breaker's state, shared by the service and its response futures.
#[derive(Clone, Debug)]
pub struct Accrual {
    policy: FailureAccrual,
    state: Arc<Mutex<State>>,
    name: Arc<str>,
    metrics: Option<RouteMetrics>,
}

impl Accrual {
    /// A closed breaker following `policy`, for the endpoint `name` (in logs).
    pub fn new(policy: FailureAccrual, name: impl Into<Arc<str>>) -> Self {
        Self {
            policy,
            state: Arc::new(Mutex::new(State {
                mode: Mode::Closed,
                consecutive: 0,
                ejections: 0,
                waker: None,
            })),
            name: name.into(),
            metrics: None,
        }
    }

    /// Counts this endpoint's state changes in `metrics`.
    pub fn with_metrics(mut self, metrics: RouteMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, state: &str) {
        if let Some(m) = &self.metrics {
            m.accrual_transition(&self.name, state);
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.state.lock().mode
    }

    /// How long an ejection lasts after `ejections` earlier ones: the backoff's minimum
    /// doubled each time, capped, with its jitter.
    fn backoff(&self, ejections: u32) -> Duration {
        let b = self.policy.backoff;
        let base = b.min.saturating_mul(1 << ejections.min(16)).min(b.max);
        base + base.mul_f64(f64::from(b.jitter_permille) / 1000.0 * rand::random::<f64>())
    }

    /// Records the outcome of a request (or a connection attempt).
    pub fn record(&self, success: bool) {
        let mut s = self.state.lock();
        if success {
            s.consecutive = 0;
            if s.mode != Mode::Closed {
                tracing::info!(endpoint = %self.name, "Endpoint recovered; back in the balancer");
                self.count("closed");
                s.mode = Mode::Closed;
                s.ejections = 0;
            }
        } else {
            s.consecutive = s.consecutive.saturating_add(1);
            let trip = match s.mode {
                Mode::Probation(_) => true,
                Mode::Closed => {
                    self.policy.max_failures > 0 && s.consecutive >= self.policy.max_failures
                }
                Mode::Open(_) => false,
            };
            if trip {
                let backoff = self.backoff(s.ejections);
                s.ejections = s.ejections.saturating_add(1);
                s.mode = Mode::Open(Instant::now() + backoff);
                tracing::info!(endpoint = %self.name, failures = s.consecutive, ?backoff, "Endpoint failing; ejected from the balancer");
                self.count("open");
            }
        }
        if let Some(waker) = s.waker.take() {
            waker.wake();
        }
    }
}

/// An endpoint service behind a breaker.
#[derive(Debug)]
pub struct Breaker<S> {
    inner: S,
    accrual: Accrual,
    wait: Option<Pin<Box<Sleep>>>,
}

impl<S> Breaker<S> {
    /// `inner`, ejected by `accrual`.
    pub fn new(inner: S, accrual: Accrual) -> Self {
        Self {
            inner,
            accrual,
            wait: None,
        }
    }
}

impl<S, Req, B> tower::Service<Req> for Breaker<S>
where
    S: tower::Service<Req, Response = Response<B>, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        {
            let mut s = self.accrual.state.lock();
            loop {
                match s.mode {
                    Mode::Closed | Mode::Probation(false) => break,
                    Mode::Probation(true) => {
                        s.waker = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                    Mode::Open(until) if Instant::now() >= until => {
                        tracing::debug!(endpoint = %self.accrual.name, "Ejection over; probing the endpoint");
                        s.mode = Mode::Probation(false);
                        self.wait = None;
                        self.accrual.count("probation");
                    }
                    Mode::Open(until) => {
                        let wait = self
                            .wait
                            .get_or_insert_with(|| Box::pin(sleep_until(until)));
                        if wait.deadline() != until {
                            wait.as_mut().reset(until);
                        }
                        if wait.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        {
            let mut s = self.accrual.state.lock();
            if s.mode == Mode::Probation(false) {
                s.mode = Mode::Probation(true);
            }
        }
        let mut outcome = Outcome(Some(self.accrual.clone()));
        Box::pin(self.inner.call(req).map(move |res| {
            let success = matches!(&res, Ok(rsp) if !rsp.status().is_server_error());
            if let Some(accrual) = outcome.0.take() {
                accrual.record(success);
            }
            res
        }))
    }
}

/// Records nothing for a request dropped before it completed, but frees a probe slot it
/// held, so an abandoned probe does not keep the endpoint out forever.
struct Outcome(Option<Accrual>);

impl Drop for Outcome {
    fn drop(&mut self) {
        if let Some(accrual) = self.0.take() {
            let mut s = accrual.state.lock();
            if s.mode == Mode::Probation(true) {
                s.mode = Mode::Probation(false);
                if let Some(waker) = s.waker.take() {
                    waker.wake();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
