//! Fuzzing everything that parses client input, through the real server: random bytes
//! and near-miss JSON as POST bodies, as WebSocket frames, and as query strings. Every
//! answer must be a success or a clear 4xx JSON error; never a 5xx, a hang or a crash;
//! and only accepted messages are stored.

mod common;

use std::sync::LazyLock;

use common::{Server, WsClient};
use proptest::prelude::*;
use serde_json::Value;

/// The runtime the servers run on (proptest cases are synchronous).
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

/// One server per test (the tests run in parallel and count what each stores).
macro_rules! server {
    () => {{
        static SERVER: LazyLock<Server> =
            LazyLock::new(|| block_on(Server::start_with(&["--publish-rate", "0"])));
        &*SERVER
    }};
}

fn block_on<T>(fut: impl Future<Output = T>) -> T {
    RUNTIME.block_on(fut)
}

async fn newest(server: &Server) -> u64 {
    server.get_json("/api/messages?limit=1").await.1["last_id"]
        .as_u64()
        .unwrap()
}

/// Bytes that are mostly almost a message: the interesting inputs for a JSON parser.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let value = r#"("[^"\\]{0,40}"|"\\u[0-9a-fA-F]{0,4}"|-?[0-9]{1,20}|null|true|\[\]|\{\})"#;
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::string::string_regex(&format!(
            r#"[ ]?\{{("author": ?{value})?,? ?("text": ?{value})?,?("x":1)?\}}?"#
        ))
        .unwrap()
        .prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_post_body_gets_201_or_a_json_4xx_and_only_201_stores(bytes in body()) {
        let server = server!();
        block_on(async {
            let before = newest(server).await;
            let response = server
                .http
                .post(server.url("/api/messages"))
                .header("content-type", "application/json")
                .body(bytes)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.expect("always JSON");
            let stored = newest(server).await - before;
            if status == 201 {
                prop_assert_eq!(stored, 1);
                prop_assert_eq!(answer["id"].as_u64(), Some(before + 1));
            } else {
                prop_assert!((400..500).contains(&status), "{}", status);
                prop_assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
                prop_assert_eq!(stored, 0);
            }
            Ok(())
        })?;
    }

    #[test]
    fn any_query_string_gets_200_or_a_json_400(
        query in proptest::collection::vec(any::<u8>(), 0..60),
        endpoint in prop_oneof![Just("/api/messages"), Just("/api/messages/long-poll")],
    ) {
        // Random bytes, percent-encoded where a URL cannot carry them as they are.
        let query: String = query
            .iter()
            .map(|&b| match b {
                b'a'..=b'z' | b'0'..=b'9' | b'=' | b'&' | b'-' | b'_' | b'%' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let server = server!();
        block_on(async {
            // timeout=0 so that a valid long poll answers at once.
            let url = server.url(&format!("{endpoint}?{query}&timeout=0"));
            let response = server.http.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            let answer: Value = response.json().await.expect("always JSON");
            if status == 200 {
                prop_assert!(answer["messages"].is_array());
            } else {
                prop_assert_eq!(status, 400);
                prop_assert!(answer["error"].is_string());
            }
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn any_websocket_frame_gets_a_message_or_an_error_and_the_socket_stays_open(
        frames in proptest::collection::vec(body(), 1..8),
    ) {
        let server = server!();
        block_on(async {
            let mut ws = WsClient::connect(server, "?since=0").await;
            // Skip to the live end: publish a marker and read up to it.
            let marker = server.post("fuzz", "marker").await;
            while ws.next_message().await != marker {}
            for frame in frames {
                let before = newest(server).await;
                let text = String::from_utf8_lossy(&frame).into_owned();
                ws.send_text(&text).await;
                let reply = ws.next_frame().await.expect("the socket stays open");
                match reply["type"].as_str() {
                    Some("message") => {
                        prop_assert_eq!(reply["message"]["id"].as_u64(), Some(before + 1));
                        prop_assert_eq!(&reply["message"]["via"], "websocket");
                    }
                    Some("error") => {
                        prop_assert!(reply["error"].is_string());
                        prop_assert_eq!(newest(server).await, before);
                    }
                    other => prop_assert!(false, "unexpected frame type {:?}", other),
                }
            }
            Ok(())
        })?;
    }
}
