//! Inbound settings: the listener, the pod's IPs and ports, detection and connect timeouts,
//! and the default policy with the cluster networks it may need.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use ipnet::IpNet;
use trellis_api::well_known;

use crate::inbound::config::InboundConfig;

use super::{
    DefaultPolicy, ENV_INBOUND_ACCEPT_KEEPALIVE, ENV_INBOUND_CONNECT_TIMEOUT,
    ENV_INBOUND_DEFAULT_POLICY, ENV_INBOUND_DETECT_TIMEOUT, ENV_INBOUND_DISCOVERY_IDLE_TIMEOUT,
    ENV_INBOUND_IPS, ENV_INBOUND_LISTEN_ADDR, ENV_INBOUND_PORTS,
    ENV_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION, ENV_POLICY_CLUSTER_NETWORKS, Error, Source,
    parse::{
        duration_or, get, invalid, list, opt_duration, parse_net, port_set, socket_addr_or,
        unspecified,
    },
};

/// Default inbound listen address (all addresses).
pub const DEFAULT_INBOUND_LISTEN_ADDR: SocketAddr = unspecified(well_known::PROXY_INBOUND_PORT);
/// Default protocol detection timeout, both directions.
pub const DEFAULT_DETECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default inbound connect timeout.
pub const DEFAULT_INBOUND_CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// Default lifetime of unused inbound discovery watches.
pub const DEFAULT_INBOUND_DISCOVERY_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default inbound policy.
pub const DEFAULT_INBOUND_POLICY: DefaultPolicy = DefaultPolicy::AllUnauthenticated;

impl InboundConfig {
    /// Reads the inbound settings from `env`; the admin port is always among the ports.
    pub fn parse(env: &dyn Source) -> Result<Self, Error> {
        let mut ports = port_set(env, ENV_INBOUND_PORTS)?;
        ports.insert(well_known::PROXY_ADMIN_PORT);
        Ok(Self {
            listen_addr: socket_addr_or(env, ENV_INBOUND_LISTEN_ADDR, DEFAULT_INBOUND_LISTEN_ADDR)?,
            ips: list(env, ENV_INBOUND_IPS, |s| {
                s.parse::<IpAddr>()
                    .map_err(|_| format!("{s:?} is not an IP address"))
            })?,
            ports,
            opaque_ports: port_set(env, ENV_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION)?,
            detect_timeout: duration_or(env, ENV_INBOUND_DETECT_TIMEOUT, DEFAULT_DETECT_TIMEOUT)?,
            connect_timeout: duration_or(
                env,
                ENV_INBOUND_CONNECT_TIMEOUT,
                DEFAULT_INBOUND_CONNECT_TIMEOUT,
            )?,
            discovery_idle_timeout: duration_or(
                env,
                ENV_INBOUND_DISCOVERY_IDLE_TIMEOUT,
                DEFAULT_INBOUND_DISCOVERY_IDLE_TIMEOUT,
            )?,
            keepalive: opt_duration(env, ENV_INBOUND_ACCEPT_KEEPALIVE)?,
        })
    }
}

/// The default inbound policy and the cluster networks (which the `cluster-*` defaults need).
pub(super) fn default_policy(env: &dyn Source) -> Result<(DefaultPolicy, Vec<IpNet>), Error> {
    let default_policy = match get(env, ENV_INBOUND_DEFAULT_POLICY) {
        None => DEFAULT_INBOUND_POLICY,
        Some(v) => DefaultPolicy::parse(&v).ok_or_else(|| {
            let names: Vec<_> = DefaultPolicy::ALL.iter().map(|p| p.as_str()).collect();
            invalid(
                ENV_INBOUND_DEFAULT_POLICY,
                &v,
                format!("must be one of {}", names.join(", ")),
            )
        })?,
    };
    let cluster_networks = list(env, ENV_POLICY_CLUSTER_NETWORKS, parse_net)?;
    if matches!(
        default_policy,
        DefaultPolicy::ClusterAuthenticated | DefaultPolicy::ClusterUnauthenticated
    ) && cluster_networks.is_empty()
    {
        return Err(invalid(
            ENV_INBOUND_DEFAULT_POLICY,
            default_policy.as_str(),
            format!("needs {ENV_POLICY_CLUSTER_NETWORKS}"),
        ));
    }
    Ok((default_policy, cluster_networks))
}
