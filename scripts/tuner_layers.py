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
# `crate::x`, `super::super::x` (spaces allowed around `::`, `r#` taken off), or a `{` group.
PATH = re.compile(r"\b(crate|(?:super\s*::\s*)*super)\s*::\s*(?:r#)?(\w+|\{)")
# `pub use x::...;` in the crate root: a name reached as `crate::Name` lives in module x.
REEXPORT = re.compile(r"\bpub\s+use\s+(?:crate\s*::\s*)?(\w+)\s*::([^;]*);")


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
            i = block_comment_end(src, i)
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


def block_comment_end(src, i):
    """Where the block comment that opens at @i ends; Rust's block comments nest."""
    depth, n = 0, len(src)
    while i < n:
        if src.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif src.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def ident_before(src, i):
    """Whether @i is inside an identifier (the r of `for"` is not a raw string's)."""
    return i > 0 and (src[i - 1].isalnum() or src[i - 1] == "_")


def strip_test_items(src):
    """The source without each `#[cfg(test)]` item: up to its `;`, its matching `}`, or, for
    a field, variant or arm, the `,` or the enclosing `}` that ends it (which is kept)."""
    while True:
        k = src.find("#[cfg(test)]")
        if k < 0:
            return src
        j, depth, end = k + len("#[cfg(test)]"), 0, len(src)
        while j < len(src):
            c = src[j]
            if c in "{([":
                depth += 1
            elif c in "})]":
                if depth == 0:
                    end = j
                    break
                depth -= 1
                if depth == 0 and c == "}":
                    end = j + 1
                    break
            elif c in ";," and depth == 0:
                end = j + 1
                break
            j += 1
        src = src[:k] + src[end:]


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


def test_only_files(code):
    """Files that only a `#[cfg(test)] mod x;` declares, with everything under them; @code
    maps each file to its text without comments."""
    out = set()
    for f, text in code.items():
        here = f.parent if f.name in ("mod.rs", "lib.rs", "main.rs") else f.with_suffix("")
        for m in TEST_MOD.finditer(text):
            for cand in (here / f"{m.group(1)}.rs", here / m.group(1)):
                if cand.is_file():
                    out.add(cand)
                elif cand.is_dir():
                    out.update(cand.rglob("*.rs"))
    return out


def module_path(src_dir, f, included=None):
    """The module a file is: `engine/mod.rs` is [engine], `engine/tests.rs` [engine, tests];
    a file that `include!` pulls in is part of the module that includes it."""
    if included and f in included:
        return module_path(src_dir, included[f])
    parts = list(f.relative_to(src_dir).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "mod" else parts


def includes(texts):
    """{included file: the file whose `include!("...")` names it}; @texts maps each file to
    its text (as read: the name is a string, which the stripped text has emptied)."""
    out = {}
    for f, text in texts.items():
        for m in re.finditer(r'\binclude!\s*\(\s*"([^"]+)"', text):
            out[(f.parent / m.group(1)).resolve()] = f
    return {f: out[f.resolve()] for f in texts if f.resolve() in out}


def reexports(src_dir, code):
    """{name: module} for what the crate root re-exports (`pub use error::Error;`)."""
    out = {}
    for root in ("lib.rs", "main.rs"):
        for m in REEXPORT.finditer(code.get(src_dir / root, "")):
            for name in re.findall(r"\w+", m.group(2)):
                out.setdefault(name, m.group(1))
    return out


def used_modules(code, here):
    """Top-level modules named by the `crate::` and `super::` paths of @code, a file of
    module @here (a list of names)."""
    used = set()
    for m in PATH.finditer(code):
        base = [] if m.group(1) == "crate" else here[:-m.group(1).count("super")]
        names = group_names(code, m.end() - 1) if m.group(2) == "{" else [m.group(2)]
        for name in names:
            first = (base + [name])[0]
            if first not in ("self", "super", "crate"):
                used.add(first)
    return used


def graph(src_dir):
    """{module: set of modules it uses}, for every top-level module of @src_dir."""
    src_dir = Path(src_dir)
    files = sorted(src_dir.rglob("*.rs"))
    # Each file read and stripped once, for every question below.
    texts = {f: f.read_text() for f in files}
    code = {f: strip_comments(t) for f, t in texts.items()}
    skip = test_only_files(code)
    renamed = reexports(src_dir, code)
    included = includes(texts)
    modules = {module_path(src_dir, f, included)[0] for f in files} - ROOTS
    edges = {mod: set() for mod in modules}
    for f in files:
        here = module_path(src_dir, f, included)
        if here[0] in ROOTS or f in skip:
            continue
        for u in used_modules(strip_test_items(code[f]), here):
            u = u if u in modules else renamed.get(u)
            if u and u != here[0]:
                edges[here[0]].add(u)
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
