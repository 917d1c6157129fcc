//! Counting what arrived: every delivery checked against what was published.
//!
//! The publisher numbers its messages 0, 1, 2 … (the *sequence*, carried in the
//! message text with the moment it was sent, see [`probe_text`]). Each subscriber
//! keeps [`Receipts`]: how many times it saw each sequence number and how long each
//! took. A [`Tally`] adds the receipts of every subscriber up:
//!
//! - a sequence number a subscriber never saw is **lost**;
//! - every sighting after the first is a **duplicate**;
//! - only first sightings count as delivered, and only they give latencies.
//!
//! Anything lost or duplicated is a failure of the transport, never averaged away.

use std::time::Duration;

/// One subscriber's view of the run.
#[derive(Debug, Clone)]
pub struct Receipts {
    /// Sightings per sequence number, saturating at 255.
    counts: Vec<u8>,
    /// Publish-to-receipt time of each first sighting, in microseconds.
    latencies_us: Vec<u32>,
    /// Resets the server sent: cursors it could not honour.
    pub resets: u32,
    /// A subscriber of another room, which should see none of the run's messages.
    bystander: bool,
    /// Run messages a bystander saw: each one a message delivered to the wrong room.
    strays: u32,
}

impl Receipts {
    /// Receipts for a run of `expected` messages.
    pub fn new(expected: usize) -> Self {
        Self {
            counts: vec![0; expected],
            latencies_us: Vec::with_capacity(expected),
            resets: 0,
            bystander: false,
            strays: 0,
        }
    }

    /// Receipts for a subscriber of another room, which expects nothing.
    pub fn bystander() -> Self {
        Self {
            bystander: true,
            ..Self::new(0)
        }
    }

    /// Records a sighting of message `seq`, `latency` after it was published. Returns
    /// whether it was the first sighting; sequence numbers outside the run are ignored.
    pub fn record(&mut self, seq: usize, latency: Duration) -> bool {
        if self.bystander {
            self.strays += 1;
            return false;
        }
        let Some(count) = self.counts.get_mut(seq) else {
            return false;
        };
        *count = count.saturating_add(1);
        if *count == 1 {
            let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
            self.latencies_us.push(us);
            true
        } else {
            false
        }
    }
}

/// The receipts of every subscriber of a run, added up.
#[derive(Debug, Default)]
pub struct Tally {
    /// Subscribers whose receipts were added.
    pub subscribers: u64,
    /// Messages that should have arrived: subscribers × messages.
    pub expected: u64,
    /// First sightings.
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub resets: u64,
    /// Run messages delivered to subscribers of other rooms.
    pub strays: u64,
    latencies_us: Vec<u32>,
}

impl Tally {
    pub fn add(&mut self, receipts: Receipts) {
        self.subscribers += 1;
        self.expected += receipts.counts.len() as u64;
        for &count in &receipts.counts {
            match count {
                0 => self.lost += 1,
                n => {
                    self.delivered += 1;
                    self.duplicated += u64::from(n - 1);
                }
            }
        }
        self.resets += u64::from(receipts.resets);
        self.strays += u64::from(receipts.strays);
        self.latencies_us.extend(receipts.latencies_us);
    }

    /// Counts a subscriber that never connected: everything it should have seen is lost.
    pub fn add_missing(&mut self, expected: usize) {
        self.add(Receipts::new(expected));
    }

    /// Nothing lost, nothing duplicated, no reset, nothing in the wrong room.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.resets == 0 && self.strays == 0
    }

    /// The latency distribution of every first sighting.
    pub fn latencies(mut self) -> Latencies {
        self.latencies_us.sort_unstable();
        Latencies {
            sorted_us: self.latencies_us,
        }
    }
}

/// Latencies, sorted, to read percentiles from.
#[derive(Debug)]
pub struct Latencies {
    sorted_us: Vec<u32>,
}

impl Latencies {
    /// The nearest-rank percentile `p` (0–100) in milliseconds: the smallest latency
    /// that at least `p`% of deliveries did not exceed. `p = 0` is the minimum and
    /// `p = 100` the maximum. `None` when nothing was delivered.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        percentile(&self.sorted_us, p).map(|us| f64::from(us) / 1000.0)
    }

    pub fn is_empty(&self) -> bool {
        self.sorted_us.is_empty()
    }
}

/// Nearest-rank percentile of sorted values: rank ⌈p/100 · n⌉, at least 1.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The text of bench message `seq`, sent `sent` after the run's epoch.
pub fn probe_text(seq: usize, sent: Duration) -> String {
    format!("bench {seq} {}", sent.as_micros())
}

/// Reads back what [`probe_text`] wrote: the sequence number and when it was sent.
pub fn parse_probe(text: &str) -> Option<(usize, Duration)> {
    let mut words = text.strip_prefix("bench ")?.split(' ');
    let seq = words.next()?.parse().ok()?;
    let sent_us = words.next()?.parse().ok()?;
    words
        .next()
        .is_none()
        .then(|| (seq, Duration::from_micros(sent_us)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.0), Some(1));
        assert_eq!(percentile(&values, 50.0), Some(50));
        assert_eq!(percentile(&values, 90.0), Some(90));
        assert_eq!(percentile(&values, 99.0), Some(99));
        assert_eq!(percentile(&values, 99.5), Some(100));
        assert_eq!(percentile(&values, 100.0), Some(100));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 51.0), Some(3));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn a_clean_run_delivers_everything_once() {
        let mut tally = Tally::default();
        for _ in 0..3 {
            let mut receipts = Receipts::new(4);
            for seq in 0..4 {
                assert!(receipts.record(seq, MS * (seq as u32 + 1)));
            }
            tally.add(receipts);
        }
        assert_eq!((tally.expected, tally.delivered), (12, 12));
        assert!(tally.is_clean());
        let latencies = tally.latencies();
        assert_eq!(latencies.percentile_ms(50.0), Some(2.0));
        assert_eq!(latencies.percentile_ms(100.0), Some(4.0));
    }

    #[test]
    fn losses_and_duplicates_are_counted_per_subscriber() {
        let mut tally = Tally::default();
        let mut first = Receipts::new(3);
        first.record(0, MS);
        assert!(!first.record(0, MS * 5), "a second sighting is no delivery");
        first.record(0, MS * 6);
        first.record(2, MS);
        tally.add(first);
        let mut second = Receipts::new(3);
        for seq in 0..3 {
            second.record(seq, MS);
        }
        assert!(!second.record(3, MS), "out of the run: ignored");
        tally.add(second);
        tally.add_missing(3);
        assert_eq!(tally.expected, 9);
        assert_eq!(tally.delivered, 5);
        assert_eq!(
            tally.lost, 4,
            "one from the first, three from the missing one"
        );
        assert_eq!(tally.duplicated, 2);
        assert!(!tally.is_clean());
        // Latencies of first sightings only: the duplicates' 5 and 6 ms are not there.
        assert_eq!(tally.latencies().percentile_ms(100.0), Some(1.0));
    }

    #[test]
    fn a_reset_is_a_failure_even_without_loss() {
        let mut tally = Tally::default();
        let mut receipts = Receipts::new(1);
        receipts.record(0, MS);
        receipts.resets = 1;
        tally.add(receipts);
        assert!(!tally.is_clean());
    }

    #[test]
    fn a_message_seen_in_another_room_is_a_stray_and_a_failure() {
        let mut tally = Tally::default();
        let mut bystander = Receipts::bystander();
        assert!(!bystander.record(0, MS), "no delivery for the run");
        tally.add(bystander);
        assert_eq!((tally.expected, tally.delivered, tally.strays), (0, 0, 1));
        assert!(!tally.is_clean());
        let mut quiet = Tally::default();
        quiet.add(Receipts::bystander());
        assert!(quiet.is_clean(), "a bystander that saw nothing is fine");
    }

    #[test]
    fn probe_text_round_trips_and_rejects_other_text() {
        let sent = Duration::from_micros(1_234_567);
        assert_eq!(parse_probe(&probe_text(42, sent)), Some((42, sent)));
        assert_eq!(parse_probe("hello"), None);
        assert_eq!(parse_probe("bench 1"), None);
        assert_eq!(parse_probe("bench 1 2 3"), None);
        assert_eq!(parse_probe("bench x 2"), None);
    }
}
