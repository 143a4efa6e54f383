//! The Trellis operator and control plane.
//!
//! One binary, several roles: `operator` reconciles `Mesh` objects into the control plane,
//! `controller` serves identity, destination, policy and webhooks, `all-in-one` runs both.
//! It may depend on every Trellis crate except `trellis-proxy`. Start reading at `main.rs`,
//! then [`config`], [`run`] and [`controllers`].

pub mod admin;
pub mod config;
pub mod controllers;
pub mod destination;
pub mod error;
pub mod identity;
pub mod index;
pub mod lease;
pub mod policy;
pub mod render;
pub mod stream;
pub mod telemetry;
pub mod webhooks;

use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::{
    admin::{AdminServer, Readiness, SharedRegistry},
    config::{Config, ControllerConfig, Role},
    error::Error,
};

/// Runs the role `config` names until SIGINT/SIGTERM, then drains.
pub async fn run(config: Config) -> Result<(), Error> {
    let registry = SharedRegistry::default();
    let readiness = Readiness::default();
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let admin = AdminServer::bind(config.admin.addr, registry.clone(), readiness.clone()).await?;
    let admin_shutdown = shutdown.clone();
    let admin = tokio::spawn(admin.serve(async move { admin_shutdown.cancelled().await }));
    let result = match config.role {
        None | Some(Role::Version) => Ok(()),
        Some(Role::Operator(operator)) => {
            let client = Client::try_default().await.map_err(Error::Connect)?;
            controllers::run(client, operator, &registry, &readiness, shutdown.clone()).await
        }
        Some(Role::Controller(controller)) => {
            run_controller(controller, &registry, &readiness, shutdown.clone()).await
        }
        Some(Role::AllInOne(all)) => {
            let client = Client::try_default().await.map_err(Error::Connect)?;
            let operator = controllers::run(
                client,
                all.operator,
                &registry,
                &readiness,
                shutdown.clone(),
            );
            let controller =
                run_controller(all.controller, &registry, &readiness, shutdown.clone());
            let (operator, controller) = tokio::join!(operator, controller);
            operator.and(controller)
        }
    };
    shutdown.cancel();
    match admin.await {
        Ok(served) => served?,
        Err(e) => tracing::warn!(error = %e, "Admin server task failed"),
    }
    result
}

/// Runs the `controller` role: the gRPC servers and webhooks of the control plane.
///
/// The identity, destination and policy servers run from [`index::serve`], the admission
/// webhooks from [`webhooks`]; see [`Controller`].
pub async fn run_controller(
    config: ControllerConfig,
    registry: &SharedRegistry,
    readiness: &Readiness,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let client = Client::try_default().await.map_err(Error::Connect)?;
    Controller::bind(config)
        .await?
        .run(client, registry, readiness, shutdown)
        .await
}

/// The `controller` role with its webhook listener bound, so callers (tests) can learn the
/// bound address before it serves.
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    webhooks: webhooks::WebhookServer,
}

impl Controller {
    /// Binds the webhook listener of `config` (port 0 picks a free port).
    pub async fn bind(config: ControllerConfig) -> Result<Self, Error> {
        let webhooks = webhooks::WebhookServer::bind(config.webhooks()).await?;
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
            let result = index::serve::run_control_plane(
                client.clone(),
                self.config.control_plane(),
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

async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("Shutting down");
    shutdown.cancel();
}
