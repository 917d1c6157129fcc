//! `--store redis://HOST:PORT`: one chat, every room of it, shared by several pushlab
//! instances.
//!
//! Each room's log is a capped Redis stream with its own id counter. Publishing runs one
//! Lua script, which Redis runs atomically: `INCR` the room's counter and `XADD` the
//! message to the room's stream under that id, so each room's ids are `u64`, strictly
//! increasing and gap-free across every instance, and its stream is in id order. The
//! publisher does *not* touch its own view.
//!
//! Instead every instance runs one follower task that applies every room's stream to
//! that room's view, exactly as a local publish would: the same broadcast, the same
//! `Notify`. The transports cannot tell the difference, and a message posted on
//! instance A reaches the clients of instance B with the same id. To know which room
//! has news without asking every room (which would make each publish cost as much as
//! there are rooms), the publisher then adds the room's name to one small stream of
//! notices; followers block on that (`XREAD BLOCK`) and read only the rooms it names.
//! The notice is a hint; the room's stream is the truth: a follower reads a room from
//! the last id it applied, so notices that come twice or late lose and repeat nothing.
//!
//! ```text
//!  POST → A ─EVALSHA (INCR + XADD)─► pushlab:{room:maths}:log ◄─XRANGE─┬─ follower A → view of maths on A
//!           ─XADD maths──────────────► pushlab:notices ──XREAD BLOCK───┘   follower B → view of maths on B
//! ```
//!
//! Keys: `pushlab:{room:NAME}:last_id`, `pushlab:{room:NAME}:log` and the publish
//! receipts share the hash tag `{room:NAME}`, so a Redis Cluster would put each room in
//! one slot (the script touches only its room's keys) and shard rooms across nodes.
//! `pushlab:rooms` (the set of room names) and `pushlab:notices` are the only keys not
//! per room. A log written before rooms (`pushlab:{chat}:…`) becomes the lobby's.
//!
//! Failures are said, not hidden. A publish that Redis does not answer within
//! [`PUBLISH_TIMEOUT`] fails (the API answers 503 with `Retry-After`). A follower
//! that loses its connection reconnects with exponential backoff, then reads every
//! room from the last id it applied before it waits for notices again: nothing is lost
//! and nothing is applied twice. If Redis is unreachable when pushlab starts, opening
//! fails with its address.

use std::hash::{BuildHasher, RandomState};
use std::process;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::DateTime;
use futures::future::BoxFuture;
use redis::aio::ConnectionManager;
use redis::streams::StreamMaxlen;
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, Client, Script};
use tokio::task::JoinHandle;

use super::entry::Entry;
use super::rooms::Rooms;
use super::store::{Store, StoreError, via_name, via_named};
use super::view::View;
use crate::message::{Draft, Message};
use crate::room::{LOBBY, RoomName};

/// Every room that has a log.
const ROOMS_KEY: &str = "pushlab:rooms";
/// Which rooms have news: one entry (`room` → name) per publish, capped.
const NOTICES_KEY: &str = "pushlab:notices";
/// About how many notices are kept: far more than a follower is ever behind.
const NOTICES_KEPT: usize = 10_000;
/// The keys of the one chat from before rooms, which become the lobby's.
const BEFORE_ROOMS: [(&str, &str); 2] = [
    ("pushlab:{chat}:last_id", "pushlab:{room:lobby}:last_id"),
    ("pushlab:{chat}:log", "pushlab:{room:lobby}:log"),
];

/// A room's keys. The `{room:NAME}` hash tag puts them in one slot, as a script that
/// touches several keys needs on a Redis Cluster. Room names are letters, digits, `-`
/// and `_`, so they never hold a brace.
struct Keys {
    last_id: String,
    log: String,
}

impl Keys {
    fn of(room: &RoomName) -> Self {
        Self {
            last_id: format!("pushlab:{{room:{room}}}:last_id"),
            log: format!("pushlab:{{room:{room}}}:log"),
        }
    }

    /// A receipt key no other publish, of this process or another, uses.
    fn receipt(room: &RoomName) -> String {
        static PROCESS: LazyLock<u64> =
            LazyLock::new(|| RandomState::new().hash_one(process::id()));
        static PUBLISHES: AtomicU64 = AtomicU64::new(0);
        let n = PUBLISHES.fetch_add(1, Relaxed);
        format!("pushlab:{{room:{room}}}:receipt:{:016x}:{n}", *PROCESS)
    }
}

/// How long a publish waits for Redis before it is refused.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a publish waits for its own message to come back through the follower,
/// so that the publisher's next read on this instance sees it.
const ECHO_PATIENCE: Duration = Duration::from_secs(2);
/// How long a subscriber whose cursor is ahead of this instance waits for the follower
/// to reach it (a client moving from an instance that had read further) before it is
/// reset. Followers are woken by the same `XADD`, so they are usually microseconds
/// apart; this bounds a slow one.
pub const FOLLOWER_LAG_GRACE: Duration = Duration::from_secs(1);
/// How long one `XREAD` blocks; the connection's own timeout is a little longer.
const BLOCK: Duration = Duration::from_secs(5);
/// Most stream entries read at once.
const READ_BATCH: usize = 512;
/// The follower's reconnection delays: doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));

/// Gives the room's next id and appends the message under it, atomically.
///
/// `KEYS[3]` is a receipt unique to this publish: a publish sent twice (once on a
/// connection that dropped, once more on the new one) is stored once, and the second
/// run answers with the first one's id.
///
/// `ARGV[1]` is the newest id the calling instance holds. Should Redis ever lose its
/// data (restarted without persistence), the counter would start again at 1 and hand
/// out ids every client already holds as cursors; instead it jumps past the newest id
/// any live instance has seen. The time comes from Redis, one clock for all
/// instances, so `sent_at` follows the id order.
static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local receipt = redis.call('GET', KEYS[3])
        if receipt then
            local id, ms = string.match(receipt, '(%d+):(%d+)')
            return {tonumber(id), tonumber(ms)}
        end
        local id = redis.call('INCR', KEYS[1])
        local floor = tonumber(ARGV[1])
        if id <= floor then
            id = floor + 1
            redis.call('SET', KEYS[1], string.format('%d', id))
        end
        local now = redis.call('TIME')
        local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], string.format('%d-0', id),
            'author', ARGV[3], 'text', ARGV[4], 'via', ARGV[5],
            'sent_at', string.format('%d', ms))
        redis.call('SET', KEYS[3], string.format('%d:%d', id, ms), 'EX', 60)
        return {id, ms}
        ",
    )
});

pub struct RedisStore {
    /// Reconnects by itself after Redis comes back; shared by every publish.
    conn: ConnectionManager,
    keep: usize,
    name: Arc<str>,
    follower: JoinHandle<()>,
}

impl RedisStore {
    /// Connects (failing with the address if Redis cannot be reached), loads the
    /// newest `keep` messages of every room into its view and starts following.
    pub async fn open(url: &str, rooms: Arc<Rooms>, keep: usize) -> Result<Self, StoreError> {
        let name: Arc<str> = format!("Redis at {}", without_password(url)).into();
        let unreachable = |e| StoreError::new(&name, format_args!("cannot connect ({e})"));
        let client = Client::open(url).map_err(unreachable)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(PUBLISH_TIMEOUT))
            .set_number_of_retries(1);
        let mut conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(unreachable)?;
        let failed = |e| StoreError::new(&name, e);
        adopt_the_chat_before_rooms(&mut conn)
            .await
            .map_err(failed)?;
        let follower = Follower {
            rooms,
            name: name.clone(),
        };
        let notices = follower.catch_up(&mut conn).await.map_err(failed)?;
        tracing::info!(store = %name, rooms = follower.rooms.len(), "history loaded");
        let follower = tokio::spawn(follower.follow(client, notices));
        Ok(Self {
            conn,
            keep,
            name,
            follower,
        })
    }
}

/// Makes the log of the one chat from before rooms the lobby's, once: in one script,
/// so that instances starting together do not race for it. (It touches keys of two
/// hash tags, which only a single Redis allows; a log from before rooms never lived
/// on a Cluster.)
static ADOPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        for i = 1, #KEYS - 1, 2 do
            if redis.call('EXISTS', KEYS[i]) == 1 then
                redis.call('RENAMENX', KEYS[i], KEYS[i + 1])
                redis.call('SADD', KEYS[#KEYS], ARGV[1])
            end
        end
        return 0
        ",
    )
});

async fn adopt_the_chat_before_rooms(conn: &mut ConnectionManager) -> redis::RedisResult<()> {
    let mut script = ADOPT.prepare_invoke();
    for (before, lobby) in BEFORE_ROOMS {
        script.key(before).key(lobby);
    }
    let _: i64 = script.key(ROOMS_KEY).arg(LOBBY).invoke_async(conn).await?;
    Ok(())
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl Store for RedisStore {
    fn append<'a>(
        &'a self,
        room: &'a RoomName,
        view: &'a Arc<View>,
        draft: Draft,
    ) -> BoxFuture<'a, Result<Arc<Entry>, StoreError>> {
        Box::pin(async move {
            let keys = Keys::of(room);
            let mut script = APPEND.key(&keys.last_id);
            script
                .key(&keys.log)
                .key(Keys::receipt(room))
                .arg(view.bounds().newest)
                .arg(self.keep)
                .arg(&draft.author)
                .arg(&draft.text)
                .arg(via_name(draft.via));
            let mut conn = self.conn.clone();
            let attempts = async {
                if view.bounds().is_empty() {
                    // A room new to this instance: make sure followers will find it.
                    let _: usize = conn.sadd(ROOMS_KEY, room.as_str()).await?;
                }
                // The first command after Redis went away fails and makes the manager
                // reconnect; the receipt makes sending it once more safe.
                match script.invoke_async(&mut conn).await {
                    Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                        script.invoke_async(&mut conn).await
                    }
                    first => first,
                }
            };
            let (id, sent_at): (u64, i64) = tokio::time::timeout(PUBLISH_TIMEOUT, attempts)
                .await
                .map_err(|_| {
                    StoreError::new(
                        &self.name,
                        format_args!("no answer within {PUBLISH_TIMEOUT:?}"),
                    )
                })?
                .map_err(|e| StoreError::new(&self.name, e))?;
            // Stored. Tell every follower (this one too) which room has news, and keep
            // the room listed for instances that start later (in one round trip).
            // Should the notice be lost, the message is not: followers read the room
            // from their last id at its next notice, and every room when they reconnect.
            let notice: redis::RedisResult<()> = redis::pipe()
                .sadd(ROOMS_KEY, room.as_str())
                .ignore()
                .xadd_maxlen(
                    NOTICES_KEY,
                    StreamMaxlen::Approx(NOTICES_KEPT),
                    "*",
                    &[("room", room.as_str())],
                )
                .ignore()
                .query_async(&mut conn)
                .await;
            if let Err(error) = notice {
                tracing::warn!(store = %self.name, %room, %error, "stored, but the notice failed");
            }
            // Hand back the entry the follower applies (shared with every subscriber);
            // should it be slow, the message as stored is just as true.
            if let Some(entry) = view.reach(id, ECHO_PATIENCE).await {
                return Ok(entry);
            }
            Ok(Arc::new(Entry::new(Message {
                id,
                author: draft.author,
                text: draft.text,
                sent_at: DateTime::from_timestamp_millis(sent_at).unwrap_or_default(),
                via: draft.via,
            })))
        })
    }
}

/// Applies every room's stream to its view, for as long as the store lives.
struct Follower {
    rooms: Arc<Rooms>,
    name: Arc<str>,
}

impl Follower {
    /// Waits for notices after `notices` (a notice stream id) and reads the rooms they
    /// name; after a lost connection, reconnects with backoff and catches up on every
    /// room before waiting again.
    async fn follow(self, client: Client, mut notices: String) {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(BLOCK + Duration::from_secs(2)));
        let options = StreamReadOptions::default()
            .block(BLOCK.as_millis() as usize)
            .count(READ_BATCH);
        let mut backoff = BACKOFF.0;
        let mut caught_up = true;
        loop {
            let error = match client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(mut conn) => loop {
                    if !caught_up {
                        match self.catch_up(&mut conn).await {
                            Ok(from) => notices = from,
                            Err(error) => break error,
                        }
                        tracing::info!(store = %self.name, "following the shared log again");
                        caught_up = true;
                        backoff = BACKOFF.0;
                    }
                    let read: redis::RedisResult<Option<StreamReadReply>> = conn
                        .xread_options(&[NOTICES_KEY], &[&notices], &options)
                        .await;
                    let reply = match read {
                        Ok(reply) => reply,
                        Err(error) => break error,
                    };
                    let mut news = Vec::new();
                    for notice in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                        notices.clone_from(&notice.id);
                        let room = notice
                            .get::<String>("room")
                            .and_then(|n| RoomName::new(&n).ok());
                        if let Some(room) = room.filter(|room| !news.contains(room)) {
                            news.push(room);
                        }
                    }
                    if let Err(error) = self.read_rooms(&mut conn, &news).await {
                        break error;
                    }
                },
                Err(error) => error,
            };
            caught_up = false;
            self.rooms.counters().count_store_error();
            tracing::warn!(store = %self.name, %error, retry_in = ?backoff, "lost the shared log; reconnecting");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }

    /// Reads every room from the last id applied, and returns the notice id to wait
    /// after: the newest notice before reading, so that a publish that lands meanwhile
    /// is read again (harmlessly) rather than missed.
    async fn catch_up(&self, conn: &mut impl AsyncCommands) -> redis::RedisResult<String> {
        let newest: StreamRangeReply = conn.xrevrange_count(NOTICES_KEY, "+", "-", 1).await?;
        let from = newest
            .ids
            .first()
            .map_or_else(|| "0-0".to_owned(), |n| n.id.clone());
        let names: Vec<String> = conn.smembers(ROOMS_KEY).await?;
        let mut rooms: Vec<RoomName> = names.iter().filter_map(|n| RoomName::new(n).ok()).collect();
        // And the rooms held here already, should Redis have lost its list.
        for held in self.rooms.list() {
            if !rooms.contains(&held.name) {
                rooms.push(held.name);
            }
        }
        self.read_rooms(conn, &rooms).await?;
        Ok(from)
    }

    /// Applies what each room's stream holds after the newest id held here. A room
    /// with nothing new is left as it is (an empty room someone watches stays unkept).
    async fn read_rooms(
        &self,
        conn: &mut impl AsyncCommands,
        rooms: &[RoomName],
    ) -> redis::RedisResult<()> {
        for room in rooms {
            let log = Keys::of(room).log;
            // Exclusive start: after the newest id applied, then after each batch.
            let mut after = format!("({}-0", self.rooms.bounds(room).newest);
            loop {
                let read: StreamRangeReply =
                    conn.xrange_count(&log, &after, "+", READ_BATCH).await?;
                if read.ids.is_empty() {
                    break;
                }
                let view = self.rooms.stored(room);
                for stream_entry in &read.ids {
                    match parse(stream_entry) {
                        Ok(entry) => {
                            view.apply(entry);
                        }
                        Err(error) => {
                            tracing::error!(store = %self.name, %room, %error, "skipping an entry");
                        }
                    }
                }
                match read.ids.last() {
                    Some(last) if read.ids.len() == READ_BATCH => after = format!("({}", last.id),
                    _ => break,
                }
            }
        }
        Ok(())
    }
}

/// The URL as it may be logged: `redis://user:secret@host` becomes `redis://host`.
fn without_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => url.to_owned(),
    }
}

/// The message id of a stream entry, which the script wrote as `<id>-0`.
fn stream_id(stream_entry: &StreamId) -> Option<u64> {
    stream_entry.id.split_once('-')?.0.parse().ok()
}

/// A stream entry as the script wrote it, back into an entry.
fn parse(stream_entry: &StreamId) -> Result<Arc<Entry>, String> {
    let field = |name: &str| {
        stream_entry
            .get::<String>(name)
            .ok_or_else(|| format!("stream entry {} has no {name}", stream_entry.id))
    };
    let id = stream_id(stream_entry)
        .ok_or_else(|| format!("stream entry {} is not a message id", stream_entry.id))?;
    let sent_at = field("sent_at")?
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| format!("stream entry {} has a bad sent_at", stream_entry.id))?;
    let via = via_named(&field("via")?)
        .ok_or_else(|| format!("stream entry {} has an unknown via", stream_entry.id))?;
    Ok(Arc::new(Entry::new(Message {
        id,
        author: field("author")?,
        text: field("text")?,
        sent_at,
        via,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            without_password("redis://:s3cret@db:6379/0"),
            "redis://db:6379/0"
        );
        assert_eq!(
            without_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
