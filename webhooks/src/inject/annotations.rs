//! The `trellis.dev/inject` switch and the `config.trellis.dev/*` overrides of the Mesh's
//! proxy defaults (pod annotations beat the namespace's, which beat the Mesh).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity,
};
use trellis_api::well_known::{
    CONFIG_ANNOTATION_PREFIX, DEFAULT_INBOUND_POLICY_ANNOTATION, INJECT_ANNOTATION,
    OPAQUE_PORTS_ANNOTATION, SKIP_INBOUND_PORTS_ANNOTATION,
};

use trellis_crds::{
    common::{access_policy::AccessPolicy, log_level::LogLevel},
    v1alpha1::mesh::ImagePullPolicy,
};

use super::template::{InjectConfig, ProxyOptions, ProxySettings};

/// `config.trellis.dev/proxy-image`: the proxy image (repository and tag).
pub const PROXY_IMAGE: &str = "config.trellis.dev/proxy-image";
/// `config.trellis.dev/proxy-version`: the proxy image tag.
pub const PROXY_VERSION: &str = "config.trellis.dev/proxy-version";
/// `config.trellis.dev/image-pull-policy`: pull policy of the proxy and init images.
pub const IMAGE_PULL_POLICY: &str = "config.trellis.dev/image-pull-policy";
/// `config.trellis.dev/proxy-log-level`: `TRELLIS_PROXY_LOG`.
pub const PROXY_LOG_LEVEL: &str = "config.trellis.dev/proxy-log-level";
/// `config.trellis.dev/proxy-log-format`: `TRELLIS_PROXY_LOG_FORMAT` (`plain` or `json`).
pub const PROXY_LOG_FORMAT: &str = "config.trellis.dev/proxy-log-format";
/// `config.trellis.dev/skip-outbound-ports`: outbound ports the init container ignores.
pub const SKIP_OUTBOUND_PORTS: &str = "config.trellis.dev/skip-outbound-ports";
/// `config.trellis.dev/proxy-cpu-request`.
pub const PROXY_CPU_REQUEST: &str = "config.trellis.dev/proxy-cpu-request";
/// `config.trellis.dev/proxy-cpu-limit`.
pub const PROXY_CPU_LIMIT: &str = "config.trellis.dev/proxy-cpu-limit";
/// `config.trellis.dev/proxy-memory-request`.
pub const PROXY_MEMORY_REQUEST: &str = "config.trellis.dev/proxy-memory-request";
/// `config.trellis.dev/proxy-memory-limit`.
pub const PROXY_MEMORY_LIMIT: &str = "config.trellis.dev/proxy-memory-limit";
/// `config.trellis.dev/proxy-enable-native-sidecar`: `true` or `false`.
pub const PROXY_ENABLE_NATIVE_SIDECAR: &str = "config.trellis.dev/proxy-enable-native-sidecar";

const LOG_FORMATS: [&str; 2] = ["plain", "json"];

/// What `trellis.dev/inject` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectMode {
    /// Inject the proxy.
    Enabled,
    /// Inject the proxy in ingress mode (`TRELLIS_PROXY_INGRESS_MODE=true`).
    Ingress,
    /// Do not inject.
    Disabled,
}

/// The values `trellis.dev/inject` accepts.
pub const INJECT_VALUES: [&str; 3] = ["enabled", "ingress", "disabled"];

impl InjectMode {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "enabled" => Some(Self::Enabled),
            "ingress" => Some(Self::Ingress),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// The injection decision: the pod's `trellis.dev/inject` wins over its namespace's.
///
/// An unknown value counts as absent. `None` means neither asks for anything.
pub fn inject_mode(
    pod: &BTreeMap<String, String>,
    namespace: &BTreeMap<String, String>,
) -> Option<InjectMode> {
    pod.get(INJECT_ANNOTATION)
        .and_then(|v| InjectMode::parse(v))
        .or_else(|| {
            namespace
                .get(INJECT_ANNOTATION)
                .and_then(|v| InjectMode::parse(v))
        })
}

/// Warnings for `trellis.dev/inject` values that are not one of [`INJECT_VALUES`] (they
/// count as absent), on the pod and on its namespace `namespace_name`.
pub fn unknown_inject_values(
    pod: &BTreeMap<String, String>,
    namespace: &BTreeMap<String, String>,
    namespace_name: &str,
) -> Vec<String> {
    let accepted = INJECT_VALUES.join(", ");
    [
        (
            pod,
            "the pod".to_string(),
            "its namespace's annotation decides",
        ),
        (
            namespace,
            format!("namespace {namespace_name}"),
            "its pods are injected only when they ask",
        ),
    ]
    .into_iter()
    .filter_map(|(annotations, owner, fallback)| {
        let value = annotations.get(INJECT_ANNOTATION)?;
        InjectMode::parse(value).is_none().then(|| {
            format!(
                "annotation {INJECT_ANNOTATION}={value:?} on {owner} is not a known value and is \
                 ignored ({fallback}); use one of {accepted}"
            )
        })
    })
    .collect()
}

/// The annotations that configure a pod: the namespace's `config.trellis.dev/*` overlaid
/// with the pod's own.
pub fn merged_config(
    pod: &BTreeMap<String, String>,
    namespace: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    namespace
        .iter()
        .chain(pod.iter())
        .filter(|(k, _)| k.starts_with(CONFIG_ANNOTATION_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Reads `config.trellis.dev/*` values over defaults, collecting a warning for each value
/// that is ignored.
struct Overrides<'a> {
    annotations: &'a BTreeMap<String, String>,
    warnings: Vec<String>,
}

impl Overrides<'_> {
    /// The annotation `key` if `check` accepts it (as `check` returns it), else `default`.
    fn text(
        &mut self,
        key: &str,
        default: &str,
        check: &dyn Fn(&str) -> Result<String, String>,
    ) -> String {
        let Some(value) = self.annotations.get(key) else {
            return default.to_string();
        };
        check(value.trim()).unwrap_or_else(|why| {
            self.ignored(key, value, &why, default);
            default.to_string()
        })
    }

    /// The one of `all` named by annotation `key`, else `default`.
    fn choice<T: Copy>(
        &mut self,
        key: &str,
        default: T,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> T {
        let Some(value) = self.annotations.get(key) else {
            return default;
        };
        let trimmed = value.trim();
        all.iter()
            .copied()
            .find(|v| name(*v) == trimmed)
            .unwrap_or_else(|| {
                let names: Vec<_> = all.iter().map(|v| name(*v)).collect();
                let why = format!("valid values are {}", names.join(", "));
                self.ignored(key, value, &why, name(default));
                default
            })
    }

    fn ignored(&mut self, key: &str, value: &str, why: &str, default: &str) {
        self.warnings.push(format!(
            "annotation {key}={value:?} ignored: {why}; using {default:?}"
        ));
    }
}

/// Applies `annotations` to the Mesh defaults in `config`.
///
/// An invalid value is ignored (the default stays) and reported in the returned warnings,
/// which the apiserver shows to whoever created the pod.
pub fn settings(
    config: &InjectConfig,
    annotations: &BTreeMap<String, String>,
    mode: InjectMode,
) -> (ProxySettings, Vec<String>) {
    let defaults = &config.options;
    let mut read = Overrides {
        annotations,
        warnings: Vec::new(),
    };
    let version = read.text(PROXY_VERSION, &config.proxy_version, &not_empty);
    let default_image = if annotations.contains_key(PROXY_VERSION) {
        config.proxy_image.with_tag(&version)
    } else {
        config.proxy_image.clone()
    };
    let image = read.text(PROXY_IMAGE, &default_image.to_string(), &not_empty);
    let image_pull_policy = read.choice(
        IMAGE_PULL_POLICY,
        defaults.image_pull_policy,
        &ImagePullPolicy::ALL,
        ImagePullPolicy::as_str,
    );
    let log_level = read.choice(
        PROXY_LOG_LEVEL,
        defaults.log_level,
        &LogLevel::ALL,
        LogLevel::as_str,
    );
    let log_format = read.text(
        PROXY_LOG_FORMAT,
        &defaults.log_format,
        &one_of(&LOG_FORMATS),
    );
    let default_inbound_policy = read.choice(
        DEFAULT_INBOUND_POLICY_ANNOTATION,
        defaults.default_inbound_policy,
        &AccessPolicy::ALL,
        AccessPolicy::as_str,
    );
    let opaque_ports = read.text(OPAQUE_PORTS_ANNOTATION, &defaults.opaque_ports, &port_list);
    let skip_inbound_ports = read.text(
        SKIP_INBOUND_PORTS_ANNOTATION,
        &defaults.skip_inbound_ports,
        &port_list,
    );
    let skip_outbound_ports = read.text(
        SKIP_OUTBOUND_PORTS,
        &defaults.skip_outbound_ports,
        &port_list,
    );
    let native_sidecar = read.choice(
        PROXY_ENABLE_NATIVE_SIDECAR,
        config.native_sidecar,
        &[true, false],
        |on| if on { "true" } else { "false" },
    );
    let mut warnings = read.warnings;
    let resources = resource_overrides(defaults.resources.clone(), annotations, &mut warnings);

    let settings = ProxySettings {
        image,
        version,
        options: ProxyOptions {
            image_pull_policy,
            log_level,
            log_format,
            default_inbound_policy,
            opaque_ports,
            skip_inbound_ports,
            skip_outbound_ports,
            resources,
        },
        native_sidecar,
        ingress: mode == InjectMode::Ingress,
    };
    (settings, warnings)
}

/// Applies the `config.trellis.dev/proxy-{cpu,memory}-{request,limit}` annotations to
/// `resources`, warning about (and skipping) values that are not quantities.
fn resource_overrides(
    mut resources: Option<ResourceRequirements>,
    annotations: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Option<ResourceRequirements> {
    for (key, section, resource) in [
        (PROXY_CPU_REQUEST, Section::Requests, "cpu"),
        (PROXY_CPU_LIMIT, Section::Limits, "cpu"),
        (PROXY_MEMORY_REQUEST, Section::Requests, "memory"),
        (PROXY_MEMORY_LIMIT, Section::Limits, "memory"),
    ] {
        let Some(value) = annotations.get(key) else {
            continue;
        };
        let value = value.trim();
        if !is_quantity(value) {
            warnings.push(format!(
                "annotation {key}={value:?} ignored: must be a quantity like 100m, 0.5, 64Mi or 1Gi"
            ));
            continue;
        }
        let requirements = resources.get_or_insert_with(ResourceRequirements::default);
        let map = match section {
            Section::Requests => requirements.requests.get_or_insert_with(BTreeMap::new),
            Section::Limits => requirements.limits.get_or_insert_with(BTreeMap::new),
        };
        map.insert(resource.to_string(), Quantity(value.to_string()));
    }
    resources
}

#[derive(Clone, Copy)]
enum Section {
    Requests,
    Limits,
}

/// Accepts `value` when it is one of `allowed`.
fn one_of(allowed: &'static [&'static str]) -> impl Fn(&str) -> Result<String, String> {
    move |v: &str| {
        if allowed.contains(&v) {
            Ok(v.to_string())
        } else {
            Err(format!("valid values are {}", allowed.join(", ")))
        }
    }
}

/// Accepts a non-empty value without whitespace (an image or a tag).
fn not_empty(v: &str) -> Result<String, String> {
    if v.is_empty() || v.chars().any(char::is_whitespace) {
        Err("must be non-empty without whitespace".to_string())
    } else {
        Ok(v.to_string())
    }
}

/// Normalizes a list of ports and inclusive ranges, like `25, 4000-4100`, to `25,4000-4100`.
/// An empty string is an empty list.
pub fn port_list(value: &str) -> Result<String, String> {
    trellis_api::ports::normalize(value).map_err(|e| format!("{e} (write lists like 25,4000-4100)"))
}

/// Whether `value` looks like a Kubernetes quantity (`100m`, `0.5`, `64Mi`, `1G`, `1e3`).
fn is_quantity(value: &str) -> bool {
    const SUFFIXES: [&str; 15] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    let number = SUFFIXES
        .iter()
        .find_map(|s| value.strip_suffix(s))
        .unwrap_or(value);
    let number = match number.split_once(['e', 'E']) {
        Some((mantissa, exponent))
            if exponent
                .trim_start_matches(['+', '-'])
                .parse::<u32>()
                .is_ok() =>
        {
            mantissa
        }
        Some(_) => return false,
        None => number,
    };
    !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.chars().filter(|c| *c == '.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit())
}
