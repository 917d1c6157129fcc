// WebTransport: a session over HTTP/3, so over QUIC, so over UDP.
//
// How it works: the server listens for QUIC on UDP at the same port number as
// the page. The browser opens a session with one request,
//   CONNECT https://<host>:<port>/api/rooms/<room>/webtransport?since=<cursor>
// and inside it the server opens one stream that stays open for the whole
// session, carrying one JSON line per message, the same frames as WebSocket:
//   {"type":"message","message":{…}}\n
// (or {"type":"reset","last_id":N}\n first, if our cursor cannot be honoured).
// The server's last line says why it ends the session:
//   {"type":"close","code":1001,"reason":"server shutting down"}\n
// Sending is a bidirectional stream per message, answered on that stream:
//   → {"type":"send","author":"alice","text":"hi"}  then the end of the stream
//   ← {"type":"message","message":{…}}  (or {"type":"error","error":"…"})
//
// QUIC always encrypts, so even on 127.0.0.1 the server needs a certificate. A
// development server makes its own (ECDSA, valid at most 14 days) and we trust
// exactly that one by its SHA-256 hash (`serverCertificateHashes`), which we
// ask the server for each time we connect: it renews the certificate weekly.
//
// What it costs: a UDP path (proxies and firewalls often lack one), QUIC's
// packet headers and ACKs, and a TLS handshake per session (1 RTT, TLS
// included). What it gives: streams that do not block each other, datagrams
// for what may be lost, and a connection that survives a change of network.
// Like WebSocket it does not resume by itself: this module does, from the cursor.

import { Transport, byteLength } from './transport.js';

const encoder = new TextEncoder();

export class WebTransportTransport extends Transport {
  static kind = 'webtransport';
  static push = true;
  // The wire tap sits on the server's TCP connections; QUIC's packets are
  // encrypted and decrypted inside the QUIC stack, where it cannot look. So the
  // wire log shows what this page sees.
  static tapped = false;

  constructor(options = {}) {
    super(options);
    this.session = null;
  }

  async open(epoch) {
    // Only in a secure context (https, or http://localhost / 127.0.0.1).
    if (typeof WebTransport === 'undefined') {
      return this.unavailable(window.isSecureContext ? 'notice.webtransport.browser' : 'notice.webtransport.insecure');
    }
    let info;
    try {
      const response = await fetch('/api/webtransport/certificate-hash', { cache: 'no-store' });
      if (response.status === 404) return this.unavailable('notice.webtransport.server');
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      info = await response.json();
    } catch (error) {
      return this.retryLater(epoch, error);
    }
    if (epoch !== this.epoch) return;

    // The address the QUIC socket listens on: `localhost` could resolve to ::1
    // while the socket is bound to 127.0.0.1 (or the other way round).
    const host = info.host === null ? location.hostname : info.host.includes(':') ? `[${info.host}]` : info.host;
    const port = location.port || (location.protocol === 'https:' ? '443' : '80');
    const path = `${this.path('webtransport')}?${this.query()}`;
    const hash = Uint8Array.from(info.hash.value.match(/../g), (byte) => parseInt(byte, 16));
    let session;
    try {
      session = new WebTransport(`https://${host}:${port}${path}`, {
        serverCertificateHashes: [{ algorithm: info.hash.algorithm, value: hash }],
      });
    } catch (error) {
      return this.retryLater(epoch, error);
    }
    this.session = session;
    this.counters.requests++; // the CONNECT request
    this.wire('out', 0, `CONNECT ${path}  (HTTP/3 over QUIC, UDP ${host}:${port})`);
    session.closed.then(
      () => this.retryLater(epoch, { reason: 'sessionClosed' }),
      (error) => this.retryLater(epoch, error),
    );

    try {
      await session.ready;
      if (epoch !== this.epoch) return;
      this.wire('in', 0, '200 (session open)');
      this.setState('connected', { cursor: this.cursor });
      const { value: stream } = await session.incomingUnidirectionalStreams.getReader().read();
      await this.readLines(epoch, stream.pipeThrough(new TextDecoderStream()));
    } catch (error) {
      this.retryLater(epoch, error);
    }
  }

  /** One frame per line; a line may arrive in pieces, or several in one chunk. */
  async readLines(epoch, text) {
    let pending = '';
    for await (const chunk of text) {
      if (epoch !== this.epoch) return;
      pending += chunk;
      let end;
      while ((end = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 1);
        this.receive(epoch, line);
      }
    }
  }

  receive(epoch, line) {
    const size = byteLength(line) + 1;
    this.counters.bytes += size;
    const frame = JSON.parse(line);
    if (frame.type === 'message') {
      this.wire('in', size, `line {"type":"message"}  id: ${frame.message.id}`);
      this.deliver(frame.message);
    } else if (frame.type === 'reset') {
      this.wire('in', size, `line {"type":"reset","last_id":${frame.last_id}}`);
      this.reset(frame.last_id);
    } else if (frame.type === 'close') {
      this.wire('in', size, `line {"type":"close"}  ${frame.code} ${frame.reason}`);
      this.retryLater(epoch, { reason: 'closed', code: frame.code });
    }
  }

  /**
   * Send a chat message on a new stream of this session; false if it is not
   * open. The message itself comes back on the session's long stream like
   * everyone else's; the reply on its own stream says only what became of it.
   */
  send(author, text) {
    if (!this.session || this.state !== 'connected') return false;
    const frame = JSON.stringify({ type: 'send', author, text });
    this.sendOnStream(this.session, frame).catch((error) => this.emit('error', String(error?.message ?? error)));
    return true;
  }

  async sendOnStream(session, frame) {
    const stream = await session.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    await writer.write(encoder.encode(frame));
    await writer.close(); // the end of the stream ends the frame
    this.wire('out', byteLength(frame), 'stream {"type":"send"}');
    const reply = await new Response(stream.readable).text();
    const answer = JSON.parse(reply);
    if (answer.type === 'error') {
      this.wire('in', byteLength(reply), `stream reply {"type":"error"}  ${answer.error}`);
      this.emit('error', answer.error);
    } else {
      this.wire('in', byteLength(reply), `stream reply {"type":"message"}  id: ${answer.message.id}`);
    }
  }

  /** Why this pane cannot work here: said once, and no retrying. */
  unavailable(reason) {
    this.running = false;
    this.wire('in', 0, 'WebTransport unavailable');
    this.setState('disconnected', { unavailable: reason });
  }

  close() {
    const session = this.session;
    this.session = null;
    try {
      session?.close();
    } catch {}
  }
}
