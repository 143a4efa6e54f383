//! Control-plane discovery settings: the destination and policy controllers, what is
//! looked up, and how long control streams may run.

use std::time::Duration;

use ipnet::IpNet;

pub use crate::transport::control_addr::ControlAddr;

use super::{
    ENV_CONTROL_STREAM_IDLE_TIMEOUT, ENV_CONTROL_STREAM_INITIAL_TIMEOUT,
    ENV_CONTROL_STREAM_LIFETIME, ENV_DESTINATION_CONTEXT, ENV_DESTINATION_PROFILE_NETWORKS,
    ENV_DESTINATION_PROFILE_SUFFIXES, ENV_DESTINATION_SVC_ADDR, ENV_DESTINATION_SVC_NAME,
    ENV_POLICY_SVC_ADDR, ENV_POLICY_SVC_NAME, ENV_POLICY_WORKLOAD, Error, Source,
    parse::{check_dns_name, get, invalid, list, opt_duration, parse_net, required},
};

/// Default profile lookup suffixes.
pub const DEFAULT_PROFILE_SUFFIXES: &str = "svc.cluster.local.";

/// Control-stream timing; `None` means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlStreamConfig {
    /// Deadline for a stream's first message.
    pub initial_timeout: Option<Duration>,
    /// Restart a stream after this long without a message.
    pub idle_timeout: Option<Duration>,
    /// Restart a stream after this long.
    pub lifetime: Option<Duration>,
}

/// Destination lookups: the controller, the context token, and which targets get profiles.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Destination {
    pub(super) addr: ControlAddr,
    pub(super) context: String,
    pub(super) profile_networks: Vec<IpNet>,
    pub(super) profile_suffixes: Vec<String>,
}

impl Destination {
    pub(super) fn parse(env: &dyn Source) -> Result<Self, Error> {
        Ok(Self {
            addr: control_addr(env, ENV_DESTINATION_SVC_ADDR, ENV_DESTINATION_SVC_NAME)?,
            context: get(env, ENV_DESTINATION_CONTEXT).unwrap_or_default(),
            profile_networks: list(env, ENV_DESTINATION_PROFILE_NETWORKS, parse_net)?,
            profile_suffixes: match get(env, ENV_DESTINATION_PROFILE_SUFFIXES) {
                Some(_) => list(env, ENV_DESTINATION_PROFILE_SUFFIXES, |s| {
                    Ok::<_, String>(s.to_string())
                })?,
                None => vec![DEFAULT_PROFILE_SUFFIXES.to_string()],
            },
        })
    }
}

/// The policy controller and the workload this proxy names in lookups.
pub(super) fn policy(env: &dyn Source) -> Result<(ControlAddr, String), Error> {
    Ok((
        control_addr(env, ENV_POLICY_SVC_ADDR, ENV_POLICY_SVC_NAME)?,
        required(env, ENV_POLICY_WORKLOAD)?,
    ))
}

impl ControlStreamConfig {
    pub(super) fn parse(env: &dyn Source) -> Result<Self, Error> {
        Ok(Self {
            initial_timeout: opt_duration(env, ENV_CONTROL_STREAM_INITIAL_TIMEOUT)?,
            idle_timeout: opt_duration(env, ENV_CONTROL_STREAM_IDLE_TIMEOUT)?,
            lifetime: opt_duration(env, ENV_CONTROL_STREAM_LIFETIME)?,
        })
    }
}

/// The controller at `addr_var`, proving the identity in `name_var` (needed unless the
/// address is loopback).
pub(super) fn control_addr(
    env: &dyn Source,
    addr_var: &'static str,
    name_var: &'static str,
) -> Result<ControlAddr, Error> {
    let raw = required(env, addr_var)?;
    let (host, port) = split_host_port(&raw).map_err(|reason| invalid(addr_var, &raw, reason))?;
    let addr = ControlAddr {
        host,
        port,
        identity: get(env, name_var),
    };
    match &addr.identity {
        None if !addr.is_loopback() => return Err(Error::Missing { name: name_var }),
        None => {}
        Some(id) => check_dns_name(name_var, id)?,
    }
    Ok(addr)
}

fn split_host_port(raw: &str) -> Result<(String, u16), String> {
    const EXPECTED: &str = "expected host:port, e.g. dst.trellis-system.svc.cluster.local.:8086";
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or(EXPECTED)?;
        (h, p)
    } else {
        raw.rsplit_once(':').ok_or(EXPECTED)?
    };
    if host.is_empty() || (host.contains(':') && !raw.starts_with('[')) {
        return Err(EXPECTED.into());
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {port:?} must be a number from 1 to 65535"))?;
    Ok((host.to_string(), port))
}
