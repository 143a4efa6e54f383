//! The backoff of every watch in the process: the controllers' triggers, the control plane's
//! index, and the operator's pod and Mesh followers.
//!
//! kube-runtime's default backoff doubles from 0.8 s up to 30 s and only resets after two
//! minutes without an error. After an apiserver restart every watch fails (refused while it is
//! down, then `410 Gone` before it lists again), so a watch could sleep 30 s after the
//! apiserver was back, and a second restart within two minutes started from there:
//! - the Mesh controller backs off all its thirteen watches as one stream, and went minutes
//!   without seeing a Mesh being deleted;
//! - the control plane's EndpointSlice watch was still asleep while a Service's pods changed,
//!   so proxies kept the old endpoints (the chaos test saw it after back-to-back restarts).
//!
//! This backoff stays short and resets on the first success, so watches recover within a
//! second of the apiserver, and the errors are still paced.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// First delay after an error.
pub const MIN: Duration = Duration::from_millis(100);
/// Longest delay.
pub const MAX: Duration = Duration::from_secs(1);

/// Delays doubling from [`MIN`] to [`MAX`], back to [`MIN`] after a successful event.
#[derive(Debug)]
pub struct WatchBackoff {
    next: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: MIN }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(MAX);
        Some(delay)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut backoff = WatchBackoff::default();
        let delays: Vec<_> = backoff.by_ref().take(6).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        backoff.reset();
        assert_eq!(backoff.next(), Some(MIN));
    }
}
