//! Micro-benchmarks of the hub alone, no HTTP: `cargo bench --bench hub`.
//!
//! - **publish**: one message published while 0, 1 000 or 10 000 subscribers wait in
//!   [`Subscription::next`], as the SSE tasks do. Three figures per size: `call` is
//!   the `publish` call alone (it wakes every subscriber), `deliver` is the call plus
//!   every subscriber receiving the message, and `reader_wait` is how long someone
//!   reading the room's history during the publish (another thread calling [`Hub::bounds`]
//!   5 µs after the publish starts, as a poller reads a page) waited for its read.
//!   Divided by the subscriber count, `call` and `deliver` say whether fan-out costs
//!   the same per subscriber at 10 000 as at 1 000 (it should: the message is one
//!   `Arc<Entry>`, never copied); `reader_wait` should not grow with the subscribers
//!   at all, because the wake-ups happen after the history's lock is released.
//! - **rooms**: one message published to a room of 100 subscribers while 0, 100 or
//!   1 000 other rooms of 10 subscribers each wait too. `deliver` should not change
//!   with the other rooms: a publish touches only its room's view, and nobody else
//!   wakes (the bench checks that no other room's subscriber received anything).
//! - **resume**: a client coming back with a cursor 10, 100 or 1 000 messages behind:
//!   the poll answer's history read ([`Hub::page`]) and a push subscriber's catch-up
//!   ([`Hub::subscribe`] then draining the backlog).
//!
//! Subscribers run as tasks on a current-thread tokio runtime, and `publish` is called
//! inside it, as a handler would call it: the wake-ups land on that runtime's queue.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
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

/// A room with `subscribers` tasks waiting for its next message, counting deliveries,
/// and perhaps other rooms with their own waiting subscribers.
struct Audience {
    runtime: Runtime,
    /// Every room, to read the published room's history from another thread.
    all: Hub,
    hub: Room,
    subscribers: u64,
    delivered: Arc<AtomicU64>,
    /// Deliveries to the other rooms' subscribers: must stay 0.
    strays: Arc<AtomicU64>,
    _other_rooms: Vec<Room>,
}

impl Audience {
    fn new(subscribers: u64) -> Self {
        Self::among(subscribers, 0, 0)
    }

    /// `subscribers` in the published room, and `rooms` other rooms of `each`.
    fn among(subscribers: u64, rooms: usize, each: u64) -> Self {
        let runtime = runtime();
        let all = hub(&runtime);
        let hub = all.room(&RoomName::lobby());
        let (delivered, strays): (Arc<AtomicU64>, Arc<AtomicU64>) = Default::default();
        let waiting = Arc::new(AtomicU64::new(0));
        let other_rooms: Vec<Room> = (0..rooms)
            .map(|i| all.room(&RoomName::new(&format!("other-{i}")).expect("a valid name")))
            .collect();
        let audience = std::iter::repeat_n((&hub, &delivered), subscribers as usize).chain(
            other_rooms
                .iter()
                .flat_map(|room| std::iter::repeat_n((room, &strays), each as usize)),
        );
        for (room, counter) in audience {
            let mut subscription = room.subscribe(Cursor::After(0));
            let (counter, waiting) = (Arc::clone(counter), waiting.clone());
            runtime.spawn(async move {
                // Counted just before the first wait: the hub is empty, so `next` parks
                // in this very poll.
                waiting.fetch_add(1, Relaxed);
                while let Some(delivery) = subscription.next().await {
                    black_box(&delivery);
                    counter.fetch_add(1, Relaxed);
                }
            });
        }
        let everyone = subscribers + rooms as u64 * each;
        runtime.block_on(async {
            while waiting.load(Relaxed) < everyone {
                tokio::task::yield_now().await;
            }
        });
        Self {
            runtime,
            all,
            hub,
            subscribers,
            delivered,
            strays,
            _other_rooms: other_rooms,
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

/// Another thread that reads the history (as a poller reads a page) while a publish
/// is in progress, and says how long that read waited.
struct Reader {
    /// 0: idle; 1: a publish starts, read; 2: read, `waited` is set.
    state: Arc<AtomicU64>,
    waited_nanos: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long after a publish starts the reader reads: long enough for the publish to
/// hold the history's lock, far shorter than waking even 1 000 subscribers takes.
const READ_AFTER: Duration = Duration::from_micros(5);

impl Reader {
    fn start(hub: &Hub, room: &Room) -> Self {
        let state = Arc::new(AtomicU64::new(0));
        let waited_nanos = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (hub, room) = (hub.clone(), room.name().clone());
        let (go, waited, done) = (state.clone(), waited_nanos.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !done.load(Relaxed) {
                if go.load(Acquire) != 1 {
                    std::hint::spin_loop();
                    continue;
                }
                let armed = Instant::now();
                while armed.elapsed() < READ_AFTER {
                    std::hint::spin_loop();
                }
                let start = Instant::now();
                black_box(hub.bounds(&room));
                waited.store(start.elapsed().as_nanos() as u64, Relaxed);
                go.store(2, Release);
            }
        });
        Self {
            state,
            waited_nanos,
            stop,
            thread: Some(thread),
        }
    }

    /// How long the read waited during `publish`.
    fn wait_during(&self, publish: impl FnOnce()) -> Duration {
        self.state.store(1, Release);
        publish();
        while self.state.load(Acquire) != 2 {
            std::hint::spin_loop();
        }
        self.state.store(0, Relaxed);
        Duration::from_nanos(self.waited_nanos.load(Relaxed))
    }
}
impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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
        let reader = Reader::start(&audience.all, &audience.hub);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("reader_wait", subscribers), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        reader.wait_during(|| {
                            audience.publish();
                        })
                    })
                    .sum()
            })
        });
    }
    group.finish();
}

fn rooms(c: &mut Criterion) {
    let mut group = c.benchmark_group("rooms");
    for other_rooms in [0, 100, 1_000] {
        let audience = Audience::among(100, other_rooms, 10);
        group.throughput(Throughput::Elements(audience.subscribers));
        group.bench_function(BenchmarkId::new("deliver", other_rooms), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| audience.publish().1).sum())
        });
        assert_eq!(
            audience.strays.load(Relaxed),
            0,
            "another room heard a message"
        );
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

criterion_group!(benches, publish, rooms, resume);
criterion_main!(benches);
