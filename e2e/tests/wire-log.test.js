// The wire log shows real bytes: what the server's wire tap saw on this page's
// own connections (the request Chromium sent, SSE's retry: and keep-alive
// comments, WebSocket frames masked one way and not the other, each long poll's
// hold time), plus what only the page sees (its own aborts). With the tap off,
// it shows what the page itself can see.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closeApp, openApp, pane, unique, waitAllConnected, waitTextEverywhere } from '../lib/harness.js';

/** Waits for a wire-log row in `kind`'s pane matching `selector` and `text`; returns it. */
async function wireRow(page, kind, selector, text) {
  const row = pane(page, kind).locator(`.wire-table tbody tr${selector}`, { hasText: text }).first();
  await row.waitFor({ state: 'attached', timeout: 15_000 });
  return row;
}

/** Opens a row's disclosure and returns the bytes it shows. */
async function bytesOf(row) {
  await row.locator('summary').click();
  return row.locator('pre.wire-bytes').textContent();
}

describe('the wire log, with the wire tap', () => {
  let app;
  let page;

  before(async () => {
    app = await openApp({ args: ['--sse-keep-alive', '1'] });
    page = app.page;
    await waitAllConnected(page);
  });

  after(() => closeApp(app));

  it("shows the SSE stream as it was: Chromium's request, the response head, retry: and keep-alive comments", async () => {
    await page.click('#tab-sse');
    const comment = await wireRow(page, 'sse', '[data-kind="comment"]', ': keep-alive');
    assert.equal(await comment.locator('td').nth(2).textContent(), '19 B');
    assert.match(await bytesOf(comment), /chunk length line {2}45 0d 0a\n: keep-alive/);
    const retry = await wireRow(page, 'sse', '[data-kind="retry"]', 'retry: 3000');
    assert.match(await bytesOf(retry), /44 0d 0a/);
    const request = await wireRow(page, 'sse', '.wire-out[data-kind="request"]', 'GET /api/events');
    const head = await bytesOf(request);
    assert.match(head, /^Accept: text\/event-stream\r?$/m); // what EventSource adds
    assert.match(head, /^User-Agent: .*Chrome/m);
    assert.doesNotMatch(head, /tap=[0-9a-f]{32}/, 'the tap id is not shown');
    const response = await wireRow(page, 'sse', '.wire-in[data-kind="response"]', 'HTTP/1.1 200 OK');
    assert.match(await bytesOf(response), /content-type: text\/event-stream/);
  });

  it('shows WebSocket frames both ways: masked from the browser, plain from the server', async () => {
    await page.click('#tab-websocket');
    await page.check('input[name="via"][value="websocket"]');
    const text = unique('framed');
    await page.fill('#composer-text', text);
    await page.press('#composer-text', 'Enter');
    await waitTextEverywhere(page, text);
    await page.check('input[name="via"][value="http"]');

    const upgrade = await wireRow(page, 'websocket', '.wire-in[data-kind="response"]', '101 Switching Protocols');
    assert.match(await bytesOf(upgrade), /sec-websocket-accept: /i);
    const sent = await wireRow(page, 'websocket', '.wire-out[data-kind="frame"]', text);
    const sentBytes = await bytesOf(sent);
    assert.match(sentBytes, /FIN 1 · RSV 000 · opcode 0x1 \(text\) · MASK 1 · length \d+ \(7-bit form\) · masking key ([0-9a-f]{2} ){3}[0-9a-f]{2}/);
    assert.match(sentBytes, /payload, unmasked/);
    const received = await wireRow(page, 'websocket', '.wire-in[data-kind="frame"]', text);
    const receivedBytes = await bytesOf(received);
    assert.match(receivedBytes, /^header {2}81 7e /m, 'a 16-bit length: the message is over 125 bytes');
    assert.match(receivedBytes, /MASK 0 · length \d+ \(16-bit form\)/);
  });

  it("shows each long poll's hold time, and the page's own aborts", async () => {
    await page.click('#tab-long_poll');
    // The page's long poll is waiting now; a message ends it.
    await app.server.post('someone', unique('ends the hold'));
    const held = await wireRow(page, 'long_poll', '.wire-in[data-kind="response"]', 'held');
    assert.match(await held.locator('summary').textContent(), /^HTTP\/1\.1 200 OK {2}\(held \d+ ms\)$/);
    await pane(page, 'long_poll').locator('[data-action="drop"]').click();
    await wireRow(page, 'long_poll', '.wire-page', 'aborted by the page');
    await wireRow(page, 'long_poll', '.wire-page', 'dropped by the page');
  });
});

describe('the wire log, with the wire tap off', () => {
  let app;

  before(async () => {
    app = await openApp({ args: ['--wire-tap', 'off'] });
    await waitAllConnected(app.page);
  });

  after(() => closeApp(app));

  it('shows what the page itself can see', async () => {
    await app.page.click('#tab-short_poll');
    const answer = await wireRow(app.page, 'short_poll', '.wire-in', 'messages: [');
    assert.match(await answer.textContent(), /200 messages: \[.*\] last_id: \d+ {2}after \d+ ms/);
    assert.equal(await pane(app.page, 'short_poll').locator('.wire-table details').count(), 0);
  });
});
