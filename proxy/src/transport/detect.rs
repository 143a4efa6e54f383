//! Protocol detection: reads a bounded prefix, with a timeout, and classifies the connection.
//!
//! HTTP/2 is recognised by its connection preface, HTTP/1 by a request line ending in
//! `HTTP/1.0` or `HTTP/1.1`, TLS by a ClientHello record (whose SNI is extracted), and anything
//! else is opaque. A peer that sends nothing before the timeout (a server-speaks-first
//! protocol) is opaque too. The bytes read are replayed through [`PrefixedIo`].

use std::{io, time::Duration};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::PrefixedIo;

/// Most bytes detection reads before it gives up and calls the connection opaque.
pub const MAX_DETECT_BYTES: usize = 8 * 1024;

/// The HTTP/2 connection preface.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const TLS_HANDSHAKE: u8 = 0x16;
const TLS_CLIENT_HELLO: u8 = 0x01;
const TLS_RECORD_HEADER: usize = 5;
const TLS_EXT_SERVER_NAME: u16 = 0;

/// The protocol a connection speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or HTTP/1.1.
    Http1,
    /// HTTP/2 with prior knowledge (gRPC included).
    Http2,
    /// A TLS ClientHello, with its SNI if it sent one.
    Tls {
        /// The server name the client asked for.
        sni: Option<String>,
    },
    /// Anything else.
    Opaque,
}

impl Protocol {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Http1 => "http/1",
            Self::Http2 => "http/2",
            Self::Tls { .. } => "tls",
            Self::Opaque => "opaque",
        }
    }
}

/// What a prefix says so far.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Done(Protocol),
    NeedMore,
}

/// Reads from `io` until the protocol is known, [`MAX_DETECT_BYTES`] have been read, the peer
/// stops sending, or `timeout` passes; returns the protocol and `io` with the bytes replayed.
pub async fn detect<T: AsyncRead + Unpin>(
    mut io: T,
    timeout: Duration,
) -> io::Result<(Protocol, PrefixedIo<T>)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = BytesMut::with_capacity(1024);
    let protocol = loop {
        if let Decision::Done(p) = classify(&buf) {
            break p;
        }
        if buf.len() >= MAX_DETECT_BYTES {
            break Protocol::Opaque;
        }
        // Never read past the bound.
        let mut chunk = (&mut io).take((MAX_DETECT_BYTES - buf.len()) as u64);
        match tokio::time::timeout_at(deadline, chunk.read_buf(&mut buf)).await {
            Err(_elapsed) => {
                tracing::debug!(read = buf.len(), "Protocol detection timed out");
                break Protocol::Opaque;
            }
            Ok(Ok(0)) => break Protocol::Opaque,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    };
    Ok((protocol, PrefixedIo::new(buf.freeze(), io)))
}

fn classify(buf: &[u8]) -> Decision {
    let Some(&first) = buf.first() else {
        return Decision::NeedMore;
    };
    if first == TLS_HANDSHAKE {
        return classify_tls(buf);
    }
    let n = buf.len().min(H2_PREFACE.len());
    if buf.get(..n) == H2_PREFACE.get(..n) {
        return if buf.len() >= H2_PREFACE.len() {
            Decision::Done(Protocol::Http2)
        } else {
            Decision::NeedMore
        };
    }
    classify_http1(buf)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn classify_http1(buf: &[u8]) -> Decision {
    // The method must be a token: fail fast on binary protocols.
    let method_end = buf.iter().position(|b| *b == b' ').unwrap_or(buf.len());
    if !buf
        .get(..method_end)
        .unwrap_or_default()
        .iter()
        .all(|b| is_tchar(*b))
    {
        return Decision::Done(Protocol::Opaque);
    }
    let Some(eol) = buf.iter().position(|b| *b == b'\n') else {
        return Decision::NeedMore;
    };
    let line = buf.get(..eol).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|b| *b == b' ');
    let ok = matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(method), Some(target), Some(b"HTTP/1.1" | b"HTTP/1.0"), None)
            if !method.is_empty() && !target.is_empty()
    );
    Decision::Done(if ok {
        Protocol::Http1
    } else {
        Protocol::Opaque
    })
}

fn classify_tls(buf: &[u8]) -> Decision {
    let Some(header) = buf.get(..TLS_RECORD_HEADER) else {
        // Check what we have so far is plausible.
        return match buf.get(1) {
            Some(&major) if major != 0x03 => Decision::Done(Protocol::Opaque),
            _ => Decision::NeedMore,
        };
    };
    let [_, major, minor, len_hi, len_lo] = header else {
        return Decision::Done(Protocol::Opaque);
    };
    if *major != 0x03 || *minor > 0x04 {
        return Decision::Done(Protocol::Opaque);
    }
    let record_len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
    match buf.get(TLS_RECORD_HEADER) {
        None => return Decision::NeedMore,
        Some(&TLS_CLIENT_HELLO) => {}
        Some(_) => return Decision::Done(Protocol::Opaque),
    }
    if TLS_RECORD_HEADER + record_len > MAX_DETECT_BYTES {
        // Too large to parse within the bound: TLS without a known SNI.
        return Decision::Done(Protocol::Tls { sni: None });
    }
    match buf.get(TLS_RECORD_HEADER..TLS_RECORD_HEADER + record_len) {
        None => Decision::NeedMore,
        Some(hello) => Decision::Done(Protocol::Tls {
            sni: client_hello_sni(hello),
        }),
    }
}

/// A cursor over a byte slice whose reads fail instead of panicking.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let head = self.0.get(..n)?;
        self.0 = self.0.get(n..)?;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// The `server_name` of a ClientHello handshake message (starting at its type byte).
fn client_hello_sni(hello: &[u8]) -> Option<String> {
    let mut c = Cursor(hello);
    c.take(1 + 3)?; // type, length
    c.take(2 + 32)?; // legacy version, random
    c.vec8()?; // session id
    c.vec16()?; // cipher suites
    c.vec8()?; // compression methods
    let mut exts = Cursor(c.vec16()?);
    while let Some(kind) = exts.u16() {
        let data = exts.vec16()?;
        if kind != TLS_EXT_SERVER_NAME {
            continue;
        }
        let mut list = Cursor(data);
        let mut names = Cursor(list.vec16()?);
        while let Some(name_type) = names.u8() {
            let name = names.vec16()?;
            if name_type == 0 {
                return std::str::from_utf8(name).ok().map(str::to_string);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
