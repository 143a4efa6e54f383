//! Inbound authorization denials: `inbound_http_authz_deny_total` and
//! `inbound_tcp_authz_deny_total`, labelled with the endpoint and server labels.

use prometheus_client::metrics::counter::Counter;

use super::Labels;

families! {
    /// Denial counters, one family per protocol class.
    pub struct AuthzMetrics {
        http: Counter => "inbound_http_authz_deny", "HTTP connections and requests refused by inbound policy";
        tcp: Counter => "inbound_tcp_authz_deny", "Opaque TCP connections refused by inbound policy";
    }
}

impl AuthzMetrics {
    /// Counts one denial; `http` picks the family.
    pub fn deny(&self, http: bool, labels: &Labels) {
        let family = if http { &self.http } else { &self.tcp };
        family.get_or_create(labels).inc();
    }
}
