//! The C ABI from C: compile tests/c/test_capi.c against include/cloudvolume.h with
//! `cc -std=c11 -Wall -Wextra -Werror -pedantic`, link it against the library cargo built for
//! this test run, and run it on layers written by tests/support/layers.rs.
//!
//! `cargo test` builds the library's crate types (cdylib, staticlib, rlib) into the `deps`
//! directory that holds this test's executable, without copying them up to `target/<profile>`;
//! so the freshly built `deps/libcloudvolume.a` is linked (with the native libraries rustc lists
//! for it), or `deps/libcloudvolume.so` with an rpath when no static library is there.

#[path = "support/layers.rs"]
mod layers;

use std::path::{Path, PathBuf};
use std::process::Command;

use layers::{chunk_name, Chunks, Layer, Spec, TempDir};

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
fn link_args() -> Vec<String> {
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
            return vec![
                format!("-L{}", d.display()),
                format!("-Wl,-rpath,{}", d.display()),
                "-lcloudvolume".into(),
            ];
        }
    }
    panic!("no libcloudvolume.a or libcloudvolume.so in {dirs:?}: cargo should build them (crate-type)");
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compile(out_dir: &Path) -> PathBuf {
    let exe = out_dir.join("test_capi");
    let src = root().join("tests/c/test_capi.c");
    let mut cmd = Command::new("cc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .arg("-I")
        .arg(root().join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .args(link_args());
    let out = cmd.output().expect("run cc (is a C compiler on PATH?)");
    assert!(
        out.status.success(),
        "compiling {} failed: {cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// The layer test_capi.c expects: uint16, 2 channels, offset (-3,5,10), size (50,40,20),
/// chunks (16,16,8), 2 mips, raw and raw+gzip chunks mixed.
fn spec() -> Spec {
    Spec::new("uint16", [50, 40, 20], [16, 16, 8]).offset([-3, 5, 10]).channels(2).mips(2).chunks(Chunks::RawMixed)
}

#[test]
fn c_program_exercises_the_abi() {
    let layer = Layer::write(spec());
    assert_eq!(layer.spec.bounds(1), ([-2, 2, 10], [24, 23, 30]));
    let holed = Layer::write(spec());
    let (lo, hi) = holed.spec.cells(0)[0];
    assert_eq!((lo, hi), ([-3, 5, 10], [13, 21, 18]));
    holed.remove_chunk(0, lo, hi);
    let work = TempDir::new("capi-bin");
    let absent = format!("{}/absent-layer", work.url());

    let exe = compile(work.path());
    let out = Command::new(&exe)
        .arg(layer.url())
        .arg(holed.url())
        .arg(chunk_name(lo, hi))
        .arg(&absent)
        .output()
        .expect("run test_capi");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(0),
        "test_capi exited with {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(stdout.contains(" 0 failures"), "unexpected output:\n{stdout}\n{stderr}");
    println!("{stdout}");
}
