#!/usr/bin/python3
"""Regenerates the seed corpora of tests/fuzz/ from the tests, samples and docs.

corpus/graph/: every .pgp.vrt document the tests and samples build, with their
file attributes rewritten to the fuzzers' /vsimem/fuzz/ rasters, plus the
hand-written documents in corpus/graph/ (kept: this script only adds files).
corpus/expr/: every expression in the tests, samples and docs.

Files are named by the SHA-1 of their content, as libFuzzer names what it finds,
so rerunning the script adds only what is new. Run it after adding tests:
    /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import ast
import hashlib
import html
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAX_LEN = {"graph": 8192, "expr": 4096}  # the -max_len run.sh gives each fuzzer

# The fuzzer's rasters (fuzz_graph.c make_sources) standing in for the tests' files.
RENAMED = {"a.tif": "a.tif", "b.tif": "b.tif", "c.tif": "c.tif", "small.tif": "small.tif",
           "shifted.tif": "shifted.tif", "missing.tif": "missing.tif", "dem.tif": "d.tif",
           "lulc.tif": "a.tif", "precip.tif": "b.tif", "k.tif": "kernel.tif",
           "allnodata.tif": "kernel_int.tif", "mask.gpkg": "v.geojson"}


def fuzz_path(path, default):
    return "/vsimem/fuzz/" + RENAMED.get(os.path.basename(path), default)


def rewrite_files(xml):
    """file=, kernel= and <Mask vector=> attributes name the fuzzers' files instead."""
    def rename(m):
        default = {"k": "kernel.tif", "v": "v.geojson"}.get(m.group(1)[0], "b.tif")
        return f"{m.group(1)}{m.group(2)}{fuzz_path(m.group(3), default)}{m.group(2)}"
    return re.sub(r"""((?:file|kernel|vector)\s*=\s*)(["'])(.*?)\2""", rename, xml)


def as_document(fragment):
    if "<PGPDataset" in fragment:
        return fragment[fragment.index("<"):]
    return f'<PGPDataset blockXSize="16" blockYSize="16">\n{fragment}\n</PGPDataset>\n'


# ---- Python tests: string values, with module constants, + and f-strings ----------

def python_strings(path):
    tree = ast.parse(open(path).read())
    known = {}

    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return known.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = value(node.left), value(node.right)
            return left + right if left is not None and right is not None else None
        if isinstance(node, ast.JoinedStr):
            text = ""
            for part in node.values:
                if isinstance(part, ast.Constant):
                    text += part.value
                else:  # a placeholder: something that parses in its place
                    text += "Float32" if text.endswith('dataType="') else (
                        "A + B" if text.endswith("<Expression>") else "-1")
            return text
        return None

    for node in tree.body:  # module constants first, in order
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            v = value(node.value)
            if v is not None:
                known[node.targets[0].id] = v
    found = []
    for node in ast.walk(tree):
        v = value(node)
        if v is not None:
            found.append(v)
        if isinstance(node, ast.Dict):  # pixel function arguments
            for k, val in zip(node.keys, node.values):
                if value(k) == "expression" and value(val) is not None:
                    found.append("EXPR:" + html.unescape(value(val)))
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "expression" for t in node.targets):
            if value(node.value) is not None:
                found.append("EXPR:" + value(node.value))
    return found


# ---- C++ tests: Doc(...) calls and literal concatenations --------------------------

LITERAL = r'"(?:[^"\\]|\\.)*"'


def unescape_cpp(literal):
    return bytes(literal[1:-1], "utf-8").decode("unicode_escape")


def cpp_concat(text, known):
    """Concatenates the literals and known names of a C++ + expression."""
    out = ""
    for token in re.findall(LITERAL + r"|[A-Za-z_]\w*", text):
        if token.startswith('"'):
            out += unescape_cpp(token)
        elif token in known:
            out += known[token]
    return out


def cpp_strings(path):
    source = open(path).read()
    known = {}
    for m in re.finditer(r"const std::string (\w+)\s*=\s*((?:" + LITERAL + r"|\s|\+|\w)+);",
                         source):
        known[m.group(1)] = cpp_concat(m.group(2), known)
    for m in re.finditer(r"std::string (\w+)\s*=\s*(k\w+\s*\+\s*" + LITERAL + r")\s*;", source):
        known[m.group(1)] = cpp_concat(m.group(2), known)
    found = []
    for m in re.finditer(r"\bDoc\(", source):  # Doc(body, root attributes)
        depth, i = 1, m.end()
        while depth and i < len(source):
            if source[i] == '"':
                i = re.match(LITERAL, source[i:]).end() + i
                continue
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        args = source[m.end():i - 1]
        parts, depth, start = [], 0, 0
        for j, ch in enumerate(re.sub(LITERAL, lambda x: "_" * len(x.group(0)), args)):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if ch == "," and depth == 0:
                parts.append(args[start:j])
                start = j + 1
        parts.append(args[start:])
        body = cpp_concat(parts[0], known)
        root = cpp_concat(parts[1], known) if len(parts) > 1 else ""
        found.append(f"<PGPDataset{root}>{body}</PGPDataset>")
    # Other literal runs (adjacent literals concatenate), e.g. whole documents.
    for m in re.finditer(r"(?:" + LITERAL + r"\s*)+", source):
        found.append(cpp_concat(m.group(0), {}))
    return found


def main():
    graphs, exprs = set(), set()
    test_dirs = [os.path.join(REPO, "tests", "gdal"), os.path.join(REPO, "tests", "unit")]
    for folder in test_dirs:
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            strings = (python_strings(path) if name.endswith(".py") else
                       cpp_strings(path) if name.endswith((".cpp", ".h")) else [])
            for s in strings:
                if s.startswith("EXPR:"):
                    exprs.add(s[5:])
                elif re.search(r"<(PGPDataset|Source|Calc|Convolve|Band)\b", s):
                    graphs.add(as_document(rewrite_files(s)))
                elif name == "test_expr.cpp" and s.strip():
                    exprs.add(s)
    for folder, suffix in [("samples", ".pgp.vrt"), ("docs", ".md"), ("", ".md")]:
        for name in sorted(os.listdir(os.path.join(REPO, folder))):
            if name.endswith(suffix):
                text = open(os.path.join(REPO, folder, name)).read()
                for m in re.finditer(r"<PGPDataset.*?</PGPDataset>", text, re.S):
                    graphs.add(rewrite_files(m.group(0)) + "\n")
    for g in list(graphs):
        for m in re.finditer(r"<Expression>(.*?)</Expression>", g, re.S):
            exprs.add(html.unescape(m.group(1)))
    for kind, items in (("graph", graphs), ("expr", exprs)):
        folder = os.path.join(HERE, "corpus", kind)
        os.makedirs(folder, exist_ok=True)
        added = 0
        for item in sorted(items):
            data = item.encode()
            if not data or len(data) > MAX_LEN[kind]:
                continue
            path = os.path.join(folder, hashlib.sha1(data).hexdigest())
            if not os.path.exists(path):
                with open(path, "wb") as f:
                    f.write(data)
                added += 1
        print(f"corpus/{kind}: {added} new, {len(os.listdir(folder))} in all")


if __name__ == "__main__":
    main()
