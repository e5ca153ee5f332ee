#!/usr/bin/env bash
# deploy/k8s, offline:
#   1. `kubectl kustomize` renders the base and every overlay (a new overlay directory must be
#      known to tests/deploy/k8s/check_manifests.py);
#   2. kubernetes-validate --strict checks every built-in object against the Kubernetes
#      schemas of the oldest and newest versions we support ($K8S_VERSIONS): unknown fields,
#      wrong types, removed APIs fail;
#   3. check-jsonschema checks KEDA's ScaledObject and TriggerAuthentication against the
#      openAPIV3Schema of KEDA's own CRDs (vendored in tests/deploy/k8s/schemas/keda, made
#      strict by tests/deploy/k8s/render_tools.py); a custom resource without a vendored
#      schema fails;
#   4. tests/deploy/k8s/check_manifests.py asserts what the schemas cannot: probes, rollout,
#      drain and grace periods, pod hygiene, the configuration contract against Outgrow's own
#      settings, the objects referring to each other, blue-green's one live track, no secret in
#      git;
#   5. self-tests: each validator must reject a deliberately broken input (Deployments with a
#      wrong type and with a misspelt field, ScaledObjects with a misspelt field and with an
#      empty trigger type, 29 breakages of the renderings) — a validator that passes everything
#      fails the check.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${OUTGROW_DEPLOY_TOOLS:?run through scripts/check-deploy}
py=$bin/python
here=tests/deploy/k8s
K8S_VERSIONS=(1.32.0 1.37.0)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf '[k8s] %s\n' "$*"; }
fail() { say "FAIL: $*"; exit 1; }

command -v kubectl >/dev/null || fail "kubectl is not on the PATH (scripts/deploy-tools installs it)"
say "$(kubectl version --client 2>/dev/null | tr '\n' ' ')"
say "kubernetes-validate $("$bin/kubernetes-validate" --version), $("$bin/check-jsonschema" --version)"

# 1. render
targets=(base)
for dir in deploy/k8s/overlays/*/; do targets+=("overlays/$(basename "$dir")"); done
overlay_args=()
for target in "${targets[@]}"; do
  name=${target#overlays/}
  out=$work/$name.yaml
  kubectl kustomize "deploy/k8s/$target" >"$out" || fail "kubectl kustomize deploy/k8s/$target"
  say "rendered deploy/k8s/$target: $(grep -c '^kind:' "$out") objects ($(grep '^kind:' "$out" | sort | uniq -c | awk '{printf "%s %s, ", $1, $3}' | sed 's/, $//'))"
  [ "$name" = base ] || overlay_args+=(--overlay "$name=$out")
done

# 2 and 3. schemas
"$py" $here/render_tools.py crd-schemas "$work/schemas" $here/schemas/keda/*.yaml | sed 's/^/[k8s] CRD schema /'
validate_builtin() {  # file → kubernetes-validate --strict for each version; any failure or unknown kind fails
  local file=$1 version log
  for version in "${K8S_VERSIONS[@]}"; do
    log=$work/validate.log
    if ! "$bin/kubernetes-validate" --strict -k "$version" "$file" >"$log" 2>&1; then
      cat "$log"; return 1
    fi
    if grep -v '^INFO .* passed for resource' "$log" | grep -q .; then
      cat "$log"; return 1
    fi
  done
}
for target in "${targets[@]}"; do
  name=${target#overlays/}
  split=$work/split-$name
  "$py" $here/render_tools.py split "$work/$name.yaml" "$split" "$work/schemas" >"$work/split.log" ||
    { cat "$work/split.log"; fail "$target has a custom resource without a vendored schema"; }
  validate_builtin "$split/builtin.yaml" || fail "kubernetes-validate rejected deploy/k8s/$target"
  say "kubernetes-validate --strict ${K8S_VERSIONS[*]}: $(grep -c '^kind:' "$split/builtin.yaml") built-in objects of $target valid"
  for dir in "$split"/custom/*/; do
    [ -d "$dir" ] || continue
    schema=$work/schemas/$(basename "$dir").json
    "$bin/check-jsonschema" --schemafile "$schema" "$dir"*.yaml >"$work/cj.log" 2>&1 ||
      { cat "$work/cj.log"; fail "check-jsonschema rejected $(basename "$dir") in $target"; }
    say "check-jsonschema (KEDA CRD schema): $(find "$dir" -name '*.yaml' | wc -l) $(basename "$dir" | cut -d_ -f3) of $target valid"
  done
done

# 4. what Outgrow needs
say "semantic checks (check_manifests.py)"
"$py" $here/check_manifests.py --settings crates/platform/src/config/settings.rs \
  --base "$work/base.yaml" "${overlay_args[@]}" \
  --scan deploy/k8s --env-example deploy/k8s/secrets.env.example | sed 's/^  //;s/^/[k8s] /' || fail "check_manifests.py"

# 5. self-tests: the validators must be able to fail
broken() {  # name, then the Deployment's replicas and the readiness probe's httpGet
  cat >"$work/$1.yaml" <<BROKEN
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $1
spec:
  replicas: $2
  selector:
    matchLabels: {app: broken}
  template:
    metadata:
      labels: {app: broken}
    spec:
      containers:
        - name: broken
          image: ghcr.io/outgrow/outgrow:1
          readinessProbe:
            httpGet: $3
BROKEN
}
broken wrong-type two '{path: /readyz, port: 8080}'
broken unknown-field 2 '{path: /readyz, prot: 8080}'
broken valid 2 '{path: /readyz, port: 8080}'
validate_builtin "$work/valid.yaml" >/dev/null || fail "kubernetes-validate rejected the self-test's valid Deployment"
for case in wrong-type unknown-field; do
  if validate_builtin "$work/$case.yaml" >/dev/null 2>&1; then
    fail "kubernetes-validate accepted a Deployment with a $case (self-test)"
  fi
done
say "kubernetes-validate rejects a Deployment with a wrong type, and (strict) one with a misspelt field (self-test)"
scaled=$(find "$work/split-production/custom" -name '*ScaledObject*.yaml' | head -1)
[ -n "$scaled" ] || fail "no ScaledObject rendered for production"
sed 's/minReplicaCount:/minReplicas:/' "$scaled" >"$work/so-unknown-field.yaml"
sed 's/type: postgresql/type: ""/' "$scaled" >"$work/so-empty-trigger.yaml"
for case in so-unknown-field so-empty-trigger; do
  if "$bin/check-jsonschema" --schemafile "$work/schemas/keda.sh_v1alpha1_ScaledObject.json" "$work/$case.yaml" >/dev/null 2>&1; then
    fail "check-jsonschema accepted a ScaledObject with ${case#so-} (self-test)"
  fi
done
say "check-jsonschema rejects a ScaledObject with a misspelt field, and one with an empty trigger type (self-test)"
"$py" $here/check_manifests.py --self-test --settings crates/platform/src/config/settings.rs \
  --base "$work/base.yaml" "${overlay_args[@]}" | sed 's/^  //;s/^/[k8s] /' || fail "check_manifests.py --self-test"
say "ok"
