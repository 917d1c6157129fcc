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

use std::task::{Context, Poll};

use axum::http::uri::Authority;
use axum::http::{Method, Request, Version, header};
use axum::response::{IntoResponse, Response};
use futures::future::{Either, Ready, ready};
use tower::{Layer, Service};

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
    pub fn check<B>(&self, request: &Request<B>) -> Result<(), ApiError> {
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
        // The usual case, checked without parsing a URI authority: a loopback name.
        if request.uri().authority().is_none()
            && host.is_some_and(|h| is_loopback_host(h.as_bytes()))
        {
            return Ok(());
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
        let name = authority.host();
        if !self.checked
            || is_loopback(name)
            || self.allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
        {
            return Ok(());
        }
        self.refused.fetch_add(1, Relaxed);
        Err(ApiError::MisdirectedHost(authority.to_string()))
    }
}

/// A `Host` that is a loopback name with an optional numeric port.
fn is_loopback_host(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    // The port is what follows the last colon after the name (an IPv6 name is in
    // brackets, so its own colons come before a `]`).
    let (name, port) = match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => (&host[..colon], &host[colon + 1..]),
        _ => (host, ""),
    };
    port.bytes().all(|b| b.is_ascii_digit()) && is_loopback(name)
}

/// `localhost`, `127.x.y.z`, `[::1]` (or `::ffff:127.x.y.z`): names that cannot be
/// made to point elsewhere.
fn is_loopback(name: &str) -> bool {
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let ip = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().map(IpAddr::V6),
        None => name.parse::<Ipv4Addr>().map(IpAddr::V4),
    };
    ip.is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The layer in front of every endpoint: a request for another host is answered
/// here. A plain tower layer around the whole app (no boxed future per request).
#[derive(Clone)]
pub struct HostCheckLayer(pub Arc<HostPolicy>);

impl<S> Layer<S> for HostCheckLayer {
    type Service = HostCheck<S>;

    fn layer(&self, inner: S) -> HostCheck<S> {
        HostCheck {
            hosts: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct HostCheck<S> {
    hosts: Arc<HostPolicy>,
    inner: S,
}

impl<S, B> Service<Request<B>> for HostCheck<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.hosts.check(&request) {
            Ok(()) => Either::Right(self.inner.call(request)),
            Err(error) => Either::Left(ready(Ok(error.into_response()))),
        }
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

    fn request(host: &str) -> Request<Body> {
        Request::get("/healthz")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn a_loopback_host_is_recognised_without_parsing_a_uri() {
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LocalHost:80",
            "[::1]:9",
            "[::1]",
            "127.9.9.9",
        ] {
            assert!(is_loopback_host(host.as_bytes()), "{host}");
        }
        for host in [
            "127.0.0.1:80x",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "[::2]:80",
            "",
        ] {
            assert!(!is_loopback_host(host.as_bytes()), "{host}");
        }
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
