//! Load shedding: a balancer that has had no ready endpoint for the failfast timeout fails
//! its requests at once, instead of queuing them, until an endpoint is ready again.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use futures::future::{self, Either};
use tokio::time::{Sleep, sleep};

use crate::error::Error;

/// The error of a request shed because its backend has no ready endpoint.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("no ready endpoints (failfast)")]
pub struct FailFastError;

/// Wraps a balancer: readiness that does not come within `timeout` turns into failfast.
#[derive(Debug)]
pub struct FailFast<S> {
    inner: S,
    timeout: Duration,
    wait: Option<Pin<Box<Sleep>>>,
    failing: bool,
}

impl<S> FailFast<S> {
    /// Sheds `inner`'s requests once it has been unready for `timeout`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            wait: None,
            failing: false,
        }
    }
}

impl<S, Req> tower::Service<Req> for FailFast<S>
where
    S: tower::Service<Req, Error = Error>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = Either<S::Future, future::Ready<Result<S::Response, Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.inner.poll_ready(cx) {
            Poll::Ready(res) => {
                self.wait = None;
                if self.failing {
                    self.failing = false;
                    tracing::info!("An endpoint is ready again; leaving failfast");
                }
                Poll::Ready(res)
            }
            Poll::Pending if self.failing => Poll::Ready(Ok(())),
            Poll::Pending => {
                let timeout = self.timeout;
                let wait = self.wait.get_or_insert_with(|| Box::pin(sleep(timeout)));
                ready!(wait.as_mut().poll(cx));
                self.wait = None;
                self.failing = true;
                tracing::info!(
                    ?timeout,
                    "No endpoint became ready; entering failfast, requests fail at once"
                );
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if self.failing {
            return Either::Right(future::ready(Err(FailFastError.into())));
        }
        Either::Left(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests;
