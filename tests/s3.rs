//! S3 against moto's server with signature checking on (`tests/support/moto.rs`): signed reads of
//! layers cloud-volume and tensorstore wrote (sharded ones through signed Range requests),
//! writes, deletes, credentials from secret files, the `secrets` option and the environment in
//! cloud-files' order, aliases, refused credentials (`CV_ERR_AUTH`, naming the bucket and no
//! secret), the ETag check (a proxy that flips a byte of a body but keeps the ETag), and
//! `has_data` as signed ListObjectsV2 requests (compared with cloud-volume's answers).
//!
//! Needs `target/venv` with moto (scripts/setup.sh); without it the tests print a notice and
//! pass, unless `CV_REQUIRE_REFERENCE=1`. The reference layers (`target/reference`, or
//! `$CV_REFERENCE_DIR`) are needed for the read test alone, on the same terms.
//!
//! The tests never read the real `~/.cloudvolume` or `~/.cloudfiles`: `CLOUD_VOLUME_DIR` and
//! `CLOUD_FILES_DIR` point at empty directories, and the `AWS_*` variables are removed, before
//! the first test runs; tests that change them hold [`ENV`].

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use cloudvolume::cloudpath::CloudPath;
use cloudvolume::ffi::CV_ERR_AUTH;
use cloudvolume::store::{self, ContentEncoding, Store};
use cloudvolume::{Bbox, ErrorKind, Options, Volume};
use serde_json::{json, Value};
use support::cabi::open;
use support::env::{reference_dir, required};
use support::moto::{self, Keys, Moto, Setup, Tamper};

/// Reference layers uploaded to the bucket `cv-read` under their manifest paths.
const LAYERS: &[&str] =
    &["cv/raw_uint8_c1", "cv/sharded_raw_uint16_c1", "ts/sharded_cseg_uint64_c1_murmur", "ts/raw_uint64_c2"];

const BUCKETS: &[&str] = &["cv-read", "cv-write", "cv-etag", "cv-keys", "cv-alias", "cv-list", "cv-crc"];

/// Serializes the tests that change environment variables.
static ENV: Mutex<()> = Mutex::new(());

fn env_lock() -> MutexGuard<'static, ()> {
    ENV.lock().unwrap_or_else(|p| p.into_inner())
}

fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("s3-test-{}", std::process::id()))
}

/// The empty secret places every test starts from.
fn empty_home() -> PathBuf {
    scratch().join("empty")
}

/// Point the secret lookup at empty directories and drop the `AWS_*` variables.
fn isolate_env() {
    let home = empty_home();
    std::fs::create_dir_all(&home).unwrap();
    std::env::set_var("CLOUD_VOLUME_DIR", &home);
    std::env::set_var("CLOUD_FILES_DIR", &home);
    for v in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION"] {
        std::env::remove_var(v);
    }
}

/// Remove the scratch directories of earlier runs that have ended.
fn remove_stale_scratch() {
    let Ok(dir) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else { return };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("s3-test-") {
            if pid != std::process::id().to_string() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// The shared moto server, or None (after a notice) when moto is not installed.
fn server() -> Option<&'static Moto> {
    static M: OnceLock<Option<Moto>> = OnceLock::new();
    M.get_or_init(|| {
        remove_stale_scratch();
        isolate_env();
        if !moto::available() {
            assert!(!required(), "CV_REQUIRE_REFERENCE=1 but target/venv has no moto (run scripts/setup.sh)");
            eprintln!("SKIP: no moto in target/venv (run scripts/setup.sh); S3 tests skipped");
            return None;
        }
        let refdir = reference_dir();
        let uploads = if refdir.join("manifest.json").is_file() {
            LAYERS.iter().map(|l| ("cv-read".to_string(), (*l).to_string(), refdir.join(l))).collect()
        } else {
            Vec::new()
        };
        let setup = Setup { buckets: BUCKETS.iter().map(|b| (*b).to_string()).collect(), uploads };
        Some(Moto::start(&setup))
    })
    .as_ref()
}

fn options(v: &Value) -> Options {
    Options::parse(Some(&v.to_string())).unwrap_or_else(|e| panic!("options {v}: {e}"))
}

/// Signed by `keys`, at `endpoint`, failing fast.
fn opts_with(endpoint: &str, keys: Option<&Keys>) -> Value {
    let mut v = json!({"s3_endpoint": endpoint, "max_attempts": 3, "retry_budget": 20, "timeout": 20});
    if let Some(k) = keys {
        v["secrets"] = k.secret_json();
    }
    v
}

fn open_store(url: &str, o: &Value) -> cloudvolume::Result<std::sync::Arc<dyn Store>> {
    let opts = options(o);
    let path = CloudPath::parse(url, &opts.store)?;
    store::open(&path, &opts.store)
}

fn get(url: &str, key: &str, o: &Value) -> cloudvolume::Result<Option<Vec<u8>>> {
    Ok(open_store(url, o)?.get(key)?.map(|obj| obj.bytes))
}

/// No secret of `keys` in `text`.
fn assert_clean(text: &str, keys: &Keys) {
    assert!(!text.contains(&keys.id), "the access key id leaked: {text}");
    assert!(!text.contains(&keys.secret), "the secret leaked: {text}");
    if let Some(t) = &keys.token {
        assert!(!text.contains(t.as_str()), "the session token leaked: {text}");
    }
}

fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Reads

#[test]
fn reads_reference_layers_with_signed_requests() {
    let Some(m) = server() else { return };
    let refdir = reference_dir();
    let manifest = match std::fs::read_to_string(refdir.join("manifest.json")) {
        Ok(t) => t,
        Err(e) => {
            assert!(!required(), "CV_REQUIRE_REFERENCE=1 but the reference layers are missing: {e}");
            eprintln!("SKIP: no reference layers at {}; S3 read test skipped", refdir.display());
            return;
        }
    };
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    let mut checked = 0;
    for name in LAYERS {
        let layer = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["path"] == *name)
            .unwrap_or_else(|| panic!("{name} not in the manifest"));
        for b in layer["boxes"].as_array().unwrap() {
            let Some(expected) = b["expected"].as_str() else { continue };
            let mut o = opts_with(&m.endpoint(), Some(&m.user));
            let mut usable = true;
            for (k, v) in b["options"].as_object().into_iter().flatten() {
                match k.as_str() {
                    "fill_missing" | "bounded" | "background_color" => o[k] = v.clone(),
                    _ => usable = false,
                }
            }
            if !usable {
                continue;
            }
            let vol =
                Volume::open(&format!("s3://cv-read/{name}"), options(&o)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let t = |k: &str| -> [i64; 3] {
                let a = b[k].as_array().unwrap();
                [a[0].as_i64().unwrap(), a[1].as_i64().unwrap(), a[2].as_i64().unwrap()]
            };
            let bbox = Bbox::new(t("lo"), t("hi"));
            let mip = b["mip"].as_u64().unwrap() as u32;
            let got = vol.cutout(mip, &bbox).unwrap_or_else(|e| panic!("{name} mip {mip} {bbox:?}: {e}"));
            let want = std::fs::read(refdir.join(expected)).unwrap();
            assert!(got == want, "{name} mip {mip} {bbox:?}: bytes differ from {expected}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} boxes checked");
}

// ------------------------------------------------------------------------------------------------
// Writes and deletes

fn info_json(sharded: bool) -> String {
    let mut scale = json!({
        "key": "4_4_40", "size": [64, 48, 20], "voxel_offset": [-5, 3, 1], "resolution": [4, 4, 40],
        "chunk_sizes": [[16, 16, 10]], "encoding": "raw",
    });
    if sharded {
        scale["sharding"] = json!({
            "@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0, "hash": "identity",
            "minishard_bits": 1, "shard_bits": 2, "minishard_index_encoding": "gzip", "data_encoding": "gzip",
        });
    }
    json!({"type": "image", "data_type": "uint16", "num_channels": 1, "scales": [scale]}).to_string()
}

#[test]
fn writes_read_back_and_deletes() {
    let Some(m) = server() else { return };
    let whole = Bbox::new([-5, 3, 1], [59, 51, 21]);
    let data = pattern(64 * 48 * 20 * 2, 7);
    for (name, compress, sharded) in
        [("gz", json!(null), false), ("plain", json!(false), false), ("sharded", json!(null), true)]
    {
        let url = format!("s3://cv-write/{name}");
        let mut o = opts_with(&m.endpoint(), Some(&m.user));
        o["compress"] = compress;
        let vol =
            Volume::create(&url, &info_json(sharded), options(&o)).unwrap_or_else(|e| panic!("{name}: create: {e}"));
        vol.write_from(0, &whole, &data).unwrap_or_else(|e| panic!("{name}: write: {e}"));
        let back = Volume::open(&url, options(&o)).unwrap();
        assert!(back.cutout(0, &whole).unwrap() == data, "{name}: read back differs");
        let part = Bbox::new([0, 10, 2], [40, 30, 19]);
        let got = back.cutout(0, &part).unwrap();
        let mut want = Vec::new();
        for z in 2..19i64 {
            for y in 10..30i64 {
                let row = (((z - 1) * 48 + (y - 3)) * 64 + 5) as usize * 2;
                want.extend_from_slice(&data[row..row + 80]);
            }
        }
        assert!(got == want, "{name}: partial read differs");
        if sharded {
            continue;
        }
        // The chunks are objects; a deleted box's chunks are gone and read as background.
        let st = open_store(&url, &o).unwrap();
        let key = "4_4_40/11-27_3-19_1-11";
        assert!(st.exists(key).unwrap(), "{name}: {key} missing");
        let obj = st.get(key).unwrap().unwrap();
        let want_enc = if name == "gz" { ContentEncoding::Gzip } else { ContentEncoding::Identity };
        assert_eq!(obj.encoding, want_enc, "{name}");
        let dbox = Bbox::new([11, 3, 1], [43, 35, 11]);
        back.delete_box(0, &dbox).unwrap();
        assert!(!st.exists(key).unwrap(), "{name}: {key} survived the delete");
        assert!(st.exists("4_4_40/43-59_3-19_1-11").unwrap(), "{name}: a chunk outside the box went");
        let mut fo = o.clone();
        fo["fill_missing"] = json!(true);
        let after = Volume::open(&url, options(&fo)).unwrap().cutout(0, &dbox).unwrap();
        assert!(after.iter().all(|&b| b == 0), "{name}: deleted box not background");
        let e = Volume::open(&url, options(&o)).unwrap().cutout(0, &dbox).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }
}

// ------------------------------------------------------------------------------------------------
// Refused credentials

#[test]
fn refused_credentials_are_auth_errors_naming_the_bucket_and_no_secret() {
    let Some(m) = server() else { return };
    let ep = m.endpoint();
    let wrong_secret =
        Keys { id: m.user.id.clone(), secret: "WrongSecretWrongSecretWrongSecret0000000".into(), token: None };
    let unknown_id = Keys { id: "AKIAUNKNOWNUNKNOWN00".into(), secret: m.user.secret.clone(), token: None };
    let wrong_token = Keys { token: Some("FQoGZXIvYXdzEWrongToken".into()), ..m.session.clone() };
    let url = "s3://cv-keys/layer";
    // Something to refuse access to.
    open_store(url, &opts_with(&ep, Some(&m.user)))
        .unwrap()
        .put("info", info_json(false).as_bytes(), ContentEncoding::Identity, "application/json")
        .unwrap();
    for (what, keys, code) in [
        ("wrong secret", &wrong_secret, "SignatureDoesNotMatch"),
        ("unknown key id", &unknown_id, "InvalidAccessKeyId"),
        ("no permission", &m.nobody, "AccessDenied"),
        ("wrong session token", &wrong_token, "InvalidToken"),
    ] {
        let o = opts_with(&ep, Some(keys));
        let opts = options(&o);
        let e = Volume::open(url, opts.clone()).err().expect("refused");
        assert_eq!(e.kind(), ErrorKind::Auth, "{what}: {e}");
        let msg = e.message();
        assert!(msg.contains("cv-keys") && msg.contains(code), "{what}: {msg}");
        assert!(!msg.contains("attempts"), "{what}: refused credentials were retried: {msg}");
        for k in [keys, &m.user, &m.session] {
            assert_clean(msg, k);
            assert_clean(&format!("{e:?}"), k);
            assert_clean(&format!("{opts:?}"), k);
        }
        // Writes and deletes are refused the same way.
        let st = open_store(url, &o).unwrap();
        let e = st.put("x", b"1", ContentEncoding::Identity, "application/octet-stream").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth, "{what}: PUT: {e}");
        assert_clean(e.message(), keys);
        let e = st.delete("info").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth, "{what}: DELETE: {e}");
    }
    // Through the C ABI (a refused cv_open writes no handle).
    let (st, msg) = open(url, &opts_with(&ep, Some(&wrong_secret))).err().expect("refused");
    assert_eq!(st, CV_ERR_AUTH);
    assert!(msg.contains("cv-keys"), "{msg}");
    assert_clean(&msg, &wrong_secret);
    assert_clean(&msg, &m.user);
    open(url, &opts_with(&ep, Some(&m.user))).expect("the right keys open the layer");
}

// ------------------------------------------------------------------------------------------------
// What goes on the wire

#[test]
fn requests_are_signed_as_configured_and_unsigned_when_anonymous() {
    let Some(m) = server() else { return };
    let proxy = Tamper::start(([127, 0, 0, 1], m.port).into());
    let ep = proxy.endpoint();
    let url = "s3://cv-keys/wire";
    let body = b"0123456789".to_vec();
    let st = open_store(url, &opts_with(&ep, Some(&m.user))).unwrap();
    st.put("obj", &body, ContentEncoding::Identity, "application/octet-stream").unwrap();
    assert_eq!(st.get("obj").unwrap().unwrap().bytes, body);
    assert_eq!(st.get_range("obj", 2, 5).unwrap().unwrap(), b"234");
    assert!(st.exists("obj").unwrap());
    assert!(!st.exists("nothing").unwrap());
    assert!(st.get("nothing").unwrap().is_none());
    let seen = proxy.take();
    assert_eq!(
        seen.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(),
        ["PUT", "GET", "GET", "HEAD", "HEAD", "GET"]
    );
    for s in &seen {
        let auth = s.header("authorization").unwrap_or_else(|| panic!("{} unsigned", s.method));
        assert!(auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={}/", m.user.id)), "{auth}");
        assert!(auth.contains("/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-"), "{auth}");
        assert!(s.header("x-amz-date").is_some_and(|d| d.len() == 16 && d.ends_with('Z')));
        assert!(s.header("x-amz-security-token").is_none());
    }
    let put = &seen[0];
    // SHA-256 of the body, and cloud-files' canned ACL.
    assert_eq!(
        put.header("x-amz-content-sha256"),
        Some("84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882")
    );
    assert_eq!(put.header("x-amz-acl"), Some("bucket-owner-full-control"));
    assert!(put
        .header("authorization")
        .unwrap()
        .contains("SignedHeaders=host;x-amz-acl;x-amz-content-sha256;x-amz-date,"));
    assert_eq!(seen[2].header("range"), Some("bytes=2-4"));

    // The region: the option, then the secret's.
    let mut o = opts_with(&ep, Some(&m.user));
    o["s3_region"] = json!("eu-west-1");
    assert_eq!(get(url, "obj", &o).unwrap().unwrap(), body);
    let mut sec = m.user.secret_json();
    sec["AWS_DEFAULT_REGION"] = json!("ap-south-1");
    let mut o2 = opts_with(&ep, None);
    o2["secrets"] = sec;
    assert_eq!(get(url, "obj", &o2).unwrap().unwrap(), body);
    o2["s3_region"] = json!("us-west-2");
    assert_eq!(get(url, "obj", &o2).unwrap().unwrap(), body);
    let seen = proxy.take();
    let scopes: Vec<bool> = ["/eu-west-1/s3/", "/ap-south-1/s3/", "/us-west-2/s3/"]
        .iter()
        .zip(&seen)
        .map(|(r, s)| s.header("authorization").unwrap().contains(r))
        .collect();
    assert_eq!(scopes, [true, true, true], "{seen:?}");

    // Temporary credentials carry their token.
    assert_eq!(get(url, "obj", &opts_with(&ep, Some(&m.session))).unwrap().unwrap(), body);
    let seen = proxy.take();
    assert_eq!(seen[0].header("x-amz-security-token"), m.session.token.as_deref());
    assert!(seen[0].header("authorization").unwrap().contains("x-amz-security-token"));

    // anonymous: nothing signed, even with secrets at hand; moto (enforcing signatures) refuses.
    let mut o = opts_with(&ep, Some(&m.user));
    o["anonymous"] = json!(true);
    let e = get(url, "obj", &o).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(e.message().contains("cv-keys"), "{e}");
    let seen = proxy.take();
    assert!(
        !seen.is_empty()
            && seen.iter().all(|s| s.header("authorization").is_none() && s.header("x-amz-date").is_none()),
        "{seen:?}"
    );
}

// ------------------------------------------------------------------------------------------------
// Integrity

#[test]
fn etag_mismatches_are_retried_then_fail_without_wrong_bytes() {
    let Some(m) = server() else { return };
    let proxy = Tamper::start(([127, 0, 0, 1], m.port).into());
    let url = "s3://cv-etag/layer";
    let o = opts_with(&proxy.endpoint(), Some(&m.user));
    let st = open_store(url, &o).unwrap();
    let body = pattern(5000, 3);
    st.put("blob", &body, ContentEncoding::Identity, "application/octet-stream").unwrap();
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    };
    st.put("blob.gz", &gz, ContentEncoding::Gzip, "application/octet-stream").unwrap();
    proxy.take();

    proxy.tamper(Some("/blob"));
    for key in ["blob", "blob.gz"] {
        let e = st.get(key).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io, "{key}: {e}");
        let msg = e.message();
        assert!(msg.contains(&format!("{}/cv-etag/layer/{key}", proxy.endpoint())), "{msg}");
        assert!(msg.contains("checksum") && msg.contains("ETag") && msg.contains("3 attempts"), "{msg}");
        assert_eq!(proxy.take().len(), 3, "{key}: every attempt is one GET");
        let mut buf = Vec::new();
        assert_eq!(st.get_into(key, &mut buf, None).unwrap_err().kind(), ErrorKind::Io);
        proxy.take();
    }
    // Without the check the flipped byte comes through (so the check is what caught it).
    let mut off = o.clone();
    off["checksum"] = json!(false);
    let got = get(url, "blob", &off).unwrap().unwrap();
    assert_eq!(got.len(), body.len());
    assert_ne!(got, body);
    // Ranged reads have no whole-object checksum; untampered reads pass.
    assert_eq!(st.get_range("blob", 0, 100).unwrap().unwrap(), body[..100]);
    proxy.tamper(None);
    assert_eq!(st.get("blob").unwrap().unwrap().bytes, body);
    let obj = st.get("blob.gz").unwrap().unwrap();
    assert_eq!((obj.bytes, obj.encoding), (gz, ContentEncoding::Gzip));

    // A layer whose info is tampered with fails as I/O (never decoded), and a chunk too.
    let layer = "s3://cv-etag/vol";
    let vol = Volume::create(layer, &info_json(false), options(&o)).unwrap();
    let whole = Bbox::new([-5, 3, 1], [59, 51, 21]);
    vol.write_from(0, &whole, &pattern(64 * 48 * 20 * 2, 9)).unwrap();
    proxy.tamper(Some("/vol/info"));
    let e = Volume::open(layer, options(&o)).err().expect("tampered info");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains("checksum"), "{e}");
    proxy.tamper(Some("/vol/4_4_40/11-27_19-35_1-11"));
    let vol = Volume::open(layer, options(&o)).unwrap();
    let e = vol.cutout(0, &whole).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains("checksum") && e.message().contains("11-27_19-35_1-11"), "{e}");
}

// ------------------------------------------------------------------------------------------------
// Where credentials come from (one test: it changes process-wide environment variables)

/// Restores the isolated environment when dropped.
struct EnvGuard<'a>(#[allow(dead_code)] MutexGuard<'a, ()>);

impl Drop for EnvGuard<'_> {
    fn drop(&mut self) {
        isolate_env();
    }
}

fn write_secret(dir: &Path, name: &str, v: &Value) {
    std::fs::write(dir.join("secrets").join(name), v.to_string()).unwrap();
}

#[test]
fn credentials_are_found_as_cloud_files_finds_them() {
    let Some(m) = server() else { return };
    let _g = EnvGuard(env_lock());
    let ep = m.endpoint();
    let home = scratch().join("home");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(home.join("secrets")).unwrap();
    std::env::set_var("CLOUD_VOLUME_DIR", &home);
    std::env::set_var("CLOUD_FILES_DIR", &home);
    let bad = Keys { id: m.user.id.clone(), secret: "NotTheSecretNotTheSecretNotTheSecret0000".into(), token: None };
    let url = "s3://cv-alias/layer";
    open_store(url, &opts_with(&ep, Some(&m.user)))
        .unwrap()
        .put("k", b"v", ContentEncoding::Identity, "text/plain")
        .unwrap();
    let plain = opts_with(&ep, None);
    let ok = |what: &str, url: &str, o: &Value| match get(url, "k", o) {
        Ok(Some(v)) => assert_eq!(v, b"v", "{what}"),
        other => panic!("{what}: {other:?}"),
    };
    let refused = |what: &str, url: &str, o: &Value| {
        let e = match get(url, "k", o) {
            Err(e) => e,
            Ok(v) => panic!("{what}: not refused: {v:?}"),
        };
        assert_eq!(e.kind(), ErrorKind::Auth, "{what}: {e}");
        assert!(e.message().contains("cv-alias"), "{what}: {e}");
        assert_clean(e.message(), &m.user);
        assert_clean(e.message(), &bad);
        e
    };

    // Nothing anywhere: unsigned, and moto refuses; the message says where it looked.
    let e = refused("no credentials", url, &plain);
    assert!(e.message().contains("aws-secret.json"), "{e}");

    // The environment.
    std::env::set_var("AWS_ACCESS_KEY_ID", &m.user.id);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &m.user.secret);
    ok("environment", url, &plain);
    std::env::set_var("AWS_ACCESS_KEY_ID", &m.session.id);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &m.session.secret);
    std::env::set_var("AWS_SESSION_TOKEN", m.session.token.as_deref().unwrap());
    ok("environment with a session token", url, &plain);
    std::env::set_var("AWS_SESSION_TOKEN", "WrongTokenWrongToken");
    refused("environment with a wrong session token", url, &plain);
    std::env::remove_var("AWS_SESSION_TOKEN");
    std::env::set_var("AWS_ACCESS_KEY_ID", &m.user.id);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &m.user.secret);

    // A secret file beats the environment; the per-bucket file beats the default one.
    write_secret(&home, "aws-secret.json", &bad.secret_json());
    refused("wrong aws-secret.json over right environment", url, &plain);
    write_secret(&home, "cv-alias-aws-secret.json", &m.user.secret_json());
    ok("right per-bucket file over wrong default", url, &plain);
    write_secret(&home, "aws-secret.json", &m.user.secret_json());
    write_secret(&home, "cv-alias-aws-secret.json", &bad.secret_json());
    let e = refused("wrong per-bucket file over right default", url, &plain);
    assert!(e.message().contains("cv-alias-aws-secret.json"), "{e}");
    // The secrets option beats every file; anonymous sends nothing.
    ok("secrets option", url, &opts_with(&ep, Some(&m.user)));
    let path_secret = home.join("given.json");
    std::fs::write(&path_secret, m.user.secret_json().to_string()).unwrap();
    let mut o = plain.clone();
    o["secrets"] = json!(path_secret.to_str().unwrap());
    ok("secrets option naming a file", url, &o);
    std::fs::remove_file(home.join("secrets").join("cv-alias-aws-secret.json")).unwrap();
    ok("default file", url, &plain);
    let mut o = plain.clone();
    o["anonymous"] = json!(true);
    refused("anonymous", url, &o);

    // The region of the environment goes into the signature (moto takes any region), after
    // the secret's.
    let proxy = Tamper::start(([127, 0, 0, 1], m.port).into());
    let via = opts_with(&proxy.endpoint(), None);
    std::env::set_var("AWS_REGION", "eu-north-1");
    ok("region from the environment", url, &via);
    std::env::set_var("AWS_DEFAULT_REGION", "sa-east-1");
    ok("region from the environment", url, &via);
    let mut sec = m.user.secret_json();
    sec["AWS_DEFAULT_REGION"] = json!("af-south-1");
    write_secret(&home, "aws-secret.json", &sec);
    ok("region from the secret", url, &via);
    write_secret(&home, "aws-secret.json", &m.user.secret_json());
    let auths: Vec<String> = proxy.take().iter().map(|s| s.header("authorization").unwrap_or("").to_string()).collect();
    let regions = ["/eu-north-1/s3/", "/sa-east-1/s3/", "/af-south-1/s3/"];
    assert!(auths.len() == 3 && auths.iter().zip(regions).all(|(a, r)| a.contains(r)), "{auths:?}");

    // Aliases read their own secrets: matrix-secret.json, {bucket}-matrix-secret.json (not
    // aws-secret.json, right as it is here).
    std::env::remove_var("AWS_ACCESS_KEY_ID");
    std::env::remove_var("AWS_SECRET_ACCESS_KEY");
    let murl = "matrix://cv-alias/layer";
    let e = refused("matrix without matrix-secret.json", murl, &plain);
    assert!(e.message().contains("matrix-secret.json"), "{e}");
    write_secret(&home, "matrix-secret.json", &m.user.secret_json());
    ok("matrix-secret.json", murl, &plain);
    write_secret(&home, "cv-alias-matrix-secret.json", &bad.secret_json());
    refused("wrong cv-alias-matrix-secret.json", murl, &plain);
    write_secret(&home, "cv-alias-matrix-secret.json", &m.user.secret_json());
    write_secret(&home, "aws-secret.json", &bad.secret_json());
    ok("matrix ignores aws-secret.json", murl, &plain);

    // An endpoint in the path, and an alias of $CLOUD_FILES_DIR/aliases.json (no s3_endpoint).
    let bare = json!({"max_attempts": 2, "retry_budget": 10});
    let eurl = format!("s3://{ep}/cv-alias/layer");
    refused("s3://http://... with a wrong aws-secret.json", &eurl, &bare);
    write_secret(&home, "aws-secret.json", &m.user.secret_json());
    ok("s3://http://...", &eurl, &bare);
    std::fs::write(home.join("aliases.json"), json!({"motos3": {"host": format!("s3://{ep}/")}}).to_string()).unwrap();
    write_secret(&home, "motos3-secret.json", &m.user.secret_json());
    ok("alias from aliases.json", "motos3://cv-alias/layer", &bare);
    write_secret(&home, "motos3-secret.json", &bad.secret_json());
    refused("alias from aliases.json, wrong secret", "motos3://cv-alias/layer", &bare);

    // A malformed secret file is an Auth error naming the file, not its contents.
    std::fs::write(
        home.join("secrets").join("aws-secret.json"),
        format!("{{\"AWS_SECRET_ACCESS_KEY\": \"{}\"", m.user.secret),
    )
    .unwrap();
    let e = open_store(url, &plain).err().expect("a malformed secret is refused");
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(e.message().contains("aws-secret.json"), "{e}");
    assert_clean(e.message(), &m.user);
    let _ = std::fs::remove_dir_all(&home);
}

// ------------------------------------------------------------------------------------------------
// Regions and redirects (a stub server answering as AWS does)

/// A loopback server answering each request (one per connection) with `answer(method, target,
/// authorization)` → (status line, extra headers, body).
fn stub(
    answer: impl Fn(&str, &str, &str) -> (&'static str, String, String) + Send + Sync + 'static,
) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::sync::Arc::new(answer);
    let h = std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut b = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&b[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let mut first = head.lines().next().unwrap_or("").split_whitespace();
                let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
                let auth = head
                    .lines()
                    .find_map(|l| {
                        l.split_once(':')
                            .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                            .map(|(_, v)| v.trim().to_string())
                    })
                    .unwrap_or_default();
                let (status, extra, body) = answer(method, target, &auth);
                let body = if method == "HEAD" { String::new() } else { body };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (format!("http://{addr}"), h)
}

#[test]
fn a_wrong_region_is_corrected_and_redirects_are_errors() {
    let _ = server(); // isolates the environment
    let keys = Keys {
        id: "AKIAREGIONTEST000000".into(),
        secret: "RegionSecretRegionSecretRegionSecret0000".into(),
        token: None,
    };
    let (ep, _h) = stub(|method, target, auth| {
        if target.contains("/moved/") {
            return (
                "301 Moved Permanently",
                "x-amz-bucket-region: ap-east-1\r\n".into(),
                "<Error><Code>PermanentRedirect</Code><Endpoint>bk.s3.ap-east-1.amazonaws.com</Endpoint></Error>"
                    .into(),
            );
        }
        if !auth.contains("/eu-west-1/s3/aws4_request") {
            let body = "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>";
            return ("400 Bad Request", "x-amz-bucket-region: eu-west-1\r\n".into(), body.into());
        }
        match method {
            "GET" => ("200 OK", String::new(), "payload".into()),
            _ => ("200 OK", String::new(), String::new()),
        }
    });
    let o = opts_with(&ep, Some(&keys));
    // GET: the error document names the region.
    assert_eq!(get("s3://bk/layer", "obj", &o).unwrap().unwrap(), b"payload");
    // HEAD: only the header does.
    assert!(open_store("s3://bk/layer", &o).unwrap().exists("obj").unwrap());
    // A redirect's body is never taken for the object.
    let e = get("s3://bk/moved", "obj", &o).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains("PermanentRedirect") && e.message().contains("ap-east-1"), "{e}");
    assert_clean(e.message(), &keys);
    let e = open_store("s3://bk/moved", &o).unwrap().exists("obj").unwrap_err();
    assert!(e.message().contains("ap-east-1"), "{e}");
}

#[test]
fn the_s3_store_passes_the_store_suite() {
    let Some(m) = server() else { return };
    let st = open_store("s3://cv-write/suite", &opts_with(&m.endpoint(), Some(&m.user))).unwrap();
    support::store_suite::conformance(
        &*st,
        "objects",
        "S3 (moto)",
        support::store_suite::Capabilities { encodings: true, generations: true, listing: true },
    );
}

// ------------------------------------------------------------------------------------------------
// Listings: has_data

/// Put an object named `key` (a folder marker when it ends in `/`, which the store's keys
/// cannot name) with boto3, as the user.
fn put_raw(m: &Moto, bucket: &str, key: &str) {
    let script = "import sys, boto3\nfrom botocore.config import Config\n\
        s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id=sys.argv[2],\n\
        \x20   aws_secret_access_key=sys.argv[3], config=Config(request_checksum_calculation='when_required'))\n\
        s3.put_object(Bucket=sys.argv[4], Key=sys.argv[5], Body=b'')\n";
    let out = std::process::Command::new(support::env::venv_python())
        .args(["-c", script, &m.endpoint(), &m.user.id, &m.user.secret, bucket, key])
        .output()
        .unwrap();
    assert!(out.status.success(), "boto3 put_object {key}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Objects that boto3 stored with a CRC32 (its default since 1.36) are checked against it:
/// reads ask for it (`x-amz-checksum-mode`, signed), a flipped byte fails naming the CRC, and
/// the same object read whole untampered passes.
#[test]
fn objects_stored_with_a_crc_are_checked_by_it() {
    let Some(m) = server() else { return };
    let proxy = Tamper::start(([127, 0, 0, 1], m.port).into());
    let o = opts_with(&proxy.endpoint(), Some(&m.user));
    let st = open_store("s3://cv-crc/layer", &o).unwrap();
    let body = pattern(7000, 5);
    let file = scratch().join("crc-body");
    std::fs::write(&file, &body).unwrap();
    let script = "import sys, boto3\n\
        s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id=sys.argv[2],\n\
        \x20   aws_secret_access_key=sys.argv[3])\n\
        s3.put_object(Bucket='cv-crc', Key='layer/blob', Body=open(sys.argv[4], 'rb').read(), ChecksumAlgorithm='CRC32')\n";
    let out = std::process::Command::new(support::env::venv_python())
        .args(["-c", script, &m.endpoint(), &m.user.id, &m.user.secret, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "boto3 put_object: {}", String::from_utf8_lossy(&out.stderr));
    proxy.take();
    assert_eq!(st.get("blob").unwrap().unwrap().bytes, body);
    let seen = proxy.take();
    let get = seen.iter().find(|s| s.method == "GET").expect("a GET");
    assert_eq!(get.header("x-amz-checksum-mode"), Some("ENABLED"), "{get:?}");
    let auth = get.header("authorization").unwrap();
    assert!(auth.contains("x-amz-checksum-mode"), "the header is signed: {auth}");
    proxy.tamper(Some("/blob"));
    let e = st.get("blob").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains("checksum mismatch") && e.message().contains("CRC32"), "{e}");
    proxy.tamper(None);
}

#[test]
fn has_data_is_a_signed_listing_and_agrees_with_cloud_volume() {
    let Some(m) = server() else { return };
    let proxy = Tamper::start(([127, 0, 0, 1], m.port).into());
    let ep = proxy.endpoint();
    let o = opts_with(&ep, Some(&m.user));
    let url = "s3://cv-list/layers/hd";
    // 4_4_40 written; 8_8_40 only a folder marker; 4_4_4 nothing of its own, but a prefix of
    // 4_4_40's key (cloud-volume's bare prefix finds those); 16_16_40 nothing, though the
    // layer "hd2" beside has such a scale.
    let keys = ["4_4_40", "8_8_40", "4_4_4", "16_16_40"];
    let vol = Volume::create(url, &support::cv_python::info_with_scales(&keys).to_string(), options(&o)).unwrap();
    assert_eq!((0..4).map(|mip| vol.has_data(mip).unwrap()).collect::<Vec<_>>(), [false; 4], "only the info");
    vol.write_from(0, &Bbox::new([0, 0, 0], [16, 16, 8]), &[7u8; 16 * 16 * 8]).unwrap();
    put_raw(m, "cv-list", "layers/hd/8_8_40/");
    open_store("s3://cv-list/layers/hd2", &o)
        .unwrap()
        .put("16_16_40/0-16_0-16_0-8", b"x", ContentEncoding::Identity, "application/octet-stream")
        .unwrap();
    proxy.take();
    let want = [true, false, true, false];
    assert_eq!((0..4).map(|mip| vol.has_data(mip).unwrap()).collect::<Vec<_>>(), want, "Volume::has_data");
    // One ListObjectsV2 of one key per scale, signed as every request.
    let seen = proxy.take();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        keys.iter().map(|k| format!("/cv-list?list-type=2&prefix=layers%2Fhd%2F{k}&max-keys=1")).collect::<Vec<_>>(),
        "{seen:?}"
    );
    for s in &seen {
        assert_eq!(s.method, "GET");
        let auth = s.header("authorization").unwrap_or_else(|| panic!("{} unsigned", s.target));
        assert!(auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={}/", m.user.id)), "{auth}");
    }
    // Behind both caches: the store is asked, nothing is cached.
    let mut cached = o.clone();
    cached["cache"] = json!(scratch().join("hd-cache").to_str().unwrap());
    cached["lru_bytes"] = json!(1 << 20);
    let cv = Volume::open(url, options(&cached)).unwrap();
    assert_eq!((0..4).map(|mip| cv.has_data(mip).unwrap()).collect::<Vec<_>>(), want, "through the caches");
    assert!(!scratch().join("hd-cache/s3/cv-list/layers/hd/4_4_40").exists(), "a listing was cached");
    proxy.take();
    // Through the C ABI.
    let h = open(url, &o).unwrap();
    assert_eq!((0..4).map(|mip| h.has_data(mip).unwrap()).collect::<Vec<_>>(), want, "cv_has_data");
    // cloud-volume, straight to moto (named by an alias: its paths take no s3://http://).
    let home = scratch().join("cv-home");
    std::fs::create_dir_all(&home).unwrap();
    let alias = json!({"motolist": {"host": format!("s3://{}/", m.endpoint())}});
    std::fs::write(home.join("aliases.json"), alias.to_string()).unwrap();
    if let Some(theirs) =
        support::cv_python::has_data("motolist://cv-list/layers/hd", &m.user.secret_json(), &home, &[])
    {
        assert_eq!(theirs, want, "cloud-volume's has_data");
    }
    // A folder marker before the first object: the next page is asked for.
    vol.write_from(1, &Bbox::new([0, 0, 0], [16, 16, 8]), &[1u8; 16 * 16 * 8]).unwrap();
    proxy.take();
    assert!(vol.has_data(1).unwrap(), "the chunk after the marker");
    let seen = proxy.take();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[1].target.contains("&max-keys=1000&continuation-token="), "{seen:?}");

    // Credentials that may read but not list: CV_ERR_AUTH naming the bucket, not retried.
    let ro = opts_with(&ep, Some(&m.reader));
    let h = open(url, &ro).expect("the reader opens the layer");
    let (st, msg) = h.has_data(0).expect_err("a listing the reader may not make");
    assert_eq!(st, CV_ERR_AUTH, "{msg}");
    assert!(msg.contains("AccessDenied") && msg.contains("cv-list") && msg.contains("list-type=2"), "{msg}");
    assert!(!msg.contains("attempts"), "refused credentials were retried: {msg}");
    assert_clean(&msg, &m.reader);
    let e = open_store(url, &opts_with(&ep, Some(&m.nobody))).unwrap().first_under("4_4_40").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert_clean(e.message(), &m.nobody);
    // A bucket that does not exist is no empty listing.
    let e = open_store("s3://cv-no-such-bucket/layer", &o).unwrap().first_under("4_4_40").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("NoSuchBucket") && e.message().contains("cv-no-such-bucket"), "{e}");
}
