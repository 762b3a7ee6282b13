#!/usr/bin/python3
"""Checks that the docs stand on their own (run by test.sh before the builds).

- Every relative link in README.md and docs/*.md resolves to a file of the
  repository that the .deb installs with them (README.md, docs/*.md, *.png),
  and its #anchor (if any) to a heading of that file, slugged as GitHub does;
  no link leaves the repository.
- Every PGP_* name in them occurs in the code, the build or the tests.
- In every file of the repository (code comments included), each
  docs/NAME.md[#anchor] it names exists, and nothing refers to the design
  documents outside the repository.

Exits 1 with one line per problem. Standard library only.
"""
import functools
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SELF = os.path.relpath(os.path.abspath(__file__), ROOT)

# Where a PGP_* name must occur: the product first, then the build and tests.
NAME_DIRS = ["core", "driver", "pixelfuncs", "include", "python", "tests", "packaging", ".ci"]
NAME_FILES = ["CMakeLists.txt", "test.sh", "demo.sh"]

# References to the shared design documents, which a clone does not have.
# Built from pieces so that this file does not match itself.
OUTSIDE = re.compile("|".join([r"\.\./" + "shared", "DESIGN" + " §", "SEMANTICS" + " §",
                               "DESIGN" + r"\.md", "SEMANTICS" + r"\.md"]))

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\]\n]|\][^(\n])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.M)
DOC_PATH = re.compile(r"(?<![\w/.-])(docs/[\w.-]+\.md)(?:#([\w-]+))?")
# What the .deb installs into /usr/share/doc/pgp (CMakeLists.txt): links must stay inside.
INSTALLED = re.compile(r"^(README\.md|docs/.*\.(md|png))$")
PGP_NAME = re.compile(r"\bPGP_[A-Z0-9_]*[A-Z0-9]\b")


def doc_files():
    files = ["README.md"]
    files += sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs"))
                    if f.endswith(".md"))
    return files


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def slug(heading):
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation
    dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors(rel):
    seen, result = {}, set()
    for heading in HEADING.findall(FENCE.sub("", read(rel))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else "%s-%d" % (base, n))
    return result


def check_links(rel, text, problems):
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        if path.startswith("/"):
            problems.append("%s: link '%s' is an absolute path" % (rel, target))
            continue
        dest = os.path.normpath(os.path.join(os.path.dirname(rel), path)) if path else rel
        if dest == ".." or dest.startswith("../"):
            problems.append("%s: link '%s' points outside the repository" % (rel, target))
            continue
        if not os.path.exists(os.path.join(ROOT, dest)):
            problems.append("%s: link '%s': no file %s" % (rel, target, dest))
            continue
        if not INSTALLED.match(dest):
            problems.append("%s: link '%s': %s is not installed with the docs "
                            "(/usr/share/doc/pgp holds README.md and docs/*.md, *.png)"
                            % (rel, target, dest))
            continue
        if anchor and dest.endswith(".md") and anchor not in anchors(dest):
            problems.append("%s: link '%s': %s has no heading with anchor #%s"
                            % (rel, target, dest, anchor))


def code_text():
    chunks = [read(f) for f in NAME_FILES if os.path.exists(os.path.join(ROOT, f))]
    for top in NAME_DIRS:
        for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d not in ("corpus", "__pycache__")]
            for name in files:
                path = os.path.join(folder, name)
                if os.path.relpath(path, ROOT) == SELF:
                    continue
                try:
                    with open(path, encoding="utf-8") as f:
                        chunks.append(f.read())
                except (UnicodeDecodeError, OSError):
                    pass  # binary test data
    return "\n".join(chunks)


def check_doc_path(rel, number, path, anchor, problems):
    if not os.path.exists(os.path.join(ROOT, path)):
        problems.append("%s:%d: names %s, which does not exist" % (rel, number, path))
    elif anchor and anchor not in anchors(path):
        problems.append("%s:%d: names %s#%s, but %s has no heading with that anchor"
                        % (rel, number, path, anchor, path))


def check_repository_files(problems):
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d != ".git" and not d.startswith("build")]
        for name in files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, ROOT)
            if rel == SELF:
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    lines = f.readlines()
            except (UnicodeDecodeError, OSError):
                continue
            for number, line in enumerate(lines, 1):
                for path, anchor in DOC_PATH.findall(line):
                    check_doc_path(rel, number, path, anchor, problems)
                found = OUTSIDE.search(line)
                if found:
                    problems.append("%s:%d: refers to '%s', which is not in the repository; "
                                    "link to docs/ instead" % (rel, number, found.group(0)))


def main():
    problems = []
    code = code_text()
    for rel in doc_files():
        text = read(rel)
        check_links(rel, text, problems)
        for name in sorted(set(PGP_NAME.findall(text))):
            if not re.search(r"\b%s\b" % name, code):
                problems.append("%s: %s is named in the docs but found nowhere in the code, "
                                "build or tests" % (rel, name))
    check_repository_files(problems)
    for p in problems:
        print("check_docs: " + p, file=sys.stderr)
    if problems:
        print("check_docs: %d problem(s)" % len(problems), file=sys.stderr)
        return 1
    print("check_docs: %d documents, links, anchors and PGP_* names all resolve"
          % len(doc_files()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
