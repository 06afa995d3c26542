//! The checked-in C header must equal what cbindgen generates from the source now.
//! `UPDATE_HEADER=1 cargo test --test header` rewrites it.

use std::path::Path;

fn generate() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut config = cbindgen::Config::from_file(Path::new(root).join("cbindgen.toml")).expect("cbindgen.toml");
    let (major, minor, patch) =
        (env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"), env!("CARGO_PKG_VERSION_PATCH"));
    config.after_includes = Some(format!(
        "\n#define CLOUDVOLUME_VERSION \"{}\"\n#define CLOUDVOLUME_VERSION_MAJOR {major}\n\
         #define CLOUDVOLUME_VERSION_MINOR {minor}\n#define CLOUDVOLUME_VERSION_PATCH {patch}\n",
        env!("CARGO_PKG_VERSION")
    ));
    let mut out = Vec::new();
    // Every file of src/ffi/ (mod.rs first, then the others by name) feeds the header.
    let dir = Path::new(root).join("src/ffi");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("src/ffi")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs") && !p.ends_with("mod.rs"))
        .collect();
    files.sort();
    let mut builder = cbindgen::Builder::new().with_config(config).with_src(dir.join("mod.rs"));
    for f in files {
        builder = builder.with_src(f);
    }
    builder.generate().expect("cbindgen generates the header").write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

#[test]
fn header_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/cloudvolume.h");
    let now = generate();
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&path, &now).expect("write include/cloudvolume.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == now,
        "include/cloudvolume.h is stale: regenerate it with `UPDATE_HEADER=1 cargo test --test header`"
    );
}

#[test]
fn header_declares_the_core_calls() {
    let h = generate();
    for sig in [
        "cv_status cv_open(const char *cloudpath, const char *options_json, cv_volume **out)",
        "void cv_free(cv_volume *vol)",
        "const char *cv_last_error(void)",
        "typedef struct cv_volume cv_volume;",
        "typedef int32_t cv_status;",
        "#define CV_OK 0",
        "cv_status cv_has_data(const cv_volume *vol, uint32_t mip, int32_t *out);",
    ] {
        assert!(h.contains(sig), "header lacks `{sig}`");
    }
    let squashed: String = h.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(squashed.contains(
        "cv_status cv_cutout_into(const cv_volume *vol, uint32_t mip, const int64_t *lo, const int64_t *hi, void *buf, size_t buf_len)"
    ));
}
