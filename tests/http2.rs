//! HTTPS with `--tls`: every endpoint over HTTP/2 on one connection (the WebSocket by
//! extended CONNECT, RFC 8441), the same endpoints over HTTP/1.1 on the same port,
//! the certificate (made at start, or given), and curl as an independent client.

mod common;

use std::process::Stdio;

use common::https::{H2, Https1, json_of, sse_of, wss};
use common::{Server, eventually, within};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_works_over_one_http2_connection() {
    let server = Server::start_tls(&[]).await;
    let h2 = H2::connect(&server).await;

    let mut sse = h2.sse("?since=0").await;
    let mut ws = h2.websocket("?since=0").await;
    let long_poll = tokio::spawn({
        let h2 = h2.clone();
        async move {
            let response = h2.get("/api/messages/long-poll?since=0&timeout=30").await;
            json_of(response).await
        }
    });
    eventually("the long poll to be held", || async {
        h2.get_json("/api/stats").await.1["transports"]["long_poll"]["open"] == 1
    })
    .await;

    let posted = h2.post("alice", "over h2").await;
    assert_eq!(sse.next_message().await, posted);
    assert_eq!(ws.next_message().await, posted);
    let (status, answer) = within("the long poll's answer", long_poll).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(answer["messages"], json!([posted]));
    let (status, short) = h2.get_json("/api/messages?since=0").await;
    assert_eq!(status, 200);
    assert_eq!(short["messages"], json!([posted]));

    let page = h2.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(h2.get("/metrics").await.status(), 200);
    let (status, _) = h2.get_json("/api/presence").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_metrics_and_presence_say_which_http_carries_each_transport() {
    let server = Server::start_tls(&[]).await;
    // One page over HTTP/2: its transports on one connection.
    let h2 = H2::connect(&server).await;
    let _sse = h2.sse("?client=page2").await;
    let _ws = h2.websocket("?client=page2").await;
    assert_eq!(h2.get_json("/api/messages?client=page2").await.0, 200);
    // One over HTTP/1.1: a connection per transport.
    let mut stream_connection = Https1::connect(&server).await;
    let _sse1 = sse_of(stream_connection.get("/api/events?client=page1").await);
    let _ws1 = wss(&server, "?client=page1").await;

    let (_, stats) = h2.get_json("/api/stats").await;
    let sse = &stats["transports"]["sse"]["http"];
    assert_eq!(sse["h2"]["open"], 1, "{stats}");
    assert_eq!(sse["http/1.1"]["open"], 1, "{stats}");
    assert_eq!(
        stats["transports"]["websocket"]["http"]["h2"]["requests"],
        1
    );
    assert_eq!(
        stats["transports"]["short_poll"]["http"]["h2"]["requests"],
        1
    );
    assert_eq!(stats["connections"]["h2"]["open"], 1, "{stats}");
    assert_eq!(stats["connections"]["http/1.1"]["open"], 2, "{stats}");

    let (_, presence) = h2.get_json("/api/presence").await;
    let seats = |client: &str| -> Vec<(String, u64)> {
        presence["clients"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|seat| seat["client"] == client)
            .map(|seat| {
                let http = seat["http"].as_str().unwrap().to_owned();
                (http, seat["connection"].as_u64().unwrap())
            })
            .collect()
    };
    let over_h2 = seats("page2");
    assert_eq!(over_h2.len(), 3, "{presence}");
    assert!(
        over_h2.iter().all(|seat| *seat == over_h2[0]),
        "one connection: {presence}"
    );
    assert_eq!(over_h2[0].0, "h2");
    let over_h1 = seats("page1");
    assert_eq!(over_h1.len(), 2, "{presence}");
    assert!(over_h1.iter().all(|(http, _)| http == "http/1.1"));
    assert_ne!(over_h1[0].1, over_h1[1].1, "a connection each: {presence}");

    let metrics = h2.get("/metrics").await;
    let metrics = http_body_util::BodyExt::collect(metrics.into_body())
        .await
        .unwrap()
        .to_bytes();
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    for line in [
        r#"pushlab_tcp_connections{http="h2"} 1"#,
        r#"pushlab_tcp_connections{http="http/1.1"} 2"#,
        r#"pushlab_open_connections_by_http{transport="sse",http="h2"} 1"#,
        r#"pushlab_open_connections_by_http{transport="sse",http="http/1.1"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

/// The wire tap sits above TLS: over HTTPS it shows the decrypted HTTP/2 frames, from
/// the first request that names the tap, though earlier ones on the connection did not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_tap_shows_the_http2_frames_above_tls() {
    let server = Server::start_tls(&[]).await;
    let tap = "0123456789abcdef0123456789abcdef";
    let reader = H2::connect(&server).await;
    assert_eq!(reader.get_json(&format!("/api/tap/{tap}")).await.0, 200);
    let page = H2::connect(&server).await; // its first request (/healthz) names no tap
    assert_eq!(
        page.get_json(&format!("/api/messages?tap={tap}")).await.0,
        200
    );
    let answer = within("the tapped answer's DATA frame", async {
        loop {
            let (_, body) = reader.get_json(&format!("/api/tap/{tap}")).await;
            let rows = body["rows"].as_array().unwrap().clone();
            let data = rows.into_iter().find(|row| {
                row["kind"] == "h2-frame"
                    && row["from"] == "server"
                    && row["summary"].as_str().unwrap().starts_with("DATA")
            });
            if let Some(data) = data {
                return data;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(answer["route"], "short_poll");
    let text = answer["text"].as_str().unwrap();
    assert!(text.starts_with(r#"{"messages":[]"#), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_over_http2_sends_and_receives() {
    let server = Server::start_tls(&[]).await;
    let h2 = H2::connect(&server).await;
    let mut ws = h2.websocket("?since=0").await;
    let mut sse = h2.sse("?since=0").await;

    ws.send_json(json!({ "type": "send", "author": "bob", "text": "framed" }))
        .await;
    let echoed = ws.next_message().await;
    assert_eq!(echoed["text"], "framed");
    assert_eq!(echoed["via"], "websocket");
    assert_eq!(sse.next_message().await, echoed);

    ws.send_text("not json").await;
    let refusal = ws.next_frame().await.unwrap();
    assert_eq!(refusal["type"], "error", "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_the_websocket_origin_is_checked_against_the_authority() {
    // HTTP/2 has no Host header: the page's own origin is the request's :authority.
    let server = Server::start_tls(&[]).await;
    let h2 = H2::connect(&server).await;
    let own = h2.websocket_handshake("", Some(&server.base)).await;
    assert_eq!(own.status(), 200);
    let foreign = h2
        .websocket_handshake("", Some("https://evil.example"))
        .await;
    let (status, body) = json_of(foreign).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_only_for_websockets() {
    let server = Server::start_tls(&[]).await;
    let h2 = H2::connect(&server).await;
    // Extended CONNECT for another protocol than WebSocket.
    let mut request = hyper::Request::connect("/api/ws")
        .header("sec-websocket-version", "13")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    request
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("chat"));
    let (status, body) = json_of(h2.send(request).await).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("WebSocket"),
        "{body}"
    );
    // A plain CONNECT asks for a tunnel to another host: refused, not answered with
    // the page.
    let request = hyper::Request::connect(format!("127.0.0.1:{}", server.addr.port()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let (status, body) = json_of(h2.send(request).await).await;
    assert_eq!(status, 405, "{body}");
    let request = hyper::Request::post("/api/ws")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let (status, body) = json_of(h2.send(request).await).await;
    assert_eq!(status, 405, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_on_the_tls_port_works_as_over_plain_http() {
    let server = Server::start_tls(&[]).await;
    let mut ws = wss(&server, "?since=0").await;
    let mut stream_connection = Https1::connect(&server).await;
    let mut sse = sse_of(stream_connection.get("/api/events?since=0").await);

    let h2 = H2::connect(&server).await;
    let posted = h2.post("carol", "one chat, two HTTPs").await;
    assert_eq!(ws.next_message().await, posted);
    assert_eq!(sse.next_message().await, posted);

    let mut polls = Https1::connect(&server).await;
    let (status, short) = polls.get_json("/api/messages?since=0").await;
    assert_eq!(status, 200);
    assert_eq!(short["messages"], json!([posted]));
    let (status, long) = polls.get_json("/api/messages/long-poll?since=0").await;
    assert_eq!(status, 200);
    assert_eq!(long["messages"], json!([posted]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_alpn_gets_http1() {
    let server = Server::start_tls(&[]).await;
    let (_, chosen) = common::https::tls_connect(&server, &[]).await;
    assert_eq!(chosen, None);
    // hyper's HTTP/1 client over that connection is what `Https1` checks; here the
    // point is that no ALPN still gets served (as HTTP/1.1).
    let (tls, _) = common::https::tls_connect(&server, &[]).await;
    let (mut send, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get("/healthz")
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), hyper::Version::HTTP_11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_certificate_and_key_are_served() {
    let dir = std::env::temp_dir().join(format!("pushlab-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.der());
    let expected: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();

    let server = Server::start_tls(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(server.fingerprint.as_deref(), Some(&*expected.join(":")));
    // The pinned client trusts only that fingerprint, so this proves it is served.
    let h2 = H2::connect(&server).await;
    assert_eq!(h2.get_json("/healthz").await.0, 200);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_certificate_file_is_named_at_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent/cert.pem",
        ])
        .args(["--tls-key", "/nonexistent/key.pem"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/cert.pem"), "{stderr}");
}

/// curl, with its own HTTP/2 implementation (nghttp2), as a client we did not write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_http2_to_it() {
    let server = Server::start_tls(&[]).await;
    let url = |path: &str| format!("{}{path}", server.base);
    let mut sse = Command::new("curl")
        .args(["-sNk", "--http2", &url("/api/events?since=0")])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("curl is installed (scripts/test.sh installs it)");
    let mut lines = BufReader::new(sse.stdout.take().unwrap()).lines();
    eventually("curl's SSE stream to be open", || async {
        let h2 = H2::connect(&server).await;
        h2.get_json("/api/stats").await.1["transports"]["sse"]["open"] == 1
    })
    .await;

    let post = Command::new("curl")
        .args(["-sk", "--http2", "-w", "\n%{http_version}"])
        .args(["-H", "content-type: application/json"])
        .args(["-d", r#"{"author":"curl","text":"via nghttp2"}"#])
        .arg(url("/api/messages"))
        .output()
        .await
        .unwrap();
    let out = String::from_utf8(post.stdout).unwrap();
    let (body, version) = out.rsplit_once('\n').unwrap();
    assert_eq!(version, "2", "curl negotiated HTTP/2");
    let posted: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(posted["text"], "via nghttp2");

    let data = within("the event in curl's output", async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("curl's stream ended");
            if let Some(data) = line.strip_prefix("data: ") {
                return data.to_owned();
            }
        }
    })
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&data).unwrap(),
        posted
    );
}
