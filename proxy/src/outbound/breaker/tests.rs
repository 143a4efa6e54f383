use std::{
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use http::Response;
use tower::{Service, ServiceExt};
use trellis_api::route::{Backoff, FailureAccrual};

use super::*;

/// Answers every request with the status currently set.
fn status_service(
    status: Arc<AtomicU16>,
) -> impl Service<(), Response = Response<()>, Error = Error, Future: Send + 'static> {
    tower::service_fn(move |()| {
        let status = status.load(Ordering::Relaxed);
        async move { Ok::<_, Error>(Response::builder().status(status).body(()).unwrap()) }
    })
}

fn policy() -> FailureAccrual {
    FailureAccrual {
        max_failures: 3,
        backoff: Backoff {
            min: Duration::from_secs(1),
            max: Duration::from_secs(4),
            jitter_permille: 0,
        },
    }
}

async fn is_ready<S: Service<()>>(svc: &mut S) -> bool {
    futures::FutureExt::now_or_never(std::future::poll_fn(|cx| svc.poll_ready(cx))).is_some()
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_eject_and_a_probe_brings_the_endpoint_back() {
    let status = Arc::new(AtomicU16::new(500));
    let accrual = Accrual::new(policy(), "198.18.0.9:80");
    let mut svc = Breaker::new(status_service(status.clone()), accrual.clone());
    for _ in 0..2 {
        svc.ready().await.unwrap().call(()).await.unwrap();
    }
    assert_eq!(accrual.mode(), Mode::Closed, "two failures of three");
    svc.ready().await.unwrap().call(()).await.unwrap();
    assert!(matches!(accrual.mode(), Mode::Open(_)));
    assert!(
        !is_ready(&mut svc).await,
        "an ejected endpoint is not ready"
    );

    // After the backoff, one probe; it fails, so the next ejection lasts twice as long.
    tokio::time::advance(Duration::from_millis(1001)).await;
    assert!(is_ready(&mut svc).await);
    let probe = svc.call(());
    assert!(!is_ready(&mut svc).await, "one probe at a time");
    probe.await.unwrap();
    let Mode::Open(until) = accrual.mode() else {
        panic!("a failed probe ejects again");
    };
    assert_eq!(until - tokio::time::Instant::now(), Duration::from_secs(2));

    // The endpoint recovers: the next probe succeeds and it takes requests again.
    status.store(200, Ordering::Relaxed);
    tokio::time::advance(Duration::from_secs(2)).await;
    svc.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(accrual.mode(), Mode::Closed);
    assert!(is_ready(&mut svc).await);
}

#[tokio::test(start_paused = true)]
async fn successes_reset_the_count_and_zero_disables_accrual() {
    let status = Arc::new(AtomicU16::new(503));
    let accrual = Accrual::new(policy(), "a");
    let mut svc = Breaker::new(status_service(status.clone()), accrual.clone());
    for i in 0..10 {
        status.store(if i % 3 == 2 { 200 } else { 503 }, Ordering::Relaxed);
        svc.ready().await.unwrap().call(()).await.unwrap();
    }
    assert_eq!(accrual.mode(), Mode::Closed);

    let off = Accrual::new(
        FailureAccrual {
            max_failures: 0,
            ..policy()
        },
        "b",
    );
    let mut svc = Breaker::new(status_service(Arc::new(AtomicU16::new(500))), off.clone());
    for _ in 0..20 {
        svc.ready().await.unwrap().call(()).await.unwrap();
    }
    assert_eq!(off.mode(), Mode::Closed);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_probe_frees_its_slot() {
    let accrual = Accrual::new(policy(), "c");
    let mut svc = Breaker::new(
        status_service(Arc::new(AtomicU16::new(500))),
        accrual.clone(),
    );
    for _ in 0..3 {
        svc.ready().await.unwrap().call(()).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(is_ready(&mut svc).await);
    drop(svc.call(()));
    assert_eq!(accrual.mode(), Mode::Probation(false));
    assert!(is_ready(&mut svc).await);
}
