//! DNS rebinding: a server on loopback answers only requests addressed to a loopback
//! name, or to a name it was told about, on every endpoint.

mod common;

use common::{Server, raw_http, within};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

/// Sends `method path` with `Host: host` and returns status and JSON body.
async fn ask(server: &Server, method: &str, path: &str, host: &str) -> (u16, Value) {
    let body = r#"{"author":"mallory","text":"rebound"}"#;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = raw_http(server.addr, &request).await;
    let status = answer[9..12].parse().unwrap();
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

const ENDPOINTS: [(&str, &str); 10] = [
    ("GET", "/"),
    ("GET", "/index.html"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/api/stats"),
    ("GET", "/api/presence"),
    ("GET", "/api/messages?since=0"),
    ("GET", "/api/messages/long-poll?since=0&timeout=1"),
    ("GET", "/api/events"),
    ("POST", "/api/messages"),
];

#[tokio::test]
async fn every_endpoint_refuses_a_rebound_host_name_with_421() {
    let server = Server::start().await;
    for (method, path) in ENDPOINTS {
        let (status, body) = ask(&server, method, path, "evil.example:8080").await;
        assert_eq!(status, 421, "{method} {path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("evil.example:8080"),
            "{body}"
        );
    }
    // Nothing was published, and every refusal was counted.
    let (_, page) = server.get_json("/api/messages?since=0").await;
    assert_eq!(page["last_id"], 0);
    assert_eq!(
        server.stats().await["limits"]["refused_hosts"],
        ENDPOINTS.len()
    );
}

#[tokio::test]
async fn a_websocket_from_a_rebound_page_is_refused() {
    let server = Server::start().await;
    // The page's origin and the Host agree, as they do after DNS rebinding: only the
    // name gives it away.
    let mut request = format!("ws://{}/api/ws", server.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("host", "evil.example:8080".parse().unwrap());
    headers.insert("origin", "http://evil.example:8080".parse().unwrap());
    match within("the handshake", tokio_tungstenite::connect_async(request)).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 421),
        other => panic!("expected a refused upgrade, got {:?}", other.map(|_| ())),
    }
    assert_eq!(
        server.stats().await["transports"]["websocket"]["requests"],
        0
    );
}

#[tokio::test]
async fn loopback_names_and_listed_hosts_are_served() {
    let server = Server::start_with(&[
        "--allow-host",
        "chat.example.org",
        "--allow-origin",
        "https://ok.example",
    ])
    .await;
    let port = server.addr.port();
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_owned(),
        "127.1.2.3:80".to_owned(),
        format!("localhost:{port}"),
        "LocalHost".to_owned(),
        format!("[::1]:{port}"),
        "chat.example.org".to_owned(),
        "chat.example.org:443".to_owned(),
        "ok.example".to_owned(),
    ] {
        let (status, body) = ask(&server, "GET", "/healthz", &host).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    for host in [
        "example.org",
        "ok.example.evil.example",
        "localhost.evil.example",
    ] {
        assert_eq!(ask(&server, "GET", "/healthz", host).await.0, 421, "{host}");
    }
}

#[tokio::test]
async fn http11_requires_exactly_one_host_and_http10_needs_none() {
    let server = Server::start().await;
    for request in [
        "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw_http(server.addr, request).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains(r#"{"error":"#), "{answer}");
    }
    let answer = raw_http(server.addr, "GET /healthz HTTP/1.0\r\n\r\n").await;
    assert!(answer.contains(" 200 OK"), "{answer}");
}

#[tokio::test]
async fn a_full_url_in_the_request_line_names_the_host() {
    let server = Server::start().await;
    let answer = raw_http(
        server.addr,
        "GET http://evil.example/healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
}
