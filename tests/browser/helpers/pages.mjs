// The URL map of the shared contract (docs: prompts/ui-contract.md): every page the a11y and
// screenshot specs visit, with who may see it. `{product}` / `{adminProduct}` are filled from
// the data set.

/** `{ name, path, role }`; role: anonymous | user | admin. */
export const PAGES = [
  { name: 'catalog', path: '/', role: 'anonymous' },
  { name: 'catalog-search', path: '/?q=mug', role: 'anonymous' },
  { name: 'product', path: '/products/{product}', role: 'anonymous' },
  { name: 'not-found', path: '/no-such-page', role: 'anonymous', status: 404 },
  { name: 'cart', path: '/cart', role: 'anonymous', cart: true },
  { name: 'register', path: '/register', role: 'anonymous' },
  { name: 'login', path: '/login', role: 'anonymous' },
  { name: 'account', path: '/account', role: 'user' },
  { name: 'orders', path: '/account/orders', role: 'user' },
  { name: 'exports', path: '/account/exports', role: 'user' },
  { name: 'uploads', path: '/account/uploads', role: 'user' },
  { name: 'admin-products', path: '/admin/products', role: 'admin' },
  { name: 'admin-product-new', path: '/admin/products/new', role: 'admin' },
  { name: 'admin-product-edit', path: '/admin/products/{product}', role: 'admin' },
  { name: 'admin-users', path: '/admin/users', role: 'admin' },
  { name: 'admin-jobs', path: '/admin/jobs', role: 'admin' },
  { name: 'admin-analytics', path: '/admin/analytics', role: 'admin' },
  { name: 'admin-dashboard', path: '/admin/dashboard', role: 'admin' },
];

/** `page.path` with its placeholders filled from `data` (the data set). */
export function pathOf(page, data) {
  return page.path.replace('{product}', data.products[0].id);
}
