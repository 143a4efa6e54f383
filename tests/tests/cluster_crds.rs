//! The Trellis CRDs against the real apiserver: installation, samples, validation messages,
//! `kubectl explain` and `kubectl get` columns.
//!
//! Needs the local cluster (`tests/cluster/cluster up`). Every test installs the committed
//! `config/crds/` with server-side apply (idempotent, so tests may do it concurrently) and
//! waits for the CRDs to be Established and served. Cluster-scoped Mesh objects get
//! test-unique names and are deleted at the end. The objects each kind must reject, with the
//! text their messages must contain, are listed in `cluster_crds/rejections.yaml`.

use std::collections::BTreeMap;

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use trellis_crds::{
    common::condition::TRUE,
    v1alpha1::{
        mesh::{Mesh, MeshSpec, conditions as mesh_conditions, reasons as mesh_reasons},
        server::Server,
    },
};
use trellis_operator::control_plane::{
    index::{self, ClusterSettings, Index},
    status,
};
use trellis_tests::{
    DEFAULT_TIMEOUT,
    cluster::{self, kubectl},
    eventually,
    k8s::{self, FIELD_MANAGER, await_object},
};

/// A client of the local cluster, once the committed CRDs are installed and served.
async fn crds_installed() -> Client {
    let client = cluster::client().await;
    k8s::install_crds(&client).await;
    client
}

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

/// One object the apiserver must reject, and the texts its message must contain (the field
/// path first).
#[derive(Debug, Deserialize)]
struct Bad {
    what: String,
    spec: String,
    expect: Vec<String>,
}

/// The cases for `kind` in `cluster_crds/rejections.yaml`.
fn rejections(kind: &str) -> Vec<Bad> {
    let mut all: BTreeMap<String, Vec<Bad>> =
        serde_yaml::from_str(include_str!("cluster_crds/rejections.yaml"))
            .expect("cluster_crds/rejections.yaml parses");
    all.remove(kind)
        .unwrap_or_else(|| panic!("no {kind} in cluster_crds/rejections.yaml"))
}

/// Applies each bad object and checks the rejection message; returns one line per case
/// that was accepted or whose message lacks an expected text.
///
/// `header` is the object up to `metadata.name`; `spec` is appended under it.
async fn rejection_failures(
    client: &Client,
    ns: Option<&str>,
    header: &str,
    cases: &[Bad],
) -> Vec<String> {
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
                    .filter(|e| !message.contains(e.as_str()))
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
    failures
}

/// Asserts that `failures` of `cases` cases is empty, reporting every failure at once.
fn assert_no_failures(failures: &[String], cases: usize) {
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Installs the CRDs, then in a temporary namespace named after `prefix` checks that each
/// group of cases is rejected (objects `header` plus a case's spec).
async fn assert_rejected_in_temp_ns(prefix: &str, groups: Vec<(String, Vec<Bad>)>) {
    crds_installed().await;
    k8s::with_temp_ns(prefix, |client, ns| async move {
        let mut failures = Vec::new();
        for (header, cases) in &groups {
            failures.extend(rejection_failures(&client, Some(&ns), header, cases).await);
        }
        assert_no_failures(&failures, groups.iter().map(|(_, cases)| cases.len()).sum());
    })
    .await;
}

/// Every kind's cases load, and each gives a spec and what its message must contain.
#[test]
fn every_rejection_case_names_what_it_expects() {
    let all: BTreeMap<String, Vec<Bad>> =
        serde_yaml::from_str(include_str!("cluster_crds/rejections.yaml")).unwrap();
    let kinds: Vec<_> = all.keys().map(String::as_str).collect();
    assert_eq!(
        kinds,
        [
            "authorization_policy",
            "mesh",
            "mesh_tls_authentication",
            "network_authentication",
            "server",
            "service_profile",
            "service_profile_short_name",
        ]
    );
    assert_eq!(all.values().map(Vec::len).sum::<usize>(), 62);
    for (kind, cases) in &all {
        for case in cases {
            assert!(case.spec.starts_with("spec:"), "{kind}: {case:?}");
            assert!(!case.expect.is_empty(), "{kind}: {case:?}");
        }
    }
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
    crds_installed().await;
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

/// A Mesh named `name`, up to its `metadata.name`.
fn mesh_header(name: &str) -> String {
    format!("apiVersion: trellis.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: {name}")
}

#[tokio::test]
async fn mesh_rejects_bad_input_naming_the_field() {
    let client = crds_installed().await;
    let header = mesh_header(&mesh_name("rejected"));
    let cases = rejections("mesh");
    let failures = rejection_failures(&client, None, &header, &cases).await;
    assert_no_failures(&failures, cases.len());
}

#[tokio::test]
async fn mesh_namespace_is_immutable() {
    let client = crds_installed().await;
    let name = mesh_name("immutable");
    let header = mesh_header(&name);
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
async fn policy_kinds_reject_bad_input_naming_the_field() {
    let groups = [
        ("Server", "server"),
        ("AuthorizationPolicy", "authorization_policy"),
        ("MeshTLSAuthentication", "mesh_tls_authentication"),
        ("NetworkAuthentication", "network_authentication"),
    ]
    .map(|(kind, cases)| {
        let header = format!(
            "apiVersion: policy.trellis.dev/v1alpha1\nkind: {kind}\nmetadata:\n  name: bad"
        );
        (header, rejections(cases))
    });
    assert_rejected_in_temp_ns("crds-policy", groups.into()).await;
}

#[tokio::test]
async fn service_profile_rejects_bad_input_naming_the_field() {
    let header = "apiVersion: trellis.dev/v1alpha1\nkind: ServiceProfile\nmetadata:\n  name";
    let groups = vec![
        (
            format!("{header}: books.shop.svc.cluster.local"),
            rejections("service_profile"),
        ),
        (
            format!("{header}: books"),
            rejections("service_profile_short_name"),
        ),
    ];
    assert_rejected_in_temp_ns("crds-sp", groups).await;
}

#[tokio::test]
async fn kubectl_explain_teaches_mesh_identity() {
    crds_installed().await;
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
    let client = crds_installed().await;
    let name = mesh_name("columns");
    let header = mesh_header(&name);
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

/// Runs the control plane's index and status writer (as the `controller` role does) until
/// `shutdown`.
fn start_status_writer(client: &Client, shutdown: &CancellationToken) {
    let index = Index::shared(ClusterSettings::default());
    let (listed, listed_rx) = watch::channel(false);
    let synced = index::Synced::new(move || {
        listed.send_replace(true);
    });
    tokio::spawn(index::run_synced(
        index.clone(),
        client.clone(),
        synced,
        shutdown.clone(),
    ));
    tokio::spawn(status::run(
        index,
        client.clone(),
        listed_rx,
        shutdown.clone(),
    ));
}

#[tokio::test]
async fn kubectl_get_server_shows_the_accepted_column() {
    crds_installed().await;
    k8s::with_temp_ns("crds-server-columns", |client, ns| async move {
        k8s::apply_yaml(&client, Some(&ns), &sample("server.yaml"))
            .await
            .unwrap_or_else(|e| panic!("sample server.yaml rejected: {e}"));
        // The controller's status writer, on an index of the cluster, writes Accepted.
        let (shutdown, _guard) = trellis_tests::shutdown_on_drop();
        start_status_writer(&client, &shutdown);
        let api: Api<Server> = Api::namespaced(client.clone(), &ns);
        await_object(&api, "web-http", DEFAULT_TIMEOUT, |s| {
            let accepted = s
                .status
                .iter()
                .flat_map(|s| &s.conditions)
                .find(|c| c.type_ == trellis_crds::common::status::conditions::ACCEPTED);
            match accepted {
                Some(c) if c.status == TRUE => Ok(()),
                other => Err(format!("Accepted: {other:?}")),
            }
        })
        .await;

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
