//! Every bad input gets a clear JSON error with the right status, and changes nothing.

mod common;

use common::{Server, SseClient, WsClient, raw_http, within};
use futures::SinkExt;
use serde_json::{Value, json};

/// Sends a raw POST to /api/messages and returns status and JSON body.
async fn post_raw(server: &Server, content_type: Option<&str>, body: String) -> (u16, Value) {
    let mut request = server.http.post(server.url("/api/messages")).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("errors are JSON");
    (status, body)
}

fn error_text(body: &Value) -> &str {
    let text = body["error"].as_str().expect("an {\"error\": …} body");
    // Errors speak the API's language, not the libraries'.
    for internal in [
        "deserialize",
        "target type",
        "enum",
        "ClientFrame",
        "NewMessage",
    ] {
        assert!(!text.contains(internal), "{text:?} names {internal:?}");
    }
    text
}

/// The hub is untouched: still only the one message posted at the start.
async fn assert_nothing_stored(server: &Server) {
    let (_, body) = server.get_json("/api/messages?since=0").await;
    assert_eq!(
        body["last_id"], 1,
        "a failed request must not store anything"
    );
}

#[tokio::test]
async fn bad_message_bodies_get_clear_errors_and_store_nothing() {
    let server = Server::start().await;
    server.post("alice", "the only message").await;
    let json = Some("application/json");
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (json, "{\"author\":".into(), 400, "not valid JSON"),
        (json, "not json".into(), 400, "not valid JSON"),
        (
            json,
            r#"{"author":"a"}"#.into(),
            422,
            "missing field `text`",
        ),
        (
            json,
            r#"{"text":"t"}"#.into(),
            422,
            "missing field `author`",
        ),
        (
            json,
            r#"{"author":1,"text":"t"}"#.into(),
            422,
            "invalid type",
        ),
        (json, r#"["a","t"]"#.into(), 422, "expected a map"),
        (
            json,
            r#"{"author":"   ","text":"t"}"#.into(),
            422,
            "author must not be blank",
        ),
        (
            json,
            r#"{"author":"a","text":""}"#.into(),
            422,
            "text must not be empty",
        ),
        (
            json,
            json!({ "author": "x".repeat(33), "text": "t" }).to_string(),
            422,
            "at most 32 characters",
        ),
        (
            json,
            json!({ "author": "a", "text": "x".repeat(2001) }).to_string(),
            422,
            "at most 2000 characters",
        ),
        (
            json,
            json!({ "author": "a", "text": "x".repeat(17 * 1024) }).to_string(),
            413,
            "length limit",
        ),
        (
            None,
            r#"{"author":"a","text":"t"}"#.into(),
            415,
            "Content-Type",
        ),
        (
            Some("text/plain"),
            r#"{"author":"a","text":"t"}"#.into(),
            415,
            "Content-Type",
        ),
    ];
    for (content_type, body, status, words) in cases {
        let shown = body.chars().take(40).collect::<String>();
        let (got, answer) = post_raw(&server, content_type, body).await;
        assert_eq!(got, status, "{shown}: {answer}");
        assert!(error_text(&answer).contains(words), "{shown}: {answer}");
    }
    assert_nothing_stored(&server).await;
}

#[tokio::test]
async fn query_parameters_that_are_not_non_negative_integers_get_400() {
    let server = Server::start().await;
    server.post("alice", "the only message").await;
    let cases = [
        ("/api/messages?since=abc", "since"),
        ("/api/messages?since=-1", "since"),
        ("/api/messages?since=", "since"),
        ("/api/messages?limit=x", "limit"),
        ("/api/messages?limit=0", "limit"),
        ("/api/messages/long-poll?since=1.5", "since"),
        ("/api/messages/long-poll?timeout=soon", "timeout"),
        ("/api/messages/long-poll?timeout=-5", "timeout"),
        ("/api/events?since=x", "since"),
        ("/api/messages?client=bad%20id", "client"),
    ];
    for (path, parameter) in cases {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(error_text(&body).contains(parameter), "{path}: {body}");
    }
    let response = server
        .http
        .get(server.url("/api/events"))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(error_text(&body).contains("Last-Event-ID"), "{body}");
    assert_nothing_stored(&server).await;
}

#[tokio::test]
async fn a_bad_cursor_on_the_websocket_refuses_the_upgrade_with_400() {
    let server = Server::start().await;
    let url = format!("ws://{}/api/ws?since=nope", server.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
        }
        other => panic!("expected a refused upgrade, got {other:?}"),
    }
}

#[tokio::test]
async fn a_plain_get_on_the_websocket_endpoint_explains_itself() {
    let server = Server::start().await;
    let (status, body) = server.get_json("/api/ws").await;
    assert_eq!(status, 400);
    assert!(error_text(&body).contains("WebSocket"), "{body}");
}

#[tokio::test]
async fn the_largest_cursor_is_a_reset_not_a_crash() {
    let server = Server::start().await;
    server.post("alice", "one").await;
    let max = u64::MAX;
    for path in [
        format!("/api/messages?since={max}"),
        format!("/api/messages/long-poll?since={max}"),
    ] {
        let (status, body) = server.get_json(&path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["reset"], true, "{path}");
    }
    let mut sse = SseClient::connect(&server, "", Some(&max.to_string())).await;
    let _retry = sse.next_event().await;
    let reset = within("the reset", sse.next_event()).await.unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"));
    let mut ws = WsClient::connect(&server, &format!("?since={max}")).await;
    assert_eq!(ws.next_frame().await.unwrap()["type"], "reset");
}

#[tokio::test]
async fn limit_above_the_maximum_is_clamped_to_1000() {
    let server = Server::start().await;
    for i in 0..3 {
        server.post("a", &format!("{i}")).await;
    }
    let (status, body) = server.get_json("/api/messages?since=0&limit=999999").await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn unknown_routes_get_404_and_wrong_methods_405_as_json() {
    let server = Server::start().await;
    for path in ["/api/nothing-here", "/nothing-here.js"] {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(error_text(&body).contains(path), "{body}");
    }
    for (method, path) in [
        (reqwest::Method::DELETE, "/api/messages"),
        (reqwest::Method::POST, "/api/events"),
        (reqwest::Method::PUT, "/api/messages/long-poll"),
    ] {
        let response = server
            .http
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert!(error_text(&body).contains(method.as_str()), "{body}");
    }
}

#[tokio::test]
async fn bad_websocket_frames_get_an_error_frame_and_the_socket_stays_open() {
    let server = Server::start().await;
    server.post("alice", "the only message").await;
    let mut ws = WsClient::connect(&server, "?since=1").await;
    let bad_frames = [
        ("not json", "invalid frame"),
        (r#"{"type":"shout","text":"hi"}"#, "unknown variant `shout`"),
        (r#"{"text":"hi"}"#, "missing field `type`"),
        (r#""send""#, r#"expected an object with a "type""#),
        (r#"{"type":"send","author":"a"}"#, "missing field `text`"),
        (
            r#"{"type":"send","author":" ","text":"x"}"#,
            "author must not be blank",
        ),
        (
            r#"{"type":"send","author":"a","text":""}"#,
            "text must not be empty",
        ),
    ];
    for (frame, words) in bad_frames {
        ws.send_text(frame).await;
        let reply = ws.next_frame().await.expect("the socket stays open");
        assert_eq!(reply["type"], "error", "{frame}");
        assert!(error_text(&reply).contains(words), "{frame}: {reply}");
    }
    ws.socket
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![
            1, 2, 3,
        ]))
        .await
        .unwrap();
    let reply = ws.next_frame().await.expect("the socket stays open");
    assert!(
        reply["error"].as_str().unwrap().contains("binary"),
        "{reply}"
    );

    // Still usable, and nothing bad was stored.
    ws.send_json(json!({ "type": "send", "author": "a", "text": "fine" }))
        .await;
    assert_eq!(ws.next_message().await["id"], 2);
}

/// Status and JSON body of a raw answer; panics unless the body is an `{"error": …}`.
fn json_error(answer: &str) -> (u16, Value) {
    let status = answer[9..12].parse().unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let body: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{answer}"));
    error_text(&body);
    (status, body)
}

#[tokio::test]
async fn requests_the_http_parser_refuses_get_json_errors_too() {
    let server = Server::start().await;
    let long_uri = format!("/{}", "a".repeat(70_000));
    let big_header = "x".repeat(40_000);
    let cases = [
        (
            "GET / HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n".to_owned(),
            400,
            "parsed",
        ),
        (
            "GET / HTTP/9.9\r\nHost: localhost\r\n\r\n".to_owned(),
            400,
            "parsed",
        ),
        (
            format!("GET {long_uri} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            431,
            "URI",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {big_header}\r\n\r\n"),
            431,
            "headers",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
                "X-Many: 1\r\n".repeat(150)
            ),
            431,
            "headers",
        ),
    ];
    for (request, status, words) in cases {
        let answer = raw_http(server.addr, &request).await;
        let (got, body) = json_error(&answer);
        assert_eq!(got, status, "{answer}");
        assert!(error_text(&body).contains(words), "{body}");
    }
    assert_eq!(server.get_json("/healthz").await.0, 200);
}

#[tokio::test]
async fn errors_do_not_echo_long_client_text() {
    let server = Server::start().await;
    let method = "X".repeat(5000);
    let answer = raw_http(
        server.addr,
        &format!("{method} /api/messages HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let (status, body) = json_error(&answer);
    assert_eq!(status, 405);
    assert!(body.to_string().len() < 300, "{body}");
    let (status, body) = server.get_json(&format!("/api/{}", "y".repeat(5000))).await;
    assert_eq!(status, 404);
    assert!(body.to_string().len() < 300, "{body}");
}

#[tokio::test]
async fn connect_is_refused_with_405_not_served_the_page() {
    let server = Server::start().await;
    let answer = raw_http(
        server.addr,
        "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (status, body) = json_error(&answer);
    assert_eq!(status, 405);
    assert!(error_text(&body).contains("CONNECT"), "{body}");
}

#[tokio::test]
async fn a_websocket_handshake_needs_a_well_formed_key() {
    let server = Server::start().await;
    for key in [
        "",
        "abc",
        "not base64 at all, nope!",
        "AAAAAAAAAAAAAAAAAAAAAB==",
    ] {
        let request = format!(
            "GET /api/ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, close\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        );
        let answer = raw_http(server.addr, &request).await;
        let (status, body) = json_error(&answer);
        assert_eq!(status, 400, "{key:?}: {answer}");
        assert!(error_text(&body).contains("Sec-WebSocket-Key"), "{body}");
    }
    assert_eq!(
        server.stats().await["transports"]["websocket"]["requests"],
        0
    );
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_is_closed_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    };
    let server = Server::start().await;
    let mut ws = WsClient::connect(&server, "").await;
    let not_utf8 = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.socket
        .send(tokio_tungstenite::tungstenite::Message::Frame(not_utf8))
        .await
        .unwrap();
    assert_eq!(ws.close_code().await, 1007);
    let (_, page) = server.get_json("/api/messages?since=0").await;
    assert_eq!(page["last_id"], 0);
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_frame_even_with_a_reserved_code() {
    use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::Frame};
    let server = Server::start().await;
    // 1000 is echoed; 1005 must never be sent, so the answer is 1002 (protocol error).
    for (sent, answered) in [(1000, 1000), (1005, 1002)] {
        let mut ws = WsClient::connect(&server, "").await;
        let close = Frame::close(Some(CloseFrame {
            code: sent.into(),
            reason: "bye".into(),
        }));
        ws.socket
            .send(tokio_tungstenite::tungstenite::Message::Frame(close))
            .await
            .unwrap();
        assert_eq!(ws.close_code().await, answered, "after {sent}");
    }
}

#[tokio::test]
async fn the_presence_answer_is_bounded_however_many_ids_are_made_up() {
    let server = Server::start().await;
    let made_up = 300;
    let paths: Vec<String> = (0..made_up)
        .map(|i| format!("/api/messages?client=fake{i}"))
        .collect();
    futures::future::join_all(paths.iter().map(|path| server.get_json(path))).await;
    let (status, body) = server.get_json("/api/presence").await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], made_up);
    let listed = body["clients"].as_array().unwrap();
    assert_eq!(listed.len(), pushlab::presence::MAX_LISTED);
    // The first by name (none has one here), then by id.
    assert_eq!(listed[0]["client"], "fake0");
    assert_eq!(listed[1]["client"], "fake1");
    assert_eq!(listed[2]["client"], "fake10");
}
