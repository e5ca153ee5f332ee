// The cart page: a quantity change updates its line, the total and the cookie at once (the
// Update buttons still work without JavaScript), and "Check out" cannot be sent twice by a
// double click (the form's Idempotency-Key would make a second order impossible anyway).
import { readCart, writeCart, showCount, cartCount } from './cart-store.js';

function format(minor, currency) {
  const sign = minor < 0 ? '-' : '';
  const abs = Math.abs(minor);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')} ${currency}`;
}

function updateTotals() {
  const totals = new Map();
  for (const line of document.querySelectorAll('[data-line]')) {
    const input = line.querySelector('input[name="quantity"]');
    const quantity = Math.max(0, Number.parseInt(input?.value ?? '0', 10) || 0);
    const minor = Number(line.dataset.unitMinor) * quantity;
    const currency = line.dataset.currency;
    totals.set(currency, (totals.get(currency) ?? 0) + minor);
    const cell = line.querySelector('[data-line-total]');
    if (cell) cell.textContent = format(minor, currency);
  }
  const shown = document.querySelectorAll('[data-total]');
  [...totals].forEach(([currency, minor], index) => {
    if (shown[index]) shown[index].textContent = format(minor, currency);
  });
}

export function start() {
  for (const line of document.querySelectorAll('[data-line]')) {
    const input = line.querySelector('input[name="quantity"]');
    input?.addEventListener('input', () => {
      const quantity = Number.parseInt(input.value, 10);
      if (!(quantity >= 1 && quantity <= 100)) return;
      const cart = readCart();
      cart.set(line.dataset.productId, quantity);
      writeCart(cart);
      showCount(cartCount());
      updateTotals();
    });
  }
  const checkout = document.querySelector('form[data-checkout]');
  checkout?.addEventListener('submit', (event) => {
    const button = checkout.querySelector('button');
    if (checkout.dataset.sent) {
      event.preventDefault();
      return;
    }
    checkout.dataset.sent = 'true';
    button?.setAttribute('aria-busy', 'true');
    button.textContent = 'Placing your order…';
  });
}
