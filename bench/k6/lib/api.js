// Talking to Outgrow: one request helper that tags every request with its flow and route,
// counts refusals (429) and server errors, and logs the first unexpected answers with their
// request; and the signed-in accounts the flows act as.

import http from 'k6/http';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';

/** Responses refused by a rate limit: a run against a server with default limits shows them. */
export const rateLimited = new Counter('responses_429');
/** 5xx answers: the server failed (or, 503, shed load) rather than the flow's logic. */
export const serverErrors = new Counter('responses_5xx');

/** Statuses that are part of a flow, not failures: 304 is the conditional GET's goal. */
export const EXPECTED = http.expectedStatuses({ min: 200, max: 299 }, 304);

/**
 * Unexpected answers printed per VU, at most: enough to see what went wrong, not a flood.
 * 429s (counted and explained in the summary) are printed by the first two VUs only.
 */
const MAX_LOGGED = 3;
let logged = 0;

/** The flow the current iteration runs; set by `enterFlow`, read by every request. */
let currentFlow = 'setup';

/**
 * Marks the rest of this iteration as `flow`: requests, checks and custom metrics all carry
 * the `flow` tag (thresholds and the KPI table are per flow).
 */
export function enterFlow(flow) {
  currentFlow = flow;
  exec.vu.metrics.tags.flow = flow;
  // `phase:load` selects everything but setup for the overall figures.
  exec.vu.metrics.tags.phase = flow === 'setup' ? 'setup' : 'load';
}

function describe(method, url, body, response) {
  const sent = body ? ` ${String(body).slice(0, 300)}` : '';
  const got = String(response.body || response.error || '').slice(0, 500);
  const id = response.headers['X-Request-Id'] || '-';
  return `${method} ${url}${sent} → ${response.status} (request id ${id}) ${got}`;
}

/**
 * Sends one request. `route` names it in metrics (`GET /api/v1/products/{id}`); `options`
 * takes `token`, `headers`, `expect` (a k6 response callback for statuses this request may
 * legitimately answer beyond 2xx/304) and `tags`.
 */
export function request(config, method, path, body, route, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (body !== null && body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  const params = {
    headers,
    tags: { flow: currentFlow, phase: currentFlow === 'setup' ? 'setup' : 'load', name: route, ...(options.tags || {}) },
    responseCallback: options.expect || EXPECTED,
    timeout: options.timeout || '30s',
  };
  const payload = body === null || body === undefined ? null : JSON.stringify(body);
  const url = `${config.baseUrl}${path}`;
  const response = http.request(method, url, payload, params);
  observe(method, url, payload, response, params.responseCallback);
  return response;
}

/** Counts and logs one response (also used for the responses of `http.batch`). */
export function observe(method, url, payload, response, expect = EXPECTED) {
  if (response.status === 429) rateLimited.add(1);
  if (response.status >= 500) serverErrors.add(1);
  const expected = expectedStatus(expect, response.status);
  const quiet = response.status === 429 && exec.vu.idInTest > 2;
  if (!expected && !quiet && logged < MAX_LOGGED) {
    logged += 1;
    console.warn(`[${currentFlow}] unexpected answer: ${describe(method, url, payload, response)}`);
  }
}

// k6's response callbacks are opaque objects; the statuses are mirrored here to log with them.
const expectations = new Map();
export function expectStatuses(...statuses) {
  const callback = http.expectedStatuses(...statuses);
  expectations.set(callback, statuses);
  return callback;
}

function expectedStatus(expect, status) {
  const statuses = expect === EXPECTED ? [{ min: 200, max: 299 }, 304] : expectations.get(expect);
  if (!statuses) return status >= 200 && status < 400;
  return statuses.some((item) => (typeof item === 'number' ? item === status : status >= item.min && status <= item.max));
}

/** The JSON body, or null when there is none or it does not parse. */
export function json(response) {
  try {
    return response.json();
  } catch (_) {
    return null;
  }
}

/** Signs in; returns the account with its tokens, or null on any refusal. */
export function signIn(config, email, password) {
  const response = request(config, 'POST', '/api/v1/auth/login', { email, password }, 'POST /api/v1/auth/login');
  const body = response.status === 200 ? json(response) : null;
  if (!body || !body.access_token) return { response, account: null };
  return {
    response,
    account: {
      email,
      password,
      userId: body.user.id,
      accessToken: body.access_token,
      // Renew a minute early: a token must not expire between the check and its request.
      renewAt: Date.now() + (body.expires_in - 60) * 1000,
    },
  };
}

/** Accounts this VU signed in again after the ones from setup expired. */
const renewed = {};

/**
 * The signed-in account this VU acts as: each VU keeps one of setup's accounts (spreading
 * per-user rate limits and orders), and signs it in again when its access token nears expiry
 * (runs longer than `access_token_ttl`).
 */
export function account(config, data) {
  const index = (exec.vu.idInTest - 1) % data.accounts.length;
  const current = renewed[index] || data.accounts[index];
  if (Date.now() < current.renewAt) return current;
  const flow = currentFlow;
  enterFlow('session');
  const { account: fresh } = signIn(config, current.email, current.password);
  enterFlow(flow);
  if (fresh) renewed[index] = fresh;
  return fresh || current;
}
