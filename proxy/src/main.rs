//! Entry point of `trellis-proxy`: reads `TRELLIS_PROXY_*`, runs the proxy, drains on SIGTERM.

use anyhow::Context as _;
use trellis_proxy::app::{self, Config, config::LogFormat, runtime};

fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid proxy configuration")?;
    init_tracing(&config)?;
    let data = runtime::data(config.cores).context("cannot start the data-plane runtime")?;
    let control = runtime::Control::start().context("cannot start the control thread")?;
    let options = app::Options {
        control: Some(control.handle()),
        ..app::Options::default()
    };
    let res = data.block_on(run(config, options));
    control.stop();
    res
}

fn init_tracing(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .with_context(|| format!("invalid log filter {:?}", config.log.filter))?;
    // Colours only on a terminal: container logs are files.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let res = match config.log.format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    res.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

async fn run(config: Config, options: app::Options) -> anyhow::Result<()> {
    let running = app::spawn(config, options).await?;
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
