//! The open-files limit, which is what caps how many clients one machine can hold.
//!
//! Every client connection is a file descriptor in the bench, and its other end one in
//! the server. The bench raises its soft `RLIMIT_NOFILE` to the hard limit at start
//! (the spawned server inherits it) and then never asks for more clients than fit,
//! saying so in the report instead of failing half-way with "too many open files".

use serde::Serialize;

/// Descriptors kept free for everything that is not a client: the runtime, the
/// publisher, stats requests, the listener, stdio.
pub const RESERVED: u64 = 64;

/// The limit the bench runs under.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FileLimit {
    /// The soft limit after raising it: what this process and the server may open.
    pub open_files: u64,
    /// The most clients one row may have.
    pub max_clients: usize,
}

/// Raises the soft open-files limit as far as the hard limit allows.
pub fn raise() -> FileLimit {
    let open_files = crate::limits::raise_open_files();
    FileLimit {
        open_files,
        max_clients: usize::try_from(open_files.saturating_sub(RESERVED)).unwrap_or(usize::MAX),
    }
}

impl FileLimit {
    /// `wanted` clients, or as many as fit, with a note when that is fewer.
    pub fn cap(&self, wanted: usize) -> (usize, Option<String>) {
        if wanted <= self.max_clients {
            (wanted, None)
        } else {
            let note = format!(
                "{wanted} clients asked, {} run: the open-files limit (RLIMIT_NOFILE) is {} \
                 per process; raise the hard limit (ulimit -Hn, as root) to run more",
                self.max_clients, self.open_files
            );
            (self.max_clients, Some(note))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_capped_by_the_limit_with_a_note() {
        let limit = FileLimit {
            open_files: 1064,
            max_clients: 1000,
        };
        assert_eq!(limit.cap(1000), (1000, None));
        let (n, note) = limit.cap(5000);
        assert_eq!(n, 1000);
        assert!(note.unwrap().contains("RLIMIT_NOFILE"));
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let (before, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert!(raise().open_files >= before);
    }
}
