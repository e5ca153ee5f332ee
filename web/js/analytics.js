// The analytics page: draws the server's tables as uPlot charts (lines for events per hour,
// bars for the best sellers). The tables stay on the page, folded into their <details>, and
// each chart carries the server's one-sentence summary as its accessible name.
import uPlot from './vendor/uplot.js';

// Dark enough on white for graphics (WCAG 1.4.11: 3:1 and more), and told apart by hue.
const COLOURS = ['#1f5fbf', '#a61b1b', '#1d6b34', '#7a4b00', '#5b2a86', '#00657a', '#4f5b6d'];
const HEIGHT = 260;
// Counts start at zero, whole numbers only.
const COUNT_SCALE = { range: (_, __, max) => [0, Math.max(1, max)] };
const WHOLE_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];

export function start() {
  const events = document.querySelector('[data-chart="events"]');
  const eventsTable = events?.querySelector('table[data-events]');
  if (eventsTable) drawEvents(events, eventsTable);
  const top = document.querySelector('[data-chart="top"]');
  const topTable = top?.querySelector('table[data-top]');
  if (topTable) drawTop(top, topTable);
}

// A box for the chart before the section's table, which is folded (still one click away).
function chartBox(section) {
  const box = document.createElement('div');
  box.className = 'chart-box';
  box.setAttribute('role', 'img');
  box.setAttribute('aria-label', section.dataset.summary ?? '');
  const details = section.querySelector('[data-chart-table]');
  section.insertBefore(box, details);
  details.open = false;
  return box;
}

function widthOf(element) {
  return Math.max(280, element.clientWidth || 600);
}

// Keeps the chart as wide as its section.
function followWidth(section, plot) {
  new ResizeObserver(() => plot.setSize({ width: widthOf(section) - 32, height: HEIGHT })).observe(section);
}

function numbers(rows, column) {
  return rows.map((row) => Number(row.cells[column].textContent.trim()) || 0);
}

function drawEvents(section, table) {
  const kinds = [...table.tHead.rows[0].cells].slice(1).map((cell) => cell.textContent.trim());
  const rows = [...table.tBodies[0].rows];
  const hours = rows.map((row) => Number(row.dataset.time));
  const box = chartBox(section);
  const options = {
    width: widthOf(section) - 32,
    height: HEIGHT,
    // The table's hours are UTC: so are the chart's.
    tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), 'Etc/UTC'),
    scales: { x: { time: true }, y: COUNT_SCALE },
    axes: [{}, { label: 'Events', incrs: WHOLE_STEPS }],
    series: [
      { label: 'Hour (UTC)' },
      ...kinds.map((kind, index) => ({
        label: kind,
        stroke: COLOURS[index % COLOURS.length],
        width: 2,
      })),
    ],
  };
  const data = [hours, ...kinds.map((_, index) => numbers(rows, index + 1))];
  followWidth(section, new uPlot(options, data, box));
}

function drawTop(section, table) {
  const rows = [...table.tBodies[0].rows];
  const names = rows.map((row) => row.cells[0].textContent.trim());
  const positions = names.map((_, index) => index);
  const box = chartBox(section);
  const label = (index) => names[Math.round(index)] ?? '';
  const options = {
    width: widthOf(section) - 32,
    height: HEIGHT,
    scales: { x: { time: false, range: [-0.5, names.length - 0.5] }, y: COUNT_SCALE },
    axes: [
      { splits: () => positions, values: (_, splits) => splits.map(label), gap: 6 },
      { label: 'Units sold', incrs: WHOLE_STEPS },
    ],
    series: [
      { label: 'Product', value: (_, index) => (index == null ? '' : label(index)) },
      {
        label: 'Units sold',
        stroke: COLOURS[0],
        fill: COLOURS[0],
        paths: uPlot.paths.bars({ size: [0.6, 80] }),
        points: { show: false },
      },
    ],
  };
  followWidth(section, new uPlot(options, [positions, numbers(rows, 1)], box));
}
