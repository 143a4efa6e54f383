//! Errors of the demo app: settings that cannot work, found before any traffic flows.

use std::{num::ParseIntError, time::TryFromFloatSecsError};

/// Why the server or the client cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server name cannot be sent in the `x-demo-server` header.
    #[error(
        "server name {name:?} is not a valid header value; set --name or DEMO_NAME to printable ASCII"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why `http` rejected it.
        #[source]
        source: http::header::InvalidHeaderValue,
    },

    /// The target and path do not make an `http://HOST:PORT/path` URI.
    #[error(
        "target {target:?} with path {path:?} is not a valid URI; use HOST:PORT and a path starting with /"
    )]
    InvalidTarget {
        /// The `--target` value.
        target: String,
        /// The `--path` value.
        path: String,
        /// Why `http` rejected the URI.
        #[source]
        source: http::uri::InvalidUri,
    },

    /// The target has no port.
    #[error("target {target:?} has no port; use HOST:PORT")]
    MissingPort {
        /// The `--target` value.
        target: String,
    },

    /// The rate does not give a usable interval between requests.
    #[error(
        "rate {rate} is not a usable number of requests per second; use a positive number such as 10 or 0.5"
    )]
    InvalidRate {
        /// The `--rate` value.
        rate: f64,
        /// Why `1 / rate` is not a duration.
        #[source]
        source: TryFromFloatSecsError,
    },

    /// A duration's number does not parse.
    #[error("duration {input:?} does not start with a whole number; use for example 500ms or 2s")]
    DurationNumber {
        /// The rejected text.
        input: String,
        /// Why the number does not parse.
        #[source]
        source: ParseIntError,
    },

    /// A duration has an unknown unit.
    #[error("duration {input:?} has unknown unit {unit:?}; use ms, s or m")]
    DurationUnit {
        /// The rejected text.
        input: String,
        /// The unit found after the number.
        unit: String,
    },
}
