// Short polling: ask again and again.
//
// How it works: every `interval` the browser sends an ordinary request,
//   GET /api/rooms/<room>/messages?since=<cursor>
// and the server answers at once with whatever is newer than the cursor,
// usually nothing: {"messages": [], "last_id": 41}. The answer's last_id is
// the cursor for the next request.
//
// What it costs: one full HTTP request and response (headers included, which
// fetch cannot count) per interval per client, whether or not anything
// happened; most answers are empty. Latency is up to one interval: a message
// waits on the server until the next poll comes by. Shorten the interval and
// latency falls while requests climb; lengthen it and the reverse. In return it
// is the simplest thing that works, through any proxy, on any server.

import { Transport, fetchJson } from './transport.js';

export class ShortPoll extends Transport {
  static kind = 'short_poll';
  static interval = true;

  constructor(options = {}) {
    super(options);
    this.interval = options.interval ?? 2000; // milliseconds between polls
    this.timer = null;
    this.inflight = null;
  }

  setInterval(ms) {
    this.interval = ms;
    // Apply it now rather than after the current (possibly 10 s) wait.
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.schedule(this.epoch);
    }
  }

  open(epoch) {
    this.poll(epoch);
  }

  async poll(epoch) {
    this.timer = null;
    this.inflight = new AbortController();
    try {
      const page = await fetchJson(this, `${this.path('messages')}?${this.query()}`, this.inflight.signal);
      if (epoch !== this.epoch) return; // dropped or disconnected meanwhile
      this.receivePage(page);
      if (this.state !== 'connected') this.setState('connected', { cursor: this.cursor });
      this.schedule(epoch);
    } catch (error) {
      if (epoch === this.epoch) this.retryLater(epoch, error, this.interval);
    }
  }

  schedule(epoch) {
    this.timer = setTimeout(() => {
      if (epoch === this.epoch && this.running) this.poll(epoch);
    }, this.interval);
  }

  close() {
    clearTimeout(this.timer);
    this.timer = null;
    this.inflight?.abort();
    this.inflight = null;
  }
}
