//! TCP golden metrics: connections opened, closed and open, and bytes each way.

use std::io;

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::{InspectReader, InspectWriter};

use super::Labels;

families! {
    /// The TCP families; labels are the endpoint labels plus `peer` (`src` or `dst`).
    pub struct TcpMetrics {
        open_total: Counter => "tcp_open", "Connections opened";
        close_total: Counter => "tcp_close", "Connections closed";
        open_connections: Gauge => "tcp_open_connections", "Connections currently open";
        read_bytes_total: Counter => "tcp_read_bytes", "Bytes read from peers";
        write_bytes_total: Counter => "tcp_write_bytes", "Bytes written to peers";
    }
}

impl TcpMetrics {
    /// Records an opened connection; the returned guard records the close when dropped.
    /// `peer` is `src` for the accepted side and `dst` for the connecting side.
    pub fn open(&self, peer: &'static str, mut labels: Labels) -> TcpConn {
        labels.insert(1, ("peer".to_string(), peer.to_string()));
        self.open_total.get_or_create(&labels).inc();
        self.open_connections.get_or_create(&labels).inc();
        TcpConn {
            read: self.read_bytes_total.get_or_create(&labels).clone(),
            write: self.write_bytes_total.get_or_create(&labels).clone(),
            metrics: self.clone(),
            labels,
            errno: None,
        }
    }
}

/// One open connection's metrics; records the close when dropped.
#[derive(Debug)]
pub struct TcpConn {
    metrics: TcpMetrics,
    labels: Labels,
    read: Counter,
    write: Counter,
    errno: Option<i32>,
}

impl TcpConn {
    /// Marks the connection as closed by an error (its errno is labelled on the close).
    pub fn set_error(&mut self, error: &io::Error) {
        self.errno = error.raw_os_error().or(Some(0));
    }
}

impl Drop for TcpConn {
    fn drop(&mut self) {
        self.metrics
            .open_connections
            .get_or_create(&self.labels)
            .dec();
        let mut labels = self.labels.clone();
        let errno = self.errno.map(|e| e.to_string()).unwrap_or_default();
        labels.push(("errno".to_string(), errno));
        self.metrics.close_total.get_or_create(&labels).inc();
    }
}

/// Counts the bytes read from and written to `io` on `conn`'s metrics.
pub fn counted<T>(io: T, conn: &TcpConn) -> impl AsyncRead + AsyncWrite + Unpin + use<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (read, write) = (conn.read.clone(), conn.write.clone());
    let io = InspectReader::new(io, move |bytes: &[u8]| {
        read.inc_by(bytes.len() as u64);
    });
    InspectWriter::new(io, move |bytes: &[u8]| {
        write.inc_by(bytes.len() as u64);
    })
}
