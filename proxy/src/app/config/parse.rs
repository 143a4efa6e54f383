//! Parsers shared by the settings files: each reads one variable and names it in its error.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use ipnet::IpNet;
use trellis_api::ports;

use super::{Error, Source};

pub(super) fn invalid(name: &'static str, value: &str, reason: String) -> Error {
    Error::Invalid {
        name,
        value: value.to_string(),
        reason,
    }
}

/// A set, non-blank value (trimmed).
pub(super) fn get(env: &dyn Source, name: &'static str) -> Option<String> {
    env.get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

pub(super) fn required(env: &dyn Source, name: &'static str) -> Result<String, Error> {
    get(env, name).ok_or(Error::Missing { name })
}

pub(super) fn check_dns_name(name: &'static str, value: &str) -> Result<(), Error> {
    let ok = value.len() <= 253
        && value.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(name, value, "must be a DNS name".into()))
    }
}

/// A listen address on the IPv4 loopback address only.
pub(super) const fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// A listen address on every IPv4 address.
pub(super) const fn unspecified(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}

pub(super) fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .map_err(|_| format!("{s:?} is not an ip:port socket address"))
}

pub(super) fn socket_addr_or(
    env: &dyn Source,
    name: &'static str,
    default: SocketAddr,
) -> Result<SocketAddr, Error> {
    match get(env, name) {
        None => Ok(default),
        Some(v) => parse_socket_addr(&v).map_err(|reason| invalid(name, &v, reason)),
    }
}

pub(super) fn list<T, E: std::fmt::Display>(
    env: &dyn Source,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, Error> {
    let Some(raw) = get(env, name) else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse(s).map_err(|e| invalid(name, &raw, e.to_string())))
        .collect()
}

pub(super) fn port_set(env: &dyn Source, name: &'static str) -> Result<BTreeSet<u16>, Error> {
    match get(env, name) {
        None => Ok(BTreeSet::new()),
        Some(v) => ports::parse_set(&v).map_err(|e| invalid(name, &v, e.to_string())),
    }
}

/// Parses a duration in Go's `time.ParseDuration` grammar (`250ms`, `1.5s`, `1h30m`), as
/// Kubernetes writes them, or as whole days `<n>d` (the injector's `365d`, as in Linkerd's
/// proxy). Negative durations are rejected.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    if let Some(days) = raw.strip_suffix('d')
        && !days.is_empty()
        && days.bytes().all(|b| b.is_ascii_digit())
    {
        return days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(24 * 60 * 60))
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{raw:?} is too large"));
    }
    // The parser indexes bytes as characters and panics on non-ASCII input ("1µs"), and
    // loops without end on a run of 19 or more digits (as the CRDs' `parse_go` also guards).
    if !raw.is_ascii() {
        return Err(format!("{raw:?} is not ASCII; write us for microseconds"));
    }
    let longest_digits = raw
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if longest_digits > 18 {
        return Err(format!("{raw:?} has more than 18 digits in a row"));
    }
    let nanos = go_parse_duration::parse_duration(raw).map_err(
        |go_parse_duration::Error::ParseError(reason)| {
            format!("{reason}; write a number with a unit (ns, us, ms, s, m, h; or d), e.g. 10s or 1m30s")
        },
    )?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| format!("{raw:?} is negative; durations must be zero or more"))
}

pub(super) fn opt_duration(
    env: &dyn Source,
    name: &'static str,
) -> Result<Option<Duration>, Error> {
    get(env, name)
        .map(|v| parse_duration(&v).map_err(|reason| invalid(name, &v, reason)))
        .transpose()
}

pub(super) fn duration_or(
    env: &dyn Source,
    name: &'static str,
    default: Duration,
) -> Result<Duration, Error> {
    Ok(opt_duration(env, name)?.unwrap_or(default))
}

pub(super) fn bool_or(env: &dyn Source, name: &'static str, default: bool) -> Result<bool, Error> {
    match get(env, name).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(invalid(name, v, "must be true or false".into())),
    }
}

/// Parses an IP network in CIDR form; a bare address is a network of one address.
pub(super) fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    match s.split_once('/') {
        None => s
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("{s:?} is not an IP address")),
        Some((addr, prefix)) => {
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{addr:?} is not an IP address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            Err(format!(
                "prefix {prefix:?} must be a number from 0 to {max}"
            ))
        }
    }
}
