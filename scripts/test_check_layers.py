#!/usr/bin/env python3
"""Tests of check_layers.py on made-up crates: a layered crate passes; an upward arrow, a
circle made by an inline `super::` path, and a module missing from its layer table fail;
facade re-exports, comments, strings and test modules make no arrow. Run by test.sh (no root,
no network)."""
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_layers  # noqa: E402

LIB = """//! Top down (a module only uses the ones below it):
//!
//! | module | what |
//! | --- | --- |
//! | `app` | on top |
//! | [`core`], `util` | below |
pub mod app;
pub mod core;
mod util;
"""

CORE = """//! The core.
pub mod parts;
pub use parts::Thing;
"""

PARTS = """use crate::util::helper;
/// A thing.
pub struct Thing;
pub fn make() -> Thing { helper(); Thing }
"""

UTIL = """// A comment naming crate::app::Handle is no arrow, nor is "crate::app::Handle".
pub fn helper() {}

#[cfg(test)]
mod tests {
    use crate::app::Handle;
}
"""

APP = """use crate::core::Thing;
pub struct Handle(pub Thing);
"""


def crate(files):
    root = Path(tempfile.mkdtemp()) / "src"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def problems(files):
    return check_layers.check(crate(files))[3]


def main():
    good = {"lib.rs": LIB, "core/mod.rs": CORE, "core/parts.rs": PARTS, "util.rs": UTIL,
            "app.rs": APP}
    assert problems(good) == [], problems(good)
    _, edges, tables, _ = check_layers.check(crate(good))
    # app's `crate::core::Thing` is followed through core's facade to the file defining it.
    assert (("app",), ("core", "parts")) in edges, edges
    assert (("core", "parts"), ("util",)) in edges, edges
    assert tables[()] == [{"app"}, {"core", "util"}], tables

    upward = dict(good, **{"util.rs": "pub fn helper() { let _ = crate::app::Handle; }\n"})
    found = problems(upward)
    assert any("upward arrow crate::util -> crate::app" in p for p in found), found

    circle = dict(good, **{
        "core/mod.rs": CORE + "pub mod other;\n",
        "core/other.rs": "pub fn f() { super::parts::make(); }\n",
        "core/parts.rs": PARTS + "pub fn g() { super::other::f() }\n",
    })
    found = problems(circle)
    assert any("import circle among crate::core::other, crate::core::parts" in p for p in found), found
    assert any("src/core/other.rs:1" in p for p in found), found

    unlisted = dict(good, **{"lib.rs": LIB + "pub mod extra;\n", "extra.rs": "\n"})
    found = problems(unlisted)
    assert found == ["%s: crate's layer table does not list `extra`" % found[0].split(":")[0]], found

    print("check_layers: 4 cases as expected")


if __name__ == "__main__":
    main()
