//! `--store redis://HOST:PORT`: one chat shared by several pushlab instances.
//!
//! The log is a capped Redis stream. Publishing runs one Lua script, which Redis runs
//! atomically: `INCR` the id counter and `XADD` the message to the stream under that
//! id, so ids are `u64`, strictly increasing and gap-free across every instance, and
//! the stream is in id order. The publisher does *not* touch its own view.
//!
//! Instead every instance runs a follower task that reads the stream (`XREAD BLOCK`)
//! and applies each entry to its view, exactly as a local publish would: the same
//! broadcast, the same `Notify`. The transports cannot tell the difference, and a
//! message posted on instance A reaches the clients of instance B with the same id.
//!
//! ```text
//!  POST → A ──EVALSHA (INCR + XADD)──► Redis stream ──XREAD BLOCK──► follower A → view A → clients of A
//!                                                   └─XREAD BLOCK──► follower B → view B → clients of B
//! ```
//!
//! Failures are said, not hidden. A publish that Redis does not answer within
//! [`PUBLISH_TIMEOUT`] fails (the API answers 503 with `Retry-After`). A follower
//! that loses its connection reconnects with exponential backoff and resumes reading
//! after the last id it applied: nothing is lost and nothing is applied twice. If
//! Redis is unreachable when pushlab starts, opening fails with its address.

use std::hash::{BuildHasher, RandomState};
use std::process;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::DateTime;
use futures::future::BoxFuture;
use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, Client, Script};
use tokio::task::JoinHandle;

use super::entry::Entry;
use super::rooms::Rooms;
use super::store::{Store, StoreError, via_name, via_named};
use super::view::View;
use crate::message::{Draft, Message};
use crate::room::{LOBBY, RoomName};

/// The id counter and the stream. The `{chat}` hash tag puts both keys in one slot,
/// as a script that touches two keys needs on a Redis Cluster.
const ID_KEY: &str = "pushlab:{chat}:last_id";
const LOG_KEY: &str = "pushlab:{chat}:log";

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

/// Gives the next id and appends the message under it, atomically.
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

/// A key no other publish, of this process or another, uses.
fn receipt_key() -> String {
    static PROCESS: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one(process::id()));
    static PUBLISHES: AtomicU64 = AtomicU64::new(0);
    let n = PUBLISHES.fetch_add(1, Relaxed);
    format!("pushlab:{{chat}}:receipt:{:016x}:{n}", *PROCESS)
}

pub struct RedisStore {
    /// Reconnects by itself after Redis comes back; shared by every publish.
    conn: ConnectionManager,
    view: Arc<View>,
    keep: usize,
    name: Arc<str>,
    follower: JoinHandle<()>,
}

impl RedisStore {
    /// Connects (failing with the address if Redis cannot be reached), loads the
    /// newest `keep` messages into `view` and starts following the stream.
    pub async fn open(url: &str, rooms: Arc<Rooms>, keep: usize) -> Result<Self, StoreError> {
        let view = rooms.stored(&RoomName::lobby());
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
        let newest_first: StreamRangeReply = conn
            .xrevrange_count(LOG_KEY, "+", "-", keep)
            .await
            .map_err(|e| StoreError::new(&name, e))?;
        for stream_entry in newest_first.ids.iter().rev() {
            match parse(stream_entry) {
                Ok(entry) => {
                    view.apply(entry);
                }
                Err(error) => tracing::error!(store = %name, %error, "skipping an entry"),
            }
        }
        tracing::info!(store = %name, newest = view.bounds().newest, "history loaded");
        let follower = tokio::spawn(follow(client, view.clone(), name.clone()));
        Ok(Self {
            conn,
            view,
            keep,
            name,
            follower,
        })
    }
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
        _view: &'a Arc<View>,
        draft: Draft,
    ) -> BoxFuture<'a, Result<Arc<Entry>, StoreError>> {
        Box::pin(async move {
            if room.as_str() != LOBBY {
                return Err(StoreError::new(
                    &self.name,
                    "only the lobby room is shared through Redis yet",
                ));
            }
            let mut script = APPEND.key(ID_KEY);
            script
                .key(LOG_KEY)
                .key(receipt_key())
                .arg(self.view.bounds().newest)
                .arg(self.keep)
                .arg(&draft.author)
                .arg(&draft.text)
                .arg(via_name(draft.via));
            let mut conn = self.conn.clone();
            let attempts = async {
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
            // Stored. Hand back the entry the follower applies (shared with every
            // subscriber); should it be slow, the message as stored is just as true.
            if let Some(entry) = self.view.reach(id, ECHO_PATIENCE).await {
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

/// Applies the stream to the view for as long as the store lives, reconnecting with
/// backoff and resuming after the last id applied.
async fn follow(client: Client, view: Arc<View>, name: Arc<str>) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(2)));
    let options = StreamReadOptions::default()
        .block(BLOCK.as_millis() as usize)
        .count(READ_BATCH);
    // The last stream id read, applied or (if malformed) skipped.
    let mut last = view.bounds().newest;
    let mut backoff = BACKOFF.0;
    let mut healthy = true;
    loop {
        let error = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(mut conn) => loop {
                let read: redis::RedisResult<Option<StreamReadReply>> = conn
                    .xread_options(&[LOG_KEY], &[format!("{last}-0")], &options)
                    .await;
                let reply = match read {
                    Ok(reply) => reply,
                    Err(error) => break error,
                };
                if !healthy {
                    tracing::info!(store = %name, after = last, "following the shared log again");
                    healthy = true;
                    backoff = BACKOFF.0;
                }
                for stream_entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                    match parse(&stream_entry) {
                        Ok(entry) => {
                            last = entry.id();
                            view.apply(entry);
                        }
                        Err(error) => {
                            tracing::error!(store = %name, %error, "skipping an entry");
                            last = stream_id(&stream_entry).unwrap_or(last);
                        }
                    }
                }
            },
            Err(error) => error,
        };
        healthy = false;
        view.count_store_error();
        tracing::warn!(store = %name, %error, retry_in = ?backoff, "lost the shared log; reconnecting");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF.1);
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
