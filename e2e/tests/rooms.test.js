// Rooms on the page: the room field (and ?room= in the address) switches all four
// panes and the online list to another chat without a reload and without losing a
// message, and tabs watching different rooms still share one set of connections
// per room through one leader tab.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  KINDS, closeApp, idsIn, meter, openPage, startApp, unique, waitAllConnected, waitTextEverywhere,
} from '../lib/harness.js';

/** POST a message to a room from outside the browser, as curl would. */
async function postTo(server, room, author, text) {
  const response = await fetch(`${server.base}/api/rooms/${room}/messages`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ author, text }),
  });
  assert.equal(response.status, 201, await response.clone().text());
  return response.json();
}

/** Every text on screen in any pane. */
const textsOnScreen = (page) => page.locator('.pane .msg-text').allTextContents();

const roleOf = (page) => page.getAttribute('#role', 'data-role');

describe('rooms on the page', () => {
  let server;
  let browser;

  before(async () => {
    ({ server, browser } = await startApp());
  });

  after(() => closeApp({ server, browser }));

  it('starts in the room the address names and shows only that room', async () => {
    const inLobby = unique('lobby only');
    const inMaths = unique('maths only');
    await server.post('alice', inLobby);
    await postTo(server, 'maths', 'bob', inMaths);
    const context = await browser.newContext({ locale: 'en-US' });
    const page = await openPage(context, server.base, '?room=maths');
    await waitAllConnected(page);
    assert.equal(await page.inputValue('#room'), 'maths');
    const ids = await waitTextEverywhere(page, inMaths);
    assert.deepEqual(Object.values(ids), KINDS.map(() => 1), 'maths counts its own ids');
    assert.ok(!(await textsOnScreen(page)).includes(inLobby), 'nothing of the lobby');
    // Posted from the page: into maths.
    const fromPage = unique('from the page in maths');
    await page.fill('#composer-text', fromPage);
    await page.press('#composer-text', 'Enter');
    await waitTextEverywhere(page, fromPage);
    const stored = await (await fetch(`${server.base}/api/rooms/maths/messages?since=0`)).json();
    assert.ok(stored.messages.some((m) => m.text === fromPage));
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  it('switches every pane and who is online to another room without a reload or a lost message', async () => {
    const context = await browser.newContext({ locale: 'en-US' });
    const page = await openPage(context, server.base);
    await waitAllConnected(page);
    const lobbyText = unique('in the lobby');
    await server.post('carol', lobbyText);
    await waitTextEverywhere(page, lobbyText);
    await page.evaluate(() => { window.notReloaded = true; });

    const waiting = unique('waiting in art');
    await postTo(server, 'art', 'dave', waiting);
    await page.fill('#room', 'art');
    await page.press('#room', 'Enter');
    // Posted while the panes are switching: it must arrive too.
    const during = unique('during the switch');
    await postTo(server, 'art', 'dave', during);
    await waitAllConnected(page);
    await waitTextEverywhere(page, waiting);
    await waitTextEverywhere(page, during);
    const later = unique('after the switch');
    await postTo(server, 'art', 'erin', later);
    await server.post('carol', unique('the lobby again'));
    await waitTextEverywhere(page, later);

    assert.equal(await page.evaluate(() => window.notReloaded), true, 'no reload');
    assert.match(page.url(), /\?room=art$/);
    for (const kind of KINDS) {
      assert.deepEqual(await idsIn(page, kind), [1, 2, 3], `${kind} shows art's messages only`);
      assert.equal(await meter(page, kind, 'integrity'), '0 / 0', `${kind}: lost / duplicated`);
    }
    assert.ok(!(await textsOnScreen(page)).includes(lobbyText));
    // Who is online is art's: this page, on the push transports at least.
    await page.waitForFunction(() => document.querySelectorAll('#online-list li[data-client] .badge').length >= 2);
    const presence = await (await fetch(`${server.base}/api/rooms/art/presence`)).json();
    assert.ok(presence.clients.some((c) => c.transport === 'websocket'), JSON.stringify(presence));
    const lobby = await (await fetch(`${server.base}/api/presence`)).json();
    assert.ok(!lobby.clients.some((c) => c.transport === 'websocket'), 'the lobby socket was closed');

    // A bad name is refused on the page and changes nothing.
    await page.fill('#room', 'no spaces');
    await page.click('#room-form button');
    assert.equal(await page.inputValue('#room'), 'no spaces');
    assert.match(page.url(), /\?room=art$/);
    assert.deepEqual(page.errors, []);
    await context.close();
  });

  it('shares connections per room between tabs watching different rooms', async () => {
    const context = await browser.newContext({ locale: 'en-US' });
    const first = await openPage(context, server.base, '?room=red');
    await waitAllConnected(first);
    const second = await openPage(context, server.base, '?room=blue');
    await waitAllConnected(second);
    const roles = await Promise.all([first, second].map(roleOf));
    assert.deepEqual([...roles].sort(), ['follower', 'leader']);

    const red = unique('red only');
    const blue = unique('blue only');
    await postTo(server, 'red', 'frank', red);
    await postTo(server, 'blue', 'grace', blue);
    await waitTextEverywhere(first, red);
    await waitTextEverywhere(second, blue);
    assert.ok(!(await textsOnScreen(first)).includes(blue));
    assert.ok(!(await textsOnScreen(second)).includes(red));
    const rooms = await (await fetch(`${server.base}/api/rooms`)).json();
    const clients = Object.fromEntries(rooms.rooms.map((r) => [r.name, r.clients]));
    assert.ok(clients.red >= 2 && clients.blue >= 2, `one set of connections per room: ${JSON.stringify(rooms)}`);

    // The leader closes: the other tab takes over its own room from its cursors.
    const leader = roles[0] === 'leader' ? first : second;
    const rest = leader === first ? second : first;
    const restRoom = leader === first ? 'blue' : 'red';
    await leader.close();
    const handedOver = unique('during the hand-over');
    await postTo(server, restRoom, 'heidi', handedOver);
    await rest.waitForFunction(() => document.querySelector('#role').dataset.role === 'leader', null, { timeout: 10_000 });
    await waitAllConnected(rest);
    await waitTextEverywhere(rest, handedOver);
    for (const kind of KINDS) {
      assert.deepEqual(await idsIn(rest, kind), [1, 2], `${kind} in ${restRoom}`);
      assert.equal(await meter(rest, kind, 'integrity'), '0 / 0');
    }
    assert.deepEqual(rest.errors, []);
    await context.close();
  });
});
