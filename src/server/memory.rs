//! Giving memory back to the system after a flood of connections.
//!
//! glibc's malloc keeps the memory a flood of connections freed: 3000 SSE streams took
//! a release build from 7 MB to 50 MB, and it stayed at 50 MB when they had all gone
//! (64 MB after a second flood). Nothing leaks; the allocator holds the freed pages,
//! scattered through its heaps, for reuse, and an operator sees a server that never
//! shrinks. `malloc_trim(0)` hands every whole free page back (to 9 MB).
//!
//! Trimming walks every heap under its locks, so it is not done on a whim: once a
//! second this task counts the open connections, and trims when they have fallen by
//! [`TRIM_AFTER`] from their peak since the last trim. Elsewhere than glibc it does
//! nothing.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How many connections must have closed since the peak before memory is trimmed:
/// enough to be worth it (about 15 KB each), few enough to follow a flood down.
const TRIM_AFTER: usize = 1000;

/// Trims after floods until `shutdown`; `connections` and `sockets` are the tasks of
/// HTTP connections and of upgraded WebSockets.
pub async fn give_back_after_floods(
    connections: TaskTracker,
    sockets: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    let mut peak = 0;
    loop {
        tokio::select! {
            _ = every_second.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let open = connections.len() + sockets.len();
        peak = peak.max(open);
        if peak - open >= TRIM_AFTER {
            peak = open;
            // Off the runtime's threads: it may take milliseconds on a large heap.
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free memory; any argument is valid.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
