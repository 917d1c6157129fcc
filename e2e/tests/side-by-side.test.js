// The default view: four panes, one per transport, fed by one composer.

import assert from 'node:assert/strict';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  KINDS, closeApp, idsIn, meter, openApp, pane, repo, unique, waitAllConnected, waitMessageEverywhere, waitTextEverywhere,
} from '../lib/harness.js';

describe('side by side', () => {
  let server;
  let browser;
  let page;

  before(async () => {
    ({ server, browser, page } = await openApp({ contextOptions: { viewport: { width: 1600, height: 1000 } } }));
  });

  after(() => closeApp({ server, browser }));

  it('brings all four panes to "connected"', async () => {
    await waitAllConnected(page);
    for (const kind of KINDS) {
      assert.equal(await pane(page, kind).locator('[data-field="state"]').textContent(), 'connected');
    }
  });

  it('shows a message sent from the composer over HTTP in every pane with the same id', async () => {
    const text = unique('over http');
    await page.fill('#composer-author', 'alice');
    await page.fill('#composer-text', text);
    await page.press('#composer-text', 'Enter');
    const ids = await waitTextEverywhere(page, text);
    const distinct = new Set(Object.values(ids));
    assert.equal(distinct.size, 1, `panes disagree on the id: ${JSON.stringify(ids)}`);
    const [id] = distinct;
    assert.match(await page.textContent('#composer-status'), new RegExp(`#${id}\\b`));
    for (const kind of KINDS) {
      const item = pane(page, kind).locator(`.msg[data-id="${id}"]`);
      assert.equal(await item.locator('.msg-author').textContent(), 'alice');
      assert.equal(await item.locator('.msg-via').textContent(), 'sent via http');
    }
    assert.equal(await page.inputValue('#composer-text'), '', 'the composer is cleared after sending');
  });

  it('shows a message sent over the WebSocket in every pane with the same id, marked as sent via websocket', async () => {
    const text = unique('over websocket');
    await page.check('input[name="via"][value="websocket"]');
    await page.fill('#composer-author', 'bob');
    await page.fill('#composer-text', text);
    await page.click('button.send');
    const ids = await waitTextEverywhere(page, text);
    assert.equal(new Set(Object.values(ids)).size, 1, `panes disagree on the id: ${JSON.stringify(ids)}`);
    for (const kind of KINDS) {
      const item = pane(page, kind).locator(`.msg[data-id="${ids[kind]}"]`);
      assert.equal(await item.locator('.msg-via').textContent(), 'sent via websocket');
    }
    await page.check('input[name="via"][value="http"]');
  });

  it('shows a message POSTed from outside the page in every pane', async () => {
    const text = unique('from curl');
    const message = await server.post('carol', text);
    await waitMessageEverywhere(page, message.id);
    for (const kind of KINDS) {
      const item = pane(page, kind).locator(`.msg[data-id="${message.id}"]`);
      assert.equal(await item.locator('.msg-text').textContent(), text);
      assert.equal(await item.locator('.msg-author').textContent(), 'carol');
    }
  });

  it('renders markup in a message as text: no element is created and no dialog fires', async () => {
    const attack = '<img src=x onerror=alert(1)> <b>bold</b>';
    await page.fill('#composer-text', attack);
    await page.press('#composer-text', 'Enter');
    const ids = await waitTextEverywhere(page, attack);
    for (const kind of KINDS) {
      const item = pane(page, kind).locator(`.msg[data-id="${ids[kind]}"]`);
      assert.equal(await item.locator('.msg-text').textContent(), attack);
      assert.equal(await item.locator('img, b').count(), 0, `${kind}: the message became markup`);
    }
    assert.equal(await page.locator('.messages img').count(), 0);
    assert.deepEqual(page.dialogs, []);
    assert.deepEqual(page.errors, []);
  });

  it('polls faster when the short-poll interval is lowered', async () => {
    const slider = pane(page, 'short_poll').locator('[data-control="interval"]');
    await slider.focus();
    await page.keyboard.press('Home'); // the minimum: 0.5 s
    assert.equal(await pane(page, 'short_poll').locator('[data-field="interval"]').textContent(), '0.5 s');
    const before = Number(await meter(page, 'short_poll', 'requests'));
    const started = Date.now();
    // At 0.5 s, six more requests take about 3 s; at the default 2 s they would take 12 s.
    await page.waitForFunction(
      (min) => Number(document.querySelector('.pane[data-transport="short_poll"] [data-meter="requests"]').textContent) >= min,
      before + 6,
      { timeout: 6_000 },
    );
    assert.ok(Date.now() - started < 6_000);
    assert.ok(Number(await meter(page, 'short_poll', 'empty')) > 0, 'most short polls come back empty');
    await page.keyboard.press('ArrowRight'); // 1 s, to keep the log readable for the screenshot
  });

  // The README's picture: written to e2e/test-results/ on every run, and over
  // docs/screenshot.png only when asked (UPDATE_SCREENSHOTS=1), so a test run leaves
  // the tracked tree as it found it.
  it('saves a screenshot of the side-by-side view with live meters', async () => {
    await server.post('alice', 'Short polling asks every interval; most answers are empty.');
    await page.check('input[name="via"][value="websocket"]');
    await page.fill('#composer-author', 'bob');
    await page.fill('#composer-text', 'Typed over the WebSocket, delivered by all four.');
    await page.press('#composer-text', 'Enter');
    const last = await server.post('carol', '长轮询：服务器挂起请求，直到有新消息。');
    await waitMessageEverywhere(page, last.id);
    await page.check('input[name="via"][value="http"]');
    await page.fill('#composer-text', '');
    await page.locator('#composer-text').blur();
    await page.locator('#composer-status').evaluate((element) => (element.textContent = ''));
    // Wait until the server figures have arrived (the online list is filled from them).
    await page.waitForFunction(() => document.querySelector('#online-list [data-client]'));
    for (const kind of KINDS) {
      assert.ok(Number(await meter(page, kind, 'requests')) > 0, `${kind}: requests`);
      assert.ok(Number(await meter(page, kind, 'messages')) >= 5, `${kind}: messages`);
      assert.notEqual(await meter(page, kind, 'bytes'), '0 B', `${kind}: bytes`);
      assert.match(await meter(page, kind, 'latency'), /^\d+ ms$/, `${kind}: latency`);
      assert.match(await meter(page, kind, 'median'), /^\d+ ms$/, `${kind}: median latency`);
      assert.equal(await meter(page, kind, 'integrity'), '0 / 0', `${kind}: lost / duplicated`);
    }
    const file = process.env.UPDATE_SCREENSHOTS
      ? path.join(repo, 'docs', 'screenshot.png')
      : path.join(repo, 'e2e', 'test-results', 'screenshot.png');
    await mkdir(path.dirname(file), { recursive: true });
    await page.screenshot({ path: file });
    assert.ok((await stat(file)).size > 20_000);
  });

  it('keeps each message once per pane, in id order', async () => {
    for (const kind of KINDS) {
      const ids = await idsIn(page, kind);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `${kind}: out of order`);
      assert.equal(new Set(ids).size, ids.length, `${kind}: a message shown twice`);
    }
  });
});
