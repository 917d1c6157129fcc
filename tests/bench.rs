//! The bench measured against the real server: its clients speak each transport, and
//! its accounting matches what was published, connection for connection.

#![cfg(feature = "bench")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use clap::Parser;
use pushlab::bench::client::http::Endpoint;
use pushlab::bench::measure::{Bench, Spec};
use pushlab::bench::open_files;
use pushlab::bench::server::{SPAWN_ARGS, Target};
use pushlab::config::Config;
use pushlab::protocol::{Transport, WtDelivery};
use tokio_util::sync::CancellationToken;

async fn start_server() -> SocketAddr {
    start_server_with(&[]).await
}

/// A server as the bench starts its own (on loopback, with the limits off), with `more`
/// arguments.
async fn start_server_with(more: &[&str]) -> SocketAddr {
    let args = std::iter::once("pushlab")
        .chain(SPAWN_ARGS)
        .chain(more.iter().copied());
    let config = Config::parse_from(args);
    let listener = pushlab::listen(&config).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(pushlab::serve(listener, config, std::future::pending()));
    addr
}

fn bench_against(addr: SocketAddr, stop: CancellationToken) -> Bench {
    let target = Target::running(&format!("http://{addr}"), None).unwrap();
    Bench::new(
        target,
        open_files::raise(),
        Duration::from_millis(50),
        8,
        stop,
    )
}

fn spec(transport: Transport) -> Spec {
    Spec::publishing(transport, 5, 4, 40.0, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_delivers_every_message_once_on_one_connection_per_client() {
    let bench = bench_against(start_server().await, CancellationToken::new());
    for transport in Transport::ALL {
        let row = bench.row(&spec(transport)).await.unwrap();
        assert!(row.is_clean(), "{transport:?}: {row:?}");
        assert_eq!((row.expected, row.delivered), (20, 20), "{transport:?}");
        // Keep-alive: pollers too use one TCP connection per client for the whole run.
        let connections = row.setup.connections + row.window.connections;
        assert_eq!(connections, 5, "{transport:?}");
        let latency = row.latency.expect("latencies of 20 deliveries");
        assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
        if transport.is_push() {
            assert_eq!(row.setup.requests, 5, "one stream or upgrade per client");
            assert_eq!(row.window.requests, 0, "no request per message");
        } else {
            assert!(
                row.window.requests >= 5,
                "{transport:?} polls during the window"
            );
        }
        assert!(row.window.bytes > 0);
        assert!(row.server.is_none(), "no pid given: no /proc figures");
    }
}

/// `--webtransport-delivery`: whichever way WebTransport messages travel, each
/// subscriber gets each message once, on the one QUIC connection it opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webtransport_delivers_every_message_once_however_messages_travel() {
    let mut bench = bench_against(start_server().await, CancellationToken::new());
    for delivery in [WtDelivery::StreamPerMessage, WtDelivery::Datagrams] {
        bench.webtransport_delivery = delivery;
        let row = bench.row(&spec(Transport::Webtransport)).await.unwrap();
        assert!(row.is_clean(), "{delivery:?}: {row:?}");
        assert_eq!((row.expected, row.delivered), (20, 20), "{delivery:?}");
        assert_eq!(row.setup.connections + row.window.connections, 5);
    }
}

/// `--http2`: the same clients over HTTP/2 and TLS, against a `--tls` server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_every_transport_delivers_once_and_polls_cost_fewer_bytes() {
    let plain = bench_against(start_server().await, CancellationToken::new());
    let args = std::iter::once("pushlab")
        .chain(SPAWN_ARGS)
        .chain(["--tls"]);
    let config = Config::parse_from(args);
    let listener = pushlab::listen(&config).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = pushlab::tls::Tls::from_config(&config).unwrap().unwrap();
    let endpoint = Endpoint::http2(addr, tls.fingerprint());
    let state = Arc::new(pushlab::AppState::open(config).await.unwrap());
    tokio::spawn(pushlab::run(
        listener,
        state.clone(),
        Some(tls),
        std::future::pending(),
    ));
    let target = Target::Running {
        endpoint,
        pid: None,
    };
    let h2 = Bench::new(
        target,
        open_files::raise(),
        Duration::from_millis(50),
        8,
        CancellationToken::new(),
    );
    for transport in Transport::ALL {
        let row = h2.row(&spec(transport)).await.unwrap();
        assert!(row.is_clean(), "{transport:?}: {row:?}");
        assert_eq!(row.setup.connections + row.window.connections, 5);
        if transport == Transport::LongPoll {
            // HPACK: a poll's repeated headers cost a few bytes each after the first.
            let (_, h2_bytes) = row.per_delivered().unwrap();
            let over_http1 = plain.row(&spec(transport)).await.unwrap();
            let (_, http1_bytes) = over_http1.per_delivered().unwrap();
            assert!(
                h2_bytes < http1_bytes,
                "{h2_bytes} vs {http1_bytes} bytes per message"
            );
        }
    }
    let server = &state.connections;
    assert_eq!(
        server.http1.accepted.load(Relaxed),
        0,
        "nothing over HTTP/1.1"
    );
    assert!(server.http2.accepted.load(Relaxed) >= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_other_rooms_listening_every_message_reaches_its_room_only() {
    let bench = bench_against(start_server().await, CancellationToken::new());
    for transport in Transport::ALL {
        let spec = Spec {
            other_rooms: 4,
            per_other_room: 2,
            ..spec(transport)
        };
        let row = bench.row(&spec).await.unwrap();
        assert!(row.is_clean(), "{transport:?}: {row:?}");
        assert_eq!((row.subscribers, row.bystanders, row.connected), (5, 8, 13));
        assert_eq!(
            (row.expected, row.delivered, row.strays),
            (20, 20, 0),
            "{transport:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_pollers_in_other_rooms_ask_within_the_first_interval_too() {
    // 40 bystanders after 1 subscriber, in a row of 2 s (4 messages at 2/s): spread by
    // the room's subscribers alone, the last would first ask 40 intervals (2 s) after
    // connecting, and the server would have closed its silent connection after 1 s.
    let server = start_server_with(&["--header-timeout", "1"]).await;
    let bench = bench_against(server, CancellationToken::new());
    let spec = Spec {
        other_rooms: 40,
        per_other_room: 1,
        ..Spec::publishing(Transport::ShortPoll, 1, 4, 2.0, 1)
    };
    let row = bench.row(&spec).await.unwrap();
    assert!(row.is_clean(), "{row:?}");
    assert_eq!((row.client_errors, row.connected), (0, 41), "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_webtransport_session_counts_quics_own_packets() {
    // QUIC keep-alives every second (the server's --ws-ping), 4 s of idle: no frame
    // arrives, and the PINGs and their ACKs are still bytes on the wire.
    let server = start_server_with(&["--ws-ping", "1"]).await;
    let bench = bench_against(server, CancellationToken::new());
    let spec = Spec {
        idle: Duration::from_secs(4),
        ..Spec::publishing(Transport::Webtransport, 2, 0, 1.0, 1)
    };
    let row = bench.row(&spec).await.unwrap();
    assert!(row.is_clean(), "{row:?}");
    assert!(row.window.bytes > 0, "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_bench_returns_at_once_with_the_row_marked_interrupted() {
    let stop = CancellationToken::new();
    let bench = bench_against(start_server().await, stop.clone());
    stop.cancel();
    let mut slow = spec(Transport::Sse);
    slow.rate = 0.1; // 40 s of publishing, were it not stopped
    let row = tokio::time::timeout(Duration::from_secs(10), bench.row(&slow))
        .await
        .expect("a stopped row ends promptly")
        .unwrap();
    assert!(row.interrupted);
}
