// Server-Sent Events as a browser really treats them: the reconnection delay
// with and without `retry:`, `Last-Event-ID` on reconnect, what a 204 or an
// HTTP error does (the EventSource closes for good), and that EventSource
// cannot send headers of its own. docs/sse.md quotes these measurements.
//
// Browser rules need server behaviour pushlab does not have on purpose (a
// stream that ends, a 204), so those are measured against a small node HTTP
// server below; pushlab's own 503 at its connection cap, and what pushlab's
// page does about it, are measured against pushlab.
//
// With UPDATE_MEASUREMENTS=1 the measured delays are written to
// docs/bench/browser-sse.json, the file the docs quote.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchBrowser, openPage, pane, repo, startServer } from '../lib/harness.js';

/**
 * A test-only SSE server. Each path is a scenario: `respond(req, res, n)` answers
 * the n-th request (1-based) to that path. Every request is recorded with its
 * arrival time and headers, and every response's end with its time.
 */
async function sseLab(scenarios) {
  const requests = {}; // path → [{ at, headers }]
  const ends = {}; // path → [at]
  const waiters = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://lab');
    const scenario = scenarios[url.pathname];
    if (!scenario) {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>sse lab</title>');
      return;
    }
    (requests[url.pathname] ??= []).push({ at: performance.now(), headers: req.headers });
    const n = requests[url.pathname].length;
    res.on('finish', () => (ends[url.pathname] ??= []).push(performance.now()));
    scenario(req, res, n);
    for (const waiter of [...waiters]) waiter();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    requests,
    ends,
    /** Resolves when `path` has had `n` requests (bounded). */
    waitRequests(path, n, timeout = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${path}: ${requests[path]?.length ?? 0} of ${n} requests`)), timeout);
        const check = () => {
          if ((requests[path]?.length ?? 0) >= n) {
            clearTimeout(timer);
            waiters.splice(waiters.indexOf(check), 1);
            resolve(requests[path]);
          }
        };
        waiters.push(check);
        check();
      });
    },
    /** Milliseconds from the end of each response to the next request's arrival. */
    delays(path) {
      const arrivals = requests[path].map((r) => r.at);
      return arrivals.slice(1).map((at, i) => Math.round(at - ends[path][i]));
    },
    close: () => new Promise((resolve) => server.close(resolve).closeAllConnections()),
  };
}

/** An event stream that sends `text` and ends (a proxy timeout, a deploy…). */
function streamThenEnd(text) {
  return (req, res) => {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      'access-control-allow-origin': '*',
    });
    res.end(text);
  };
}

/** Closes every EventSource the page opened. */
function closeSources(page) {
  return page.evaluate(() => {
    for (const source of window.sources ?? []) source.close();
    window.sources = [];
  });
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** In the page: open an EventSource; resolve with its readyState after its first `error`. */
function readyStateAfterError(page, url) {
  return page.evaluate(
    (url) =>
      new Promise((resolve) => {
        const source = new EventSource(url);
        window.sources = [...(window.sources ?? []), source];
        source.onerror = () => resolve(source.readyState);
      }),
    url,
  );
}

const measured = {};

describe('SSE in the browser', () => {
  let lab;
  let browser;
  let page;

  before(async () => {
    lab = await sseLab({
      '/no-retry': streamThenEnd('id: 1\ndata: no retry field\n\n'),
      '/retry-500': streamThenEnd('retry: 500\nid: 1\ndata: retry 500\n\n'),
      '/retry-1500': streamThenEnd('retry: 1500\nid: 1\ndata: retry 1500\n\n'),
      '/resume': (req, res, n) => streamThenEnd(`retry: 200\nid: ${n * 10}\ndata: event ${n * 10}\n\n`)(req, res),
      '/then-204': (req, res, n) =>
        n === 1 ? streamThenEnd('retry: 200\nid: 1\ndata: first\n\n')(req, res) : res.writeHead(204).end(),
      '/then-500': (req, res, n) =>
        n === 1 ? streamThenEnd('retry: 200\nid: 1\ndata: first\n\n')(req, res) : res.writeHead(500).end('no'),
      '/then-network-error': (req, res, n) =>
        n === 1 ? streamThenEnd('retry: 300\nid: 1\ndata: first\n\n')(req, res) : req.socket.destroy(),
      // A stream that ends every time, with a short retry: a clock made of
      // reconnections, to show that another EventSource *would* have
      // reconnected several times in the same span.
      '/clock': streamThenEnd('retry: 250\ndata: tick\n\n'),
      '/headers': streamThenEnd('retry: 60000\ndata: once\n\n'),
    });
    browser = await launchBrowser();
    measured.chromium = browser.version();
    page = await openPage(await browser.newContext(), lab.base);
  });

  after(async () => {
    await browser?.close();
    await lab?.close();
    if (process.env.UPDATE_MEASUREMENTS) {
      const out = path.join(repo, 'docs/bench/browser-sse.json');
      const note = 'cd e2e && UPDATE_MEASUREMENTS=1 node --test tests/sse-browser.test.js';
      await writeFile(out, `${JSON.stringify({ command: note, date: new Date().toISOString(), ...measured }, null, 2)}\n`);
    }
  });

  /** Opens an EventSource to `path` in the page, waits for `n` requests to it, closes it. */
  async function follow(path, n) {
    await page.evaluate((url) => {
      window.sources = [...(window.sources ?? []), new EventSource(url)];
    }, `${lab.base}${path}`);
    const requests = await lab.waitRequests(path, n);
    await closeSources(page);
    return requests;
  }

  /** `n` reconnections of a stream told retry: 250: a clock that runs only on browser events. */
  function clock(n) {
    return follow('/clock', (lab.requests['/clock']?.length ?? 0) + n);
  }

  it('reconnects 3 s after a stream ends when the server sent no retry:', async () => {
    await follow('/no-retry', 4);
    const delays = lab.delays('/no-retry');
    measured.no_retry_ms = delays;
    // The timer cannot fire early; under load it can fire late.
    for (const delay of delays) assert.ok(delay >= 2900 && delay < 6000, `delays ${delays}`);
  });

  it('reconnects after the delay a retry: field sets, shorter or longer', async () => {
    await follow('/retry-500', 5);
    await follow('/retry-1500', 3);
    measured.retry_500_ms = lab.delays('/retry-500');
    measured.retry_1500_ms = lab.delays('/retry-1500');
    for (const delay of measured.retry_500_ms) assert.ok(delay >= 450 && delay < 3000, `${measured.retry_500_ms}`);
    for (const delay of measured.retry_1500_ms) assert.ok(delay >= 1450 && delay < 4500, `${measured.retry_1500_ms}`);
    assert.ok(median(measured.retry_1500_ms) > median(measured.retry_500_ms) + 700);
  });

  it('sends the last id it saw as Last-Event-ID when it reconnects, and none on a new EventSource', async () => {
    const requests = await follow('/resume', 3);
    assert.equal(requests[0].headers['last-event-id'], undefined);
    assert.equal(requests[1].headers['last-event-id'], '10');
    assert.equal(requests[2].headers['last-event-id'], '20');
  });

  it('stops for good after a 204, and after an HTTP error status', async () => {
    for (const path of ['/then-204', '/then-500']) {
      // 2 = CLOSED: the browser will not try again.
      assert.equal(await readyStateAfterSecondResponse(path), 2, path);
    }
    // Proof by comparison: while another EventSource reconnects eight times
    // (every 250 ms), neither of those sends another request, although
    // they had been told retry: 200.
    await clock(8);
    assert.equal(lab.requests['/then-204'].length, 2);
    assert.equal(lab.requests['/then-500'].length, 2);
  });

  /** Follows `path`, whose second answer is not a 200 stream; resolves with the readyState then. */
  function readyStateAfterSecondResponse(path) {
    return page.evaluate(
      (url) =>
        new Promise((resolve) => {
          const source = new EventSource(url);
          window.sources = [...(window.sources ?? []), source];
          let errors = 0;
          source.onerror = () => {
            errors += 1;
            // The first error is the end of the first stream (readyState CONNECTING);
            // the second is the refused reconnection.
            if (errors === 2) resolve(source.readyState);
          };
        }),
      `${lab.base}${path}`,
    );
  }

  it('keeps reconnecting after a network error, at the same delay (no backoff)', async () => {
    await follow('/then-network-error', 6);
    const arrivals = lab.requests['/then-network-error'].map((r) => r.at);
    const gaps = arrivals.slice(2).map((at, i) => Math.round(at - arrivals[i + 1]));
    // A request that fails on a reused keep-alive connection is sent again at
    // once by Chromium's network stack, below EventSource: gaps of a few ms.
    // EventSource's own attempts are the rest.
    measured.network_stack_retries_ms = gaps.filter((gap) => gap < 100);
    const attempts = gaps.filter((gap) => gap >= 100);
    measured.retry_300_after_network_errors_ms = attempts;
    assert.ok(attempts.length >= 3, `${gaps}`);
    // retry: 300, and each failed attempt waits about as long as the first.
    for (const gap of attempts) assert.ok(gap >= 280 && gap < 2500, `${gaps}`);
    assert.ok(attempts.at(-1) < attempts[0] * 2 + 200, `no doubling: ${gaps}`);
  });

  it('cannot send a header of its own: the constructor takes only withCredentials', async () => {
    await page.evaluate((url) => {
      // A second argument with headers is accepted and ignored.
      window.sources = [...(window.sources ?? []), new EventSource(url, { headers: { 'X-Token': 'secret' } })];
    }, `${lab.base}/headers`);
    const [request] = await lab.waitRequests('/headers', 1);
    assert.equal(request.headers['x-token'], undefined);
    assert.equal(request.headers.accept, 'text/event-stream');
    assert.equal(request.headers['cache-control'], 'no-cache');
    measured.request_headers = Object.keys(request.headers);
  });

  it("closes for good on pushlab's 503 at its connection cap (a WebSocket sees only 1006)", async () => {
    const pushlab = await startServer(['--max-connections', '1']);
    const holder = new AbortController();
    try {
      // Someone else holds the one place.
      const held = await fetch(`${pushlab.base}/api/events`, { signal: holder.signal });
      assert.equal(held.status, 200);
      const other = await openPage(await browser.newContext(), `${pushlab.base}/healthz`);
      assert.equal(await readyStateAfterError(other, '/api/events'), 2);
      // No retry: came with the 503, so the browser's own 3 s would apply; while
      // the clock reconnects 16 times (every 250 ms, 4 s), no second request.
      await clock(16);
      const stats = await (await fetch(`${pushlab.base}/api/stats`)).json();
      assert.equal(stats.limits.refused_connections, 1);
      // A WebSocket refused the same way learns as little: `error`, then close 1006.
      const seen = await other.evaluate(
        () =>
          new Promise((resolve) => {
            const seen = [];
            const socket = new WebSocket(`ws://${location.host}/api/ws`);
            socket.onerror = () => seen.push('error');
            socket.onclose = (event) => resolve([...seen, `close ${event.code}`]);
          }),
      );
      assert.deepEqual(seen, ['error', 'close 1006']);
    } finally {
      holder.abort();
      await pushlab.stop();
    }
  });
});

describe("pushlab's page when the server is full", () => {
  let pushlab;
  let browser;
  const holders = [];

  before(async () => {
    // The page holds three connections (SSE, WebSocket, a long poll): cap at
    // three and take all three before it opens.
    pushlab = await startServer(['--max-connections', '3']);
    for (let i = 0; i < 3; i++) {
      const holder = new AbortController();
      const response = await fetch(`${pushlab.base}/api/events`, { signal: holder.signal });
      assert.equal(response.status, 200);
      holders.push(holder);
    }
    browser = await launchBrowser();
  });

  after(async () => {
    for (const holder of holders) holder.abort();
    await browser?.close();
    await pushlab?.stop();
  });

  it('retries the refused EventSource itself, shows the 503 EventSource hid, and connects once there is room', async () => {
    const page = await openPage(await browser.newContext({ locale: 'en-US' }), pushlab.base);
    const sse = pane(page, 'sse');
    // EventSource gave up (CLOSED); the page says so and tries again by itself, a
    // new EventSource from its cursor every 2 s (EventSource would not): two such
    // retries in the wire log, refused again while the server is still full.
    const retries = sse.locator('.wire-table tbody tr.wire-page', { hasText: 'EventSource closed for good' });
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('.pane[data-transport="sse"] .wire-table tbody tr.wire-page')].filter((row) =>
          row.textContent.includes('EventSource closed for good'),
        ).length >= 2,
      null,
      // Two retries take about 4 s; on two busy cores a page load alone can take
      // seconds, so this waits as long as Playwright's default rather than 10 s.
      { timeout: 30_000 },
    );
    assert.ok((await retries.count()) >= 2);
    assert.equal(await page.getAttribute('.pane[data-transport="sse"]', 'data-state'), 'reconnecting');
    // The page's script never learns the status; the server's wire tap shows it.
    await page.click('#tab-sse'); // the wire log shows in the transport's own tab
    const refused = sse.locator('.wire-table tbody tr[data-kind="response"]', { hasText: '503 Service Unavailable' }).first();
    await refused.waitFor({ state: 'attached', timeout: 10_000 });
    await refused.locator('summary').click();
    assert.match(await refused.locator('pre').textContent(), /retry-after: 5/);

    for (const holder of holders.splice(0)) holder.abort();
    await page.waitForFunction(() => document.querySelector('.pane[data-transport="sse"]').dataset.state === 'connected', null, {
      timeout: 15_000,
    });
  });
});
