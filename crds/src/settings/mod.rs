//! The Mesh spec parsed and checked once into typed settings (durations, policies, images,
//! ports) that rendering, identity, the control plane and the injector all read.
//!
//! [`MeshSettings::try_from`] applies the same rules as the CRD's schema and CEL rules, so a
//! spec the apiserver accepted always converts; a spec that did not pass through the
//! apiserver gets an [`Error`](error::Error) naming every bad field, never a silent default.

pub mod error;
pub mod image;

#[cfg(test)]
mod tests;

use std::{fmt, sync::LazyLock, time::Duration};

use regex::Regex;

use self::{
    error::{Error, FieldError},
    image::ImageRef,
};
use crate::{
    common::{
        access_policy::AccessPolicy,
        duration::Duration as SpecDuration,
        log_level::LogLevel,
        names::{DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN},
        port::PortRange,
        resources::ComputeResources,
    },
    v1alpha1::mesh::{
        DEFAULT_CONFIGMAP_ANCHORS_KEY, DEFAULT_SECRET_ANCHORS_KEY, FailurePolicy,
        GatewayServiceType, IMAGE_PATTERN, ImagePullPolicy, IssuerSource, MAX_PORT_RANGES,
        MeshSpec, PrometheusMode, TrustAnchorSource, UpgradeStrategy, VERSION_PATTERN,
    },
};

/// Controller replicas when the spec sets none and high availability is off: two, so the
/// fail-closed validating webhook survives one replica's restart.
pub const DEFAULT_REPLICAS: u16 = 2;
/// Controller replicas when the spec sets none and high availability is on.
pub const DEFAULT_HA_REPLICAS: u16 = 3;
/// Image name of the proxy (and proxy-init) under the operator's image repository.
pub const PROXY_IMAGE_NAME: &str = "proxy";
/// Image name of the `controller` role under the operator's image repository.
pub const CONTROLLER_IMAGE_NAME: &str = "controller";

/// A whole Mesh spec, checked: what every reader of the spec uses.
#[derive(Clone, Debug, PartialEq)]
pub struct MeshSettings {
    /// Trellis release to run (`spec.version`), like `0.1.0`; the tag of default images.
    pub version: String,
    /// Namespace of the control plane (`spec.namespace`).
    pub namespace: String,
    /// Workload identity: trust domain, material sources, lifetimes and rotation.
    pub identity: IdentitySettings,
    /// Control-plane replicas, resources and logging.
    pub control_plane: ControlPlaneSettings,
    /// Defaults of injected proxies.
    pub proxy: ProxyDefaults,
    /// How meshed workloads move to a new proxy version.
    pub data_plane: DataPlaneSettings,
    /// Optional components.
    pub extensions: ExtensionSettings,
}

/// `spec.identity`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentitySettings {
    /// Trust domain of workload identities, like `cluster.local`.
    pub trust_domain: String,
    /// Where the trust anchors come from.
    pub trust_anchors: TrustAnchorsSettings,
    /// Where the issuer comes from.
    pub issuer: IssuerSettings,
    /// Lifetime of workload (proxy) certificates.
    pub workload_certificate_lifetime: Duration,
    /// How long before issuance workload certificates become valid.
    pub clock_skew_allowance: Duration,
    /// Renewal of generated material.
    pub rotation: RotationSettings,
}

/// `spec.identity.trustAnchors`, checked, with the default key applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustAnchorsSettings {
    /// The operator generates and keeps a self-signed anchor.
    Generated {
        /// Validity of a generated anchor.
        lifetime: Duration,
    },
    /// PEM certificates in a ConfigMap of the Mesh namespace.
    ConfigMap {
        /// The ConfigMap's name.
        name: String,
        /// Key of the bundle (default `ca-bundle.crt`).
        key: String,
    },
    /// PEM certificates (and maybe `tls.key`) in a Secret of the Mesh namespace.
    Secret {
        /// The Secret's name.
        name: String,
        /// Key of the bundle (default `ca.crt`).
        key: String,
    },
}

/// `spec.identity.issuer`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssuerSettings {
    /// The operator generates the issuer and signs it with the trust anchor.
    Generated {
        /// Validity of a generated issuer.
        lifetime: Duration,
    },
    /// A kubernetes.io/tls Secret of the Mesh namespace.
    Secret {
        /// The Secret's name.
        name: String,
    },
}

/// `spec.identity.rotation`, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationSettings {
    /// Whether the operator renews generated material by itself.
    pub automatic: bool,
    /// Renew a generated issuer this long before it expires.
    pub issuer_renew_before: Duration,
    /// Start rotating a generated trust anchor this long before it expires.
    pub trust_anchor_renew_before: Duration,
}

/// `spec.controlPlane`, checked, with the replica default applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlPlaneSettings {
    /// Replicas of each control-plane Deployment: the spec's, else 3 with HA, else 2.
    pub replicas: u16,
    /// Resources of control-plane containers; `None` means the operator's defaults.
    pub resources: Option<ComputeResources>,
    /// Control-plane log level.
    pub log_level: LogLevel,
    /// Spread across nodes with PodDisruptionBudgets.
    pub high_availability: bool,
    /// The validating webhook's `failurePolicy`.
    pub validator_failure_policy: FailurePolicy,
}

/// `spec.proxy`, checked: the defaults the injector applies before pod annotations.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyDefaults {
    /// The proxy image the spec names; `None` means the release's (see
    /// [`MeshSettings::proxy_image`]).
    pub image: Option<ImageRef>,
    /// Pull policy of the proxy and proxy-init images.
    pub image_pull_policy: ImagePullPolicy,
    /// Proxy container resources; `None` means no requests or limits.
    pub resources: Option<ComputeResources>,
    /// Proxy log level.
    pub log_level: LogLevel,
    /// Policy for ports no Server covers.
    pub default_inbound_policy: AccessPolicy,
    /// Ports forwarded as opaque TCP.
    pub opaque_ports: PortList,
    /// Inbound ports that bypass the proxy.
    pub skip_inbound_ports: PortList,
    /// Outbound ports that bypass the proxy.
    pub skip_outbound_ports: PortList,
    /// Proxy worker threads, when set (1-64).
    pub cores: Option<u16>,
}

/// `spec.dataPlane`, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataPlaneSettings {
    /// Manual or Automatic.
    pub upgrade_strategy: UpgradeStrategy,
    /// Workloads restarted at a time (1-100).
    pub batch_size: u16,
}

/// `spec.extensions`, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtensionSettings {
    /// Viz (metrics API, tap, dashboard).
    pub viz: VizSettings,
    /// Multicluster (gateway, service mirror).
    pub multicluster: MulticlusterSettings,
    /// Tracing (spans to an OpenTelemetry collector).
    pub tracing: TracingSettings,
}

/// `spec.extensions.viz`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VizSettings {
    /// Install viz.
    pub enabled: bool,
    /// The Prometheus viz reads.
    pub prometheus: PrometheusSettings,
    /// Run the dashboard.
    pub dashboard: bool,
}

/// `spec.extensions.viz.prometheus`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrometheusSettings {
    /// The operator runs one in the Mesh namespace.
    Bundled,
    /// Yours, at this http(s) URL.
    External {
        /// Base URL, like `http://prometheus.monitoring:9090`.
        url: String,
    },
}

impl PrometheusSettings {
    /// The mode, as the spec names it.
    pub fn mode(&self) -> PrometheusMode {
        match self {
            Self::Bundled => PrometheusMode::Bundled,
            Self::External { .. } => PrometheusMode::External,
        }
    }
}

/// `spec.extensions.multicluster`, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticlusterSettings {
    /// Install multicluster.
    pub enabled: bool,
    /// Run the gateway.
    pub gateway_enabled: bool,
    /// How the gateway Service is exposed.
    pub gateway_service_type: GatewayServiceType,
    /// Gateway port.
    pub gateway_port: u16,
}

/// `spec.extensions.tracing`, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct TracingSettings {
    /// Emit spans.
    pub enabled: bool,
    /// Your collector's http(s) OTLP endpoint; `None` means the operator runs one.
    pub collector_endpoint: Option<String>,
    /// Share of untraced requests sampled, 0 to 1.
    pub sampling: f64,
}

/// A list of ports and inclusive port ranges, printed like `25,587,4000-4100`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortList(pub Vec<(u16, u16)>);

impl PortList {
    /// Whether `port` is in one of the ranges.
    pub fn contains(&self, port: u16) -> bool {
        self.0
            .iter()
            .any(|(low, high)| *low <= port && port <= *high)
    }

    /// Each entry as text, `3306` or `4000-4100`.
    pub fn entries(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(low, high)| {
                if low == high {
                    low.to_string()
                } else {
                    format!("{low}-{high}")
                }
            })
            .collect()
    }
}

impl fmt::Display for PortList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.entries().join(","))
    }
}

impl MeshSettings {
    /// The proxy image: `spec.proxy.image`, else `<repository>/proxy:<version>`.
    pub fn proxy_image(&self, repository: &str) -> ImageRef {
        self.proxy.image.clone().unwrap_or_else(|| {
            ImageRef::tagged(format!("{repository}/{PROXY_IMAGE_NAME}"), &self.version)
        })
    }

    /// The `controller` role's image: `<repository>/controller:<version>`.
    pub fn controller_image(&self, repository: &str) -> ImageRef {
        ImageRef::tagged(
            format!("{repository}/{CONTROLLER_IMAGE_NAME}"),
            &self.version,
        )
    }
}

impl TryFrom<&MeshSpec> for MeshSettings {
    type Error = Error;

    fn try_from(spec: &MeshSpec) -> Result<Self, Error> {
        let mut check = Check::default();
        check.pattern(
            "spec.version",
            &spec.version,
            &VERSION,
            "must be a release like 0.1.0",
        );
        check.pattern(
            "spec.namespace",
            &spec.namespace,
            &DNS_LABEL,
            "must be a DNS label (lowercase letters, digits and '-')",
        );
        let settings = Self {
            version: spec.version.clone(),
            namespace: spec.namespace.clone(),
            identity: identity(&mut check, spec),
            control_plane: control_plane(&mut check, spec),
            proxy: proxy(&mut check, spec),
            data_plane: data_plane(&mut check, spec),
            extensions: extensions(&mut check, spec),
        };
        if check.fields.is_empty() {
            Ok(settings)
        } else {
            Err(Error {
                fields: check.fields,
            })
        }
    }
}

/// A compiled pattern constant of this crate; `None` if it does not compile, which rejects
/// every value (a unit test compiles each of them).
type Pattern = LazyLock<Option<Regex>>;

static VERSION: Pattern = LazyLock::new(|| Regex::new(VERSION_PATTERN).ok());
static DNS_LABEL: Pattern = LazyLock::new(|| Regex::new(DNS_LABEL_PATTERN).ok());
static DNS_SUBDOMAIN: Pattern = LazyLock::new(|| Regex::new(DNS_SUBDOMAIN_PATTERN).ok());
static IMAGE: Pattern = LazyLock::new(|| Regex::new(IMAGE_PATTERN).ok());
/// What a key of a ConfigMap or Secret must match (as the CRD schema says).
pub const KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";
static KEY: Pattern = LazyLock::new(|| Regex::new(KEY_PATTERN).ok());

fn matches(pattern: &Pattern, value: &str) -> bool {
    pattern.as_ref().is_some_and(|p| p.is_match(value))
}

/// Collects invalid fields while the settings are built.
#[derive(Default)]
struct Check {
    fields: Vec<FieldError>,
}

impl Check {
    fn fail(&mut self, path: &str, value: impl fmt::Debug, problem: impl Into<String>) {
        self.fields.push(FieldError::new(path, value, problem));
    }

    fn pattern(&mut self, path: &str, value: &str, pattern: &Pattern, problem: &str) {
        if !matches(pattern, value) {
            self.fail(path, value, problem);
        }
    }

    /// The duration at `path`; `None` (and a recorded error) when it does not parse.
    fn duration(&mut self, path: &str, value: &SpecDuration, example: &str) -> Option<Duration> {
        match value.to_std() {
            Ok(duration) => Some(duration),
            Err(_) => {
                self.fail(
                    path,
                    value.as_str(),
                    format!("is not a duration: write it like {example} (units ms, s, m, h)"),
                );
                None
            }
        }
    }

    /// `value` as a number within `min..=max`; `min` (and a recorded error) otherwise.
    fn within(&mut self, path: &str, value: i32, min: u16, max: u16) -> u16 {
        match u16::try_from(value) {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.fail(path, value, format!("must be from {min} to {max}"));
                min
            }
        }
    }

    fn ports(&mut self, path: &str, ranges: &[PortRange]) -> PortList {
        if ranges.len() > MAX_PORT_RANGES as usize {
            self.fail(
                path,
                ranges.len(),
                format!("entries are too many: list at most {MAX_PORT_RANGES}, using ranges"),
            );
        }
        let mut list = Vec::new();
        for (i, range) in ranges.iter().enumerate() {
            match range.bounds() {
                Ok(bounds) => list.push(bounds),
                Err(_) => self.fail(
                    &format!("{path}[{i}]"),
                    range.to_string(),
                    "is not a port from 1 to 65535 (3306) or a range like \"4000-4100\"",
                ),
            }
        }
        PortList(list)
    }

    fn url(&mut self, path: &str, value: &str, example: &str) {
        let rest = value
            .strip_prefix("https://")
            .or_else(|| value.strip_prefix("http://"));
        if !rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace)) {
            self.fail(
                path,
                value,
                format!("must be an http or https URL, like {example}"),
            );
        }
    }

    /// Records `problem` at `path` (whose value is `text`) unless `smaller < larger`; a
    /// field that did not parse is reported once, by [`Self::duration`].
    fn shorter(
        &mut self,
        path: &str,
        text: &SpecDuration,
        smaller: Option<Duration>,
        larger: Option<Duration>,
        problem: &str,
    ) {
        if let (Some(smaller), Some(larger)) = (smaller, larger)
            && smaller >= larger
        {
            self.fail(path, text.as_str(), problem);
        }
    }
}

/// `spec.identity`, with the CRD's CEL rules between sources and lifetimes.
fn identity(check: &mut Check, spec: &MeshSpec) -> IdentitySettings {
    let id = &spec.identity;
    check.pattern(
        "spec.identity.trustDomain",
        &id.trust_domain,
        &DNS_SUBDOMAIN,
        "must be a DNS name like cluster.local",
    );
    let workload = check.duration(
        "spec.identity.workloadCertificateLifetime",
        &id.workload_certificate_lifetime,
        "24h",
    );
    let skew = check.duration(
        "spec.identity.clockSkewAllowance",
        &id.clock_skew_allowance,
        "20s",
    );
    let issuer_renew_before = check.duration(
        "spec.identity.rotation.issuerRenewBefore",
        &id.rotation.issuer_renew_before,
        "720h",
    );
    let anchor_renew_before = check.duration(
        "spec.identity.rotation.trustAnchorRenewBefore",
        &id.rotation.trust_anchor_renew_before,
        "2160h",
    );
    let anchor_lifetime = check.duration(
        "spec.identity.trustAnchors.lifetime",
        &id.trust_anchors.lifetime,
        "87600h",
    );
    let issuer_lifetime = check.duration(
        "spec.identity.issuer.lifetime",
        &id.issuer.lifetime,
        "8760h",
    );
    let generated_anchor = id.trust_anchors.source == TrustAnchorSource::Generated;
    let generated_issuer = id.issuer.source == IssuerSource::Generated;
    if generated_anchor && generated_issuer {
        check.shorter(
            "spec.identity.issuer.lifetime",
            &id.issuer.lifetime,
            issuer_lifetime,
            anchor_lifetime,
            "must be shorter than trustAnchors.lifetime: lower it or raise trustAnchors.lifetime",
        );
    }
    if generated_issuer {
        check.shorter(
            "spec.identity.workloadCertificateLifetime",
            &id.workload_certificate_lifetime,
            workload,
            issuer_lifetime,
            "must be shorter than issuer.lifetime: lower it (24h is usual)",
        );
    }
    check.shorter(
        "spec.identity.clockSkewAllowance",
        &id.clock_skew_allowance,
        skew,
        workload,
        "must be shorter than workloadCertificateLifetime: lower it (20s is usual)",
    );
    if generated_issuer {
        check.shorter(
            "spec.identity.rotation.issuerRenewBefore",
            &id.rotation.issuer_renew_before,
            issuer_renew_before,
            issuer_lifetime,
            "must be shorter than issuer.lifetime, or the issuer would be renewed continuously: lower it",
        );
    }
    if generated_anchor {
        check.shorter(
            "spec.identity.rotation.trustAnchorRenewBefore",
            &id.rotation.trust_anchor_renew_before,
            anchor_renew_before,
            anchor_lifetime,
            "must be shorter than trustAnchors.lifetime, or the anchor would be renewed continuously: lower it",
        );
    }
    IdentitySettings {
        trust_domain: id.trust_domain.clone(),
        trust_anchors: trust_anchors(check, spec, anchor_lifetime.unwrap_or_default()),
        issuer: issuer(check, spec, issuer_lifetime.unwrap_or_default()),
        workload_certificate_lifetime: workload.unwrap_or_default(),
        clock_skew_allowance: skew.unwrap_or_default(),
        rotation: RotationSettings {
            automatic: id.rotation.automatic,
            issuer_renew_before: issuer_renew_before.unwrap_or_default(),
            trust_anchor_renew_before: anchor_renew_before.unwrap_or_default(),
        },
    }
}

/// `spec.identity.trustAnchors`; `lifetime` is already parsed.
fn trust_anchors(check: &mut Check, spec: &MeshSpec, lifetime: Duration) -> TrustAnchorsSettings {
    let anchors = &spec.identity.trust_anchors;
    let supplied = |check: &mut Check, default_key: &str| {
        let name = match &anchors.name {
            Some(name) => {
                check.pattern(
                    "spec.identity.trustAnchors.name",
                    name,
                    &DNS_SUBDOMAIN,
                    "must be an object name (lowercase letters, digits, '-' and '.')",
                );
                name.clone()
            }
            None => {
                check.fail(
                    "spec.identity.trustAnchors.name",
                    "",
                    "is required when source is ConfigMap or Secret: name the object in the Mesh namespace that holds the PEM trust anchors",
                );
                String::new()
            }
        };
        let key = anchors
            .key
            .clone()
            .unwrap_or_else(|| default_key.to_string());
        check.pattern(
            "spec.identity.trustAnchors.key",
            &key,
            &KEY,
            "must be a key of letters, digits, '-', '_' and '.'",
        );
        (name, key)
    };
    match anchors.source {
        TrustAnchorSource::Generated => {
            if anchors.name.is_some() || anchors.key.is_some() {
                check.fail(
                    "spec.identity.trustAnchors.source",
                    "Generated",
                    "takes no name or key: remove them, or set source to ConfigMap or Secret",
                );
            }
            TrustAnchorsSettings::Generated { lifetime }
        }
        TrustAnchorSource::ConfigMap => {
            let (name, key) = supplied(check, DEFAULT_CONFIGMAP_ANCHORS_KEY);
            TrustAnchorsSettings::ConfigMap { name, key }
        }
        TrustAnchorSource::Secret => {
            let (name, key) = supplied(check, DEFAULT_SECRET_ANCHORS_KEY);
            TrustAnchorsSettings::Secret { name, key }
        }
    }
}

/// `spec.identity.issuer`; `lifetime` is already parsed.
fn issuer(check: &mut Check, spec: &MeshSpec, lifetime: Duration) -> IssuerSettings {
    let id = &spec.identity;
    match (id.issuer.source, id.trust_anchors.source) {
        (IssuerSource::Secret, TrustAnchorSource::Generated) => check.fail(
            "spec.identity.issuer.source",
            "Secret",
            "needs trustAnchors from a ConfigMap or Secret: an issuer you supply cannot chain to trust anchors the operator generates",
        ),
        (IssuerSource::Generated, TrustAnchorSource::ConfigMap) => check.fail(
            "spec.identity.issuer.source",
            "Generated",
            "cannot be used with trustAnchors from a ConfigMap, which carry no private key: set issuer.source to Secret and issuer.secretName",
        ),
        _ => {}
    }
    match (id.issuer.source, &id.issuer.secret_name) {
        (IssuerSource::Generated, None) => IssuerSettings::Generated { lifetime },
        (IssuerSource::Generated, Some(name)) => {
            check.fail(
                "spec.identity.issuer.secretName",
                name,
                "is only for source Secret: remove it, or set source to Secret",
            );
            IssuerSettings::Generated { lifetime }
        }
        (IssuerSource::Secret, Some(name)) => {
            check.pattern(
                "spec.identity.issuer.secretName",
                name,
                &DNS_SUBDOMAIN,
                "must be an object name (lowercase letters, digits, '-' and '.')",
            );
            IssuerSettings::Secret { name: name.clone() }
        }
        (IssuerSource::Secret, None) => {
            check.fail(
                "spec.identity.issuer.secretName",
                "",
                "is required when source is Secret: name the kubernetes.io/tls Secret in the Mesh namespace holding tls.crt and tls.key",
            );
            IssuerSettings::Secret {
                name: String::new(),
            }
        }
    }
}

fn control_plane(check: &mut Check, spec: &MeshSpec) -> ControlPlaneSettings {
    let cp = &spec.control_plane;
    let replicas = match cp.replicas {
        Some(n) => check.within("spec.controlPlane.replicas", n, 1, 10),
        None if cp.high_availability => DEFAULT_HA_REPLICAS,
        None => DEFAULT_REPLICAS,
    };
    if cp.high_availability && replicas < 2 {
        check.fail(
            "spec.controlPlane.replicas",
            replicas,
            "is too few for highAvailability, which needs at least 2: raise replicas, or remove it to run 3",
        );
    }
    ControlPlaneSettings {
        replicas,
        resources: cp.resources.clone(),
        log_level: cp.log_level,
        high_availability: cp.high_availability,
        validator_failure_policy: cp.validator_failure_policy,
    }
}

fn proxy(check: &mut Check, spec: &MeshSpec) -> ProxyDefaults {
    let proxy = &spec.proxy;
    let image = proxy.image.as_ref().and_then(|image| {
        let parsed = matches(&IMAGE, image)
            .then(|| ImageRef::parse(image))
            .flatten();
        if parsed.is_none() {
            check.fail(
                "spec.proxy.image",
                image,
                "is not an image reference: write it like registry.example.com/trellis/proxy:0.1.0, or remove it",
            );
        }
        parsed
    });
    ProxyDefaults {
        image,
        image_pull_policy: proxy.image_pull_policy,
        resources: proxy.resources.clone(),
        log_level: proxy.log_level,
        default_inbound_policy: proxy.default_inbound_policy,
        opaque_ports: check.ports("spec.proxy.opaquePorts", &proxy.opaque_ports),
        skip_inbound_ports: check.ports("spec.proxy.skipInboundPorts", &proxy.skip_inbound_ports),
        skip_outbound_ports: check
            .ports("spec.proxy.skipOutboundPorts", &proxy.skip_outbound_ports),
        cores: proxy
            .cores
            .map(|cores| check.within("spec.proxy.cores", cores, 1, 64)),
    }
}

fn data_plane(check: &mut Check, spec: &MeshSpec) -> DataPlaneSettings {
    DataPlaneSettings {
        upgrade_strategy: spec.data_plane.upgrade_strategy,
        batch_size: check.within(
            "spec.dataPlane.batchSize",
            spec.data_plane.batch_size,
            1,
            100,
        ),
    }
}

fn extensions(check: &mut Check, spec: &MeshSpec) -> ExtensionSettings {
    let ext = &spec.extensions;
    let prometheus = match (ext.viz.prometheus.mode, &ext.viz.prometheus.url) {
        (PrometheusMode::Bundled, None) => PrometheusSettings::Bundled,
        (PrometheusMode::Bundled, Some(url)) => {
            check.fail(
                "spec.extensions.viz.prometheus.url",
                url,
                "is only for mode External: remove it, or set mode to External",
            );
            PrometheusSettings::Bundled
        }
        (PrometheusMode::External, Some(url)) => {
            let path = "spec.extensions.viz.prometheus.url";
            check.url(path, url, "http://prometheus.monitoring:9090");
            PrometheusSettings::External { url: url.clone() }
        }
        (PrometheusMode::External, None) => {
            check.fail(
                "spec.extensions.viz.prometheus.url",
                "",
                "is required when mode is External: give your Prometheus's address, like http://prometheus.monitoring:9090",
            );
            PrometheusSettings::External { url: String::new() }
        }
    };
    let mc = &ext.multicluster;
    if mc.enabled && spec.identity.trust_anchors.source == TrustAnchorSource::Generated {
        check.fail(
            "spec.extensions.multicluster.enabled",
            true,
            "needs trust anchors shared by every linked cluster: set identity.trustAnchors.source to ConfigMap or Secret",
        );
    }
    let tracing = &ext.tracing;
    if let Some(endpoint) = &tracing.collector_endpoint {
        let path = "spec.extensions.tracing.collectorEndpoint";
        check.url(path, endpoint, "http://otel-collector.tracing:4317");
    }
    if !(0.0..=1.0).contains(&tracing.sampling) {
        check.fail(
            "spec.extensions.tracing.sampling",
            tracing.sampling,
            "must be from 0 to 1, like 0.01 for 1%",
        );
    }
    ExtensionSettings {
        viz: VizSettings {
            enabled: ext.viz.enabled,
            prometheus,
            dashboard: ext.viz.dashboard.enabled,
        },
        multicluster: MulticlusterSettings {
            enabled: mc.enabled,
            gateway_enabled: mc.gateway.enabled,
            gateway_service_type: mc.gateway.service_type,
            gateway_port: check.within(
                "spec.extensions.multicluster.gateway.port",
                mc.gateway.port,
                1,
                65535,
            ),
        },
        tracing: TracingSettings {
            enabled: tracing.enabled,
            collector_endpoint: tracing.collector_endpoint.clone(),
            sampling: tracing.sampling,
        },
    }
}
