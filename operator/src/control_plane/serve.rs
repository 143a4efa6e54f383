//! Runs the control plane's gRPC side: the shared index, the issuer, the Mesh settings, the
//! status writer, and the identity, destination and policy servers on it.

use std::{net::SocketAddr, sync::Arc};

use futures::StreamExt;
use kube::{Api, Client};
use parking_lot::RwLock;
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;
use trellis_api::well_known;
use trellis_crds::{
    settings::{MeshSettings, error::Error as SettingsError},
    v1alpha1::mesh::Mesh,
};

use crate::{
    admin::ReadyFlag,
    config::ControllerConfig,
    control_plane::{
        certify::{self, IdentityMetrics, IdentityService, TokenReviewVerifier},
        destination::{self, DestinationMetrics, DestinationService},
        index::{self, ClusterSettings, Index, SharedIndex, policy::access_default},
        policy::{self, PolicyMetrics},
        status,
        tls::{ControllerCredentials, ServeError, TlsError, Transport},
    },
    pki::issuer::{IdentitySettings, LeafLifetime, SharedIssuer},
    watch_named::named_until,
};

#[cfg(test)]
mod tests;

/// Why the control plane stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// A listener could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The controller's TLS identity could not be created.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Applies a Mesh's identity and proxy settings to the identity server and the index.
///
/// The spec is checked into [`MeshSettings`] first: an invalid one changes nothing and is
/// returned, naming every bad field (never a silent default).
pub fn apply_mesh(
    mesh: &Mesh,
    identity: &watch::Sender<IdentitySettings>,
    index: &SharedIndex,
) -> Result<(), SettingsError> {
    let settings = MeshSettings::try_from(&mesh.spec)?;
    let id = &settings.identity;
    let next = IdentitySettings {
        trust_domain: id.trust_domain.clone(),
        leaf: LeafLifetime {
            lifetime: id.workload_certificate_lifetime,
            clock_skew: id.clock_skew_allowance,
        },
    };
    identity.send_if_modified(|old| {
        let changed = *old != next;
        *old = next.clone();
        changed
    });
    let mut index = index.write();
    let mut cluster = index.settings().clone();
    cluster.trust_domain = id.trust_domain.clone();
    cluster.default_inbound_policy = access_default(settings.proxy.default_inbound_policy);
    index.set_settings(cluster);
    Ok(())
}

async fn follow_mesh(
    client: Client,
    name: String,
    identity: watch::Sender<IdentitySettings>,
    index: SharedIndex,
    shutdown: CancellationToken,
) {
    let meshes = named_until(Api::<Mesh>::all(client), &name, shutdown);
    let mut meshes = std::pin::pin!(meshes);
    while let Some(next) = meshes.next().await {
        match next {
            Ok(mesh) => match apply_mesh(&mesh, &identity, &index) {
                Ok(()) => tracing::info!(mesh = %name, "Mesh settings applied"),
                Err(error) => tracing::warn!(
                    mesh = %name,
                    %error,
                    "Mesh spec invalid; keeping the current settings"
                ),
            },
            Err(e) => tracing::warn!(mesh = %name, error = %e, "Mesh watch failed"),
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ControlPlaneError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ControlPlaneError::Bind { addr, source })
}

/// Runs the index, the issuer and Mesh followers and the three gRPC servers until `shutdown`.
/// It is the one place that wires them, so it reads top to bottom in start order.
/// `index_ready` is set once every watched kind has been listed into the index.
///
/// Loopback listeners serve plaintext (local runs and tests); any other address serves TLS
/// with the controller's own certificate.
pub async fn run_control_plane(
    client: Client,
    config: &ControllerConfig,
    registry: &Arc<RwLock<Registry>>,
    index_ready: ReadyFlag,
    shutdown: CancellationToken,
) -> Result<(), ControlPlaneError> {
    let (identity_metrics, destination_metrics, policy_metrics) = {
        let mut registry = registry.write();
        (
            IdentityMetrics::register(&mut registry),
            DestinationMetrics::register(&mut registry, destination::STREAM_NAMES),
            PolicyMetrics::register(&mut registry, policy::STREAM_NAMES),
        )
    };
    let index = Index::shared(ClusterSettings {
        cluster_domain: config.cluster_domain.clone(),
        cluster_networks: config.cluster_networks.clone(),
        ..ClusterSettings::default()
    });
    let (identity_settings, identity_rx) = watch::channel(IdentitySettings::default());
    let issuer = SharedIssuer::default();
    tokio::spawn(issuer.clone().follow_secret(
        client.clone(),
        config.control_plane_namespace.clone(),
        well_known::ISSUER_SECRET.to_string(),
        shutdown.clone(),
    ));
    tokio::spawn(follow_mesh(
        client.clone(),
        config.mesh_name.clone(),
        identity_settings,
        index.clone(),
        shutdown.clone(),
    ));
    let (listed, listed_rx) = watch::channel(false);
    let synced = index::Synced::new(move || {
        index_ready.set(true);
        listed.send_replace(true);
    });
    tokio::spawn(index::run_synced(
        index.clone(),
        client.clone(),
        synced,
        shutdown.clone(),
    ));
    tokio::spawn(status::run(
        index.clone(),
        client.clone(),
        listed_rx,
        shutdown.clone(),
    ));

    let creds = Arc::new(ControllerCredentials::new(
        well_known::CONTROLLER_NAME.to_string(),
        config.control_plane_namespace.clone(),
        issuer.clone(),
        identity_rx.clone(),
    )?);
    let transport = |addr: SocketAddr| {
        if addr.ip().is_loopback() {
            Transport::Plaintext
        } else {
            Transport::Tls(creds.clone())
        }
    };
    let identity_listener = bind(config.identity_addr).await?;
    let destination_listener = bind(config.destination_addr).await?;
    let policy_listener = bind(config.policy_addr).await?;
    tracing::info!(
        identity = %config.identity_addr,
        destination = %config.destination_addr,
        policy = %config.policy_addr,
        "Control plane gRPC servers listening"
    );
    let identity = certify::serve(
        identity_listener,
        IdentityService::new(
            issuer,
            TokenReviewVerifier::new(client),
            identity_rx,
            identity_metrics,
        ),
        transport(config.identity_addr),
        shutdown.clone(),
    );
    let destination = destination::serve(
        destination_listener,
        DestinationService::new(index.clone(), destination_metrics),
        transport(config.destination_addr),
        shutdown.clone(),
    );
    let policy = policy::serve(
        policy_listener,
        index,
        policy_metrics,
        transport(config.policy_addr),
        shutdown.clone(),
    );
    let result = tokio::try_join!(identity, destination, policy);
    shutdown.cancel();
    result.map(|_| ()).map_err(Into::into)
}
