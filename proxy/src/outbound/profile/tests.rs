use std::time::Duration;

use trellis_api::destination::{
    Profile, RequestMatch as P, ResponseClass, ResponseMatch, Route, WeightedDst,
};

use super::*;

fn profile_route(name: &str, condition: P, retryable: bool) -> Route {
    Route {
        name: name.into(),
        condition,
        response_classes: Vec::new(),
        is_retryable: retryable,
        timeout: Some(Duration::from_millis(300)),
    }
}

#[test]
fn a_profile_without_routes_or_split_leaves_the_policy_routes() {
    assert_eq!(routes(&Profile::default(), "web:80"), None);
}

#[test]
fn profile_routes_become_rules_with_timeouts_retries_and_the_split() {
    let mut profile = Profile {
        routes: vec![
            profile_route(
                "GET /books/{id}",
                P::All(vec![
                    P::Method(http::Method::GET),
                    P::Path("/books/[0-9]+".into()),
                ]),
                true,
            ),
            profile_route("not", P::Not(Box::new(P::Path("/x".into()))), false),
        ],
        dst_overrides: vec![
            WeightedDst {
                authority: "web-v1.shop.svc.cluster.local:80".into(),
                weight: 9000,
            },
            WeightedDst {
                authority: "web-v2.shop.svc.cluster.local:80".into(),
                weight: 1000,
            },
        ],
        ..Profile::default()
    };
    profile.routes[0].response_classes = vec![ResponseClass {
        condition: ResponseMatch::Status { min: 500, max: 502 },
        is_failure: false,
    }];
    let got = routes(&profile, "web.shop.svc.cluster.local:80").unwrap();
    assert_eq!(
        got.len(),
        2,
        "the `not` route is left out; a catch-all is added"
    );
    let rule = &got[0].rules[0];
    assert_eq!(rule.matches.len(), 1);
    assert_eq!(rule.matches[0].method, Some(http::Method::GET));
    assert_eq!(
        rule.matches[0].path,
        Some(PathMatch::Regex("/books/[0-9]+".into()))
    );
    assert_eq!(rule.timeouts.request, Some(Duration::from_millis(300)));
    let retry = rule.retry.as_ref().unwrap();
    // 500-502 are classed successes; the rest of 5xx stay failures.
    assert_eq!(retry.statuses, vec![503..=599]);
    let weights: Vec<_> = rule
        .backends
        .iter()
        .map(|b| (b.backend.path.as_str(), b.weight))
        .collect();
    assert_eq!(
        weights,
        [
            ("web-v1.shop.svc.cluster.local:80", 9000),
            ("web-v2.shop.svc.cluster.local:80", 1000)
        ]
    );
    assert_eq!(
        got[1].rules[0].backends.len(),
        2,
        "the catch-all splits too"
    );
    assert!(got[1].rules[0].retry.is_none());
}
