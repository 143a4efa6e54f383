//! Gateway API durations (GEP-2257): one to four `<number><unit>` terms, units `h`, `m`, `s`
//! and `ms`, numbers of at most five digits, like `10s`, `500ms` or `1h30m`.

use std::{sync::LazyLock, time};

use regex::Regex;

use crate::{common::duration::parse_go, error::Error};

/// The format GEP-2257 defines (and the upstream CRDs check).
pub const GATEWAY_DURATION_PATTERN: &str = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$";

static PATTERN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(GATEWAY_DURATION_PATTERN).ok());

/// Parses a Gateway API duration.
pub fn parse(value: &str) -> Result<time::Duration, Error> {
    if !PATTERN.as_ref().is_some_and(|p| p.is_match(value)) {
        return Err(Error::InvalidDuration {
            value: value.to_string(),
        });
    }
    parse_go(value)
}
