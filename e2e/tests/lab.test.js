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

/**
 * A server, a page with the lab panel open, and another viewer in its own browser
 * context, both connected and past a first message (a cursor to resume from: a pane
 * with none has nothing to say "resumed" about).
 */
async function openLab() {
  const { server, browser, page } = await openApp({ contextOptions: { viewport: { width: 1280, height: 720 } } });
  const other = await openPage(await browser.newContext({ locale: 'en-US' }), server.base);
  await waitAllConnected(page);
  await waitAllConnected(other);
  const first = await server.post('setup', 'a cursor for everyone');
  await waitMessageEverywhere(page, first.id);
  await waitMessageEverywhere(other, first.id);
  await page.click('#lab summary');
  await labStatus(page, /The lab is on/);
  return { server, browser, page, other };
}

describe('the fault lab', () => {
  let server;
  let browser;
  let page;
  let other; // another viewer, in its own browser context: never touched by this page's faults

  before(async () => {
    ({ server, browser, page, other } = await openLab());
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

// The faults that last until cleared, each on a fresh server and page: a fault meets
// the connections made after it is set, so each test cuts the transport's open
// connection to make it reconnect into the fault.
describe('the fault lab’s lasting faults', () => {
  let server;
  let browser;
  let page;
  let other;

  before(async () => {
    ({ server, browser, page, other } = await openLab());
  });

  after(() => closeApp({ server, browser }));

  /** How many notices of one kind (`lost`, `resumed`, …) a pane of `on` shows. */
  const notices = (on, kind, key) => pane(on, kind).locator(`.notice-${key}`).count();

  /** Waits until a pane of `on` shows more than `before` notices of one kind. */
  async function moreNotices(on, kind, key, before) {
    await on.waitForFunction(
      ([k, cls, n]) => document.querySelectorAll(`.pane[data-transport="${k}"] .notice-${cls}`).length > n,
      [kind, key, before],
      { timeout: 15_000 },
    );
  }

  /**
   * Sets the form's faults for `kind` (fields not named are 0) and applies them; then
   * cuts its connection and waits until the pane has resumed on a new one, which
   * meets the faults.
   */
  async function fault(kind, fields) {
    await page.selectOption('#lab-transport', kind);
    for (const name of ['buffer_bytes', 'idle_cut_s', 'delay_ms', 'bytes_per_s']) {
      await page.fill(`#lab-form input[name="${name}"]`, String(fields[name] ?? 0));
    }
    await page.click('#lab-form button[type="submit"]');
    await labStatus(page, /until cleared/);
    const resumed = await notices(page, kind, 'resumed');
    await page.click('[data-lab="cut"]');
    await moreNotices(page, kind, 'resumed', resumed);
  }

  async function clear() {
    await page.click('[data-lab="clear"]');
    await labStatus(page, /All faults cleared/);
  }

  it('a buffering proxy holds SSE back until its buffer fills; nothing is lost', async () => {
    await fault('sse', { buffer_bytes: 4096 });
    const held = unique('held in the buffer');
    await server.post('teacher', held);
    // Every other pane has it; the SSE pane does not while the buffer is not full.
    for (const kind of KINDS.filter((k) => k !== 'sse')) {
      await pane(page, kind).locator('.msg-text', { hasText: held }).waitFor({ timeout: 10_000 });
    }
    assert.equal(await pane(page, 'sse').locator('.msg-text', { hasText: held }).count(), 0);
    // More than 4 KiB of events: the buffer flushes what it holds, the held message
    // first. (What comes after the flush waits for the next one, as behind a proxy.)
    const filler = 'x'.repeat(1000);
    let last;
    for (let i = 0; i < 6; i += 1) last = await server.post('teacher', `${filler} ${i}`);
    await pane(page, 'sse').locator('.msg-text', { hasText: held }).waitFor({ timeout: 10_000 });
    // Cleared and cut, the stream comes back unbuffered from its cursor: nothing lost.
    await clear();
    const resumed = await notices(page, 'sse', 'resumed');
    await page.selectOption('#lab-transport', 'sse');
    await page.click('[data-lab="cut"]');
    await moreNotices(page, 'sse', 'resumed', resumed);
    await pane(page, 'sse').locator(`.msg[data-id="${last.id}"]`).waitFor({ timeout: 10_000 });
    assert.equal(await pane(page, 'sse').locator('[data-meter="integrity"]').textContent(), '0 / 0');
  });

  it('an idle cut ends a quiet SSE stream (keep-alive comments come every 15 s); the pane resumes', async () => {
    await fault('sse', { idle_cut_s: 1 });
    const lost = await notices(page, 'sse', 'lost');
    await moreNotices(page, 'sse', 'lost', lost);
    await clear();
    await waitState(page, 'sse', 'connected', 15_000);
    const text = unique('after the idle cut');
    await server.post('teacher', text);
    await pane(page, 'sse').locator('.msg-text', { hasText: text }).waitFor({ timeout: 10_000 });
    assert.equal(await pane(page, 'sse').locator('[data-meter="integrity"]').textContent(), '0 / 0');
  });

  it('a slow network delays this page’s WebSocket by at least the delay, and no one else’s', async () => {
    await fault('websocket', { delay_ms: 1500 });
    const text = unique('over a slow network');
    await server.post('teacher', text);
    await pane(page, 'websocket').locator('.msg-text', { hasText: text }).waitFor({ timeout: 10_000 });
    const latency = Number.parseInt(await pane(page, 'websocket').locator('[data-meter="latency"]').textContent(), 10);
    assert.ok(latency >= 1500, `latency ${latency} ms`);
    await pane(other, 'websocket').locator('.msg-text', { hasText: text }).waitFor({ timeout: 10_000 });
    const theirs = Number.parseInt(await pane(other, 'websocket').locator('[data-meter="latency"]').textContent(), 10);
    assert.ok(theirs < latency, `the other viewer's ${theirs} ms against ${latency} ms`);
    await clear();
  });

  it('with “everyone” ticked, a cut reaches another viewer’s connections too', async () => {
    await page.check('#lab-everyone');
    await page.selectOption('#lab-transport', 'sse');
    const lost = await notices(other, 'sse', 'lost');
    await page.click('[data-lab="cut"]');
    await labStatus(page, /Cut every/);
    await moreNotices(other, 'sse', 'lost', lost);
    await page.uncheck('#lab-everyone');
    const text = unique('after everyone’s cut');
    await server.post('teacher', text);
    await waitTextEverywhere(other, text);
    assert.equal(await pane(other, 'sse').locator('[data-meter="integrity"]').textContent(), '0 / 0');
  });
});
