//! The backoff of a controller's watches.
//!
//! kube-runtime backs off all of a controller's watches as one stream: while it waits after
//! one watch's error, no watch is read. After an apiserver restart every watch fails once
//! with `410 Gone` before it lists again, and with kube-runtime's default backoff (doubling up
//! to 30 s) the errors queue behind each other: the Mesh controller, which has thirteen
//! watches, went minutes without seeing a Mesh being deleted. This backoff stays short, so the
//! watches recover within seconds, and the errors are still paced.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// First delay after an error.
pub const MIN: Duration = Duration::from_millis(100);
/// Longest delay.
pub const MAX: Duration = Duration::from_secs(1);

/// Delays doubling from [`MIN`] to [`MAX`], back to [`MIN`] after a successful event.
#[derive(Debug)]
pub struct TriggerBackoff {
    next: Duration,
}

impl Default for TriggerBackoff {
    fn default() -> Self {
        Self { next: MIN }
    }
}

impl Iterator for TriggerBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(MAX);
        Some(delay)
    }
}

impl Backoff for TriggerBackoff {
    fn reset(&mut self) {
        self.next = MIN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut backoff = TriggerBackoff::default();
        let delays: Vec<_> = backoff.by_ref().take(6).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        backoff.reset();
        assert_eq!(backoff.next(), Some(MIN));
    }
}
