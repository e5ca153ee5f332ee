// The product page: adding to the cart without leaving the page.
import { enhanceAddForms } from './cart-store.js';

export function start() {
  enhanceAddForms();
}
