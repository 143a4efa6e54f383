use axum::{body::Body, http::Request};
use prometheus_client::metrics::counter::Counter;
use tower::ServiceExt;

use super::*;

async fn get_path(router: Router, path: &str) -> (StatusCode, String) {
    let response = router
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn ready_waits_for_every_part() {
    let readiness = Readiness::default();
    let flag = readiness.register("mesh-controller");
    let registry = SharedRegistry::default();
    let (status, body) = get_path(router(registry.clone(), readiness.clone()), "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("mesh-controller"), "{body}");
    flag.set(true);
    let (status, _) = get_path(router(registry.clone(), readiness.clone()), "/ready").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get_path(router(registry, readiness), "/live").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_encode_the_shared_registry() {
    let registry = SharedRegistry::default();
    let counter = Counter::<u64>::default();
    registry
        .write()
        .register("example_events", "Example", counter.clone());
    counter.inc();
    let (status, body) = get_path(router(registry, Readiness::default()), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("example_events_total 1"), "{body}");
}
