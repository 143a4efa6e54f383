//! Tracing subscriber set-up: filter from `TRELLIS_OPERATOR_LOG`, plain or JSON lines.

use tracing_subscriber::EnvFilter;

use crate::{
    config::{LogFormat, TelemetryConfig},
    error::Error,
};

/// Installs the global tracing subscriber.
pub fn init(config: &TelemetryConfig) -> Result<(), Error> {
    let filter = EnvFilter::try_new(&config.log).map_err(|e| {
        Error::Telemetry(format!(
            "invalid TRELLIS_OPERATOR_LOG {:?}: {e}; write it like info or trellis_operator=debug",
            config.log
        ))
    })?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match config.log_format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| Error::Telemetry(e.to_string()))
}
