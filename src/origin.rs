//! Which web pages may talk to pushlab from a browser.
//!
//! A browser sends cookies and opens WebSockets to any site a page asks it to; the
//! `Origin` header says which page asked. Without a check, any site a user visits
//! could open a WebSocket to this server in the user's name (Cross-Site WebSocket
//! Hijacking). So the WebSocket handshake is refused (403) unless the page is from this
//! server itself or from an origin listed with `--allow-origin`. Clients that are not
//! browsers send no `Origin` and are let in. The same list drives CORS for the HTTP
//! API, which is off when the list is empty.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;

pub struct OriginPolicy {
    allowed: Vec<HeaderValue>,
    /// Handshakes refused so far.
    refused: AtomicU64,
}

impl OriginPolicy {
    pub fn new(allowed: &[String]) -> Self {
        Self {
            allowed: allowed
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
                .collect(),
            refused: AtomicU64::new(0),
        }
    }

    /// Handshakes refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// Lets a WebSocket handshake through if its `Origin` is absent, this server's own
    /// (the host the request was sent to: `Host` on HTTP/1.1, `:authority` on HTTP/2),
    /// or listed.
    pub fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let host = headers
            .get(header::HOST)
            .map(HeaderValue::as_bytes)
            .or_else(|| uri.authority().map(|a| a.as_str().as_bytes()));
        let same_origin = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .zip(host)
            .is_some_and(|((_, authority), host)| authority.as_bytes() == host);
        if same_origin || self.allowed.contains(origin) {
            Ok(())
        } else {
            self.refused.fetch_add(1, Relaxed);
            Err(ApiError::ForeignOrigin(
                origin.to_str().unwrap_or("(not text)").to_owned(),
            ))
        }
    }

    /// CORS for the HTTP API: only the listed origins, or none.
    pub fn cors(&self) -> Option<CorsLayer> {
        (!self.allowed.is_empty()).then(|| {
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.allowed.clone()))
                .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
                .allow_headers([
                    header::CONTENT_TYPE,
                    HeaderName::from_static("last-event-id"),
                ])
        })
    }
}
