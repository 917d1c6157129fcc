//! The fault lab (`/api/lab/{id}/…`): faults injected into one page's own connections
//! (the requests carrying its `tap=` id) or everyone's, over real sockets.

mod common;

use std::time::{Duration, Instant};

use common::{Server, SseClient, WsClient, new_tap, within};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

/// `PUT /api/lab/{page}/{transport}` (`everyone` adds `?everyone=true`).
async fn set(server: &Server, page: &str, transport: &str, faults: Value, everyone: bool) -> Value {
    let query = if everyone { "?everyone=true" } else { "" };
    let response = server
        .http
        .put(server.url(&format!("/api/lab/{page}/{transport}{query}")))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `POST /api/lab/{page}/{transport}/cut`.
async fn cut(server: &Server, page: &str, transport: &str, everyone: bool) {
    let query = if everyone { "?everyone=true" } else { "" };
    let url = server.url(&format!("/api/lab/{page}/{transport}/cut{query}"));
    let response = server.http.post(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

/// An SSE stream of `page`.
async fn stream_of(server: &Server, page: &str) -> SseClient {
    SseClient::connect(server, &format!("?tap={page}"), None).await
}

#[tokio::test]
async fn a_blocked_websocket_upgrade_is_refused_for_that_page_only() {
    let server = Server::start().await;
    let (blocked, other) = (new_tap(), new_tap());
    let state = set(
        &server,
        &blocked,
        "websocket",
        json!({"blocked": true}),
        false,
    )
    .await;
    assert_eq!(state["page"]["websocket"]["blocked"], true);

    let url = format!("ws://{}/api/ws?tap={blocked}", server.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("the upgrade should be refused with 403, got {other:?}"),
    }
    // Another page, and a client without a tap, still upgrade and receive.
    let mut ws = WsClient::connect(&server, &format!("?tap={other}")).await;
    let mut plain = WsClient::connect(&server, "").await;
    let message = server.post("alice", "through").await;
    assert_eq!(ws.next_message().await["id"], message["id"]);
    assert_eq!(plain.next_message().await["id"], message["id"]);

    // Unblocked, the page upgrades again.
    set(&server, &blocked, "websocket", json!({}), false).await;
    WsClient::connect(&server, &format!("?tap={blocked}")).await;
}

#[tokio::test]
async fn a_blocked_stream_answers_403_with_a_json_error() {
    let server = Server::start().await;
    let page = new_tap();
    set(&server, &page, "sse", json!({"blocked": true}), false).await;
    let (status, body) = server.get_json(&format!("/api/events?tap={page}")).await;
    assert_eq!(status, 403);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("blocked by the fault lab"),
        "{body}"
    );
}

#[tokio::test]
async fn a_cut_ends_that_pages_streams_and_sockets_and_no_one_elses() {
    let server = Server::start().await;
    let (page, other) = (new_tap(), new_tap());
    let mut mine = stream_of(&server, &page).await;
    let mut theirs = stream_of(&server, &other).await;
    let mut my_socket = WsClient::connect(&server, &format!("?tap={page}")).await;
    let first = server.post("alice", "before the cut").await;
    assert_eq!(mine.next_message().await["id"], first["id"]);
    assert_eq!(theirs.next_message().await["id"], first["id"]);
    assert_eq!(my_socket.next_message().await["id"], first["id"]);

    cut(&server, &page, "sse", false).await;
    assert!(
        within("the cut stream's end", mine.next_event())
            .await
            .is_none()
    );
    cut(&server, &page, "websocket", false).await;
    // Cut as a network fault would: no close frame, the connection ends.
    let end = within("the cut socket's end", my_socket.next_frame()).await;
    assert!(
        end.is_none(),
        "a cut socket should end without a frame, got {end:?}"
    );

    let second = server.post("alice", "after the cut").await;
    assert_eq!(theirs.next_message().await["id"], second["id"]);
}

#[tokio::test]
async fn a_cut_for_everyone_ends_every_clients_stream() {
    let server = Server::start().await;
    let page = new_tap();
    let mut mine = stream_of(&server, &page).await;
    let mut untapped = SseClient::connect(&server, "", None).await;
    let first = server.post("alice", "before").await;
    assert_eq!(untapped.next_message().await["id"], first["id"]);
    assert_eq!(mine.next_message().await["id"], first["id"]);
    cut(&server, &page, "sse", true).await;
    assert!(
        within("the page's stream's end", mine.next_event())
            .await
            .is_none()
    );
    assert!(
        within("the other stream's end", untapped.next_event())
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_cut_breaks_off_a_held_long_poll() {
    let server = Server::start().await;
    let page = new_tap();
    let url = server.url(&format!("/api/messages/long-poll?timeout=25&tap={page}"));
    let held = tokio::spawn(server.http.get(url).send());
    // Cut until the held request is broken off: the cut may come before the poll is
    // parked, and then it waits on.
    let answer = within("the long poll to be cut", async {
        loop {
            cut(&server, &page, "long_poll", false).await;
            if held.is_finished() {
                return held.await.unwrap();
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let failed = match answer {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(
        failed,
        "a cut long poll should fail as a dropped connection does"
    );
}

#[tokio::test]
async fn an_idle_cut_ends_a_quiet_stream_but_not_one_that_sends_keep_alives() {
    // Keep-alive comments every 0.1 s against a proxy that cuts after 0.5 s of silence.
    let server = Server::start_with(&["--sse-keep-alive", "0.1"]).await;
    let (quiet, kept) = (new_tap(), new_tap());
    set(&server, &quiet, "sse", json!({"idle_cut_s": 0.5}), false).await;
    set(&server, &kept, "sse", json!({"idle_cut_s": 0.5}), false).await;
    let mut alive = stream_of(&server, &kept).await;
    let hint = within("the retry hint", alive.next_event()).await.unwrap();
    assert!(hint.retry.is_some(), "{hint:?}");
    // Eight keep-alives go by, longer than the idle cut, and the stream stays.
    let enough = alive.comments + 8;
    assert!(
        within("keep-alives", alive.await_comments(enough)).await,
        "the stream was cut"
    );
    let message = server.post("alice", "still here").await;
    assert_eq!(alive.next_message().await["id"], message["id"]);

    // The same cut with keep-alives slower than it: the stream is cut.
    let slow = Server::start_with(&["--sse-keep-alive", "30"]).await;
    set(&slow, &quiet, "sse", json!({"idle_cut_s": 0.5}), false).await;
    let started = Instant::now();
    let mut cut_off = stream_of(&slow, &quiet).await;
    let hint = within("the retry hint", cut_off.next_event())
        .await
        .unwrap();
    assert!(hint.retry.is_some(), "{hint:?}");
    assert!(within("the idle cut", cut_off.next_event()).await.is_none());
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "cut before the idle timeout"
    );
}

#[tokio::test]
async fn a_buffering_proxy_holds_sse_back_until_its_buffer_fills() {
    let server = Server::start().await;
    let (page, other) = (new_tap(), new_tap());
    set(&server, &page, "sse", json!({"buffer_bytes": 2000}), false).await;
    let mut buffered = stream_of(&server, &page).await;
    let mut direct = stream_of(&server, &other).await;
    let first = server.post("alice", "held back").await;
    assert_eq!(direct.next_message().await["id"], first["id"]);
    // The unbuffered stream has it; the buffered one does not, however long it waits
    // (a short look: nothing is on its way).
    let early = tokio::time::timeout(Duration::from_millis(300), buffered.next_event()).await;
    assert!(
        early.is_err(),
        "a buffered stream delivered before its buffer filled"
    );
    // Enough to fill 2000 bytes: then the first message comes, with the rest.
    for i in 0..20 {
        server
            .post("alice", &format!("filler {i} {}", "x".repeat(100)))
            .await;
    }
    assert_eq!(buffered.next_message().await["id"], first["id"]);
}

#[tokio::test]
async fn a_slow_network_delays_every_answer_of_that_page() {
    let server = Server::start().await;
    let page = new_tap();
    set(
        &server,
        &page,
        "short_poll",
        json!({"delay_ms": 400, "bytes_per_s": 100_000}),
        false,
    )
    .await;
    let started = Instant::now();
    let (status, body) = server.get_json(&format!("/api/messages?tap={page}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["messages"].is_array(), "the answer is whole: {body}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_network_delays_that_pages_websocket_and_an_idle_cut_ends_it() {
    let server = Server::start().await;
    let page = new_tap();
    set(&server, &page, "websocket", json!({"delay_ms": 400}), false).await;
    let mut slow = WsClient::connect(&server, &format!("?tap={page}")).await;
    let mut quick = WsClient::connect(&server, "").await;
    // Live messages, which the room's fan-out writes to the sockets it is lent: the
    // faulted socket is never lent, and writes each one after the delay.
    for text in ["one", "two"] {
        let posted = Instant::now();
        let sent = server.post("alice", text).await;
        assert_eq!(quick.next_message().await["id"], sent["id"]);
        assert_eq!(slow.next_message().await["id"], sent["id"]);
        let took = posted.elapsed();
        assert!(took >= Duration::from_millis(400), "{text} took {took:?}");
    }

    set(
        &server,
        &page,
        "websocket",
        json!({"idle_cut_s": 0.3}),
        false,
    )
    .await;
    let mut idle = WsClient::connect(&server, &format!("?tap={page}&since=2")).await;
    let sent = server.post("alice", "three").await;
    assert_eq!(idle.next_message().await["id"], sent["id"]);
    let end = within("the idle cut", idle.next_frame()).await;
    assert!(end.is_none(), "cut without a frame, got {end:?}");
}

#[tokio::test]
async fn the_lab_shows_and_clears_what_is_set() {
    let server = Server::start().await;
    let page = new_tap();
    set(&server, &page, "sse", json!({"buffer_bytes": 4096}), false).await;
    set(&server, &page, "websocket", json!({"blocked": true}), true).await;
    let (status, state) = server.get_json(&format!("/api/lab/{page}")).await;
    assert_eq!(status, 200);
    assert_eq!(state["page"]["sse"]["buffer_bytes"], 4096);
    assert_eq!(state["everyone"]["websocket"]["blocked"], true);
    let cleared = server
        .http
        .delete(server.url(&format!("/api/lab/{page}?everyone=true")))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    let state: Value = cleared.json().await.unwrap();
    assert_eq!(state, json!({"page": {}, "everyone": {}}));
}

#[tokio::test]
async fn bad_lab_requests_get_a_json_error_and_change_nothing() {
    let server = Server::start().await;
    let page = new_tap();
    let put = |path: String, body: &'static str| {
        server
            .http
            .put(server.url(&path))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (path, body, status) in [
        (format!("/api/lab/{page}/pigeon"), "{}", 400),
        (format!("/api/lab/{page}/webtransport"), "{}", 400),
        (format!("/api/lab/{page}/sse"), "{\"buffer_bytes\": 0}", 400),
        (format!("/api/lab/{page}/sse"), "{\"idle_cut_s\": -1}", 400),
        (format!("/api/lab/{page}/sse"), "{\"delay_ms\": 99999}", 400),
        (format!("/api/lab/{page}/sse"), "{\"bytes_per_s\": 1}", 400),
        (format!("/api/lab/{page}/sse"), "{\"colour\": \"red\"}", 422),
        (format!("/api/lab/{page}/sse"), "not json", 400),
        (format!("/api/lab/{page}/sse?everyone=maybe"), "{}", 400),
        ("/api/lab/short/sse".to_owned(), "{}", 400),
    ] {
        let response = within("the answer", put(path.clone(), body)).await.unwrap();
        assert_eq!(response.status(), status, "{path} {body}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"].is_string(), "{path}: {error}");
    }
    let (_, state) = server.get_json(&format!("/api/lab/{page}")).await;
    assert_eq!(state, json!({"page": {}, "everyone": {}}));
}

#[tokio::test]
async fn an_operator_can_turn_the_lab_off() {
    let server = Server::start_with(&["--fault-lab", "off"]).await;
    let page = new_tap();
    let (status, body) = server.get_json(&format!("/api/lab/{page}")).await;
    assert_eq!(status, 403);
    assert!(
        body["error"].as_str().unwrap().contains("--fault-lab"),
        "{body}"
    );
    // And the transports work as ever.
    let mut stream = stream_of(&server, &page).await;
    let message = server.post("alice", "no lab").await;
    assert_eq!(stream.next_message().await["id"], message["id"]);
}

#[tokio::test]
async fn a_restart_of_the_hub_cuts_the_room_and_its_ids_start_again() {
    let server = Server::start().await;
    let page = new_tap();
    for i in 0..3 {
        server.post("alice", &format!("before {i}")).await;
    }
    // Anyone in the lobby is cut, with or without a tap; another room is not.
    let mut lobby = SseClient::connect(&server, "?since=3", None).await;
    let mut maths = SseClient::connect_to(&server, "/api/rooms/maths/events", "", None).await;
    assert!(within("the retry hint", lobby.next_event()).await.is_some());
    let url = server.url(&format!("/api/lab/{page}/restart"));
    let response = server.http.post(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        within("the lobby's stream's end", lobby.next_event())
            .await
            .is_none()
    );

    let first = server.post("bob", "after the restart").await;
    assert_eq!(first["id"], 1, "ids start again");
    // A client back with its old cursor is told to reset, then gets the new chat.
    let mut back = SseClient::connect(&server, "", Some("3")).await;
    let reset = loop {
        let event = within("the reset", back.next_event()).await.unwrap();
        if event.event.as_deref() == Some("reset") {
            break event;
        }
    };
    // The stream carries on from before the oldest message the room holds: #1.
    assert_eq!(reset.json()["last_id"], 0, "{reset:?}");
    assert_eq!(back.next_message().await["id"], 1);
    let in_maths = server.post_to("maths", "carol", "still here").await;
    assert_eq!(maths.next_message().await["id"], in_maths["id"]);
}
