use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tower::{Service, ServiceExt};

use super::*;

/// Ready only while `ready` is set; answers `()`.
#[derive(Clone)]
struct Gate(Arc<AtomicBool>);

impl Service<()> for Gate {
    type Response = ();
    type Error = Error;
    type Future = future::Ready<Result<(), Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.0.load(Ordering::Relaxed) {
            Poll::Ready(Ok(()))
        } else {
            // Polled again by the test; no waker needed.
            let _ = cx;
            Poll::Pending
        }
    }

    fn call(&mut self, (): ()) -> Self::Future {
        future::ready(Ok(()))
    }
}

#[tokio::test(start_paused = true)]
async fn requests_fail_at_once_after_the_timeout_until_ready_again() {
    let gate = Arc::new(AtomicBool::new(false));
    let mut svc = FailFast::new(Gate(gate.clone()), Duration::from_secs(3));
    let started = tokio::time::Instant::now();
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(err.is::<FailFastError>(), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    // In failfast, a request fails without waiting.
    let started = tokio::time::Instant::now();
    assert!(svc.ready().await.unwrap().call(()).await.is_err());
    assert_eq!(started.elapsed(), Duration::ZERO);
    // Ready again: requests go through.
    gate.store(true, Ordering::Relaxed);
    svc.ready().await.unwrap().call(()).await.unwrap();
}
