// Several tabs of the page in one browser. Over HTTP/1.1 a browser opens at
// most 6 connections per origin and each tab would hold two (SSE and the
// waiting long poll), so three independent tabs would starve each other. The
// page elects one leader tab that holds the connections and shares them.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  KINDS, closeApp, launchBrowser, meter, openPage, startServer, unique, waitAllConnected, waitMessageEverywhere, waitTextEverywhere,
} from '../lib/harness.js';

const roleOf = (page) => page.getAttribute('#role', 'data-role');

describe('three tabs at once', () => {
  let server;
  let browser;
  let context;
  let pages;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    context = await browser.newContext({ locale: 'en-US' });
    pages = [];
    for (let i = 0; i < 3; i++) pages.push(await openPage(context, server.base));
  });

  after(() => closeApp({ server, browser }));

  it('connects every pane in every tab, with exactly one tab holding the connections', async () => {
    for (const page of pages) await waitAllConnected(page);
    for (const page of pages) {
      await page.waitForFunction(() => ['leader', 'follower'].includes(document.querySelector('#role').dataset.role));
    }
    const roles = await Promise.all(pages.map(roleOf));
    assert.deepEqual([...roles].sort(), ['follower', 'follower', 'leader']);
    // The server sees one client per transport, not three.
    const stats = await (await fetch(`${server.base}/api/stats`)).json();
    assert.equal(stats.transports.sse.open, 1, 'one SSE stream for all tabs');
    // Two sockets: the WebSocket pane's and the automatic pane's (on WebSocket), for all tabs.
    assert.equal(stats.transports.websocket.open, 2, 'one set of WebSockets for all tabs');
  });

  it('delivers a message POSTed from outside to all four panes of all three tabs', async () => {
    const message = await server.post('dave', unique('to every tab'));
    for (const page of pages) await waitMessageEverywhere(page, message.id);
  });

  it('lets a tab that does not hold the connections send over HTTP and over the WebSocket', async () => {
    const follower = pages[(await Promise.all(pages.map(roleOf))).indexOf('follower')];
    const overHttp = unique('follower http');
    await follower.fill('#composer-text', overHttp);
    await follower.press('#composer-text', 'Enter');
    await follower.check('input[name="via"][value="websocket"]');
    const overSocket = unique('follower websocket');
    await follower.fill('#composer-text', overSocket);
    await follower.press('#composer-text', 'Enter');
    for (const page of pages) {
      const a = await waitTextEverywhere(page, overHttp);
      const b = await waitTextEverywhere(page, overSocket);
      assert.equal(new Set(Object.values(a)).size, 1);
      assert.equal(new Set(Object.values(b)).size, 1);
    }
  });

  it('hands the connections to another tab when the leader closes, losing nothing', async () => {
    const roles = await Promise.all(pages.map(roleOf));
    const leader = pages[roles.indexOf('leader')];
    const rest = pages.filter((page) => page !== leader);
    await leader.close();
    // Posted while nobody holds the connections: the new leader resumes from its cursor.
    const message = await server.post('erin', unique('during the hand-over'));
    await Promise.any(rest.map((page) =>
      page.waitForFunction(() => document.querySelector('#role').dataset.role === 'leader', null, { timeout: 10_000 })));
    for (const page of rest) {
      await waitAllConnected(page);
      await waitMessageEverywhere(page, message.id);
      for (const kind of KINDS) assert.equal(await meter(page, kind, 'integrity'), '0 / 0', `${kind}: lost / duplicated`);
    }
    const after = await Promise.all(rest.map(roleOf));
    assert.deepEqual([...after].sort(), ['follower', 'leader']);
    // The new leader opened its own stream and socket (the server counts two of each now).
    const stats = await (await fetch(`${server.base}/api/stats`)).json();
    assert.equal(stats.transports.sse.requests, 2);
    assert.equal(stats.transports.websocket.requests, 4, 'the WebSocket and automatic panes, twice');
    for (const page of rest) assert.deepEqual(page.errors, []);
  });
});
