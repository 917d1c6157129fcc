//! Test support: start the real app on `127.0.0.1:0`, and small real clients for each
//! transport speaking HTTP, SSE and WebSocket over real sockets.
#![allow(dead_code)] // each test file uses a different part of this kit

pub mod https;
pub mod raw_h2;

use std::time::Duration;

use clap::Parser;
use futures::{SinkExt, StreamExt};
use pushlab::config::Config;
use pushlab::protocol::{PollAnswer, SSE_MESSAGE, ServerFrame};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite;

/// How long any single wait in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The path of an endpoint of a room: `in_room("maths", "events")` is
/// `/api/rooms/maths/events`.
pub fn in_room(room: &str, endpoint: &str) -> String {
    format!("/api/rooms/{room}/{endpoint}")
}

/// A tap id as the page makes them (the wire tap's, and the fault lab's page): random,
/// unguessable.
pub fn new_tap() -> String {
    use std::hash::{BuildHasher, RandomState};
    let hash = |n: u8| u128::from(RandomState::new().hash_one(n));
    format!("{:032x}", hash(1) << 64 | hash(2))
}

/// A pushlab server running in this process.
pub struct Server {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    /// The certificate's SHA-256, for a server started with [`Server::start_tls`].
    pub fingerprint: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    /// `None` for a server this process did not start ([`Server::at`]).
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with extra flags, e.g. `&["--history", "5"]`.
    pub async fn start_with(flags: &[&str]) -> Self {
        let mut args = vec!["pushlab", "--addr", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        let config = Config::parse_from(args);
        let listener = pushlab::listen(&config).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pushlab::serve(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://{addr}"),
            addr,
            http: reqwest::Client::new(),
            fingerprint: None,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts with `--tls` (a self-signed certificate, made now) and extra flags; talk
    /// to it with the clients of [`https`].
    pub async fn start_tls(flags: &[&str]) -> Self {
        let mut args = vec!["pushlab", "--addr", "127.0.0.1:0", "--tls"];
        args.extend_from_slice(flags);
        let config = Config::parse_from(args);
        let tls = pushlab::tls::Tls::from_config(&config).unwrap().unwrap();
        let fingerprint = tls.fingerprint().to_owned();
        let listener = pushlab::listen(&config).await.unwrap();
        let state = std::sync::Arc::new(pushlab::AppState::open(config).await.unwrap());
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pushlab::run(listener, state, Some(tls), async {
            let _ = stopped.await;
        }));
        Self {
            base: format!("https://{addr}"),
            addr,
            http: reqwest::Client::new(),
            fingerprint: Some(fingerprint),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A server running elsewhere (another process, or a proxy in front of several),
    /// for the same clients to talk to. It cannot be shut down from here.
    pub fn at(addr: std::net::SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            addr,
            http: reqwest::Client::new(),
            fingerprint: None,
            stop: None,
            task: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts a message over HTTP and returns the stored message.
    pub async fn post(&self, author: &str, text: &str) -> Value {
        self.post_to("lobby", author, text).await
    }

    /// Posts a message to a room over HTTP and returns the stored message.
    pub async fn post_to(&self, room: &str, author: &str, text: &str) -> Value {
        let response = self
            .http
            .post(self.url(&in_room(room, "messages")))
            .json(&json!({ "author": author, "text": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "posting {text:?}");
        response.json().await.unwrap()
    }

    /// GETs a path and returns status and JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn stats(&self) -> Value {
        self.get_json("/api/stats").await.1
    }

    /// `GET /metrics`, as text.
    pub async fn metrics(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Asks the server to shut down gracefully and waits until it has.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        let task = self
            .task
            .take()
            .expect("only a server started here can be shut down");
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("server did not shut down in time")
            .unwrap()
    }
}

/// Awaits `fut`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Ids of a list of messages.
pub fn ids(messages: &[Value]) -> Vec<u64> {
    messages.iter().map(|m| m["id"].as_u64().unwrap()).collect()
}

/// One Server-Sent Event as read off the wire.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// A minimal `text/event-stream` reader over a streamed reqwest body.
pub struct SseClient {
    pub response_headers: reqwest::header::HeaderMap,
    /// The body's chunks; an error ends it.
    body: futures::stream::BoxStream<'static, bytes::Bytes>,
    /// Bytes read but not yet parsed; a chunk may end inside a UTF-8 character.
    buffer: Vec<u8>,
    /// Comment lines (keep-alives) seen so far.
    pub comments: usize,
}

impl SseClient {
    pub async fn connect(server: &Server, query: &str, last_event_id: Option<&str>) -> Self {
        Self::connect_to(server, "/api/events", query, last_event_id).await
    }

    /// Opens the stream at `path` (a room's `…/events`).
    pub async fn connect_to(
        server: &Server,
        path: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Self {
        let mut request = server.http.get(server.url(&format!("{path}{query}")));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        Self::reading(
            response.headers().clone(),
            response
                .bytes_stream()
                .scan((), |(), chunk| async { chunk.ok() })
                .boxed(),
        )
    }

    /// Opens the stream over a socket of the caller's (see [`tiny_buffer_socket`]).
    pub async fn connect_over(stream: tokio::net::TcpStream, query: &str) -> Self {
        use http_body_util::BodyExt;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(connection);
        let request = hyper::Request::get(format!("/api/events{query}"))
            .header("host", "localhost")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        let body = http_body_util::BodyStream::new(response.into_body().map_err(drop))
            .scan((), |(), frame| async { frame.ok() })
            .filter_map(|frame| async move { frame.into_data().ok() });
        Self::reading(headers, body.boxed())
    }

    /// Reads events from a response's headers and body chunks.
    pub fn reading(
        response_headers: reqwest::header::HeaderMap,
        body: futures::stream::BoxStream<'static, bytes::Bytes>,
    ) -> Self {
        Self {
            response_headers,
            body,
            buffer: Vec::new(),
            comments: 0,
        }
    }

    /// The next event (comments are counted and skipped); `None` when the stream ends.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(block).expect("SSE is UTF-8");
                let mut event = SseEvent::default();
                let mut has_field = false;
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                        continue;
                    }
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    has_field = true;
                    match field {
                        "id" => event.id = Some(value.to_owned()),
                        "event" => event.event = Some(value.to_owned()),
                        "retry" => event.retry = value.parse().ok(),
                        "data" if event.data.is_empty() => event.data = value.to_owned(),
                        "data" => event.data = format!("{}\n{value}", event.data),
                        _ => {}
                    }
                }
                if has_field {
                    return Some(event);
                }
                continue;
            }
            match self.body.next().await {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => return None,
            }
        }
    }

    /// Reads keep-alive comments until `n` have come in all; false if the stream ends
    /// first. (It stops at an event: read that with [`SseClient::next_event`].)
    pub async fn await_comments(&mut self, n: usize) -> bool {
        loop {
            while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                assert!(
                    self.buffer.starts_with(b":"),
                    "an event came before the keep-alives"
                );
                self.buffer.drain(..end + 2);
                self.comments += 1;
            }
            if self.comments >= n {
                return true;
            }
            match self.body.next().await {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => return false,
            }
        }
    }

    /// The next `message` event's JSON, skipping the `retry:` hint.
    pub async fn next_message(&mut self) -> Value {
        loop {
            let event = within("an SSE event", self.next_event())
                .await
                .expect("SSE stream ended");
            if event.event.as_deref() == Some(SSE_MESSAGE) {
                return event.json();
            }
            assert!(event.event.is_none(), "unexpected event {event:?}");
        }
    }
}

pub type WsStream<S = tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> =
    tokio_tungstenite::WebSocketStream<S>;

/// A WebSocket client that speaks pushlab's JSON frames, over a TCP connection of its
/// own by default, or over any stream (an HTTP/2 stream: see [`https`]).
pub struct WsClient<S = tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    pub socket: WsStream<S>,
}

impl WsClient {
    /// Connects over a socket of the caller's (see [`tiny_buffer_socket`]).
    pub async fn connect_over(server: &Server, stream: tokio::net::TcpStream, query: &str) -> Self {
        let url = format!("ws://{}/api/ws{query}", server.addr);
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        let handshake = tokio_tungstenite::client_async(url, stream);
        let (socket, _) = within("the WebSocket handshake", handshake).await.unwrap();
        Self { socket }
    }

    pub async fn connect(server: &Server, query: &str) -> Self {
        Self::connect_to(server, "/api/ws", query).await
    }

    /// Connects to the socket at `path` (a room's `…/ws`).
    pub async fn connect_to(server: &Server, path: &str, query: &str) -> Self {
        let url = format!("ws://{}{path}{query}", server.addr);
        let (socket, _) = within(
            "the WebSocket handshake",
            tokio_tungstenite::connect_async(url),
        )
        .await
        .unwrap();
        Self { socket }
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> WsClient<S> {
    pub async fn send_json(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(tungstenite::Message::text(text))
            .await
            .unwrap();
    }

    /// The next frame's JSON; `None` when the socket closed.
    pub async fn next_frame(&mut self) -> Option<Value> {
        loop {
            match within("a WebSocket frame", self.socket.next()).await? {
                Ok(tungstenite::Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).unwrap());
                }
                Ok(tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Skips frames until the server's close frame, and returns its code.
    pub async fn close_code(&mut self) -> u16 {
        within("the close frame", async {
            loop {
                match self.socket.next().await {
                    Some(Ok(tungstenite::Message::Close(Some(frame)))) => {
                        return u16::from(frame.code);
                    }
                    Some(Ok(_)) => continue,
                    other => panic!("expected a close frame, got {other:?}"),
                }
            }
        })
        .await
    }

    /// The next `{"type":"message"}` frame's message.
    pub async fn next_message(&mut self) -> Value {
        let frame = self.next_frame().await.expect("socket closed");
        match serde_json::from_value(frame.clone()) {
            Ok(ServerFrame::Message { message }) => message,
            _ => panic!("expected a message frame, got {frame}"),
        }
    }
}

/// A short-poll or long-poll client that follows `last_id`.
pub struct Poller {
    pub path: String,
    pub cursor: u64,
}

impl Poller {
    pub fn short() -> Self {
        Self::at("/api/messages")
    }

    pub fn long() -> Self {
        Self::at("/api/messages/long-poll")
    }

    /// A poller of `path` (a room's `…/messages` or `…/messages/long-poll`).
    pub fn at(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            cursor: 0,
        }
    }

    /// One request from the cursor; moves the cursor to `last_id`.
    pub async fn poll(&mut self, server: &Server) -> Vec<Value> {
        let (status, body) = server
            .get_json(&format!("{}?since={}", self.path, self.cursor))
            .await;
        assert_eq!(status, 200, "{body}");
        let answer: PollAnswer<Value> = serde_json::from_value(body.clone()).unwrap();
        assert!(!answer.reset, "{body}");
        self.cursor = answer.last_id;
        answer.messages
    }

    /// Polls until `n` messages have arrived, and returns them.
    pub async fn collect(&mut self, server: &Server, n: usize) -> Vec<Value> {
        // A short poller asks at an interval, like the page does (here a fast one).
        let mut interval = tokio::time::interval(Duration::from_millis(20));
        within("polled messages", async {
            let mut got = Vec::new();
            while got.len() < n {
                interval.tick().await;
                got.extend(self.poll(server).await);
            }
            got
        })
        .await
    }
}

/// Sends raw bytes as an HTTP request (with `Connection: close`) and returns all the
/// server wrote back; for requests a well-behaved client library would not send.
pub async fn raw_http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    within("the server's answer", stream.read_to_end(&mut answer))
        .await
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Polls `condition` until it holds, failing the test after [`PATIENCE`]; for state
/// that has no event to await (a counter in /api/stats going down).
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    // Checks at a modest pace, so that waiting does not load the machine it waits on.
    let mut pace = tokio::time::interval(Duration::from_millis(5));
    within(what, async {
        while !condition().await {
            pace.tick().await;
        }
    })
    .await;
}

/// A connection to `addr` whose receive buffer is a few KiB (and not auto-tuned), so
/// that a client that stops reading fills the server's socket buffers quickly.
pub async fn tiny_buffer_socket(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// A WebTransport session to a server started with `--webtransport`, opened as the
/// page opens it: the certificate's hash from the server, then a session that trusts
/// only that certificate.
pub struct WtClient {
    pub connection: wtransport::Connection,
    lines: tokio::io::BufReader<wtransport::RecvStream>,
}

/// Why a WebTransport session could not be opened.
pub type WtRefusal = wtransport::error::ConnectingError;

/// A DNS resolver that answers every name with one address.
#[derive(Debug)]
struct Rebound(std::net::SocketAddr);

impl wtransport::config::DnsResolver for Rebound {
    fn resolve(&self, _host: &str) -> std::pin::Pin<Box<dyn wtransport::config::DnsLookupFuture>> {
        let addr = self.0;
        Box::pin(async move { Ok(Some(addr)) })
    }
}

impl WtClient {
    /// Opens a session at `path_and_query` (`/api/webtransport?since=0`).
    pub async fn connect(server: &Server, path_and_query: &str) -> Self {
        Self::try_connect(server, path_and_query, None)
            .await
            .unwrap_or_else(|e| panic!("no WebTransport session at {path_and_query}: {e}"))
    }

    /// Opens a session, sending `origin` as a page would; or says why not.
    pub async fn try_connect(
        server: &Server,
        path_and_query: &str,
        origin: Option<&str>,
    ) -> Result<Self, WtRefusal> {
        let authority = server.addr.to_string();
        Self::try_connect_at(server, &authority, path_and_query, origin).await
    }

    /// Opens a session at `https://{authority}{path_and_query}` whatever host name
    /// `authority` has: every name resolves to the server's address, as a name an
    /// attacker points at 127.0.0.1 does (DNS rebinding).
    pub async fn try_connect_at(
        server: &Server,
        authority: &str,
        path_and_query: &str,
        origin: Option<&str>,
    ) -> Result<Self, WtRefusal> {
        let (status, answer) = server.get_json("/api/webtransport/certificate-hash").await;
        assert_eq!(status, 200, "{answer}");
        let hex = answer["hash"]["value"].as_str().unwrap();
        let bytes: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let hash = wtransport::tls::Sha256Digest::new(bytes.try_into().unwrap());
        let config = wtransport::ClientConfig::builder()
            .with_bind_address("127.0.0.1:0".parse().unwrap())
            .with_server_certificate_hashes([hash])
            .dns_resolver(Rebound(server.addr))
            .build();
        let endpoint = wtransport::Endpoint::client(config).unwrap();
        let url = format!("https://{authority}{path_and_query}");
        let mut request = wtransport::endpoint::ConnectOptions::builder(url);
        if let Some(origin) = origin {
            request = request.add_header("origin", origin);
        }
        let connection =
            within("a WebTransport session", endpoint.connect(request.build())).await?;
        let down = within("the server's stream", connection.accept_uni())
            .await
            .unwrap();
        Ok(Self {
            connection,
            lines: tokio::io::BufReader::new(down),
        })
    }

    /// The next line the server sends, as JSON; `None` once the stream ends.
    pub async fn next_frame(&mut self) -> Option<Value> {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        let read = within("a WebTransport line", self.lines.read_line(&mut line)).await;
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                assert!(line.ends_with('\n'), "a frame is a whole line: {line:?}");
                Some(serde_json::from_str(&line).unwrap())
            }
        }
    }

    /// The next chat message (a `message` frame), failing on anything else.
    pub async fn next_message(&mut self) -> Value {
        let frame = self.next_frame().await.expect("the stream ended");
        assert_eq!(frame["type"], "message", "{frame}");
        frame["message"].clone()
    }

    /// The next frame the server sends on a unidirectional stream of its own
    /// (`delivery=stream-per-message`), read to its FIN.
    pub async fn next_own_stream(&self) -> Value {
        use tokio::io::AsyncReadExt;
        let mut own = within("a stream of its own", self.connection.accept_uni())
            .await
            .unwrap();
        let mut text = String::new();
        within("its FIN", own.read_to_string(&mut text))
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The next datagram the server sends (`delivery=datagrams`), as JSON.
    pub async fn next_datagram(&self) -> Value {
        let datagram = within("a datagram", self.connection.receive_datagram())
            .await
            .unwrap();
        serde_json::from_slice(datagram.payload().as_ref()).unwrap()
    }

    /// Sends raw bytes on a new bidirectional stream and returns the server's reply.
    pub async fn send_raw(&self, bytes: &[u8]) -> Value {
        use tokio::io::AsyncReadExt;
        let (mut up, mut reply) = within("a stream", async {
            self.connection.open_bi().await.unwrap().await.unwrap()
        })
        .await;
        up.write_all(bytes).await.unwrap();
        up.finish().await.unwrap();
        let mut answer = String::new();
        within("the reply", reply.read_to_string(&mut answer))
            .await
            .unwrap();
        serde_json::from_str(&answer).unwrap()
    }

    /// Publishes a message over the session and returns the server's reply.
    pub async fn send(&self, author: &str, text: &str) -> Value {
        let frame = json!({ "type": "send", "author": author, "text": text });
        self.send_raw(frame.to_string().as_bytes()).await
    }
}
