//! The demo server and client in-process on 127.0.0.1: every protocol, status codes, transport
//! failures, the stats endpoint and graceful shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail by panicking"
)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use trellis_demo::{
    client::{self, Protocol},
    server,
    stats::{self, Snapshot, Stats},
};

const NAME: &str = "demo-test";

/// Upper bound for things that should finish almost at once; a hang fails instead of blocking.
const GUARD: Duration = Duration::from_secs(20);

struct TestServer {
    http: SocketAddr,
    tcp: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), trellis_demo::Error>>,
}

async fn start_server() -> TestServer {
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (http_addr, tcp_addr) = (http.local_addr().unwrap(), tcp.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let config = server::Config {
        name: NAME.into(),
        drain_timeout: Duration::from_secs(60),
    };
    let task = tokio::spawn(server::run(config, http, tcp, shutdown.clone()));
    TestServer {
        http: http_addr,
        tcp: tcp_addr,
        shutdown,
        task,
    }
}

fn client_config(target: SocketAddr, protocol: Protocol, count: u64) -> client::Config {
    client::Config {
        target: target.to_string(),
        protocol,
        rate: 100.0,
        count,
        timeout: Duration::from_secs(2),
        path: "/".into(),
    }
}

async fn run_client(config: &client::Config) -> Snapshot {
    let stats = Stats::default();
    let never = CancellationToken::new();
    tokio::time::timeout(GUARD, client::run(config, &stats, &never))
        .await
        .expect("client finished")
        .unwrap();
    stats.snapshot()
}

fn only(key: &str, n: u64) -> std::collections::BTreeMap<String, u64> {
    [(key.to_owned(), n)].into_iter().collect()
}

/// Sends one request with a fresh client and returns status, `x-demo-server` and body.
async fn fetch(
    method: Method,
    uri: String,
    version: Version,
) -> (StatusCode, Option<String>, String) {
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(version == Version::HTTP_2)
        .build_http();
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .version(version)
        .body(Empty::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.status();
    let server = res
        .headers()
        .get("x-demo-server")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, server, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn requests_of_every_protocol_are_counted_as_200() {
    let server = start_server().await;
    for (protocol, target) in [
        (Protocol::Http1, server.http),
        (Protocol::Http2, server.http),
        (Protocol::Grpc, server.http),
        (Protocol::Tcp, server.tcp),
    ] {
        let stats = run_client(&client_config(target, protocol, 5)).await;
        // HTTP answers name their server; gRPC and TCP carry no such header.
        let servers = match protocol {
            Protocol::Http1 | Protocol::Http2 => only(NAME, 5),
            _ => Default::default(),
        };
        assert_eq!(
            stats,
            Snapshot {
                sent: 5,
                ok: 5,
                failed: 0,
                outcomes: only("200", 5),
                last_error: None,
                servers,
            },
            "{protocol:?}"
        );
    }
}

#[tokio::test]
async fn status_path_failures_are_counted_by_code() {
    let server = start_server().await;
    for protocol in [Protocol::Http1, Protocol::Http2] {
        let mut config = client_config(server.http, protocol, 4);
        config.path = "/status/403".into();
        let stats = run_client(&config).await;
        assert_eq!(
            (stats.sent, stats.ok, stats.failed),
            (4, 0, 4),
            "{protocol:?}"
        );
        assert_eq!(stats.outcomes, only("403", 4), "{protocol:?}");
        assert_eq!(
            stats.last_error.as_deref(),
            Some("unexpected status 403 Forbidden")
        );
    }
}

#[tokio::test]
async fn refused_connections_are_connect_errors() {
    // A port that was free a moment ago and has no listener now.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    for protocol in [Protocol::Http1, Protocol::Http2, Protocol::Tcp] {
        let stats = run_client(&client_config(closed, protocol, 2)).await;
        assert_eq!(
            (stats.sent, stats.ok, stats.failed),
            (2, 0, 2),
            "{protocol:?}"
        );
        assert_eq!(stats.outcomes, only("error:connect", 2), "{protocol:?}");
        assert!(stats.last_error.is_some());
    }
    // tonic reports a failed connection as a gRPC status: UNAVAILABLE (14).
    let stats = run_client(&client_config(closed, Protocol::Grpc, 2)).await;
    assert_eq!((stats.ok, stats.failed), (0, 2));
    assert_eq!(stats.outcomes, only("grpc-14", 2));
}

#[tokio::test]
async fn silent_peers_time_out() {
    // Connections complete through the backlog but nobody ever reads or answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = client_config(silent.local_addr().unwrap(), Protocol::Tcp, 2);
    config.timeout = Duration::from_millis(200);
    let stats = run_client(&config).await;
    assert_eq!((stats.ok, stats.failed), (0, 2));
    assert_eq!(stats.outcomes, only("error:timeout", 2));
}

#[tokio::test]
async fn stats_endpoint_reports_and_resets() {
    let server = start_server().await;
    let stats = Arc::new(Stats::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stats_addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let stats_task = tokio::spawn(stats::serve(listener, stats.clone(), shutdown.clone()));
    let stats_request = |method, path: &str| {
        fetch(
            method,
            format!("http://{stats_addr}{path}"),
            Version::HTTP_11,
        )
    };

    let never = CancellationToken::new();
    client::run(
        &client_config(server.http, Protocol::Http1, 3),
        &stats,
        &never,
    )
    .await
    .unwrap();
    let mut failing = client_config(server.http, Protocol::Http1, 2);
    failing.path = "/status/503".into();
    client::run(&failing, &stats, &never).await.unwrap();

    let (status, _, body) = stats_request(Method::GET, "/stats").await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "sent": 5,
            "ok": 3,
            "failed": 2,
            "outcomes": {"200": 3, "503": 2},
            "last_error": "unexpected status 503 Service Unavailable",
            "servers": {NAME: 5},
        })
    );

    let (status, _, body) = stats_request(Method::POST, "/reset").await;
    assert_eq!(status, StatusCode::OK);
    let before: Snapshot = serde_json::from_str(&body).unwrap();
    assert_eq!((before.sent, before.ok, before.failed), (5, 3, 2));

    let (_, _, body) = stats_request(Method::GET, "/stats").await;
    let after: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        after,
        serde_json::json!({"sent": 0, "ok": 0, "failed": 0, "outcomes": {}, "last_error": null, "servers": {}})
    );

    let (status, _, _) = stats_request(Method::GET, "/healthz").await;
    assert_eq!(status, StatusCode::OK);

    shutdown.cancel();
    tokio::time::timeout(GUARD, stats_task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn server_routes_name_themselves_over_both_http_versions() {
    let server = start_server().await;
    let base = format!("http://{}", server.http);
    for (version, shown) in [
        (Version::HTTP_11, "HTTP/1.1"),
        (Version::HTTP_2, "HTTP/2.0"),
    ] {
        let (status, name, body) = fetch(Method::GET, format!("{base}/"), version).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(name.as_deref(), Some(NAME));
        assert_eq!(body, format!("{NAME} GET / {shown}\n"));
    }
    let (status, _, body) = fetch(Method::GET, format!("{base}/healthz"), Version::HTTP_11).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (status, ..) = fetch(Method::GET, format!("{base}/status/418"), Version::HTTP_11).await;
    assert_eq!(status, StatusCode::IM_A_TEAPOT);
    for path in ["/nope", "/status/abc", "/status/99"] {
        let (status, ..) = fetch(Method::GET, format!("{base}{path}"), Version::HTTP_11).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, ..) = fetch(Method::POST, format!("{base}/"), Version::HTTP_11).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tcp_echo_returns_every_byte_until_eof() {
    let server = start_server().await;
    let mut stream = TcpStream::connect(server.tcp).await.unwrap();
    let data: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let (mut rd, mut wr) = stream.split();
    let write = async {
        wr.write_all(&data).await.unwrap();
        wr.shutdown().await.unwrap();
    };
    let mut echoed = Vec::new();
    let read = rd.read_to_end(&mut echoed);
    let ((), n) = tokio::time::timeout(GUARD, async { tokio::join!(write, read) })
        .await
        .unwrap();
    assert_eq!(n.unwrap(), data.len());
    assert!(echoed == data, "echo differs from what was sent");
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_and_returns() {
    let server = start_server().await;
    // A keep-alive HTTP/1.1 connection that stays open after its request.
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let uri = format!("http://{}/", server.http);
    let res = client
        .request(Request::get(&uri).body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.into_body().collect().await.unwrap();

    server.shutdown.cancel();
    tokio::time::timeout(GUARD, server.task)
        .await
        .expect("server stopped after shutdown")
        .unwrap()
        .unwrap();
    // The listener is closed: new connections are refused.
    assert!(TcpStream::connect(server.http).await.is_err());
}

#[tokio::test]
async fn shutdown_drains_an_open_echo_connection() {
    let server = start_server().await;
    let mut stream = TcpStream::connect(server.tcp).await.unwrap();
    stream.write_all(b"before\n").await.unwrap();
    let mut buf = [0; 7];
    stream.read_exact(&mut buf).await.unwrap();

    server.shutdown.cancel();
    // The listener closes, but the open connection keeps echoing while the server drains.
    tokio::time::timeout(GUARD, async {
        while TcpStream::connect(server.tcp).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("listener closed");
    assert!(!server.task.is_finished());
    stream.write_all(b"after\n").await.unwrap();
    let mut buf = [0; 6];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"after\n");

    drop(stream);
    tokio::time::timeout(GUARD, server.task)
        .await
        .expect("server stopped once the connection closed")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn client_stops_on_shutdown_when_count_is_zero() {
    let server = start_server().await;
    let stats = Stats::default();
    let shutdown = CancellationToken::new();
    let config = client_config(server.http, Protocol::Http1, 0);
    let run = client::run(&config, &stats, &shutdown);
    let stop = async {
        while stats.snapshot().sent < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shutdown.cancel();
    };
    let (res, ()) = tokio::time::timeout(GUARD, async { tokio::join!(run, stop) })
        .await
        .unwrap();
    res.unwrap();
    let stats = stats.snapshot();
    assert!(stats.sent >= 3);
    assert_eq!(stats.failed, 0);
}

#[test]
fn durations_parse_with_units() {
    let parse = |s| client::parse_duration(s).unwrap();
    assert_eq!(parse("500ms"), Duration::from_millis(500));
    assert_eq!(parse("2s"), Duration::from_secs(2));
    assert_eq!(parse("3"), Duration::from_secs(3));
    assert_eq!(parse("1m"), Duration::from_secs(60));
    assert_eq!(parse(client::DEFAULT_TIMEOUT), Duration::from_secs(2));
    assert!(client::parse_duration("2h").is_err());
    assert!(client::parse_duration("fast").is_err());
    assert!(client::parse_duration("").is_err());
}

#[test]
fn bad_settings_are_errors() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stats = Stats::default();
    let never = CancellationToken::new();
    let target: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let refused = |config: client::Config| {
        rt.block_on(client::run(&config, &stats, &never))
            .unwrap_err()
    };
    let mut config = client_config(target, Protocol::Http1, 1);
    config.rate = 0.0;
    let err = refused(config);
    assert!(
        matches!(err, trellis_demo::Error::InvalidRate { .. }),
        "{err}"
    );
    let mut config = client_config(target, Protocol::Http1, 1);
    config.target = "localhost".into();
    let err = refused(config);
    assert!(
        matches!(err, trellis_demo::Error::MissingPort { .. }),
        "{err}"
    );
    assert_eq!(stats.snapshot(), Snapshot::default());
}
