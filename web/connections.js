// One set of connections per room for all the tabs of this page.
//
// The problem: over HTTP/1.1 a browser opens at most 6 connections to one
// origin. Each tab of this page holds two of them all the time (the SSE stream
// and the waiting long poll), so a third tab would take all six and every
// other request (short polls, posts, the next long poll) would queue forever.
//
// The fix: only one tab, the *leader*, opens transports. It wins a Web Lock
// (navigator.locks) that it holds until it closes, and relays every event
// (delivery, status, counters, wire log, reset) to the other tabs over a
// BroadcastChannel. The other tabs, *followers*, show the same panes and send
// their commands (drop, connect, send over WebSocket…) to the leader. When the
// leader tab closes its lock is released, the next tab in line gets it and
// opens the transports again from the cursors it has been following, so the
// hand-over loses nothing. Posting a message is a short request any tab makes
// itself. See docs/page.md.
//
// Rooms: each tab watches one room, and may switch. The leader opens one set
// of the transports per room that some tab watches (tabs in the same room
// share it), tags every event with its room, and closes a room's set when the
// last tab leaves it. Each tab keeps the small model (state, counters, cursor,
// recent messages per transport) of its own room, so any of them can take
// over. Without Web Locks or BroadcastChannel, every tab is its own leader.
//
// The leader also opens a wire tap (wire-tap.js) for each room's set before it
// connects it, and puts what the server saw on those connections into the
// wire log of that room's panes.

import { KINDS, transportOf } from './transports/index.js';
import { WireTap, entryFromRow } from './wire-tap.js';

const KEEP_MESSAGES = 200;
const KEEP_WIRE = 100;
const LOCK = 'pushlab-connections';
// Which pane shows the rows of which request. A POST is shown with SSE, whose
// other half it is (SSE only goes one way; the page sends with POST).
const paneOf = (route) => (route === 'publish' ? 'sse' : transportOf(route)?.kind);

function emptyPane() {
  return {
    state: 'disconnected',
    detail: {},
    counters: { requests: 0, empty: 0, bytes: 0, messages: 0, duplicates: 0, lost: 0, wire: 0 },
    cursor: null,
    wanted: true, // should be connected (false after the user pressed Disconnect)
    messages: [],
    wire: [],
  };
}

function emptyRoom() {
  return { panes: Object.fromEntries(KINDS.map((k) => [k, emptyPane()])), presence: null };
}

export class Connections {
  constructor({ client, name, room = 'lobby', interval = 2000 }) {
    this.client = client;
    this.name = name;
    this.tab = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`; // this tab, among the others
    this.room = room;
    this.role = 'starting'; // starting | leader | follower
    this.interval = interval;
    this.stats = null;
    this.rooms = new Map([[room, emptyRoom()]]); // room → model: this tab's room, and (leader) every watched room
    this.sets = null; // leader only: room → { transports, tap, watchers: Set of tab ids }
    this.listeners = new Map();
    this.channel = 'BroadcastChannel' in self ? new BroadcastChannel('pushlab') : null;
    this.statsTimer = null;
    this.soon = null; // a pollServer() about to run (pollServerSoon)
  }

  /** What the page draws: this tab's room, the interval and the server's figures. */
  get model() {
    return { room: this.room, interval: this.interval, stats: this.stats, ...this.rooms.get(this.room) };
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
    addEventListener('pagehide', () => {
      // Tell the others at once when the leader goes, so their panes stop saying
      // "connected" until the next leader has reconnected; a follower that goes
      // lets the leader close its room if nobody else watches it.
      if (this.role === 'leader') this.broadcast({ type: 'leader-gone' });
      else this.broadcast({ type: 'bye', tab: this.tab });
    });
    // Ask whoever leads for the current picture; no answer means we are first.
    this.hello();
    navigator.locks.request(LOCK, () => {
      this.becomeLeader();
      return new Promise(() => {}); // hold the lock for the life of the tab
    });
  }

  /** Watch another room: every pane and who is online switch to it, without a reload. */
  switchRoom(room) {
    if (room === this.room) return;
    const leaving = this.room;
    this.room = room;
    if (this.role === 'leader') {
      if (!this.rooms.has(room)) this.rooms.set(room, emptyRoom());
      this.watch(this.tab, room);
      this.pollServer();
    } else {
      // Drop the old room's model; the leader sends the new one's.
      this.rooms.delete(leaving);
      this.rooms.set(room, emptyRoom());
      this.hello();
    }
    this.emit('room', this.model);
  }

  // ---- leader -------------------------------------------------------------

  becomeLeader() {
    this.role = 'leader';
    this.emit('role', this.role);
    this.sets = new Map();
    this.watch(this.tab, this.room);
    // Followers answer with their rooms and cursors, so that the rooms they watch
    // are opened again from where they were.
    this.broadcast({ type: 'leader', client: this.client });
    this.pollServer();
  }

  /** Tab `tab` now watches `room` (and no other): open the room's set if it has none. */
  watch(tab, room, model = null) {
    for (const [other, set] of this.sets) {
      if (other !== room && set.watchers.delete(tab) && set.watchers.size === 0) this.close(other);
    }
    if (!this.sets.has(room)) {
      if (!this.rooms.has(room)) this.rooms.set(room, model ?? emptyRoom());
      const set = { tap: new WireTap(), watchers: new Set(), autoConnections: new Set() };
      set.transports = this.open(room, set.tap);
      this.sets.set(room, set);
      // Open the tap first, so that the very first requests are recorded too.
      set.tap.open().then((live) => {
        if (this.sets.get(room) !== set) return; // nobody watches it any more
        if (live) {
          for (const transport of Object.values(set.transports)) transport.tap = set.tap.id;
          set.tap.follow((row) => this.tapRow(room, row));
        }
        for (const kind of KINDS) if (this.rooms.get(room).panes[kind].wanted) set.transports[kind].connect();
      });
    }
    this.sets.get(room).watchers.add(tab);
  }

  /** A tab closed: close the rooms only it watched. */
  unwatch(tab) {
    for (const [room, set] of this.sets) {
      if (set.watchers.delete(tab) && set.watchers.size === 0) this.close(room);
    }
  }

  /** The transports of a room, from the cursors and counters its model has. */
  open(room, tap) {
    const transports = {};
    for (const kind of KINDS) {
      const pane = this.rooms.get(room).panes[kind];
      const Module = transportOf(kind);
      const transport = new Module({
        room, cursor: pane.cursor, counters: pane.counters, client: this.client, name: this.name, interval: this.interval,
      });
      transport.onMessage((message) => this.publish({ type: 'message', room, kind, message }));
      transport.onStatus((state, detail) => this.publish({ type: 'status', room, kind, state, detail }));
      transport.onReset((info) => this.publish({ type: 'reset', room, kind, info }));
      transport.onWire((entry) => {
        // With the tap on, the server's rows show requests and responses as they
        // really were; the page's own summaries stay only for what the server
        // cannot see (aborts, failures, retries, and transports it cannot tap).
        if (tap.live && Module.tapped && entry.type !== 'event') return;
        this.publish({ type: 'wire', room, kind, entry });
      });
      transport.onError((error) => this.publish({ type: 'send-error', room, kind, error }));
      transport.onCounters(() => this.publish({ type: 'counters', room, kind }));
      transports[kind] = transport;
    }
    return transports;
  }

  /** A row of a room's wire tap, into the wire log of the pane it belongs to. */
  tapRow(room, row) {
    const entry = entryFromRow(row);
    const set = this.sets.get(room);
    if (!set) return;
    // The automatic client's requests carry auto=1: the rows of their connection are
    // its pane's, until that connection carries another request.
    if (row.kind === 'request') {
      if (/[?&]auto=1(&|\s|$)/.test(row.summary)) set.autoConnections.add(row.conn);
      else set.autoConnections.delete(row.conn);
    }
    const route = set.autoConnections.has(row.conn) ? 'auto' : row.route;
    // What a transport's own exchanges weigh on the wire, both ways (Compare).
    const transport = set.transports[route];
    if (transport) transport.counters.wire += row.bytes ?? 0;
    const kinds = route === 'all' ? KINDS : [paneOf(route)].filter(Boolean);
    for (const kind of kinds) this.publish({ type: 'wire', room, kind, entry });
  }

  /**
   * The id the fault lab knows this page's connections by (their wire tap's), for
   * this tab's room; null in a follower tab or without the tap.
   */
  labId() {
    const tap = this.role === 'leader' ? this.sets.get(this.room)?.tap : null;
    return tap?.live ? tap.id : null;
  }

  /** The query for this tab's own POSTs: recorded in its room's tap when this tab leads. */
  postQuery() {
    const tap = this.role === 'leader' ? this.sets.get(this.room)?.tap : null;
    return tap?.live ? `?tap=${tap.id}` : '';
  }

  /** Nobody watches `room` any more: close its transports and forget it. */
  close(room) {
    const { transports, tap } = this.sets.get(room);
    this.sets.delete(room);
    for (const transport of Object.values(transports)) transport.disconnect();
    tap.stop();
    if (room !== this.room) this.rooms.delete(room);
  }

  /** Apply an event here and send it to the other tabs. */
  publish(event) {
    // Counters and cursor travel with every event so followers stay exact.
    const transport = this.sets.get(event.room)?.transports[event.kind];
    if (!transport) return; // a room closed meanwhile
    event.counters = { ...transport.counters };
    event.cursor = transport.cursor;
    // Connected now: ask who is online at once rather than within 2 s.
    if (event.type === 'status' && event.state === 'connected') this.pollServerSoon();
    this.apply(event);
    this.broadcast(event);
  }

  broadcast(event) {
    this.channel?.postMessage(event);
  }

  /** /api/stats, and each watched room's presence, for Compare and the online list. */
  async pollServer() {
    clearTimeout(this.statsTimer);
    try {
      const json = (url) => fetch(url, { cache: 'no-store' }).then((r) => (r.ok ? r.json() : null));
      const rooms = [...this.sets.keys()];
      const [stats, ...presences] = await Promise.all([
        json('/api/stats'),
        ...rooms.map((room) => json(`/api/rooms/${encodeURIComponent(room)}/presence`)),
      ]);
      const presence = Object.fromEntries(rooms.map((room, i) => [room, presences[i]]));
      const event = { type: 'server', stats, presence };
      this.apply(event);
      this.broadcast(event);
    } catch {
      // The server is away; the panes already say so.
    }
    this.statsTimer = setTimeout(() => this.pollServer(), 2000);
  }

  /** One /api/stats and presence round shortly, however many panes just connected. */
  pollServerSoon() {
    if (this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      this.pollServer();
    }, 200);
  }

  run(command) {
    const set = this.sets.get(command.room);
    const transport = set?.transports[command.kind];
    switch (command.command) {
      case 'connect':
        if (!transport) return;
        this.rooms.get(command.room).panes[command.kind].wanted = true;
        transport.connect();
        break;
      case 'disconnect':
        if (!transport) return;
        this.rooms.get(command.room).panes[command.kind].wanted = false;
        transport.disconnect();
        break;
      case 'drop':
        transport?.drop(command.ms);
        break;
      case 'interval':
        for (const { transports } of this.sets.values()) {
          for (const each of Object.values(transports)) each.setInterval?.(command.ms);
        }
        this.apply({ type: 'interval', ms: command.ms });
        this.broadcast({ type: 'interval', ms: command.ms });
        break;
      case 'name':
        // Pollers report it from their next request, streams from their next connection.
        for (const { transports } of this.sets.values()) {
          for (const each of Object.values(transports)) each.name = command.name;
        }
        break;
      case 'send':
        if (!transport?.send(command.author, command.text)) {
          this.publish({ type: 'send-error', room: command.room, kind: command.kind, error: 'not-connected' });
        }
        break;
    }
  }

  // ---- follower -----------------------------------------------------------

  /** Tell the leader which room this tab watches, with what it knows of it. */
  hello() {
    this.channel?.postMessage({ type: 'hello', tab: this.tab, room: this.room, model: this.rooms.get(this.room) });
  }

  receive(event) {
    if (event.type === 'hello') {
      if (this.role !== 'leader') return;
      this.watch(event.tab, event.room, event.model);
      this.broadcast({
        type: 'snapshot', tab: event.tab, room: event.room, model: this.rooms.get(event.room), interval: this.interval, stats: this.stats,
      });
      this.pollServer(); // its room's presence, now
      return;
    }
    if (event.type === 'bye') {
      if (this.role === 'leader') this.unwatch(event.tab);
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
      if (event.tab !== this.tab || event.room !== this.room) return; // another tab's
      this.rooms.set(this.room, event.model);
      this.interval = event.interval;
      this.stats = event.stats;
      this.emit('snapshot', this.model);
      return;
    }
    if (event.type === 'leader-gone') {
      for (const kind of KINDS) {
        const pane = this.rooms.get(this.room).panes[kind];
        if (pane.wanted) this.apply({ type: 'status', room: this.room, kind, state: 'reconnecting', detail: { cursor: pane.cursor } });
      }
      return;
    }
    if (event.type === 'leader') {
      // A new leader (the old tab closed): tell it our room and cursors.
      this.hello();
      return;
    }
    this.apply(event);
  }

  // ---- both ---------------------------------------------------------------

  /** Keep the model of the event's room (if this tab holds it), then tell the page. */
  apply(event) {
    if (event.type === 'interval') {
      this.interval = event.ms;
      this.emit(event.type, event);
      return;
    }
    if (event.type === 'server') {
      this.stats = event.stats;
      for (const [room, model] of this.rooms) if (event.presence?.[room] !== undefined) model.presence = event.presence[room];
      this.emit(event.type, { stats: this.stats, presence: this.model.presence });
      return;
    }
    const model = this.rooms.get(event.room);
    if (!model) return; // a room this tab does not watch
    const pane = model.panes[event.kind];
    if (event.counters) pane.counters = event.counters;
    if (event.cursor !== undefined) pane.cursor = event.cursor;
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
    }
    if (event.room === this.room) this.emit(event.type, event);
  }

  command(command) {
    const withRoom = { room: this.room, ...command };
    if (this.role === 'leader') this.run(withRoom);
    else this.channel?.postMessage({ type: 'command', ...withRoom });
  }

  /** The display name the transports report for presence (from their next request). */
  setName(name) {
    this.name = name;
    this.command({ command: 'name', name });
  }

  connect(kind) { this.command({ command: 'connect', kind }); }
  disconnect(kind) { this.command({ command: 'disconnect', kind }); }
  drop(kind, ms = 2000) { this.command({ command: 'drop', kind, ms }); }
  setPollInterval(ms) { this.command({ command: 'interval', ms }); }
  /** Send a message over a transport that can (websocket, webtransport). */
  sendOver(kind, author, text) { this.command({ command: 'send', kind, author, text }); }
}
