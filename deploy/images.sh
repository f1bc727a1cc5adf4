#!/usr/bin/env bash
# Builds every service's image (or those named: deploy/images.sh gateway identity) from
# deploy/Dockerfile with whatever engine is present: docker (classic builder or BuildKit),
# podman or buildah; with only dockerd installed it runs a private one (deploy/lib/engine.sh)
# and stops it afterwards. The first image pays for the one shared install and build; the
# others reuse those layers and add only their thin final stage.
#
#   IMAGE_REPOSITORY_PREFIX  default calsync-        (images are <prefix><service>:<tag>)
#   IMAGE_TAG                default dev
#   NODE_IMAGE               default node:20-bookworm-slim; when it is not present and cannot
#                            be pulled (no registry), a stand-in is built from Debian and this
#                            machine's node (deploy/lib/node-standin.sh) and used instead
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib/engine.sh

prefix="${IMAGE_REPOSITORY_PREFIX:-calsync-}"
tag="${IMAGE_TAG:-dev}"
node_image="${NODE_IMAGE:-node:20-bookworm-slim}"
started=$(date +%s)

mapfile -t all_services < <(for main in services/*/src/main.ts; do basename "$(dirname "$(dirname "$main")")"; done)
services=("$@")
if [ ${#services[@]} = 0 ]; then services=("${all_services[@]}"); fi
for service in "${services[@]}"; do
  if [ ! -f "services/$service/src/main.ts" ]; then
    echo "unknown service '$service': one of ${all_services[*]}" >&2
    exit 2
  fi
done

engine_select
trap engine_release EXIT
engine_say "building with $ENGINE"

image_present() {
  case "$ENGINE" in
    docker) docker image inspect "$1" >/dev/null 2>&1 ;;
    podman) podman image exists "$1" ;;
    buildah) buildah inspect --type image "$1" >/dev/null 2>&1 ;;
  esac
}

image_pull() {
  case "$ENGINE" in
    docker | podman) timeout 60 "$ENGINE" pull -q "$1" >/dev/null 2>&1 ;;
    buildah) timeout 60 buildah pull -q "$1" >/dev/null 2>&1 ;;
  esac
}

if ! image_present "$node_image" && ! image_pull "$node_image"; then
  if [ -n "${NODE_IMAGE:-}" ]; then
    echo "NODE_IMAGE=$node_image is neither present nor pullable" >&2
    exit 1
  fi
  node_image="$(deploy/lib/node-standin.sh)"
  engine_say "no registry: building on the local stand-in $node_image"
fi

build_log=$(mktemp)
trap 'rm -f "$build_log"; engine_release' EXIT

build() { # image [build arguments...]
  local image=$1
  shift
  local args=(--build-arg "NODE_IMAGE=$node_image" "$@" -f deploy/Dockerfile -t "$image" .)
  local status=0
  case "$ENGINE" in
    # The classic builder unless asked otherwise: it needs nothing from a registry (BuildKit
    # wants its frontend image) and the Dockerfile uses nothing BuildKit-only.
    docker) DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" docker build --network host "${args[@]}" >"$build_log" 2>&1 || status=$? ;;
    podman) podman build --network host "${args[@]}" >"$build_log" 2>&1 || status=$? ;;
    buildah) buildah bud --network host "${args[@]}" >"$build_log" 2>&1 || status=$? ;;
  esac
  if [ "$status" != 0 ]; then
    tail -40 "$build_log" >&2
    echo "building $image failed (exit $status)" >&2
    return "$status"
  fi
}

image_size() {
  case "$ENGINE" in
    docker | podman) "$ENGINE" image inspect --format '{{.Size}}' "$1" ;;
    buildah) buildah inspect --type image --format '{{.ImageSize}}' "$1" 2>/dev/null || echo 0 ;;
  esac
}

sizes=()
built() { # image seconds-since
  sizes+=("$(printf '%-28s %6s MB  (%ss)' "$1" "$(($(image_size "$1") / 1000000))" "$(($(date +%s) - $2))")")
}
# The stage every image starts from, tagged so that pruning untagged images keeps it as the next
# build's cache.
stage_started=$(date +%s)
engine_say "${prefix}build:$tag: the one install and build every image shares"
build "${prefix}build:$tag" --target build
built "${prefix}build:$tag" "$stage_started"
for service in "${services[@]}"; do
  image="$prefix$service:$tag"
  engine_say "$image"
  service_started=$(date +%s)
  build "$image" --build-arg "SERVICE=$service"
  built "$image" "$service_started"
done

printf '%s\n' "${sizes[@]}"
engine_say "images built in $(($(date +%s) - started))s"
