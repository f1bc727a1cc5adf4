#!/usr/bin/env bash
# Makes a local stand-in for the official node image when no image registry is reachable:
# Debian bookworm (minbase, from the Debian mirror), this machine's node and npm under
# /usr/local as in the official image, and the user node (uid 1000). npm inside a build
# container gets this machine's npm registry and CA file, else a TLS-intercepting proxy
# fails every install with SELF_SIGNED_CERT_IN_CHAIN. Prints the image's name; builds it once
# per node version and npm configuration (the engine keeps it between runs).
# Needs root (debootstrap) and ENGINE from deploy/lib/engine.sh.
set -euo pipefail

node_bin=$(command -v node)
npm_root=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
registry=$(npm config get registry)
cafile=$(npm config get cafile)
if [ "$cafile" = null ] || [ "$cafile" = undefined ]; then cafile=""; fi
key=$( { "$node_bin" --version; cat "$npm_root/package.json"; echo "$registry"; [ -z "$cafile" ] || cat "$cafile"; } | sha256sum | cut -c1-12)
image="calsync-node-standin:$("$node_bin" --version | tr -d v)-$key"

case "$ENGINE" in
  docker | podman) present() { "$ENGINE" image inspect "$image" >/dev/null 2>&1; } ;;
  buildah) present() { buildah inspect --type image "$image" >/dev/null 2>&1; } ;;
esac
if present; then echo "$image"; exit 0; fi

if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
rootfs=$(mktemp -d /var/tmp/calsync-node-standin.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
printf '==> debootstrap bookworm into %s\n' "$rootfs" >&2
debootstrap --variant=minbase bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null

install -D -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules" "$rootfs/usr/local/etc"
cp -R "$npm_root" "$rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
{
  echo "registry=$registry"
  if [ -n "$cafile" ]; then
    install -D -m 0644 "$cafile" "$rootfs/usr/local/share/calsync/npm-ca.pem"
    echo "cafile=/usr/local/share/calsync/npm-ca.pem"
  fi
} >"$rootfs/usr/local/etc/npmrc"
chroot "$rootfs" groupadd --gid 1000 node
chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*

case "$ENGINE" in
  docker | podman)
    tar -C "$rootfs" -c . | "$ENGINE" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["node"]' - "$image" >/dev/null ;;
  buildah)
    container=$(buildah from scratch)
    buildah copy "$container" "$rootfs" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd node "$container"
    buildah commit -q "$container" "$image" >/dev/null
    buildah rm "$container" >/dev/null ;;
esac
echo "$image"
