# Sourced by deploy/images.sh and deploy/smoke/run.sh: finds a container engine and, on a machine
# where only dockerd is installed (CI), runs a private one. The private daemon has its own socket,
# exec root and data root, so it never looks like the machine's Docker to anything else (e.g.
# testcontainers probing /var/run/docker.sock), and no iptables or bridge of its own: containers
# and builds use the host's network.
#
# engine_select   sets ENGINE (docker|podman|buildah) and, for docker, DOCKER_HOST
# engine_release  stops the private dockerd if engine_select started it

CALSYNC_DOCKER_ROOT="${CALSYNC_DOCKER_ROOT:-/var/cache/calsync-docker}"
CALSYNC_DOCKER_RUN="${CALSYNC_DOCKER_RUN:-/run/calsync-docker}"
CALSYNC_DOCKER_HOST="unix://$CALSYNC_DOCKER_RUN/docker.sock"
engine_started_dockerd=0

engine_say() { printf '==> %s\n' "$*" >&2; }

docker_answers() { DOCKER_HOST="$1" timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

engine_start_private_dockerd() {
  mkdir -p "$CALSYNC_DOCKER_ROOT" "$CALSYNC_DOCKER_RUN"
  # One private daemon per machine; two image stages at once would only fight over 2 cores.
  exec 8>"$CALSYNC_DOCKER_RUN.lock"
  if ! flock -n 8; then
    engine_say "waiting for another calsync image stage on this machine"
    flock 8
  fi
  if docker_answers "$CALSYNC_DOCKER_HOST"; then return 0; fi
  engine_say "starting a private dockerd (data root $CALSYNC_DOCKER_ROOT)"
  # Interrupted or terminated, the caller still exits through its EXIT trap (engine_release).
  trap 'exit 130' INT
  trap 'exit 143' TERM
  dockerd --host "$CALSYNC_DOCKER_HOST" --data-root "$CALSYNC_DOCKER_ROOT" \
    --exec-root "$CALSYNC_DOCKER_RUN/exec" --pidfile "$CALSYNC_DOCKER_RUN/dockerd.pid" \
    --iptables=false --ip6tables=false --bridge=none --log-level warn \
    >>"$CALSYNC_DOCKER_RUN/dockerd.log" 2>&1 8>&- &
  engine_started_dockerd=$!
  for _ in $(seq 1 60); do
    if docker_answers "$CALSYNC_DOCKER_HOST"; then return 0; fi
    if ! kill -0 "$engine_started_dockerd" 2>/dev/null; then break; fi
    sleep 1
  done
  engine_say "the private dockerd did not start; its log:"
  tail -20 "$CALSYNC_DOCKER_RUN/dockerd.log" >&2
  return 1
}

engine_select() {
  if [ -n "${ENGINE:-}" ]; then :
  elif [ -n "${DOCKER_HOST:-}" ] && docker_answers "$DOCKER_HOST"; then ENGINE=docker
  elif command -v docker >/dev/null 2>&1 && [ -S /var/run/docker.sock ] && docker_answers unix:///var/run/docker.sock; then
    ENGINE=docker
  elif command -v podman >/dev/null 2>&1; then ENGINE=podman
  elif command -v buildah >/dev/null 2>&1; then ENGINE=buildah
  elif command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
    engine_start_private_dockerd
    export DOCKER_HOST="$CALSYNC_DOCKER_HOST"
    ENGINE=docker
  else
    engine_say "no container engine: install docker (docker.io), podman or buildah"
    return 1
  fi
  if [ "$ENGINE" = docker ] && [ -z "${DOCKER_HOST:-}" ]; then export DOCKER_HOST=unix:///var/run/docker.sock; fi
  export ENGINE
}

engine_release() {
  if [ "$engine_started_dockerd" != 0 ]; then
    engine_say "stopping the private dockerd"
    kill "$engine_started_dockerd" 2>/dev/null || true
    wait "$engine_started_dockerd" 2>/dev/null || true
    engine_started_dockerd=0
  fi
}
