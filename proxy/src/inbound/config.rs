//! The inbound stage's settings, as `app::config` parses them from `TRELLIS_PROXY_INBOUND_*`.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

/// Inbound settings.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundConfig {
    /// Listen address.
    pub listen_addr: SocketAddr,
    /// The pod's IPs (empty: any).
    pub ips: Vec<IpAddr>,
    /// The pod's ports (policies are fetched up front); the admin port is always included.
    pub ports: BTreeSet<u16>,
    /// Ports that skip protocol detection.
    pub opaque_ports: BTreeSet<u16>,
    /// Protocol detection timeout.
    pub detect_timeout: Duration,
    /// Connect timeout (to the app).
    pub connect_timeout: Duration,
    /// Lifetime of unused discovery watches.
    pub discovery_idle_timeout: Duration,
    /// TCP keepalive on accepted connections.
    pub keepalive: Option<Duration>,
}
