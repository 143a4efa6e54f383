//! "Same features on every side": the proxies' own metrics must show that the measured
//! requests went over mTLS between the two pods' identities, or the bench reports nothing.

/// The samples of `metric` whose labels hold every `key="value"` in `labels`.
fn samples<'a>(
    metrics: &'a str,
    metric: &'a str,
    labels: &'a [String],
) -> impl Iterator<Item = f64> + 'a {
    metrics
        .lines()
        .filter(move |l| l.starts_with(&format!("{metric}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
}

/// The sum of [`samples`]; 0 when there are none.
fn sum(metrics: &str, metric: &str, labels: &[String]) -> f64 {
    samples(metrics, metric, labels).fold(0.0, |a, b| a + b)
}

fn label(key: &str, value: &str) -> String {
    format!(r#"{key}="{value}""#)
}

/// What the proxies counted, checked against what the bench sent.
#[derive(Debug)]
pub(crate) struct MeshCounts {
    /// Outbound requests over mTLS to the server's identity (client proxy).
    pub(crate) outbound_mtls: f64,
    /// Outbound requests without mTLS (client proxy).
    pub(crate) outbound_plain: f64,
    /// Inbound requests over mTLS from the client's identity (server proxy).
    pub(crate) inbound_mtls: f64,
    /// mTLS connections the server proxy accepted from the client's identity.
    pub(crate) inbound_conns: f64,
}

impl MeshCounts {
    /// Reads the counts from the client and server proxies' `/metrics`.
    pub(crate) fn read(client: &str, server: &str, client_id: &str, server_id: &str) -> Self {
        let outbound = label("direction", "outbound");
        let inbound = label("direction", "inbound");
        let tls = label("tls", "true");
        let all_outbound = sum(client, "request_total", std::slice::from_ref(&outbound));
        let outbound_mtls = sum(
            client,
            "request_total",
            &[outbound.clone(), tls.clone(), label("server_id", server_id)],
        );
        Self {
            outbound_mtls,
            outbound_plain: all_outbound
                - sum(client, "request_total", &[outbound.clone(), tls.clone()]),
            inbound_mtls: sum(
                server,
                "request_total",
                &[inbound.clone(), tls.clone(), label("client_id", client_id)],
            ),
            inbound_conns: sum(
                server,
                "tcp_open_total",
                &[inbound, label("tls", "true"), label("client_id", client_id)],
            ),
        }
    }

    /// Panics unless at least `sent` requests went over mTLS both ways and none in the clear;
    /// returns the lines for the report.
    pub(crate) fn verify(&self, sent: u64, client_id: &str, server_id: &str) -> Vec<String> {
        let sent = sent as f64;
        assert!(
            self.outbound_mtls >= sent && self.inbound_mtls >= sent && self.outbound_plain == 0.0,
            "refusing to report: the trellis configuration did not carry its {sent} requests \
             over mTLS between {client_id} and {server_id}: {self:?}"
        );
        vec![
            format!(
                "mTLS: the client proxy counted {} outbound requests with tls=\"true\" and \
                 server_id=\"{server_id}\", none without TLS; the server proxy counted {} \
                 inbound with tls=\"true\" and client_id=\"{client_id}\"; the measured \
                 trellis runs got {sent} responses (warm-ups come on top).",
                self.outbound_mtls, self.inbound_mtls
            ),
            format!(
                "Connections: the server proxy accepted {} mTLS connections from the client \
                 proxy over the whole bench; oha's 16 to 64 HTTP/1.1 connections per run are \
                 carried over them.",
                self.inbound_conns
            ),
        ]
    }
}
