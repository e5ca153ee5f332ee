// Traffic for the chaos tests (scripts/chaos): a steady open-model load through nginx while
// instances, workers, a replica or Redis are killed and restarted under it.
//
//   k6 run -e BASE_URL=http://127.0.0.1:18080 -e SEED_EMAIL=seed-abc-0@example.test \
//          -e RATE=60 -e DURATION=30s -e STRICT=1 --console-output acks.log bench/k6/chaos.js
//
// Every iteration is one request, in a fixed rotation of six: reads (a product, the caller's
// profile — a session check —, a catalog page, another product) and writes (an order with its
// own Idempotency-Key, a batch of 5 events marked with the run; in the sixth slot, every
// other time, an export (unless EXPORTS=0) or a sign-in instead of the second product read). What was acknowledged is printed —
// `ACK <order id> <user id>`, `EVENTS <stored>`, `EXPORT <export id>`, and `RUN <run id>` from
// setup — so that the runner can check afterwards that each of them is in the database.
//
// Thresholds (the run exits non-zero when one fails):
//   reads:  0 failed, always (idempotent requests are retried by nginx on another instance);
//   writes: 0 failed with STRICT=1 (rolling restart, SIGTERM); otherwise a write may fail
//           when the instance holding it dies (nginx never resends a POST it has sent), but
//           DEGRADED=1 also accepts 503 with Retry-After (a write that needs Redis while it is
//           down), and never a 500.
// RATE: requests per second (default 60); DURATION (default 30s); ACCOUNTS (default 10).

import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { enterFlow, expectStatuses, json, request, account } from './lib/api.js';
import { settings } from './lib/config.js';
import { prepare } from './lib/setup.js';

const config = settings();
const strict = __ENV.STRICT === '1';
const degraded = __ENV.DEGRADED === '1';
const rate = Number(__ENV.RATE || '60');
const duration = __ENV.DURATION || '30s';
const exportsWanted = __ENV.EXPORTS !== '0';
const EVENTS_PER_BATCH = 5;

const acknowledged = new Counter('orders_acknowledged');
const refusedWithRetryAfter = new Counter('writes_503_with_retry_after');
const serverFailures = new Counter('responses_500');
// A write without an Idempotency-Key whose connection closed before any answer (status 0):
// the client cannot know whether it was processed, and may not resend it on its own. An nginx
// reload (the readiness watcher makes two per restarted instance) closes idle client
// keep-alive connections, and a request racing that close ends like this. Orders carry a key,
// so k6 (Go's HTTP client) resends them by itself; event batches, exports and sign-ins do not.
const unkeyedConnectionLost = new Counter('writes_unkeyed_connection_lost');

// 409 is the store saying "out of stock": an answer, not a failure. In degraded mode a 503
// is the documented answer of a write that needs Redis.
const WRITE_ANSWERS = degraded ? expectStatuses({ min: 200, max: 299 }, 409, 503) : expectStatuses({ min: 200, max: 299 }, 409);

// OUTAGE=1: every instance is stopped mid-run on purpose; what counts then is what was
// acknowledged before, which the runner checks in the database.
const outage = __ENV.OUTAGE === '1';
const thresholds = {
  'http_req_failed{kind:read}': [outage ? 'rate<=1' : 'rate==0'],
  responses_500: ['count==0'],
  checks: ['rate==1'],
};
// (k6 computes a tagged sub-metric only when a threshold names it: the summary needs both.)
thresholds['http_req_failed{kind:write}'] = [strict ? 'rate==0' : 'rate<=1'];

export const options = {
  scenarios: {
    chaos: {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration,
      preAllocatedVUs: Math.max(10, Math.ceil(rate / 4)),
      maxVUs: Math.max(50, rate * 2),
      gracefulStop: '30s',
    },
  },
  thresholds,
  setupTimeout: '120s',
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  const data = prepare(config);
  console.log(`RUN ${data.run}`);
  return data;
}

/** A write refused while Redis is away must say when to come back. */
function checkRefusal(response) {
  if (response.status !== 503) return;
  const retryAfter = response.headers['Retry-After'];
  if (retryAfter) refusedWithRetryAfter.add(1);
  check(response, { 'a 503 says Retry-After': () => Boolean(retryAfter) });
}

export default function (data) {
  enterFlow('chaos');
  const me = account(config, data);
  const iteration = exec.scenario.iterationInTest;
  const step = iteration % 6;
  const product = data.products.ids[Math.floor(Math.random() * data.products.ids.length)];
  let response;
  if (step === 0) {
    response = request(config, 'GET', `/api/v1/products/${product}`, null, 'GET /api/v1/products/{id}', { tags: { kind: 'read' } });
  } else if (step === 1) {
    response = request(config, 'GET', '/api/v1/me', null, 'GET /api/v1/me', { token: me.accessToken, tags: { kind: 'read' } });
  } else if (step === 2) {
    response = request(config, 'GET', '/api/v1/products?limit=20', null, 'GET /api/v1/products', { tags: { kind: 'read' } });
  } else if (step === 4) {
    // A batch of events, marked with the run so the runner can count them in the database.
    const timestamp = new Date().toISOString();
    const batch = [];
    for (let index = 0; index < EVENTS_PER_BATCH; index += 1) {
      batch.push({ type: 'page.viewed', timestamp, properties: { chaos_run: data.run, position: index } });
    }
    response = request(config, 'POST', '/api/v1/events', { events: batch }, 'POST /api/v1/events', {
      token: me.accessToken,
      tags: { kind: 'write' },
      expect: WRITE_ANSWERS,
    });
    if (response.status === 201) console.log(`EVENTS ${(json(response) || {}).stored}`);
    checkRefusal(response);
  } else if (step === 5 && iteration % 12 === 5 && exportsWanted) {
    response = request(config, 'POST', '/api/v1/exports', { format: 'json' }, 'POST /api/v1/exports', {
      token: me.accessToken,
      tags: { kind: 'write' },
      expect: WRITE_ANSWERS,
    });
    if (response.status === 202) console.log(`EXPORT ${(json(response) || {}).id}`);
    checkRefusal(response);
  } else if (step === 5 && iteration % 12 === 11) {
    // A sign-in creates a session (in Redis when there is one): the write that needs Redis.
    response = request(config, 'POST', '/api/v1/auth/login', { email: me.email, password: me.password }, 'POST /api/v1/auth/login', {
      tags: { kind: 'write' },
      expect: WRITE_ANSWERS,
    });
    checkRefusal(response);
  } else if (step === 5) {
    response = request(config, 'GET', `/api/v1/products/${product}`, null, 'GET /api/v1/products/{id}', { tags: { kind: 'read' } });
  } else {
    const key = `chaos-${data.run}-${iteration}`;
    response = request(config, 'POST', '/api/v1/orders', { items: [{ product_id: product, quantity: 1 }] }, 'POST /api/v1/orders', {
      token: me.accessToken,
      headers: { 'Idempotency-Key': key },
      tags: { kind: 'write' },
      expect: WRITE_ANSWERS,
    });
    if (response.status === 201) {
      const order = json(response) || {};
      acknowledged.add(1);
      console.log(`ACK ${order.id} ${me.userId}`);
    }
    checkRefusal(response);
  }
  if (response.status === 500) serverFailures.add(1);
  // Every write but the order (steps 4 and 5) carries no Idempotency-Key.
  if (response.status === 0 && step >= 4 && response.request.method === 'POST') unkeyedConnectionLost.add(1);
}

function count(data, name, tags) {
  const key = tags ? `${name}{${tags}}` : name;
  const metric = data.metrics[key];
  if (!metric) return { passes: 0, fails: 0, count: 0, rate: 0 };
  return metric.values;
}

export function handleSummary(data) {
  const reads = count(data, 'http_req_failed', 'kind:read');
  const writes = count(data, 'http_req_failed', 'kind:write');
  const duration95 = data.metrics.http_req_duration ? data.metrics.http_req_duration.values['p(95)'] : 0;
  const figures = {
    reads: reads.passes + reads.fails,
    reads_failed: reads.passes,
    writes: writes.passes + writes.fails,
    writes_failed: writes.passes,
    orders_acknowledged: (data.metrics.orders_acknowledged || { values: { count: 0 } }).values.count,
    writes_503_with_retry_after: (data.metrics.writes_503_with_retry_after || { values: { count: 0 } }).values.count,
    responses_500: (data.metrics.responses_500 || { values: { count: 0 } }).values.count,
    writes_unkeyed_connection_lost: (data.metrics.writes_unkeyed_connection_lost || { values: { count: 0 } }).values.count,
    p95_ms: Math.round(duration95 * 10) / 10,
    thresholds_ok: Object.values(data.metrics).every((m) => !m.thresholds || Object.values(m.thresholds).every((t) => t.ok)),
  };
  const line = `chaos traffic: ${figures.reads} reads (${figures.reads_failed} failed), ${figures.writes} writes (${figures.writes_failed} failed, ${figures.orders_acknowledged} orders acknowledged${degraded ? `, ${figures.writes_503_with_retry_after} answered 503 with Retry-After` : ''}), ${figures.responses_500} × 500, p95 ${figures.p95_ms} ms`;
  const files = { stdout: `${line}\n` };
  if (config.outDir) files[`${config.outDir}/chaos-summary.json`] = JSON.stringify(figures, null, 1);
  return files;
}
