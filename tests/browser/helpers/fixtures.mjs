// The suite's `test`: Playwright's, with every browser context watched. A spec fails when a
// page logs a console error, throws (pageerror), has a request to our origin fail (network
// error, or an HTTP error status on a subresource) or violates the Content-Security-Policy —
// unless the spec expects that exact problem (`problems.allow(/pattern/)`).
import { test as base, expect } from '@playwright/test';
import { BASE_URL } from './env.mjs';

const ORIGIN = new URL(BASE_URL).origin;

/**
 * Collects the problems of every page of `context` into `problems` (an array). With
 * `javaScriptEnabled: false`, Chromium refuses the pages' module scripts (reported as failed
 * requests, "csp"): expected, so those are not problems there.
 */
export async function watchContext(context, problems, { javaScriptEnabled = true } = {}) {
  // The CSP violation event, reported through a CDP binding: init scripts and bindings are
  // installed by the DevTools protocol, so the pages' CSP (no inline script) does not block
  // them. Pages with JavaScript disabled run neither; their violations still reach the console.
  await context.exposeBinding('__outgrowCspViolation', ({ page }, text) => {
    problems.push(`CSP violation on ${page.url()}: ${text}`);
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      window.__outgrowCspViolation(`${event.violatedDirective} blocked ${event.blockedURI || 'inline'} (${event.sourceFile}:${event.lineNumber})`);
    });
  });
  const watch = (page) => {
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const source = message.location()?.url;
      problems.push(`console error on ${page.url()}: ${message.text()}${source ? ` (${source})` : ''}`);
    });
    page.on('pageerror', (error) => problems.push(`uncaught exception on ${page.url()}: ${error.message}`));
    page.on('requestfailed', (request) => {
      if (!request.url().startsWith(ORIGIN)) return;
      const failure = request.failure()?.errorText ?? 'failed';
      // Cancelled by the browser itself (a navigation away, a page closing: lazy images, the
      // dashboard's event stream), not failed by the server.
      if (failure === 'net::ERR_ABORTED') return;
      if (!javaScriptEnabled && request.resourceType() === 'script') return;
      problems.push(`request failed: ${request.method()} ${request.url()}: ${failure}`);
    });
    page.on('response', (response) => {
      const request = response.request();
      if (!response.url().startsWith(ORIGIN) || request.isNavigationRequest()) return;
      if (response.status() >= 400) {
        problems.push(`HTTP ${response.status()} for ${request.method()} ${response.url()}`);
      }
    });
  };
  context.pages().forEach(watch);
  context.on('page', watch);
}

export const test = base.extend({
  /** The problems seen so far; `problems.allow(re)` drops (now and later) those matching `re`. */
  problems: async ({}, use, testInfo) => {
    const problems = [];
    const push = problems.push.bind(problems);
    problems.push = (...items) => (problems.closed ? problems.length : push(...items));
    const allowed = [];
    problems.allow = (pattern) => allowed.push(pattern);
    await use(problems);
    const real = problems.filter((problem) => !allowed.some((pattern) => pattern.test(problem)));
    if (testInfo.status === testInfo.expectedStatus) {
      expect(real, 'console errors, page errors, failed requests or CSP violations').toEqual([]);
    } else if (real.length > 0) {
      testInfo.annotations.push({ type: 'problems', description: real.join('\n') });
    }
  },
  context: async ({ context, problems, javaScriptEnabled }, use) => {
    await watchContext(context, problems, { javaScriptEnabled });
    await use(context);
    // What happens while Playwright closes the context is not the pages' doing.
    problems.closed = true;
  },
});

export { expect };
