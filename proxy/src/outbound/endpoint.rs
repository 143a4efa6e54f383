//! One endpoint as a service: HTTP over a pooled, multiplexed HTTP/2 connection (mTLS to
//! meshed peers), carrying HTTP/1 requests with `l5d-orig-proto`; counted per endpoint.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use ::http::{Request, Response};
use hyper::{body::Incoming, client::conn::http2::SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::Sleep,
};

use trellis_api::destination::{Endpoint, ProtocolHint};

use crate::{
    error::Error,
    http::{
        ReqBody, grpc_status,
        orig_proto::{self, H2Body},
        upgrade,
    },
    metrics::{
        Labels, Metrics, TlsLabel,
        http::LabelledHttp,
        labels::{Direction, endpoint},
    },
    retry::Backoff,
    tls,
    transport::{forward, header as transport_header},
};

/// An I/O stream to an endpoint: plain TCP or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A boxed I/O stream to an endpoint.
pub type BoxIo = Pin<Box<dyn Io>>;

/// Connects to `ep`: TCP, then mTLS with the endpoint's identity when it has one.
pub async fn connect(
    ep: &Endpoint,
    tls: &tls::client::Client,
    timeout: Duration,
) -> Result<BoxIo, Error> {
    let tcp = forward::connect(ep.addr, timeout).await?;
    Ok(match &ep.identity {
        Some(id) => Box::pin(tls.connect(tcp, id).await?),
        None => Box::pin(tcp),
    })
}

/// Connects to `ep` for opaque traffic: with an `opaque_transport` hint (and an identity),
/// to the peer's inbound port with the transport-header ALPN, then the header naming the
/// endpoint's port; otherwise as [`connect`].
pub async fn connect_opaque(
    ep: &Endpoint,
    tls: &tls::client::Client,
    timeout: Duration,
) -> Result<BoxIo, Error> {
    let (Some(inbound_port), Some(id)) = (ep.opaque_transport_port, &ep.identity) else {
        return connect(ep, tls, timeout).await;
    };
    let addr = std::net::SocketAddr::new(ep.addr.ip(), inbound_port);
    let tcp = forward::connect(addr, timeout).await?;
    let mut io = tls
        .with_alpn(transport_header::ALPN)
        .connect(tcp, id)
        .await?;
    if io.get_ref().1.alpn_protocol() != Some(transport_header::ALPN) {
        return Err(format!("peer {addr} did not agree to the transport header").into());
    }
    transport_header::Header {
        port: ep.addr.port(),
        name: None,
        protocol: None,
    }
    .write(&mut io)
    .await?;
    Ok(Box::pin(io))
}

/// The TLS metric label of an endpoint.
pub fn tls_label(ep: &Endpoint) -> TlsLabel {
    match &ep.identity {
        Some(id) => TlsLabel::Established {
            peer_id: Some(id.clone()),
        },
        None => TlsLabel::NoIdentity("not_provided_by_service_discovery"),
    }
}

/// Metric labels of an endpoint: endpoint labels, TLS, then `dst_*`.
pub fn labels(ep: &Endpoint) -> Labels {
    let dst: Vec<(String, String)> = ep
        .labels
        .iter()
        .map(|(k, v)| (format!("dst_{k}"), v.clone()))
        .collect();
    endpoint(Direction::Outbound, ep.addr, &tls_label(ep), &dst)
}

/// A pending HTTP/2 connection to an endpoint.
type Connecting = Pin<Box<dyn Future<Output = Result<SendRequest<H2Body>, Error>> + Send>>;

/// HTTP to one endpoint. An endpoint with an HTTP/2 hint is ready only while its pooled
/// connection is up: readiness connects, and reconnects with backoff, so the balancer never
/// sends a request to an endpoint it cannot reach.
pub struct EndpointSvc {
    ep: Arc<Endpoint>,
    tls: tls::client::Client,
    connect_timeout: Duration,
    http: LabelledHttp,
    h2: Option<SendRequest<H2Body>>,
    connecting: Option<Connecting>,
    reconnect: Backoff,
    wait: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for EndpointSvc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointSvc")
            .field("addr", &self.ep.addr)
            .field("connected", &self.h2.is_some())
            .finish_non_exhaustive()
    }
}

impl EndpointSvc {
    /// A service for `ep`.
    pub fn new(
        ep: Endpoint,
        tls: tls::client::Client,
        connect_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            http: metrics.http.labelled(labels(&ep)),
            ep: Arc::new(ep),
            tls,
            connect_timeout,
            h2: None,
            connecting: None,
            reconnect: Backoff::default(),
            wait: None,
        }
    }

    /// Drives the pooled HTTP/2 connection until it is ready for a request.
    fn poll_h2(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(send) = &mut self.h2 {
                match send.poll_ready(cx) {
                    Poll::Ready(Ok(())) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(error)) => {
                        tracing::debug!(addr = %self.ep.addr, %error, "Endpoint connection closed; reconnecting");
                        self.h2 = None;
                    }
                }
            }
            if let Some(wait) = &mut self.wait {
                ready!(wait.as_mut().poll(cx));
                self.wait = None;
            }
            let connecting = self.connecting.get_or_insert_with(|| {
                Box::pin(connect_h2(
                    self.ep.clone(),
                    self.tls.clone(),
                    self.connect_timeout,
                ))
            });
            let res = ready!(connecting.as_mut().poll(cx));
            self.connecting = None;
            match res {
                Ok(send) => {
                    self.reconnect.reset();
                    self.h2 = Some(send);
                }
                Err(error) => {
                    let delay = self.reconnect.next_delay();
                    tracing::info!(addr = %self.ep.addr, %error, ?delay, "Cannot connect to the endpoint; it takes no requests until it can");
                    self.wait = Some(Box::pin(tokio::time::sleep(delay)));
                }
            }
        }
    }
}

/// Connects to `ep` and makes an HTTP/2 connection, driven by a task of its own.
async fn connect_h2(
    ep: Arc<Endpoint>,
    tls: tls::client::Client,
    timeout: Duration,
) -> Result<SendRequest<H2Body>, Error> {
    let io = connect(&ep, &tls, timeout).await?;
    let (send, task) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
    let addr = ep.addr;
    tokio::spawn(async move {
        if let Err(error) = task.await {
            tracing::debug!(%addr, %error, "Endpoint connection failed");
        }
    });
    Ok(send)
}

/// Sends `req` to `ep`: over `h2` when the endpoint speaks HTTP/2 (upgrading HTTP/1),
/// else on a connection of its own.
async fn send(
    ep: &Endpoint,
    tls: &tls::client::Client,
    connect_timeout: Duration,
    h2: Option<SendRequest<H2Body>>,
    mut req: Request<ReqBody>,
) -> Result<Response<Incoming>, Error> {
    match h2 {
        Some(mut send) if !upgrade::is_upgrade(&req) => {
            send.ready().await?;
            let orig = orig_proto::upgrade(&mut req);
            let mut rsp = send.send_request(req.map(orig_proto::h2_body)).await?;
            orig_proto::restore(&mut rsp, orig);
            Ok(rsp)
        }
        _ => {
            // No HTTP/2 hint, or an HTTP/1 upgrade (which HTTP/2 cannot carry): one HTTP/1
            // connection for this request.
            let io = connect(ep, tls, connect_timeout).await?;
            let (mut send, task) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
            tokio::spawn(task.with_upgrades());
            Ok(send.send_request(req).await?)
        }
    }
}

impl tower::Service<Request<ReqBody>> for EndpointSvc {
    type Response = Response<Incoming>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.ep.hint == ProtocolHint::H2 {
            ready!(self.poll_h2(cx));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let h2 = self.h2.clone();
        let ep = self.ep.clone();
        let tls = self.tls.clone();
        let connect_timeout = self.connect_timeout;
        let http = self.http.clone();
        Box::pin(async move {
            let metrics = http.request();
            match send(&ep, &tls, connect_timeout, h2, req).await {
                Ok(rsp) => {
                    metrics.respond(rsp.status().as_u16(), grpc_status(&rsp), "");
                    Ok(rsp)
                }
                Err(error) => {
                    metrics.respond(0, None, "unreachable");
                    Err(error)
                }
            }
        })
    }
}
