//! Prometheus metrics: the registry served on `/metrics` and the golden metric families.

/// Declares a struct of metric families, each labelled with [`Labels`], and its `register`,
/// which registers each family under its name and help text. A family's metrics are made
/// with `Default` unless a constructor follows the metric type (`Histogram = new_histogram`).
macro_rules! families {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($field:ident: $metric:ty $(= $new:expr)? => $prom:literal, $help:literal;)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        pub struct $name {
            $($field: prometheus_client::metrics::family::Family<$crate::metrics::Labels, $metric>,)+
        }

        impl $name {
            /// Creates the families and registers them.
            pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
                let m = Self {
                    $($field: prometheus_client::metrics::family::Family::new_with_constructor(
                        families!(@new $metric $(, $new)?),
                    ),)+
                };
                $(registry.register($prom, $help, m.$field.clone());)+
                m
            }
        }
    };
    (@new $metric:ty) => {
        <$metric as Default>::default as fn() -> $metric
    };
    (@new $metric:ty, $new:expr) => {
        $new as fn() -> $metric
    };
}

pub mod authz;
pub mod http;
pub mod labels;
pub mod route;
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
    /// Outbound route metrics.
    pub route: route::RouteMetrics,
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
        let route = route::RouteMetrics::register(&mut registry);
        Self {
            registry,
            tcp,
            http,
            authz,
            route,
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
