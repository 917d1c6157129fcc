//! Limits and abuse: origins, publish rate, connection caps, timeouts, sizes, paths.

mod common;

use common::{Server, SseClient, WsClient, eventually, raw_http, within};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

/// Opens a WebSocket with the given `Origin` header; returns the handshake's status.
async fn ws_status_with_origin(server: &Server, origin: &str) -> u16 {
    let mut request = format!("ws://{}/api/ws", server.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("handshake failed: {other}"),
    }
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused_with_403() {
    let server = Server::start_with(&["--allow-origin", "https://ok.example"]).await;
    let own = format!("http://{}", server.addr);
    assert_eq!(ws_status_with_origin(&server, &own).await, 101);
    assert_eq!(
        ws_status_with_origin(&server, "https://ok.example").await,
        101
    );
    assert_eq!(
        ws_status_with_origin(&server, "https://evil.example").await,
        403
    );
    assert_eq!(ws_status_with_origin(&server, "null").await, 403);
    assert_eq!(
        server.stats().await["transports"]["websocket"]["requests"],
        2
    );
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_allowed_origins() {
    let preflight = |server: &Server, origin: &str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, server.url("/api/messages"))
            .header("origin", origin.to_owned())
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let closed = Server::start().await;
    let answer = preflight(&closed, "https://ok.example").await.unwrap();
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let open = Server::start_with(&["--allow-origin", "https://ok.example"]).await;
    let answer = preflight(&open, "https://ok.example").await.unwrap();
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "https://ok.example"
    );
    let answer = preflight(&open, "https://evil.example").await.unwrap();
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn publishing_too_fast_gets_429_with_retry_after_over_http_and_websocket() {
    let server = Server::start_with(&["--publish-rate", "1", "--publish-burst", "3"]).await;
    for i in 0..3 {
        server.post("alice", &format!("m{i}")).await;
    }
    let refused = server
        .http
        .post(server.url("/api/messages"))
        .json(&json!({ "author": "alice", "text": "one too many" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("too many"),
        "{body}"
    );

    let mut ws = WsClient::connect(&server, "?since=3").await;
    ws.send_json(json!({ "type": "send", "author": "alice", "text": "over ws" }))
        .await;
    let reply = ws.next_frame().await.unwrap();
    assert_eq!(reply["type"], "error");
    assert!(
        reply["error"].as_str().unwrap().contains("too many"),
        "{reply}"
    );

    let (_, page) = server.get_json("/api/messages?since=0").await;
    assert_eq!(page["last_id"], 3, "refused messages are not stored");
    assert_eq!(server.stats().await["limits"]["rate_limited"], 2);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("pushlab_rate_limited_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn held_connections_past_the_per_ip_cap_get_503_and_room_frees_up() {
    let server = Server::start_with(&["--max-connections-per-ip", "2"]).await;
    let first = SseClient::connect(&server, "", None).await;
    let _second = WsClient::connect(&server, "").await;

    let (status, body) = server.get_json("/api/events").await;
    assert_eq!(status, 503, "{body}");
    let long_poll = server
        .http
        .get(server.url("/api/messages/long-poll?timeout=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(long_poll.status(), 503);
    assert_eq!(long_poll.headers()["retry-after"], "5");
    match tokio_tungstenite::connect_async(format!("ws://{}/api/ws", server.addr)).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected a refused upgrade, got {:?}", other.map(|_| ())),
    }
    // Short polls hold nothing, so they are not capped.
    assert_eq!(server.get_json("/api/messages").await.0, 200);
    assert_eq!(server.stats().await["limits"]["refused_connections"], 3);

    drop(first);
    eventually("the closed stream to free its place", || async {
        server.get_json("/api/stats").await.1["transports"]["sse"]["open"] == 0
    })
    .await;
    let _third = SseClient::connect(&server, "", None).await;
}

#[tokio::test]
async fn held_connections_past_the_overall_cap_get_503() {
    let server = Server::start_with(&["--max-connections", "1"]).await;
    let _only = SseClient::connect(&server, "", None).await;
    let (status, body) = server.get_json("/api/events").await;
    assert_eq!(status, 503);
    assert!(body["error"].as_str().unwrap().contains("server"), "{body}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let server = Server::start_with(&["--header-timeout", "0.3"]).await;
    // Never sends the blank line that ends the headers: the server must hang up.
    let answer = raw_http(server.addr, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n").await;
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_body_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start_with(&["--body-timeout", "0.3"]).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /api/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\nConnection: close\r\n\r\n{\"author\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    within("the 408", stream.read_to_string(&mut answer))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let (_, page) = server.get_json("/api/messages?since=0").await;
    assert_eq!(page["last_id"], 0);
}

#[tokio::test]
async fn a_websocket_message_over_the_size_limit_is_closed_with_1009() {
    let server = Server::start().await;
    let mut ws = WsClient::connect(&server, "").await;
    let huge = json!({ "type": "send", "author": "a", "text": "x".repeat(20_000) });
    ws.socket
        .send(tungstenite::Message::text(huge.to_string()))
        .await
        .unwrap();
    assert_eq!(ws.close_code().await, 1009);
    // The server is fine and stored nothing.
    let (_, page) = server.get_json("/api/messages?since=0").await;
    assert_eq!(page["last_id"], 0);
}

#[tokio::test]
async fn no_path_escapes_the_web_folder() {
    let web = concat!(env!("CARGO_MANIFEST_DIR"), "/web");
    let from_disk = Server::start_with(&["--web-dir", web]).await;
    let embedded = Server::start().await;
    for server in [&from_disk, &embedded] {
        for path in [
            "/../Cargo.toml",
            "/%2e%2e/Cargo.toml",
            "/..%2fCargo.toml",
            "//etc/passwd",
        ] {
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            let answer = raw_http(server.addr, &request).await;
            let status = answer.split(' ').nth(1).unwrap_or("");
            assert!(status == "404" || status == "400", "{path}: {answer}");
            assert!(
                !answer.contains("[package]") && !answer.contains("root:"),
                "{path}"
            );
        }
        let index = raw_http(
            server.addr,
            "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(index.starts_with("HTTP/1.1 200"), "{index}");
        assert!(index.to_lowercase().contains("content-security-policy"));
    }
}
