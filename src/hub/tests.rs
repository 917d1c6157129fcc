//! The hub's seam, tested without any HTTP: history then live, no gap, no duplicate.

use futures::FutureExt;

use super::view::LIVE_CAPACITY;
use super::*;
use crate::message::{Message, Via};

/// A hub on the memory store, which opens and publishes without waiting.
fn memory_hub(capacity: usize, max_rooms: usize) -> Hub {
    Hub::open(&StoreSpec::Memory, capacity, max_rooms)
        .now_or_never()
        .expect("the memory store opens at once")
        .expect("the memory store always opens")
}

fn room(name: &str) -> RoomName {
    RoomName::new(name).unwrap()
}

/// The lobby of a hub on the memory store.
fn hub(capacity: usize) -> Room {
    memory_hub(capacity, 10).room(&RoomName::lobby())
}

fn publish(hub: &Room, n: usize) {
    for i in 0..n {
        let draft = Draft {
            author: "alice".into(),
            text: format!("m{i}"),
            via: Via::Http,
        };
        hub.publish(draft)
            .now_or_never()
            .expect("the memory store publishes at once")
            .expect("the memory store always accepts");
    }
}

fn ids(page: &Page) -> Vec<u64> {
    page.entries.iter().map(|e| e.id()).collect()
}

async fn next_id(sub: &mut Subscription) -> u64 {
    match sub.next().await {
        Some(Delivery::Message(entry)) => entry.id(),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Takes what a subscription has ready without waiting for a publish.
fn ready(sub: &mut Subscription) -> Vec<Delivery> {
    let mut out = Vec::new();
    while let Some(Some(d)) = sub.next().now_or_never() {
        out.push(d);
    }
    out
}

#[test]
fn page_after_a_cursor_is_everything_newer_oldest_first() {
    let hub = hub(100);
    publish(&hub, 5);
    let page = hub.page(Cursor::After(2), 100);
    assert_eq!(ids(&page), [3, 4, 5]);
    assert_eq!((page.last_id, page.reset), (5, false));
}

#[test]
fn last_id_is_the_cursor_for_the_next_read_even_when_limit_cuts_short() {
    let hub = hub(100);
    publish(&hub, 7);
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = hub.page(Cursor::After(cursor), 3);
        if page.entries.is_empty() {
            assert_eq!(page.last_id, 7, "an empty page points at the newest id");
            break;
        }
        seen.extend(ids(&page));
        cursor = page.last_id;
    }
    assert_eq!(seen, (1..=7).collect::<Vec<_>>());
}

#[test]
fn no_cursor_means_the_fifty_most_recent() {
    let hub = hub(1000);
    publish(&hub, 60);
    let page = hub.page(Cursor::Recent, 100);
    assert_eq!(ids(&page), (11..=60).collect::<Vec<_>>());
    assert!(!page.reset);
    assert_eq!(ids(&hub.page(Cursor::Recent, 5)), [56, 57, 58, 59, 60]);
}

#[test]
fn a_cursor_older_than_the_history_resets_to_the_oldest_retained() {
    let hub = hub(3);
    publish(&hub, 6);
    let page = hub.page(Cursor::After(1), 100);
    assert!(page.reset);
    assert_eq!(ids(&page), [4, 5, 6]);
    // The cursor just before the oldest retained message is still contiguous.
    let page = hub.page(Cursor::After(3), 100);
    assert!(!page.reset);
    assert_eq!(ids(&page), [4, 5, 6]);
}

#[test]
fn a_cursor_ahead_of_the_hub_resets_as_after_a_restart() {
    let hub = hub(10);
    publish(&hub, 2);
    let page = hub.page(Cursor::After(99), 100);
    assert!(page.reset);
    assert_eq!(ids(&page), [1, 2]);
    let empty = self::hub(10).page(Cursor::After(5), 100);
    assert!(empty.reset);
    assert_eq!((empty.entries.len(), empty.last_id), (0, 0));
}

#[test]
fn each_room_has_its_own_ids_and_a_publish_wakes_nobody_in_another_room() {
    let hub = memory_hub(100, 10);
    let (maths, art) = (hub.room(&room("maths")), hub.room(&room("art")));
    let mut watching_art = art.subscribe(Cursor::After(0));
    let waiting = art.next_publish();
    tokio::pin!(waiting);
    waiting.as_mut().enable();

    publish(&maths, 3);
    assert_eq!(ids(&maths.page(Cursor::After(0), 100)), [1, 2, 3]);
    assert!(
        ready(&mut watching_art).is_empty(),
        "art heard a maths message"
    );
    assert!(
        waiting.as_mut().now_or_never().is_none(),
        "art's long polls woke"
    );

    publish(&art, 1);
    assert_eq!(
        ids(&art.page(Cursor::After(0), 100)),
        [1],
        "art counts from 1"
    );
    assert_eq!(hub.bounds(&room("maths")).newest, 3);
}

#[test]
fn an_empty_room_is_forgotten_when_the_last_one_in_it_leaves() {
    let hub = memory_hub(100, 10);
    let first = hub.room(&room("quiet"));
    let second = hub.room(&room("quiet"));
    assert_eq!(hub.room_count(), 1);
    drop(first);
    assert_eq!(hub.rooms()[0].clients, 1, "one is still in it");
    drop(second);
    assert_eq!(hub.room_count(), 0, "nothing kept it");

    let chatty = hub.room(&room("chatty"));
    publish(&chatty, 1);
    drop(chatty);
    assert_eq!(hub.room_count(), 1, "a room with history stays");
    assert_eq!(hub.bounds(&room("chatty")).newest, 1);
}

#[test]
fn the_room_cap_counts_rooms_with_history_and_a_refused_publish_creates_nothing() {
    let hub = memory_hub(100, 2);
    // Watching empty rooms uses up nothing a publisher needs.
    let watchers: Vec<Room> = (0..50).map(|i| hub.room(&room(&format!("w{i}")))).collect();
    publish(&hub.room(&room("a")), 1);
    publish(&hub.room(&room("b")), 1);

    let third = hub.room(&room("c"));
    let refused = third.publish(Draft {
        author: "alice".into(),
        text: "one room too many".into(),
        via: Via::Http,
    });
    let refused = refused.now_or_never().expect("no waiting");
    assert!(
        matches!(refused, Err(PublishError::RoomsFull(RoomsFull(2)))),
        "{refused:?}"
    );
    drop(third);
    drop(watchers);
    let names: Vec<String> = hub.rooms().iter().map(|r| r.name.to_string()).collect();
    assert_eq!(
        names,
        ["a", "b"],
        "the refused room and the watched ones are gone"
    );
    publish(&hub.room(&room("a")), 1);
    assert_eq!(
        hub.bounds(&room("a")).newest,
        2,
        "rooms that exist still take messages"
    );
}

#[tokio::test]
async fn a_subscription_gets_history_then_live_without_gap_or_duplicate() {
    let hub = hub(100);
    publish(&hub, 3);
    let mut sub = hub.subscribe(Cursor::After(1));
    // Published after subscribing but before the history was drained: it is both in
    // the history and in the live channel, and must arrive once.
    publish(&hub, 2);
    let got: Vec<u64> = ready(&mut sub)
        .into_iter()
        .map(|d| match d {
            Delivery::Message(e) => e.id(),
            Delivery::Reset { .. } => panic!("unexpected reset"),
        })
        .collect();
    assert_eq!(got, [2, 3, 4, 5]);
    publish(&hub, 1);
    assert_eq!(next_id(&mut sub).await, 6);
    assert!(ready(&mut sub).is_empty());
}

#[tokio::test]
async fn a_subscription_with_no_cursor_starts_with_the_recent_messages() {
    let hub = hub(1000);
    publish(&hub, 70);
    let mut sub = hub.subscribe(Cursor::Recent);
    assert_eq!(next_id(&mut sub).await, 21);
    assert_eq!(ready(&mut sub).len(), 49);
}

#[tokio::test]
async fn a_long_backlog_is_read_in_chunks_without_loss() {
    let hub = hub(5000);
    publish(&hub, 2000);
    let mut sub = hub.subscribe(Cursor::After(0));
    publish(&hub, 10);
    for expected in 1..=2010 {
        assert_eq!(next_id(&mut sub).await, expected);
    }
}

#[tokio::test]
async fn a_long_backlog_is_read_to_the_end_even_when_nothing_more_is_published() {
    let hub = hub(5000);
    publish(&hub, 600);
    let mut sub = hub.subscribe(Cursor::After(0));
    let got = ready(&mut sub);
    assert_eq!(got.len(), 600);
    assert!(matches!(&got[599], Delivery::Message(e) if e.id() == 600));
}

#[tokio::test]
async fn a_lagging_subscriber_rereads_history_instead_of_skipping() {
    let hub = hub(10_000);
    let mut sub = hub.subscribe(Cursor::After(0));
    // More than the live channel holds, published while the subscriber reads nothing.
    publish(&hub, LIVE_CAPACITY * 2 + 7);
    for expected in 1..=(LIVE_CAPACITY * 2 + 7) as u64 {
        assert_eq!(next_id(&mut sub).await, expected);
    }
}

#[tokio::test]
async fn a_subscriber_whose_missed_messages_are_gone_gets_a_reset_first() {
    let hub = hub(10);
    let mut sub = hub.subscribe(Cursor::After(0));
    publish(&hub, LIVE_CAPACITY + 50);
    let newest = (LIVE_CAPACITY + 50) as u64;
    match sub.next().await {
        Some(Delivery::Reset { last_id }) => assert_eq!(last_id, newest - 10),
        other => panic!("expected a reset, got {other:?}"),
    }
    for expected in newest - 9..=newest {
        assert_eq!(next_id(&mut sub).await, expected);
    }
}

#[tokio::test]
async fn a_subscription_with_a_cursor_ahead_of_the_hub_is_reset() {
    let hub = hub(10);
    publish(&hub, 2);
    let mut sub = hub.subscribe(Cursor::After(40));
    assert!(matches!(
        sub.next().await,
        Some(Delivery::Reset { last_id: 0 })
    ));
    assert_eq!(next_id(&mut sub).await, 1);
}

/// A view fed as the Redis follower feeds it: entries with ids the log gave them.
fn following(grace: std::time::Duration, ids: std::ops::RangeInclusive<u64>) -> Arc<View> {
    let view = Arc::new(View::with_live_capacity(
        100,
        LIVE_CAPACITY,
        grace,
        Arc::default(),
    ));
    apply(&view, ids);
    view
}

fn apply(view: &View, ids: std::ops::RangeInclusive<u64>) {
    for id in ids {
        view.apply(Arc::new(Entry::new(Message {
            id,
            author: "bob".into(),
            text: format!("m{id}"),
            sent_at: chrono::Utc::now(),
            via: Via::Http,
        })));
    }
}

#[tokio::test]
async fn a_cursor_ahead_of_a_lagging_follower_waits_for_it_instead_of_resetting() {
    let view = following(std::time::Duration::from_secs(10), 1..=3);
    // A client that saw id 5 on another instance, whose follower had read further.
    let mut sub = Subscription::new(view.clone(), Cursor::After(5));
    let (next, ()) = tokio::join!(next_id(&mut sub), async {
        tokio::task::yield_now().await;
        apply(&view, 4..=6);
    });
    assert_eq!(next, 6, "no reset, and nothing before the cursor");
}

#[tokio::test]
async fn a_cursor_still_ahead_after_the_grace_is_reset() {
    let view = following(std::time::Duration::from_millis(20), 1..=3);
    let mut sub = Subscription::new(view.clone(), Cursor::After(50));
    assert!(matches!(
        sub.next().await,
        Some(Delivery::Reset { last_id: 0 })
    ));
    assert_eq!(next_id(&mut sub).await, 1);
}

#[tokio::test]
async fn next_publish_wakes_a_waiter_registered_before_the_check() {
    let hub = hub(10);
    let notified = hub.next_publish();
    tokio::pin!(notified);
    notified.as_mut().enable();
    assert!(hub.page(Cursor::After(0), 10).entries.is_empty());
    publish(&hub, 1);
    notified.await;
    assert_eq!(ids(&hub.page(Cursor::After(0), 10)), [1]);
}

mod properties {
    //! For any interleaving of publishes, subscriptions with arbitrary cursors, reads,
    //! lags and history truncation, each subscriber's sequence is strictly increasing
    //! and contiguous, except where a reset notice says where it continues.

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        Publish(usize),
        Subscribe(Option<u64>),
        /// Reads up to this many ready deliveries from subscriber `index % count`.
        Read {
            index: usize,
            up_to: usize,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (1..12usize).prop_map(Step::Publish),
            // Now and then more than one catch-up chunk at once.
            1 => (250..300usize).prop_map(Step::Publish),
            3 => proptest::option::of(0..400u64).prop_map(Step::Subscribe),
            6 => (0..8usize, 0..300usize).prop_map(|(index, up_to)| Step::Read { index, up_to }),
        ]
    }

    /// What one subscriber was handed, and from which cursor it started.
    struct Reader {
        sub: Subscription,
        cursor: Cursor,
        got: Vec<Delivery>,
    }

    impl Reader {
        fn read(&mut self, up_to: usize) {
            for _ in 0..up_to {
                match futures::FutureExt::now_or_never(self.sub.next()) {
                    Some(Some(delivery)) => self.got.push(delivery),
                    _ => break,
                }
            }
        }

        /// Checks the sequence; returns the last id it reached.
        fn check(&self, newest: u64) -> Result<u64, TestCaseError> {
            let mut expected_next = match self.cursor {
                Cursor::After(id) => Some(id + 1),
                Cursor::Recent => None, // wherever the recent window started
            };
            let mut last = None;
            for delivery in &self.got {
                match delivery {
                    Delivery::Reset { last_id } => {
                        prop_assert!(*last_id <= newest);
                        // A reset skips forward past what was lost, never back over
                        // what was delivered; only a first delivery, for a cursor
                        // ahead of the hub, may restart lower.
                        if last.is_some() {
                            prop_assert!(
                                Some(last_id + 1) > expected_next,
                                "a reset that does not move forward"
                            );
                        }
                        expected_next = Some(last_id + 1);
                        last = Some(*last_id);
                    }
                    Delivery::Message(entry) => {
                        if let Some(expected) = expected_next {
                            prop_assert_eq!(entry.id(), expected, "a gap or a duplicate");
                        }
                        expected_next = Some(entry.id() + 1);
                        last = Some(entry.id());
                    }
                }
            }
            Ok(last.unwrap_or(match self.cursor {
                Cursor::After(id) => id,
                Cursor::Recent => newest,
            }))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn every_subscriber_sees_a_contiguous_sequence_or_a_reset(
            history in prop_oneof![1..30usize, 250..600usize],
            live in 1..8usize,
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let hub = Hub::with_live_capacity(history, live).room(&RoomName::lobby());
            let mut readers: Vec<Reader> = Vec::new();
            futures::executor::block_on(async {
                for step in steps {
                    match step {
                        Step::Publish(n) => publish(&hub, n),
                        Step::Subscribe(since) => {
                            let cursor = since.map_or(Cursor::Recent, Cursor::After);
                            readers.push(Reader { sub: hub.subscribe(cursor), cursor, got: vec![] });
                        }
                        Step::Read { index, up_to } => {
                            if !readers.is_empty() {
                                let n = readers.len();
                                readers[index % n].read(up_to);
                            }
                        }
                    }
                }
            });
            let newest = hub.bounds().newest;
            for reader in &mut readers {
                reader.read(usize::MAX);
                // Everyone ends at the newest message: nothing was left behind.
                prop_assert_eq!(reader.check(newest)?, newest);
            }
        }

        #[test]
        fn following_last_id_through_pages_is_contiguous_or_reset(
            history in 1..30usize,
            bursts in proptest::collection::vec((0..10usize, 1..6usize), 1..20),
            start in 0..50u64,
        ) {
            let hub = hub(history);
            let mut cursor = start;
            for (published, limit) in bursts {
                publish(&hub, published);
                let page = hub.page(Cursor::After(cursor), limit);
                let first = if page.reset { hub.bounds().oldest } else { cursor + 1 };
                for (expected, entry) in (first..).zip(&page.entries) {
                    prop_assert_eq!(entry.id(), expected);
                }
                prop_assert!(page.entries.len() <= limit);
                cursor = page.last_id;
                prop_assert!(cursor <= hub.bounds().newest);
            }
        }
    }
}
