"""pytest plugin for the sanitized run of tests/gdal (tests/sanitize/run_gdal_tests.sh).

Loaded with `-p pgp_sanitized` (PYTHONPATH=tests/sanitize). When PGP_SANITIZED=1:
- skips the tests that cannot hold under AddressSanitizer, with the reason;
- writes the session's exit status to $PGP_SANITIZED_STATUS, because the process
  exit code is LeakSanitizer's once it reports a leak (Python's own always).
"""
import os

import pytest

# file name -> why its tests cannot run under ASan
INCOMPATIBLE = {
    "test_memory.py": "peak-RSS (/usr/bin/time) and wall-time limits are meaningless under "
                      "ASan: shadow memory, redzones and the free quarantine",
}


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PGP_SANITIZED") != "1":
        return
    for item in items:
        reason = INCOMPATIBLE.get(os.path.basename(str(item.fspath)))
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"PGP_SANITIZED=1: {reason}"))


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("PGP_SANITIZED_STATUS")
    if path:
        with open(path, "w") as f:
            f.write(f"{int(exitstatus)}\n")
