// The page as a teacher projects it: the panes keep following the chat, fit one
// row, tell one clear story per outage, and can be read from the back of the room
// and by a screen reader.

import assert from 'node:assert/strict';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  KINDS, closeApp, openApp, openPage, pane, repo, startServer, unique, waitAllConnected, waitMessageEverywhere, waitTextEverywhere,
  waitState,
} from '../lib/harness.js';

const PROJECTOR = { width: 1280, height: 720 };

/** The classes of a pane's notices, in order ('lost', 'resumed', 'restarted' …). */
function noticesOf(page, kind) {
  return pane(page, kind).locator('.notice').evaluateAll((items) => items.map((li) => li.className.split(' ')[1].slice('notice-'.length)));
}

/** The app in a browser the size of a projector, every pane connected. */
async function openOnProjector() {
  const app = await openApp({ contextOptions: { viewport: PROJECTOR } });
  await waitAllConnected(app.page);
  return app;
}

describe('the page on a projector', () => {
  let server;
  let browser;
  let page;

  before(async () => {
    ({ server, browser, page } = await openOnProjector());
  });

  after(() => closeApp({ server, browser }));

  it('lists this browser as online as soon as it is connected, never "Nobody yet"', async () => {
    const items = await page.locator('#online-list li').allTextContents();
    assert.ok(items.some((text) => text.includes('(you)')), `online list: ${JSON.stringify(items)}`);
    assert.ok(!items.some((text) => text.includes('Nobody yet')));
  });

  it('keeps every side-by-side pane scrolled to the newest message after a transport tab was visited', async () => {
    let last;
    for (let i = 0; i < 30; i++) last = await server.post('scroller', unique(`line ${i}`));
    await waitMessageEverywhere(page, last.id);
    await page.click('#tab-sse');
    await page.click('#tab-side');
    const next = await server.post('scroller', unique('after the tab'));
    await waitMessageEverywhere(page, next.id);
    for (const kind of KINDS) {
      const list = await pane(page, kind).locator('.messages').evaluate((ol) => ({
        overflow: ol.scrollHeight > ol.clientHeight,
        gap: ol.scrollHeight - ol.scrollTop - ol.clientHeight,
      }));
      assert.ok(list.overflow, `${kind}: the list overflows, so scrolling matters`);
      assert.ok(list.gap < 2, `${kind}: ${list.gap} px below the view, the newest message is not shown`);
    }
  });

  for (const width of [1024, 1280, 1366]) {
    it(`shows all panes in one row at ${width} px`, async () => {
      await page.setViewportSize({ width, height: 720 });
      const boxes = await Promise.all(KINDS.map((kind) => pane(page, kind).boundingBox()));
      for (let i = 1; i < boxes.length; i++) {
        assert.ok(Math.abs(boxes[i].y - boxes[0].y) < 1, `${KINDS[i]} is not in the first row`);
        assert.ok(boxes[i].x >= boxes[i - 1].x + boxes[i - 1].width, `${KINDS[i]} overlaps the pane before it`);
      }
      assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scroll');
    });
  }

  it('puts the wire log beside the messages on a transport tab, above the fold at 1280×720', async () => {
    await page.setViewportSize(PROJECTOR);
    await page.click('#tab-long_poll');
    const messages = await pane(page, 'long_poll').locator('.messages').boundingBox();
    const wire = await pane(page, 'long_poll').locator('.wire').boundingBox();
    assert.ok(wire.x >= messages.x + messages.width, 'the wire log is to the right of the messages');
    assert.ok(wire.y < PROJECTOR.height, 'the wire log starts on screen');
    await page.click('#tab-side');
  });

  it('sets no text of a pane or the online list below 14 px', async () => {
    const smallest = await page.evaluate(() => {
      let found = { size: Infinity, text: '' };
      for (const element of document.querySelectorAll('.pane *, .online *')) {
        const own = [...element.childNodes].some((node) => node.nodeType === Node.TEXT_NODE && node.textContent.trim());
        if (!own || !element.checkVisibility()) continue;
        const size = parseFloat(getComputedStyle(element).fontSize);
        if (size < found.size) found = { size, text: element.textContent.trim().slice(0, 40) };
      }
      return found;
    });
    assert.ok(smallest.size >= 14, `"${smallest.text}" is ${smallest.size} px`);
  });

  it('gives every pane button its own accessible name', async () => {
    const names = await page.locator('.pane [data-action]').evaluateAll((buttons) => buttons.map((b) => b.getAttribute('aria-label')));
    assert.equal(names.length, 2 * KINDS.length + 2, 'drop and connect/disconnect per pane (WebTransport included)');
    assert.equal(new Set(names).size, names.length, `repeated names: ${JSON.stringify(names)}`);
    assert.ok(names.includes('Drop the WebSocket connection'), JSON.stringify(names));
  });

  it('says where a dropped short poll resumed from: the cursor it was dropped at, not the one it caught up to', async () => {
    const cursor = Number(/\d+/.exec(await pane(page, 'short_poll').locator('[data-field="cursor"]').textContent())[0]);
    await pane(page, 'short_poll').locator('[data-action="drop"]').click();
    await waitState(page, 'short_poll', 'dropped');
    let last;
    for (let i = 0; i < 3; i++) last = await server.post('meanwhile', unique(`while dropped ${i}`));
    await pane(page, 'short_poll').locator(`.msg[data-id="${last.id}"]`).waitFor({ timeout: 10_000 });
    const resumed = pane(page, 'short_poll').locator('.notice-resumed').last();
    assert.match(await resumed.textContent(), new RegExp(`from cursor ${cursor}: 3 messages of the outage caught up, nothing lost`));
    assert.match(await resumed.textContent(), /The outage cost [1-9]\d* requests and \d/);
    // Announced to screen readers too: the pane's live region says the same.
    const announce = pane(page, 'short_poll').locator('[data-field="announce"]');
    assert.equal(await announce.getAttribute('aria-live'), 'polite');
    assert.equal(await announce.textContent(), await resumed.textContent());
  });

  for (const kind of ['sse', 'websocket', 'long_poll']) {
    it(`${kind}: "Disconnect" then "Connect" says it resumed from its cursor`, async () => {
      const root = pane(page, kind);
      const cursor = Number(/\d+/.exec(await root.locator('[data-field="cursor"]').textContent())[0]);
      const before = await root.locator('.notice-resumed').count();
      await root.locator('[data-action="toggle"]').click();
      await waitState(page, kind, 'disconnected');
      await root.locator('[data-action="toggle"]').click();
      await waitState(page, kind, 'connected');
      assert.equal(await root.locator('.notice-resumed').count(), before + 1);
      assert.match(await root.locator('.notice-resumed').last().textContent(), new RegExp(`from cursor ${cursor}:`));
    });
  }

  it('keeps the selected tab in view on a phone', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const view of ['websocket', 'compare', 'short_poll']) {
      await page.evaluate((view) => (location.hash = `#${view}`), view);
      await page.waitForFunction((view) => document.querySelector(`#tab-${view}`).getAttribute('aria-selected') === 'true', view);
      const tab = await page.locator(`#tab-${view}`).boundingBox();
      assert.ok(tab.x >= 0 && tab.x + tab.width <= 390, `#tab-${view} is at ${tab.x}…${tab.x + tab.width}`);
    }
    await page.evaluate(() => (location.hash = '#side'));
    await page.setViewportSize(PROJECTOR);
  });

  it('shows the page-only wire-log rows in Chinese after switching language', async () => {
    await page.click('#lang');
    await pane(page, 'websocket').locator('[data-action="drop"]').click();
    await waitState(page, 'websocket', 'connected');
    const rows = await pane(page, 'websocket').locator('.wire-page').allTextContents();
    assert.ok(rows.some((row) => row.includes('页面模拟断线')), JSON.stringify(rows));
    assert.ok(!rows.some((row) => /dropped by the page|no close frame|trying again/.test(row)), JSON.stringify(rows));
    await page.click('#lang');
    assert.ok((await pane(page, 'websocket').locator('.wire-page').allTextContents()).some((row) => row.includes('dropped by the page')));
  });

  it('shows this browser’s new name after a rename, here and to other viewers', async () => {
    const name = unique('renamed').slice(0, 30);
    await page.fill('#composer-author', name);
    await page.press('#composer-author', 'Tab');
    assert.equal(await page.locator('#online-list li[data-client] .online-name').first().textContent(), name);
    // Another viewer learns it from the server: the pollers report the name on every request.
    const other = await browser.newContext({ locale: 'en-US', viewport: PROJECTOR });
    const second = await openPage(other, server.base);
    await second.waitForFunction((name) => [...document.querySelectorAll('#online-list .online-name')].some((el) => el.textContent === name), name, { timeout: 15_000 });
    await other.close();
  });

  it('counts headers in Compare: short polling costs more per message on the wire than WebSocket', async () => {
    await page.click('#tab-compare');
    const cells = (kind) => page.locator(`#live-table tr[data-transport="${kind}"] td`).allTextContents();
    // The wire columns fill as the tap's rows arrive (read once a second).
    await page.waitForFunction(() => {
      const perMessage = (kind) => {
        const cell = document.querySelector(`#live-table tr[data-transport="${kind}"] td:nth-child(8)`);
        return cell?.dataset.source === 'tap' ? Number(cell.textContent) : NaN;
      };
      return perMessage('short_poll') > perMessage('websocket');
    }, null, { timeout: 20_000 });
    const shortPoll = await cells('short_poll');
    // Columns: requests, empty, bytes (bodies), messages, bytes/message, wire, wire/message.
    assert.ok(Number(shortPoll[6]) > Number(shortPoll[4]), `wire ${shortPoll[6]} B/message should exceed the bodies' ${shortPoll[4]}`);
    await page.click('#tab-side');
  });
});

describe('a server restart, as the panes tell it', () => {
  let server;
  let browser;
  let page;

  before(async () => {
    ({ server, browser, page } = await openOnProjector());
  });

  after(() => closeApp({ server, browser }));

  it('says in every pane, SSE included, that the connection was lost, then that ids started again, with no "resumed" before the reset', async () => {
    for (let i = 0; i < 3; i++) await server.post('before', unique(`before restart ${i}`));
    await waitMessageEverywhere(page, 3);
    await server.stop();
    for (const kind of KINDS) {
      await page.waitForFunction((kind) => document.querySelector(`.pane[data-transport="${kind}"] .notice-lost`), kind, { timeout: 10_000 });
    }
    server = await startServer([], { port: server.port });
    const text = unique('after restart');
    const message = await server.post('after', text);
    assert.equal(message.id, 1);
    await waitTextEverywhere(page, text, 15_000);
    for (const kind of KINDS) {
      await waitState(page, kind, 'connected');
      // The automatic client may also say it changed technique on its way back.
      const notices = (await noticesOf(page, kind)).filter((notice) => notice !== 'switched');
      assert.deepEqual(notices, ['lost', 'restarted'], kind);
      const text = (await pane(page, kind).locator('.notice').allTextContents()).join(' | ');
      assert.doesNotMatch(text, /Failed to fetch|closed \(1001\)|nothing lost/, kind);
      assert.match(text, /ids started again/, kind);
    }
  });
});

// The pictures docs/page.md shows: written to e2e/test-results/ on every run, and
// into docs/ only when asked (UPDATE_SCREENSHOTS=1), as side-by-side.test.js does.
describe('screenshots for the docs', () => {
  let server;
  let browser;
  let page;

  before(async () => {
    ({ server, browser, page } = await openOnProjector());
    await server.post('alice', 'Short polling asks every interval; most answers are empty.');
    await server.post('bob', 'Long polling: the server holds the request until there is news.');
    const last = await server.post('carol', '长轮询：服务器挂起请求，直到有新消息。');
    await waitMessageEverywhere(page, last.id);
    await page.waitForFunction(() => document.querySelector('#online-list [data-client]'));
  });

  after(() => closeApp({ server, browser }));

  async function shoot(name) {
    const file = process.env.UPDATE_SCREENSHOTS
      ? path.join(repo, 'docs', `${name}.png`)
      : path.join(repo, 'e2e', 'test-results', `${name}.png`);
    await mkdir(path.dirname(file), { recursive: true });
    await page.screenshot({ path: file });
    assert.ok((await stat(file)).size > 20_000);
  }

  it('saves side by side at 1280×720, a transport tab with its wire log, and a phone at 390×844', async () => {
    await shoot('screenshot-1280x720');
    await page.click('#tab-sse');
    await page.waitForFunction(() => document.querySelectorAll('.pane[data-transport="sse"] .wire-table tbody tr').length > 3);
    await shoot('screenshot-sse-1280x720');
    await page.click('#tab-side');
    await page.setViewportSize({ width: 390, height: 844 });
    await shoot('screenshot-390x844');
  });
});
