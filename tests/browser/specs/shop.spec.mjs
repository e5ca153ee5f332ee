// The shopper's path through the real pages: register, sign in, search, open a product, add it
// to the cart, check out, see the order (and its e-mail), cancel it and get the stock back.
import { test, expect } from '../helpers/fixtures.mjs';
import { dataSet } from '../helpers/env.mjs';
import { messagesTo } from '../helpers/mail.mjs';

const data = dataSet();

/** The product's stock as the API says it. */
async function stockOf(request, id) {
  const response = await request.get(`/api/v1/products/${id}`);
  expect(response.ok()).toBe(true);
  return (await response.json()).stock;
}

/** A new account, registered and signed in through the pages. */
async function registerAndSignIn(page, label) {
  const account = {
    name: `Shopper ${label}`,
    email: `shopper-${label}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.test`,
    password: 'a long shopper password',
  };
  await page.goto('/register');
  await page.getByLabel('Name').fill(account.name);
  await page.getByLabel('Email').fill(account.email);
  await page.getByLabel('Password').fill(account.password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).not.toHaveURL(/\/register/);
  // Registration may sign the new account in; sign out to sign in through the sign-in page.
  await page.goto('/account');
  const signOut = page.getByRole('button', { name: 'Sign out' });
  if (await signOut.isVisible()) {
    await signOut.click();
    await expect(page.getByRole('button', { name: 'Sign out' })).toHaveCount(0);
  }
  await page.goto('/login');
  await page.getByLabel('Email').fill(account.email);
  await page.getByLabel('Password').fill(account.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).not.toHaveURL(/\/login/);
  await page.goto('/account');
  await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible();
  return account;
}

/** Finds `product` through the catalog search and adds `quantity` to the cart. */
async function searchAndAdd(page, product, quantity) {
  await page.goto('/');
  await page.getByLabel('Search').fill(product.name.split(' ').pop());
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('link', { name: product.name, exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name: product.name, exact: true })).toBeVisible();
  // Let the page's module load first, so the add happens one way (in page, by the cookie), not
  // in a race between the module and the form's own POST.
  await page.waitForLoadState('networkidle');
  await page.getByLabel('Quantity').fill(String(quantity));
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await expect(page.locator('[data-cart-status]')).toContainText('Added');
  await page.goto('/cart');
  await expect(page.getByRole('heading', { level: 1, name: 'Cart' })).toBeVisible();
  await expect(page.getByLabel(`Quantity of ${product.name}`)).toHaveValue(String(quantity));
}

test('a shopper registers, orders, gets the e-mail, cancels, and the stock comes back', async ({ page }) => {
  const product = data.products[2];
  const account = await registerAndSignIn(page, 'order');
  const before = await stockOf(page.request, product.id);

  await searchAndAdd(page, product, 2);
  await page.getByRole('button', { name: 'Check out' }).click();

  await expect(page).toHaveURL(/\/account\/orders\?placed=/);
  await expect(page.getByRole('heading', { level: 1, name: 'Your orders' })).toBeVisible();
  await expect(page.getByText('Order placed')).toBeVisible();
  const orderId = new URL(page.url()).searchParams.get('placed');
  const order = page.locator(`article.order[data-order-id="${orderId}"]`);
  await expect(order.locator('.status')).toHaveText('placed');
  expect(await stockOf(page.request, product.id)).toBe(before - 2);

  await expect
    .poll(() => messagesTo(account.email, orderId).length, { message: 'the confirmation e-mail', timeout: 30_000 })
    .toBeGreaterThan(0);

  await order.getByRole('button', { name: 'Cancel order' }).click();
  await expect(page.locator(`article.order[data-order-id="${orderId}"] .status`)).toHaveText('cancelled');
  await expect.poll(() => stockOf(page.request, product.id), { message: 'the stock is back' }).toBe(before);
  await page.goto(`/products/${product.id}`);
  await expect(page.getByText(`${before} in stock`)).toBeVisible();
});

test('double-clicking "Check out" places one order', async ({ page }) => {
  const product = data.products[0];
  await registerAndSignIn(page, 'double');
  await searchAndAdd(page, product, 1);
  await page.getByRole('button', { name: 'Check out' }).dblclick();
  await expect(page).toHaveURL(/\/account\/orders\?placed=/);
  await expect(page.getByText('Order placed')).toBeVisible();
  await expect(page.locator('article.order')).toHaveCount(1);
  const orders = await (await page.request.get('/api/v1/orders')).json();
  const list = Array.isArray(orders) ? orders : orders.items ?? orders.orders ?? orders.data;
  expect(list, JSON.stringify(orders)).toHaveLength(1);
});

test('a visitor who is not signed in is asked to sign in to check out', async ({ page }) => {
  await searchAndAdd(page, data.products[3], 1);
  await page.getByRole('link', { name: 'Sign in to check out' }).click();
  await expect(page).toHaveURL(/\/login/);
});
