//! Inbound HTTP: serves a peer's requests and forwards each to the application.
//!
//! HTTP/2 requests carrying `l5d-orig-proto` are downgraded to the HTTP/1 the client app
//! sent, and the header returns on the response. Meshed callers are named to the app in
//! `l5d-client-id`. HTTP/1 upgrades (WebSocket) pass through. Every request is authorized
//! against the port's current policy before it is forwarded.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use ::http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{
    policy::{ClientTls, InboundRoute, ServerPolicy},
    watch::Policies,
};
use crate::{
    http::{self, Body, L5D_CLIENT_ID, orig_proto, upgrade},
    metrics::{Metrics, TlsLabel, http::LabelledHttp},
};

/// Pooled clients to the application, one per HTTP version.
#[derive(Clone, Debug)]
pub struct AppClients {
    h1: Client<HttpConnector, Incoming>,
    h2: Client<HttpConnector, Incoming>,
}

impl AppClients {
    /// Clients that connect within `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        let h1 = Client::builder(TokioExecutor::new()).build(connector.clone());
        let h2 = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Self { h1, h2 }
    }
}

/// What every request on one connection shares.
#[derive(Clone, Debug)]
pub struct ConnContext {
    /// Where requests go; its port is the one whose policy applies.
    pub target: SocketAddr,
    /// The caller's address.
    pub client_ip: IpAddr,
    /// The caller's TLS state and identity.
    pub client_tls: ClientTls,
    /// The TLS label of the connection.
    pub tls_label: TlsLabel,
    /// Current policies, consulted for every request.
    pub policies: Arc<Policies>,
    /// The port's policy when the connection was accepted (`labels` were made for it).
    pub accepted_policy: Arc<ServerPolicy>,
    /// HTTP metrics of the connection's endpoint under `accepted_policy`.
    pub http: LabelledHttp,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Clients to the app.
    pub clients: AppClients,
}

impl ConnContext {
    /// Authorizes one request on `route` of the port's `policy` (the current one); returns
    /// the HTTP metrics under that policy, or why it is refused.
    fn authorize(
        &self,
        policy: &Arc<ServerPolicy>,
        route: Option<&InboundRoute>,
    ) -> Result<LabelledHttp, String> {
        let accepted = Arc::ptr_eq(policy, &self.accepted_policy);
        let labels = || super::inbound_labels(self.target, &self.tls_label, policy);
        match super::policy::authorize_on_route(policy, route, self.client_ip, &self.client_tls) {
            Ok(_) if accepted => Ok(self.http.clone()),
            Ok(_) => Ok(self.metrics.http.labelled(labels())),
            Err(denied) => {
                tracing::info!(%denied, client_tls = ?self.client_tls, "Request denied");
                if accepted {
                    self.metrics.authz.deny(true, self.http.labels());
                } else {
                    self.metrics.authz.deny(true, &labels());
                }
                Err(denied.to_string())
            }
        }
    }

    fn client_id(&self) -> Option<&str> {
        match &self.client_tls {
            ClientTls::Established(Some(id)) => Some(id),
            _ => None,
        }
    }
}

/// Serves HTTP (HTTP/2 when `h2`) on `io`, forwarding every request per `ctx`, until the
/// peer closes or `drain` starts.
pub async fn serve<T>(io: T, h2: bool, ctx: ConnContext, drain: crate::drain::Drain)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, std::convert::Infallible>(forward(ctx, req).await) }
    });
    http::serve(io, h2, svc, drain).await;
}

async fn forward(ctx: ConnContext, mut req: Request<Incoming>) -> Response<Body> {
    let port = ctx.target.port();
    let compiled = ctx.policies.compiled(port, ctx.policies.get(port));
    let policy = &compiled.policy;
    let on_route = if compiled.routes.is_empty() {
        None
    } else {
        match compiled.routes.select(policy, &req) {
            Some(r) => Some(r),
            None => {
                return http::proxy_error(StatusCode::NOT_FOUND, "no route matches the request");
            }
        }
    };
    let metrics = match ctx.authorize(policy, on_route.map(|r| r.route)) {
        Ok(http) => http.request(),
        Err(reason) => return http::forbidden(&req, &reason),
    };
    if let Some(on) = on_route {
        if let Some(rsp) = on.filters.redirect(&req, on.prefix) {
            metrics.respond(rsp.status().as_u16(), None, "");
            return rsp;
        }
        on.filters.request(&mut req);
    }
    let orig_proto = orig_proto::downgrade(&mut req);
    req.headers_mut().remove(L5D_CLIENT_ID);
    if let Some(id) = ctx
        .client_id()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        req.headers_mut().insert(L5D_CLIENT_ID, id);
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri = match Uri::try_from(format!("http://{}{}", ctx.target, path)) {
        Ok(uri) => uri,
        Err(_) => {
            metrics.respond(400, None, "bad_request");
            return http::proxy_error(StatusCode::BAD_REQUEST, "invalid request target");
        }
    };
    // HTTP/2 requests without a downgrade go to the app as HTTP/2 (gRPC, h2c apps).
    let h2 = req.version() == Version::HTTP_2;
    *req.uri_mut() = uri;
    let client_upgrade = upgrade::on_request(&mut req);
    let client = if h2 { &ctx.clients.h2 } else { &ctx.clients.h1 };
    let mut rsp = match client.request(req).await {
        Ok(rsp) => rsp,
        Err(error) => {
            tracing::info!(target = %ctx.target, %error, "Application request failed");
            metrics.respond(0, None, "unreachable");
            return http::proxy_error(StatusCode::BAD_GATEWAY, "application unreachable");
        }
    };
    metrics.respond(rsp.status().as_u16(), http::grpc_status(&rsp), "");
    orig_proto::annotate(&mut rsp, orig_proto);
    upgrade::splice(client_upgrade, &mut rsp);
    rsp.map(Either::Left)
}
