//! Every way a request can fail, as one enum that answers `{"error": "…"}` with the
//! right status. Handlers return `Result<_, ApiError>`; nothing a client sends is ever
//! `unwrap`ped.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::hub::{PublishError, RoomsFull, StoreError};
use crate::message::{Invalid, MAX_BODY_BYTES};
use crate::room::BadRoomName;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter or header that is not what the endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    /// A room name that is not 1–64 of `A-Z a-z 0-9 _ -`.
    #[error(transparent)]
    BadRoom(#[from] BadRoomName),
    /// A first message to a new room, past `--max-rooms`.
    #[error("{0}; publish to a room that exists (GET /api/rooms lists them)")]
    RoomsFull(RoomsFull),
    /// Well-formed JSON whose fields break the message rules.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The body was not JSON, not the right JSON, too large, too slow, or not labelled
    /// as JSON.
    #[error("{}", json_problem(.0))]
    Json(#[from] JsonRejection),
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
    /// `/api/lab/…` on a server started with the fault lab off.
    #[error("the fault lab is off on this server (see --fault-lab)")]
    LabOff,
    /// A transport the fault lab blocks for this client.
    #[error("{0} is blocked by the fault lab (as a firewall or proxy would refuse it)")]
    Blocked(&'static str),
    /// A held request the fault lab cut when it had written nothing for a while.
    #[error("cut by the fault lab: idle too long (a proxy's timeout)")]
    LabIdle,
    /// A fault the lab cannot inject on this server.
    #[error("{0}")]
    LabCannot(&'static str),
    #[error("no such endpoint: {}; see docs/api.md for the API", shortened(.0))]
    NotFound(String),
    #[error("method {} is not allowed on this endpoint; see docs/api.md for the API", shortened(.0))]
    MethodNotAllowed(String),
    /// A request for a host name this server does not answer to (DNS rebinding).
    #[error("this server does not answer to the host name {}; see --allow-host", shortened(.0))]
    MisdirectedHost(String),
    /// A request hyper could not parse, answered by the server itself (one of
    /// [`ApiError::UNPARSABLE`]); see `server::parse_errors`.
    #[error("{}", unparsable(*.0))]
    Unparsable(StatusCode),
    /// The store could not keep the message (Redis unreachable, disk failing): nothing
    /// was stored, and the client should send it again. The store's own words, which
    /// name internal addresses, go to the log, not to the client.
    #[error(
        "the message was not stored: the message store is unavailable; send it again in a moment"
    )]
    StoreUnavailable(#[from] StoreError),
}

/// What a client is told to wait before trying again when the server is full.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The request body did not arrive within `--body-timeout` (answered with 408).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within --body-timeout")]
pub struct BodyTimedOut;

/// How long a client should wait before sending again a message the store refused.
pub const STORE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Longest client-sent text (a path, a method, a host) repeated in an error.
const ECHOED_CHARS: usize = 64;

/// What an extractor that cannot fail (the query string, read leniently) fails with.
impl From<std::convert::Infallible> for ApiError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl ApiError {
    /// The statuses hyper answers by itself to a request it cannot parse. (Its 414,
    /// for a URI over 64 KiB, cannot happen: the whole head is limited to 32 KiB.)
    pub const UNPARSABLE: [StatusCode; 2] = [
        StatusCode::BAD_REQUEST,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    ];

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::BadRoom(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Json(rejection) if body_timed_out(rejection) => StatusCode::REQUEST_TIMEOUT,
            Self::Json(rejection) => rejection.status(),
            Self::NotWebSocket(rejection) => rejection.status(),
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::ForeignOrigin(_) | Self::TapOff | Self::LabOff | Self::Blocked(_) => {
                StatusCode::FORBIDDEN
            }
            Self::LabIdle => StatusCode::GATEWAY_TIMEOUT,
            Self::LabCannot(_) => StatusCode::CONFLICT,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            Self::Unparsable(status) => *status,
            Self::StoreUnavailable(_) | Self::RoomsFull(_) => StatusCode::SERVICE_UNAVAILABLE,
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

impl From<PublishError> for ApiError {
    fn from(error: PublishError) -> Self {
        match error {
            PublishError::RoomsFull(full) => Self::RoomsFull(full),
            PublishError::Store(error) => Self::StoreUnavailable(error),
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

/// What was wrong with a JSON body, in the API's words rather than the library's.
fn json_problem(rejection: &JsonRejection) -> String {
    let cause = deepest_cause(rejection);
    match rejection {
        JsonRejection::JsonDataError(_) => format!("invalid message: {cause}"),
        JsonRejection::JsonSyntaxError(_) => format!("the body is not valid JSON: {cause}"),
        JsonRejection::MissingJsonContentType(_) => {
            "send the message as JSON, with Content-Type: application/json".into()
        }
        _ if body_timed_out(rejection) => {
            "the body did not arrive in time (--body-timeout); send it whole, at once".into()
        }
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the body is over the length limit of {} KiB",
            MAX_BODY_BYTES / 1024
        ),
        _ => format!("the body could not be read: {cause}"),
    }
}

/// The innermost error under `error`: the parser's own words, without the layers
/// that name Rust types.
fn deepest_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = error;
    while let Some(cause) = deepest.source() {
        deepest = cause;
    }
    deepest.to_string()
}

/// Whether the body could not be read because `--body-timeout` passed.
fn body_timed_out(rejection: &JsonRejection) -> bool {
    let mut cause = std::error::Error::source(rejection);
    while let Some(error) = cause {
        if error.is::<BodyTimedOut>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// At most [`ECHOED_CHARS`] of a client's text, so that an error cannot be made to
/// repeat kilobytes back.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(ECHOED_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Why hyper refused to parse a request, by the status it answered with.
fn unparsable(status: StatusCode) -> &'static str {
    match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "the request's URI and headers are too large: at most 32 KiB, and 100 headers"
        }
        _ => "the request could not be parsed: it is not well-formed HTTP/1.1",
    }
}
