//! The wire tap (`GET /api/tap/{id}`): a client sees the real bytes of its own
//! connections, decoded, and never another client's.

mod common;

use common::{Server, SseClient, WsClient, new_tap, within};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

async fn read_tap(server: &Server, tap: &str) -> Value {
    let (status, body) = server.get_json(&format!("/api/tap/{tap}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The tap's rows, once `done` holds for them (rows arrive as the server writes).
async fn rows_when(server: &Server, tap: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    within("the tap's rows", async {
        let mut pace = tokio::time::interval(std::time::Duration::from_millis(20));
        loop {
            pace.tick().await;
            let rows = read_tap(server, tap).await["rows"]
                .as_array()
                .unwrap()
                .clone();
            if done(&rows) {
                return rows;
            }
        }
    })
    .await
}

fn has(rows: &[Value], kind: &str, from: &str, words: &str) -> bool {
    rows.iter().any(|row| {
        row["kind"] == kind
            && row["from"] == from
            && row["text"].as_str().unwrap_or_default().contains(words)
    })
}

#[tokio::test]
async fn a_client_sees_its_own_requests_and_responses_and_never_another_clients() {
    let server = Server::start().await;
    let (alice_tap, bob_tap) = (new_tap(), new_tap());
    read_tap(&server, &alice_tap).await;
    read_tap(&server, &bob_tap).await;
    // Separate clients, so separate connections, each with a header only it sends.
    let alice = reqwest::Client::new();
    let bob = reqwest::Client::new();
    let stream = |client: &reqwest::Client, tap: &str, secret: &str| {
        client
            .get(server.url(&format!("/api/events?since=0&tap={tap}")))
            .header("x-secret", secret)
            .send()
    };
    let alice_stream = stream(&alice, &alice_tap, "alice-secret").await.unwrap();
    let bob_stream = stream(&bob, &bob_tap, "bob-secret").await.unwrap();
    let posted = alice
        .post(server.url(&format!("/api/messages?tap={alice_tap}")))
        .header("x-secret", "alice-secret")
        .json(&json!({ "author": "alice", "text": "over the tap" }))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);
    // A request that names no tap is recorded nowhere.
    let untapped = bob
        .get(server.url("/api/messages?since=0"))
        .header("x-secret", "untapped-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(untapped.status(), 200);

    let alice_rows = rows_when(&server, &alice_tap, |rows| {
        has(rows, "event", "server", "over the tap")
    })
    .await;
    let bob_rows = rows_when(&server, &bob_tap, |rows| {
        has(rows, "event", "server", "over the tap")
    })
    .await;
    drop((alice_stream, bob_stream));

    // Alice's tap: her stream's request with its headers, the response head, the
    // retry: hint, her POST and its body, and the event that came back.
    assert!(has(
        &alice_rows,
        "request",
        "client",
        "x-secret: alice-secret"
    ));
    assert!(has(
        &alice_rows,
        "response",
        "server",
        "content-type: text/event-stream"
    ));
    assert!(has(&alice_rows, "retry", "server", "retry: 3000"));
    assert!(has(
        &alice_rows,
        "body",
        "client",
        r#""text":"over the tap""#
    ));
    assert!(has(&alice_rows, "response", "server", "201 Created"));
    // Bob's tap: the same event (it was published to everyone) on his own stream.
    assert!(has(&bob_rows, "request", "client", "x-secret: bob-secret"));

    let all = |rows: &[Value]| serde_json::to_string(rows).unwrap();
    for secret in ["bob-secret", "untapped-secret", bob_tap.as_str()] {
        assert!(
            !all(&alice_rows).contains(secret),
            "{secret} in alice's tap"
        );
    }
    for secret in [
        "alice-secret",
        "untapped-secret",
        alice_tap.as_str(),
        "POST",
    ] {
        assert!(!all(&bob_rows).contains(secret), "{secret} in bob's tap");
    }
}

#[tokio::test]
async fn websocket_frames_are_decoded_both_ways_with_the_close_handshake() {
    let server = Server::start().await;
    let tap = new_tap();
    read_tap(&server, &tap).await;
    let mut ws = WsClient::connect(&server, &format!("?since=0&tap={tap}")).await;
    // Long enough that the server's frame needs the 16-bit length form.
    let text = format!("framed {}", "x".repeat(60));
    ws.send_json(json!({ "type": "send", "author": "ws", "text": text }))
        .await;
    assert_eq!(ws.next_message().await["text"], text);
    ws.socket
        .send(tungstenite::Message::Close(Some(
            tungstenite::protocol::CloseFrame {
                code: 1000.into(),
                reason: "bye".into(),
            },
        )))
        .await
        .unwrap();
    let frames = |rows: &[Value], from: &str, opcode: &str| -> Vec<Value> {
        rows.iter()
            .filter(|r| {
                r["kind"] == "frame" && r["from"] == from && r["frame"]["opcode_name"] == opcode
            })
            .cloned()
            .collect()
    };
    let rows = rows_when(&server, &tap, |rows| {
        !frames(rows, "server", "close").is_empty()
    })
    .await;

    assert!(has(&rows, "request", "client", "Upgrade: websocket"));
    assert!(
        rows.iter()
            .any(|r| r["kind"] == "response" && r["summary"] == "HTTP/1.1 101 Switching Protocols")
    );
    // The client's frame: masked, with its key, its payload shown unmasked.
    let sent = &frames(&rows, "client", "text")[0];
    assert_eq!(sent["frame"]["fin"], true);
    assert_eq!(sent["frame"]["masked"], true);
    assert_eq!(
        sent["frame"]["masking_key"].as_str().unwrap().len(),
        11,
        "{sent}"
    );
    assert_eq!(sent["frame"]["length_form"], "7-bit");
    assert!(sent["text"].as_str().unwrap().contains(&text));
    assert_eq!(
        sent["head"].as_str().unwrap().split(' ').count(),
        6,
        "2 bytes + a 4-byte key"
    );
    // The server's: unmasked, and over 125 bytes, so the 16-bit length form.
    let received = &frames(&rows, "server", "text")[0];
    assert_eq!(received["frame"]["masked"], false);
    assert_eq!(received["frame"]["length_form"], "16-bit");
    assert!(received["head"].as_str().unwrap().starts_with("81 7e"));
    // The close handshake, both ways, with the code's meaning.
    for from in ["client", "server"] {
        let close = &frames(&rows, from, "close")[0];
        assert_eq!(close["frame"]["close_code"], 1000);
        assert_eq!(close["frame"]["close_meaning"], "normal closure");
    }
}

#[tokio::test]
async fn a_long_poll_response_says_how_long_it_was_held() {
    let server = Server::start().await;
    let tap = new_tap();
    let path = format!("/api/messages/long-poll?since=0&timeout=1&tap={tap}");
    let (status, _) = server.get_json(&path).await;
    assert_eq!(status, 200);
    let rows = rows_when(&server, &tap, |rows| {
        rows.iter().any(|r| r["kind"] == "response")
    })
    .await;
    let response = rows.iter().find(|r| r["kind"] == "response").unwrap();
    assert_eq!(response["route"], "long_poll");
    assert!(response["after_ms"].as_u64().unwrap() >= 1000, "{response}");
}

#[tokio::test]
async fn a_tap_keeps_a_bounded_number_of_rows_and_says_how_many_were_missed() {
    let server = Server::start().await;
    let tap = new_tap();
    read_tap(&server, &tap).await; // open, as the page does before its requests
    // Each poll is a request, a response head and a body: 3 rows.
    let polls = pushlab::tap::MAX_ROWS / 3 + 50;
    for _ in 0..polls {
        let (status, _) = server
            .get_json(&format!("/api/messages?since=0&tap={tap}"))
            .await;
        assert_eq!(status, 200);
    }
    let answer = within("the tap", read_tap(&server, &tap)).await;
    let rows = answer["rows"].as_array().unwrap();
    assert_eq!(rows.len(), pushlab::tap::MAX_ROWS);
    assert_eq!(answer["missed"], 3 * polls - pushlab::tap::MAX_ROWS);
    // Reading from the last row on gives nothing new.
    let next = answer["next"].as_u64().unwrap();
    let (_, later) = server
        .get_json(&format!("/api/tap/{tap}?since={next}"))
        .await;
    assert_eq!(later["rows"], json!([]));
    assert_eq!(later["missed"], 0);
}

#[tokio::test]
async fn an_operator_can_turn_the_tap_off_and_requests_still_work() {
    let server = Server::start_with(&["--wire-tap", "off"]).await;
    let tap = new_tap();
    let (status, body) = server.get_json(&format!("/api/tap/{tap}")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("--wire-tap"),
        "{body}"
    );
    let (status, _) = server
        .get_json(&format!("/api/messages?since=0&tap={tap}"))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_malformed_tap_id_gets_400() {
    let server = Server::start().await;
    for bad in ["short", "has space in it padding", &"x".repeat(65)] {
        let (status, body) = server.get_json(&format!("/api/tap/{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let (status, body) = server.get_json(&format!("/api/messages?tap={bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().contains("tap"), "{body}");
    }
}

#[tokio::test]
async fn keep_alive_comments_are_shown_as_they_are_sent() {
    let server = Server::start_with(&["--sse-keep-alive", "0.2"]).await;
    let tap = new_tap();
    let _stream = SseClient::connect(&server, &format!("?since=0&tap={tap}"), None).await;
    let rows = rows_when(&server, &tap, |rows| {
        rows.iter().any(|r| r["kind"] == "comment")
    })
    .await;
    let comment = rows.iter().find(|r| r["kind"] == "comment").unwrap();
    assert_eq!(comment["summary"], ": keep-alive");
    assert_eq!(comment["bytes"], 19, "E\\r\\n: keep-alive\\n\\n\\r\\n");
    assert_eq!(comment["head"], "45 0d 0a");
}

/// The worked example in docs/comparison.md ("What a message costs on the wire"): one
/// 103-byte message, as each transport carries it, byte for byte.
#[tokio::test]
async fn one_message_costs_the_bytes_docs_comparison_quotes() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start().await;
    let tap = new_tap();
    read_tap(&server, &tap).await;
    // Requests as the bench's hyper client writes them, plus `&tap=…`.
    let raw = |path: &str| {
        format!(
            "GET {path}&tap={tap} HTTP/1.1\r\nhost: {}\r\n\r\n",
            server.addr
        )
    };
    let mut long_poll = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    long_poll
        .write_all(raw("/api/messages/long-poll?since=0&timeout=30").as_bytes())
        .await
        .unwrap();
    let _sse = SseClient::connect(&server, &format!("?since=0&tap={tap}"), None).await;
    let _ws = WsClient::connect(&server, &format!("?since=0&tap={tap}")).await;
    let message = server.post("bench-3", "bench 5 12345678").await;
    assert_eq!(message.to_string().len(), 103, "{message}");
    let mut short_poll = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    short_poll
        .write_all(raw("/api/messages?since=0&limit=1000").as_bytes())
        .await
        .unwrap();

    let rows = rows_when(&server, &tap, |rows| {
        rows.iter()
            .filter(|r| r["kind"] == "body" && r["from"] == "server")
            .count()
            == 2
            && rows.iter().any(|r| r["kind"] == "event")
            && rows.iter().any(|r| r["kind"] == "frame")
    })
    .await;
    let of = |route: &str, kind: &str| -> Vec<u64> {
        rows.iter()
            .filter(|r| r["route"] == route && r["kind"] == kind)
            .map(|r| r["bytes"].as_u64().unwrap())
            .collect()
    };
    let tap_param = format!("&tap={tap}").len() as u64;
    // SSE: 35 bytes of framing around the 103; WebSocket: a 29-byte envelope and 4.
    assert_eq!(of("sse", "event"), [138]);
    assert_eq!(of("websocket", "frame"), [136]);
    // The polls: 109 bytes of response head and a 144-byte body (a 41-byte envelope),
    // after a request of 72 (short) or 82 (long) bytes.
    for (route, request) in [("short_poll", 72), ("long_poll", 82)] {
        assert_eq!(of(route, "request"), [request + tap_param], "{route}");
        assert_eq!(of(route, "response"), [109], "{route}");
        assert_eq!(of(route, "body"), [144], "{route}");
    }
}
