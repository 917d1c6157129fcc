// The views around the panes: a tab per transport, Compare, who is online;
// used with the keyboard alone, and on a phone-width screen.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ALL_KINDS, KINDS, closeApp, openApp, openPage, pane, waitAllConnected } from '../lib/harness.js';

describe('views', () => {
  let server;
  let browser;
  let page;

  before(async () => {
    ({ server, browser, page } = await openApp({ contextOptions: { viewport: { width: 1400, height: 900 } } }));
    await waitAllConnected(page);
  });

  after(() => closeApp({ server, browser }));

  it('moves between views with the arrow keys, showing one transport large with its wire log and explanation', async () => {
    await page.focus('#tab-side');
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-short_poll');
    assert.equal(await page.getAttribute('#tab-short_poll', 'aria-selected'), 'true');
    const shortPoll = pane(page, 'short_poll');
    await shortPoll.locator('.wire').waitFor({ state: 'visible' });
    await shortPoll.locator('.explain').waitFor({ state: 'visible' });
    for (const kind of KINDS.filter((k) => k !== 'short_poll')) assert.equal(await pane(page, kind).isVisible(), false);
    // The wire log shows real requests and responses, as the server's wire tap saw them.
    await page.waitForFunction(() => /since=/.test(document.querySelector('.pane[data-transport="short_poll"] .wire-table').textContent));
    const summaries = await shortPoll.locator('.wire-table tbody summary').allTextContents();
    assert.ok(summaries.some((s) => /^GET \/api\/messages\?since=\d+.* HTTP\/1\.1$/.test(s)), summaries.join('\n'));
    assert.ok(summaries.some((s) => s.startsWith('HTTP/1.1 200 OK')), summaries.join('\n'));
    assert.match(await shortPoll.locator('.explain').textContent(), /GET \/api\/messages\?since=<cursor>/);

    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-sse');
    await page.waitForFunction(() => /event-stream/.test(document.querySelector('.pane[data-transport="sse"] .wire-table').textContent));
    assert.equal(await pane(page, 'sse').isVisible(), true);
    assert.equal(await pane(page, 'short_poll').isVisible(), false);
  });

  it('drops and restores a connection from the keyboard', async () => {
    await pane(page, 'sse').locator('[data-action="drop"]').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('.pane[data-transport="sse"]').dataset.state === 'dropped');
    await page.waitForFunction(() => document.querySelector('.pane[data-transport="sse"]').dataset.state === 'connected', null, { timeout: 10_000 });
    const toggle = pane(page, 'sse').locator('[data-action="toggle"]');
    await toggle.focus();
    await page.keyboard.press('Space');
    await page.waitForFunction(() => document.querySelector('.pane[data-transport="sse"]').dataset.state === 'disconnected');
    assert.equal(await toggle.textContent(), 'Connect');
    await page.keyboard.press('Space');
    await page.waitForFunction(() => document.querySelector('.pane[data-transport="sse"]').dataset.state === 'connected');
  });

  it('shows the comparison table and live figures from the panes and from /api/stats', async () => {
    await page.focus('#tab-sse');
    await page.keyboard.press('End');
    assert.equal(await page.getAttribute('#tab-compare', 'aria-selected'), 'true');
    assert.equal(await page.isVisible('#view-compare'), true);
    assert.equal(await page.isVisible('#view-panes'), false);
    assert.equal(await page.locator('#compare-table tbody tr').count(), ALL_KINDS.length, 'a row per technique');
    assert.match(await page.textContent('#compare-table'), /Last-Event-ID/);
    await server.post('frank', 'for the figures');
    // Server columns: open, requests, delivered, bytes sent. Two WebSockets are open:
    // the WebSocket pane's and the automatic pane's.
    await page.waitForFunction(() => {
      const row = document.querySelector('#live-table tr[data-transport="websocket"]');
      return row && row.children[10].textContent === '2' && Number(row.children[12].textContent) >= 1;
    }, null, { timeout: 10_000 });
    const shortPoll = await page.locator('#live-table tr[data-transport="short_poll"] td').allTextContents();
    assert.ok(Number(shortPoll[0]) > 0, 'requests measured by the page');
    assert.match(await page.textContent('#hub-line'), /newest id \d+/);
  });

  it('lists who is online with the transport each uses', async () => {
    await page.waitForFunction(() => document.querySelectorAll('#online-list [data-client] .badge').length === 4);
    const item = page.locator('#online-list [data-client]');
    assert.match(await item.textContent(), /\(you\)/);
    const other = await browser.newContext({ locale: 'en-US' });
    const second = await openPage(other, server.base);
    await waitAllConnected(second);
    await page.waitForFunction(() => document.querySelectorAll('#online-list [data-client]').length === 2, null, { timeout: 10_000 });
    await other.close();
  });

  it('stacks the panes on a phone-width screen without scrolling sideways', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'en-US' });
    const small = await openPage(phone, server.base);
    await waitAllConnected(small);
    const boxes = await Promise.all(KINDS.map((kind) => pane(small, kind).boundingBox()));
    for (let i = 1; i < boxes.length; i++) {
      assert.ok(Math.abs(boxes[i].x - boxes[0].x) < 1, 'panes share one column');
      assert.ok(boxes[i].y >= boxes[i - 1].y + boxes[i - 1].height, 'each pane is below the previous');
    }
    assert.ok(await small.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scroll');
    await phone.close();
  });
});
