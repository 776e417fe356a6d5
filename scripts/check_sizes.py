#!/usr/bin/env python3
"""Size check (test.sh runs it): no function in src/ over 70 lines, no file in src/ over 600
lines of non-test code, except those listed in scripts/size-exceptions.txt, each at most the
size written there (a ratchet: an exception may shrink, never grow, and one that no longer
needs its line must lose it).

Counted without comments, blank lines or the file's `#[cfg(test)]` module; a function from
its `fn` line to its closing brace.

    scripts/check_sizes.py [--list]     (--list prints every function and file over the limits)

Prints each violation and exits 1; prints a summary and exits 0 when there is none.
"""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_layers  # noqa: E402

MAX_FN = 70
MAX_FILE = 600
EXCEPTIONS = Path(__file__).resolve().parent / "size-exceptions.txt"
FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+\"C\"\s+)?fn\s+(\w+)")


def code_lines(path):
    """The file's non-test code, comments and literals blanked, as lines."""
    return check_layers.code_of(path).split("\n")


def functions(lines):
    """(name, first line number, length in lines) of each function with a body."""
    out = []
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        braces, nesting, end = 0, 0, None
        for j in range(i, len(lines)):
            for ch in lines[j]:
                if ch in "([":
                    nesting += 1
                elif ch in ")]":
                    nesting -= 1
                elif ch == "{":
                    braces += 1
                elif ch == "}":
                    braces -= 1
                    if braces == 0:
                        end = j
                        break
                elif ch == ";" and braces == 0 and nesting == 0:
                    end = -1  # a declaration without a body
                    break
            if end is not None:
                break
        if end is not None and end >= 0:
            out.append((m.group(1), i + 1, end - i + 1))
    return out


def measure(src):
    """{key: size} over the limits: `path` for files, `path::name` for functions."""
    over = {}
    for path in sorted(Path(src).rglob("*.rs")):
        lines = code_lines(path)
        rel = str(path)
        n = sum(1 for line in lines if line.strip())
        if n > MAX_FILE:
            over[rel] = n
        for name, _, length in functions(lines):
            if length > MAX_FN:
                key = f"{rel}::{name}"
                over[key] = max(over.get(key, 0), length)
    return over


def read_exceptions(path):
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, size = line.rsplit(None, 1)
            out[key] = int(size)
    return out


def check(over, allowed):
    problems = []
    for key, size in sorted(over.items()):
        limit = MAX_FN if "::" in key else MAX_FILE
        if key not in allowed:
            problems.append(f"{key}: {size} lines, over the limit of {limit}")
        elif size > allowed[key]:
            problems.append(f"{key}: {size} lines, more than the {allowed[key]} of its exception")
    for key in sorted(set(allowed) - set(over)):
        problems.append(f"{key}: within the limit now; remove its line from {EXCEPTIONS.name}")
    return problems


def main():
    over = measure("src")
    if sys.argv[1:] == ["--list"]:
        for key, size in sorted(over.items()):
            print(f"{key} {size}")
        return 0
    problems = check(over, read_exceptions(EXCEPTIONS))
    for p in problems:
        print(p)
    if problems:
        print(f"check-sizes: {len(problems)} problem(s)")
        return 1
    print(f"check-sizes: no function over {MAX_FN} lines, no file over {MAX_FILE} but the {len(over)} exceptions, none grown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
