#!/usr/bin/env python3
"""The tuner's module graph: which top-level module of tuner/src uses which, and no cycle.

A top-level module is a file or folder directly under tuner/src (`engine`, `config.rs`...).
An edge A -> B is a `crate::B` path in A's code that the release binary builds: comments,
`#[cfg(test)]` items and the files that only tests declare do not count, since test code may
reach across layers to build fixtures. Prints the modules from the lowest layer up and exits
1, naming the cycle, when there is one.

Run: python3 scripts/tuner_layers.py [SRC]   (scripts/test-host.sh runs it; SRC defaults to
tuner/src next to this script)
"""
import re
import sys
from pathlib import Path

# Not layers: the crate root declares the modules, main is the binary's edge.
ROOTS = {"lib", "main"}

TEST_MOD = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;")
CRATE_PATH = re.compile(r"\bcrate::(\w+)")
CRATE_GROUP = re.compile(r"\bcrate::\{")


RAW_STRING = re.compile(r'b?r(#*)"')
CHAR = re.compile(r"'(?:\\.[^']*|[^\\'])'")


def strip_comments(src):
    """The source without comments (doc comments included), strings and char literals emptied."""
    out, i, n = [], 0, len(src)
    while i < n:
        raw = RAW_STRING.match(src, i) if src[i] in "br" and not ident_before(src, i) else None
        char = CHAR.match(src, i) if src[i] == "'" else None
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif raw:
            j = src.find('"' + raw.group(1), raw.end())
            out.append('""')
            i = n if j < 0 else j + 1 + len(raw.group(1))
        elif char:
            out.append("' '")
            i = char.end()
        elif src[i] == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""')
            i = j + 1
        else:
            out.append(src[i])
            i += 1
    return "".join(out)


def ident_before(src, i):
    """Whether @i is inside an identifier (the r of `for"` is not a raw string's)."""
    return i > 0 and (src[i - 1].isalnum() or src[i - 1] == "_")


def strip_test_items(src):
    """The source without each `#[cfg(test)]` item: up to its `;` or its matching `}`."""
    while True:
        k = src.find("#[cfg(test)]")
        if k < 0:
            return src
        j, depth = k + len("#[cfg(test)]"), 0
        while j < len(src):
            c = src[j]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            elif c == ";" and depth == 0:
                break
            j += 1
        src = src[:k] + src[j + 1:]


def group_names(src, start):
    """The module of each part of the `{...}` group that opens at @start."""
    parts, depth, part = [], 0, ""
    for c in src[start:]:
        if c == "{":
            depth += 1
            if depth == 1:
                continue
        elif c == "}":
            depth -= 1
            if depth == 0:
                break
        if depth == 1 and c == ",":
            parts.append(part)
            part = ""
        else:
            part += c
    parts.append(part)
    names = (re.match(r"\s*(\w+)", p) for p in parts)
    return [m.group(1) for m in names if m]


def test_only_files(src_dir):
    """Files that only a `#[cfg(test)] mod x;` declares, with everything under them."""
    out = set()
    for f in src_dir.rglob("*.rs"):
        here = f.parent if f.name in ("mod.rs", "lib.rs", "main.rs") else f.with_suffix("")
        for m in TEST_MOD.finditer(strip_comments(f.read_text())):
            for cand in (here / f"{m.group(1)}.rs", here / m.group(1)):
                if cand.is_file():
                    out.add(cand)
                elif cand.is_dir():
                    out.update(cand.rglob("*.rs"))
    return out


def graph(src_dir):
    """{module: set of modules it uses}, for every top-level module of @src_dir."""
    src_dir = Path(src_dir)
    skip = test_only_files(src_dir)
    edges = {}
    for f in sorted(src_dir.rglob("*.rs")):
        mod = f.relative_to(src_dir).parts[0].removesuffix(".rs")
        if mod in ROOTS:
            continue
        edges.setdefault(mod, set())
        if f in skip:
            continue
        code = strip_test_items(strip_comments(f.read_text()))
        used = {m.group(1) for m in CRATE_PATH.finditer(code)}
        for m in CRATE_GROUP.finditer(code):
            used.update(group_names(code, m.end() - 1))
        edges[mod].update(u for u in used if u != mod)
    return edges


def find_cycle(edges):
    """One cycle as a list of modules (first == last), or None."""
    colour, stack = {}, []

    def visit(u):
        colour[u] = 1
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if colour.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if not colour.get(v):
                found = visit(v)
                if found:
                    return found
        stack.pop()
        colour[u] = 2
        return None

    for u in sorted(edges):
        if not colour.get(u):
            found = visit(u)
            if found:
                return found
    return None


def layers(edges):
    """Modules from the lowest layer up: each after everything it uses."""
    level = {}

    def depth(u):
        if u not in level:
            level[u] = 0
            level[u] = 1 + max((depth(v) for v in edges.get(u, ()) if v in edges), default=-1)
        return level[u]

    for u in edges:
        depth(u)
    return sorted(edges, key=lambda u: (level[u], u)), level


def main(argv):
    src = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "tuner/src"
    edges = graph(src)
    cycle = find_cycle(edges)
    if cycle:
        print("tuner/src: import cycle: " + " -> ".join(cycle))
        return 1
    order, level = layers(edges)
    for u in order:
        uses = ", ".join(sorted(edges[u])) or "-"
        print(f"{level[u]:2} {u:10} uses {uses}")
    print(f"tuner/src: {len(edges)} modules, no import cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
