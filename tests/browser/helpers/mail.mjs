// Delivered mail, read from where the instance puts it: `.eml` files in `<data dir>/mail`
// (embedded) or the SMTP sink's Maildir (scaled). Both are walked recursively.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { MAIL_DIR } from './env.mjs';

function files(dir) {
  let found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found = found.concat(files(full));
    else if (!entry.name.startsWith('.')) found.push(full);
  }
  return found;
}

/** Undoes quoted-printable soft breaks and escapes (bodies may be encoded; headers are ASCII). */
function unfold(text) {
  return text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

/** The text of every message to `to` whose text contains `needle`. */
export function messagesTo(to, needle) {
  if (!MAIL_DIR) throw new Error('OUTGROW_MAIL_DIR is not set: scripts/browser-test sets it');
  const messages = [];
  for (const file of files(MAIL_DIR)) {
    const raw = readFileSync(file, 'utf8');
    const head = raw.split(/\r?\n\r?\n/, 1)[0];
    const addressed = head.split(/\r?\n/).some((line) => /^to:/i.test(line) && line.toLowerCase().includes(to.toLowerCase()));
    const text = unfold(raw);
    if (addressed && text.includes(needle)) messages.push(text);
  }
  return messages;
}
