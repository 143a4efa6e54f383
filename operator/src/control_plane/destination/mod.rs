//! Destination server: `Get` streams a Service's endpoints, `GetProfile` its profile.
//!
//! The server knows only [`DiscoverEndpoints`]; the index implements it. `Get` sends the whole
//! set at once, then the difference on every change (adds, removes, `NoEndpoints`).

#[cfg(test)]
mod tests;

use crate::control_plane::stream::{BoxStream, StreamMetrics, StreamNames};
use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use crate::control_plane::tls::{ServeError, Transport, peer_identity, serve_mesh_only};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use trellis_api::{
    destination::{Context, Endpoint, Profile, Target, Update, parse_context_token},
    linkerd2_proxy_api::destination::{self as proto, destination_server},
};

/// The endpoints of one Service port; `None` when the Service does not exist.
pub type EndpointSet = Option<Arc<BTreeMap<SocketAddr, Endpoint>>>;

/// Why a lookup has no answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The target does not exist (yet): the proxy retries.
    #[error("{0} not found")]
    NotFound(String),
    /// The target can never exist.
    #[error("{0}")]
    Invalid(String),
}

impl From<LookupError> for Status {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::NotFound(_) => Status::not_found(e.to_string()),
            LookupError::Invalid(_) => Status::invalid_argument(e.to_string()),
        }
    }
}

/// Endpoint and profile discovery, as the destination server needs it.
pub trait DiscoverEndpoints: Send + Sync + 'static {
    /// The cluster's DNS domain.
    fn cluster_domain(&self) -> String;
    /// Subscribes to the endpoints of a Service (or one pod of it).
    fn watch_endpoints(&self, target: &Target)
    -> Result<watch::Receiver<EndpointSet>, LookupError>;
    /// A receiver that changes whenever anything a profile depends on changes.
    fn changes(&self) -> watch::Receiver<u64>;
    /// The current profile of `target` for a client in `context`.
    fn profile(&self, target: &Target, context: &Context) -> Profile;
}

/// Destination server metrics (`destination_*`).
pub type DestinationMetrics = StreamMetrics;

/// The label naming an endpoint's namespace: on the set of a `Get` answer, on the endpoint
/// itself in a `GetProfile` answer.
pub const NAMESPACE_LABEL: &str = "namespace";

/// Names of the destination server's stream metrics.
pub const STREAM_NAMES: StreamNames = StreamNames {
    prefix: "destination",
    streams_help: "Open Get and GetProfile streams",
    updates_help: "Messages sent on Get and GetProfile streams",
};

/// The `Destination` service over a [`DiscoverEndpoints`].
#[derive(Debug)]
pub struct DestinationService<D> {
    discover: Arc<D>,
    metrics: DestinationMetrics,
}

impl<D: DiscoverEndpoints> DestinationService<D> {
    /// A service answering from `discover`.
    pub fn new(discover: D, metrics: DestinationMetrics) -> Self {
        Self {
            discover: Arc::new(discover),
            metrics,
        }
    }

    /// This service as a tonic service.
    pub fn into_server(self) -> destination_server::DestinationServer<Self> {
        destination_server::DestinationServer::new(self)
    }

    fn parse(&self, path: &str) -> Result<Target, Status> {
        Target::parse(path, &self.discover.cluster_domain()).map_err(|e| {
            self.metrics.errors.inc();
            Status::invalid_argument(e.to_string())
        })
    }
}

/// The messages that turn `prev` into `next`.
pub fn diff(prev: &BTreeMap<SocketAddr, Endpoint>, next: &EndpointSet, first: bool) -> Vec<Update> {
    let Some(next) = next else {
        return vec![Update::NoEndpoints { exists: false }];
    };
    let mut updates = Vec::new();
    let removed: Vec<SocketAddr> = prev
        .keys()
        .filter(|a| !next.contains_key(a))
        .copied()
        .collect();
    let added: Vec<Endpoint> = next
        .iter()
        .filter(|(a, ep)| prev.get(a) != Some(ep))
        .map(|(_, ep)| ep.clone())
        .collect();
    if next.is_empty() {
        if first || !prev.is_empty() {
            updates.push(Update::NoEndpoints { exists: true });
        }
        return updates;
    }
    if !removed.is_empty() {
        updates.push(Update::Remove(removed));
    }
    if !added.is_empty() {
        updates.push(Update::Add {
            set_labels: BTreeMap::new(),
            endpoints: added,
        });
    }
    updates
}

#[tonic::async_trait]
impl<D: DiscoverEndpoints> destination_server::Destination for DestinationService<D> {
    type GetStream = BoxStream<proto::Update>;
    type GetProfileStream = BoxStream<proto::DestinationProfile>;

    async fn get(
        &self,
        request: Request<proto::GetDestination>,
    ) -> Result<Response<Self::GetStream>, Status> {
        let client = peer_identity(&request);
        let path = request.into_inner().path;
        let target = self.parse(&path)?;
        let set_labels = match &target {
            Target::Addr(_) => {
                self.metrics.errors.inc();
                return Err(Status::invalid_argument(format!(
                    "Get resolves Service names, not IP addresses: {path}"
                )));
            }
            Target::Service {
                namespace, name, ..
            }
            | Target::Pod {
                namespace,
                service: name,
                ..
            } => BTreeMap::from([
                (NAMESPACE_LABEL.to_string(), namespace.clone()),
                ("service".to_string(), name.clone()),
            ]),
        };
        let mut rx = self.discover.watch_endpoints(&target).inspect_err(|_| {
            self.metrics.errors.inc();
        })?;
        let (tx, out) = mpsc::channel(16);
        let metrics = self.metrics.clone();
        tracing::debug!(%path, client = client.as_deref().unwrap_or("-"), "Get stream opened");
        tokio::spawn(async move {
            let _guard = metrics.open();
            let mut prev: Arc<BTreeMap<SocketAddr, Endpoint>> = Arc::default();
            let mut first = true;
            loop {
                let next = rx.borrow_and_update().clone();
                for mut update in diff(&prev, &next, first) {
                    if let Update::Add {
                        set_labels: labels, ..
                    } = &mut update
                    {
                        labels.clone_from(&set_labels);
                    }
                    if tx.send(Ok(update.into())).await.is_err() {
                        return;
                    }
                    metrics.updates.inc();
                }
                first = false;
                prev = next.unwrap_or_default();
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn get_profile(
        &self,
        request: Request<proto::GetDestination>,
    ) -> Result<Response<Self::GetProfileStream>, Status> {
        let request = request.into_inner();
        let target = self.parse(&request.path)?;
        let context = parse_context_token(&request.context_token);
        let discover = self.discover.clone();
        let mut changes = discover.changes();
        let (tx, out) = mpsc::channel(4);
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let _guard = metrics.open();
            let mut last: Option<Profile> = None;
            loop {
                changes.borrow_and_update();
                let profile = discover.profile(&target, &context);
                if last.as_ref() != Some(&profile) {
                    last = Some(profile.clone());
                    if tx.send(Ok(profile.into())).await.is_err() {
                        return;
                    }
                    metrics.updates.inc();
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }
}

/// Serves `service` on `listener` until `shutdown`; over TLS, clients must present a mesh
/// certificate.
pub async fn serve<D: DiscoverEndpoints>(
    listener: tokio::net::TcpListener,
    service: DestinationService<D>,
    transport: Transport,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), ServeError> {
    use tonic::server::NamedService;
    let router = tonic::transport::Server::builder().add_service(service.into_server());
    let names = [destination_server::DestinationServer::<DestinationService<D>>::NAME];
    serve_mesh_only(router, &names, listener, transport, shutdown).await
}
