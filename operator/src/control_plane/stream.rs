//! Pieces shared by the streaming gRPC servers: the boxed stream type and stream metrics.

use std::{fmt, marker::PhantomData, pin::Pin};

use futures::Stream;
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use tonic::Status;

/// A boxed server stream.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Names and help texts of one server's stream metrics.
pub trait StreamKind {
    /// Metric prefix, e.g. `destination`.
    const PREFIX: &'static str;
    /// Help text of `<prefix>_open_streams`.
    const STREAMS_HELP: &'static str;
    /// Help text of `<prefix>_updates_sent`.
    const UPDATES_HELP: &'static str;
}

/// Open streams, messages sent and refused lookups of one gRPC server.
pub struct StreamMetrics<K> {
    pub(crate) open_streams: Gauge,
    pub(crate) updates: Counter,
    pub(crate) errors: Counter,
    kind: PhantomData<K>,
}

impl<K: StreamKind> StreamMetrics<K> {
    /// Metrics registered in `registry` under `<K::PREFIX>_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix(K::PREFIX);
        sub.register(
            "open_streams",
            K::STREAMS_HELP,
            metrics.open_streams.clone(),
        );
        sub.register("updates_sent", K::UPDATES_HELP, metrics.updates.clone());
        sub.register(
            "errors",
            "Lookups refused with an error status",
            metrics.errors.clone(),
        );
        metrics
    }
}

impl<K> StreamMetrics<K> {
    /// Counts a stream as open until the returned guard drops.
    pub(crate) fn open(&self) -> StreamGuard {
        self.open_streams.inc();
        StreamGuard(self.open_streams.clone())
    }
}

impl<K> Default for StreamMetrics<K> {
    fn default() -> Self {
        Self {
            open_streams: Gauge::default(),
            updates: Counter::default(),
            errors: Counter::default(),
            kind: PhantomData,
        }
    }
}

impl<K> Clone for StreamMetrics<K> {
    fn clone(&self) -> Self {
        Self {
            open_streams: self.open_streams.clone(),
            updates: self.updates.clone(),
            errors: self.errors.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for StreamMetrics<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamMetrics")
            .field("open_streams", &self.open_streams.get())
            .field("updates", &self.updates.get())
            .field("errors", &self.errors.get())
            .finish()
    }
}

/// Decrements the open-streams gauge when a stream ends.
#[derive(Debug)]
pub(crate) struct StreamGuard(Gauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
