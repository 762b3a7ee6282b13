#!/bin/sh
# tests/sanitize/run_gdal_tests.sh — the GDAL-client tests (tests/gdal) against the
# plugin built with ASan+UBSan in build-asan/, through /usr/bin/python3 with the
# ASan runtime preloaded. Every gdal_translate / gdalinfo the tests start inherits
# the same runtime and options.
#
# - ASan and UBSan halt on the first error (the plugin is built with
#   -fno-sanitize-recover=all).
# - LeakSanitizer is on in every process; tests/sanitize/check_logs.py then fails
#   the run on any sanitizer error in any process's log, on any leak with a pgp
#   frame, and on any other leak that tests/sanitize/lsan.supp does not explain.
# - First, a canary: a deliberate leak in repository code called from Python must
#   be reported, or the leak checking itself is broken.
# - Tests that cannot hold under ASan are skipped (PGP_SANITIZED=1, see
#   tests/sanitize/pgp_sanitized.py).
# Expects build-asan/gdal_PGP.so (test.sh builds it). Extra arguments go to pytest.
set -eu
cd "$(dirname "$0")/../.."
repo=$PWD
logs=$repo/build-asan/sanitizer-logs
asan_runtime=$(gcc -print-file-name=libasan.so)
# Python is not linked with libstdc++: ASan must see it at start-up to intercept
# __cxa_throw (PROJ throws), or it aborts with a CHECK failure.
cxx_runtime=$(gcc -print-file-name=libstdc++.so)
[ -f "$asan_runtime" ] || { echo "no ASan runtime at $asan_runtime" >&2; exit 1; }

# fast_unwind_on_malloc=0: full stacks through GDAL, PROJ and Python, which are
# built without frame pointers; needed to see pgp frames below GDAL's allocators.
asan_options="halt_on_error=1:detect_leaks=1:abort_on_error=0:fast_unwind_on_malloc=0"
asan_options="$asan_options:malloc_context_size=40:strict_string_checks=1"
asan_options="$asan_options:detect_stack_use_after_return=1:check_initialization_order=1"

run_sanitized() { # log folder, command...
  log_dir=$1
  shift
  rm -rf "$log_dir"
  mkdir -p "$log_dir"
  LD_PRELOAD="$asan_runtime $cxx_runtime" \
  ASAN_OPTIONS="$asan_options:log_path=$log_dir/asan" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$log_dir/ubsan" \
  GDAL_DRIVER_PATH="$repo/build-asan" PGP_SANITIZED=1 \
  PYTHONPATH="$repo/tests/sanitize" PYTHONDONTWRITEBYTECODE=1 \
  "$@"
}

# 1. The canary.
mkdir -p build-asan/sanitize
gcc -shared -fPIC -g -fno-omit-frame-pointer -fsanitize=address \
  "$repo/tests/sanitize/leak_canary.c" $(pkg-config --cflags --libs gdal) \
  -o build-asan/sanitize/pgp_leak_canary.so
run_sanitized "$logs/canary" /usr/bin/python3 -c \
  'import ctypes, sys; ctypes.CDLL(sys.argv[1]).pgp_leak_canary()' \
  "$repo/build-asan/sanitize/pgp_leak_canary.so" || true
if /usr/bin/python3 tests/sanitize/check_logs.py "$logs/canary" tests/sanitize/lsan.supp \
     >/dev/null 2>"$logs/canary.txt" || ! grep -q "pgp leak" "$logs/canary.txt" ||
   ! grep -q "leak_canary.c" "$logs/canary.txt"; then
  echo "leak canary: a deliberate leak in repository code was not reported" >&2
  cat "$logs/canary.txt" >&2
  exit 1
fi
echo "leak canary: reported, as it must be"

# 2. The GDAL-client tests.
status_file=$logs/pytest-exitstatus
rc=0
run_sanitized "$logs/gdal" env PGP_SANITIZED_STATUS="$status_file" \
  /usr/bin/python3 -m pytest -q -p pgp_sanitized -p no:cacheprovider -rs tests/gdal "$@" ||
  rc=$?
# The exit code is 1 when LSan reported leaks at exit (Python's always):
# pytest's own verdict is in the status file it wrote before exiting.
if [ ! -f "$status_file" ]; then
  echo "sanitized GDAL tests: pytest did not finish (exit code $rc)" >&2
  /usr/bin/python3 tests/sanitize/check_logs.py "$logs/gdal" tests/sanitize/lsan.supp || true
  exit 1
fi
if [ "$(cat "$status_file")" != 0 ] || [ "$rc" -gt 1 ]; then
  echo "sanitized GDAL tests failed (pytest status $(cat "$status_file"), exit code $rc)" >&2
  /usr/bin/python3 tests/sanitize/check_logs.py "$logs/gdal" tests/sanitize/lsan.supp || true
  exit 1
fi
/usr/bin/python3 tests/sanitize/check_logs.py "$logs/gdal" tests/sanitize/lsan.supp
