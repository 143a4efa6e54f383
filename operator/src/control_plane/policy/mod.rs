//! Policy server: inbound (`GetPort` / `WatchPort`) and outbound (`Get` / `Watch`) policies.
//!
//! The servers know only [`DiscoverPolicy`]; the index implements it. Watches send the current
//! policy at once and again whenever it changes.

pub mod inbound;
pub mod outbound;
#[cfg(test)]
mod tests;

use crate::control_plane::stream::{BoxStream, StreamMetrics, StreamNames};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use trellis_api::{
    inbound::{PortSpec, ServerPolicy},
    linkerd2_proxy_api::{
        inbound::inbound_server_policies_server as inbound_server,
        outbound::outbound_policies_server as outbound_server,
    },
    outbound::{OutboundPolicy, TrafficSpec},
};

pub use self::{inbound::InboundPolicyService, outbound::OutboundPolicyService};
use crate::control_plane::{
    destination::LookupError,
    tls::{ServeError, Transport, serve_mesh_only},
};

/// Policy discovery, as the policy servers need it.
pub trait DiscoverPolicy: Send + Sync + 'static {
    /// A receiver that changes whenever anything a policy depends on changes.
    fn changes(&self) -> watch::Receiver<u64>;
    /// The inbound policy of a workload's port.
    fn inbound(&self, spec: &PortSpec) -> Result<ServerPolicy, LookupError>;
    /// The outbound policy of a target.
    fn outbound(&self, spec: &TrafficSpec) -> Result<OutboundPolicy, LookupError>;
}

/// Policy server metrics (`policy_*`).
pub type PolicyMetrics = StreamMetrics;

/// Names of the policy server's stream metrics.
pub const STREAM_NAMES: StreamNames = StreamNames {
    prefix: "policy",
    streams_help: "Open WatchPort and Watch streams",
    updates_help: "Policies sent on watches",
};

/// Streams `lookup()` now and whenever `discover` changes, sending only new values. A lookup
/// error after the first message ends the stream with that status.
fn watch_stream<D, T, W, F>(
    discover: Arc<D>,
    metrics: PolicyMetrics,
    first: T,
    lookup: F,
) -> BoxStream<W>
where
    D: DiscoverPolicy,
    T: PartialEq + Clone + Send + 'static + Into<W>,
    W: Send + 'static,
    F: Fn(&D) -> Result<T, LookupError> + Send + 'static,
{
    let mut changes = discover.changes();
    let (tx, out) = mpsc::channel(4);
    tokio::spawn(async move {
        let _guard = metrics.open();
        changes.borrow_and_update();
        let mut last = first.clone();
        if tx.send(Ok(first.into())).await.is_err() {
            return;
        }
        metrics.updates.inc();
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
            }
            changes.borrow_and_update();
            match lookup(&discover) {
                Ok(next) if next == last => {}
                Ok(next) => {
                    last = next.clone();
                    if tx.send(Ok(next.into())).await.is_err() {
                        return;
                    }
                    metrics.updates.inc();
                }
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
        }
    });
    Box::pin(ReceiverStream::new(out))
}

/// Decodes a request's `spec` and finds its policy, counting a refusal of either step.
fn lookup<S, W, P>(
    metrics: &PolicyMetrics,
    spec: W,
    find: impl FnOnce(&S) -> Result<P, LookupError>,
) -> Result<(S, P), Status>
where
    S: TryFrom<W>,
    S::Error: std::fmt::Display,
{
    let refused = |status: Status| {
        metrics.errors.inc();
        status
    };
    let spec = S::try_from(spec).map_err(|e| refused(Status::invalid_argument(e.to_string())))?;
    let policy = find(&spec).map_err(|e| refused(Status::from(e)))?;
    Ok((spec, policy))
}

/// Serves both policy services on `listener` until `shutdown`; over TLS, clients must present
/// a mesh certificate.
pub async fn serve<D: DiscoverPolicy>(
    listener: tokio::net::TcpListener,
    discover: D,
    metrics: PolicyMetrics,
    transport: Transport,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), ServeError> {
    use tonic::server::NamedService;
    let discover = Arc::new(discover);
    let inbound = InboundPolicyService::new(discover.clone(), metrics.clone()).into_server();
    let outbound = OutboundPolicyService::new(discover, metrics).into_server();
    let names = [
        inbound_server::InboundServerPoliciesServer::<InboundPolicyService<D>>::NAME,
        outbound_server::OutboundPoliciesServer::<OutboundPolicyService<D>>::NAME,
    ];
    let router = tonic::transport::Server::builder()
        .add_service(inbound)
        .add_service(outbound);
    serve_mesh_only(router, &names, listener, transport, shutdown).await
}
