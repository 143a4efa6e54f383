use trellis_api::destination::{Context, ProtocolHint, Target};

use super::*;
use crate::{
    control_plane::destination::DiscoverEndpoints,
    test_util::{mk_pod, mk_service, mk_slice},
};

/// Adds pod `name` of Deployment `web` in `shop`.
fn add_pod(index: &SharedIndex, name: &str, ip: &str, meshed: bool) {
    index
        .write()
        .apply_pod(&mk_pod("shop", name, ip, meshed, serde_json::json!({})));
}

fn target() -> Target {
    Target::Service {
        namespace: "shop".into(),
        name: "web".into(),
        port: 80,
    }
}

#[test]
fn endpoints_follow_slices_and_pods() {
    let index = Index::shared(ClusterSettings::default());
    assert!(index.watch_endpoints(&target()).is_err(), "unknown Service");
    index
        .write()
        .apply_service(&mk_service("shop", "web", serde_json::json!({})));
    let mut rx = index.watch_endpoints(&target()).unwrap();
    assert_eq!(rx.borrow_and_update().as_ref().map(|s| s.len()), Some(0));

    add_pod(&index, "web-1", "198.18.128.1", true);
    add_pod(&index, "web-2", "198.18.128.2", false);
    index.write().apply_slice(&mk_slice(
        "shop",
        "web-x",
        "web",
        &[
            ("web-1", "198.18.128.1", true),
            ("web-2", "198.18.128.2", true),
            ("web-3", "198.18.128.3", false),
        ],
    ));
    assert!(rx.has_changed().unwrap());
    let set = rx.borrow_and_update().clone().unwrap();
    assert_eq!(set.len(), 2, "not-ready endpoints are left out");
    let meshed = &set[&"198.18.128.1:8080".parse().unwrap()];
    assert_eq!(
        meshed.identity.as_deref(),
        Some("web.shop.serviceaccount.identity.trellis.cluster.local")
    );
    assert_eq!(meshed.hint, ProtocolHint::H2);
    assert_eq!(meshed.labels["deployment"], "web");
    assert_eq!(meshed.labels["pod"], "web-1");
    assert_eq!(meshed.labels["serviceaccount"], "web");
    let plain = &set[&"198.18.128.2:8080".parse().unwrap()];
    assert_eq!(plain.identity, None);
    assert_eq!(plain.hint, ProtocolHint::Unknown);

    index.write().delete_slice("shop", "web-x");
    assert_eq!(rx.borrow_and_update().as_ref().map(|s| s.len()), Some(0));
    index.write().delete_service("shop", "web");
    assert!(rx.borrow_and_update().is_none());
}

#[test]
fn opaque_ports_give_opaque_transport() {
    let index = Index::shared(ClusterSettings::default());
    index.write().apply_service(&mk_service(
        "shop",
        "web",
        serde_json::json!({well_known::OPAQUE_PORTS_ANNOTATION: "80"}),
    ));
    add_pod(&index, "web-1", "198.18.128.1", true);
    index.write().apply_slice(&mk_slice(
        "shop",
        "s",
        "web",
        &[("web-1", "198.18.128.1", true)],
    ));
    let rx = index.watch_endpoints(&target()).unwrap();
    let set = rx.borrow().clone().unwrap();
    let ep = set.values().next().unwrap();
    assert_eq!(ep.hint, ProtocolHint::Opaque);
    assert_eq!(
        ep.opaque_transport_port,
        Some(well_known::PROXY_INBOUND_PORT)
    );
    let profile = index.profile(&target(), &Context::default());
    assert!(profile.opaque_protocol);
}

#[test]
fn profiles_default_and_from_service_profile() {
    let index = Index::shared(ClusterSettings::default());
    index
        .write()
        .apply_service(&mk_service("shop", "web", serde_json::json!({})));
    let profile = index.profile(&target(), &Context::default());
    assert_eq!(profile.fully_qualified_name, "web.shop.svc.cluster.local");
    assert!(profile.routes.is_empty() && profile.retry_budget.is_some());

    let sp: ServiceProfile = serde_json::from_value(serde_json::json!({
        "apiVersion": "trellis.dev/v1alpha1", "kind": "ServiceProfile",
        "metadata": {"name": "web.shop.svc.cluster.local", "namespace": "shop"},
        "spec": {"routes": [{"name": "books", "condition": {"method": "GET", "pathRegex": "/books"}, "isRetryable": true, "timeout": "2s"}],
                 "retryBudget": {"retryRatio": 0.5, "minRetriesPerSecond": 3, "ttl": "20s"}}
    }))
    .unwrap();
    let mut changes = index.changes();
    changes.borrow_and_update();
    index.write().apply_profile(&sp);
    assert!(changes.has_changed().unwrap());
    let profile = index.profile(&target(), &Context::default());
    assert_eq!(profile.routes.len(), 1);
    assert_eq!(profile.routes[0].name, "books");
    assert_eq!(
        profile.routes[0].timeout,
        Some(std::time::Duration::from_secs(2))
    );
    assert_eq!(profile.retry_budget.unwrap().min_retries_per_second, 3);

    // By ClusterIP, and for an unknown IP (a default profile, never an error).
    let by_ip = index.profile(
        &Target::Addr("198.19.0.10:80".parse().unwrap()),
        &Context::default(),
    );
    assert_eq!(by_ip.fully_qualified_name, "web.shop.svc.cluster.local");
    let unknown = index.profile(
        &Target::Addr("198.18.0.99:80".parse().unwrap()),
        &Context::default(),
    );
    assert_eq!(unknown.fully_qualified_name, "");
}

#[test]
fn pod_ip_profile_carries_the_endpoint() {
    let index = Index::shared(ClusterSettings::default());
    add_pod(&index, "web-1", "198.18.128.1", true);
    let profile = index.profile(
        &Target::Addr("198.18.128.1:8080".parse().unwrap()),
        &Context::default(),
    );
    let ep = profile.endpoint.unwrap();
    assert_eq!(ep.hint, ProtocolHint::H2);
    assert!(ep.identity.is_some());
}

#[test]
fn pod_ip_profile_labels_are_those_of_get_with_the_namespace() {
    let index = Index::shared(ClusterSettings::default());
    index
        .write()
        .apply_service(&mk_service("shop", "web", serde_json::json!({})));
    add_pod(&index, "web-1", "198.18.128.1", true);
    index.write().apply_slice(&mk_slice(
        "shop",
        "web-x",
        "web",
        &[("web-1", "198.18.128.1", true)],
    ));
    let rx = index.watch_endpoints(&target()).unwrap();
    let set = rx.borrow().clone().unwrap();
    let from_get = &set[&"198.18.128.1:8080".parse().unwrap()];

    let profile = index.profile(
        &Target::Addr("198.18.128.1:8080".parse().unwrap()),
        &Context::default(),
    );
    let from_profile = profile.endpoint.unwrap();
    let mut expected = from_get.labels.clone();
    expected.insert("namespace".into(), "shop".into());
    assert_eq!(from_profile.labels, expected);
    for label in ["pod", "deployment", "serviceaccount", "pod_template_hash"] {
        assert!(from_profile.labels.contains_key(label), "{label}");
    }
    assert_eq!(from_profile.identity, from_get.identity);
    assert_eq!(from_profile.hint, from_get.hint);
}

#[test]
fn an_unmeshed_opaque_pod_ip_gets_the_opaque_hint_as_in_get() {
    let index = Index::shared(ClusterSettings::default());
    index.write().apply_pod(&mk_pod(
        "shop",
        "db-1",
        "198.18.128.9",
        false,
        serde_json::json!({well_known::OPAQUE_PORTS_ANNOTATION: "5432"}),
    ));
    let profile = index.profile(
        &Target::Addr("198.18.128.9:5432".parse().unwrap()),
        &Context::default(),
    );
    let ep = profile.endpoint.unwrap();
    assert_eq!(ep.hint, ProtocolHint::Opaque);
    assert_eq!(ep.identity, None);
    assert_eq!(ep.labels["namespace"], "shop");
    assert_eq!(ep.labels["pod"], "db-1");
}

#[test]
fn a_missing_crd_is_told_from_other_watch_errors() {
    use kube::{core::Status, runtime::watcher};
    let status = |code| {
        kube::Error::Api(
            Status::failure(
                "the server could not find the requested resource",
                "NotFound",
            )
            .with_code(code)
            .boxed(),
        )
    };
    assert!(is_not_found(&watcher::Error::InitialListFailed(status(
        404
    ))));
    assert!(is_not_found(&watcher::Error::WatchStartFailed(status(404))));
    assert!(!is_not_found(&watcher::Error::InitialListFailed(status(
        403
    ))));
    assert!(!is_not_found(&watcher::Error::NoResourceVersion));
}
