//! Rooms on the real server with the memory store: a message in one room reaches every
//! transport of that room and nobody in another; the paths without a room are the
//! lobby; names are checked on every endpoint; the cap refuses a new room and creates
//! nothing; each room resumes from its own cursors.

mod common;

use common::{Poller, Server, SseClient, WsClient, eventually, ids, in_room, within};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

/// Every transport subscribed to one room, from its start.
struct Watchers {
    sse: SseClient,
    ws: WsClient,
    long: Poller,
    short: Poller,
}

impl Watchers {
    async fn join(server: &Server, room: &str) -> Self {
        Self {
            sse: SseClient::connect_to(server, &in_room(room, "events"), "?since=0", None).await,
            ws: WsClient::connect_to(server, &in_room(room, "ws"), "?since=0").await,
            long: Poller::at(&in_room(room, "messages/long-poll")),
            short: Poller::at(&in_room(room, "messages")),
        }
    }

    /// The next `n` messages on each transport, which must agree; returns them.
    async fn next(&mut self, server: &Server, n: usize) -> Vec<Value> {
        let mut over_sse = Vec::new();
        let mut over_ws = Vec::new();
        for _ in 0..n {
            over_sse.push(self.sse.next_message().await);
            over_ws.push(self.ws.next_message().await);
        }
        let over_long = self.long.collect(server, n).await;
        let over_short = self.short.collect(server, n).await;
        let texts = |messages: &[Value]| -> Vec<String> {
            messages
                .iter()
                .map(|m| m["text"].as_str().unwrap().to_owned())
                .collect()
        };
        for other in [&over_ws, &over_long, &over_short] {
            assert_eq!(texts(other), texts(&over_sse), "every transport agrees");
            assert_eq!(ids(other), ids(&over_sse));
        }
        over_sse
    }
}

#[tokio::test]
async fn a_message_in_one_room_reaches_every_transport_of_that_room_and_nobody_in_another() {
    let server = Server::start_with(&["--publish-rate", "0"]).await;
    let mut maths = Watchers::join(&server, "maths").await;
    let mut art = Watchers::join(&server, "art").await;

    server.post_to("maths", "alice", "a maths question").await;
    maths
        .ws
        .send_json(json!({ "type": "send", "author": "bob", "text": "a maths answer" }))
        .await;
    let in_maths = maths.next(&server, 2).await;
    assert_eq!(ids(&in_maths), [1, 2]);
    assert_eq!(in_maths[1]["via"], "websocket");

    // Published after both maths messages were delivered: if anything of maths had
    // reached art, it would arrive before this.
    let marker = server
        .post_to("art", "carol", "the first art message")
        .await;
    assert_eq!(marker["id"], 1, "art counts its own ids");
    let in_art = art.next(&server, 1).await;
    assert_eq!(in_art[0]["text"], "the first art message");

    let stats = server.stats().await;
    assert_eq!(stats["transports"]["sse"]["delivered"], 3, "{stats}");
}

#[tokio::test]
async fn the_paths_without_a_room_are_the_lobby() {
    let server = Server::start().await;
    let mut lobby = Watchers::join(&server, "lobby").await;
    let mut sse = SseClient::connect(&server, "?since=0", None).await;

    server.post("alice", "to /api/messages").await;
    server
        .post_to("lobby", "bob", "to /api/rooms/lobby/messages")
        .await;
    let both = lobby.next(&server, 2).await;
    assert_eq!(ids(&both), [1, 2]);
    assert_eq!(
        ids(&[sse.next_message().await, sse.next_message().await]),
        [1, 2]
    );
    let (_, page) = server.get_json("/api/messages?since=0").await;
    assert_eq!(ids(page["messages"].as_array().unwrap()), [1, 2]);
    assert_eq!(server.stats().await["hub"]["last_id"], 2);
}

#[tokio::test]
async fn bad_room_names_get_400_with_a_json_error_on_every_endpoint() {
    let server = Server::start().await;
    let long_name = "a".repeat(65);
    for bad in ["a%20b", "caf%C3%A9", "a.b", "%7Bx%7D", &long_name] {
        for (method, endpoint) in [
            ("GET", "messages"),
            ("POST", "messages"),
            ("GET", "messages/long-poll"),
            ("GET", "events"),
            ("GET", "ws"),
            ("GET", "presence"),
        ] {
            let url = server.url(&in_room(bad, endpoint));
            let request = match method {
                "POST" => server
                    .http
                    .post(url)
                    .json(&json!({ "author": "a", "text": "b" })),
                _ => server.http.get(url),
            };
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 400, "{method} {endpoint} in {bad:?}: {body}");
            assert!(
                body["error"].as_str().unwrap().starts_with("room must be"),
                "{body}"
            );
        }
        // A real WebSocket handshake is refused before the upgrade.
        let url = format!("ws://{}{}", server.addr, in_room(bad, "ws"));
        match tokio_tungstenite::connect_async(url).await {
            Err(tungstenite::Error::Http(answer)) => assert_eq!(answer.status(), 400),
            other => panic!("expected a 400 for {bad:?}, got {other:?}"),
        }
    }
    let (_, rooms) = server.get_json("/api/rooms").await;
    assert_eq!(rooms["rooms"], json!([]), "no bad request made a room");
}

#[tokio::test]
async fn past_the_room_cap_a_new_room_gets_503_and_nothing_is_created() {
    let server = Server::start_with(&["--max-rooms", "2"]).await;
    // Watching empty rooms does not count against the cap.
    let mut watchers = Vec::new();
    for i in 0..5 {
        let path = in_room(&format!("empty{i}"), "events");
        watchers.push(SseClient::connect_to(&server, &path, "", None).await);
    }
    server.post_to("a", "alice", "first room").await;
    server.post_to("b", "alice", "second room").await;

    let response = server
        .http
        .post(server.url(&in_room("c", "messages")))
        .json(&json!({ "author": "alice", "text": "one room too many" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("--max-rooms"),
        "{body}"
    );
    let mut socket = WsClient::connect_to(&server, &in_room("c", "ws"), "").await;
    socket
        .send_json(json!({ "type": "send", "author": "bob", "text": "over the socket" }))
        .await;
    let refusal = socket.next_frame().await.expect("the socket stays open");
    assert_eq!(refusal["type"], "error", "{refusal}");
    drop(socket);
    drop(watchers);

    let names = || async {
        let (_, rooms) = server.get_json("/api/rooms").await;
        let rooms = rooms["rooms"].as_array().unwrap().clone();
        rooms
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    eventually("the watched rooms to be forgotten", || async {
        names().await == ["a", "b"]
    })
    .await;
    let (_, page) = server.get_json(&in_room("c", "messages?since=0")).await;
    assert_eq!(page["messages"], json!([]), "nothing was stored in c");
    assert_eq!(server.post_to("a", "alice", "still fine").await["id"], 2);
}

#[tokio::test]
async fn each_room_keeps_its_own_history_cursors_and_resets() {
    let server = Server::start_with(&["--history", "3", "--publish-rate", "0"]).await;
    for i in 1..=6 {
        server.post_to("busy", "alice", &format!("busy {i}")).await;
    }
    for i in 1..=2 {
        server.post_to("calm", "bob", &format!("calm {i}")).await;
    }

    // calm's history is its own: busy's six messages did not push it out.
    let (_, calm) = server.get_json(&in_room("calm", "messages?since=0")).await;
    assert_eq!(
        (
            calm["reset"].clone(),
            ids(calm["messages"].as_array().unwrap())
        ),
        (json!(false), vec![1, 2])
    );
    let (_, busy) = server.get_json(&in_room("busy", "messages?since=0")).await;
    assert_eq!(
        (
            busy["reset"].clone(),
            ids(busy["messages"].as_array().unwrap())
        ),
        (json!(true), vec![4, 5, 6])
    );

    // Each room resumes from its own cursor, on every push transport.
    let mut sse = SseClient::connect_to(&server, &in_room("busy", "events"), "", Some("4")).await;
    assert_eq!(
        ids(&[sse.next_message().await, sse.next_message().await]),
        [5, 6]
    );
    let mut ws = WsClient::connect_to(&server, &in_room("calm", "ws"), "?since=1").await;
    assert_eq!(ids(&[ws.next_message().await]), [2]);

    // A cursor that is fine in busy is ahead of calm: a reset there, not a hang.
    let mut ahead = WsClient::connect_to(&server, &in_room("calm", "ws"), "?since=5").await;
    let frame = ahead.next_frame().await.unwrap();
    assert_eq!(frame, json!({ "type": "reset", "last_id": 0 }));
    let held = in_room("calm", "messages/long-poll?since=2");
    let ((_, answer), _) = within(
        "a long poll that a calm message answers",
        futures::future::join(
            server.get_json(&held),
            server.post_to("calm", "bob", "calm 3"),
        ),
    )
    .await;
    assert_eq!(ids(answer["messages"].as_array().unwrap()), [3]);
}

#[tokio::test]
async fn the_room_list_presence_and_counters_follow_the_rooms() {
    let server = Server::start().await;
    let mut sse = SseClient::connect_to(
        &server,
        &in_room("maths", "events"),
        "?client=tab1&name=alice",
        None,
    )
    .await;
    server.post_to("art", "bob", "hello art").await;
    server.post_to("maths", "bob", "hello maths").await;
    sse.next_message().await;

    let (status, rooms) = server.get_json("/api/rooms").await;
    assert_eq!(status, 200);
    assert_eq!(
        rooms,
        json!({ "rooms": [
            { "name": "art", "last_id": 1, "clients": 0 },
            { "name": "maths", "last_id": 1, "clients": 1 },
        ]})
    );
    let (_, mut in_maths) = server.get_json(&in_room("maths", "presence")).await;
    let seat = &mut in_maths["clients"][0];
    assert!(
        seat["connection"].is_u64(),
        "the TCP connection's number: {seat}"
    );
    seat.as_object_mut().unwrap().remove("connection");
    assert_eq!(
        in_maths,
        json!({
            "clients": [{ "client": "tab1", "name": "alice", "transport": "sse", "http": "http/1.1" }],
            "total": 1,
        })
    );
    let (_, in_lobby) = server.get_json("/api/presence").await;
    assert_eq!(
        in_lobby,
        json!({ "clients": [], "total": 0 }),
        "alice is in maths, not the lobby"
    );

    assert_eq!(server.stats().await["hub"]["rooms"], 2);
    let metrics = server.metrics().await;
    assert!(metrics.contains("\npushlab_rooms 2\n"), "{metrics}");
    assert!(!metrics.contains("maths"), "no metric is labelled by room");

    drop(sse);
    eventually("maths to show nobody in it", || async {
        let (_, rooms) = server.get_json("/api/rooms").await;
        rooms["rooms"][1]["clients"] == 0
    })
    .await;
}
