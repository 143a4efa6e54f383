//! Graceful shutdown: stop accepting, let in-flight work finish, then abort what is left.

use std::time::Duration;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Shared shutdown state: listeners and connections watch it, the app triggers it.
#[derive(Clone, Debug, Default)]
pub struct Drain {
    draining: CancellationToken,
    abort: CancellationToken,
    tracker: TaskTracker,
}

impl Drain {
    /// A drain that has not started.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves when draining starts: stop accepting, finish in-flight work.
    pub async fn signaled(&self) {
        self.draining.cancelled().await;
    }

    /// True once draining has started.
    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Spawns a tracked task that is dropped when the grace period runs out.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let abort = self.abort.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = fut => {}
                () = abort.cancelled() => {}
            }
        });
    }

    /// Starts draining and waits up to `grace` for tracked tasks; then aborts the rest.
    /// Returns true when everything finished within the grace period.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.draining.cancel();
        self.tracker.close();
        let clean = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        if !clean {
            tracing::warn!(
                remaining = self.tracker.len(),
                ?grace,
                "Grace period over; closing remaining connections"
            );
            self.abort.cancel();
            self.tracker.wait().await;
        }
        clean
    }
}
