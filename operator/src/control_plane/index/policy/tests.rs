//! `Server.accessPolicy`: it admits what no AuthorizationPolicy does, beside them.

use serde_json::json;
use trellis_api::inbound::{ClientAuthentication, Meta, PortSpec, ServerPolicy, Workload};
use trellis_crds::{
    common::access_policy::AccessPolicy,
    v1alpha1::{authorization_policy::AuthorizationPolicy, server::Server},
};

use crate::{
    control_plane::index::{ClusterSettings, Index},
    test_util::{mk_pod, obj},
};

fn index_with(access_policy: AccessPolicy) -> Index {
    let mut index = Index::new(ClusterSettings::default());
    index.apply_pod(&mk_pod("shop", "web-1", "198.18.128.1", true, json!({})));
    index.apply_policy(&obj::<Server>(json!({
        "apiVersion": "policy.trellis.dev/v1alpha1", "kind": "Server",
        "metadata": {"name": "web-http", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": 8080,
                 "accessPolicy": access_policy.as_str()}
    })));
    index
}

fn policy(name: &str, kind: &str, target: &str) -> AuthorizationPolicy {
    obj(json!({
        "apiVersion": "policy.trellis.dev/v1alpha1", "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"targetRef": {"kind": kind, "name": target},
                 "requiredAuthenticationRefs": [{"kind": "ServiceAccount", "name": "client"}]}
    }))
}

fn inbound(index: &Index) -> ServerPolicy {
    index
        .inbound_policy(&PortSpec {
            workload: Workload {
                namespace: "shop".into(),
                pod: "web-1".into(),
            },
            port: 8080,
        })
        .unwrap()
}

fn metas(policy: &ServerPolicy) -> Vec<Meta> {
    policy
        .authorizations
        .iter()
        .map(|a| a.meta.clone())
        .collect()
}

fn authz_policy(name: &str) -> Meta {
    Meta::Resource {
        group: "policy.trellis.dev".into(),
        kind: "authorizationpolicy".into(),
        name: name.into(),
    }
}

#[test]
fn each_access_policy_grants_its_default_authorizations() {
    for access in AccessPolicy::ALL {
        let index = index_with(access);
        let policy = inbound(&index);
        let expected =
            super::access_default(access).authorizations(&index.settings().cluster_networks);
        assert_eq!(policy.authorizations, expected, "{access:?}");
    }
    let cluster = inbound(&index_with(AccessPolicy::ClusterAuthenticated));
    let a = &cluster.authorizations[0];
    assert!(a.networks.iter().all(|n| n.net.to_string() != "0.0.0.0/0"));
    assert!(matches!(
        a.authentication,
        ClientAuthentication::MeshTls { .. }
    ));
    let audit = inbound(&index_with(AccessPolicy::Audit));
    assert_eq!(audit.authorizations[0].meta, Meta::Default("audit".into()));
}

#[test]
fn the_access_policy_still_admits_beside_authorization_policies() {
    let mut index = index_with(AccessPolicy::ClusterUnauthenticated);
    index.apply_policy(&policy("clients", "Server", "web-http"));
    index.apply_policy(&policy("everyone-here", "Namespace", "shop"));
    assert_eq!(
        metas(&inbound(&index)),
        [
            authz_policy("clients"),
            authz_policy("everyone-here"),
            Meta::Default("cluster-unauthenticated".into()),
        ],
        "policies first, then what the access policy admits"
    );

    let mut index = index_with(AccessPolicy::Deny);
    index.apply_policy(&policy("clients", "Server", "web-http"));
    assert_eq!(metas(&inbound(&index)), [authz_policy("clients")]);
}

#[test]
fn with_routes_the_access_policy_stays_on_the_server() {
    let mut index = index_with(AccessPolicy::AllAuthenticated);
    index.apply_http_route(&obj(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "public", "namespace": "shop"},
        "spec": {"parentRefs": [{"group": "policy.trellis.dev", "kind": "Server", "name": "web-http"}],
                 "rules": [{}]},
    })));
    index.apply_policy(&policy("public-clients", "HTTPRoute", "public"));
    let server = inbound(&index);
    assert_eq!(
        metas(&server),
        [Meta::Default("all-authenticated".into())],
        "a route policy does not take the server's access policy away"
    );
    assert_eq!(server.routes.len(), 1);
    assert_eq!(
        server.routes[0].authorizations[0].meta,
        authz_policy("public-clients")
    );
}
