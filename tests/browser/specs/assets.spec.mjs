// Assets: the catalog downloads only what it uses, images come as WebP at the width the
// viewport needs, a repeat visit downloads nothing again, and the forms work without JavaScript.
import { test, expect, watchContext } from '../helpers/fixtures.mjs';
import { dataSet } from '../helpers/env.mjs';
import { assetName, recordNetwork } from '../helpers/network.mjs';

const data = dataSet();

test('the catalog requests only its own modules and one stylesheet', async ({ page }) => {
  const network = await recordNetwork(page);
  await page.goto('/');
  await page.waitForLoadState('networkidle');
  const assets = network.entries.filter((entry) => new URL(entry.url).pathname.startsWith('/assets/'));
  const scripts = assets.filter((entry) => entry.url.endsWith('.js')).map((entry) => assetName(entry.url));
  const styles = assets.filter((entry) => entry.url.endsWith('.css')).map((entry) => assetName(entry.url));
  expect([...new Set(scripts)].sort()).toEqual(['js/app.js', 'js/cart-store.js', 'js/catalog.js']);
  expect(scripts, 'each module is fetched once').toHaveLength(3);
  expect(styles).toEqual(['css/app.css']);
  for (const forbidden of ['dashboard', 'analytics', 'uplot', 'cart.js', 'admin-product']) {
    expect(assets.map((entry) => entry.url).join(' ')).not.toContain(forbidden);
  }
});

/** The smallest variant at least `needed` pixels wide, or the largest. */
function expectedWidth(widths, needed) {
  const sorted = [...widths].sort((a, b) => a - b);
  return sorted.find((width) => width >= needed) ?? sorted[sorted.length - 1];
}

const viewports = [
  { name: 'mobile', viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
  { name: 'desktop', viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 },
];

for (const device of viewports) {
  for (const where of ['catalog', 'product']) {
    test(`${where} images arrive as WebP at the width a ${device.name} viewport needs`, async ({ browser, problems }) => {
      const { name, ...options } = device;
      const context = await browser.newContext(options);
      await watchContext(context, problems, { javaScriptEnabled: true });
      const page = await context.newPage();
      const network = await recordNetwork(page);
      const product = data.products[0];
      await page.goto(where === 'catalog' ? '/' : `/products/${product.id}`);
      const image = where === 'catalog'
        ? page.getByRole('link', { name: product.name, exact: true }).locator('img')
        : page.locator('.product .media img');
      await expect(image).toBeVisible();
      await expect.poll(() => image.evaluate((img) => img.complete && img.naturalWidth > 0)).toBe(true);
      const { currentSrc, cssWidth } = await image.evaluate((img) => ({
        currentSrc: img.currentSrc,
        cssWidth: img.getBoundingClientRect().width,
      }));
      const widths = data.variants[product.upload_id];
      const want = expectedWidth(widths, Math.ceil(cssWidth * device.deviceScaleFactor));
      expect(currentSrc, `rendered ${cssWidth} CSS px × DPR ${device.deviceScaleFactor}; variants ${widths}`)
        .toBe(new URL(`/api/v1/uploads/${product.upload_id}/variants/${want}`, page.url()).href);
      const response = network.entries.find((entry) => entry.url === currentSrc);
      expect(response, `a response for ${currentSrc}`).toBeTruthy();
      expect(response.headers['content-type']).toBe('image/webp');
      await context.close();
    });
  }
}

test('a repeat visit downloads no asset again and revalidates the page', async ({ page }) => {
  const network = await recordNetwork(page);
  const first = await page.goto('/');
  await page.waitForLoadState('networkidle');
  const etag = first.headers().etag;
  expect(etag, 'the catalog has an ETag').toBeTruthy();
  const assets = network.entries.filter((entry) => entry.url.includes('/assets/'));
  for (const asset of assets) {
    expect(asset.headers['cache-control'], asset.url).toContain('immutable');
  }
  network.clear();

  await page.goto('/');
  await page.waitForLoadState('networkidle');
  const again = network.fromNetwork();
  const refetched = again.filter((entry) => entry.url.includes('/assets/'));
  expect(refetched.map((entry) => entry.url), 'immutable assets come from the cache').toEqual([]);
  const images = again.filter((entry) => entry.url.includes('/variants/'));
  expect(images.map((entry) => entry.url), 'images come from the cache').toEqual([]);
  const html = network.entries.filter((entry) => entry.type === 'Document');
  expect(html).toHaveLength(1);
  expect(html[0].requestHeaders()['if-none-match'], 'the page is revalidated').toBe(etag);
  expect([200, 304]).toContain(html[0].status);
  if (html[0].status === 200) expect(html[0].headers.etag).toBe(etag);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the catalog search works', async ({ page }) => {
    await page.goto('/');
    await page.getByLabel('Search').fill('mug');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect(page).toHaveURL(/[?&]q=mug/);
    await expect(page.getByRole('link', { name: 'Stoneware mug' })).toBeVisible();
    await expect(page.getByRole('link', { name: 'Oak chair' })).toHaveCount(0);
  });

  test('the price filter reports a typo next to the field', async ({ page, problems }) => {
    problems.allow(/status of 400/);
    await page.goto('/');
    await page.getByLabel('Lowest price').fill('abc');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect(page.getByLabel('Lowest price')).toHaveAttribute('aria-invalid', 'true');
    await expect(page.locator('#min-error')).toContainText('Enter a price');
  });

  test('add to cart posts the form and the cart shows the line', async ({ page }) => {
    const product = data.products[1];
    await page.goto(`/products/${product.id}`);
    await page.getByLabel('Quantity').fill('2');
    await page.getByRole('button', { name: 'Add to cart' }).click();
    await expect(page).toHaveURL(/\/cart/);
    await expect(page.getByLabel(`Quantity of ${product.name}`)).toHaveValue('2');
  });
});
