//! One endpoint as a service: HTTP over a pooled, multiplexed HTTP/2 connection (mTLS to
//! meshed peers), carrying HTTP/1 requests with `l5d-orig-proto`; counted per endpoint.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use ::http::{Request, Response};
use hyper::{body::Incoming, client::conn::http2::SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use trellis_api::destination::{Endpoint, ProtocolHint};

use crate::{
    error::Error,
    http::{
        grpc_status,
        orig_proto::{self, H2Body},
        upgrade,
    },
    metrics::{
        Labels, Metrics, TlsLabel,
        http::LabelledHttp,
        labels::{Direction, endpoint},
    },
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

/// HTTP to one endpoint.
#[derive(Clone, Debug)]
pub struct EndpointSvc {
    ep: Arc<Endpoint>,
    tls: tls::client::Client,
    connect_timeout: Duration,
    http: LabelledHttp,
    conn: Arc<tokio::sync::Mutex<Option<SendRequest<H2Body>>>>,
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
            conn: Arc::default(),
        }
    }

    /// The pooled HTTP/2 connection, made on first use and remade when it closes.
    async fn h2(&self) -> Result<SendRequest<H2Body>, Error> {
        let mut conn = self.conn.lock().await;
        if let Some(send) = conn.as_ref().filter(|s| !s.is_closed()) {
            return Ok(send.clone());
        }
        let io = connect(&self.ep, &self.tls, self.connect_timeout).await?;
        let (send, task) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
        let addr = self.ep.addr;
        tokio::spawn(async move {
            if let Err(error) = task.await {
                tracing::debug!(%addr, %error, "Endpoint connection failed");
            }
        });
        *conn = Some(send.clone());
        Ok(send)
    }

    async fn send(self, mut req: Request<Incoming>) -> Result<Response<Incoming>, Error> {
        if self.ep.hint != ProtocolHint::H2 || upgrade::is_upgrade(&req) {
            // No HTTP/2 hint, or an HTTP/1 upgrade (which HTTP/2 cannot carry): one HTTP/1
            // connection for this request.
            let io = connect(&self.ep, &self.tls, self.connect_timeout).await?;
            let (mut send, task) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
            tokio::spawn(task.with_upgrades());
            return Ok(send.send_request(req).await?);
        }
        let orig = orig_proto::upgrade(&mut req);
        let mut send = self.h2().await?;
        send.ready().await?;
        let mut rsp = send.send_request(req.map(orig_proto::h2_body)).await?;
        orig_proto::restore(&mut rsp, orig);
        Ok(rsp)
    }
}

impl tower::Service<Request<Incoming>> for EndpointSvc {
    type Response = Response<Incoming>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let svc = self.clone();
        Box::pin(async move {
            let metrics = svc.http.request();
            match svc.send(req).await {
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
