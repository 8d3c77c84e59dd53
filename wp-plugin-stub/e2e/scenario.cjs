// Browser steps of the end-to-end test, run by run.sh (which starts WordPress,
// MariaDB and keyd and passes their addresses in the environment).
//
// Part A needs no keyd: login, the settings page, the malformed-key refusal,
// the "could not reach keyd" notice and the webhook receiver's answers to
// messages signed here. Part B drives a real keyd through its HTTP API
// (API.md) and checks what the site shows. Each step logs its name; a failing
// step saves a screenshot named after it.
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { execFileSync } = require('child_process');

const env = (name, fallback) => {
  const v = process.env[name];
  if (v === undefined || (v === '' && fallback === undefined)) {
    if (fallback !== undefined) return fallback;
    throw new Error(`missing environment variable ${name}`);
  }
  return v;
};

const { chromium } = require(path.join(env('E2E_NODE_MODULES'), 'playwright-core'));

const WP_URL = env('WP_URL');
const WP_USER = env('WP_USER');
const WP_PASS = env('WP_PASS');
const DEAD_URL = env('DEAD_URL');
const KEYD_URL = env('KEYD_URL', '');
const KEYD_ADMIN_TOKEN = env('KEYD_ADMIN_TOKEN', '');
// keyd's process group, so that a step can stop keyd (SIGSTOP) and resume it.
const KEYD_PGID = Number(env('KEYD_PGID', '0'));
const SHOTS = env('E2E_SCREENSHOTS');
const WEBHOOK_SH = env('E2E_WEBHOOK_SH');
const WP_CONFIG_EXTRA = env('E2E_WP_CONFIG_EXTRA');
const SETTINGS_URL = `${WP_URL}/wp-admin/options-general.php?page=keyd-stub`;
const WEBHOOK_URL = `${WP_URL}/wp-json/keyd-stub/v1/webhook`;
const WEBHOOK_URL_PLAIN = `${WP_URL}/?rest_route=/keyd-stub/v1/webhook`;

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

let page;
let shotCount = 0;

function log(msg) {
  console.log(`[e2e ${new Date().toISOString().slice(11, 19)}]   ${msg}`);
}

async function screenshot(name) {
  shotCount += 1;
  const file = path.join(SHOTS, `${String(shotCount).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function step(name, fn) {
  log(`step: ${name}`);
  try {
    await fn();
  } catch (err) {
    try {
      const file = await screenshot(`FAILED-${name.replace(/[^a-z0-9]+/gi, '-')}`);
      log(`screenshot of the failure: ${file}`);
    } catch (_) { /* the page itself may be gone */ }
    err.message = `step "${name}": ${err.message}`;
    throw err;
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function assertIncludes(haystack, needle, what) {
  assert(haystack.includes(needle), `${what}: expected to contain ${JSON.stringify(needle)}, got ${JSON.stringify(haystack)}`);
}

function randomKey() {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(crypto.randomBytes(20), (b) => alphabet[b % alphabet.length]).join('');
}

// ---------------------------------------------------------------------------
// The settings page

async function openSettings() {
  await page.goto(SETTINGS_URL, { waitUntil: 'load' });
  await page.locator('.keyd-stub-status').waitFor();
}

// Fills the form (only the fields given) and presses "Save settings & validate".
// Returns the text of the outcome notices shown after the redirect.
async function save({ key, url, secret } = {}) {
  await openSettings();
  if (key !== undefined) await page.fill('#keyd-stub-api-key', key);
  if (url !== undefined) await page.fill('#keyd-stub-url', url);
  if (secret !== undefined) await page.fill('#keyd-stub-webhook-secret', secret);
  // The page redirects back to itself, so its URL cannot tell the two pages
  // apart: mark the current document and wait for one without the mark.
  await page.evaluate(() => { window.keydStubBeforeSubmit = true; });
  await page.click('#keyd-stub-submit');
  await page.waitForFunction(
    () => !window.keydStubBeforeSubmit && document.readyState === 'complete' && document.querySelector('.keyd-stub-status') !== null,
    null,
    { timeout: 30000 },
  );
  assert(page.url().includes('options-general.php?page=keyd-stub'), `not back on the settings page: ${page.url()}`);
  const notices = await page.locator('.keyd-stub-result').allInnerTexts();
  assert(notices.length > 0, 'no outcome notice after "Save settings & validate"');
  return notices.join('\n');
}

async function statusText() {
  return page.locator('.keyd-stub-status').innerText();
}

// Reloads the settings page until an event notice containing `text` shows.
async function waitForEventNotice(text, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < end) {
    await openSettings();
    last = (await page.locator('.keyd-stub-event').allInnerTexts()).join('\n');
    if (last.includes(text)) return last;
    await page.waitForTimeout(700);
  }
  throw new Error(`no notice ${JSON.stringify(text)} within ${timeoutMs / 1000}s (last seen: ${JSON.stringify(last)})`);
}

// ---------------------------------------------------------------------------
// Webhooks sent with curl, signed with openssl (webhook.sh), not with the
// plugin's own PHP code.

function sign(secret, id, ts, body) {
  return execFileSync('bash', [WEBHOOK_SH, 'sign', secret, id, String(ts), body], { encoding: 'utf8', timeout: 10000 }).trim();
}

function post(url, id, ts, signature, body) {
  const out = execFileSync('bash', [WEBHOOK_SH, 'post', url, id, String(ts), signature, body], { encoding: 'utf8', timeout: 20000 }).trim();
  const space = out.indexOf(' ');
  return { status: Number(out.slice(0, space)), body: out.slice(space + 1) };
}

function now() {
  return Math.floor(Date.now() / 1000);
}

function msgId() {
  return `msg_e2e${crypto.randomBytes(8).toString('hex')}`;
}

// Checks the receiver's answers for one secret: 200 good, 200 duplicate,
// 401 tampered / wrong secret / unsigned, 400 stale / future.
function checkReceiver(secret) {
  const body = JSON.stringify({ type: 'credits.low', timestamp: new Date().toISOString(), data: { credits: 5 } });
  const id = msgId();
  const ts = now();
  const sig = sign(secret, id, ts, body);

  let r = post(WEBHOOK_URL, id, ts, sig, body);
  assert(r.status === 200, `good signature: want 200, got ${r.status} ${r.body}`);
  r = post(WEBHOOK_URL, id, ts, sig, body);
  assert(r.status === 200 && r.body.includes('"duplicate":true'), `duplicate: want 200 duplicate, got ${r.status} ${r.body}`);

  r = post(WEBHOOK_URL, msgId(), ts, sig, body);
  assert(r.status === 401, `signature of another message id: want 401, got ${r.status} ${r.body}`);
  r = post(WEBHOOK_URL, id, ts, sig, body.replace('5', '6'));
  assert(r.status === 401, `tampered body: want 401, got ${r.status} ${r.body}`);
  const wrong = `whsec_${crypto.randomBytes(24).toString('base64')}`;
  const id2 = msgId();
  r = post(WEBHOOK_URL, id2, ts, sign(wrong, id2, ts, body), body);
  assert(r.status === 401, `wrong secret: want 401, got ${r.status} ${r.body}`);
  r = post(WEBHOOK_URL, msgId(), ts, '', body);
  assert(r.status === 401, `no signature: want 401, got ${r.status} ${r.body}`);
  const id3 = msgId();
  r = post(WEBHOOK_URL, id3, ts, `v1,AAAA ${sign(secret, id3, ts, body)}`, body);
  assert(r.status === 200, `several signatures, one good: want 200, got ${r.status} ${r.body}`);

  const stale = now() - 600;
  const id4 = msgId();
  r = post(WEBHOOK_URL, id4, stale, sign(secret, id4, stale, body), body);
  assert(r.status === 400, `stale timestamp: want 400, got ${r.status} ${r.body}`);
  const future = now() + 600;
  const id5 = msgId();
  r = post(WEBHOOK_URL, id5, future, sign(secret, id5, future, body), body);
  assert(r.status === 400, `future timestamp: want 400, got ${r.status} ${r.body}`);

  const id6 = msgId();
  const ts6 = now();
  r = post(WEBHOOK_URL_PLAIN, id6, ts6, sign(secret, id6, ts6, body), body);
  assert(r.status === 200, `?rest_route= form: want 200, got ${r.status} ${r.body}`);
}

// ---------------------------------------------------------------------------
// keyd's HTTP API (API.md)

async function keyd(method, urlPath, { body, key, admin } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (key) headers['X-API-Key'] = key;
  if (admin) headers.Authorization = `Bearer ${KEYD_ADMIN_TOKEN}`;
  const res = await fetch(`${KEYD_URL}${urlPath}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
  return { status: res.status, json, text };
}

async function keydOk(method, urlPath, want, opts) {
  const r = await keyd(method, urlPath, opts);
  assert(r.status === want, `${method} ${urlPath}: want ${want}, got ${r.status} ${r.text}`);
  return r.json;
}

// ---------------------------------------------------------------------------

async function partA() {
  await step('log in', async () => {
    await page.goto(`${WP_URL}/wp-login.php`, { waitUntil: 'domcontentloaded' });
    await page.fill('#user_login', WP_USER);
    await page.fill('#user_pass', WP_PASS);
    await Promise.all([
      page.waitForURL(/\/wp-admin\//, { timeout: 30000 }),
      page.click('#wp-submit'),
    ]);
  });

  await step('settings page', async () => {
    await openSettings();
    const field = page.locator('#keyd-stub-api-key');
    assert((await field.getAttribute('type')) === 'password', 'the key field is not password-style');
    await page.click('button[data-target="keyd-stub-api-key"]');
    assert((await field.getAttribute('type')) === 'text', 'the show toggle does not reveal the key');
    await page.click('button[data-target="keyd-stub-api-key"]');
    assert((await field.getAttribute('type')) === 'password', 'the show toggle does not hide the key again');
    assertIncludes(await page.locator('.keyd-stub-webhook-url').innerText(), '/wp-json/keyd-stub/v1/webhook', 'webhook address shown');
    assertIncludes(await statusText(), 'No API key yet', 'status before any key');
    await screenshot('settings-empty');
  });

  await step('the form needs a nonce', async () => {
    // Posting without the nonce must not save anything.
    const res = await page.request.post(`${WP_URL}/wp-admin/admin-post.php`, {
      form: { action: 'keyd_stub_save', 'keyd_stub[api_key]': randomKey() },
      maxRedirects: 0,
    });
    assert(res.status() === 403, `admin-post without nonce: want 403, got ${res.status()}`);
    await openSettings();
    assertIncludes(await statusText(), 'No API key yet', 'status after a post without nonce');
  });

  await step('malformed key is refused before any network call', async () => {
    // keyd's URL points at a closed port: had the plugin called it, the
    // notice would say it could not reach keyd.
    const out = await save({ key: 'not-a-key!', url: DEAD_URL });
    assertIncludes(out, 'This is not an API key', 'refusal notice');
    assert(!out.includes('Could not reach'), `the malformed key went to the network: ${out}`);
    assert((await page.inputValue('#keyd-stub-api-key')) === '', 'the malformed key was saved');
    await screenshot('malformed-refused');
  });

  await step('unreachable keyd', async () => {
    const out = await save({ key: randomKey(), url: DEAD_URL });
    assertIncludes(out, 'Could not reach keyd', 'unreachable notice');
    assertIncludes(out, DEAD_URL, 'unreachable notice names the URL');
    assertIncludes(await statusText(), 'No API key yet', 'state kept when keyd is unreachable');
    await screenshot('keyd-unreachable');
  });

  await step('webhook receiver answers 200 / 401 / 400 (locally signed)', async () => {
    const secret = `whsec_${crypto.randomBytes(24).toString('base64')}`;
    const out = await save({ key: '', secret });
    assert(!out.includes('not saved'), `the webhook secret was refused: ${out}`);
    assert((await page.inputValue('#keyd-stub-webhook-secret')) === secret, 'the webhook secret was not stored');
    checkReceiver(secret);
  });

  await step('bad keyd URL is refused', async () => {
    const out = await save({ url: 'ftp://keyd.example.com' }) // the browser itself refuses text without a scheme;
    assertIncludes(out, 'The keyd URL was not saved', 'refusal of a bad URL');
    assert((await page.inputValue('#keyd-stub-url')) === DEAD_URL, 'the bad URL replaced the stored one');
  });

  await step('bad webhook secret is refused', async () => {
    const before = await page.inputValue('#keyd-stub-webhook-secret');
    const out = await save({ secret: 'not a secret' });
    assertIncludes(out, 'The webhook secret was not saved', 'refusal of a bad secret');
    assert((await page.inputValue('#keyd-stub-webhook-secret')) === before, 'the bad secret replaced the good one');
  });
}

async function constantsStep() {
  await step('wp-config.php constants override and hide the fields', async () => {
    const key = randomKey();
    const secret = `whsec_${crypto.randomBytes(24).toString('base64')}`;
    fs.writeFileSync(WP_CONFIG_EXTRA, [
      '<?php',
      `define( 'KEYD_API_KEY', '${key}' );`,
      `define( 'KEYD_URL', '${DEAD_URL}' );`,
      `define( 'KEYD_WEBHOOK_SECRET', '${secret}' );`,
      '',
    ].join('\n'));
    try {
      await openSettings();
      assert((await page.locator('#keyd-stub-api-key').count()) === 0, 'the key field is shown despite KEYD_API_KEY');
      assert((await page.locator('#keyd-stub-url').count()) === 0, 'the URL field is shown despite KEYD_URL');
      assert((await page.locator('#keyd-stub-webhook-secret').count()) === 0, 'the secret field is shown despite KEYD_WEBHOOK_SECRET');
      const text = await page.locator('.wrap').innerText();
      assertIncludes(text, 'set by KEYD_API_KEY', 'page explains the key constant');
      assertIncludes(text, DEAD_URL, 'page shows the KEYD_URL value');
      assert(!text.includes(key), 'the page shows the key from wp-config.php');
      await screenshot('constants');
      // Validation uses the constant key and URL: keyd is "down" there.
      const out = await save();
      assertIncludes(out, `Could not reach keyd at ${DEAD_URL}`, 'validation with the constants');
      checkReceiver(secret);
    } finally {
      fs.rmSync(WP_CONFIG_EXTRA, { force: true });
    }
    await openSettings();
    assert((await page.locator('#keyd-stub-api-key').count()) === 1, 'the key field did not come back');
  });
}

async function partB() {
  let primary;
  let accountId;
  let alias;
  let webhookSecret;

  await step('keyd: create an account (admin API)', async () => {
    const r = await keydOk('POST', '/admin/v1/accounts', 201, {
      admin: true,
      body: { name: 'e2e site owner', email: 'owner@example.com', plan: 'pro', credits: 1200 },
    });
    assert(/^[A-Za-z0-9]{20}$/.test(r.key), `account key is not 20 alphanumerics: ${r.key}`);
    primary = r.key;
    accountId = r.account && r.account.id;
    assert(accountId, `no account id: ${JSON.stringify(r)}`);
  });

  await step('validate the primary key', async () => {
    const out = await save({ key: primary, url: KEYD_URL });
    assertIncludes(out, 'Your API key is valid.', 'valid notice');
    assertIncludes(out, 'Primary key', 'key type');
    assertIncludes(out, 'Never', 'expiry of a primary key');
    assertIncludes(out, '1,200', 'credits');
    assertIncludes(await statusText(), 'Valid', 'status');
    assertIncludes(await statusText(), primary.slice(-4), 'hint in the status');
    await screenshot('primary-valid');
  });

  await step('unreachable keyd keeps the validated state', async () => {
    const out = await save({ key: randomKey(), url: DEAD_URL });
    assertIncludes(out, 'Could not reach keyd', 'unreachable notice');
    // The receipt keyd signed at the last validation keeps the key working.
    assertIncludes(out, 'keyd could not be reached; your key was last confirmed at', 'offline grace in the notice');
    const status = await statusText();
    assertIncludes(status, 'Valid', 'status kept');
    assertIncludes(status, primary.slice(-4), 'same key kept');
    assertIncludes(status, 'stays accepted until', 'offline grace in the status');
    assert((await page.inputValue('#keyd-stub-api-key')) === primary, 'the stored key was replaced');
    await screenshot('unreachable-state-kept');
    const back = await save({ key: primary, url: KEYD_URL });
    assertIncludes(back, 'Your API key is valid.', 'valid again');
  });

  await step('keyd stopped: the receipt keeps the key working', async () => {
    assert(KEYD_PGID > 0, 'KEYD_PGID is not set');
    // A stopped keyd accepts connections and answers nothing, as a hung
    // server does: the check times out and the stored receipt decides.
    process.kill(-KEYD_PGID, 'SIGSTOP');
    try {
      const out = await save({ key: primary, url: KEYD_URL });
      assertIncludes(out, 'keyd could not be reached; your key was last confirmed at', 'offline grace with keyd stopped');
      const status = await statusText();
      assertIncludes(status, 'Valid', 'status kept with keyd stopped');
      assertIncludes(status, 'stays accepted until', 'offline grace in the status with keyd stopped');
      await screenshot('keyd-stopped-offline-grace');
    } finally {
      process.kill(-KEYD_PGID, 'SIGCONT');
    }
    const back = await save({ key: primary, url: KEYD_URL });
    assertIncludes(back, 'Your API key is valid.', 'valid again once keyd runs');
  });

  await step('malformed key keeps the validated key', async () => {
    const out = await save({ key: 'short' });
    assertIncludes(out, 'This is not an API key', 'refusal notice');
    assertIncludes(await statusText(), 'Valid', 'status kept');
    assert((await page.inputValue('#keyd-stub-api-key')) === primary, 'the stored key was replaced');
  });

  await step('keyd: register the site as webhook receiver', async () => {
    const r = await keydOk('POST', '/v1/webhooks', 201, {
      key: primary,
      body: { url: WEBHOOK_URL, events: ['*'], description: 'e2e WordPress site' },
    });
    assert(typeof r.secret === 'string' && r.secret.startsWith('whsec_'), `no whsec_ secret: ${JSON.stringify(r)}`);
    webhookSecret = r.secret;
    const out = await save({ key: primary, secret: webhookSecret });
    assertIncludes(out, 'Your API key is valid.', 'valid with the secret saved');
  });

  await step('tampered webhook 401, stale 400 (keyd\'s secret)', async () => {
    checkReceiver(webhookSecret);
  });

  await step('keyd: create a temporary alias and validate it', async () => {
    const r = await keydOk('POST', '/v1/aliases', 201, {
      key: primary,
      body: { name: 'client site', ttl: '7d', allowed_sites: ['127.0.0.1'] },
    });
    assert(r.alias && r.alias.id, `no alias id: ${JSON.stringify(r)}`);
    alias = { id: r.alias.id, key: r.key };
    const out = await save({ key: alias.key });
    assertIncludes(out, 'Your API key is valid.', 'alias valid');
    assertIncludes(out, 'Alias "client site"', 'alias name');
    assert(!out.includes('Never (permanent key)'), `a 7-day alias shows no expiry: ${out}`);
    await screenshot('alias-valid');
  });

  await step('an alias bound to another site works on a local copy only', async () => {
    const r = await keydOk('POST', '/v1/aliases', 201, {
      key: primary,
      body: { name: 'other site', allowed_sites: ['example.com'] },
    });
    // keyd always allows local development hosts such as 127.0.0.1, so a
    // developer can try a client's key on a local copy of the site...
    const out = await save({ key: r.key });
    assertIncludes(out, 'Your API key is valid.', 'bound alias on a local host');
    // ...while from any other site it is refused, and the plugin words it.
    const refused = await keyd('POST', '/v1/validate', { body: { key: r.key, site: 'https://shop.example.org/' } });
    assert(refused.status === 403 && refused.json && refused.json.code === 'SITE_NOT_ALLOWED',
      `validate from another site: ${refused.status} ${refused.text}`);
    await keydOk('DELETE', `/v1/aliases/${r.alias.id}`, 204, { key: primary });
  });

  await step('an alias with site activations and a spend limit', async () => {
    const r = await keydOk('POST', '/v1/aliases', 201, {
      key: primary,
      body: { name: 'licensed site', max_sites: 1, spend_limit: { limit: 5, period: 'month' } },
    });
    // Another site takes the only slot; this one runs on 127.0.0.1, a
    // development host, which never takes one.
    const first = await keyd('POST', '/v1/validate', { body: { key: r.key, site: 'https://shop.example.org/' } });
    assert(first.status === 200 && first.json && first.json.sites && first.json.sites.used === 1,
      `validate from the first site: ${first.status} ${first.text}`);
    const full = await keyd('POST', '/v1/validate', { body: { key: r.key, site: 'https://second.example.org/' } });
    assert(full.status === 403 && full.json && full.json.code === 'SITE_LIMIT_REACHED',
      `validate from a second site: ${full.status} ${full.text}`);
    await keydOk('POST', '/v1/usage', 200, { key: r.key, body: { units: 5 } });
    const spent = await keyd('POST', '/v1/usage', { key: r.key, body: { units: 1 } });
    assert(spent.status === 402 && spent.json && spent.json.error.code === 'KEY_SPEND_LIMIT_REACHED',
      `a charge over the limit: ${spent.status} ${spent.text}`);

    const out = await save({ key: r.key });
    assertIncludes(out, 'Your API key is valid.', 'licensed alias valid');
    const status = await statusText();
    assertIncludes(status, '1 of 1 site uses this key', 'activations used');
    assertIncludes(status, 'used all 5 units it may spend this month', 'spend-limit message');
    await screenshot('activations-and-spend-limit');

    // "Deactivate this site": this site held no slot, so nothing is freed.
    await page.evaluate(() => { window.keydStubBeforeSubmit = true; });
    await page.click('#keyd-stub-deactivate');
    await page.waitForFunction(
      () => !window.keydStubBeforeSubmit && document.readyState === 'complete' && document.querySelector('.keyd-stub-status') !== null,
      null,
      { timeout: 30000 },
    );
    const notice = (await page.locator('.keyd-stub-result').allInnerTexts()).join('\n');
    assertIncludes(notice, 'nothing to deactivate', 'deactivate this site');
    assertIncludes(notice, '1 of 1', 'activations after deactivating');
    await screenshot('deactivate-this-site');
    await keydOk('DELETE', `/v1/aliases/${r.alias.id}`, 204, { key: primary });
  });

  let oldPrimary;
  await step('keyd: reset the primary key, the site shows it', async () => {
    const back = await save({ key: primary });
    assertIncludes(back, 'Your API key is valid.', 'primary stored again');
    const r = await keydOk('POST', '/v1/account/reset-key', 200, { key: primary, body: {} });
    assert(/^[A-Za-z0-9]{20}$/.test(r.key), `reset gave no new key: ${JSON.stringify(r)}`);
    oldPrimary = primary;
    primary = r.key;
    await waitForEventNotice('Your API key was reset: paste the new one');
    assertIncludes(await statusText(), 'Not valid', 'status after the reset');
    await screenshot('key-reset-notice');
  });

  await step('the old primary key is refused as revoked', async () => {
    const out = await save({ key: oldPrimary });
    assertIncludes(out, 'This key no longer works', 'REVOKED sentence');
  });

  await step('the new primary key is valid', async () => {
    const out = await save({ key: primary });
    assertIncludes(out, 'Your API key is valid.', 'new primary valid');
    assert((await page.locator('.keyd-stub-event').count()) === 0, 'the reset notice stayed after a new key was validated');
  });

  await step('a key replaced with a grace period warns before it stops working', async () => {
    const r = await keydOk('POST', '/v1/account/reset-key', 200, { key: primary, body: { grace_period: '24h' } });
    const graced = primary;
    primary = r.key;
    await waitForEventNotice('The old key stops working on');
    const out = await save({ key: graced });
    assertIncludes(out, 'Your API key is valid.', 'the old key works in its grace');
    assertIncludes(out, 'Your API key was replaced by a new one on', 'rotation warning after saving');
    assertIncludes(await statusText(), 'Paste the new key from your account before then.', 'rotation warning in the status');
    await screenshot('rotation-warning');
    await page.goto(`${WP_URL}/wp-admin/`, { waitUntil: 'domcontentloaded' });
    assertIncludes((await page.locator('.keyd-stub-rotation').allInnerTexts()).join('\n'), 'stops working on', 'rotation notice on the dashboard');
    await screenshot('rotation-warning-dashboard');
    const back = await save({ key: primary });
    assertIncludes(back, 'Your API key is valid.', 'the new key is valid');
    assert((await page.locator('.keyd-stub-rotation').count()) === 0, 'the rotation notice stayed with the new key');
  });

  await step('keyd: deactivate the alias while it is the stored key', async () => {
    const out = await save({ key: alias.key });
    assertIncludes(out, 'Your API key is valid.', 'alias still valid after the reset');
    await keydOk('POST', `/v1/aliases/${encodeURIComponent(alias.id)}/deactivate`, 200, { key: primary });
    await waitForEventNotice('was deactivated');
    // The notice shows on every admin screen, not only on the settings page.
    await page.goto(`${WP_URL}/wp-admin/`, { waitUntil: 'domcontentloaded' });
    assertIncludes((await page.locator('.keyd-stub-event').allInnerTexts()).join('\n'), 'was deactivated', 'notice on the dashboard');
    await openSettings();
    assertIncludes(await statusText(), 'Not valid', 'status after the deactivation');
    await screenshot('alias-deactivated-notice');
  });

  await step('the deactivated alias is refused as inactive', async () => {
    const out = await save({ key: alias.key });
    assertIncludes(out, 'This key was deactivated by the account owner', 'INACTIVE sentence');
    await screenshot('alias-inactive');
  });

  await step('a suspended account is refused', async () => {
    await keydOk('PATCH', `/admin/v1/accounts/${encodeURIComponent(accountId)}`, 200, { admin: true, body: { status: 'suspended' } });
    const out = await save({ key: primary });
    assertIncludes(out, 'The account this key belongs to is suspended', 'ACCOUNT_SUSPENDED sentence');
  });

  // keyd runs with --test-keys: each published test key gives one answer,
  // so every message of the settings page can be seen (README, Test keys).
  const testKeys = [
    ['testVALID00000000000', 'Your API key is valid.'],
    ['testROTATION00000000', 'Your API key was replaced by a new one on'],
    ['testEXPIRED000000000', 'This key expired on'],
    ['testINACTIVE00000000', 'This key was deactivated by the account owner'],
    ['testREVOKED000000000', 'This key no longer works'],
    ['testACCOUNTSUSPENDED', 'The account this key belongs to is suspended'],
    ['testSCOPEDENIED00000', 'This key is not allowed to use the features of this plugin'],
    ['testSITENOTALLOWED00', 'This key may only be used on other sites'],
    ['testSITELIMITREACHED', 'This key is already active on as many sites as it may be'],
    ['testRATELIMITED00000', 'Too many checks for this account right now'],
  ];
  for (const [key, sentence] of testKeys) {
    await step(`test key ${key}`, async () => {
      const out = await save({ key, url: KEYD_URL });
      assertIncludes(out, sentence, `answer to ${key}`);
      await screenshot(`test-key-${key}`);
    });
  }
}

(async () => {
  const browser = await chromium.launchPersistentContext(env('E2E_USER_DATA_DIR'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
    timeout: 60000,
    viewport: { width: 1280, height: 900 },
  });
  let failed = false;
  try {
    page = browser.pages()[0] || (await browser.newPage());
    page.setDefaultTimeout(15000);
    page.setDefaultNavigationTimeout(30000);
    await partA();
    await constantsStep();
    if (KEYD_URL && KEYD_ADMIN_TOKEN) {
      await partB();
    } else {
      log('keyd steps skipped: no keyd');
    }
  } catch (err) {
    failed = true;
    console.error(`[e2e] FAIL: ${err.message}`);
  } finally {
    await browser.close().catch(() => {});
  }
  process.exit(failed ? 1 : 0);
})();
