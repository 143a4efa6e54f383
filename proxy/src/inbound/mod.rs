//! Inbound: connections redirected to `:4143`, checked against policy and forwarded to the app.
//!
//! Each connection is detected (unless its port is opaque), mTLS addressed to this proxy's
//! identity is terminated, and the port's policy decides. HTTP is authorized per request
//! against the port's current policy, so a policy change applies at once to connections
//! already open (pooled HTTP/2 between proxies carries many clients' requests for a long
//! time); a refused request gets `403` (gRPC: `PermissionDenied`). Other traffic is
//! authorized once per connection, and a refused connection is closed.

pub mod config;
pub mod http;
pub mod policy;
pub mod routes;
pub mod watch;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::io::{AsyncRead, AsyncWrite};

use self::{
    config::InboundConfig,
    policy::{self as authz, ClientTls, Protocol as ServerProtocol, ServerPolicy},
    watch::Policies,
};
use crate::{
    drain::Drain,
    metrics::{
        Labels, Metrics, TlsLabel,
        labels::{Direction, endpoint},
    },
    tls,
    transport::{Accepted, PrefixedIo, Protocol, detect, forward, header as transport_header},
};

/// The inbound side's shared state.
#[derive(Clone, Debug)]
pub struct Inbound {
    config: Arc<InboundConfig>,
    metrics: Arc<Metrics>,
    listen_port: u16,
    tls: tls::server::Server,
    local_name: Arc<str>,
    policies: Arc<Policies>,
    clients: http::AppClients,
    drain: Drain,
}

impl Inbound {
    /// Inbound handling for a listener on `listen_port`; `tls` terminates connections whose
    /// SNI is `local_name`, and `policies` authorizes them.
    pub fn new(
        config: Arc<InboundConfig>,
        metrics: Arc<Metrics>,
        listen_port: u16,
        tls: tls::server::Server,
        local_name: String,
        policies: Arc<Policies>,
        drain: Drain,
    ) -> Self {
        Self {
            metrics,
            listen_port,
            tls,
            local_name: local_name.into(),
            policies,
            clients: http::AppClients::new(config.connect_timeout),
            drain,
            config,
        }
    }

    /// Handles one accepted connection to its end.
    pub async fn serve_connection(self, conn: Accepted) {
        let Accepted {
            stream,
            client_addr,
            orig_dst,
            local_addr: _,
        } = conn;
        // A direct connection (to the inbound port itself) must be mTLS for this proxy with
        // a transport header naming the real target.
        let direct = orig_dst.port() == self.listen_port;
        let policy = if direct {
            Arc::new(authz::invalid())
        } else {
            self.policies.first(orig_dst.port()).await
        };
        let timeout = match policy.protocol {
            ServerProtocol::Detect { timeout } => timeout,
            _ => self.config.detect_timeout,
        };
        let opaque = !direct
            && (self.config.opaque_ports.contains(&orig_dst.port())
                || policy.protocol == ServerProtocol::Opaque);
        let conn = Conn {
            client_addr,
            orig_dst,
            policy,
        };
        if opaque {
            let tls = no_tls(client_addr);
            let io = PrefixedIo::new(Default::default(), stream);
            return self
                .authorize_and_forward(io, conn, ClientTls::None, tls, Protocol::Opaque)
                .await;
        }
        // A connection that has sent nothing by the time draining starts is closed.
        let detected = tokio::select! {
            res = detect(stream, timeout) => res,
            () = self.drain.signaled() => return,
        };
        let (protocol, io) = match detected {
            Ok(res) => res,
            Err(error) => {
                tracing::debug!(%error, "Connection failed during detection");
                return;
            }
        };
        match protocol {
            Protocol::Tls { sni: Some(sni) } if *sni == *self.local_name => {
                self.terminate_tls(io, conn, timeout, direct).await;
            }
            _ if direct => {
                tracing::info!(%client_addr, "Closing a direct connection that is not mTLS for this proxy");
            }
            Protocol::Tls { sni } => {
                // TLS for another name passes through untouched.
                let label = TlsLabel::Opaque { sni };
                self.authorize_and_forward(io, conn, ClientTls::None, label, Protocol::Opaque)
                    .await;
            }
            protocol => {
                let label = no_tls(client_addr);
                self.authorize_and_forward(io, conn, ClientTls::None, label, protocol)
                    .await;
            }
        }
    }

    /// Terminates mTLS addressed to this proxy, then serves what it carries: the target a
    /// transport header names, or (not on a direct connection) what detection finds inside.
    async fn terminate_tls<T>(&self, io: T, conn: Conn, timeout: Duration, direct: bool)
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let client_addr = conn.client_addr;
        let (tls, client_id) = match self.tls.accept(io).await {
            Ok(res) => res,
            Err(error) => {
                tracing::info!(%client_addr, %error, "TLS handshake failed");
                return;
            }
        };
        tracing::debug!(
            client_id = client_id.as_deref().unwrap_or(""),
            "Terminated mTLS"
        );
        let label = TlsLabel::Established {
            peer_id: client_id.clone(),
        };
        let client_tls = ClientTls::Established(client_id);
        if tls.get_ref().1.alpn_protocol() == Some(transport_header::ALPN) {
            return self
                .serve_transport_header(tls, conn, client_tls, label, timeout)
                .await;
        }
        if direct {
            tracing::info!(%client_addr, "Closing a direct connection without a transport header");
            return;
        }
        let (inner, io) = match detect(tls, timeout).await {
            Ok(res) => res,
            Err(error) => {
                tracing::debug!(%error, "Connection failed during detection");
                return;
            }
        };
        self.authorize_and_forward(io, conn, client_tls, label, inner)
            .await;
    }

    /// Reads the transport header on `tls` and serves the port and protocol it names.
    async fn serve_transport_header<T>(
        &self,
        mut tls: T,
        conn: Conn,
        client_tls: ClientTls,
        label: TlsLabel,
        timeout: Duration,
    ) where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let client_addr = conn.client_addr;
        let header =
            match tokio::time::timeout(timeout, transport_header::Header::read(&mut tls)).await {
                Ok(Ok(header)) => header,
                Ok(Err(error)) => {
                    tracing::info!(%client_addr, %error, "Invalid transport header");
                    return;
                }
                Err(_) => {
                    tracing::info!(%client_addr, "Transport header timed out");
                    return;
                }
            };
        let protocol = match header.protocol {
            Some(transport_header::SessionProtocol::Http1) => Protocol::Http1,
            Some(transport_header::SessionProtocol::Http2) => Protocol::Http2,
            None => Protocol::Opaque,
        };
        let conn = Conn {
            client_addr,
            orig_dst: SocketAddr::new(conn.orig_dst.ip(), header.port),
            policy: self.policies.first(header.port).await,
        };
        let io = PrefixedIo::new(Default::default(), tls);
        self.authorize_and_forward(io, conn, client_tls, label, protocol)
            .await;
    }

    async fn authorize_and_forward<T>(
        &self,
        io: T,
        conn: Conn,
        client_tls: ClientTls,
        label: TlsLabel,
        protocol: Protocol,
    ) where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let Conn {
            client_addr,
            orig_dst,
            policy,
        } = conn;
        tracing::debug!(
            protocol = protocol.name(),
            server = policy.meta.name(),
            "Inbound connection"
        );
        let labels = inbound_labels(orig_dst, &label, &policy);
        if let Protocol::Http1 | Protocol::Http2 = protocol {
            let src = self.metrics.tcp.open("src", labels.clone());
            let ctx = http::ConnContext {
                target: orig_dst,
                client_ip: client_addr.ip(),
                client_tls,
                tls_label: label,
                policies: self.policies.clone(),
                accepted_policy: policy,
                http: self.metrics.http.labelled(labels),
                metrics: self.metrics.clone(),
                clients: self.clients.clone(),
            };
            let io = crate::metrics::tcp::counted(io, &src);
            http::serve(io, protocol == Protocol::Http2, ctx, self.drain.clone()).await;
            return;
        }
        if let Err(denied) = authz::authorize(&policy, client_addr.ip(), &client_tls) {
            tracing::info!(%denied, ?client_tls, "Connection denied");
            self.metrics.authz.deny(false, &labels);
            return; // Dropping the connection closes it.
        }
        let connect = forward::connect(orig_dst, self.config.connect_timeout);
        let forward = forward::forward(io, &self.metrics.tcp, labels.clone(), connect);
        let Some(mut updates) = self.policies.updates(orig_dst.port()) else {
            return forward.await;
        };
        // An open connection stays only while the port's policy still authorizes it.
        let revoked = async {
            loop {
                let policy = updates.next().await;
                if let Err(denied) = authz::authorize(&policy, client_addr.ip(), &client_tls) {
                    return denied;
                }
            }
        };
        tokio::select! {
            () = forward => {}
            denied = revoked => {
                tracing::info!(%denied, ?client_tls, "Policy changed and no longer authorizes the connection; closing it");
                self.metrics.authz.deny(false, &labels);
            }
        }
    }
}

/// What the inbound stack knows about a connection before authorizing it.
#[derive(Debug)]
struct Conn {
    client_addr: SocketAddr,
    orig_dst: SocketAddr,
    policy: Arc<ServerPolicy>,
}

fn no_tls(client_addr: SocketAddr) -> TlsLabel {
    if client_addr.ip().is_loopback() {
        TlsLabel::NoIdentity("loopback")
    } else {
        TlsLabel::NoIdentity("no_tls_from_remote")
    }
}

/// The labels of inbound traffic to `target` under `policy`.
fn inbound_labels(target: SocketAddr, tls: &TlsLabel, policy: &ServerPolicy) -> Labels {
    endpoint(Direction::Inbound, target, tls, &srv_labels(policy, target))
}

fn srv_labels(policy: &ServerPolicy, target: SocketAddr) -> Vec<(String, String)> {
    let meta = &policy.meta;
    vec![
        ("srv_group".into(), meta.group().to_string()),
        ("srv_kind".into(), meta.kind().to_string()),
        ("srv_name".into(), meta.name().to_string()),
        ("srv_port".into(), target.port().to_string()),
    ]
}
