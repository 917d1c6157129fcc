//! `--store sqlite:PATH`: the chat's log in one SQLite file, so that history and ids
//! survive a restart and a browser resumes with its `Last-Event-ID` as if nothing
//! happened.
//!
//! One writer thread owns the connection. Publishes queue their drafts to it; it takes
//! everything queued at once, commits the lot in one transaction (one `fsync` for a
//! burst, not one per message: "group commit"), and only then applies the new entries
//! to the view, in id order, and answers each publisher. A message is therefore never
//! shown to anyone before it is on disk, and ids cannot be reused after a crash.
//!
//! Nothing reads the file after start: the view holds the newest `--history` messages,
//! and the file keeps the same number (older rows are deleted in the same
//! transaction), so every read is served from memory. At start the view is loaded from
//! the newest rows and ids continue after the largest one.
//!
//! WAL mode lets the single writer append without rewriting pages; `synchronous=FULL`
//! makes each commit durable against power loss, not only against a crash of pushlab.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use super::entry::Entry;
use super::store::{Store, StoreError, via_name, via_named};
use super::view::View;
use crate::message::{Draft, Message};

/// Most drafts committed in one transaction.
const MAX_BATCH: usize = 256;
/// Drafts waiting for the writer before publishers wait for room.
const QUEUE: usize = 1024;
/// How long a publisher waits for its message to be committed.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Handle to the writer thread; dropping it lets the thread finish the queue and end.
pub struct SqliteStore {
    writes: mpsc::Sender<Write>,
    name: Arc<str>,
}

/// One publish waiting for the writer.
struct Write {
    draft: Draft,
    done: oneshot::Sender<Result<Arc<Entry>, StoreError>>,
}

impl SqliteStore {
    /// Opens (or creates) the database, loads the newest `keep` messages into `view`
    /// and starts the writer thread.
    pub async fn open(path: &Path, view: Arc<View>, keep: usize) -> Result<Self, StoreError> {
        let name: Arc<str> = format!("SQLite database {}", path.display()).into();
        let path = path.to_owned();
        let opened = tokio::task::spawn_blocking(move || {
            let conn = connect(&path)?;
            load(&conn, &view, keep)?;
            Ok::<_, rusqlite::Error>((conn, view))
        });
        let (conn, view) = opened
            .await
            .map_err(|e| StoreError::new(&name, e))?
            .map_err(|e| StoreError::new(&name, e))?;
        let (writes, queue) = mpsc::channel(QUEUE);
        let writer = Writer {
            conn,
            view,
            keep,
            name: name.clone(),
        };
        std::thread::Builder::new()
            .name("pushlab-sqlite".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| StoreError::new(&name, e))?;
        tracing::info!(store = %name, "history loaded");
        Ok(Self { writes, name })
    }
}

impl Store for SqliteStore {
    fn append(&self, draft: Draft) -> BoxFuture<'_, Result<Arc<Entry>, StoreError>> {
        Box::pin(async move {
            let (done, stored) = oneshot::channel();
            let gone = || StoreError::new(&self.name, "the writer has stopped");
            let write = async {
                self.writes
                    .send(Write { draft, done })
                    .await
                    .map_err(|_| gone())?;
                stored.await.map_err(|_| gone())?
            };
            // A stalled disk must not pile up publishers without bound: they get a 503.
            // (A write that lands after this still lands; the client may then see its
            // message after a retry too.)
            tokio::time::timeout(PUBLISH_TIMEOUT, write)
                .await
                .map_err(|_| {
                    StoreError::new(
                        &self.name,
                        format_args!("no commit within {PUBLISH_TIMEOUT:?}"),
                    )
                })?
        })
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS messages (
             id      INTEGER PRIMARY KEY,
             author  TEXT    NOT NULL,
             text    TEXT    NOT NULL,
             sent_at INTEGER NOT NULL, -- milliseconds since the Unix epoch, UTC
             via     TEXT    NOT NULL
         );",
    )?;
    Ok(conn)
}

/// Applies the newest `keep` rows to the view, oldest first. The view's newest id is
/// then the largest id ever committed (the newest row is never deleted), so ids
/// continue after it.
fn load(conn: &Connection, view: &View, keep: usize) -> rusqlite::Result<()> {
    let mut newest_first = conn
        .prepare("SELECT id, author, text, sent_at, via FROM messages ORDER BY id DESC LIMIT ?1")?;
    let rows = newest_first.query_map([keep as i64], |row| {
        let sent_at: i64 = row.get(3)?;
        let via: String = row.get(4)?;
        Ok(Message {
            id: row.get::<_, i64>(0)? as u64,
            author: row.get(1)?,
            text: row.get(2)?,
            sent_at: DateTime::from_timestamp_millis(sent_at).unwrap_or_default(),
            via: via_named(&via).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    4,
                    rusqlite::types::Type::Text,
                    format!("unknown via {via:?}").into(),
                )
            })?,
        })
    })?;
    let mut messages = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    messages.reverse();
    for message in messages {
        view.apply(Arc::new(Entry::new(message)));
    }
    Ok(())
}

/// The one thread that writes.
struct Writer {
    conn: Connection,
    view: Arc<View>,
    keep: usize,
    name: Arc<str>,
}

impl Writer {
    /// Commits what is queued, batch by batch, until every [`SqliteStore`] is gone.
    fn run(mut self, mut queue: mpsc::Receiver<Write>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while queue.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
            let first = self.view.bounds().newest + 1;
            let sent_at = Utc::now();
            let (entries, replies): (Vec<_>, Vec<_>) = batch
                .drain(..)
                .zip(first..)
                .map(|(Write { draft, done }, id)| {
                    let message = Message {
                        id,
                        author: draft.author,
                        text: draft.text,
                        sent_at,
                        via: draft.via,
                    };
                    (Arc::new(Entry::new(message)), done)
                })
                .unzip();
            match self.commit(&entries) {
                Ok(()) => {
                    for (entry, done) in entries.into_iter().zip(replies) {
                        self.view.apply(entry.clone());
                        let _ = done.send(Ok(entry));
                    }
                }
                Err(error) => {
                    tracing::error!(store = %self.name, %error, "commit failed");
                    let error = StoreError::new(&self.name, error);
                    for done in replies {
                        let _ = done.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    /// Inserts the entries and deletes what falls out of the retained window, in one
    /// transaction: all of it is on disk, or none of it.
    fn commit(&mut self, entries: &[Arc<Entry>]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (id, author, text, sent_at, via) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for entry in entries {
                let m = &entry.message;
                insert.execute(params![
                    m.id as i64,
                    m.author,
                    m.text,
                    m.sent_at.timestamp_millis(),
                    via_name(m.via)
                ])?;
            }
        }
        if let Some(newest) = entries.last().map(|e| e.id()) {
            let forget_up_to = newest.saturating_sub(self.keep as u64);
            tx.execute("DELETE FROM messages WHERE id <= ?1", [forget_up_to as i64])?;
        }
        tx.commit()
    }
}
