//! The transport header (`transport.l5d.io/v1`): names the target port and protocol of a
//! connection sent to a peer proxy's inbound port, after mTLS with that ALPN.
//!
//! Wire form: the preface `transport.l5d.io/v1\r\n\r\n`, a 4-byte big-endian length, then
//! the protobuf message `Header{port = 1 (int32), name = 2 (string), protocol = 3
//! (SessionProtocol{http1 = 1 | http2 = 2})}`, encoded with prost.

use std::io;

use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The ALPN protocol that announces a transport header.
pub const ALPN: &[u8] = b"transport.l5d.io/v1";
/// The bytes that start a header.
pub const PREFACE: &[u8] = b"transport.l5d.io/v1\r\n\r\n";
/// Largest header accepted.
pub const MAX_LEN: usize = 64 * 1024;

/// The session protocol a header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionProtocol {
    /// HTTP/1.
    Http1,
    /// HTTP/2.
    Http2,
}

/// A transport header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The target port on the peer.
    pub port: u16,
    /// A gateway target name, if any.
    pub name: Option<String>,
    /// The protocol, or `None` for opaque.
    pub protocol: Option<SessionProtocol>,
}

/// The protobuf messages of the header, as Linkerd's `transport.l5d.io` proto defines them.
mod wire {
    /// `Header`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Header {
        /// The target port.
        #[prost(int32, tag = "1")]
        pub(super) port: i32,
        /// A gateway target name; empty for none.
        #[prost(string, tag = "2")]
        pub(super) name: String,
        /// The session protocol; absent for opaque.
        #[prost(message, optional, tag = "3")]
        pub(super) session_protocol: Option<SessionProtocol>,
    }

    /// `SessionProtocol`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct SessionProtocol {
        /// Which protocol.
        #[prost(oneof = "Kind", tags = "1, 2")]
        pub(super) kind: Option<Kind>,
    }

    /// `SessionProtocol.kind`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(super) enum Kind {
        /// `http1 {}`.
        #[prost(message, tag = "1")]
        Http1(Empty),
        /// `http2 {}`.
        #[prost(message, tag = "2")]
        Http2(Empty),
    }

    /// An empty message.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub(super) struct Empty {}
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("transport header: {msg}"),
    )
}

impl Header {
    /// The protobuf encoding of the message (without preface and length).
    pub fn encode_message(&self) -> Vec<u8> {
        let kind = self.protocol.map(|p| match p {
            SessionProtocol::Http1 => wire::Kind::Http1(wire::Empty {}),
            SessionProtocol::Http2 => wire::Kind::Http2(wire::Empty {}),
        });
        wire::Header {
            port: i32::from(self.port),
            name: self.name.clone().unwrap_or_default(),
            session_protocol: kind.map(|kind| wire::SessionProtocol { kind: Some(kind) }),
        }
        .encode_to_vec()
    }

    /// Decodes the protobuf message, skipping unknown fields.
    pub fn decode_message(buf: &[u8]) -> io::Result<Self> {
        let msg = wire::Header::decode(buf).map_err(|e| invalid(&e.to_string()))?;
        let port = u16::try_from(msg.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid("no port, or a port out of range"))?;
        let protocol = match msg.session_protocol.and_then(|p| p.kind) {
            Some(wire::Kind::Http1(_)) => Some(SessionProtocol::Http1),
            Some(wire::Kind::Http2(_)) => Some(SessionProtocol::Http2),
            None => None,
        };
        Ok(Self {
            port,
            name: Some(msg.name).filter(|n| !n.is_empty()),
            protocol,
        })
    }

    /// Writes the preface, length and message to `io`.
    pub async fn write<T: AsyncWrite + Unpin>(&self, io: &mut T) -> io::Result<()> {
        let msg = self.encode_message();
        let mut out = PREFACE.to_vec();
        out.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&msg);
        io.write_all(&out).await?;
        io.flush().await
    }

    /// Reads a header from `io`.
    pub async fn read<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Self> {
        let mut preface = [0; PREFACE.len()];
        io.read_exact(&mut preface).await?;
        if preface != PREFACE {
            return Err(invalid("bad preface"));
        }
        let len = usize::try_from(io.read_u32().await?).map_err(|_| invalid("bad length"))?;
        if len > MAX_LEN {
            return Err(invalid("too long"));
        }
        let mut msg = vec![0; len];
        io.read_exact(&mut msg).await?;
        Self::decode_message(&msg)
    }
}

#[cfg(test)]
mod tests;
