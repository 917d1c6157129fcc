//! Every way a request can fail, as one enum that answers `{"error": "…"}` with the
//! right status. Handlers return `Result<_, ApiError>`; nothing a client sends is ever
//! `unwrap`ped.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::hub::StoreError;
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
    #[error("no such endpoint: {0}; see docs/api.md for the API")]
    NotFound(String),
    #[error("method {0} is not allowed on this endpoint; see docs/api.md for the API")]
    MethodNotAllowed(String),
    /// The store could not keep the message (Redis unreachable, disk failing): nothing
    /// was stored, and the client should send it again.
    #[error("the message was not stored ({0}); send it again in a moment")]
    StoreUnavailable(#[from] StoreError),
}

/// What a 503 tells the client to wait before sending again, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Query(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Json(rejection) => rejection.status(),
            Self::NotWebSocket(rejection) => rejection.status(),
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status(), Json(json!({ "error": self.to_string() }))).into_response();
        if let Self::StoreUnavailable(_) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}
