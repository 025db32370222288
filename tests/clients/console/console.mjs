// Drives bhavstore's web console (/ui) in headless Chromium (Debian's /usr/bin/chromium) with
// playwright-core: signs in with a token, visits every page, clicks through (a view's versions
// and diff, a feature point's lineage, live values after pushing bars), collects console errors
// and failed requests, saves a PNG of each page, and prints one JSON object of what it saw.
//
// Environment: CONSOLE_BASE (http://host:port), CONSOLE_TOKEN (needs the write role for the
// live page's push), CONSOLE_SCREENSHOTS (a folder), CONSOLE_ENTITY (default 511064),
// CONSOLE_VIEW (default price_features), CONSOLE_FEATURE (default sma_20), CHROMIUM (default
// /usr/bin/chromium).
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.CONSOLE_BASE;
const tok = process.env.CONSOLE_TOKEN || '';
const shots = process.env.CONSOLE_SCREENSHOTS || join(tmpdir(), 'console-screenshots');
const entity = process.env.CONSOLE_ENTITY || '511064';
const viewName = process.env.CONSOLE_VIEW || 'price_features';
const featureName = process.env.CONSOLE_FEATURE || 'sma_20';
if (!base) throw new Error('CONSOLE_BASE is required');
mkdirSync(shots, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), 'bhavstore-console-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 1000 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const out = { consoleErrors: [], failedRequests: [], externalRequests: [], screenshots: [] };
const T = 30000;
try {
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(T);
  page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(`${m.text()} @ ${JSON.stringify(m.location())}`); });
  page.on('pageerror', (e) => out.consoleErrors.push('pageerror: ' + e.message));
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:')) out.externalRequests.push(r.url()); });
  page.on('requestfailed', (r) => {
    const f = r.failure();
    // A fetch the page aborts on purpose (leaving a page, closing the live stream) is not a failure.
    if (!(f && /ERR_ABORTED/.test(f.errorText))) out.failedRequests.push(`${r.url()}: ${f && f.errorText}`);
  });
  page.on('response', (r) => { if (r.status() >= 400) out.failedRequests.push(`${r.url()}: HTTP ${r.status()}`); });
  const ready = (name) => page.waitForSelector(`body[data-ready="${name}"]`, { timeout: T });
  const shot = async (name) => {
    const p = join(shots, name + '.png');
    await page.screenshot({ path: p, fullPage: true });
    out.screenshots.push(p);
  };
  const go = async (hash, name) => {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await ready(name);
  };

  // Sign in.
  const resp = await page.goto(base + '/ui');
  out.csp = resp.headers()['content-security-policy'] || null;
  await ready('login');
  out.loginPrompt = await page.textContent('#login');
  await page.fill('#token-input', tok);
  await page.click('#token-save');
  await ready('views');

  // Views: list, SQL, YAML, versions, diff.
  out.views = await page.$$eval('#views-list li[data-view]', (l) => l.map((e) => e.dataset.view));
  await page.click(`#views-list li[data-view="${viewName}"]`);
  await page.waitForSelector('#definition-sql');
  out.sql = await page.textContent('#definition-sql');
  out.versions = await page.$$eval('#versions-table tbody tr', (l) => l.map((e) => e.dataset.version));
  await page.click('#definition button[data-tab="yaml"]');
  await page.waitForSelector('#definition-yaml');
  out.yaml = await page.textContent('#definition-yaml');
  if (await page.$('#diff-run')) {
    await page.click('#diff-run');
    await page.waitForSelector('#diff-output pre.diff');
    out.diff = await page.$$eval('#diff-output pre.diff', (l) => l.map((e) => ({
      changed: Number(e.dataset.changed),
      added: [...e.querySelectorAll('.add')].map((x) => x.textContent),
      removed: [...e.querySelectorAll('.del')].map((x) => x.textContent),
    })));
    await page.locator('#diff-output').scrollIntoViewIfNeeded();
  }
  await shot('views');

  // Runs.
  await go('#/runs', 'runs');
  out.runs = await page.$$eval('#runs-table tbody tr', (l) => l.map((e) => ({ run: e.dataset.run, status: e.dataset.status })));
  await shot('runs');

  // Quality.
  await go('#/quality?view=' + viewName, 'quality');
  out.quality = await page.$$eval('#quality-charts [data-feature]', (l) => l.map((e) => ({
    feature: e.dataset.feature,
    charts: e.querySelectorAll('svg.chart').length,
    points: e.querySelectorAll('svg.chart circle').length,
    lines: e.querySelectorAll('svg.chart polyline').length,
  })));
  await shot('quality');

  // Series and lineage of a clicked point.
  await go(`#/series?view=${viewName}&feature=${featureName}&entity=${entity}`, 'series');
  out.seriesPoints = await page.$$eval('#chart-feature circle.feature-pt', (l) => l.length);
  out.pricePolylines = await page.$$eval('#chart-prices polyline', (l) => l.length);
  out.seriesHeading = await page.textContent('#series-out h3');
  const pts = await page.$$('#chart-feature circle.feature-pt');
  if (pts.length > 0) {
    const target = pts[Math.floor(pts.length * 0.6)];
    out.clickedDate = await target.getAttribute('data-x');
    await target.click();
    await page.waitForSelector('#lineage-inputs tbody tr');
    out.lineageHeading = await page.textContent('#lineage-panel h3');
    out.lineageInputs = await page.$$eval('#lineage-inputs tbody tr', (l) => l.map((r) => [...r.children].map((c) => c.textContent)));
  }
  await shot('series');

  // Live: subscribe, then push bars and watch the table change.
  await go('#/live', 'live');
  if (await page.$('#live-none')) {
    out.live = { configured: false, text: await page.textContent('#live-none') };
  } else {
    await page.waitForFunction(() => document.getElementById('live-status').textContent === 'live');
    // A new instrument each run, so bars pushed to a reused store are never repeats.
    const instrument = 'NSE:CONSOLE' + Date.now().toString(36).toUpperCase();
    const bar = (m, close) => ({ instrument, ts: `2026-07-14T09:${String(15 + m).padStart(2, '0')}:00+05:30`,
      open: close, high: close + 1, low: close - 1, close, volume: 100 + m });
    const pushed = [];
    for (let m = 0; m < 5; m++) {
      const r = await fetch(base + '/feature-store/push', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(tok ? { authorization: 'Bearer ' + tok } : {}) },
        body: JSON.stringify({ source: 'intraday_bars', rows: [bar(m, 100 + m)] }),
      });
      pushed.push(r.status);
      if (r.status !== 200) { out.pushError = await r.text(); break; }
      await page.waitForFunction((n) => document.getElementById('live-count').textContent.startsWith(n + ' '), m + 1);
    }
    out.live = {
      configured: true,
      pushed,
      count: await page.textContent('#live-count'),
      rows: await page.$$eval('#live-rows tr', (l) => l.map((r) => ({ entity: r.dataset.entity, cells: [...r.children].map((c) => c.textContent) }))),
      entity: instrument,
      close: await page.textContent(`#live-rows tr[data-entity="${instrument}"] td[data-feature="close"]`),
    };
  }
  await shot('live');
  // Leave the live page so its stream closes before the browser does.
  await go('#/views', 'views');
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
