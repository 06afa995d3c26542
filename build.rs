//! Build checks: libjpeg-turbo's SIMD code (through mozjpeg-sys) needs NASM on x86; without it
//! the library still builds, with JPEG several times slower, and mozjpeg-sys's own warning is
//! hidden by cargo (it is a dependency's). Say so loudly; `CLOUDVOLUME_REQUIRE_SIMD=1` makes it
//! an error.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CLOUDVOLUME_REQUIRE_SIMD");
    println!("cargo:rerun-if-env-changed=PATH");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" && arch != "x86" {
        return;
    }
    let nasm = std::process::Command::new("nasm").arg("-v").output();
    let ok = matches!(&nasm, Ok(out) if out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("NASM version 0."));
    if ok {
        return;
    }
    let why = "nasm (2.x) is not on PATH: libjpeg-turbo is built without its SIMD code and JPEG chunks decode and \
               encode several times slower. Install it (Debian/Ubuntu: apt-get install nasm; macOS: brew install nasm) \
               and rebuild (cargo clean -p mozjpeg-sys)";
    if std::env::var_os("CLOUDVOLUME_REQUIRE_SIMD").is_some_and(|v| v != "0") {
        panic!("{why}");
    }
    println!("cargo:warning={why}");
}
