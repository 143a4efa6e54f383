//! Outbound settings: the listeners, detection and connect timeouts, and ingress mode.

use std::{net::SocketAddr, time::Duration};

use trellis_api::well_known;

use crate::outbound::config::OutboundConfig;

use super::{
    ENV_OUTBOUND_CONNECT_KEEPALIVE, ENV_OUTBOUND_CONNECT_TIMEOUT, ENV_OUTBOUND_DETECT_TIMEOUT,
    ENV_OUTBOUND_DISCOVERY_IDLE_TIMEOUT, ENV_OUTBOUND_LISTEN_ADDR, ENV_OUTBOUND_LISTEN_ADDRS,
    Error, Source,
    inbound::DEFAULT_DETECT_TIMEOUT,
    parse::{duration_or, get, list, loopback, opt_duration, parse_socket_addr, socket_addr_or},
};

/// Default outbound listen address (loopback only).
pub const DEFAULT_OUTBOUND_LISTEN_ADDR: SocketAddr = loopback(well_known::PROXY_OUTBOUND_PORT);
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
