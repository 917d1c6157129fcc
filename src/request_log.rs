//! One log line per HTTP request: method, URI, status and time to the response head.
//!
//! With `--log-format json` this is the structured request log an operator's collector
//! reads. It is one `tracing` event, written when the response head is ready, and
//! nothing else: no span per request and no wrapper around the body, so a request
//! costs nothing more when its line is filtered out.
//!
//! Routine requests log at `debug`, everything else at `info`. The polls are routine:
//! a long poll is asked again after every message, so at `info` a chat with a
//! thousand long-polling viewers would write a thousand lines per message (in a
//! profile, that log line was 40 % of a long poll's cost). The app names the routine
//! `GET` paths ([`RequestLogLayer::routine`]); an error answer (4xx, 5xx) is never
//! routine. SSE streams and WebSocket upgrades are one line per connection, at `info`.
//! A long poll held over HTTP/1.1 makes its head when the hold begins (its answer is
//! the body, see `server/long_lived.rs`), so its line is written then.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::http::{Method, Request, Uri};
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Level;

/// The layer that logs every request (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct RequestLogLayer {
    routine: &'static [&'static str],
}

impl RequestLogLayer {
    /// Successful `GET`s of these paths log at `debug`.
    pub fn routine(paths: &'static [&'static str]) -> Self {
        Self { routine: paths }
    }
}

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLog {
            inner,
            routine: self.routine,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RequestLog<S> {
    inner: S,
    routine: &'static [&'static str],
}

/// What the line says about the request, taken before the handler consumes it.
struct Started {
    method: Method,
    uri: Uri,
    at: Instant,
    routine: bool,
}

impl<S, B> Service<Request<B>> for RequestLog<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Logged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Filtered out even at `info`: there is nothing to take.
        let started = tracing::enabled!(Level::INFO).then(|| Started {
            routine: request.method() == Method::GET
                && self.routine.contains(&request.uri().path()),
            method: request.method().clone(),
            uri: request.uri().clone(),
            at: Instant::now(),
        });
        Logged {
            inner: self.inner.call(request),
            started,
        }
    }
}

pin_project_lite::pin_project! {
    /// The handler's future; writes the line when it completes.
    pub struct Logged<F> {
        #[pin]
        inner: F,
        started: Option<Started>,
    }
}

impl<F, E> Future for Logged<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(started)) = (&result, this.started.take()) {
            log(&started, response);
        }
        Poll::Ready(result)
    }
}

fn log(started: &Started, response: &Response) {
    let status = response.status();
    let latency_ms = started.at.elapsed().as_secs_f64() * 1000.0;
    let (method, uri) = (started.method.as_str(), &started.uri);
    if started.routine && !(status.is_client_error() || status.is_server_error()) {
        tracing::debug!(method, %uri, status = status.as_u16(), latency_ms, "request");
    } else {
        tracing::info!(method, %uri, status = status.as_u16(), latency_ms, "request");
    }
}
