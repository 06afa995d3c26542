//! The test environment: whether the reference tools are required, where the crate, the
//! reference layers and the venv are, the `cloudvolume` binary, a free loopback port.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `CV_REQUIRE_REFERENCE=1`: missing reference layers, venv or servers fail the tests instead of
/// skipping them.
pub fn required() -> bool {
    std::env::var("CV_REQUIRE_REFERENCE").is_ok_and(|v| v == "1")
}

/// The crate's root directory.
pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The reference layers of tests/reference/make_layers.py: `$CV_REFERENCE_DIR`, else
/// `<crate>/target/reference`.
pub fn reference_dir() -> PathBuf {
    std::env::var_os("CV_REFERENCE_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| crate_dir().join("target").join("reference"), PathBuf::from)
}

/// `<crate>/target/venv/bin/python`, whether it exists or not.
pub fn venv_python() -> PathBuf {
    crate_dir().join("target").join("venv").join("bin").join("python")
}

/// The venv's python (scripts/setup.sh makes it), or None after a notice that `what` is
/// skipped. Missing under `CV_REQUIRE_REFERENCE=1`: a panic.
pub fn python(what: &str) -> Option<PathBuf> {
    let py = venv_python();
    if py.is_file() {
        return Some(py);
    }
    assert!(!required(), "CV_REQUIRE_REFERENCE=1 but {} is missing: run scripts/setup.sh", py.display());
    eprintln!("NOTICE: {} missing; {what} skipped (set CV_REQUIRE_REFERENCE=1 to fail)", py.display());
    None
}

/// The `cloudvolume` command line built for this test run.
pub fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cloudvolume"))
}

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind a free port")
}
