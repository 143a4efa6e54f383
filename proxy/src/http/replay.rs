//! Request bodies that can be sent again: a [`Replay`] reads the client's body as the first
//! try sends it, keeps what it read (up to a limit), and lets a retry send the same bytes
//! and then go on reading the client where the earlier try stopped.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Either;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use parking_lot::Mutex;

use crate::error::Error;

/// An outbound request body: the client's, or a replayable one.
pub type ReqBody = Either<Incoming, Replay>;

#[derive(Debug)]
struct Shared {
    /// Data frames read so far, in order (cleared once over the limit).
    frames: Vec<Bytes>,
    len: usize,
    trailers: Option<HeaderMap>,
    rest: Incoming,
    ended: bool,
    /// The try that read past the limit: the body can no longer be replayed, and only that
    /// try may go on.
    overflowed_by: Option<u64>,
    next_id: u64,
}

/// One try's view of a shared, recorded request body.
#[derive(Debug)]
pub struct Replay {
    shared: Arc<Mutex<Shared>>,
    id: u64,
    /// Recorded frames this try has sent.
    sent: usize,
    trailers_sent: bool,
    max: usize,
    size_hint: SizeHint,
}

impl Replay {
    /// Records `body` for replay while it stays within `max` bytes.
    pub fn new(body: Incoming, max: usize) -> Self {
        let size_hint = body.size_hint();
        Self {
            shared: Arc::new(Mutex::new(Shared {
                frames: Vec::new(),
                len: 0,
                trailers: None,
                rest: body,
                ended: false,
                overflowed_by: None,
                next_id: 1,
            })),
            id: 0,
            sent: 0,
            trailers_sent: false,
            max,
            size_hint,
        }
    }

    /// A body for the next try, sending what was read so far and then the rest; `None`
    /// when the body was larger than the limit.
    pub fn replay(&self) -> Option<Self> {
        let mut s = self.shared.lock();
        if s.overflowed_by.is_some() {
            return None;
        }
        let id = s.next_id;
        s.next_id += 1;
        Some(Self {
            shared: self.shared.clone(),
            id,
            sent: 0,
            trailers_sent: false,
            max: self.max,
            size_hint: self.size_hint,
        })
    }
}

impl Body for Replay {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        let mut s = this.shared.lock();
        match s.overflowed_by {
            Some(by) if by != this.id => {
                return Poll::Ready(Some(Err("request body too large to replay".into())));
            }
            _ => {}
        }
        if let Some(frame) = s.frames.get(this.sent) {
            this.sent += 1;
            return Poll::Ready(Some(Ok(Frame::data(frame.clone()))));
        }
        if s.ended {
            if !this.trailers_sent {
                this.trailers_sent = true;
                if let Some(trailers) = s.trailers.clone() {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
            }
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut s.rest).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                s.ended = true;
                this.trailers_sent = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        match frame.into_data() {
            Ok(data) => {
                if s.overflowed_by.is_none() {
                    if s.len + data.len() <= this.max {
                        s.len += data.len();
                        s.frames.push(data.clone());
                        this.sent = s.frames.len();
                    } else {
                        s.overflowed_by = Some(this.id);
                        s.frames.clear();
                        this.sent = 0;
                    }
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Err(frame) => {
                let trailers = frame.into_trailers().ok();
                s.ended = true;
                s.trailers = trailers.clone();
                this.trailers_sent = true;
                Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let s = self.shared.lock();
        s.ended && self.sent >= s.frames.len() && (self.trailers_sent || s.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        self.size_hint
    }
}
