// The operations dashboard, live: follows the figures the server streams (Server-Sent Events,
// one `snapshot` event a second), or polls the snapshot when the stream keeps failing, and
// draws one uPlot line chart per series over the last five minutes. The page already shows
// the figures of the moment it was rendered; without JavaScript it is simply not live.
import uPlot from './vendor/uplot.js';

/** How much history each chart keeps, in seconds. */
const HISTORY_SECONDS = 5 * 60;
/** How often the fallback polls the snapshot, in milliseconds. */
const POLL_MS = 2000;
/** Stream errors in a row (no event between them) before falling back to polling. */
const STREAM_ATTEMPTS = 3;
/** Each chart's height in CSS pixels (its width follows its container). */
const CHART_HEIGHT = 140;

/** A figure for people, as the server writes it (`format_value`): `12.3 req/s`, `n/a`. */
function formatValue(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return 'n/a';
  const digits = unit === 'jobs' ? 0 : 1;
  // `+ 0` turns -0 into 0, so an idle rate never shows as "-0.0".
  return `${(value + 0).toFixed(digits)} ${unit}`;
}

/** The page's colours, from app.css, so the charts match it. */
function palette() {
  const style = getComputedStyle(document.documentElement);
  const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return { line: read('--accent', '#1f5fbf'), grid: read('--line', '#d7dce3'), ink: read('--muted', '#4f5b6d') };
}

/** One chart: its value span, its plot and the series' history. */
function makeChart(section, times, colours) {
  const value = section.querySelector('.value[data-metric]');
  const holder = section.querySelector('[data-plot]');
  const id = value.dataset.metric;
  const unit = value.dataset.unit || '';
  const points = [];
  const options = {
    width: Math.max(holder.clientWidth, 200),
    height: CHART_HEIGHT,
    legend: { show: false },
    cursor: { show: false },
    scales: { x: { time: true }, y: { range: (plot, min, max) => [0, Math.max(max, 1)] } },
    axes: [
      { stroke: colours.ink, grid: { stroke: colours.grid, width: 1 }, ticks: { show: false } },
      {
        stroke: colours.ink,
        grid: { stroke: colours.grid, width: 1 },
        ticks: { show: false },
        size: 48,
        values: (plot, splits) => splits.map((split) => (unit === '%' ? `${split}%` : `${split}`)),
      },
    ],
    series: [{}, { label: section.querySelector('h2')?.textContent ?? id, stroke: colours.line, width: 2 }],
  };
  const plot = new uPlot(options, [times, points], holder);
  new ResizeObserver((entries) => {
    const width = Math.floor(entries[0].contentRect.width);
    if (width > 0 && width !== plot.width) plot.setSize({ width, height: CHART_HEIGHT });
  }).observe(holder);
  return { id, unit, value, plot, points };
}

export function start() {
  const root = document.querySelector('[data-dashboard]');
  if (!root) return;
  const times = [];
  const colours = palette();
  const charts = [...root.querySelectorAll('section.chart')].map((section) =>
    makeChart(section, times, colours),
  );
  const instance = document.querySelector('[data-instance]');
  const windowSpan = document.querySelector('[data-window]');
  const ownRate = document.querySelector('[data-own-rate]');

  /** Adds one snapshot: the latest values in the spans, a point on every chart. */
  function apply(snapshot) {
    if (instance && snapshot.instance && instance.textContent !== snapshot.instance) {
      // Another instance answered (a restart, a reconnection through the load balancer):
      // its per-instance history is not this one's, so the charts start again.
      if (times.length > 0) {
        times.length = 0;
        for (const chart of charts) chart.points.length = 0;
      }
      instance.textContent = snapshot.instance;
    }
    if (windowSpan) windowSpan.textContent = (snapshot.window + 0).toFixed(1);
    if (ownRate) ownRate.textContent = formatValue(snapshot.own_request_rate, 'req/s');
    times.push(snapshot.at / 1000);
    for (const chart of charts) chart.points.push(snapshot[chart.id] ?? null);
    while (times.length > 0 && times[0] < times[times.length - 1] - HISTORY_SECONDS) {
      times.shift();
      for (const chart of charts) chart.points.shift();
    }
    for (const chart of charts) {
      chart.value.textContent = formatValue(snapshot[chart.id], chart.unit);
      chart.plot.setData([times, chart.points]);
    }
  }

  /** Polls the snapshot every POLL_MS, for browsers whose stream keeps failing. */
  async function poll() {
    try {
      const response = await fetch(root.dataset.snapshot, { headers: { accept: 'application/json' } });
      if (response.ok) apply(await response.json());
    } catch (error) {
      // The next poll tries again; a network error is no reason to stop.
    }
    setTimeout(poll, POLL_MS);
  }

  /** Follows the stream; EventSource reconnects by itself (the server ends the stream when
   *  its instance drains), so only errors in a row with no event between mean "broken". */
  function follow() {
    if (typeof EventSource !== 'function') {
      poll();
      return;
    }
    let failures = 0;
    const source = new EventSource(root.dataset.stream);
    source.addEventListener('snapshot', (event) => {
      failures = 0;
      apply(JSON.parse(event.data));
    });
    source.addEventListener('error', () => {
      failures += 1;
      if (failures >= STREAM_ATTEMPTS || source.readyState === EventSource.CLOSED) {
        source.close();
        poll();
      }
    });
  }

  follow();
}
