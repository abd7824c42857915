// store.mjs - the demo system end to end, in a real headless Chromium
// (Debian's /usr/bin/chromium, driven by playwright-core; no browser is
// downloaded). Starts build/opecom-server on a free port with a fresh
// database, browses the store as a visitor would, and checks what reached
// the database, the prediction at checkout and its pop-up, the purchase,
// the dashboard, and that Global Privacy Control stops all tracking.
// Screenshots go to $BUILD/test-artifacts/ (store.png, product.png,
// checkout.png, dashboard.png).
//
// Usage: node tests/e2e/store.mjs NODE_PREFIX   (run by `make test`)
// Prints cmocka-style summary lines; exit status 1 on any failure.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const prefix = resolve(process.argv[2] || 'build/e2e-node');
const require = createRequire(join(prefix, 'package.json'));
const { chromium } = require('playwright-core');

const BUILD = process.env.BUILD || 'build';
const ARTIFACTS = join(BUILD, 'test-artifacts');
mkdirSync(ARTIFACTS, { recursive: true });
const tmp = mkdtempSync(join(tmpdir(), 'opecom-e2e-'));
const db = join(tmp, 'e2e.db');
const PYTHON = process.env.PYTHON || '/usr/bin/python3';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function startServer() {
  execFileSync(PYTHON, ['tools/seed_store.py', '--server', join(BUILD, 'opecom-server'),
    '--db', db, '--sessions', '2000'], { stdio: 'inherit' });
  return new Promise((ok, fail) => {
    const p = spawn(join(BUILD, 'opecom-server'), ['--port', '0', '--db', db],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const timer = setTimeout(() => fail(new Error('server did not start: ' + err)), 30000);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/store (http:\/\/[0-9.]+:\d+)\//);
      if (m) { clearTimeout(timer); ok({ proc: p, url: m[1] }); }
    });
    p.stderr.on('data', (d) => { err += d; });
    p.on('exit', (code) => { clearTimeout(timer); fail(new Error(`server exited ${code}: ${err}`)); });
  });
}

function sql(query) {
  const out = execFileSync('sqlite3', ['-json', db, query], { encoding: 'utf8' });
  return out.trim() ? JSON.parse(out) : [];
}

async function until(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(100);
  }
  throw new Error('timed out waiting for ' + what);
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

// Stays on the page `ms` milliseconds, moving the mouse now and then (input
// keeps the active-time clock running).
async function dwell(page, ms) {
  for (let t = 0; t < ms; t += 250) {
    await page.mouse.move(100 + (t % 400), 200 + (t % 300));
    await sleep(250);
  }
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
let server, browser, url, sid, vid, prediction;

test('browse: page views and active durations stored for the session', async () => {
  const page = await ctx.newPage();
  await page.goto(url + '/');
  await dwell(page, 1500);
  await page.screenshot({ path: join(ARTIFACTS, 'store.png'), fullPage: true });
  sid = await page.evaluate(() => window.opecom.sessionId());
  vid = await page.evaluate(() => window.opecom.visitorId());
  check(sid && vid, 'tracker gave no ids');
  await page.click('a[href="/category.html?c=kitchen"]');
  await page.waitForURL(/category/);
  await dwell(page, 1000);
  await page.click('#grid a[href^="/product.html"]');
  await page.waitForSelector('#add-form');
  await dwell(page, 1200);
  await page.screenshot({ path: join(ARTIFACTS, 'product.png'), fullPage: true });
  await page.click('#add-form button[type="submit"]');
  await page.goto(url + '/faq.html');
  await dwell(page, 800);
  await page.goto(url + '/cart.html');
  await dwell(page, 600);
  check(await page.evaluate(() => window.opecom.sessionId()) === sid, 'session id changed');
  // checkout: the tracker flushes, then the page asks for a prediction
  const predicted = page.waitForResponse((r) => r.url().endsWith('/api/predict'));
  await page.goto(url + '/checkout.html');
  const res = await predicted;
  check(res.status() === 200, 'predict answered ' + res.status());
  prediction = await res.json();
  const req = JSON.parse(res.request().postData());
  check(req.session_id === sid, 'predict asked about ' + req.session_id);
  globalThis.checkoutPage = page;

  const rows = await until('the page views', () => {
    const r = sql(`SELECT p.page_type, p.page_id, p.duration FROM page_views p JOIN sessions s
                   ON s.id = p.session WHERE s.session_id = '${sid}' ORDER BY p.ts, p.id`);
    return r.length >= 5 ? r : null;
  });
  const ids = rows.map((r) => r.page_id);
  check(JSON.stringify(ids.slice(0, 5)) ===
        JSON.stringify(['home', 'category/kitchen', ids[2], 'faq', 'cart']) &&
        ids[2].startsWith('product/'), 'page ids stored: ' + ids.join(', '));
  const types = rows.slice(0, 5).map((r) => r.page_type);
  check(JSON.stringify(types) === JSON.stringify(['product_related', 'product_related',
    'product_related', 'informational', 'administrative']), 'page types: ' + types.join(', '));
  const dwelt = [1.5, 1.0, 1.2, 0.8, 0.6];
  rows.slice(0, 5).forEach((r, i) => check(r.duration >= dwelt[i] * 0.6 && r.duration < dwelt[i] + 3,
    `${r.page_id}: active ${r.duration} s after ~${dwelt[i]} s on the page`));
});

test('checkout: the prediction scores this session and the pop-up follows the rule', async () => {
  const page = globalThis.checkoutPage;
  const p = prediction;
  check(p.session_id === sid && p.open === true, 'not the open session: ' + JSON.stringify(p));
  check(p.probability >= 0 && p.probability <= 1, 'probability ' + p.probability);
  check(p.features.ProductRelated >= 3 &&
        p.features.Informational >= 1, 'features: ' + JSON.stringify(p.features));
  check(Array.isArray(p.reasons) && p.reasons.length === 3, 'reasons: ' + JSON.stringify(p.reasons));
  // the default rule: a discount for probabilities in [0.2, 0.6)
  const discount = p.probability >= 0.2 && p.probability < 0.6;
  check(p.action === (discount ? 'discount' : 'none'), `action ${p.action} at ${p.probability}`);
  const popup = page.locator('#discount-popup');
  if (discount) {
    await popup.waitFor({ state: 'visible', timeout: 5000 });
    await page.screenshot({ path: join(ARTIFACTS, 'checkout.png') });
    await page.click('#discount-accept');
    await popup.waitFor({ state: 'hidden', timeout: 5000 });
  } else {
    await sleep(1000);
    check(!(await popup.isVisible()), 'pop-up shown for action none');
    await page.screenshot({ path: join(ARTIFACTS, 'checkout.png') });
  }
  console.log(`    checkout: probability ${p.probability.toFixed(3)}, action ${p.action}`);
});

test('purchase: the order is stored as a purchase with its revenue', async () => {
  const page = globalThis.checkoutPage;
  const form = page.locator('#checkout-form');
  for (const input of await form.locator('input[required]').all()) {
    const type = await input.getAttribute('type');
    const name = (await input.getAttribute('name')) || '';
    await input.fill(type === 'email' || /mail/.test(name) ? 'ada@example.com'
      : /zip|postal|post/.test(name) ? '10115' : 'Ada Lovelace');
  }
  await page.click('#place-order');
  await page.waitForSelector('#thank-you:not([hidden])');
  const rows = await until('the purchase', () => {
    const r = sql(`SELECT u.revenue FROM purchases u JOIN sessions s ON s.id = u.session
                   WHERE s.session_id = '${sid}'`);
    return r.length ? r : null;
  });
  check(rows.length === 1 && rows[0].revenue > 0, 'purchases: ' + JSON.stringify(rows));
});

test('dashboard: the session is listed with its probability', async () => {
  const page = await ctx.newPage();
  await page.goto(url + '/dashboard/');
  const row = page.locator(`#sessions-table tr[data-session-id="${sid}"]`);
  await row.waitFor({ state: 'visible', timeout: 8000 });
  await page.waitForSelector('#score-chart svg, #score-chart rect', { timeout: 5000 });
  await page.waitForSelector('#experiments', { timeout: 5000 });
  await sleep(500);
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  const text = await row.innerText();
  check(/\d\.\d|\d%/.test(text), 'row shows no probability: ' + text);
});

test('privacy: with Global Privacy Control nothing is stored or sent', async () => {
  const before = sql('SELECT count(*) AS n FROM page_views')[0].n;
  const gpc = await browser.newContext();
  await gpc.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true });
  });
  const sent = [];
  gpc.on('request', (r) => { if (r.url().includes('/api/')) sent.push(r.url()); });
  const page = await gpc.newPage();
  await page.goto(url + '/');
  await dwell(page, 500);
  await page.goto(url + '/about.html');
  await dwell(page, 500);
  await page.goto(url + '/faq.html');
  const ids = await page.evaluate(() => [localStorage.getItem('opecom.vid'),
    localStorage.getItem('opecom.sid'), window.opecom.sessionId()]);
  await gpc.close();
  await sleep(500);
  check(ids.every((x) => x === null), 'ids created: ' + JSON.stringify(ids));
  check(sent.length === 0, 'requests sent: ' + sent.join(', '));
  check(sql('SELECT count(*) AS n FROM page_views')[0].n === before, 'page views stored');
});

let ctx;
let failed = 0;
try {
  ({ proc: server, url } = await startServer());
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  console.log(`[==========] Running ${tests.length} test(s).`);
  for (const t of tests) {
    console.log(`[ RUN      ] ${t.name}`);
    try {
      await t.fn();
      console.log(`[       OK ] ${t.name}`);
    } catch (e) {
      failed++;
      console.log(`[  FAILED  ] ${t.name}\n    ${e.message}`);
    }
  }
} catch (e) {
  failed = tests.length;
  console.log('setup failed: ' + e.message);
} finally {
  if (browser) await browser.close();
  if (server) { server.removeAllListeners('exit'); server.kill('SIGTERM'); }
}
console.log(`[==========] ${tests.length} test(s) run.`);
if (failed) {
  console.log(`[  FAILED  ] ${failed} test(s).`);
} else {
  console.log(`[  PASSED  ] ${tests.length} test(s).`);
  rmSync(tmp, { recursive: true, force: true });
}
console.log('screenshots: ' + ARTIFACTS);
process.exit(failed ? 1 : 0);
