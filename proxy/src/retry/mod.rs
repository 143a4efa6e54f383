//! Retry pacing for control-plane streams: one exponential backoff shared by every watch.

use std::time::Duration;

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

    /// Waits for [`Backoff::next_delay`].
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}

#[cfg(test)]
mod tests;
