//! In-process proxies for `proxy_*` tests: configs on `127.0.0.1:0`, apps and small clients.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use parking_lot::Mutex;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use trellis_proxy::app::config::{self, Config};

/// A loopback address where nothing listens (the discard port).
pub const UNREACHABLE: &str = "127.0.0.1:9";

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
