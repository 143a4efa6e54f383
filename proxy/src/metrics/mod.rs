//! Prometheus metrics: the registry served on `/metrics` and the golden metric families.

pub mod authz;
pub mod http;
pub mod labels;
pub mod tcp;

use prometheus_client::{encoding::text::encode, registry::Registry};

pub use labels::{Labels, TlsLabel};

/// Every metric the proxy exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// TCP connection metrics (both directions, both peers).
    pub tcp: tcp::TcpMetrics,
    /// HTTP request and response metrics (both directions).
    pub http: http::HttpMetrics,
    /// Inbound authorization denials.
    pub authz: authz::AuthzMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let build_info = prometheus_client::metrics::family::Family::<
            Labels,
            prometheus_client::metrics::gauge::Gauge,
        >::default();
        build_info
            .get_or_create(&vec![(
                "version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            )])
            .set(1);
        registry.register("proxy_build_info", "Proxy build information", build_info);
        let tcp = tcp::TcpMetrics::register(&mut registry);
        let http = http::HttpMetrics::register(&mut registry);
        let authz = authz::AuthzMetrics::register(&mut registry);
        Self {
            registry,
            tcp,
            http,
            authz,
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
