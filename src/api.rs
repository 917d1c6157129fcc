//! The endpoints that are not transports: posting a message, the rooms, the counters,
//! who is online, and the health check.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::Json;
use crate::message::{Message, NewMessage, Via};
use crate::room::RoomName;
use crate::state::AppState;
use crate::transport;
use crate::transport::arrival::{Arrival, InRoom};

/// `POST /api/rooms/{room}/messages` (the lobby's at `/api/messages`)
/// `{"author","text"}`: 201 with the stored message.
pub async fn publish(
    arrival: Arrival,
    Json(new): Json<NewMessage>,
) -> Result<(StatusCode, axum::Json<Message>), ApiError> {
    let room = arrival.app.hub.room(&arrival.room);
    let entry = transport::publish(&arrival.app, &room, arrival.ip, new, Via::Http).await?;
    Ok((StatusCode::CREATED, axum::Json(entry.message.clone())))
}

/// `GET /api/stats`: per-transport counters, TCP connections by HTTP version, the
/// lobby's extent and the room count.
pub async fn stats(State(app): State<Arc<AppState>>) -> axum::Json<Value> {
    let lobby = app.hub.bounds(&RoomName::lobby());
    axum::Json(json!({
        "transports": app.stats,
        "connections": app.connections,
        "hub": {
            "last_id": lobby.newest,
            "retained": lobby.len(),
            "rooms": app.hub.room_count(),
            "lags": app.hub.lags(),
            "store_errors": app.hub.store_errors(),
        },
        "limits": {
            "rate_limited": app.publish_rate.refused(),
            "refused_connections": app.caps.refused(),
            "refused_origins": app.origins.refused(),
            "refused_hosts": app.hosts.refused(),
            "stalled_connections": app.stalls.count(),
        },
    }))
}

/// `GET /api/rooms/{room}/presence` (the lobby's at `/api/presence`): who is online in
/// the room, and how; the first 200 by name, and how many.
pub async fn presence(State(app): State<Arc<AppState>>, InRoom(room): InRoom) -> axum::Json<Value> {
    let (total, clients) = app.presence.online(&room);
    axum::Json(json!({ "clients": clients, "total": total }))
}

/// `GET /api/rooms`: the rooms in memory now, each with its newest id and how many
/// clients are in it.
pub async fn rooms(State(app): State<Arc<AppState>>) -> axum::Json<Value> {
    let rooms: Vec<Value> = app
        .hub
        .rooms()
        .into_iter()
        .map(|room| {
            json!({
                "name": room.name,
                "last_id": room.bounds.newest,
                "clients": room.clients,
            })
        })
        .collect();
    axum::Json(json!({ "rooms": rooms }))
}

/// `GET /api/webtransport/certificate-hash`: what a page needs to open a WebTransport
/// session to this server: the hash for `serverCertificateHashes`, and the address the
/// QUIC socket listens on (`null` when it listens on every address: use the page's).
/// 404 without `--webtransport`.
pub async fn webtransport_certificate(
    State(app): State<Arc<AppState>>,
) -> Result<axum::Json<Value>, ApiError> {
    let certificate = app.webtransport.as_ref().ok_or_else(|| {
        ApiError::NotFound("WebTransport is off (start pushlab with --webtransport)".into())
    })?;
    let ip = app.config.addr.ip();
    Ok(axum::Json(json!({
        "hash": certificate.hash(),
        "host": (!ip.is_unspecified()).then(|| ip.to_string()),
    })))
}

/// `GET /healthz`: 200 while the server is serving.
pub async fn healthz() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// A known path asked with a method it does not take.
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}
