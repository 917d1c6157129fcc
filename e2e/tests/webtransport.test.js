// The fifth pane: Chromium receives the chat over WebTransport (HTTP/3 over QUIC)
// from a server with a self-signed certificate, trusted by the hash the page asks
// the server for (serverCertificateHashes). QUIC is on in this browser only.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  closeApp, idsIn, launchBrowser, meter, openApp, openPage, pane, startServer, unique,
} from '../lib/harness.js';

const KIND = 'webtransport';

async function waitState(page, state, timeout = 15_000) {
  await page.waitForFunction(
    ({ kind, state }) => document.querySelector(`.pane[data-transport="${kind}"]`)?.dataset.state === state,
    { kind: KIND, state },
    { timeout },
  );
}

async function waitId(page, id, timeout = 10_000) {
  await page.waitForFunction(
    ({ kind, id }) => document.querySelector(`.pane[data-transport="${kind}"] .msg[data-id="${id}"]`),
    { kind: KIND, id },
    { timeout },
  );
}

describe('WebTransport pane', () => {
  let app;

  before(async () => {
    app = await openApp({ args: ['--webtransport'], quic: true });
    await waitState(app.page, 'connected');
  });

  after(() => closeApp(app));

  it('receives a message posted over HTTP with its id, over a session the wire log shows', async () => {
    const { server, page } = app;
    const posted = await server.post('curl', unique('to the fifth pane'));
    await waitId(page, posted.id);
    const item = pane(page, KIND).locator(`.msg[data-id="${posted.id}"]`);
    assert.equal(await item.locator('.msg-text').textContent(), posted.text);
    const wire = await pane(page, KIND).locator('.wire-table').textContent();
    assert.match(wire, /CONNECT \/api\/webtransport/);
    assert.match(wire, /line \{"type":"message"\}/);
    assert.deepEqual(page.errors, []);
  });

  it('sends from the composer on a stream of the session, and every pane shows it', async () => {
    const { page } = app;
    const text = unique('over webtransport');
    await page.check('input[name="via"][value="webtransport"]');
    await page.fill('#composer-author', 'wendy');
    await page.fill('#composer-text', text);
    await page.click('button.send');
    const item = pane(page, KIND).locator('.msg', { hasText: text });
    await item.waitFor({ timeout: 10_000 });
    assert.equal(await item.locator('.msg-via').textContent(), 'sent via webtransport');
    const id = await item.getAttribute('data-id');
    await pane(page, 'sse').locator(`.msg[data-id="${id}"]`).waitFor({ timeout: 10_000 });
    const wire = pane(page, KIND).locator('.wire-table');
    // The wire log is in the pane's tab, hidden in this view: wait for the row to exist.
    await wire.locator('text=stream reply {"type":"message"}').first().waitFor({ state: 'attached', timeout: 10_000 });
    assert.match(await wire.textContent(), /stream \{"type":"send"\}/);
    assert.match(await page.textContent('#composer-status'), /WebTransport session/);
    await page.check('input[name="via"][value="http"]');
    assert.deepEqual(page.errors, []);
  });

  it('resumes from its cursor after a drop, nothing lost and nothing twice', async () => {
    const { server, page } = app;
    await pane(page, KIND).locator('[data-action="drop"]').click();
    await waitState(page, 'dropped');
    const missed = [await server.post('curl', unique('while dropped 1')), await server.post('curl', unique('while dropped 2'))];
    await waitState(page, 'connected');
    for (const message of missed) await waitId(page, message.id);
    const ids = await idsIn(page, KIND);
    assert.equal(new Set(ids).size, ids.length, `no duplicates: ${ids}`);
    assert.equal(await meter(page, KIND, 'integrity'), '0 / 0', 'lost / duplicated');
  });

  it('works when the page is opened at localhost while QUIC listens on 127.0.0.1', async () => {
    const context = await app.browser.newContext({ locale: 'en-US' });
    const page = await openPage(context, app.server.base.replace('127.0.0.1', 'localhost'));
    await waitState(page, 'connected');
    const posted = await app.server.post('curl', unique('via localhost'));
    await waitId(page, posted.id);
    await context.close();
  });
});

describe('WebTransport pane without --webtransport', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser({ quic: true });
  });

  after(() => closeApp({ server, browser }));

  it('says why instead of failing', async () => {
    const context = await browser.newContext({ locale: 'en-US' });
    const page = await openPage(context, server.base);
    const notice = pane(page, KIND).locator('.notice', { hasText: '--webtransport' });
    await notice.waitFor({ timeout: 10_000 });
    assert.equal(await pane(page, KIND).getAttribute('data-state'), 'disconnected');
    assert.deepEqual(page.errors, []);
    await context.close();
  });
});
