#!/usr/bin/env bash
# CI's image stage (.ci/run): every image built (deploy/images.sh), then the container smoke test
# (deploy/smoke.sh), on one engine. With only dockerd installed, one private dockerd serves both,
# with its data root in /var/cache/calsync-docker (CALSYNC_DOCKER_ROOT), so the local base image and
# the shared install and build layers carry over to the next run on this machine. Needs the
# repository built (npm run build) and the test Postgres and NATS.
set -euo pipefail
deploy_dir="$(cd "$(dirname "$0")" && pwd)"
source "$deploy_dir/lib/engine.sh"
started=$(date +%s)

engine_select
trap engine_release EXIT
"$deploy_dir/images.sh"
built=$(date +%s)
"$deploy_dir/smoke.sh"
smoked=$(date +%s)
if [ "$ENGINE" = docker ] || [ "$ENGINE" = podman ]; then
  # What earlier runs left untagged (replaced images, their stages); the tagged images and the
  # shared build stage they came from stay, and are the next run's cache.
  "$ENGINE" image prune --force >/dev/null
fi
engine_say "image stage: images $((built - started))s, smoke test $((smoked - built))s, pruning $(($(date +%s) - smoked))s, total $(($(date +%s) - started))s"
