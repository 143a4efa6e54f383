use std::collections::BTreeMap;

use trellis_api::{
    destination::{Profile, ProtocolHint},
    outbound::{OutboundPolicy, ServiceRef},
};

use super::*;

fn target() -> SocketAddr {
    "198.19.0.10:80".parse().unwrap()
}

fn profile(fqn: &str, opaque: bool) -> ProfileState {
    ProfileState::Known(Profile {
        fully_qualified_name: fqn.into(),
        opaque_protocol: opaque,
        ..Profile::default()
    })
}

fn policy(protocol: AppProtocol) -> PolicyState {
    PolicyState::Known(OutboundPolicy::service_default(
        ServiceRef {
            namespace: "shop".into(),
            name: "web".into(),
            port: 80,
        },
        "web.shop.svc.cluster.local:80".into(),
        protocol,
    ))
}

fn balance(path: &str, protocol: AppProtocol) -> Plan {
    Plan::Balance {
        path: path.into(),
        protocol,
        parent: route::RouteRef::Default(String::new()),
        routes: Vec::new(),
        accrual: None,
        budget: None,
    }
}

/// The plan's backend and protocol only (routes and accrual have tests of their own).
fn backend_of(plan: Plan) -> Plan {
    match plan {
        Plan::Balance { path, protocol, .. } => balance(&path, protocol),
        other => other,
    }
}

#[test]
fn plans_carry_the_policy_routes_or_a_default_route() {
    let PolicyState::Known(known) = policy(AppProtocol::Http1) else {
        unreachable!()
    };
    let Plan::Balance {
        routes, accrual, ..
    } = plan(
        target(),
        &ProfileState::Pending,
        &policy(AppProtocol::Http1),
    )
    else {
        panic!("balance expected");
    };
    assert_eq!(routes, known.routes);
    assert_eq!(accrual, known.failure_accrual);
    let Plan::Balance { routes, .. } = plan(
        target(),
        &profile("web.shop.svc.cluster.local", false),
        &PolicyState::NotFound,
    ) else {
        panic!("balance expected");
    };
    assert_eq!(routes, default_routes("web.shop.svc.cluster.local:80"));
}

#[test]
fn a_policy_names_the_backend_and_protocol() {
    let path = "web.shop.svc.cluster.local:80";
    for protocol in [
        AppProtocol::Detect,
        AppProtocol::Http1,
        AppProtocol::Http2,
        AppProtocol::Opaque,
    ] {
        assert_eq!(
            backend_of(plan(target(), &ProfileState::Pending, &policy(protocol))),
            balance(path, protocol)
        );
    }
    // An opaque profile wins over the policy's protocol.
    assert_eq!(
        backend_of(plan(
            target(),
            &profile("web.shop.svc.cluster.local", true),
            &policy(AppProtocol::Http1)
        )),
        balance(path, AppProtocol::Opaque)
    );
}

#[test]
fn without_a_policy_the_profile_decides() {
    for absent in [
        PolicyState::NotFound,
        PolicyState::Invalid,
        PolicyState::Unavailable,
    ] {
        assert_eq!(
            backend_of(plan(
                target(),
                &profile("web.shop.svc.cluster.local", false),
                &absent
            )),
            balance("web.shop.svc.cluster.local:80", AppProtocol::Detect)
        );
        assert_eq!(plan(target(), &profile("", false), &absent), Plan::Forward);
        assert_eq!(
            plan(target(), &ProfileState::Rejected, &absent),
            Plan::Forward
        );
        assert_eq!(
            plan(target(), &ProfileState::Unavailable, &absent),
            Plan::Forward
        );
    }
    let endpoint = Endpoint {
        addr: "198.18.128.5:8080".parse().unwrap(),
        weight: trellis_api::destination::DEFAULT_WEIGHT,
        identity: Some("web.shop.serviceaccount.identity.trellis.cluster.local".into()),
        hint: ProtocolHint::H2,
        opaque_transport_port: None,
        labels: BTreeMap::new(),
    };
    let pod = ProfileState::Known(Profile {
        opaque_protocol: true,
        endpoint: Some(endpoint.clone()),
        ..Profile::default()
    });
    assert_eq!(
        plan(target(), &pod, &PolicyState::NotFound),
        Plan::Endpoint {
            endpoint,
            opaque: true
        }
    );
}

#[test]
fn a_rejected_policy_fails_the_target() {
    assert_eq!(
        plan(
            target(),
            &profile("web.shop.svc.cluster.local", false),
            &PolicyState::Rejected
        ),
        Plan::Reject
    );
}

#[test]
fn only_detect_reads_before_choosing() {
    let (_tx, rx) = watch::channel(EndpointSet::default());
    let res = |protocol| Resolution::Balance {
        name: "web.shop.svc.cluster.local:80".into(),
        endpoints: rx.clone(),
        protocol,
        routes: Arc::default(),
        backends: BTreeMap::new(),
        accrual: None,
        budget: None,
    };
    assert_eq!(res(AppProtocol::Opaque).protocol(), AppProtocol::Opaque);
    assert_eq!(res(AppProtocol::Http2).protocol(), AppProtocol::Http2);
    assert_eq!(res(AppProtocol::Detect).protocol(), AppProtocol::Detect);
    assert_eq!(Resolution::Forward.protocol(), AppProtocol::Opaque);
}

#[test]
fn endpoints_carry_their_set_labels_under_their_own() {
    let addr: SocketAddr = "198.18.128.5:8080".parse().unwrap();
    let mut ep = Endpoint::plain(addr);
    ep.labels.insert("pod".into(), "web-1".into());
    ep.labels.insert("service".into(), "own".into());
    let mut set = BTreeMap::new();
    apply(
        &mut set,
        Update::Add {
            set_labels: [
                ("namespace".to_string(), "shop".to_string()),
                ("service".to_string(), "web".to_string()),
            ]
            .into(),
            endpoints: vec![ep],
        },
    );
    let labels = &set[&addr].labels;
    assert_eq!(labels["namespace"], "shop");
    assert_eq!(labels["pod"], "web-1");
    assert_eq!(labels["service"], "own");
    apply(&mut set, Update::Remove(vec![addr]));
    assert!(set.is_empty());
    set.insert(addr, Endpoint::plain(addr));
    apply(&mut set, Update::NoEndpoints { exists: true });
    assert!(set.is_empty());
}
