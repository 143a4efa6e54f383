//! The outbound HTTP entry point (HTTP/1, or HTTP/2 after the preface) on arbitrary bytes
//! from the application, routed through a small route table (path, regex, header and query
//! matches, a redirect) and balanced to one endpoint: plain HTTP/1 per request, or pooled
//! HTTP/2 with `l5d-orig-proto` when the first byte is odd (the endpoint's protocol hint).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::sync::watch;
use trellis_api::{
    destination::{Endpoint, ProtocolHint},
    route::{
        Backend, Filter, NameMatch, PathMatch, PathModifier, Redirect, RequestMatch, Route,
        RouteBackend, RouteKind, RouteRef, Rule, ValueMatch,
    },
};
use trellis_fuzz::http::{H2_PREFACE, MAX_INPUT, app, assert_http1_response, exchange};
use trellis_proxy::{
    metrics::Metrics,
    outbound::{
        balance::{EndpointFactory, balancer},
        http::{Router, serve},
        route::RouteTable,
    },
    tls,
};

/// The backend every rule but the redirect sends to.
const BACKEND: &str = "web.shop.svc.cluster.local:80";

/// Routes whose matches cover every kind of condition, and a redirect.
fn routes() -> RouteTable {
    let backend = || RouteBackend {
        backend: Backend {
            meta: RouteRef::Default("web".into()),
            path: BACKEND.into(),
        },
        weight: 1,
        filters: Vec::new(),
    };
    let rule = |m: RequestMatch, filters: Vec<Filter>| Rule {
        matches: vec![m],
        filters,
        backends: vec![backend()],
        ..Rule::default()
    };
    let route = Route {
        meta: RouteRef::Default("fuzz".into()),
        kind: RouteKind::Http,
        hosts: vec!["*.svc.cluster.local".into(), "web".into()],
        rules: vec![
            rule(
                RequestMatch {
                    path: Some(PathMatch::Regex("/items/[0-9]+".into())),
                    query: vec![NameMatch {
                        name: "v".into(),
                        value: ValueMatch::Regex("[a-z]*".into()),
                    }],
                    ..RequestMatch::default()
                },
                Vec::new(),
            ),
            rule(
                RequestMatch {
                    path: Some(PathMatch::Prefix("/api".into())),
                    headers: vec![NameMatch {
                        name: "x-canary".into(),
                        value: ValueMatch::Exact("1".into()),
                    }],
                    ..RequestMatch::default()
                },
                Vec::new(),
            ),
            rule(
                RequestMatch {
                    path: Some(PathMatch::Prefix("/old".into())),
                    ..RequestMatch::default()
                },
                vec![Filter::Redirect(Redirect {
                    scheme: None,
                    host: None,
                    path: Some(PathModifier::Prefix("/new".into())),
                    port: None,
                    status: 301,
                })],
            ),
        ],
    };
    RouteTable::new(
        RouteRef::Default("fuzz".into()),
        &[route, Route::default_http(backend().backend)],
    )
    .expect("valid routes")
}

fn main() {
    // Shared across inputs, like the factory below.
    let routes = std::panic::AssertUnwindSafe(Arc::new(routes()));
    let factory = EndpointFactory {
        tls: tls::client::Client::new(Arc::new(rustls::RootCertStore::empty()), None)
            .expect("a TLS client"),
        connect_timeout: Duration::from_secs(1),
        metrics: Arc::new(Metrics::new()),
    };
    // Shared across inputs; a panic ends the process, so nothing sees it half-updated.
    let factory = std::panic::AssertUnwindSafe(factory);
    afl::fuzz!(|data: &[u8]| {
        let Some((&flags, data)) = data.split_first() else {
            return;
        };
        if data.len() > MAX_INPUT {
            return;
        }
        let mut endpoint = Endpoint::plain(app());
        if flags & 1 == 1 {
            endpoint.hint = ProtocolHint::H2;
        }
        let h2 = data.starts_with(H2_PREFACE);
        let factory = EndpointFactory::clone(&factory);
        let read = trellis_fuzz::runtime().block_on(async {
            let (_tx, endpoints) =
                watch::channel(Arc::new(BTreeMap::from([(endpoint.addr, endpoint)])));
            let router = Arc::new(Router {
                metrics: factory.metrics.route.clone(),
                routes: Arc::clone(&routes),
                backends: [(BACKEND.to_string(), balancer(endpoints, factory, None))].into(),
                budget: Arc::default(),
                name: hyper::http::HeaderValue::from_static(BACKEND),
            });
            exchange(data, |io, drain| {
                serve(io, h2, move || router.clone(), drain)
            })
            .await
        });
        if !h2 {
            assert_http1_response(&read);
        }
    });
}
