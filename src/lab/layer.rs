//! The lab in front of every API request: a request of a transport meets the faults
//! set for its page (`tap=`) and for everyone. Blocked, it is refused; otherwise its
//! handler runs under the session's cut and idle clock (a long poll is held inside
//! its handler), and its response body leaves through [`Faulty`]. A WebSocket's
//! session goes to its handler in a [`Ticket`], for the frames after the `101`.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, Either};
use tower::{Layer, Service};

use super::Lab;
use super::body::Faulty;
use super::session::{Ending, Ticket};
use crate::error::ApiError;
use crate::protocol::Transport;
use crate::tap::{tap_param, transport_of};

#[derive(Clone)]
pub struct LabLayer(pub Arc<Lab>);

impl<S> Layer<S> for LabLayer {
    type Service = Faulted<S>;

    fn layer(&self, inner: S) -> Faulted<S> {
        Faulted {
            lab: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct Faulted<S> {
    lab: Arc<Lab>,
    inner: S,
}

impl<S> Service<Request> for Faulted<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // Off, one check; on, only a transport's requests meet the lab.
        let transport = self
            .lab
            .enabled()
            .then(|| transport_of(request.method(), request.uri().path()))
            .flatten()
            .filter(|t| *t != Transport::Webtransport);
        let Some(transport) = transport else {
            return Either::Left(self.inner.call(request));
        };
        // A malformed tap= is refused by the tap's own layer, in front of this one.
        let page = tap_param(request.uri().query()).ok().flatten();
        let room = room_of(request.uri().path());
        let Some(mut session) = self.lab.session(page, transport, room) else {
            let refused = ApiError::Blocked(transport.name()).into_response();
            return Either::Right(Box::pin(async move { Ok(refused) }));
        };
        if transport == Transport::Websocket {
            request.extensions_mut().insert(Ticket::new(session));
            return Either::Left(self.inner.call(request));
        }
        let answer = self.inner.call(request);
        Either::Right(Box::pin(async move {
            let response = tokio::select! {
                Ok(response) = answer => response,
                ending = session.ended() => return Ok(ended(ending)),
            };
            Ok(response.map(|body| Body::new(Faulty::new(body, session))))
        }))
    }
}

/// The room a transport's path names: `/api/rooms/{room}/…`, or the lobby's `/api/…`.
fn room_of(path: &str) -> &str {
    path.strip_prefix("/api/rooms/")
        .and_then(|in_room| in_room.split_once('/'))
        .map_or("lobby", |(room, _)| room)
}

/// A request the lab ended before its handler answered (a held long poll): an idle
/// cut answers as a load balancer does, `504`; a cut breaks off the response.
fn ended(ending: Ending) -> Response {
    match ending {
        Ending::Idle => ApiError::LabIdle.into_response(),
        Ending::Cut => {
            let broken = futures::stream::once(async move { Err::<Bytes, _>(ending) });
            Response::new(Body::from_stream(broken))
        }
    }
}
