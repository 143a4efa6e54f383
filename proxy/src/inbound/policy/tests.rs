use trellis_api::linkerd2_proxy_api::{inbound as wire, net::IpNetwork};

use ipnet::IpNet;

use super::*;

const CLIENT: &str = "web.shop.serviceaccount.identity.trellis.cluster.local";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mtls(id: &str) -> ClientTls {
    ClientTls::Established(Some(id.to_string()))
}

#[test]
fn default_policies_follow_the_contract() {
    let cluster: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let all = DefaultPolicy::AllUnauthenticated.server(&cluster, false);
    assert_eq!(
        with_detect_timeout(all.clone(), Duration::from_secs(2)).protocol,
        Protocol::Detect {
            timeout: Duration::from_secs(2)
        }
    );
    assert!(authorize(&all, ip("192.0.2.1"), &ClientTls::None).is_ok());

    let authn = DefaultPolicy::AllAuthenticated.server(&cluster, false);
    assert!(authorize(&authn, ip("192.0.2.1"), &ClientTls::None).is_err());
    assert!(authorize(&authn, ip("192.0.2.1"), &ClientTls::Established(None)).is_err());
    assert!(authorize(&authn, ip("192.0.2.1"), &mtls(CLIENT)).is_ok());

    let cluster_unauth = DefaultPolicy::ClusterUnauthenticated.server(&cluster, false);
    assert!(authorize(&cluster_unauth, ip("10.1.1.1"), &ClientTls::None).is_ok());
    assert!(authorize(&cluster_unauth, ip("192.0.2.1"), &ClientTls::None).is_err());

    let deny = DefaultPolicy::Deny.server(&cluster, false);
    let err = authorize(&deny, ip("10.1.1.1"), &mtls(CLIENT)).unwrap_err();
    assert!(err.to_string().contains("deny"), "{err}");
    // The implicit localhost authorization admits loopback clients even under deny.
    assert!(authorize(&deny, ip("127.0.0.1"), &ClientTls::None).is_ok());
    assert!(authorize(&deny, ip("::1"), &ClientTls::None).is_ok());
    // Only those two addresses: other loopback addresses are ordinary clients.
    assert!(authorize(&deny, ip("127.0.0.2"), &ClientTls::None).is_err());
}

fn net(s: &str) -> wire::Network {
    wire::Network {
        net: Some(IpNetwork::from(s.parse::<IpNet>().unwrap())),
        except: vec![],
    }
}

fn server(authorizations: Vec<wire::Authz>) -> wire::Server {
    wire::Server {
        protocol: Some(wire::ProxyProtocol {
            kind: Some(wire::proxy_protocol::Kind::Detect(
                wire::proxy_protocol::Detect {
                    timeout: Some(prost_types_duration(10)),
                    http_routes: vec![],
                    http_local_rate_limit: None,
                },
            )),
        }),
        server_ips: vec![],
        authorizations,
        labels: [
            ("group", "policy.trellis.dev"),
            ("kind", "server"),
            ("name", "web-http"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    }
}

fn prost_types_duration(secs: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: secs,
        nanos: 0,
    }
}

fn identities_authz(ids: &[&str], suffixes: &[&[&str]]) -> wire::Authz {
    use wire::authn::{Permit, PermitMeshTls, permit_mesh_tls};
    wire::Authz {
        networks: vec![net("0.0.0.0/0"), net("::/0")],
        authentication: Some(wire::Authn {
            permit: Some(Permit::MeshTls(PermitMeshTls {
                clients: Some(permit_mesh_tls::Clients::Identities(
                    permit_mesh_tls::PermitClientIdentities {
                        identities: ids
                            .iter()
                            .map(|n| wire::Identity {
                                name: n.to_string(),
                            })
                            .collect(),
                        suffixes: suffixes
                            .iter()
                            .map(|p| wire::IdentitySuffix {
                                parts: p.iter().map(|s| s.to_string()).collect(),
                            })
                            .collect(),
                    },
                )),
            })),
        }),
        labels: Default::default(),
        metadata: None,
    }
}

#[test]
fn wire_servers_convert_and_authorize_by_identity_and_suffix() {
    let policy = ServerPolicy::try_from(server(vec![identities_authz(
        &[CLIENT],
        &[&[
            "billing",
            "serviceaccount",
            "identity",
            "trellis",
            "cluster",
            "local",
        ]],
    )]))
    .unwrap();
    assert_eq!(policy.meta.name(), "web-http");
    assert_eq!(
        policy.protocol,
        Protocol::Detect {
            timeout: Duration::from_secs(10)
        }
    );
    let remote = ip("10.0.0.9");
    assert!(authorize(&policy, remote, &mtls(CLIENT)).is_ok());
    assert!(
        authorize(
            &policy,
            remote,
            &mtls("api.billing.serviceaccount.identity.trellis.cluster.local")
        )
        .is_ok()
    );
    assert!(
        authorize(
            &policy,
            remote,
            &mtls("api.other.serviceaccount.identity.trellis.cluster.local")
        )
        .is_err()
    );
    assert!(authorize(&policy, remote, &ClientTls::None).is_err());
    assert!(authorize(&policy, remote, &ClientTls::Established(None)).is_err());
}

#[test]
fn networks_and_exceptions_are_enforced() {
    use wire::authn::{Permit, PermitUnauthenticated};
    let mut net10 = net("10.0.0.0/8");
    net10.except = vec![IpNetwork::from("10.9.0.0/16".parse::<IpNet>().unwrap())];
    let authz = wire::Authz {
        networks: vec![net10],
        authentication: Some(wire::Authn {
            permit: Some(Permit::Unauthenticated(PermitUnauthenticated {})),
        }),
        labels: Default::default(),
        metadata: None,
    };
    let policy = ServerPolicy::try_from(server(vec![authz])).unwrap();
    assert!(authorize(&policy, ip("10.1.0.1"), &ClientTls::None).is_ok());
    assert!(authorize(&policy, ip("10.9.0.1"), &ClientTls::None).is_err());
    assert!(authorize(&policy, ip("192.0.2.1"), &ClientTls::None).is_err());
}

#[test]
fn invalid_servers_are_rejected_with_the_field() {
    let mut no_protocol = server(vec![]);
    no_protocol.protocol = None;
    assert!(
        ServerPolicy::try_from(no_protocol)
            .unwrap_err()
            .to_string()
            .contains("protocol")
    );

    let mut no_name = server(vec![]);
    no_name.labels.clear();
    assert!(
        ServerPolicy::try_from(no_name)
            .unwrap_err()
            .to_string()
            .contains("labels")
    );

    let mut no_networks = identities_authz(&[CLIENT], &[]);
    no_networks.networks.clear();
    let err = ServerPolicy::try_from(server(vec![no_networks])).unwrap_err();
    assert!(err.to_string().contains("networks"), "{err}");

    let mut no_authn = identities_authz(&[CLIENT], &[]);
    no_authn.authentication = None;
    let err = ServerPolicy::try_from(server(vec![no_authn])).unwrap_err();
    assert!(err.to_string().contains("authentication"), "{err}");

    assert!(authorize(&invalid(), ip("10.0.0.1"), &ClientTls::None).is_err());
}
