//! Every way a request can fail, as one enum that answers `{"error": "…"}` with the
//! right status. Handlers return `Result<_, ApiError>`; nothing a client sends is ever
//! `unwrap`ped.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Query(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Json(rejection) => rejection.status(),
            Self::NotWebSocket(rejection) => rejection.status(),
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(json!({ "error": self.to_string() }))).into_response()
    }
}
