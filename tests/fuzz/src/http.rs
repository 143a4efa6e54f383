//! Driving an HTTP entry point with fuzzed bytes: an in-process application on loopback for
//! the proxy to forward to, and a scripted client connection that delivers the bytes.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use parking_lot::{Mutex, MutexGuard};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::Notify,
};
use trellis_proxy::drain::Drain;

/// Inputs larger than this are skipped: they only fill buffers.
pub const MAX_INPUT: usize = 64 * 1024;

/// The HTTP/2 connection preface: inputs that start with it are served as HTTP/2, as
/// protocol detection would.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The address of an application (HTTP/1 and HTTP/2) that answers every request with `200`
/// and the size of its body, started on the fuzzing runtime on first use.
pub fn app() -> SocketAddr {
    static APP: OnceLock<SocketAddr> = OnceLock::new();
    *APP.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the app");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("app address");
        let runtime = crate::runtime();
        let _guard = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener).expect("app listener");
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(answer);
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        addr
    })
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<bytes::Bytes>>, Infallible> {
    let size = match req.into_body().collect().await {
        Ok(body) => body.to_bytes().len(),
        Err(_) => 0,
    };
    Ok(Response::new(Full::new(size.to_string().into())))
}

/// How long the server may stay silent, once it has read the whole input and been told to
/// drain, before the client closes its side.
const IDLE: Duration = Duration::from_millis(2);

/// Serves `data` as one client connection with `serve`, and returns what the server wrote.
///
/// A real client that shuts down its write side after its requests makes hyper drop them
/// unanswered, so the client here closes only once the server has read everything, been
/// told to drain (finishing in-flight requests, then closing) and gone quiet for [`IDLE`]:
/// a request still waiting for bytes then sees the end of the connection.
pub async fn exchange<F>(data: &[u8], serve: impl FnOnce(ScriptedIo, Drain) -> F) -> Vec<u8>
where
    F: Future<Output = ()>,
{
    let (io, script) = ScriptedIo::new(data);
    let drain = Drain::new();
    let served = serve(io, drain.clone());
    tokio::pin!(served);
    tokio::select! {
        () = &mut served => return script.output(),
        () = script.shared.exhausted.notified() => {}
    }
    drain.drain(Duration::ZERO).await;
    loop {
        let before = script.output().len();
        tokio::select! {
            () = &mut served => return script.output(),
            () = tokio::time::sleep(IDLE) => {}
        }
        if script.output().len() == before {
            break;
        }
    }
    script.end();
    served.await;
    script.output()
}

/// The server's side of a fuzzed connection: reads yield the input, then wait (the client
/// is silent) until [`Script::end`], then end; writes are kept.
#[derive(Debug)]
pub struct ScriptedIo {
    input: Bytes,
    shared: Arc<Shared>,
}

/// The client's handle on a [`ScriptedIo`].
#[derive(Debug)]
pub struct Script {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Notified when the server has read all input and waits for more.
    exhausted: Notify,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    ended: bool,
    reader: Option<Waker>,
    output: Vec<u8>,
}

impl ScriptedIo {
    fn new(data: &[u8]) -> (Self, Script) {
        let shared = Arc::new(Shared::default());
        let io = Self {
            input: Bytes::copy_from_slice(data),
            shared: shared.clone(),
        };
        (io, Script { shared })
    }
}

impl Script {
    /// What the server has written so far.
    fn output(&self) -> Vec<u8> {
        self.shared.state().output.clone()
    }

    /// Closes the client's side: the server's next read sees the end.
    fn end(&self) {
        let mut state = self.shared.state();
        state.ended = true;
        if let Some(reader) = state.reader.take() {
            reader.wake();
        }
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

impl AsyncRead for ScriptedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.input.is_empty() {
            let n = self.input.len().min(buf.remaining());
            let chunk = self.input.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        let mut state = self.shared.state();
        if state.ended {
            return Poll::Ready(Ok(()));
        }
        state.reader = Some(cx.waker().clone());
        drop(state);
        self.shared.exhausted.notify_one();
        Poll::Pending
    }
}

impl AsyncWrite for ScriptedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.shared.state().output.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Checks what an HTTP/1 server wrote: nothing, or responses starting with a status line
/// (HTTP/1.0 to HTTP/1.0 requests).
pub fn assert_http1_response(read: &[u8]) {
    assert!(
        read.is_empty() || read.starts_with(b"HTTP/1.1 ") || read.starts_with(b"HTTP/1.0 "),
        "an HTTP/1 connection got bytes that are not a response: {:?}",
        String::from_utf8_lossy(&read[..read.len().min(64)])
    );
}
