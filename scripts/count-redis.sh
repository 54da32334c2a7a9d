#!/usr/bin/env bash
# Counted cost of a Redis command: userland instructions per command (callgrind, every
# process of the server) for swactor's redis_kv (base mode, 1 worker, the bench_redis table)
# and for redis-server, under the same redis-benchmark load. Like count-round-trip.sh: two
# runs per server (N1 and N2 commands after the same 20,000-SET warm-up), the difference of
# the summed instruction counts divided by N2 - N1, so start-up and shutdown cancel out.
#
#   scripts/count-redis.sh [BUILD_DIR [CMD [PIPELINE]]]   (defaults: build get 16; minutes)
#
# N1/N2 (environment) override the run lengths (default 10000 / 60000). Needs valgrind,
# redis-server and redis-benchmark (redis-tools); without them it prints why and exits 0.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
cmd=${2:-get}
pipeline=${3:-16}
n1=${N1:-10000}
n2=${N2:-60000}
swactor=$build/apps/swactor
for tool in valgrind redis-server redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "count-redis: $tool not installed; skipped"; exit 0; }
done
[ -x "$swactor" ] || { echo "count-redis: $swactor missing (build it first)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/count-redis-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

total() {  # SERVER N: summed Ir of the server's processes for a run of N commands
  local who=$1 n=$2 port pid
  port=$(free_port)
  rm -f "$tmp"/cg.*
  if [ "$who" = swactor ]; then
    cat >"$tmp/app.toml" <<T
[server]
mode = "base"
workers = 1
log_level = "warning"
admin_socket = "$tmp/admin.sock"

[tables.kv]
size = 65536
columns = [ {name="type",type="int"}, {name="expire",type="int"}, {name="value",type="string",size=256} ]

[modules.kv]
type = "redis_kv"
table = "kv"

[[listen]]
url = "redis://127.0.0.1:$port"
module = "kv"
backlog = 4096
T
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$tmp/cg.%p" \
      "$swactor" run "$tmp/app.toml" >"$tmp/server.log" 2>&1 &
  else
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.%p" \
      redis-server --port "$port" --save '' --appendonly no >"$tmp/server.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
  redis-benchmark -p "$port" -t set -n 20000 -P 16 -c 50 -r 10000 -q >/dev/null 2>&1
  redis-benchmark -p "$port" -t "$cmd" -n "$n" -P "$pipeline" -c 50 -r 10000 -q >/dev/null 2>&1
  if [ "$who" = swactor ]; then kill -TERM "$pid"; else redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; fi
  wait "$pid" || true
  # One "summary:" line per callgrind file.
  cat "$tmp"/cg.* | awk '/^summary:/ { s += $2 } END { print s }'
}

for who in redis-server swactor; do
  a=$(total "$who" "$n1")
  b=$(total "$who" "$n2")
  echo "$who $cmd -P $pipeline: $(((b - a) / (n2 - n1))) instructions/command (Ir $a @ $n1, $b @ $n2)"
done
