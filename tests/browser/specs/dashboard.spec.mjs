// The operations dashboard: every series shows a number, and load on the store shows up in
// the request rate within seconds (the page follows the server's stream).
import path from 'node:path';
import { test, expect } from '../helpers/fixtures.mjs';
import { BASE_URL, RUN_DIR } from '../helpers/env.mjs';

test.use({ storageState: path.join(RUN_DIR, 'admin.json') });

const METRICS = {
  request_rate: 'Request rate',
  p95_latency: 'p95 latency',
  error_rate: 'Error rate',
  cache_hit_rate: 'Cache hit rate',
  queue_depth: 'Queue depth',
  oldest_job_age: 'Oldest job age',
  replica_lag: 'Replica lag',
  pool_usage: 'Pool usage',
  rate_limit_refusals: 'Rate-limit refusals',
};

/** The number in a metric's value (`12.5 req/s` → 12.5). */
async function valueOf(page, metric) {
  const text = await page.locator(`span.value[data-metric="${metric}"]`).textContent();
  const match = /-?\d+(?:[.,]\d+)?/.exec(text ?? '');
  return match ? Number(match[0].replace(',', '.')) : NaN;
}

// Replica lag has no number without replicas (SQLite, or PostgreSQL without any): "n/a" then.
const BACKEND = process.env.OUTGROW_BROWSER_BACKEND ?? 'embedded';
const NO_NUMBER_ON_EMBEDDED = new Set(['replica_lag']);

test('the dashboard shows a number for every series', async ({ page }) => {
  await page.goto('/admin/dashboard');
  await expect(page.getByRole('heading', { level: 1, name: 'Operations' })).toBeVisible();
  for (const [metric, title] of Object.entries(METRICS)) {
    const chart = page.locator('section.chart', { has: page.getByRole('heading', { level: 2, name: title, exact: true }) });
    await expect(chart, title).toHaveCount(1);
    const expected = BACKEND === 'embedded' && NO_NUMBER_ON_EMBEDDED.has(metric) ? /^n\/a/ : /\d/;
    await expect(chart.locator(`span.value[data-metric="${metric}"]`)).toHaveText(expected);
  }
});

test('the request rate rises within seconds of load', async ({ page }) => {
  await page.goto('/admin/dashboard');
  await expect(page.locator('span.value[data-metric="request_rate"]')).toHaveText(/\d/);
  const before = await valueOf(page, 'request_rate');
  const load = Array.from({ length: 200 }, () => fetch(`${BASE_URL}/`).then((response) => response.arrayBuffer()));
  await Promise.all(load);
  await expect
    .poll(() => valueOf(page, 'request_rate'), { message: `request rate above ${before}`, timeout: 15_000 })
    .toBeGreaterThan(before);
});
