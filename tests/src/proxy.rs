//! In-process proxies for `proxy_*` tests: configs on `127.0.0.1:0`, certified proxies in a
//! test mesh, apps and small clients.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use parking_lot::Mutex;

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use trellis_proxy::{
    app::{
        self, Options, Running,
        config::{self, Config},
    },
    test_util::TestPki,
    tls,
    transport::OrigDst,
};

use crate::{assert_eventually, control::FakeIdentity};

/// A loopback address where nothing listens (the discard port).
pub const UNREACHABLE: &str = "127.0.0.1:9";
/// How long proxy tests wait for a proxy to become ready or a change to show.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long certificates from [`Mesh`]'s identity controller live.
pub const CERT_LIFETIME: Duration = Duration::from_secs(3600);

/// A test PKI and a fake identity controller (plaintext, on loopback) that certifies proxies.
#[derive(Debug)]
pub struct Mesh {
    /// The PKI whose anchor every proxy trusts.
    pub pki: Arc<TestPki>,
    /// The identity controller's address.
    pub identity_addr: String,
}

impl Mesh {
    /// Starts tracing, a fresh PKI and its identity controller.
    pub async fn new() -> Self {
        crate::trace_init();
        let pki = Arc::new(TestPki::new());
        let identity_addr = FakeIdentity::new(pki.clone(), CERT_LIFETIME)
            .spawn(false)
            .await
            .to_string();
        Self { pki, identity_addr }
    }

    /// A proxy certified as `name` by this mesh, with `overrides`, once it is ready.
    pub async fn proxy(&self, name: &str, overrides: &[(&str, &str)], options: Options) -> Running {
        let mut env = vec![
            (config::ENV_IDENTITY_SVC_ADDR, self.identity_addr.as_str()),
            (config::ENV_IDENTITY_LOCAL_NAME, name),
        ];
        env.extend_from_slice(overrides);
        let proxy = spawn(&self.pki.anchor_pem, &env, options).await;
        assert_eventually!(ready(proxy.admin_addr).await, WAIT);
        proxy
    }

    /// A client for mTLS to proxies of this mesh, presenting a certificate for `identity`
    /// (none when `None`).
    pub fn client_tls(&self, identity: Option<&str>) -> tls::client::Client {
        client_tls(&self.pki, identity)
    }
}

/// A TLS client trusting `pki`, presenting a certificate for `identity` when it is set.
pub fn client_tls(pki: &TestPki, identity: Option<&str>) -> tls::client::Client {
    let store = identity.map(|id| {
        let store = tls::Store::new(id.to_string());
        let leaf = pki.issue(id);
        store.set(leaf.chain.clone(), leaf.key()).unwrap();
        store
    });
    tls::client::Client::new(pki.roots(), store).unwrap()
}

/// Options sending every inbound and outbound connection to `addr`.
pub fn to(addr: SocketAddr) -> Options {
    Options {
        inbound_orig_dst: OrigDst::Fixed(addr),
        outbound_orig_dst: OrigDst::Fixed(addr),
        ..Default::default()
    }
}

/// Options for a client proxy: outbound connections target `orig_dst`, inbound ones use
/// the real original destination.
pub fn outbound_to(orig_dst: SocketAddr) -> Options {
    Options {
        inbound_orig_dst: OrigDst::Syscall,
        outbound_orig_dst: OrigDst::Fixed(orig_dst),
        ..Default::default()
    }
}

/// Options for a peer proxy whose inbound original destination does not matter (a
/// transport header names the port).
pub fn header_only() -> Options {
    Options {
        inbound_orig_dst: OrigDst::Fixed("127.0.0.1:1".parse().unwrap()),
        outbound_orig_dst: OrigDst::Syscall,
        ..Default::default()
    }
}

/// Spawns a proxy from [`config`]`(anchors_pem, overrides)` with `options`.
pub async fn spawn(anchors_pem: &str, overrides: &[(&str, &str)], options: Options) -> Running {
    app::spawn(config(anchors_pem, overrides), options)
        .await
        .unwrap()
}

/// Whether the proxy whose admin server is `admin` reports ready.
pub async fn ready(admin: SocketAddr) -> bool {
    http_get(admin, "/ready").await.0 == 200
}

/// Shuts every proxy down, asserting each drained cleanly.
pub async fn shutdown_all(proxies: impl IntoIterator<Item = Running>) {
    for proxy in proxies {
        assert!(proxy.shutdown().await);
    }
}

/// Writes `msg` to `io` and reads as many bytes back.
pub async fn roundtrip<T: AsyncRead + AsyncWrite + Unpin>(io: &mut T, msg: &[u8]) -> Vec<u8> {
    io.write_all(msg).await.unwrap();
    let mut buf = vec![0; msg.len()];
    io.read_exact(&mut buf).await.unwrap();
    buf
}

/// Connects to `addr`, writes `msg` and reads as many bytes back.
pub async fn tcp_roundtrip(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    roundtrip(&mut TcpStream::connect(addr).await.unwrap(), msg).await
}

/// A `GET path` request with `Host: host`.
pub fn get(path: &str, host: &str) -> http::Request<String> {
    http::Request::get(path)
        .header("host", host)
        .body(String::new())
        .unwrap()
}

/// Asks [`http_app`] on `io` (through any proxies) to switch to its echo protocol with
/// `Host: host`, then checks that `payload` comes back over the upgraded connection.
pub async fn upgrade_and_echo<T>(io: T, host: &str, payload: &[u8])
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let req = http::Request::get("/ws")
        .header("host", host)
        .header("connection", "upgrade")
        .header("upgrade", "echo")
        .body(String::new())
        .unwrap();
    let rsp = send.send_request(req).await.unwrap();
    assert_eq!(rsp.status(), 101);
    let mut io = hyper_util::rt::TokioIo::new(hyper::upgrade::on(rsp).await.unwrap());
    assert_eq!(roundtrip(&mut io, payload).await, payload);
}

/// Connects to `addr` from `127.0.0.2`, which policies treat as an ordinary remote client
/// (only `127.0.0.1` and `::1` get the implicit localhost authorization).
pub async fn connect_remote(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// A fresh temporary directory for one proxy's identity files and token.
pub fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "trellis-proxy-test-{}-{tag}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Environment for an in-process proxy: every listener on `127.0.0.1:0`, identity files in a
/// fresh temporary directory with a token, trust anchors `anchors_pem`, plus `overrides`.
pub fn env(anchors_pem: &str, overrides: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = trellis_proxy::test_util::mk_env(anchors_pem);
    let dir = temp_dir("identity");
    let token = dir.join("token");
    std::fs::write(&token, "fake-service-account-token").unwrap();
    let dir = dir.join("end-entity");
    let (dir, token) = (dir.display().to_string(), token.display().to_string());
    for (k, v) in [
        // Closed loopback ports: nothing leaves the machine, not even a DNS query.
        (config::ENV_DESTINATION_SVC_ADDR, UNREACHABLE),
        (config::ENV_POLICY_SVC_ADDR, UNREACHABLE),
        (config::ENV_IDENTITY_SVC_ADDR, UNREACHABLE),
        (config::ENV_IDENTITY_DIR, dir.as_str()),
        (config::ENV_IDENTITY_TOKEN_FILE, token.as_str()),
        (config::ENV_ADMIN_LISTEN_ADDR, "127.0.0.1:0"),
        (config::ENV_INBOUND_LISTEN_ADDR, "127.0.0.1:0"),
        (config::ENV_OUTBOUND_LISTEN_ADDR, "127.0.0.1:0"),
        (config::ENV_CONTROL_LISTEN_ADDR, "127.0.0.1:0"),
    ]
    .into_iter()
    .chain(overrides.iter().copied())
    {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

/// A parsed config from [`env`].
pub fn config(anchors_pem: &str, overrides: &[(&str, &str)]) -> Config {
    Config::parse(&env(anchors_pem, overrides)).expect("test config parses")
}

/// A TCP server on `127.0.0.1:0` that echoes every byte back, prefixed by `greeting`
/// (sent at once, like a server-speaks-first protocol) when it is not empty.
pub async fn echo_server(greeting: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve_echo(listener, greeting);
    addr
}

/// Serves [`echo_server`]'s protocol on `listener`.
pub fn serve_echo(listener: TcpListener, greeting: &'static [u8]) {
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                if !greeting.is_empty() && stream.write_all(greeting).await.is_err() {
                    return;
                }
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
}

/// Sends `GET path` over HTTP/1.0 and returns the status code and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut rsp = String::new();
    stream.read_to_string(&mut rsp).await.unwrap();
    let status = rsp
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {rsp:?}"));
    let body = rsp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Fetches the metrics of the proxy whose admin server is `admin`, asserts that they contain
/// `want`, and returns them.
pub async fn assert_metrics_contain(admin: SocketAddr, want: &str) -> String {
    let (_, body) = http_get(admin, "/metrics").await;
    assert!(body.contains(want), "want {want} in\n{body}");
    body
}

/// An HTTP app on `127.0.0.1:0` (HTTP/1 and h2c). `/status/<code>` answers with that code;
/// a request with `upgrade: echo` is switched and then echoed; anything else gets 200 with a
/// body `version=<v> client-id=<l5d-client-id> path=<path>`.
pub async fn http_app() -> SocketAddr {
    http_app_named("").await
}

/// [`http_app`] whose bodies end with ` app=<name>` (when `name` is not empty), and where
/// `/slow` waits 100 ms before answering.
pub async fn http_app_named(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve_http_app(listener, name);
    addr
}

/// Serves [`http_app_named`] on `listener`; returns the paths of the requests it has seen,
/// in order.
pub fn serve_http_app(listener: TcpListener, name: &'static str) -> Arc<Mutex<Vec<String>>> {
    use hyper::{Request, Response, body::Incoming};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let seen = Arc::new(Mutex::new(Vec::new()));
    async fn handle(
        name: &'static str,
        seen: Arc<Mutex<Vec<String>>>,
        mut req: Request<Incoming>,
    ) -> Result<Response<String>, std::convert::Infallible> {
        seen.lock().push(req.uri().path().to_string());
        if req.uri().path() == "/slow" {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        if let Some(code) = req.uri().path().strip_prefix("/status/") {
            let mut rsp = Response::new(String::new());
            *rsp.status_mut() = http::StatusCode::from_u16(code.parse().unwrap()).unwrap();
            return Ok(rsp);
        }
        if req.headers().get("upgrade").is_some_and(|v| v == "echo") {
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let mut io = TokioIo::new(on.await.unwrap());
                let mut buf = [0; 64];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            let mut rsp = Response::new(String::new());
            *rsp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
            rsp.headers_mut().insert("upgrade", "echo".parse().unwrap());
            rsp.headers_mut()
                .insert("connection", "upgrade".parse().unwrap());
            return Ok(rsp);
        }
        let client_id = req
            .headers()
            .get("l5d-client-id")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let suffix = if name.is_empty() {
            String::new()
        } else {
            format!(" app={name}")
        };
        Ok(Response::new(format!(
            "version={:?} client-id={client_id} path={}{suffix}",
            req.version(),
            req.uri().path()
        )))
    }
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = log.clone();
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(
                        TokioIo::new(stream),
                        hyper::service::service_fn(move |req| handle(name, seen.clone(), req)),
                    )
                    .await;
            });
        }
    });
    seen
}

/// Sends `req` over a new HTTP/1 connection on `io`; returns the response with its body.
pub async fn http1_send<T>(io: T, req: http::Request<String>) -> http::Response<String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let rsp = send.send_request(req).await.unwrap();
    collect(rsp).await
}

/// Sends `req` over a new HTTP/2 connection on `io`; returns the response with its body.
pub async fn http2_send<T>(io: T, req: http::Request<String>) -> http::Response<String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let rsp = send.send_request(req).await.unwrap();
    collect(rsp).await
}

async fn collect(rsp: http::Response<hyper::body::Incoming>) -> http::Response<String> {
    use http_body_util::BodyExt;
    let (parts, body) = rsp.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    http::Response::from_parts(parts, String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn assert_metrics_contain_returns_the_metrics_holding_the_text() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut request = [0; 512];
            let _ = tcp.read(&mut request).await;
            tcp.write_all(b"HTTP/1.0 200 OK\r\n\r\nrequest_total{a=\"1\"} 3\n")
                .await
                .unwrap();
        });
        let body = assert_metrics_contain(admin, "request_total{a=\"1\"}").await;
        assert_eq!(body, "request_total{a=\"1\"} 3\n");
    }
}
