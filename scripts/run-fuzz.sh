#!/usr/bin/env bash
# Builds the libFuzzer targets with clang++ and runs each for a bounded time
# (FUZZ_SECONDS, default 60) starting from its seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DSWACTOR_FUZZ=ON -DSWACTOR_PCH=OFF >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.cpp 2>/dev/null | sed 's/\.cpp$//')
[ -n "$targets" ] || { echo "no fuzz targets"; exit 0; }
cmake --build build-fuzz -j2 --target $targets
for t in $targets; do
  short=${t#fuzz_}
  work="build-fuzz/corpus/$short"
  mkdir -p "$work"
  echo "### $t for ${seconds}s"
  build-fuzz/tests/fuzz/$t -max_total_time="$seconds" -print_final_stats=1 "$work" "tests/fuzz/corpus/$short"
done
