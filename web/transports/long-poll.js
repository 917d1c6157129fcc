// Long polling: ask, and let the server wait before it answers.
//
// How it works: the browser sends
//   GET /api/rooms/<room>/messages/long-poll?since=<cursor>&timeout=25
// If something newer than the cursor exists the server answers at once;
// otherwise it *holds* the request open until a message is published (then
// answers within milliseconds) or the timeout passes (then answers with
// "messages": []). Either way the browser asks again straight away with the
// new cursor, so there is almost always one request waiting on the server.
//
// What it costs: one request and response per message burst (plus one per
// timeout when nothing happens), and one HTTP connection held open per client
// all the time: in the browser it counts against the 6-per-origin limit, on
// the server it is a parked request. Latency is close to real time, but
// between the answer and the next request there is a short blind spot; the
// cursor makes sure nothing published then is lost, it just waits for the
// next request.

import { Transport, fetchJson } from './transport.js';

const HOLD_SECONDS = 25; // below the server's 30 s maximum and common proxy timeouts

export class LongPoll extends Transport {
  static kind = 'long_poll';

  constructor(options = {}) {
    super(options);
    this.inflight = null;
  }

  open(epoch) {
    // The first request does not wait (timeout=0): it fetches the backlog and a
    // cursor, so the pane shows "connected" even when the chat is quiet.
    this.loop(epoch, 0);
  }

  async loop(epoch, timeout) {
    while (epoch === this.epoch && this.running) {
      this.inflight = new AbortController();
      let page;
      try {
        const url = `${this.path('messages/long-poll')}?${this.query({ timeout })}`;
        page = await fetchJson(this, url, this.inflight.signal);
      } catch (error) {
        if (epoch === this.epoch) this.retryLater(epoch, error);
        return;
      }
      if (epoch !== this.epoch) return;
      this.receivePage(page);
      if (this.state !== 'connected') this.setState('connected', { cursor: this.cursor });
      timeout = HOLD_SECONDS; // from now on, let the server hold the request
    }
  }

  close() {
    this.inflight?.abort();
    this.inflight = null;
  }
}
