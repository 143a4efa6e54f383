//! Inbound policy enforcement: whether a peer may reach a server under its port's policy.
//!
//! Policies are `trellis_api::inbound` types: the configured default until the controller
//! answers, then what `WatchPort` sends (converted by `trellis-api`); a message that breaks
//! the contract becomes [`invalid`], which denies everything.

use std::{net::IpAddr, time::Duration};

pub use trellis_api::inbound::{
    Authorization, ClientAuthentication, DefaultPolicy, InboundRoute, Meta, Protocol, ServerPolicy,
};

/// The TLS state of an inbound connection, as policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientTls {
    /// No TLS terminated by this proxy.
    None,
    /// mTLS terminated; the client's identity if it presented a certificate.
    Established(Option<String>),
}

/// Why a connection or request was refused.
#[derive(Debug, thiserror::Error)]
#[error("unauthorized connection from {client_ip} to server {server}")]
pub struct Unauthorized {
    /// The client's IP.
    pub client_ip: IpAddr,
    /// The server's name label.
    pub server: String,
}

/// `policy`, detecting with `timeout` (the configured inbound detect timeout) when it
/// detects at all.
pub fn with_detect_timeout(mut policy: ServerPolicy, timeout: Duration) -> ServerPolicy {
    if let Protocol::Detect { timeout: t } = &mut policy.protocol {
        *t = timeout;
    }
    policy
}

/// A policy that denies everything, installed when the controller sends an invalid one.
pub fn invalid() -> ServerPolicy {
    ServerPolicy {
        meta: Meta::Default("invalid".to_string()),
        protocol: Protocol::Opaque,
        authorizations: Vec::new(),
        routes: Vec::new(),
    }
}

/// The authorization of `policy` that admits this client, if any. `127.0.0.1` and `::1` are
/// always admitted (the implicit localhost authorization), with no authorization to label.
pub fn authorize<'p>(
    policy: &'p ServerPolicy,
    client_ip: IpAddr,
    tls: &ClientTls,
) -> Result<Option<&'p Authorization>, Unauthorized> {
    if client_ip == IpAddr::from([127, 0, 0, 1])
        || client_ip == IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
    {
        return Ok(None);
    }
    policy
        .authorizations
        .iter()
        .find(|a| admits(a, client_ip, tls))
        .map(Some)
        .ok_or_else(|| Unauthorized {
            client_ip,
            server: policy.meta.name().to_string(),
        })
}

/// As [`authorize`], for a request on `route`: the route's authorizations admit too.
pub fn authorize_on_route<'p>(
    policy: &'p ServerPolicy,
    route: Option<&'p InboundRoute>,
    client_ip: IpAddr,
    tls: &ClientTls,
) -> Result<Option<&'p Authorization>, Unauthorized> {
    authorize(policy, client_ip, tls).or_else(|denied| {
        route
            .and_then(|r| r.authorizations.iter().find(|a| admits(a, client_ip, tls)))
            .map(Some)
            .ok_or(denied)
    })
}

fn admits(authz: &Authorization, client_ip: IpAddr, tls: &ClientTls) -> bool {
    let in_network = authz
        .networks
        .iter()
        .any(|n| n.net.contains(&client_ip) && !n.except.iter().any(|e| e.contains(&client_ip)));
    in_network && authenticates(&authz.authentication, tls)
}

fn authenticates(authn: &ClientAuthentication, tls: &ClientTls) -> bool {
    match (authn, tls) {
        (ClientAuthentication::Unauthenticated, _) => true,
        (ClientAuthentication::TlsUnauthenticated, ClientTls::Established(_)) => true,
        (
            ClientAuthentication::MeshTls {
                identities,
                suffixes,
            },
            ClientTls::Established(Some(id)),
        ) => {
            identities.iter().any(|i| i == id)
                || suffixes.iter().any(|parts| suffix_matches(parts, id))
        }
        _ => false,
    }
}

fn suffix_matches(parts: &[String], id: &str) -> bool {
    if parts.is_empty() {
        return true;
    }
    let labels: Vec<&str> = id.split('.').collect();
    labels.len() >= parts.len()
        && labels
            .iter()
            .rev()
            .zip(parts.iter().rev())
            .all(|(l, p)| *l == p)
}

#[cfg(test)]
mod tests;
