// The administrator's product form: a new product with a photo, whose WebP variants (made by
// the background job) appear under "Variants" on its edit page.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, expect } from '../helpers/fixtures.mjs';
import { RUN_DIR } from '../helpers/env.mjs';

test.use({ storageState: path.join(RUN_DIR, 'admin.json') });

const photo = fileURLToPath(new URL('../fixtures/lamp.jpg', import.meta.url));

test('the admin creates a product with an image and sees its variants within 60 s', async ({ page }) => {
  test.setTimeout(120_000);
  const name = `Admin-made vase ${Date.now()}`;
  await page.goto('/admin/products/new');
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Description').fill('A tall vase, made by the browser test.');
  await page.getByLabel('Price').fill('34.50');
  const currency = page.getByLabel('Currency');
  if ((await currency.evaluate((element) => element.tagName)) === 'SELECT') {
    await currency.selectOption('EUR');
  } else {
    await currency.fill('EUR');
  }
  await page.getByLabel('Stock').fill('7');
  await page.getByLabel('Image').setInputFiles(photo);
  await page.getByRole('button', { name: 'Save product' }).click();
  await expect(page).not.toHaveURL(/\/admin\/products\/new/);

  // The form may answer with the edit page or the list; reach the edit page either way.
  if (!/\/admin\/products\/[0-9a-f-]{36}/.test(page.url())) {
    await page.getByRole('link', { name }).first().click();
  }
  await expect(page).toHaveURL(/\/admin\/products\/[0-9a-f-]{36}/);
  const variants = page.locator('section', { has: page.getByRole('heading', { name: 'Variants' }) });
  const deadline = Date.now() + 60_000;
  while ((await variants.locator('figure').count()) === 0 && Date.now() < deadline) {
    await page.waitForTimeout(1_000);
    await page.reload();
  }
  const figures = variants.locator('figure');
  expect(await figures.count(), 'variants within 60 s').toBeGreaterThan(0);
  for (const caption of await figures.locator('figcaption').allTextContents()) {
    expect(caption).toMatch(/\d+ × \d+ px · [\d.]+ KB/);
  }
  // lamp.jpg is 1600 px wide: the 400, 800 and 1200 px variants.
  await expect(figures).toHaveCount(3);
});
