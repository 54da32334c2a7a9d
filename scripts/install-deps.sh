#!/usr/bin/env bash
# Installs the Debian 12 packages swactor builds and tests with (`install-deps.sh fuzz`
# adds clang and libFuzzer for `make fuzz`). Idempotent: quiet and fast when everything is
# already present; uses sudo when not root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache
  libcaf-dev libasio-dev libssl-dev libnghttp2-dev nlohmann-json3-dev
  libtomlplusplus-dev catch2 libspdlog-dev libfmt-dev libcli11-dev
  zlib1g-dev libmariadb-dev node-llhttp
  procps
  curl wrk apache2-utils python3 openssl
  redis-server redis-tools  # bench -f redis tests, bench_redis (they start their own servers)
)
if [ "${1:-}" = "fuzz" ]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
