//! The inbound HTTP entry point (HTTP/1, or HTTP/2 after the preface) on arbitrary bytes from
//! an unauthenticated remote peer, authorized per request and forwarded to a local app.

use std::{net::IpAddr, sync::Arc, time::Duration};

use trellis_fuzz::http::{H2_PREFACE, MAX_INPUT, app, assert_http1_response, exchange};
use trellis_proxy::{
    inbound::{
        http::{AppClients, ConnContext, serve},
        policy::{ClientTls, DefaultPolicy},
        watch::Policies,
    },
    metrics::{
        Metrics, TlsLabel,
        labels::{Direction, endpoint},
    },
};

fn main() {
    let app = app();
    let policy = Arc::new(DefaultPolicy::AllUnauthenticated.server(&[], false));
    let metrics = Arc::new(Metrics::new());
    let labels = endpoint(
        Direction::Inbound,
        app,
        &TlsLabel::NoIdentity("no_tls_from_remote"),
        &[],
    );
    let ctx = ConnContext {
        target: app,
        client_ip: IpAddr::from([198, 18, 0, 7]),
        client_tls: ClientTls::None,
        tls_label: TlsLabel::NoIdentity("no_tls_from_remote"),
        policies: Arc::new(Policies::fixed((*policy).clone())),
        http: metrics.http.labelled(labels),
        accepted_policy: policy,
        metrics,
        clients: AppClients::new(Duration::from_secs(1)),
    };
    // Shared across inputs; a panic ends the process, so nothing sees it half-updated.
    let ctx = std::panic::AssertUnwindSafe(ctx);
    afl::fuzz!(|data: &[u8]| {
        if data.len() > MAX_INPUT {
            return;
        }
        let h2 = data.starts_with(H2_PREFACE);
        let read = trellis_fuzz::runtime().block_on(exchange(data, |io, drain| {
            serve(io, h2, ConnContext::clone(&ctx), drain)
        }));
        if !h2 {
            assert_http1_response(&read);
        }
    });
}
