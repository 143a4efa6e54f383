//! Process settings: logging and the data-plane worker threads.

use super::{
    ENV_ACCESS_LOG, ENV_CORES, ENV_LOG, ENV_LOG_FORMAT, Error, Source,
    parse::{get, invalid},
};

/// Default log filter.
pub const DEFAULT_LOG: &str = "warn,trellis_proxy=info";
/// Default data-plane worker threads: one, on a single-threaded runtime.
pub const DEFAULT_CORES: usize = 1;
/// Most data-plane worker threads accepted (the Mesh's `proxy.cores` allows 1–64).
pub const MAX_CORES: usize = 64;

/// Log settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `tracing_subscriber::EnvFilter` directives.
    pub filter: String,
    /// Output format.
    pub format: LogFormat,
    /// Access log, if on.
    pub access_log: Option<AccessLogFormat>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Access log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// Apache common log format.
    Apache,
    /// JSON.
    Json,
}

impl LogConfig {
    /// Reads the log settings from `env`.
    pub fn parse(env: &dyn Source) -> Result<Self, Error> {
        Ok(Self {
            filter: get(env, ENV_LOG).unwrap_or_else(|| DEFAULT_LOG.to_string()),
            format: match get(env, ENV_LOG_FORMAT).as_deref() {
                None | Some("plain") => LogFormat::Plain,
                Some("json") => LogFormat::Json,
                Some(v) => {
                    return Err(invalid(ENV_LOG_FORMAT, v, "must be plain or json".into()));
                }
            },
            access_log: match get(env, ENV_ACCESS_LOG).as_deref() {
                None => None,
                Some("apache") => Some(AccessLogFormat::Apache),
                Some("json") => Some(AccessLogFormat::Json),
                Some(v) => {
                    return Err(invalid(ENV_ACCESS_LOG, v, "must be apache or json".into()));
                }
            },
        })
    }
}

/// The data-plane worker threads, from 1 to [`MAX_CORES`].
pub(super) fn cores(env: &dyn Source) -> Result<usize, Error> {
    let Some(raw) = get(env, ENV_CORES) else {
        return Ok(DEFAULT_CORES);
    };
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_CORES).contains(n))
        .ok_or_else(|| {
            invalid(
                ENV_CORES,
                &raw,
                format!("must be a whole number of worker threads from 1 to {MAX_CORES}"),
            )
        })
}
