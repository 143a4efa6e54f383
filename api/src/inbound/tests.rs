use linkerd2_proxy_api::inbound as api;

use super::*;

#[test]
fn port_specs_are_validated() {
    let ok = PortSpec::try_from(api::PortSpec {
        workload: r#"{"ns":"shop","pod":"web-1"}"#.into(),
        port: 8080,
    })
    .unwrap();
    assert_eq!(ok.workload.namespace, "shop");
    assert_eq!(ok.port, 8080);
    let legacy = Workload::parse("shop:web-1").unwrap();
    assert_eq!(legacy, ok.workload);
    for (workload, port, field) in [
        ("shop:web", 0, "port"),
        ("shop:web", 70_000, "port"),
        ("web", 80, "workload"),
        (r#"{"ns":"shop"}"#, 80, "workload"),
    ] {
        let err = PortSpec::try_from(api::PortSpec {
            workload: workload.into(),
            port,
        })
        .unwrap_err();
        assert_eq!(err.field, field, "{workload} {port}");
    }
}

#[test]
fn defaults_follow_the_contract() {
    let cluster: Vec<ipnet::IpNet> = vec!["198.18.0.0/15".parse().unwrap()];
    let deny = api::Server::from(DefaultPolicy::Deny.server(&cluster, false));
    assert!(deny.authorizations.is_empty());
    assert_eq!(deny.labels["kind"], "default");
    assert_eq!(deny.labels["name"], "deny");

    let all = api::Server::from(DefaultPolicy::AllUnauthenticated.server(&cluster, false));
    assert_eq!(all.authorizations.len(), 1);
    assert_eq!(all.authorizations[0].networks.len(), 2);
    let Some(api::proxy_protocol::Kind::Detect(detect)) = all.protocol.unwrap().kind else {
        panic!("detect expected");
    };
    assert_eq!(detect.timeout.unwrap().seconds, 10);
    assert_eq!(detect.http_routes.len(), 1);

    let authn = api::Server::from(DefaultPolicy::ClusterAuthenticated.server(&cluster, true));
    assert!(matches!(
        authn.protocol.unwrap().kind,
        Some(api::proxy_protocol::Kind::Opaque(_))
    ));
    let authz = &authn.authorizations[0];
    assert_eq!(authz.networks.len(), 1);
    assert_eq!(authz.labels["name"], "cluster-authenticated");
    let Some(api::authn::Permit::MeshTls(tls)) = authz.authentication.clone().unwrap().permit
    else {
        panic!("meshTLS expected");
    };
    let Some(api::authn::permit_mesh_tls::Clients::Identities(ids)) = tls.clients else {
        panic!("identities expected");
    };
    assert_eq!(ids.suffixes, vec![api::IdentitySuffix { parts: vec![] }]);
    for name in [
        "all-unauthenticated",
        "all-authenticated",
        "cluster-unauthenticated",
        "cluster-authenticated",
        "deny",
        "audit",
    ] {
        assert_eq!(DefaultPolicy::parse(name).unwrap().as_str(), name);
    }
}
