//! The C ABI from C: compile tests/c/test_capi.c against include/cloudvolume.h with
//! `cc -std=c11 -Wall -Wextra -Werror -pedantic`, link it against the library cargo built for
//! this test run (tests/support/cc.rs), and run it on layers written by tests/support/layers.rs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::env::crate_dir;
use support::files::TempDir;
use support::layers::{chunk_name, Chunks, Layer, Spec};

fn compile(out_dir: &Path) -> PathBuf {
    let exe = out_dir.join("test_capi");
    support::cc::compile(&crate_dir().join("tests/c/test_capi.c"), &exe);
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
