//! Proxy configuration: every `TRELLIS_PROXY_*` variable, its default and its parser.
//!
//! [`Config::from_env`] reads the process environment; [`Config::parse`] takes any variable
//! source, so tests pass a map. Each invalid value is reported with the variable's name.
//!
//! Every variable name is declared here, in one list that also makes [`ALL_ENV`], so
//! `config::ENV_*` is the one path to each variable. Each stage's defaults and parser sit in
//! their own file: `inbound`, `outbound`, `identity`, `discovery` (destination and policy
//! controllers), `admin`, `tap` and `runtime` (logs, cores); `parse` holds the shared value
//! parsers. The inbound, outbound and identity settings types live beside their stage
//! (`inbound::config`, ...), which never reads a variable itself.

/// Declares every variable name, each a documented `pub const ENV_*: &str`, and
/// [`ALL_ENV`], the list of them.
macro_rules! env_vars {
    ($($(#[$doc:meta])* $name:ident = $value:literal;)+) => {
        $($(#[$doc])* pub const $name: &str = $value;)+

        /// Every variable this module reads, for diagnostics and the prefix check.
        pub const ALL_ENV: &[&str] = &[$($name),+];
    };
}

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

env_vars! {
    // Destination and policy controllers, and control streams (`discovery`).
    /// Env var: destination service address (`host:port`).
    ENV_DESTINATION_SVC_ADDR = "TRELLIS_PROXY_DESTINATION_SVC_ADDR";
    /// Env var: destination service identity.
    ENV_DESTINATION_SVC_NAME = "TRELLIS_PROXY_DESTINATION_SVC_NAME";
    /// Env var: destination context token (JSON `{"ns":..,"nodeName":..,"pod":..}`).
    ENV_DESTINATION_CONTEXT = "TRELLIS_PROXY_DESTINATION_CONTEXT";
    /// Env var: IP networks whose profiles are looked up.
    ENV_DESTINATION_PROFILE_NETWORKS = "TRELLIS_PROXY_DESTINATION_PROFILE_NETWORKS";
    /// Env var: name suffixes whose profiles are looked up.
    ENV_DESTINATION_PROFILE_SUFFIXES = "TRELLIS_PROXY_DESTINATION_PROFILE_SUFFIXES";
    /// Env var: policy service address.
    ENV_POLICY_SVC_ADDR = "TRELLIS_PROXY_POLICY_SVC_ADDR";
    /// Env var: policy service identity.
    ENV_POLICY_SVC_NAME = "TRELLIS_PROXY_POLICY_SVC_NAME";
    /// Env var: the workload sent in policy lookups (JSON `{"ns":..,"pod":..}`).
    ENV_POLICY_WORKLOAD = "TRELLIS_PROXY_POLICY_WORKLOAD";
    /// Env var: deadline for the first message of a control stream.
    ENV_CONTROL_STREAM_INITIAL_TIMEOUT = "TRELLIS_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT";
    /// Env var: idle timeout of a control stream.
    ENV_CONTROL_STREAM_IDLE_TIMEOUT = "TRELLIS_PROXY_CONTROL_STREAM_IDLE_TIMEOUT";
    /// Env var: lifetime of a control stream.
    ENV_CONTROL_STREAM_LIFETIME = "TRELLIS_PROXY_CONTROL_STREAM_LIFETIME";

    // Identity (`identity`).
    /// Env var: directory holding `key.p8` and `csr.der`.
    ENV_IDENTITY_DIR = "TRELLIS_PROXY_IDENTITY_DIR";
    /// Env var: PEM bundle of trust anchors.
    ENV_IDENTITY_TRUST_ANCHORS = "TRELLIS_PROXY_IDENTITY_TRUST_ANCHORS";
    /// Env var: path of the ServiceAccount token presented to Certify.
    ENV_IDENTITY_TOKEN_FILE = "TRELLIS_PROXY_IDENTITY_TOKEN_FILE";
    /// Env var: identity service address.
    ENV_IDENTITY_SVC_ADDR = "TRELLIS_PROXY_IDENTITY_SVC_ADDR";
    /// Env var: identity service identity.
    ENV_IDENTITY_SVC_NAME = "TRELLIS_PROXY_IDENTITY_SVC_NAME";
    /// Env var: this proxy's identity name.
    ENV_IDENTITY_LOCAL_NAME = "TRELLIS_PROXY_IDENTITY_LOCAL_NAME";
    /// Env var: this proxy's identity (alternative to the local name).
    ENV_IDENTITY_SERVER_ID = "TRELLIS_PROXY_IDENTITY_SERVER_ID";
    /// Env var: this proxy's TLS server name (alternative to the local name).
    ENV_IDENTITY_SERVER_NAME = "TRELLIS_PROXY_IDENTITY_SERVER_NAME";
    /// Env var: minimum certificate refresh interval.
    ENV_IDENTITY_MIN_REFRESH = "TRELLIS_PROXY_IDENTITY_MIN_REFRESH";
    /// Env var: maximum certificate refresh interval.
    ENV_IDENTITY_MAX_REFRESH = "TRELLIS_PROXY_IDENTITY_MAX_REFRESH";

    // Inbound (`inbound`).
    /// Env var: the default inbound policy.
    ENV_INBOUND_DEFAULT_POLICY = "TRELLIS_PROXY_INBOUND_DEFAULT_POLICY";
    /// Env var: cluster networks, used by the `cluster-*` default policies.
    ENV_POLICY_CLUSTER_NETWORKS = "TRELLIS_PROXY_POLICY_CLUSTER_NETWORKS";
    /// Env var: inbound listen address.
    ENV_INBOUND_LISTEN_ADDR = "TRELLIS_PROXY_INBOUND_LISTEN_ADDR";
    /// Env var: the pod's IPs.
    ENV_INBOUND_IPS = "TRELLIS_PROXY_INBOUND_IPS";
    /// Env var: the pod's container ports.
    ENV_INBOUND_PORTS = "TRELLIS_PROXY_INBOUND_PORTS";
    /// Env var: inbound ports that skip protocol detection (opaque).
    ENV_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION = "TRELLIS_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION";
    /// Env var: inbound protocol detection timeout.
    ENV_INBOUND_DETECT_TIMEOUT = "TRELLIS_PROXY_INBOUND_DETECT_TIMEOUT";
    /// Env var: inbound connect timeout.
    ENV_INBOUND_CONNECT_TIMEOUT = "TRELLIS_PROXY_INBOUND_CONNECT_TIMEOUT";
    /// Env var: how long unused inbound discovery watches are kept.
    ENV_INBOUND_DISCOVERY_IDLE_TIMEOUT = "TRELLIS_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT";
    /// Env var: TCP keepalive on accepted inbound connections.
    ENV_INBOUND_ACCEPT_KEEPALIVE = "TRELLIS_PROXY_INBOUND_ACCEPT_KEEPALIVE";

    // Outbound (`outbound`).
    /// Env var: outbound listen address (one).
    ENV_OUTBOUND_LISTEN_ADDR = "TRELLIS_PROXY_OUTBOUND_LISTEN_ADDR";
    /// Env var: outbound listen addresses (comma-separated); wins over the single form.
    ENV_OUTBOUND_LISTEN_ADDRS = "TRELLIS_PROXY_OUTBOUND_LISTEN_ADDRS";
    /// Env var: outbound protocol detection timeout.
    ENV_OUTBOUND_DETECT_TIMEOUT = "TRELLIS_PROXY_OUTBOUND_DETECT_TIMEOUT";
    /// Env var: outbound connect timeout.
    ENV_OUTBOUND_CONNECT_TIMEOUT = "TRELLIS_PROXY_OUTBOUND_CONNECT_TIMEOUT";
    /// Env var: how long unused outbound discovery watches are kept.
    ENV_OUTBOUND_DISCOVERY_IDLE_TIMEOUT = "TRELLIS_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT";
    /// Env var: TCP keepalive on outbound connections.
    ENV_OUTBOUND_CONNECT_KEEPALIVE = "TRELLIS_PROXY_OUTBOUND_CONNECT_KEEPALIVE";
    /// Env var: ingress mode.
    ENV_INGRESS_MODE = "TRELLIS_PROXY_INGRESS_MODE";

    // Admin and shutdown (`admin`).
    /// Env var: admin listen address.
    ENV_ADMIN_LISTEN_ADDR = "TRELLIS_PROXY_ADMIN_LISTEN_ADDR";
    /// Env var: whether the admin `/shutdown` endpoint is on.
    ENV_SHUTDOWN_ENDPOINT_ENABLED = "TRELLIS_PROXY_SHUTDOWN_ENDPOINT_ENABLED";
    /// Env var: how long in-flight work may drain on shutdown.
    ENV_SHUTDOWN_GRACE_PERIOD = "TRELLIS_PROXY_SHUTDOWN_GRACE_PERIOD";

    // Tap (`tap`).
    /// Env var: control (tap) listen address.
    ENV_CONTROL_LISTEN_ADDR = "TRELLIS_PROXY_CONTROL_LISTEN_ADDR";
    /// Env var: the tap controller's identity; unset turns tap off.
    ENV_TAP_SVC_NAME = "TRELLIS_PROXY_TAP_SVC_NAME";

    // Logs and worker threads (`runtime`).
    /// Env var: log filter.
    ENV_LOG = "TRELLIS_PROXY_LOG";
    /// Env var: log format (`plain` or `json`).
    ENV_LOG_FORMAT = "TRELLIS_PROXY_LOG_FORMAT";
    /// Env var: access log format (`apache` or `json`).
    ENV_ACCESS_LOG = "TRELLIS_PROXY_ACCESS_LOG";
    /// Env var: data-plane worker threads (the injector sets it from the pod's CPU limit).
    ENV_CORES = "TRELLIS_PROXY_CORES";
}

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
