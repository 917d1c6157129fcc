//! One HTTP connection, kept alive, as a browser keeps one per poller: HTTP/1.1 over
//! TCP, or, with `--http2`, HTTP/2 over TLS.
//!
//! This is hyper's connection-level client, not a pooled one: the bench wants to own
//! the connection, count its bytes at the socket and know that every request of a
//! poller rides the same TCP connection (which is what HTTP/1.1 keep-alive does, and
//! what the teaching note's "every poll opens a TCP connection" gets wrong). Over
//! HTTP/2 each request is a stream of that connection, its headers compressed by HPACK
//! against the ones sent before on it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::upgrade::Upgraded;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::bench::wire::{self, Wire};
use crate::stats::HttpVersion;

/// Where the clients connect, and which HTTP they speak there.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// With HTTP/2: TLS, trusting the one certificate the server printed.
    tls: Option<TlsConnector>,
}

impl Endpoint {
    /// Plain HTTP/1.1.
    pub fn http1(addr: SocketAddr) -> Self {
        Self { addr, tls: None }
    }

    /// HTTP/2 over TLS (ALPN `h2`), to a `--tls` server whose certificate has this
    /// SHA-256 `fingerprint`.
    pub fn http2(addr: SocketAddr, fingerprint: &str) -> Self {
        let config = crate::tls::pinned_client(fingerprint, &[b"h2"]);
        Self {
            addr,
            tls: Some(TlsConnector::from(Arc::new(config))),
        }
    }

    pub fn http(&self) -> HttpVersion {
        match self.tls {
            Some(_) => HttpVersion::Http2,
            None => HttpVersion::Http1,
        }
    }

    /// The URL of `path`, for a WebSocket client or the report.
    pub fn url(&self, path: &str) -> String {
        match self.tls {
            Some(_) => format!("https://{}{path}", self.addr),
            None => format!("http://{}{path}", self.addr),
        }
    }
}

enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

/// An open keep-alive connection to the server.
pub struct HttpConnection {
    sender: Sender,
    endpoint: Endpoint,
}

impl HttpConnection {
    /// Connects (as client number `index`, see [`wire::connect`]) and completes the
    /// HTTP handshake (and TLS's first, for HTTP/2); a task drives the connection
    /// until it is dropped.
    pub async fn open(endpoint: &Endpoint, index: usize, wire: &Arc<Wire>) -> anyhow::Result<Self> {
        let addr = endpoint.addr;
        let tcp = wire::dial(addr, index, wire)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        // Each connection task ends when its sender is dropped or the server closes;
        // either way the next request on the sender reports it.
        let sender = match &endpoint.tls {
            None => {
                let (sender, connection) =
                    http1::handshake(TokioIo::new(wire::count(tcp, wire))).await?;
                tokio::spawn(connection);
                Sender::Http1(sender)
            }
            Some(tls) => {
                let name = "localhost".try_into().expect("a valid name");
                let stream = tls.connect(name, tcp).await.context("TLS handshake")?;
                let io = TokioIo::new(wire::count(stream, wire));
                let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(connection);
                Sender::Http2(sender)
            }
        };
        Ok(Self {
            sender,
            endpoint: endpoint.clone(),
        })
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        json: Option<String>,
    ) -> anyhow::Result<Response<Incoming>> {
        let mut request = Request::builder().method(method);
        if json.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = Full::new(json.map(Bytes::from).unwrap_or_default());
        self.request(request, path, body).await
    }

    /// Sends `request` to `path`: on HTTP/1.1 with a `Host`, on HTTP/2 with the
    /// `:scheme` and `:authority` a full URL gives.
    async fn request(
        &mut self,
        request: hyper::http::request::Builder,
        path: &str,
        body: Full<Bytes>,
    ) -> anyhow::Result<Response<Incoming>> {
        Ok(match &mut self.sender {
            Sender::Http1(sender) => {
                let request = request
                    .uri(path)
                    .header(header::HOST, self.endpoint.addr.to_string());
                sender.ready().await?;
                sender.send_request(request.body(body)?).await?
            }
            Sender::Http2(sender) => {
                let request = request.uri(self.endpoint.url(path));
                sender.ready().await?;
                sender.send_request(request.body(body)?).await?
            }
        })
    }

    /// `GET path`, expecting a 200, and its whole body.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<Bytes> {
        let response = self.send(Method::GET, path, None).await?;
        body_if(StatusCode::OK, response).await
    }

    /// `POST path` with a JSON body, expecting a 201, and the answer's body.
    pub async fn post(&mut self, path: &str, json: String) -> anyhow::Result<Bytes> {
        let response = self.send(Method::POST, path, Some(json)).await?;
        body_if(StatusCode::CREATED, response).await
    }

    /// HTTP/2 only: a WebSocket on a stream of this connection, opened by extended
    /// CONNECT (RFC 8441).
    pub async fn websocket(
        &mut self,
        path: &str,
        config: WebSocketConfig,
    ) -> anyhow::Result<WebSocketStream<TokioIo<Upgraded>>> {
        if !matches!(self.sender, Sender::Http2(_)) {
            bail!("a WebSocket over extended CONNECT needs HTTP/2");
        }
        let request = Request::builder()
            .method(Method::CONNECT)
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .extension(hyper::ext::Protocol::from_static("websocket"));
        let response = self.request(request, path, Full::default()).await?;
        if response.status() != StatusCode::OK {
            bail!("the WebSocket's CONNECT answered {}", response.status());
        }
        let upgraded = hyper::upgrade::on(response).await?;
        let io = TokioIo::new(upgraded);
        Ok(WebSocketStream::from_raw_socket(io, Role::Client, Some(config)).await)
    }
}

/// The body of `response` if its status is `expected`, else an error quoting it.
async fn body_if(expected: StatusCode, response: Response<Incoming>) -> anyhow::Result<Bytes> {
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != expected {
        bail!("{status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}
