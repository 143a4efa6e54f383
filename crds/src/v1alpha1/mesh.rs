//! Mesh: the one cluster-scoped object that declares a whole Trellis installation.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::Rule;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    access_policy::AccessPolicy,
    duration::{Duration, cel_shorter_than},
    log_level::LogLevel,
    names::{
        DNS_LABEL_MAX_LENGTH, DNS_LABEL_PATTERN, DNS_SUBDOMAIN_MAX_LENGTH, DNS_SUBDOMAIN_PATTERN,
    },
    port::PortRange,
    resources::ComputeResources,
    rules::set_only_when,
};

/// Condition types of [`MeshStatus`].
pub mod conditions {
    /// Every control-plane component and enabled extension is ready at the desired version.
    /// `kubectl wait --for=condition=Ready mesh/<name>` waits for it.
    pub const READY: &str = "Ready";
    /// The operator applied the latest spec (`observedGeneration`) without error.
    pub const RECONCILED: &str = "Reconciled";
    /// An install, upgrade or rotation is under way; the message says which step.
    pub const PROGRESSING: &str = "Progressing";
    /// Something needs the user: bad input, failing components, expired material.
    pub const DEGRADED: &str = "Degraded";
    /// Trust anchors and issuer are valid, unexpired and the ones the identity service uses.
    pub const IDENTITY_HEALTHY: &str = "IdentityHealthy";
    /// For Flux's kstatus: True exactly while Progressing is True.
    pub const RECONCILING: &str = "Reconciling";
    /// For Flux's kstatus: True while Degraded needs user action.
    pub const STALLED: &str = "Stalled";
}

/// Condition reasons of [`MeshStatus`]; events use the same strings.
pub mod reasons {
    /// Ready is True: every component is ready.
    pub const COMPONENTS_READY: &str = "ComponentsReady";
    /// Ready is False: some components are not ready; the message lists them.
    pub const COMPONENTS_NOT_READY: &str = "ComponentsNotReady";
    /// Reconciled is True.
    pub const RECONCILE_SUCCEEDED: &str = "ReconcileSucceeded";
    /// Reconciled is False: applying the spec failed; the message says why.
    pub const RECONCILE_FAILED: &str = "ReconcileFailed";
    /// Progressing: first installation.
    pub const INSTALLING: &str = "Installing";
    /// Progressing: moving to a new `spec.version`.
    pub const UPGRADING: &str = "Upgrading";
    /// Progressing: restarting meshed workloads onto the new proxy version.
    pub const DATA_PLANE_UPGRADING: &str = "DataPlaneUpgrading";
    /// Progressing: trust anchors or issuer are being rotated.
    pub const ROTATING: &str = "Rotating";
    /// Nothing in flight.
    pub const IDLE: &str = "Idle";
    /// The spec asks for something the operator cannot do; the message names the field.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// An enabled extension is not available in this release; it is not installed.
    pub const EXTENSION_UNAVAILABLE: &str = "ExtensionUnavailable";
    /// Degraded: a component's image cannot be pulled; the message names the pod and image.
    pub const IMAGE_UNAVAILABLE: &str = "ImageUnavailable";
    /// Degraded: a component's containers crash or cannot be created; the message says which.
    pub const COMPONENT_FAILING: &str = "ComponentFailing";
    /// IdentityHealthy is True.
    pub const IDENTITY_VALID: &str = "IdentityValid";
    /// Referenced trust anchors or issuer are missing or do not parse, chain or match keys.
    pub const INVALID_IDENTITY_MATERIAL: &str = "InvalidIdentityMaterial";
    /// The trust anchor is within its rotation window.
    pub const TRUST_ANCHOR_EXPIRING: &str = "TrustAnchorExpiring";
    /// The trust anchor has expired; recovery drops connections.
    pub const TRUST_ANCHOR_EXPIRED: &str = "TrustAnchorExpired";
    /// The issuer certificate is within its rotation window.
    pub const ISSUER_EXPIRING: &str = "IssuerExpiring";
    /// The issuer certificate has expired.
    pub const ISSUER_EXPIRED: &str = "IssuerExpired";
    /// The identity service uses a different issuer than the Secret holds.
    pub const ISSUER_MISMATCH: &str = "IssuerMismatch";
}

/// Default Mesh name used by the quick start (`config/samples/mesh.yaml`).
pub const DEFAULT_MESH_NAME: &str = "default";
/// Default control-plane namespace.
pub const DEFAULT_NAMESPACE: &str = "trellis-system";
/// Default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// Default key of the trust anchors in a referenced ConfigMap.
pub const DEFAULT_CONFIGMAP_ANCHORS_KEY: &str = "ca-bundle.crt";
/// Default key of the trust anchors in a referenced Secret.
pub const DEFAULT_SECRET_ANCHORS_KEY: &str = "ca.crt";
/// Ports the proxy treats as opaque TCP unless told otherwise: SMTP, MySQL, Galera,
/// PostgreSQL, Redis, Elasticsearch, Memcached (server-speaks-first protocols).
pub const DEFAULT_OPAQUE_PORTS: [i32; 8] = [25, 587, 3306, 4444, 5432, 6379, 9300, 11211];
/// Most entries in a proxy port list.
pub const MAX_PORT_RANGES: u32 = 64;

/// What `spec.version` must match: a release version like `0.1.0` or `0.2.0-rc.1`.
pub const VERSION_PATTERN: &str = r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$";
/// What a container image reference must match (no whitespace).
pub const IMAGE_PATTERN: &str = r"^[^\s]+$";

/// The CEL rule that a string is an http or https URL; `example` ends the message.
fn http_url(example: &str) -> Rule {
    Rule::new("isURL(self) && url(self).getScheme() in ['http', 'https']")
        .message(format!("must be an http or https URL, like {example}").as_str())
}

trellis_kind! {
    /// The desired state of a Trellis installation.
    #[kube(
        group = "trellis.dev",
        kind = "Mesh",
        plural = "meshes",
        status = "MeshStatus",
        shortname = "tmesh",
        doc = "A Mesh declares a whole Trellis installation: which version runs, in which \
               namespace, with which identity material, control-plane and proxy settings and \
               extensions. The operator installs, upgrades and heals everything from it and \
               reports health in status. An empty spec (spec: {}) is a working mesh.",
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status",
            description = "Whether every component is ready"
        ),
        printcolumn(
            name = "Version",
            type_ = "string",
            json_path = ".status.version",
            description = "The version running"
        ),
        printcolumn(
            name = "Components",
            type_ = "string",
            json_path = ".status.componentsReady",
            description = "Ready components out of all components"
        ),
        printcolumn(
            name = "Meshed",
            type_ = "integer",
            json_path = ".status.meshedPods",
            description = "Pods running a Trellis proxy"
        ),
        printcolumn(
            name = "Status",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
            description = "Reason of the Ready condition",
            priority = 1
        ),
        printcolumn(
            name = "Desired",
            type_ = "string",
            json_path = ".spec.version",
            description = "The version asked for",
            priority = 1
        ),
        printcolumn(
            name = "Anchor-Expiry",
            type_ = "string",
            json_path = ".status.identity.trustAnchorNotAfter",
            description = "When the trust anchor expires",
            priority = 1
        ),
        printcolumn(
            name = "Up-To-Date",
            type_ = "integer",
            json_path = ".status.upToDatePods",
            description = "Meshed pods running the desired proxy version",
            priority = 1
        )
    )]
    #[schemars(extend(
        "x-kubernetes-validations" = [
            Rule::new("!self.extensions.multicluster.enabled || self.identity.trustAnchors.source != 'Generated'")
                .message("extensions.multicluster needs trust anchors shared by every linked cluster: set identity.trustAnchors.source to ConfigMap or Secret")
                .field_path(".extensions.multicluster.enabled"),
        ],
    ))]
    pub struct MeshSpec {
        /// Trellis release to run, like `0.1.0`. Defaults to the release these CRDs come from.
        /// Changing it upgrades the control plane in place (and, with
        /// dataPlane.upgradeStrategy Automatic, the proxies).
        #[serde(default = "default_version")]
        #[schemars(length(min = 5, max = 64), regex(pattern = VERSION_PATTERN))]
        pub version: String,
        /// Namespace the control plane runs in. Default `trellis-system`. Immutable: to move
        /// the control plane, delete the Mesh and create it again.
        #[serde(default = "default_namespace")]
        #[schemars(length(min = 1, max = DNS_LABEL_MAX_LENGTH), regex(pattern = DNS_LABEL_PATTERN))]
        #[schemars(extend(
            "x-kubernetes-validations" = [
                Rule::new("self == oldSelf")
                    .message("namespace is immutable: delete the Mesh and create it again to move the control plane"),
            ],
        ))]
        pub namespace: String,
        /// Workload identity: trust domain, trust anchors, issuer, certificate lifetimes and
        /// rotation. Each workload's mTLS identity is
        /// `<serviceaccount>.<namespace>.serviceaccount.identity.trellis.<trustDomain>`. Trust
        /// anchors (the roots every proxy trusts) sign the issuer, and the issuer signs workload
        /// certificates. The defaults generate all of it and rotate it in stages with no failed
        /// request; supply your own anchors and issuer through trustAnchors and issuer.
        #[serde(default)]
        pub identity: Identity,
        /// Control-plane replicas, resources and logging.
        #[serde(default)]
        pub control_plane: ControlPlane,
        /// Defaults for the proxies injected into workloads; annotations on namespaces and pods
        /// (config.trellis.dev/*) override them.
        #[serde(default)]
        pub proxy: Proxy,
        /// How meshed workloads move to a new proxy version.
        #[serde(default)]
        pub data_plane: DataPlane,
        /// Optional components: viz (metrics, tap, dashboard), multicluster and tracing.
        #[serde(default)]
        pub extensions: Extensions,
    }
}

fn default_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_string()
}

impl Default for MeshSpec {
    fn default() -> Self {
        Self {
            version: default_version(),
            namespace: default_namespace(),
            identity: Identity::default(),
            control_plane: ControlPlane::default(),
            proxy: Proxy::default(),
            data_plane: DataPlane::default(),
            extensions: Extensions::default(),
        }
    }
}

/// CEL rule: a generated issuer must expire before the generated trust anchor that signs it.
fn issuer_within_anchor_rule() -> String {
    format!(
        "self.trustAnchors.source != 'Generated' || self.issuer.source != 'Generated' || ({})",
        cel_shorter_than("self.issuer.lifetime", "self.trustAnchors.lifetime")
    )
}

/// CEL rule: workload certificates must be shorter-lived than the generated issuer.
fn workload_within_issuer_rule() -> String {
    format!(
        "self.issuer.source != 'Generated' || ({})",
        cel_shorter_than("self.workloadCertificateLifetime", "self.issuer.lifetime")
    )
}

/// CEL rule: a generated issuer is renewed before it expires.
fn issuer_renewal_rule() -> String {
    format!(
        "self.issuer.source != 'Generated' || ({})",
        cel_shorter_than("self.rotation.issuerRenewBefore", "self.issuer.lifetime")
    )
}

/// CEL rule: a generated trust anchor is renewed before it expires.
fn anchor_renewal_rule() -> String {
    format!(
        "self.trustAnchors.source != 'Generated' || ({})",
        cel_shorter_than(
            "self.rotation.trustAnchorRenewBefore",
            "self.trustAnchors.lifetime"
        )
    )
}

fn default_trust_domain() -> String {
    DEFAULT_TRUST_DOMAIN.to_string()
}

fn default_workload_certificate_lifetime() -> Duration {
    Duration::new("24h")
}

fn default_clock_skew_allowance() -> Duration {
    Duration::new("20s")
}

/// Workload identity: who signs the proxies' mTLS certificates, and for how long they last.
///
/// Each workload's identity is `<serviceaccount>.<namespace>.serviceaccount.identity.trellis.<trustDomain>`.
/// Trust anchors (the root certificates every proxy trusts) sign the issuer; the issuer signs
/// workload certificates. By default the operator generates both and rotates them in stages
/// with no failed request.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        Rule::new("self.issuer.source != 'Secret' || self.trustAnchors.source != 'Generated'")
            .message("issuer.source Secret needs trustAnchors from a ConfigMap or Secret: an issuer you supply cannot chain to trust anchors the operator generates")
            .field_path(".issuer.source"),
        Rule::new("self.trustAnchors.source != 'ConfigMap' || self.issuer.source == 'Secret'")
            .message("trustAnchors from a ConfigMap carry no private key, so the operator cannot sign an issuer: set issuer.source to Secret and issuer.secretName")
            .field_path(".issuer.source"),
        Rule::new(issuer_within_anchor_rule())
            .message("issuer.lifetime must be shorter than trustAnchors.lifetime: lower it or raise trustAnchors.lifetime")
            .field_path(".issuer.lifetime"),
        Rule::new(workload_within_issuer_rule())
            .message("workloadCertificateLifetime must be shorter than issuer.lifetime: lower it (24h is usual)")
            .field_path(".workloadCertificateLifetime"),
        Rule::new(cel_shorter_than("self.clockSkewAllowance", "self.workloadCertificateLifetime"))
            .message("clockSkewAllowance must be shorter than workloadCertificateLifetime: lower it (20s is usual)")
            .field_path(".clockSkewAllowance"),
        Rule::new(issuer_renewal_rule())
            .message("rotation.issuerRenewBefore must be shorter than issuer.lifetime, or the issuer would be renewed continuously: lower it")
            .field_path(".rotation.issuerRenewBefore"),
        Rule::new(anchor_renewal_rule())
            .message("rotation.trustAnchorRenewBefore must be shorter than trustAnchors.lifetime, or the anchor would be renewed continuously: lower it")
            .field_path(".rotation.trustAnchorRenewBefore"),
    ],
))]
pub struct Identity {
    /// Trust domain of every workload identity, a DNS name. Default `cluster.local`.
    /// Clusters that should trust each other need the same trust anchors, not the same
    /// trust domain.
    #[serde(default = "default_trust_domain")]
    #[schemars(length(min = 1, max = DNS_SUBDOMAIN_MAX_LENGTH), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub trust_domain: String,
    /// The root certificates every proxy trusts. Default: generated by the operator.
    #[serde(default)]
    pub trust_anchors: TrustAnchors,
    /// The intermediate CA that signs workload certificates. Default: generated by the
    /// operator, signed by the trust anchor.
    #[serde(default)]
    pub issuer: Issuer,
    /// How long workload (proxy) certificates last; proxies renew them at 70% of this.
    /// A duration like `24h`. Default `24h`. Must be shorter than issuer.lifetime.
    #[serde(default = "default_workload_certificate_lifetime")]
    pub workload_certificate_lifetime: Duration,
    /// Tolerated clock difference between nodes: certificates are valid from this long
    /// before they are issued. A duration like `20s`. Default `20s`. Must be shorter than
    /// workloadCertificateLifetime.
    #[serde(default = "default_clock_skew_allowance")]
    pub clock_skew_allowance: Duration,
    /// When generated trust anchors and issuers are renewed.
    #[serde(default)]
    pub rotation: Rotation,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            trust_domain: default_trust_domain(),
            trust_anchors: TrustAnchors::default(),
            issuer: Issuer::default(),
            workload_certificate_lifetime: default_workload_certificate_lifetime(),
            clock_skew_allowance: default_clock_skew_allowance(),
            rotation: Rotation::default(),
        }
    }
}

/// Where trust anchors come from: `Generated`, `ConfigMap` or `Secret`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TrustAnchorSource {
    /// The operator generates a self-signed trust anchor, keeps it in a Secret in the Mesh
    /// namespace, and rotates it.
    #[default]
    Generated,
    /// PEM certificates from a ConfigMap you supply in the Mesh namespace. There is no
    /// private key, so the issuer must come from a Secret.
    ConfigMap,
    /// PEM certificates (and optionally the signing key, tls.key) from a Secret you supply
    /// in the Mesh namespace.
    Secret,
}

fn default_anchor_lifetime() -> Duration {
    Duration::new("87600h")
}

/// The trust anchors: generated by the operator, or supplied by you in a ConfigMap or Secret.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        Rule::new("self.source == 'Generated' || has(self.name)")
            .message("name is required when source is ConfigMap or Secret: name the object in the Mesh namespace that holds the PEM trust anchors")
            .field_path(".name"),
        Rule::new("self.source != 'Generated' || (!has(self.name) && !has(self.key))")
            .message("name and key are only for source ConfigMap or Secret: remove them, or set source")
            .field_path(".source"),
    ],
))]
pub struct TrustAnchors {
    /// Where the trust anchors come from. Default `Generated`. Valid values: `Generated`,
    /// `ConfigMap`, `Secret`.
    #[serde(default)]
    pub source: TrustAnchorSource,
    /// Name of the ConfigMap or Secret, in the Mesh namespace, holding the PEM-encoded
    /// trust anchors. Required for source ConfigMap and Secret; not allowed for Generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = DNS_SUBDOMAIN_MAX_LENGTH), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: Option<String>,
    /// Key of the PEM bundle in the ConfigMap or Secret. Default `ca-bundle.crt` for a
    /// ConfigMap and `ca.crt` for a Secret. Not allowed for Generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: Option<String>,
    /// Validity of a generated trust anchor, a duration like `87600h` (ten years, the
    /// default). Ignored for supplied anchors.
    #[serde(default = "default_anchor_lifetime")]
    pub lifetime: Duration,
}

impl Default for TrustAnchors {
    fn default() -> Self {
        Self {
            source: TrustAnchorSource::default(),
            name: None,
            key: None,
            lifetime: default_anchor_lifetime(),
        }
    }
}

/// Where the issuer comes from: `Generated` or `Secret`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum IssuerSource {
    /// The operator generates the issuer, signs it with the trust anchor's key, and rotates it.
    #[default]
    Generated,
    /// A kubernetes.io/tls Secret you supply in the Mesh namespace (tls.crt, tls.key), for
    /// example one cert-manager renews. It must chain to the trust anchors.
    Secret,
}

fn default_issuer_lifetime() -> Duration {
    Duration::new("8760h")
}

/// The issuer: the intermediate CA that signs workload certificates.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = set_only_when(
        "secretName",
        "source",
        "Secret",
        "name the kubernetes.io/tls Secret in the Mesh namespace holding tls.crt and tls.key",
    ),
))]
pub struct Issuer {
    /// Where the issuer comes from. Default `Generated`. Valid values: `Generated`, `Secret`.
    #[serde(default)]
    pub source: IssuerSource,
    /// Name of the kubernetes.io/tls Secret, in the Mesh namespace, holding the issuer's
    /// certificate (tls.crt) and key (tls.key). Required for source Secret; not allowed for
    /// Generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = DNS_SUBDOMAIN_MAX_LENGTH), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub secret_name: Option<String>,
    /// Validity of a generated issuer, a duration like `8760h` (one year, the default).
    /// Must be shorter than trustAnchors.lifetime. Ignored for a supplied issuer.
    #[serde(default = "default_issuer_lifetime")]
    pub lifetime: Duration,
}

impl Default for Issuer {
    fn default() -> Self {
        Self {
            source: IssuerSource::default(),
            secret_name: None,
            lifetime: default_issuer_lifetime(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_issuer_renew_before() -> Duration {
    Duration::new("720h")
}

fn default_anchor_renew_before() -> Duration {
    Duration::new("2160h")
}

/// When the operator renews generated identity material. Trust anchors rotate in observed
/// stages (extend the bundle, switch the issuer, reissue, trim) with no failed request.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Whether the operator renews generated trust anchors and issuers by itself when they
    /// enter their renewal window. Default true. When false it only warns (condition,
    /// event, metric) and you rotate by changing the spec.
    #[serde(default = "default_true")]
    pub automatic: bool,
    /// Renew a generated issuer this long before it expires, a duration like `720h` (30
    /// days, the default). Must be shorter than issuer.lifetime.
    #[serde(default = "default_issuer_renew_before")]
    pub issuer_renew_before: Duration,
    /// Start rotating a generated trust anchor this long before it expires, a duration like
    /// `2160h` (90 days, the default). Must be shorter than trustAnchors.lifetime.
    #[serde(default = "default_anchor_renew_before")]
    pub trust_anchor_renew_before: Duration,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            automatic: default_true(),
            issuer_renew_before: default_issuer_renew_before(),
            trust_anchor_renew_before: default_anchor_renew_before(),
        }
    }
}

/// Control-plane settings (identity, destination, policy, webhooks).
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = [
        Rule::new("!self.highAvailability || !has(self.replicas) || self.replicas >= 2")
            .message("highAvailability needs at least 2 replicas: raise replicas, or remove it to run 3")
            .field_path(".replicas"),
    ],
))]
pub struct ControlPlane {
    /// Replicas of each control-plane Deployment, 1-10. Optional: 2, or 3 with
    /// highAvailability. With 2 or more, a PodDisruptionBudget keeps one serving through
    /// node drains, so the fail-closed validating webhook keeps answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub replicas: Option<i32>,
    /// CPU and memory for each control-plane container. Optional: the operator's defaults
    /// for each component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ComputeResources>,
    /// Control-plane log level. Default `info`. Valid values: `error`, `warn`, `info`,
    /// `debug`, `trace`.
    #[serde(default)]
    pub log_level: LogLevel,
    /// Run for availability: 3 replicas unless replicas says otherwise, spread across nodes,
    /// with PodDisruptionBudgets. Default false.
    #[serde(default)]
    pub high_availability: bool,
    /// What the apiserver does with a policy object (Server, AuthorizationPolicy,
    /// ServiceProfile, ...) when no controller replica answers the validating webhook.
    /// Default `Fail`: the object is refused, so nothing unvalidated reaches the proxies.
    /// `Ignore` admits it unchecked. The proxy injector always fails open.
    #[serde(default)]
    pub validator_failure_policy: FailurePolicy,
}

/// An admission webhook's `failurePolicy`: what the apiserver does when the webhook does
/// not answer.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FailurePolicy {
    /// Refuse the request (the default).
    #[default]
    Fail,
    /// Admit the request without the webhook's check.
    Ignore,
}

impl FailurePolicy {
    /// The policy as Kubernetes writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "Fail",
            Self::Ignore => "Ignore",
        }
    }
}

/// When Kubernetes pulls a container image: `Always`, `IfNotPresent` or `Never`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ImagePullPolicy {
    /// Pull on every container start.
    Always,
    /// Pull only when the node does not have the image (the default).
    #[default]
    IfNotPresent,
    /// Never pull; the image must be on the node.
    Never,
}

impl ImagePullPolicy {
    /// Every policy, in the order the docs list them.
    pub const ALL: [Self; 3] = [Self::Always, Self::IfNotPresent, Self::Never];

    /// The policy as Kubernetes writes it, like `IfNotPresent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }

    /// The policy named `name` (see [`Self::as_str`]), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

fn default_proxy_log_level() -> LogLevel {
    LogLevel::Warn
}

fn default_inbound_policy() -> AccessPolicy {
    AccessPolicy::AllUnauthenticated
}

fn default_opaque_ports() -> Vec<PortRange> {
    DEFAULT_OPAQUE_PORTS
        .iter()
        .copied()
        .map(PortRange::Port)
        .collect()
}

/// Defaults for injected proxies.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Proxy {
    /// Proxy image reference, like `registry.example.com/trellis/proxy:0.1.0`. Optional:
    /// the proxy image of spec.version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512), regex(pattern = IMAGE_PATTERN))]
    pub image: Option<String>,
    /// When to pull the proxy image. Default `IfNotPresent`. Valid values: `Always`,
    /// `IfNotPresent`, `Never`.
    #[serde(default)]
    pub image_pull_policy: ImagePullPolicy,
    /// CPU and memory of the proxy container. Optional: no requests or limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ComputeResources>,
    /// Proxy log level. Default `warn`. Valid values: `error`, `warn`, `info`, `debug`,
    /// `trace`.
    #[serde(default = "default_proxy_log_level")]
    pub log_level: LogLevel,
    /// Who may connect to meshed pods' ports that no Server covers. Default
    /// `all-unauthenticated`. Valid values: `deny`, `audit`, `all-authenticated`,
    /// `all-unauthenticated`, `cluster-authenticated`, `cluster-unauthenticated`.
    #[serde(default = "default_inbound_policy")]
    pub default_inbound_policy: AccessPolicy,
    /// Ports whose traffic is forwarded as opaque TCP (over mTLS) without protocol
    /// detection: use it for protocols where the server speaks first. Each entry is a port
    /// (`3306`) or a range string (`"4000-4100"`). Default: 25, 587, 3306, 4444, 5432, 6379,
    /// 9300, 11211. At most 64 entries.
    #[serde(default = "default_opaque_ports")]
    #[schemars(length(max = MAX_PORT_RANGES))]
    pub opaque_ports: Vec<PortRange>,
    /// Inbound ports that bypass the proxy entirely (no mTLS, metrics or policy). Each entry
    /// is a port or a range string. Default none. At most 64 entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_PORT_RANGES))]
    pub skip_inbound_ports: Vec<PortRange>,
    /// Outbound destination ports that bypass the proxy entirely. Each entry is a port or a
    /// range string. Default none. At most 64 entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_PORT_RANGES))]
    pub skip_outbound_ports: Vec<PortRange>,
    /// Worker threads of each proxy, 1-64. Optional: from the proxy's CPU limit, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub cores: Option<i32>,
}

impl Default for Proxy {
    fn default() -> Self {
        Self {
            image: None,
            image_pull_policy: ImagePullPolicy::default(),
            resources: None,
            log_level: default_proxy_log_level(),
            default_inbound_policy: default_inbound_policy(),
            opaque_ports: default_opaque_ports(),
            skip_inbound_ports: Vec::new(),
            skip_outbound_ports: Vec::new(),
            cores: None,
        }
    }
}

/// How meshed workloads move to a new proxy version: `Manual` or `Automatic`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum UpgradeStrategy {
    /// Workloads keep their proxy until you restart them; status counts the outdated ones
    /// (the default).
    #[default]
    Manual,
    /// Once the control plane is Ready at the new version, the operator restarts meshed
    /// workloads in batches of dataPlane.batchSize.
    Automatic,
}

fn default_batch_size() -> i32 {
    1
}

/// Data-plane upgrade settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataPlane {
    /// How meshed workloads move to a new proxy version. Default `Manual`. Valid values:
    /// `Manual`, `Automatic`.
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
    /// Workloads (Deployments, StatefulSets, DaemonSets) restarted at a time when
    /// upgradeStrategy is Automatic, 1-100. Default 1.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 100))]
    pub batch_size: i32,
}

impl Default for DataPlane {
    fn default() -> Self {
        Self {
            upgrade_strategy: UpgradeStrategy::default(),
            batch_size: default_batch_size(),
        }
    }
}

/// Optional components, all disabled by default.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Extensions {
    /// Metrics API, live tap and dashboard.
    #[serde(default)]
    pub viz: Viz,
    /// Linking clusters: a gateway for traffic from other clusters and mirrored services.
    #[serde(default)]
    pub multicluster: Multicluster,
    /// Distributed tracing: proxies emit spans to an OpenTelemetry collector.
    #[serde(default)]
    pub tracing: Tracing,
}

/// The viz extension: metrics API over Prometheus, tap and a dashboard.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Viz {
    /// Install viz. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// Which Prometheus stores the proxies' metrics.
    #[serde(default)]
    pub prometheus: Prometheus,
    /// The web dashboard.
    #[serde(default)]
    pub dashboard: Dashboard,
}

/// Which Prometheus viz uses: `Bundled` or `External`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PrometheusMode {
    /// The operator runs a Prometheus in the Mesh namespace that scrapes the proxies (the
    /// default).
    #[default]
    Bundled,
    /// Use your Prometheus at prometheus.url; it must scrape the proxies' admin port 4191.
    External,
}

/// The Prometheus that viz reads metrics from.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(extend(
    "x-kubernetes-validations" = set_only_when(
        "url",
        "mode",
        "External",
        "give your Prometheus's address, like http://prometheus.monitoring:9090",
    ),
))]
pub struct Prometheus {
    /// Bundled (the default) or External. Valid values: `Bundled`, `External`.
    #[serde(default)]
    pub mode: PrometheusMode,
    /// Base URL of your Prometheus, like `http://prometheus.monitoring:9090`. Required for
    /// mode External; not allowed for Bundled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[schemars(extend("x-kubernetes-validations" = [http_url("http://prometheus.monitoring:9090")]))]
    pub url: Option<String>,
}

/// The viz dashboard.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Dashboard {
    /// Run the web dashboard when viz is enabled. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for Dashboard {
    fn default() -> Self {
        Self {
            enabled: default_true(),
        }
    }
}

/// The multicluster extension.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Multicluster {
    /// Install multicluster. Default false. Needs trust anchors shared with the linked
    /// clusters (identity.trustAnchors.source ConfigMap or Secret).
    #[serde(default)]
    pub enabled: bool,
    /// The gateway that receives traffic from linked clusters.
    #[serde(default)]
    pub gateway: MulticlusterGateway,
}

/// How the multicluster gateway is exposed: `LoadBalancer`, `NodePort` or `ClusterIP`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum GatewayServiceType {
    /// A cloud load balancer (the default).
    #[default]
    LoadBalancer,
    /// A port on every node.
    NodePort,
    /// Cluster-internal only, for flat networks or your own exposure.
    ClusterIP,
}

fn default_gateway_port() -> i32 {
    4143
}

/// The multicluster gateway.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MulticlusterGateway {
    /// Run the gateway. Default true. Disable it for flat networks where pods reach each
    /// other across clusters directly.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How the gateway Service is exposed. Default `LoadBalancer`. Valid values:
    /// `LoadBalancer`, `NodePort`, `ClusterIP`.
    #[serde(default)]
    pub service_type: GatewayServiceType,
    /// Port the gateway listens on, 1-65535. Default 4143.
    #[serde(default = "default_gateway_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

impl Default for MulticlusterGateway {
    fn default() -> Self {
        Self {
            enabled: default_true(),
            service_type: GatewayServiceType::default(),
            port: default_gateway_port(),
        }
    }
}

fn default_sampling() -> f64 {
    0.01
}

/// The tracing extension.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    /// Emit spans from the proxies. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// OTLP endpoint of your OpenTelemetry collector, like
    /// `http://otel-collector.tracing:4317`. Optional: the operator runs a collector in the
    /// Mesh namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[schemars(extend("x-kubernetes-validations" = [http_url("http://otel-collector.tracing:4317")]))]
    pub collector_endpoint: Option<String>,
    /// Share of requests traced when the caller sent no trace context, from 0 to 1.
    /// Default 0.01 (1%).
    #[serde(default = "default_sampling")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sampling: f64,
}

impl Default for Tracing {
    fn default() -> Self {
        Self {
            enabled: false,
            collector_endpoint: None,
            sampling: default_sampling(),
        }
    }
}

/// What the operator observed about the installation.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MeshStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current state: Ready, Reconciled, Progressing, Degraded, IdentityHealthy (and
    /// Reconciling, Stalled for Flux).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::common::condition::schema")]
    pub conditions: Vec<Condition>,
    /// The version running (it lags spec.version during an upgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Ready components out of all components, like `4/4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components_ready: Option<String>,
    /// Readiness of each control-plane component and extension.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub components: Vec<ComponentStatus>,
    /// Pods running a Trellis proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meshed_pods: Option<i32>,
    /// Meshed pods whose proxy is at `spec.version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to_date_pods: Option<i32>,
    /// Expiry and rotation state of the identity material.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityStatus>,
}

/// Readiness of one component.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Component name, like `destination` or `viz-prometheus`.
    pub name: String,
    /// Whether every replica is ready at the desired version.
    pub ready: bool,
    /// Version the component runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What is missing when not ready, like `deployment trellis-destination 1/2 available`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Stage of a trust rotation.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RotationPhase {
    /// No rotation in progress.
    #[default]
    Stable,
    /// The trust bundle holds old and new anchors; waiting for every proxy to hold it.
    BundleExtended,
    /// A new issuer signed by the new anchor is active; waiting for identity to use it.
    IssuerSwitched,
    /// Proxies are renewing their certificates from the new issuer.
    Reissuing,
    /// The old anchor was removed from the bundle; waiting for every proxy to hold it.
    BundleTrimmed,
}

/// Expiry and rotation state of the identity material.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IdentityStatus {
    /// When the trust anchor that expires first stops being valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_anchor_not_after: Option<Time>,
    /// When the issuer certificate stops being valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_not_after: Option<Time>,
    /// Serial number (hex) of the issuer the identity service uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_serial: Option<String>,
    /// Stage of the trust rotation in progress, `Stable` when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_phase: Option<RotationPhase>,
}

#[cfg(test)]
mod tests;
