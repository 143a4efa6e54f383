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
pub mod watch_backoff;
pub mod watch_named;

use std::time::Duration;

use kube::Client;
use tokio::signal::unix::{Signal, SignalKind, signal};
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
    tokio::spawn(cancel_on_signal(
        shutdown.clone(),
        config.shutdown.delay,
        readiness.clone(),
    ));
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

/// How long the roles may take to drain after the first SIGTERM or SIGINT before the
/// process exits anyway: well inside Kubernetes' default 30 s termination grace period.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// Cancels `shutdown` on the first SIGTERM or SIGINT, after `delay` (during which `/ready`
/// fails and everything still serves, so traffic moves away first), then bounds the drain:
/// the process exits at once on a second signal, and with an error once [`SHUTDOWN_GRACE`]
/// has passed. So it exits at most `delay` + [`SHUTDOWN_GRACE`] after the first signal.
async fn cancel_on_signal(shutdown: CancellationToken, delay: Duration, readiness: Readiness) {
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot listen for SIGTERM or SIGINT; stop this process with SIGKILL");
            return;
        }
    };
    signals.next().await;
    if !delay.is_zero() {
        readiness.register("shutdown").set(false);
        tracing::info!(
            ?delay,
            "Shutting down: not ready, serving until draining starts; a second signal exits at once"
        );
        tokio::select! {
            () = signals.next() => {
                tracing::warn!("Second signal: exiting without draining");
                std::process::exit(EXIT_SECOND_SIGNAL);
            }
            () = tokio::time::sleep(delay) => {}
        }
    }
    tracing::info!(grace = ?SHUTDOWN_GRACE, "Shutting down; a second signal exits at once");
    shutdown.cancel();
    tokio::select! {
        () = signals.next() => {
            tracing::warn!("Second signal: exiting without draining");
            std::process::exit(EXIT_SECOND_SIGNAL);
        }
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::error!(grace = ?SHUTDOWN_GRACE, "Draining took too long; exiting");
            std::process::exit(EXIT_GRACE_EXCEEDED);
        }
    }
}

/// Exit status after a second signal (128 + SIGTERM, as a shell reports it).
pub const EXIT_SECOND_SIGNAL: i32 = 143;
/// Exit status when draining outlasted [`SHUTDOWN_GRACE`].
pub const EXIT_GRACE_EXCEEDED: i32 = 1;

/// SIGTERM and SIGINT, each received as often as it is sent.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
