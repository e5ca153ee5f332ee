// The cart lives in the browser, in the `outgrow_cart` cookie (`id:qty.id:qty`), so the server
// stays stateless and pages without JavaScript can still add to it by posting a form. This
// module reads and writes the same cookie.

const COOKIE = 'outgrow_cart';
const MAX_LINES = 50;
const MAX_QUANTITY = 100;
const ID = /^[0-9a-f-]{36}$/;

/** The cart: a Map of product id to quantity. */
export function readCart() {
  const cart = new Map();
  const raw = document.cookie.split('; ').find((item) => item.startsWith(`${COOKIE}=`));
  if (!raw) return cart;
  for (const line of raw.slice(COOKIE.length + 1).split('.')) {
    const [id, quantity] = line.split(':');
    const count = Number.parseInt(quantity, 10);
    if (ID.test(id) && count > 0) cart.set(id, Math.min(count, MAX_QUANTITY));
  }
  return cart;
}

/** Stores `cart` (a Map) for 30 days. */
export function writeCart(cart) {
  const value = [...cart].slice(0, MAX_LINES).map(([id, quantity]) => `${id}:${quantity}`).join('.');
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = value
    ? `${COOKIE}=${value}; Path=/; Max-Age=2592000; SameSite=Lax${secure}`
    : `${COOKIE}=; Path=/; Max-Age=0; SameSite=Lax${secure}`;
}

/** Units in the cart. */
export function cartCount() {
  let units = 0;
  for (const quantity of readCart().values()) units += quantity;
  return units;
}

/** Adds `quantity` of `id`; returns the new unit count. */
export function addToCart(id, quantity) {
  const cart = readCart();
  cart.set(id, Math.min((cart.get(id) ?? 0) + quantity, MAX_QUANTITY));
  writeCart(cart);
  return cartCount();
}

/** Shows `count` in the header's badge. */
export function showCount(count) {
  const badge = document.querySelector('[data-cart-count]');
  if (!badge) return;
  badge.textContent = String(count);
  badge.hidden = count === 0;
}

/** Turns the add-to-cart forms under `root` into in-page actions (no reload). */
export function enhanceAddForms(root = document) {
  for (const form of root.querySelectorAll('form[data-add-to-cart]')) {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const quantity = Number.parseInt(String(data.get('quantity') ?? '1'), 10) || 1;
      const count = addToCart(String(data.get('product_id')), quantity);
      showCount(count);
      const status = form.querySelector('[data-cart-status]');
      if (status) status.textContent = `Added. ${count} in your cart.`;
    });
  }
}
