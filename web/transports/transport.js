// What the client transports share.
//
// Every transport keeps a *cursor*: the id of the last message it delivered.
// It always asks the server for "everything after the cursor", so a dropped
// connection resumes exactly where it stopped: nothing lost, nothing twice.
// When the server cannot honour the cursor (it restarted, or its history moved
// past us) it says so with a *reset*; we forget the cursor and take what the
// server sends next, which starts at the oldest message it still holds.
//
// The interface, the same for short-poll.js, long-poll.js, sse.js, websocket.js,
// webtransport.js:
//
//   connect()        start receiving (does nothing if already started)
//   disconnect()     stop and stay stopped
//   drop(ms)         cut the connection as a network fault would; resume after ms
//   onMessage(fn)    fn(message): every delivery, in id order, once each
//   onStatus(fn)     fn(state, detail): connecting | connected | reconnecting |
//                    dropped | disconnected
//   onReset(fn)      fn({cursor, lastId}): the server could not honour our cursor
//   onWire(fn)       fn({dir, size, summary, type}): each request, response, event,
//                    frame the page saw (type 'summary'), and what happened to the
//                    connection that only the page knows: an abort, a failure, a
//                    retry (type 'event', dir 'page', with `key` and `params` so the
//                    page can say it in its language: i18n.js 'wire.event.*')
//   onCounters(fn)   fn(counters): the counters changed without any of the above
//   onError(fn)      fn(text): the server refused a message we sent (WebSocket,
//                    WebTransport)
//   counters         { requests, empty, bytes, messages, duplicates, lost, wire }
//   cursor           id of the last delivered message, or null before the first
//   room             the room it reads (each room has its own ids and cursors)
//
// Ids are assigned by the server 1, 2, 3… with no gaps, so a transport can
// check itself: a message at or below the cursor is a duplicate, a jump past
// cursor + 1 means messages were lost. Both should stay at zero.

export const STATES = ['connecting', 'connected', 'reconnecting', 'dropped', 'disconnected'];

export class Transport {
  // Each technique's module says what it is (read by index.js and the page):
  //   static kind      the server's name for it: short_poll, long_poll, sse, websocket
  //   static push      true when the server writes whenever it likes (no empty answers)
  //   static interval  true when it asks at an interval the user can set
  //   static tapped    true when the server's wire tap (../wire-tap.js) sees its
  //                    bytes, so the tap's rows replace the page's own summaries
  static kind = '';
  static push = false;
  static interval = false;
  static tapped = true;

  /**
   * @param {object} options
   * @param {string} [options.room]           the room to read: 'lobby' unless told
   * @param {number|null} [options.cursor]    where to resume from (null: the 50 most recent)
   * @param {object} [options.counters]       counters to continue from
   * @param {string} [options.client]         presence id this page chose
   * @param {string} [options.name]           display name for presence
   */
  constructor({ room = 'lobby', cursor = null, counters = {}, client = '', name = '' } = {}) {
    this.kind = this.constructor.kind;
    this.room = room;
    this.tap = ''; // the page's wire tap id (see ../wire-tap.js), once the server records for it
    this.cursor = cursor;
    this.client = client;
    this.name = name;
    this.state = 'disconnected';
    // `wire`: bytes both ways on the wire, headers and framing included, as the
    // server's wire tap counted them (added by connections.js; 0 without the tap).
    this.counters = { requests: 0, empty: 0, bytes: 0, messages: 0, duplicates: 0, lost: 0, wire: 0, ...counters };
    this.listeners = { message: [], status: [], reset: [], wire: [], error: [], counters: [] };
    this.running = false; // connect() was called and disconnect() was not
    this.epoch = 0; // bumped on every (re)start, so stale callbacks can tell they are stale
    this.resumeTimer = null;
    this.mark = ''; // a query parameter set to 1 on every request, naming who asks (auto.js)
  }

  onMessage(fn) { this.listeners.message.push(fn); }
  onStatus(fn) { this.listeners.status.push(fn); }
  onReset(fn) { this.listeners.reset.push(fn); }
  onWire(fn) { this.listeners.wire.push(fn); }
  onError(fn) { this.listeners.error.push(fn); }
  onCounters(fn) { this.listeners.counters.push(fn); }
  emit(kind, ...args) { for (const fn of this.listeners[kind]) fn(...args); }

  connect() {
    if (this.running) return;
    this.running = true;
    this.restart('connecting');
  }

  disconnect() {
    this.running = false;
    clearTimeout(this.resumeTimer);
    this.epoch++;
    this.close();
    this.setState('disconnected');
  }

  /** Cut the connection without telling the server, then resume from the cursor. */
  drop(ms = 2000) {
    if (!this.running) return;
    clearTimeout(this.resumeTimer);
    this.epoch++;
    this.close();
    this.event('dropped', { cursor: this.cursor ?? '–', seconds: ms / 1000 });
    this.setState('dropped', { cursor: this.cursor, resumeIn: ms });
    this.resumeTimer = setTimeout(() => this.restart('reconnecting'), ms);
  }

  /** Open again from the cursor (subclasses implement open() and close()). */
  restart(state) {
    if (!this.running) return;
    const epoch = ++this.epoch;
    this.setState(state, { cursor: this.cursor });
    this.open(epoch);
  }

  /**
   * After a failure: try again later, from the cursor. `error` is what failed: a
   * fetch error, or a reason of our own ({ reason: 'closed', code: 1006 }, see
   * reasonOf), which the pane turns into a sentence.
   */
  retryLater(epoch, error, ms = 2000) {
    if (epoch !== this.epoch || !this.running) return;
    this.close();
    const why = reasonOf(error);
    this.event(`failed.${why.reason}`, { ...why, seconds: ms / 1000, cursor: this.cursor ?? '–' });
    this.setState('reconnecting', { cursor: this.cursor, error: why, retryIn: ms });
    this.resumeTimer = setTimeout(() => {
      if (epoch === this.epoch) this.restart('reconnecting');
    }, ms);
  }

  setState(state, detail = {}) {
    this.state = state;
    this.emit('status', state, detail);
  }

  /**
   * The path of one of the room's endpoints: /api/rooms/<room>/<endpoint>, or for
   * the lobby the shorter path it had before rooms (/api/<endpoint>).
   */
  path(endpoint) {
    return roomPath(this.room, endpoint);
  }

  /** The query string every request carries: the cursor and who we are. */
  query(extra = {}) {
    const q = new URLSearchParams();
    if (this.cursor !== null) q.set('since', String(this.cursor));
    if (this.client) q.set('client', this.client);
    if (this.name) q.set('name', this.name);
    for (const [k, v] of Object.entries(extra)) q.set(k, String(v));
    if (this.mark) q.set(this.mark, '1');
    if (this.tap) q.set('tap', this.tap);
    return q.toString();
  }

  /** One message handed to the page, guarded by the cursor. */
  deliver(message) {
    if (this.cursor !== null && message.id <= this.cursor) {
      this.counters.duplicates++;
      this.wire('in', 0, `duplicate id ${message.id} ignored (cursor ${this.cursor})`);
      return;
    }
    if (this.cursor !== null && message.id > this.cursor + 1) this.counters.lost += message.id - this.cursor - 1;
    this.cursor = message.id;
    this.counters.messages++;
    this.emit('message', message);
  }

  /** The server could not resume from our cursor: forget it, say so. */
  reset(lastId) {
    const info = { cursor: this.cursor, lastId };
    this.cursor = null;
    this.emit('reset', info);
  }

  /** A polling answer: {messages, last_id, reset?} — the same body for short and long polls. */
  receivePage(page) {
    if (page.reset) this.reset(page.last_id);
    for (const message of page.messages) this.deliver(message);
    if (page.messages.length === 0) this.counters.empty++;
    // last_id is the cursor for the next request (it can be ahead of the last
    // delivered message when the page was empty or the history was trimmed).
    if (typeof page.last_id === 'number' && (this.cursor === null || page.last_id > this.cursor)) {
      this.cursor = page.last_id;
    }
    this.emit('counters', this.counters);
  }

  wire(dir, size, summary, type = 'summary') {
    this.emit('wire', { at: Date.now(), dir, size, summary, type });
  }

  /**
   * Something only the page sees: an abort, a failure, a retry, a reconnect. Said
   * with a key of i18n.js ('wire.event.<key>') and its numbers, so that the wire
   * log speaks the page's language.
   */
  event(key, params = {}) {
    this.emit('wire', { at: Date.now(), dir: 'page', size: 0, summary: key, key: `wire.event.${key}`, params, type: 'event' });
  }
}

/**
 * Why a connection failed, as { reason, …numbers } for the page's sentences
 * (i18n.js 'reason.*'): fetch only says "Failed to fetch" (the server did not
 * answer) or gives a status; a WebSocket gives its close code.
 */
export function reasonOf(error) {
  if (error?.reason) return error;
  const status = /^HTTP (\d+)/.exec(String(error?.message ?? error));
  if (status) return { reason: 'status', status: Number(status[1]) };
  return { reason: 'unreachable' };
}

/**
 * Where a room's endpoint is: /api/rooms/<room>/<endpoint>, or for the lobby
 * the shorter path it had before rooms (/api/<endpoint>). As protocol::path.
 */
export function roomPath(room, endpoint) {
  if (room === 'lobby') return `/api/${endpoint}`;
  return `/api/rooms/${encodeURIComponent(room)}/${endpoint}`;
}

/** UTF-8 length of a string: what it weighs on the wire. */
export function byteLength(text) {
  return new TextEncoder().encode(text).length;
}

/**
 * fetch + count: the request, the body's bytes, and the parsed JSON.
 * Only the body is counted; response headers (a few hundred bytes on every
 * request, which is much of short polling's cost) are not visible to fetch.
 */
export async function fetchJson(transport, url, signal) {
  transport.counters.requests++;
  transport.wire('out', 0, `GET ${url}`);
  const started = performance.now();
  let response;
  let body;
  try {
    response = await fetch(url, { signal, cache: 'no-store' });
    body = await response.arrayBuffer();
  } catch (error) {
    // An abort is the page's own doing (drop, disconnect); anything else is the
    // network: the request may or may not have reached the server.
    if (error.name === 'AbortError') transport.event('aborted', { ms: Math.round(performance.now() - started) });
    throw error;
  }
  // For a long poll this is how long the server held the request.
  const after = `after ${Math.round(performance.now() - started)} ms`;
  transport.counters.bytes += body.byteLength;
  const text = new TextDecoder().decode(body);
  if (!response.ok) {
    transport.wire('in', body.byteLength, `${response.status} ${text.slice(0, 80)}  ${after}`);
    throw new Error(`HTTP ${response.status}`);
  }
  const page = JSON.parse(text);
  const ids = page.messages.map((m) => m.id);
  const summary = ids.length
    ? `${response.status} messages: [${ids.length > 3 ? `${ids[0]}…${ids.at(-1)}` : ids.join(', ')}] last_id: ${page.last_id}  ${after}`
    : `${response.status} messages: [] last_id: ${page.last_id}  ${after}`;
  transport.wire('in', body.byteLength, page.reset ? `${summary} reset: true` : summary);
  return page;
}
