//! The endpoints that are not transports: posting a message, the counters, who is
//! online, and the health check.

use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Json;
use crate::hub::Bounds;
use crate::message::{Message, NewMessage, Via};
use crate::server::ClientAddr;

/// `POST /api/messages` `{"author","text"}`: 201 with the stored message.
pub async fn publish(
    State(app): State<Arc<AppState>>,
    ConnectInfo(client): ClientAddr,
    Json(new): Json<NewMessage>,
) -> Result<(StatusCode, axum::Json<Message>), ApiError> {
    let draft = new.validate(Via::Http)?;
    app.publish_rate.check(client.ip())?;
    let entry = app.hub.publish(draft).await?;
    Ok((StatusCode::CREATED, axum::Json(entry.message.clone())))
}

/// `GET /api/stats`: per-transport counters, TCP connections by HTTP version, and the
/// hub's extent.
pub async fn stats(State(app): State<Arc<AppState>>) -> axum::Json<Value> {
    let Bounds { oldest, newest } = app.hub.bounds();
    axum::Json(json!({
        "transports": app.stats,
        "connections": app.connections,
        "hub": {
            "last_id": newest,
            "retained": newest + 1 - oldest,
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

/// `GET /api/presence`: who is online, and how; the first 200 by name, and how many.
pub async fn presence(State(app): State<Arc<AppState>>) -> axum::Json<Value> {
    let (total, clients) = app.presence.online();
    axum::Json(json!({ "clients": clients, "total": total }))
}

/// `GET /healthz`: 200 while the server is serving.
pub async fn healthz() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// A known path asked with a method it does not take.
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}
