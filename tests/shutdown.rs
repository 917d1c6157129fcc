//! Graceful shutdown: stop accepting, answer held long polls, end SSE streams, close
//! WebSockets with 1001, and exit 0 within a few seconds.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
