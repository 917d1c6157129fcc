//! Several pushlab processes sharing one chat through a real `redis-server`: messages
//! cross instances on every transport with the same id, bursts arrive in one order
//! everywhere, clients move between instances with their cursor, and neither a killed
//! instance nor a restarted Redis loses or duplicates anything.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use cluster::{Instance, Redis, free_port, post_each, run_to_exit, try_post};
use common::{Poller, SseClient, WsClient, ids, in_room, within};
use futures::future::join_all;
use serde_json::{Value, json};

/// `(id, text, via)` of each message: what every client must agree on.
fn seen(messages: &[Value]) -> Vec<(u64, String, String)> {
    messages
        .iter()
        .map(|m| {
            let field = |name: &str| m[name].as_str().unwrap().to_owned();
            (m["id"].as_u64().unwrap(), field("text"), field("via"))
        })
        .collect()
}

async fn sse_messages(sse: &mut SseClient, n: usize) -> Vec<Value> {
    within("SSE messages", async {
        let mut got = Vec::new();
        while got.len() < n {
            got.push(sse.next_message().await);
        }
        got
    })
    .await
}

async fn ws_messages(ws: &mut WsClient, n: usize) -> Vec<Value> {
    within("WebSocket messages", async {
        let mut got = Vec::new();
        while got.len() < n {
            got.push(ws.next_message().await);
        }
        got
    })
    .await
}

#[tokio::test]
async fn a_message_posted_on_one_instance_reaches_every_transport_of_another_with_its_id() {
    let redis = Redis::start().await;
    let [a, b] = redis.instances().await;
    let mut sse = SseClient::connect(&b, "?since=0", None).await;
    let mut ws = WsClient::connect(&b, "?since=0").await;

    let posted = a.post("alice", "over HTTP on A").await;
    let mut sender = WsClient::connect(&a, "?since=1").await;
    sender
        .send_json(json!({ "type": "send", "author": "bob", "text": "over WebSocket on A" }))
        .await;
    // The sender's own message comes back to it, by the hub, with its id.
    let echoed = sender.next_message().await;
    assert_eq!(
        (posted["id"].as_u64(), echoed["id"].as_u64()),
        (Some(1), Some(2))
    );

    let expected = seen(&[posted, echoed]);
    assert_eq!(seen(&sse_messages(&mut sse, 2).await), expected);
    assert_eq!(seen(&ws_messages(&mut ws, 2).await), expected);
    assert_eq!(seen(&Poller::long().collect(&b, 2).await), expected);
    assert_eq!(seen(&Poller::short().collect(&b, 2).await), expected);
    assert_eq!(expected[1].2, "websocket");
}

#[tokio::test]
async fn a_burst_posted_on_two_instances_at_once_arrives_complete_and_in_one_order_everywhere() {
    const EACH: usize = 100;
    let redis = Redis::start().await;
    let [a, b, c] = redis.instances().await;
    let instances = [&a, &b, &c];
    let mut sses = Vec::new();
    let mut wss = Vec::new();
    for instance in instances {
        sses.push(SseClient::connect(instance, "?since=0", None).await);
        wss.push(WsClient::connect(instance, "?since=0").await);
    }

    // Alternating, all in flight at once: A's and B's publishes race in Redis.
    let texts: Vec<(&Instance, String)> = (0..EACH)
        .flat_map(|i| [(&a, format!("a{i}")), (&b, format!("b{i}"))])
        .collect();
    let stored = join_all(texts.iter().map(|(to, text)| to.post("burst", text))).await;
    let mut stored_ids = ids(&stored);
    stored_ids.sort_unstable();
    assert_eq!(stored_ids, (1..=2 * EACH as u64).collect::<Vec<_>>());

    let mut orders = Vec::new();
    for sse in &mut sses {
        orders.push(seen(&sse_messages(sse, 2 * EACH).await));
    }
    for ws in &mut wss {
        orders.push(seen(&ws_messages(ws, 2 * EACH).await));
    }
    let first = &orders[0];
    assert_eq!(
        first.iter().map(|m| m.0).collect::<Vec<_>>(),
        (1..=2 * EACH as u64).collect::<Vec<_>>(),
        "every id once, in order"
    );
    for order in &orders {
        assert_eq!(
            order, first,
            "every client of every instance sees one order"
        );
    }
}

#[tokio::test]
async fn a_client_that_reconnects_to_another_instance_resumes_from_its_cursor() {
    let redis = Redis::start().await;
    let [a, b] = redis.instances().await;
    let mut sse = SseClient::connect(&a, "?since=0", None).await;
    post_each(&a, 1..=3, "before ").await;
    let before = sse_messages(&mut sse, 3).await;
    drop(sse);
    post_each(&b, 4..=6, "while away ").await;

    // A load balancer without sticky sessions sends each reconnect anywhere.
    let mut sse = SseClient::connect(&b, "", Some("3")).await;
    assert_eq!(ids(&sse_messages(&mut sse, 3).await), [4, 5, 6]);
    let mut ws = WsClient::connect(&b, "?since=3").await;
    assert_eq!(ids(&ws_messages(&mut ws, 3).await), [4, 5, 6]);
    let mut poller = Poller::long();
    poller.cursor = 3;
    assert_eq!(ids(&poller.collect(&a, 3).await), [4, 5, 6]);
    assert_eq!(ids(&before), [1, 2, 3]);
}

#[tokio::test]
async fn an_instance_killed_with_sigkill_leaves_the_others_serving_and_its_clients_resume() {
    let redis = Redis::start().await;
    let [a, b] = redis.instances().await;
    let mut on_a = SseClient::connect(&a, "?since=0", None).await;
    let mut ws_on_a = WsClient::connect(&a, "?since=0").await;
    post_each(&b, 1..=3, "m").await;
    assert_eq!(ids(&sse_messages(&mut on_a, 3).await), [1, 2, 3]);
    assert_eq!(ids(&ws_messages(&mut ws_on_a, 3).await), [1, 2, 3]);

    a.kill().await;
    assert!(
        within("the SSE stream to end", on_a.next_event())
            .await
            .is_none(),
        "the stream of a killed instance ends"
    );
    assert!(ws_on_a.next_frame().await.is_none(), "its socket closes");
    post_each(&b, 4..=5, "m").await;
    let mut resumed = SseClient::connect(&b, "", Some("3")).await;
    assert_eq!(ids(&sse_messages(&mut resumed, 2).await), [4, 5]);
    let mut ws = WsClient::connect(&b, "?since=3").await;
    assert_eq!(ids(&ws_messages(&mut ws, 2).await), [4, 5]);
}

#[tokio::test]
async fn a_redis_restart_refuses_publishes_in_the_gap_and_loses_nothing() {
    let mut redis = Redis::start().await;
    let [a, b] = redis.instances().await;
    let mut sse = SseClient::connect(&b, "?since=0", None).await;
    let mut ws = WsClient::connect(&b, "?since=0").await;
    let mut sender = WsClient::connect(&a, "?since=0").await;
    post_each(&a, 1..=3, "m").await;
    assert_eq!(ids(&sse_messages(&mut sse, 3).await), [1, 2, 3]);
    assert_eq!(ids(&ws_messages(&mut ws, 3).await), [1, 2, 3]);
    assert_eq!(ids(&ws_messages(&mut sender, 3).await), [1, 2, 3]);

    redis.kill().await;
    let (status, retry_after, body) = try_post(&a, "lost?").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(
        body["error"].as_str().unwrap().contains("not stored"),
        "{body}"
    );
    sender
        .send_json(json!({ "type": "send", "author": "alice", "text": "lost too?" }))
        .await;
    let refusal = sender.next_frame().await.expect("the socket stays open");
    assert_eq!(refusal["type"], "error", "{refusal}");

    redis.restart().await;
    // Every publish is either refused (503, nothing stored) or stored; keep trying
    // until the instance is connected again.
    let accepted = within("a publish to be accepted again", async {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (status, _, body) =
                try_post(&a, &format!("after restart, attempt {attempt}")).await;
            match status {
                201 => return body,
                503 => continue,
                other => panic!("unexpected {other}: {body}"),
            }
        }
    })
    .await;
    assert_eq!(
        accepted["id"], 4,
        "ids continue after the restart: {accepted}"
    );
    let after = b.post("bob", "and on B").await;
    assert_eq!(after["id"], 5);

    // B's follower reconnected and resumed after id 3: nothing lost, nothing twice.
    let expected = seen(&[accepted, after]);
    assert_eq!(seen(&sse_messages(&mut sse, 2).await), expected);
    assert_eq!(seen(&ws_messages(&mut ws, 2).await), expected);
    let stats = b.stats().await;
    assert!(
        stats["hub"]["store_errors"].as_u64().unwrap() >= 1,
        "{stats}"
    );
}

#[tokio::test]
async fn ids_never_go_backwards_even_if_redis_loses_its_data() {
    let redis = Redis::start().await;
    let [a, b] = redis.instances().await;
    let mut sse = SseClient::connect(&b, "?since=0", None).await;
    post_each(&a, 1..=3, "m").await;
    assert_eq!(ids(&sse_messages(&mut sse, 3).await), [1, 2, 3]);

    // As a Redis restarted without persistence would: counter and stream gone.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();

    let next = a.post("alice", "after the data loss").await;
    assert_eq!(
        next["id"], 4,
        "a client's cursor 3 must not be handed out again"
    );
    assert_eq!(ids(&sse_messages(&mut sse, 1).await), [4]);
}

#[tokio::test]
async fn redis_unreachable_at_start_is_a_clear_error_and_a_failing_exit() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let (status, stderr) = run_to_exit(&url).await;
    assert!(!status.success(), "{status:?}");
    assert!(
        stderr.contains(&url),
        "the error names the address: {stderr}"
    );
}

#[tokio::test]
async fn rooms_are_shared_room_by_room_and_a_message_wakes_nobody_in_another_room() {
    let redis = Redis::start().await;
    let [a, b] = redis.instances().await;
    let mut maths_sse =
        SseClient::connect_to(&b, &in_room("maths", "events"), "?since=0", None).await;
    let mut maths_ws = WsClient::connect_to(&b, &in_room("maths", "ws"), "?since=0").await;
    let mut art_sse = SseClient::connect_to(&b, &in_room("art", "events"), "?since=0", None).await;
    let mut art_ws = WsClient::connect_to(&b, &in_room("art", "ws"), "?since=0").await;

    let first = a.post_to("maths", "alice", "maths on A").await;
    let second = b.post_to("maths", "bob", "maths on B").await;
    assert_eq!(
        (first["id"].as_u64(), second["id"].as_u64()),
        (Some(1), Some(2))
    );
    let expected = seen(&[first, second]);
    assert_eq!(seen(&sse_messages(&mut maths_sse, 2).await), expected);
    assert_eq!(seen(&ws_messages(&mut maths_ws, 2).await), expected);
    let mut long = Poller::at(&in_room("maths", "messages/long-poll"));
    assert_eq!(seen(&long.collect(&a, 2).await), expected);

    // Posted after maths was delivered everywhere: art's first message is its own.
    let art = a.post_to("art", "carol", "art on A").await;
    assert_eq!(art["id"], 1, "art counts its own ids");
    assert_eq!(
        seen(&sse_messages(&mut art_sse, 1).await),
        seen(std::slice::from_ref(&art))
    );
    assert_eq!(seen(&ws_messages(&mut art_ws, 1).await), seen(&[art]));

    // Each room's keys carry its name as the hash tag, so a Cluster could shard them.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("pushlab:{room:*}:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.retain(|k| !k.contains(":receipt:"));
    keys.sort();
    assert_eq!(
        keys,
        [
            "pushlab:{room:art}:last_id",
            "pushlab:{room:art}:log",
            "pushlab:{room:maths}:last_id",
            "pushlab:{room:maths}:log",
        ]
    );
}

#[tokio::test]
async fn every_room_resumes_after_the_instances_and_redis_restart() {
    let mut redis = Redis::start().await;
    let [a] = redis.instances().await;
    post_each_in(&a, "maths", 1..=3).await;
    post_each_in(&a, "art", 1..=2).await;
    a.kill().await;
    redis.restart().await;

    // A new instance loads every room from Redis, and each continues its own ids.
    let [c] = redis.instances().await;
    let (_, maths) = c.get_json(&in_room("maths", "messages?since=0")).await;
    assert_eq!(ids(maths["messages"].as_array().unwrap()), [1, 2, 3]);
    let mut art = WsClient::connect_to(&c, &in_room("art", "ws"), "?since=1").await;
    assert_eq!(ids(&ws_messages(&mut art, 1).await), [2]);
    assert_eq!(c.post_to("maths", "dave", "after").await["id"], 4);
    assert_eq!(c.post_to("art", "dave", "after").await["id"], 3);
    assert_eq!(ids(&ws_messages(&mut art, 1).await), [3]);
}

#[tokio::test]
async fn a_redis_log_from_before_rooms_becomes_the_lobby() {
    let redis = Redis::start().await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // What pushlab wrote before rooms: one counter and one stream for the one chat.
    let () = redis::pipe()
        .cmd("XADD")
        .arg("pushlab:{chat}:log")
        .arg("7-0")
        .arg(&[
            "author",
            "alice",
            "text",
            "seven",
            "via",
            "http",
            "sent_at",
            "1700000000000",
        ])
        .ignore()
        .cmd("SET")
        .arg("pushlab:{chat}:last_id")
        .arg(7)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();

    let [a, b] = redis.instances().await;
    let (_, lobby) = b.get_json("/api/messages?since=6").await;
    assert_eq!(
        seen(lobby["messages"].as_array().unwrap()),
        [(7, "seven".into(), "http".into())]
    );
    assert_eq!(a.post("bob", "eight").await["id"], 8, "ids continue");
    let mut sse = SseClient::connect(&b, "", Some("7")).await;
    assert_eq!(ids(&sse_messages(&mut sse, 1).await), [8]);
}

/// Posts `"{room} {i}"` in `room` for each `i`, checking each gets id `i`.
async fn post_each_in(instance: &Instance, room: &str, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        let stored = instance
            .post_to(room, "tester", &format!("{room} {id}"))
            .await;
        assert_eq!(stored["id"], id, "{stored}");
    }
}
