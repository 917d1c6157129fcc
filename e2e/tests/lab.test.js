// The fault lab panel: the server breaks this page's own connections the way
// networks and proxies do, and each pane tells how it coped.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  KINDS, closeApp, openApp, openPage, pane, unique, waitAllConnected, waitMessageEverywhere, waitTextEverywhere,
  waitState,
} from '../lib/harness.js';

async function labStatus(page, pattern) {
  await page.waitForFunction((source) => new RegExp(source).test(document.querySelector('#lab-status').textContent), pattern.source);
}

describe('the fault lab', () => {
  let server;
  let browser;
  let page;
  let other; // another viewer, in its own browser context: never touched by this page's faults

  before(async () => {
    ({ server, browser, page } = await openApp({ contextOptions: { viewport: { width: 1280, height: 720 } } }));
    other = await openPage(await browser.newContext({ locale: 'en-US' }), server.base);
    await waitAllConnected(page);
    await waitAllConnected(other);
    const first = await server.post('setup', 'a cursor for everyone');
    await waitMessageEverywhere(page, first.id);
    await page.click('#lab summary');
    await labStatus(page, /The lab is on/);
  });

  after(() => closeApp({ server, browser }));

  it('cuts this page’s SSE stream: the pane says the stream ended, resumes, and loses nothing; another viewer is untouched', async () => {
    await page.selectOption('#lab-transport', 'sse');
    await page.click('[data-lab="cut"]');
    await labStatus(page, /Cut every/);
    await pane(page, 'sse').locator('.notice-lost').waitFor({ timeout: 10_000 });
    const text = unique('after the cut');
    await server.post('teacher', text);
    await waitTextEverywhere(page, text);
    await pane(page, 'sse').locator('.notice-resumed').waitFor();
    assert.equal(await pane(page, 'sse').locator('[data-meter="integrity"]').textContent(), '0 / 0');
    await waitTextEverywhere(other, text);
    assert.equal(await pane(other, 'sse').locator('.notice').count(), 0, 'the other viewer saw no fault');
  });

  it('blocks this page’s WebSocket upgrades until cleared, then it reconnects and catches up', async () => {
    await page.selectOption('#lab-transport', 'websocket');
    await page.check('#lab-form input[name="blocked"]');
    await page.click('#lab-form button[type="submit"]');
    await labStatus(page, /blocked/);
    // Blocking refuses new upgrades; cut the open socket so it must make one.
    await page.click('[data-lab="cut"]');
    await waitState(page, 'websocket', 'reconnecting');
    const text = unique('while blocked');
    await server.post('teacher', text);
    // Everything else still delivers, and the other viewer's WebSocket too.
    for (const kind of KINDS.filter((k) => k !== 'websocket')) {
      await pane(page, kind).locator('.msg-text', { hasText: text }).waitFor({ timeout: 10_000 });
    }
    await pane(other, 'websocket').locator('.msg-text', { hasText: text }).waitFor({ timeout: 10_000 });
    assert.equal(await pane(page, 'websocket').locator('.msg-text', { hasText: text }).count(), 0);
    assert.equal(await pane(page, 'websocket').getAttribute('data-state'), 'reconnecting');

    await page.uncheck('#lab-form input[name="blocked"]');
    await page.click('#lab-form button[type="submit"]');
    await labStatus(page, /no faults/);
    await pane(page, 'websocket').locator('.msg-text', { hasText: text }).waitFor({ timeout: 15_000 });
    await waitState(page, 'websocket', 'connected');
    assert.equal(await pane(page, 'websocket').locator('[data-meter="integrity"]').textContent(), '0 / 0');
  });

  it('restarts the hub: every pane says the ids started again and carries on from #1', async () => {
    await page.click('[data-lab="restart"]');
    await labStatus(page, /ids start again/);
    const text = unique('after the hub restart');
    const message = await server.post('teacher', text);
    assert.equal(message.id, 1);
    await waitTextEverywhere(page, text, 15_000);
    for (const kind of KINDS) {
      await pane(page, kind).locator('.notice-restarted').waitFor({ timeout: 10_000 });
    }
  });
});
