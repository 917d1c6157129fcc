// The wire tap, page side: the real bytes of this page's own connections.
//
// A page cannot see what its requests look like on the wire: fetch hides the
// request and response headers' bytes, EventSource hides the stream's framing,
// keep-alive comments and retry:, WebSocket hides frames, masking and pings.
// The server sees all of it, so it can show it back (src/tap/): the page picks
// a random id, opens its tap with GET /api/tap/<id>, adds tap=<id> to every
// request it makes, and reads what the server saw with
//   GET /api/tap/<id>?since=<last row>
// once a second. Nobody else can read it: the id is 128 random bits that only
// this page knows. When the server has the tap off (--wire-tap off), the wire
// log keeps showing what the page itself can see.

import { formatBytes } from './pane.js';
import { t } from './i18n.js';

const READ_EVERY_MS = 1000;

/** 128 random bits as 32 hex digits (crypto.randomUUID needs https or localhost). */
function randomTapId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

export class WireTap {
  constructor() {
    this.id = randomTapId();
    this.since = 0;
    this.live = false; // the server answered: its rows replace the page's own summaries
    this.timer = null;
    this.stopped = false;
  }

  /** Opens the tap; resolves true when the server records for it. */
  async open() {
    try {
      const response = await fetch(`/api/tap/${this.id}`, { cache: 'no-store' });
      this.live = response.ok;
    } catch {
      this.live = false;
    }
    return this.live;
  }

  /** Reads new rows every second and hands each to `onRow(row)`. */
  follow(onRow) {
    const read = async () => {
      try {
        const response = await fetch(`/api/tap/${this.id}?since=${this.since}`, { cache: 'no-store' });
        if (response.ok) {
          const answer = await response.json();
          if (answer.missed > 0) onRow({ kind: 'missed', route: 'all', missed: answer.missed, at: Date.now() });
          for (const row of answer.rows) onRow(row);
          this.since = answer.next;
        }
      } catch {
        // The server is away; the panes say so, and the next read catches up.
      }
      if (!this.stopped) this.timer = setTimeout(read, READ_EVERY_MS);
    };
    read();
  }

  /** Stops reading (the connections it taps are closed); the server forgets it. */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

/** Hides the tap id in URLs shown on screen: it is long, and it is this page's secret. */
export function hideTapId(text) {
  return text.replace(/tap=[0-9A-Za-z_-]+/g, 'tap=…');
}

/** A row the server saw, as a wire-log entry: a one-line summary and the full bytes. */
export function entryFromRow(row) {
  if (row.kind === 'missed') {
    return { at: row.at, dir: 'in', size: 0, source: 'wire', summary: t('wire.missed', { n: row.missed }) };
  }
  let summary = hideTapId(row.summary);
  if (row.kind === 'response' && row.after_ms !== undefined) {
    summary += `  ${t(row.route === 'long_poll' ? 'wire.held' : 'wire.after', { ms: row.after_ms })}`;
  }
  return {
    at: row.at,
    dir: row.from === 'client' ? 'out' : 'in',
    size: row.bytes,
    source: 'wire',
    kind: row.kind,
    summary: `${label(row)}${summary}`,
    detail: detail(row),
  };
}

/** What kind of thing a row is, where its summary does not say. */
const PREFIX = { body: 'body · ', chunk: 'chunk · ', frame: 'frame · ', 'h2-frame': 'HTTP/2 · ', bytes: 'bytes · ' };

function label(row) {
  return PREFIX[row.kind] ?? '';
}

/** The full bytes of a row, as lines of text. */
function detail(row) {
  const lines = [];
  if (row.frame) {
    const f = row.frame;
    lines.push(`header  ${row.head}`);
    lines.push(
      `FIN ${Number(f.fin)} · RSV ${f.rsv.map(Number).join('')} · opcode 0x${f.opcode.toString(16)} (${f.opcode_name})` +
        ` · MASK ${Number(f.masked)} · length ${f.payload_length} (${f.length_form} form)` +
        (f.masking_key ? ` · masking key ${f.masking_key}` : ''),
    );
    if (f.close_code !== undefined) lines.push(`close code ${f.close_code}: ${f.close_meaning}`);
    lines.push(`${f.masked ? 'payload, unmasked' : 'payload'} (${formatBytes(f.payload_length)}):`);
  } else if (row.head) {
    lines.push(`${row.kind === 'h2-frame' ? 'frame header' : 'chunk length line'}  ${row.head}`);
  }
  if (row.text) lines.push(hideTapId(row.text));
  return lines.join('\n');
}
