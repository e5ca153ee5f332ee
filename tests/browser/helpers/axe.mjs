// axe-core in the page under test. The pages' CSP (`script-src 'self'`) refuses an injected
// inline <script>: page.addScriptTag({ content }) fails with "Refused to execute inline
// script" (and trips the suite's CSP check). page.evaluate(source) does not: Playwright runs
// it through the DevTools protocol (Runtime.evaluate), which the page's CSP does not govern —
// so the pages are checked exactly as served, without the `bypassCSP` context that would
// also hide real CSP problems.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** The violations of impact serious or critical on `page`, as readable lines. */
export async function seriousViolations(page) {
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const results = await window.axe.run(document, {
      resultTypes: ['violations'],
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    });
    return results.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      help: violation.help,
      nodes: violation.nodes.map((node) => node.target.join(' ')).slice(0, 5),
    }));
  });
  return violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => `${violation.impact}: ${violation.id} (${violation.help}) at ${violation.nodes.join(', ')}`);
}
