//! Endpoint labels, in the order the contract (section 14) lists them.

use std::net::SocketAddr;

/// A label set: ordered key/value pairs.
pub type Labels = Vec<(String, String)>;

/// The TLS state of a connection, as labelled on metrics.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TlsLabel {
    /// mTLS established; the peer's identity (client on inbound, server on outbound).
    Established {
        /// The peer's identity, if it had one.
        peer_id: Option<String>,
    },
    /// No TLS, for a reason such as `loopback`, `no_tls_from_remote`,
    /// `not_provided_by_service_discovery`.
    NoIdentity(&'static str),
    /// TLS passed through without termination, with the client's SNI.
    Opaque {
        /// The SNI the client asked for.
        sni: Option<String>,
    },
}

/// Direction of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Accepted on the inbound port, forwarded to the app.
    Inbound,
    /// Accepted from the app on the outbound port.
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// Builds the endpoint labels: `direction`, `target_addr`, `target_ip`, `target_port`, then
/// the TLS labels, then `extra` (`dst_*` on outbound, `srv_*` on inbound).
pub fn endpoint(
    direction: Direction,
    target: SocketAddr,
    tls: &TlsLabel,
    extra: &[(String, String)],
) -> Labels {
    let mut labels = vec![
        ("direction".to_string(), direction.as_str().to_string()),
        ("target_addr".to_string(), target.to_string()),
        ("target_ip".to_string(), target.ip().to_string()),
        ("target_port".to_string(), target.port().to_string()),
    ];
    push_tls(&mut labels, direction, tls);
    labels.extend(extra.iter().cloned());
    labels
}

fn push_tls(labels: &mut Labels, direction: Direction, tls: &TlsLabel) {
    let mut push = |k: &str, v: &str| labels.push((k.to_string(), v.to_string()));
    match tls {
        TlsLabel::Established { peer_id } => {
            push("tls", "true");
            let key = match direction {
                Direction::Inbound => "client_id",
                Direction::Outbound => "server_id",
            };
            push(key, peer_id.as_deref().unwrap_or(""));
        }
        TlsLabel::NoIdentity(reason) => {
            push("tls", "no_identity");
            push("no_tls_reason", reason);
        }
        TlsLabel::Opaque { sni } => {
            push("tls", "opaque");
            push("sni", sni.as_deref().unwrap_or(""));
        }
    }
}
