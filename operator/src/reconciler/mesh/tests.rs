use k8s_openapi::{
    api::core::v1::Pod,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::{SignedDuration, Timestamp},
};
use kube::{core::PartialObjectMeta, runtime::watcher::Event};
use trellis_api::well_known::{CONTROL_PLANE_NS_LABEL, PROXY_VERSION_ANNOTATION};
use trellis_crds::{
    common::condition::find,
    v1alpha1::mesh::{ComponentStatus, MeshStatus, conditions, reasons},
};

use super::{
    pods::{MeshedPods, PodCounts, count},
    status::{Observation, build},
};

fn component(name: &str, ready: bool) -> ComponentStatus {
    ComponentStatus {
        name: name.to_string(),
        ready,
        version: None,
        message: Some(format!("deployment {name} {}/1 available", u8::from(ready))),
    }
}

/// Generation 1 of version 0.1.0 with one controller, ready or not.
fn first_rollout(ready: bool) -> Observation {
    Observation {
        generation: Some(1),
        desired_version: "0.1.0".to_string(),
        components: vec![component("controller", ready)],
        ..Observation::default()
    }
}

#[test]
fn status_reports_install_then_ready_keeping_transition_times() {
    let t0 = Timestamp::now();
    let obs = first_rollout(false);
    let installing = build(&MeshStatus::default(), &obs, t0);
    let ready = find(&installing.conditions, conditions::READY).unwrap();
    assert_eq!(ready.status, "False");
    let progressing = find(&installing.conditions, conditions::PROGRESSING).unwrap();
    assert_eq!(progressing.reason, reasons::INSTALLING);
    assert!(
        progressing
            .message
            .contains("deployment controller 0/1 available")
    );
    assert_eq!(installing.version, None);

    let t1 = t0 + SignedDuration::from_secs(5);
    let obs = Observation {
        components: vec![component("controller", true)],
        ..obs
    };
    let done = build(&installing, &obs, t1);
    assert_eq!(
        find(&done.conditions, conditions::READY).unwrap().status,
        "True"
    );
    assert_eq!(done.version.as_deref(), Some("0.1.0"));
    assert_eq!(done.components_ready.as_deref(), Some("1/1"));
    let degraded = find(&done.conditions, conditions::DEGRADED).unwrap();
    assert_eq!(degraded.status, "False");
    // Unchanged input: unchanged status (no write, no transition).
    let again = build(&done, &obs, t1 + SignedDuration::from_secs(5));
    assert_eq!(again, done);
}

#[test]
fn blocked_rollout_keeps_components_and_reports_degraded() {
    let t0 = Timestamp::now();
    let obs = first_rollout(true);
    let ready = build(&MeshStatus::default(), &obs, t0);
    let blocked = Observation {
        generation: Some(2),
        desired_version: "0.2.0".to_string(),
        blocked: Some((
            reasons::INVALID_IDENTITY_MATERIAL,
            "identity.issuer.secretName: missing".to_string(),
        )),
        ..Observation::default()
    };
    let status = build(&ready, &blocked, t0);
    assert_eq!(status.components, ready.components);
    assert_eq!(status.version.as_deref(), Some("0.1.0"));
    let degraded = find(&status.conditions, conditions::DEGRADED).unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", reasons::INVALID_IDENTITY_MATERIAL)
    );
    assert_eq!(
        find(&status.conditions, conditions::STALLED)
            .unwrap()
            .status,
        "True"
    );
    assert_eq!(
        find(&status.conditions, conditions::IDENTITY_HEALTHY)
            .unwrap()
            .status,
        "False"
    );
    assert_eq!(
        find(&status.conditions, conditions::READY).unwrap().status,
        "True"
    );
}

#[test]
fn status_reports_pod_counts_and_keeps_them_when_not_counted() {
    let t0 = Timestamp::now();
    let obs = Observation {
        pods: Some(PodCounts {
            meshed: 5,
            up_to_date: 3,
        }),
        ..first_rollout(true)
    };
    let counted = build(&MeshStatus::default(), &obs, t0);
    assert_eq!(
        (counted.meshed_pods, counted.up_to_date_pods),
        (Some(5), Some(3))
    );

    // The list failed: the previous counts stay, and nothing is degraded for it.
    let failed = Observation { pods: None, ..obs };
    let kept = build(&counted, &failed, t0 + SignedDuration::from_secs(5));
    assert_eq!((kept.meshed_pods, kept.up_to_date_pods), (Some(5), Some(3)));
    assert_eq!(kept, counted);
    assert_eq!(
        find(&kept.conditions, conditions::DEGRADED).unwrap().status,
        "False"
    );

    // Zero is a count, not "unknown".
    let none = Observation {
        pods: Some(PodCounts::default()),
        ..failed
    };
    let zero = build(&kept, &none, t0);
    assert_eq!((zero.meshed_pods, zero.up_to_date_pods), (Some(0), Some(0)));
}

fn pod(name: &str, control_plane_ns: Option<&str>, version: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some("apps".to_string()),
        labels: control_plane_ns
            .map(|ns| [(CONTROL_PLANE_NS_LABEL.to_string(), ns.to_string())].into()),
        annotations: version
            .map(|v| [(PROXY_VERSION_ANNOTATION.to_string(), v.to_string())].into()),
        ..ObjectMeta::default()
    }
}

/// A pod of the `trellis` mesh running proxy `version`, as the metadata watch sees it.
fn meshed(name: &str, version: &str) -> PartialObjectMeta<Pod> {
    partial(pod(name, Some("trellis"), Some(version)))
}

fn partial(meta: ObjectMeta) -> PartialObjectMeta<Pod> {
    PartialObjectMeta {
        types: None,
        metadata: meta,
        _phantom: std::marker::PhantomData,
    }
}

#[test]
fn counts_take_labelled_live_pods_and_match_the_version() {
    let mut deleting = pod("deleting", Some("trellis"), Some("0.2.0"));
    deleting.deletion_timestamp = Some(Time(Timestamp::now()));
    let pods = [
        pod("a", Some("trellis"), Some("0.2.0")),
        pod("b", Some("trellis"), Some("0.1.0")),
        pod("c", Some("trellis"), None),
        pod("other-mesh", Some("elsewhere"), Some("0.2.0")),
        pod("unlabelled", None, Some("0.2.0")),
        deleting,
    ];
    assert_eq!(
        count(&pods, "trellis", "0.2.0"),
        PodCounts {
            meshed: 3,
            up_to_date: 1
        }
    );
    assert_eq!(
        count(&pods, "nobody", "0.2.0"),
        PodCounts {
            meshed: 0,
            up_to_date: 0
        }
    );
}

#[test]
fn meshed_pods_follow_watch_events_and_relists() {
    let mut pods = MeshedPods::default();
    assert_eq!(pods.counts("trellis", "0.2.0"), None, "not listed yet");
    pods.apply(Event::Init);
    pods.apply(Event::InitApply(meshed("a", "0.2.0")));
    pods.apply(Event::InitApply(meshed("b", "0.1.0")));
    assert_eq!(pods.counts("trellis", "0.2.0"), None, "list not complete");
    pods.apply(Event::InitDone);
    let counts = |meshed, up_to_date| Some(PodCounts { meshed, up_to_date });
    assert_eq!(pods.counts("trellis", "0.2.0"), counts(2, 1));

    // b moves to the new proxy, c arrives, a is being deleted.
    pods.apply(Event::Apply(meshed("b", "0.2.0")));
    pods.apply(Event::Apply(meshed("c", "0.1.0")));
    assert_eq!(pods.counts("trellis", "0.2.0"), counts(3, 2));
    let mut a = pod("a", Some("trellis"), Some("0.2.0"));
    a.deletion_timestamp = Some(Time(Timestamp::now()));
    pods.apply(Event::Apply(partial(a.clone())));
    assert_eq!(pods.counts("trellis", "0.2.0"), counts(2, 1));
    pods.apply(Event::Delete(partial(a)));
    assert_eq!(pods.counts("trellis", "0.2.0"), counts(2, 1));

    // A relist (after a lost watch) replaces everything at its end; until then the old
    // counts stand.
    pods.apply(Event::Init);
    pods.apply(Event::InitApply(meshed("c", "0.1.0")));
    assert_eq!(pods.counts("trellis", "0.2.0"), counts(2, 1));
    pods.apply(Event::InitDone);
    assert_eq!(pods.counts("trellis", "0.2.0"), counts(1, 0));
    assert_eq!(pods.counts("trellis", "0.1.0"), counts(1, 1));
}

#[test]
fn unpullable_images_make_the_mesh_degraded_naming_the_image() {
    let obs = Observation {
        generation: Some(2),
        desired_version: "9.9.9".to_string(),
        components: vec![component("controller", false)],
        pod_problems: vec![super::failures::PodProblem {
            image: true,
            message: "pod p container controller: image r/controller:9.9.9 is not available"
                .to_string(),
        }],
        ..Observation::default()
    };
    let status = build(&MeshStatus::default(), &obs, Timestamp::now());
    let degraded = find(&status.conditions, conditions::DEGRADED).unwrap();
    assert_eq!(degraded.status, "True");
    assert_eq!(degraded.reason, reasons::IMAGE_UNAVAILABLE);
    assert!(
        degraded.message.contains("r/controller:9.9.9"),
        "{}",
        degraded.message
    );
    let stalled = find(&status.conditions, conditions::STALLED).unwrap();
    assert_eq!(stalled.status, "True");

    let fixed = Observation {
        components: vec![component("controller", true)],
        pod_problems: Vec::new(),
        ..obs
    };
    let status = build(&status, &fixed, Timestamp::now());
    let degraded = find(&status.conditions, conditions::DEGRADED).unwrap();
    assert_eq!(degraded.status, "False");
}

#[tokio::test]
async fn status_is_written_with_server_side_apply_only_when_it_changes() {
    use http::Method;
    use trellis_crds::v1alpha1::mesh::{Mesh, MeshSpec};

    use crate::test_util::{mock_apiserver, offline_client, ok};

    let (client, mut apiserver) = mock_apiserver();
    let mesh = Mesh::new("m1", MeshSpec::default());
    let previous = MeshStatus::default();
    let obs = Observation {
        generation: Some(2),
        desired_version: "v1".to_string(),
        blocked: Some((reasons::INVALID_SPEC, "spec.x: bad".to_string())),
        ..Observation::default()
    };
    let next = build(&previous, &obs, Timestamp::now());
    let task = tokio::spawn({
        let (client, mesh, previous, next) = (client, mesh.clone(), previous, next.clone());
        async move { super::write_status(&client, &mesh, &previous, &next).await }
    });
    let (request, send) = apiserver.next_request().await.expect("a status patch");
    assert_eq!(request.method(), Method::PATCH);
    assert_eq!(
        request.uri().path(),
        "/apis/trellis.dev/v1alpha1/meshes/m1/status"
    );
    let query = request.uri().query().unwrap_or_default().to_string();
    assert!(query.contains("fieldManager=trellis-operator") && query.contains("force=true"));
    assert_eq!(
        request.headers()[http::header::CONTENT_TYPE],
        "application/apply-patch+yaml"
    );
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["apiVersion"], "trellis.dev/v1alpha1");
    assert_eq!(body["kind"], "Mesh");
    assert_eq!(body["status"]["observedGeneration"], 2);
    let patched: MeshStatus = serde_json::from_value(body["status"].clone()).unwrap();
    let degraded = find(&patched.conditions, conditions::DEGRADED).unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", reasons::INVALID_SPEC)
    );
    assert_eq!(degraded.message, "spec.x: bad");
    let mut answer = serde_json::to_value(&mesh).unwrap();
    answer["status"] = body["status"].clone();
    send.send_response(ok(&answer));
    task.await.unwrap().unwrap();

    // Unchanged status: no request at all (this client fails every request).
    super::write_status(&offline_client(), &mesh, &next, &next)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_invalid_spec_is_one_degraded_condition_naming_the_field_and_nothing_is_applied() {
    use http::Method;
    use kube::runtime::events::{Recorder, Reporter};
    use trellis_crds::v1alpha1::mesh::Mesh;

    use crate::{
        admin::SharedRegistry,
        reconciler::{Context, Metrics},
        test_util::{RenderFixture, mock_apiserver, obj, ok},
    };

    let (client, mut apiserver) = mock_apiserver();
    let (_leader, leader) = tokio::sync::watch::channel(true);
    let ctx = Context {
        client: client.clone(),
        images: RenderFixture::default().images,
        metrics: Metrics::register(&SharedRegistry::default()),
        recorder: Recorder::new(client, Reporter::from("test")),
        backoff: parking_lot::Mutex::default(),
        leader,
        in_flight: Default::default(),
    };
    let mut object = serde_json::json!({
        "apiVersion": "trellis.dev/v1alpha1", "kind": "Mesh",
        "metadata": {"name": "m1", "uid": "uid-1", "generation": 3},
        "spec": {"identity": {"workloadCertificateLifetime": "soon"}}
    });
    let mesh: Mesh = obj(object.clone());
    let task = tokio::spawn(async move { super::apply(std::sync::Arc::new(mesh), &ctx).await });
    // The first request writes status: nothing is listed, read or applied before it.
    let (request, send) = apiserver.next_request().await.expect("a status patch");
    assert_eq!(request.method(), Method::PATCH);
    assert_eq!(
        request.uri().path(),
        "/apis/trellis.dev/v1alpha1/meshes/m1/status"
    );
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let status: MeshStatus = serde_json::from_value(body["status"].clone()).unwrap();
    let degraded: Vec<_> = status
        .conditions
        .iter()
        .filter(|c| c.type_ == conditions::DEGRADED)
        .collect();
    assert_eq!(degraded.len(), 1);
    assert_eq!(
        (degraded[0].status.as_str(), degraded[0].reason.as_str()),
        ("True", reasons::INVALID_SPEC)
    );
    assert!(
        degraded[0]
            .message
            .contains("spec.identity.workloadCertificateLifetime"),
        "{}",
        degraded[0].message
    );
    object["status"] = body["status"].clone();
    send.send_response(ok(&object));
    // Then only events (the Degraded transition) until the reconcile ends.
    let answer = tokio::spawn(async move {
        while let Some((request, send)) = apiserver.next_request().await {
            assert!(
                request.uri().path().contains("/events"),
                "{}",
                request.uri()
            );
            let bytes = request.into_body().collect_bytes().await.unwrap();
            send.send_response(ok(&serde_json::from_slice(&bytes).unwrap()));
        }
    });
    let action = task.await.unwrap().unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(super::BLOCKED_RETRY)
    );
    answer.abort();
}
