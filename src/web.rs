//! The page: the files under `web/`, built into the binary so that `cargo run
//! --release` serves them from any working directory, or read from disk with
//! `--web-dir` while editing them.
//!
//! Every file goes out with security headers: a Content-Security-Policy that allows
//! only this origin's scripts and styles (no inline script, so injected markup cannot
//! run), `nosniff`, and no referrer.

use std::path::PathBuf;

use axum::Router;
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::ApiError;

#[derive(Embed)]
#[folder = "web/"]
struct Assets;

/// `connect-src` names the loopback addresses besides `'self'` for WebTransport: a page
/// opened at `http://localhost:PORT` opens its session at `https://127.0.0.1:PORT`, the
/// address the QUIC socket is bound to (see `web/transports/webtransport.js`).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; \
    connect-src 'self' https://127.0.0.1:* https://[::1]:*; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Serves the page: embedded, or from `web_dir` when given.
pub fn router(web_dir: Option<PathBuf>) -> Router {
    let router = match web_dir {
        Some(dir) => Router::new()
            .fallback_service(ServeDir::new(dir).not_found_service(axum::routing::any(not_found))),
        None => Router::new().fallback(embedded),
    };
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

async fn embedded(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        // Like ServeDir (--web-dir): the page is only read. This also refuses an
        // HTTP/2 CONNECT, which asks for a tunnel to another host.
        return ApiError::MethodNotAllowed(method.to_string()).into_response();
    }
    let mut path = uri.path().trim_start_matches('/').to_owned();
    if path.is_empty() || path.ends_with('/') {
        path.push_str("index.html");
    }
    match Assets::get(&path) {
        Some(file) => (
            [(header::CONTENT_TYPE, file.metadata.mimetype().to_owned())],
            file.data,
        )
            .into_response(),
        None => not_found(uri).await,
    }
}

/// Unknown paths, API or page, get the API's JSON 404.
pub async fn not_found(uri: Uri) -> Response {
    ApiError::NotFound(uri.path().to_owned()).into_response()
}
