//! The fast path of WebSocket fan-out: one task writes each message to every idle
//! socket, the way a C server's event loop would.
//!
//! `websocket.rs` gives each client a task that waits for the next message and writes
//! it: easy to follow, and what to read to learn WebSocket. Its price shows with
//! thousands of clients: every message wakes thousands of tasks, each of which does
//! the same bookkeeping before its one `write`, and only the `write` had to happen per
//! client.
//!
//! So a connection that has caught up and has nothing of its own to say *lends* its
//! socket here ([`Fanout::lend`]). One task per room, running while sockets are lent
//! to it, takes each message once, its frame encoded once, and writes it to every lent
//! socket in turn without ever waiting on one. Every [`STAMP_EVERY`] sockets it lets
//! the rest of the server run (the publishers among them), and messages that arrive
//! while it writes go out together in its next pass: one `write` per socket per pass,
//! at most [`PASS_BYTES`]. A socket goes back to its connection, which carries on the
//! plain way, when:
//!
//! - it cannot take a whole pass at once (its client reads slowly): with what it did
//!   not take, which its connection writes first, under `--slow-client-timeout`;
//! - its connection asks for it back ([`Loan::recall`]) to write something of its own:
//!   a ping, an error reply, a close;
//! - this task fell so far behind the hub that the messages it missed are no longer
//!   held: each connection then sorts out its own cursor (a reset).
//!
//! Every socket carries its cursor through all this: it is lent with the id of the last
//! message written to it, receives only newer ones, and comes back with the id of the
//! last one written (or left to its connection to write). So nothing is lost,
//! repeated or reordered however the socket moves between the two paths, and the
//! counters, the latency histogram and the slow-client close count every delivery
//! either way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::MessageFrame;
use super::socket::{Outbound, TrySend, payload_len};
use crate::hub::{Cursor, Delivery, Entry, Room, Subscription};
use crate::protocol::Transport;
use crate::state::AppState;
use crate::stats::{Counters, unix_nanos_now};

/// The most bytes of frames written to a socket in one pass. Bounds what a slow
/// client's connection may be left holding, and how long one pass keeps the others
/// waiting.
pub const PASS_BYTES: usize = 64 * 1024;

/// Sockets written between two clock reads for the latency histogram (the time
/// recorded for a delivery is at most this many writes late), and between two turns
/// given to the rest of the server: a pass never holds its thread for more than this
/// many writes (about 0.2 ms), and what is published meanwhile goes out in the next
/// pass, together.
const STAMP_EVERY: usize = 64;

/// A room's fan-out, which every connection in the room lends its socket through
/// (kept with the room: [`Room::attachment`]). Its task starts with a loan and ends
/// when it has no socket left.
#[derive(Default)]
pub struct Fanout {
    /// The running task's inbox; `None` or closed when no task runs.
    task: Mutex<Option<mpsc::UnboundedSender<Command>>>,
    next_key: AtomicU64,
}

enum Command {
    Lend(Slot),
    Recall(u64),
}

/// A socket back from the fan-out.
pub struct Returned {
    pub socket: Outbound,
    /// Every message up to this id has been written to it, or is left in it to write.
    pub last_id: u64,
}

/// A lent socket, from its connection's side.
pub struct Loan {
    key: u64,
    back: oneshot::Receiver<Returned>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Fanout {
    /// Lends `socket`, to which every message of `room` up to `last_id` has been
    /// written.
    pub fn lend(
        self: &Arc<Self>,
        app: &Arc<AppState>,
        room: &Room,
        socket: Outbound,
        last_id: u64,
    ) -> Loan {
        let key = self.next_key.fetch_add(1, Relaxed);
        let (to_connection, back) = oneshot::channel();
        let slot = Slot {
            key,
            socket,
            last_id,
            back: to_connection,
        };
        // Sent under the lock that a task takes to end: a loan never lands in the
        // inbox of a task that has just decided to stop.
        let mut task = self.lock();
        let commands = match &*task {
            Some(commands) if !commands.is_closed() => commands.clone(),
            _ => task.insert(self.start(app, room)).clone(),
        };
        let _ = commands.send(Command::Lend(slot));
        Loan {
            key,
            back,
            commands,
        }
    }

    fn start(self: &Arc<Self>, app: &Arc<AppState>, room: &Room) -> mpsc::UnboundedSender<Command> {
        let (commands, inbox) = mpsc::unbounded_channel();
        // Its own subscription, from now on: sockets lent later than a message it has
        // passed are behind it, and are sent back to catch up (see `lend`).
        let newest = room.bounds().newest;
        let subscription = room.subscribe(Cursor::After(newest));
        let pump = Pump {
            fanout: self.clone(),
            app: Arc::downgrade(app),
            sockets: Vec::new(),
            index: HashMap::default(),
            last_id: newest,
        };
        // Tokio lets a task do only so much I/O per turn before it makes it yield
        // (its "budget"): past that, every write would report a full socket. Writing
        // to every socket in one turn is this task's whole point, so it runs without
        // that budget, and yields after each pass instead.
        tokio::spawn(tokio::task::unconstrained(pump.run(subscription, inbox)));
        commands
    }

    fn lock(&self) -> MutexGuard<'_, Option<mpsc::UnboundedSender<Command>>> {
        self.task.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Loan {
    /// Completes when the socket comes back; `None` only if the fan-out is gone.
    pub async fn returned(&mut self) -> Option<Returned> {
        (&mut self.back).await.ok()
    }

    /// Asks for the socket back: [`Loan::returned`] completes soon after.
    pub fn recall(&self) {
        let _ = self.commands.send(Command::Recall(self.key));
    }
}

impl Drop for Loan {
    /// A connection that ends with its socket lent takes it back, so that it closes.
    fn drop(&mut self) {
        if self.back.try_recv().is_err() {
            self.recall();
        }
    }
}

/// A lent socket, from the task's side.
struct Slot {
    key: u64,
    socket: Outbound,
    /// Every message up to this id has been written to it.
    last_id: u64,
    back: oneshot::Sender<Returned>,
}

struct Pump {
    fanout: Arc<Fanout>,
    /// For the counters; the task does not keep the server's state alive.
    app: Weak<AppState>,
    sockets: Vec<Slot>,
    /// Where each key's slot is in `sockets`.
    index: HashMap<u64, usize, foldhash::fast::RandomState>,
    /// Every message up to this id has been written to every lent socket.
    last_id: u64,
}

impl Pump {
    async fn run(
        mut self,
        mut subscription: Subscription,
        mut inbox: mpsc::UnboundedReceiver<Command>,
    ) {
        loop {
            tokio::select! {
                // Loans and recalls first, so that a recall is never stuck behind a burst.
                biased;
                command = inbox.recv() => match command {
                    Some(Command::Lend(slot)) => self.lend(slot),
                    Some(Command::Recall(key)) => self.recall(key),
                    None => return,
                },
                delivery = subscription.next() => match delivery {
                    Some(delivery) => {
                        // Let whoever is publishing right now go first (tokio would
                        // run this task next, before them), so that one pass takes
                        // all their messages: a burst goes out in few writes.
                        tokio::task::yield_now().await;
                        self.deliver(delivery, &mut subscription).await;
                    }
                    None => return,
                },
            }
            if self.sockets.is_empty() {
                // Nobody left: end, unless a loan is on its way (it is sent under
                // this lock, so it is in the inbox already).
                let mut task = self.fanout.lock();
                if inbox.is_empty() {
                    task.take();
                    return;
                }
            }
            tokio::task::yield_now().await;
        }
    }

    fn lend(&mut self, slot: Slot) {
        if slot.last_id < self.last_id {
            // Behind this task: it must catch up by itself first.
            return give_back(slot);
        }
        self.index.insert(slot.key, self.sockets.len());
        self.sockets.push(slot);
    }

    fn recall(&mut self, key: u64) {
        if let Some(at) = self.index.remove(&key) {
            let slot = self.remove(at);
            give_back(slot);
        }
    }

    fn remove(&mut self, at: usize) -> Slot {
        let slot = self.sockets.swap_remove(at);
        if let Some(moved) = self.sockets.get(at) {
            self.index.insert(moved.key, at);
        }
        slot
    }

    /// Writes `first` and whatever else is already waiting, up to [`PASS_BYTES`].
    async fn deliver(&mut self, first: Delivery, subscription: &mut Subscription) {
        let mut pass = Pass::default();
        let mut next = Some(first);
        while let Some(delivery) = next.take() {
            match delivery {
                Delivery::Message(entry) => pass.add(entry),
                Delivery::Reset { last_id } => {
                    // This task lost messages: everyone goes back to sort it out.
                    self.write(&pass).await;
                    pass = Pass::default();
                    for slot in std::mem::take(&mut self.sockets) {
                        give_back(slot);
                    }
                    self.index.clear();
                    self.last_id = last_id;
                }
            }
            if pass.bytes.len() < PASS_BYTES {
                next = subscription.next().now_or_never().flatten();
            }
        }
        self.write(&pass).await;
    }

    /// Writes the pass to every socket, each from its own cursor.
    async fn write(&mut self, pass: &Pass) {
        let (Some(first), Some(last)) = (pass.entries.first(), pass.entries.last()) else {
            return;
        };
        let (first_id, last_id) = (first.id(), last.id());
        let bytes = pass.bytes.clone().freeze();
        let app = self.app.upgrade();
        let counters = app.as_ref().map(|app| app.stats.of(Transport::Websocket));
        // Per message of the pass, how many sockets got it since the last clock read.
        let mut tally = Tally::new(pass.entries.len());
        let mut at = 0;
        while at < self.sockets.len() {
            let slot = &mut self.sockets[at];
            if slot.last_id >= last_id {
                at += 1;
                continue;
            }
            // Ids in a pass are consecutive: the first new one is an index away.
            let skip = slot.last_id.saturating_sub(first_id - 1) as usize;
            let from = pass.ends[skip] - pass.entries[skip].encoded::<MessageFrame>().len();
            let sent = slot.socket.try_send(bytes.slice(from..));
            tally.got(skip, pass.payload_from(skip));
            slot.last_id = last_id;
            if sent == TrySend::Sent {
                at += 1;
            } else {
                // Full: what it did not take stays with it, for its connection to
                // write. Failed: its connection finds out at its next write or read.
                let key = slot.key;
                self.index.remove(&key);
                let slot = self.remove(at);
                give_back(slot);
            }
            if tally.sockets == STAMP_EVERY {
                tally.record(&pass.entries, counters);
                tokio::task::yield_now().await;
            }
        }
        tally.record(&pass.entries, counters);
        self.last_id = last_id;
    }
}

fn give_back(slot: Slot) {
    let returned = Returned {
        socket: slot.socket,
        last_id: slot.last_id,
    };
    // A connection that is gone no longer waits: the socket then closes here.
    let _ = slot.back.send(returned);
}

/// Messages written in one pass: their frames end to end, as one buffer.
#[derive(Default)]
struct Pass {
    entries: Vec<Arc<Entry>>,
    bytes: BytesMut,
    /// Where each message's frame ends in `bytes`.
    ends: Vec<usize>,
    /// The payload bytes (what `/api/stats` counts) of the frames so far, after each.
    payloads: Vec<usize>,
}

impl Pass {
    fn add(&mut self, entry: Arc<Entry>) {
        let frame = entry.encoded::<MessageFrame>();
        self.bytes.extend_from_slice(frame);
        self.ends.push(self.bytes.len());
        let before = self.payloads.last().copied().unwrap_or(0);
        self.payloads.push(before + payload_len(frame));
        self.entries.push(entry);
    }

    /// The payload bytes of the frames from the `first`-th on.
    fn payload_from(&self, first: usize) -> usize {
        let before = first.checked_sub(1).map_or(0, |i| self.payloads[i]);
        self.payloads.last().copied().unwrap_or(0) - before
    }
}

/// Deliveries counted between two clock reads.
struct Tally {
    /// How many sockets started at each message of the pass (and so got it and every
    /// later one).
    starts: Vec<u64>,
    sockets: usize,
    bytes: usize,
}

impl Tally {
    fn new(messages: usize) -> Self {
        Self {
            starts: vec![0; messages],
            sockets: 0,
            bytes: 0,
        }
    }

    fn got(&mut self, first: usize, bytes: usize) {
        self.starts[first] += 1;
        self.sockets += 1;
        self.bytes += bytes;
    }

    /// Counts what was written since the last call, as delivered now.
    fn record(&mut self, entries: &[Arc<Entry>], counters: Option<&Counters>) {
        if self.sockets == 0 {
            return;
        }
        if let Some(counters) = counters {
            let now = unix_nanos_now();
            let mut got = 0;
            let mut delivered = 0;
            for (entry, starts) in entries.iter().zip(&self.starts) {
                got += starts;
                delivered += got;
                if got > 0 {
                    counters
                        .latency
                        .observe_many(entry.message.sent_at, now, got);
                }
            }
            counters.sent(delivered, self.bytes);
        }
        self.starts.fill(0);
        self.sockets = 0;
        self.bytes = 0;
    }
}

/// Where a connection's deliveries are written from: its own subscription and socket,
/// or, while it has caught up and has nothing of its own to write, its room's fan-out.
pub struct Writer {
    app: Arc<AppState>,
    room: Arc<Room>,
    fanout: Arc<Fanout>,
    state: State,
    /// Whether the socket may be lent to the fan-out (see [`Writer::keep_socket`]).
    lends: bool,
}

enum State {
    Own {
        socket: Outbound,
        subscription: Subscription,
    },
    Lent(Loan),
    /// Only while moving between the two.
    Moving,
}

impl Writer {
    /// Writes what `room` publishes after `cursor` to `socket`.
    pub fn new(app: &Arc<AppState>, room: &Arc<Room>, socket: Outbound, cursor: Cursor) -> Self {
        Self {
            app: app.clone(),
            room: room.clone(),
            fanout: room.attachment(),
            state: State::Own {
                socket,
                subscription: room.subscribe(cursor),
            },
            lends: true,
        }
    }

    /// Never lends the socket: the connection writes every delivery itself, for when
    /// each write must pass something only the connection knows (the fault lab's
    /// delay, bandwidth and idle clock).
    pub fn keep_socket(mut self) -> Self {
        self.lends = false;
        self
    }

    /// The next frames for the connection to write itself: a delivery (from `encode`),
    /// or nothing but what the fan-out left unsent. While there are none, the socket is
    /// lent to the fan-out, which writes deliveries meanwhile, and this waits until it
    /// comes back. `None` once the hub is gone. Cancel-safe.
    pub async fn next(&mut self, encode: impl FnOnce(Delivery) -> Bytes) -> Option<Bytes> {
        loop {
            match &mut self.state {
                State::Own { socket, .. } if !socket.is_idle() => return Some(Bytes::new()),
                State::Own { subscription, .. } => {
                    let Some(last_id) = subscription.idle().filter(|_| self.lends) else {
                        return subscription.next().await.map(encode);
                    };
                    let State::Own { socket, .. } =
                        std::mem::replace(&mut self.state, State::Moving)
                    else {
                        unreachable!("matched above")
                    };
                    let loan = self.fanout.lend(&self.app, &self.room, socket, last_id);
                    self.state = State::Lent(loan);
                }
                State::Lent(loan) => {
                    let returned = loan.returned().await?;
                    self.take_back(returned);
                }
                State::Moving => return None,
            }
        }
    }

    /// The socket, to write to; called back from the fan-out if it was lent. `None`
    /// only if the fan-out is gone.
    pub async fn socket(&mut self) -> Option<&mut Outbound> {
        if let State::Lent(loan) = &mut self.state {
            loan.recall();
            let returned = loan.returned().await?;
            self.take_back(returned);
        }
        match &mut self.state {
            State::Own { socket, .. } => Some(socket),
            State::Lent(_) | State::Moving => None,
        }
    }

    /// The connection carries on from where the fan-out left its socket.
    fn take_back(&mut self, returned: Returned) {
        self.state = State::Own {
            socket: returned.socket,
            subscription: self.room.subscribe(Cursor::After(returned.last_id)),
        };
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor as Bytes_;
    use std::sync::Mutex;
    use std::task::Poll;
    use std::time::Duration;

    use clap::Parser;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, DuplexStream, duplex};
    use tungstenite::protocol::frame::FrameHeader;

    use super::*;
    use crate::config::Config;
    use crate::message::{Draft, Via};
    use crate::room::RoomName;

    /// The server's state, the lobby entered, and its fan-out.
    async fn lobby() -> (Arc<AppState>, Arc<Room>, Arc<Fanout>) {
        let config = Config::parse_from(["pushlab"]);
        let app = Arc::new(AppState::open(config).await.expect("memory opens"));
        let room = Arc::new(app.hub.room(&RoomName::lobby()));
        let fanout = room.attachment();
        (app, room, fanout)
    }

    async fn publish(room: &Room, n: usize) {
        for i in 0..n {
            let draft = Draft {
                author: "a".into(),
                text: format!("message {i}, long enough to take some room on the wire"),
                via: Via::Http,
            };
            room.publish(draft).await.expect("memory never refuses");
        }
    }

    /// The writing end of a pipe that remembers the size of every write.
    struct Recorded {
        pipe: DuplexStream,
        writes: Arc<Mutex<Vec<usize>>>,
    }

    impl AsyncWrite for Recorded {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let poll = std::pin::Pin::new(&mut self.pipe).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = poll {
                self.writes.lock().unwrap().push(n);
            }
            poll
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.pipe).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.pipe).poll_shutdown(cx)
        }
    }

    /// A socket as the fan-out sees it, the client's end of it, and its writes.
    fn socket(capacity: usize) -> (Outbound, DuplexStream, Arc<Mutex<Vec<usize>>>) {
        let (server, client) = duplex(capacity);
        let writes = Arc::new(Mutex::new(Vec::new()));
        let recorded = Recorded {
            pipe: server,
            writes: writes.clone(),
        };
        (Outbound::new(recorded), client, writes)
    }

    /// Reads text frames until `count` messages have come; their ids, in order.
    async fn read_ids(client: &mut (impl AsyncRead + Unpin), count: usize) -> Vec<u64> {
        let mut bytes = Vec::new();
        let mut ids = Vec::new();
        let mut at = 0;
        while ids.len() < count {
            let mut chunk = [0; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("stuck after {} ids, last {:?}", ids.len(), ids.last()))
                .unwrap();
            assert!(n > 0, "the pipe closed after {ids:?}");
            bytes.extend_from_slice(&chunk[..n]);
            loop {
                let mut cursor = Bytes_::new(&bytes[at..]);
                let Some((header, length)) = FrameHeader::parse(&mut cursor).unwrap() else {
                    break;
                };
                let start = at + cursor.position() as usize;
                let end = start + length as usize;
                if end > bytes.len() {
                    break;
                }
                assert!(header.mask.is_none(), "server frames are not masked");
                let frame: serde_json::Value = serde_json::from_slice(&bytes[start..end]).unwrap();
                ids.push(frame["message"]["id"].as_u64().unwrap());
                at = end;
            }
        }
        ids
    }

    #[tokio::test]
    async fn a_burst_reaches_every_lent_socket_complete_in_order_and_batched() {
        let (app, room, fanout) = lobby().await;
        let sockets: Vec<_> = (0..3).map(|_| socket(4 << 20)).collect();
        let mut clients = Vec::new();
        let mut loans = Vec::new();
        for (socket, client, writes) in sockets {
            loans.push(fanout.lend(&app, &room, socket, 0));
            clients.push((client, writes));
        }
        // Published at once (the memory store never waits), so they queue up for the
        // fan-out, which then writes them in as few passes as the byte cap allows.
        // (Fewer than the history holds: see the next test for more.)
        let burst = 900;
        publish(&room, burst).await;
        let page = room.page(Cursor::After(0), burst);
        let frame = page
            .entries
            .iter()
            .map(|e| e.encoded::<MessageFrame>().len());
        let frame = frame.max().unwrap();
        for (client, writes) in &mut clients {
            let ids = read_ids(client, burst).await;
            assert_eq!(ids, (1..=burst as u64).collect::<Vec<_>>());
            let writes = writes.lock().unwrap();
            let largest = writes.iter().max().copied().unwrap();
            assert!(largest <= PASS_BYTES + frame, "a write of {largest} bytes");
            let fewest = burst * frame / (PASS_BYTES + frame);
            assert!(writes.len() <= fewest + 2, "{} writes", writes.len());
        }
        let counters = app.stats.of(Transport::Websocket);
        assert_eq!(counters.delivered.load(Relaxed), 3 * burst as u64);
        let payloads: usize = page
            .entries
            .iter()
            .map(|e| e.json.get().len() + r#"{"type":"message","message":}"#.len())
            .sum();
        assert_eq!(counters.bytes_sent.load(Relaxed), 3 * payloads as u64);
        drop(loans);
    }

    #[tokio::test]
    async fn a_socket_that_cannot_take_a_pass_comes_back_with_the_rest() {
        let (app, room, fanout) = lobby().await;
        let (socket, mut client, _) = socket(1024);
        let mut loan = fanout.lend(&app, &room, socket, 0);
        publish(&room, 50).await;
        let returned = loan.returned().await.expect("the fan-out runs");
        assert_eq!(
            returned.last_id, 50,
            "everything is written or left to write"
        );
        let mut socket = returned.socket;
        assert!(
            !socket.is_idle(),
            "it came back with what the pipe did not take"
        );
        let reader = tokio::spawn(async move { read_ids(&mut client, 50).await });
        socket
            .send(Bytes::new(), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(reader.await.unwrap(), (1..=50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_fan_out_that_falls_behind_the_history_gives_every_socket_back() {
        let (app, room, fanout) = lobby().await;
        let (socket, _client, writes) = socket(1 << 20);
        let mut loan = fanout.lend(&app, &room, socket, 0);
        // More than the history keeps (1 000) before the fan-out runs: what it missed
        // is gone, so the connection must say so itself (a reset), from its cursor.
        publish(&room, 2000).await;
        let returned = loan.returned().await.unwrap();
        assert_eq!(returned.last_id, 0);
        assert!(writes.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_recall_gives_the_socket_back_between_frames_with_its_cursor() {
        let (app, room, fanout) = lobby().await;
        let (first, mut first_client, _) = socket(1 << 20);
        let mut loan = fanout.lend(&app, &room, first, 0);
        publish(&room, 5).await;
        assert_eq!(read_ids(&mut first_client, 5).await, [1, 2, 3, 4, 5]);
        loan.recall();
        let returned = loan.returned().await.unwrap();
        assert_eq!(returned.last_id, 5);
        assert!(returned.socket.is_idle());

        // A socket lent behind the fan-out (it has not had 4 and 5) goes back at once,
        // untouched, to catch up by itself.
        let (behind, _behind_client, writes) = socket(1 << 20);
        let mut loan = fanout.lend(&app, &room, behind, 3);
        let returned = loan.returned().await.unwrap();
        assert_eq!(returned.last_id, 3);
        assert!(writes.lock().unwrap().is_empty());
    }
}
