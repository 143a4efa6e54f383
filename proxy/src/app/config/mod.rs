//! Proxy configuration: every `TRELLIS_PROXY_*` variable, its default and its parser.
//!
//! [`Config::from_env`] reads the process environment; [`Config::parse`] takes any variable
//! source, so tests pass a map. Each invalid value is reported with the variable's name.
//!
//! Each stage's variables, defaults and parser sit in their own file: `inbound`, `outbound`,
//! `identity`, `discovery` (destination and policy controllers), `admin`, `tap` and
//! `runtime` (logs, cores); `parse` holds the shared value parsers. The inbound, outbound
//! and identity settings types live beside their stage (`inbound::config`, ...), which never
//! reads a variable itself. Every name is re-exported here, so `config::ENV_*` is the one
//! path to each variable.

mod admin;
mod discovery;
mod identity;
mod inbound;
mod outbound;
mod parse;
mod runtime;
mod tap;

#[cfg(test)]
mod tests;

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use ipnet::IpNet;

pub use self::admin::{
    ENV_ADMIN_LISTEN_ADDR, ENV_SHUTDOWN_ENDPOINT_ENABLED, ENV_SHUTDOWN_GRACE_PERIOD,
};
pub use self::discovery::{
    ENV_CONTROL_STREAM_IDLE_TIMEOUT, ENV_CONTROL_STREAM_INITIAL_TIMEOUT,
    ENV_CONTROL_STREAM_LIFETIME, ENV_DESTINATION_CONTEXT, ENV_DESTINATION_PROFILE_NETWORKS,
    ENV_DESTINATION_PROFILE_SUFFIXES, ENV_DESTINATION_SVC_ADDR, ENV_DESTINATION_SVC_NAME,
    ENV_POLICY_SVC_ADDR, ENV_POLICY_SVC_NAME, ENV_POLICY_WORKLOAD,
};
pub use self::identity::{
    ENV_IDENTITY_DIR, ENV_IDENTITY_LOCAL_NAME, ENV_IDENTITY_MAX_REFRESH, ENV_IDENTITY_MIN_REFRESH,
    ENV_IDENTITY_SERVER_ID, ENV_IDENTITY_SERVER_NAME, ENV_IDENTITY_SVC_ADDR, ENV_IDENTITY_SVC_NAME,
    ENV_IDENTITY_TOKEN_FILE, ENV_IDENTITY_TRUST_ANCHORS,
};
pub use self::inbound::{
    ENV_INBOUND_ACCEPT_KEEPALIVE, ENV_INBOUND_CONNECT_TIMEOUT, ENV_INBOUND_DEFAULT_POLICY,
    ENV_INBOUND_DETECT_TIMEOUT, ENV_INBOUND_DISCOVERY_IDLE_TIMEOUT, ENV_INBOUND_IPS,
    ENV_INBOUND_LISTEN_ADDR, ENV_INBOUND_PORTS, ENV_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION,
    ENV_POLICY_CLUSTER_NETWORKS,
};
pub use self::outbound::{
    ENV_INGRESS_MODE, ENV_OUTBOUND_CONNECT_KEEPALIVE, ENV_OUTBOUND_CONNECT_TIMEOUT,
    ENV_OUTBOUND_DETECT_TIMEOUT, ENV_OUTBOUND_DISCOVERY_IDLE_TIMEOUT, ENV_OUTBOUND_LISTEN_ADDR,
    ENV_OUTBOUND_LISTEN_ADDRS,
};
pub use self::runtime::{ENV_ACCESS_LOG, ENV_CORES, ENV_LOG, ENV_LOG_FORMAT};
pub use self::tap::{ENV_CONTROL_LISTEN_ADDR, ENV_TAP_SVC_NAME};
pub use self::{
    admin::{DEFAULT_ADMIN_LISTEN_ADDR, DEFAULT_SHUTDOWN_GRACE_PERIOD},
    discovery::{ControlAddr, ControlStreamConfig, DEFAULT_PROFILE_SUFFIXES},
    identity::{DEFAULT_IDENTITY_MAX_REFRESH, DEFAULT_IDENTITY_MIN_REFRESH},
    inbound::{
        DEFAULT_DETECT_TIMEOUT, DEFAULT_INBOUND_CONNECT_TIMEOUT,
        DEFAULT_INBOUND_DISCOVERY_IDLE_TIMEOUT, DEFAULT_INBOUND_LISTEN_ADDR,
        DEFAULT_INBOUND_POLICY,
    },
    outbound::{
        DEFAULT_OUTBOUND_CONNECT_TIMEOUT, DEFAULT_OUTBOUND_DISCOVERY_IDLE_TIMEOUT,
        DEFAULT_OUTBOUND_LISTEN_ADDR,
    },
    parse::parse_duration,
    runtime::{AccessLogFormat, DEFAULT_CORES, DEFAULT_LOG, LogConfig, LogFormat, MAX_CORES},
    tap::DEFAULT_CONTROL_LISTEN_ADDR,
};
/// The stages' settings, parsed here (convention: only this module reads the variables).
pub use crate::{
    identity::config::IdentityConfig, inbound::config::InboundConfig,
    outbound::config::OutboundConfig,
};

/// The inbound policy used where no Server applies, and until the controller answers.
pub use trellis_api::inbound::DefaultPolicy;

/// Every variable this module reads, for diagnostics and the prefix check.
pub const ALL_ENV: &[&str] = &[
    ENV_DESTINATION_SVC_ADDR,
    ENV_DESTINATION_SVC_NAME,
    ENV_DESTINATION_CONTEXT,
    ENV_DESTINATION_PROFILE_NETWORKS,
    ENV_DESTINATION_PROFILE_SUFFIXES,
    ENV_POLICY_SVC_ADDR,
    ENV_POLICY_SVC_NAME,
    ENV_POLICY_WORKLOAD,
    ENV_POLICY_CLUSTER_NETWORKS,
    ENV_INBOUND_DEFAULT_POLICY,
    ENV_IDENTITY_DIR,
    ENV_IDENTITY_TRUST_ANCHORS,
    ENV_IDENTITY_TOKEN_FILE,
    ENV_IDENTITY_SVC_ADDR,
    ENV_IDENTITY_SVC_NAME,
    ENV_IDENTITY_LOCAL_NAME,
    ENV_IDENTITY_SERVER_ID,
    ENV_IDENTITY_SERVER_NAME,
    ENV_IDENTITY_MIN_REFRESH,
    ENV_IDENTITY_MAX_REFRESH,
    ENV_CONTROL_STREAM_INITIAL_TIMEOUT,
    ENV_CONTROL_STREAM_IDLE_TIMEOUT,
    ENV_CONTROL_STREAM_LIFETIME,
    ENV_INBOUND_LISTEN_ADDR,
    ENV_OUTBOUND_LISTEN_ADDR,
    ENV_OUTBOUND_LISTEN_ADDRS,
    ENV_CONTROL_LISTEN_ADDR,
    ENV_ADMIN_LISTEN_ADDR,
    ENV_INBOUND_IPS,
    ENV_INBOUND_PORTS,
    ENV_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION,
    ENV_INBOUND_DETECT_TIMEOUT,
    ENV_OUTBOUND_DETECT_TIMEOUT,
    ENV_INBOUND_CONNECT_TIMEOUT,
    ENV_OUTBOUND_CONNECT_TIMEOUT,
    ENV_INBOUND_DISCOVERY_IDLE_TIMEOUT,
    ENV_OUTBOUND_DISCOVERY_IDLE_TIMEOUT,
    ENV_INBOUND_ACCEPT_KEEPALIVE,
    ENV_OUTBOUND_CONNECT_KEEPALIVE,
    ENV_TAP_SVC_NAME,
    ENV_LOG,
    ENV_LOG_FORMAT,
    ENV_ACCESS_LOG,
    ENV_INGRESS_MODE,
    ENV_SHUTDOWN_ENDPOINT_ENABLED,
    ENV_SHUTDOWN_GRACE_PERIOD,
    ENV_CORES,
];

/// An invalid or missing configuration value; the message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required variable is unset or empty.
    #[error("{name} is required but not set")]
    Missing {
        /// The variable.
        name: &'static str,
    },
    /// A variable is set to a value that does not parse.
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// The raw value.
        value: String,
        /// Why it does not parse, and what is expected.
        reason: String,
    },
}

/// A source of configuration variables (the process environment, or a map in tests).
pub trait Source {
    /// The value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
}

impl Source for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Source for HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).map(|v| (*v).to_string())
    }
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Env;

impl Source for Env {
    #[expect(
        clippy::disallowed_methods,
        reason = "this module is the one place that reads TRELLIS_PROXY_* variables"
    )]
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// The whole proxy configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Destination controller.
    pub destination: ControlAddr,
    /// Context token sent in destination lookups.
    pub destination_context: String,
    /// Networks whose IPs get profile lookups.
    pub profile_networks: Vec<IpNet>,
    /// Name suffixes that get profile lookups.
    pub profile_suffixes: Vec<String>,
    /// Policy controller.
    pub policy: ControlAddr,
    /// Workload sent in policy lookups.
    pub policy_workload: String,
    /// Cluster networks for the `cluster-*` default policies.
    pub cluster_networks: Vec<IpNet>,
    /// Default inbound policy.
    pub default_policy: DefaultPolicy,
    /// Identity settings.
    pub identity: IdentityConfig,
    /// Control-stream timing (unset means no limit).
    pub control_stream: ControlStreamConfig,
    /// Inbound side.
    pub inbound: InboundConfig,
    /// Outbound side.
    pub outbound: OutboundConfig,
    /// Admin listen address.
    pub admin_listen_addr: SocketAddr,
    /// Control (tap) listen address.
    pub control_listen_addr: SocketAddr,
    /// Tap controller's identity; `None` turns tap off.
    pub tap_svc_name: Option<String>,
    /// Log settings.
    pub log: LogConfig,
    /// Ingress mode.
    pub ingress_mode: bool,
    /// Whether the admin `/shutdown` endpoint is on.
    pub shutdown_endpoint_enabled: bool,
    /// How long in-flight work may drain on shutdown.
    pub shutdown_grace_period: Duration,
    /// Data-plane worker threads (1 runs a single-threaded runtime).
    pub cores: usize,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::parse(&Env)
    }

    /// Reads the configuration from `env`; each stage's settings parse in their own file.
    pub fn parse(env: &dyn Source) -> Result<Self, Error> {
        let destination = discovery::Destination::parse(env)?;
        let (policy, policy_workload) = discovery::policy(env)?;
        let identity = IdentityConfig::parse(env)?;
        let inbound = InboundConfig::parse(env)?;
        let outbound = OutboundConfig::parse(env)?;
        let (default_policy, cluster_networks) = inbound::default_policy(env)?;
        let log = LogConfig::parse(env)?;
        Ok(Self {
            destination: destination.addr,
            destination_context: destination.context,
            profile_networks: destination.profile_networks,
            profile_suffixes: destination.profile_suffixes,
            policy,
            policy_workload,
            cluster_networks,
            default_policy,
            identity,
            control_stream: ControlStreamConfig::parse(env)?,
            inbound,
            outbound,
            admin_listen_addr: parse::socket_addr_or(
                env,
                ENV_ADMIN_LISTEN_ADDR,
                DEFAULT_ADMIN_LISTEN_ADDR,
            )?,
            control_listen_addr: parse::socket_addr_or(
                env,
                ENV_CONTROL_LISTEN_ADDR,
                DEFAULT_CONTROL_LISTEN_ADDR,
            )?,
            tap_svc_name: parse::get(env, ENV_TAP_SVC_NAME),
            log,
            ingress_mode: parse::bool_or(env, ENV_INGRESS_MODE, false)?,
            shutdown_endpoint_enabled: parse::bool_or(env, ENV_SHUTDOWN_ENDPOINT_ENABLED, false)?,
            shutdown_grace_period: parse::duration_or(
                env,
                ENV_SHUTDOWN_GRACE_PERIOD,
                DEFAULT_SHUTDOWN_GRACE_PERIOD,
            )?,
            cores: runtime::cores(env)?,
        })
    }
}
