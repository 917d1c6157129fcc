//! A response body as a faulty network or proxy delivers it: held back in a buffer,
//! paced, or cut (see [`super::Session`]). The bytes are the same and so is their
//! total length (the `Content-Length` of a poll's answer is kept); only when they
//! leave changes, or whether the rest leaves at all.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::{Body, Bytes, HttpBody};
use bytes::BytesMut;
use hyper::body::{Frame, SizeHint};
use tokio::time::{Sleep, sleep};

use super::Session;

pin_project_lite::pin_project! {
    pub struct Faulty {
        #[pin]
        body: Body,
        session: Session,
        // Bytes waiting out their pace.
        held: Option<(Bytes, Pin<Box<Sleep>>)>,
        // A buffering proxy's buffer, and how full it must be before it sends.
        buffer: Option<(usize, BytesMut)>,
        // The wrapped body has ended.
        done: bool,
    }
}

impl Faulty {
    pub fn new(body: Body, session: Session) -> Self {
        let buffer = session
            .faults()
            .buffer_bytes
            .map(|size| (size, BytesMut::new()));
        Self {
            body,
            session,
            held: None,
            buffer,
            done: false,
        }
    }
}

impl HttpBody for Faulty {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut this = self.project();
        loop {
            if let Poll::Ready(ending) = this.session.poll_end(cx) {
                return Poll::Ready(Some(Err(axum::Error::new(ending))));
            }
            if let Some((_, wait)) = this.held.as_mut() {
                ready!(wait.as_mut().poll(cx));
                let (bytes, _) = this.held.take().expect("held just now");
                this.session.wrote();
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            let out = if *this.done {
                // The stream ended: a buffering proxy sends what it holds, then ends.
                match this.buffer.as_mut().filter(|(_, held)| !held.is_empty()) {
                    Some((_, held)) => held.split().freeze(),
                    None => return Poll::Ready(None),
                }
            } else {
                match ready!(this.body.as_mut().poll_frame(cx)) {
                    None => {
                        *this.done = true;
                        continue;
                    }
                    Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                    Some(Ok(frame)) => match frame.into_data() {
                        Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                        Ok(data) => match this.buffer.as_mut() {
                            Some((size, held)) => {
                                held.extend_from_slice(&data);
                                if held.len() < *size {
                                    continue;
                                }
                                held.split().freeze()
                            }
                            None => data,
                        },
                    },
                }
            };
            let wait = this.session.pace(out.len());
            if wait.is_zero() {
                this.session.wrote();
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
            *this.held = Some((out, Box::pin(sleep(wait))));
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
