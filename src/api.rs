//! The endpoints that are not transports: posting a message, the counters, who is
//! online, and the health check.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::Json;
use crate::hub::Bounds;
use crate::message::{Message, NewMessage, Via};
use crate::state::AppState;
use crate::transport::{self, arrival::Arrival};

/// `POST /api/messages` `{"author","text"}`: 201 with the stored message.
pub async fn publish(
    arrival: Arrival,
    Json(new): Json<NewMessage>,
) -> Result<(StatusCode, axum::Json<Message>), ApiError> {
    let entry = transport::publish(&arrival.app, arrival.ip, new, Via::Http).await?;
    Ok((StatusCode::CREATED, axum::Json(entry.message.clone())))
}

/// `GET /api/stats`: per-transport counters and the hub's extent.
pub async fn stats(State(app): State<Arc<AppState>>) -> axum::Json<Value> {
    let Bounds { oldest, newest } = app.hub.bounds();
    axum::Json(json!({
        "transports": app.stats,
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
            "stalled_connections": app.stalls.count(),
        },
    }))
}

/// `GET /api/presence`: who is online, and how.
pub async fn presence(State(app): State<Arc<AppState>>) -> axum::Json<Value> {
    axum::Json(json!({ "clients": app.presence.online() }))
}

/// `GET /healthz`: 200 while the server is serving.
pub async fn healthz() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// A known path asked with a method it does not take.
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}
