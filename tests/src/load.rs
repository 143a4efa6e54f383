//! A steady client for chaos tests: workers in a pod send HTTP/1 requests over keep-alive
//! connections, as an ordinary app would, and record every outcome, so a test can count what
//! failed around a fault and when traffic recovered.
//!
//! A request fails when it errors, gets a status other than `200`, or takes longer than
//! [`REQUEST_TIMEOUT`]; the worker then drops its connection and opens a new one.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::netns::PodNs;

/// A request that takes longer than this counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// One request's outcome.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// When it was sent.
    pub at: Instant,
    /// The app that answered (`app=<name>` in the body), or the failure.
    pub result: Result<String, String>,
}

/// What a window of the load saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Requests sent.
    pub sent: usize,
    /// Requests that failed.
    pub failed: usize,
    /// From the window's start to the first success after its last failure (`None` when
    /// nothing failed, `Some(window)` when nothing succeeded afterwards).
    pub recovered_after: Option<Duration>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} sent, {} failed", self.sent, self.failed)?;
        match self.recovered_after {
            Some(after) => write!(f, ", recovered after {:.2}s", after.as_secs_f64()),
            None => write!(f, ", nothing to recover from"),
        }
    }
}

/// Workers sending requests until [`Load::stop`]; see the module docs.
#[derive(Debug)]
pub struct Load {
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    stop: CancellationToken,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `workers` workers in `pod`, each sending `GET http://<host>/load` to `addr`
    /// every `interval`.
    pub fn start(
        pod: Arc<PodNs>,
        addr: SocketAddr,
        host: &str,
        workers: usize,
        interval: Duration,
    ) -> Self {
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let workers = (0..workers)
            .map(|_| {
                let worker = Worker {
                    pod: pod.clone(),
                    addr,
                    host: host.to_string(),
                    outcomes: outcomes.clone(),
                };
                tokio::spawn(worker.run(interval, stop.clone()))
            })
            .collect();
        Self {
            outcomes,
            stop,
            workers,
        }
    }

    /// Outcomes of the requests sent from `from` until now, in order.
    pub fn since(&self, from: Instant) -> Vec<Outcome> {
        let mut outcomes: Vec<_> = self
            .outcomes
            .lock()
            .iter()
            .filter(|o| o.at >= from)
            .cloned()
            .collect();
        outcomes.sort_by_key(|o| o.at);
        outcomes
    }

    /// What the requests sent from `from` until now saw.
    pub fn report(&self, from: Instant) -> Report {
        let outcomes = self.since(from);
        let last_failure = outcomes.iter().rposition(|o| o.result.is_err());
        let recovered_after = last_failure.map(|i| {
            outcomes[i + 1..]
                .iter()
                .find(|o| o.result.is_ok())
                .map_or(Instant::now(), |o| o.at)
                - from
        });
        Report {
            sent: outcomes.len(),
            failed: outcomes.iter().filter(|o| o.result.is_err()).count(),
            recovered_after,
        }
    }

    /// Waits until at least `n` requests sent from `from` have succeeded.
    pub async fn await_successes(&self, from: Instant, n: usize) {
        crate::eventually(
            &format!("{n} successful requests"),
            crate::DEFAULT_TIMEOUT,
            || async {
                let ok = self.since(from).iter().filter(|o| o.result.is_ok()).count();
                if ok >= n { Ok(()) } else { Err(ok) }
            },
        )
        .await;
    }

    /// Stops the workers, letting requests in flight finish.
    pub async fn stop(self) {
        self.stop.cancel();
        for worker in self.workers {
            let _ = worker.await;
        }
    }
}

struct Worker {
    pod: Arc<PodNs>,
    addr: SocketAddr,
    host: String,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
}

impl Worker {
    async fn run(self, interval: Duration, stop: CancellationToken) {
        let mut conn = None;
        while !stop.is_cancelled() {
            let at = Instant::now();
            let result = tokio::time::timeout(REQUEST_TIMEOUT, self.send(&mut conn))
                .await
                .unwrap_or_else(|_| Err(format!("no response within {REQUEST_TIMEOUT:?}")));
            if result.is_err() {
                conn = None;
            }
            self.outcomes.lock().push(Outcome { at, result });
            tokio::select! {
                () = tokio::time::sleep_until(at + interval) => {}
                () = stop.cancelled() => {}
            }
        }
    }

    /// Sends one request on `conn`, connecting first when there is none.
    async fn send(&self, conn: &mut Option<SendRequest<String>>) -> Result<String, String> {
        let send = match conn {
            Some(send) if !send.is_closed() => send,
            _ => conn.insert(self.connect().await?),
        };
        send.ready().await.map_err(|e| format!("connection: {e}"))?;
        let req = crate::proxy::get("/load", &self.host);
        let rsp = send
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = rsp.status();
        let body = rsp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        let body = String::from_utf8_lossy(&body);
        if status != http::StatusCode::OK {
            return Err(format!("status {status}: {body}"));
        }
        let app = body.rsplit_once(" app=").map_or("", |(_, app)| app);
        Ok(app.to_string())
    }

    async fn connect(&self) -> Result<SendRequest<String>, String> {
        let stream = self
            .pod
            .connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        Ok(send)
    }
}
