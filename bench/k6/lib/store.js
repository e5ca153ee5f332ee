// The signed-in store flows: placing an order with an `Idempotency-Key` (and retrying it,
// sometimes concurrently, which must replay and create nothing), posting event batches, and
// exporting one's data (202, poll until ready, download the signed link).

import http from 'k6/http';
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import { Trend } from 'k6/metrics';
import { account, enterFlow, expectStatuses, json, observe, request } from './api.js';
import { popularRanks } from './catalog.js';

/** Seconds from `POST /exports` to the export being ready (the job queue's turnaround). */
export const exportReady = new Trend('export_ready_seconds');

const ORDERS = 'POST /api/v1/orders';
/** The concurrent duplicate may find the first one still running: 409 is then the answer. */
const CREATED_OR_RUNNING = expectStatuses(201, 409);
const EVENT_TYPES = ['product.viewed', 'product.searched', 'cart.added', 'checkout.started', 'page.viewed'];

function orderRequest(config, me, key, body) {
  return {
    method: 'POST',
    url: `${config.baseUrl}/api/v1/orders`,
    body: JSON.stringify(body),
    params: {
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${me.accessToken}`, 'Idempotency-Key': key },
      tags: { flow: 'order', phase: 'load', name: ORDERS },
      responseCallback: CREATED_OR_RUNNING,
    },
  };
}

/** Sends the same order twice at once; returns the original answer (the one not replayed). */
function placeTwiceConcurrently(config, me, key, body) {
  const pair = orderRequest(config, me, key, body);
  const responses = http.batch([pair, pair]);
  for (const response of responses) observe('POST', pair.url, pair.body, response, CREATED_OR_RUNNING);
  const originals = responses.filter((r) => r.status === 201 && r.headers['Idempotent-Replayed'] !== 'true');
  const others = responses.filter((r) => !originals.includes(r));
  check(responses, {
    'concurrent retry: one original, the other replayed or 409': () =>
      originals.length === 1 &&
      others.every((r) => r.status === 409 || (r.status === 201 && r.headers['Idempotent-Replayed'] === 'true')),
    'concurrent retry: a replay names the same order': () =>
      others.every((r) => r.status !== 201 || (json(r) || {}).id === (json(originals[0]) || {}).id),
  });
  return originals[0] || responses[0];
}

/** Place an order (Zipf-popular products), retry it with the same key, read it back. */
export function order(config, data) {
  enterFlow('order');
  const me = account(config, data);
  const ranks = popularRanks(config, data, 1 + Math.floor(Math.random() * 3));
  const items = ranks.map((rank) => ({ product_id: data.products.ids[rank], quantity: 1 + Math.floor(Math.random() * 2) }));
  const total = ranks.reduce((sum, rank, index) => sum + data.products.prices[rank] * items[index].quantity, 0);
  const body = { items };
  const key = `k6-${data.run}-${exec.scenario.name}-${exec.scenario.iterationInTest}`;
  const headers = { 'Idempotency-Key': key };
  // One order in five is sent twice at once: concurrent retries must create one order.
  const placed = exec.scenario.iterationInTest % 5 === 0
    ? placeTwiceConcurrently(config, me, key, body)
    : request(config, 'POST', '/api/v1/orders', body, ORDERS, { token: me.accessToken, headers });
  const created = json(placed) || {};
  check(placed, {
    'order: 201 with Location': (r) => r.status === 201 && r.headers.Location === `/api/v1/orders/${created.id}`,
    'order: placed for the buyer, total from the stored prices': () =>
      created.status === 'placed' && created.user_id === me.userId && created.total_minor === total,
  });
  if (placed.status !== 201) return;

  const retry = request(config, 'POST', '/api/v1/orders', body, ORDERS, { token: me.accessToken, headers });
  check(retry, {
    'order retry: 201 replayed (Idempotent-Replayed: true)': (r) =>
      r.status === 201 && r.headers['Idempotent-Replayed'] === 'true',
    'order retry: the same order': (r) => (json(r) || {}).id === created.id,
  });

  const read = request(config, 'GET', `/api/v1/orders/${created.id}`, null, 'GET /api/v1/orders/{id}', { token: me.accessToken });
  check(read, {
    'order read back: 200, same lines': (r) =>
      r.status === 200 && (json(r) || {}).id === created.id && ((json(r) || {}).items || []).length === items.length,
  });
}

/** Post one batch of events; it is acknowledged once committed. */
export function events(config, data) {
  enterFlow('events');
  const me = account(config, data);
  const timestamp = new Date().toISOString();
  const batch = [];
  for (let index = 0; index < config.eventsPerRequest; index += 1) {
    batch.push({
      type: EVENT_TYPES[index % EVENT_TYPES.length],
      timestamp,
      properties: { product_id: data.products.ids[index % data.products.ids.length], position: index, source: 'k6' },
    });
  }
  const response = request(config, 'POST', '/api/v1/events', { events: batch }, 'POST /api/v1/events', { token: me.accessToken });
  check(response, {
    'events: 201, all stored': (r) => r.status === 201 && (json(r) || {}).stored === batch.length,
  });
}

/** The path and query of a link (the server may name another host in it: always ask ours). */
function pathOf(link) {
  const match = /^[a-z]+:\/\/[^/]+(\/.*)$/i.exec(link);
  return match ? match[1] : link;
}

/** Export one's data: 202, poll until ready, download it. */
export function dataExport(config, data) {
  enterFlow('export');
  const me = account(config, data);
  const format = exec.scenario.iterationInTest % 2 === 0 ? 'json' : 'csv';
  const started = Date.now();
  const accepted = request(config, 'POST', '/api/v1/exports', { format }, 'POST /api/v1/exports', { token: me.accessToken });
  const job = json(accepted) || {};
  check(accepted, {
    'export: 202 with Location, pending': (r) =>
      r.status === 202 && r.headers.Location === `/api/v1/exports/${job.id}` && job.status === 'pending',
  });
  if (accepted.status !== 202) return;

  let state = job;
  while (state.status === 'pending' && Date.now() - started < config.exportTimeoutSeconds * 1000) {
    sleep(0.25);
    const polled = request(config, 'GET', `/api/v1/exports/${job.id}`, null, 'GET /api/v1/exports/{id}', { token: me.accessToken });
    check(polled, { 'export poll: 200': (r) => r.status === 200 });
    state = json(polled) || state;
  }
  const ready = state.status === 'ready' && Boolean(state.download_url);
  check(state, { [`export: ready with a link within ${config.exportTimeoutSeconds} s`]: () => ready });
  if (!ready) return;
  exportReady.add((Date.now() - started) / 1000);

  const file = request(config, 'GET', pathOf(state.download_url), null, 'GET /api/v1/exports/{id}/download');
  check(file, {
    'export download: 200 attachment': (r) =>
      r.status === 200 && /attachment/.test(r.headers['Content-Disposition'] || '') && (r.body || '').length > 0,
  });
}
