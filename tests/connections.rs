//! Attacks on connections themselves: sockets that connect and say nothing, bodies
//! that trickle in, cleartext HTTP/2, and running the process out of descriptors.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Server, eventually, raw_http, within};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Waits until the server closes `stream` (end of file, or a reset); fails the test
/// if it stays open for `common::PATIENCE`. Whatever the server wrote first is returned.
async fn closed_by_server(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = within("the server to close the connection", async {
        stream.read_to_end(&mut answer).await
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A value of the Prometheus text at `/metrics`.
async fn metric(server: &Server, name: &str) -> u64 {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed() {
    let server =
        Server::start_with(&["--header-timeout", "0.3", "--keep-alive-timeout", "60"]).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(closed_by_server(&mut silent).await, "");
    assert_eq!(metric(&server, "pushlab_idle_timeouts_total").await, 1);
}

#[tokio::test]
async fn a_new_connection_has_the_whole_first_request_deadline_even_past_the_keep_alive_one() {
    let server =
        Server::start_with(&["--header-timeout", "1", "--keep-alive-timeout", "0.1"]).await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(closed_by_server(&mut silent).await, "");
    let lasted = opened.elapsed();
    assert!(lasted >= Duration::from_secs(1), "closed after {lasted:?}");
}

#[tokio::test]
async fn a_kept_alive_connection_that_sends_no_next_request_is_closed() {
    let server =
        Server::start_with(&["--keep-alive-timeout", "0.3", "--header-timeout", "60"]).await;
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    // Its first request comes only once the server counts it idle, waiting on the
    // (long) first-request deadline: the keep-alive deadline that follows is shorter.
    eventually("the connection to be idle", || async {
        metric(&server, "pushlab_idle_connections").await >= 1
    })
    .await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // One answer, then nothing more asked: the server closes after the keep-alive time.
    let answer = closed_by_server(&mut kept).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer}");
}

#[tokio::test]
async fn past_the_idle_cap_the_oldest_idle_connections_are_closed_first() {
    let server = Server::start_with(&["--max-idle-connections", "3"]).await;
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // The two oldest make room for the three newest.
    for oldest in &mut silent[..2] {
        assert_eq!(closed_by_server(oldest).await, "");
    }
    // The newest is still open and served.
    let newest = silent.last_mut().unwrap();
    newest
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_by_server(newest).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(metric(&server, "pushlab_idle_shed_total").await >= 2);
}

#[tokio::test]
async fn a_body_that_trickles_in_gets_408_within_the_body_timeout() {
    let server = Server::start_with(&["--body-timeout", "0.5"]).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = "POST /api/messages HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    write.write_all(head.as_bytes()).await.unwrap();
    // One byte every 50 ms: the whole body would take 50 s.
    let trickle = tokio::spawn(async move {
        let mut sent = 0;
        let mut pace = tokio::time::interval(Duration::from_millis(50));
        while sent < 1000 {
            pace.tick().await;
            if write.write_all(b" ").await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let mut answer = String::new();
    let _ = within("the 408", read.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("--body-timeout"),
        "{body}"
    );
    trickle.abort();
    let (_, page) = server.get_json("/api/messages?since=0").await;
    assert_eq!(page["last_id"], 0);
}

#[tokio::test]
async fn cleartext_http2_is_refused_and_the_connection_closed_at_once() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    // A header timeout far beyond the test's patience: only the refusal can close it.
    let server = Server::start_with(&["--header-timeout", "600"]).await;

    // A real HTTP/2 client, with prior knowledge (no upgrade dance).
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let http2 = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream));
    // The handshake itself may already see the connection closed.
    if let Ok((mut sender, connection)) = within("the HTTP/2 handshake", http2).await {
        let connection = tokio::spawn(connection);
        let request = hyper::Request::get(format!("http://{}/healthz", server.addr))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let answer = within("the HTTP/2 request to fail", sender.send_request(request)).await;
        assert!(answer.is_err(), "HTTP/2 was served: {answer:?}");
        let _ = within("the HTTP/2 connection to end", connection).await;
    }

    // The preface alone, then silence, is closed as promptly.
    let mut preface_only = TcpStream::connect(server.addr).await.unwrap();
    preface_only
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(closed_by_server(&mut preface_only).await, "");

    // HTTP/1.1 on the same server is fine.
    assert_eq!(server.get_json("/healthz").await.0, 200);
}

/// A `pushlab` process started with an open-files limit, and its log.
struct Limited {
    server: Server,
    child: tokio::process::Child,
    /// Everything it printed (the log goes to standard output), once it has exited.
    output: tokio::task::JoinHandle<String>,
}

impl Limited {
    /// Limited to `open_files` descriptors, soft and hard.
    async fn start(open_files: u64, flags: &[&str]) -> Self {
        Self::start_with_limits(open_files, open_files, flags).await
    }

    /// Started with a soft open-files limit of `soft` and a hard one of `hard`.
    async fn start_with_limits(soft: u64, hard: u64, flags: &[&str]) -> Self {
        let mut command = cluster::pushlab("memory", flags);
        command.stdout(Stdio::piped());
        // SAFETY: only setrlimit, a system call, runs between fork and exec.
        unsafe {
            command.pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard));
        }
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (listening, addr) = tokio::sync::oneshot::channel();
        let output = tokio::spawn(async move {
            let mut listening = Some(listening);
            let mut output = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.strip_prefix("pushlab listening on http://") {
                    let _ = listening.take().map(|l| l.send(addr.parse::<SocketAddr>()));
                }
                output.push_str(&line);
                output.push('\n');
            }
            output
        });
        let addr = within("pushlab to listen", addr).await.unwrap().unwrap();
        Self {
            server: Server::at(addr),
            child,
            output,
        }
    }

    /// Stops the process and returns its log.
    async fn log(mut self) -> String {
        let _ = self.child.start_kill();
        within("the log", self.output).await.unwrap()
    }
}

/// `/healthz` on a new connection, as a monitor would ask it.
async fn healthz(addr: SocketAddr) -> String {
    raw_http(
        addr,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
}

/// Opens 200 connections that never send anything, 50 at a time, and checks after
/// each 50 that `/healthz` still answers; returns them, oldest first.
async fn pile_up_silent_sockets(addr: SocketAddr) -> Vec<TcpStream> {
    let mut piled = Vec::new();
    for _ in 0..4 {
        for _ in 0..50 {
            piled.push(TcpStream::connect(addr).await.unwrap());
        }
        let answer = healthz(addr).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    piled
}

#[tokio::test]
async fn silent_sockets_cannot_use_up_the_descriptors() {
    // 64 descriptors: by default at most 16 idle connections are kept.
    let limited = Limited::start(64, &[]).await;
    let mut piled = pile_up_silent_sockets(limited.server.addr).await;
    // The oldest silent sockets were the first to go.
    assert_eq!(closed_by_server(&mut piled[0]).await, "");
    let server = &limited.server;
    assert!(metric(server, "pushlab_idle_shed_total").await >= 150);
    assert!(metric(server, "pushlab_idle_connections").await <= 16);
    // Idle connections never got near the descriptor limit.
    assert_eq!(metric(server, "pushlab_accept_failures_total").await, 0);
}

#[tokio::test]
async fn out_of_descriptors_the_oldest_idle_connection_makes_room_and_it_is_logged_once() {
    // An idle cap above the descriptor limit: accepting runs out of descriptors.
    let limited = Limited::start(64, &["--max-idle-connections", "1000"]).await;
    let mut piled = pile_up_silent_sockets(limited.server.addr).await;
    assert_eq!(closed_by_server(&mut piled[0]).await, "");
    let server = &limited.server;
    assert!(metric(server, "pushlab_accept_failures_total").await > 0);
    assert!(metric(server, "pushlab_idle_shed_total").await > 0);
    let log = limited.log().await;
    assert_eq!(log.matches("accept failed").count(), 1, "{log}");
}

#[tokio::test]
async fn the_server_raises_its_open_files_limit_as_far_as_it_may() {
    // A login shell's soft limit under a higher hard one: the idle cap's default (a
    // quarter of the limit) would have been 16.
    let limited = Limited::start_with_limits(64, 4096, &[]).await;
    let pid = limited.child.id().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(open_files, ["4096", "4096", "files"], "{limits}");
    // 200 silent sockets fit under the idle cap now (1 024): none is shed.
    let _piled = pile_up_silent_sockets(limited.server.addr).await;
    assert_eq!(metric(&limited.server, "pushlab_idle_shed_total").await, 0);
}

#[tokio::test]
async fn a_connection_cap_above_the_open_files_limit_is_warned_about_at_start() {
    let warning = "is more than the open-files limit";
    // An answer means the server is serving, which it starts after the warning.
    let within_limit = Limited::start(256, &["--max-connections", "256"]).await;
    assert!(
        healthz(within_limit.server.addr)
            .await
            .starts_with("HTTP/1.1 200")
    );
    let log = within_limit.log().await;
    assert!(!log.contains(warning), "{log}");
    let above = Limited::start(256, &["--max-connections", "1000"]).await;
    assert!(healthz(above.server.addr).await.starts_with("HTTP/1.1 200"));
    let log = above.log().await;
    let (first, rest) = log.split_once('\n').unwrap();
    assert!(first.starts_with("pushlab listening on "), "{log}");
    assert!(
        rest.contains("--max-connections 1000 is more than the open-files limit (256)"),
        "{log}"
    );
}

#[tokio::test]
async fn refusals_are_counted_and_not_logged_as_errors() {
    let limited = Limited::start(1024, &["--max-connections", "1", "--log", "info"]).await;
    let server = &limited.server;
    let _held = common::SseClient::connect(server, "", None).await;
    for _ in 0..5 {
        let (status, _) = server.get_json("/api/events").await;
        assert_eq!(status, 503);
    }
    let connect = raw_http(
        server.addr,
        "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(connect.starts_with("HTTP/1.1 405"), "{connect}");
    assert_eq!(metric(server, "pushlab_refused_connections_total").await, 5);
    let log = limited.log().await;
    assert!(!log.contains("ERROR"), "{log}");
}
