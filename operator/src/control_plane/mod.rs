//! The control plane (the `controller` role): the index of cluster objects, the Certify,
//! destination and policy gRPC servers on it, and the admission webhook server.
//!
//! It never imports the reconciler ([`crate::reconciler`]); both share [`crate::pki`].
//! Start at [`Controller`], then [`serve::run_control_plane`] and [`admission`].

pub mod admission;
pub mod certify;
pub mod destination;
pub mod error;
pub mod index;
pub mod policy;
pub mod serve;
pub mod status;
pub mod stream;
pub mod tls;

use kube::Client;
use tokio_util::sync::CancellationToken;

use self::{admission::WebhookServer, error::Error};
use crate::{
    admin::{Readiness, SharedRegistry},
    config::ControllerConfig,
};

/// The `controller` role with its webhook listener bound, so callers (tests) can learn the
/// bound address before it serves.
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    webhooks: WebhookServer,
}

impl Controller {
    /// Binds the webhook listener of `config` (port 0 picks a free port).
    pub async fn bind(config: ControllerConfig) -> Result<Self, Error> {
        let webhooks = WebhookServer::bind((&config).into()).await?;
        Ok(Self { config, webhooks })
    }

    /// The address the webhook listener is bound to.
    pub fn webhook_addr(&self) -> std::net::SocketAddr {
        self.webhooks.local_addr()
    }

    /// Serves the gRPC servers and the webhooks until `shutdown` (or until one fails, which
    /// stops the others), then drains.
    pub async fn run(
        self,
        client: Client,
        registry: &SharedRegistry,
        readiness: &Readiness,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        // Ready (in the Service's endpoints) only once proxies and the apiserver get real
        // answers: every watched kind listed into the index, and the webhook certificate,
        // Mesh and trust bundle loaded.
        let index_ready = readiness.register("index");
        let webhooks_ready = readiness.register("webhooks");
        let control_plane = async {
            let result = serve::run_control_plane(
                client.clone(),
                &self.config,
                registry,
                index_ready,
                shutdown.clone(),
            )
            .await;
            shutdown.cancel();
            result
        };
        let webhooks = async {
            let result = self
                .webhooks
                .run(client.clone(), webhooks_ready, shutdown.clone())
                .await;
            shutdown.cancel();
            result
        };
        let (control_plane, webhooks) = tokio::join!(control_plane, webhooks);
        control_plane?;
        webhooks?;
        Ok(())
    }
}
