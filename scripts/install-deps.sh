#!/usr/bin/env bash
# Installs the Debian 12 packages swactor builds and tests with (`install-deps.sh fuzz`
# adds clang and libFuzzer for `make fuzz`), then the npm packages of the WebSocket client
# tests and benchmarks (tests/integration/node/package-lock.json: ws, playwright-core) into
# $SWACTOR_NODE_DIR (default build/node; `make` passes $(BUILD_DIR)/node), never into the
# source tree. Idempotent: quiet and fast when everything is already present; uses sudo
# when not root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

packages=(
  build-essential cmake pkg-config ccache
  libcaf-dev libasio-dev libssl-dev libnghttp2-dev nlohmann-json3-dev
  libtomlplusplus-dev catch2 libspdlog-dev libfmt-dev libcli11-dev
  zlib1g-dev libbrotli-dev libmariadb-dev node-llhttp
  procps
  curl wrk apache2-utils python3 openssl
  nghttp2-client  # nghttp and h2load: the HTTP/2 integration tests, bench_h2
  nghttp2-server  # nghttpd: the reference server of bench_h2
  redis-server redis-tools  # bench -f redis tests, bench_redis (they start their own servers)
  python3-redis  # redis-py: the transaction and pipeline test of redis_kv (Debian's /usr/bin/python3)
  valgrind  # the memcheck integration test; callgrind counts of make bench (scripts/count-*.sh)
  chromium  # the headless browser of the WebSocket client test (driven by playwright-core)
)
# Node.js and npm: Debian's unless the machine already has them (NodeSource's nodejs ships
# npm and conflicts with Debian's npm package, so the commands decide, not dpkg).
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
if [ "${1:-}" = "fuzz" ]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages: `npm ci` from the lock file into the node dir, redone only when the lock
# file changed (a stamp holds the lock file's hash). The tests look there (the build's
# node/ dir, or $SWACTOR_NODE_DIR) and fail when it is missing.
node_src="$root/tests/integration/node"
node_dir=${SWACTOR_NODE_DIR:-$root/build/node}
case "$node_dir" in /*) ;; *) node_dir="$root/$node_dir" ;; esac
want=$(sha256sum "$node_src/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$node_dir/.installed" 2>/dev/null)" != "$want" ] || [ ! -d "$node_dir/node_modules/ws" ]; then
  echo "install-deps: npm ci (ws, playwright-core) into $node_dir"
  mkdir -p "$node_dir"
  cp "$node_src/package.json" "$node_src/package-lock.json" "$node_dir/"
  # No browser download (Debian's chromium is used), no audit or funding requests.
  (cd "$node_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$want" > "$node_dir/.installed"
fi
