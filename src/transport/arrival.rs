//! [`Arrival`]: what every transport's handler starts from, read from the request in
//! one place: which room, who is asking and from where, and the cursor parameters.
//!
//! A handler takes an `Arrival`, checks what only it needs (a `limit`, a `timeout`, an
//! upgrade), then [`Arrival::attend`]s, which admits the client under the connection
//! caps and returns the [`Attendance`] that counts it until the response or
//! connection ends.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::Uri;
use axum::http::request::Parts;

use super::Attendance;
use super::cursor::CursorParams;
use crate::error::ApiError;
use crate::extract::{Query, read_query};
use crate::presence::Visitor;
use crate::protocol::Transport;
use crate::room::RoomName;
use crate::server::Carrier;
use crate::state::AppState;

/// A request to a transport (or to publish), read but not yet admitted.
pub struct Arrival {
    pub app: Arc<AppState>,
    /// The room in the path, or the lobby.
    pub room: RoomName,
    /// `since`, `limit` and `timeout`, parsed on demand so that each transport names
    /// the parameter it refuses.
    pub params: CursorParams,
    /// `client` and `name`, for who is online.
    pub visitor: Visitor,
    /// The client's address, for the per-IP limits.
    pub ip: IpAddr,
    /// The TCP connection it came on, and the HTTP that connection speaks; none for a
    /// WebTransport session, which comes over QUIC.
    pub carrier: Option<Carrier>,
}

impl FromRequestParts<Arc<AppState>> for Arrival {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let carrier = parts
            .extensions
            .get::<Carrier>()
            .cloned()
            .expect("the accept loop attaches every request's connection");
        let InRoom(room) = InRoom::from_request_parts(parts, app).await?;
        // Both from the query string, in one pass.
        let Query((params, visitor)) =
            Query::<(CursorParams, Visitor)>::from_request_parts(parts, app).await?;
        Ok(Self {
            app: app.clone(),
            room,
            params,
            visitor,
            ip: carrier.remote.ip(),
            carrier: Some(carrier),
        })
    }
}

impl Arrival {
    /// An arrival that did not come through the router (a WebTransport session, which
    /// arrives over QUIC): its room already read from the path, its parameters from
    /// the query string of `uri`.
    pub fn from_uri(
        app: Arc<AppState>,
        room: RoomName,
        uri: &Uri,
        ip: IpAddr,
    ) -> Result<Self, ApiError> {
        let (params, visitor) = read_query::<(CursorParams, Visitor)>(uri.query());
        Ok(Self {
            app,
            room,
            params,
            visitor,
            ip,
            carrier: None,
        })
    }

    /// Admits the client on `transport` into its room, or refuses it: bad
    /// `client`/`name` (400), or no space under the connection caps for a transport that
    /// holds its connection (503).
    pub fn attend(&self, transport: Transport) -> Result<Attendance, ApiError> {
        let room = Arc::new(self.app.hub.room(&self.room));
        Attendance::begin(
            &self.app,
            room,
            transport,
            &self.visitor,
            self.ip,
            self.carrier.as_ref(),
        )
    }
}

/// The room a path names (`/api/rooms/{room}/…`), or the lobby for the paths that name
/// none (`/api/messages` …). A name that breaks the rules is a `400`, before anything
/// else happens (for the WebSocket, before the upgrade).
pub struct InRoom(pub RoomName);

impl<S: Send + Sync> FromRequestParts<S> for InRoom {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let named = params.iter().find(|(key, _)| *key == "room");
        Ok(Self(match named {
            Some((_, name)) => RoomName::new(name)?,
            None => RoomName::lobby(),
        }))
    }
}
