//! Entry point of `trellis-demo-app`: parses flags and `DEMO_*` variables, wires signals, and
//! runs the server or the client.

use std::{io::IsTerminal as _, net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use trellis_demo::{
    client::{self, Protocol},
    server,
    stats::{self, Snapshot, Stats},
};

/// Name used when neither `--name`, `POD_NAME` nor the hostname gives one.
const FALLBACK_NAME: &str = "trellis-demo";

/// The Trellis demo app: a server and a load generator for the mesh demo and end-to-end tests.
#[derive(Debug, Parser)]
#[command(name = "trellis-demo-app", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP/1.1, h2c and gRPC health on one port and a TCP echo on another.
    Server(ServerArgs),
    /// Send requests to a target at a fixed rate and count the outcomes.
    Client(ClientArgs),
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// Address of the HTTP/1.1, HTTP/2 (prior knowledge) and gRPC health port.
    #[arg(long, env = "DEMO_HTTP_ADDR", default_value = server::DEFAULT_HTTP_ADDR)]
    http_addr: SocketAddr,
    /// Address of the raw TCP echo port.
    #[arg(long, env = "DEMO_TCP_ADDR", default_value = server::DEFAULT_TCP_ADDR)]
    tcp_addr: SocketAddr,
    /// Name in response bodies and the x-demo-server header [default: $POD_NAME, else the hostname].
    #[arg(long, env = "DEMO_NAME")]
    name: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ClientArgs {
    /// HOST:PORT to send to; HOST may be a DNS name.
    #[arg(long, env = "DEMO_TARGET")]
    target: String,
    /// Protocol to speak to the target.
    #[arg(long, value_enum, default_value_t = Protocol::Http1)]
    protocol: Protocol,
    /// Requests per second.
    #[arg(long, default_value_t = client::DEFAULT_RATE)]
    rate: f64,
    /// Requests to send, then print the stats and exit (1 if any failed); 0 runs until SIGTERM.
    #[arg(long, default_value_t = client::DEFAULT_COUNT)]
    count: u64,
    /// Time one request may take, connecting included (e.g. 500ms, 2s).
    #[arg(long, value_parser = client::parse_duration, default_value = client::DEFAULT_TIMEOUT)]
    timeout: Duration,
    /// Request path for HTTP.
    #[arg(long, default_value = client::DEFAULT_PATH)]
    path: String,
    /// Address of the stats server (GET /stats, POST /reset, GET /healthz).
    #[arg(long, env = "DEMO_STATS_ADDR", default_value = stats::DEFAULT_STATS_ADDR)]
    stats_addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    init_tracing()?;
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone())?;
    match cli.command {
        Command::Server(args) => run_server(args, shutdown).await,
        Command::Client(args) => run_client(args, shutdown).await,
    }
}

fn init_tracing() -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .context("invalid RUST_LOG filter")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

async fn run_server(args: ServerArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let config = server::Config {
        name: args.name.unwrap_or_else(default_name),
        drain_timeout: server::DEFAULT_DRAIN_TIMEOUT,
    };
    let http = bind(args.http_addr, "--http-addr").await?;
    let tcp = bind(args.tcp_addr, "--tcp-addr").await?;
    tracing::info!(name = %config.name, "Starting the demo server");
    server::run(config, http, tcp, shutdown).await?;
    tracing::info!("Stopped");
    Ok(ExitCode::SUCCESS)
}

async fn run_client(args: ClientArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let config = client::Config {
        target: args.target,
        protocol: args.protocol,
        rate: args.rate,
        count: args.count,
        timeout: args.timeout,
        path: args.path,
    };
    let stats = Arc::new(Stats::default());
    let listener = bind(args.stats_addr, "--stats-addr").await?;
    let stats_server = tokio::spawn(stats::serve(listener, stats.clone(), shutdown.clone()));
    let res = client::run(&config, &stats, &shutdown).await;
    shutdown.cancel();
    if let Err(error) = stats_server.await {
        tracing::warn!(%error, "Stats server task failed");
    }
    res?;
    if config.count == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let snapshot = stats.snapshot();
    print_stats(&snapshot)?;
    Ok(if snapshot.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[expect(
    clippy::print_stdout,
    reason = "the final stats line is the command's output"
)]
fn print_stats(snapshot: &Snapshot) -> anyhow::Result<()> {
    let line = serde_json::to_string(snapshot).context("cannot encode the stats")?;
    println!("{line}");
    Ok(())
}

async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}; is {flag} free and local?"))
}

/// `POD_NAME` (from the downward API), else the hostname, else [`FALLBACK_NAME`].
#[expect(
    clippy::disallowed_methods,
    reason = "main.rs is this binary's config module"
)]
fn default_name() -> String {
    std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| FALLBACK_NAME.to_owned())
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
fn cancel_on_signal(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("Received SIGTERM; shutting down"),
            _ = int.recv() => tracing::info!("Received SIGINT; shutting down"),
        }
        shutdown.cancel();
    });
    Ok(())
}
