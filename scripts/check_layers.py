#!/usr/bin/env python3
"""Import structure check (test.sh runs it): no circle and no upward arrow.

Reads every `crate::...` path of a crate's non-test code (use lines and paths written inline),
resolves each to the file that defines the item (through a parent's `pub use` re-exports,
which are a facade, not a dependency), and checks two things:

1. No circle: no two files of the crate reach each other through such paths.
2. No upward arrow: a module whose doc comment holds a layer table (the line
   "a module only uses the ones below it" followed by a Markdown table, top row first) lists
   each child module in the first column of one row; a child may use the children of its own
   row or of the rows below it, never of a row above. Every child must be listed.

    scripts/check_layers.py [CRATE_SRC_DIR]...      (default: src packetdrill/src)

Prints each violation with the lines that make it and exits 1; prints a summary and exits 0
when there is none.
"""

import re
import sys
from pathlib import Path

MARKER = "a module only uses the ones below it"
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
INLINE = re.compile(r"(?<![A-Za-z0-9_:])((?:crate|super|self)(?:::" + IDENT + r")+)")


def code_of(path):
    """The file's code before its test module, with comments and literals blanked."""
    text = strip(path.read_text())
    cut = re.search(r"^\s*#\[cfg\(test\)\]\s*\n\s*(pub(\(crate\))?\s+)?mod\s+" + IDENT, text, re.M)
    return text[: cut.start()] if cut else text


def strip(text):
    """Comments, strings and char literals blanked (newlines kept, so line numbers hold)."""
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif m := re.compile(r'b?r(#*)"').match(text, i):
            end = text.find('"' + m.group(1), m.end())
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif m := re.compile(r"b?'(\\.[^']*|[^'\\])'").match(text, i):
            out.append("' '")
            i = m.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class Crate:
    def __init__(self, src):
        self.src = src
        root = src / "lib.rs" if (src / "lib.rs").exists() else src / "main.rs"
        self.files = {}  # module path (tuple) -> file
        self._walk((), root)
        self.exports = {m: self._reexports(m) for m in self.files}

    def _walk(self, module, path):
        self.files[module] = path
        base = path.parent if path.name in ("lib.rs", "main.rs", "mod.rs") else path.with_suffix("")
        for m in re.finditer(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+(" + IDENT + r")\s*;", code_of(path), re.M):
            name = m.group(1)
            for child in (base / f"{name}.rs", base / name / "mod.rs"):
                if child.exists():
                    self._walk(module + (name,), child)
                    break

    def _reexports(self, module):
        """Item name -> absolute path, for the `pub use` lines of a module's file."""
        out = {}
        for stmt in re.findall(r"^\s*pub(?:\([a-z]+\))?\s+use\s+([^;]+);", code_of(self.files[module]), re.M):
            for path in expand(stmt):
                if path[-1] == "*":
                    continue
                absolute = self.absolute(module, path)
                if absolute:
                    out[path[-1] if path[-1] != "self" else path[-2]] = absolute
        return out

    def absolute(self, module, path):
        if path[0] == "crate":
            return tuple(path[1:])
        if path[0] == "self":
            return module + tuple(path[1:])
        if path[0] == "super":
            return module[:-1] + tuple(path[1:])
        if module + (path[0],) in self.files:
            return module + tuple(path)
        return None  # an external crate or a local item

    def resolve(self, path, seen=()):
        """The module whose file defines what `path` (absolute, without `crate`) names."""
        path = tuple(path)
        for n in range(len(path), -1, -1):
            module = path[:n]
            if module not in self.files:
                continue
            rest = path[n:]
            if rest and rest[0] in self.exports[module] and (module, rest[0]) not in seen:
                target = self.exports[module][rest[0]] + rest[1:]
                return self.resolve(target, seen + ((module, rest[0]),))
            return module
        return ()

    def edges(self):
        """(from module, to module) -> the first line that makes the arrow."""
        out = {}
        for module, path in self.files.items():
            code = code_of(path)
            paths = []
            for m in re.finditer(r"(\bpub(?:\([a-z]+\))?\s+)?\buse\s+([^;]+);", code):
                if m.group(1):
                    continue  # a facade re-export, followed through by resolve()
                for p in expand(m.group(2)):
                    a = self.absolute(module, p)
                    if a is not None:
                        paths.append((a, m.start()))
            for m in INLINE.finditer(code):
                if not re.search(r"\buse\s+[^;]*$", code[: m.start()].rsplit(";", 1)[-1]):
                    paths.append((self.absolute(module, m.group(1).split("::")), m.start()))
            for a, at in paths:
                target = self.resolve(a)
                if target == module or is_ancestor(module, target) and target != ():
                    continue
                if is_ancestor(target, module):
                    continue  # a child naming its parent's items resolved to the parent file
                line = code.count("\n", 0, at) + 1
                out.setdefault((module, target), f"{path.relative_to(self.src.parent)}:{line}")
        return out


def is_ancestor(a, b):
    return len(a) < len(b) and b[: len(a)] == a


def expand(tree):
    """`a::{b, c::{d, e}}` -> [[a, b], [a, c, d], [a, c, e]]."""
    tree = re.sub(r"\s+as\s+" + IDENT, "", tree)
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix, s):
        depth, start, parts = 0, 0, []
        for i, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:i])
                start = i + 1
        parts.append(s[start:])
        for part in filter(None, parts):
            if "{" in part:
                head, inner = part.split("{", 1)
                walk(prefix + [x for x in head.split("::") if x], inner[: inner.rindex("}")])
            else:
                out.append(prefix + [x for x in part.split("::") if x])

    walk([], tree)
    return [p for p in out if p]


def layer_tables(crate):
    """module -> [set of child names per row, top row first], for each module with a table."""
    tables = {}
    for module, path in crate.files.items():
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if MARKER in line:
                rows = []
                for row in lines[i + 1 :]:
                    row = row.lstrip("/!").strip()
                    if not row.startswith("|"):
                        if rows:
                            break
                        continue
                    first = row.split("|")[1]
                    names = set(re.findall(r"`(" + IDENT + r")`", first))
                    if names:
                        rows.append(names)
                tables[module] = rows
    return tables


def sccs(nodes, edges):
    graph = {n: set() for n in nodes}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def name(module):
    return "::".join(("crate",) + module)


def check(src):
    crate = Crate(src)
    edges = crate.edges()
    problems = []
    for parent in crate.files:
        depth = len(parent)
        arrows = {}
        for (a, b), at in sorted(edges.items()):
            if len(a) > depth and len(b) > depth and a[:depth] == parent == b[:depth] and a[depth] != b[depth]:
                arrows.setdefault((a[: depth + 1], b[: depth + 1]), []).append(f"{name(a)} -> {name(b)}  ({at})")
        for comp in sccs([], arrows):
            members = set(comp)
            lines = [f"    {line}" for (a, b), made in sorted(arrows.items()) if a in members and b in members for line in made]
            problems.append(f"{src}: import circle among {', '.join(name(m) for m in comp)}:\n" + "\n".join(lines))
    tables = layer_tables(crate)
    for parent, rows in tables.items():
        children = {m[-1] for m in crate.files if len(m) == len(parent) + 1 and m[: len(parent)] == parent}
        listed = set().union(*rows) if rows else set()
        for missing in sorted(children - listed):
            problems.append(f"{src}: {name(parent)}'s layer table does not list `{missing}`")
        for extra in sorted(listed - children):
            problems.append(f"{src}: {name(parent)}'s layer table lists `{extra}`, which is no module")
        row_of = {n: r for r, names in enumerate(rows) for n in names}
        depth = len(parent)
        for (a, b), at in sorted(edges.items()):
            if len(a) <= depth or len(b) <= depth or a[:depth] != parent or b[:depth] != parent:
                continue
            ca, cb = a[depth], b[depth]
            if ca != cb and ca in row_of and cb in row_of and row_of[cb] < row_of[ca]:
                problems.append(f"{src}: upward arrow {name(a)} -> {name(b)} ({at}): `{cb}` is above `{ca}` in {name(parent)}'s layer table")
    return crate, edges, tables, problems


def main():
    dirs = [Path(d) for d in sys.argv[1:]] or [Path("src"), Path("packetdrill/src")]
    problems = []
    summary = []
    for d in dirs:
        crate, edges, tables, p = check(d)
        problems += p
        summary.append(f"{d}: {len(crate.files)} files, {len(edges)} arrows, {len(tables)} layer tables")
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} problem(s)")
        return 1
    print("check-layers: no circle, no upward arrow (" + "; ".join(summary) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
