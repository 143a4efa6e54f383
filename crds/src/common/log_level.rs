//! Log verbosity for Trellis components.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How much a component logs: `error`, `warn`, `info`, `debug` or `trace`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Only failures someone must act on.
    Error,
    /// Failures and degraded operation.
    Warn,
    /// Lifecycle events as well (the default).
    #[default]
    Info,
    /// Per-request and per-reconcile detail.
    Debug,
    /// Everything, including per-frame detail.
    Trace,
}

impl LogLevel {
    /// Every level, from the quietest.
    pub const ALL: [Self; 5] = [
        Self::Error,
        Self::Warn,
        Self::Info,
        Self::Debug,
        Self::Trace,
    ];

    /// The level named `name` (see [`Self::as_str`]), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// The level as a tracing filter directive (`info`, `debug`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}
