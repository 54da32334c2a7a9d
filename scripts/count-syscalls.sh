#!/usr/bin/env bash
# System calls per round trip by kind: a base-mode swactor server with `strace -f -c` attached
# to each worker while `swactor bench` (10 connections) drives it. Where ipm.py gives one
# total over every process, this says which calls it is made of (recvfrom errors are EAGAIN).
#
#   scripts/count-syscalls.sh [BUILD_DIR [tcp|http [WORKERS [REQUESTS]]]]   (build tcp 2 20000)
#
# tcp: the echo module, 64-byte messages (bench -f long_tcp); http: http_hello, keep-alive
# GET / (bench -f http). strace slows the workers, so each wakeup finds more connections ready
# than in an unobserved run: compare runs of this script with each other, not with ipm.py.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
proto=${2:-tcp}
workers=${3:-2}
requests=${4:-20000}
swactor=$build/apps/swactor
[ -x "$swactor" ] || { echo "count-syscalls: $swactor missing (build it first)" >&2; exit 1; }
command -v strace >/dev/null || { echo "count-syscalls: strace not installed; skipped"; exit 0; }

tmp=$(mktemp -d /tmp/count-syscalls-XXXXXX)
master=
tracers=()
cleanup() {
  for t in "${tracers[@]}"; do kill -INT "$t" 2>/dev/null || true; done
  [ -n "$master" ] && kill "$master" 2>/dev/null && wait "$master" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
case $proto in
  tcp) listen="url = \"tcp://127.0.0.1:$port\""$'\nmodule = "echo"'
       client=(-s "tcp://127.0.0.1:$port" -f long_tcp --size 64) ;;
  http) listen="url = \"http://127.0.0.1:$port\""$'\nmodule = "hello"\n\n[modules.hello]\ntype = "http_hello"'
        client=(-s "http://127.0.0.1:$port/" -f http) ;;
  *) echo "count-syscalls: protocol tcp or http, not $proto" >&2; exit 2 ;;
esac
printf '[server]\nmode = "base"\nworkers = %s\nlog_level = "warning"\nadmin_socket = "%s/admin.sock"\n\n[[listen]]\n%s\n' \
  "$workers" "$tmp" "$listen" >"$tmp/app.toml"

"$swactor" run "$tmp/app.toml" >"$tmp/server.log" 2>&1 &
master=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), timeout=1).close()" 2>/dev/null && break
  sleep 0.1
done
sleep 0.5  # every worker up
mapfile -t pids < <(pgrep -P "$master")
[ ${#pids[@]} -eq "$workers" ] || { echo "count-syscalls: found ${#pids[@]} workers, expected $workers" >&2; exit 1; }
for w in "${pids[@]}"; do
  strace -f -c -o "$tmp/strace-$w.txt" -p "$w" 2>/dev/null &
  tracers+=($!)
done
sleep 1  # attached
"$swactor" bench "${client[@]}" -c 10 -n "$requests" | grep -E 'throughput|errors' || true
sleep 0.5
for t in "${tracers[@]}"; do kill -INT "$t"; wait "$t" 2>/dev/null || true; done
tracers=()

for w in "${pids[@]}"; do
  echo "== worker $w"
  grep -E 'calls +errors|sendto|sendmsg|recvfrom|epoll_wait|epoll_ctl' "$tmp/strace-$w.txt"
done
# The calls of each kind over all workers, per round trip.
awk -v n="$requests" '
  $NF ~ /^(sendto|sendmsg|recvfrom|epoll_wait|epoll_ctl)$/ {
    calls[$NF] += $4; if (NF == 6) errs[$NF] += $5
  }
  $NF == "total" { total += $4 }
  END {
    for (k in calls) printf "%-10s %8d calls (%d errors)  %.3f per round trip\n", k, calls[k], errs[k], calls[k] / n
    printf "%-10s %8d calls  %.3f per round trip (every kind, start-up excluded: attached after it)\n", "all", total, total / n
  }' "$tmp"/strace-*.txt
