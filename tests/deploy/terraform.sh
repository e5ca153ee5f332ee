#!/usr/bin/env bash
# deploy/terraform (AWS: VPC, ALB, Auto Scaling, RDS, ElastiCache, S3, CloudWatch), checked
# offline — Terraform itself cannot be installed here, so:
#   1. every .tf is parsed with python-hcl2 and the structural facts the runbooks rely on are
#      asserted (terraform/check_terraform.py: versions, references and variables, the API and
#      worker Auto Scaling groups, launch templates, ALB, RDS, Redis, S3, security groups,
#      alarms, secrets, the user-data template and the OUTGROW_* settings it provides);
#   2. bash -n on the rendered shape of the user-data template (its bash, with the Terraform
#      interpolations replaced) and python3 -m py_compile on the helper it installs;
#   3. self-test: the same check on copies with one fact broken each — min_size 1, an undeclared
#      variable, the health check on /healthz, IMDSv1 allowed, a literal password, no abort of
#      multipart uploads, a single-AZ database, a secret passed to user data, a JWT key in
#      clear, a syntax error — must fail, naming the fact.
# Every step runs; the check fails if any failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${OUTGROW_DEPLOY_TOOLS:?run through scripts/check-deploy}
py=$bin/python
tf=deploy/terraform
checker=tests/deploy/terraform/check_terraform.py
settings=crates/platform/src/config/settings.rs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf '[terraform] %s\n' "$*"; }
failed=()
fail() { say "FAIL: $*"; failed+=("$1"); }

"$py" -c 'import hcl2' 2>/dev/null || { say "FAIL: python-hcl2 is not installed in $bin (scripts/deploy-tools)"; exit 1; }
say "python-hcl2 $("$py" -c 'import importlib.metadata as m; print(m.version("python-hcl2"))')"

# --- 1 ------------------------------------------------------------------------------------------
say "1/3 parse and assert $tf"
# (pipefail: the pipeline fails when the checker does)
if ! "$py" "$checker" "$tf" --settings "$settings" | sed 's/^/    /'; then
  fail "structure"
fi

# --- 2 ------------------------------------------------------------------------------------------
say "2/3 the user-data template's bash and python"
"$py" - "$tf/templates/user-data.sh.tftpl" "$work" <<'PY' || fail "user-data syntax"
import pathlib, re, subprocess, sys
template, work = pathlib.Path(sys.argv[1]).read_text(), pathlib.Path(sys.argv[2])
# Render the template's shape: directives dropped, interpolations replaced by a placeholder
# word ($${ is Terraform's escape of a literal ${).
text = re.sub(r"^%\{[^}]*\}\n", "", template, flags=re.M)
text = re.sub(r"(?<!\$)\$\{[^}]*\}", "PLACEHOLDER", text).replace("$${", "${")
script = work / "user-data.sh"
script.write_text(text)
subprocess.run(["bash", "-n", str(script)], check=True)
print("    bash -n: ok")
helper = re.search(r"cat > /usr/local/bin/outgrow-env <<'SCRIPT'\n(.*?)\nSCRIPT\n", text, re.S)
if not helper:
    sys.exit("    the outgrow-env helper was not found in the template")
source = helper.group(1).replace('SECRET_ARNS = PLACEHOLDER', 'SECRET_ARNS = []').replace('REQUIRED = PLACEHOLDER', 'REQUIRED = []')
(work / "outgrow_env.py").write_text(source)
subprocess.run([sys.executable, "-m", "py_compile", str(work / "outgrow_env.py")], check=True)
print("    outgrow-env compiles (python)")
runner = re.search(r"cat > /usr/local/bin/outgrow-run <<'SCRIPT'\n(.*?)\nSCRIPT\n", text, re.S)
(work / "outgrow-run").write_text(runner.group(1) + "\n")
subprocess.run(["bash", "-n", str(work / "outgrow-run")], check=True)
print("    outgrow-run: bash -n ok")
PY

# --- 3 ------------------------------------------------------------------------------------------
say "3/3 self-test: each broken copy must be rejected, naming what broke"
mutate() { # mutate NAME FILE OLD NEW EXPECTED-MESSAGE-REGEX (OLD: text, or re:<python regex>)
  local name=$1 file=$2 old=$3 new=$4 expected=$5 dir=$work/mutant-$1 out
  rm -rf "$dir" && cp -R "$tf" "$dir"
  if ! "$py" - "$dir/$file" "$old" "$new" <<'PY'; then
import re, sys
path, old, new = sys.argv[1:4]
text = open(path).read()
pattern = old[3:] if old.startswith("re:") else re.escape(old)
changed, count = re.subn(pattern, new if old.startswith("re:") else new.replace("\\", "\\\\"), text, count=1, flags=re.S)
if count != 1:
    sys.exit(f"    self-test: {old!r} not found in {path}")
open(path, "w").write(changed)
PY
    fail "self-test $name: the fact to break was not found"
    return
  fi
  if out=$("$py" "$checker" "$dir" --settings "$settings" 2>&1); then
    fail "self-test $name: the check accepted it"
  elif ! grep -Eq -- "$expected" <<<"$out"; then
    printf '%s\n' "$out" | grep -v '^ok' | sed 's/^/      /'
    fail "self-test $name: rejected, but without naming /$expected/"
  else
    say "    rejected: $name ($(grep -Em1 -- "$expected" <<<"$out" | sed 's/^ *- //'))"
  fi
}
mutate asg-min-1 variables.tf 're:(variable "asg_min_size" \{.*?default\s*=\s*)2\b' '\g<1>1' \
  'aws_autoscaling_group.api min_size resolves to 1, expected 2'
mutate undeclared-variable alb.tf 'ssl_policy        = var.ssl_policy' 'ssl_policy        = var.tls_policy' \
  'var.tls_policy is referenced in resource aws_lb_listener.https but not declared'
mutate health-path alb.tf 'path                = "/readyz"' 'path                = "/healthz"' \
  "health check path is '/healthz', expected /readyz"
mutate imdsv1 compute.tf 'http_tokens                 = "required"' 'http_tokens                 = "optional"' \
  'aws_launch_template.api: IMDSv2 not required'
mutate literal-password database.tf 'password = random_password.db_master.result' 'password = "correct-horse-battery"' \
  'aws_db_instance.primary: password is the literal'
mutate no-abort-multipart storage.tf 'abort_incomplete_multipart_upload {' 'noncurrent_version_transition {' \
  'no lifecycle rule aborts incomplete multipart uploads'
mutate single-az-database database.tf '  multi_az               = true' '  multi_az               = false' \
  'aws_db_instance.primary multi_az is not true'
mutate secret-in-user-data compute.tf '    stop_timeout      = local.drain_seconds + 5' \
  $'    stop_timeout      = local.drain_seconds + 5\n    db_password       = random_password.db_master.result' \
  'local.user_data_common holds a generated secret'
mutate jwt-key-in-clear secrets.tf 'OUTGROW_JWT_KEYS = "k1:${random_password.jwt_key.result}"' 'OUTGROW_JWT_KEYS = "k1:Zm9vYmFyYmF6cXV4"' \
  'OUTGROW_JWT_KEYS is the literal'
mutate syntax-error outputs.tf 'output "vpc_id" {' 'output "vpc_id" {{' \
  'FAIL parse outputs.tf'

if [ ${#failed[@]} -gt 0 ]; then
  say "failed: ${failed[*]}"
  exit 1
fi
say "all 3 steps passed"
