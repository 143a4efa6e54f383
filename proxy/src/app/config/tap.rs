//! Tap settings: the control listener and the tap controller's identity.

use std::net::{IpAddr, SocketAddr};

use trellis_api::well_known;

/// Env var: control (tap) listen address.
pub const ENV_CONTROL_LISTEN_ADDR: &str = "TRELLIS_PROXY_CONTROL_LISTEN_ADDR";
/// Env var: the tap controller's identity; unset turns tap off.
pub const ENV_TAP_SVC_NAME: &str = "TRELLIS_PROXY_TAP_SVC_NAME";
/// Default control (tap) listen address.
pub const DEFAULT_CONTROL_LISTEN_ADDR: SocketAddr = SocketAddr::new(
    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    well_known::PROXY_CONTROL_PORT,
);
