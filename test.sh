#!/bin/sh
# Builds pgp and passes every test (docs/hardening.md):
#  0. the docs check (tests/docs/check_docs.py): every doc link, anchor and
#     PGP_* name resolves inside the repository;
#  1. release build: unit tests, GDAL-client tests, the Python package tests
#     (tests/python: every executor form, a dask-scheduler + two dask-worker cluster
#     on 127.0.0.1, the pgp command) and the headless QGIS test (ctest),
#     then the .deb: built, installed, checked and removed (packaging/check-deb.sh);
#  2. ASan+UBSan build: unit tests (with the fault-injection walks of
#     tests/unit/test_faults.cpp: every allocation and source read made to fail in
#     turn), the fuzz replays (every seed and every kept crash input of
#     tests/fuzz/) and the GDAL-client tests against the sanitized plugin through
#     /usr/bin/python3, LeakSanitizer on (tests/sanitize/);
#  3. ThreadSanitizer: executor, cache, render, VM, convolve, grid and stitch tests;
#  4. libFuzzer (clang): each fuzz target for PGP_FUZZ_SECONDS (default 60) seconds,
#     then the clang replays; a crash fails the run and is kept in
#     tests/fuzz/regressions/ (tests/fuzz/run.sh).
set -eu
cd "$(dirname "$0")"
sh packaging/debian-deps.sh
jobs=$(nproc)
started=$(date +%s)
step() { echo "== $* ($(($(date +%s) - started)) s)"; }

step "docs: links, anchors and PGP_* names resolve inside the repository"
/usr/bin/python3 tests/docs/check_docs.py

step "release build, unit and GDAL-client tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure)

step "Debian package: cpack -G DEB, apt-get install, gdalinfo --format PGP, remove"
sh packaging/check-deb.sh build

step "ASan+UBSan: unit tests and fuzz replays"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPGP_SANITIZE=address -DPGP_FUZZ=ON >/dev/null
cmake --build build-asan -j"$jobs" --target pgp_unit_tests gdal_PGP pgp_shutdown_check pgp_replay_graph \
  pgp_replay_expr
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
build-asan/pgp_unit_tests
for target in graph expr; do
  "build-asan/tests/fuzz/pgp_replay_$target" "tests/fuzz/corpus/$target" \
    "tests/fuzz/regressions/$target"
done
unset ASAN_OPTIONS UBSAN_OPTIONS

step "ASan+UBSan: GDAL-client tests against the sanitized plugin"
tests/sanitize/run_gdal_tests.sh

step "ThreadSanitizer"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DPGP_SANITIZE=thread >/dev/null
cmake --build build-tsan -j"$jobs" --target pgp_unit_tests
# Kernels/ConvolveShapes is left out: single-threaded arithmetic, 100 s under TSan;
# of the fault walks (ASan above), the two on threads run here.
TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tests/tsan.supp" build-tsan/pgp_unit_tests \
  --gtest_filter='*Executor*:TileCache*:Render*:ExprEval*:*Convolve*:*Grid*:Allocator.*:StitchThreads.*:'\
'Graphs/FaultWalk.*/CalcThreadsPrefetch_*:-Kernels/ConvolveShapes.*:'\
'Graphs/FaultWalk.*/Convolve*:Graphs/FaultWalk.*/Overview*'

step "libFuzzer, ${PGP_FUZZ_SECONDS:-60} s a target"
tests/fuzz/run.sh "${PGP_FUZZ_SECONDS:-60}"
cmake --build build-fuzz -j"$jobs" --target pgp_replay_graph pgp_replay_expr >/dev/null
for target in graph expr; do
  "build-fuzz/tests/fuzz/pgp_replay_$target" "tests/fuzz/corpus/$target" \
    "tests/fuzz/regressions/$target"
done
step "all tests passed"
