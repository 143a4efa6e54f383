//! The transport header (`transport.l5d.io/v1`): names the target port and protocol of a
//! connection sent to a peer proxy's inbound port, after mTLS with that ALPN.
//!
//! Wire form: the preface `transport.l5d.io/v1\r\n\r\n`, a 4-byte big-endian length, then
//! the protobuf message `Header{port = 1 (int32), name = 2 (string), protocol = 3
//! (SessionProtocol{http1 = 1 | http2 = 2})}`, encoded here by hand.

use std::io;

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

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
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
        let mut out = Vec::new();
        out.push(0x08);
        put_varint(&mut out, u64::from(self.port));
        if let Some(name) = &self.name {
            out.push(0x12);
            put_varint(&mut out, name.len() as u64);
            out.extend_from_slice(name.as_bytes());
        }
        if let Some(p) = self.protocol {
            let field = match p {
                SessionProtocol::Http1 => 0x0a,
                SessionProtocol::Http2 => 0x12,
            };
            out.extend_from_slice(&[0x1a, 2, field, 0]);
        }
        out
    }

    /// Decodes the protobuf message, skipping unknown fields.
    pub fn decode_message(mut buf: &[u8]) -> io::Result<Self> {
        let mut header = Self {
            port: 0,
            name: None,
            protocol: None,
        };
        while !buf.is_empty() {
            let key = get_varint(&mut buf).ok_or_else(|| invalid("bad key"))?;
            let (field, wire) = (key >> 3, key & 7);
            match wire {
                0 => {
                    let v = get_varint(&mut buf).ok_or_else(|| invalid("bad varint"))?;
                    if field == 1 {
                        header.port = u16::try_from(v).map_err(|_| invalid("port out of range"))?;
                    }
                }
                2 => {
                    let len = get_varint(&mut buf).ok_or_else(|| invalid("bad length"))?;
                    let len = usize::try_from(len).map_err(|_| invalid("bad length"))?;
                    let value = buf.get(..len).ok_or_else(|| invalid("truncated"))?;
                    buf = buf.get(len..).unwrap_or_default();
                    match field {
                        2 => {
                            let name = std::str::from_utf8(value)
                                .map_err(|_| invalid("name is not UTF-8"))?;
                            header.name = (!name.is_empty()).then(|| name.to_string());
                        }
                        3 => {
                            let mut inner = value;
                            let key =
                                get_varint(&mut inner).ok_or_else(|| invalid("bad protocol"))?;
                            header.protocol = match key >> 3 {
                                1 => Some(SessionProtocol::Http1),
                                2 => Some(SessionProtocol::Http2),
                                _ => None,
                            };
                        }
                        _ => {}
                    }
                }
                1 => buf = buf.get(8..).ok_or_else(|| invalid("truncated"))?,
                5 => buf = buf.get(4..).ok_or_else(|| invalid("truncated"))?,
                _ => return Err(invalid("unsupported wire type")),
            }
        }
        if header.port == 0 {
            return Err(invalid("no port"));
        }
        Ok(header)
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
mod tests {
    use super::*;

    #[tokio::test]
    async fn headers_roundtrip() {
        for header in [
            Header {
                port: 8080,
                name: None,
                protocol: None,
            },
            Header {
                port: 1,
                name: Some("web.shop.svc.cluster.local".into()),
                protocol: Some(SessionProtocol::Http1),
            },
            Header {
                port: 65535,
                name: None,
                protocol: Some(SessionProtocol::Http2),
            },
        ] {
            let mut buf = Vec::new();
            header.write(&mut buf).await.unwrap();
            assert!(buf.starts_with(PREFACE));
            let read = Header::read(&mut buf.as_slice()).await.unwrap();
            assert_eq!(read, header);
        }
    }

    #[test]
    fn known_encoding_and_bad_input() {
        // port 4143, http2: field 1 varint, field 3 { field 2 {} }.
        let h = Header {
            port: 4143,
            name: None,
            protocol: Some(SessionProtocol::Http2),
        };
        assert_eq!(
            h.encode_message(),
            vec![0x08, 0xaf, 0x20, 0x1a, 0x02, 0x12, 0x00]
        );
        assert!(Header::decode_message(&[]).is_err());
        assert!(Header::decode_message(&[0x08, 0xff, 0xff, 0x04]).is_err());
        assert!(Header::decode_message(&[0x12, 0x05, b'a']).is_err());
    }
}
