//! The protections over HTTP/2, each against a client that misbehaves on purpose:
//! hyper's client where a correct library can still be abusive (held streams, bodies
//! that never end, huge headers), hand-written frames where only a broken client would
//! do it (more streams than allowed, rapid reset, a silent TLS handshake).

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use common::https::{H2, json_of};
use common::raw_h2::{
    CANCEL, ENABLE_CONNECT_PROTOCOL, END_STREAM, ENHANCE_YOUR_CALM, GOAWAY, HEADERS,
    MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE, REFUSED_STREAM, RST_STREAM, RawH2, WINDOW_UPDATE,
};
use common::{Server, eventually, within};
use http_body_util::{Full, StreamBody};
use hyper::Request;
use hyper::body::Frame;
use serde_json::Value;
use tokio::io::AsyncReadExt;

async fn stats(h2: &H2) -> Value {
    h2.get_json("/api/stats").await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_announces_its_limits_and_extended_connect() {
    let server = Server::start_tls(&["--h2-max-streams", "7"]).await;
    let raw = RawH2::connect(&server).await;
    assert_eq!(raw.setting(MAX_CONCURRENT_STREAMS), Some(7));
    assert_eq!(raw.setting(MAX_HEADER_LIST_SIZE), Some(32 * 1024));
    assert_eq!(raw.setting(ENABLE_CONNECT_PROTOCOL), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_the_concurrent_limit_are_refused_before_the_app() {
    let server = Server::start_tls(&["--h2-max-streams", "3"]).await;
    let mut raw = RawH2::connect(&server).await;
    // Four SSE streams at once, where three are allowed: a correct client would wait.
    for stream in [1, 3, 5, 7] {
        raw.get(stream, "/api/events");
    }
    raw.flush().await;
    let refused = raw
        .read_until(|f| f.kind == RST_STREAM)
        .await
        .expect("a refused stream");
    assert_eq!((refused.stream, refused.error_code()), (7, REFUSED_STREAM));

    let h2 = H2::connect(&server).await;
    eventually("the three allowed streams to be open", || async {
        stats(&h2).await["transports"]["sse"]["open"] == 3
    })
    .await;
    assert_eq!(stats(&h2).await["transports"]["sse"]["requests"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_header_list_gets_431_and_never_reaches_the_app() {
    let server = Server::start_tls(&[]).await;
    let h2 = H2::connect(&server).await;
    // HPACK could send this in a few bytes once indexed; the limit is on the decoded size.
    let request = Request::get("/api/events")
        .header("x-junk", "a".repeat(40 * 1024))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = h2.send(request).await;
    assert_eq!(response.status(), 431);
    // The connection is still good, and the stream never reached the app.
    assert_eq!(stats(&h2).await["transports"]["sse"]["requests"], 0);
}

/// CVE-2023-44487: open a stream, cancel it at once, again and again. Cancelled
/// streams never count against the concurrent limit, so without a limit of their own
/// the server would start work for each as fast as the client can write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_gets_goaway_and_does_bounded_work() {
    let server = Server::start_tls(&[]).await;
    let h2 = H2::connect(&server).await;
    let mut raw = RawH2::connect(&server).await;
    const ATTEMPTS: u32 = 10_000;
    let mut sent = 0;
    let goaway = within("GOAWAY", async {
        for batch in 0..ATTEMPTS / 100 {
            for i in 0..100 {
                let stream = 2 * (batch * 100 + i) + 1;
                raw.get(stream, "/api/messages/long-poll?timeout=30");
                raw.reset(stream, CANCEL);
            }
            raw.flush().await;
            sent += 100;
        }
        raw.read_until(|f| f.kind == GOAWAY).await
    })
    .await
    .expect("GOAWAY before the connection closed");
    assert_eq!(goaway.error_code(), ENHANCE_YOUR_CALM);
    // The connection is closed after the GOAWAY.
    assert!(raw.read_until(|_| false).await.is_none());

    let reached = stats(&h2).await["transports"]["long_poll"]["requests"]
        .as_u64()
        .unwrap();
    assert!(
        reached < 1_000,
        "{reached} of {sent} cancelled streams reached the app"
    );
    // Whatever did reach it was cancelled, and gave its place back.
    eventually("the cancelled long polls to be released", || async {
        stats(&h2).await["transports"]["long_poll"]["open"] == 0
    })
    .await;
}

/// The other way round (CVE-2025-8671, "MadeYouReset"): frames that make the *server*
/// reset each stream it just accepted, here a zero WINDOW_UPDATE, a stream error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_the_server_must_reset_for_errors_are_bounded_too() {
    let server = Server::start_tls(&[]).await;
    let h2 = H2::connect(&server).await;
    let mut raw = RawH2::connect(&server).await;
    let goaway = within("GOAWAY", async {
        for batch in 0..20 {
            for i in 0..100 {
                let stream = 2 * (batch * 100 + i) + 1;
                raw.get(stream, "/api/messages/long-poll?timeout=30");
                raw.frame(WINDOW_UPDATE, 0, stream, &0x7fff_ffffu32.to_be_bytes());
            }
            raw.flush().await;
        }
        raw.read_until(|f| f.kind == GOAWAY).await
    })
    .await
    .expect("GOAWAY before the connection closed");
    assert_eq!(goaway.error_code(), ENHANCE_YOUR_CALM);
    let reached = stats(&h2).await["transports"]["long_poll"]["requests"]
        .as_u64()
        .unwrap();
    assert!(reached <= 200, "{reached} of 2000 streams reached the app");
    eventually("the reset long polls to be released", || async {
        stats(&h2).await["transports"]["long_poll"]["open"] == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_streams_count_against_the_connection_caps() {
    let server = Server::start_tls(&["--max-connections-per-ip", "2"]).await;
    let h2 = H2::connect(&server).await;
    let first = h2.sse("").await;
    let _second = h2.websocket("").await;
    // One TCP connection, but two held streams: the cap is full.
    let (status, body) = json_of(h2.get("/api/messages/long-poll?timeout=1").await).await;
    assert_eq!(status, 503, "{body}");
    let refused = h2.get("/api/events").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    assert_eq!(
        h2.get_json("/api/messages").await.0,
        200,
        "short polls hold nothing"
    );

    drop(first); // hyper's client cancels the stream (RST_STREAM CANCEL)
    eventually("the cancelled stream to free its place", || async {
        stats(&h2).await["transports"]["sse"]["open"] == 0
    })
    .await;
    let _third = h2.sse("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_ends_gets_408_and_one_too_big_413() {
    let server = Server::start_tls(&["--body-timeout", "0.3"]).await;
    let h2 = H2::connect(&server).await;
    let (chunks, body) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    chunks
        .send(Ok(Frame::data(Bytes::from_static(b"{\"author\":"))))
        .await
        .unwrap();
    let body = StreamBody::new(tokio_stream_of(body));
    let request = Request::post("/api/messages")
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let (status, answer) = json_of(h2.send(request).await).await;
    assert_eq!(status, 408, "{answer}");
    drop(chunks);

    let request = Request::post("/api/messages")
        .header("content-type", "application/json")
        .body(Full::from(vec![b' '; 20 * 1024]))
        .unwrap();
    let (status, answer) = json_of(h2.send(request).await).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(h2.get_json("/api/messages?since=0").await.1["last_id"], 0);
}

/// HTTP/2's flow control stops the server before a non-reading client's socket fills,
/// so the write deadline never fires; an unanswered PING is what shows it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_by_an_unanswered_ping() {
    let server = Server::start_tls(&["--slow-client-timeout", "0.3"]).await;
    let h2 = H2::connect(&server).await;
    let mut raw = RawH2::connect(&server).await;
    raw.get(1, "/api/events");
    raw.flush().await;
    // From here on the raw client reads nothing and answers nothing.
    eventually("the stream to be open", || async {
        stats(&h2).await["transports"]["sse"]["open"] == 1
    })
    .await;
    eventually("the silent connection to be cut", || async {
        let stats = stats(&h2).await;
        stats["transports"]["sse"]["open"] == 0 && stats["limits"]["stalled_connections"] == 1
    })
    .await;
    // The healthy connection, which answers PINGs (hyper's client does), is still here.
    assert_eq!(h2.get_json("/healthz").await.0, 200);
    drop(raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tls_handshake_is_cut_off() {
    let server = Server::start_tls(&["--header-timeout", "0.3"]).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // Sends no ClientHello: the server must hang up, not wait forever.
    let mut byte = [0u8; 1];
    let read = within("the server to hang up", tcp.read(&mut byte)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_no_request_after_tls_is_closed() {
    let server = Server::start_tls(&["--header-timeout", "0.3"]).await;
    // TLS, the HTTP/2 preface and SETTINGS, then nothing: no request ever comes.
    let mut raw = RawH2::connect(&server).await;
    assert!(
        raw.read_until(|_| false).await.is_none(),
        "the server closes the connection"
    );
}

/// Slowloris over HTTP/2: a header block begun (HEADERS without END_HEADERS) and never
/// finished. Nothing else may be read on the connection meanwhile (RFC 9113 §6.10), so
/// the client cannot answer a PING either: a connection with a stream in progress is
/// cut by the unanswered PING, one without by the first-request deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_block_that_never_ends_is_cut_off() {
    let server =
        Server::start_tls(&["--header-timeout", "0.3", "--slow-client-timeout", "0.3"]).await;
    let h2 = H2::connect(&server).await;
    for held_stream in [false, true] {
        let mut raw = RawH2::connect(&server).await;
        let mut next = 1;
        if held_stream {
            raw.get(next, "/api/events");
            next += 2;
        }
        let block = raw.header_block("GET", "/api/messages", &[("x-slow", "1")]);
        raw.frame(HEADERS, END_STREAM, next, &block[..block.len() / 2]);
        raw.flush().await;
        assert!(
            raw.read_until(|_| false).await.is_none(),
            "the server closes the connection (held stream: {held_stream})"
        );
    }
    eventually("the held stream to be released", || async {
        stats(&h2).await["transports"]["sse"]["open"] == 0
    })
    .await;
    assert_eq!(stats(&h2).await["transports"]["short_poll"]["requests"], 0);
}

/// On HTTP/2 a connection is idle only when none of its streams is in progress: a
/// short request that ends beside a held SSE stream, or a WebSocket on a stream whose
/// CONNECT was answered long ago, must not let the keep-alive timeout close it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_a_stream_in_progress_is_never_idle() {
    let server = Server::start_tls(&["--keep-alive-timeout", "600"]).await;
    let idle_connections = |metrics: String| -> u64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with("pushlab_idle_connections "))
            .unwrap()
            .to_owned();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let scrape = |h2: H2| async move {
        let body = http_body_util::BodyExt::collect(h2.get("/metrics").await.into_body());
        String::from_utf8(body.await.unwrap().to_bytes().to_vec()).unwrap()
    };
    let observer = H2::connect(&server).await;

    let with_sse = H2::connect(&server).await;
    let sse = with_sse.sse("").await;
    assert_eq!(with_sse.get_json("/healthz").await.0, 200); // ends beside the stream
    let with_ws = H2::connect(&server).await;
    let mut ws = with_ws.websocket("").await;
    // The observer is serving its own scrape: no connection is idle.
    assert_eq!(idle_connections(scrape(observer.clone()).await), 0);

    // Once the streams end, the connections are idle again.
    drop(sse);
    ws.socket.close(None).await.unwrap();
    eventually("both connections to be idle", || async {
        idle_connections(scrape(observer.clone()).await) == 2
    })
    .await;
}

/// A stream of body frames from a channel.
fn tokio_stream_of<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + Sync {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
