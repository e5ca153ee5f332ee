// Accessibility: axe-core on every page of the URL map, as the visitor who may see it
// (anonymous, a signed-in user, the administrator): no violation of impact serious or critical;
// and on a 390 px phone no page is wider than the screen (no sideways scrolling, WCAG 1.4.10).
import path from 'node:path';
import { test, expect } from '../helpers/fixtures.mjs';
import { dataSet, RUN_DIR } from '../helpers/env.mjs';
import { PAGES, pathOf } from '../helpers/pages.mjs';
import { seriousViolations } from '../helpers/axe.mjs';

const data = dataSet();
const STATES = { user: path.join(RUN_DIR, 'user.json'), admin: path.join(RUN_DIR, 'admin.json') };

// The pages below are seen through saved storage states: first make sure the browser really
// sends their (Secure, HttpOnly) session cookie to this http://127.0.0.1 origin.
for (const role of ['user', 'admin']) {
  test.describe(() => {
    test.use({ storageState: STATES[role] });
    test(`the ${role}'s saved session signs the browser in`, async ({ page }) => {
      await page.goto('/');
      const me = await page.evaluate(async () => {
        const response = await fetch('/api/v1/me');
        return { status: response.status, body: await response.json() };
      });
      expect(me.status).toBe(200);
      expect(me.body.email).toBe(role === 'user' ? data.user.email : data.admin.email);
    });
  });
}

for (const entry of PAGES) {
  test.describe(() => {
    if (entry.role !== 'anonymous') test.use({ storageState: STATES[entry.role] });

    // @any-backend: the markup does not depend on the backend; scripts/browser-test runs these
    // on the embedded pass only.
    test(`${entry.name} (${entry.path}, ${entry.role}) has no serious a11y violation`, { tag: '@any-backend' }, async ({ page, context, problems }) => {
      if (entry.cart) {
        await context.addCookies([{
          name: 'outgrow_cart',
          value: data.products.slice(0, 2).map((product) => `${product.id}:1`).join('.'),
          url: data.baseURL,
        }]);
      }
      const expected = entry.status ?? 200;
      if (expected !== 200) problems.allow(new RegExp(`status of ${expected}`));
      const response = await page.goto(pathOf(entry, data));
      expect(response.status(), `HTTP status of ${entry.path}`).toBe(expected);
      await page.waitForLoadState('networkidle');
      expect(await seriousViolations(page)).toEqual([]);
    });
  });
}

for (const entry of PAGES) {
  test.describe(() => {
    if (entry.role !== 'anonymous') test.use({ storageState: STATES[entry.role] });
    test.use({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });

    test(`${entry.name} (${entry.path}, ${entry.role}) fits a 390 px phone without sideways scrolling`, { tag: '@any-backend' }, async ({ page, problems }) => {
      const expected = entry.status ?? 200;
      if (expected !== 200) problems.allow(new RegExp(`status of ${expected}`));
      await page.goto(pathOf(entry, data));
      await page.waitForLoadState('networkidle');
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      expect(width, `${entry.path} is ${width} px wide`).toBeLessThanOrEqual(390);
    });
  });
}
