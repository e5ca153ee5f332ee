// Prints a run's summary from Playwright's JSON report: counts by outcome, time per spec file,
// and the failed tests. Usage: node helpers/summary.mjs REPORT.json LABEL TOTAL_MS
import { existsSync, readFileSync } from 'node:fs';

const [reportPath, label, totalMs] = process.argv.slice(2);
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
if (!existsSync(reportPath)) {
  console.log(`${label}: no report (${reportPath}): the run did not start; ${seconds(Number(totalMs))} in all`);
  process.exit(0);
}
const report = JSON.parse(readFileSync(reportPath, 'utf8'));
const counts = { passed: 0, failed: 0, skipped: 0, flaky: 0 };
const files = new Map();
const failed = [];
function walk(suite, file) {
  for (const spec of suite.specs ?? []) {
    for (const test of spec.tests) {
      const results = test.results ?? [];
      const duration = results.reduce((sum, result) => sum + (result.duration ?? 0), 0);
      files.set(file, (files.get(file) ?? 0) + duration);
      const outcome = { expected: 'passed', unexpected: 'failed', skipped: 'skipped', flaky: 'flaky' }[test.status] ?? test.status;
      counts[outcome] = (counts[outcome] ?? 0) + 1;
      if (outcome === 'failed') {
        const error = results.at(-1)?.error?.message?.split('\n').find((line) => line.trim()) ?? '';
        failed.push(`    ✘ ${file}: ${spec.title}\n        ${error.replace(/\u001b\[[0-9;]*m/g, '').slice(0, 200)}`);
      }
    }
  }
  for (const child of suite.suites ?? []) walk(child, file);
}
for (const suite of report.suites ?? []) walk(suite, suite.file ?? suite.title);
const lines = [`${label}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped${counts.flaky ? `, ${counts.flaky} flaky` : ''} — specs ${seconds(report.stats?.duration ?? 0)}, ${seconds(Number(totalMs))} in all`];
for (const [file, ms] of files) lines.push(`    ${file.padEnd(28)} ${seconds(ms).padStart(8)} (test time)`);
lines.push(...failed);
console.log(lines.join('\n'));
