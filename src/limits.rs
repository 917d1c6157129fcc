//! Limits that keep one client from taking the server away from everyone else:
//! a publish rate per client IP, caps on the connections held open at once, and a
//! deadline for request bodies.
//!
//! The first two answer with a clear error and a `Retry-After`, never by queueing: a
//! 429 when a client publishes too fast, a 503 when there is no room for another held
//! connection. A body that does not arrive in time gets a 408.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep, sleep_until};

use crate::config::Config;
use crate::error::{ApiError, BodyTimedOut};

/// Raises this process's soft open-files limit (`RLIMIT_NOFILE`) as far as its hard
/// limit allows, as Go's runtime and nginx's `worker_rlimit_nofile` do: every held
/// connection is a file descriptor, and a login shell's usual soft limit (1 024) is far
/// below the connection caps. Returns the limit now in force.
pub fn raise_open_files() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(1024)
}

/// What to tell the operator when `--max-connections` allows more held connections than
/// there are `open_files` descriptors (past them, accepting fails, and the server closes
/// idle connections to make room: [`crate::server`]).
pub fn open_files_warning(config: &Config, open_files: u64) -> Option<String> {
    let wanted = config.max_connections as u64;
    (wanted > open_files).then(|| {
        format!(
            "--max-connections {wanted} is more than the open-files limit ({open_files}) \
             lets this process hold; raise the hard limit (ulimit -Hn, systemd \
             LimitNOFILE=) or lower --max-connections"
        )
    })
}

/// How many client IPs the rate limiter remembers before it forgets idle ones.
const REMEMBERED_IPS: usize = 10_000;

/// A token bucket per client IP for publishing (HTTP POST and WebSocket `send`).
pub struct PublishRate {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Publishes refused so far.
    refused: AtomicU64,
}

impl PublishRate {
    pub fn new(config: &Config) -> Self {
        let limiter = NonZeroU32::new(config.publish_rate).map(|rate| {
            let burst = NonZeroU32::new(config.publish_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            refused: AtomicU64::new(0),
        }
    }

    /// Publishes refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// Takes one token for `ip`, or says how long until one is free.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > REMEMBERED_IPS {
            limiter.retain_recent();
        }
        limiter.check_key(&ip).map_err(|not_until| {
            self.refused.fetch_add(1, Relaxed);
            ApiError::RateLimited {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            }
        })
    }
}

/// Caps on held connections (SSE streams, WebSockets, held long polls), overall and
/// per client IP. 0 means no cap.
pub struct ConnectionCaps {
    max_total: usize,
    max_per_ip: usize,
    held: Mutex<Held>,
    /// Connections refused so far.
    refused: AtomicU64,
}

#[derive(Default)]
struct Held {
    total: usize,
    /// Connections per IP. An IP whose count drops to 0 keeps its entry (a long
    /// poller is back within milliseconds; removing and re-inserting it on every poll
    /// churns the table) until the zeros outnumber the rest, when they are swept.
    /// Hashed with foldhash, seeded per process: SipHash was a tenth of a long poll.
    per_ip: HashMap<IpAddr, usize, foldhash::fast::RandomState>,
    /// Entries of `per_ip` at 0.
    idle: usize,
}

/// How many idle entries `per_ip` may keep at least, before sweeping.
const IDLE_KEPT: usize = 1024;

impl Held {
    /// Forgets the IPs at 0 once they are more than half the table: amortised, a
    /// constant cost per admission, and the table stays within twice the IPs held.
    fn sweep(&mut self) {
        if self.idle > IDLE_KEPT.max(self.per_ip.len() / 2) {
            self.per_ip.retain(|_, n| *n > 0);
            self.idle = 0;
        }
    }
}

impl ConnectionCaps {
    pub fn new(config: &Config) -> Self {
        Self {
            max_total: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            held: Mutex::default(),
            refused: AtomicU64::new(0),
        }
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// Counts one more held connection for `ip`, if there is room.
    pub fn admit(&self, ip: IpAddr) -> Result<(), ApiError> {
        let mut held = self.lock();
        held.sweep();
        let Held {
            total,
            per_ip,
            idle,
        } = &mut *held;
        let of_ip = per_ip.entry(ip).or_insert_with(|| {
            *idle += 1;
            0
        });
        let full = if self.max_total != 0 && *total >= self.max_total {
            Some("the server holds as many connections as it may")
        } else if self.max_per_ip != 0 && *of_ip >= self.max_per_ip {
            Some("this address holds as many connections as it may")
        } else {
            None
        };
        if let Some(reason) = full {
            self.refused.fetch_add(1, Relaxed);
            return Err(ApiError::Busy(reason));
        }
        if *of_ip == 0 {
            *idle -= 1;
        }
        *of_ip += 1;
        *total += 1;
        Ok(())
    }

    /// A connection counted by [`ConnectionCaps::admit`] ended.
    pub fn release(&self, ip: IpAddr) {
        let mut held = self.lock();
        held.total -= 1;
        if let Some(n) = held.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                held.idle += 1;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Connections cut because the client stopped reading (see the accept loop's write
/// deadline in [`crate::server`]).
#[derive(Debug, Default)]
pub struct Stalls(AtomicU64);

impl Stalls {
    pub fn count(&self) -> u64 {
        self.0.load(Relaxed)
    }

    pub fn count_one(&self) {
        self.0.fetch_add(1, Relaxed);
    }
}

/// `--body-timeout` over the whole body: gives `request` a body that fails with
/// [`BodyTimedOut`] unless it has arrived in full `limit` after the headers, however
/// it trickles in. (tower-http's `RequestBodyTimeoutLayer` restarts its clock at every
/// chunk, so a client sending a byte a second would hold its request forever.)
pub fn body_deadline(limit: Duration) -> impl Fn(Request) -> Request + Clone {
    move |request| {
        let deadline = Instant::now() + limit;
        request.map(|body| {
            Body::new(DeadlineBody {
                body,
                deadline,
                timer: None,
            })
        })
    }
}

struct DeadlineBody {
    body: Body,
    deadline: Instant,
    /// Started when the body first makes the reader wait: most bodies never do.
    timer: Option<Pin<Box<Sleep>>>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn caps(total: usize, per_ip: usize) -> ConnectionCaps {
        ConnectionCaps::new(&Config::parse_from([
            "pushlab",
            "--max-connections",
            &total.to_string(),
            "--max-connections-per-ip",
            &per_ip.to_string(),
        ]))
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn caps_count_per_ip_and_overall_and_free_up_on_release() {
        let caps = caps(3, 2);
        assert!(caps.admit(ip(1)).is_ok() && caps.admit(ip(1)).is_ok());
        assert!(caps.admit(ip(1)).is_err(), "a third from one IP");
        assert!(caps.admit(ip(2)).is_ok());
        assert!(caps.admit(ip(3)).is_err(), "a fourth overall");
        caps.release(ip(1));
        assert!(caps.admit(ip(3)).is_ok());
        assert!(caps.admit(ip(1)).is_err(), "full overall again");
        assert_eq!(caps.refused(), 3);
    }

    #[test]
    fn ips_that_come_and_go_are_forgotten_and_counts_stay_right() {
        let caps = caps(0, 1);
        // Many IPs polling once each, then one that stays.
        for n in 0..10 * IDLE_KEPT as u32 {
            caps.admit(ip(n)).unwrap();
            caps.release(ip(n));
        }
        caps.admit(ip(7)).unwrap();
        assert!(caps.admit(ip(7)).is_err(), "the cap still holds");
        let held = caps.lock();
        assert!(
            held.per_ip.len() <= 2 * IDLE_KEPT + 2,
            "{}",
            held.per_ip.len()
        );
        assert_eq!(held.total, 1);
        assert_eq!(held.idle, held.per_ip.values().filter(|n| **n == 0).count());
    }
}
