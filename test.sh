#!/bin/sh
# Builds pgp and passes every test: unit tests and GDAL-client tests on the
# release build, unit tests again under ASan+UBSan, executor and cache tests
# under ThreadSanitizer.
set -eu
cd "$(dirname "$0")"
sh packaging/debian-deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure)

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPGP_SANITIZE=address >/dev/null
cmake --build build-asan -j"$jobs" --target pgp_unit_tests
ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  build-asan/pgp_unit_tests

cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DPGP_SANITIZE=thread >/dev/null
cmake --build build-tsan -j"$jobs" --target pgp_unit_tests
TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tests/tsan.supp" build-tsan/pgp_unit_tests --gtest_filter='*Executor*:TileCache*:Render*:ExprEval*'
echo "all tests passed"
