// What the flows need before the load starts: the catalog's product ids and prices (the Zipf
// draws pick from them), search queries made of words in the products' names, and signed-in
// accounts — seeded ones when SEED_EMAIL names one (`outgrow seed` prints
// `sign in as seed-<tag>-0@example.test`; every seeded account has the password
// `seeded-password`), else accounts registered here.

import { fail } from 'k6';
import { enterFlow, json, request, signIn } from './api.js';
import { passwordFor, register } from './accounts.js';

/** The vocabulary of seeded product names (ADJECTIVES and NOUNS in store/seed.rs). */
const SEEDED_WORDS = new Set([
  'red', 'blue', 'green', 'oak', 'steel', 'linen', 'woollen', 'ceramic', 'glass', 'copper', 'bamboo',
  'leather', 'cotton', 'marble', 'walnut', 'brass', 'felt', 'stone', 'silver', 'velvet',
  'mug', 'lamp', 'chair', 'table', 'scarf', 'bowl', 'vase', 'notebook', 'pen', 'bag', 'blanket', 'teapot',
  'plate', 'shelf', 'clock', 'cushion', 'candle', 'basket', 'mirror', 'rug',
]);
const SEED_PASSWORD = 'seeded-password';
const PAGE = 100;

function refused(what, response) {
  const advice = response.status === 429
    ? ' — refused by the server\'s rate limit: raise it (OUTGROW_RATE_LIMIT_DEFAULT, OUTGROW_RATE_LIMIT_AUTH) or ask for fewer accounts (ACCOUNTS / --accounts)'
    : '';
  fail(`setup: ${what} answered ${response.status}${advice}: ${String(response.body || response.error).slice(0, 300)}`);
}

/**
 * Single words and "adjective noun" pairs from the names: each query matches at least the
 * product it came from. Seeded names are "<adjective> <noun> <n>"; for other catalogs the
 * first two words of a name stand in.
 */
function searchQueries(names) {
  const queries = new Set();
  for (const name of names) {
    const words = name.toLowerCase().split(/[^a-z]+/).filter((word) => word.length >= 3);
    const seeded = words.filter((word) => SEEDED_WORDS.has(word));
    const chosen = (seeded.length > 0 ? seeded : words).slice(0, 2);
    for (const word of chosen) queries.add(word);
    if (chosen.length === 2) queries.add(chosen.join(' '));
    if (queries.size >= 1000) break;
  }
  return [...queries];
}

function listCatalog(config) {
  const ids = [];
  const prices = [];
  const names = [];
  let after = '';
  while (ids.length < config.maxProducts) {
    const limit = Math.min(PAGE, config.maxProducts - ids.length);
    const cursor = after ? `&after=${after}` : '';
    const response = request(config, 'GET', `/api/v1/products?limit=${limit}${cursor}`, null, 'GET /api/v1/products');
    if (response.status !== 200) refused('GET /api/v1/products', response);
    const page = json(response) || { items: [] };
    for (const product of page.items) {
      ids.push(product.id);
      prices.push(product.price_minor);
      names.push(product.name);
    }
    if (!page.next_after) break;
    after = page.next_after;
  }
  if (ids.length === 0) fail('setup: the catalog is empty; seed it first (outgrow seed --products N)');
  return { products: { ids, prices }, queries: searchQueries(names) };
}

function seededAccounts(config) {
  const parts = /^(.*-)(\d+)(@.*)$/.exec(config.seedEmail);
  if (!parts) fail(`setup: SEED_EMAIL "${config.seedEmail}" is not of the form seed-<tag>-<n>@example.test`);
  const accounts = [];
  for (let index = 0; index < config.accounts; index += 1) {
    const email = `${parts[1]}${Number(parts[2]) + index}${parts[3]}`;
    const { response, account } = signIn(config, email, SEED_PASSWORD);
    if (account) {
      accounts.push(account);
    } else if (response.status === 401 && accounts.length > 0) {
      break; // fewer seeded accounts than asked for: use those there are
    } else {
      refused(`signing in ${email}`, response);
    }
  }
  return accounts;
}

function registeredAccounts(config, run) {
  const accounts = [];
  const password = passwordFor(run);
  for (let index = 0; index < config.accounts; index += 1) {
    const email = `k6-${run}-setup-${index}@example.test`;
    const registered = register(config, email, password);
    if (registered.status !== 202) refused(`registering ${email}`, registered);
    const { response, account } = signIn(config, email, password);
    if (!account) refused(`signing in ${email}`, response);
    accounts.push(account);
  }
  return accounts;
}

/** Runs once before the load; what it returns is every VU's `data`. */
export function prepare(config) {
  enterFlow('setup');
  const ready = request(config, 'GET', '/readyz', null, 'GET /readyz');
  if (ready.status !== 200) refused(`${config.baseUrl}/readyz`, ready);
  const run = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const catalog = listCatalog(config);
  const accounts = config.seedEmail ? seededAccounts(config) : registeredAccounts(config, run);
  return { run, ...catalog, accounts };
}
