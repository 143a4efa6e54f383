//! Outbound settings: the listeners, detection and connect timeouts, and ingress mode.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use trellis_api::well_known;

use crate::outbound::config::OutboundConfig;

use super::{
    Error, Source,
    inbound::DEFAULT_DETECT_TIMEOUT,
    parse::{duration_or, get, list, opt_duration, parse_socket_addr, socket_addr_or},
};

/// Env var: outbound listen address (one).
pub const ENV_OUTBOUND_LISTEN_ADDR: &str = "TRELLIS_PROXY_OUTBOUND_LISTEN_ADDR";
/// Env var: outbound listen addresses (comma-separated); wins over the single form.
pub const ENV_OUTBOUND_LISTEN_ADDRS: &str = "TRELLIS_PROXY_OUTBOUND_LISTEN_ADDRS";
/// Env var: outbound protocol detection timeout.
pub const ENV_OUTBOUND_DETECT_TIMEOUT: &str = "TRELLIS_PROXY_OUTBOUND_DETECT_TIMEOUT";
/// Env var: outbound connect timeout.
pub const ENV_OUTBOUND_CONNECT_TIMEOUT: &str = "TRELLIS_PROXY_OUTBOUND_CONNECT_TIMEOUT";
/// Env var: how long unused outbound discovery watches are kept.
pub const ENV_OUTBOUND_DISCOVERY_IDLE_TIMEOUT: &str =
    "TRELLIS_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT";
/// Env var: TCP keepalive on outbound connections.
pub const ENV_OUTBOUND_CONNECT_KEEPALIVE: &str = "TRELLIS_PROXY_OUTBOUND_CONNECT_KEEPALIVE";
/// Env var: ingress mode.
pub const ENV_INGRESS_MODE: &str = "TRELLIS_PROXY_INGRESS_MODE";
/// Default outbound listen address (loopback only).
pub const DEFAULT_OUTBOUND_LISTEN_ADDR: SocketAddr = SocketAddr::new(
    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    well_known::PROXY_OUTBOUND_PORT,
);
/// Default outbound connect timeout.
pub const DEFAULT_OUTBOUND_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default lifetime of unused outbound discovery watches.
pub const DEFAULT_OUTBOUND_DISCOVERY_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

impl OutboundConfig {
    /// Reads the outbound settings from `env`.
    pub fn parse(env: &dyn Source) -> Result<Self, Error> {
        let listen_addrs = match get(env, ENV_OUTBOUND_LISTEN_ADDRS) {
            Some(_) => list(env, ENV_OUTBOUND_LISTEN_ADDRS, parse_socket_addr)?,
            None => vec![socket_addr_or(
                env,
                ENV_OUTBOUND_LISTEN_ADDR,
                DEFAULT_OUTBOUND_LISTEN_ADDR,
            )?],
        };
        Ok(Self {
            listen_addrs,
            detect_timeout: duration_or(env, ENV_OUTBOUND_DETECT_TIMEOUT, DEFAULT_DETECT_TIMEOUT)?,
            connect_timeout: duration_or(
                env,
                ENV_OUTBOUND_CONNECT_TIMEOUT,
                DEFAULT_OUTBOUND_CONNECT_TIMEOUT,
            )?,
            discovery_idle_timeout: duration_or(
                env,
                ENV_OUTBOUND_DISCOVERY_IDLE_TIMEOUT,
                DEFAULT_OUTBOUND_DISCOVERY_IDLE_TIMEOUT,
            )?,
            keepalive: opt_duration(env, ENV_OUTBOUND_CONNECT_KEEPALIVE)?,
        })
    }
}
