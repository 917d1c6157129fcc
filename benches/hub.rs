//! Micro-benchmarks of the hub alone, no HTTP: `cargo bench --bench hub`.
//!
//! - **publish**: one message published while 0, 1 000 or 10 000 subscribers wait in
//!   [`Subscription::next`], as the SSE and WebSocket tasks do. Two figures per size:
//!   `call` is the `publish` call alone (what the hub's lock is held for), and
//!   `deliver` is the call plus every subscriber receiving the message. Divided by the
//!   subscriber count, they say whether fan-out costs the same per subscriber at
//!   10 000 as at 1 000 (it should: the message is one `Arc<Entry>`, never copied).
//! - **resume**: a client coming back with a cursor 10, 100 or 1 000 messages behind:
//!   the poll answer's history read ([`Hub::page`]) and a push subscriber's catch-up
//!   ([`Hub::subscribe`] then draining the backlog).
//!
//! Subscribers run as tasks on a current-thread tokio runtime, and `publish` is called
//! inside it, as a handler would call it: the wake-ups land on that runtime's queue.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pushlab::hub::{Cursor, Delivery, Hub, Room, StoreSpec};
use pushlab::message::{Draft, Via};
use pushlab::room::RoomName;
use tokio::runtime::Runtime;

/// What the server keeps by default.
const HISTORY: usize = 1000;

fn draft() -> Draft {
    Draft {
        author: "alice".into(),
        text: "a chat message of about the usual length, say eighty characters long...".into(),
        via: Via::Http,
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A hub on the default store (memory) keeping the default history and rooms.
fn hub(runtime: &Runtime) -> Hub {
    runtime
        .block_on(Hub::open(&StoreSpec::Memory, HISTORY, 1000))
        .expect("the memory store always opens")
}

/// A hub with `subscribers` tasks waiting for its next message, counting deliveries.
struct Audience {
    runtime: Runtime,
    hub: Room,
    subscribers: u64,
    delivered: Arc<AtomicU64>,
}

impl Audience {
    fn new(subscribers: u64) -> Self {
        let runtime = runtime();
        let hub = hub(&runtime).room(&RoomName::lobby());
        let delivered = Arc::new(AtomicU64::new(0));
        let waiting = Arc::new(AtomicU64::new(0));
        for _ in 0..subscribers {
            let mut subscription = hub.subscribe(Cursor::After(0));
            let (delivered, waiting) = (delivered.clone(), waiting.clone());
            runtime.spawn(async move {
                // Counted just before the first wait: the hub is empty, so `next` parks
                // in this very poll.
                waiting.fetch_add(1, Relaxed);
                while let Some(delivery) = subscription.next().await {
                    black_box(&delivery);
                    delivered.fetch_add(1, Relaxed);
                }
            });
        }
        runtime.block_on(async {
            while waiting.load(Relaxed) < subscribers {
                tokio::task::yield_now().await;
            }
        });
        Self {
            runtime,
            hub,
            subscribers,
            delivered,
        }
    }

    /// Publishes one message; returns how long the call took, and how long until every
    /// subscriber had it.
    fn publish(&self) -> (Duration, Duration) {
        let target = self.delivered.load(Relaxed) + self.subscribers;
        self.runtime.block_on(async {
            let start = Instant::now();
            black_box(
                self.hub
                    .publish(draft())
                    .await
                    .expect("memory never refuses"),
            );
            let call = start.elapsed();
            while self.delivered.load(Relaxed) < target {
                tokio::task::yield_now().await;
            }
            (call, start.elapsed())
        })
    }
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish");
    for subscribers in [0, 1_000, 10_000] {
        let audience = Audience::new(subscribers);
        group.throughput(Throughput::Elements(subscribers.max(1)));
        group.bench_function(BenchmarkId::new("call", subscribers), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| audience.publish().0).sum())
        });
        group.bench_function(BenchmarkId::new("deliver", subscribers), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| audience.publish().1).sum())
        });
    }
    group.finish();
}

fn resume(c: &mut Criterion) {
    let runtime = runtime();
    let hub = hub(&runtime).room(&RoomName::lobby());
    runtime.block_on(async {
        for _ in 0..HISTORY {
            hub.publish(draft()).await.expect("memory never refuses");
        }
    });
    let newest = hub.bounds().newest;
    let mut group = c.benchmark_group("resume");
    for behind in [10u64, 100, 1_000] {
        let cursor = Cursor::After(newest - behind);
        group.throughput(Throughput::Elements(behind));
        group.bench_function(BenchmarkId::new("page", behind), |b| {
            b.iter(|| black_box(hub.page(cursor, 1000)))
        });
        group.bench_function(BenchmarkId::new("subscribe", behind), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let mut subscription = hub.subscribe(cursor);
                    for _ in 0..behind {
                        let delivery = subscription.next().await;
                        assert!(matches!(delivery, Some(Delivery::Message(_))));
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, publish, resume);
criterion_main!(benches);
