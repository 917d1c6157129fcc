// What every browser test needs: the real pushlab binary on a free port,
// Debian's Chromium driven by playwright-core, and small waits that read the
// page the way a person would (pane states, message ids, meters).
//
// Nothing here sleeps for a fixed time: every wait is for an event or a state,
// with a bounded timeout.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
// The page's own list of techniques (plain ES modules, importable from node too).
import { KINDS as ALL_KINDS } from '../../web/transports/index.js';

// The panes every test expects to connect: all but WebTransport, which needs a
// server started with --webtransport and a browser with QUIC on
// (launchBrowser({ quic: true })); tests/webtransport.test.js covers it.
export const KINDS = ALL_KINDS.filter((kind) => kind !== 'webtransport');
export { ALL_KINDS };

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
const BIN = process.env.PUSHLAB_BIN ?? path.resolve(repo, 'target/debug/pushlab');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** A port nobody uses right now: listen on 0, read it, close. */
export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * One request from outside the browser, as curl would make it: over HTTP/1.1, or
 * over HTTPS accepting the self-signed certificate of a `--tls` server (node's fetch
 * cannot be told to). Returns { status, body, json(), fingerprint } where
 * `fingerprint` is the served certificate's SHA-256, as pushlab prints it.
 */
export function request(url, { method = 'GET', headers = {}, body } = {}) {
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    // agent: false, so that no kept-alive connection of the harness is counted by the server.
    const outgoing = client.request(url, { method, headers, agent: false, rejectUnauthorized: false }, (response) => {
      const fingerprint = response.socket.getPeerCertificate?.()?.fingerprint256;
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode, body: text, json: () => JSON.parse(text), fingerprint }));
    });
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

/**
 * Start `pushlab --addr 127.0.0.1:PORT --web-dir <repo>/web` and wait until
 * /healthz answers. Returns { base, port, post(), stop() }. Pass `port` to
 * start again where a stopped server was (a restart, as the page sees it).
 * With `--tls` among the arguments the base is https:// and `fingerprint` is the
 * certificate's, as printed at start.
 */
export async function startServer(extraArgs = [], { port } = {}) {
  port ??= await freePort();
  const args = ['--addr', `127.0.0.1:${port}`, '--web-dir', path.join(repo, 'web'), '--log', 'warn', ...extraArgs];
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.stdout.on('data', (chunk) => (stdout += chunk));
  const exited = once(child, 'exit');
  const scheme = extraArgs.includes('--tls') ? 'https' : 'http';
  const base = `${scheme}://127.0.0.1:${port}`;

  // Readiness: poll /healthz, bounded; stop at once if the binary died.
  let died = false;
  exited.then(() => (died = true));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (died) throw new Error(`pushlab exited before answering /healthz (${BIN}):\n${stderr}`);
    try {
      const response = await request(`${base}/healthz`);
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`pushlab did not answer ${base}/healthz within 20 s:\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  return {
    base,
    port,
    fingerprint: stdout.match(/SHA-256 ([0-9A-F:]+)/)?.[1],
    /** POST /api/messages from outside the browser, as curl would. Returns the stored message. */
    async post(author, text) {
      const response = await request(`${base}/api/messages`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ author, text }),
      });
      if (response.status !== 201) throw new Error(`POST /api/messages: ${response.status} ${response.body}`);
      return response.json();
    },
    /** GET a JSON path from outside the browser. */
    async get(path) {
      return (await request(`${base}${path}`)).json();
    },
    async stop() {
      if (!died) {
        child.kill('SIGTERM');
        await exited;
      }
    },
    stderr: () => stderr,
  };
}

/** Chromium, headless; QUIC (so WebTransport) off unless `quic` is true. */
export function launchBrowser({ quic = false } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      ...(quic ? [] : ['--disable-quic']),
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
      // A --tls server's certificate is self-signed, made at its start: a person
      // clicks through the warning once (README); the tests tell Chromium not to ask.
      '--ignore-certificate-errors',
    ],
  });
}

/**
 * Open the page; record dialogs (which should never appear) and script errors.
 * page.dialogs and page.errors are arrays the tests can check.
 */
/**
 * The usual set-up of a test file: a server started with `args`, Chromium, and the
 * page opened in a fresh context (English unless `contextOptions` say otherwise).
 * Returns { server, browser, page }; pass it to closeApp() when done.
 */
export async function openApp({ args = [], contextOptions = {}, quic = false } = {}) {
  const { server, browser } = await startApp(args, { quic });
  const context = await browser.newContext({ locale: 'en-US', ...contextOptions });
  const page = await openPage(context, server.base);
  return { server, browser, page };
}

/**
 * A server started with `args` and Chromium (QUIC on if `quic`), for tests that open
 * their own contexts.
 */
export async function startApp(args = [], { quic = false } = {}) {
  return { server: await startServer(args), browser: await launchBrowser({ quic }) };
}

/** Closes what openApp() (or a test's own set-up) opened; safe on partial set-ups. */
export async function closeApp({ server, browser } = {}) {
  await browser?.close();
  await server?.stop();
}

export async function openPage(context, base, hash = '') {
  const page = await context.newPage();
  page.dialogs = [];
  page.errors = [];
  page.on('dialog', (dialog) => {
    page.dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (error) => page.errors.push(error.message));
  await page.goto(`${base}/${hash}`);
  return page;
}

export const pane = (page, kind) => page.locator(`.pane[data-transport="${kind}"]`);

/** Wait until every pane says "connected". */
export async function waitAllConnected(page, timeout = 15_000) {
  await page.waitForFunction(
    (kinds) => kinds.every((k) => document.querySelector(`.pane[data-transport="${k}"]`)?.dataset.state === 'connected'),
    KINDS,
    { timeout },
  );
}

/** Wait until one pane is in `state` (connecting, connected, reconnecting, dropped …). */
export async function waitState(page, kind, state, timeout = 10_000) {
  await page.waitForFunction(
    ({ kind, state }) => document.querySelector(`.pane[data-transport="${kind}"]`)?.dataset.state === state,
    { kind, state },
    { timeout },
  );
}

/** Wait until the message with this id is on screen in every pane. */
export async function waitMessageEverywhere(page, id, timeout = 10_000) {
  await page.waitForFunction(
    ({ kinds, id }) => kinds.every((k) => document.querySelector(`.pane[data-transport="${k}"] .msg[data-id="${id}"]`)),
    { kinds: KINDS, id },
    { timeout },
  );
}

/** Wait until a message with this exact text is in every pane; returns {kind: id}. */
export async function waitTextEverywhere(page, text, timeout = 10_000) {
  const handle = await page.waitForFunction(
    ({ kinds, text }) => {
      const ids = {};
      for (const k of kinds) {
        const items = [...document.querySelectorAll(`.pane[data-transport="${k}"] .msg`)];
        const item = items.find((li) => li.querySelector('.msg-text').textContent === text);
        if (!item) return null;
        ids[k] = Number(item.dataset.id);
      }
      return ids;
    },
    { kinds: KINDS, text },
    { timeout },
  );
  return handle.jsonValue();
}

/** The text of one meter of one pane. */
export function meter(page, kind, name) {
  return pane(page, kind).locator(`[data-meter="${name}"]`).textContent();
}

/** Ids on screen in one pane, in order. */
export function idsIn(page, kind) {
  return pane(page, kind).locator('.msg').evaluateAll((items) => items.map((li) => Number(li.dataset.id)));
}

/** A short unique text, so tests never match each other's messages. */
let counter = 0;
export function unique(label) {
  counter += 1;
  return `${label} ${process.pid}-${counter}-${Math.random().toString(36).slice(2, 7)}`;
}
