//! `--store sqlite:PATH` with the real binary: a pushlab killed mid-stream comes back
//! with its history and its ids, and every kind of client resumes from its cursor.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use cluster::{Instance, Scratch, post_each};
use common::{Poller, SseClient, WsClient, ids, within};

#[tokio::test]
async fn clients_resume_after_a_crash_and_restart_and_no_id_is_reused() {
    let dir = Scratch::new("sqlite");
    let store = format!("sqlite:{}", dir.path().join("chat.db").display());
    let before = Instance::start(&store).await;
    let mut sse = SseClient::connect(&before, "?since=0", None).await;
    let mut ws = WsClient::connect(&before, "?since=0").await;
    let (mut long, mut short) = (Poller::long(), Poller::short());
    post_each(&before, 1..=3, "before ").await;
    for _ in 1..=3 {
        sse.next_message().await;
        ws.next_message().await;
    }
    assert_eq!(ids(&long.collect(&before, 3).await), [1, 2, 3]);
    assert_eq!(ids(&short.collect(&before, 3).await), [1, 2, 3]);

    // A crash, not a shutdown: whatever was acknowledged must be on disk already.
    before.kill().await;
    assert!(
        within("the SSE stream to end", sse.next_event())
            .await
            .is_none()
    );
    assert!(ws.next_frame().await.is_none());

    let after = Instance::start(&store).await;
    let next = after.post("bob", "after").await;
    assert_eq!(
        next["id"], 4,
        "ids continue after the largest one ever given"
    );
    after.post("bob", "after, again").await;

    // Each client comes back with the cursor it had: nothing missed, nothing twice.
    let mut sse = SseClient::connect(&after, "", Some("3")).await;
    assert_eq!(
        ids(&[sse.next_message().await, sse.next_message().await]),
        [4, 5]
    );
    let mut ws = WsClient::connect(&after, "?since=3").await;
    assert_eq!(
        ids(&[ws.next_message().await, ws.next_message().await]),
        [4, 5]
    );
    assert_eq!(ids(&long.collect(&after, 2).await), [4, 5]);
    assert_eq!(ids(&short.collect(&after, 2).await), [4, 5]);

    let (_, everything) = after.get_json("/api/messages?since=0").await;
    let texts: Vec<&str> = everything["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["before 1", "before 2", "before 3", "after", "after, again"]
    );
}

#[tokio::test]
async fn the_database_keeps_only_the_history_window() {
    let dir = Scratch::new("sqlite");
    let store = format!("sqlite:{}", dir.path().join("chat.db").display());
    let first = Instance::start_with(&store, &["--history", "3"]).await;
    post_each(&first, 1..=5, "m").await;
    first.kill().await;

    let second = Instance::start_with(&store, &["--history", "3"]).await;
    let (_, page) = second.get_json("/api/messages?since=0").await;
    assert_eq!(page["reset"], true, "ids 1 and 2 are gone: {page}");
    assert_eq!(ids(page["messages"].as_array().unwrap()), [3, 4, 5]);
    assert_eq!(second.post("bob", "m6").await["id"], 6);
}
