use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::{api::ObjectMeta, core::PartialObjectMeta, runtime::watcher};
use serde_json::json;

use super::*;

fn pod_meta(ns: &str, name: &str, annotations: serde_json::Value) -> PartialObjectMeta<Pod> {
    PartialObjectMeta {
        types: None,
        metadata: serde_json::from_value(json!({
            "namespace": ns, "name": name, "uid": format!("uid-{name}"), "annotations": annotations,
        }))
        .unwrap(),
        _phantom: std::marker::PhantomData,
    }
}

fn ns_meta(name: &str, annotations: serde_json::Value) -> PartialObjectMeta<Namespace> {
    PartialObjectMeta {
        types: None,
        metadata: serde_json::from_value::<ObjectMeta>(
            json!({ "name": name, "annotations": annotations }),
        )
        .unwrap(),
        _phantom: std::marker::PhantomData,
    }
}

fn names(mut keys: Vec<(String, String)>) -> Vec<String> {
    keys.sort();
    keys.into_iter()
        .map(|(ns, name)| format!("{ns}/{name}"))
        .collect()
}

#[test]
fn candidates_follow_the_injectors_rules() {
    let mut t = Tracker::default();
    t.apply_namespace(watcher::Event::Apply(ns_meta(
        "shop",
        json!({ "trellis.dev/inject": "enabled" }),
    )));
    t.apply_namespace(watcher::Event::Apply(ns_meta("plain", json!({}))));
    t.apply_namespace(watcher::Event::Apply(ns_meta(
        "cp",
        json!({ "trellis.dev/inject": "enabled" }),
    )));
    for pod in [
        pod_meta("shop", "by-namespace", json!({})),
        pod_meta(
            "shop",
            "opted-out",
            json!({ "trellis.dev/inject": "disabled" }),
        ),
        pod_meta(
            "plain",
            "by-itself",
            json!({ "trellis.dev/inject": "ingress" }),
        ),
        pod_meta("plain", "nothing", json!({})),
        pod_meta("cp", "control-plane", json!({})),
        pod_meta(
            "kube-system",
            "system",
            json!({ "trellis.dev/inject": "enabled" }),
        ),
    ] {
        t.apply_pod(watcher::Event::Apply(pod));
    }
    let cp = HashSet::from(["cp".to_string()]);
    assert_eq!(
        names(t.candidates(&cp)),
        ["plain/by-itself", "shop/by-namespace"]
    );

    // Decided pods are not candidates again; a deleted pod is forgotten.
    t.reported.insert("uid-by-namespace".to_string());
    t.excluded.insert("uid-by-itself".to_string());
    assert!(t.candidates(&cp).is_empty());
    t.apply_pod(watcher::Event::Delete(pod_meta(
        "shop",
        "by-namespace",
        json!({}),
    )));
    assert!(t.reported.is_empty());

    // A namespace that opts in later makes its pods candidates.
    t.apply_namespace(watcher::Event::Apply(ns_meta(
        "plain",
        json!({ "trellis.dev/inject": "enabled" }),
    )));
    assert_eq!(names(t.candidates(&cp)), ["plain/nothing"]);
}

#[test]
fn operator_managed_and_deleting_pods_are_left_out() {
    let mut t = Tracker::default();
    let mut managed = pod_meta(
        "shop",
        "managed",
        json!({ "trellis.dev/inject": "enabled" }),
    );
    managed.metadata.labels = Some(
        [(
            "app.kubernetes.io/managed-by".to_string(),
            "trellis-operator".to_string(),
        )]
        .into(),
    );
    let mut deleting = pod_meta(
        "shop",
        "deleting",
        json!({ "trellis.dev/inject": "enabled" }),
    );
    deleting.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
    t.apply_pod(watcher::Event::Apply(managed));
    t.apply_pod(watcher::Event::Apply(deleting));
    assert!(t.candidates(&HashSet::new()).is_empty());
}

#[test]
fn host_network_and_proxied_pods_are_left_alone() {
    let pod = |spec: serde_json::Value| -> Pod {
        serde_json::from_value(json!({ "spec": spec })).unwrap()
    };
    assert!(left_alone(&pod(
        json!({ "hostNetwork": true, "containers": [{ "name": "app" }] })
    )));
    assert!(left_alone(&pod(
        json!({ "containers": [{ "name": "app" }, { "name": "trellis-proxy" }] })
    )));
    assert!(left_alone(&pod(
        json!({ "containers": [{ "name": "app" }], "initContainers": [{ "name": "trellis-proxy" }] })
    )));
    assert!(!left_alone(&pod(
        json!({ "containers": [{ "name": "app" }] })
    )));
}
