//! Slow, stalled and vanished clients: nobody else slows down, memory stays bounded,
//! nothing is silently skipped, and a stuck client is closed with a reason.

mod common;

use std::time::{Duration, Instant};

use common::{Server, SseClient, WsClient, eventually, within};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

/// The server's resident memory (the server runs in this test process).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

async fn stat(server: &Server, transport: &str, counter: &str) -> u64 {
    server.stats().await["transports"][transport][counter]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_websocket_reader_is_closed_without_slowing_anyone_else() {
    const FLOOD: usize = 1000;
    let server = Server::start_with(&[
        "--publish-rate",
        "0",
        "--slow-client-timeout",
        "1",
        "--history",
        "5000",
    ])
    .await;
    // Connects and then never reads: its socket buffers fill up.
    let mut stalled = WsClient::connect(&server, "?since=0").await;
    let mut stalled_sse = SseClient::connect(&server, "?since=0", None).await;
    let mut healthy = WsClient::connect(&server, "?since=0").await;
    let before = rss_bytes();

    // Thousands of maximal messages: more megabytes than the socket buffers hold.
    let text = "字".repeat(2000); // 6 KB of UTF-8
    let flood = futures::stream::iter(0..FLOOD)
        .map(|_| server.post("flood", &text))
        .buffer_unordered(8)
        .collect::<Vec<Value>>();
    let healthy_reads = async {
        for expected in 1..=FLOOD as u64 {
            assert_eq!(healthy.next_message().await["id"], expected);
        }
    };
    within("the flood", async { tokio::join!(flood, healthy_reads) }).await;

    // The healthy client is as quick as ever.
    let sent = Instant::now();
    server.post("marker", "still fast").await;
    assert_eq!(healthy.next_message().await["text"], "still fast");
    let latency = sent.elapsed();
    assert!(latency < Duration::from_millis(500), "{latency:?}");

    eventually("the stalled WebSocket to be closed as too slow", || async {
        stat(&server, "websocket", "slow_closes").await == 1
            && stat(&server, "websocket", "open").await == 1
    })
    .await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "the server grew by {grown} bytes");

    // What the stalled client did get is contiguous from its cursor: no silent gap.
    let mut expected = 1;
    while let Some(frame) = within("the stalled socket", stalled.socket.next()).await {
        match frame {
            Ok(tungstenite::Message::Text(text)) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(frame["message"]["id"], expected);
                expected += 1;
            }
            Ok(tungstenite::Message::Close(Some(close))) => {
                assert_eq!(u16::from(close.code), 1013);
                break;
            }
            _ => break,
        }
    }
    assert!(
        expected > 1,
        "the stalled client got some messages before it stalled"
    );

    // The stalled SSE reader also cost nothing unbounded and skips nothing.
    for expected in 1..=20 {
        assert_eq!(stalled_sse.next_message().await["id"], expected);
    }
}

#[tokio::test]
async fn a_quiet_sse_stream_gets_keep_alive_comments() {
    let server = Server::start_with(&["--sse-keep-alive", "0.1"]).await;
    let mut sse = SseClient::connect(&server, "", None).await;
    let _retry = sse.next_event().await;
    // Comments are not events: the reader counts them while it waits for one.
    let reader = async {
        while sse.comments < 3 {
            let _ = tokio::time::timeout(Duration::from_millis(50), sse.next_event()).await;
        }
    };
    within("three keep-alive comments", reader).await;
}

#[tokio::test]
async fn a_websocket_client_that_stops_answering_pings_is_dropped() {
    let server = Server::start_with(&["--ws-ping", "0.2", "--ws-pong-timeout", "0.3"]).await;
    // Never reads, so it never answers a ping.
    let _vanished = WsClient::connect(&server, "").await;
    // Reads, so its library answers pings.
    let mut alive = WsClient::connect(&server, "").await;
    let alive_reads = async {
        loop {
            let frame = alive
                .next_frame()
                .await
                .expect("the live client stays open");
            if frame["type"] == "message" {
                return frame;
            }
        }
    };
    let watch = async {
        eventually("the silent client to be dropped", || async {
            stat(&server, "websocket", "dead_closes").await == 1
        })
        .await;
        assert_eq!(stat(&server, "websocket", "open").await, 1);
        server.post("a", "you are still here").await;
    };
    let (frame, ()) = tokio::join!(alive_reads, watch);
    assert_eq!(frame["message"]["text"], "you are still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_held_long_polls_are_all_woken_by_one_message() {
    const POLLS: usize = 520;
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
    rlimit::Resource::NOFILE
        .set(soft.max(4096).min(hard), hard)
        .unwrap();
    let server = Server::start_with(&["--max-connections-per-ip", "0"]).await;
    let http = reqwest::Client::new();
    let polls = futures::future::join_all((0..POLLS).map(|_| {
        let request = http.get(server.url("/api/messages/long-poll?since=0&timeout=30"));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    }));
    let publish = async {
        eventually("every long poll to be held", || async {
            stat(&server, "long_poll", "open").await == POLLS as u64
        })
        .await;
        server.post("alice", "wake up, everyone").await
    };
    let (answers, posted) = within("all long polls to answer", async {
        tokio::join!(polls, publish)
    })
    .await;
    for answer in &answers {
        assert_eq!(answer["messages"], json!([posted]));
    }
    assert_eq!(stat(&server, "long_poll", "delivered").await, POLLS as u64);
}
