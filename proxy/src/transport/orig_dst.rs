//! The original destination of a redirected connection (`SO_ORIGINAL_DST`).

use std::{io, net::SocketAddr};

use nix::sys::socket::{SockaddrIn, SockaddrIn6, getsockopt, sockopt};
use tokio::net::TcpStream;

/// Where a listener learns each connection's original destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrigDst {
    /// `SO_ORIGINAL_DST` / `IP6T_SO_ORIGINAL_DST`, set by the iptables `REDIRECT` rules.
    Syscall,
    /// A fixed address, for in-process tests and runs without iptables.
    Fixed(SocketAddr),
}

impl OrigDst {
    /// The original destination of `stream`.
    pub fn get(&self, stream: &TcpStream) -> io::Result<SocketAddr> {
        match self {
            Self::Fixed(addr) => Ok(*addr),
            Self::Syscall => so_original_dst(stream),
        }
    }
}

/// Reads `SO_ORIGINAL_DST` (IPv4) or `IP6T_SO_ORIGINAL_DST` (IPv6) from `stream`.
pub fn so_original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    let local = stream.local_addr()?;
    let addr = if local.is_ipv4() {
        SocketAddr::from(SockaddrIn::from(getsockopt(stream, sockopt::OriginalDst)?))
    } else {
        SocketAddr::from(SockaddrIn6::from(getsockopt(
            stream,
            sockopt::Ip6tOriginalDst,
        )?))
    };
    Ok(addr)
}
