// One pane: what one transport has received and what it cost.
//
// The pane only draws; the transport (in the leader tab, see connections.js)
// does the networking. Everything a message carries is put on the page with
// textContent, never innerHTML: a message "<img src=x onerror=alert(1)>"
// shows those characters and runs nothing.

import { t, translate } from './i18n.js';
import { transportOf } from './transports/index.js';

const KEEP_ON_SCREEN = 200;
const KEEP_LATENCIES = 1000;

export function formatBytes(n) {
  if (n < 1000) return `${n} B`;
  if (n < 1_000_000) return `${(n / 1000).toFixed(1)} kB`;
  return `${(n / 1_000_000).toFixed(2)} MB`;
}

export class PaneView {
  /**
   * @param {HTMLElement} root  a clone of #pane-template
   * @param {string} kind       a transport module's kind (see transports/index.js)
   * @param {object} actions    { drop(), toggle(), interval(ms) }
   * @param {number} openedAt   when this page opened (ms); older messages are not timed
   */
  constructor(root, kind, actions, openedAt) {
    this.root = root;
    this.kind = kind;
    this.module = transportOf(kind); // what the technique is: push or not, an interval or not
    this.openedAt = openedAt;
    this.shown = new Set(); // ids on screen: a follower may see a message in a snapshot and live
    this.latencies = []; // sorted, for the median
    this.lastLatency = null;
    this.newest = 0;
    this.state = 'disconnected';
    this.via = null; // the automatic client's current technique
    this.outage = null; // { from: cursor, reset } between losing the connection and getting it back
    this.resumed = null; // the last "resumed" notice, until a message follows it
    this.catchUp = null; // { item, from, base, at } while the messages of the outage arrive
    this.follow = true; // keep the newest message in view (false while the reader scrolled up)
    this.counters = { requests: 0, empty: 0, bytes: 0, messages: 0, duplicates: 0, lost: 0 };

    root.dataset.transport = kind;
    root.id = `pane-${kind}`;
    this.list = root.querySelector('.messages');
    this.announcer = root.querySelector('[data-field="announce"]');
    // Follow the newest message unless the reader scrolled up to read. Decided on
    // the reader's scrolling only: a hidden list (another view) has no height and
    // must not stop it following.
    this.list.addEventListener('scroll', () => {
      const list = this.list;
      if (list.clientHeight > 0) this.follow = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    });
    this.wireBody = root.querySelector('.wire-table tbody');
    const title = root.querySelector('.pane-title');
    title.id = `pane-title-${kind}`;
    translate(title, `name.${kind}`);
    root.setAttribute('aria-labelledby', title.id);
    this.list.dataset.i18nAttr = 'aria-label:pane.messages';
    for (const [field, key] of [['how', 'how'], ['good', 'good'], ['cost', 'cost']]) {
      translate(root.querySelector(`[data-field="${field}"]`), `explain.${kind}.${key}`);
    }
    const stream = this.module.push;
    const bytesKey = stream ? `bytes.${kind}` : 'bytes.fetch';
    translate(root.querySelector('[data-field="bytes-note"]'), bytesKey);
    root.querySelector('[data-meter="bytes"]').previousElementSibling.dataset.i18nAttr = `title:${bytesKey}`;
    if (stream) root.querySelector('[data-meter="empty"]').dataset.i18nAttr = 'title:empty.stream';

    root.querySelector('[data-action="drop"]').addEventListener('click', () => actions.drop());
    root.querySelector('[data-action="toggle"]').addEventListener('click', () => actions.toggle());
    if (this.module.interval) {
      const label = root.querySelector('.interval');
      label.hidden = false;
      const input = label.querySelector('input');
      input.id = `interval-${kind}`;
      input.addEventListener('input', () => actions.interval(Math.round(Number(input.value) * 1000)));
    }
    this.relabel();
  }

  /** Text that depends on numbers or state, redrawn on a language switch. */
  relabel() {
    this.list.setAttribute('aria-label', t('pane.messages', { name: t(`name.${this.kind}`) }));
    this.renderState();
    this.renderCounters();
  }

  /**
   * A state change, and the one story each outage tells in order: what happened
   * (dropped, lost and why), then how it came back (resumed from the cursor it had
   * when the outage began, or a reset when the server could not resume).
   */
  setState(state, detail = {}) {
    this.state = state;
    if (detail.via) {
      this.via = detail.via;
      this.root.dataset.via = detail.via;
    }
    this.root.dataset.state = state;
    this.renderState();
    const outage = state === 'dropped' || state === 'reconnecting' || state === 'connecting';
    if (outage && this.outage === null) {
      // The outage begins: remember where, so "resumed from" names that cursor and
      // not the one reached by the messages that caught up.
      this.outage = { from: detail.cursor ?? null, reset: false, base: { ...this.counters } };
      this.catchUp = null;
      if (state === 'dropped') {
        this.notice('notice.dropped', { cursor: detail.cursor ?? '–', seconds: (detail.resumeIn ?? 0) / 1000 });
      } else if (detail.error) {
        this.notice(`notice.lost.${detail.error.reason}`, { ...detail.error, cursor: detail.cursor ?? '–' });
      }
    } else if (state === 'connected' && this.outage) {
      const { from, reset, base } = this.outage;
      this.outage = null;
      // The automatic client changed technique: say which, and why.
      if (detail.switched) {
        const { from: was, to, why } = detail.switched;
        this.notice('notice.switched', { from: t(`name.${was}`), to: t(`name.${to}`), why: t(`why.${why?.reason ?? 'upgrade'}`) });
      }
      // A first connection has nothing to resume; after a reset the reset notice
      // already says how it carried on.
      if (from !== null && !reset) {
        this.resumed = this.notice('notice.resumed', this.resumeParams(from, base));
        this.catchUp = { item: this.resumed, from, base, at: Date.now() };
      }
    } else if (state === 'disconnected') {
      this.outage = null;
      // The technique cannot work here (the browser, the page's address or the server): say why.
      if (detail.unavailable) this.notice(detail.unavailable, {});
    }
  }

  /**
   * What a resume says: where from, how many messages of the outage it caught up
   * (nothing lost: the cursor saw to it), and what the outage cost in requests and
   * bytes since the connection was lost.
   */
  resumeParams(from, base) {
    const c = this.counters;
    return {
      cursor: from,
      missed: c.messages - base.messages,
      requests: c.requests - base.requests,
      bytes: formatBytes(Math.max(0, c.bytes - base.bytes)),
    };
  }

  renderState() {
    translate(this.root.querySelector('[data-field="state"]'), `state.${this.state}`);
    // The automatic client says which technique carries it now.
    const via = this.root.querySelector('[data-field="via"]');
    via.hidden = !this.via;
    if (this.via) translate(via, 'pane.via', { via: t(`name.${this.via}`) });
    const toggle = this.root.querySelector('[data-action="toggle"]');
    const off = this.state === 'disconnected';
    translate(toggle, off ? 'pane.connect' : 'pane.disconnect');
    // Five panes have the same buttons: their accessible names say whose they are.
    const name = t(`name.${this.kind}`);
    toggle.setAttribute('aria-label', t(off ? 'pane.connectLabel' : 'pane.disconnectLabel', { name }));
    const drop = this.root.querySelector('[data-action="drop"]');
    drop.setAttribute('aria-label', t('pane.dropLabel', { name }));
    drop.disabled = off;
  }

  /**
   * Which HTTP and which TCP connection carry this transport, as the server saw its
   * latest request: { http: 'h2' | 'http/1.1', connection: 7 }, or null if unknown.
   */
  setCarrier(carrier) {
    const element = this.root.querySelector('[data-field="carrier"]');
    element.hidden = !carrier;
    this.root.dataset.http = carrier?.http ?? '';
    if (carrier) translate(element, 'carrier', { http: carrier.http, connection: carrier.connection });
  }

  setCursor(cursor) {
    const element = this.root.querySelector('[data-field="cursor"]');
    if (cursor === null || cursor === undefined) element.textContent = '';
    else translate(element, 'pane.cursor', { cursor });
  }

  setCounters(counters) {
    this.counters = counters;
    this.renderCounters();
  }

  renderCounters() {
    const c = this.counters;
    const stream = this.module.push;
    this.meter('requests', String(c.requests));
    this.meter('empty', stream ? t('meter.na') : String(c.empty));
    this.meter('bytes', formatBytes(c.bytes));
    this.meter('messages', String(c.messages));
    this.meter('integrity', `${c.lost} / ${c.duplicates}`);
    const median = this.median();
    this.meter('latency', this.lastLatency === null ? '–' : `${this.lastLatency} ms`);
    this.meter('median', median === null ? '–' : `${median} ms`);
  }

  meter(name, value) {
    const element = this.root.querySelector(`[data-meter="${name}"]`);
    if (element.textContent !== value) element.textContent = value;
  }

  median() {
    const n = this.latencies.length;
    if (n === 0) return null;
    return n % 2 ? this.latencies[(n - 1) / 2] : Math.round((this.latencies[n / 2 - 1] + this.latencies[n / 2]) / 2);
  }

  setInterval(ms) {
    if (!this.module.interval) return;
    const input = this.root.querySelector('[data-control="interval"]');
    input.value = String(ms / 1000);
    this.root.querySelector('[data-field="interval"]').textContent = `${ms / 1000} s`;
  }

  /** A message as it arrives: shown once, as text, with its latency. */
  addMessage(message, live = true) {
    if (this.shown.has(message.id)) return;
    this.shown.add(message.id);
    const sentAt = Date.parse(message.sent_at);
    let latency = null;
    if (live && sentAt >= this.openedAt) {
      latency = Math.max(0, Date.now() - sentAt);
      this.lastLatency = latency;
      const i = this.latencies.findIndex((x) => x > latency);
      this.latencies.splice(i === -1 ? this.latencies.length : i, 0, latency);
      if (this.latencies.length > KEEP_LATENCIES) this.latencies.splice(Math.floor(Math.random() * this.latencies.length), 1);
    }

    const item = document.createElement('li');
    item.className = 'msg';
    item.dataset.id = String(message.id);
    const id = document.createElement('span');
    id.className = 'msg-id';
    id.textContent = `#${message.id}`;
    const author = document.createElement('span');
    author.className = 'msg-author';
    author.textContent = message.author;
    const text = document.createElement('span');
    text.className = 'msg-text';
    text.textContent = message.text;
    const meta = document.createElement('span');
    meta.className = 'msg-meta';
    const via = translate(document.createElement('span'), 'message.via', { via: message.via });
    via.className = `msg-via msg-via-${message.via}`;
    meta.append(via);
    if (latency !== null) {
      const lat = translate(document.createElement('span'), 'message.latency', { ms: latency });
      lat.className = 'lat';
      meta.append(lat);
    }
    item.append(id, author, text, meta);
    this.resumed = null; // a message came after it: the resume stands
    // A message of the outage (sent before the resume) is one more caught up; the
    // first one sent after it ends the catch-up.
    if (this.catchUp && sentAt < this.catchUp.at) {
      const { item: notice, from, base } = this.catchUp;
      translate(notice, 'notice.resumed', this.resumeParams(from, base));
    } else {
      this.catchUp = null;
    }
    // Usually the newest; a snapshot from another tab may bring older ones late.
    const later = message.id < this.newest
      ? [...this.list.querySelectorAll('.msg')].find((li) => Number(li.dataset.id) > message.id)
      : null;
    if (later) later.before(item);
    else this.append(item);
    this.newest = Math.max(this.newest, message.id);
    this.renderCounters();
  }

  /**
   * The server could not honour the cursor. When its newest id is below our cursor
   * the ids started again (it restarted, or the lab reset its hub): say that.
   */
  reset(info) {
    // Streams open before the server says "reset": a "resumed" just before it was wrong.
    if (this.resumed) this.resumed.remove();
    this.resumed = null;
    this.catchUp = null;
    if (this.outage) this.outage.reset = true;
    const restarted = info.cursor !== null && typeof info.lastId === 'number' && info.lastId < info.cursor;
    const item = this.notice(restarted ? 'notice.restarted' : 'notice.reset', { cursor: info.cursor ?? '–', lastId: info.lastId });
    item.classList.add('notice-reset');
    this.shown.clear();
    this.newest = 0;
  }

  /** A notice in the message list, also read out by screen readers (aria-live). */
  notice(key, params) {
    const item = translate(document.createElement('li'), key, params);
    item.className = `notice notice-${key.split('.')[1]}`;
    this.append(item);
    translate(this.announcer, key, params);
    return item;
  }

  append(item) {
    const list = this.list;
    list.append(item);
    while (list.children.length > KEEP_ON_SCREEN) list.firstElementChild.remove();
    if (this.follow) list.scrollTop = list.scrollHeight;
  }

  /**
   * One wire-log row: time, direction, size, a one-line summary, and for what the
   * server's wire tap saw the full bytes behind a disclosure (see wire-tap.js).
   */
  addWire(entry) {
    const row = document.createElement('tr');
    row.className = `wire-${entry.dir} wire-${entry.source ?? 'page'}`;
    if (entry.kind) row.dataset.kind = entry.kind;
    const time = new Date(entry.at);
    const arrows = { out: '→', in: '←', page: '•' };
    const cells = [
      `${time.toLocaleTimeString('en-GB', { hour12: false })}.${String(time.getMilliseconds()).padStart(3, '0')}`,
      arrows[entry.dir] ?? '',
      entry.size ? formatBytes(entry.size) : '',
    ];
    for (const value of cells) {
      const cell = document.createElement('td');
      cell.textContent = value;
      row.append(cell);
    }
    const what = document.createElement('td');
    if (entry.detail) {
      // Native disclosure: keyboard and screen readers handle it as a button.
      const details = document.createElement('details');
      const summary = document.createElement('summary');
      summary.textContent = entry.summary;
      const bytes = document.createElement('pre');
      bytes.className = 'wire-bytes';
      bytes.textContent = entry.detail;
      details.append(summary, bytes);
      what.append(details);
    } else if (entry.key) {
      translate(what, entry.key, entry.params); // what only the page saw, in the page's language
    } else {
      what.textContent = entry.summary;
    }
    row.append(what);
    // Newest first, by time: the tap's rows arrive up to a second after the page's own.
    row.dataset.at = String(entry.at);
    const older = [...this.wireBody.children].find((other) => Number(other.dataset.at) <= entry.at);
    if (older) older.before(row);
    else this.wireBody.append(row);
    while (this.wireBody.children.length > 100) this.wireBody.lastElementChild.remove();
  }

  /** Empty the pane for another room: its messages, ids and wire log are another chat's. */
  clear() {
    this.list.replaceChildren();
    this.wireBody.replaceChildren();
    this.shown.clear();
    this.newest = 0;
    this.latencies = [];
    this.lastLatency = null;
  }

  /** Redraw from a model another tab sent (see connections.js). */
  load(pane) {
    for (const message of pane.messages) this.addMessage(message, false);
    this.wireBody.replaceChildren();
    for (const entry of pane.wire) this.addWire(entry);
    this.setCursor(pane.cursor);
    this.setCounters(pane.counters);
    this.state = pane.state;
    this.root.dataset.state = pane.state;
    this.renderState();
  }

  focus(on) {
    this.root.classList.toggle('focused', on);
    this.root.querySelector('.wire').hidden = !on;
    this.root.querySelector('.explain').hidden = !on;
    // Shown again, or resized: a following list scrolls to the newest message.
    if (this.follow) this.list.scrollTop = this.list.scrollHeight;
  }
}
