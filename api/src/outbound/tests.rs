use linkerd2_proxy_api::{meta, outbound as api};

use super::*;

fn policy(protocol: AppProtocol) -> OutboundPolicy {
    let mut p = OutboundPolicy::service_default(
        ServiceRef {
            namespace: "shop".into(),
            name: "web".into(),
            port: 80,
        },
        "web.shop.svc.cluster.local:80".into(),
        protocol,
    );
    // Opaque policies carry no HTTP routes or accrual on the wire.
    if protocol == AppProtocol::Opaque {
        p.routes.clear();
        p.failure_accrual = None;
    }
    p
}

fn check_backend(b: &api::Backend) {
    assert!(b.metadata.is_some());
    let q = b.queue.unwrap();
    assert_eq!(q.capacity, 100);
    assert_eq!(q.failfast_timeout.unwrap().seconds, 3);
    let Some(api::backend::Kind::Balancer(bal)) = &b.kind else {
        panic!("balancer expected");
    };
    let Some(api::backend::endpoint_discovery::Kind::Dst(dst)) =
        bal.discovery.clone().unwrap().kind
    else {
        panic!("dst expected");
    };
    assert_eq!(dst.path, "web.shop.svc.cluster.local:80");
    let Some(api::backend::balance_p2c::Load::PeakEwma(ewma)) = &bal.load else {
        panic!("peak ewma expected");
    };
    assert!(ewma.default_rtt.is_some() && ewma.decay.is_some());
}

#[test]
fn detect_policy_has_every_required_field() {
    let wire = api::OutboundPolicy::from(policy(AppProtocol::Detect));
    let Some(meta::metadata::Kind::Resource(r)) = wire.metadata.unwrap().kind else {
        panic!("resource metadata expected");
    };
    assert_eq!(
        (
            r.group.as_str(),
            r.kind.as_str(),
            r.name.as_str(),
            r.namespace.as_str()
        ),
        ("core", "Service", "web", "shop")
    );
    let Some(api::proxy_protocol::Kind::Detect(d)) = wire.protocol.unwrap().kind else {
        panic!("detect expected");
    };
    assert_eq!(d.timeout.unwrap().seconds, 10);
    let http1 = d.http1.unwrap();
    assert!(d.http2.is_some());
    assert!(http1.failure_accrual.is_some());
    let route = &http1.routes[0];
    assert!(route.metadata.is_some());
    let rule = &route.rules[0];
    let Some(api::http_route::distribution::Kind::RandomAvailable(ra)) =
        rule.backends.clone().unwrap().kind
    else {
        panic!("random available expected");
    };
    let weighted = &ra.backends[0];
    assert_eq!(weighted.weight, 1);
    check_backend(weighted.backend.as_ref().unwrap().backend.as_ref().unwrap());
    let opaque = d.opaque.unwrap();
    assert!(opaque.routes[0].metadata.is_some());
    let Some(api::opaque_route::distribution::Kind::FirstAvailable(fa)) =
        opaque.routes[0].rules[0].backends.clone().unwrap().kind
    else {
        panic!("first available expected");
    };
    check_backend(fa.backends[0].backend.as_ref().unwrap());
}

#[test]
fn traffic_specs_need_a_target() {
    let err = TrafficSpec::try_from(api::TrafficSpec {
        source_workload: String::new(),
        target: None,
    })
    .unwrap_err();
    assert_eq!(err.field, "target");
    let spec = TrafficSpec::try_from(api::TrafficSpec::from(TrafficSpec {
        source: None,
        target: TrafficTarget::Addr("198.19.0.1:80".parse().unwrap()),
    }))
    .unwrap();
    assert_eq!(
        spec.target,
        TrafficTarget::Addr("198.19.0.1:80".parse().unwrap())
    );
}

#[test]
fn policies_round_trip_for_every_protocol() {
    for protocol in [
        AppProtocol::Detect,
        AppProtocol::Http1,
        AppProtocol::Http2,
        AppProtocol::Opaque,
    ] {
        let wire = api::OutboundPolicy::from(policy(protocol));
        assert_eq!(OutboundPolicy::try_from(wire).unwrap(), policy(protocol));
    }
}

#[test]
fn invalid_policies_name_the_bad_field() {
    fn kind(wire: &mut api::OutboundPolicy) -> &mut api::proxy_protocol::Kind {
        wire.protocol.as_mut().unwrap().kind.as_mut().unwrap()
    }
    // (protocol, how the message is broken, the field the error names)
    type Break = fn(&mut api::OutboundPolicy);
    let cases: [(AppProtocol, Break, &str); 3] = [
        (AppProtocol::Opaque, |w| w.metadata = None, "metadata"),
        (
            AppProtocol::Detect,
            |w| match kind(w) {
                api::proxy_protocol::Kind::Detect(d) => d.timeout = None,
                _ => panic!("detect expected"),
            },
            "protocol.detect",
        ),
        (
            AppProtocol::Opaque,
            |w| match kind(w) {
                api::proxy_protocol::Kind::Opaque(o) => o.routes.clear(),
                _ => panic!("opaque expected"),
            },
            "protocol.routes",
        ),
    ];
    for (protocol, break_it, field) in cases {
        let mut wire = api::OutboundPolicy::from(policy(protocol));
        break_it(&mut wire);
        assert_eq!(OutboundPolicy::try_from(wire).unwrap_err().field, field);
    }
}
