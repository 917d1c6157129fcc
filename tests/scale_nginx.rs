//! The shipped `deploy/nginx.conf`, run by a real nginx in front of two pushlab
//! processes on Redis: every transport works through it, and when one instance dies
//! its clients carry on through the other.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use cluster::{Nginx, Redis, post_each};
use common::{Poller, SseClient, WsClient, ids, in_room, within};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn every_transport_works_through_nginx_in_front_of_two_instances() {
    let redis = Redis::start().await;
    let [a, b] = redis.instances().await;
    let nginx = Nginx::start([a.addr, b.addr]).await;

    let mut sse = SseClient::connect(&nginx, "?since=0", None).await;
    assert_eq!(
        sse.response_headers["content-type"], "text/event-stream",
        "the stream passes through as a stream"
    );
    let mut ws = WsClient::connect(&nginx, "?since=0").await;
    // Round-robin: these land on both instances.
    let mut posted = Vec::new();
    for i in 1..=4 {
        posted.push(nginx.post("alice", &format!("via nginx {i}")).await);
    }
    ws.send_json(json!({ "type": "send", "author": "bob", "text": "over the proxied socket" }))
        .await;
    let want = [1, 2, 3, 4, 5];

    let mut over_ws = Vec::new();
    for _ in want {
        over_ws.push(ws.next_message().await);
    }
    assert_eq!(ids(&over_ws), want);
    assert_eq!(over_ws[4]["via"], "websocket");
    let mut over_sse = Vec::new();
    for _ in want {
        over_sse.push(sse.next_message().await);
    }
    assert_eq!(ids(&over_sse), want);
    assert_eq!(ids(&Poller::long().collect(&nginx, 5).await), want);
    assert_eq!(ids(&Poller::short().collect(&nginx, 5).await), want);
    assert_eq!(ids(&posted), [1, 2, 3, 4]);

    // A page served through the proxy opens its socket with the proxy's origin: the
    // Host header nginx passes on must still match it.
    let mut request = format!("ws://{}/api/ws", nginx.addr)
        .into_client_request()
        .unwrap();
    let origin = format!("http://{}", nginx.addr).parse().unwrap();
    request.headers_mut().insert("origin", origin);
    let (_, answer) = within(
        "a same-origin handshake",
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("a page from the proxy's own origin may open a socket");
    assert_eq!(answer.status(), 101);
}

#[tokio::test]
async fn when_an_instance_dies_nginx_clients_resume_on_the_other() {
    let redis = Redis::start().await;
    let [a, b] = redis.instances().await;
    let nginx = Nginx::start([a.addr, b.addr]).await;
    post_each(&nginx, 1..=2, "m").await;
    a.kill().await;

    // Requests that would have gone to the dead instance are passed to the live one.
    post_each(&nginx, 3..=4, "m").await;
    let mut sse = SseClient::connect(&nginx, "", Some("2")).await;
    assert_eq!(
        ids(&[sse.next_message().await, sse.next_message().await]),
        [3, 4]
    );
    let mut poller = Poller::short();
    poller.cursor = 2;
    assert_eq!(ids(&poller.collect(&nginx, 2).await), [3, 4]);
    drop(b);
}

#[tokio::test]
async fn two_instances_behind_nginx_agree_room_by_room() {
    let redis = Redis::start().await;
    let [a, b] = redis.instances().await;
    let nginx = Nginx::start([a.addr, b.addr]).await;
    let mut maths =
        SseClient::connect_to(&nginx, &in_room("maths", "events"), "?since=0", None).await;
    let mut art = WsClient::connect_to(&nginx, &in_room("art", "ws"), "?since=0").await;

    // Round-robin: these land on both instances, interleaved between the rooms.
    for i in 1..=3 {
        let stored = nginx.post_to("maths", "alice", &format!("maths {i}")).await;
        assert_eq!(stored["id"], i);
    }
    art.send_json(json!({ "type": "send", "author": "bob", "text": "art 1" }))
        .await;
    let echoed = art.next_message().await;
    assert_eq!(
        (echoed["id"].as_u64(), echoed["text"].as_str()),
        (Some(1), Some("art 1"))
    );
    let stored = nginx.post_to("art", "carol", "art 2").await;
    assert_eq!(stored["id"], 2, "art counts its own ids");

    let mut got = Vec::new();
    for _ in 1..=3 {
        got.push(maths.next_message().await);
    }
    assert_eq!(ids(&got), [1, 2, 3]);
    assert_eq!(ids(&[art.next_message().await]), [2]);
    let mut poller = Poller::at(&in_room("maths", "messages"));
    assert_eq!(ids(&poller.collect(&nginx, 3).await), [1, 2, 3]);
}
