//! Admin settings: the admin listener, the `/shutdown` endpoint and the drain grace period.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use trellis_api::well_known;

/// Env var: admin listen address.
pub const ENV_ADMIN_LISTEN_ADDR: &str = "TRELLIS_PROXY_ADMIN_LISTEN_ADDR";
/// Env var: whether the admin `/shutdown` endpoint is on.
pub const ENV_SHUTDOWN_ENDPOINT_ENABLED: &str = "TRELLIS_PROXY_SHUTDOWN_ENDPOINT_ENABLED";
/// Env var: how long in-flight work may drain on shutdown.
pub const ENV_SHUTDOWN_GRACE_PERIOD: &str = "TRELLIS_PROXY_SHUTDOWN_GRACE_PERIOD";
/// Default admin listen address (loopback, as in the contract).
pub const DEFAULT_ADMIN_LISTEN_ADDR: SocketAddr = SocketAddr::new(
    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    well_known::PROXY_ADMIN_PORT,
);
/// Default shutdown grace period.
pub const DEFAULT_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(120);
