// English and 中文: the toggle switches all the page's text; a Chinese browser
// starts in Chinese.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { KINDS, closeApp, openPage, pane, repo, startApp, waitAllConnected } from '../lib/harness.js';

const { dictionary, initialLanguage } = await import(pathToFileURL(path.join(repo, 'web/i18n.js')).href);

describe('the dictionaries', () => {
  it('have the same keys in English and Chinese', () => {
    assert.deepEqual(Object.keys(dictionary.zh).sort(), Object.keys(dictionary.en).sort());
  });

  it('know every key the page uses', async () => {
    const html = await readFile(path.join(repo, 'web/index.html'), 'utf8');
    const keys = [...html.matchAll(/data-i18n="([^"]+)"/g)].map((m) => m[1]);
    for (const m of html.matchAll(/data-i18n-attr="([^"]+)"/g)) {
      for (const pair of m[1].split(';')) keys.push(pair.split(':')[1]);
    }
    assert.ok(keys.length > 40);
    for (const key of keys) assert.ok(key in dictionary.en, `missing key ${key}`);
  });

  it('pick the starting language from the saved choice, else the browser', () => {
    assert.equal(initialLanguage(null, ['zh-CN', 'en']), 'zh');
    assert.equal(initialLanguage(null, ['fr-FR', 'en-GB']), 'en');
    assert.equal(initialLanguage(null, ['de-DE']), 'en');
    assert.equal(initialLanguage('en', ['zh-TW']), 'en');
  });
});

/** Every element whose text comes from the dictionary, with its key. */
function translatedTexts(page) {
  return page.$$eval('[data-i18n]', (elements) => elements.map((e) => ({
    key: e.dataset.i18n,
    params: JSON.parse(e.dataset.i18nParams ?? '{}'),
    text: e.textContent,
  })));
}

const fill = (text, params) => text.replace(/\{(\w+)\}/g, (_, name) => String(params[name]));

describe('the language toggle', () => {
  let server;
  let browser;

  before(async () => {
    ({ server, browser } = await startApp());
  });

  after(() => closeApp({ server, browser }));

  it('switches every piece of the page’s text to Chinese and back', async () => {
    const page = await openPage(await browser.newContext({ locale: 'en-US' }), server.base);
    await waitAllConnected(page);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.equal(await page.textContent('#tab-side'), 'Side by side');

    await page.click('#lang');
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    assert.equal(await page.textContent('#tab-side'), '并排对比');
    assert.equal(await pane(page, 'sse').locator('[data-field="state"]').textContent(), '已连接');
    assert.equal(await page.getAttribute('#composer-text', 'placeholder'), dictionary.zh['composer.placeholder']);
    assert.equal(await page.title(), dictionary.zh['page.title']);
    const texts = await translatedTexts(page);
    assert.ok(texts.length > 60);
    for (const { key, params, text } of texts) {
      assert.equal(text, fill(dictionary.zh[key], params), `not in Chinese: ${key}`);
    }

    await page.click('#lang');
    assert.equal(await page.textContent('#tab-side'), 'Side by side');
    assert.equal(await pane(page, 'sse').locator('[data-field="state"]').textContent(), 'connected');
    await page.context().close();
  });

  it('starts in Chinese when the browser prefers Chinese, and remembers a choice', async () => {
    const context = await browser.newContext({ locale: 'zh-CN' });
    const page = await openPage(context, server.base);
    await waitAllConnected(page);
    assert.equal(await page.textContent('#tab-compare'), '比较');
    for (const kind of KINDS) assert.equal(await pane(page, kind).locator('[data-action="drop"]').textContent(), '模拟断线');
    await page.click('#lang');
    await page.reload();
    assert.equal(await page.textContent('#tab-compare'), 'Compare');
    await context.close();
  });
});
