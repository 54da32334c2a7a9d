#!/usr/bin/env bash
# Builds the libFuzzer targets with clang++ (build-fuzz/, SWACTOR_FUZZ=ON: only the fuzz
# targets and the parser sources they list) and runs each for a bounded time (FUZZ_SECONDS,
# default 60) starting from its seed corpus tests/fuzz/corpus/NAME/ (and the dictionary
# tests/fuzz/NAME.dict when there is one). FUZZ_TARGETS="config framing" picks targets.
# New inputs go to build-fuzz/corpus/NAME/, crash reproducers to build-fuzz/artifacts/NAME/.
# Every target runs even if one crashes; the exit status is 1 when any did.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
cxx=${FUZZ_CXX:-clang++}
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
  -DSWACTOR_FUZZ=ON -DSWACTOR_PCH=OFF >/dev/null
targets=${FUZZ_TARGETS:-$(cd tests/fuzz && ls fuzz_*.cpp 2>/dev/null | sed 's/\.cpp$//')}
targets=$(for t in $targets; do echo "fuzz_${t#fuzz_}"; done)
[ -n "$targets" ] || { echo "no fuzz targets"; exit 0; }
cmake --build build-fuzz -j"${JOBS:-2}" --target $targets

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary=()
failed=0
for t in $targets; do
  short=${t#fuzz_}
  work="build-fuzz/corpus/$short"
  artifacts="build-fuzz/artifacts/$short/"
  log="build-fuzz/$t.log"
  mkdir -p "$work" "$artifacts"
  dict=()
  [ -f "tests/fuzz/$short.dict" ] && dict=(-dict="tests/fuzz/$short.dict")
  echo "### $t for ${seconds}s"
  set +e
  "build-fuzz/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts" "${dict[@]}" "$work" "tests/fuzz/corpus/$short" \
    2>&1 | tee "$log" | grep -E '^(#[0-9]+ +DONE|==[0-9]+==ERROR|SUMMARY|stat::|artifact_prefix|INFO: seed corpus|.*runtime error|.*Assertion)'
  status=${PIPESTATUS[0]}
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  crashes=$(ls "$artifacts" | wc -l)
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "!!! $t exited with $status; reproducer(s) in $artifacts, log $log"
  fi
  summary+=("$(printf '%-14s execs %-10s exec/s %-7s cov %-6s crashes %s' \
    "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$crashes")")
done
echo "### summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit $failed
