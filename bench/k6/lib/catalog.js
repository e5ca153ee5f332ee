// The anonymous catalog flows: browsing (a Zipf-popular product, a full-text search and its
// next page, a walk through listing pages by keyset) and conditional GETs (`If-None-Match`
// answered 304). Every check also verifies what the answer says, not only its status.

import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { Zipf } from './zipf.js';
import { enterFlow, json, request } from './api.js';

const PRODUCT = 'GET /api/v1/products/{id}';
const LIST = 'GET /api/v1/products';
const SEARCH = 'GET /api/v1/products?q=';

/** Share of conditional GETs answered 304 (the rest changed in between). */
export const notModified = new Rate('conditional_304');

/** Per VU: the Zipf sampler over setup's product list (built once, on first use). */
let zipf = null;

/** A Zipf-popular product rank (0 = the first product created, the most popular). */
export function popularRank(config, data) {
  if (zipf === null) zipf = new Zipf(data.products.ids.length, config.zipfExponent);
  return zipf.sample();
}

/** `count` distinct Zipf-popular ranks. */
export function popularRanks(config, data, count) {
  popularRank(config, data);
  return zipf.distinct(count);
}

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function items(response) {
  const body = json(response);
  return body && Array.isArray(body.items) ? body : { items: [] };
}

/** Ids strictly ascending: keyset pages are in id (creation) order. */
function ascending(ids) {
  return ids.every((id, index) => index === 0 || ids[index - 1] < id);
}

/** Every word of `query` is a whole word of the product's name or description. */
function matches(product, query) {
  const text = `${product.name} ${product.description}`.toLowerCase();
  return query
    .toLowerCase()
    .split(/\s+/)
    .every((word) => new RegExp(`(^|[^a-z0-9])${word}([^a-z0-9]|$)`).test(text));
}

function viewProduct(config, data) {
  const id = data.products.ids[popularRank(config, data)];
  const response = request(config, 'GET', `/api/v1/products/${id}`, null, PRODUCT);
  check(response, {
    'product: 200': (r) => r.status === 200,
    'product: the one asked for': (r) => (json(r) || {}).id === id,
    'product: strong ETag and public Cache-Control': (r) =>
      /^"[^"]+"$/.test(r.headers.Etag || '') && /public/.test(r.headers['Cache-Control'] || ''),
  });
}

function search(config, data) {
  const query = pick(data.queries);
  const q = encodeURIComponent(query);
  const first = request(config, 'GET', `/api/v1/products?q=${q}&limit=10`, null, SEARCH);
  const page = items(first);
  check(first, {
    'search: 200': (r) => r.status === 200,
    // Queries come from the names of listed products: at least that product matches.
    'search: finds the product the words come from': () => page.items.length > 0,
    'search: every result has every word': () => page.items.every((product) => matches(product, query)),
  });
  if (!page.next_after) return;
  const next = request(config, 'GET', `/api/v1/products?q=${q}&limit=10&after=${page.next_after}`, null, SEARCH);
  const second = items(next);
  check(next, {
    'search next page: 200': (r) => r.status === 200,
    'search next page: continues after the cursor': () =>
      second.items.every((product) => matches(product, query) && product.id > page.next_after),
  });
}

function walkPages(config, data) {
  // Start at a Zipf-popular product (any id is a valid cursor), sometimes within a price
  // range, and follow next_after for up to 3 pages.
  let after = data.products.ids[popularRank(config, data)];
  const filter = Math.random() < 0.3 ? '&min_price=1000&max_price=9000' : '';
  for (let pageNumber = 0; pageNumber < 3 && after; pageNumber += 1) {
    const response = request(config, 'GET', `/api/v1/products?limit=20&after=${after}${filter}`, null, LIST);
    const page = items(response);
    const ids = page.items.map((product) => product.id);
    const cursor = after;
    check(response, {
      'page: 200': (r) => r.status === 200,
      'page: in keyset order after the cursor': () => ascending(ids) && ids.every((id) => id > cursor),
      'page: within the price range': () =>
        filter === '' || page.items.every((product) => product.price_minor >= 1000 && product.price_minor <= 9000),
      'page: next_after is the last item': () => !page.next_after || page.next_after === ids[ids.length - 1],
    });
    after = page.next_after;
  }
}

/** Browse the catalog: a product, a search and its next page, a walk through pages. */
export function browse(config, data) {
  enterFlow('browse');
  viewProduct(config, data);
  search(config, data);
  walkPages(config, data);
}

function revalidate(config, path, route, label) {
  const first = request(config, 'GET', path, null, route);
  const etag = first.headers.Etag;
  check(first, { [`${label}: 200 with an ETag`]: (r) => r.status === 200 && Boolean(etag) });
  if (!etag) return;
  const again = request(config, 'GET', path, null, route, { headers: { 'If-None-Match': etag } });
  // 304 is the goal. A 200 is right only when the representation changed in between (an
  // order changed the stock): then its ETag must differ. A 200 with the same ETag is a bug.
  check(again, {
    [`${label}: 304 for an unchanged ETag (or 200 with a new one)`]: (r) =>
      r.status === 304 || (r.status === 200 && r.headers.Etag && r.headers.Etag !== etag),
    [`${label}: 304 without a body, same ETag`]: (r) =>
      r.status !== 304 || ((r.body || '').length === 0 && r.headers.Etag === etag),
  });
  notModified.add(again.status === 304);
}

/** Conditional GETs: a product and a listing page, each fetched and then revalidated. */
export function conditional(config, data) {
  enterFlow('conditional');
  const id = data.products.ids[popularRank(config, data)];
  revalidate(config, `/api/v1/products/${id}`, PRODUCT, 'product');
  revalidate(config, '/api/v1/products?limit=20', LIST, 'page');
}
