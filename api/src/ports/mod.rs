//! Port lists as Trellis writes them in env vars, init flags and annotations: comma-separated
//! ports and `a-b` ranges, e.g. `25,3306,8000-8002`.

#[cfg(test)]
mod tests;

use std::{collections::BTreeSet, str::FromStr};

/// A port list item that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPort {
    /// Not a number from 1 to 65535.
    #[error("{0:?} is not a port from 1 to 65535")]
    NotAPort(String),
    /// `a-b` with `a > b`.
    #[error("range {0:?} is backwards")]
    Backwards(String),
}

/// An inclusive range of ports (`lo == hi` for one port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
}

impl PortRange {
    /// The ports of the range.
    pub fn ports(self) -> std::ops::RangeInclusive<u16> {
        self.lo..=self.hi
    }
}

fn port(s: &str) -> Result<u16, InvalidPort> {
    let s = s.trim();
    s.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| InvalidPort::NotAPort(s.to_string()))
}

impl FromStr for PortRange {
    type Err = InvalidPort;

    /// `80` or `80-90`.
    fn from_str(s: &str) -> Result<Self, InvalidPort> {
        let (lo, hi) = match s.split_once('-') {
            Some((lo, hi)) => (port(lo)?, port(hi)?),
            None => (port(s)?, port(s)?),
        };
        if lo > hi {
            return Err(InvalidPort::Backwards(s.trim().to_string()));
        }
        Ok(Self { lo, hi })
    }
}

/// The ranges of a comma-separated list; blank items are skipped.
pub fn parse_ranges(raw: &str) -> Result<Vec<PortRange>, InvalidPort> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(PortRange::from_str)
        .collect()
}

/// Every port a comma-separated list names.
pub fn parse_set(raw: &str) -> Result<BTreeSet<u16>, InvalidPort> {
    Ok(parse_ranges(raw)?
        .into_iter()
        .flat_map(PortRange::ports)
        .collect())
}
