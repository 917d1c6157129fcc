//! The hub's seam, tested without any HTTP: history then live, no gap, no duplicate.

use super::*;
use crate::message::Via;

fn hub(capacity: usize) -> Hub {
    Hub::new(MemoryStore::new(capacity))
}

fn publish(hub: &Hub, n: usize) {
    for i in 0..n {
        hub.publish(Draft {
            author: "alice".into(),
            text: format!("m{i}"),
            via: Via::Http,
        });
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
    while let Some(Some(d)) = futures::FutureExt::now_or_never(sub.next()) {
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
    let empty = Hub::new(MemoryStore::new(10)).page(Cursor::After(5), 100);
    assert!(empty.reset);
    assert_eq!((empty.entries.len(), empty.last_id), (0, 0));
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
