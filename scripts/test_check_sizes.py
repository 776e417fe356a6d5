#!/usr/bin/env python3
"""Tests of check_sizes.py on a made-up crate: a long function and a long file are found (a
`[u8; 4]` parameter and a declaration without a body do not confuse it, comments and the test
module do not count), an exception covers them at their size, a grown one and a stale one
fail. Run by test.sh (no root, no network)."""
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_sizes  # noqa: E402


def crate(files):
    root = Path(tempfile.mkdtemp()) / "src"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def body(n):
    return "".join(f"    let x{i} = {i};\n" for i in range(n))


def main():
    long_fn = "fn long(key: [u8; 4]) -> u8 {\n" + body(70) + "    0\n}\n"  # 73 lines
    short_fn = "trait T { fn decl(&self); }\n// " + "comment\n// " * 80 + "\nfn short() {\n" + body(60) + "}\n"
    big = "".join(f"pub const C{i}: u32 = {i};\n" for i in range(601))
    tests = "#[cfg(test)]\nmod tests {\n" + "fn t() {\n" + body(100) + "}\n}\n"
    root = crate({"a.rs": long_fn + short_fn + tests, "b.rs": big})
    over = check_sizes.measure(root)
    assert over == {f"{root}/a.rs::long": 73, f"{root}/b.rs": 601}, over
    allowed = {f"{root}/a.rs::long": 73, f"{root}/b.rs": 601}
    assert check_sizes.check(over, allowed) == []
    grown = dict(allowed, **{f"{root}/a.rs::long": 72})
    assert check_sizes.check(over, grown) == [f"{root}/a.rs::long: 73 lines, more than the 72 of its exception"]
    stale = dict(allowed, **{f"{root}/a.rs::short": 80})
    problems = check_sizes.check(over, stale)
    assert len(problems) == 1 and "a.rs::short: within the limit now" in problems[0], problems
    new = {f"{root}/b.rs": 601}
    assert check_sizes.check(over, new) == [f"{root}/a.rs::long: 73 lines, over the limit of 70"]
    print("check_sizes: 5 cases as expected")


if __name__ == "__main__":
    main()
