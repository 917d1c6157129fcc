//! The same chat through all four transports at once: one hub, one order, one id.

mod common;

use common::{Poller, Server, SseClient, WsClient, ids, within};
use serde_json::{Value, json};

/// One client of each transport, all starting from the beginning.
struct Audience {
    short: Poller,
    long: Poller,
    sse: SseClient,
    ws: WsClient,
}

impl Audience {
    async fn join(server: &Server) -> Self {
        Self {
            short: Poller::short(),
            long: Poller::long(),
            sse: SseClient::connect(server, "?since=0", None).await,
            ws: WsClient::connect(server, "?since=0").await,
        }
    }

    /// The next `n` messages as each transport delivered them, in transport order
    /// short poll, long poll, SSE, WebSocket.
    async fn receive(&mut self, server: &Server, n: usize) -> [Vec<Value>; 4] {
        let (short, long, sse, ws) = tokio::join!(
            self.short.collect(server, n),
            self.long.collect(server, n),
            async {
                let mut got = Vec::new();
                for _ in 0..n {
                    got.push(self.sse.next_message().await);
                }
                got
            },
            async {
                let mut got = Vec::new();
                for _ in 0..n {
                    got.push(self.ws.next_message().await);
                }
                got
            },
        );
        [short, long, sse, ws]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_posted_over_http_reaches_all_four_transports_with_the_same_id() {
    let server = Server::start().await;
    let mut audience = Audience::join(&server).await;
    let posted = server.post("alice", "hello, four ways").await;
    for received in audience.receive(&server, 1).await {
        assert_eq!(received, std::slice::from_ref(&posted));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_over_websocket_reaches_all_four_transports_with_the_same_id() {
    let server = Server::start().await;
    let mut audience = Audience::join(&server).await;
    let mut sender = WsClient::connect(&server, "?since=0").await;
    sender
        .send_json(json!({ "type": "send", "author": "bob", "text": "typed over WebSocket" }))
        .await;
    let echoed = sender.next_message().await;
    assert_eq!(echoed["via"], "websocket");
    for received in audience.receive(&server, 1).await {
        assert_eq!(received, std::slice::from_ref(&echoed));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_posts_arrives_complete_and_in_order_everywhere() {
    const BURST: usize = 300;
    let server = Server::start_with(&["--publish-rate", "0"]).await;
    let mut audience = Audience::join(&server).await;
    let mut ws_sender = WsClient::connect(&server, "").await;

    // Half over HTTP from concurrent tasks, half over one WebSocket, all at once.
    let http_posts = futures::future::join_all((0..BURST / 2).map(|i| {
        let server = &server;
        async move { server.post("http", &format!("h{i}")).await }
    }));
    let ws_posts = async {
        for i in 0..BURST / 2 {
            ws_sender
                .send_json(json!({ "type": "send", "author": "ws", "text": format!("w{i}") }))
                .await;
        }
    };
    let (receiving, _, ()) = tokio::join!(audience.receive(&server, BURST), http_posts, ws_posts);

    let expected: Vec<u64> = (1..=BURST as u64).collect();
    let [short, long, sse, ws] = receiving;
    for (name, got) in [
        ("short poll", &short),
        ("long poll", &long),
        ("sse", &sse),
        ("ws", &ws),
    ] {
        assert_eq!(ids(got), expected, "{name}");
    }
    assert_eq!(short, ws, "every transport carries identical messages");
    assert_eq!(sse, ws);
    assert_eq!(long, ws);
    let via_ws = ws.iter().filter(|m| m["via"] == "websocket").count();
    assert_eq!(via_ws, BURST / 2);

    // Nothing more is pending on the push transports: no duplicate came after.
    server.post("end", "marker").await;
    assert_eq!(audience.sse.next_message().await["text"], "marker");
    assert_eq!(audience.ws.next_message().await["text"], "marker");
    let last = within("the final poll", audience.long.poll(&server)).await;
    assert_eq!(ids(&last), [BURST as u64 + 1]);
}
