// WebSocket: one connection, messages both ways.
//
// How it works: the browser sends one HTTP request,
//   GET /api/rooms/<room>/ws?since=<cursor>   (Upgrade: websocket)
// the server answers `101 Switching Protocols`, and from then on the TCP
// connection carries WebSocket frames instead of HTTP. The server pushes
//   {"type":"message","message":{…}}
// (or {"type":"reset","last_id":N} first, if our cursor cannot be honoured),
// and the browser can send on the same connection:
//   {"type":"send","author":"alice","text":"hi"}
// A bad frame gets {"type":"error","error":"…"} and the socket stays open.
//
// What it costs: one long-lived connection per client (browsers do not count
// it against the 6 HTTP connections per origin), 2–14 bytes of framing per
// message, and no request per message. It is the only one of the four where
// the browser sends without a new request. Unlike EventSource it does not
// reconnect or resume by itself: this module does both, from the cursor.

import { Transport, byteLength } from './transport.js';

export class WebSocketTransport extends Transport {
  static kind = 'websocket';
  static push = true;

  constructor(options = {}) {
    super(options);
    this.socket = null;
  }

  open(epoch) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const path = `${this.path('ws')}?${this.query()}`;
    const socket = new WebSocket(`${scheme}//${location.host}${path}`);
    this.socket = socket;
    this.counters.requests++; // the upgrade request
    this.wire('out', 0, `GET ${path}  (Upgrade: websocket)`);

    socket.onopen = () => {
      if (epoch !== this.epoch) return;
      this.wire('in', 0, '101 Switching Protocols');
      this.setState('connected', { cursor: this.cursor });
    };
    socket.onmessage = (event) => {
      if (epoch !== this.epoch) return;
      const size = byteLength(event.data);
      this.counters.bytes += size;
      const frame = JSON.parse(event.data);
      if (frame.type === 'message') {
        this.wire('in', size, `frame {"type":"message"}  id: ${frame.message.id}`);
        this.deliver(frame.message);
      } else if (frame.type === 'reset') {
        this.wire('in', size, `frame {"type":"reset","last_id":${frame.last_id}}`);
        this.reset(frame.last_id);
      } else if (frame.type === 'error') {
        this.wire('in', size, `frame {"type":"error"}  ${frame.error}`);
        this.emit('error', frame.error);
      }
    };
    socket.onclose = (event) => {
      if (epoch !== this.epoch) return;
      this.event(event.wasClean ? 'wsClosed' : 'wsCut', { code: event.code, reason: event.reason });
      this.retryLater(epoch, { reason: 'closed', code: event.code });
    };
  }

  /** Send a chat message on this connection; false if it is not open. */
  send(author, text) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    const frame = JSON.stringify({ type: 'send', author, text });
    this.socket.send(frame);
    this.wire('out', byteLength(frame), 'frame {"type":"send"}');
    return true;
  }

  close() {
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close();
    }
  }
}
