// Server-Sent Events: one response that never ends.
//
// How it works: the browser's EventSource sends one request,
//   GET /api/rooms/<room>/events?since=<cursor>
// and the server answers with `Content-Type: text/event-stream` and keeps the
// response open, writing each message as a small text block:
//   id: 42
//   event: message
//   data: {"id":42,"author":"alice",…}
// If the connection breaks, EventSource reconnects by itself and sends the
// last `id:` it saw in a `Last-Event-ID` header, so the server resumes from
// there: resume-from-cursor is built into the protocol. If the cursor cannot
// be honoured the server sends `event: reset` first.
//
// What it costs: one long-lived HTTP connection per client (it counts against
// the browser's 6-per-origin limit over HTTP/1.1) and a few bytes of framing
// per message; no request per message. It is one-way: the browser still sends
// with an ordinary POST. Text only, and it passes through most proxies as long
// as they do not buffer (the server sends `X-Accel-Buffering: no`).

import { Transport, byteLength } from './transport.js';

export class Sse extends Transport {
  static kind = 'sse';
  static push = true;

  constructor(options = {}) {
    super(options);
    this.source = null;
  }

  open(epoch) {
    const url = `${this.path('events')}?${this.query()}`;
    const source = new EventSource(url);
    this.source = source;
    this.counters.requests++;
    this.wire('out', 0, `GET ${url}  (Accept: text/event-stream)`);

    source.onopen = () => {
      if (epoch !== this.epoch) return;
      this.wire('in', 0, '200 text/event-stream (response stays open)');
      this.setState('connected', { cursor: this.cursor });
    };
    // We count the `data:` payload only; the id:/event: framing is a few dozen
    // bytes per event more, and response headers are not counted at all.
    source.addEventListener('message', (event) => {
      if (epoch !== this.epoch) return;
      this.counters.bytes += byteLength(event.data);
      const message = JSON.parse(event.data);
      this.wire('in', byteLength(event.data), `event: message  id: ${event.lastEventId}`);
      this.deliver(message);
    });
    source.addEventListener('reset', (event) => {
      if (epoch !== this.epoch) return;
      this.counters.bytes += byteLength(event.data);
      this.wire('in', byteLength(event.data), `event: reset  data: ${event.data}`);
      this.reset(JSON.parse(event.data).last_id);
    });
    source.onerror = () => {
      if (epoch !== this.epoch) return;
      if (source.readyState === EventSource.CONNECTING) {
        // The browser is already reconnecting, with Last-Event-ID: let it.
        this.counters.requests++;
        this.event('sseEnded', { cursor: this.cursor ?? '–' });
        this.setState('reconnecting', { cursor: this.cursor, error: { reason: 'streamEnded' } });
      } else {
        // CLOSED: the server refused (an HTTP error status, which EventSource does
        // not tell us); EventSource gives up for good, so we try again ourselves.
        this.retryLater(epoch, { reason: 'refused' });
      }
    };
  }

  close() {
    this.source?.close();
    this.source = null;
  }
}
