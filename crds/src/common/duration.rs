//! Durations written as strings (`30s`, `1h30m`) in Go's `time.ParseDuration` grammar, the
//! one Kubernetes and CEL's `duration()` use, narrowed by a pattern the apiserver checks.
//!
//! One grammar, two gates, always in agreement:
//! - [`DURATION_PATTERN`] is what the apiserver accepts: a subset of Go's grammar with units
//!   `ms`, `s`, `m` and `h` only, at most nine digits on each side of a decimal point, no sign,
//!   no bare `0` and no `.5s` or `1.s` forms.
//! - [`Duration::to_std`] accepts exactly what the pattern accepts and parses it with Go's
//!   grammar (the `go-parse-duration` crate), so a value the apiserver stored always converts,
//!   to the same length Go would give it. Values over 2^62 ns (about 146 years) are
//!   rejected: the crate stops there, where Go stops at 2^63 ns.
//! - [`parse_go`] is the whole Go grammar (also `ns`, `us`, `+`, `0`, `.5s`) minus negative
//!   values, for inputs that do not come through the apiserver.

use std::{borrow::Cow, fmt, sync::LazyLock, time};

use regex::Regex;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Regular expression every [`Duration`] must match: one or more `<number><unit>` terms,
/// with units `ms`, `s`, `m` and `h` (a subset of Go's `time.ParseDuration`, which CEL's
/// `duration()` also reads).
pub const DURATION_PATTERN: &str = r"^([0-9]{1,9}(\.[0-9]{1,9})?(ms|s|m|h))+$";

/// Most digits in one number [`parse_go`] reads: the parser crate loops forever on longer
/// fractions, and no longer number fits in 2^62 ns anyway.
const MAX_DIGITS: usize = 18;

static PATTERN: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(DURATION_PATTERN).ok());

/// Parses `value` with Go's `time.ParseDuration` grammar (`300ms`, `1.5h`, `2h45m`, `1us`),
/// rejecting negative values.
///
/// The input is checked first to be ASCII (the micro sign of `µs` is refused: write `us`)
/// with at most 18 digits in a row, which keeps the parser crate clear of its panics.
pub fn parse_go(value: &str) -> Result<time::Duration, Error> {
    let invalid = || Error::InvalidDuration {
        value: value.to_string(),
    };
    let longest_digits = value
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if !value.is_ascii() || longest_digits > MAX_DIGITS {
        return Err(invalid());
    }
    let nanos = go_parse_duration::parse_duration(value).map_err(|_| invalid())?;
    u64::try_from(nanos)
        .map(time::Duration::from_nanos)
        .map_err(|_| Error::NegativeDuration {
            value: value.to_string(),
        })
}

/// Longest duration string accepted.
pub const DURATION_MAX_LENGTH: u32 = 32;

/// A length of time written like `500ms`, `30s`, `5m`, `1h30m` or `8760h`.
///
/// The apiserver checks the format; [`Duration::to_std`] converts it for use.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct Duration(String);

impl Duration {
    /// A duration from its string form, without checking it (the apiserver checks it).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The string form, as written by the user.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the string form into a [`std::time::Duration`], with Go's grammar.
    ///
    /// Fails on anything [`DURATION_PATTERN`] rejects (as the apiserver would), and on values
    /// too large to represent.
    pub fn to_std(&self) -> Result<time::Duration, Error> {
        if !PATTERN.as_ref().is_some_and(|p| p.is_match(&self.0)) {
            return Err(Error::InvalidDuration {
                value: self.0.clone(),
            });
        }
        parse_go(&self.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Duration {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl JsonSchema for Duration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": DURATION_MAX_LENGTH,
        })
    }
}

/// A CEL expression that is true when the duration fields at `paths` are well formed,
/// so a rule can guard `duration(...)` calls and leave bad formats to the pattern check.
pub(crate) fn cel_well_formed(paths: &[&str]) -> String {
    paths
        .iter()
        .map(|path| format!("{path}.matches(r'{DURATION_PATTERN}')"))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// A CEL rule: `smaller < larger` as durations, checked only when both are well formed.
pub(crate) fn cel_shorter_than(smaller: &str, larger: &str) -> String {
    format!(
        "!({}) || duration({smaller}) < duration({larger})",
        cel_well_formed(&[smaller, larger])
    )
}

#[cfg(test)]
mod tests;
