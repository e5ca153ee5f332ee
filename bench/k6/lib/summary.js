// The end of a run: per-flow figures (requests, throughput, p50/p95/p99, failed requests,
// checks) from k6's summary data, the thresholds crossed and the checks that failed, as text
// for the terminal and as JSON (`summary.json`) for scripts/loadtest's KPI table.

import { activeFlows, loadSeconds } from './config.js';

function metric(data, name) {
  return data.metrics[name] || { values: {}, thresholds: {} };
}

function row(data, label, selector, seconds) {
  const requests = metric(data, `http_reqs${selector}`).values.count || 0;
  const duration = metric(data, `http_req_duration${selector}`).values;
  const failed = metric(data, `http_req_failed${selector}`).values;
  const checks = metric(data, `checks${selector}`).values;
  const thresholdsOk = ['http_reqs', 'http_req_duration', 'http_req_failed', 'checks'].every((name) =>
    Object.values(metric(data, `${name}${selector}`).thresholds || {}).every((result) => result.ok));
  return {
    flow: label,
    requests,
    throughput_rps: requests / seconds,
    p50_ms: requests ? duration.med : null,
    p95_ms: requests ? duration['p(95)'] : null,
    p99_ms: requests ? duration['p(99)'] : null,
    failed_requests: failed.passes || 0,
    error_rate: requests ? failed.rate : null,
    checks_failed: checks.fails || 0,
    checks_rate: (checks.passes || 0) + (checks.fails || 0) > 0 ? checks.rate : null,
    thresholds_ok: thresholdsOk,
  };
}

function failedChecks(group, found = []) {
  for (const check of group.checks || []) {
    if (check.fails > 0) found.push({ name: check.name, fails: check.fails, passes: check.passes });
  }
  for (const child of group.groups || []) failedChecks(child, found);
  return found;
}

function crossedThresholds(data) {
  const crossed = [];
  for (const [name, value] of Object.entries(data.metrics)) {
    for (const [threshold, result] of Object.entries(value.thresholds || {})) {
      if (!result.ok) crossed.push(`${name}: ${threshold}`);
    }
  }
  return crossed.sort();
}

function valueOrNull(value) {
  return value === undefined ? null : value;
}

/** The run's figures, as written to summary.json under `kpi`. */
export function kpi(config, data, scenarios) {
  const seconds = loadSeconds(config);
  const count = (name) => metric(data, name).values.count || 0;
  return {
    scenario: config.scenarios.join(','),
    executor: config.executor === 'ramping' ? 'ramping-arrival-rate' : 'constant-arrival-rate',
    scenarios,
    load_seconds: seconds,
    smoke: config.smoke,
    limits: config.limits,
    flows: activeFlows(config).map((flow) => row(data, flow, `{flow:${flow}}`, seconds)),
    all: row(data, 'all', '{phase:load}', seconds),
    iterations: count('iterations'),
    dropped_iterations: count('dropped_iterations'),
    responses_429: count('responses_429'),
    responses_5xx: count('responses_5xx'),
    conditional_304_rate: valueOrNull(metric(data, 'conditional_304').values.rate),
    export_ready_p95_seconds: valueOrNull(metric(data, 'export_ready_seconds').values['p(95)']),
    vus_max: metric(data, 'vus_max').values.max || null,
    thresholds_crossed: crossedThresholds(data),
    failed_checks: failedChecks(data.root_group || {}),
  };
}

function fixed(value, digits, unit) {
  return value === null || value === undefined ? '–' : `${value.toFixed(digits)}${unit}`;
}

function pad(text, width, right = false) {
  const value = String(text);
  return right ? value.padStart(width) : value.padEnd(width);
}

/** The per-flow table, for a terminal. */
export function table(figures) {
  const header = ['flow', 'requests', 'throughput', 'p50', 'p95', 'p99', 'failed', 'checks', ''];
  const widths = [12, 9, 13, 11, 11, 11, 9, 9, 4];
  const lines = [header.map((cell, index) => pad(cell, widths[index], index > 0 && index < 8)).join(' ')];
  for (const flow of [...figures.flows, figures.all]) {
    lines.push([
      flow.flow,
      flow.requests,
      fixed(flow.throughput_rps, 1, ' req/s'),
      fixed(flow.p50_ms, 1, ' ms'),
      fixed(flow.p95_ms, 1, ' ms'),
      fixed(flow.p99_ms, 1, ' ms'),
      fixed(flow.error_rate === null ? null : flow.error_rate * 100, 2, ' %'),
      fixed(flow.checks_rate === null ? null : flow.checks_rate * 100, 2, ' %'),
      flow.thresholds_ok ? 'ok' : 'FAIL',
    ].map((cell, index) => pad(cell, widths[index], index > 0 && index < 8)).join(' '));
  }
  return lines.join('\n');
}

/** Notes that explain a failing or suspicious run. */
export function notes(figures) {
  const lines = [];
  if (figures.thresholds_crossed.length > 0) {
    lines.push(`thresholds crossed (the run fails):\n  ${figures.thresholds_crossed.join('\n  ')}`);
  }
  if (figures.failed_checks.length > 0) {
    const checks = figures.failed_checks.map((item) => `${item.name}: ${item.fails} of ${item.fails + item.passes} failed`);
    lines.push(`failed checks:\n  ${checks.join('\n  ')}`);
  }
  if (figures.responses_429 > 0) {
    lines.push(`${figures.responses_429} responses were 429 Too Many Requests: the server's rate limits refused part of the load. ` +
      'Against your own server (--url) its limits are yours to raise: OUTGROW_RATE_LIMIT_DEFAULT, OUTGROW_RATE_LIMIT_AUTH, OUTGROW_RATE_LIMIT_EXPORT, OUTGROW_RATE_LIMIT_ORDER.');
  }
  if (figures.responses_5xx > 0) lines.push(`${figures.responses_5xx} responses were 5xx (see the server's log).`);
  if (figures.dropped_iterations > 0) {
    lines.push(`${figures.dropped_iterations} iterations were dropped: no VU was free when they were due (responses too slow for the rate asked, or k6 itself short of CPU).`);
  }
  return lines.join('\n');
}
