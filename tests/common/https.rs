//! Real HTTPS clients for a server started with [`Server::start_tls`]: hyper's HTTP/2
//! and HTTP/1.1 clients over tokio-rustls, trusting exactly the server's self-signed
//! certificate (its fingerprint), and a WebSocket over either (RFC 8441 on HTTP/2).

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, BodyStream, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Method, Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

use super::{Server, SseClient, WsClient, within};

/// A TLS connection to `server` offering `alpn`; says what ALPN chose.
pub async fn tls_connect(
    server: &Server,
    alpn: &[&[u8]],
) -> (TlsStream<TcpStream>, Option<Vec<u8>>) {
    let fingerprint = server.fingerprint.as_deref().expect("a --tls server");
    let config = pushlab::tls::pinned_client(fingerprint, alpn);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = "localhost".try_into().unwrap();
    let tls = within(
        "the TLS handshake",
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .unwrap();
    let chosen = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    (tls, chosen)
}

/// A WebSocket over an HTTP/2 stream.
pub type H2WebSocket = WsClient<TokioIo<hyper::upgrade::Upgraded>>;

/// One HTTP/2 connection; every request made through it is a stream on it.
#[derive(Clone)]
pub struct H2 {
    send: http2::SendRequest<BoxBody<Bytes, Infallible>>,
    base: String,
    /// Cancelled when the connection has ended (after GOAWAY, or an error).
    pub closed: CancellationToken,
}

impl H2 {
    /// Connects with ALPN `h2` only, and waits for the server's SETTINGS (a first
    /// request), so that extended CONNECT is known to be allowed.
    pub async fn connect(server: &Server) -> Self {
        let (tls, alpn) = tls_connect(server, &[b"h2"]).await;
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "the server chose HTTP/2");
        let (send, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
        let closed = CancellationToken::new();
        let ended = closed.clone();
        tokio::spawn(async move {
            let _ = connection.await;
            ended.cancel();
        });
        let client = Self {
            send,
            base: server.base.clone(),
            closed,
        };
        let (status, _) = client.get_json("/healthz").await;
        assert_eq!(status, 200);
        client
    }

    /// Sends a request on a new stream; a URI that is a path is on this server. The
    /// body may be any body, one that never ends included.
    pub async fn send<B>(&self, request: Request<B>) -> Response<Incoming>
    where
        B: hyper::body::Body<Data = Bytes, Error = Infallible> + Send + Sync + 'static,
    {
        let mut request = request.map(BodyExt::boxed);
        if request.uri().path().starts_with('/') && request.uri().authority().is_none() {
            *request.uri_mut() = format!("{}{}", self.base, request.uri()).parse().unwrap();
        }
        let mut send = self.send.clone();
        let response = within("an HTTP/2 response", send.send_request(request))
            .await
            .unwrap();
        assert_eq!(response.version(), Version::HTTP_2);
        response
    }

    pub async fn get(&self, path: &str) -> Response<Incoming> {
        self.send(Request::get(path).body(Full::<Bytes>::default()).unwrap())
            .await
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        json_of(self.get(path).await).await
    }

    /// Posts a message and returns the stored message.
    pub async fn post(&self, author: &str, text: &str) -> Value {
        let body = json!({ "author": author, "text": text }).to_string();
        let request = Request::post("/api/messages")
            .header("content-type", "application/json")
            .body(Full::from(body))
            .unwrap();
        let (status, message) = json_of(self.send(request).await).await;
        assert_eq!(status, 201, "{message}");
        message
    }

    /// An SSE stream on a stream of this connection.
    pub async fn sse(&self, query: &str) -> SseClient {
        sse_of(self.get(&format!("/api/events{query}")).await)
    }

    /// The extended CONNECT (RFC 8441) that opens a WebSocket, sent as a page of
    /// `origin` would (or a non-browser client, with `None`); the server's answer.
    pub async fn websocket_handshake(
        &self,
        query: &str,
        origin: Option<&str>,
    ) -> Response<Incoming> {
        let mut request = Request::builder()
            .method(Method::CONNECT)
            .uri(format!("/api/ws{query}"))
            .header("sec-websocket-version", "13");
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let mut request = request.body(Full::<Bytes>::default()).unwrap();
        request
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        self.send(request).await
    }

    /// A WebSocket through extended CONNECT on a stream of this connection.
    pub async fn websocket(&self, query: &str) -> H2WebSocket {
        let response = self.websocket_handshake(query, None).await;
        assert_eq!(response.status(), 200, "extended CONNECT answered");
        let upgraded = within("the HTTP/2 WebSocket stream", hyper::upgrade::on(response))
            .await
            .unwrap();
        let socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Client,
            None,
        )
        .await;
        WsClient { socket }
    }
}

/// One HTTP/1.1 connection over TLS (ALPN `http/1.1`): one request at a time.
pub struct Https1 {
    send: http1::SendRequest<Full<Bytes>>,
}

impl Https1 {
    pub async fn connect(server: &Server) -> Self {
        let (tls, alpn) = tls_connect(server, &[b"http/1.1"]).await;
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        let (send, connection) = http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(connection);
        Self { send }
    }

    pub async fn get(&mut self, path: &str) -> Response<Incoming> {
        let request = Request::get(path)
            .header("host", "localhost")
            .body(Full::default())
            .unwrap();
        // The connection takes the next request only once it has finished the last
        // response: wait for that, as a browser does, instead of racing it.
        within("the connection ready for a request", self.send.ready())
            .await
            .unwrap();
        let response = within("an HTTP/1.1 response", self.send.send_request(request))
            .await
            .unwrap();
        assert_eq!(response.version(), Version::HTTP_11);
        response
    }

    pub async fn get_json(&mut self, path: &str) -> (u16, Value) {
        json_of(self.get(path).await).await
    }
}

/// A WebSocket over TLS and HTTP/1.1 (`wss://`, the Upgrade handshake).
pub async fn wss(server: &Server, query: &str) -> WsClient<TlsStream<TcpStream>> {
    let (tls, _) = tls_connect(server, &[b"http/1.1"]).await;
    let url = format!("wss://localhost:{}/api/ws{query}", server.addr.port());
    let (socket, _) = within(
        "the WebSocket handshake",
        tokio_tungstenite::client_async(url, tls),
    )
    .await
    .unwrap();
    WsClient { socket }
}

pub async fn json_of(response: Response<Incoming>) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = within("a response body", response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

pub fn sse_of(response: Response<Incoming>) -> SseClient {
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let body = BodyStream::new(response.into_body())
        .scan((), |(), frame| async { frame.ok() })
        .filter_map(|frame| async move { frame.into_data().ok() });
    SseClient::reading(headers, body.boxed())
}
