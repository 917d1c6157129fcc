//! Graceful shutdown: stop accepting, answer held long polls, end SSE streams, close
//! WebSockets with 1001, and exit 0 within a few seconds.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::https::{H2, json_of};
use common::{Server, SseClient, WsClient, eventually, within};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_transport_cleanly_and_quickly() {
    let server = Server::start().await;
    server.post("alice", "before shutdown").await;
    let mut sse = SseClient::connect(&server, "?since=1", None).await;
    let mut ws = WsClient::connect(&server, "?since=1").await;
    let http = server.http.clone();
    let long_poll = tokio::spawn(
        http.get(server.url("/api/messages/long-poll?since=1&timeout=30"))
            .send(),
    );
    eventually("the long poll to be held", || async {
        server.stats().await["transports"]["long_poll"]["open"] == 1
    })
    .await;
    let (_, short) = server.get_json("/api/messages?since=0").await;
    assert_eq!(short["last_id"], 1);
    let addr = server.addr;

    let started = Instant::now();
    let (stopped, code, ended, answer) = tokio::join!(
        server.shutdown(),
        ws.close_code(),
        within("the SSE stream to end", async {
            while sse.next_event().await.is_some() {}
        }),
        async { long_poll.await.unwrap().unwrap() },
    );
    stopped.expect("serve returns Ok");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert_eq!(code, 1001);
    let () = ended;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "messages": [], "last_id": 1, "reset": false })
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_over_http2_sends_goaway_and_ends_every_stream_cleanly() {
    let server = Server::start_tls(&[]).await;
    let h2 = H2::connect(&server).await;
    h2.post("alice", "before shutdown").await;
    let mut sse = h2.sse("?since=1").await;
    let mut ws = h2.websocket("?since=1").await;
    let long_poll = tokio::spawn({
        let h2 = h2.clone();
        async move { json_of(h2.get("/api/messages/long-poll?since=1&timeout=30").await).await }
    });
    eventually("the long poll to be held", || async {
        h2.get_json("/api/stats").await.1["transports"]["long_poll"]["open"] == 1
    })
    .await;

    let started = Instant::now();
    let (stopped, code, ended, (status, body), ()) = tokio::join!(
        server.shutdown(),
        ws.close_code(),
        within("the SSE stream to end", async {
            while sse.next_event().await.is_some() {}
        }),
        async { long_poll.await.unwrap() },
        within(
            "the connection to close after GOAWAY",
            h2.closed.cancelled()
        ),
    );
    stopped.expect("serve returns Ok");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert_eq!(code, 1001);
    let () = ended;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "messages": [], "last_id": 1, "reset": false })
    );
}

#[test]
fn with_tls_the_binary_prints_an_https_url_and_the_certificate_fingerprint() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["--addr", "127.0.0.1:0", "--log", "warn", "--tls"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap();
    let fingerprint = lines.next().unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        url.starts_with("pushlab listening on https://127.0.0.1:"),
        "{url}"
    );
    let hex = fingerprint
        .strip_prefix("TLS certificate (self-signed) SHA-256 ")
        .unwrap_or_else(|| panic!("unexpected second line {fingerprint:?}"));
    let pairs: Vec<&str> = hex.split(':').collect();
    assert_eq!(pairs.len(), 32, "{hex}");
    assert!(
        pairs
            .iter()
            .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
    );
}

#[test]
fn the_binary_prints_its_url_and_exits_0_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["--addr", "127.0.0.1:0", "--log", "warn"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("pushlab listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // A WebSocket is open when the signal arrives: it must get its 1001.
        let ws_url = format!("{}/api/ws", url.replace("http://", "ws://"));
        let (socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        let mut ws = WsClient { socket };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = ws.close_code().await;
        assert_eq!(code, 1001);
    });

    // Wait for the exit on a thread, bounded (the shutdown grace is 5 s).
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || exited.send(child.wait().unwrap()));
    let status = exit
        .recv_timeout(Duration::from_secs(10))
        .expect("pushlab did not exit after SIGTERM");
    assert!(status.success(), "{status}");
}
