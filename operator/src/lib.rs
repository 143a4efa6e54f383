//! The Trellis operator and control plane.
//!
//! One binary, several roles: `operator` runs the [`reconciler`], which reconciles `Mesh`
//! objects into the control plane; `controller` runs the [`control_plane`], which serves
//! identity (Certify), destination, policy and the admission webhooks; `all-in-one` runs
//! both. The two sides never import each other: what both need about certificates lives in
//! [`pki`], and this top level ([`run`], [`config`], [`admin`], [`telemetry`]) wires them.
//! It may depend on every Trellis crate except `trellis-proxy`. Start reading at `main.rs`,
//! then [`config`], [`run`], [`reconciler`] and [`control_plane`].

pub mod admin;
pub mod config;
pub mod control_plane;
pub mod error;
pub mod pki;
pub mod reconciler;
pub mod telemetry;
#[cfg(test)]
mod test_util;
pub mod watch_named;

use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::{
    admin::{AdminServer, Readiness, SharedRegistry},
    config::{Config, ControllerConfig, Role},
    control_plane::Controller,
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
            reconciler::run(client, operator, &registry, &readiness, shutdown.clone())
                .await
                .map_err(Error::from)
        }
        Some(Role::Controller(controller)) => {
            run_controller(controller, &registry, &readiness, shutdown.clone()).await
        }
        Some(Role::AllInOne(all)) => {
            let client = Client::try_default().await.map_err(Error::Connect)?;
            let operator = reconciler::run(
                client,
                all.operator,
                &registry,
                &readiness,
                shutdown.clone(),
            );
            let controller =
                run_controller(all.controller, &registry, &readiness, shutdown.clone());
            let (operator, controller) = tokio::join!(operator, controller);
            operator.map_err(Error::from).and(controller)
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
/// The identity, destination and policy servers run from [`control_plane::serve`], the
/// admission webhooks from [`control_plane::admission`]; see [`Controller`].
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
        .await?;
    Ok(())
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
