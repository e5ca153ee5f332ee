// docs/lighthouse/scores.md from the Lighthouse JSON reports: the scores, the metrics that
// explain a performance score and any failed accessibility audit. Exits 1 when a score is
// below 95. Usage: node helpers/lighthouse-scores.mjs DIR "CHROMIUM VERSION"
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const [dir, chromium] = process.argv.slice(2);
const MINIMUM = 95;
const rows = [];
const notes = [];
let failing = false;
for (const name of ['catalog', 'product']) {
  const report = JSON.parse(readFileSync(path.join(dir, `${name}.report.json`), 'utf8'));
  const score = (category) => Math.round((report.categories[category]?.score ?? 0) * 100);
  const metric = (id) => report.audits[id]?.displayValue ?? '–';
  const performance = score('performance');
  const accessibility = score('accessibility');
  if (performance < MINIMUM || accessibility < MINIMUM) failing = true;
  rows.push(`| ${name} | ${new URL(report.finalDisplayedUrl).pathname.replace(/[0-9a-f-]{36}/, '{id}')} | ${performance} | ${accessibility} | ${metric('first-contentful-paint')} | ${metric('largest-contentful-paint')} | ${metric('total-blocking-time')} | ${metric('cumulative-layout-shift')} | ${metric('speed-index')} |`);
  for (const ref of report.categories.accessibility.auditRefs) {
    const audit = report.audits[ref.id];
    if (ref.weight > 0 && audit.score !== null && audit.score < 1) notes.push(`- ${name}: accessibility audit \`${ref.id}\` fails: ${audit.title}`);
  }
  const lcp = report.audits['largest-contentful-paint-element']?.details?.items?.[0]?.items?.[0]?.node?.snippet;
  if (lcp) notes.push(`- ${name}: the LCP element is \`${lcp.replace(/\s+/g, ' ').slice(0, 160)}\``);
}
const date = new Date().toISOString().slice(0, 10);
const text = `# Lighthouse scores

Run on ${date} by \`scripts/lighthouse\` (Lighthouse ${JSON.parse(readFileSync(path.join(dir, 'catalog.report.json'), 'utf8')).lighthouseVersion}, ${chromium}):
mobile form factor with Lighthouse's default simulated throttling (slow 4G, 4× CPU slowdown),
categories performance and accessibility, against the debug binary on the embedded backend
with the browser-test data set (4 products with photos + \`outgrow seed --products 30\`).
The reports: \`catalog.report.json\`, \`product.report.json\` (open in https://googlechrome.github.io/lighthouse/viewer/).
The script fails when a score is below ${MINIMUM}.

| page | path | performance | accessibility | FCP | LCP | TBT | CLS | Speed Index |
|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

${notes.join('\n')}
`;
writeFileSync(path.join(dir, 'scores.md'), text);
console.log(text);
if (failing) {
  console.error(`a score is below ${MINIMUM}`);
  process.exit(1);
}
