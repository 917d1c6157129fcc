// The automatic client (web/transports/auto.js): WebSocket first, then SSE, long
// polling, short polling, with the same cursor across every switch; back up when
// the better technique works again.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backoff } from '../../web/transports/auto.js';
import { closeApp, idsIn, openApp, pane, unique, waitAllConnected } from '../lib/harness.js';

/** Wait until the automatic pane is connected over `via`. */
async function waitVia(page, via, timeout = 15_000) {
  await page.waitForFunction(
    (via) => {
      const root = document.querySelector('.pane[data-transport="auto"]');
      return root.dataset.state === 'connected' && root.dataset.via === via;
    },
    via,
    { timeout },
  );
}

/** Block or unblock a transport for this page, from the fault lab panel. */
async function setBlocked(page, transport, blocked) {
  await page.evaluate(() => (document.querySelector('#lab').open = true));
  await page.selectOption('#lab-transport', transport);
  await page.setChecked('#lab-form input[name="blocked"]', blocked);
  await page.click('#lab-form button[type="submit"]');
  const done = blocked ? 'blocked' : 'no faults';
  await page.waitForFunction((done) => document.querySelector('#lab-status').textContent.includes(done), done);
}

/** Cut this page's connections of a transport, from the panel. */
async function cut(page, transport) {
  await page.selectOption('#lab-transport', transport);
  await page.click('[data-lab="cut"]');
  await page.waitForFunction(() => document.querySelector('#lab-status').textContent.startsWith('Cut every'));
}

describe('backoff with jitter', () => {
  it('waits between half and all of a window that doubles from 0.5 s up to 30 s, at random', () => {
    for (let failures = 0; failures < 12; failures++) {
      const ceiling = Math.min(30_000, 500 * 2 ** failures);
      const waits = Array.from({ length: 200 }, () => backoff(failures));
      assert.ok(waits.every((ms) => ms >= ceiling / 2 && ms <= ceiling), `failures=${failures}: ${Math.min(...waits)}…${Math.max(...waits)}`);
      assert.ok(new Set(waits).size > 50, 'spread out, not one instant for every client');
    }
  });
});

describe('the automatic pane', () => {
  let server;
  let browser;
  let page;

  before(async () => {
    ({ server, browser, page } = await openApp({ contextOptions: { viewport: { width: 1280, height: 720 } } }));
    await waitAllConnected(page);
    await waitVia(page, 'websocket');
  });

  after(() => closeApp({ server, browser }));

  it('falls back to SSE when the lab blocks WebSocket, losing nothing, and upgrades again when unblocked', async () => {
    const before = await server.post('teacher', unique('before the block'));
    await pane(page, 'auto').locator(`.msg[data-id="${before.id}"]`).waitFor();

    await setBlocked(page, 'websocket', true);
    await cut(page, 'websocket');
    // Posted while it is between techniques: it must arrive once.
    const during = await server.post('teacher', unique('during the switch'));
    await waitVia(page, 'sse');
    await pane(page, 'auto').locator(`.msg[data-id="${during.id}"]`).waitFor({ timeout: 10_000 });
    const switched = pane(page, 'auto').locator('.notice-switched').last();
    assert.match(await switched.textContent(), /Now on Server-Sent Events \(was WebSocket\)/);
    assert.match(await pane(page, 'auto').locator('[data-field="via"]').textContent(), /Server-Sent Events/);
    const onSse = await server.post('teacher', unique('on sse'));
    await pane(page, 'auto').locator(`.msg[data-id="${onSse.id}"]`).waitFor({ timeout: 10_000 });

    await setBlocked(page, 'websocket', false);
    await waitVia(page, 'websocket', 20_000); // it tries again every 10 s
    const back = await server.post('teacher', unique('back on websocket'));
    await pane(page, 'auto').locator(`.msg[data-id="${back.id}"]`).waitFor({ timeout: 10_000 });

    const ids = await idsIn(page, 'auto');
    for (let id = before.id; id <= back.id; id++) assert.equal(ids.filter((x) => x === id).length, 1, `#${id} once`);
    assert.equal(await pane(page, 'auto').locator('[data-meter="integrity"]').textContent(), '0 / 0');
  });

  it('goes down to long polling when WebSocket and SSE are both blocked', async () => {
    await setBlocked(page, 'websocket', true);
    await setBlocked(page, 'sse', true);
    await cut(page, 'websocket');
    await waitVia(page, 'long_poll');
    const message = await server.post('teacher', unique('over long polling'));
    await pane(page, 'auto').locator(`.msg[data-id="${message.id}"]`).waitFor({ timeout: 10_000 });
    await setBlocked(page, 'websocket', false);
    await setBlocked(page, 'sse', false);
  });
});
