//! Durations written as strings (`30s`, `1h30m`), validated by pattern at the apiserver.

use std::{borrow::Cow, fmt, time};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Regular expression every [`Duration`] must match: one or more `<number><unit>` terms,
/// with units `ms`, `s`, `m` and `h` (a subset of Go's `time.ParseDuration`, which CEL's
/// `duration()` also reads).
pub const DURATION_PATTERN: &str = r"^([0-9]{1,9}(\.[0-9]{1,9})?(ms|s|m|h))+$";

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

    /// Parses the string form into a [`std::time::Duration`].
    ///
    /// Fails on anything [`DURATION_PATTERN`] rejects, and on values too large to represent.
    pub fn to_std(&self) -> Result<time::Duration, Error> {
        let invalid = || Error::InvalidDuration {
            value: self.0.clone(),
        };
        let mut rest = self.0.as_str();
        if rest.is_empty() {
            return Err(invalid());
        }
        let mut total = time::Duration::ZERO;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(invalid)?;
            let (number, after) = rest.split_at(number_len);
            let unit_len = after
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_len);
            let seconds_per_unit = match unit {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(invalid()),
            };
            if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
                return Err(invalid());
            }
            let value: f64 = number.parse().map_err(|_| invalid())?;
            let term = time::Duration::try_from_secs_f64(value * seconds_per_unit)
                .map_err(|_| invalid())?;
            total = total.checked_add(term).ok_or_else(invalid)?;
            rest = after;
        }
        Ok(total)
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
