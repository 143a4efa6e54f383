//! Control-plane watches: follow a gRPC stream, convert each message, and resubscribe with
//! one exponential backoff when the stream ends; plus the helpers every watch shares to
//! open its call and publish its state.

use std::{sync::Arc, time::Duration};

use futures::{Stream, StreamExt, TryFutureExt, future::MapOk};
use tokio::sync::watch;
use tonic::Status;

use crate::tls;

/// First retry delay after a failed stream.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Doubling delays from [`BACKOFF_MIN`] to [`BACKOFF_MAX`], reset by [`Backoff::reset`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: BACKOFF_MIN }
    }
}

impl Backoff {
    /// Starts over from [`BACKOFF_MIN`] (after a stream delivered a message).
    pub fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    /// The delay to wait now; the next one is twice as long, up to [`BACKOFF_MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }
}

/// What a watch does when its stream ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Resubscribe after the backoff's next delay.
    Retry,
    /// Resubscribe after this delay, leaving the backoff as it is.
    RetryAfter(Duration),
    /// The answer is final: stop watching.
    Stop,
}

/// Whether the controller refused the request itself (`InvalidArgument` or
/// `FailedPrecondition`), so asking again the same way will not help.
pub fn is_rejection(status: &Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
    )
}

/// Runs `watch` once `creds` (when set) holds this proxy's certificate, as mTLS to a
/// controller needs.
pub async fn once_certified<F: Future>(creds: Option<Arc<tls::Store>>, watch: F) -> F::Output {
    if let Some(creds) = creds {
        creds.certified().await;
    }
    watch.await
}

/// A subscription's gRPC call, resolving to the stream it answers with.
type Opened<Fut, S> = MapOk<Fut, fn(tonic::Response<S>) -> S>;

/// An `open` for [`follow`]: each subscription makes the gRPC call `call` on fresh clones
/// of `client` and `request`, and follows the stream it answers with.
pub fn reopen<C: Clone, Req: Clone, S, Fut>(
    client: C,
    request: Req,
    call: impl Fn(C, Req) -> Fut,
) -> impl FnMut() -> Opened<Fut, S>
where
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    move || call(client.clone(), request.clone()).map_ok(tonic::Response::into_inner as fn(_) -> S)
}

/// Publishes `next` on `tx`, waking receivers only when it differs from the current value.
pub fn send_if_changed<T: PartialEq>(tx: &watch::Sender<T>, next: T) {
    tx.send_if_modified(|state| {
        let changed = *state != next;
        *state = next;
        changed
    });
}

/// Moves a watch that has had no answer yet (`pending`) to `unavailable`.
pub fn mark_unavailable<T: PartialEq>(tx: &watch::Sender<T>, pending: &T, unavailable: T) {
    tx.send_if_modified(|state| {
        let first = state == pending;
        if first {
            *state = unavailable;
        }
        first
    });
}

/// Follows the stream `open` returns until `on_end` says [`Next::Stop`]: each message is
/// converted to `T` and handed to `on_update` (with `true` for a subscription's first
/// message); a message resets the backoff. A stream that ends cleanly counts as an `Ok`
/// status.
pub async fn follow<T, Rsp, S, Fut>(
    kind: &'static str,
    mut open: impl FnMut() -> Fut,
    mut on_update: impl FnMut(Result<T, T::Error>, bool),
    mut on_end: impl FnMut(&Status) -> Next,
) where
    T: TryFrom<Rsp>,
    S: Stream<Item = Result<Rsp, Status>> + Unpin,
    Fut: Future<Output = Result<S, Status>>,
{
    let mut backoff = Backoff::default();
    loop {
        let status = match open().await {
            Err(status) => status,
            Ok(mut stream) => {
                let mut first = true;
                loop {
                    match stream.next().await {
                        Some(Ok(msg)) => {
                            backoff.reset();
                            on_update(T::try_from(msg), first);
                            first = false;
                        }
                        None => break Status::ok("stream ended"),
                        Some(Err(status)) => break status,
                    }
                }
            }
        };
        let delay = match on_end(&status) {
            Next::Stop => return,
            Next::Retry => backoff.next_delay(),
            Next::RetryAfter(delay) => delay,
        };
        tracing::debug!(watch = kind, %status, ?delay, "Watch ended; resubscribing");
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests;
