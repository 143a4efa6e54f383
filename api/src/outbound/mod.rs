//! Outbound policy: how a proxy routes traffic to one Service port.

mod proto;
#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::{
    error::InvalidMessage,
    inbound::Workload,
    route::{FailureAccrual, Route},
};

/// Protocol-detection timeout of outbound policies.
pub const DETECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Balancer queue capacity.
pub const QUEUE_CAPACITY: u32 = 100;
/// How long a request may wait in a balancer queue with no ready endpoint.
pub const QUEUE_FAILFAST_TIMEOUT: Duration = Duration::from_secs(3);
/// Peak-EWMA default round-trip time.
pub const EWMA_DEFAULT_RTT: Duration = Duration::from_millis(30);
/// Peak-EWMA decay.
pub const EWMA_DECAY: Duration = Duration::from_secs(10);

/// The Service port a policy is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Port.
    pub port: u16,
}

/// The kind of traffic a Service port carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppProtocol {
    /// Detect HTTP, else opaque.
    Detect,
    /// HTTP/1 (`appProtocol: http`).
    Http1,
    /// HTTP/2 cleartext (`appProtocol: kubernetes.io/h2c`).
    Http2,
    /// Opaque TCP (`linkerd.io/opaque`, `linkerd.io/tcp`, or an opaque port).
    Opaque,
}

/// The policy of one Service port: its routes, and the Service's own balancer backend
/// (discovered through `Destination.Get`) for opaque traffic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutboundPolicy {
    /// The Service port.
    pub service: ServiceRef,
    /// The `Destination.Get` path of the backend (`<svc>.<ns>.svc.<domain>:<port>`).
    pub backend_path: String,
    /// The protocol.
    pub protocol: AppProtocol,
    /// HTTP or gRPC routes, first match wins; a Service with none attached has
    /// [`Route::default_http`] to its own backend. gRPC routes make the policy a gRPC one.
    pub routes: Vec<Route>,
    /// Endpoint ejection after consecutive failures, when enabled.
    pub failure_accrual: Option<FailureAccrual>,
}

impl OutboundPolicy {
    /// The policy of a Service port with no routes attached: the default route to its own
    /// backend, and Linkerd's default failure accrual.
    pub fn service_default(
        service: ServiceRef,
        backend_path: String,
        protocol: AppProtocol,
    ) -> Self {
        let backend = crate::route::Backend {
            meta: service.route_ref(),
            path: backend_path.clone(),
        };
        Self {
            service,
            routes: vec![Route::default_http(backend)],
            backend_path,
            protocol,
            failure_accrual: Some(FailureAccrual::default()),
        }
    }
}

impl ServiceRef {
    /// The Service port as route metadata (group `core`, kind `Service`).
    pub fn route_ref(&self) -> crate::route::RouteRef {
        crate::route::RouteRef::Resource {
            group: "core".into(),
            kind: "Service".into(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            port: self.port,
        }
    }
}

/// What a `TrafficSpec` asks about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TrafficTarget {
    /// An original destination address.
    Addr(std::net::SocketAddr),
    /// A name, `<svc>.<ns>.svc.<domain>[:port]`.
    Authority(String),
}

/// A validated `TrafficSpec`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrafficSpec {
    /// The client workload, when it parses.
    pub source: Option<Workload>,
    /// The target.
    pub target: TrafficTarget,
}

impl TrafficSpec {
    /// Checks that a target is present.
    pub fn new(source: &str, target: Option<TrafficTarget>) -> Result<Self, InvalidMessage> {
        Ok(Self {
            source: Workload::parse(source).ok(),
            target: target.ok_or_else(|| InvalidMessage::missing("target"))?,
        })
    }
}
