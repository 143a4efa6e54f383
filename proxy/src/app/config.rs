//! Proxy configuration: every `TRELLIS_PROXY_*` variable, its default and its parser.
//!
//! [`Config::from_env`] reads the process environment; [`Config::parse`] takes any variable
//! source, so tests pass a map. Each invalid value is reported with the variable's name.

use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use ipnet::IpNet;
use trellis_api::{ports, well_known};

/// Env var: destination service address (`host:port`).
pub const ENV_DESTINATION_SVC_ADDR: &str = "TRELLIS_PROXY_DESTINATION_SVC_ADDR";
/// Env var: destination service identity.
pub const ENV_DESTINATION_SVC_NAME: &str = "TRELLIS_PROXY_DESTINATION_SVC_NAME";
/// Env var: destination context token (JSON `{"ns":..,"nodeName":..,"pod":..}`).
pub const ENV_DESTINATION_CONTEXT: &str = "TRELLIS_PROXY_DESTINATION_CONTEXT";
/// Env var: IP networks whose profiles are looked up.
pub const ENV_DESTINATION_PROFILE_NETWORKS: &str = "TRELLIS_PROXY_DESTINATION_PROFILE_NETWORKS";
/// Env var: name suffixes whose profiles are looked up.
pub const ENV_DESTINATION_PROFILE_SUFFIXES: &str = "TRELLIS_PROXY_DESTINATION_PROFILE_SUFFIXES";
/// Env var: policy service address.
pub const ENV_POLICY_SVC_ADDR: &str = "TRELLIS_PROXY_POLICY_SVC_ADDR";
/// Env var: policy service identity.
pub const ENV_POLICY_SVC_NAME: &str = "TRELLIS_PROXY_POLICY_SVC_NAME";
/// Env var: the workload sent in policy lookups (JSON `{"ns":..,"pod":..}`).
pub const ENV_POLICY_WORKLOAD: &str = "TRELLIS_PROXY_POLICY_WORKLOAD";
/// Env var: cluster networks, used by the `cluster-*` default policies.
pub const ENV_POLICY_CLUSTER_NETWORKS: &str = "TRELLIS_PROXY_POLICY_CLUSTER_NETWORKS";
/// Env var: the default inbound policy.
pub const ENV_INBOUND_DEFAULT_POLICY: &str = "TRELLIS_PROXY_INBOUND_DEFAULT_POLICY";
/// Env var: directory holding `key.p8` and `csr.der`.
pub const ENV_IDENTITY_DIR: &str = "TRELLIS_PROXY_IDENTITY_DIR";
/// Env var: PEM bundle of trust anchors.
pub const ENV_IDENTITY_TRUST_ANCHORS: &str = "TRELLIS_PROXY_IDENTITY_TRUST_ANCHORS";
/// Env var: path of the ServiceAccount token presented to Certify.
pub const ENV_IDENTITY_TOKEN_FILE: &str = "TRELLIS_PROXY_IDENTITY_TOKEN_FILE";
/// Env var: identity service address.
pub const ENV_IDENTITY_SVC_ADDR: &str = "TRELLIS_PROXY_IDENTITY_SVC_ADDR";
/// Env var: identity service identity.
pub const ENV_IDENTITY_SVC_NAME: &str = "TRELLIS_PROXY_IDENTITY_SVC_NAME";
/// Env var: this proxy's identity name.
pub const ENV_IDENTITY_LOCAL_NAME: &str = "TRELLIS_PROXY_IDENTITY_LOCAL_NAME";
/// Env var: this proxy's identity (alternative to the local name).
pub const ENV_IDENTITY_SERVER_ID: &str = "TRELLIS_PROXY_IDENTITY_SERVER_ID";
/// Env var: this proxy's TLS server name (alternative to the local name).
pub const ENV_IDENTITY_SERVER_NAME: &str = "TRELLIS_PROXY_IDENTITY_SERVER_NAME";
/// Env var: minimum certificate refresh interval.
pub const ENV_IDENTITY_MIN_REFRESH: &str = "TRELLIS_PROXY_IDENTITY_MIN_REFRESH";
/// Env var: maximum certificate refresh interval.
pub const ENV_IDENTITY_MAX_REFRESH: &str = "TRELLIS_PROXY_IDENTITY_MAX_REFRESH";
/// Env var: deadline for the first message of a control stream.
pub const ENV_CONTROL_STREAM_INITIAL_TIMEOUT: &str = "TRELLIS_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT";
/// Env var: idle timeout of a control stream.
pub const ENV_CONTROL_STREAM_IDLE_TIMEOUT: &str = "TRELLIS_PROXY_CONTROL_STREAM_IDLE_TIMEOUT";
/// Env var: lifetime of a control stream.
pub const ENV_CONTROL_STREAM_LIFETIME: &str = "TRELLIS_PROXY_CONTROL_STREAM_LIFETIME";
/// Env var: inbound listen address.
pub const ENV_INBOUND_LISTEN_ADDR: &str = "TRELLIS_PROXY_INBOUND_LISTEN_ADDR";
/// Env var: outbound listen address (one).
pub const ENV_OUTBOUND_LISTEN_ADDR: &str = "TRELLIS_PROXY_OUTBOUND_LISTEN_ADDR";
/// Env var: outbound listen addresses (comma-separated); wins over the single form.
pub const ENV_OUTBOUND_LISTEN_ADDRS: &str = "TRELLIS_PROXY_OUTBOUND_LISTEN_ADDRS";
/// Env var: control (tap) listen address.
pub const ENV_CONTROL_LISTEN_ADDR: &str = "TRELLIS_PROXY_CONTROL_LISTEN_ADDR";
/// Env var: admin listen address.
pub const ENV_ADMIN_LISTEN_ADDR: &str = "TRELLIS_PROXY_ADMIN_LISTEN_ADDR";
/// Env var: the pod's IPs.
pub const ENV_INBOUND_IPS: &str = "TRELLIS_PROXY_INBOUND_IPS";
/// Env var: the pod's container ports.
pub const ENV_INBOUND_PORTS: &str = "TRELLIS_PROXY_INBOUND_PORTS";
/// Env var: inbound ports that skip protocol detection (opaque).
pub const ENV_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION: &str =
    "TRELLIS_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION";
/// Env var: inbound protocol detection timeout.
pub const ENV_INBOUND_DETECT_TIMEOUT: &str = "TRELLIS_PROXY_INBOUND_DETECT_TIMEOUT";
/// Env var: outbound protocol detection timeout.
pub const ENV_OUTBOUND_DETECT_TIMEOUT: &str = "TRELLIS_PROXY_OUTBOUND_DETECT_TIMEOUT";
/// Env var: inbound connect timeout.
pub const ENV_INBOUND_CONNECT_TIMEOUT: &str = "TRELLIS_PROXY_INBOUND_CONNECT_TIMEOUT";
/// Env var: outbound connect timeout.
pub const ENV_OUTBOUND_CONNECT_TIMEOUT: &str = "TRELLIS_PROXY_OUTBOUND_CONNECT_TIMEOUT";
/// Env var: how long unused inbound discovery watches are kept.
pub const ENV_INBOUND_DISCOVERY_IDLE_TIMEOUT: &str = "TRELLIS_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT";
/// Env var: how long unused outbound discovery watches are kept.
pub const ENV_OUTBOUND_DISCOVERY_IDLE_TIMEOUT: &str =
    "TRELLIS_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT";
/// Env var: TCP keepalive on accepted inbound connections.
pub const ENV_INBOUND_ACCEPT_KEEPALIVE: &str = "TRELLIS_PROXY_INBOUND_ACCEPT_KEEPALIVE";
/// Env var: TCP keepalive on outbound connections.
pub const ENV_OUTBOUND_CONNECT_KEEPALIVE: &str = "TRELLIS_PROXY_OUTBOUND_CONNECT_KEEPALIVE";
/// Env var: the tap controller's identity; unset turns tap off.
pub const ENV_TAP_SVC_NAME: &str = "TRELLIS_PROXY_TAP_SVC_NAME";
/// Env var: log filter.
pub const ENV_LOG: &str = "TRELLIS_PROXY_LOG";
/// Env var: log format (`plain` or `json`).
pub const ENV_LOG_FORMAT: &str = "TRELLIS_PROXY_LOG_FORMAT";
/// Env var: access log format (`apache` or `json`).
pub const ENV_ACCESS_LOG: &str = "TRELLIS_PROXY_ACCESS_LOG";
/// Env var: ingress mode.
pub const ENV_INGRESS_MODE: &str = "TRELLIS_PROXY_INGRESS_MODE";
/// Env var: whether the admin `/shutdown` endpoint is on.
pub const ENV_SHUTDOWN_ENDPOINT_ENABLED: &str = "TRELLIS_PROXY_SHUTDOWN_ENDPOINT_ENABLED";
/// Env var: how long in-flight work may drain on shutdown.
pub const ENV_SHUTDOWN_GRACE_PERIOD: &str = "TRELLIS_PROXY_SHUTDOWN_GRACE_PERIOD";
/// Env var: data-plane worker threads (the injector sets it from the pod's CPU limit).
pub const ENV_CORES: &str = "TRELLIS_PROXY_CORES";

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

/// Default inbound listen address (all addresses).
pub const DEFAULT_INBOUND_LISTEN_ADDR: SocketAddr = SocketAddr::new(
    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    well_known::PROXY_INBOUND_PORT,
);
/// Default outbound listen address (loopback only).
pub const DEFAULT_OUTBOUND_LISTEN_ADDR: SocketAddr = SocketAddr::new(
    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    well_known::PROXY_OUTBOUND_PORT,
);
/// Default control (tap) listen address.
pub const DEFAULT_CONTROL_LISTEN_ADDR: SocketAddr = SocketAddr::new(
    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    well_known::PROXY_CONTROL_PORT,
);
/// Default admin listen address (loopback, as in the contract).
pub const DEFAULT_ADMIN_LISTEN_ADDR: SocketAddr = SocketAddr::new(
    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    well_known::PROXY_ADMIN_PORT,
);
/// Default protocol detection timeout, both directions.
pub const DEFAULT_DETECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default inbound connect timeout.
pub const DEFAULT_INBOUND_CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// Default outbound connect timeout.
pub const DEFAULT_OUTBOUND_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default lifetime of unused inbound discovery watches.
pub const DEFAULT_INBOUND_DISCOVERY_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default lifetime of unused outbound discovery watches.
pub const DEFAULT_OUTBOUND_DISCOVERY_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default minimum certificate refresh interval.
pub const DEFAULT_IDENTITY_MIN_REFRESH: Duration = Duration::from_secs(10);
/// Default maximum certificate refresh interval.
pub const DEFAULT_IDENTITY_MAX_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);
/// Default shutdown grace period.
pub const DEFAULT_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(120);
/// Default profile lookup suffixes.
pub const DEFAULT_PROFILE_SUFFIXES: &str = "svc.cluster.local.";
/// Default log filter.
pub const DEFAULT_LOG: &str = "warn,trellis_proxy=info";
/// Default data-plane worker threads: one, on a single-threaded runtime.
pub const DEFAULT_CORES: usize = 1;
/// Most data-plane worker threads accepted (the Mesh's `proxy.cores` allows 1–64).
pub const MAX_CORES: usize = 64;
/// Default inbound policy.
pub const DEFAULT_INBOUND_POLICY: DefaultPolicy = DefaultPolicy::AllUnauthenticated;

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

/// Identity settings.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityConfig {
    /// Directory for `key.p8` and `csr.der`.
    pub dir: PathBuf,
    /// PEM bundle of trust anchors (non-empty).
    pub trust_anchors_pem: String,
    /// ServiceAccount token file.
    pub token_file: PathBuf,
    /// Identity controller.
    pub svc: ControlAddr,
    /// This proxy's identity name.
    pub local_name: String,
    /// Minimum refresh interval.
    pub min_refresh: Duration,
    /// Maximum refresh interval.
    pub max_refresh: Duration,
}

/// Control-stream timing; `None` means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlStreamConfig {
    /// Deadline for a stream's first message.
    pub initial_timeout: Option<Duration>,
    /// Restart a stream after this long without a message.
    pub idle_timeout: Option<Duration>,
    /// Restart a stream after this long.
    pub lifetime: Option<Duration>,
}

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

/// Log settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `tracing_subscriber::EnvFilter` directives.
    pub filter: String,
    /// Output format.
    pub format: LogFormat,
    /// Access log, if on.
    pub access_log: Option<AccessLogFormat>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Access log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// Apache common log format.
    Apache,
    /// JSON.
    Json,
}

/// The inbound policy used where no Server applies, and until the controller answers.
pub use trellis_api::inbound::DefaultPolicy;

/// A control-plane address and the identity its server must prove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlAddr {
    /// Host (DNS name or IP, without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// The server's identity; `None` only for loopback (plaintext) addresses.
    pub identity: Option<String>,
}

impl ControlAddr {
    /// True when the address is loopback and so plaintext: `127.0.0.0/8`, `::1`, or
    /// `localhost.` with the trailing dot.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    /// `host:port`, with brackets around an IPv6 host.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn is_loopback_host(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost.",
    }
}

/// Parses an IP network in CIDR form; a bare address is a network of one address.
fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    match s.split_once('/') {
        None => s
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("{s:?} is not an IP address")),
        Some((addr, prefix)) => {
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{addr:?} is not an IP address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            Err(format!(
                "prefix {prefix:?} must be a number from 0 to {max}"
            ))
        }
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::parse(&Env)
    }

    /// Reads the configuration from `env`.
    pub fn parse(env: &dyn Source) -> Result<Self, Error> {
        let destination = control_addr(env, ENV_DESTINATION_SVC_ADDR, ENV_DESTINATION_SVC_NAME)?;
        let policy = control_addr(env, ENV_POLICY_SVC_ADDR, ENV_POLICY_SVC_NAME)?;
        let identity_svc = control_addr(env, ENV_IDENTITY_SVC_ADDR, ENV_IDENTITY_SVC_NAME)?;

        let local_name = match get(env, ENV_IDENTITY_LOCAL_NAME) {
            Some(name) => name,
            None => {
                let id = get(env, ENV_IDENTITY_SERVER_ID).ok_or(Error::Missing {
                    name: ENV_IDENTITY_LOCAL_NAME,
                })?;
                if let Some(server_name) = get(env, ENV_IDENTITY_SERVER_NAME)
                    && server_name != id
                {
                    return Err(invalid(
                        ENV_IDENTITY_SERVER_NAME,
                        &server_name,
                        format!("must equal {ENV_IDENTITY_SERVER_ID} ({id:?})"),
                    ));
                }
                id
            }
        };
        check_dns_name(ENV_IDENTITY_LOCAL_NAME, &local_name)?;

        let trust_anchors_pem = required(env, ENV_IDENTITY_TRUST_ANCHORS)?;
        if !trust_anchors_pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(invalid(
                ENV_IDENTITY_TRUST_ANCHORS,
                "<pem>",
                "must be a PEM bundle with at least one CERTIFICATE".to_string(),
            ));
        }
        let min_refresh = duration_or(env, ENV_IDENTITY_MIN_REFRESH, DEFAULT_IDENTITY_MIN_REFRESH)?;
        let max_refresh = duration_or(env, ENV_IDENTITY_MAX_REFRESH, DEFAULT_IDENTITY_MAX_REFRESH)?;
        if max_refresh < min_refresh {
            return Err(invalid(
                ENV_IDENTITY_MAX_REFRESH,
                &format!("{max_refresh:?}"),
                format!("must not be shorter than {ENV_IDENTITY_MIN_REFRESH}"),
            ));
        }
        let identity = IdentityConfig {
            dir: PathBuf::from(required(env, ENV_IDENTITY_DIR)?),
            trust_anchors_pem,
            token_file: PathBuf::from(required(env, ENV_IDENTITY_TOKEN_FILE)?),
            svc: identity_svc,
            local_name,
            min_refresh,
            max_refresh,
        };

        let mut ports = port_set(env, ENV_INBOUND_PORTS)?;
        ports.insert(well_known::PROXY_ADMIN_PORT);
        let inbound = InboundConfig {
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
        };

        let listen_addrs = match get(env, ENV_OUTBOUND_LISTEN_ADDRS) {
            Some(_) => list(env, ENV_OUTBOUND_LISTEN_ADDRS, parse_socket_addr)?,
            None => vec![socket_addr_or(
                env,
                ENV_OUTBOUND_LISTEN_ADDR,
                DEFAULT_OUTBOUND_LISTEN_ADDR,
            )?],
        };
        let outbound = OutboundConfig {
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
        };

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

        let log = LogConfig {
            filter: get(env, ENV_LOG).unwrap_or_else(|| DEFAULT_LOG.to_string()),
            format: match get(env, ENV_LOG_FORMAT).as_deref() {
                None | Some("plain") => LogFormat::Plain,
                Some("json") => LogFormat::Json,
                Some(v) => {
                    return Err(invalid(ENV_LOG_FORMAT, v, "must be plain or json".into()));
                }
            },
            access_log: match get(env, ENV_ACCESS_LOG).as_deref() {
                None => None,
                Some("apache") => Some(AccessLogFormat::Apache),
                Some("json") => Some(AccessLogFormat::Json),
                Some(v) => {
                    return Err(invalid(ENV_ACCESS_LOG, v, "must be apache or json".into()));
                }
            },
        };

        Ok(Self {
            destination,
            destination_context: get(env, ENV_DESTINATION_CONTEXT).unwrap_or_default(),
            profile_networks: list(env, ENV_DESTINATION_PROFILE_NETWORKS, parse_net)?,
            profile_suffixes: match get(env, ENV_DESTINATION_PROFILE_SUFFIXES) {
                Some(_) => list(env, ENV_DESTINATION_PROFILE_SUFFIXES, |s| {
                    Ok::<_, String>(s.to_string())
                })?,
                None => vec![DEFAULT_PROFILE_SUFFIXES.to_string()],
            },
            policy,
            policy_workload: required(env, ENV_POLICY_WORKLOAD)?,
            cluster_networks,
            default_policy,
            identity,
            control_stream: ControlStreamConfig {
                initial_timeout: opt_duration(env, ENV_CONTROL_STREAM_INITIAL_TIMEOUT)?,
                idle_timeout: opt_duration(env, ENV_CONTROL_STREAM_IDLE_TIMEOUT)?,
                lifetime: opt_duration(env, ENV_CONTROL_STREAM_LIFETIME)?,
            },
            inbound,
            outbound,
            admin_listen_addr: socket_addr_or(
                env,
                ENV_ADMIN_LISTEN_ADDR,
                DEFAULT_ADMIN_LISTEN_ADDR,
            )?,
            control_listen_addr: socket_addr_or(
                env,
                ENV_CONTROL_LISTEN_ADDR,
                DEFAULT_CONTROL_LISTEN_ADDR,
            )?,
            tap_svc_name: get(env, ENV_TAP_SVC_NAME),
            log,
            ingress_mode: bool_or(env, ENV_INGRESS_MODE, false)?,
            shutdown_endpoint_enabled: bool_or(env, ENV_SHUTDOWN_ENDPOINT_ENABLED, false)?,
            shutdown_grace_period: duration_or(
                env,
                ENV_SHUTDOWN_GRACE_PERIOD,
                DEFAULT_SHUTDOWN_GRACE_PERIOD,
            )?,
            cores: cores(env)?,
        })
    }
}

fn cores(env: &dyn Source) -> Result<usize, Error> {
    let Some(raw) = get(env, ENV_CORES) else {
        return Ok(DEFAULT_CORES);
    };
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_CORES).contains(n))
        .ok_or_else(|| {
            invalid(
                ENV_CORES,
                &raw,
                format!("must be a whole number of worker threads from 1 to {MAX_CORES}"),
            )
        })
}

fn invalid(name: &'static str, value: &str, reason: String) -> Error {
    Error::Invalid {
        name,
        value: value.to_string(),
        reason,
    }
}

/// A set, non-blank value (trimmed).
fn get(env: &dyn Source, name: &'static str) -> Option<String> {
    env.get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn required(env: &dyn Source, name: &'static str) -> Result<String, Error> {
    get(env, name).ok_or(Error::Missing { name })
}

fn check_dns_name(name: &'static str, value: &str) -> Result<(), Error> {
    let ok = value.len() <= 253
        && value.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(name, value, "must be a DNS name".into()))
    }
}

fn control_addr(
    env: &dyn Source,
    addr_var: &'static str,
    name_var: &'static str,
) -> Result<ControlAddr, Error> {
    let raw = required(env, addr_var)?;
    let (host, port) = split_host_port(&raw).map_err(|reason| invalid(addr_var, &raw, reason))?;
    let identity = get(env, name_var);
    if identity.is_none() && !is_loopback_host(&host) {
        return Err(Error::Missing { name: name_var });
    }
    if let Some(id) = &identity {
        check_dns_name(name_var, id)?;
    }
    Ok(ControlAddr {
        host,
        port,
        identity,
    })
}

fn split_host_port(raw: &str) -> Result<(String, u16), String> {
    const EXPECTED: &str = "expected host:port, e.g. dst.trellis-system.svc.cluster.local.:8086";
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or(EXPECTED)?;
        (h, p)
    } else {
        raw.rsplit_once(':').ok_or(EXPECTED)?
    };
    if host.is_empty() || (host.contains(':') && !raw.starts_with('[')) {
        return Err(EXPECTED.into());
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {port:?} must be a number from 1 to 65535"))?;
    Ok((host.to_string(), port))
}

fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .map_err(|_| format!("{s:?} is not an ip:port socket address"))
}

fn socket_addr_or(
    env: &dyn Source,
    name: &'static str,
    default: SocketAddr,
) -> Result<SocketAddr, Error> {
    match get(env, name) {
        None => Ok(default),
        Some(v) => parse_socket_addr(&v).map_err(|reason| invalid(name, &v, reason)),
    }
}

fn list<T, E: std::fmt::Display>(
    env: &dyn Source,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, Error> {
    let Some(raw) = get(env, name) else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse(s).map_err(|e| invalid(name, &raw, e.to_string())))
        .collect()
}

fn port_set(env: &dyn Source, name: &'static str) -> Result<BTreeSet<u16>, Error> {
    match get(env, name) {
        None => Ok(BTreeSet::new()),
        Some(v) => ports::parse_set(&v).map_err(|e| invalid(name, &v, e.to_string())),
    }
}

/// Parses a duration in Go's `time.ParseDuration` grammar (`250ms`, `1.5s`, `1h30m`), as
/// Kubernetes writes them, or as whole days `<n>d` (the injector's `365d`, as in Linkerd's
/// proxy). Negative durations are rejected.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    if let Some(days) = raw.strip_suffix('d')
        && !days.is_empty()
        && days.bytes().all(|b| b.is_ascii_digit())
    {
        return days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(24 * 60 * 60))
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{raw:?} is too large"));
    }
    // The parser indexes bytes as characters and panics on non-ASCII input ("1µs").
    if !raw.is_ascii() {
        return Err(format!("{raw:?} is not ASCII; write us for microseconds"));
    }
    let nanos = go_parse_duration::parse_duration(raw).map_err(
        |go_parse_duration::Error::ParseError(reason)| {
            format!("{reason}; write a number with a unit (ns, us, ms, s, m, h; or d), e.g. 10s or 1m30s")
        },
    )?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| format!("{raw:?} is negative; durations must be zero or more"))
}

fn opt_duration(env: &dyn Source, name: &'static str) -> Result<Option<Duration>, Error> {
    get(env, name)
        .map(|v| parse_duration(&v).map_err(|reason| invalid(name, &v, reason)))
        .transpose()
}

fn duration_or(env: &dyn Source, name: &'static str, default: Duration) -> Result<Duration, Error> {
    Ok(opt_duration(env, name)?.unwrap_or(default))
}

fn bool_or(env: &dyn Source, name: &'static str, default: bool) -> Result<bool, Error> {
    match get(env, name).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(invalid(name, v, "must be true or false".into())),
    }
}

#[cfg(test)]
mod tests;
