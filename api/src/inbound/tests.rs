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

#[test]
fn server_policies_survive_the_wire_both_ways() {
    let cluster: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let mut policies: Vec<ServerPolicy> = DefaultPolicy::ALL
        .iter()
        .map(|d| d.server(&cluster, false))
        .collect();
    policies.push(ServerPolicy {
        meta: Meta::Resource {
            group: "policy.trellis.dev".into(),
            kind: "server".into(),
            name: "web-http".into(),
        },
        protocol: Protocol::Http1,
        authorizations: vec![Authorization {
            meta: Meta::Resource {
                group: "policy.trellis.dev".into(),
                kind: "authorizationpolicy".into(),
                name: "web-from-clients".into(),
            },
            networks: vec![Network {
                net: "10.0.0.0/8".parse().unwrap(),
                except: vec!["10.1.0.0/16".parse().unwrap()],
            }],
            authentication: ClientAuthentication::MeshTls {
                identities: vec![
                    "client.shop.serviceaccount.identity.trellis.cluster.local".into(),
                ],
                suffixes: vec![vec!["ingress".into(), "serviceaccount".into()]],
            },
        }],
        routes: Vec::new(),
    });
    policies.push(ServerPolicy {
        protocol: Protocol::Opaque,
        ..DefaultPolicy::Deny.server(&cluster, true)
    });
    // A server with a route per path, one of them with its own authorization.
    let route = |name: &str, prefix: &str, authorizations| InboundRoute {
        meta: crate::route::RouteRef::Resource {
            group: "gateway.networking.k8s.io".into(),
            kind: "HTTPRoute".into(),
            namespace: "shop".into(),
            name: name.into(),
            port: 0,
        },
        kind: crate::route::RouteKind::Http,
        hosts: Vec::new(),
        rules: vec![InboundRule {
            matches: vec![crate::route::RequestMatch {
                path: Some(crate::route::PathMatch::Prefix(prefix.into())),
                ..crate::route::RequestMatch::default()
            }],
            filters: Vec::new(),
        }],
        authorizations,
    };
    let open = DefaultPolicy::AllUnauthenticated.authorizations(&cluster);
    for protocol in [
        Protocol::Http1,
        Protocol::Detect {
            timeout: DEFAULT_DETECT_TIMEOUT,
        },
    ] {
        policies.push(ServerPolicy {
            protocol,
            authorizations: Vec::new(),
            routes: vec![
                route("public", "/public", open.clone()),
                route("admin", "/admin", Vec::new()),
            ],
            ..DefaultPolicy::Deny.server(&cluster, false)
        });
    }
    for policy in policies {
        let wire = api::Server::from(policy.clone());
        assert_eq!(ServerPolicy::try_from(wire).unwrap(), policy);
    }
}

#[test]
fn invalid_servers_name_the_field() {
    let valid = api::Server::from(DefaultPolicy::AllUnauthenticated.server(&[], false));
    let cases: Vec<(&str, api::Server)> = vec![
        (
            "protocol.kind",
            api::Server {
                protocol: None,
                ..valid.clone()
            },
        ),
        (
            "labels",
            api::Server {
                labels: Default::default(),
                ..valid.clone()
            },
        ),
        ("authorizations.networks", {
            let mut s = valid.clone();
            s.authorizations[0].networks.clear();
            s
        }),
        ("authorizations.authentication", {
            let mut s = valid.clone();
            s.authorizations[0].authentication = None;
            s
        }),
    ];
    for (field, server) in cases {
        let err = ServerPolicy::try_from(server).unwrap_err();
        assert_eq!(err.field, field, "{err}");
    }
}

#[test]
fn every_route_carries_the_server_authorizations_on_the_wire() {
    let cluster: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let server_authz = DefaultPolicy::ClusterAuthenticated.authorizations(&cluster);
    let own = DefaultPolicy::AllUnauthenticated.authorizations(&cluster);
    let policy = ServerPolicy {
        protocol: Protocol::Http1,
        authorizations: server_authz.clone(),
        routes: vec![InboundRoute {
            meta: crate::route::RouteRef::Default("public".into()),
            kind: crate::route::RouteKind::Http,
            hosts: Vec::new(),
            rules: vec![InboundRule::default()],
            authorizations: own,
        }],
        ..DefaultPolicy::Deny.server(&cluster, false)
    };
    let wire = api::Server::from(policy.clone());
    let Some(api::proxy_protocol::Kind::Http1(http1)) = wire.protocol.clone().unwrap().kind else {
        panic!("http1 expected");
    };
    // Linkerd's proxy checks only a route's list, so the server's come first on each route.
    assert_eq!(http1.routes[0].authorizations.len(), 2);
    assert_eq!(ServerPolicy::try_from(wire).unwrap(), policy);
    // With no routes, the default route carries the server's authorizations.
    let plain = DefaultPolicy::AllUnauthenticated.server(&cluster, false);
    let wire = api::Server::from(plain.clone());
    let Some(api::proxy_protocol::Kind::Detect(d)) = wire.protocol.clone().unwrap().kind else {
        panic!("detect expected");
    };
    assert_eq!(d.http_routes[0].authorizations.len(), 1);
    assert_eq!(ServerPolicy::try_from(wire).unwrap(), plain);
}
