//! WebTransport, spoken by a real client (`wtransport`'s) over QUIC on loopback,
//! trusting the server's self-signed certificate by its hash as a browser does.

mod common;

use common::{Poller, Server, SseClient, WtClient, WtRefusal, eventually, in_room, within};
use serde_json::Value;

async fn server() -> Server {
    Server::start_with(&["--webtransport"]).await
}

#[tokio::test]
async fn a_session_receives_history_then_live_messages() {
    let server = server().await;
    server.post("ann", "one").await;
    server.post("ann", "two").await;
    let mut session = WtClient::connect(&server, "/api/webtransport?since=0").await;
    assert_eq!(session.next_message().await["text"], "one");
    assert_eq!(session.next_message().await["text"], "two");

    let posted = server.post("bob", "live").await;
    let live = session.next_message().await;
    assert_eq!(live, posted, "the same JSON as every other transport");
    assert_eq!(live["id"], 3);
}

#[tokio::test]
async fn a_message_posted_over_http_reaches_the_session_with_its_id_and_back() {
    let server = server().await;
    let mut session = WtClient::connect(&server, "/api/webtransport").await;
    let mut sse = SseClient::connect(&server, "", None).await;

    let posted = server.post("ann", "over http").await;
    assert_eq!(session.next_message().await, posted);

    let reply = session.send("bob", "over webtransport").await;
    assert_eq!(reply["type"], "message", "{reply}");
    let sent = &reply["message"];
    assert_eq!(
        (sent["id"].as_u64(), &sent["via"]),
        (Some(2), &"webtransport".into())
    );
    // Everyone gets it from the hub, its sender included.
    assert_eq!(&session.next_message().await, sent);
    sse.next_message().await;
    assert_eq!(&sse.next_message().await, sent);
}

#[tokio::test]
async fn a_dropped_session_resumes_from_its_cursor_without_loss() {
    let server = server().await;
    let mut session = WtClient::connect(&server, "/api/webtransport?since=0").await;
    server.post("ann", "1").await;
    let last = session.next_message().await["id"].as_u64().unwrap();
    session.connection.close(0u32.into(), b"");
    drop(session);
    eventually("the server to see the session end", || async {
        server.stats().await["transports"]["webtransport"]["open"] == 0
    })
    .await;

    for text in ["2", "3", "4"] {
        server.post("ann", text).await;
    }
    let mut again = WtClient::connect(&server, &format!("/api/webtransport?since={last}")).await;
    let texts: Vec<Value> = [
        again.next_message().await,
        again.next_message().await,
        again.next_message().await,
    ]
    .iter()
    .map(|m| m["text"].clone())
    .collect();
    assert_eq!(texts, ["2", "3", "4"]);
    let all = Poller::short().collect(&server, 4).await;
    assert_eq!(common::ids(&all), [1, 2, 3, 4]);
}

#[tokio::test]
async fn a_session_may_ask_for_a_stream_per_message() {
    let server = server().await;
    server.post("ann", "history").await;
    let path = "/api/webtransport?since=0&delivery=stream-per-message";
    let session = WtClient::connect(&server, path).await;
    assert_eq!(
        session.next_own_stream().await["message"]["text"],
        "history"
    );
    let posted = server.post("bob", "live").await;
    assert_eq!(session.next_own_stream().await["message"], posted);
}

#[tokio::test]
async fn with_datagrams_history_comes_on_the_stream_and_live_messages_as_datagrams() {
    let server = server().await;
    server.post("ann", "history").await;
    let path = "/api/webtransport?since=0&delivery=datagrams";
    let mut session = WtClient::connect(&server, path).await;
    // Read before publishing: the session has begun, so what follows is live.
    assert_eq!(session.next_message().await["text"], "history");

    let posted = server.post("bob", "live").await;
    assert_eq!(session.next_datagram().await["message"], posted);
    // A message bigger than a datagram can be goes on the stream.
    let posted = server.post("bob", &"字".repeat(2000)).await;
    assert_eq!(session.next_message().await, posted);
}

#[tokio::test]
async fn a_cursor_older_than_the_history_gets_a_reset() {
    let server = Server::start_with(&["--webtransport", "--history", "2"]).await;
    for text in ["1", "2", "3", "4"] {
        server.post("ann", text).await;
    }
    let mut session = WtClient::connect(&server, "/api/webtransport?since=1").await;
    let reset = session.next_frame().await.unwrap();
    assert_eq!(reset["type"], "reset", "{reset}");
    assert_eq!(session.next_message().await["id"], 3);
}

#[tokio::test]
async fn a_room_session_hears_only_its_room() {
    let server = server().await;
    let path = format!("{}?since=0", in_room("maths", "webtransport"));
    let mut session = WtClient::connect(&server, &path).await;
    server.post("ann", "lobby").await;
    server.post_to("maths", "ann", "maths").await;
    let message = session.next_message().await;
    assert_eq!(
        (message["text"].as_str(), message["id"].as_u64()),
        (Some("maths"), Some(1))
    );
    let reply = session.send("bob", "in maths").await;
    assert_eq!(reply["message"]["id"], 2);
    let (_, page) = server
        .get_json(&format!("{}?since=0", in_room("maths", "messages")))
        .await;
    assert_eq!(page["messages"][1]["text"], "in maths");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let server = server().await;
    // An unknown path: no session (404).
    for path in ["/api/nope", "/api/rooms/a/b/webtransport"] {
        let refused = WtClient::try_connect(&server, path, None).await;
        assert!(matches!(refused, Err(WtRefusal::SessionRejected)), "{path}");
    }

    // A bad cursor or room: the session opens only to say why, then closes.
    for (path, word) in [
        ("/api/webtransport?since=abc", "since"),
        ("/api/rooms/no%20spaces/webtransport", "room"),
        ("/api/webtransport?delivery=pigeon", "delivery"),
    ] {
        let mut session = WtClient::connect(&server, path).await;
        let close = session.next_frame().await.unwrap();
        assert_eq!(
            (close["type"].as_str(), close["code"].as_u64()),
            (Some("close"), Some(400))
        );
        assert!(close["reason"].as_str().unwrap().contains(word), "{close}");
        assert_eq!(session.next_frame().await, None, "nothing after the close");
    }

    // Bad sends: each answered on its own stream; the session carries on.
    let mut session = WtClient::connect(&server, "/api/webtransport").await;
    let huge = vec![b'x'; 17 * 1024];
    let reply = session.send_raw(&huge).await;
    assert!(
        reply["error"].as_str().unwrap().contains("too big"),
        "{reply}"
    );
    let reply = session.send_raw(b"not json").await;
    assert!(
        reply["error"].as_str().unwrap().contains("invalid frame"),
        "{reply}"
    );
    let reply = session.send("ann", "").await;
    assert!(
        reply["error"].as_str().unwrap().contains("empty"),
        "{reply}"
    );
    assert_eq!(session.send("ann", "still here").await["message"]["id"], 1);
    assert_eq!(session.next_message().await["text"], "still here");
    let (_, page) = server.get_json("/api/messages?since=0").await;
    assert_eq!(page["last_id"], 1, "nothing refused was stored");
}

#[tokio::test]
async fn a_page_of_another_site_is_refused() {
    let server = server().await;
    let foreign =
        WtClient::try_connect(&server, "/api/webtransport", Some("https://evil.example")).await;
    assert!(matches!(foreign, Err(WtRefusal::SessionRejected)));
    let same = format!("https://{}", server.addr);
    assert!(
        WtClient::try_connect(&server, "/api/webtransport", Some(&same))
            .await
            .is_ok()
    );
    assert_eq!(server.stats().await["limits"]["refused_origins"], 1);
}

#[tokio::test]
async fn a_rebound_host_name_gets_no_session() {
    // A page at evil.example:PORT whose name now points at 127.0.0.1: its Origin
    // matches its :authority, so only the host check can tell.
    let server = server().await;
    let port = server.addr.port();
    let evil = format!("evil.example:{port}");
    let page = format!("https://{evil}");
    let rebound = WtClient::try_connect_at(&server, &evil, "/api/webtransport", Some(&page)).await;
    assert!(matches!(rebound, Err(WtRefusal::SessionRejected)));
    assert_eq!(server.stats().await["limits"]["refused_hosts"], 1);
    // A loopback name is served, and so is a name the operator allowed.
    let local = format!("localhost:{port}");
    assert!(
        WtClient::try_connect_at(&server, &local, "/api/webtransport", None)
            .await
            .is_ok()
    );
    let allowed = Server::start_with(&["--webtransport", "--allow-host", "chat.example.org"]).await;
    let named = format!("chat.example.org:{}", allowed.addr.port());
    let session = WtClient::try_connect_at(&allowed, &named, "/api/webtransport", None).await;
    assert!(session.is_ok());
}

#[tokio::test]
async fn sessions_are_counted_held_against_the_caps_and_listed_as_online() {
    let server = Server::start_with(&["--webtransport", "--max-connections-per-ip", "1"]).await;
    let _first = WtClient::connect(&server, "/api/webtransport?client=tab-1&name=ann").await;
    let stats = server.stats().await;
    assert_eq!(stats["transports"]["webtransport"]["open"], 1, "{stats}");
    let (_, presence) = server.get_json("/api/presence").await;
    assert_eq!(
        presence["clients"][0]["transport"], "webtransport",
        "{presence}"
    );

    let mut second = WtClient::connect(&server, "/api/webtransport").await;
    let close = second.next_frame().await.unwrap();
    assert_eq!(
        (close["type"].as_str(), close["code"].as_u64()),
        (Some("close"), Some(503))
    );
}

#[tokio::test]
async fn shutdown_closes_the_session_with_a_reason() {
    let server = server().await;
    let mut session = WtClient::connect(&server, "/api/webtransport").await;
    let stopping = tokio::spawn(server.shutdown());
    let close = session.next_frame().await.unwrap();
    assert_eq!(close["type"], "close");
    assert_eq!(close["code"], 1001);
    assert_eq!(close["reason"], "server shutting down");
    drop(session);
    within("the server to stop", stopping)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn without_the_flag_the_page_is_told_webtransport_is_off() {
    let server = Server::start().await;
    let (status, answer) = server.get_json("/api/webtransport/certificate-hash").await;
    assert_eq!(status, 404);
    assert!(
        answer["error"].as_str().unwrap().contains("--webtransport"),
        "{answer}"
    );
}

#[tokio::test]
async fn the_page_is_given_the_hash_and_the_address_to_use() {
    let server = server().await;
    let (status, answer) = server.get_json("/api/webtransport/certificate-hash").await;
    assert_eq!(status, 200);
    assert_eq!(answer["hash"]["algorithm"], "sha-256");
    assert_eq!(answer["hash"]["value"].as_str().unwrap().len(), 64);
    assert_eq!(
        answer["host"], "127.0.0.1",
        "the QUIC socket's address family"
    );
}

#[tokio::test]
async fn a_page_opened_at_localhost_may_reach_the_socket_at_127_0_0_1() {
    let server = server().await;
    let page = format!("http://localhost:{}", server.addr.port());
    assert!(
        WtClient::try_connect(&server, "/api/webtransport", Some(&page))
            .await
            .is_ok()
    );
    let other_port = format!("http://localhost:{}", server.addr.port() + 1);
    let refused = WtClient::try_connect(&server, "/api/webtransport", Some(&other_port)).await;
    assert!(matches!(refused, Err(WtRefusal::SessionRejected)));
}
