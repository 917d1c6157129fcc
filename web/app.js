// The demo page: a pane per transport, one composer, the views around them.
//
// Reading order for the curious: web/transports/*.js (one technique each,
// listed in transports/index.js),
// connections.js (one set of connections shared by all tabs), pane.js (how a
// pane draws), then this file, which only wires them together.

import { Connections } from './connections.js';
import { KINDS, transportOf } from './transports/index.js';
import { roomPath } from './transports/transport.js';
import { PaneView, formatBytes } from './pane.js';
import { setupLab } from './lab.js';
import { apply, initialLanguage, language, onLanguageChange, setLanguage, t, translate } from './i18n.js';

const openedAt = Date.now();
const $ = (selector) => document.querySelector(selector);

// ---- who we are -----------------------------------------------------------

function stored(key, make) {
  let value = null;
  try {
    value = localStorage.getItem(key);
    if (!value) {
      value = make();
      localStorage.setItem(key, value);
    }
  } catch {
    value = make(); // storage disabled: fine, just not remembered
  }
  return value;
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return Array.from(bytes, (b) => 'abcdefghijklmnopqrstuvwxyz0123456789'[b % 36]).join('');
}

// One presence id per browser: all its tabs share one set of connections.
const client = stored('pushlab.client', randomId);
let author = stored('pushlab.author', () => `guest-${Math.floor(100 + Math.random() * 900)}`);

// ---- room -----------------------------------------------------------------

// Each room is its own chat. The page starts in ?room=… (or the lobby).
const ROOM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const asked = new URLSearchParams(location.search).get('room');
let room = asked && ROOM_NAME.test(asked) ? asked : 'lobby';

// ---- language -------------------------------------------------------------

let savedLanguage = null;
try {
  savedLanguage = localStorage.getItem('pushlab.lang');
} catch {}
setLanguage(initialLanguage(savedLanguage, navigator.languages ?? [navigator.language]));
$('#lang').addEventListener('click', () => {
  const next = language() === 'en' ? 'zh' : 'en';
  try {
    localStorage.setItem('pushlab.lang', next);
  } catch {}
  setLanguage(next);
});

// ---- panes ----------------------------------------------------------------

// A tab per technique, between "Side by side" and "Compare".
for (const kind of KINDS) {
  const tab = document.createElement('button');
  Object.assign(tab, { type: 'button', id: `tab-${kind}`, tabIndex: -1 });
  tab.setAttribute('role', 'tab');
  tab.setAttribute('aria-controls', 'view-panes');
  tab.setAttribute('aria-selected', 'false');
  tab.dataset.view = kind;
  tab.dataset.i18n = `name.${kind}`;
  $('#tab-compare').before(tab);
}

const connections = new Connections({ client, name: author, room });
const panes = {};
const template = $('#pane-template');
for (const kind of KINDS) {
  const root = template.content.firstElementChild.cloneNode(true);
  $('#view-panes').append(root);
  panes[kind] = new PaneView(root, kind, {
    drop: () => connections.drop(kind),
    toggle: () => (panes[kind].state === 'disconnected' ? connections.connect(kind) : connections.disconnect(kind)),
    interval: (ms) => connections.setPollInterval(ms),
  }, openedAt);
}
apply(document);
onLanguageChange(() => {
  for (const pane of Object.values(panes)) pane.relabel();
  renderCompare();
  renderOnline(connections.model.presence);
});

// Every event from a transport carries its counters and cursor.
function forPane(event) {
  const pane = panes[event.kind];
  if (event.counters) pane.setCounters(event.counters);
  if (event.cursor !== undefined) pane.setCursor(event.cursor);
  return pane;
}
connections.on('message', (event) => forPane(event).addMessage(event.message));
connections.on('status', (event) => {
  forPane(event).setState(event.state, event.detail);
  renderOnline(connections.model.presence);
});
connections.on('reset', (event) => forPane(event).reset(event.info));
connections.on('wire', (event) => forPane(event).addWire(event.entry));
connections.on('counters', (event) => forPane(event));
connections.on('interval', (event) => {
  for (const pane of Object.values(panes)) pane.setInterval(event.ms);
});
connections.on('send-error', (event) => {
  forPane(event);
  showStatus(event.error === 'not-connected' ? NOT_CONNECTED[event.kind] : 'composer.error', { error: event.error }, true);
});
connections.on('server', (event) => {
  renderOnline(event.presence);
  renderCarriers(event.presence);
  renderServerFigures();
});
connections.on('snapshot', (model) => {
  for (const kind of KINDS) panes[kind].load(model.panes[kind]);
  for (const pane of Object.values(panes)) pane.setInterval(model.interval);
  renderOnline(model.presence);
});
// Another room: every pane starts over with that room's chat.
connections.on('room', (model) => {
  for (const kind of KINDS) {
    panes[kind].clear();
    panes[kind].load(model.panes[kind]);
  }
  renderOnline(model.presence);
  renderCarriers(model.presence);
});
connections.on('role', (role) => {
  const badge = $('#role');
  badge.dataset.role = role;
  translate(badge, `role.${role}`);
});

// ---- composer -------------------------------------------------------------

const authorInput = $('#composer-author');
const textInput = $('#composer-text');
authorInput.value = author;
authorInput.addEventListener('change', () => {
  author = authorInput.value.trim() || author;
  try {
    localStorage.setItem('pushlab.author', author);
  } catch {}
  connections.setName(author);
  renderOnline(connections.model.presence);
});

/** The transports the composer can send over besides HTTP, and what it says. */
const SENT = { websocket: 'composer.sentWs', webtransport: 'composer.sentWt' };
const NOT_CONNECTED = { websocket: 'composer.noSocket', webtransport: 'composer.noSession' };

function showStatus(key, params, isError = false) {
  const status = $('#composer-status');
  translate(status, key, params);
  status.classList.toggle('error', isError);
}

$('#composer').addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = textInput.value;
  const name = authorInput.value.trim();
  if (!text || !name) return;
  const via = new FormData(event.target).get('via');
  if (via in NOT_CONNECTED) {
    // Sent on the pane's own connection; the message comes back like everyone else's.
    if (connections.model.panes[via].state !== 'connected') {
      showStatus(NOT_CONNECTED[via], {}, true);
      return;
    }
    connections.sendOver(via, name, text);
    showStatus(SENT[via], {});
    textInput.value = '';
    return;
  }
  try {
    const response = await fetch(`${roomPath(room, 'messages')}${connections.postQuery()}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ author: name, text }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      showStatus('composer.sent', { id: body.id, via: 'HTTP POST' });
      textInput.value = '';
    } else {
      showStatus('composer.error', { error: body.error ?? `HTTP ${response.status}` }, true);
    }
  } catch {
    showStatus('composer.network', {}, true);
  }
});

// ---- room field -----------------------------------------------------------

const roomInput = $('#room');
roomInput.value = room;
$('#room-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const next = roomInput.value.trim();
  if (!ROOM_NAME.test(next)) {
    showStatus('room.invalid', {}, true);
    return;
  }
  if (next === room) return;
  room = next;
  const query = room === 'lobby' ? '' : `?room=${encodeURIComponent(room)}`;
  history.replaceState(null, '', `${location.pathname}${query}${location.hash}`);
  connections.switchRoom(room);
  showStatus('room.now', { room });
});

// ---- views (tabs) ---------------------------------------------------------

const tabs = [...document.querySelectorAll('[role="tab"]')];

function selectView(view, moveFocus = false) {
  if (!tabs.some((tab) => tab.dataset.view === view)) view = 'side';
  for (const tab of tabs) {
    const selected = tab.dataset.view === view;
    tab.setAttribute('aria-selected', String(selected));
    tab.tabIndex = selected ? 0 : -1;
    if (selected && moveFocus) tab.focus();
    // On a phone the tab list scrolls sideways: keep the selected tab in view.
    if (selected) tab.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }
  const panesView = $('#view-panes');
  panesView.hidden = view === 'compare';
  panesView.dataset.view = view;
  panesView.setAttribute('aria-labelledby', `tab-${view === 'compare' ? 'side' : view}`);
  $('#view-compare').hidden = view !== 'compare';
  // Show and hide every pane first, then lay each out: a pane scrolled to its newest
  // message while the others were still hidden would be measured at the wrong width.
  for (const kind of KINDS) panes[kind].root.hidden = view !== 'side' && view !== kind;
  for (const kind of KINDS) panes[kind].focus(view === kind);
  if (view === 'compare') renderCompare();
  const address = `${location.pathname}${location.search}${view === 'side' ? '' : `#${view}`}`;
  if (location.hash !== `#${view}`) history.replaceState(null, '', address);
}

for (const tab of tabs) {
  tab.addEventListener('click', () => selectView(tab.dataset.view));
  tab.addEventListener('keydown', (event) => {
    const i = tabs.indexOf(tab);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    selectView(tabs[(next + tabs.length) % tabs.length].dataset.view, true);
  });
}
window.addEventListener('hashchange', () => selectView(location.hash.slice(1)));
selectView(location.hash.slice(1));

// ---- compare --------------------------------------------------------------

function cell(row, text, header = false) {
  const element = document.createElement(header ? 'th' : 'td');
  if (header) element.scope = 'row';
  element.textContent = text;
  row.append(element);
  return element;
}

function renderCompare() {
  const body = $('#compare-table tbody');
  body.replaceChildren();
  for (const kind of KINDS) {
    const row = document.createElement('tr');
    cell(row, t(`name.${kind}`), true);
    for (const column of ['protocol', 'sender', 'latency', 'cost', 'strengths', 'weaknesses']) {
      cell(row, t(`cmp.${kind}.${column}`));
    }
    body.append(row);
  }
  renderLive();
}

function ratio(a, b, digits = 1) {
  return b > 0 ? (a / b).toFixed(digits) : '–';
}

function renderLive() {
  if ($('#view-compare').hidden) return;
  const stats = connections.model.stats;
  const body = $('#live-table tbody');
  body.replaceChildren();
  for (const kind of KINDS) {
    const pane = panes[kind];
    const c = pane.counters;
    const stream = transportOf(kind).push;
    const server = stats?.transports?.[kind] ?? {};
    const row = document.createElement('tr');
    row.dataset.transport = kind;
    cell(row, t(`name.${kind}`), true);
    cell(row, String(c.requests));
    cell(row, stream ? t('meter.na') : String(c.empty));
    cell(row, formatBytes(c.bytes));
    cell(row, String(c.messages));
    cell(row, ratio(c.bytes, c.messages, 0));
    // The honest cost: every byte both ways, headers and framing included, as the
    // server's wire tap counted this page's connections; without the tap, the
    // server's bytes per delivery for all clients.
    const tapped = c.wire > 0;
    cell(row, tapped ? formatBytes(c.wire) : '–');
    const perMessage = tapped ? ratio(c.wire, c.messages, 0) : ratio(server.bytes_sent ?? 0, server.delivered ?? 0, 0);
    cell(row, perMessage).dataset.source = tapped ? 'tap' : 'server';
    cell(row, ratio(c.requests, c.messages, 2));
    const median = pane.median();
    cell(row, median === null ? '–' : `${median} ms`);
    for (const key of ['open', 'requests', 'delivered', 'bytes_sent']) {
      const value = server[key];
      cell(row, value === undefined ? '–' : key === 'bytes_sent' ? formatBytes(value) : String(value));
    }
    body.append(row);
  }
  renderServerFigures();
}

function renderServerFigures() {
  const hub = connections.model.stats?.hub;
  const line = $('#hub-line');
  if (hub) translate(line, 'live.hub', { lastId: hub.last_id, retained: hub.retained });
  else translate(line, 'live.noStats');
}

setInterval(renderLive, 1000);

// ---- which connections carry this page ------------------------------------

// The browser does not tell a page which connection a request used, but the server
// knows: /api/presence names, for each of this browser's transports, the HTTP
// version and the number of the TCP connection its latest request came on. Over
// HTTP/1.1 that is a connection per held stream; over HTTP/2, one for everything.
function renderCarriers(presence) {
  const mine = (presence?.clients ?? []).filter((seat) => seat.client === client);
  // The automatic client has no seat of its own: it is seated as the technique it is on.
  const seatOf = (kind) => (kind === 'auto' ? panes.auto.via : kind);
  for (const kind of KINDS) panes[kind].setCarrier(mine.find((seat) => seat.transport === seatOf(kind)) ?? null);
  const summary = $('#carriers');
  summary.hidden = mine.length === 0;
  if (mine.length === 0) return;
  const connections = new Set(mine.map((seat) => seat.connection)).size;
  const http = [...new Set(mine.map((seat) => seat.http))].sort().join(' + ');
  summary.dataset.connections = String(connections);
  summary.dataset.http = http;
  translate(summary, connections === 1 ? 'carriers.one' : 'carriers.many', { connections, http });
}

// ---- who is online --------------------------------------------------------

function renderOnline(presence) {
  const list = $('#online-list');
  list.replaceChildren();
  const byClient = new Map();
  for (const entry of presence?.clients ?? []) {
    if (!byClient.has(entry.client)) byClient.set(entry.client, { name: entry.name, transports: [] });
    const person = byClient.get(entry.client);
    // A poller reports its name on every request, a stream only when it connects:
    // after a rename the pollers' name is the current one.
    if (!transportOf(entry.transport)?.push && entry.name) person.name = entry.name;
    person.name ||= entry.name;
    person.transports.push(entry.transport);
  }
  // This browser: its own name is the one in the composer, and it is online as soon
  // as one of its transports is connected, before the server's list says so.
  const connected = KINDS.filter((kind) => panes[kind].state === 'connected');
  if (connected.length > 0 && !byClient.has(client)) byClient.set(client, { name: author, transports: connected });
  if (byClient.has(client)) byClient.get(client).name = author;
  if (byClient.size === 0) {
    list.append(translate(document.createElement('li'), 'online.empty'));
    return;
  }
  for (const [id, person] of byClient) {
    const item = document.createElement('li');
    item.dataset.client = id;
    const name = document.createElement('span');
    name.className = 'online-name';
    name.textContent = person.name || id;
    item.append(name);
    if (id === client) item.append(' ', translate(document.createElement('span'), 'online.you'));
    const kinds = document.createElement('span');
    kinds.className = 'online-transports';
    for (const kind of KINDS.filter((k) => person.transports.includes(k))) {
      const badge = translate(document.createElement('span'), `name.${kind}`);
      badge.className = `badge badge-${kind}`;
      kinds.append(badge);
    }
    item.append(kinds);
    list.append(item);
  }
}
renderOnline(null);

// ---- fault lab ------------------------------------------------------------

setupLab(connections);

// ---- go -------------------------------------------------------------------

connections.start();
