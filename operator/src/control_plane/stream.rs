//! Pieces shared by the streaming gRPC servers: the boxed stream type and stream metrics.

use std::pin::Pin;

use futures::Stream;
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use tonic::Status;

/// A boxed server stream.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Names and help texts of one server's stream metrics.
#[derive(Clone, Copy, Debug)]
pub struct StreamNames {
    /// Metric prefix, e.g. `destination`.
    pub prefix: &'static str,
    /// Help text of `<prefix>_open_streams`.
    pub streams_help: &'static str,
    /// Help text of `<prefix>_updates_sent`.
    pub updates_help: &'static str,
}

/// Open streams, messages sent and refused lookups of one gRPC server.
#[derive(Clone, Debug, Default)]
pub struct StreamMetrics {
    pub(crate) open_streams: Gauge,
    pub(crate) updates: Counter,
    pub(crate) errors: Counter,
}

impl StreamMetrics {
    /// Metrics registered in `registry` under `<names.prefix>_`.
    pub fn register(registry: &mut Registry, names: StreamNames) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix(names.prefix);
        let open_streams = metrics.open_streams.clone();
        sub.register("open_streams", names.streams_help, open_streams);
        sub.register("updates_sent", names.updates_help, metrics.updates.clone());
        let errors_help = "Lookups refused with an error status";
        sub.register("errors", errors_help, metrics.errors.clone());
        metrics
    }

    /// Counts a stream as open until the returned guard drops.
    pub(crate) fn open(&self) -> StreamGuard {
        self.open_streams.inc();
        StreamGuard(self.open_streams.clone())
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
