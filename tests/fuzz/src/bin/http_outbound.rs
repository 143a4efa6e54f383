//! The outbound HTTP entry point (HTTP/1, or HTTP/2 after the preface) on arbitrary bytes
//! from the application, balanced to one endpoint: plain HTTP/1 per request, or pooled
//! HTTP/2 with `l5d-orig-proto` when the first byte is odd (the endpoint's protocol hint).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::sync::watch;
use trellis_api::destination::{Endpoint, ProtocolHint};
use trellis_fuzz::http::{H2_PREFACE, MAX_INPUT, app, assert_http1_response, exchange};
use trellis_proxy::{
    metrics::Metrics,
    outbound::{
        balance::{EndpointFactory, balancer},
        http::serve,
    },
    tls,
};

fn main() {
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
            let balancer = balancer(endpoints, factory);
            exchange(data, |io, drain| {
                serve(
                    io,
                    h2,
                    balancer,
                    "web.shop.svc.cluster.local:80".into(),
                    drain,
                )
            })
            .await
        });
        if !h2 {
            assert_http1_response(&read);
        }
    });
}
