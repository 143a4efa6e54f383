//! A TCP relay that can be switched to blackhole traffic, for tests of what a component does
//! when its peer stops answering without closing the connection.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// Relays connections from [`Relay::addr`] to an upstream address until dropped.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    blackhole: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on `bind` (port 0 for any) and relays every connection to `upstream`.
    pub async fn start(bind: SocketAddr, upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind(bind).await.expect("bind the relay");
        let addr = listener.local_addr().expect("relay address");
        let (blackhole, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, rx.clone()));
            }
        });
        Self {
            addr,
            blackhole,
            task,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// While on, bytes in both directions are read and dropped, and new connections are
    /// accepted but never reach upstream: peers see silence, never a reset.
    pub fn set_blackhole(&self, on: bool) {
        self.blackhole.send_replace(on);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, blackhole: watch::Receiver<bool>) {
    if *blackhole.borrow() {
        swallow(client).await;
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, blackhole.clone()),
        pump(server_read, client_write, blackhole),
    );
}

/// Copies `from` to `to`, dropping what arrives while the blackhole is on.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blackhole: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if *blackhole.borrow() {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Reads and drops everything until the peer closes.
async fn swallow(mut client: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
}
