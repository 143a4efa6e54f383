//! Inbound authorization denials: `inbound_http_authz_deny_total` and
//! `inbound_tcp_authz_deny_total`, labelled with the endpoint and server labels.

use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use super::Labels;

/// Denial counters, one family per protocol class.
#[derive(Clone, Debug, Default)]
pub struct AuthzMetrics {
    http: Family<Labels, Counter>,
    tcp: Family<Labels, Counter>,
}

impl AuthzMetrics {
    /// Creates the families and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "inbound_http_authz_deny",
            "HTTP connections and requests refused by inbound policy",
            m.http.clone(),
        );
        registry.register(
            "inbound_tcp_authz_deny",
            "Opaque TCP connections refused by inbound policy",
            m.tcp.clone(),
        );
        m
    }

    /// Counts one denial; `http` picks the family.
    pub fn deny(&self, http: bool, labels: &Labels) {
        let family = if http { &self.http } else { &self.tcp };
        family.get_or_create(labels).inc();
    }
}
