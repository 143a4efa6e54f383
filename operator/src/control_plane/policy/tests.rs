use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use trellis_api::{
    inbound::{ClientAuthentication, Meta, PortSpec, Protocol, Workload},
    outbound::{AppProtocol, TrafficSpec, TrafficTarget},
    well_known,
};
use trellis_crds::v1alpha1::{
    authorization_policy::AuthorizationPolicy, network_authentication::NetworkAuthentication,
    server::Server,
};

use super::DiscoverPolicy;
use crate::{
    control_plane::{
        destination::LookupError,
        index::{ClusterSettings, Index, SharedIndex},
    },
    test_util::obj,
};

fn mk_index() -> SharedIndex {
    let index = Index::shared(ClusterSettings::default());
    index.write().apply_pod(&obj::<Pod>(serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": "198.18.128.1"}
    })));
    index
}

fn spec(port: u16) -> PortSpec {
    PortSpec {
        workload: Workload {
            namespace: "shop".into(),
            pod: "web-1".into(),
        },
        port,
    }
}

#[test]
fn default_policy_comes_from_pod_then_namespace_then_mesh() {
    let index = mk_index();
    let policy = index.inbound(&spec(8080)).unwrap();
    assert_eq!(policy.meta, Meta::Default("all-unauthenticated".into()));
    assert!(matches!(policy.protocol, Protocol::Detect { .. }));

    index
        .write()
        .apply_namespace(&obj::<Namespace>(serde_json::json!({
            "metadata": {"name": "shop", "annotations": {
                well_known::DEFAULT_INBOUND_POLICY_ANNOTATION: "deny",
                well_known::OPAQUE_PORTS_ANNOTATION: "8080"
            }}
        })));
    let policy = index.inbound(&spec(8080)).unwrap();
    assert_eq!(policy.meta, Meta::Default("deny".into()));
    assert!(policy.authorizations.is_empty());
    assert_eq!(policy.protocol, Protocol::Opaque);

    index.write().apply_pod(&obj::<Pod>(serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"},
                     "annotations": {well_known::DEFAULT_INBOUND_POLICY_ANNOTATION: "cluster-authenticated"}},
        "status": {"podIP": "198.18.128.1"}
    })));
    let policy = index.inbound(&spec(8080)).unwrap();
    assert_eq!(policy.meta, Meta::Default("cluster-authenticated".into()));
    assert!(matches!(
        policy.authorizations[0].authentication,
        ClientAuthentication::MeshTls { .. }
    ));

    assert!(matches!(
        index.inbound(&PortSpec {
            workload: Workload {
                namespace: "shop".into(),
                pod: "nope".into()
            },
            port: 80
        }),
        Err(LookupError::NotFound(_))
    ));
}

#[test]
fn server_and_authorization_policy_with_network_authentication() {
    let index = mk_index();
    let mut changes = index.changes();
    changes.borrow_and_update();
    index.write().apply_policy(&obj::<Server>(serde_json::json!({
        "apiVersion": "policy.trellis.dev/v1alpha1", "kind": "Server",
        "metadata": {"name": "web-http", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": "http", "proxyProtocol": "HTTP/2", "accessPolicy": "deny"}
    })));
    assert!(changes.has_changed().unwrap());
    let policy = index.inbound(&spec(8080)).unwrap();
    assert_eq!(policy.protocol, Protocol::Http2);
    assert!(policy.authorizations.is_empty(), "accessPolicy deny");
    // Another port is not selected.
    assert!(matches!(
        index.inbound(&spec(9090)).unwrap().meta,
        Meta::Default(_)
    ));

    let authz = obj::<AuthorizationPolicy>(serde_json::json!({
        "apiVersion": "policy.trellis.dev/v1alpha1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "from-lan", "namespace": "shop"},
        "spec": {"targetRef": {"kind": "Server", "name": "web-http"},
                 "requiredAuthenticationRefs": [{"kind": "NetworkAuthentication", "name": "lan"}]}
    }));
    index.write().apply_policy(&authz);
    assert!(
        index
            .inbound(&spec(8080))
            .unwrap()
            .authorizations
            .is_empty(),
        "a missing reference means the policy does not hold"
    );
    index
        .write()
        .apply_policy(&obj::<NetworkAuthentication>(serde_json::json!({
            "apiVersion": "policy.trellis.dev/v1alpha1", "kind": "NetworkAuthentication",
            "metadata": {"name": "lan", "namespace": "shop"},
            "spec": {"networks": [{"cidr": "198.18.0.0/24", "except": ["198.18.0.7/32"]}]}
        })));
    let policy = index.inbound(&spec(8080)).unwrap();
    assert_eq!(policy.authorizations.len(), 1);
    let a = &policy.authorizations[0];
    assert_eq!(a.authentication, ClientAuthentication::Unauthenticated);
    assert_eq!(a.networks[0].net.to_string(), "198.18.0.0/24");
    assert_eq!(a.networks[0].except.len(), 1);
}

#[test]
fn outbound_policies_for_services_only() {
    let index = mk_index();
    index
        .write()
        .apply_service(&obj::<Service>(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "198.19.0.10", "ports": [
                {"name": "http", "port": 80, "appProtocol": "http"},
                {"name": "db", "port": 5432, "appProtocol": "linkerd.io/opaque"},
                {"name": "any", "port": 90}
            ]}
        })));
    let by = |target| {
        index.outbound(&TrafficSpec {
            source: None,
            target,
        })
    };
    let p = by(TrafficTarget::Addr("198.19.0.10:80".parse().unwrap())).unwrap();
    assert_eq!(p.protocol, AppProtocol::Http1);
    assert_eq!(p.backend_path, "web.shop.svc.cluster.local:80");
    let p = by(TrafficTarget::Authority(
        "web.shop.svc.cluster.local:5432".into(),
    ))
    .unwrap();
    assert_eq!(p.protocol, AppProtocol::Opaque);
    let p = by(TrafficTarget::Authority(
        "web.shop.svc.cluster.local:90".into(),
    ))
    .unwrap();
    assert_eq!(p.protocol, AppProtocol::Detect);
    assert!(matches!(
        by(TrafficTarget::Addr("198.18.128.1:8080".parse().unwrap())),
        Err(LookupError::NotFound(_))
    ));
    assert!(matches!(
        by(TrafficTarget::Authority("example.com:80".into())),
        Err(LookupError::Invalid(_))
    ));
}

#[test]
fn the_kubelet_may_probe_a_probed_port_whatever_the_policy() {
    let index = Index::shared(ClusterSettings::default());
    index.write().apply_pod(&obj::<Pod>(serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [{
            "name": "web",
            "ports": [{"name": "http", "containerPort": 8080}, {"name": "tcp", "containerPort": 8082}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
        }]},
        "status": {"podIP": "198.18.64.20", "hostIP": "198.18.64.1"}
    })));
    index.write().apply_policy(&obj::<Server>(serde_json::json!({
        "metadata": {"name": "web-http", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": 8080, "accessPolicy": "deny"}
    })));
    index.write().apply_policy(&obj::<Server>(serde_json::json!({
        "metadata": {"name": "web-tcp", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": 8082, "accessPolicy": "deny"}
    })));

    let probed = index.inbound(&spec(8080)).unwrap();
    assert_eq!(probed.authorizations.len(), 1, "{probed:?}");
    let probe = &probed.authorizations[0];
    assert_eq!(probe.meta, Meta::Default("probe".into()));
    assert_eq!(probe.authentication, ClientAuthentication::Unauthenticated);
    assert_eq!(probe.networks.len(), 1);
    assert_eq!(probe.networks[0].net, "198.18.64.1/32".parse().unwrap());

    let unprobed = index.inbound(&spec(8082)).unwrap();
    assert!(unprobed.authorizations.is_empty(), "{unprobed:?}");
    assert!(probed.routes.is_empty(), "no routes, no probe route");

    // Once the Server has a route, its probe path gets a route of its own (off the routes,
    // requests get 404, and a failing readiness probe would take the pod out).
    index
        .write()
        .apply_http_route(&obj::<trellis_crds::gateway::http_route::HTTPRoute>(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "api", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"parentRefs": [{"group": "policy.trellis.dev", "kind": "Server", "name": "web-http"}],
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}]}]},
        })));
    let routed = index.inbound(&spec(8080)).unwrap();
    let probe_route = routed
        .routes
        .iter()
        .find(|r| r.meta == trellis_api::route::RouteRef::Default("probe".into()))
        .unwrap_or_else(|| panic!("a probe route: {routed:?}"));
    let m = &probe_route.rules[0].matches[0];
    assert_eq!(
        m.path,
        Some(trellis_api::route::PathMatch::Exact("/healthz".into()))
    );
    assert_eq!(m.method, Some(http::Method::GET));
    assert_eq!(routed.routes.len(), 2, "{routed:?}");
}
