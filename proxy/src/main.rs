//! Entry point of `trellis-proxy`: reads `TRELLIS_PROXY_*`, runs the proxy, drains on SIGTERM.

use anyhow::Context as _;
use trellis_proxy::app::{self, Config, config::LogFormat};

fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid proxy configuration")?;
    init_tracing(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run(config))
}

fn init_tracing(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .with_context(|| format!("invalid log filter {:?}", config.log.filter))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let res = match config.log.format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    res.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let running = app::spawn(config, app::Options::default()).await?;
    shutdown_signal().await?;
    running.shutdown().await;
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("Received SIGTERM"),
        _ = int.recv() => tracing::info!("Received SIGINT"),
    }
    Ok(())
}
