// Automatic: one client that picks its own transport, the way production
// libraries negotiate (Socket.IO, SignalR and Centrifugo all do).
//
// How it works: it tries the best technique first and falls back down a ladder,
//   WebSocket → Server-Sent Events → long polling → short polling
// using the other modules of this folder unchanged. A rung that fails before it
// ever connected (a firewall refusing the upgrade, a proxy refusing streams: the
// fault lab's "blocked") is given up at once for the next one; a rung that
// worked and then dropped is retried after a backoff. Every switch carries the
// same cursor, so the next transport asks the server for exactly what came after
// the last message delivered: nothing lost, nothing twice. While on a lower rung
// it tries to go back up every UPGRADE_MS (a proxy may have been fixed, a
// network changed), and falls back again if the better rung still fails.
//
// Backoff with jitter: after the n-th failure in a row it waits a random time
// between half and all of min(30 s, 0.5 s × 2^n). When a server restarts in front
// of a thousand viewers they do not all come back in the same millisecond (a
// reconnect storm); they spread over the window, and the window grows while the
// server stays away.
//
// What it costs: whatever the rung it is on costs (see its module), plus one
// failed attempt per rung it skips, and an attempt to upgrade every UPGRADE_MS
// while it is not on WebSocket. Copy this file with the four it uses.

import { Transport } from './transport.js';
import { WebSocketTransport } from './websocket.js';
import { Sse } from './sse.js';
import { LongPoll } from './long-poll.js';
import { ShortPoll } from './short-poll.js';

export const LADDER = [WebSocketTransport, Sse, LongPoll, ShortPoll];
const UPGRADE_MS = 10_000;
const MAX_BACKOFF_MS = 30_000;

/** Half to all of min(30 s, 0.5 s × 2^failures): spread out, and growing. */
export function backoff(failures) {
  const ceiling = Math.min(MAX_BACKOFF_MS, 500 * 2 ** failures);
  return Math.round(ceiling * (0.5 + Math.random() / 2));
}

export class Auto extends Transport {
  static kind = 'auto';
  static push = false; // on a polling rung its answers can be empty
  static tapped = true; // its requests carry auto=1, so connections.js routes the tap's rows here

  constructor(options = {}) {
    super(options);
    this.options = options;
    this.rung = 0; // index in LADDER
    this.inner = null; // the transport it is on
    this.failures = 0; // in a row, on this rung
    this.connectedHere = false; // the current rung connected at least once
    this.upgradeTimer = null;
    this.switched = null; // { from, to, why } until the new rung connects
  }

  /** The kind of the transport it is on now (websocket, sse, long_poll, short_poll). */
  get via() {
    return LADDER[this.rung].kind;
  }

  open() {
    this.climb(this.rung);
  }

  /** Start the transport of `rung` from the cursor. */
  climb(rung, why = null) {
    const from = this.inner ? this.via : null;
    this.stopInner();
    this.rung = rung;
    this.connectedHere = false;
    if (from && from !== this.via) this.switched = { from, to: this.via, why };
    const Module = LADDER[rung];
    const inner = new Module({ ...this.options, room: this.room, cursor: this.cursor, client: this.client, name: this.name });
    inner.tap = this.tap;
    inner.mark = 'auto'; // so that the wire tap's rows of its requests come to this pane
    inner.counters = this.counters; // one set of meters, whichever rung
    this.inner = inner;
    const mine = (fn) => (...args) => {
      if (this.inner === inner) fn(...args);
    };
    inner.onMessage(mine((message) => {
      this.cursor = inner.cursor;
      this.emit('message', message);
    }));
    inner.onReset(mine((info) => {
      this.cursor = inner.cursor;
      this.emit('reset', info);
    }));
    inner.onWire(mine((entry) => this.emit('wire', entry)));
    inner.onCounters(mine(() => {
      this.cursor = inner.cursor;
      this.emit('counters', this.counters);
    }));
    inner.onError(mine((error) => this.emit('error', error)));
    inner.onStatus(mine((state, detail) => this.innerStatus(state, detail)));
    inner.connect();
  }

  innerStatus(state, detail) {
    this.cursor = this.inner.cursor;
    if (state === 'connected') {
      this.failures = 0;
      this.connectedHere = true;
      const switched = this.switched;
      this.switched = null;
      this.setState('connected', { cursor: this.cursor, via: this.via, switched });
      if (this.rung > 0) this.scheduleUpgrade();
      return;
    }
    if (state !== 'reconnecting') return; // connecting: wait; its own drops come from us
    // The rung failed. If it never connected and the server (or something in the way)
    // answered, it is blocked here: go down a rung now. A server that does not answer
    // at all is not a reason to give a technique up: wait and retry the same rung.
    const why = detail.error ?? { reason: 'unreachable' };
    const answered = why.reason !== 'unreachable' && why.reason !== 'streamEnded';
    if (!this.connectedHere && answered && this.rung < LADDER.length - 1) {
      this.event('fellBack', { from: this.via, to: LADDER[this.rung + 1].kind });
      this.climb(this.rung + 1, why);
      return;
    }
    // It worked and dropped, the server is away, or it is the last rung: retry it
    // after a backoff.
    const wait = backoff(this.failures++);
    const rung = this.rung;
    this.stopInner();
    this.event('backoff', { via: this.via, seconds: (wait / 1000).toFixed(1), cursor: this.cursor ?? '–' });
    this.setState('reconnecting', { cursor: this.cursor, error: why, via: this.via });
    clearTimeout(this.resumeTimer);
    const epoch = this.epoch;
    this.resumeTimer = setTimeout(() => {
      if (epoch === this.epoch && this.running) this.climb(rung);
    }, wait);
  }

  /** While below WebSocket, try the top rung again now and then. */
  scheduleUpgrade() {
    clearTimeout(this.upgradeTimer);
    const epoch = this.epoch;
    this.upgradeTimer = setTimeout(() => {
      if (epoch !== this.epoch || !this.running || this.rung === 0 || this.state !== 'connected') return;
      this.event('upgrading', { from: this.via, to: LADDER[0].kind });
      this.climb(0, { reason: 'upgrade' });
    }, UPGRADE_MS + Math.random() * 1000);
  }

  stopInner() {
    const inner = this.inner;
    this.inner = null; // first: its last events are no longer ours
    inner?.disconnect();
  }

  close() {
    clearTimeout(this.upgradeTimer);
    this.stopInner();
  }

  /** Sends like the rung it is on can: only a WebSocket takes messages. */
  send(author, text) {
    return this.inner?.send?.(author, text) ?? false;
  }
}
