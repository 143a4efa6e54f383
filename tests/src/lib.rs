//! Test support for Trellis: the local cluster, per-test namespaces and bounded waits.
//!
//! Cluster tests call [`k8s::with_temp_ns`], which connects to the cluster that
//! `tests/cluster/cluster up` started (failing loudly when there is none), gives the test a
//! fresh namespace and deletes it afterwards, also when the test fails. Waits go through
//! [`eventually`] or [`assert_eventually!`], which time out with the last state they saw.
//! This crate may depend on every Trellis crate; nothing depends on it.

pub mod admission;
pub mod bins;
pub mod certs;
pub mod chaos;
pub mod cluster;
pub mod control;
pub mod gateway;
pub mod k8s;
pub mod load;
pub mod mesh;
pub mod netns;
pub mod operator;
pub mod proxy;
pub mod real_node;
pub mod relay;

use std::{fmt::Debug, future::Future, time::Duration};

/// Default bound for waits on the local cluster (kwok and the controllers take seconds).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Polls `check` until it returns `Ok(value)` or `timeout` passes.
///
/// `check` returns `Err(state)` while the condition does not hold; on timeout the panic
/// message names `what` and the last state seen, so a failure says where it got stuck.
pub async fn eventually<T, S, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    S: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, S>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(state) => {
                if tokio::time::Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting for {what}; last state: {state:?}");
                }
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Asserts that an async boolean expression becomes true within [`DEFAULT_TIMEOUT`]
/// (or the given timeout), polling it; the panic names the expression.
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr $(,)?) => {
        $crate::assert_eventually!($cond, $crate::DEFAULT_TIMEOUT)
    };
    ($cond:expr, $timeout:expr $(,)?) => {
        $crate::eventually(stringify!($cond), $timeout, || async {
            if $cond { Ok(()) } else { Err("false") }
        })
        .await
    };
}

/// A cancellation token for the servers a test starts, and a guard that cancels it when
/// dropped: when the test ends, also by panicking.
pub fn shutdown_on_drop() -> (
    tokio_util::sync::CancellationToken,
    tokio_util::sync::DropGuard,
) {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let guard = shutdown.clone().drop_guard();
    (shutdown, guard)
}

/// Installs a test tracing subscriber once (filter from `RUST_LOG`, default `warn`).
pub fn trace_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shutdown_token_is_cancelled_when_its_guard_drops() {
        let (shutdown, guard) = super::shutdown_on_drop();
        assert!(!shutdown.is_cancelled());
        drop(guard);
        assert!(shutdown.is_cancelled());
    }
}
