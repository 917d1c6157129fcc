// One set of connections for all the tabs of this page.
//
// The problem: over HTTP/1.1 a browser opens at most 6 connections to one
// origin. Each tab of this page holds two of them all the time (the SSE stream
// and the waiting long poll), so a third tab would take all six and every
// other request (short polls, posts, the next long poll) would queue forever.
//
// The fix: only one tab, the *leader*, opens the four transports. It wins a
// Web Lock (navigator.locks) that it holds until it closes, and relays every
// event (delivery, status, counters, wire log, reset) to the other tabs over a
// BroadcastChannel. The other tabs, *followers*, show the same panes and send
// their commands (drop, connect, send over WebSocket…) to the leader. When the
// leader tab closes its lock is released, the next tab in line gets it and
// opens the transports again from the cursors it has been following, so the
// hand-over loses nothing. Posting a message is a short request any tab makes
// itself. See docs/page.md.
//
// Every tab keeps the same small model (state, counters, cursor, recent
// messages per transport) from the events it sees, so any of them can take
// over. Without Web Locks or BroadcastChannel, every tab is its own leader.
//
// The leader also opens the page's wire tap (wire-tap.js) before it connects,
// and puts what the server saw on its connections into each pane's wire log.

import { ShortPoll } from './transports/short-poll.js';
import { LongPoll } from './transports/long-poll.js';
import { Sse } from './transports/sse.js';
import { WebSocketTransport } from './transports/websocket.js';
import { WireTap, entryFromRow } from './wire-tap.js';

export const KINDS = ['short_poll', 'long_poll', 'sse', 'websocket'];
const MODULES = { short_poll: ShortPoll, long_poll: LongPoll, sse: Sse, websocket: WebSocketTransport };
const KEEP_MESSAGES = 200;
const KEEP_WIRE = 100;
const LOCK = 'pushlab-connections';
// Which pane shows the rows of which request. A POST is shown with SSE, whose
// other half it is (SSE only goes one way; the page sends with POST).
const PANE_OF_ROUTE = { short_poll: 'short_poll', long_poll: 'long_poll', sse: 'sse', websocket: 'websocket', publish: 'sse' };

function emptyPane() {
  return {
    state: 'disconnected',
    detail: {},
    counters: { requests: 0, empty: 0, bytes: 0, messages: 0, duplicates: 0, lost: 0 },
    cursor: null,
    wanted: true, // should be connected (false after the user pressed Disconnect)
    messages: [],
    wire: [],
  };
}

export class Connections {
  constructor({ client, name, interval = 2000 }) {
    this.client = client;
    this.name = name;
    this.role = 'starting'; // starting | leader | follower
    this.model = { interval, panes: Object.fromEntries(KINDS.map((k) => [k, emptyPane()])), stats: null, presence: null };
    this.transports = null; // only the leader has them
    this.listeners = new Map();
    this.channel = 'BroadcastChannel' in self ? new BroadcastChannel('pushlab') : null;
    this.statsTimer = null;
    this.tap = null; // the leader's wire tap
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }

  emit(type, data) {
    for (const fn of this.listeners.get(type) ?? []) fn(data);
  }

  start() {
    if (!this.channel || !navigator.locks) {
      this.becomeLeader();
      return;
    }
    this.channel.onmessage = (event) => this.receive(event.data);
    // Tell the others at once when the leader goes, so their panes stop saying
    // "connected" until the next leader has reconnected.
    addEventListener('pagehide', () => {
      if (this.role === 'leader') this.broadcast({ type: 'leader-gone' });
    });
    // Ask whoever leads for the current picture; no answer means we are first.
    this.channel.postMessage({ type: 'hello' });
    navigator.locks.request(LOCK, () => {
      this.becomeLeader();
      return new Promise(() => {}); // hold the lock for the life of the tab
    });
  }

  // ---- leader -------------------------------------------------------------

  becomeLeader() {
    this.role = 'leader';
    this.emit('role', this.role);
    this.transports = {};
    for (const kind of KINDS) {
      const pane = this.model.panes[kind];
      const options = { cursor: pane.cursor, counters: pane.counters, client: this.client, name: this.name };
      if (kind === 'short_poll') options.interval = this.model.interval;
      const transport = new MODULES[kind](options);
      transport.onMessage((message) => this.publish({ type: 'message', kind, message }));
      transport.onStatus((state, detail) => this.publish({ type: 'status', kind, state, detail }));
      transport.onReset((info) => this.publish({ type: 'reset', kind, info }));
      transport.onWire((entry) => {
        // With the tap on, the server's rows show requests and responses as they
        // really were; the page's own summaries stay only for what the server
        // cannot see (aborts, failures, retries).
        if (this.tap?.live && entry.type !== 'event') return;
        this.publish({ type: 'wire', kind, entry });
      });
      transport.onError((error) => this.publish({ type: 'ws-error', kind, error }));
      transport.onCounters(() => this.publish({ type: 'counters', kind }));
      this.transports[kind] = transport;
    }
    this.broadcast({ type: 'leader', client: this.client });
    this.tap = new WireTap();
    // Open the tap first, so that the very first requests are recorded too.
    this.tap.open().then((live) => {
      if (live) {
        for (const transport of Object.values(this.transports)) transport.tap = this.tap.id;
        this.tap.follow((row) => this.tapRow(row));
      }
      for (const kind of KINDS) if (this.model.panes[kind].wanted) this.transports[kind].connect();
    });
    this.pollServer();
  }

  /** A row of the wire tap, into the wire log of the pane it belongs to. */
  tapRow(row) {
    const entry = entryFromRow(row);
    const kinds = row.route === 'all' ? KINDS : [PANE_OF_ROUTE[row.route]].filter(Boolean);
    for (const kind of kinds) this.publish({ type: 'wire', kind, entry });
  }

  /** The query for this tab's own POSTs: recorded in the tap when this tab leads. */
  postQuery() {
    return this.role === 'leader' && this.tap?.live ? `?tap=${this.tap.id}` : '';
  }

  /** Apply an event here and send it to the other tabs. */
  publish(event) {
    // Counters and cursor travel with every event so followers stay exact.
    const transport = this.transports[event.kind];
    event.counters = { ...transport.counters };
    event.cursor = transport.cursor;
    this.apply(event);
    this.broadcast(event);
  }

  broadcast(event) {
    this.channel?.postMessage(event);
  }

  /** /api/stats and /api/presence for the Compare tab and the online list. */
  async pollServer() {
    clearTimeout(this.statsTimer);
    try {
      const [stats, presence] = await Promise.all([
        fetch('/api/stats', { cache: 'no-store' }).then((r) => (r.ok ? r.json() : null)),
        fetch('/api/presence', { cache: 'no-store' }).then((r) => (r.ok ? r.json() : null)),
      ]);
      const event = { type: 'server', stats, presence };
      this.apply(event);
      this.broadcast(event);
    } catch {
      // The server is away; the panes already say so.
    }
    this.statsTimer = setTimeout(() => this.pollServer(), 2000);
  }

  run(command) {
    const transport = this.transports[command.kind];
    switch (command.command) {
      case 'connect':
        this.model.panes[command.kind].wanted = true;
        transport.connect();
        break;
      case 'disconnect':
        this.model.panes[command.kind].wanted = false;
        transport.disconnect();
        break;
      case 'drop':
        transport.drop(command.ms);
        break;
      case 'interval':
        this.transports.short_poll.setInterval(command.ms);
        this.apply({ type: 'interval', ms: command.ms });
        this.broadcast({ type: 'interval', ms: command.ms });
        break;
      case 'name':
        // Pollers report it from their next request, streams from their next connection.
        for (const each of Object.values(this.transports)) each.name = command.name;
        break;
      case 'ws-send':
        if (!this.transports.websocket.send(command.author, command.text)) {
          this.publish({ type: 'ws-error', kind: 'websocket', error: 'not-connected' });
        }
        break;
    }
  }

  // ---- follower -----------------------------------------------------------

  receive(event) {
    if (event.type === 'hello') {
      if (this.role === 'leader') this.broadcast({ type: 'snapshot', client: this.client, model: this.model });
      return;
    }
    if (event.type === 'command') {
      if (this.role === 'leader') this.run(event);
      return;
    }
    if (this.role === 'leader') return; // another leader's echo: cannot happen with the lock
    if (this.role !== 'follower') {
      this.role = 'follower';
      this.emit('role', this.role);
    }
    if (event.type === 'snapshot') {
      this.model = event.model;
      this.emit('snapshot', this.model);
      return;
    }
    if (event.type === 'leader-gone') {
      for (const kind of KINDS) {
        const pane = this.model.panes[kind];
        if (pane.wanted) this.apply({ type: 'status', kind, state: 'reconnecting', detail: { cursor: pane.cursor } });
      }
      return;
    }
    if (event.type === 'leader') {
      // A new leader (the old tab closed): ask it for the picture.
      this.channel.postMessage({ type: 'hello' });
      return;
    }
    this.apply(event);
  }

  // ---- both ---------------------------------------------------------------

  /** Keep the model every tab holds, then tell the page. */
  apply(event) {
    const pane = this.model.panes[event.kind];
    if (pane) {
      if (event.counters) pane.counters = event.counters;
      if (event.cursor !== undefined) pane.cursor = event.cursor;
    }
    switch (event.type) {
      case 'message':
        pane.messages.push(event.message);
        if (pane.messages.length > KEEP_MESSAGES) pane.messages.shift();
        break;
      case 'status':
        pane.state = event.state;
        pane.detail = event.detail;
        break;
      case 'wire':
        pane.wire.push(event.entry);
        if (pane.wire.length > KEEP_WIRE) pane.wire.shift();
        break;
      case 'interval':
        this.model.interval = event.ms;
        break;
      case 'server':
        this.model.stats = event.stats;
        this.model.presence = event.presence;
        break;
    }
    this.emit(event.type, event);
  }

  command(command) {
    if (this.role === 'leader') this.run(command);
    else this.channel?.postMessage({ type: 'command', ...command });
  }

  /** The display name the transports report for presence (from their next request). */
  setName(name) {
    this.name = name;
    this.command({ command: 'name', name });
  }

  connect(kind) { this.command({ command: 'connect', kind }); }
  disconnect(kind) { this.command({ command: 'disconnect', kind }); }
  drop(kind, ms = 2000) { this.command({ command: 'drop', kind, ms }); }
  setPollInterval(ms) { this.command({ command: 'interval', kind: 'short_poll', ms }); }
  sendOverWebSocket(author, text) { this.command({ command: 'ws-send', kind: 'websocket', author, text }); }
}
