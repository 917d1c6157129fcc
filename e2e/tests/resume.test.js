// "Drop connection": each transport resumes from its cursor with nothing lost
// and nothing twice; when the server cannot honour the cursor, the pane says so.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  KINDS, closeApp, idsIn, meter, openApp, pane, startServer, unique, waitAllConnected, waitMessageEverywhere,
  waitState,
} from '../lib/harness.js';

async function cursorOf(page, kind) {
  const text = await pane(page, kind).locator('[data-field="cursor"]').textContent();
  const match = /(\d+)/.exec(text);
  return match ? Number(match[1]) : null;
}

describe('drop connection', () => {
  let server;
  let browser;
  let page;

  before(async () => {
    ({ server, browser, page } = await openApp());
    await waitAllConnected(page);
    // Something to resume after, so every pane has a cursor.
    const first = await server.post('setup', 'before any drop');
    await waitMessageEverywhere(page, first.id);
  });

  after(() => closeApp({ server, browser }));

  for (const kind of KINDS) {
    it(`${kind}: resumes from its cursor and receives every message posted while dropped, once`, async () => {
      const cursor = await cursorOf(page, kind);
      assert.ok(cursor !== null, 'the pane shows a cursor before the drop');
      const countBefore = Number(await meter(page, kind, 'messages'));

      await pane(page, kind).locator('[data-action="drop"]').click();
      await waitState(page, kind, 'dropped');
      const posted = [];
      for (let i = 0; i < 3; i++) posted.push(await server.post('while-dropped', unique(`${kind} ${i}`)));
      // The drop lasts 2 s; three local posts take milliseconds. If the pane came back
      // before they were all in, this test would not be testing resume at all.
      assert.equal(
        await pane(page, kind).getAttribute('data-state'),
        'dropped',
        'the pane reconnected before the messages were posted',
      );

      await waitState(page, kind, 'connected');
      await page.waitForFunction(
        ({ kind, ids }) => ids.every((id) => document.querySelector(`.pane[data-transport="${kind}"] .msg[data-id="${id}"]`)),
        { kind, ids: posted.map((m) => m.id) },
        { timeout: 10_000 },
      );

      // Exactly the three, counted once each by the transport itself.
      const ids = await idsIn(page, kind);
      for (const message of posted) assert.equal(ids.filter((id) => id === message.id).length, 1);
      assert.equal(Number(await meter(page, kind, 'messages')), countBefore + 3);
      assert.equal(await meter(page, kind, 'integrity'), '0 / 0', 'lost / duplicated');
      // It asked from the cursor it had, and the pane said so. The wire log's rows come
      // from the server's wire tap, read once a second: wait for the request's.
      await page.waitForFunction(
        ({ kind, since }) => document.querySelector(`.pane[data-transport="${kind}"] .wire-table`).textContent.includes(since),
        { kind, since: `since=${cursor}` },
        { timeout: 10_000 },
      );
      assert.equal(await pane(page, kind).locator('.notice-dropped').count(), 1);
      assert.equal(await pane(page, kind).locator('.notice-resumed').count(), 1);
    });
  }
});

describe('a cursor the server cannot honour', () => {
  let server;
  let browser;
  let page;

  before(async () => {
    ({ server, browser, page } = await openApp({ args: ['--history', '3'] }));
    await waitAllConnected(page);
    const first = await server.post('setup', 'the cursor');
    await waitMessageEverywhere(page, first.id);
  });

  after(() => closeApp({ server, browser }));

  it('shows a visible reset notice in each pane and carries on from the oldest retained message', async () => {
    for (const kind of KINDS) await pane(page, kind).locator('[data-action="drop"]').click();
    for (const kind of KINDS) await waitState(page, kind, 'dropped');
    // Six messages while the history keeps three: the cursor falls out of the history.
    const posted = [];
    for (let i = 0; i < 6; i++) posted.push(await server.post('flood', unique(`flood ${i}`)));
    for (const kind of KINDS) assert.equal(await pane(page, kind).getAttribute('data-state'), 'dropped');

    const retained = posted.slice(-3).map((m) => m.id);
    for (const kind of KINDS) {
      await page.waitForFunction(
        ({ kind, ids }) => {
          const root = document.querySelector(`.pane[data-transport="${kind}"]`);
          return root.querySelector('.notice-reset') && ids.every((id) => root.querySelector(`.msg[data-id="${id}"]`));
        },
        { kind, ids: retained },
        { timeout: 10_000 },
      );
      const ids = await idsIn(page, kind);
      const lostForGood = posted.slice(0, 3).map((m) => m.id);
      for (const id of lostForGood) assert.ok(!ids.includes(id), `${kind}: #${id} was not retained, yet shown`);
      assert.match(await pane(page, kind).locator('.notice-reset').textContent(), /could not resume from cursor \d+/);
    }
  });
});

describe('a server restart', () => {
  let server;
  let browser;
  let page;

  before(async () => {
    ({ server, browser, page } = await openApp());
    await waitAllConnected(page);
  });

  after(() => closeApp({ server, browser }));

  it('makes every pane reconnect, say that its cursor was reset, and go on with the new server', async () => {
    for (let i = 0; i < 3; i++) await server.post('before', unique(`before restart ${i}`));
    await waitMessageEverywhere(page, 3);

    await server.stop();
    for (const kind of KINDS) await waitState(page, kind, 'reconnecting');
    server = await startServer([], { port: server.port });

    // The new server's ids start again at 1: below every pane's cursor (3).
    const text = unique('after restart');
    const message = await server.post('after', text);
    assert.equal(message.id, 1);
    for (const kind of KINDS) {
      await page.waitForFunction(
        ({ kind, text }) => {
          const root = document.querySelector(`.pane[data-transport="${kind}"]`);
          return root.dataset.state === 'connected' && root.querySelector('.notice-reset')
            && [...root.querySelectorAll('.msg-text')].some((span) => span.textContent === text);
        },
        { kind, text },
        { timeout: 15_000 },
      );
    }
    assert.deepEqual(page.errors, []);
  });
});
