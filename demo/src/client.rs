//! The load generator: sends requests to a target at a fixed rate and counts their outcomes.

use std::{error::Error as StdError, fmt::Write as _, time::Duration};

use bytes::Bytes;
use http::{Request, Uri, Version};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    time::MissedTickBehavior,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tracing::{info, warn};

use crate::{
    Error,
    stats::{Outcome, Stats},
};

/// Default requests per second.
pub const DEFAULT_RATE: f64 = 10.0;
/// Default number of requests; 0 runs until shutdown.
pub const DEFAULT_COUNT: u64 = 0;
/// Default time one request may take, connecting included, as [`parse_duration`] reads it.
pub const DEFAULT_TIMEOUT: &str = "2s";
/// Default request path for HTTP.
pub const DEFAULT_PATH: &str = "/";

/// Outcome key of a successful request of any protocol.
pub const OK_KEY: &str = "200";
/// Outcome key of a connection that could not be made.
pub const CONNECT_ERROR: &str = "error:connect";
/// Outcome key of a request that took longer than the timeout.
pub const TIMEOUT_ERROR: &str = "error:timeout";
/// Outcome key of a TCP echo that did not return what was sent.
pub const MISMATCH_ERROR: &str = "error:mismatch";
/// Outcome key of any other transport failure.
pub const OTHER_ERROR: &str = "error:other";

/// The protocol the client speaks to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// HTTP/1.1 over one client with keep-alive.
    Http1,
    /// Prior-knowledge cleartext HTTP/2 over one reused connection.
    Http2,
    /// `grpc.health.v1.Health/Check` over a tonic channel.
    Grpc,
    /// A new TCP connection per request that must echo `ping <n>\n`.
    Tcp,
}

/// Settings of [`run`].
#[derive(Clone, Debug)]
pub struct Config {
    /// `HOST:PORT` to send to; HOST may be a DNS name.
    pub target: String,
    /// The protocol to speak.
    pub protocol: Protocol,
    /// Requests per second.
    pub rate: f64,
    /// Requests to send; 0 sends until shutdown.
    pub count: u64,
    /// Time one request may take, connecting included.
    pub timeout: Duration,
    /// Request path for HTTP.
    pub path: String,
}

/// Sends requests as `config` says, one at a time, recording each outcome in `stats`, until
/// `config.count` requests are done or `shutdown` is cancelled.
pub async fn run(
    config: &Config,
    stats: &Stats,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let period =
        Duration::try_from_secs_f64(1.0 / config.rate).map_err(|source| Error::InvalidRate {
            rate: config.rate,
            source,
        })?;
    let sender = Sender::new(config)?;
    info!(
        addr = %config.target,
        protocol = ?config.protocol,
        rate = config.rate,
        count = config.count,
        "Sending requests"
    );
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    while config.count == 0 || n < config.count {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        n += 1;
        let outcome = match tokio::time::timeout(config.timeout, sender.send(n)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::failure(
                TIMEOUT_ERROR,
                format!("no answer within {:?}", config.timeout),
            ),
        };
        if let Some(error) = &outcome.error {
            warn!(n, outcome = %outcome.key, error, "Request failed");
        }
        stats.record(&outcome);
    }
    info!(sent = n, "Stopped sending");
    Ok(())
}

/// One protocol's way to send request number `n`.
#[expect(clippy::large_enum_variant, reason = "one Sender lives per run")]
enum Sender {
    Http {
        client: Client<HttpConnector, Empty<Bytes>>,
        uri: Uri,
        version: Version,
    },
    Grpc(HealthClient<Channel>),
    Tcp(String),
}

impl Sender {
    fn new(config: &Config) -> Result<Self, Error> {
        let uri: Uri = format!("http://{}{}", config.target, config.path)
            .parse()
            .map_err(|source| Error::InvalidTarget {
                target: config.target.clone(),
                path: config.path.clone(),
                source,
            })?;
        if uri.port().is_none() {
            return Err(Error::MissingPort {
                target: config.target.clone(),
            });
        }
        let http = |version| {
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(config.timeout));
            connector.set_nodelay(true);
            let client = Client::builder(TokioExecutor::new())
                .http2_only(version == Version::HTTP_2)
                .build(connector);
            Sender::Http {
                client,
                uri: uri.clone(),
                version,
            }
        };
        Ok(match config.protocol {
            Protocol::Http1 => http(Version::HTTP_11),
            Protocol::Http2 => http(Version::HTTP_2),
            Protocol::Grpc => {
                let channel = Channel::from_shared(format!("http://{}", config.target))
                    .map_err(|source| Error::InvalidTarget {
                        target: config.target.clone(),
                        path: String::new(),
                        source,
                    })?
                    .connect_timeout(config.timeout)
                    .timeout(config.timeout)
                    .connect_lazy();
                Sender::Grpc(HealthClient::new(channel))
            }
            Protocol::Tcp => Sender::Tcp(config.target.clone()),
        })
    }

    async fn send(&self, n: u64) -> Outcome {
        match self {
            Sender::Http {
                client,
                uri,
                version,
            } => http(client, uri, *version).await,
            Sender::Grpc(client) => grpc(client.clone()).await,
            Sender::Tcp(target) => tcp(target, n).await,
        }
    }
}

async fn http(
    client: &Client<HttpConnector, Empty<Bytes>>,
    uri: &Uri,
    version: Version,
) -> Outcome {
    let mut req = Request::new(Empty::new());
    *req.uri_mut() = uri.clone();
    *req.version_mut() = version;
    let res = match client.request(req).await {
        Ok(res) => res,
        Err(e) if e.is_connect() => return Outcome::failure(CONNECT_ERROR, chain(&e)),
        Err(e) => return Outcome::failure(OTHER_ERROR, chain(&e)),
    };
    let status = res.status();
    let server = res
        .headers()
        .get(crate::server::SERVER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Read the whole body so the connection can carry the next request.
    if let Err(e) = res.into_body().collect().await {
        return Outcome::failure(OTHER_ERROR, chain(&e));
    }
    let outcome = if status.is_success() {
        Outcome::success(status.as_str())
    } else {
        Outcome::failure(status.as_str(), format!("unexpected status {status}"))
    };
    Outcome { server, ..outcome }
}

async fn grpc(mut client: HealthClient<Channel>) -> Outcome {
    let req = HealthCheckRequest {
        service: String::new(),
    };
    match client.check(req).await {
        Ok(res) => match res.into_inner().status() {
            ServingStatus::Serving => Outcome::success(OK_KEY),
            status => Outcome::failure(
                format!("health:{}", status.as_str_name()),
                format!("health status {}", status.as_str_name()),
            ),
        },
        Err(status) => Outcome::failure(
            format!("grpc-{}", i32::from(status.code())),
            format!("grpc status {:?}: {}", status.code(), status.message()),
        ),
    }
}

async fn tcp(target: &str, n: u64) -> Outcome {
    let mut stream = match TcpStream::connect(target).await {
        Ok(stream) => stream,
        Err(e) => return Outcome::failure(CONNECT_ERROR, format!("connect to {target}: {e}")),
    };
    let sent = format!("ping {n}\n");
    let echoed = async {
        stream.write_all(sent.as_bytes()).await?;
        let mut buf = vec![0; sent.len()];
        stream.read_exact(&mut buf).await?;
        stream.shutdown().await?;
        Ok::<_, std::io::Error>(buf)
    };
    match echoed.await {
        Ok(buf) if buf == sent.as_bytes() => Outcome::success(OK_KEY),
        Ok(buf) => Outcome::failure(
            MISMATCH_ERROR,
            format!(
                "sent {sent:?}, got back {:?}",
                String::from_utf8_lossy(&buf)
            ),
        ),
        Err(e) => Outcome::failure(OTHER_ERROR, format!("echo from {target}: {e}")),
    }
}

/// An error and all its sources, joined by `": "`.
fn chain(error: &dyn StdError) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let _ = write!(out, ": {e}");
        source = e.source();
    }
    out
}

/// Parses a duration such as `500ms`, `2s` or `1m`; a bare number is seconds.
pub fn parse_duration(input: &str) -> Result<Duration, Error> {
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|source| Error::DurationNumber {
        input: input.to_owned(),
        source,
    })?;
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number.saturating_mul(60))),
        unit => Err(Error::DurationUnit {
            input: input.to_owned(),
            unit: unit.to_owned(),
        }),
    }
}
