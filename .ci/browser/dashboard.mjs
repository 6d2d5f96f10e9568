// Loads the dashboard, served by the running demo, in headless Chromium (Debian's package):
// checks that it shows data at once, that its counters move and a signal arrives over the
// live event stream, that it makes no request outside its origin and throws no error, and
// saves light and dark screenshots. With `--perf`, also measures frame times for a while.
//
// usage: node dashboard.mjs URL OUT_DIR [--perf SECONDS]
import { chromium } from 'playwright-core';

const [url, out, flag, perfSeconds] = process.argv.slice(2);
if (!url || !out) {
  console.error('usage: node dashboard.mjs URL OUT_DIR [--perf SECONDS]');
  process.exit(2);
}
const origin = new URL(url).origin;
const fail = (msg) => {
  console.error(`browser test: FAILED: ${msg}`);
  process.exitCode = 1;
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  const outside = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e}`));
  page.on('console', (m) => {
    // Failed loads are reported with their URL by the response handler below.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      errors.push(`console: ${m.text()}`);
    }
  });
  page.on('response', (r) => {
    if (r.status() >= 400) errors.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith('data:')) outside.push(u);
  });

  const started = Date.now();
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 20000 });
  const read = () => page.evaluate(() => ({
    completed: Number(document.documentElement.dataset.completed || 0),
    signals: Number(document.documentElement.dataset.signals || 0),
    cards: document.querySelectorAll('[data-coordinator]').length,
    live: document.documentElement.dataset.live || '',
  }));
  // Data before the first event: the embedded snapshot.
  const first = await read();
  if (first.cards === 0) fail('no coordinator card rendered from the embedded snapshot');
  await page.waitForFunction(
    (c) => Number(document.documentElement.dataset.completed || 0) > c,
    first.completed, { timeout: 20000 },
  ).catch(() => fail(`completed counter did not move from ${first.completed}`));
  await page.waitForFunction(
    () => Number(document.documentElement.dataset.signals || 0) > 0, null, { timeout: 20000 },
  ).catch(() => fail('no signal arrived over the event stream'));
  const later = await read();

  // The controls (the demo turns them on): pause a coordinator from its card, then resume it.
  const card = page.locator('[data-coordinator="emails"]');
  if (await card.count()) {
    const paused = () => page.evaluate(async () => {
      const r = await fetch('api/status');
      const doc = await r.json();
      return doc.coordinators.find((c) => c.name === 'emails').paused;
    });
    await card.getByRole('button', { name: 'Pause' }).click();
    await page.waitForFunction(async () => {
      const doc = await (await fetch('api/status')).json();
      return doc.coordinators.find((c) => c.name === 'emails').paused;
    }, null, { timeout: 10000, polling: 200 }).catch(() => fail('Pause on a card did not pause'));
    await card.getByRole('button', { name: 'Resume' }).click({ timeout: 5000 })
      .catch(() => fail('a paused card offers no Resume button'));
    await page.waitForTimeout(500);
    if (await paused()) fail('Resume on a card did not resume');
  }
  await page.waitForTimeout(1500);
  await page.screenshot({ path: `${out}/dashboard.png`, fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.waitForTimeout(500);
  await page.screenshot({ path: `${out}/dashboard-dark.png`, fullPage: true });

  let perf = null;
  if (flag === '--perf') {
    const seconds = Number(perfSeconds || 20);
    perf = await page.evaluate(async (ms) => {
      const frames = [];
      let last = performance.now();
      const end = last + ms;
      await new Promise((done) => {
        const step = (t) => {
          frames.push(t - last);
          last = t;
          if (t < end) requestAnimationFrame(step); else done();
        };
        requestAnimationFrame(step);
      });
      frames.sort((a, b) => a - b);
      const pick = (q) => frames[Math.min(frames.length - 1, Math.floor(q * frames.length))];
      return {
        frames: frames.length,
        fps: frames.length / (ms / 1000),
        p50_ms: pick(0.5), p95_ms: pick(0.95), p99_ms: pick(0.99), max_ms: frames[frames.length - 1],
        dom_nodes: document.getElementsByTagName('*').length,
        heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null,
        signals_seen: Number(document.documentElement.dataset.signals || 0),
        cards: document.querySelectorAll('[data-coordinator]').length,
      };
    }, seconds * 1000);
  }

  if (errors.length) fail(`page errors: ${errors.join(' | ')}`);
  if (outside.length) fail(`requests outside the page's origin: ${outside.join(', ')}`);
  console.log(JSON.stringify({
    url, seconds: (Date.now() - started) / 1000, first, later,
    screenshots: [`${out}/dashboard.png`, `${out}/dashboard-dark.png`], perf,
  }, null, 1));
} finally {
  await browser.close();
}
