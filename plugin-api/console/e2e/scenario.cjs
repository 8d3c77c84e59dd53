// Browser test of the owner console, run by run.sh (which starts keyd and
// passes its address and admin token in the environment). An owner signs in
// with the primary key, creates a 7-day alias bound to a host, deactivates
// it, registers a webhook endpoint (a receiver run here), resets the key
// with a 1 hour grace period and signs out; keyd's API confirms each
// effect. Every page is checked with axe-core and shot at 1280 and 390 px.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const crypto = require('crypto');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`missing environment variable ${name}`);
  return v;
};

const MODULES = env('E2E_NODE_MODULES');
const { chromium } = require(path.join(MODULES, 'playwright-core'));
const AXE_SOURCE = fs.readFileSync(path.join(MODULES, 'axe-core', 'axe.min.js'), 'utf8');
const KEYD_URL = env('KEYD_URL');
const ADMIN_TOKEN = env('KEYD_ADMIN_TOKEN');
const SHOTS = env('E2E_SCREENSHOTS');
const SECRETS_FILE = env('E2E_SECRETS_FILE');
const CONSOLE = `${KEYD_URL}/console/`;

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

let page;
let shotCount = 0;
const cspViolations = [];

function log(msg) {
  console.log(`[console-e2e ${new Date().toISOString().slice(11, 19)}]   ${msg}`);
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// remember keeps a key or secret the test saw, so run.sh can check that
// keyd's log holds none of them.
function remember(secret) {
  fs.appendFileSync(SECRETS_FILE, `${secret}\n`);
}

async function step(name, fn) {
  log(`step: ${name}`);
  try {
    await fn();
  } catch (err) {
    try {
      await page.screenshot({ path: path.join(SHOTS, `FAILED-${name.replace(/[^a-z0-9]+/gi, '-')}.png`), fullPage: true });
    } catch (_) { /* the page may be gone */ }
    err.message = `step "${name}": ${err.message}`;
    throw err;
  }
}

// check runs axe-core on the page (no serious or critical violation) and
// takes a full-page screenshot at desktop and phone width.
async function check(name) {
  await page.evaluate(AXE_SOURCE); // through the debugger: the page's CSP stays in force
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of result) log(`    axe ${v.impact}: ${v.id} (${v.help}) at ${v.nodes.join(', ')}`);
  assert(bad.length === 0, `accessibility: ${JSON.stringify(bad)}`);
  shotCount += 1;
  const base = `${String(shotCount).padStart(2, '0')}-${name}`;
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: width === 1280 ? 900 : 844 });
    await page.screenshot({ path: path.join(SHOTS, `${base}-${width}.png`), fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

async function api(method, url, { key, admin, body } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (key) headers['x-api-key'] = key;
  if (admin) headers.authorization = `Bearer ${ADMIN_TOKEN}`;
  const res = await fetch(`${KEYD_URL}${url}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
  return { status: res.status, json, text };
}

// validate is what a site's plugin asks: VALID or the refusal's code.
async function validate(key, site) {
  const r = await api('POST', '/v1/validate', { body: { key, site } });
  assert(r.json, `validate: ${r.status} ${r.text}`);
  return r.json.valid ? 'VALID' : r.json.code;
}

// The webhook receiver: keeps every message it gets, answers 200.
function startReceiver() {
  const got = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('received');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, got, url: `http://127.0.0.1:${server.address().port}/keyd-hook` })));
}

// verifySignature checks a message the Standard Webhooks way.
function verifySignature(secret, m) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const signed = `${m.headers['webhook-id']}.${m.headers['webhook-timestamp']}.${m.body}`;
  const want = crypto.createHmac('sha256', key).update(signed).digest('base64');
  const sigs = (m.headers['webhook-signature'] || '').split(' ').map((s) => s.replace(/^v1,/, ''));
  return sigs.includes(want);
}

async function waitFor(what, fn, seconds = 30) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${seconds}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function text(selector) {
  return (await page.locator(selector).first().textContent()).trim();
}

async function scenario() {
  const receiver = await startReceiver();
  let primary;
  let aliasKey;
  let webhookSecret;
  let newPrimary;

  await step('an account made by the operator', async () => {
    const r = await api('POST', '/admin/v1/accounts', { admin: true, body: { name: 'Acme Studio', email: 'owner@acme.example', plan: 'pro', credits: 1000 } });
    assert(r.status === 201, `create account: ${r.status} ${r.text}`);
    primary = r.json.key;
    remember(primary);
  });

  await step('sign-in page', async () => {
    await page.goto(CONSOLE);
    assert(page.url().endsWith('/console/sign-in'), `/console/ went to ${page.url()}`);
    await page.fill('#key', 'AAAAAAAAAAAAAAAAAAAA');
    await page.click('button[type=submit]');
    assert((await text('#signin-error')).includes('No account has this key'), 'wrong key message');
    await check('sign-in-error');
  });

  await step('sign in with the primary key', async () => {
    await page.fill('#key', primary);
    await page.click('button[type=submit]');
    await page.waitForURL('**/console/overview');
    assert((await text('.who-name')) === 'Acme Studio', 'account name in the header');
    assert((await text('main')).includes('Last 30 days'), 'overview chart');
    await check('overview-new-account');
    await page.click('nav.nav >> text=API keys');
    await page.waitForURL('**/console/keys');
    assert((await text('.facts')).includes(`••••${primary.slice(-4)}`), 'primary key hint');
    assert((await page.content()).indexOf(primary) === -1, 'the primary key is on the page');
    const cookies = await page.context().cookies(CONSOLE);
    const c = cookies.find((x) => x.name === 'keyd_console');
    assert(c && c.httpOnly && c.sameSite === 'Lax' && c.path === '/console/', `session cookie ${JSON.stringify(c)}`);
    await check('keys-empty');
  });

  await step('create a 7-day alias bound to a host', async () => {
    await page.fill('#alias-name', 'Client <site> 7 days');
    await page.click('#alias-name'); // typing stays in the field
    await page.fill('#alias-name', 'Client site');
    await page.check('input[name=lifetime][value="7d"]');
    await page.fill('#alias-sites', 'client.example');
    await page.click('form[action^="/console/aliases"] button[type=submit]');
    await page.waitForSelector('#shown-secret');
    aliasKey = await text('#shown-secret');
    assert(/^[A-Za-z0-9]{20}$/.test(aliasKey), `alias key ${aliasKey}`);
    remember(aliasKey);
    const row = await text('table.table tbody tr');
    assert(row.includes('Client site') && row.includes('Temporary') && row.includes('in 7 days') && row.includes('client.example') && row.includes('Active'),
      `alias row: ${row}`);
    await check('keys-new-alias');
  });

  await step('copy button', async () => {
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: KEYD_URL });
    await page.click('button.copy');
    await waitFor('the copy button to say Copied', async () => (await text('button.copy')).includes('Copied'), 5);
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert(copied === aliasKey, 'the clipboard holds another text');
  });

  await step('the alias key validates, for its host only', async () => {
    assert((await validate(aliasKey, 'https://client.example/')) === 'VALID', 'alias on its host');
    const other = await validate(aliasKey, 'https://elsewhere.example/');
    assert(other === 'SITE_NOT_ALLOWED', `alias on another host: ${other}`);
  });

  await step('the key is not shown again on reload', async () => {
    await page.reload();
    assert((await page.locator('#shown-secret').count()) === 0, 'show-once panel came back');
    assert((await page.content()).indexOf(aliasKey) === -1, 'alias key on the page after reload');
  });

  await step('delete asks first (dialog)', async () => {
    await page.click('a[aria-label="Delete Client site"]');
    const dialog = page.locator('#delete-dialog');
    await dialog.waitFor({ state: 'visible' });
    assert((await dialog.textContent()).includes('cannot be undone'), 'dialog text');
    await check('keys-delete-dialog');
    await dialog.locator('button[data-close]').click();
    await dialog.waitFor({ state: 'hidden' });
  });

  await step('deactivate the alias: validate says INACTIVE', async () => {
    await page.click('button[aria-label="Deactivate Client site"]');
    await page.waitForSelector('.notice');
    assert((await text('.notice')).includes('deactivated'), 'notice');
    assert((await text('table.table tbody tr')).includes('Inactive'), 'Inactive badge');
    const v = await validate(aliasKey, 'https://client.example/');
    assert(v === 'INACTIVE', `validate after deactivation: ${v}`);
    await check('keys-inactive');
  });

  await step('edit page', async () => {
    await page.click('a[aria-label="Edit Client site"]');
    await page.waitForURL('**/edit');
    await check('alias-edit');
    await page.click('text=Cancel');
  });

  await step('register a webhook endpoint', async () => {
    await page.click('nav.nav >> text=Webhooks');
    await page.waitForURL('**/console/webhooks');
    await check('webhooks-empty');
    await page.fill('#wh-url', receiver.url);
    await page.fill('#wh-events', '*');
    await page.fill('#wh-desc', 'Ops receiver');
    await page.click('form[action^="/console/webhooks"] button[type=submit]');
    await page.waitForSelector('#shown-secret');
    webhookSecret = await text('#shown-secret');
    assert(webhookSecret.startsWith('whsec_'), `secret ${webhookSecret}`);
    remember(webhookSecret);
    await check('webhook-added');
  });

  await step('reset the primary key with a 1 hour grace', async () => {
    await page.click('nav.nav >> text=API keys');
    await page.click('text=Reset key');
    await page.waitForURL('**/console/keys/reset');
    await page.check('input[name=grace_period][value="1h"]');
    await check('reset-confirm');
    await page.click('button.btn-danger');
    await page.waitForSelector('#shown-secret');
    newPrimary = await text('#shown-secret');
    assert(/^[A-Za-z0-9]{20}$/.test(newPrimary) && newPrimary !== primary, 'new primary key');
    remember(newPrimary);
    assert((await text('.notice')).includes('works until'), 'grace notice');
    await check('keys-after-reset');
  });

  await step('the receiver gets a signed key.reset; the old key still validates', async () => {
    const m = await waitFor('key.reset at the receiver', async () => receiver.got.find((x) => x.body.includes('"type":"key.reset"')));
    assert(verifySignature(webhookSecret, m), `bad signature on ${m.headers['webhook-id']}`);
    assert((await validate(primary, 'https://any.example/')) === 'VALID', 'old key in its grace period');
    assert((await validate(newPrimary, 'https://any.example/')) === 'VALID', 'new key');
    const audit = await api('GET', '/v1/audit?limit=1', { key: newPrimary });
    const e = audit.json && audit.json.events[0];
    assert(e && e.action === 'key.reset' && e.actor.channel === 'console', `audit: ${audit.text}`);
  });

  await step('the deliveries log shows the attempt', async () => {
    await page.click('nav.nav >> text=Webhooks');
    await page.click(`a:has-text("${receiver.url}")`);
    await waitFor('the delivery in the log', async () => {
      await page.reload();
      const t = (await page.locator('main').textContent()) || '';
      return t.includes('key.reset') && t.includes('200 delivered');
    });
    await check('webhook-deliveries');
  });

  await step('sites and usage', async () => {
    await page.click('nav.nav >> text=Sites and usage');
    await page.waitForURL('**/console/usage');
    const t = await text('main');
    assert(t.includes('By key') && t.includes('validations'), 'usage page');
    await check('usage');
    const csv = await page.evaluate(async (href) => (await fetch(href)).text(), await page.getAttribute('a[download]', 'href'));
    assert(csv.startsWith('day,key_id,validations,failed_validations,units'), `CSV: ${csv.slice(0, 80)}`);
  });

  await step('create a subaccount', async () => {
    await page.click('nav.nav >> text=Subaccounts');
    await page.waitForURL('**/console/subaccounts');
    await page.fill('#sub-name', 'Client agency');
    await page.fill('#sub-email', 'agency@client.example');
    await page.fill('#sub-credits', '200');
    await page.click('form[action^="/console/subaccounts"] button[type=submit]');
    await page.waitForSelector('#shown-secret');
    const subKey = await text('#shown-secret');
    remember(subKey);
    assert((await validate(subKey, 'https://agency.example/')) === 'VALID', 'subaccount key');
    assert((await text('main')).includes('800 credits in your pool'), 'pool after allocation');
    await check('subaccounts');
  });

  await step('an alias with a spend limit and site slots', async () => {
    await page.click('nav.nav >> text=API keys');
    await page.waitForURL('**/console/keys');
    await page.fill('#alias-name', 'Licensed shop');
    await page.fill('#alias-spend', '500');
    await page.selectOption('#alias-period', 'month');
    await page.fill('#alias-max-sites', '3');
    await page.fill('#alias-release', '30d');
    await page.click('form[action="/console/aliases#create"] button[type=submit]');
    await page.waitForSelector('#shown-secret');
    const key = await text('#shown-secret');
    remember(key);
    for (const site of ['https://shop-one.example/', 'https://shop-two.example/']) {
      assert((await validate(key, site)) === 'VALID', `validate from ${site}`);
    }
    const r = await api('POST', '/v1/usage', { key, body: { units: 120 } });
    assert(r.status === 200 && r.json.spend_limit.remaining === 380, `usage: ${r.status} ${r.text}`);
    await page.reload();
    const row = await text('table.table tbody tr:has-text("Licensed shop")');
    assert(row.includes('120 of 500 units this month') && row.includes('Up to 3 sites'), `alias row: ${row}`);
    await check('keys-alias-limits');
    await page.click('a[aria-label="Sites holding a slot of Licensed shop"]');
    await page.waitForURL('**/console/usage?key=*');
    assert((await text('main')).includes('2 of 3 site slots taken'), 'slots taken');
    await check('usage-site-slots');
    await page.click('button[aria-label="Release the slot of shop-one.example"]');
    await page.waitForSelector('.notice');
    assert((await text('main')).includes('1 of 3 site slots taken'), 'slot released');
  });

  await step('overview and audit log', async () => {
    await page.click('nav.nav >> text=Overview');
    await page.waitForURL('**/console/overview');
    await check('overview');
    await page.click('nav.nav >> text=Audit log');
    await page.waitForURL('**/console/audit');
    const t = await text('main');
    assert(t.includes('key.reset') && t.includes('alias.deactivated') && t.includes('Primary key in the console'), 'audit entries');
    await check('audit');
  });

  await step('sign out', async () => {
    await page.click('.who button[type=submit]');
    await page.waitForURL('**/console/sign-in');
    await page.goto(`${CONSOLE}keys`);
    assert(page.url().endsWith('/console/sign-in'), 'signed out, the keys page is closed');
  });

  receiver.server.close();
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
    page.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text());
    });
    await scenario();
    assert(cspViolations.length === 0, `Content-Security-Policy violations: ${cspViolations.join('; ')}`);
    log(`all steps passed; ${shotCount * 2} screenshots`);
  } catch (err) {
    failed = true;
    console.error(err.stack || err.message);
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
})();
