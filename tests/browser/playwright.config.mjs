// Playwright's configuration for Outgrow's browser tests. Run through scripts/browser-test
// (the suite), scripts/screenshots (project "screenshots"); scripts/lighthouse runs Lighthouse
// itself. Environment: OUTGROW_URL (the running instance), CHROME_PATH (default
// /usr/bin/chromium: Debian's Chromium; `npx playwright install` is never needed),
// OUTGROW_BROWSER_RUN_DIR (data set and reports; default target/browser), OUTGROW_MAIL_DIR.
// The data set must exist first: `node helpers/setup.mjs` (the scripts do it).
import path from 'node:path';
import { defineConfig } from '@playwright/test';
import { BASE_URL, CHROME_PATH, CHROMIUM_ARGS, RUN_DIR } from './helpers/env.mjs';

export default defineConfig({
  testDir: './specs',
  outputDir: path.join(RUN_DIR, 'results'),
  // Two workers on two cores: the specs spend their time waiting on the server and the browser.
  workers: Number(process.env.OUTGROW_BROWSER_WORKERS || 2),
  fullyParallel: true,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  forbidOnly: true,
  reporter: [
    ['list'],
    ['json', { outputFile: path.join(RUN_DIR, 'report.json') }],
  ],
  use: {
    baseURL: BASE_URL,
    browserName: 'chromium',
    launchOptions: { executablePath: CHROME_PATH, args: CHROMIUM_ARGS },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    actionTimeout: 10_000,
    navigationTimeout: 15_000,
  },
  projects: [
    { name: 'suite', testIgnore: /screenshots\.spec\.mjs$/ },
    { name: 'screenshots', testMatch: /screenshots\.spec\.mjs$/ },
  ],
});
