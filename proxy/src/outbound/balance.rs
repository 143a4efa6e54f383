//! Load balancing: power of two choices over peak-EWMA latency, across a watched endpoint set.

use std::{
    collections::{BTreeMap, VecDeque},
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use futures::Stream;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::watch;
use tower::{
    balance::p2c::Balance,
    buffer::Buffer,
    discover::Change,
    load::{CompleteOnResponse, PeakEwma},
    util::BoxCloneSyncService,
};
use trellis_api::route::FailureAccrual;

use trellis_api::destination::Endpoint;

use super::{
    breaker::{Accrual, Breaker},
    endpoint::EndpointSvc,
    failfast::FailFast,
};
use crate::{error::Error, http::ReqBody, metrics::Metrics, tls};

/// Peak-EWMA's starting RTT estimate (the contract's `default_rtt`).
pub const DEFAULT_RTT: Duration = Duration::from_millis(30);
/// Peak-EWMA's decay (the contract's `decay`).
pub const DECAY: Duration = Duration::from_secs(10);
/// Requests queued in front of a balancer.
pub const QUEUE_CAPACITY: usize = 100;

/// How long a balancer may have no ready endpoint before its requests fail at once (the
/// contract's queue `failfast_timeout`).
pub const FAILFAST_TIMEOUT: Duration = Duration::from_secs(3);

/// A shareable balancer over one Service's endpoints.
pub type Balancer = BoxCloneSyncService<Request<ReqBody>, Response<Incoming>, Error>;

/// What endpoint services are built from.
#[derive(Clone, Debug)]
pub struct EndpointFactory {
    /// TLS client (with this proxy's certificate).
    pub tls: tls::client::Client,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

type EndpointChange = Result<Change<SocketAddr, PeakEwma<Breaker<EndpointSvc>>>, Infallible>;

/// Turns a watched endpoint set into a stream of insertions and removals. The stream never
/// ends: when discovery stops, the last set stays.
fn changes(
    rx: watch::Receiver<Arc<BTreeMap<SocketAddr, Endpoint>>>,
    factory: EndpointFactory,
    accrual: FailureAccrual,
) -> impl Stream<Item = EndpointChange> + Send + 'static {
    let mut rx = rx;
    rx.mark_changed();
    let state = (
        rx,
        BTreeMap::<SocketAddr, Endpoint>::new(),
        VecDeque::new(),
        (factory, accrual),
    );
    futures::stream::unfold(
        state,
        |(mut rx, mut current, mut pending, factory)| async move {
            loop {
                if let Some(change) = pending.pop_front() {
                    return Some((Ok(change), (rx, current, pending, factory)));
                }
                if rx.changed().await.is_err() {
                    futures::future::pending::<()>().await;
                }
                let next = rx.borrow_and_update().clone();
                for addr in current.keys() {
                    if !next.contains_key(addr) {
                        pending.push_back(Change::Remove(*addr));
                    }
                }
                let (factory, accrual) = &factory;
                for (addr, ep) in next.iter() {
                    if current.get(addr) != Some(ep) {
                        let svc = EndpointSvc::new(
                            ep.clone(),
                            factory.tls.clone(),
                            factory.connect_timeout,
                            factory.metrics.clone(),
                        );
                        let accrual = Accrual::new(*accrual, addr.to_string())
                            .with_metrics(factory.metrics.route.clone());
                        let svc = Breaker::new(svc, accrual);
                        let svc = PeakEwma::new(
                            svc,
                            DEFAULT_RTT,
                            DECAY.as_nanos() as f64,
                            CompleteOnResponse::default(),
                        );
                        pending.push_back(Change::Insert(*addr, svc));
                    }
                }
                current = (*next).clone();
            }
        },
    )
}

/// A P2C peak-EWMA balancer over `endpoints`, each ejected by `accrual` (none when `None`),
/// shedding requests after [`FAILFAST_TIMEOUT`] without a ready endpoint, behind a queue so
/// it can be shared.
pub fn balancer(
    endpoints: watch::Receiver<Arc<BTreeMap<SocketAddr, Endpoint>>>,
    factory: EndpointFactory,
    accrual: Option<FailureAccrual>,
) -> Balancer {
    let accrual = accrual.unwrap_or(FailureAccrual {
        max_failures: 0,
        ..FailureAccrual::default()
    });
    let balance = Balance::new(Box::pin(changes(endpoints, factory, accrual)));
    let balance = FailFast::new(balance, FAILFAST_TIMEOUT);
    BoxCloneSyncService::new(Buffer::new(balance, QUEUE_CAPACITY))
}
