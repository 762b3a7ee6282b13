#!/bin/sh
# tests/fuzz/run.sh [SECONDS] [TARGET...] — builds the fuzz targets with clang into
# build-fuzz/ and runs each libFuzzer target for SECONDS (default 60), starting from
# the seed corpus (tests/fuzz/corpus/<target>), the kept crash inputs
# (tests/fuzz/regressions/<target>) and what earlier runs found (build-fuzz/corpus/).
#
# Fails when a target finds a crash, a leak, a timeout or an out-of-memory: the input
# is then copied to tests/fuzz/regressions/<target>/ (commit it: every later
# ./test.sh replays it) and its report is printed. Prints the executions per target.
# Targets: graph, expr (default: both).
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-graph expr}
jobs=$(nproc)

CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPGP_FUZZ=ON >/dev/null
for target in $targets; do
  cmake --build build-fuzz -j"$jobs" --target "fuzz_$target" >/dev/null
done

# Symbolized reports (llvm-14, in packaging/debian-deps.sh).
if [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

status=0
for target in $targets; do
  case $target in
    graph) max_len=8192 ;;
    expr) max_len=4096 ;;
    *) echo "unknown fuzz target '$target'" >&2; exit 2 ;;
  esac
  work=build-fuzz/corpus/$target
  artifacts=build-fuzz/artifacts/$target
  log=build-fuzz/fuzz_$target.log
  mkdir -p "$work" "$artifacts"
  rm -f "$artifacts"/*
  echo "fuzz_$target: ${seconds}s, -max_len=$max_len"
  # New inputs go to the first folder ($work, not the repository's seeds).
  if ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:allocator_may_return_null=1 \
     UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     "build-fuzz/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -max_len="$max_len" \
       -timeout=25 -rss_limit_mb=2048 -dict="tests/fuzz/$target.dict" -print_final_stats=1 \
       -artifact_prefix="$artifacts/" "$work" "tests/fuzz/corpus/$target" \
       "tests/fuzz/regressions/$target" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    corpus=$(ls "$work" | wc -l)
    echo "fuzz_$target: ${execs:-?} executions, no crash ($corpus inputs in $work)"
  else
    status=1
    echo "fuzz_$target FAILED: its report (from $log):" >&2
    grep -v '^#[0-9]' "$log" | tail -60 >&2
    for crash in "$artifacts"/*; do
      [ -f "$crash" ] || continue
      kept=tests/fuzz/regressions/$target/$(basename "$crash")
      cp "$crash" "$kept"
      echo "fuzz_$target: kept $kept; commit it, ./test.sh replays it from now on" >&2
    done
  fi
done
exit $status
