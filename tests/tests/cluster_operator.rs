//! The operator against the real apiserver: a Mesh becomes Ready, drift is undone, upgrades
//! roll, disabled extensions are pruned, deletion cleans up cluster-scoped objects, bad
//! identity input holds the rollout back, the Lease hands over, the install manifests'
//! RBAC is enough, a namespace's `trellis.dev/inject` annotation is mirrored onto a label,
//! and the MESHED / UP-TO-DATE counts follow the pods.
//!
//! Needs the local cluster (`tests/cluster/cluster up`). The operator runs in-process, limited
//! by a label selector to this test's Mesh, with its Lease in the test namespace. Every Mesh
//! has a test-unique name, so the cluster-scoped objects it renders never collide.

use std::path::PathBuf;

use k8s_openapi::api::{
    admissionregistration::v1::MutatingWebhookConfiguration,
    coordination::v1::Lease,
    core::v1::{Namespace, Pod, Secret},
    rbac::v1::{ClusterRole, ClusterRoleBinding},
};
use kube::{
    Api, Client, Config, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::{Value, json};
use tokio::time::Instant;
use trellis_api::well_known::{
    CONTROLLER_NAME, ISSUER_SECRET, PROXY_VERSION_ANNOTATION, TLS_CA_KEY, TLS_CERT_KEY,
    TLS_KEY_KEY, TRUST_ANCHOR_SECRET, WEBHOOK_TLS_SECRET,
};
use trellis_crds::{
    common::condition::{TRUE, find},
    v1alpha1::mesh::{conditions, reasons},
};
use trellis_tests::{
    DEFAULT_TIMEOUT,
    certs::intermediate_ca,
    cluster::{self, kubectl},
    eventually,
    k8s::{self},
    operator::{
        RESTORE_TIMEOUT, TEST_MESH_LABEL, condition, histogram_quantile, image_of, operator_config,
        start_operator, test_pod, version, with_mesh, with_ready_mesh,
    },
};

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_mesh_becomes_ready_and_drift_is_undone() {
    with_mesh("op-ready", true, |h| async move {
        let op = h.start_operator("solo").await;
        let applied = Instant::now();
        h.apply_mesh(json!({})).await;
        let mesh = h.await_ready(&version()).await;
        let apply_to_ready = applied.elapsed();
        eprintln!(
            "FIGURE apply-to-Ready: {:.2}s",
            apply_to_ready.as_secs_f64()
        );

        // Status: components, identity expiry, conditions a person can read.
        let status = mesh.status.clone().unwrap();
        assert_eq!(status.components_ready.as_deref(), Some("1/1"));
        assert!(
            status.components[0]
                .message
                .as_deref()
                .unwrap()
                .contains("deployment trellis-controller 2/2 available")
        );
        let identity = status.identity.clone().unwrap();
        assert!(identity.trust_anchor_not_after.is_some() && identity.issuer_not_after.is_some());
        let degraded = find(&status.conditions, conditions::DEGRADED).unwrap();
        assert_eq!(degraded.status, "False");
        assert!(
            mesh.finalizers()
                .iter()
                .any(|f| f == "mesh.trellis.dev/cleanup")
        );

        // kubectl shows it Ready at the version.
        let (ok, out, err) = kubectl(&["get", "mesh", &h.mesh]).await;
        assert!(ok, "{err}");
        let row = out.lines().nth(1).unwrap_or_default();
        assert!(
            row.contains("True") && row.contains(&version()) && row.contains("1/1"),
            "{out}"
        );

        // Rendered objects: the namespace is ours, the Mesh's labels are not copied,
        // the caBundle is the webhook CA.
        let namespaces: Api<Namespace> = Api::all(h.client.clone());
        let cp = namespaces.get(&h.cp).await.unwrap();
        assert_eq!(cp.owner_references()[0].name, h.mesh);
        let deployment = h.controller().await;
        assert_eq!(
            image_of(&deployment),
            format!("test.trellis.invalid/trellis/controller:{}", version())
        );
        assert!(
            !deployment
                .labels()
                .contains_key("argocd.argoproj.io/instance")
        );
        assert!(!deployment.annotations().contains_key("example.com/owner"));
        let webhooks: Api<MutatingWebhookConfiguration> = Api::all(h.client.clone());
        let injector = webhooks
            .get(&format!("trellis-{}-proxy-injector", h.mesh))
            .await
            .unwrap();
        let ca_bundle = injector.webhooks.unwrap()[0]
            .client_config
            .ca_bundle
            .clone()
            .unwrap();
        assert_eq!(
            String::from_utf8(ca_bundle.0).unwrap(),
            h.secret_value(WEBHOOK_TLS_SECRET, TLS_CA_KEY).await
        );
        let anchor = h.secret_value(TRUST_ANCHOR_SECRET, TLS_CERT_KEY).await;
        let issuer = h.secret_value(ISSUER_SECRET, TLS_CERT_KEY).await;

        // Deleted by hand: restored.
        let old_uid = deployment.uid().unwrap();
        k8s::delete_and_await(
            &h.deployments(),
            CONTROLLER_NAME,
            &DeleteParams::foreground(),
            "the deleted controller Deployment to come back",
            RESTORE_TIMEOUT,
            |d| match d {
                Some(d) if d.uid().as_deref() != Some(old_uid.as_str()) => Ok(()),
                other => Err(format!("{:?}", other.map(|d| d.uid()))),
            },
        )
        .await;

        // Scaled by hand: scaled back.
        let scaled = h
            .deployments()
            .patch(
                CONTROLLER_NAME,
                &PatchParams::apply("someone-else").force(),
                &Patch::Apply(json!({
                    "apiVersion": "apps/v1", "kind": "Deployment", "spec": { "replicas": 5 }
                })),
            )
            .await
            .unwrap();
        assert_eq!(scaled.spec.unwrap().replicas, Some(5));
        eventually(
            "the hand-scaled controller Deployment to return to 2 replicas",
            RESTORE_TIMEOUT,
            || async {
                let d = h.controller().await;
                match d.spec.and_then(|s| s.replicas) {
                    Some(2) => Ok(()),
                    other => Err(other),
                }
            },
        )
        .await;
        h.await_ready(&version()).await;

        // The escape hatch: an object marked trellis.dev/ignore keeps a person's edits, until
        // the mark goes.
        let mark = |value: Option<&str>, replicas: i32| {
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "annotations": { "trellis.dev/ignore": value } },
                "spec": { "replicas": replicas },
            })
        };
        h.deployments()
            .patch(CONTROLLER_NAME, &PatchParams::apply("someone-else").force(), &Patch::Apply(mark(Some("true"), 3)))
            .await
            .unwrap();
        // Delete a Service too: once it is back, the operator has reconciled since the edit.
        let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(h.client.clone(), &h.cp);
        let old_service = services.get("trellis-identity").await.unwrap().uid();
        services.delete("trellis-identity", &DeleteParams::background()).await.unwrap();
        eventually("the deleted identity Service to come back", RESTORE_TIMEOUT, || async {
            match services.get_opt("trellis-identity").await.unwrap() {
                Some(s) if s.uid() != old_service => Ok(()),
                other => Err(other.map(|s| s.uid())),
            }
        })
        .await;
        assert_eq!(h.controller().await.spec.unwrap().replicas, Some(3), "an ignored object was changed");
        h.deployments()
            .patch(CONTROLLER_NAME, &PatchParams::apply("someone-else").force(), &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "annotations": {} },
            })))
            .await
            .unwrap();
        eventually("the controller Deployment to be managed again", RESTORE_TIMEOUT, || async {
            match h.controller().await.spec.and_then(|s| s.replicas) {
                Some(2) => Ok(()),
                other => Err(other),
            }
        })
        .await;

        // Events on transitions, about the (cluster-scoped) Mesh in namespace default.
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(h.client.clone(), "default");
        eventually("a ComponentsReady event about the Mesh", RESTORE_TIMEOUT, || async {
            let list = events.list(&ListParams::default()).await.unwrap();
            let reasons: Vec<String> = list
                .items
                .iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(h.mesh.as_str()))
                .filter_map(|e| e.reason.clone())
                .collect();
            if reasons.iter().any(|r| r == reasons::COMPONENTS_READY) { Ok(()) } else { Err(reasons) }
        })
        .await;

        // Nothing was regenerated along the way.
        assert_eq!(
            h.secret_value(TRUST_ANCHOR_SECRET, TLS_CERT_KEY).await,
            anchor
        );
        assert_eq!(h.secret_value(ISSUER_SECRET, TLS_CERT_KEY).await, issuer);

        // The operator's own figures.
        let metrics = op.metrics().await;
        let name = "trellis_operator_reconcile_duration_seconds";
        let p50 = histogram_quantile(&metrics, name, 0.5).unwrap();
        let p99 = histogram_quantile(&metrics, name, 0.99).unwrap();
        eprintln!("FIGURE reconcile p50 {:.1} ms, p99 {:.1} ms", p50 * 1e3, p99 * 1e3);
        assert!(
            metrics.contains("trellis_operator_reconciles_total{controller=\"mesh\"}"),
            "{metrics}"
        );
        assert!(metrics.contains("cert=\"issuer\""), "{metrics}");
        op.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_rolls_the_image_and_disabled_extensions_are_pruned() {
    with_ready_mesh("op-upgrade", false, |h, _| async move {
        let anchor = h.secret_value(TRUST_ANCHOR_SECRET, TLS_CERT_KEY).await;

        // Upgrade: the controller rolls to the new tag, status follows.
        h.apply_mesh(json!({ "version": "0.2.0" })).await;
        let mesh = h.await_ready("0.2.0").await;
        assert_eq!(image_of(&h.controller().await), "test.trellis.invalid/trellis/controller:0.2.0");
        assert_eq!(mesh.status.unwrap().components[0].version.as_deref(), Some("0.2.0"));
        assert_eq!(h.secret_value(TRUST_ANCHOR_SECRET, TLS_CERT_KEY).await, anchor, "an upgrade must not rotate");

        // Enable tracing and viz: the collector and Prometheus run; viz's own programs are
        // reported as not available.
        h.apply_mesh(json!({ "version": "0.2.0", "extensions": { "tracing": { "enabled": true }, "viz": { "enabled": true } } }))
            .await;
        let mesh = h.await_ready("0.2.0").await;
        let status = mesh.status.unwrap();
        assert_eq!(status.components.len(), 3, "{:?}", status.components);
        let degraded = find(&status.conditions, conditions::DEGRADED).unwrap();
        assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", reasons::EXTENSION_UNAVAILABLE));
        assert!(degraded.message.contains("extensions.viz"), "{}", degraded.message);
        h.deployments().get("trellis-tracing-collector").await.unwrap();
        let roles: Api<ClusterRole> = Api::all(h.client.clone());
        let prometheus_role = format!("trellis-{}-viz-prometheus", h.mesh);
        roles.get(&prometheus_role).await.unwrap();

        // Disable them: their objects go, cluster-scoped ones included.
        h.apply_mesh(json!({ "version": "0.2.0" })).await;
        eventually("disabled extensions to be pruned", RESTORE_TIMEOUT, || async {
            let collector = h.deployments().get_opt("trellis-tracing-collector").await.unwrap();
            let prometheus = h.deployments().get_opt("trellis-viz-prometheus").await.unwrap();
            let role = roles.get_opt(&prometheus_role).await.unwrap();
            if collector.is_none() && prometheus.is_none() && role.is_none() {
                Ok(())
            } else {
                Err((collector.is_some(), prometheus.is_some(), role.is_some()))
            }
        })
        .await;
        h.await_healthy("0.2.0").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_mesh_removes_what_it_created() {
    with_mesh("op-delete", true, |h| async move {
        let op = h.start_operator("solo").await;
        h.apply_mesh(json!({ "extensions": { "viz": { "enabled": true } } }))
            .await;
        h.await_ready(&version()).await;
        assert_eq!(h.labelled::<ClusterRole>().await, 2);

        h.meshes()
            .delete(&h.mesh, &DeleteParams::background())
            .await
            .unwrap();
        eventually("the Mesh to be gone", RESTORE_TIMEOUT, || async {
            match h.meshes().get_opt(&h.mesh).await.unwrap() {
                None => Ok(()),
                Some(m) => Err(m.finalizers().to_vec()),
            }
        })
        .await;
        // The finalizer ran before the Mesh went: cluster-scoped objects are already gone.
        assert_eq!(h.labelled::<ClusterRole>().await, 0);
        assert_eq!(h.labelled::<ClusterRoleBinding>().await, 0);
        assert_eq!(h.labelled::<MutatingWebhookConfiguration>().await, 0);
        let namespaces: Api<Namespace> = Api::all(h.client.clone());
        let cp = namespaces.get_opt(&h.cp).await.unwrap();
        assert!(
            cp.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
            "namespace {} is not being deleted",
            h.cp
        );
        op.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_issuer_secret_reports_degraded_and_keeps_the_running_mesh() {
    with_ready_mesh("op-degraded", false, |h, _| async move {
        let before = h.controller().await;
        let anchor_cert = h.secret_value(TRUST_ANCHOR_SECRET, TLS_CERT_KEY).await;
        let anchor_key = h.secret_value(TRUST_ANCHOR_SECRET, TLS_KEY_KEY).await;

        // The user's anchors (no key) and an issuer Secret that does not exist yet.
        let secret = |name: &str, data: Value| -> Secret {
            serde_json::from_value(
                json!({ "metadata": { "name": name }, "type": "Opaque", "stringData": data }),
            )
            .unwrap()
        };
        h.secrets()
            .create(
                &PostParams::default(),
                &secret("user-anchors", json!({ "ca.crt": anchor_cert })),
            )
            .await
            .unwrap();
        let identity = json!({ "identity": {
            "trustAnchors": { "source": "Secret", "name": "user-anchors" },
            "issuer": { "source": "Secret", "secretName": "user-issuer" },
        }});
        h.apply_mesh(identity.clone()).await;
        let degraded_with = |needle: &'static str| {
            let h = h.clone();
            async move {
                k8s::await_object(&h.meshes(), &h.mesh, DEFAULT_TIMEOUT, |m| {
                    let status = m.status.as_ref().ok_or("no status")?;
                    let d = find(&status.conditions, conditions::DEGRADED).ok_or("no Degraded")?;
                    if status.observed_generation == m.metadata.generation
                        && d.status == TRUE
                        && d.reason == reasons::INVALID_IDENTITY_MATERIAL
                        && d.message.contains(needle)
                    {
                        Ok(())
                    } else {
                        Err(format!("{} {}: {}", d.status, d.reason, d.message))
                    }
                })
                .await
            }
        };
        let mesh = degraded_with("does not exist").await;
        let message = find(
            &mesh.status.as_ref().unwrap().conditions,
            conditions::DEGRADED,
        )
        .unwrap()
        .message
        .clone();
        assert!(
            message.contains("identity.issuer.secretName") && message.contains("user-issuer"),
            "{message}"
        );
        let after = h.controller().await;
        assert_eq!(
            after.metadata.generation, before.metadata.generation,
            "the running control plane was changed"
        );
        assert_eq!(after.spec, before.spec);
        assert!(
            h.secrets().get_opt(ISSUER_SECRET).await.unwrap().is_some(),
            "the running issuer was removed"
        );

        // An expired issuer: still held back, and the message says so.
        let make_issuer = |days: i64| {
            let (cert, key) = intermediate_ca(&anchor_cert, &anchor_key, "user-issuer", |params| {
                params
                    .key_usages
                    .push(rcgen::KeyUsagePurpose::DigitalSignature);
                let now = time::OffsetDateTime::now_utc();
                params.not_before = now - time::Duration::days(10);
                params.not_after = now + time::Duration::days(days);
            });
            json!({ "tls.crt": cert, "tls.key": key })
        };
        h.secrets()
            .create(
                &PostParams::default(),
                &secret("user-issuer", make_issuer(-1)),
            )
            .await
            .unwrap();
        degraded_with("expired").await;
        assert_eq!(
            h.controller().await.metadata.generation,
            before.metadata.generation
        );

        // A valid issuer: the rollout goes ahead and uses it.
        h.secrets()
            .replace(
                "user-issuer",
                &PostParams::default(),
                &secret("user-issuer", make_issuer(30)),
            )
            .await
            .unwrap();
        eventually(
            "the controller to mount the user's issuer",
            RESTORE_TIMEOUT,
            || async {
                let d = h.controller().await;
                let volumes = d
                    .spec
                    .unwrap()
                    .template
                    .spec
                    .unwrap()
                    .volumes
                    .unwrap_or_default();
                let issuer = volumes
                    .iter()
                    .find(|v| v.name == "issuer")
                    .and_then(|v| v.secret.clone())
                    .and_then(|s| s.secret_name);
                if issuer.as_deref() == Some("user-issuer") {
                    Ok(())
                } else {
                    Err(issuer)
                }
            },
        )
        .await;
        h.await_healthy(&version()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_writes_and_another_takes_over_when_it_dies() {
    with_mesh("op-lease", false, |h| async move {
        let a = h.start_operator("replica-a").await;
        let b = h.start_operator("replica-b").await;
        h.apply_mesh(json!({})).await;
        h.await_ready(&version()).await;
        let anchor = h.secret_value(TRUST_ANCHOR_SECRET, TLS_CERT_KEY).await;
        let leases: Api<Lease> = Api::namespaced(h.client.clone(), &h.ns);
        let holder = |l: &Lease| {
            l.spec
                .as_ref()
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_default()
        };
        let first = holder(&leases.get("trellis-operator").await.unwrap());
        let (holder_op, waiting_op) = match first.as_str() {
            "replica-a" => (a, b),
            "replica-b" => (b, a),
            other => panic!("unexpected Lease holder {other:?}"),
        };
        // The waiting replica has not reconciled anything.
        let waiting_metrics = waiting_op.metrics().await;
        assert!(
            !waiting_metrics.contains("trellis_operator_reconciles_total{"),
            "{waiting_metrics}"
        );

        // The holder dies; a spec change made meanwhile is applied by the other one.
        holder_op.kill().await;
        h.apply_mesh(json!({ "version": "0.3.0" })).await;
        h.await_ready("0.3.0").await;
        let lease = leases.get("trellis-operator").await.unwrap();
        assert_ne!(holder(&lease), first);
        assert!(lease.spec.unwrap().lease_transitions.unwrap_or(0) >= 2);
        assert!(
            waiting_op
                .metrics()
                .await
                .contains("trellis_operator_reconciles_total{")
        );

        // Restart halfway through a change: a new replica converges to the same state.
        h.apply_mesh(json!({ "version": "0.4.0" })).await;
        waiting_op.kill().await;
        let c = h.start_operator("replica-c").await;
        h.await_ready("0.4.0").await;
        assert_eq!(
            image_of(&h.controller().await),
            "test.trellis.invalid/trellis/controller:0.4.0"
        );
        assert_eq!(
            h.secret_value(TRUST_ANCHOR_SECRET, TLS_CERT_KEY).await,
            anchor
        );

        // A graceful stop hands the Lease back at once.
        c.stop().await;
        let lease = leases.get("trellis-operator").await.unwrap();
        assert_eq!(lease.spec.unwrap().holder_identity, None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_manifests_give_the_operator_enough_rights() {
    with_mesh("op-rbac", true, |h| async move {
        let dir = cluster::repo_root().join("config/install");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let yaml = std::fs::read_to_string(&file).unwrap();
            k8s::apply_yaml(&h.client, None, &yaml)
                .await
                .unwrap_or_else(|e| panic!("apply {}: {e}", file.display()));
        }
        // A client that acts as the operator's ServiceAccount.
        let kubeconfig = Kubeconfig::read_from(cluster::kubeconfig_path()).unwrap();
        let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
        config.auth_info.impersonate =
            Some("system:serviceaccount:trellis-system:trellis-operator".to_string());
        let as_operator = Client::try_from(config).unwrap();
        let mut op_config = operator_config(&h, "rbac");
        op_config.lease_namespace = "trellis-system".to_string();
        op_config.lease_name = format!("test-{}", h.ns);
        let op = start_operator(as_operator, op_config).await;

        h.apply_mesh(json!({ "extensions": { "tracing": { "enabled": true } } }))
            .await;
        h.await_ready(&version()).await;
        // Pods are counted (list in the reconcile, then the watch) with the operator's rights.
        h.await_pod_counts(0, 0).await;
        op.await_quiet().await;
        let pods: Api<Pod> = Api::namespaced(h.client.clone(), &h.cp);
        pods.create(
            &PostParams::default(),
            &test_pod("meshed", Some(&h.cp), &version()),
        )
        .await
        .unwrap();
        h.await_pod_counts(1, 1).await;
        h.meshes()
            .delete(&h.mesh, &DeleteParams::background())
            .await
            .unwrap();
        eventually(
            "the Mesh to be cleaned up by the operator's own rights",
            RESTORE_TIMEOUT,
            || async {
                match h.meshes().get_opt(&h.mesh).await.unwrap() {
                    None => Ok(()),
                    Some(m) => Err(m.status.map(|s| {
                        s.conditions
                            .into_iter()
                            .map(|c| c.message)
                            .collect::<Vec<_>>()
                    })),
                }
            },
        )
        .await;
        let roles: Api<ClusterRole> = Api::all(h.client.clone());
        let selector = ListParams::default().labels(&format!("trellis.dev/mesh={}", h.mesh));
        assert!(
            roles
                .list_metadata(&selector)
                .await
                .unwrap()
                .items
                .is_empty()
        );
        op.stop().await;
        let leases: Api<Lease> = Api::namespaced(h.client.clone(), "trellis-system");
        let _ = leases
            .delete(&format!("test-{}", h.ns), &DeleteParams::default())
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_inside_its_renewal_window_is_renewed_and_the_anchor_kept() {
    with_ready_mesh("op-renew", false, |h, mesh| async move {
        let first_expiry = mesh
            .status
            .unwrap()
            .identity
            .unwrap()
            .issuer_not_after
            .unwrap();
        let anchor_cert = h.secret_value(TRUST_ANCHOR_SECRET, TLS_CERT_KEY).await;
        let anchor_key = h.secret_value(TRUST_ANCHOR_SECRET, TLS_KEY_KEY).await;

        // Replace the issuer with one that expires in two days (default renewal: 30 days before).
        let (short, key) =
            intermediate_ca(&anchor_cert, &anchor_key, "short-lived issuer", |params| {
                params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(2);
            });
        h.secrets()
            .patch(
                ISSUER_SECRET,
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "stringData": { "tls.crt": short, "tls.key": key }
                })),
            )
            .await
            .unwrap();

        let renewed = eventually(
            "the short-lived issuer to be renewed",
            RESTORE_TIMEOUT,
            || async {
                let cert = h.secret_value(ISSUER_SECRET, TLS_CERT_KEY).await;
                if cert != short {
                    Ok(cert)
                } else {
                    Err("still the short-lived issuer")
                }
            },
        )
        .await;
        assert_ne!(renewed, short);
        assert_eq!(
            h.secret_value(TRUST_ANCHOR_SECRET, TLS_CERT_KEY).await,
            anchor_cert,
            "the anchor must be kept"
        );
        let mesh = k8s::await_object(&h.meshes(), &h.mesh, DEFAULT_TIMEOUT, |m| {
            let expiry = m
                .status
                .as_ref()
                .and_then(|s| s.identity.as_ref())
                .and_then(|i| i.issuer_not_after.clone());
            match expiry {
                Some(t)
                    if t.0.as_second() > first_expiry.0.as_second() - 60 && t != first_expiry =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        let identity_healthy = condition(&mesh, conditions::IDENTITY_HEALTHY);
        assert_eq!(
            identity_healthy.status, TRUE,
            "{}",
            identity_healthy.message
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_mesh_for_the_same_namespace_is_refused_and_the_first_kept() {
    with_ready_mesh("op-conflict", false, |h, _| async move {
        let before = h.controller().await;

        let rival_name = format!("{}-rival", h.mesh);
        let rival = json!({
            "apiVersion": "trellis.dev/v1alpha1", "kind": "Mesh",
            "metadata": { "name": rival_name, "labels": { TEST_MESH_LABEL: h.mesh } },
            "spec": { "namespace": h.cp, "version": "0.9.0" },
        });
        k8s::server_side_apply(&h.meshes(), &rival_name, &rival).await;
        let refused = k8s::await_object(&h.meshes(), &rival_name, DEFAULT_TIMEOUT, |m| {
            let status = m.status.as_ref().ok_or("no status")?;
            let d = find(&status.conditions, conditions::DEGRADED).ok_or("no Degraded")?;
            if d.status == TRUE && d.reason == reasons::INVALID_SPEC {
                Ok(())
            } else {
                Err(d.message.clone())
            }
        })
        .await;
        let message = find(&refused.status.unwrap().conditions, conditions::DEGRADED)
            .unwrap()
            .message
            .clone();
        assert!(
            message.contains(&h.mesh) && message.contains("spec.namespace"),
            "{message}"
        );
        let after = h.controller().await;
        assert_eq!(
            after.metadata.generation, before.metadata.generation,
            "the first Mesh's control plane was changed"
        );
        assert_eq!(image_of(&after), image_of(&before));

        // The refused Mesh goes without touching the first one's objects.
        h.meshes()
            .delete(&rival_name, &DeleteParams::background())
            .await
            .unwrap();
        eventually("the refused Mesh to be gone", RESTORE_TIMEOUT, || async {
            match h.meshes().get_opt(&rival_name).await.unwrap() {
                None => Ok(()),
                Some(m) => Err(m.finalizers().to_vec()),
            }
        })
        .await;
        h.await_ready(&version()).await;
        assert_eq!(h.controller().await.uid(), before.uid());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inject_annotation_is_mirrored_onto_a_namespace_label() {
    with_mesh("op-inject-label", false, |h| async move {
        const KEY: &str = "trellis.dev/inject";
        const UNRELATED: &str = "example.com/team";
        let op = h.start_operator("replica-a").await;
        let namespaces: Api<Namespace> = Api::all(h.client.clone());
        let merge = |patch: Value| {
            let namespaces = namespaces.clone();
            let name = h.ns.clone();
            async move {
                namespaces
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .unwrap_or_else(|e| panic!("patch Namespace {name}: {e}"));
            }
        };
        let await_label = |want: Option<&'static str>| {
            let namespaces = namespaces.clone();
            let name = h.ns.clone();
            async move {
                eventually(
                    &format!("label {KEY}={want:?} on {name}"),
                    RESTORE_TIMEOUT,
                    || async {
                        let ns = namespaces.get(&name).await.map_err(|e| e.to_string())?;
                        let labels = ns.labels().clone();
                        if labels.get(KEY).map(String::as_str) == want {
                            Ok(labels)
                        } else {
                            Err(format!("{labels:?}"))
                        }
                    },
                )
                .await
            }
        };

        merge(json!({ "metadata": {
            "labels": { UNRELATED: "payments" },
            "annotations": { KEY: "enabled" },
        } }))
        .await;
        let labels = await_label(Some("enabled")).await;
        assert_eq!(labels.get(UNRELATED).map(String::as_str), Some("payments"));

        merge(json!({ "metadata": { "annotations": { KEY: "disabled" } } })).await;
        let labels = await_label(Some("disabled")).await;
        assert_eq!(labels.get(UNRELATED).map(String::as_str), Some("payments"));

        merge(json!({ "metadata": { "annotations": { KEY: null } } })).await;
        let labels = await_label(None).await;
        assert_eq!(labels.get(UNRELATED).map(String::as_str), Some("payments"));

        // The label is owned by its own field manager, not the operator's.
        let ns = namespaces.get(&h.ns).await.unwrap();
        let managers: Vec<String> = ns
            .managed_fields()
            .iter()
            .filter_map(|m| m.manager.clone())
            .collect();
        assert!(
            !managers
                .iter()
                .any(|m| m == trellis_api::well_known::FIELD_MANAGER),
            "{managers:?}"
        );
        op.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshed_and_up_to_date_counts_follow_the_pods() {
    with_mesh("op-pods", false, |h| async move {
        let (op, _) = h.start_ready(json!({})).await;
        h.await_pod_counts(0, 0).await;
        // From here on, no reconcile is due (the next resync is minutes away): the counts
        // must follow the pods without one.
        op.await_quiet().await;
        let pods: Api<Pod> = Api::namespaced(h.client.clone(), &h.cp);
        let post = PostParams::default();
        let old = "0.0.1-old";

        // A finished pod does not count. It is finished before the others exist, so no count
        // seen below can include it.
        let mut done = test_pod("done", Some(&h.cp), &version());
        let spec = done.spec.as_mut().unwrap();
        spec.node_name = None;
        spec.node_selector = Some([("trellis.dev/nowhere".to_string(), "true".to_string())].into());
        spec.restart_policy = Some("Never".to_string());
        pods.create(&post, &done).await.unwrap();
        let finished = pods
            .patch_status(
                "done",
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": { "phase": "Succeeded" } })),
            )
            .await
            .unwrap();
        assert_eq!(finished.status.unwrap().phase.as_deref(), Some("Succeeded"));

        // Three at the Mesh's version, two older, and one at the version but unlabelled.
        let created = [
            test_pod("current-0", Some(&h.cp), &version()),
            test_pod("current-1", Some(&h.cp), &version()),
            test_pod("current-2", Some(&h.cp), &version()),
            test_pod("old-0", Some(&h.cp), old),
            test_pod("old-1", Some(&h.cp), old),
            test_pod("unlabelled", None, &version()),
        ];
        futures::future::try_join_all(created.iter().map(|p| pods.create(&post, p)))
            .await
            .unwrap();
        h.await_pod_counts(5, 3).await;

        // The columns of `kubectl get mesh -o wide`.
        let (ok, out, err) = kubectl(&["get", "mesh", &h.mesh, "-o", "wide"]).await;
        assert!(ok, "{err}");
        let mut lines = out.lines().map(str::split_whitespace);
        let columns: std::collections::HashMap<&str, &str> =
            lines.next().unwrap().zip(lines.next().unwrap()).collect();
        assert_eq!(
            (columns.get("MESHED"), columns.get("UP-TO-DATE")),
            (Some(&"5"), Some(&"3")),
            "{out}"
        );

        // The counts follow a deleted pod and a pod moved to the new proxy version.
        op.await_quiet().await;
        pods.delete("current-0", &DeleteParams::default())
            .await
            .unwrap();
        h.await_pod_counts(4, 2).await;
        op.await_quiet().await;
        pods.patch(
            "old-0",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { PROXY_VERSION_ANNOTATION: version() } } }),
            ),
        )
        .await
        .unwrap();
        h.await_pod_counts(4, 3).await;
        op.stop().await;
    })
    .await;
}
