//! The Trellis CRDs against the real apiserver: installation, samples, validation messages,
//! `kubectl explain` and `kubectl get` columns.
//!
//! Needs the local cluster (`tests/cluster/cluster up`). Every test installs the committed
//! `config/crds/` with server-side apply (idempotent, so tests may do it concurrently) and
//! waits for the CRDs to be Established and served. Cluster-scoped Mesh objects get
//! test-unique names and are deleted at the end.

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use trellis_crds::{
    common::condition::TRUE,
    v1alpha1::{
        mesh::{Mesh, MeshSpec, conditions as mesh_conditions, reasons as mesh_reasons},
        server::Server,
    },
};
use trellis_tests::{
    DEFAULT_TIMEOUT,
    cluster::{self, kubectl},
    eventually,
    k8s::{self, FIELD_MANAGER},
};

/// A Mesh name unique to this test run.
fn mesh_name(purpose: &str) -> String {
    format!("t-crds-{purpose}-{:06x}", rand::random::<u32>() % 0xff_ffff)
}

async fn delete_mesh(client: &Client, name: &str) {
    let api: Api<Mesh> = Api::all(client.clone());
    if let Err(e) = api.delete(name, &DeleteParams::background()).await {
        tracing::warn!(name, error = %e, "Could not delete test Mesh");
    }
}

fn sample(file: &str) -> String {
    let path = cluster::repo_root().join("config/samples").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One object the apiserver must reject, and the text its message must contain (the field
/// path first).
#[derive(Clone)]
struct Bad {
    what: &'static str,
    spec: &'static str,
    expect: &'static [&'static str],
}

/// Applies each bad object and checks the rejection message; reports every failure at once.
///
/// `header` is the object up to `metadata.name`; `spec` is appended under it.
async fn assert_rejected(client: &Client, ns: Option<&str>, header: &str, cases: &[Bad]) {
    let mut failures = Vec::new();
    for case in cases {
        let yaml = format!("{header}\n{}\n", case.spec);
        match k8s::apply_yaml(client, ns, &yaml).await {
            Ok(objects) => {
                failures.push(format!(
                    "{}: accepted, but must be rejected:\n{yaml}",
                    case.what
                ));
                for object in objects {
                    if ns.is_none() {
                        delete_mesh(client, &object.name_any()).await;
                    }
                }
            }
            Err(message) => {
                let missing: Vec<_> = case
                    .expect
                    .iter()
                    .filter(|e| !message.contains(**e))
                    .collect();
                if missing.is_empty() {
                    tracing::info!(case = case.what, %message, "Rejected as expected");
                } else {
                    failures.push(format!(
                        "{}: message lacks {missing:?}:\n  {message}",
                        case.what
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Installs the CRDs, then in a temporary namespace named after `prefix` checks that each
/// group of cases is rejected (objects `header` plus a case's spec).
async fn assert_rejected_in_temp_ns(prefix: &str, groups: &[(&'static str, &[Bad])]) {
    let client = cluster::client().await;
    k8s::install_crds(&client).await;
    let groups: Vec<(&'static str, Vec<Bad>)> = groups
        .iter()
        .map(|(header, cases)| (*header, cases.to_vec()))
        .collect();
    k8s::with_temp_ns(prefix, |client, ns| async move {
        for (header, cases) in &groups {
            assert_rejected(&client, Some(&ns), header, cases).await;
        }
    })
    .await;
}

#[tokio::test]
async fn crds_are_established_with_their_printer_columns() {
    let client = cluster::client().await;
    let crds = k8s::install_crds(&client).await;
    let names: Vec<_> = crds.iter().map(|c| c.name_any()).collect();
    assert_eq!(
        names,
        [
            "authorizationpolicies.policy.trellis.dev",
            "meshes.trellis.dev",
            "meshtlsauthentications.policy.trellis.dev",
            "networkauthentications.policy.trellis.dev",
            "servers.policy.trellis.dev",
            "serviceprofiles.trellis.dev",
        ]
    );
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mesh = api.get("meshes.trellis.dev").await.expect("get Mesh CRD");
    assert_eq!(mesh.spec.scope, "Cluster");
    let columns: Vec<_> = mesh.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Ready",
            "Version",
            "Components",
            "Meshed",
            "Status",
            "Desired",
            "Anchor-Expiry",
            "Up-To-Date",
            "Age"
        ]
    );
}

#[tokio::test]
async fn samples_are_accepted_and_an_empty_mesh_spec_gets_the_rust_defaults() {
    let client = cluster::client().await;
    k8s::install_crds(&client).await;
    k8s::with_temp_ns("crds-samples", |client, ns| async move {
        for file in [
            "server.yaml",
            "authorization_policy.yaml",
            "mesh_tls_authentication.yaml",
            "network_authentication.yaml",
            "service_profile.yaml",
        ] {
            let applied = k8s::apply_yaml(&client, Some(&ns), &sample(file))
                .await
                .unwrap_or_else(|e| panic!("sample {file} rejected: {e}"));
            assert_eq!(applied.len(), 1, "{file}");
        }

        let name = mesh_name("sample");
        let yaml = sample("mesh.yaml").replace("name: default", &format!("name: {name}"));
        let result = k8s::apply_yaml(&client, None, &yaml).await;
        let stored = match result {
            Ok(_) => Api::<Mesh>::all(client.clone()).get(&name).await,
            Err(e) => panic!("sample mesh.yaml rejected: {e}"),
        };
        delete_mesh(&client, &name).await;
        let stored = stored.expect("read the Mesh back as the Rust type");
        assert_eq!(
            stored.spec,
            MeshSpec::default(),
            "the apiserver's defaults for spec: {{}} differ from MeshSpec::default()"
        );

        let server: Api<Server> = Api::namespaced(client.clone(), &ns);
        let server = server
            .get("web-http")
            .await
            .expect("read the Server back as the Rust type");
        assert_eq!(server.spec.port.to_string(), "http");
    })
    .await;
}

const MESH_HEADER: &str =
    "apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: t-crds-rejected";

#[tokio::test]
async fn mesh_rejects_bad_input_naming_the_field() {
    let client = cluster::client().await;
    k8s::install_crds(&client).await;
    let header = MESH_HEADER.replace("t-crds-rejected", &mesh_name("rejected"));
    let cases = [
        Bad {
            what: "wrong type: replicas as a word",
            spec: "spec: {controlPlane: {replicas: three}}",
            expect: &["spec.controlPlane.replicas", "expected numeric"],
        },
        Bad {
            what: "out of range: 20 replicas",
            spec: "spec: {controlPlane: {replicas: 20}}",
            expect: &["spec.controlPlane.replicas", "less than or equal to 10"],
        },
        Bad {
            what: "bad format: duration with a space",
            spec: "spec: {identity: {clockSkewAllowance: 20 seconds}}",
            expect: &["spec.identity.clockSkewAllowance", "should match"],
        },
        Bad {
            what: "cross-field: clock skew longer than the certificate lifetime",
            spec: "spec: {identity: {clockSkewAllowance: 48h}}",
            expect: &[
                "spec.identity.clockSkewAllowance",
                "clockSkewAllowance must be shorter than workloadCertificateLifetime",
            ],
        },
        Bad {
            what: "cross-field: workload certificates outlive the issuer",
            spec: "spec: {identity: {workloadCertificateLifetime: 9000h}}",
            expect: &[
                "spec.identity.workloadCertificateLifetime",
                "must be shorter than issuer.lifetime",
            ],
        },
        Bad {
            what: "cross-field: issuer outlives the trust anchor",
            spec: "spec: {identity: {issuer: {lifetime: 90000h}}}",
            expect: &[
                "spec.identity.issuer.lifetime",
                "must be shorter than trustAnchors.lifetime",
            ],
        },
        Bad {
            what: "cross-field: renewal window longer than the issuer lifetime",
            spec: "spec: {identity: {rotation: {issuerRenewBefore: 9000h}}}",
            expect: &[
                "spec.identity.rotation.issuerRenewBefore",
                "must be shorter than issuer.lifetime",
            ],
        },
        Bad {
            what: "cross-field: supplied issuer with generated trust anchors",
            spec: "spec: {identity: {issuer: {source: Secret, secretName: my-issuer}}}",
            expect: &[
                "spec.identity.issuer.source",
                "needs trustAnchors from a ConfigMap or Secret",
            ],
        },
        Bad {
            what: "cross-field: ConfigMap trust anchors with a generated issuer",
            spec: "spec: {identity: {trustAnchors: {source: ConfigMap, name: anchors}}}",
            expect: &["spec.identity.issuer.source", "carry no private key"],
        },
        Bad {
            what: "cross-field: Secret trust anchors without a name",
            spec: "spec: {identity: {trustAnchors: {source: Secret}}}",
            expect: &[
                "spec.identity.trustAnchors.name",
                "name is required when source is ConfigMap or Secret",
            ],
        },
        Bad {
            what: "cross-field: supplied issuer without a secretName",
            spec: "spec: {identity: {trustAnchors: {source: Secret, name: anchors}, issuer: {source: Secret}}}",
            expect: &[
                "spec.identity.issuer.secretName",
                "secretName is required when source is Secret",
            ],
        },
        Bad {
            what: "cross-field: high availability with one replica",
            spec: "spec: {controlPlane: {highAvailability: true, replicas: 1}}",
            expect: &[
                "spec.controlPlane.replicas",
                "highAvailability needs at least 2 replicas",
            ],
        },
        Bad {
            what: "cross-field: multicluster with generated trust anchors",
            spec: "spec: {extensions: {multicluster: {enabled: true}}}",
            expect: &[
                "spec.extensions.multicluster.enabled",
                "trust anchors shared by every linked cluster",
            ],
        },
        Bad {
            what: "cross-field: external Prometheus without a URL",
            spec: "spec: {extensions: {viz: {enabled: true, prometheus: {mode: External}}}}",
            expect: &[
                "spec.extensions.viz.prometheus.url",
                "url is required when mode is External",
            ],
        },
        Bad {
            what: "bad format: Prometheus URL with an ftp scheme",
            spec: "spec: {extensions: {viz: {prometheus: {mode: External, url: 'ftp://prometheus'}}}}",
            expect: &[
                "spec.extensions.viz.prometheus.url",
                "must be an http or https URL",
            ],
        },
        Bad {
            what: "out of range: sampling above 1",
            spec: "spec: {extensions: {tracing: {enabled: true, sampling: 2}}}",
            expect: &[
                "spec.extensions.tracing.sampling",
                "less than or equal to 1",
            ],
        },
        Bad {
            what: "out of range: opaque port 70000 and a reversed range",
            spec: "spec: {proxy: {opaquePorts: [70000, '5000-4000']}}",
            expect: &[
                "spec.proxy.opaquePorts[0]",
                "spec.proxy.opaquePorts[1]",
                "must be a port from 1 to 65535",
            ],
        },
        Bad {
            what: "cross-field: CPU request above the limit",
            spec: "spec: {proxy: {resources: {requests: {cpu: 2}, limits: {cpu: 500m}}}}",
            expect: &[
                "spec.proxy.resources.requests.cpu",
                "requests.cpu must not exceed limits.cpu",
            ],
        },
        Bad {
            what: "bad format: memory that is not a quantity",
            spec: "spec: {controlPlane: {resources: {limits: {memory: lots}}}}",
            expect: &[
                "spec.controlPlane.resources.limits.memory",
                "non-negative quantity of memory",
            ],
        },
        Bad {
            what: "not an enum value: upgrade strategy",
            spec: "spec: {dataPlane: {upgradeStrategy: Sometimes}}",
            expect: &[
                "spec.dataPlane.upgradeStrategy",
                "supported values: \"Manual\", \"Automatic\"",
            ],
        },
        Bad {
            what: "bad format: version that is not a release",
            spec: "spec: {version: latest}",
            expect: &["spec.version", "should match"],
        },
        Bad {
            what: "misspelt field",
            spec: "spec: {identity: {trustDomian: example.org}}",
            expect: &["spec.identity.trustDomian", "field not declared in schema"],
        },
    ];
    assert_rejected(&client, None, &header, &cases).await;
}

#[tokio::test]
async fn mesh_namespace_is_immutable() {
    let client = cluster::client().await;
    k8s::install_crds(&client).await;
    let name = mesh_name("immutable");
    let header = MESH_HEADER.replace("t-crds-rejected", &name);
    let created = k8s::apply_yaml(&client, None, &format!("{header}\nspec: {{}}\n")).await;
    let changed = k8s::apply_yaml(
        &client,
        None,
        &format!("{header}\nspec: {{namespace: elsewhere}}\n"),
    )
    .await;
    delete_mesh(&client, &name).await;
    created.unwrap_or_else(|e| panic!("create Mesh {name}: {e}"));
    let message = changed.expect_err("changing spec.namespace must be rejected");
    assert!(
        message.contains("spec.namespace") && message.contains("namespace is immutable"),
        "{message}"
    );
}

#[tokio::test]
async fn server_rejects_bad_input_naming_the_field() {
    let header = "apiVersion: policy.trellis.dev/v1alpha1\nkind: Server\nmetadata:\n  name: bad";
    let cases = [
        Bad {
            what: "wrong type: port as a boolean",
            spec: "spec: {podSelector: {}, port: true}",
            expect: &["spec.port", "must be of type integer,string"],
        },
        Bad {
            what: "out of range: port 70000",
            spec: "spec: {podSelector: {}, port: 70000}",
            expect: &[
                "spec.port",
                "must be a port number from 1 to 65535 or a port name",
            ],
        },
        Bad {
            what: "out of range: port 0",
            spec: "spec: {podSelector: {}, port: 0}",
            expect: &[
                "spec.port",
                "must be a port number from 1 to 65535 or a port name",
            ],
        },
        Bad {
            what: "bad format: port name with capitals and an underscore",
            spec: "spec: {podSelector: {}, port: Http_Port}",
            expect: &[
                "spec.port",
                "must be a port number from 1 to 65535 or a port name",
            ],
        },
        Bad {
            what: "cross-field: both selectors",
            spec: "spec: {podSelector: {}, externalWorkloadSelector: {}, port: 80}",
            expect: &[
                "spec",
                "set exactly one of podSelector and externalWorkloadSelector",
            ],
        },
        Bad {
            what: "cross-field: no selector",
            spec: "spec: {port: 80}",
            expect: &[
                "spec",
                "set exactly one of podSelector and externalWorkloadSelector",
            ],
        },
        Bad {
            what: "not an enum value: proxy protocol",
            spec: "spec: {podSelector: {}, port: 80, proxyProtocol: HTTP/3}",
            expect: &["spec.proxyProtocol", "supported values"],
        },
        Bad {
            what: "not an enum value: access policy",
            spec: "spec: {podSelector: {}, port: 80, accessPolicy: allow}",
            expect: &["spec.accessPolicy", "supported values"],
        },
    ];
    assert_rejected_in_temp_ns("crds-server", &[(header, &cases)]).await;
}

#[tokio::test]
async fn authorization_policy_rejects_bad_input_naming_the_field() {
    let header = "apiVersion: policy.trellis.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata:\n  name: bad";
    let cases = [
        Bad {
            what: "wrong type: refs as a string",
            spec: "spec: {targetRef: {kind: Server, name: web}, requiredAuthenticationRefs: web-clients}",
            expect: &["spec.requiredAuthenticationRefs", "expected list"],
        },
        Bad {
            what: "missing required field",
            spec: "spec: {targetRef: {kind: Server, name: web}}",
            expect: &["spec.requiredAuthenticationRefs", "Required value"],
        },
        Bad {
            what: "not an enum value: HTTPRoute target",
            spec: "spec: {targetRef: {kind: HTTPRoute, name: web}, requiredAuthenticationRefs: []}",
            expect: &[
                "spec.targetRef.kind",
                "supported values: \"Server\", \"Namespace\"",
            ],
        },
        Bad {
            what: "out of range: nine authentication refs",
            spec: "spec: {targetRef: {kind: Namespace, name: shop}, requiredAuthenticationRefs: [{kind: ServiceAccount, name: a}, {kind: ServiceAccount, name: b}, {kind: ServiceAccount, name: c}, {kind: ServiceAccount, name: d}, {kind: ServiceAccount, name: e}, {kind: ServiceAccount, name: f}, {kind: ServiceAccount, name: g}, {kind: ServiceAccount, name: h}, {kind: ServiceAccount, name: i}]}",
            expect: &[
                "spec.requiredAuthenticationRefs",
                "must have at most 8 items",
            ],
        },
        Bad {
            what: "bad format: target name with capitals",
            spec: "spec: {targetRef: {kind: Server, name: Web}, requiredAuthenticationRefs: []}",
            expect: &["spec.targetRef.name", "should match"],
        },
        Bad {
            what: "cross-field: core group for a Server target",
            spec: "spec: {targetRef: {group: '', kind: Server, name: web}, requiredAuthenticationRefs: []}",
            expect: &["spec.targetRef.group", "group must match kind"],
        },
        Bad {
            what: "cross-field: policy group for a ServiceAccount",
            spec: "spec: {targetRef: {kind: Server, name: web}, requiredAuthenticationRefs: [{group: policy.trellis.dev, kind: ServiceAccount, name: web}]}",
            expect: &[
                "spec.requiredAuthenticationRefs[0].group",
                "group must match kind",
            ],
        },
        Bad {
            what: "cross-field: two NetworkAuthentications",
            spec: "spec: {targetRef: {kind: Server, name: web}, requiredAuthenticationRefs: [{kind: NetworkAuthentication, name: a}, {kind: NetworkAuthentication, name: b}]}",
            expect: &[
                "spec.requiredAuthenticationRefs",
                "at most one NetworkAuthentication",
            ],
        },
        Bad {
            what: "cross-field: a MeshTLSAuthentication and a ServiceAccount",
            spec: "spec: {targetRef: {kind: Server, name: web}, requiredAuthenticationRefs: [{kind: MeshTLSAuthentication, name: a}, {kind: ServiceAccount, name: b}]}",
            expect: &[
                "spec.requiredAuthenticationRefs",
                "at most one MeshTLSAuthentication or ServiceAccount",
            ],
        },
    ];
    assert_rejected_in_temp_ns("crds-authz", &[(header, &cases)]).await;
}

#[tokio::test]
async fn mesh_tls_authentication_rejects_bad_input_naming_the_field() {
    let header = "apiVersion: policy.trellis.dev/v1alpha1\nkind: MeshTLSAuthentication\nmetadata:\n  name: bad";
    let cases = [
        Bad {
            what: "wrong type: identities as a string",
            spec: "spec: {identities: web.shop.serviceaccount.identity.trellis.cluster.local}",
            expect: &["spec.identities", "expected list"],
        },
        Bad {
            what: "out of range: empty identities",
            spec: "spec: {identities: []}",
            expect: &["spec.identities", "should have at least 1 items"],
        },
        Bad {
            what: "bad format: wildcard in the middle, and punctuation",
            spec: "spec: {identities: ['web.*.serviceaccount', 'Web!']}",
            expect: &["spec.identities[0]", "spec.identities[1]", "should match"],
        },
        Bad {
            what: "cross-field: identities and identityRefs together",
            spec: "spec: {identities: ['*'], identityRefs: [{kind: ServiceAccount, name: web}]}",
            expect: &["spec", "set exactly one of identities and identityRefs"],
        },
        Bad {
            what: "cross-field: neither identities nor identityRefs",
            spec: "spec: {}",
            expect: &["spec", "set exactly one of identities and identityRefs"],
        },
        Bad {
            what: "cross-field: a Namespace reference with a namespace",
            spec: "spec: {identityRefs: [{kind: Namespace, name: shop, namespace: other}]}",
            expect: &[
                "spec.identityRefs[0].namespace",
                "namespace is only for kind ServiceAccount",
            ],
        },
        Bad {
            what: "not an enum value: identity kind",
            spec: "spec: {identityRefs: [{kind: Deployment, name: web}]}",
            expect: &["spec.identityRefs[0].kind", "supported values"],
        },
    ];
    assert_rejected_in_temp_ns("crds-mtls", &[(header, &cases)]).await;
}

#[tokio::test]
async fn network_authentication_rejects_bad_input_naming_the_field() {
    let header = "apiVersion: policy.trellis.dev/v1alpha1\nkind: NetworkAuthentication\nmetadata:\n  name: bad";
    let cases = [
        Bad {
            what: "wrong type: a network as a bare string",
            spec: "spec: {networks: [10.0.0.0/8]}",
            expect: &["spec.networks[0]", "expected map"],
        },
        Bad {
            what: "out of range: prefix lengths /33 and /129, octet 300",
            spec: "spec: {networks: [{cidr: 10.0.0.0/33}, {cidr: 300.1.1.1/8}, {cidr: 'fd00::/129'}]}",
            expect: &[
                "spec.networks[0].cidr",
                "spec.networks[1].cidr",
                "spec.networks[2].cidr",
                "must be an IP network in CIDR notation",
            ],
        },
        Bad {
            what: "out of range: no networks",
            spec: "spec: {networks: []}",
            expect: &["spec.networks", "should have at least 1 items"],
        },
        Bad {
            what: "bad format: an exception that is not a CIDR",
            spec: "spec: {networks: [{cidr: 10.0.0.0/8, except: [10.1.0.0]}]}",
            expect: &[
                "spec.networks[0].except[0]",
                "must be an IP network in CIDR notation",
            ],
        },
        Bad {
            what: "cross-field: exceptions outside the network or of the other family",
            spec: "spec: {networks: [{cidr: 10.0.0.0/8, except: [192.168.0.0/16, 'fd00::/8']}]}",
            expect: &[
                "spec.networks[0].except",
                "every except entry must be a network inside cidr",
            ],
        },
    ];
    assert_rejected_in_temp_ns("crds-netauthn", &[(header, &cases)]).await;
}

#[tokio::test]
async fn service_profile_rejects_bad_input_naming_the_field() {
    let header = "apiVersion: trellis.dev/v1alpha1\nkind: ServiceProfile\nmetadata:\n  name: books.shop.svc.cluster.local";
    let cases = [
        Bad {
            what: "wrong type: isRetryable as a word",
            spec: "spec: {routes: [{name: r, condition: {method: GET}, isRetryable: maybe}]}",
            expect: &["spec.routes[name=\"r\"].isRetryable", "expected boolean"],
        },
        Bad {
            what: "out of range: status 600",
            spec: "spec: {routes: [{name: r, condition: {method: GET}, responseClasses: [{condition: {status: {min: 600, max: 600}}, isFailure: true}]}]}",
            expect: &[
                "spec.routes[0].responseClasses[0].condition.status.min",
                "less than or equal to 599",
            ],
        },
        Bad {
            what: "out of range: retry ratio 1.5",
            spec: "spec: {retryBudget: {retryRatio: 1.5}}",
            expect: &["spec.retryBudget.retryRatio", "less than or equal to 1"],
        },
        Bad {
            what: "bad format: timeout in days",
            spec: "spec: {routes: [{name: r, condition: {method: GET}, timeout: 1d}]}",
            expect: &["spec.routes[0].timeout", "should match"],
        },
        Bad {
            what: "not an enum value: method FETCH",
            spec: "spec: {routes: [{name: r, condition: {method: FETCH}}]}",
            expect: &["spec.routes[0].condition.method", "supported values"],
        },
        Bad {
            what: "cross-field: status min above max",
            spec: "spec: {routes: [{name: r, condition: {method: GET}, responseClasses: [{condition: {status: {min: 503, max: 500}}, isFailure: true}]}]}",
            expect: &[
                "spec.routes[0].responseClasses[0].condition.status.min",
                "min must not be above max",
            ],
        },
        Bad {
            what: "cross-field: empty request condition",
            spec: "spec: {routes: [{name: r, condition: {}}]}",
            expect: &[
                "spec.routes[0].condition",
                "must set at least one of method, pathRegex, all, any and not",
            ],
        },
        Bad {
            what: "cross-field: traffic split with no positive weight",
            spec: "spec: {dstOverrides: [{authority: 'books-v2.shop.svc.cluster.local:8080', weight: 0}]}",
            expect: &[
                "spec.dstOverrides",
                "at least one dstOverrides entry needs a weight above 0",
            ],
        },
        Bad {
            what: "duplicate route names",
            spec: "spec: {routes: [{name: r, condition: {method: GET}}, {name: r, condition: {method: POST}}]}",
            expect: &["spec.routes", "duplicate entries for key [name=\"r\"]"],
        },
    ];

    let short_name =
        "apiVersion: trellis.dev/v1alpha1\nkind: ServiceProfile\nmetadata:\n  name: books";
    let short_name_cases = [Bad {
        what: "cross-field: a name that is not a fully qualified service name",
        spec: "spec: {}",
        expect: &["metadata.name must be the service's fully qualified name"],
    }];
    assert_rejected_in_temp_ns(
        "crds-sp",
        &[(header, &cases), (short_name, &short_name_cases)],
    )
    .await;
}

#[tokio::test]
async fn kubectl_explain_teaches_mesh_identity() {
    let client = cluster::client().await;
    k8s::install_crds(&client).await;
    // The apiserver publishes a new CRD's OpenAPI shortly after it is Established.
    let out = eventually(
        "kubectl explain mesh.spec.identity",
        DEFAULT_TIMEOUT,
        || async {
            let (ok, stdout, stderr) = kubectl(&["explain", "mesh.spec.identity"]).await;
            if ok && stdout.contains("clockSkewAllowance") {
                Ok(stdout)
            } else {
                Err(format!("ok={ok} stdout={stdout} stderr={stderr}"))
            }
        },
    )
    .await;
    // kubectl wraps descriptions to the terminal width; compare with whitespace collapsed.
    let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let explained = flat(&out);
    for text in [
        "GROUP: trellis.dev KIND: Mesh",
        "FIELD: identity <Object>",
        "Each workload's mTLS identity is `<serviceaccount>.<namespace>.serviceaccount.identity.trellis.<trustDomain>`",
        "clockSkewAllowance <string> Tolerated clock difference between nodes",
        "Default `20s`. Must be shorter than workloadCertificateLifetime.",
        "issuer <Object> The intermediate CA that signs workload certificates.",
        "rotation <Object>",
        "trustAnchors <Object> The root certificates every proxy trusts.",
        "trustDomain <string> Trust domain of every workload identity, a DNS name. Default `cluster.local`.",
        "workloadCertificateLifetime <string>",
    ] {
        assert!(
            explained.contains(text),
            "explain output lacks {text:?}:\n{out}"
        );
    }

    let (ok, out, err) = kubectl(&["explain", "mesh.spec.identity.trustAnchors.source"]).await;
    assert!(ok, "{err}");
    assert!(
        flat(&out).contains("ENUM: Generated ConfigMap Secret DESCRIPTION: Where the trust anchors come from. Default `Generated`."),
        "{out}"
    );
}

fn condition(type_: &str, reason: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: TRUE.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: Some(1),
        last_transition_time: Time(Timestamp::now()),
    }
}

/// Splits `kubectl get` output into its header and first row, by whitespace.
fn table(out: &str) -> (Vec<String>, Vec<String>) {
    let mut lines = out
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect());
    (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    )
}

#[tokio::test]
async fn kubectl_get_mesh_shows_the_printer_columns() {
    let client = cluster::client().await;
    k8s::install_crds(&client).await;
    let name = mesh_name("columns");
    let header = MESH_HEADER.replace("t-crds-rejected", &name);
    let outcome = tokio::spawn({
        let (client, name) = (client.clone(), name.clone());
        async move {
            k8s::apply_yaml(&client, None, &format!("{header}\nspec: {{}}\n"))
                .await
                .unwrap_or_else(|e| panic!("create Mesh {name}: {e}"));
            let api: Api<Mesh> = Api::all(client.clone());
            let status = serde_json::json!({
                "apiVersion": "trellis.dev/v1alpha1",
                "kind": "Mesh",
                "status": {
                    "observedGeneration": 1,
                    "conditions": [condition(mesh_conditions::READY, mesh_reasons::COMPONENTS_READY)],
                    "version": "0.1.0",
                    "componentsReady": "4/4",
                    "components": [{"name": "destination", "ready": true, "version": "0.1.0"}],
                    "meshedPods": 7,
                    "upToDatePods": 5,
                    "identity": {"trustAnchorNotAfter": "2036-01-02T03:04:05Z", "rotationPhase": "Stable"},
                },
            });
            api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&status))
                .await
                .unwrap_or_else(|e| panic!("write Mesh status: {e}"));

            let (ok, out, err) = kubectl(&["get", "mesh", &name]).await;
            assert!(ok, "{err}");
            let (columns, row) = table(&out);
            assert_eq!(columns, ["NAME", "READY", "VERSION", "COMPONENTS", "MESHED", "AGE"], "{out}");
            assert_eq!(row[..5], [name.as_str(), "True", "0.1.0", "4/4", "7"], "{out}");

            let (ok, out, err) = kubectl(&["get", "mesh", &name, "-o", "wide"]).await;
            assert!(ok, "{err}");
            let (columns, row) = table(&out);
            assert_eq!(
                columns,
                [
                    "NAME", "READY", "VERSION", "COMPONENTS", "MESHED", "STATUS", "DESIRED",
                    "ANCHOR-EXPIRY", "UP-TO-DATE", "AGE"
                ],
                "{out}"
            );
            assert_eq!(
                row[..9],
                [
                    name.as_str(), "True", "0.1.0", "4/4", "7", "ComponentsReady",
                    env!("CARGO_PKG_VERSION"), "2036-01-02T03:04:05Z", "5"
                ],
                "{out}"
            );

            let (ok, out, err) = kubectl(&["get", "tmesh", &name, "-o", "name"]).await;
            assert!(ok && out.trim() == format!("mesh.trellis.dev/{name}"), "short name: {out} {err}");

            let (ok, out, err) = kubectl(&[
                "wait", "--for=condition=Ready", "--timeout=10s", &format!("mesh/{name}"),
            ])
            .await;
            assert!(ok, "kubectl wait --for=condition=Ready: {out} {err}");
        }
    })
    .await;
    delete_mesh(&client, &name).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn kubectl_get_server_shows_the_accepted_column() {
    let client = cluster::client().await;
    k8s::install_crds(&client).await;
    k8s::with_temp_ns("crds-server-columns", |client, ns| async move {
        k8s::apply_yaml(&client, Some(&ns), &sample("server.yaml"))
            .await
            .unwrap_or_else(|e| panic!("sample server.yaml rejected: {e}"));
        let api: Api<Server> = Api::namespaced(client.clone(), &ns);
        let status = serde_json::json!({
            "apiVersion": "policy.trellis.dev/v1alpha1",
            "kind": "Server",
            "status": {
                "observedGeneration": 1,
                "conditions": [condition(
                    trellis_crds::common::status::conditions::ACCEPTED,
                    trellis_crds::common::status::reasons::ACCEPTED,
                )],
            },
        });
        api.patch_status(
            "web-http",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap_or_else(|e| panic!("write Server status: {e}"));

        let (ok, out, err) = kubectl(&["get", "server", "web-http", "-n", &ns]).await;
        assert!(ok, "{err}");
        let (columns, row) = table(&out);
        assert_eq!(
            columns,
            ["NAME", "PORT", "PROTOCOL", "ACCESS", "ACCEPTED", "AGE"],
            "{out}"
        );
        assert_eq!(
            row[..5],
            ["web-http", "http", "HTTP/1", "deny", "True"],
            "{out}"
        );

        let (ok, out, err) = kubectl(&["get", "trellis", "-n", &ns, "-o", "name"]).await;
        assert!(
            ok && out.contains("server.policy.trellis.dev/web-http"),
            "category trellis: {out} {err}"
        );
    })
    .await;
}
