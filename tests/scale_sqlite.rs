//! `--store sqlite:PATH` with the real binary: a pushlab killed mid-stream comes back
//! with its history and its ids, and every kind of client resumes from its cursor.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use cluster::{Instance, Scratch, post_each};
use common::{Poller, SseClient, WsClient, ids, in_room, within};

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

#[tokio::test]
async fn a_database_from_before_rooms_opens_as_the_lobby_with_its_ids() {
    let dir = Scratch::new("sqlite");
    let path = dir.path().join("chat.db");
    {
        // The schema pushlab wrote before rooms: one table keyed by id, history
        // trimmed so that the oldest kept id is 5.
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE messages (
                 id INTEGER PRIMARY KEY, author TEXT NOT NULL, text TEXT NOT NULL,
                 sent_at INTEGER NOT NULL, via TEXT NOT NULL);
             INSERT INTO messages VALUES (5, 'alice', 'five', 1700000000000, 'http');
             INSERT INTO messages VALUES (6, 'bob', 'six', 1700000001000, 'websocket');
             INSERT INTO messages VALUES (7, 'alice', 'seven', 1700000002000, 'http');",
        )
        .unwrap();
    }
    let store = format!("sqlite:{}", path.display());
    let server = Instance::start(&store).await;

    let (_, lobby) = server.get_json("/api/messages?since=4").await;
    let lobby = lobby["messages"].as_array().unwrap().clone();
    assert_eq!(ids(&lobby), [5, 6, 7], "ids unchanged");
    assert_eq!(lobby[1]["via"], "websocket");
    assert_eq!(lobby[2]["sent_at"], "2023-11-14T22:13:22.000Z");
    let (_, same) = server.get_json(&in_room("lobby", "messages?since=4")).await;
    assert_eq!(ids(same["messages"].as_array().unwrap()), [5, 6, 7]);
    assert_eq!(server.post("carol", "eight").await["id"], 8);
    assert_eq!(
        server.post_to("maths", "carol", "first in maths").await["id"],
        1
    );
    server.kill().await;

    // Converted once: it opens again as it is, rooms and all.
    let again = Instance::start(&store).await;
    assert_eq!(again.post("dave", "nine").await["id"], 9);
    assert_eq!(
        again.post_to("maths", "dave", "second in maths").await["id"],
        2
    );
}

#[tokio::test]
async fn each_room_survives_a_crash_with_its_own_ids_and_history() {
    let dir = Scratch::new("sqlite");
    let store = format!("sqlite:{}", dir.path().join("chat.db").display());
    let before = Instance::start_with(&store, &["--history", "3"]).await;
    let mut art = SseClient::connect_to(&before, &in_room("art", "events"), "?since=0", None).await;
    for i in 1..=5 {
        before
            .post_to("maths", "alice", &format!("maths {i}"))
            .await;
    }
    before.post_to("art", "bob", "art 1").await;
    assert_eq!(
        art.next_message().await["text"],
        "art 1",
        "art hears only art"
    );
    before.kill().await;

    let after = Instance::start_with(&store, &["--history", "3"]).await;
    let (_, maths) = after.get_json(&in_room("maths", "messages?since=2")).await;
    assert_eq!(ids(maths["messages"].as_array().unwrap()), [3, 4, 5]);
    let (_, art) = after.get_json(&in_room("art", "messages?since=0")).await;
    assert_eq!(
        ids(art["messages"].as_array().unwrap()),
        [1],
        "art's history is its own"
    );
    assert_eq!(after.post_to("art", "bob", "art 2").await["id"], 2);
    let mut resumed = WsClient::connect_to(&after, &in_room("maths", "ws"), "?since=4").await;
    assert_eq!(resumed.next_message().await["id"], 5);
    let (_, rooms) = after.get_json("/api/rooms").await;
    let names: Vec<&str> = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"art") && names.contains(&"maths"),
        "{rooms}"
    );
}
