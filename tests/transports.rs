//! Each transport, on its own, speaking the API contract over real sockets.

mod common;

use std::time::{Duration, Instant};

use common::{Poller, Server, SseClient, WsClient, eventually, ids, within};
use serde_json::{Value, json};

#[tokio::test]
async fn posting_returns_201_with_the_stored_message() {
    let server = Server::start().await;
    let message = server.post("  alice ", "hi <b>there</b>").await;
    assert_eq!(message["id"], 1);
    assert_eq!(message["author"], "alice");
    assert_eq!(message["text"], "hi <b>there</b>");
    assert_eq!(message["via"], "http");
    let sent_at = message["sent_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(sent_at).is_ok() && sent_at.ends_with('Z'),
        "{sent_at}"
    );
    assert_eq!(server.post("bob", "again").await["id"], 2);
}

#[tokio::test]
async fn short_poll_answers_at_once_with_messages_after_the_cursor() {
    let server = Server::start().await;
    for i in 1..=3 {
        server.post("alice", &format!("m{i}")).await;
    }
    let (status, body) = server.get_json("/api/messages?since=1").await;
    assert_eq!(status, 200);
    assert_eq!(ids(body["messages"].as_array().unwrap()), [2, 3]);
    assert_eq!(
        (body["last_id"].clone(), body["reset"].clone()),
        (json!(3), json!(false))
    );

    let (_, empty) = server.get_json("/api/messages?since=3").await;
    assert_eq!(empty["messages"], json!([]));
    assert_eq!(
        empty["last_id"], 3,
        "an empty answer points at the newest id"
    );
}

#[tokio::test]
async fn short_poll_without_a_cursor_gives_the_fifty_most_recent() {
    let server = Server::start().await;
    for i in 0..55 {
        server.post("alice", &format!("m{i}")).await;
    }
    let (_, body) = server.get_json("/api/messages").await;
    assert_eq!(
        ids(body["messages"].as_array().unwrap()),
        (6..=55).collect::<Vec<_>>()
    );
    assert_eq!(body["last_id"], 55);
}

#[tokio::test]
async fn following_last_id_sees_every_message_once_even_when_limit_cuts_answers_short() {
    let server = Server::start().await;
    for i in 0..23 {
        server.post("alice", &format!("m{i}")).await;
    }
    let mut cursor = 0;
    let mut seen = Vec::new();
    loop {
        let (_, body) = server
            .get_json(&format!("/api/messages?since={cursor}&limit=5"))
            .await;
        let messages = body["messages"].as_array().unwrap();
        assert!(messages.len() <= 5);
        if messages.is_empty() {
            break;
        }
        seen.extend(ids(messages));
        cursor = body["last_id"].as_u64().unwrap();
    }
    assert_eq!(seen, (1..=23).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_cursor_older_than_the_history_is_answered_with_a_reset() {
    let server = Server::start_with(&["--history", "3"]).await;
    for i in 0..6 {
        server.post("alice", &format!("m{i}")).await;
    }
    for path in ["/api/messages?since=1", "/api/messages/long-poll?since=1"] {
        let (_, body) = server.get_json(path).await;
        assert_eq!(body["reset"], true, "{path}");
        assert_eq!(
            ids(body["messages"].as_array().unwrap()),
            [4, 5, 6],
            "{path}"
        );
        assert_eq!(body["last_id"], 6);
    }
}

#[tokio::test]
async fn a_cursor_ahead_of_the_hub_resets_and_never_holds_a_long_poll() {
    let server = Server::start().await;
    server.post("alice", "one").await;
    let started = Instant::now();
    let (_, body) = server
        .get_json("/api/messages/long-poll?since=500&timeout=30")
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the long poll was held"
    );
    assert_eq!(body["reset"], true);
    assert_eq!(ids(body["messages"].as_array().unwrap()), [1]);
}

#[tokio::test]
async fn long_poll_answers_at_once_when_something_is_already_newer() {
    let server = Server::start().await;
    server.post("alice", "waiting for you").await;
    let (_, body) = within(
        "an immediate answer",
        server.get_json("/api/messages/long-poll?since=0&timeout=30"),
    )
    .await;
    assert_eq!(ids(body["messages"].as_array().unwrap()), [1]);
}

#[tokio::test]
async fn long_poll_wakes_when_a_message_is_published() {
    let server = Server::start().await;
    let held = server.get_json("/api/messages/long-poll?since=0&timeout=30");
    let publish = async {
        // Publish only once the request is held by the server.
        eventually("the long poll to be held", || async {
            server.stats().await["transports"]["long_poll"]["open"] == 1
        })
        .await;
        let published = Instant::now();
        server.post("alice", "wake up").await;
        published
    };
    let ((status, body), published) = tokio::join!(held, publish);
    let answered = published.elapsed();
    assert_eq!(status, 200);
    assert_eq!(ids(body["messages"].as_array().unwrap()), [1]);
    assert!(
        answered < Duration::from_secs(1),
        "answered after {answered:?}"
    );
}

#[tokio::test]
async fn long_poll_times_out_empty_after_the_timeout() {
    let server = Server::start().await;
    server.post("alice", "old news").await;
    let started = Instant::now();
    let (status, body) = server
        .get_json("/api/messages/long-poll?since=1&timeout=1")
        .await;
    let held = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(body["messages"], json!([]));
    assert_eq!(body["last_id"], 1);
    assert!(held >= Duration::from_millis(950), "held only {held:?}");
    assert!(held < Duration::from_secs(5), "held {held:?}");
}

#[tokio::test]
async fn long_poll_with_timeout_zero_answers_at_once() {
    let server = Server::start().await;
    let (status, body) = within(
        "an immediate answer",
        server.get_json("/api/messages/long-poll?since=0&timeout=0"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["messages"].clone(), body["last_id"].clone()),
        (json!([]), json!(0))
    );
}

#[tokio::test]
async fn long_poll_without_a_cursor_waits_for_the_next_message() {
    let server = Server::start().await;
    let held = server.get_json("/api/messages/long-poll?timeout=30");
    let publish = async {
        eventually("the long poll to be held", || async {
            server.stats().await["transports"]["long_poll"]["open"] == 1
        })
        .await;
        server.post("alice", "first").await;
    };
    let ((_, body), ()) = tokio::join!(held, publish);
    assert_eq!(ids(body["messages"].as_array().unwrap()), [1]);
}

#[tokio::test]
async fn sse_streams_each_message_as_an_event_with_its_id() {
    let server = Server::start().await;
    server.post("alice", "before").await;
    let mut sse = SseClient::connect(&server, "?since=0", None).await;
    assert_eq!(sse.response_headers["content-type"], "text/event-stream");
    assert_eq!(sse.response_headers["cache-control"], "no-cache");
    assert_eq!(sse.response_headers["x-accel-buffering"], "no");

    let hint = within("the retry hint", sse.next_event()).await.unwrap();
    assert_eq!(hint.retry, Some(3000));

    let event = within("the first event", sse.next_event()).await.unwrap();
    assert_eq!(event.event.as_deref(), Some("message"));
    assert_eq!(event.id.as_deref(), Some("1"));
    assert_eq!(event.json()["text"], "before");

    server.post("bob", "after").await;
    let event = within("a live event", sse.next_event()).await.unwrap();
    assert_eq!(event.id.as_deref(), Some("2"));
    assert_eq!(event.json()["text"], "after");
}

/// Reads from `stream` into `seen` until it contains `wanted`.
async fn read_until(stream: &mut tokio::net::TcpStream, seen: &mut Vec<u8>, wanted: &str) {
    use tokio::io::AsyncReadExt;
    within(wanted, async {
        while !String::from_utf8_lossy(seen).contains(wanted) {
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the stream ended before {wanted:?}: {seen:?}");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await;
}

/// Opens the lobby's stream with a raw `GET` in HTTP `version` and reads up to the end
/// of `first` (the retry hint, as that version frames it): the socket, the response
/// head and what followed it.
async fn raw_sse(
    server: &Server,
    version: &str,
    first: &str,
) -> (tokio::net::TcpStream, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!("GET /api/events?since=0 {version}\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    read_until(&mut stream, &mut seen, first).await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (stream, head.to_owned(), body.to_owned())
}

/// Over HTTP/1.1 the connection's task writes the stream itself, not hyper
/// (`server/long_lived.rs`): on the wire it is the same chunked response, one chunk per
/// event, ended by the last chunk when the server shuts down.
#[tokio::test]
async fn sse_over_http1_is_a_chunked_response_ended_by_the_last_chunk_at_shutdown() {
    use tokio::io::AsyncReadExt;
    let server = Server::start().await;
    let (mut stream, head, body) = raw_sse(&server, "HTTP/1.1", "retry: 3000\n\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    for line in [
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "transfer-encoding: chunked",
        "date: ",
    ] {
        assert!(head.contains(line), "{line} not in {head}");
    }
    assert_eq!(body, "D\r\nretry: 3000\n\n\r\n");

    let posted = server.post("alice", "chunked").await;
    let mut seen = Vec::new();
    read_until(&mut stream, &mut seen, "\n\n\r\n").await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    let (size, event) = text.split_once("\r\n").unwrap();
    let event = event.strip_suffix("\r\n").unwrap();
    assert_eq!(usize::from_str_radix(size, 16).unwrap(), event.len());
    assert!(event.starts_with(&format!("id: {}\nevent: message\n", posted["id"])));
    assert!(event.contains(r#""text":"chunked""#), "{event}");

    let (stopped, rest) = tokio::join!(server.shutdown(), async {
        let mut rest = Vec::new();
        within("the end of the stream", stream.read_to_end(&mut rest))
            .await
            .unwrap();
        rest
    });
    stopped.unwrap();
    assert_eq!(String::from_utf8_lossy(&rest), "0\r\n\r\n");
}

/// An HTTP/1.0 client cannot read chunks: hyper serves its stream, unchunked, as
/// before the hand-off existed.
#[tokio::test]
async fn sse_over_http1_0_is_served_by_hyper_without_chunks() {
    let server = Server::start().await;
    let (_stream, head, body) = raw_sse(&server, "HTTP/1.0", "retry: 3000\n\n").await;
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert_eq!(body, "retry: 3000\n\n");
}

/// Reads one whole response from `stream` (its head, then `content-length` bytes of
/// body), keeping in `seen` whatever came after it.
async fn next_answer(stream: &mut tokio::net::TcpStream, seen: &mut Vec<u8>) -> (String, String) {
    use tokio::io::AsyncReadExt;
    within("a whole answer", async {
        loop {
            let text = String::from_utf8_lossy(seen).into_owned();
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .unwrap_or_else(|| panic!("no content-length in {head}"))
                    .parse()
                    .unwrap();
                if rest.len() >= length {
                    let answer = (head.to_owned(), rest[..length].to_owned());
                    seen.drain(..head.len() + 4 + length);
                    return answer;
                }
            }
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the connection ended: {seen:?}");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
}

/// Over HTTP/1.1 a held long poll is answered by the connection's task, not hyper
/// (`server/long_lived.rs`): the whole answer at once, with its length, and then the
/// connection serves what the client sent behind it, with the poll (pipelined) and
/// while it was held, in order.
#[tokio::test]
async fn a_held_long_poll_answers_whole_and_its_connection_serves_what_came_behind_it() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let poll = "GET /api/messages/long-poll?since=0 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let short = "GET /api/messages?since=0 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    stream
        .write_all(format!("{poll}{short}").as_bytes())
        .await
        .unwrap();
    let held = || async { server.stats().await["transports"]["long_poll"]["open"] == 1 };
    eventually("the poll to be held", held).await;
    stream.write_all(poll.as_bytes()).await.unwrap();
    let posted = server.post("alice", "held").await;

    let mut seen = Vec::new();
    let (head, body) = next_answer(&mut stream, &mut seen).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("\r\ndate: "), "{head}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["messages"][0]["text"], "held", "{answer}");
    assert_eq!(answer["last_id"], posted["id"]);
    // The short poll sent with it, then the long poll sent while it was held: both
    // see the message, which was published before they were read.
    for _ in 0..2 {
        let (head, body) = next_answer(&mut stream, &mut seen).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(ids(answer["messages"].as_array().unwrap()), [1], "{answer}");
    }
    assert!(seen.is_empty(), "{seen:?}");
}

/// A `GET` that comes with a body (which nobody reads) is not taken from hyper: a body
/// that arrives while the poll is held is not mistaken for the next request.
#[tokio::test]
async fn a_long_poll_sent_with_a_body_leaves_the_next_request_intact() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start().await;
    server.post("alice", "first").await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let poll = "GET /api/messages/long-poll?since=1&timeout=1 HTTP/1.1\r\nHost: localhost\r\n\
                Content-Length: 21\r\n\r\n";
    stream.write_all(poll.as_bytes()).await.unwrap();
    let held = || async { server.stats().await["transports"]["long_poll"]["open"] == 1 };
    eventually("the poll to be held", held).await;
    let rest = "GET /nowhere HTTP/1.1GET /api/messages?since=0 HTTP/1.1\r\n\
                Host: localhost\r\nConnection: close\r\n\r\n";
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let (head, body) = next_answer(&mut stream, &mut seen).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["last_id"], 1);
    // Then the short poll's answer, or the connection closed (hyper may close one
    // whose body nobody read); never an error for the body read as a request.
    within("the connection to end", stream.read_to_end(&mut seen))
        .await
        .unwrap();
    let rest = String::from_utf8_lossy(&seen);
    if !rest.is_empty() {
        assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest}");
        assert!(rest.contains(r#""text":"first""#), "{rest}");
    }
}

/// A client that goes away while its poll is held is no longer counted, on HTTP/1.1
/// (where the connection's task holds the poll) as before.
#[tokio::test]
async fn a_long_poll_whose_client_leaves_while_held_is_let_go() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let poll = "GET /api/messages/long-poll?since=0 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    stream.write_all(poll.as_bytes()).await.unwrap();
    let open = |n: u64| {
        let server = &server;
        move || async move { server.stats().await["transports"]["long_poll"]["open"] == n }
    };
    eventually("the poll to be held", open(1)).await;
    drop(stream);
    eventually("the poll to be let go", open(0)).await;
}

/// Where hyper writes the answer (a `HEAD`, a client that asked to close, HTTP/1.0),
/// a held poll answers as it always did: with its length, when it is ready.
#[tokio::test]
async fn a_long_poll_hyper_answers_is_whole_too() {
    let server = Server::start().await;
    for (request, version) in [
        ("HEAD", "HTTP/1.1\r\nConnection: close"),
        ("GET", "HTTP/1.0"),
        ("GET", "HTTP/1.1\r\nConnection: close"),
    ] {
        let answer = common::raw_http(
            server.addr,
            &format!(
                "{request} /api/messages/long-poll?since=0&timeout=1 {version}\r\nHost: localhost\r\n\r\n"
            ),
        )
        .await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(" 200 OK\r\n"), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
        let empty = r#"{"messages":[],"last_id":0,"reset":false}"#;
        assert!(
            head.contains(&format!("content-length: {}", empty.len())),
            "{head}"
        );
        let expected = if request == "HEAD" { "" } else { empty };
        assert_eq!(body, expected, "{request} {version}");
    }
}

#[tokio::test]
async fn sse_resumes_from_last_event_id_which_wins_over_since() {
    let server = Server::start().await;
    for i in 1..=4 {
        server.post("alice", &format!("m{i}")).await;
    }
    let mut sse = SseClient::connect(&server, "?since=0", Some("2")).await;
    assert_eq!(sse.next_message().await["id"], 3);
    assert_eq!(sse.next_message().await["id"], 4);
}

#[tokio::test]
async fn sse_with_a_lost_cursor_sends_a_reset_event_first() {
    let server = Server::start_with(&["--history", "2"]).await;
    for i in 1..=5 {
        server.post("alice", &format!("m{i}")).await;
    }
    let mut sse = SseClient::connect(&server, "?since=1", None).await;
    let _retry = sse.next_event().await.unwrap();
    let reset = within("the reset", sse.next_event()).await.unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(reset.json(), json!({ "last_id": 3 }));
    assert_eq!(
        reset.id.as_deref(),
        Some("3"),
        "a reconnect resumes from the reset"
    );
    assert_eq!(sse.next_message().await["id"], 4);
}

#[tokio::test]
async fn websocket_pushes_history_then_live_messages() {
    let server = Server::start().await;
    server.post("alice", "before").await;
    let mut ws = WsClient::connect(&server, "?since=0").await;
    assert_eq!(ws.next_message().await["text"], "before");
    server.post("bob", "after").await;
    let live = ws.next_message().await;
    assert_eq!(
        (live["id"].clone(), live["text"].clone()),
        (json!(2), json!("after"))
    );
}

#[tokio::test]
async fn websocket_send_publishes_a_message_marked_via_websocket() {
    let server = Server::start().await;
    let mut ws = WsClient::connect(&server, "?since=0").await;
    ws.send_json(json!({ "type": "send", "author": "carol", "text": "over the socket" }))
        .await;
    let echoed = ws.next_message().await;
    assert_eq!(echoed["via"], "websocket");
    assert_eq!(echoed["author"], "carol");
    let (_, body) = server.get_json("/api/messages?since=0").await;
    assert_eq!(body["messages"][0], echoed, "stored exactly as pushed");
}

#[tokio::test]
async fn websocket_with_a_lost_cursor_sends_a_reset_frame_first() {
    let server = Server::start_with(&["--history", "2"]).await;
    for i in 1..=5 {
        server.post("alice", &format!("m{i}")).await;
    }
    let mut ws = WsClient::connect(&server, "?since=0").await;
    let reset = ws.next_frame().await.unwrap();
    assert_eq!(reset, json!({ "type": "reset", "last_id": 3 }));
    assert_eq!(ws.next_message().await["id"], 4);
}

#[tokio::test]
async fn stats_count_requests_deliveries_and_open_connections_per_transport() {
    let server = Server::start().await;
    let mut ws = WsClient::connect(&server, "?since=0").await;
    let mut sse = SseClient::connect(&server, "?since=0", None).await;
    server.post("alice", "counted").await;
    ws.next_message().await;
    sse.next_message().await;
    Poller::short().collect(&server, 1).await;

    let stats = server.stats().await;
    let t = &stats["transports"];
    assert_eq!(t["websocket"]["open"], 1);
    assert_eq!(t["sse"]["open"], 1);
    assert_eq!(t["websocket"]["delivered"], 1);
    assert_eq!(t["sse"]["delivered"], 1);
    assert!(t["short_poll"]["requests"].as_u64().unwrap() >= 1);
    assert_eq!(t["short_poll"]["delivered"], 1);
    for transport in ["short_poll", "sse", "websocket"] {
        assert!(
            t[transport]["bytes_sent"].as_u64().unwrap() > 0,
            "{transport}"
        );
    }
    assert_eq!(
        stats["hub"],
        json!({ "last_id": 1, "retained": 1, "rooms": 1, "lags": 0, "store_errors": 0 })
    );

    drop(sse);
    ws.socket.close(None).await.unwrap();
    eventually("open connections to go back to 0", || async {
        let t = server.stats().await["transports"].clone();
        t["sse"]["open"] == 0 && t["websocket"]["open"] == 0
    })
    .await;
}

#[tokio::test]
async fn presence_lists_push_clients_while_connected_and_pollers_that_asked() {
    let server = Server::start().await;
    let ws = WsClient::connect(&server, "?client=tab1&name=alice").await;
    let (status, _) = server.get_json("/api/messages?client=tab2&name=bob").await;
    assert_eq!(status, 200);
    let (_, mut online) = server.get_json("/api/presence").await;
    // Each seat names the TCP connection its request came on: here one each.
    let connections: Vec<Value> = online["clients"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .map(|seat| seat.as_object_mut().unwrap().remove("connection").unwrap())
        .collect();
    assert_ne!(connections[0], connections[1]);
    assert_eq!(
        online["clients"],
        json!([
            { "client": "tab1", "name": "alice", "transport": "websocket", "http": "http/1.1" },
            { "client": "tab2", "name": "bob", "transport": "short_poll", "http": "http/1.1" },
        ])
    );
    drop(ws);
    eventually("the WebSocket client to leave", || async {
        let (_, online) = server.get_json("/api/presence").await;
        online["clients"].as_array().unwrap().len() == 1
    })
    .await;
}

#[tokio::test]
async fn health_and_the_placeholder_page_answer() {
    let server = Server::start().await;
    let (status, _) = server.get_json("/healthz").await;
    assert_eq!(status, 200);
    let page = server.http.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains("pushlab"));
}
