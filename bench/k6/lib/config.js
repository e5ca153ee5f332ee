// The run's configuration, from k6's `-e NAME=value` (or the environment): which scenario,
// how hard, for how long, and the thresholds a run must meet. scripts/loadtest sets these;
// running k6 by hand takes the same names (see bench/k6/README.md).

/** Every flow, in the order the KPI table lists them. */
export const FLOWS = ['browse', 'conditional', 'auth', 'profile', 'order', 'events', 'export'];

/**
 * The weighted mix: percent of iterations per flow. Mostly anonymous catalog reads, as a
 * store's traffic is; sign-ups, orders and exports are the expensive minority.
 */
export const MIX_WEIGHTS = {
  browse: 45,
  conditional: 15,
  profile: 15,
  order: 10,
  events: 8,
  auth: 4,
  export: 3,
};

/**
 * Iterations per second when --rate is not given. A browse iteration is ~5 requests, an
 * order 2–4, an export a few polls over ~1 s; the values keep a 2-core machine (k6 and the
 * server on the same cores) well inside the KPI, so a failing run means something changed.
 */
const DEFAULT_RATE = {
  mix: 40,
  browse: 30,
  conditional: 40,
  auth: 5,
  profile: 40,
  order: 15,
  events: 15,
  export: 2,
};
const SMOKE_RATE = 10;

/** Rough seconds one iteration takes, to pre-allocate enough VUs for an open model. */
const ITERATION_SECONDS = {
  mix: 0.3,
  browse: 0.05,
  conditional: 0.03,
  auth: 0.2,
  profile: 0.02,
  order: 0.1,
  events: 0.05,
  export: 2.5,
};

/**
 * The guide's KPI (p95 < 300 ms, < 0.1 % failed requests, ≥ 99.9 % checks), and the smoke
 * profile's loose version for CI (a debug binary, and k6 sharing two cores with it).
 */
const LIMITS = {
  kpi: { p95Ms: 300, failedRate: 0.001, checksRate: 0.999 },
  smoke: { p95Ms: 2000, failedRate: 0.01, checksRate: 0.99 },
};

/** Parses `90s`, `2m`, `1m30s`, `1h`, `500ms` or a bare number of seconds. */
export function parseSeconds(text) {
  const input = String(text).trim();
  if (/^\d+(\.\d+)?$/.test(input)) return Number(input);
  const units = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  let rest = input;
  const part = /^(\d+(?:\.\d+)?)(ms|s|m|h)/;
  while (rest.length > 0) {
    const match = part.exec(rest);
    if (!match) throw new Error(`DURATION: cannot read "${text}" (e.g. 30s, 2m, 1m30s)`);
    total += Number(match[1]) * units[match[2]];
    rest = rest.slice(match[0].length);
  }
  return total;
}

/** `10s:20,30s:60,10s:0` → ramping-arrival-rate stages (targets in iterations/s). */
function parseStages(text) {
  return text.split(',').map((stage) => {
    const [duration, target] = stage.split(':');
    if (target === undefined || !/^\d+(\.\d+)?$/.test(target)) {
      throw new Error(`STAGES: "${stage}" is not DURATION:RATE (e.g. 30s:50)`);
    }
    return { seconds: parseSeconds(duration), target: Number(target) };
  });
}

function env(name, fallback) {
  const value = __ENV[name];
  return value === undefined || value === '' ? fallback : value;
}

/** The run's settings, read once per VU in the init context. */
export function settings() {
  const smoke = ['1', 'true', 'yes'].includes(String(env('SMOKE', '')).toLowerCase());
  const names = String(env('SCENARIO', 'mix')).split(',').map((name) => name.trim());
  for (const name of names) {
    if (name !== 'mix' && !FLOWS.includes(name)) {
      throw new Error(`SCENARIO: unknown "${name}"; one of mix, ${FLOWS.join(', ')}`);
    }
  }
  const stagesText = env('STAGES', '');
  const executor = stagesText ? 'ramping' : env('EXECUTOR', 'constant');
  if (!['constant', 'ramping'].includes(executor)) {
    throw new Error(`EXECUTOR: "${executor}" is not constant or ramping`);
  }
  const rate = env('RATE', '');
  const limits = { ...(smoke ? LIMITS.smoke : LIMITS.kpi) };
  if (env('P95_MS', '') !== '') limits.p95Ms = Number(env('P95_MS', ''));
  const durationSeconds = parseSeconds(env('DURATION', smoke ? '15s' : '60s'));
  return {
    baseUrl: String(env('BASE_URL', 'http://127.0.0.1:8080')).replace(/\/+$/, ''),
    scenarios: names,
    smoke,
    executor,
    stages: stagesText ? parseStages(stagesText) : null,
    rate: rate === '' ? null : Number(rate),
    durationSeconds,
    limits,
    seedEmail: env('SEED_EMAIL', ''),
    accounts: Number(env('ACCOUNTS', '20')),
    maxProducts: Number(env('MAX_PRODUCTS', '10000')),
    zipfExponent: Number(env('ZIPF_S', '1.0')),
    eventsPerRequest: Number(env('EVENTS_PER_REQUEST', '50')),
    exportTimeoutSeconds: parseSeconds(env('EXPORT_TIMEOUT', '30s')),
    outDir: env('OUT_DIR', ''),
    // Set by scripts/loadtest, which prints the KPI table itself (with cache and memory).
    runnerPrintsKpi: env('KPI_BY_RUNNER', '') === '1',
  };
}

function rateOf(config, name) {
  if (config.rate !== null) return config.rate;
  return config.smoke ? SMOKE_RATE : DEFAULT_RATE[name];
}

/** k6's `rate` is a whole number per `timeUnit`: a fractional rate is counted per minute. */
function perTimeUnit(rate) {
  return Number.isInteger(rate) ? { rate, timeUnit: '1s' } : { rate: Math.round(rate * 60), timeUnit: '1m' };
}

/** The stages a ramping run follows: the given ones, or up to the rate in a third, then hold. */
function stagesOf(config, rate) {
  if (config.stages) return config.stages;
  const ramp = Math.max(1, Math.round(config.durationSeconds / 3));
  return [
    { seconds: ramp, target: rate },
    { seconds: Math.max(1, config.durationSeconds - ramp), target: rate },
  ];
}

/** Seconds the load lasts (the scenarios run side by side). */
export function loadSeconds(config) {
  if (config.executor === 'ramping') {
    return stagesOf(config, 0).reduce((sum, stage) => sum + stage.seconds, 0);
  }
  return config.durationSeconds;
}

function scenario(config, name) {
  const rate = rateOf(config, name);
  const peak = config.executor === 'ramping'
    ? Math.max(...stagesOf(config, rate).map((stage) => stage.target))
    : rate;
  // Enough VUs for the expected concurrency (rate × iteration time) twice over; the rest are
  // started on demand up to maxVUs, and iterations beyond that are dropped (and reported).
  const preAllocatedVUs = Math.ceil(peak * ITERATION_SECONDS[name] * 2) + 2;
  const common = {
    // `export` is a reserved word in JavaScript: main.js exports that flow as exportData.
    exec: name === 'export' ? 'exportData' : name,
    preAllocatedVUs,
    maxVUs: Math.max(50, preAllocatedVUs * 5),
    // An export being polled may outlive the load by its timeout; nothing else takes long.
    gracefulStop: `${Math.ceil(config.exportTimeoutSeconds) + 5}s`,
  };
  if (config.executor === 'ramping') {
    const stages = stagesOf(config, rate);
    const unit = stages.every((stage) => Number.isInteger(stage.target)) ? 1 : 60;
    return {
      ...common,
      executor: 'ramping-arrival-rate',
      startRate: 0,
      timeUnit: unit === 1 ? '1s' : '1m',
      stages: stages.map((stage) => ({ duration: `${stage.seconds}s`, target: Math.round(stage.target * unit) })),
    };
  }
  return {
    ...common,
    executor: 'constant-arrival-rate',
    duration: `${config.durationSeconds}s`,
    ...perTimeUnit(rate),
  };
}

/** Flows a run exercises: every flow for the mix, else the named ones. */
export function activeFlows(config) {
  return FLOWS.filter((flow) => config.scenarios.includes('mix') || config.scenarios.includes(flow));
}

/** Iterations a scenario is expected to start (to tell whether every mix flow must appear). */
function expectedIterations(config, name) {
  const rate = rateOf(config, name);
  if (config.executor !== 'ramping') return rate * config.durationSeconds;
  let previous = 0;
  let total = 0;
  for (const stage of stagesOf(config, rate)) {
    total += ((previous + stage.target) / 2) * stage.seconds;
    previous = stage.target;
  }
  return total;
}

function thresholds(config) {
  const { p95Ms, failedRate, checksRate } = config.limits;
  const result = {
    http_req_failed: [`rate<${failedRate}`],
    checks: [`rate>=${checksRate}`],
    // The overall figures (setup's requests excluded) appear in the summary through these.
    'http_req_duration{phase:load}': [`p(95)<${p95Ms}`],
    'http_req_failed{phase:load}': [`rate<${failedRate}`],
    'http_reqs{phase:load}': ['count>=0'],
    'checks{phase:load}': [`rate>=${checksRate}`],
  };
  // The mix picks flows in a fixed weighted rotation of 100 iterations: a run that long
  // must have run every flow. A flow that ran no request at all would otherwise pass its
  // thresholds (k6 judges an empty metric as passing).
  const mustRunEveryFlow = !config.scenarios.includes('mix') || expectedIterations(config, 'mix') >= 100;
  for (const flow of activeFlows(config)) {
    result[`http_req_duration{flow:${flow}}`] = [`p(95)<${p95Ms}`];
    result[`http_req_failed{flow:${flow}}`] = [`rate<${failedRate}`];
    result[`checks{flow:${flow}}`] = [`rate>=${checksRate}`];
    result[`http_reqs{flow:${flow}}`] = [mustRunEveryFlow ? 'count>0' : 'count>=0'];
  }
  return result;
}

/** k6's options for this run. */
export function options(config) {
  const scenarios = {};
  for (const name of config.scenarios) scenarios[name] = scenario(config, name);
  return {
    scenarios,
    thresholds: thresholds(config),
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
    // Signing in the accounts and listing the catalog (up to 100 pages) comes first.
    setupTimeout: '120s',
    teardownTimeout: '30s',
    // Every request names its route, so URLs with ids do not become one series each.
    systemTags: ['status', 'method', 'name', 'group', 'check', 'error', 'error_code', 'scenario', 'expected_response'],
    userAgent: 'outgrow-k6',
  };
}

/**
 * The mix as a fixed rotation of 100 slots (smooth weighted round robin, as nginx balances):
 * every flow gets exactly its weight in each 100 iterations, spread evenly, so short runs see
 * every flow and two runs of the same length see the same mix.
 */
export function mixRotation(weights = MIX_WEIGHTS) {
  const names = Object.keys(weights);
  const total = names.reduce((sum, name) => sum + weights[name], 0);
  const current = Object.fromEntries(names.map((name) => [name, 0]));
  const rotation = [];
  for (let slot = 0; slot < total; slot += 1) {
    for (const name of names) current[name] += weights[name];
    const best = names.reduce((top, name) => (current[name] > current[top] ? name : top), names[0]);
    current[best] -= total;
    rotation.push(best);
  }
  return rotation;
}
