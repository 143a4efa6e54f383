//! The injected containers (trellis-proxy-init and trellis-proxy), their volumes, and the
//! settings they are built from: Mesh-wide ([`InjectConfig`]) and per pod ([`ProxySettings`]).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
        HTTPGetAction, ObjectFieldSelector, Pod, Probe, ProjectedVolumeSource,
        ResourceRequirements, SeccompProfile, SecurityContext, ServiceAccountTokenProjection,
        Volume, VolumeMount, VolumeProjection,
    },
    apimachinery::pkg::{api::resource::Quantity, util::intstr::IntOrString},
};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use trellis_api::well_known::{
    CONTROLLER_NAME, DEFAULT_CLUSTER_DOMAIN, DESTINATION_PORT, DESTINATION_SERVICE, IDENTITY_PORT,
    IDENTITY_SERVICE, IDENTITY_TOKEN_AUDIENCE, POLICY_PORT, POLICY_SERVICE, PROXY_ADMIN_PORT,
    PROXY_CONTROL_PORT, PROXY_ENV_PREFIX, PROXY_INBOUND_PORT, PROXY_OUTBOUND_PORT, PROXY_UID,
    identity_name,
};
use trellis_crds::{
    common::{access_policy::AccessPolicy, log_level::LogLevel, resources::ComputeResources},
    settings::{MeshSettings, image::ImageRef},
    v1alpha1::mesh::ImagePullPolicy,
};

/// Name of the injected proxy container.
pub const PROXY_CONTAINER: &str = "trellis-proxy";
/// Name of the injected init container that installs the iptables redirection.
pub const PROXY_INIT_CONTAINER: &str = "trellis-proxy-init";
/// Command of the init container (shipped in the proxy image).
pub const PROXY_INIT_COMMAND: &str = "trellis-proxy-init";
/// Uid of the init container: root, with only NET_ADMIN and NET_RAW. Container runtimes give
/// a non-root user no capabilities, and iptables needs those two (as Istio's init does).
pub const PROXY_INIT_UID: i64 = 0;
/// Volume (memory emptyDir) where the proxy keeps its key and CSR.
pub const IDENTITY_DIR_VOLUME: &str = "trellis-identity-end-entity";
/// Mount path of [`IDENTITY_DIR_VOLUME`].
pub const IDENTITY_DIR_PATH: &str = "/var/run/trellis/identity/end-entity";
/// Volume holding the projected ServiceAccount token for Certify.
pub const IDENTITY_TOKEN_VOLUME: &str = "trellis-identity-token";
/// Mount path of [`IDENTITY_TOKEN_VOLUME`].
pub const IDENTITY_TOKEN_DIR: &str = "/var/run/secrets/tokens";
/// File name of the token inside [`IDENTITY_TOKEN_DIR`].
pub const IDENTITY_TOKEN_FILE: &str = "trellis-identity-token";
/// Lifetime requested for the projected token; the kubelet refreshes it at 80%.
pub const IDENTITY_TOKEN_EXPIRATION_SECONDS: i64 = 86_400;
/// Cluster networks the proxy treats as in-cluster when none are configured: RFC 1918,
/// CGNAT, ULA and the RFC 2544 block the local test cluster uses.
pub const DEFAULT_CLUSTER_NETWORKS: &str =
    "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,198.18.0.0/15,fd00::/8";
/// Log format of the proxy when none is configured.
pub const DEFAULT_LOG_FORMAT: &str = "plain";
/// Whether the proxy is a native sidecar when the cluster's version is not known.
pub const DEFAULT_NATIVE_SIDECAR: bool = true;
/// The first Kubernetes version, as (major, minor), with native sidecars on by default.
pub const NATIVE_SIDECAR_SINCE: (u32, u32) = (1, 29);

/// Proxy options the Mesh sets for every pod, which a pod's or namespace's
/// `config.trellis.dev/*` annotations may override.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyOptions {
    /// Image pull policy of the proxy and init containers.
    pub image_pull_policy: ImagePullPolicy,
    /// Proxy log level (`TRELLIS_PROXY_LOG`).
    pub log_level: LogLevel,
    /// Proxy log format, `plain` or `json` (`TRELLIS_PROXY_LOG_FORMAT`).
    pub log_format: String,
    /// Default inbound policy (`TRELLIS_PROXY_INBOUND_DEFAULT_POLICY`).
    pub default_inbound_policy: AccessPolicy,
    /// Opaque ports, comma-separated ports and `a-b` ranges.
    pub opaque_ports: String,
    /// Inbound ports that bypass the proxy (the init container does not redirect them).
    pub skip_inbound_ports: String,
    /// Outbound ports that bypass the proxy (the init container does not redirect them).
    pub skip_outbound_ports: String,
    /// Resources of the proxy container.
    pub resources: Option<ResourceRequirements>,
}

/// Mesh-wide injection settings: the Mesh's proxy defaults plus the control plane's
/// addresses and trust bundle. Built by the operator with [`InjectConfig::from_settings`].
#[derive(Clone, Debug, PartialEq)]
pub struct InjectConfig {
    /// Proxy image (also runs `trellis-proxy-init`).
    pub proxy_image: ImageRef,
    /// Proxy version recorded on injected pods.
    pub proxy_version: String,
    /// The Mesh's proxy options, before a pod's annotations override them.
    pub options: ProxyOptions,
    /// Proxy worker threads, when set.
    pub cores: Option<u16>,
    /// Namespace of the control plane; its pods are never injected.
    pub control_plane_namespace: String,
    /// Trust domain of workload identities.
    pub trust_domain: String,
    /// Cluster DNS domain, like `cluster.local`.
    pub cluster_domain: String,
    /// Networks the proxy considers in-cluster (`TRELLIS_PROXY_POLICY_CLUSTER_NETWORKS`).
    pub cluster_networks: String,
    /// PEM trust bundle the proxy verifies peers against (empty until the operator has one).
    pub trust_anchors_pem: String,
    /// Whether the proxy runs as a native sidecar (init container, restartPolicy Always);
    /// otherwise it is the pod's first container. See [`native_sidecar_supported`].
    pub native_sidecar: bool,
}

impl InjectConfig {
    /// Settings from a checked Mesh spec: the proxy image is `spec.proxy.image` or
    /// `<image_repository>/proxy:<spec.version>`; `trust_anchors_pem` is the current bundle.
    pub fn from_settings(
        mesh: &MeshSettings,
        image_repository: &str,
        trust_anchors_pem: &str,
    ) -> Self {
        let proxy = &mesh.proxy;
        Self {
            proxy_image: mesh.proxy_image(image_repository),
            proxy_version: mesh.version.clone(),
            options: ProxyOptions {
                image_pull_policy: proxy.image_pull_policy,
                log_level: proxy.log_level,
                log_format: DEFAULT_LOG_FORMAT.to_string(),
                default_inbound_policy: proxy.default_inbound_policy,
                opaque_ports: proxy.opaque_ports.to_string(),
                skip_inbound_ports: proxy.skip_inbound_ports.to_string(),
                skip_outbound_ports: proxy.skip_outbound_ports.to_string(),
                resources: proxy.resources.as_ref().map(resource_requirements),
            },
            cores: proxy.cores,
            control_plane_namespace: mesh.namespace.clone(),
            trust_domain: mesh.identity.trust_domain.clone(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            cluster_networks: DEFAULT_CLUSTER_NETWORKS.to_string(),
            trust_anchors_pem: trust_anchors_pem.to_string(),
            native_sidecar: DEFAULT_NATIVE_SIDECAR,
        }
    }

    /// Whether [`Self::trust_anchors_pem`] holds a usable PEM bundle; without one the
    /// injected proxy would refuse to start, so the injector leaves pods alone.
    pub fn has_trust_anchors(&self) -> bool {
        trust_anchors_valid(&self.trust_anchors_pem)
    }

    fn service_addr(&self, service: &str, port: u16) -> String {
        format!(
            "{service}.{}.svc.{}.:{port}",
            self.control_plane_namespace, self.cluster_domain
        )
    }

    fn controller_identity(&self) -> String {
        identity_name(
            CONTROLLER_NAME,
            &self.control_plane_namespace,
            &self.trust_domain,
        )
    }
}

/// Proxy settings for one pod: the Mesh defaults with the pod's and namespace's
/// `config.trellis.dev/*` annotations applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxySettings {
    /// Proxy image reference.
    pub image: String,
    /// Proxy version recorded on the pod.
    pub version: String,
    /// The Mesh's proxy options with the pod's annotations applied.
    pub options: ProxyOptions,
    /// Whether the proxy runs as a native sidecar.
    pub native_sidecar: bool,
    /// Whether the proxy runs in ingress mode.
    pub ingress: bool,
}

/// Whether `pem` is a bundle of one or more PEM certificates and nothing undecodable.
pub fn trust_anchors_valid(pem: &str) -> bool {
    let mut certs = CertificateDer::pem_slice_iter(pem.as_bytes()).peekable();
    certs.peek().is_some() && certs.all(|cert| cert.is_ok_and(|der| !der.is_empty()))
}

/// Whether an apiserver whose `/version` says `major` and `minor` (like `1` and `29+`) runs
/// native sidecars (init containers with `restartPolicy: Always`) by default.
pub fn native_sidecar_supported(major: &str, minor: &str) -> bool {
    let number = |v: &str| -> Option<u32> {
        let digits: String = v.trim().chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    match (number(major), number(minor)) {
        (Some(major), Some(minor)) => (major, minor) >= NATIVE_SIDECAR_SINCE,
        _ => false,
    }
}

fn resource_requirements(resources: &ComputeResources) -> ResourceRequirements {
    let map = |amounts: &trellis_crds::common::resources::ResourceAmounts| {
        let mut map = BTreeMap::new();
        if let Some(cpu) = &amounts.cpu {
            map.insert("cpu".to_string(), cpu.clone());
        }
        if let Some(memory) = &amounts.memory {
            map.insert("memory".to_string(), memory.clone());
        }
        map
    };
    ResourceRequirements {
        requests: resources.requests.as_ref().map(map),
        limits: resources.limits.as_ref().map(map),
        ..ResourceRequirements::default()
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: format!("{PROXY_ENV_PREFIX}{name}"),
        value: Some(value.into()),
        value_from: None,
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_string(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// The container ports of the pod's app containers, comma-separated (for `INBOUND_PORTS`).
fn app_ports(pod: &Pod) -> String {
    let mut ports: Vec<i32> = pod
        .spec
        .iter()
        .flat_map(|spec| spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| p.container_port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The pod's container ports that fall in `ranges` (comma-separated ports and `a-b`
/// ranges), comma-separated in ascending order.
pub fn exposed_ports_in(pod: &Pod, ranges: &str) -> String {
    let bounds: Vec<(i32, i32)> = ranges
        .split(',')
        .filter_map(|item| {
            let item = item.trim();
            let (low, high) = item.split_once('-').unwrap_or((item, item));
            Some((low.trim().parse().ok()?, high.trim().parse().ok()?))
        })
        .collect();
    app_ports(pod)
        .split(',')
        .filter_map(|p| p.parse::<i32>().ok())
        .filter(|p| bounds.iter().any(|(low, high)| low <= p && p <= high))
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The environment of the proxy container (contract section 11).
pub fn proxy_env(config: &InjectConfig, settings: &ProxySettings, pod: &Pod) -> Vec<EnvVar> {
    let mut env_vars = vec![
        field_env("_pod_name", "metadata.name"),
        field_env("_pod_ns", "metadata.namespace"),
        field_env("_pod_sa", "spec.serviceAccountName"),
        field_env("_pod_nodeName", "spec.nodeName"),
        env("LOG", settings.options.log_level.as_str()),
        env("LOG_FORMAT", settings.options.log_format.clone()),
    ];
    env_vars.extend(discovery_env(config, settings));
    env_vars.extend(listener_env(settings, pod));
    env_vars.extend(identity_env(config));
    if let Some(cores) = config.cores {
        env_vars.push(env("CORES", cores.to_string()));
    }
    if settings.ingress {
        env_vars.push(env("INGRESS_MODE", "true"));
    }
    env_vars
}

/// Where the proxy finds the destination and policy services, and who it is to them.
fn discovery_env(config: &InjectConfig, settings: &ProxySettings) -> Vec<EnvVar> {
    let controller = config.controller_identity();
    vec![
        env(
            "DESTINATION_SVC_ADDR",
            config.service_addr(DESTINATION_SERVICE, DESTINATION_PORT),
        ),
        env("DESTINATION_SVC_NAME", controller.clone()),
        env(
            "DESTINATION_CONTEXT",
            r#"{"ns":"$(_pod_ns)","nodeName":"$(_pod_nodeName)","pod":"$(_pod_name)"}"#,
        ),
        env(
            "DESTINATION_PROFILE_SUFFIXES",
            format!("svc.{}.", config.cluster_domain),
        ),
        // Only in-cluster addresses get profile and endpoint lookups.
        env(
            "DESTINATION_PROFILE_NETWORKS",
            config.cluster_networks.clone(),
        ),
        env(
            "POLICY_SVC_ADDR",
            config.service_addr(POLICY_SERVICE, POLICY_PORT),
        ),
        env("POLICY_SVC_NAME", controller),
        env(
            "POLICY_WORKLOAD",
            r#"{"ns":"$(_pod_ns)","pod":"$(_pod_name)"}"#,
        ),
        env("POLICY_CLUSTER_NETWORKS", config.cluster_networks.clone()),
        env(
            "INBOUND_DEFAULT_POLICY",
            settings.options.default_inbound_policy.as_str(),
        ),
    ]
}

/// The proxy's listeners and the application ports it serves.
fn listener_env(settings: &ProxySettings, pod: &Pod) -> Vec<EnvVar> {
    vec![
        env(
            "INBOUND_LISTEN_ADDR",
            format!("0.0.0.0:{PROXY_INBOUND_PORT}"),
        ),
        env(
            "OUTBOUND_LISTEN_ADDR",
            format!("127.0.0.1:{PROXY_OUTBOUND_PORT}"),
        ),
        env(
            "CONTROL_LISTEN_ADDR",
            format!("0.0.0.0:{PROXY_CONTROL_PORT}"),
        ),
        env("ADMIN_LISTEN_ADDR", format!("0.0.0.0:{PROXY_ADMIN_PORT}")),
        env("INBOUND_PORTS", app_ports(pod)),
        env(
            "INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
            settings.options.opaque_ports.clone(),
        ),
    ]
}

/// The proxy's identity: trust anchors, token, the identity service and its local name.
fn identity_env(config: &InjectConfig) -> Vec<EnvVar> {
    vec![
        env("IDENTITY_DIR", IDENTITY_DIR_PATH),
        env("IDENTITY_TRUST_ANCHORS", config.trust_anchors_pem.clone()),
        env(
            "IDENTITY_TOKEN_FILE",
            format!("{IDENTITY_TOKEN_DIR}/{IDENTITY_TOKEN_FILE}"),
        ),
        env(
            "IDENTITY_SVC_ADDR",
            config.service_addr(IDENTITY_SERVICE, IDENTITY_PORT),
        ),
        env("IDENTITY_SVC_NAME", config.controller_identity()),
        env(
            "IDENTITY_LOCAL_NAME",
            format!(
                "$(_pod_sa).$(_pod_ns).serviceaccount.identity.trellis.{}",
                config.trust_domain
            ),
        ),
    ]
}

fn http_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(i32::from(PROXY_ADMIN_PORT)),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

fn port(name: &str, number: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: i32::from(number),
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }
}

/// The proxy container: as a native sidecar it carries `restartPolicy: Always` and a
/// startupProbe on `/ready`, so app containers start once the proxy is ready.
pub fn proxy_container(config: &InjectConfig, settings: &ProxySettings, pod: &Pod) -> Container {
    let mut startup_probe = http_probe("/ready");
    startup_probe.period_seconds = Some(1);
    startup_probe.failure_threshold = Some(120);
    Container {
        name: PROXY_CONTAINER.to_string(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some(settings.options.image_pull_policy.as_str().to_string()),
        env: Some(proxy_env(config, settings, pod)),
        ports: Some(vec![
            port("trellis-proxy", PROXY_INBOUND_PORT),
            port("trellis-admin", PROXY_ADMIN_PORT),
        ]),
        liveness_probe: Some(http_probe("/live")),
        readiness_probe: Some(http_probe("/ready")),
        startup_probe: settings.native_sidecar.then_some(startup_probe),
        restart_policy: settings.native_sidecar.then(|| "Always".to_string()),
        resources: settings.options.resources.clone(),
        security_context: Some(SecurityContext {
            run_as_user: Some(i64::from(PROXY_UID)),
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        volume_mounts: Some(vec![
            VolumeMount {
                name: IDENTITY_DIR_VOLUME.to_string(),
                mount_path: IDENTITY_DIR_PATH.to_string(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: IDENTITY_TOKEN_VOLUME.to_string(),
                mount_path: IDENTITY_TOKEN_DIR.to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}

/// The init container that installs the iptables redirection (contract section 12).
pub fn proxy_init_container(settings: &ProxySettings) -> Container {
    let mut inbound_ignore = format!("{PROXY_CONTROL_PORT},{PROXY_ADMIN_PORT}");
    if !settings.options.skip_inbound_ports.is_empty() {
        inbound_ignore.push(',');
        inbound_ignore.push_str(&settings.options.skip_inbound_ports);
    }
    let mut args = vec![
        "--incoming-proxy-port".to_string(),
        PROXY_INBOUND_PORT.to_string(),
        "--outgoing-proxy-port".to_string(),
        PROXY_OUTBOUND_PORT.to_string(),
        "--proxy-uid".to_string(),
        PROXY_UID.to_string(),
        "--inbound-ports-to-ignore".to_string(),
        inbound_ignore,
    ];
    if !settings.options.skip_outbound_ports.is_empty() {
        args.push("--outbound-ports-to-ignore".to_string());
        args.push(settings.options.skip_outbound_ports.clone());
    }
    let small = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])
    };
    Container {
        name: PROXY_INIT_CONTAINER.to_string(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some(settings.options.image_pull_policy.as_str().to_string()),
        command: Some(vec![PROXY_INIT_COMMAND.to_string()]),
        args: Some(args),
        resources: Some(ResourceRequirements {
            requests: Some(small("10m", "10Mi")),
            limits: Some(small("100m", "20Mi")),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_user: Some(PROXY_INIT_UID),
            // Overrides a pod-level runAsNonRoot: the rules need root's two capabilities.
            run_as_non_root: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".to_string(), "NET_RAW".to_string()]),
                drop: Some(vec!["ALL".to_string()]),
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Container::default()
    }
}

/// The volumes the proxy mounts: a memory emptyDir for its key and CSR, and the projected
/// ServiceAccount token with audience `identity.trellis.dev`.
pub fn volumes() -> Vec<Volume> {
    vec![
        Volume {
            name: IDENTITY_DIR_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_string()),
                size_limit: None,
            }),
            ..Volume::default()
        },
        Volume {
            name: IDENTITY_TOKEN_VOLUME.to_string(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(IDENTITY_TOKEN_AUDIENCE.to_string()),
                        expiration_seconds: Some(IDENTITY_TOKEN_EXPIRATION_SECONDS),
                        path: IDENTITY_TOKEN_FILE.to_string(),
                    }),
                    ..VolumeProjection::default()
                }]),
                default_mode: None,
            }),
            ..Volume::default()
        },
    ]
}
