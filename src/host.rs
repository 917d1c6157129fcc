//! Which host names pushlab answers to, against DNS rebinding.
//!
//! A browser keeps pages apart by name, not by address. A page at
//! `http://evil.example:8080` whose owner then points `evil.example` at 127.0.0.1 is
//! still, to the browser, talking to its own site, and may read every answer: the
//! answers of pushlab, on the user's machine. Only the `Host` header gives it away
//! (`Host: evil.example:8080`). So every request, to every endpoint, must name a host
//! this server answers to, or it gets **421 Misdirected Request**:
//!
//! - bound to a loopback address (the default, 127.0.0.1:8080), the loopback names
//!   (`localhost`, `127.x.y.z`, `[::1]`, any port), the names given with
//!   `--allow-host`, and the hosts of the `--allow-origin` origins;
//! - bound to another address (`--addr 0.0.0.0:8080`), the server is meant to be
//!   reached by names only its operator knows: any name, unless `--allow-host` lists
//!   them, and then only those and the loopback names.
//!
//! Behind a reverse proxy that passes the browser's `Host` on (as `deploy/nginx.conf`
//! does), list the public name with `--allow-host`.
//!
//! Besides, an HTTP/1.1 request must carry exactly one `Host` (RFC 9112, 400 if not),
//! and `CONNECT` gets 405: pushlab is not a proxy (HTTP/2's extended CONNECT, which
//! opens a WebSocket, goes through). An HTTP/2 request names its host in
//! `:authority`, which hyper puts in the request's URI.
//!
//! A WebTransport session (HTTP/3 over QUIC, so not behind this layer) names its host
//! in `:authority` too; [`HostPolicy::check_authority`] applies the same rule to it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{Method, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Config;
use crate::error::ApiError;

pub struct HostPolicy {
    /// Whether the Host is checked at all.
    checked: bool,
    /// Names allowed besides the loopback ones, lowercase, without port.
    allowed: Vec<String>,
    /// Requests refused for their host so far.
    refused: AtomicU64,
}

impl HostPolicy {
    pub fn new(config: &Config) -> Self {
        let from_origins = config
            .allow_origins
            .iter()
            .filter_map(|origin| origin.split_once("://").map(|(_, authority)| authority));
        let allowed = config
            .allow_hosts
            .iter()
            .map(String::as_str)
            .chain(from_origins)
            .filter_map(|host| host.trim_end_matches('/').parse::<Authority>().ok())
            .map(|authority| authority.host().to_ascii_lowercase())
            .collect();
        Self {
            checked: config.addr.ip().is_loopback() || !config.allow_hosts.is_empty(),
            allowed,
            refused: AtomicU64::new(0),
        }
    }

    /// Requests refused for their host so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// Lets `request` through if it names a host this server answers to.
    pub fn check(&self, request: &Request) -> Result<(), ApiError> {
        // A plain CONNECT asks for a tunnel; HTTP/2's extended CONNECT (with a
        // `:protocol`, RFC 8441) opens a WebSocket, and goes on to the routes.
        let extended = request.extensions().get::<hyper::ext::Protocol>().is_some();
        if request.method() == Method::CONNECT && !extended {
            return Err(ApiError::MethodNotAllowed(Method::CONNECT.to_string()));
        }
        let mut hosts = request.headers().get_all(header::HOST).iter();
        let (host, second) = (hosts.next(), hosts.next());
        if second.is_some() {
            return Err(ApiError::BadRequest(
                "a request carries one Host header".into(),
            ));
        }
        // A request line with a full URL names its host there (RFC 9112 §3.2.2).
        let authority = match (request.uri().authority(), host) {
            (Some(authority), _) => authority.clone(),
            (None, Some(host)) => Authority::try_from(host.as_bytes())
                .map_err(|_| ApiError::BadRequest("the Host header is not a host name".into()))?,
            (None, None) if request.version() == Version::HTTP_11 => {
                return Err(ApiError::BadRequest(
                    "an HTTP/1.1 request must carry a Host header".into(),
                ));
            }
            // HTTP/1.0 needs no Host, and no browser sends one without it.
            (None, None) => return Ok(()),
        };
        self.admit(&authority)
    }

    /// Lets a WebTransport session through if its `:authority` names a host this server
    /// answers to (HTTP/3 has no `Host` header; `:authority` is its place).
    pub fn check_authority(&self, authority: &str) -> Result<(), ApiError> {
        let parsed = Authority::try_from(authority).map_err(|_| {
            self.refused.fetch_add(1, Relaxed);
            ApiError::BadRequest("the :authority is not a host name".into())
        })?;
        self.admit(&parsed)
    }

    fn admit(&self, authority: &Authority) -> Result<(), ApiError> {
        let name = authority.host().to_ascii_lowercase();
        if !self.checked || is_loopback(&name) || self.allowed.contains(&name) {
            return Ok(());
        }
        self.refused.fetch_add(1, Relaxed);
        Err(ApiError::MisdirectedHost(authority.to_string()))
    }
}

/// `localhost`, `127.x.y.z`, `[::1]` (or `::ffff:127.x.y.z`): names that cannot be
/// made to point elsewhere.
fn is_loopback(name: &str) -> bool {
    if name == "localhost" {
        return true;
    }
    let ip = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().map(IpAddr::V6),
        None => name.parse::<Ipv4Addr>().map(IpAddr::V4),
    };
    ip.is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The layer in front of every endpoint.
pub async fn check(State(hosts): State<Arc<HostPolicy>>, request: Request, next: Next) -> Response {
    match hosts.check(&request) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use clap::Parser;

    use super::*;

    fn policy(flags: &[&str]) -> HostPolicy {
        let args = ["pushlab"].iter().chain(flags);
        HostPolicy::new(&Config::parse_from(args))
    }

    fn request(host: &str) -> Request {
        Request::get("/healthz")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn a_server_bound_beyond_loopback_serves_any_name_unless_told_which() {
        let open = policy(&["--addr", "0.0.0.0:8080"]);
        for host in ["chat.example.org", "203.0.113.7:8080", "localhost"] {
            assert!(open.check(&request(host)).is_ok(), "{host}");
        }
        let listed = policy(&["--addr", "0.0.0.0:8080", "--allow-host", "chat.example.org"]);
        for host in [
            "chat.example.org:8080",
            "CHAT.example.org",
            "localhost:8080",
        ] {
            assert!(listed.check(&request(host)).is_ok(), "{host}");
        }
        let refused = listed.check(&request("evil.example"));
        assert!(matches!(refused, Err(ApiError::MisdirectedHost(_))));
        assert_eq!(listed.refused(), 1);
    }

    #[test]
    fn only_loopback_names_are_loopback() {
        for name in [
            "localhost",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback(name), "{name}");
        }
        for name in [
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1",
            "0.0.0.0",
            "[::]",
            "::1",
            "",
        ] {
            assert!(!is_loopback(name), "{name}");
        }
    }
}
