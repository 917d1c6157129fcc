// The page over HTTPS with HTTP/2 (`pushlab --tls`), next to plain HTTP/1.1.
//
// Over HTTP/1.1 Chromium opens at most 6 connections per origin, and every SSE
// stream or held long poll keeps one busy: the 7th stream waits for a free
// connection, for as long as the others stay open. Over HTTP/2 every request is a
// stream on one connection, the WebSocket too (RFC 8441), and the limit is the
// server's --h2-max-streams (100) instead.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  KINDS, closeApp, launchBrowser, openApp, openPage, pane, request, startServer, unique, waitAllConnected,
  waitMessageEverywhere, waitTextEverywhere,
} from '../lib/harness.js';

/** Wait until every pane names its carrier and the summary counts `connections`. */
async function waitCarriers(page, { http, connections }) {
  await page.waitForFunction(
    ({ kinds, http, connections }) => {
      const summary = document.querySelector('#carriers');
      const panes = kinds.map((k) => document.querySelector(`.pane[data-transport="${k}"]`).dataset.http);
      return !summary.hidden
        && panes.every((p) => p === http)
        && (connections === undefined || Number(summary.dataset.connections) === connections);
    },
    { kinds: KINDS, http, connections },
    { timeout: 15_000 },
  );
  return page.evaluate(() => {
    const summary = document.querySelector('#carriers');
    return { connections: Number(summary.dataset.connections), http: summary.dataset.http, text: summary.textContent };
  });
}

/**
 * Open `count` EventSources in a page of the origin (no pushlab page, so nothing
 * else holds a connection); returns when the server counts `expectOpen` streams.
 */
async function openEventSources(page, server, count, expectOpen) {
  await page.goto(`${server.base}/healthz`);
  await page.evaluate((count) => {
    window.received = Array.from({ length: count }, () => []);
    window.sources = Array.from({ length: count }, (_, i) => {
      const source = new EventSource(`/api/events?since=0&client=es${i}`);
      source.addEventListener('message', (event) => window.received[i].push(JSON.parse(event.data).text));
      return source;
    });
  }, count);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const stats = await server.get('/api/stats');
    if (stats.transports.sse.open === expectOpen) return;
    if (Date.now() > deadline) throw new Error(`${stats.transports.sse.open} SSE streams open, not ${expectOpen}`);
    await page.waitForTimeout(50); // the server's counter has no event to await
  }
}

describe('the page over HTTPS with HTTP/2', () => {
  let app;
  before(async () => {
    app = await openApp({ args: ['--tls'] });
  });
  after(() => closeApp(app));

  it('serves the self-signed certificate whose fingerprint it printed', async () => {
    assert.match(app.server.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const response = await request(`${app.server.base}/healthz`);
    assert.equal(response.fingerprint, app.server.fingerprint);
  });

  it('connects the four panes on one TCP connection, and says so', async () => {
    await waitAllConnected(app.page);
    const shown = await waitCarriers(app.page, { http: 'h2', connections: 1 });
    assert.equal(shown.http, 'h2');
    assert.match(shown.text, /1 TCP connection \(h2\)/);
    // Asked from the page, so on its connection too.
    const stats = await app.page.evaluate(async () => (await fetch('/api/stats')).json());
    assert.equal(stats.connections.h2.open, 1, JSON.stringify(stats.connections));
    // The server counts by technique; the automatic pane's requests are its technique's.
    for (const kind of KINDS.filter((k) => k in stats.transports)) {
      assert.equal(stats.transports[kind].http['http/1.1'].requests, 0, `nothing of ${kind} over HTTP/1.1`);
    }
    assert.equal(stats.transports.sse.http.h2.open, 1, 'sse over h2');
    // The WebSocket pane's socket and the automatic pane's, on WebSocket too.
    assert.equal(stats.transports.websocket.http.h2.open, 2, 'websocket over h2');
  });

  it('delivers over every pane, the WebSocket over HTTP/2 both ways', async () => {
    const posted = await app.server.post('erin', unique('over h2'));
    await waitMessageEverywhere(app.page, posted.id);
    await app.page.check('input[name="via"][value="websocket"]');
    const text = unique('sent on the h2 WebSocket');
    await app.page.fill('#composer-text', text);
    await app.page.press('#composer-text', 'Enter');
    const ids = await waitTextEverywhere(app.page, text);
    assert.equal(new Set(Object.values(ids)).size, 1);
    const stats = await app.server.get('/api/stats');
    assert.equal(stats.transports.websocket.http['http/1.1'].requests, 0, 'no WebSocket over HTTP/1.1');
    assert.equal(stats.connections.h2.accepted, 1, 'still the one connection');
  });

  it('lets 8 EventSources in one page all receive', async () => {
    const browser = await launchBrowser();
    try {
      const page = await (await browser.newContext()).newPage();
      await openEventSources(page, app.server, 8, 8 + 1); // + the app page's own stream
      const text = unique('to 8 streams');
      await app.server.post('frank', text);
      await page.waitForFunction((text) => window.received.every((got) => got.includes(text)), text);
    } finally {
      await browser.close();
    }
  });

  it('shares the connection among three tabs of one browser', async () => {
    const browser = await launchBrowser();
    try {
      const context = await browser.newContext({ locale: 'en-US' });
      const tabs = [];
      for (let i = 0; i < 3; i++) tabs.push(await openPage(context, app.server.base));
      for (const tab of tabs) await waitAllConnected(tab);
      const posted = await app.server.post('gina', unique('three tabs over h2'));
      for (const tab of tabs) await waitMessageEverywhere(tab, posted.id);
      const shown = await waitCarriers(tabs[0], { http: 'h2', connections: 1 });
      assert.equal(shown.connections, 1);
    } finally {
      await browser.close();
    }
  });
});

describe('the same page over plain HTTP/1.1', () => {
  let app;
  before(async () => {
    app = await openApp();
  });
  after(() => closeApp(app));

  it('needs a connection per held stream, and says so', async () => {
    await waitAllConnected(app.page);
    const shown = await waitCarriers(app.page, { http: 'http/1.1' });
    // The SSE stream, the held long poll and the WebSocket each hold one.
    assert.ok(shown.connections >= 3, JSON.stringify(shown));
    assert.match(shown.text, /TCP connections \(http\/1\.1\)/);
    assert.equal(await pane(app.page, 'sse').getAttribute('data-http'), 'http/1.1');
  });

  it('starves the 7th and 8th EventSource: 6 connections per origin', async () => {
    const browser = await launchBrowser();
    try {
      const page = await (await browser.newContext()).newPage();
      // The app page's stream is in another browser; this one opens 8 of its own.
      await openEventSources(page, app.server, 8, 6 + 1);
      const text = unique('to 6 of 8 streams');
      await app.server.post('hank', text);
      await page.waitForFunction((text) => window.received.filter((got) => got.includes(text)).length === 6, text);
      const states = await page.evaluate(() => window.sources.map((source) => source.readyState));
      // Six are open; two are still connecting, waiting for a connection that none
      // of the six will give up.
      assert.deepEqual([...states].sort(), [0, 0, 1, 1, 1, 1, 1, 1]);
      const stats = await app.server.get('/api/stats');
      assert.equal(stats.transports.sse.open, 7);
    } finally {
      await browser.close();
    }
  });
});
