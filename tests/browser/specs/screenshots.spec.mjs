// Screenshots of every page of the URL map at desktop (1280×800) and mobile (390×844) widths,
// full page, into docs/screenshots/<page>-<desktop|mobile>.png. Run by scripts/screenshots on
// a fresh instance holding only the fixed data set (no `outgrow seed`), so they are stable.
// Device pixel ratio 1 at both widths: half the bytes of a 2× mobile shot, same layout.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, expect } from '../helpers/fixtures.mjs';
import { dataSet, RUN_DIR } from '../helpers/env.mjs';
import { PAGES, pathOf } from '../helpers/pages.mjs';

const data = dataSet();
const OUT = process.env.OUTGROW_SCREENSHOTS_DIR
  || fileURLToPath(new URL('../../../docs/screenshots/', import.meta.url));
const STATES = { user: path.join(RUN_DIR, 'user.json'), admin: path.join(RUN_DIR, 'admin.json') };
const SIZES = {
  desktop: { viewport: { width: 1280, height: 800 } },
  mobile: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true },
};

for (const entry of PAGES) {
  for (const [size, options] of Object.entries(SIZES)) {
    test.describe(() => {
      test.use({ ...options, deviceScaleFactor: 1, ...(entry.role !== 'anonymous' ? { storageState: STATES[entry.role] } : {}) });

      test(`${entry.name} at ${size} width`, async ({ page, context, problems }) => {
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
        // Lazy images below the fold: scroll through so the full-page shot has them all.
        await page.evaluate(async () => {
          for (let y = 0; y < document.body.scrollHeight; y += window.innerHeight) {
            window.scrollTo(0, y);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          window.scrollTo(0, 0);
        });
        await page.waitForLoadState('networkidle');
        await page.screenshot({ path: path.join(OUT, `${entry.name}-${size}.png`), fullPage: true, animations: 'disabled', caret: 'hide' });
      });
    });
  }
}
