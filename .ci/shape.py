#!/usr/bin/env python3
"""The house's shape, checked (issue 22): run by .ci/run, exits 1 on a breach.

- no file in src/ over FILE_LINES_MAX lines;
- no function in src/ over FN_LINES_MAX lines, outside `#[cfg(test)]` modules;
- no file in src/system/ names a module of src/simulator/ or src/tools/ (the system layer
  also runs for real and must not depend on the simulator or the tools);
- no import cycle between the files of one folder of src/ (`use super::x` or
  `use crate::path::x` naming a sibling).

`python3 .ci/shape.py --report` prints every function over the limit and the import graph's
cycles without failing, for planning.
"""

import os
import re
import sys

FILE_LINES_MAX = 700
FN_LINES_MAX = 80
SRC = "src"

# Breaches left when issue 22 stopped (none now), named one by one so that the list can only shrink: each
# is reported, and fails the check once it is fixed and still listed (remove it then).
KNOWN = set()

FN_RE = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+(\w+)")
TEST_MOD_RE = re.compile(r"^\s*#\[cfg\(test\)\]")


def strip(line):
    """The line without its string and char literals and its // comment, so that braces in
    them do not count. Good enough for this tree (no raw strings with braces checked)."""
    out = []
    i = 0
    in_str = False
    while i < len(line):
        c = line[i]
        if in_str:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
            continue
        if c == '"':
            in_str = True
            i += 1
            continue
        if c == "/" and line[i + 1 : i + 2] == "/":
            break
        if c == "'" and i + 2 < len(line) and (line[i + 2] == "'" or (line[i + 1] == "\\" and "'" in line[i + 2 : i + 5])):
            # a char literal such as '{' or '\n'
            end = line.index("'", i + 2) if line[i + 1] != "\\" else line.index("'", i + 3)
            i = end + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def rust_files(root):
    for d, _, files in os.walk(root):
        for f in sorted(files):
            if f.endswith(".rs"):
                yield os.path.join(d, f)


def long_functions(path):
    """(name, first line, length) of every function over the limit outside test modules."""
    lines = open(path, encoding="utf-8").read().split("\n")
    found = []
    depth = 0
    test_depth = None  # depth at which a #[cfg(test)] module opened
    pending_test = False
    stack = []  # (name, start line, depth at which its body opened)
    waiting = None  # a fn whose body's `{` has not come yet
    for n, raw in enumerate(lines, 1):
        if TEST_MOD_RE.match(raw):
            pending_test = True
        line = strip(raw)
        m = FN_RE.match(line)
        if m and test_depth is None:
            waiting = (m.group(7), n)
        for c in line:
            if c == "{":
                depth += 1
                if pending_test and test_depth is None:
                    test_depth = depth
                    pending_test = False
                if waiting is not None:
                    stack.append((waiting[0], waiting[1], depth))
                    waiting = None
            elif c == "}":
                if stack and stack[-1][2] == depth:
                    name, start, _ = stack.pop()
                    length = n - start + 1
                    if length > FN_LINES_MAX:
                        found.append((name, start, length))
                if test_depth is not None and depth == test_depth:
                    test_depth = None
                depth -= 1
            elif c == ";" and waiting is not None:
                # a declaration without a body (trait method)
                waiting = None
        if pending_test and line.strip() and not line.strip().startswith("#") and "{" not in line and "mod" not in line:
            pending_test = False
    return found


def module_names(folder):
    names = set()
    for entry in os.listdir(folder):
        if entry.endswith(".rs") and entry != "mod.rs":
            names.add(entry[:-3])
        elif os.path.isdir(os.path.join(folder, entry)):
            names.add(entry)
    return names


def layer_breaches():
    """Lines of src/system/ that name a module of the simulator or the tools."""
    banned = (module_names(os.path.join(SRC, "simulator")) | module_names(os.path.join(SRC, "tools"))) - {"mod"}
    banned |= {"simulator", "tools"}
    pattern = re.compile(r"\bcrate::(" + "|".join(sorted(banned)) + r")\b")
    out = []
    for path in rust_files(os.path.join(SRC, "system")):
        for n, raw in enumerate(open(path, encoding="utf-8"), 1):
            if pattern.search(raw):
                out.append(f"{path}:{n}: {raw.strip()}")
    return out


def sibling_cycles():
    """Cycles among the files of each folder, through `super::x` or `crate::...::x` uses."""
    cycles = []
    for d, _, files in os.walk(SRC):
        mods = {f[:-3]: os.path.join(d, f) for f in files if f.endswith(".rs") and f not in ("mod.rs", "lib.rs", "main.rs")}
        if len(mods) < 2:
            continue
        # The crate path of this folder, as `crate::a::b` (lib.rs re-exports keep root paths,
        # so the folder's last component is matched as well).
        last = os.path.basename(d)
        edges = {m: set() for m in mods}
        for m, path in mods.items():
            text = "\n".join(strip(l) for l in open(path, encoding="utf-8"))
            for other in mods:
                if other == m:
                    continue
                if re.search(r"\bsuper::(\{[^}]*\b" + other + r"\b|" + other + r"\b)", text) or re.search(
                    r"\b" + last + r"::(\{[^}]*\b" + other + r"\b|" + other + r"\b)", text
                ):
                    edges[m].add(other)
        # Tarjan-free: a cycle exists if some node reaches itself.
        for start in sorted(mods):
            seen, todo = set(), list(edges[start])
            while todo:
                x = todo.pop()
                if x == start:
                    cycles.append(f"{d}: {start} reaches itself ({' , '.join(sorted(edges[start]))})")
                    break
                if x not in seen:
                    seen.add(x)
                    todo.extend(edges[x])
    return cycles


def main():
    report = "--report" in sys.argv
    problems = []
    known_seen = set()
    for path in rust_files(SRC):
        n = sum(1 for _ in open(path, encoding="utf-8"))
        if n > FILE_LINES_MAX:
            problems.append(f"{path}: {n} lines (limit {FILE_LINES_MAX})")
        for name, start, length in long_functions(path):
            line = f"{path}:{start}: fn {name} is {length} lines (limit {FN_LINES_MAX})"
            if f"{path}: fn {name}" in KNOWN:
                known_seen.add(f"{path}: fn {name}")
                print(f"known (issue 22, left): {line}")
            else:
                problems.append(line)
    problems += [f"fixed, so remove it from KNOWN: {k}" for k in sorted(KNOWN - known_seen)]
    problems += [f"layer: {b}" for b in layer_breaches()]
    problems += [f"cycle: {c}" for c in sibling_cycles()]
    for p in problems:
        print(p)
    if problems and not report:
        print(f"shape: {len(problems)} breaches")
        sys.exit(1)
    print("shape: ok" if not problems else f"shape: {len(problems)} breaches (report only)")


if __name__ == "__main__":
    main()
