//! Every way a request can fail, as one enum that answers `{"error": "…"}` with the
//! right status. Handlers return `Result<_, ApiError>`; nothing a client sends is ever
//! `unwrap`ped.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::hub::StoreError;
use crate::limits::BUSY_RETRY_AFTER;
use crate::message::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter or header that is not what the endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed JSON whose fields break the message rules.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The body was not JSON, not the right JSON, too large, or not labelled as JSON.
    #[error("{}", .0.body_text())]
    Json(#[from] JsonRejection),
    #[error("{}", .0.body_text())]
    Query(#[from] QueryRejection),
    /// A plain request to the WebSocket endpoint.
    #[error("{}; this endpoint speaks WebSocket: connect with a WebSocket client", .0.body_text())]
    NotWebSocket(#[from] WebSocketUpgradeRejection),
    /// Publishing faster than `--publish-rate` allows.
    #[error("too many messages from your address; try again in {} ms", .retry_after.as_millis())]
    RateLimited { retry_after: Duration },
    /// No room for another held connection.
    #[error("{0}; try again later")]
    Busy(&'static str),
    /// A WebSocket handshake from a page of another site.
    #[error("origin {0} is not allowed to open a WebSocket here (see --allow-origin)")]
    ForeignOrigin(String),
    /// `GET /api/tap/…` on a server started with the tap off.
    #[error("the wire tap is off on this server (see --wire-tap)")]
    TapOff,
    #[error("no such endpoint: {0}; see docs/api.md for the API")]
    NotFound(String),
    #[error("method {0} is not allowed on this endpoint; see docs/api.md for the API")]
    MethodNotAllowed(String),
    /// The store could not keep the message (Redis unreachable, disk failing): nothing
    /// was stored, and the client should send it again. The store's own words, which
    /// name internal addresses, go to the log, not to the client.
    #[error(
        "the message was not stored: the message store is unavailable; send it again in a moment"
    )]
    StoreUnavailable(#[from] StoreError),
}

/// How long a client should wait before sending again a message the store refused.
pub const STORE_RETRY_AFTER: Duration = Duration::from_secs(1);

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Query(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Json(rejection) if body_timed_out(rejection) => StatusCode::REQUEST_TIMEOUT,
            Self::Json(rejection) => rejection.status(),
            Self::NotWebSocket(rejection) => rejection.status(),
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::ForeignOrigin(_) | Self::TapOff => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// How long to wait before trying again, when waiting helps.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            Self::Busy(_) => Some(BUSY_RETRY_AFTER),
            Self::StoreUnavailable(_) => Some(STORE_RETRY_AFTER),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status(), Json(json!({ "error": self.to_string() }))).into_response();
        if let Some(wait) = self.retry_after() {
            // Whole seconds, rounded up: "0" would invite an immediate retry.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// Whether the body could not be read because `--body-timeout` passed.
fn body_timed_out(rejection: &JsonRejection) -> bool {
    let mut cause = std::error::Error::source(rejection);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}
