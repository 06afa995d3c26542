//! C programs against the library: compiled with `cc -std=c11 -Wall -Wextra -Werror -pedantic`
//! against include/cloudvolume.h and linked against the library cargo built for this test run.
//!
//! `cargo test` builds the library's crate types (cdylib, staticlib, rlib) into the `deps`
//! directory that holds the test's executable, without copying them up to `target/<profile>`;
//! so the freshly built `deps/libcloudvolume.a` is linked (with the native libraries rustc lists
//! for it), or `deps/libcloudvolume.so` with an rpath when no static library is there.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::env::crate_dir;

/// The directory of this test's executable (`target/<profile>/deps`) and its parent.
fn artifact_dirs() -> Vec<PathBuf> {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("exe dir").to_path_buf();
    let mut dirs = vec![deps.clone()];
    if let Some(p) = deps.parent() {
        dirs.push(p.to_path_buf());
    }
    dirs
}

/// How to link: the static library and its native dependencies, or the shared one.
pub fn link_args() -> Vec<String> {
    let dirs = artifact_dirs();
    for d in &dirs {
        let a = d.join("libcloudvolume.a");
        if a.is_file() {
            let mut v = vec![a.display().to_string()];
            // As printed by `rustc --print native-static-libs` for this crate on Linux.
            v.extend(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"].map(String::from));
            return v;
        }
    }
    for d in &dirs {
        if d.join("libcloudvolume.so").is_file() {
            return vec![format!("-L{}", d.display()), format!("-Wl,-rpath,{}", d.display()), "-lcloudvolume".into()];
        }
    }
    panic!("no libcloudvolume.a or libcloudvolume.so in {dirs:?}: cargo should build them (crate-type)");
}

/// Compile and link the C source `src` into the executable `exe`; panics with the compiler's
/// output when that fails.
pub fn compile(src: &Path, exe: &Path) {
    let mut cmd = Command::new("cc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(src)
        .arg("-o")
        .arg(exe)
        .args(link_args());
    let out = cmd.output().expect("run cc (is a C compiler on PATH?)");
    assert!(
        out.status.success(),
        "compiling {} failed: {cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
