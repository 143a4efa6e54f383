//! The demo server: HTTP/1.1, cleartext HTTP/2 and gRPC health on one port, a TCP echo on another.

use std::{
    convert::Infallible, error::Error as StdError, net::SocketAddr, sync::Arc, time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, combinators::UnsyncBoxBody};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};
use tower::ServiceExt as _;
use tracing::{debug, info, warn};

use crate::Error;

/// Default address of the HTTP, HTTP/2 and gRPC port.
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:8080";
/// Default address of the TCP echo port.
pub const DEFAULT_TCP_ADDR: &str = "0.0.0.0:8082";
/// How long connections may take to finish after shutdown starts.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (for example out of file descriptors) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Response header that names the server that answered.
pub const SERVER_HEADER: &str = "x-demo-server";

/// An error boxed by a response body.
pub type BoxError = Box<dyn StdError + Send + Sync>;
/// The response body of every service here.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Settings of [`run`].
#[derive(Clone, Debug)]
pub struct Config {
    /// Name echoed in response bodies and the `x-demo-server` header.
    pub name: String,
    /// How long connections may take to finish after shutdown starts.
    pub drain_timeout: Duration,
}

/// Serves HTTP and gRPC health on `http` and a TCP echo on `tcp` until `shutdown`, then lets
/// open connections finish for at most `drain_timeout`.
pub async fn run(
    config: Config,
    http: TcpListener,
    tcp: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let header = HeaderValue::from_str(&config.name).map_err(|source| Error::InvalidName {
        name: config.name.clone(),
        source,
    })?;
    // `HealthReporter::new` reports the server as a whole (service "") SERVING.
    let health = HealthServer::new(HealthService::from_health_reporter(HealthReporter::new()));
    let app = App {
        name: config.name.into(),
        header,
        health,
    };
    let svc = service_fn(move |req: Request<Incoming>| app.clone().handle(req));
    tokio::join!(
        serve_http("http", http, svc, shutdown.clone(), config.drain_timeout),
        serve_echo(tcp, shutdown, config.drain_timeout),
    );
    Ok(())
}

/// What every HTTP request needs: the name and the gRPC health service.
#[derive(Clone)]
struct App {
    name: Arc<str>,
    header: HeaderValue,
    health: HealthServer<HealthService>,
}

impl App {
    async fn handle(self, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        if is_grpc(&req) {
            let res = self.health.oneshot(req).await?;
            return Ok(res.map(|body| body.map_err(BoxError::from).boxed_unsync()));
        }
        debug!(method = %req.method(), path = req.uri().path(), version = ?req.version(), "Request");
        let (status, body) = self.route(&req);
        let mut res = Response::new(full(body));
        *res.status_mut() = status;
        let headers = res.headers_mut();
        headers.insert(SERVER_HEADER, self.header.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Ok(res)
    }

    fn route(&self, req: &Request<Incoming>) -> (StatusCode, String) {
        let path = req.uri().path();
        if req.method() != Method::GET {
            return (StatusCode::NOT_FOUND, "not found\n".into());
        }
        if path == "/" {
            let line = format!(
                "{} {} {} {:?}\n",
                self.name,
                req.method(),
                path,
                req.version()
            );
            return (StatusCode::OK, line);
        }
        if path == "/healthz" {
            return (StatusCode::OK, "ok".into());
        }
        let status = path
            .strip_prefix("/status/")
            .and_then(|code| code.parse::<u16>().ok())
            .and_then(|code| StatusCode::from_u16(code).ok())
            .filter(|status| !status.is_informational());
        match status {
            Some(status) => (status, String::new()),
            None => (StatusCode::NOT_FOUND, "not found\n".into()),
        }
    }
}

fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// A fixed response body.
pub(crate) fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Serves `svc` over HTTP/1.1 or prior-knowledge HTTP/2, whichever each connection speaks,
/// until `shutdown`; then asks connections to close and waits for them up to `drain`.
pub(crate) async fn serve_http<S, F>(
    what: &'static str,
    listener: TcpListener,
    svc: S,
    shutdown: CancellationToken,
    drain: Duration,
) where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Body>,
            Error = Infallible,
            Future = F,
        > + Clone
        + Send
        + 'static,
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, what, "Serving HTTP");
    }
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let tracker = TaskTracker::new();
    let abort = CancellationToken::new();
    while let Some((stream, peer)) = accept(&listener, &shutdown, what).await {
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc.clone())
            .into_owned();
        let conn = graceful.watch(conn);
        let abort = abort.clone();
        tracker.spawn(async move {
            tokio::select! {
                res = conn => if let Err(error) = res {
                    debug!(%peer, what, error, "Connection failed");
                },
                () = abort.cancelled() => debug!(%peer, what, "Connection closed after the drain timeout"),
            }
        });
    }
    drop(listener);
    tracker.close();
    info!(what, connections = tracker.len(), "Draining");
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            what,
            connections = tracker.len(),
            ?drain,
            "Connections still open after the drain timeout; closing them"
        );
        abort.cancel();
    }
    tracker.wait().await;
}

/// Echoes every byte back to its sender until `shutdown`, then waits for open connections up
/// to `drain`.
async fn serve_echo(listener: TcpListener, shutdown: CancellationToken, drain: Duration) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "Serving TCP echo");
    }
    let tracker = TaskTracker::new();
    let abort = CancellationToken::new();
    while let Some((stream, peer)) = accept(&listener, &shutdown, "tcp").await {
        let abort = abort.clone();
        tracker.spawn(async move {
            tokio::select! {
                () = echo(stream, peer) => {},
                () = abort.cancelled() => debug!(%peer, "Echo connection closed after the drain timeout"),
            }
        });
    }
    drop(listener);
    tracker.close();
    info!(what = "tcp", connections = tracker.len(), "Draining");
    if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
        warn!(
            what = "tcp",
            connections = tracker.len(),
            ?drain,
            "Connections still open after the drain timeout; closing them"
        );
        abort.cancel();
        tracker.wait().await;
    }
}

async fn echo(mut stream: TcpStream, peer: SocketAddr) {
    let (mut rd, mut wr) = stream.split();
    match tokio::io::copy(&mut rd, &mut wr).await {
        Ok(bytes) => debug!(%peer, bytes, "Echo connection closed"),
        Err(error) => debug!(%peer, %error, "Echo connection failed"),
    }
}

/// The next connection, or `None` once `shutdown` is cancelled.
async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
    what: &'static str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            res = listener.accept() => match res {
                Ok(conn) => return Some(conn),
                Err(error) => {
                    warn!(what, %error, "Cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}
