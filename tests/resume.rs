//! Resume without loss: a client that drops mid-stream and comes back with its cursor
//! gets every message it missed, in order, once, while messages keep flowing.

mod common;

use std::time::Duration;

use common::{Server, SseClient, WsClient, ids, within};
use serde_json::Value;

const TOTAL: u64 = 150;

/// Posts `TOTAL` messages at a steady pace, while the test's client drops and resumes.
async fn steady_publisher(server: &Server) {
    let mut pace = tokio::time::interval(Duration::from_millis(3));
    for i in 1..=TOTAL {
        pace.tick().await;
        server.post("publisher", &format!("m{i}")).await;
    }
}

fn assert_exactly_once(name: &str, got: &[Value]) {
    assert_eq!(ids(got), (1..=TOTAL).collect::<Vec<_>>(), "{name}");
}

async fn start() -> Server {
    Server::start_with(&["--publish-rate", "0"]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_resumes_from_last_event_id_after_each_drop() {
    let server = start().await;
    let reader = async {
        let mut got: Vec<Value> = Vec::new();
        while (got.len() as u64) < TOTAL {
            // A new connection each round, resuming like EventSource does.
            let last = got.last().map(|m| m["id"].to_string());
            let mut sse = SseClient::connect(&server, "?since=0", last.as_deref()).await;
            for _ in 0..20 {
                if got.len() as u64 == TOTAL {
                    break;
                }
                got.push(sse.next_message().await);
            }
        }
        got
    };
    let (got, ()) = tokio::join!(reader, steady_publisher(&server));
    assert_exactly_once("sse", &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_resumes_from_since_after_each_drop() {
    let server = start().await;
    let reader = async {
        let mut got: Vec<Value> = Vec::new();
        while (got.len() as u64) < TOTAL {
            let cursor = got.last().map_or(0, |m| m["id"].as_u64().unwrap());
            let mut ws = WsClient::connect(&server, &format!("?since={cursor}")).await;
            for _ in 0..20 {
                if got.len() as u64 == TOTAL {
                    break;
                }
                got.push(ws.next_message().await);
            }
            // Dropped without a close frame, as a lost network would.
        }
        got
    };
    let (got, ()) = tokio::join!(reader, steady_publisher(&server));
    assert_exactly_once("websocket", &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_resumes_from_last_id_after_requests_are_cut_mid_hold() {
    let server = start().await;
    let reader = async {
        let mut got: Vec<Value> = Vec::new();
        let mut cursor = 0;
        let mut round = 0;
        while (got.len() as u64) < TOTAL {
            round += 1;
            // A fresh client (a new TCP connection) for every request.
            let http = reqwest::Client::new();
            let request = http
                .get(server.url(&format!("/api/messages/long-poll?since={cursor}&limit=7")))
                .send();
            if round % 3 == 0 {
                // Cut this one off: give up after a moment, whatever it was doing.
                let _ = tokio::time::timeout(Duration::from_millis(2), request).await;
                continue;
            }
            let body: Value = within("a long poll", request)
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            got.extend(body["messages"].as_array().unwrap().iter().cloned());
            cursor = body["last_id"].as_u64().unwrap();
        }
        got
    };
    let (got, ()) = tokio::join!(reader, steady_publisher(&server));
    assert_exactly_once("long poll", &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_poll_resumes_from_last_id_on_new_connections() {
    let server = start().await;
    let reader = async {
        let mut got: Vec<Value> = Vec::new();
        let mut cursor = 0;
        let mut pace = tokio::time::interval(Duration::from_millis(10));
        while (got.len() as u64) < TOTAL {
            pace.tick().await;
            let http = reqwest::Client::new();
            let url = server.url(&format!("/api/messages?since={cursor}&limit=5"));
            let body: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            got.extend(body["messages"].as_array().unwrap().iter().cloned());
            cursor = body["last_id"].as_u64().unwrap();
        }
        got
    };
    let (got, ()) = within("all messages", async {
        tokio::join!(reader, steady_publisher(&server))
    })
    .await;
    assert_exactly_once("short poll", &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_after_the_history_is_gone_is_an_explicit_reset() {
    let server = Server::start_with(&["--publish-rate", "0", "--history", "10"]).await;
    for i in 0..30 {
        server.post("a", &format!("{i}")).await;
    }
    let mut sse = SseClient::connect(&server, "", Some("5")).await;
    let _retry = sse.next_event().await;
    let reset = within("the reset", sse.next_event()).await.unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(sse.next_message().await["id"], 21);

    let mut ws = WsClient::connect(&server, "?since=5").await;
    assert_eq!(ws.next_frame().await.unwrap()["type"], "reset");
    assert_eq!(ws.next_message().await["id"], 21);
}
