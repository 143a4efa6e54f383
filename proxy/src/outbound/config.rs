//! The outbound stage's settings, as `app::config` parses them from `TRELLIS_PROXY_OUTBOUND_*`.

use std::{net::SocketAddr, time::Duration};

/// Outbound settings.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundConfig {
    /// Listen addresses (loopback).
    pub listen_addrs: Vec<SocketAddr>,
    /// Protocol detection timeout.
    pub detect_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Lifetime of unused discovery watches.
    pub discovery_idle_timeout: Duration,
    /// TCP keepalive on outbound connections.
    pub keepalive: Option<Duration>,
}
