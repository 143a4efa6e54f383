use std::net::SocketAddr;

use linkerd2_proxy_api::destination as api;

use super::*;

const DOMAIN: &str = "cluster.local";

#[test]
fn parses_service_and_pod_paths() {
    assert_eq!(
        Target::parse("web.shop.svc.cluster.local:8080", DOMAIN).unwrap(),
        Target::Service {
            namespace: "shop".into(),
            name: "web".into(),
            port: 8080
        }
    );
    assert_eq!(
        Target::parse("web.shop.svc.cluster.local.", DOMAIN).unwrap(),
        Target::Service {
            namespace: "shop".into(),
            name: "web".into(),
            port: DEFAULT_PORT
        }
    );
    assert_eq!(
        Target::parse("web-0.web.shop.svc.cluster.local:80", DOMAIN).unwrap(),
        Target::Pod {
            namespace: "shop".into(),
            service: "web".into(),
            hostname: "web-0".into(),
            port: 80
        }
    );
    assert_eq!(
        Target::parse("198.19.0.1:80", DOMAIN).unwrap(),
        Target::Addr("198.19.0.1:80".parse().unwrap())
    );
}

#[test]
fn rejects_names_that_cannot_exist() {
    for path in [
        "",
        "example.com:80",
        "web.svc.cluster.local:80",
        "a.b.c.d.svc.cluster.local:80",
        "Web.shop.svc.cluster.local:80",
        "web.shop.svc.cluster.local:0",
        "web.shop.svc.cluster.local:http",
    ] {
        let err = Target::parse(path, DOMAIN).unwrap_err();
        assert_eq!(err.field, "path", "{path}");
    }
}

#[test]
fn context_tokens() {
    let ctx = parse_context_token(r#"{"ns":"shop","nodeName":"n1","pod":"web-1"}"#);
    assert_eq!(ctx.namespace.as_deref(), Some("shop"));
    assert_eq!(ctx.node_name.as_deref(), Some("n1"));
    assert_eq!(ctx.pod.as_deref(), Some("web-1"));
    assert_eq!(
        parse_context_token("ns:shop").namespace.as_deref(),
        Some("shop")
    );
    assert_eq!(parse_context_token("garbage"), Context::default());
}

#[test]
fn meshed_endpoint_round_trips_with_identity_and_hints() {
    let addr: SocketAddr = "198.18.128.4:8080".parse().unwrap();
    let mut ep = Endpoint::plain(addr).meshed(
        "web.shop.serviceaccount.identity.trellis.cluster.local".into(),
        false,
    );
    ep.labels.insert("pod".into(), "web-1".into());
    let wire = api::WeightedAddr::from(ep.clone());
    let tls = wire.tls_identity.clone().unwrap();
    assert_eq!(
        tls.server_name.unwrap().name,
        "web.shop.serviceaccount.identity.trellis.cluster.local"
    );
    assert!(matches!(
        wire.protocol_hint.unwrap().protocol,
        Some(api::protocol_hint::Protocol::H2(_))
    ));
    assert_eq!(wire.weight, DEFAULT_WEIGHT);
    assert_eq!(Endpoint::try_from(wire).unwrap(), ep);

    let opaque = Endpoint::plain(addr).meshed("x".into(), true);
    let wire = api::WeightedAddr::from(opaque.clone());
    let hint = wire.protocol_hint.unwrap();
    assert_eq!(hint.opaque_transport.unwrap().inbound_port, 4143);
    assert_eq!(Endpoint::try_from(wire).unwrap(), opaque);

    let plain = api::WeightedAddr::from(Endpoint::plain(addr));
    assert!(plain.tls_identity.is_none() && plain.protocol_hint.is_none());
}

#[test]
fn updates_round_trip() {
    let addr: SocketAddr = "198.18.128.4:8080".parse().unwrap();
    for update in [
        Update::Add {
            set_labels: [("service".to_string(), "web".to_string())].into(),
            endpoints: vec![Endpoint::plain(addr)],
        },
        Update::Remove(vec![addr]),
        Update::NoEndpoints { exists: true },
    ] {
        let wire = api::Update::from(update.clone());
        assert_eq!(Update::try_from(wire).unwrap(), update);
    }
    assert_eq!(
        Update::try_from(api::Update { update: None })
            .unwrap_err()
            .field,
        "update"
    );
}

#[test]
fn default_profile_has_name_and_budget() {
    let wire =
        api::DestinationProfile::from(Profile::default_for("web.shop.svc.cluster.local".into()));
    assert_eq!(wire.fully_qualified_name, "web.shop.svc.cluster.local");
    let budget = wire.retry_budget.unwrap();
    assert_eq!(budget.min_retries_per_second, 10);
    assert_eq!(budget.ttl.unwrap().seconds, 10);
    assert!(wire.routes.is_empty());
}

/// A retryable route for `GET /books/...` with a 1.5 s timeout, whose 5xx are failures.
fn books_route() -> Route {
    Route {
        name: "get-books".into(),
        condition: RequestMatch::All(vec![
            RequestMatch::Method(http::Method::GET),
            RequestMatch::Path("/books/.*".into()),
        ]),
        response_classes: vec![ResponseClass {
            condition: ResponseMatch::Status { min: 500, max: 599 },
            is_failure: true,
        }],
        is_retryable: true,
        timeout: Some(std::time::Duration::from_millis(1500)),
    }
}

#[test]
fn routes_carry_the_route_label_and_timeout() {
    let wire = api::Route::from(books_route());
    assert_eq!(wire.metrics_labels["route"], "get-books");
    let t = wire.timeout.unwrap();
    assert_eq!((t.seconds, t.nanos), (1, 500_000_000));
    assert!(wire.is_retryable);
}

fn wire_endpoint(
    tls_identity: Option<api::TlsIdentity>,
    inbound_port: Option<u32>,
) -> api::WeightedAddr {
    let mut wire = api::WeightedAddr::from(Endpoint::plain("198.18.128.4:8080".parse().unwrap()));
    wire.tls_identity = tls_identity;
    wire.protocol_hint = inbound_port.map(|inbound_port| api::ProtocolHint {
        protocol: None,
        opaque_transport: Some(api::protocol_hint::OpaqueTransport { inbound_port }),
    });
    wire
}

fn tls(
    strategy: api::tls_identity::Strategy,
    server_name: Option<&str>,
) -> Option<api::TlsIdentity> {
    Some(api::TlsIdentity {
        strategy: Some(strategy),
        server_name: server_name.map(|name| api::tls_identity::DnsLikeIdentity {
            name: name.to_string(),
        }),
    })
}

#[test]
fn endpoint_identity_is_the_name_tls_uses() {
    use api::tls_identity::{DnsLikeIdentity, Strategy, UriLikeIdentity};
    const SA: &str = "web.shop.serviceaccount.identity.trellis.cluster.local";
    let dns = |name: &str| Strategy::DnsLikeIdentity(DnsLikeIdentity { name: name.into() });
    let uri = || {
        Strategy::UriLikeIdentity(UriLikeIdentity {
            uri: "spiffe://cluster.local/ns/shop/sa/web".into(),
        })
    };
    // (identity on the wire, the domain identity; None in the last column is an error)
    let cases: [(Option<api::TlsIdentity>, Option<Option<&str>>); 6] = [
        (None, Some(None)),
        (tls(dns(SA), None), Some(Some(SA))),
        (tls(dns(SA), Some(SA)), Some(Some(SA))),
        (tls(dns(""), None), Some(None)),
        // A URI identity is dialled by its server name, which the contract requires.
        (tls(uri(), Some(SA)), Some(Some(SA))),
        (tls(uri(), None), None),
    ];
    for (wire, want) in cases {
        let got = Endpoint::try_from(wire_endpoint(wire.clone(), None));
        match want {
            Some(identity) => {
                assert_eq!(got.unwrap().identity.as_deref(), identity, "{wire:?}")
            }
            None => assert_eq!(got.unwrap_err().field, "tls_identity.server_name"),
        }
    }
}

#[test]
fn opaque_transport_ports_outside_the_range_are_ignored() {
    for (inbound_port, want) in [
        (4143, Some(4143)),
        (1, Some(1)),
        (0, None),
        (65_535, None),
        (70_000, None),
    ] {
        let ep = Endpoint::try_from(wire_endpoint(None, Some(inbound_port))).unwrap();
        assert_eq!(ep.opaque_transport_port, want, "{inbound_port}");
    }
}

#[test]
fn an_unusable_address_is_skipped_not_the_update() {
    let good = Endpoint::plain("198.18.128.4:8080".parse().unwrap());
    let mut bad = api::WeightedAddr::from(good.clone());
    bad.addr = None;
    let wire = api::Update {
        update: Some(api::update::Update::Add(api::WeightedAddrSet {
            addrs: vec![bad, api::WeightedAddr::from(good.clone())],
            metric_labels: Default::default(),
        })),
    };
    assert_eq!(
        Update::try_from(wire).unwrap(),
        Update::Add {
            set_labels: Default::default(),
            endpoints: vec![good],
        }
    );
}

#[test]
fn profiles_round_trip_and_lose_the_trailing_dot() {
    // Every combinator round-trips.
    let mut route = books_route();
    route.condition = RequestMatch::Any(vec![
        route.condition,
        RequestMatch::Not(Box::new(RequestMatch::Path("/admin/.*".into()))),
    ]);
    route.response_classes[0].condition =
        ResponseMatch::Not(Box::new(ResponseMatch::All(vec![ResponseMatch::Status {
            min: 200,
            max: 499,
        }])));
    let profile = Profile {
        routes: vec![route],
        dst_overrides: vec![WeightedDst {
            authority: "web-v2.shop.svc.cluster.local:80".into(),
            weight: 10_000,
        }],
        endpoint: Some(Endpoint::plain("198.18.128.4:8080".parse().unwrap())),
        opaque_protocol: true,
        ..Profile::default_for("web.shop.svc.cluster.local".into())
    };
    assert_eq!(
        Profile::from(api::DestinationProfile::from(profile.clone())),
        profile
    );

    let mut wire = api::DestinationProfile::from(profile.clone());
    wire.fully_qualified_name = "web.shop.svc.cluster.local.".into();
    // A route without a condition and an endpoint without an address are left out.
    wire.routes.push(api::Route::default());
    if let Some(ep) = wire.endpoint.as_mut() {
        ep.addr = None;
    }
    let got = Profile::from(wire);
    assert_eq!(got.fully_qualified_name, "web.shop.svc.cluster.local");
    assert_eq!(got.routes, profile.routes);
    assert_eq!(got.endpoint, None);
}
