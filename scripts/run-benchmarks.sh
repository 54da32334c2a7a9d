#!/usr/bin/env bash
# Runs every benchmark program; each prints a table and writes BUILD/bench/NAME.json.
# SWACTOR_COUNT=1 then also counts instructions and syscalls per round trip
# (scripts/count-round-trip.sh, several minutes under valgrind).
set -euo pipefail
build=${1:-build}
export SWACTOR_BENCH_DIR="$build/bench"
export SWACTOR_BIN="$build/apps/swactor"
export SWACTOR_NODE_DIR="${SWACTOR_NODE_DIR:-$build/node}"  # bench_ws: npm's ws (install-deps.sh)
mkdir -p "$SWACTOR_BENCH_DIR"
status=0
for b in "$build"/tests/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "### $(basename "$b")"
  "$b" || { echo "benchmark $(basename "$b") failed" >&2; status=1; }
done
if [ "${SWACTOR_COUNT:-0}" = 1 ]; then
  echo "### count-round-trip"
  "$(dirname "$0")/count-round-trip.sh" "$build" || { echo "count-round-trip failed" >&2; status=1; }
fi
exit $status
