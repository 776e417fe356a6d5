//! Compiles `bpf/xdptcp.bpf.c` with clang and generates its libbpf-rs skeleton into OUT_DIR
//! (the libbpf-bootstrap `examples/rust/xdp` way).

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "bpf/xdptcp.bpf.c";

/// The multiarch include dir (`/usr/include/x86_64-linux-gnu`) holds `<asm/types.h>`, which
/// the kernel UAPI headers pull in; clang targeting BPF does not search it by itself.
fn multiarch_include() -> Option<PathBuf> {
    let out = Command::new("gcc").arg("-dumpmachine").output().ok()?;
    let triple = String::from_utf8(out.stdout).ok()?;
    let dir = Path::new("/usr/include").join(triple.trim());
    dir.is_dir().then_some(dir)
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"))
        .join("xdptcp.skel.rs");
    // `h + 1 > data_end` (typed header vs void pointer) is the idiom of every XDP parser.
    let mut args: Vec<OsString> = vec![
        "-Wall".into(),
        "-Werror".into(),
        "-Wno-compare-distinct-pointer-types".into(),
    ];
    if let Some(dir) = multiarch_include() {
        args.push("-I".into());
        args.push(dir.into_os_string());
    }
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args(args)
        .build_and_generate(&out)
        .expect("compiling bpf/xdptcp.bpf.c (is clang installed? see scripts/install-deps.sh)");
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=bpf/siphash.h");
    println!("cargo:rerun-if-changed=build.rs");
}
