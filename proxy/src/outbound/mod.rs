//! Outbound: connections from the application redirected to `:4140`, sent to their target.
//!
//! Discovery decides: a Service's HTTP goes through a P2C peak-EWMA balancer over its
//! endpoints, as HTTP/2 over pooled mTLS connections to meshed peers; its other traffic goes
//! over mTLS to one endpoint; targets that are not meshed or not known are forwarded to the
//! original destination. Only targets whose policy says `detect` wait for the client's first
//! bytes; opaque, HTTP/1 and HTTP/2 targets (and forwarded ones) are served at once.

pub mod balance;
pub mod breaker;
pub mod config;
pub mod discover;
pub mod endpoint;
pub mod failfast;
pub mod http;
pub mod policy;
pub mod profile;
pub mod route;

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use ::http::HeaderValue;
use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::watch,
};

use self::{
    balance::EndpointFactory,
    config::OutboundConfig,
    discover::{EndpointSet, Lease, Resolution, Resolver},
    route::RouteTable,
};
use crate::{
    drain::Drain,
    metrics::{
        Metrics, TlsLabel,
        labels::{Direction, endpoint},
    },
    transport::{Accepted, PrefixedIo, Protocol, detect, forward},
};
use parking_lot::Mutex;
use trellis_api::{
    destination::{Endpoint, RetryBudget},
    outbound::AppProtocol,
    route::{Backend, FailureAccrual, Route, RouteRef},
};

/// What a router is built from.
struct RouterParts {
    routes: route::Routes,
    backends: BTreeMap<String, watch::Receiver<EndpointSet>>,
    accrual: Option<FailureAccrual>,
    budget: Option<RetryBudget>,
}

/// A connection's router, rebuilt when discovery changes the target's routes or backends,
/// so long-lived connections follow route changes (a canary's weights) request by request.
struct LiveRouter {
    current: Mutex<Arc<http::Router>>,
    updates: Option<Mutex<watch::Receiver<Option<Resolution>>>>,
    outbound: Outbound,
    lease: Option<Lease>,
}

impl LiveRouter {
    /// The router for the next request.
    fn get(&self) -> Arc<http::Router> {
        if let Some(updates) = &self.updates {
            let mut rx = updates.lock();
            if rx.has_changed().unwrap_or(false) {
                let next = rx.borrow_and_update().clone();
                // A target that stops being a Service keeps this connection's last routes.
                if let Some(Resolution::Balance {
                    name,
                    routes,
                    backends,
                    accrual,
                    budget,
                    ..
                }) = next
                {
                    let parts = RouterParts {
                        routes,
                        backends,
                        accrual,
                        budget,
                    };
                    let router = self.outbound.router(self.lease.as_ref(), &name, parts);
                    *self.current.lock() = Arc::new(router);
                }
            }
        }
        self.current.lock().clone()
    }
}

/// The outbound side's shared state.
#[derive(Clone, Debug)]
pub struct Outbound {
    config: Arc<OutboundConfig>,
    metrics: Arc<Metrics>,
    listen_addrs: Arc<Vec<SocketAddr>>,
    resolver: Option<Arc<Resolver>>,
    factory: EndpointFactory,
    drain: Drain,
}

impl Outbound {
    /// Outbound handling for listeners bound to `listen_addrs`; `resolver` is discovery
    /// (`None`: every target goes to its original destination).
    pub fn new(
        config: Arc<OutboundConfig>,
        metrics: Arc<Metrics>,
        listen_addrs: Vec<SocketAddr>,
        resolver: Option<Arc<Resolver>>,
        factory: EndpointFactory,
        drain: Drain,
    ) -> Self {
        Self {
            config,
            metrics,
            listen_addrs: Arc::new(listen_addrs),
            resolver,
            factory,
            drain,
        }
    }

    /// Handles one accepted connection to its end.
    pub async fn serve_connection(self, conn: Accepted) {
        let Accepted {
            stream,
            client_addr,
            orig_dst,
            local_addr,
        } = conn;
        if orig_dst == local_addr || self.listen_addrs.contains(&orig_dst) {
            tracing::warn!(%client_addr, "Closing a connection addressed to the outbound listener itself (loop)");
            return;
        }
        let (resolution, lease) = match &self.resolver {
            Some(resolver) if resolver.discovers(orig_dst.ip()) => {
                let (res, lease) = resolver.resolve(orig_dst).await;
                (res, Some(lease))
            }
            _ => (Resolution::Forward, None),
        };
        let Some((protocol, io)) = self.protocol(stream, resolution.protocol()).await else {
            return;
        };
        tracing::debug!(
            protocol = protocol.name(),
            ?resolution,
            "Outbound connection"
        );
        let updates = lease.as_ref().map(Lease::updates);
        let (name, endpoints, opaque, parts) = match resolution {
            Resolution::Forward => return self.forward(io, orig_dst).await,
            Resolution::Reject => {
                tracing::info!("Outbound policy rejected the target; closing the connection");
                return;
            }
            Resolution::Endpoint { endpoint, opaque } => {
                let key = format!("endpoint {} {:?}", endpoint.addr, endpoint.identity);
                let set = Arc::new(BTreeMap::from([(endpoint.addr, endpoint)]));
                // The balancer sees the unseen initial value even with the sender gone.
                let (_tx, rx) = watch::channel(set);
                let routes = RouteTable::new(
                    RouteRef::Default("endpoint".into()),
                    &[Route::default_http(Backend {
                        meta: RouteRef::Default("endpoint".into()),
                        path: key.clone(),
                    })],
                )
                .unwrap_or_default();
                let parts = RouterParts {
                    routes: Arc::new(routes),
                    backends: BTreeMap::from([(key, rx.clone())]),
                    accrual: None,
                    budget: None,
                };
                (orig_dst.to_string(), rx, opaque, parts)
            }
            Resolution::Balance {
                name,
                endpoints,
                protocol,
                routes,
                backends,
                accrual,
                budget,
            } => (
                name,
                endpoints,
                protocol == AppProtocol::Opaque,
                RouterParts {
                    routes,
                    backends,
                    accrual,
                    budget,
                },
            ),
        };
        match protocol {
            Protocol::Http1 | Protocol::Http2 if !opaque => {
                let router = Arc::new(self.router(lease.as_ref(), &name, parts));
                let live = LiveRouter {
                    current: Mutex::new(router),
                    updates: updates.map(Mutex::new),
                    outbound: self.clone(),
                    lease,
                };
                http::serve(
                    io,
                    protocol == Protocol::Http2,
                    move || live.get(),
                    self.drain.clone(),
                )
                .await;
            }
            _ => self.opaque_to_any(io, &name, endpoints).await,
        }
    }

    /// A router for the target `name`: its routes, and a balancer per backend (the
    /// target's own, shared by its connections, when `lease` is set).
    fn router(&self, lease: Option<&Lease>, name: &str, parts: RouterParts) -> http::Router {
        let RouterParts {
            routes,
            backends,
            accrual,
            budget,
        } = parts;
        let make = |rx, accrual| balance::balancer(rx, self.factory.clone(), accrual);
        let (balancers, budget) = match lease {
            Some(lease) => (
                lease.balancers(&backends, accrual, make),
                lease.budget(budget.as_ref()),
            ),
            None => (
                backends
                    .iter()
                    .map(|(path, rx)| (path.clone(), make(rx.clone(), accrual)))
                    .collect(),
                Arc::new(discover::budget_for(budget.as_ref())),
            ),
        };
        http::Router {
            metrics: self.metrics.route.clone(),
            routes,
            backends: balancers,
            budget,
            name: HeaderValue::from_str(name).unwrap_or_else(|_| HeaderValue::from_static("")),
        }
    }

    /// The connection's protocol: detected from the client's first bytes when the target
    /// says `Detect` (`None` when detection fails or draining starts), else the known one.
    async fn protocol(
        &self,
        stream: TcpStream,
        known: AppProtocol,
    ) -> Option<(Protocol, PrefixedIo<TcpStream>)> {
        let protocol = match known {
            AppProtocol::Detect => {
                let detected = tokio::select! {
                    res = detect(stream, self.config.detect_timeout) => res,
                    () = self.drain.signaled() => return None,
                };
                return detected
                    .inspect_err(|error| {
                        tracing::debug!(%error, "Connection failed during detection");
                    })
                    .ok();
            }
            // Known protocols, and targets that need none, skip detection.
            AppProtocol::Http1 => Protocol::Http1,
            AppProtocol::Http2 => Protocol::Http2,
            AppProtocol::Opaque => Protocol::Opaque,
        };
        Some((protocol, PrefixedIo::new(Bytes::new(), stream)))
    }

    /// Sends opaque traffic to one of `endpoints`, picked at random once discovery has any
    /// (waiting at most the failfast timeout).
    async fn opaque_to_any<T>(&self, io: T, name: &str, mut endpoints: watch::Receiver<EndpointSet>)
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let ep = match tokio::time::timeout(
            balance::FAILFAST_TIMEOUT,
            endpoints.wait_for(|set| !set.is_empty()),
        )
        .await
        {
            Ok(Ok(set)) => {
                let n = set.len();
                set.values().nth(rand::random_range(0..n)).cloned()
            }
            _ => None,
        };
        match ep {
            Some(ep) => self.opaque_to_endpoint(io, &ep).await,
            None => tracing::info!(%name, "No endpoints; closing the connection"),
        }
    }

    async fn opaque_to_endpoint<T>(&self, io: T, ep: &Endpoint)
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let connect = endpoint::connect_opaque(ep, &self.factory.tls, self.config.connect_timeout);
        forward::forward(io, &self.metrics.tcp, endpoint::labels(ep), connect).await;
    }

    async fn forward<T>(&self, io: T, orig_dst: SocketAddr)
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let tls = if orig_dst.ip().is_loopback() {
            TlsLabel::NoIdentity("loopback")
        } else {
            TlsLabel::NoIdentity("not_provided_by_service_discovery")
        };
        let labels = endpoint(Direction::Outbound, orig_dst, &tls, &[]);
        let connect = forward::connect(orig_dst, self.config.connect_timeout);
        forward::forward(io, &self.metrics.tcp, labels, connect).await;
    }
}
