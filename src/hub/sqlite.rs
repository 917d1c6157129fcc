//! `--store sqlite:PATH`: the chat's log in one SQLite file, one table for every room,
//! so that history and ids survive a restart and a browser resumes with its
//! `Last-Event-ID` as if nothing happened.
//!
//! One writer thread owns the connection. Publishes queue their drafts to it; it takes
//! everything queued at once, commits the lot in one transaction (one `fsync` for a
//! burst, not one per message: "group commit"), and only then applies the new entries
//! to the view, in id order, and answers each publisher. A message is therefore never
//! shown to anyone before it is on disk, and ids cannot be reused after a crash.
//!
//! Nothing reads the file after start: each room's view holds its newest `--history`
//! messages, and the file keeps the same number per room (older rows are deleted in the
//! same transaction), so every read is served from memory. At start every room's view
//! is loaded from its newest rows and its ids continue after its largest one.
//!
//! A database written before rooms existed (one `messages` table keyed by `id` alone)
//! is converted when it is first opened: its messages become the `lobby` room's, ids
//! unchanged, in one transaction.
//!
//! WAL mode lets the single writer append without rewriting pages; `synchronous=FULL`
//! makes each commit durable against power loss, not only against a crash of pushlab.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use super::entry::Entry;
use super::rooms::Rooms;
use super::store::{Store, StoreError, via_name, via_named};
use super::view::View;
use crate::message::{Draft, Message};
use crate::room::{LOBBY, RoomName};

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
    room: RoomName,
    view: Arc<View>,
    draft: Draft,
    done: oneshot::Sender<Result<Arc<Entry>, StoreError>>,
}

impl SqliteStore {
    /// Opens (or creates, or converts) the database, loads the newest `keep` messages
    /// of each room into its view and starts the writer thread.
    pub async fn open(path: &Path, rooms: Arc<Rooms>, keep: usize) -> Result<Self, StoreError> {
        let name: Arc<str> = format!("SQLite database {}", path.display()).into();
        let path = path.to_owned();
        let loader = name.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let conn = connect(&path)?;
            load(&conn, &rooms, keep, &loader)?;
            Ok::<_, rusqlite::Error>(conn)
        });
        let conn = opened
            .await
            .map_err(|e| StoreError::new(&name, e))?
            .map_err(|e| StoreError::new(&name, e))?;
        let (writes, queue) = mpsc::channel(QUEUE);
        let writer = Writer {
            conn,
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
    fn append<'a>(
        &'a self,
        room: &'a RoomName,
        view: &'a Arc<View>,
        draft: Draft,
    ) -> BoxFuture<'a, Result<Arc<Entry>, StoreError>> {
        Box::pin(async move {
            let (done, stored) = oneshot::channel();
            let gone = || StoreError::new(&self.name, "the writer has stopped");
            let write = async {
                let (room, view) = (room.clone(), view.clone());
                self.writes
                    .send(Write {
                        room,
                        view,
                        draft,
                        done,
                    })
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

/// The schema, as `PRAGMA user_version` numbers it: 0 before rooms (or a new file), 1
/// with a `room` column.
const SCHEMA: i64 = 1;

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version < SCHEMA {
        let tx = conn.transaction()?;
        // Before rooms the table was keyed by `id` alone: set it aside, if it exists.
        tx.execute_batch("ALTER TABLE messages RENAME TO messages_before_rooms;")
            .or_else(|e| match e {
                rusqlite::Error::SqliteFailure(_, Some(ref m)) if m.contains("no such table") => {
                    Ok(())
                }
                other => Err(other),
            })?;
        tx.execute_batch(
            "CREATE TABLE messages (
                 room    TEXT    NOT NULL,
                 id      INTEGER NOT NULL,
                 author  TEXT    NOT NULL,
                 text    TEXT    NOT NULL,
                 sent_at INTEGER NOT NULL, -- milliseconds since the Unix epoch, UTC
                 via     TEXT    NOT NULL,
                 PRIMARY KEY (room, id)
             ) WITHOUT ROWID;",
        )?;
        let before: bool = tx.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'messages_before_rooms'",
            [],
            |row| row.get(0),
        )?;
        if before {
            // Every message written before rooms is the lobby's, with its id.
            tx.execute(
                "INSERT INTO messages (room, id, author, text, sent_at, via)
                 SELECT ?1, id, author, text, sent_at, via FROM messages_before_rooms",
                [LOBBY],
            )?;
            tx.execute_batch("DROP TABLE messages_before_rooms;")?;
        }
        tx.pragma_update(None, "user_version", SCHEMA)?;
        tx.commit()?;
    }
    Ok(conn)
}

/// Applies the newest `keep` rows of each room to its view, oldest first. A view's
/// newest id is then the largest id its room ever committed (a room's newest row is
/// never deleted), so ids continue after it.
fn load(conn: &Connection, rooms: &Rooms, keep: usize, store: &str) -> rusqlite::Result<()> {
    let names = conn
        .prepare("SELECT DISTINCT room FROM messages")?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut newest_first = conn.prepare(
        "SELECT id, author, text, sent_at, via FROM messages
         WHERE room = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    for name in names {
        let Ok(room) = RoomName::new(&name) else {
            tracing::error!(store, room = name, "skipping a room with an invalid name");
            continue;
        };
        let rows = newest_first.query_map(params![name, keep as i64], |row| {
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
        let view = rooms.stored(&room);
        for message in messages {
            view.apply(Arc::new(Entry::new(message)));
        }
    }
    Ok(())
}

/// The one thread that writes.
struct Writer {
    conn: Connection,
    keep: usize,
    name: Arc<str>,
}

/// A message of the batch being committed, with where it goes.
struct Pending {
    room: RoomName,
    view: Arc<View>,
    entry: Arc<Entry>,
    done: oneshot::Sender<Result<Arc<Entry>, StoreError>>,
}

impl Writer {
    /// Commits what is queued, batch by batch, until every [`SqliteStore`] is gone.
    fn run(mut self, mut queue: mpsc::Receiver<Write>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while queue.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
            let sent_at = Utc::now();
            // Each room's ids continue after its view's newest, in queue order.
            let mut next_ids: HashMap<RoomName, u64> = HashMap::new();
            let pending: Vec<Pending> = batch
                .drain(..)
                .map(
                    |Write {
                         room,
                         view,
                         draft,
                         done,
                     }| {
                        let next = next_ids
                            .entry(room.clone())
                            .or_insert_with(|| view.bounds().newest + 1);
                        let id = *next;
                        *next += 1;
                        let message = Message {
                            id,
                            author: draft.author,
                            text: draft.text,
                            sent_at,
                            via: draft.via,
                        };
                        Pending {
                            room,
                            view,
                            entry: Arc::new(Entry::new(message)),
                            done,
                        }
                    },
                )
                .collect();
            match self.commit(&pending, &next_ids) {
                Ok(()) => {
                    for Pending {
                        view, entry, done, ..
                    } in pending
                    {
                        view.apply(entry.clone());
                        let _ = done.send(Ok(entry));
                    }
                }
                Err(error) => {
                    tracing::error!(store = %self.name, %error, "commit failed");
                    let error = StoreError::new(&self.name, error);
                    for Pending { done, .. } in pending {
                        let _ = done.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    /// Inserts the messages and deletes what falls out of each room's retained window,
    /// in one transaction: all of it is on disk, or none of it. `next_ids` holds each
    /// room's next id after the batch.
    fn commit(
        &mut self,
        pending: &[Pending],
        next_ids: &HashMap<RoomName, u64>,
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (room, id, author, text, sent_at, via)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for Pending { room, entry, .. } in pending {
                let m = &entry.message;
                insert.execute(params![
                    room.as_str(),
                    m.id as i64,
                    m.author,
                    m.text,
                    m.sent_at.timestamp_millis(),
                    via_name(m.via)
                ])?;
            }
            let mut forget =
                tx.prepare_cached("DELETE FROM messages WHERE room = ?1 AND id <= ?2")?;
            for (room, next) in next_ids {
                let forget_up_to = (next - 1).saturating_sub(self.keep as u64);
                forget.execute(params![room.as_str(), forget_up_to as i64])?;
            }
        }
        tx.commit()
    }
}
