// Outgrow's load tests for k6: the store's real flows under an open-model load, with the
// guide's KPI as thresholds (p95 < 300 ms per flow, < 0.1 % failed requests, ≥ 99.9 % checks)
// so that a run exits non-zero when one is missed. scripts/loadtest runs it against an
// embedded Outgrow it starts and seeds (or --url); bench/k6/README.md documents it.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e SEED_EMAIL=seed-abc123-0@example.test \
//          -e SCENARIO=mix -e DURATION=60s -e RATE=40 bench/k6/main.js
//
// Scenarios (SCENARIO, comma-separated to run several side by side): `mix` (the weighted
// mix of every flow) or one flow: browse, conditional, auth, profile, order, events, export.

import http from 'k6/http';
import exec from 'k6/execution';
import { EXPECTED } from './lib/api.js';
import { mixRotation, options as buildOptions, settings } from './lib/config.js';
import { browse as browseFlow, conditional as conditionalFlow } from './lib/catalog.js';
import { auth as authFlow, profile as profileFlow } from './lib/accounts.js';
import { dataExport, events as eventsFlow, order as orderFlow } from './lib/store.js';
import { prepare } from './lib/setup.js';
import { kpi, notes, table } from './lib/summary.js';

const config = settings();

// 2xx and 304 are answers the flows want; anything else counts in http_req_failed (requests
// that may legitimately answer otherwise, such as a concurrent order retry's 409, say so).
http.setResponseCallback(EXPECTED);

export const options = buildOptions(config);

export function setup() {
  return prepare(config);
}

const FLOW_FUNCTIONS = {
  browse: browseFlow,
  conditional: conditionalFlow,
  auth: authFlow,
  profile: profileFlow,
  order: orderFlow,
  events: eventsFlow,
  export: dataExport,
};
const ROTATION = mixRotation();

export function mix(data) {
  const flow = ROTATION[exec.scenario.iterationInTest % ROTATION.length];
  FLOW_FUNCTIONS[flow](config, data);
}

export function browse(data) {
  browseFlow(config, data);
}
export function conditional(data) {
  conditionalFlow(config, data);
}
export function auth(data) {
  authFlow(config, data);
}
export function profile(data) {
  profileFlow(config, data);
}
export function order(data) {
  orderFlow(config, data);
}
export function events(data) {
  eventsFlow(config, data);
}
// `export` is a reserved word: the scenario named export runs this function.
export function exportData(data) {
  dataExport(config, data);
}

export function handleSummary(data) {
  // Built afresh: k6 takes the exported options over, and they read back empty here.
  const figures = kpi(config, data, buildOptions(config).scenarios);
  const text = [
    config.runnerPrintsKpi ? '' : `\n${table(figures)}`,
    notes(figures),
  ].filter(Boolean).join('\n\n');
  const files = { stdout: `${text}\n` };
  if (config.outDir) {
    // setup_data carries access tokens and the whole product list: left out.
    const { setup_data: _, ...rest } = data;
    files[`${config.outDir}/summary.json`] = JSON.stringify({ kpi: figures, k6: rest }, null, 2);
  }
  return files;
}
