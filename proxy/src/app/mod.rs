//! Assembles the proxy: binds every listener, starts every task, and drains on shutdown.

pub mod config;
pub mod control;
pub mod runtime;

use std::{net::SocketAddr, sync::Arc};

use tracing::Instrument;

use trellis_api::linkerd2_proxy_api::{
    destination::destination_client::DestinationClient, identity::identity_client::IdentityClient,
    inbound::inbound_server_policies_client::InboundServerPoliciesClient,
    outbound::outbound_policies_client::OutboundPoliciesClient,
};

use crate::{
    admin::{Admin, Readiness},
    drain::Drain,
    identity::Identity,
    inbound::{Inbound, policy, watch::Policies},
    metrics::Metrics,
    outbound::{
        Outbound,
        balance::EndpointFactory,
        discover::{Discovery, Resolver},
    },
    tls,
    transport::{OrigDst, listen},
};

pub use config::Config;

/// Failure to start the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The trust anchors or TLS setup are invalid.
    #[error("tls setup")]
    Tls(#[from] crate::tls::Error),
    /// The identity directory or key could not be prepared.
    #[error("identity setup")]
    Identity(#[from] crate::identity::Error),
    /// A control-plane channel could not be set up.
    #[error("control plane")]
    Control(#[from] control::Error),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for the {listener} listener; is the port in use?")]
    Bind {
        /// Which listener.
        listener: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Overrides for running the proxy in-process.
#[derive(Clone, Debug)]
pub struct Options {
    /// How inbound connections learn their original destination.
    pub inbound_orig_dst: OrigDst,
    /// How outbound connections learn their original destination.
    pub outbound_orig_dst: OrigDst,
    /// The runtime for control work (admin, identity); `None` uses the caller's.
    pub control: Option<tokio::runtime::Handle>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            inbound_orig_dst: OrigDst::Syscall,
            outbound_orig_dst: OrigDst::Syscall,
            control: None,
        }
    }
}

/// A running proxy.
#[derive(Debug)]
pub struct Running {
    /// Bound admin address.
    pub admin_addr: SocketAddr,
    /// Bound inbound address.
    pub inbound_addr: SocketAddr,
    /// Bound outbound addresses.
    pub outbound_addrs: Vec<SocketAddr>,
    /// Readiness latch (set once the proxy holds a certificate).
    pub readiness: Readiness,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The proxy's certificate store.
    pub creds: Arc<tls::Store>,
    drain: Drain,
    config: Arc<Config>,
}

impl Running {
    /// Stops accepting, waits up to the configured grace period for in-flight work, then
    /// closes what is left. Returns true when everything drained in time.
    pub async fn shutdown(self) -> bool {
        tracing::info!(grace = ?self.config.shutdown_grace_period, "Draining");
        let clean = self.drain.drain(self.config.shutdown_grace_period).await;
        tracing::info!(clean, "Shut down");
        clean
    }
}

/// Binds every listener of `config` and starts serving.
///
/// Long on purpose: it is one linear wiring sequence (trust, identity, listeners, policy,
/// admin, inbound, discovery, outbound, tap) in which each step uses the handles the earlier
/// ones made; split up, it would only pass those handles around.
pub async fn spawn(config: Config, options: Options) -> Result<Running, Error> {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::new();
    let drain = Drain::new();

    let roots = tls::trust_anchors(&config.identity.trust_anchors_pem)?;
    let creds = tls::Store::new(config.identity.local_name.clone());
    let tls_server = tls::server::Server::new(roots.clone(), creds.clone())?;
    // The identity controller is reached before this proxy has a certificate.
    let control_rt = options
        .control
        .clone()
        .unwrap_or_else(tokio::runtime::Handle::current);
    let identity_tls = tls::client::Client::new(roots.clone(), None)?;
    // The channel's connection task runs where it is made: on the control runtime.
    let identity_channel = {
        let _control = control_rt.enter();
        control::channel(&config.identity.svc, &identity_tls)?
    };
    let identity = Identity::new(
        config.identity.clone(),
        roots.clone(),
        creds.clone(),
        readiness.clone(),
    )?;

    let bind = |listener: &'static str, addr: SocketAddr| async move {
        listen::bind(addr)
            .await
            .and_then(|l| Ok((l.local_addr()?, l)))
            .map_err(|source| Error::Bind {
                listener,
                addr,
                source,
            })
    };
    let (admin_addr, admin_listener) =
        bind_on(&control_rt, config.admin_listen_addr).map_err(|source| Error::Bind {
            listener: "admin",
            addr: config.admin_listen_addr,
            source,
        })?;
    let (inbound_addr, inbound_listener) = bind("inbound", config.inbound.listen_addr).await?;
    let mut outbound_listeners = Vec::new();
    for addr in &config.outbound.listen_addrs {
        outbound_listeners.push(bind("outbound", *addr).await?);
    }
    let outbound_addrs: Vec<SocketAddr> = outbound_listeners.iter().map(|(a, _)| *a).collect();

    let identity_drain = drain.clone();
    control_rt.spawn(
        async move {
            tokio::select! {
                () = identity.run(IdentityClient::new(identity_channel)) => {}
                () = identity_drain.signaled() => {}
            }
        }
        .instrument(tracing::info_span!("identity")),
    );

    // Policy: the default until the controller answers; mTLS once certified.
    let default_policy = policy::with_detect_timeout(
        config
            .default_policy
            .server(&config.cluster_networks, false),
        config.inbound.detect_timeout,
    );
    let policy_tls = tls::client::Client::new(roots.clone(), Some(creds.clone()))?;
    let policy_channel = control::channel(&config.policy, &policy_tls)?;
    let policies = Arc::new(Policies::watched(
        default_policy,
        InboundServerPoliciesClient::new(policy_channel.clone()),
        config.policy_workload.clone(),
        (!config.policy.is_loopback()).then(|| creds.clone()),
        drain.clone(),
    ));
    for port in &config.inbound.ports {
        policies.get(*port);
    }

    let admin = Admin::new(readiness.clone(), metrics.clone());
    control_rt.spawn(
        admin
            .serve(admin_listener, drain.clone())
            .instrument(tracing::info_span!("admin", addr = %admin_addr)),
    );

    let inbound = Inbound::new(
        Arc::new(config.inbound.clone()),
        metrics.clone(),
        inbound_addr.port(),
        tls_server,
        config.identity.local_name.clone(),
        policies,
        drain.clone(),
    );
    tokio::spawn(
        listen::serve(
            inbound_listener,
            options.inbound_orig_dst,
            config.inbound.keepalive,
            drain.clone(),
            move |conn| {
                let span = tracing::debug_span!("inbound", client = %conn.client_addr, dst = %conn.orig_dst);
                inbound.clone().serve_connection(conn).instrument(span)
            },
        )
        .instrument(tracing::info_span!("inbound", addr = %inbound_addr)),
    );

    // Discovery over mTLS once certified (plaintext to a loopback controller).
    let mesh_tls = tls::client::Client::new(roots.clone(), Some(creds.clone()))?;
    let destination_channel = control::channel(&config.destination, &mesh_tls)?;
    let resolver = Arc::new(Resolver::new(
        Discovery {
            destination: DestinationClient::new(destination_channel),
            destination_creds: (!config.destination.is_loopback()).then(|| creds.clone()),
            context: config.destination_context.clone(),
            policy: OutboundPoliciesClient::new(policy_channel),
            policy_creds: (!config.policy.is_loopback()).then(|| creds.clone()),
            workload: config.policy_workload.clone(),
            profile_networks: config.profile_networks.clone(),
        },
        config.outbound.discovery_idle_timeout,
        drain.clone(),
    ));
    let outbound = Outbound::new(
        Arc::new(config.outbound.clone()),
        metrics.clone(),
        outbound_addrs.clone(),
        Some(resolver),
        EndpointFactory {
            tls: mesh_tls,
            connect_timeout: config.outbound.connect_timeout,
            metrics: metrics.clone(),
        },
        drain.clone(),
    );
    for (addr, listener) in outbound_listeners {
        let outbound = outbound.clone();
        tokio::spawn(
            listen::serve(
                listener,
                options.outbound_orig_dst,
                config.outbound.keepalive,
                drain.clone(),
                move |conn| {
                    let span = tracing::debug_span!("outbound", client = %conn.client_addr, dst = %conn.orig_dst);
                    outbound.clone().serve_connection(conn).instrument(span)
                },
            )
            .instrument(tracing::info_span!("outbound", %addr)),
        );
    }

    tracing::info!(%admin_addr, %inbound_addr, ?outbound_addrs, "Proxy listening");
    Ok(Running {
        admin_addr,
        inbound_addr,
        outbound_addrs,
        readiness,
        metrics,
        creds,
        drain,
        config,
    })
}

/// Binds `addr` with the listener registered on `rt`'s reactor, so that accepting on it never
/// wakes another runtime.
fn bind_on(
    rt: &tokio::runtime::Handle,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::net::TcpListener)> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let _rt = rt.enter();
    Ok((local, tokio::net::TcpListener::from_std(listener)?))
}
