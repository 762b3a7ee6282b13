#!/usr/bin/python3
"""Checks the ASan/LSan/UBSan logs of a sanitized test run (log_path=DIR/...).

usage: check_logs.py LOG_DIR SUPPRESSIONS [REPO]

Fails (exit 1), printing the report, on
- any AddressSanitizer or UndefinedBehaviorSanitizer error, in any process of the
  run: the Python test process and every gdal_translate / gdalinfo it started
  (a test that expects a tool to fail would otherwise pass on a crash);
- any leak with a frame of pgp's (a source file or module under REPO: gdal_PGP.so,
  core/, driver/, pixelfuncs/, or a pgp_ function), whatever else is on its stack;
- any other leak that no pattern of SUPPRESSIONS (LSan syntax, leak:PATTERN)
  matches in one of its frames.
Leaks matched by a suppression are counted per pattern and printed.
"""
import collections
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FRAME = re.compile(r"^\s+#\d+ 0x[0-9a-f]+\s+(?:in\s+)?(.*)$")
LEAK = re.compile(r"^(Direct|Indirect) leak of (\d+) byte")


def read_patterns(path):
    patterns = []
    for line in open(path):
        line = line.strip()
        if line.startswith("leak:"):
            text = line[len("leak:"):]
            regex = re.escape(text.strip("^$")).replace(r"\*", ".*")
            regex = ("^" if text.startswith("^") else "") + regex + \
                    ("$" if text.endswith("$") and len(text) > 1 else "")
            patterns.append((text, re.compile(regex)))
    return patterns


def frame_parts(frame):
    """Function, file and module of a symbolized or raw frame's text."""
    module = re.search(r"\(([^()]+)\+0x[0-9a-f]+\)$", frame)
    parts = [module.group(1)] if module else []
    rest = frame[:module.start()].strip() if module else frame
    location = re.search(r"\s(\S+?)(?::\d+)*$", rest)
    if location and "/" in location.group(1):
        parts.append(location.group(1))
        rest = rest[:location.start()]
    if rest:
        parts.append(rest.strip())
    return parts


OUR_RELATIVE = re.compile(r"^(\./)?(core|driver|pixelfuncs|include|tests)/")


def is_ours(frame, repo):
    """A frame in pgp: a file or module under REPO (absolute, or relative as some
    builds record them), gdal_PGP.so wherever it is installed, or a pgp_ function."""
    return any(part.startswith(repo + os.sep) or part.endswith("gdal_PGP.so")
               or OUR_RELATIVE.match(part) or part.startswith("pgp_")
               for part in frame_parts(frame))


def check_file(path, patterns, repo, counts):
    """Returns the failing reports of one log file as text."""
    failures = []
    lines = open(path, errors="replace").read().splitlines()
    for i, line in enumerate(lines):
        if ("ERROR: AddressSanitizer" in line or "runtime error:" in line
                or "AddressSanitizer: CHECK failed" in line
                or "ERROR: ThreadSanitizer" in line):
            failures.append(f"{path}: sanitizer error:\n" + "\n".join(lines[i:i + 40]))
    i = 0
    while i < len(lines):
        m = LEAK.match(lines[i])
        if not m:
            i += 1
            continue
        header = lines[i]
        frames = []
        i += 1
        while i < len(lines) and FRAME.match(lines[i]):
            frames.append(FRAME.match(lines[i]).group(1))
            i += 1
        report = header + "\n" + "\n".join("    " + f for f in frames)
        if any(is_ours(f, repo) for f in frames):
            failures.append(f"{path}: pgp leak (never suppressed):\n{report}")
            continue
        matched = next((text for text, regex in patterns
                        for f in frames for part in frame_parts(f) if regex.search(part)),
                       None)
        if matched is None:
            failures.append(f"{path}: leak that no suppression explains:\n{report}")
        else:
            counts[matched] += 1
    return failures


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    log_dir, suppressions = sys.argv[1], sys.argv[2]
    repo = os.path.realpath(sys.argv[3] if len(sys.argv) == 4 else
                            os.path.join(HERE, "..", ".."))
    patterns = read_patterns(suppressions)
    counts = collections.Counter()
    failures = []
    logs = sorted(os.listdir(log_dir)) if os.path.isdir(log_dir) else []
    for name in logs:
        failures += check_file(os.path.join(log_dir, name), patterns, repo, counts)
    suppressed = ", ".join(f"{n} by {p}" for p, n in counts.most_common()) or "none"
    print(f"check_logs: {len(logs)} sanitizer log(s) in {log_dir}; "
          f"leaks suppressed: {suppressed}")
    if failures:
        print("\n\n".join(failures), file=sys.stderr)
        print(f"check_logs: {len(failures)} failure(s)", file=sys.stderr)
        sys.exit(1)
    print("check_logs: no sanitizer error, no pgp leak, no unexplained leak")


if __name__ == "__main__":
    main()
