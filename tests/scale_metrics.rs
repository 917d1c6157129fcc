//! `GET /metrics` and `--log-format json`: what an operator's tools read.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::process::Stdio;

use common::{Poller, Server, SseClient, WsClient, within};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The value of the sample `name` (labels included) in a Prometheus text page.
fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in\n{page}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_are_the_stats_counters_plus_a_latency_histogram() {
    let server = Server::start().await;
    let mut sse = SseClient::connect(&server, "?since=0", None).await;
    let mut ws = WsClient::connect(&server, "?since=0").await;
    server.post("alice", "measured").await;
    sse.next_message().await;
    ws.next_message().await;
    Poller::short().collect(&server, 1).await;

    let response = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let page = response.text().await.unwrap();
    let stats = server.stats().await;
    for transport in ["short_poll", "sse", "websocket"] {
        let counters = &stats["transports"][transport];
        let label = format!("{{transport=\"{transport}\"}}");
        let pairs = [
            ("pushlab_delivered_messages_total", "delivered"),
            ("pushlab_sent_payload_bytes_total", "bytes_sent"),
            ("pushlab_open_connections", "open"),
        ];
        for (metric, field) in pairs {
            assert_eq!(
                sample(&page, &format!("{metric}{label}")),
                counters[field].as_f64().unwrap(),
                "{metric}{label} is /api/stats' {field}"
            );
        }
        let latency = format!("pushlab_delivery_latency_seconds_count{label}");
        assert_eq!(sample(&page, &latency), 1.0, "one delivery timed");
    }
    assert_eq!(sample(&page, "pushlab_last_id"), 1.0);
    assert_eq!(sample(&page, "pushlab_store_errors_total"), 0.0);
}

#[tokio::test]
async fn json_logs_carry_one_structured_line_per_request_and_polls_only_at_debug() {
    let mut child = cluster::pushlab("memory", &["--log", "info", "--log-format", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Log lines (opening the store) may come before the URL.
    let base = within("the listening line", async {
        loop {
            let line = lines.next_line().await.unwrap().expect("stdout ended");
            if let Some(url) = line.trim().strip_prefix("pushlab listening on ") {
                return url.to_owned();
            }
        }
    })
    .await;
    // A poll answer is routine (debug); a bad poll is not; then the health check.
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{base}{path}")).send();
    assert_eq!(get("/api/messages?since=0").await.unwrap().status(), 200);
    assert_eq!(get("/api/messages?since=x").await.unwrap().status(), 400);
    assert_eq!(get("/healthz").await.unwrap().status(), 200);

    // Lines are written as the answers are ready, so in this order.
    let mut requests = Vec::new();
    let logged = within("the health check's log line", async {
        loop {
            let line = lines.next_line().await.unwrap().expect("stdout ended");
            let entry: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if entry["fields"]["status"].is_number() {
                requests.push(entry["fields"]["uri"].clone());
            }
            if entry["fields"]["uri"] == "/healthz" {
                return entry;
            }
        }
    })
    .await;
    assert_eq!(requests, ["/api/messages?since=x", "/healthz"]);
    assert_eq!(logged["fields"]["status"], 200, "{logged}");
    assert_eq!(logged["fields"]["method"], "GET", "{logged}");
    assert_eq!(logged["level"], "INFO", "{logged}");
    assert!(logged["fields"]["latency_ms"].is_number(), "{logged}");
}
