//! One response or socket under the lab's faults: when it must end (a cut, or idle for
//! too long) and how long each write waits (a slow network). The body wrapper
//! ([`super::body::Faulty`]) and the WebSocket loop ask the same questions of it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep};

use super::Faults;

/// Why the lab ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ending {
    #[error("cut by the fault lab")]
    Cut,
    #[error("cut by the fault lab: nothing written for the idle timeout")]
    Idle,
}

/// The faults one connection meets, with its clocks.
pub struct Session {
    faults: Faults,
    cut: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Started again at every write; `None` without an idle cut.
    idle: Option<Pin<Box<Sleep>>>,
}

impl Session {
    pub(super) fn new(faults: Faults, cut: Pin<Box<dyn Future<Output = ()> + Send>>) -> Self {
        let idle = faults.idle_cut().map(|after| Box::pin(sleep(after)));
        Self { faults, cut, idle }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Ready when the connection must end.
    pub fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        if self.cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ending::Cut);
        }
        match self.idle.as_mut().map(|idle| idle.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Ending::Idle),
            _ => Poll::Pending,
        }
    }

    /// Resolves when the connection must end.
    pub async fn ended(&mut self) -> Ending {
        std::future::poll_fn(|cx| self.poll_end(cx)).await
    }

    /// Something was written: the idle clock starts again.
    pub fn wrote(&mut self) {
        if let (Some(idle), Some(after)) = (&mut self.idle, self.faults.idle_cut()) {
            idle.as_mut().reset(Instant::now() + after);
        }
    }

    /// How long `len` bytes wait before they leave: the delay, plus their time at the
    /// capped rate.
    pub fn pace(&self, len: usize) -> Duration {
        let delay = Duration::from_millis(self.faults.delay_ms.unwrap_or(0));
        let transfer = self.faults.bytes_per_s.map_or(Duration::ZERO, |rate| {
            Duration::from_secs_f64(len as f64 / rate as f64)
        });
        delay + transfer
    }
}

/// A [`Session`] handed to the WebSocket handler in a request extension (which must be
/// `Clone + Sync`): the socket takes it once.
#[derive(Clone)]
pub struct Ticket(Arc<Mutex<Option<Session>>>);

impl Ticket {
    pub(super) fn new(session: Session) -> Self {
        Self(Arc::new(Mutex::new(Some(session))))
    }

    pub fn take(&self) -> Option<Session> {
        super::lock(&self.0).take()
    }
}
