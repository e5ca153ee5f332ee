// Where the suite finds what scripts/browser-test prepared: the server's URL, the browser, the
// data set (products, accounts, signed-in storage states) and the mail directory.
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** The Outgrow instance under test. */
export const BASE_URL = process.env.OUTGROW_URL || 'http://127.0.0.1:8110';
/** Debian's Chromium (never a downloaded build: there is no internet for that). */
export const CHROME_PATH = process.env.CHROME_PATH || '/usr/bin/chromium';
/** Where the run's files go (data set, storage states, reports). */
export const RUN_DIR = process.env.OUTGROW_BROWSER_RUN_DIR || path.resolve('../../target/browser');
/** Where delivered mail lands: `<data dir>/mail` (embedded) or the SMTP sink's maildir. */
export const MAIL_DIR = process.env.OUTGROW_MAIL_DIR || '';
/** The administrator scripts/browser-test created with `outgrow admin create`. */
export const ADMIN = {
  email: process.env.OUTGROW_BROWSER_ADMIN_EMAIL || 'admin@example.test',
  password: process.env.OUTGROW_BROWSER_ADMIN_PASSWORD || 'browser-admin-password',
};

/** Chromium's flags: `--no-sandbox` because the tests run as root in CI. */
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** The data set the global setup wrote (see helpers/setup.mjs). */
export function dataSet() {
  return JSON.parse(readFileSync(path.join(RUN_DIR, 'data.json'), 'utf8'));
}
