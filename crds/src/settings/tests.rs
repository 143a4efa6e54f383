use std::time::Duration;

use serde_json::json;

use super::{image::ImageRef, *};
use crate::common::resources::ResourceAmounts;

fn spec(value: serde_json::Value) -> MeshSpec {
    serde_json::from_value(value).unwrap()
}

fn settings(value: serde_json::Value) -> MeshSettings {
    MeshSettings::try_from(&spec(value)).unwrap()
}

const fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}

#[test]
fn an_empty_spec_gives_the_defaults() {
    let s = settings(json!({}));
    assert_eq!(s.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(s.namespace, "trellis-system");
    assert_eq!(
        s.identity,
        IdentitySettings {
            trust_domain: "cluster.local".to_string(),
            trust_anchors: TrustAnchorsSettings::Generated {
                lifetime: hours(87600)
            },
            issuer: IssuerSettings::Generated {
                lifetime: hours(8760)
            },
            workload_certificate_lifetime: hours(24),
            clock_skew_allowance: Duration::from_secs(20),
            rotation: RotationSettings {
                automatic: true,
                issuer_renew_before: hours(720),
                trust_anchor_renew_before: hours(2160),
            },
        }
    );
    assert_eq!(
        s.control_plane,
        ControlPlaneSettings {
            replicas: DEFAULT_REPLICAS,
            resources: None,
            log_level: LogLevel::Info,
            high_availability: false,
            validator_failure_policy: FailurePolicy::Fail,
        }
    );
    assert_eq!(
        s.proxy,
        ProxyDefaults {
            image: None,
            image_pull_policy: ImagePullPolicy::IfNotPresent,
            resources: None,
            log_level: LogLevel::Warn,
            default_inbound_policy: AccessPolicy::AllUnauthenticated,
            opaque_ports: PortList(
                [25, 587, 3306, 4444, 5432, 6379, 9300, 11211]
                    .map(|p| (p, p))
                    .to_vec()
            ),
            skip_inbound_ports: PortList::default(),
            skip_outbound_ports: PortList::default(),
            cores: None,
        }
    );
    assert_eq!(
        s.data_plane,
        DataPlaneSettings {
            upgrade_strategy: UpgradeStrategy::Manual,
            batch_size: 1,
        }
    );
    assert_eq!(
        s.extensions,
        ExtensionSettings {
            viz: VizSettings {
                enabled: false,
                prometheus: PrometheusSettings::Bundled,
                dashboard: true,
            },
            multicluster: MulticlusterSettings {
                enabled: false,
                gateway_enabled: true,
                gateway_service_type: GatewayServiceType::LoadBalancer,
                gateway_port: 4143,
            },
            tracing: TracingSettings {
                enabled: false,
                collector_endpoint: None,
                sampling: 0.01,
            },
        }
    );
    assert_eq!(
        s.proxy_image("registry.test/trellis").to_string(),
        format!("registry.test/trellis/proxy:{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        s.controller_image("registry.test/trellis").to_string(),
        format!(
            "registry.test/trellis/controller:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn every_field_is_parsed() {
    let s = settings(json!({
        "version": "0.2.0-rc.1",
        "namespace": "mesh-a",
        "identity": {
            "trustDomain": "example.org",
            "trustAnchors": { "source": "Secret", "name": "roots" },
            "issuer": { "source": "Secret", "secretName": "issuer-tls" },
            "workloadCertificateLifetime": "1h30m",
            "clockSkewAllowance": "500ms",
            "rotation": { "automatic": false, "issuerRenewBefore": "48h", "trustAnchorRenewBefore": "96h" },
        },
        "controlPlane": {
            "replicas": 4, "highAvailability": true, "logLevel": "debug", "validatorFailurePolicy": "Ignore",
            "resources": { "limits": { "memory": "1Gi" } },
        },
        "proxy": {
            "image": "registry:5000/t/proxy:dev",
            "imagePullPolicy": "Always",
            "resources": { "requests": { "cpu": "100m" } },
            "logLevel": "trace",
            "defaultInboundPolicy": "cluster-authenticated",
            "opaquePorts": [3306, "4000-4100"],
            "skipInboundPorts": ["22"],
            "skipOutboundPorts": [443],
            "cores": 2,
        },
        "dataPlane": { "upgradeStrategy": "Automatic", "batchSize": 5 },
        "extensions": {
            "viz": { "enabled": true, "prometheus": { "mode": "External", "url": "http://prom:9090" }, "dashboard": { "enabled": false } },
            "multicluster": { "enabled": true, "gateway": { "enabled": false, "serviceType": "NodePort", "port": 4000 } },
            "tracing": { "enabled": true, "collectorEndpoint": "https://otel:4317", "sampling": 0.5 },
        },
    }));
    assert_eq!(s.version, "0.2.0-rc.1");
    assert_eq!(s.namespace, "mesh-a");
    assert_eq!(
        s.identity,
        IdentitySettings {
            trust_domain: "example.org".to_string(),
            trust_anchors: TrustAnchorsSettings::Secret {
                name: "roots".to_string(),
                key: "ca.crt".to_string(),
            },
            issuer: IssuerSettings::Secret {
                name: "issuer-tls".to_string()
            },
            workload_certificate_lifetime: Duration::from_secs(5400),
            clock_skew_allowance: Duration::from_millis(500),
            rotation: RotationSettings {
                automatic: false,
                issuer_renew_before: hours(48),
                trust_anchor_renew_before: hours(96),
            },
        }
    );
    let amounts = |cpu: Option<&str>, memory: Option<&str>| ResourceAmounts {
        cpu: cpu.map(|c| k8s_openapi::apimachinery::pkg::api::resource::Quantity(c.into())),
        memory: memory.map(|m| k8s_openapi::apimachinery::pkg::api::resource::Quantity(m.into())),
    };
    assert_eq!(
        s.control_plane,
        ControlPlaneSettings {
            replicas: 4,
            resources: Some(ComputeResources {
                requests: None,
                limits: Some(amounts(None, Some("1Gi"))),
            }),
            log_level: LogLevel::Debug,
            high_availability: true,
            validator_failure_policy: FailurePolicy::Ignore,
        }
    );
    assert_eq!(
        s.proxy,
        ProxyDefaults {
            image: Some(ImageRef {
                repository: "registry:5000/t/proxy".to_string(),
                tag: Some("dev".to_string()),
                digest: None,
            }),
            image_pull_policy: ImagePullPolicy::Always,
            resources: Some(ComputeResources {
                requests: Some(amounts(Some("100m"), None)),
                limits: None,
            }),
            log_level: LogLevel::Trace,
            default_inbound_policy: AccessPolicy::ClusterAuthenticated,
            opaque_ports: PortList(vec![(3306, 3306), (4000, 4100)]),
            skip_inbound_ports: PortList(vec![(22, 22)]),
            skip_outbound_ports: PortList(vec![(443, 443)]),
            cores: Some(2),
        }
    );
    assert_eq!(s.proxy.opaque_ports.to_string(), "3306,4000-4100");
    assert_eq!(
        s.proxy_image("ignored").to_string(),
        "registry:5000/t/proxy:dev"
    );
    assert_eq!(
        s.data_plane,
        DataPlaneSettings {
            upgrade_strategy: UpgradeStrategy::Automatic,
            batch_size: 5,
        }
    );
    assert_eq!(
        s.extensions,
        ExtensionSettings {
            viz: VizSettings {
                enabled: true,
                prometheus: PrometheusSettings::External {
                    url: "http://prom:9090".to_string()
                },
                dashboard: false,
            },
            multicluster: MulticlusterSettings {
                enabled: true,
                gateway_enabled: false,
                gateway_service_type: GatewayServiceType::NodePort,
                gateway_port: 4000,
            },
            tracing: TracingSettings {
                enabled: true,
                collector_endpoint: Some("https://otel:4317".to_string()),
                sampling: 0.5,
            },
        }
    );
    assert_eq!(s.extensions.viz.prometheus.mode(), PrometheusMode::External);
}

#[test]
fn sources_and_replicas_take_their_defaults() {
    let cases = [
        (
            json!({ "identity": { "trustAnchors": { "source": "ConfigMap", "name": "roots" }, "issuer": { "source": "Secret", "secretName": "i" } } }),
            TrustAnchorsSettings::ConfigMap {
                name: "roots".to_string(),
                key: "ca-bundle.crt".to_string(),
            },
        ),
        (
            json!({ "identity": { "trustAnchors": { "source": "Secret", "name": "roots", "key": "bundle.pem" }, "issuer": { "source": "Secret", "secretName": "i" } } }),
            TrustAnchorsSettings::Secret {
                name: "roots".to_string(),
                key: "bundle.pem".to_string(),
            },
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(settings(value).identity.trust_anchors, expected);
    }
    let ha = settings(json!({ "controlPlane": { "highAvailability": true } }));
    assert_eq!(ha.control_plane.replicas, DEFAULT_HA_REPLICAS);
}

/// One invalid field per case: the spec, the path the error must name, and a word of the fix.
#[test]
fn each_invalid_field_is_named() {
    let cases = [
        (json!({ "version": "latest" }), "spec.version", "0.1.0"),
        (
            json!({ "namespace": "Trellis" }),
            "spec.namespace",
            "DNS label",
        ),
        (
            json!({ "identity": { "trustDomain": "a_b" } }),
            "spec.identity.trustDomain",
            "DNS name",
        ),
        (
            json!({ "identity": { "workloadCertificateLifetime": "1d" } }),
            "spec.identity.workloadCertificateLifetime",
            "24h",
        ),
        (
            json!({ "identity": { "clockSkewAllowance": "20" } }),
            "spec.identity.clockSkewAllowance",
            "20s",
        ),
        (
            json!({ "identity": { "clockSkewAllowance": "25h" } }),
            "spec.identity.clockSkewAllowance",
            "shorter than workloadCertificateLifetime",
        ),
        (
            json!({ "identity": { "trustAnchors": { "lifetime": "ten years" } } }),
            "spec.identity.trustAnchors.lifetime",
            "87600h",
        ),
        (
            json!({ "identity": { "trustAnchors": { "name": "roots" } } }),
            "spec.identity.trustAnchors.source",
            "remove them",
        ),
        (
            json!({ "identity": { "trustAnchors": { "source": "Secret" }, "issuer": { "source": "Secret", "secretName": "i" } } }),
            "spec.identity.trustAnchors.name",
            "required",
        ),
        (
            json!({ "identity": { "trustAnchors": { "source": "Secret", "name": "Roots" }, "issuer": { "source": "Secret", "secretName": "i" } } }),
            "spec.identity.trustAnchors.name",
            "object name",
        ),
        (
            json!({ "identity": { "trustAnchors": { "source": "Secret", "name": "r", "key": "a/b" }, "issuer": { "source": "Secret", "secretName": "i" } } }),
            "spec.identity.trustAnchors.key",
            "key of letters",
        ),
        (
            json!({ "identity": { "issuer": { "lifetime": "1y" } } }),
            "spec.identity.issuer.lifetime",
            "8760h",
        ),
        (
            json!({ "identity": { "issuer": { "lifetime": "90000h" } } }),
            "spec.identity.issuer.lifetime",
            "shorter than trustAnchors.lifetime",
        ),
        (
            json!({ "identity": { "workloadCertificateLifetime": "9000h" } }),
            "spec.identity.workloadCertificateLifetime",
            "shorter than issuer.lifetime",
        ),
        (
            json!({ "identity": { "issuer": { "source": "Secret", "secretName": "i" } } }),
            "spec.identity.issuer.source",
            "ConfigMap or Secret",
        ),
        (
            json!({ "identity": { "trustAnchors": { "source": "ConfigMap", "name": "r" } } }),
            "spec.identity.issuer.source",
            "set issuer.source to Secret",
        ),
        (
            json!({ "identity": { "issuer": { "secretName": "i" } } }),
            "spec.identity.issuer.secretName",
            "only for source Secret",
        ),
        (
            json!({ "identity": { "trustAnchors": { "source": "Secret", "name": "r" }, "issuer": { "source": "Secret" } } }),
            "spec.identity.issuer.secretName",
            "required",
        ),
        (
            json!({ "identity": { "rotation": { "issuerRenewBefore": "30 days" } } }),
            "spec.identity.rotation.issuerRenewBefore",
            "720h",
        ),
        (
            json!({ "identity": { "rotation": { "issuerRenewBefore": "8760h" } } }),
            "spec.identity.rotation.issuerRenewBefore",
            "renewed continuously",
        ),
        (
            json!({ "identity": { "rotation": { "trustAnchorRenewBefore": "-1h" } } }),
            "spec.identity.rotation.trustAnchorRenewBefore",
            "2160h",
        ),
        (
            json!({ "identity": { "rotation": { "trustAnchorRenewBefore": "90000h" } } }),
            "spec.identity.rotation.trustAnchorRenewBefore",
            "renewed continuously",
        ),
        (
            json!({ "controlPlane": { "replicas": 11 } }),
            "spec.controlPlane.replicas",
            "from 1 to 10",
        ),
        (
            json!({ "controlPlane": { "replicas": 1, "highAvailability": true } }),
            "spec.controlPlane.replicas",
            "at least 2",
        ),
        (
            json!({ "proxy": { "image": "proxy image" } }),
            "spec.proxy.image",
            "registry.example.com",
        ),
        (
            json!({ "proxy": { "opaquePorts": [0] } }),
            "spec.proxy.opaquePorts[0]",
            "4000-4100",
        ),
        (
            json!({ "proxy": { "skipInboundPorts": [22, "9-8"] } }),
            "spec.proxy.skipInboundPorts[1]",
            "4000-4100",
        ),
        (
            json!({ "proxy": { "skipOutboundPorts": ["x"] } }),
            "spec.proxy.skipOutboundPorts[0]",
            "4000-4100",
        ),
        (
            json!({ "proxy": { "opaquePorts": vec![1; 65] } }),
            "spec.proxy.opaquePorts",
            "at most 64",
        ),
        (
            json!({ "proxy": { "cores": 65 } }),
            "spec.proxy.cores",
            "from 1 to 64",
        ),
        (
            json!({ "dataPlane": { "batchSize": 0 } }),
            "spec.dataPlane.batchSize",
            "from 1 to 100",
        ),
        (
            json!({ "extensions": { "viz": { "prometheus": { "url": "http://p" } } } }),
            "spec.extensions.viz.prometheus.url",
            "only for mode External",
        ),
        (
            json!({ "extensions": { "viz": { "prometheus": { "mode": "External" } } } }),
            "spec.extensions.viz.prometheus.url",
            "required",
        ),
        (
            json!({ "extensions": { "viz": { "prometheus": { "mode": "External", "url": "ftp://p" } } } }),
            "spec.extensions.viz.prometheus.url",
            "http or https",
        ),
        (
            json!({ "extensions": { "multicluster": { "enabled": true } } }),
            "spec.extensions.multicluster.enabled",
            "trustAnchors.source",
        ),
        (
            json!({ "extensions": { "multicluster": { "gateway": { "port": 70000 } } } }),
            "spec.extensions.multicluster.gateway.port",
            "from 1 to 65535",
        ),
        (
            json!({ "extensions": { "tracing": { "collectorEndpoint": "otel:4317" } } }),
            "spec.extensions.tracing.collectorEndpoint",
            "http or https",
        ),
        (
            json!({ "extensions": { "tracing": { "sampling": 1.5 } } }),
            "spec.extensions.tracing.sampling",
            "from 0 to 1",
        ),
    ];
    for (value, path, fix) in cases {
        let error = MeshSettings::try_from(&spec(value.clone())).unwrap_err();
        assert_eq!(error.paths(), [path], "{value}: {error}");
        let message = error.to_string();
        assert!(message.contains(path), "{message}");
        assert!(message.contains(fix), "{value}: {message} lacks {fix:?}");
    }
}

#[test]
fn every_invalid_field_is_collected_with_its_value() {
    let error = MeshSettings::try_from(&spec(json!({
        "identity": { "clockSkewAllowance": "soon", "issuer": { "lifetime": "1y" } },
        "proxy": { "cores": 0 },
    })))
    .unwrap_err();
    assert_eq!(
        error.paths(),
        [
            "spec.identity.clockSkewAllowance",
            "spec.identity.issuer.lifetime",
            "spec.proxy.cores"
        ]
    );
    assert_eq!(
        error.fields[0].to_string(),
        "spec.identity.clockSkewAllowance: \"soon\" is not a duration: write it like 20s (units ms, s, m, h)"
    );
    assert_eq!(error.fields[2].value, "0");
    assert!(
        error.to_string().starts_with("invalid Mesh spec: "),
        "{error}"
    );
}

#[test]
fn every_pattern_compiles() {
    for pattern in [&VERSION, &DNS_LABEL, &DNS_SUBDOMAIN, &IMAGE, &KEY] {
        assert!(pattern.is_some());
    }
}

#[test]
fn enum_names_are_their_serde_names() {
    let serde_name = |v: serde_json::Value| v.as_str().unwrap().to_string();
    for policy in AccessPolicy::ALL {
        assert_eq!(serde_name(json!(policy)), policy.as_str());
        assert_eq!(AccessPolicy::parse(policy.as_str()), Some(policy));
    }
    for policy in ImagePullPolicy::ALL {
        assert_eq!(serde_name(json!(policy)), policy.as_str());
        assert_eq!(ImagePullPolicy::parse(policy.as_str()), Some(policy));
    }
    for level in LogLevel::ALL {
        assert_eq!(serde_name(json!(level)), level.as_str());
        assert_eq!(LogLevel::parse(level.as_str()), Some(level));
    }
    assert_eq!(AccessPolicy::parse("allow"), None);
    assert_eq!(ImagePullPolicy::parse("always"), None);
    assert_eq!(LogLevel::parse("WARN"), None);
}

#[test]
fn image_references_print_back_as_parsed() {
    let cases = [
        ("proxy", "proxy", None, None, "proxy"),
        ("r/t/proxy:1", "r/t/proxy", Some("1"), None, "proxy"),
        (
            "registry:5000/t/proxy",
            "registry:5000/t/proxy",
            None,
            None,
            "proxy",
        ),
        (
            "registry:5000/proxy:2@sha256:ab",
            "registry:5000/proxy",
            Some("2"),
            Some("sha256:ab"),
            "proxy",
        ),
    ];
    for (input, repository, tag, digest, name) in cases {
        let image = ImageRef::parse(input).unwrap();
        assert_eq!(image.repository, repository, "{input}");
        assert_eq!(image.tag.as_deref(), tag, "{input}");
        assert_eq!(image.digest.as_deref(), digest, "{input}");
        assert_eq!(image.name(), name, "{input}");
        assert_eq!(image.to_string(), input);
    }
    for bad in ["", "a b", ":1", "r/:1", "r/p:", "r/p@"] {
        assert_eq!(ImageRef::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn with_tag_replaces_the_tag_but_keeps_a_digest() {
    let cases = [
        ("r/proxy:1", "r/proxy:2"),
        ("r/proxy", "r/proxy:2"),
        ("registry:5000/proxy", "registry:5000/proxy:2"),
        ("r/proxy@sha256:ab", "r/proxy@sha256:ab"),
    ];
    for (input, expected) in cases {
        let image = ImageRef::parse(input).unwrap();
        assert_eq!(image.with_tag("2").to_string(), expected, "{input}");
    }
}

#[test]
fn port_lists_print_and_contain() {
    let list = PortList(vec![(25, 25), (4000, 4100)]);
    assert_eq!(list.to_string(), "25,4000-4100");
    assert_eq!(list.entries(), ["25", "4000-4100"]);
    assert!(list.contains(25) && list.contains(4050) && !list.contains(26));
    assert_eq!(PortList::default().to_string(), "");
}
