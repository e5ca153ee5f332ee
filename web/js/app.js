// The one script every page loads. It updates the cart badge and then loads the module of
// this page only (code splitting by dynamic import: the catalog never downloads the
// dashboard's charts). Pages work without any of this.
import { cartCount } from './cart-store.js';

const pages = {
  catalog: () => import('./catalog.js'),
  product: () => import('./product.js'),
  cart: () => import('./cart.js'),
  dashboard: () => import('./dashboard.js'),
  analytics: () => import('./analytics.js'),
  'admin-product': () => import('./admin-product.js'),
};

const badge = document.querySelector('[data-cart-count]');
const count = cartCount();
if (badge && count > 0) {
  badge.textContent = String(count);
  badge.hidden = false;
}

const load = pages[document.body.dataset.page];
if (load) {
  load()
    .then((module) => module.start?.())
    .catch((error) => console.error('page module failed', error));
}
