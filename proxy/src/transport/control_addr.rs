//! Control-plane addresses: a host, a port and the identity the server must prove.

use std::net::IpAddr;

/// A control-plane address and the identity its server must prove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlAddr {
    /// Host (DNS name or IP, without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// The server's identity; `None` only for loopback (plaintext) addresses.
    pub identity: Option<String>,
}

impl ControlAddr {
    /// True when the address is loopback and so plaintext: `127.0.0.0/8`, `::1`, or
    /// `localhost.` with the trailing dot.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    /// `host:port`, with brackets around an IPv6 host.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn is_loopback_host(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost.",
    }
}
