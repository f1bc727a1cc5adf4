#!/usr/bin/env bash
# The container smoke test (deploy/tools/container-smoke.mjs): every service's image, built by
# deploy/images.sh, run as the chart's pods would run it, against the test Postgres and NATS
# (CALSYNC_TEST_DATABASE_URL, CALSYNC_TEST_NATS_URL). Needs the repository built (npm run build)
# and docker or podman; with only dockerd installed it runs a private one and stops it after.
set -euo pipefail
deploy_dir="$(cd "$(dirname "$0")" && pwd)"
say() { printf '==> %s\n' "$*"; }
source "$deploy_dir/lib/tools.sh"
source "$deploy_dir/lib/engine.sh"

install_tools
engine_select
trap engine_release EXIT
if [ "$ENGINE" = buildah ]; then
  echo "the smoke test runs containers: it needs docker or podman, not only buildah" >&2
  exit 1
fi
HELM="$helm" node "$deploy_dir/tools/container-smoke.mjs"
