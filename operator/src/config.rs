//! Command-line and environment configuration of `trellis-operator`.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, ValueEnum};
use trellis_api::well_known;

/// Default address of the admin server (`/live`, `/ready`, `/metrics`).
pub const DEFAULT_ADMIN_ADDR: &str = "0.0.0.0:9990";
/// Default tracing filter.
pub const DEFAULT_LOG: &str = "info";
/// Default name of the Lease that elects the one operator replica that writes.
pub const DEFAULT_LEASE_NAME: &str = "trellis-operator";
/// Default namespace of the Lease (where the operator itself runs).
pub const DEFAULT_LEASE_NAMESPACE: &str = "trellis-system";
/// Default time a Lease holder may go without renewing before others take over.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(30);
/// Default interval between Lease renewals.
pub const DEFAULT_LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// Default time a holder keeps trying to renew before it stops writing.
pub const DEFAULT_LEASE_RENEW_DEADLINE: Duration = Duration::from_secs(20);
/// Default image repository of the Trellis images; the control plane runs
/// `<repository>/controller:<spec.version>` and proxies `<repository>/proxy:<spec.version>`.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "ghcr.io/trellis-mesh";
/// Default Prometheus image the viz extension's bundled Prometheus runs.
pub const DEFAULT_PROMETHEUS_IMAGE: &str = "prom/prometheus:v3.5.0";
/// Default OpenTelemetry collector image of the tracing extension.
pub const DEFAULT_OTEL_COLLECTOR_IMAGE: &str = "otel/opentelemetry-collector:0.131.0";
/// Default number of Mesh objects reconciled at the same time.
pub const DEFAULT_CONCURRENCY: u16 = 4;

/// Settings of `trellis-operator`, from flags or `TRELLIS_OPERATOR_*` variables.
#[derive(Debug, Clone, Parser)]
#[command(name = "trellis-operator", version, about)]
pub struct Config {
    /// Logging settings.
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    /// Admin server settings.
    #[command(flatten)]
    pub admin: AdminConfig,
    /// Shutdown settings.
    #[command(flatten)]
    pub shutdown: ShutdownConfig,
    /// The role to run.
    #[command(subcommand)]
    pub role: Option<Role>,
}

/// What a `trellis-operator` process does.
#[derive(Debug, Clone, clap::Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once at startup; boxing would only complicate the clap derive"
)]
pub enum Role {
    /// Print the version and the crates this binary was built from.
    Version,
    /// Reconcile Mesh objects into the control plane (kube-runtime controllers).
    Operator(OperatorConfig),
    /// Serve identity, destination, policy and webhooks (the rendered control plane).
    Controller(ControllerConfig),
    /// Both roles in one process (local runs and tests).
    AllInOne(AllInOneConfig),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Args)]
pub struct TelemetryConfig {
    /// Tracing filter, like `info` or `trellis_operator=debug,kube=warn`.
    #[arg(long, env = "TRELLIS_OPERATOR_LOG", default_value = DEFAULT_LOG, global = true)]
    pub log: String,
    /// Log format: plain or json.
    #[arg(
        long,
        env = "TRELLIS_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Plain,
        global = true
    )]
    pub log_format: LogFormat,
}

/// Admin server settings.
#[derive(Debug, Clone, Args)]
pub struct AdminConfig {
    /// Address of the admin server (`/live`, `/ready`, `/metrics`); port 0 picks a free port.
    #[arg(
        long = "admin-addr",
        env = "TRELLIS_OPERATOR_ADMIN_ADDR",
        default_value = DEFAULT_ADMIN_ADDR,
        global = true
    )]
    pub addr: SocketAddr,
}

/// Shutdown settings.
#[derive(Debug, Clone, Args)]
pub struct ShutdownConfig {
    /// Time from the first SIGTERM to the start of draining, during which `/ready` fails
    /// and every server still answers, so that kube-proxy and the apiserver's webhook calls
    /// stop choosing this replica before it stops listening. The rendered controller sets
    /// it; `0s` (the default) drains at once.
    #[arg(
        long = "shutdown-delay",
        env = "TRELLIS_OPERATOR_SHUTDOWN_DELAY",
        default_value = "0s",
        value_parser = parse_duration,
        global = true
    )]
    pub delay: Duration,
}

/// Settings of the `operator` role.
#[derive(Debug, Clone, Args)]
pub struct OperatorConfig {
    /// Name of this replica in the Lease (`holderIdentity`); the pod name in a cluster.
    /// Defaults to the host name.
    #[arg(long, env = "TRELLIS_OPERATOR_REPLICA_NAME")]
    pub replica_name: Option<String>,
    /// Name of the coordination.k8s.io Lease that elects the writing replica.
    #[arg(long, env = "TRELLIS_OPERATOR_LEASE_NAME", default_value = DEFAULT_LEASE_NAME)]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "TRELLIS_OPERATOR_LEASE_NAMESPACE", default_value = DEFAULT_LEASE_NAMESPACE)]
    pub lease_namespace: String,
    /// How long a holder may go without renewing before another replica takes over, like `30s`.
    #[arg(
        long,
        env = "TRELLIS_OPERATOR_LEASE_DURATION",
        value_parser = parse_duration,
        default_value = "30s"
    )]
    pub lease_duration: Duration,
    /// How often the holder renews the Lease, like `10s`; well below the lease duration.
    #[arg(
        long,
        env = "TRELLIS_OPERATOR_LEASE_RENEW_INTERVAL",
        value_parser = parse_duration,
        default_value = "10s"
    )]
    pub lease_renew_interval: Duration,
    /// How long the holder may fail to renew before it stops writing, like `20s`; between the
    /// renew interval and the lease duration, so it stops before another replica may take over.
    #[arg(
        long,
        env = "TRELLIS_OPERATOR_LEASE_RENEW_DEADLINE",
        value_parser = parse_duration,
        default_value = "20s"
    )]
    pub lease_renew_deadline: Duration,
    /// Image repository of the Trellis images: the control plane runs
    /// `<repository>/controller:<version>`.
    #[arg(
        long,
        env = "TRELLIS_OPERATOR_IMAGE_REPOSITORY",
        default_value = DEFAULT_IMAGE_REPOSITORY
    )]
    pub image_repository: String,
    /// Image of the Prometheus that the viz extension bundles.
    #[arg(
        long,
        env = "TRELLIS_OPERATOR_PROMETHEUS_IMAGE",
        default_value = DEFAULT_PROMETHEUS_IMAGE
    )]
    pub prometheus_image: String,
    /// Image of the OpenTelemetry collector that the tracing extension runs.
    #[arg(
        long,
        env = "TRELLIS_OPERATOR_OTEL_COLLECTOR_IMAGE",
        default_value = DEFAULT_OTEL_COLLECTOR_IMAGE
    )]
    pub otel_collector_image: String,
    /// Mesh objects reconciled at the same time.
    #[arg(long, env = "TRELLIS_OPERATOR_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: u16,
    /// Reconcile only Meshes whose labels match this selector, like `shard=a`; all when unset.
    #[arg(long, env = "TRELLIS_OPERATOR_MESH_SELECTOR")]
    pub mesh_selector: Option<String>,
}

impl OperatorConfig {
    /// Settings with every default, for `replica_name` (tests and local runs).
    pub fn with_replica_name(replica_name: impl Into<String>) -> Self {
        Self {
            replica_name: Some(replica_name.into()),
            lease_name: DEFAULT_LEASE_NAME.to_string(),
            lease_namespace: DEFAULT_LEASE_NAMESPACE.to_string(),
            lease_duration: DEFAULT_LEASE_DURATION,
            lease_renew_interval: DEFAULT_LEASE_RENEW_INTERVAL,
            lease_renew_deadline: DEFAULT_LEASE_RENEW_DEADLINE,
            image_repository: DEFAULT_IMAGE_REPOSITORY.to_string(),
            prometheus_image: DEFAULT_PROMETHEUS_IMAGE.to_string(),
            otel_collector_image: DEFAULT_OTEL_COLLECTOR_IMAGE.to_string(),
            concurrency: DEFAULT_CONCURRENCY,
            mesh_selector: None,
        }
    }

    /// This replica's name (the Lease `holderIdentity`): the configured one (the pod name in
    /// a cluster), else `<host>_<pid>`, unique to this process so that two operators on one
    /// host never both believe they hold the Lease.
    pub fn replica_name(&self) -> String {
        self.replica_name
            .clone()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(process_name)
    }
}

/// `<host>_<pid>`, naming this process among every operator that may share the Lease.
pub fn process_name() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}_{}", std::process::id())
}

/// Default address of the identity (Certify) gRPC listener.
pub const DEFAULT_IDENTITY_ADDR: &str = "0.0.0.0:8080";
/// Default address of the destination gRPC listener.
pub const DEFAULT_DESTINATION_ADDR: &str = "0.0.0.0:8086";
/// Default address of the policy gRPC listener.
pub const DEFAULT_POLICY_ADDR: &str = "0.0.0.0:8090";
/// Default address of the admission webhooks' TLS listener.
pub const DEFAULT_WEBHOOK_ADDR: &str = "0.0.0.0:8443";
/// Default name of the Mesh whose settings the controller follows.
pub const DEFAULT_MESH_NAME: &str = "default";
/// Default networks of the `cluster-*` default inbound policies.
pub const DEFAULT_CLUSTER_NETWORKS: &str =
    "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,198.18.0.0/15,fd00::/8";

/// Settings of the `controller` role (identity, destination, policy, webhooks).
///
/// gRPC listeners on loopback addresses serve plaintext (local runs and tests); any other
/// address serves TLS with the controller's own certificate.
#[derive(Debug, Clone, Args)]
pub struct ControllerConfig {
    /// Address of the identity (Certify) gRPC listener.
    #[arg(long, env = "TRELLIS_OPERATOR_IDENTITY_ADDR", default_value = DEFAULT_IDENTITY_ADDR)]
    pub identity_addr: SocketAddr,
    /// Address of the destination gRPC listener.
    #[arg(
        long,
        env = "TRELLIS_OPERATOR_DESTINATION_ADDR",
        default_value = DEFAULT_DESTINATION_ADDR
    )]
    pub destination_addr: SocketAddr,
    /// Address of the policy gRPC listener.
    #[arg(long, env = "TRELLIS_OPERATOR_POLICY_ADDR", default_value = DEFAULT_POLICY_ADDR)]
    pub policy_addr: SocketAddr,
    /// Address of the admission webhooks' TLS listener (always TLS, with the certificate of
    /// the `trellis-webhook-tls` Secret).
    #[arg(long, env = "TRELLIS_OPERATOR_WEBHOOK_ADDR", default_value = DEFAULT_WEBHOOK_ADDR)]
    pub webhook_addr: SocketAddr,
    /// Image repository of the Trellis images: the injector adds
    /// `<repository>/proxy:<version>` unless the Mesh names a proxy image. The same variable
    /// as the `operator` role's `--image-repository`.
    #[arg(
        id = "proxy_image_repository",
        long = "proxy-image-repository",
        env = "TRELLIS_OPERATOR_IMAGE_REPOSITORY",
        default_value = DEFAULT_IMAGE_REPOSITORY
    )]
    pub image_repository: String,
    /// Name of the Mesh whose identity and proxy settings the controller follows.
    #[arg(long, env = "TRELLIS_OPERATOR_MESH_NAME", default_value = DEFAULT_MESH_NAME)]
    pub mesh_name: String,
    /// Namespace of the control plane: it holds the issuer Secret.
    #[arg(
        long,
        env = "TRELLIS_OPERATOR_CONTROL_PLANE_NAMESPACE",
        default_value = well_known::DEFAULT_CONTROL_PLANE_NAMESPACE
    )]
    pub control_plane_namespace: String,
    /// DNS domain of the cluster.
    #[arg(
        long,
        env = "TRELLIS_OPERATOR_CLUSTER_DOMAIN",
        default_value = well_known::DEFAULT_CLUSTER_DOMAIN
    )]
    pub cluster_domain: String,
    /// Networks the `cluster-*` default inbound policies allow (comma-separated CIDRs).
    #[arg(
        long,
        env = "TRELLIS_OPERATOR_CLUSTER_NETWORKS",
        value_delimiter = ',',
        default_value = DEFAULT_CLUSTER_NETWORKS
    )]
    pub cluster_networks: Vec<ipnet::IpNet>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            identity_addr: SocketAddr::from(([0, 0, 0, 0], well_known::IDENTITY_PORT)),
            destination_addr: SocketAddr::from(([0, 0, 0, 0], well_known::DESTINATION_PORT)),
            policy_addr: SocketAddr::from(([0, 0, 0, 0], well_known::POLICY_PORT)),
            webhook_addr: SocketAddr::from(([0, 0, 0, 0], well_known::WEBHOOK_PORT)),
            image_repository: DEFAULT_IMAGE_REPOSITORY.to_string(),
            mesh_name: DEFAULT_MESH_NAME.to_string(),
            control_plane_namespace: well_known::DEFAULT_CONTROL_PLANE_NAMESPACE.to_string(),
            cluster_domain: well_known::DEFAULT_CLUSTER_DOMAIN.to_string(),
            cluster_networks: DEFAULT_CLUSTER_NETWORKS
                .split(',')
                .filter_map(|n| n.parse().ok())
                .collect(),
        }
    }
}

/// Settings of the `all-in-one` role: both roles' settings.
#[derive(Debug, Clone, Args)]
pub struct AllInOneConfig {
    /// Settings of the `operator` part.
    #[command(flatten)]
    pub operator: OperatorConfig,
    /// Settings of the `controller` part.
    #[command(flatten)]
    pub controller: ControllerConfig,
}

/// Parses a duration in Go's syntax (`30s`, `500ms`, `1h30m`), the grammar of the CRDs.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    trellis_crds::common::duration::parse_go(value.trim()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
