//! `gs://` for real (issue #5, Google's side), against fake-gcs-server on loopback
//! (`tests/support/fake_gcs.rs`), a token endpoint that verifies RS256-signed JWTs and a proxy
//! that checks bearer tokens (`tests/support/token_server.rs`):
//!
//! - reference layers written by cloud-volume and tensorstore (raw, compressed_segmentation,
//!   gzip/br/zstd `contentEncoding`, missing chunks, sharded) uploaded to a bucket and read
//!   through the C ABI, anonymously over public URLs and with a token over the JSON API;
//! - ranged reads of shard files, conditioned on the object generation (a rewritten shard is
//!   noticed even though the server ignores `ifGenerationMatch`);
//! - writes: a layer created, written (gzip and zstd `contentEncoding` round trips), read back,
//!   deleted; store-level put/get/exists/delete, 503s retried;
//! - a service account's key exchanged for tokens: signature checked by the token endpoint,
//!   one token shared by many threads, refreshed before it expires and once after a 401;
//! - refused credentials (wrong key, revoked tokens, 403) are `CV_ERR_AUTH` naming the bucket
//!   and the token endpoint, never a key or a token;
//! - secret files found as cloud-files finds them (`CLOUD_VOLUME_DIR` and `CLOUD_FILES_DIR`
//!   pointed at temporary directories; never the real `~/.cloudvolume`);
//! - a body corrupted in transit (x-goog-hash kept) is retried, then `CV_ERR_IO` naming the URL
//!   and the checksum; its bytes are never decoded;
//! - `has_data` as JSON API listings (with a token and anonymously; folder markers skipped,
//!   refusals `CV_ERR_AUTH`), compared with cloud-volume's answers on the same server.
//!
//! Skipped with a notice when fake-gcs-server (tests/servers/requirements.txt, in target/venv)
//! or the reference layers are missing, unless `CV_REQUIRE_REFERENCE=1`.

mod support;

use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use cloudvolume::cloudpath::CloudPath;
use cloudvolume::ffi::{CV_ERR_AUTH, CV_ERR_IO, CV_ERR_NOT_FOUND, CV_ERR_OUT_OF_BOUNDS, CV_OK};
use cloudvolume::store::{ContentEncoding, RangeRead, Store};
use cloudvolume::{Bbox, ErrorKind, Options, Volume};
use serde_json::{json, Map, Value};
use support::cabi::{open, Vol};
use support::env::{reference_dir, required};
use support::fake_gcs::FakeGcs;
use support::files::TempDir;
use support::layers::elem_size;
use support::token_server::{self, AuthProxy, TokenServer};

/// Tests that read or change the process environment (secret lookup) hold this.
static ENV: Mutex<()> = Mutex::new(());

fn opts(v: Value) -> Options {
    Options::parse(Some(&v.to_string())).unwrap()
}

fn store(url: &str, o: &Options) -> Arc<dyn Store> {
    cloudvolume::store::open(&CloudPath::parse(url, &o.store).unwrap(), &o.store).unwrap()
}

// ------------------------------------------------------------------------------------------------
// Reference layers

/// The manifest's layers, or None (after a notice) when the fixtures are absent.
fn manifest() -> Option<Vec<Value>> {
    let p = reference_dir().join("manifest.json");
    match std::fs::read_to_string(&p) {
        Ok(t) => Some(serde_json::from_str::<Value>(&t).unwrap()["layers"].as_array().unwrap().clone()),
        Err(e) => {
            assert!(!required(), "CV_REQUIRE_REFERENCE=1 but {} cannot be read: {e}", p.display());
            eprintln!("SKIP: no reference layers at {}; GCS reference reads skipped", p.display());
            None
        }
    }
}

/// Layers read here: every content encoding, cseg, missing chunks, both sharded writers.
const LAYERS: &[&str] = &[
    "cv/raw_uint16_c2",
    "cv/raw_int32_c1_br",
    "cv/cseg_uint32_c1_b4x8x2_zstd",
    "cv/missing_raw_uint16_c2",
    "ts/sharded_raw_uint16_c2_murmur",
    "cv/sharded_cseg_uint64_c1",
];

fn triple(v: &Value) -> [i64; 3] {
    [v[0].as_i64().unwrap(), v[1].as_i64().unwrap(), v[2].as_i64().unwrap()]
}

/// Read every box of `layer` from `url` with `extra` options; the failures.
fn read_boxes(layer: &Value, url: &str, extra: &Value) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut n = 0;
    let item = elem_size(layer["dtype"].as_str().unwrap());
    let channels = layer["channels"].as_u64().unwrap() as usize;
    let mut handles: Vec<(String, Vol)> = Vec::new();
    for case in layer["boxes"].as_array().unwrap() {
        let mut o: Map<String, Value> = case["options"].as_object().cloned().unwrap_or_default();
        for (k, v) in extra.as_object().unwrap() {
            o.insert(k.clone(), v.clone());
        }
        let key = Value::Object(o.clone()).to_string();
        if !handles.iter().any(|(k, _)| *k == key) {
            match open(url, &Value::Object(o)) {
                Ok(h) => handles.push((key.clone(), h)),
                Err((st, e)) => {
                    failures.push(format!("cv_open({url}, {key}) -> {st}: {e}"));
                    continue;
                }
            }
        }
        let h = &handles.iter().find(|(k, _)| *k == key).unwrap().1;
        let (lo, hi) = (triple(&case["lo"]), triple(&case["hi"]));
        let voxels: i64 = (0..3).map(|d| hi[d] - lo[d]).product();
        let mut buf = vec![0xA5u8; voxels as usize * channels * item];
        let mip = case["mip"].as_u64().unwrap() as u32;
        let (st, err) = h.cutout_into(mip, lo, hi, &mut buf);
        n += 1;
        let what = format!("{url} mip {mip} {lo:?}..{hi:?} ({})", case["kind"]);
        match (case["expected"].as_str(), case["error"].as_str()) {
            (Some(p), _) => {
                if st != CV_OK {
                    failures.push(format!("{what}: status {st}: {err}"));
                } else if buf != std::fs::read(reference_dir().join(p)).unwrap() {
                    failures.push(format!("{what}: differs from {p}"));
                }
            }
            (None, Some(e)) => {
                let want = match e {
                    "not_found" => CV_ERR_NOT_FOUND,
                    "out_of_bounds" => CV_ERR_OUT_OF_BOUNDS,
                    other => panic!("unknown error {other}"),
                };
                if st != want {
                    failures.push(format!("{what}: expected status {want}, got {st} {err}"));
                }
            }
            _ => panic!("box without expectation"),
        }
    }
    (n, failures)
}

/// A fake-gcs-server holding the reference layers in bucket `bucket`; None when skipping.
fn server_with_layers(bucket: &str) -> Option<(FakeGcs, Vec<Value>)> {
    let layers = manifest()?;
    let gcs = FakeGcs::start(&[bucket])?;
    let picked: Vec<Value> = LAYERS
        .iter()
        .map(|p| layers.iter().find(|l| l["path"] == *p).unwrap_or_else(|| panic!("{p} not in the manifest")).clone())
        .collect();
    for l in &picked {
        let path = l["path"].as_str().unwrap();
        let n = gcs.upload_dir(bucket, path, &reference_dir().join(path));
        assert!(n > 1, "{path}: {n} files uploaded");
    }
    Some((gcs, picked))
}

// ------------------------------------------------------------------------------------------------
// Tests

const STATIC_TOKEN: &str = "ya29.static-test-token-0123456789";

#[test]
fn reference_layers_read_anonymously_and_with_a_token() {
    let Some((gcs, layers)) = server_with_layers("refbkt") else { return };
    let static_ok: token_server::Validator = Arc::new(|t: &str| t == STATIC_TOKEN);
    let proxy = AuthProxy::start(&gcs.url(), Some(static_ok));
    let mut failures = Vec::new();
    let mut cases = 0;
    for l in &layers {
        let url = format!("gs://refbkt/{}", l["path"].as_str().unwrap());
        // Anonymous: public URLs, straight to the server.
        let (n, f) = read_boxes(l, &url, &json!({"gs_endpoint": gcs.url(), "anonymous": true}));
        cases += n;
        failures.extend(f);
        // A token: the JSON API, through the proxy that refuses requests without it.
        let (n, f) = read_boxes(l, &url, &json!({"gs_endpoint": proxy.url(), "gs_token": STATIC_TOKEN}));
        cases += n;
        failures.extend(f);
    }
    assert!(failures.is_empty(), "{} of {cases} boxes failed:\n{}", failures.len(), failures.join("\n"));
    assert!(cases > 200, "{cases} boxes");
    let log = proxy.log();
    assert!(!log.is_empty());
    for s in &log {
        assert!(s.target.starts_with("/storage/v1/b/refbkt/o/"), "not a JSON API request: {s:?}");
        assert_eq!(s.bearer.as_deref(), Some(STATIC_TOKEN), "{s:?}");
        assert_ne!(s.status, 401, "{s:?}");
    }
    assert!(log.iter().any(|s| s.target.contains("sharded_raw_uint16_c2_murmur%2F") && s.target.contains("alt=media")));
}

#[test]
fn ranged_reads_are_conditioned_on_the_generation() {
    let Some((gcs, layers)) = server_with_layers("shbkt") else { return };
    let proxy = AuthProxy::start(&gcs.url(), None);
    let layer = layers.iter().find(|l| l["path"] == "ts/sharded_raw_uint16_c2_murmur").unwrap();
    let dir = reference_dir().join("ts/sharded_raw_uint16_c2_murmur");
    let scale = std::fs::read_dir(&dir).unwrap().flatten().find(|e| e.path().is_dir()).unwrap().file_name();
    let scale = scale.to_string_lossy().into_owned();
    let shard_file = std::fs::read_dir(dir.join(&scale)).unwrap().flatten().next().unwrap().path();
    let shard_key = format!("{scale}/{}", shard_file.file_name().unwrap().to_string_lossy());
    let object = format!("ts/sharded_raw_uint16_c2_murmur/{shard_key}");
    let bytes = std::fs::read(&shard_file).unwrap();
    assert!(bytes.len() > 40);
    for (mode, extra) in [
        ("json", json!({"gs_endpoint": proxy.url(), "gs_token": STATIC_TOKEN, "max_attempts": 2})),
        ("public", json!({"gs_endpoint": proxy.url(), "anonymous": true, "max_attempts": 2})),
    ] {
        let o = opts(extra.clone());
        let s = store("gs://shbkt/ts/sharded_raw_uint16_c2_murmur", &o);
        let generation = gcs.metadata("shbkt", &object).unwrap()["generation"].as_str().unwrap().to_string();
        let got = s.get_range_if(&shard_key, 8, 40, None).unwrap();
        let RangeRead::Data(b, Some(g)) = got else { panic!("{mode}: {got:?}") };
        assert_eq!(b, &bytes[8..40], "{mode}");
        assert_eq!(g, format!("gen:{generation}"), "{mode}: the generation is Google's");
        match s.get_range_if(&shard_key, 0, 16, Some(&g)).unwrap() {
            RangeRead::Data(b, _) => assert_eq!(b, &bytes[..16], "{mode}"),
            other => panic!("{mode}: {other:?}"),
        }
        // Past the end: the index that pointed there is corrupt.
        let e = s.get_range_if(&shard_key, bytes.len() as u64 - 4, bytes.len() as u64 + 4, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{mode}: {e}");
        assert!(matches!(s.get_range_if("nope.shard", 0, 16, None).unwrap(), RangeRead::Missing), "{mode}");
        // Rewritten: a new generation. The server ignores the condition; the answer's
        // x-goog-generation gives it away.
        let h = open("gs://shbkt/ts/sharded_raw_uint16_c2_murmur", &extra).unwrap();
        let case = &layer["boxes"][0];
        let (lo, hi) = (triple(&case["lo"]), triple(&case["hi"]));
        let n = (0..3).map(|d| (hi[d] - lo[d]) as usize).product::<usize>() * 2 * 2;
        let want = std::fs::read(reference_dir().join(case["expected"].as_str().unwrap())).unwrap();
        let mut buf = vec![0u8; n];
        assert_eq!(
            h.cutout_into(case["mip"].as_u64().unwrap() as u32, lo, hi, &mut buf),
            (CV_OK, String::new()),
            "{mode}"
        );
        assert_eq!(buf, want, "{mode}");
        gcs.upload("shbkt", &object, &bytes, None);
        let newer = gcs.metadata("shbkt", &object).unwrap()["generation"].as_str().unwrap().to_string();
        assert_ne!(newer, generation);
        assert!(matches!(s.get_range_if(&shard_key, 0, 16, Some(&g)).unwrap(), RangeRead::Stale), "{mode}");
        // The open handle's cached indices are of the old generation: its reads notice, re-read
        // the indices and still return the right voxels.
        let mut buf = vec![0u8; n];
        assert_eq!(
            h.cutout_into(case["mip"].as_u64().unwrap() as u32, lo, hi, &mut buf),
            (CV_OK, String::new()),
            "{mode}"
        );
        assert_eq!(buf, want, "{mode} after the rewrite");
    }
    let log = proxy.log();
    assert!(log.iter().any(|s| s.target.contains("alt=media") && s.target.contains("&ifGenerationMatch=")), "{log:?}");
    assert!(log.iter().any(|s| s.target.starts_with("/shbkt/ts/")), "public URLs used: {log:?}");
}

fn info_json(dtype: &str, encoding: &str) -> String {
    json!({
        "type": "image", "data_type": dtype, "num_channels": 1,
        "scales": [{"key": "4_4_40", "size": [32, 32, 8], "voxel_offset": [0, 0, 0], "resolution": [4, 4, 40],
                    "chunk_sizes": [[16, 16, 8]], "encoding": encoding}]
    })
    .to_string()
}

#[test]
fn writes_round_trip_with_content_encoding() {
    let Some(gcs) = FakeGcs::start(&["wbkt"]) else { return };
    let static_ok: token_server::Validator = Arc::new(|t: &str| t == STATIC_TOKEN);
    let proxy = AuthProxy::start(&gcs.url(), Some(static_ok));
    let whole = Bbox::new([0, 0, 0], [32, 32, 8]);
    let data: Vec<u8> = (0..32 * 32 * 8 * 2).map(|i| (i * 7 % 251) as u8).collect();
    for (name, compress, enc) in
        [("gz", Value::Null, Some("gzip")), ("zs", json!("zstd"), Some("zstd")), ("plain", json!(false), None)]
    {
        let o = opts(json!({"gs_endpoint": proxy.url(), "gs_token": STATIC_TOKEN, "compress": compress}));
        let url = format!("gs://wbkt/layers/{name}");
        let v = Volume::create(&url, &info_json("uint16", "raw"), o.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        v.write_from(0, &whole, &data).unwrap();
        let back = Volume::open(&url, o.clone()).unwrap().cutout(0, &whole).unwrap();
        assert!(back == data, "{name}: read back differs");
        let info = gcs.metadata("wbkt", &format!("layers/{name}/info")).unwrap();
        assert_eq!(info["contentType"], "application/json", "{name}");
        assert!(info.get("contentEncoding").is_none_or(|e| e == "" || e == "identity"), "{name}: {info}");
        let chunks = gcs.list("wbkt", &format!("layers/{name}/4_4_40/"));
        assert_eq!(chunks.len(), 4, "{name}: {chunks:?}");
        for c in &chunks {
            let m = gcs.metadata("wbkt", c).unwrap();
            assert_eq!(m["contentEncoding"].as_str().filter(|e| !e.is_empty()), enc, "{name} {c}: {m}");
            let stored = gcs.stored_bytes("wbkt", c).unwrap();
            match enc {
                Some("gzip") => assert_eq!(&stored[..2], &[0x1f, 0x8b], "{c}"),
                Some("zstd") => assert_eq!(&stored[..4], &[0x28, 0xb5, 0x2f, 0xfd], "{c}"),
                _ => assert_eq!(stored.len(), 16 * 16 * 8 * 2, "{c}"),
            }
        }
        // Read anonymously over public URLs too (transcoding does not get in the way).
        let anon = opts(json!({"gs_endpoint": gcs.url(), "anonymous": true}));
        assert!(Volume::open(&url, anon).unwrap().cutout(0, &whole).unwrap() == data, "{name}: public read");
        v.delete_box(0, &Bbox::new([0, 0, 0], [16, 16, 8])).unwrap();
        assert_eq!(gcs.list("wbkt", &format!("layers/{name}/4_4_40/")).len(), 3, "{name}");
        let filled = Volume::open(
            &url,
            opts(json!({"gs_endpoint": proxy.url(), "gs_token": STATIC_TOKEN, "fill_missing": true})),
        )
        .unwrap()
        .cutout(0, &Bbox::new([0, 0, 0], [16, 16, 8]))
        .unwrap();
        assert!(filled.iter().all(|&b| b == 0), "{name}: deleted chunk reads as background");
        // An existing info is not replaced without overwrite.
        let Err(e) = Volume::create(&url, &info_json("uint16", "raw"), o) else { panic!("{name}: info replaced") };
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }
    // Store level, with awkward names and payloads.
    let o = opts(json!({"gs_endpoint": proxy.url(), "gs_token": STATIC_TOKEN}));
    let s = store("gs://wbkt/kv", &o);
    let blob: Vec<u8> = (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    for key in ["a/b c+d", "x%y", "empty", "nested/deep/key"] {
        let bytes: &[u8] = if key == "empty" { b"" } else { &blob };
        assert!(!s.exists(key).unwrap(), "{key}");
        assert!(s.get(key).unwrap().is_none(), "{key}");
        s.put(key, bytes, ContentEncoding::Identity, "application/octet-stream").unwrap();
        assert!(s.exists(key).unwrap(), "{key}");
        let obj = s.get(key).unwrap().unwrap();
        assert!(obj.bytes == bytes && obj.encoding == ContentEncoding::Identity, "{key}");
        assert_eq!(gcs.metadata("wbkt", &format!("kv/{key}")).unwrap()["size"], bytes.len().to_string(), "{key}");
        s.delete(key).unwrap();
        assert!(!s.exists(key).unwrap(), "{key}");
        s.delete(key).expect("deleting a missing object is no error");
    }
    // 503s are retried, uploads and reads alike.
    proxy.fail_next(2);
    s.put("retried", b"after 503", ContentEncoding::Identity, "text/plain").unwrap();
    proxy.fail_next(2);
    assert_eq!(s.get("retried").unwrap().unwrap().bytes, b"after 503");
    assert_eq!(proxy.log().iter().filter(|r| r.status == 503).count(), 4);
    let z = zstd::encode_all(&blob[..], 3).unwrap();
    s.put("z", &z, ContentEncoding::Zstd, "application/octet-stream").unwrap();
    let obj = s.get("z").unwrap().unwrap();
    assert!(obj.encoding == ContentEncoding::Zstd && obj.bytes == z);
    assert!(proxy.log().iter().all(|r| r.status != 401));
    assert!(proxy
        .log()
        .iter()
        .any(|r| r.method == "POST" && r.target.contains("/upload/storage/v1/b/wbkt/o?uploadType=multipart")));
    assert!(proxy.log().iter().any(|r| r.method == "DELETE" && r.target.starts_with("/storage/v1/b/wbkt/o/")));
}

/// A key pair for the tests, or None (skip) without openssl or Python's cryptography.
fn key_pem(dir: &Path) -> Option<String> {
    let pem = token_server::generate_key_pem(dir);
    if pem.is_none() {
        assert!(!required(), "cannot generate an RSA key: neither openssl nor target/venv's cryptography works");
        eprintln!("SKIP: cannot generate an RSA key (no openssl); service-account tests skipped");
    }
    pem
}

const SA: &str = "reader@cv-test.iam.gserviceaccount.com";

#[test]
fn service_account_tokens_are_verified_shared_and_refreshed() {
    let Some(gcs) = FakeGcs::start(&["sabkt"]) else { return };
    let tmp = TempDir::new("sa");
    let Some(pem) = key_pem(tmp.path()) else { return };
    let account = token_server::Account {
        email: SA.into(),
        key_id: "kid-1".into(),
        public_key: token_server::public_key_der(&pem),
    };
    let tokens = TokenServer::start(vec![account], Duration::from_secs(2));
    let proxy = AuthProxy::start(&gcs.url(), Some(tokens.validator()));
    gcs.upload("sabkt", "layer/obj", b"payload", None);
    let sa = token_server::service_account_json(SA, "kid-1", &pem, &tokens.token_uri());
    let o = opts(json!({"gs_endpoint": proxy.url(), "secrets": sa}));
    let s = store("gs://sabkt/layer", &o);
    assert_eq!(tokens.requests(), 0, "no token asked before the first request");
    // Many threads at once, no token yet: one token request, shared.
    let barrier = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (s, b) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                for _ in 0..3 {
                    assert_eq!(s.get("obj").unwrap().unwrap().bytes, b"payload");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(tokens.requests(), 1, "16 threads share one token (refusals: {:?})", tokens.refusals());
    assert_eq!(tokens.refused(), 0, "{:?}", tokens.refusals());
    let unauthorized = |p: &AuthProxy| p.log().iter().filter(|r| r.status == 401).count();
    assert_eq!(unauthorized(&proxy), 0);
    // Past half its lifetime, still valid: refreshed ahead of its expiry.
    std::thread::sleep(Duration::from_millis(1300));
    assert!(s.exists("obj").unwrap());
    assert_eq!(tokens.requests(), 2, "refreshed before expiry");
    // Past its expiry: a new token before the old one is refused.
    std::thread::sleep(Duration::from_millis(2100));
    assert!(s.exists("obj").unwrap());
    assert_eq!(tokens.requests(), 3, "refreshed after expiry");
    assert_eq!(unauthorized(&proxy), 0, "refreshed before the server refused it");
    // Revoked: the 401 makes the store ask once for a new one.
    tokens.revoke_all();
    assert_eq!(s.get("obj").unwrap().unwrap().bytes, b"payload");
    assert_eq!(tokens.requests(), 4, "one refresh after a 401");
    assert_eq!(unauthorized(&proxy), 1);
    // Through the C ABI, the key given as a file path.
    let key_file = tmp.path().join("sa.json");
    std::fs::write(&key_file, sa.to_string()).unwrap();
    let info = info_json("uint8", "raw");
    let v = Volume::create(
        "gs://sabkt/vol2",
        &info,
        opts(json!({"gs_endpoint": proxy.url(), "secrets": key_file.to_str().unwrap()})),
    )
    .unwrap();
    let whole = Bbox::new([0, 0, 0], [32, 32, 8]);
    v.write_from(0, &whole, &vec![9u8; 32 * 32 * 8]).unwrap();
    let h =
        open("gs://sabkt/vol2", &json!({"gs_endpoint": proxy.url(), "secrets": key_file.to_str().unwrap()})).unwrap();
    let mut buf = vec![0u8; 32 * 32 * 8];
    assert_eq!(h.cutout_into(0, [0, 0, 0], [32, 32, 8], &mut buf), (CV_OK, String::new()));
    assert!(buf.iter().all(|&b| b == 9));
    assert!(tokens.issuers().iter().all(|i| i == SA));
    // Every request carried a token the endpoint issued; none leaked into a message above.
    assert!(proxy.log().iter().all(|r| r.bearer.as_deref().is_some_and(|b| b.starts_with("ya29.test-"))));
}

#[test]
fn refused_credentials_are_auth_errors_naming_no_secret() {
    let Some(gcs) = FakeGcs::start(&["authbkt"]) else { return };
    let tmp = TempDir::new("auth");
    let Some(pem) = key_pem(tmp.path()) else { return };
    let Some(other_pem) = key_pem(tmp.path()) else { return };
    let account = token_server::Account {
        email: SA.into(),
        key_id: "kid-1".into(),
        public_key: token_server::public_key_der(&pem),
    };
    let tokens = TokenServer::start(vec![account], Duration::from_secs(60));
    let proxy = AuthProxy::start(&gcs.url(), Some(tokens.validator()));
    gcs.upload("authbkt", "layer/info", info_json("uint8", "raw").as_bytes(), None);
    let url = "gs://authbkt/layer";
    let secret_bits = |p: &str| -> Vec<String> {
        let body: String = p.lines().filter(|l| !l.starts_with("-----")).collect();
        body.as_bytes().chunks(24).map(|c| String::from_utf8_lossy(c).into_owned()).collect()
    };
    let leaks = |msg: &str, p: &str| {
        assert!(!msg.contains("PRIVATE KEY"), "{msg}");
        for bit in secret_bits(p) {
            assert!(!msg.contains(&bit), "the message shows key material: {msg}");
        }
    };
    // A key the endpoint does not know: the token request is refused.
    let wrong = token_server::service_account_json(SA, "kid-1", &other_pem, &tokens.token_uri());
    let (st, msg) =
        open(url, &json!({"gs_endpoint": proxy.url(), "secrets": wrong})).err().expect("a wrong key is refused");
    assert_eq!(st, CV_ERR_AUTH, "{msg}");
    assert!(msg.contains("gs://authbkt") && msg.contains(&tokens.token_uri()) && msg.contains(SA), "{msg}");
    assert!(msg.contains("Invalid JWT Signature"), "{msg}");
    leaks(&msg, &other_pem);
    assert_eq!((tokens.requests(), tokens.refused()), (1, 1), "a refused token request is not retried");
    // The right key: works.
    let right = token_server::service_account_json(SA, "kid-1", &pem, &tokens.token_uri());
    open(url, &json!({"gs_endpoint": proxy.url(), "secrets": right.clone()})).expect("the right key opens the layer");
    // Tokens the storage refuses every time: one refresh, then CV_ERR_AUTH.
    proxy.set_validator(Some(Arc::new(|_: &str| false)));
    let before = tokens.requests();
    let (st, msg) = open(url, &json!({"gs_endpoint": proxy.url(), "secrets": right})).err().expect("refused");
    assert_eq!(st, CV_ERR_AUTH, "{msg}");
    assert!(msg.contains("401") && msg.contains("authbkt"), "{msg}");
    assert!(!msg.contains("ya29"), "{msg}");
    leaks(&msg, &pem);
    assert_eq!(tokens.requests() - before, 2, "the first token and one refresh");
    // A refused gs_token is not refreshed, nor shown.
    let (st, msg) = open(url, &json!({"gs_endpoint": proxy.url(), "gs_token": STATIC_TOKEN})).err().expect("refused");
    assert_eq!(st, CV_ERR_AUTH, "{msg}");
    assert!(msg.contains("gs_token") && !msg.contains(STATIC_TOKEN), "{msg}");
    // 403: the bucket is named.
    proxy.set_validator(None);
    proxy.set_forbid(true);
    let (st, msg) = open(url, &json!({"gs_endpoint": proxy.url(), "anonymous": true})).err().expect("forbidden");
    assert_eq!(st, CV_ERR_AUTH, "{msg}");
    assert!(msg.contains("403") && msg.contains("\"authbkt\""), "{msg}");
    proxy.set_forbid(false);
    // Unusable key files: the file is named, not its contents.
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, format!("{{\"private_key\": \"{}", &pem[..200].replace('\n', "\\n"))).unwrap();
    let (st, msg) = open(url, &json!({"gs_endpoint": proxy.url(), "secrets": bad.to_str().unwrap()})).err().unwrap();
    assert_eq!(st, CV_ERR_AUTH, "{msg}");
    assert!(msg.contains("bad.json"), "{msg}");
    leaks(&msg, &pem);
    let mangled = json!({"type": "service_account", "client_email": SA, "private_key": pem.replace("MII", "MIX")});
    let (st, msg) = open(url, &json!({"gs_endpoint": proxy.url(), "secrets": mangled})).err().unwrap();
    assert_eq!(st, CV_ERR_AUTH, "{msg}");
    assert!(msg.contains("private_key"), "{msg}");
    leaks(&msg, &pem);
}

/// Sets environment variables for the scope of a test (restored on drop), holding [`ENV`].
struct EnvGuard {
    saved: Vec<(&'static str, Option<std::ffi::OsString>)>,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl EnvGuard {
    fn new(vars: &[&'static str]) -> EnvGuard {
        let lock = ENV.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        EnvGuard { saved: vars.iter().map(|v| (*v, std::env::var_os(v))).collect(), _lock: lock }
    }
    fn set(&self, k: &str, v: &Path) {
        // SAFETY (edition 2021: safe fn): the ENV lock serializes the tests that touch the
        // environment; no other test of this binary reads these variables.
        std::env::set_var(k, v);
    }
    fn remove(&self, k: &str) {
        std::env::remove_var(k);
    }
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        for (k, v) in &self.saved {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }
}

#[test]
fn secret_files_are_found_like_cloud_files() {
    let Some(gcs) = FakeGcs::start(&["b1", "b2"]) else { return };
    let tmp = TempDir::new("secrets");
    let Some(pem) = key_pem(tmp.path()) else { return };
    let emails = [
        "bucket@x.iam.gserviceaccount.com",
        "cv@x.iam.gserviceaccount.com",
        "cf@x.iam.gserviceaccount.com",
        "option@x.iam.gserviceaccount.com",
        "gac@x.iam.gserviceaccount.com",
    ];
    let pk = token_server::public_key_der(&pem);
    let accounts = emails
        .iter()
        .map(|e| token_server::Account { email: (*e).into(), key_id: "k".into(), public_key: pk.clone() })
        .collect();
    let tokens = TokenServer::start(accounts, Duration::from_secs(600));
    let proxy = AuthProxy::start(&gcs.url(), None);
    for b in ["b1", "b2"] {
        gcs.upload(b, "l/obj", b"x", None);
    }
    let key = |email: &str| token_server::service_account_json(email, "k", &pem, &tokens.token_uri()).to_string();
    let env = EnvGuard::new(&["CLOUD_VOLUME_DIR", "CLOUD_FILES_DIR", "GOOGLE_APPLICATION_CREDENTIALS"]);
    let (cv, cf) = (tmp.path().join("cv"), tmp.path().join("cf"));
    std::fs::create_dir_all(cv.join("secrets")).unwrap();
    std::fs::create_dir_all(cf.join("secrets")).unwrap();
    env.set("CLOUD_VOLUME_DIR", &cv);
    env.set("CLOUD_FILES_DIR", &cf);
    env.remove("GOOGLE_APPLICATION_CREDENTIALS");
    // Which account a fresh store of `bucket` uses (None: anonymous), and the request it made.
    let used = |bucket: &str, extra: Value| -> (Option<String>, token_server::Seen) {
        let mut o = json!({"gs_endpoint": proxy.url()});
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        let before = tokens.issuers().len();
        proxy.clear_log();
        assert!(store(&format!("gs://{bucket}/l"), &opts(o)).exists("obj").unwrap());
        let issuers = tokens.issuers();
        assert!(issuers.len() <= before + 1);
        (issuers.get(before).cloned(), proxy.log()[0].clone())
    };
    // Nothing anywhere: anonymous, public URL.
    let (who, req) = used("b1", json!({}));
    assert_eq!(who, None);
    assert!(req.bearer.is_none() && req.target == "/b1/l/obj", "{req:?}");
    // $CLOUD_FILES_DIR/secrets is a fallback...
    std::fs::write(cf.join("secrets/google-secret.json"), key(emails[2])).unwrap();
    assert_eq!(used("b1", json!({})).0.as_deref(), Some(emails[2]));
    // ... behind $CLOUD_VOLUME_DIR/secrets ...
    std::fs::write(cv.join("secrets/google-secret.json"), key(emails[1])).unwrap();
    let (who, req) = used("b1", json!({}));
    assert_eq!(who.as_deref(), Some(emails[1]));
    assert!(req.target.starts_with("/storage/v1/b/b1/o/l%2Fobj") && req.bearer.is_some(), "{req:?}");
    // ... where {bucket}-google-secret.json comes first, for that bucket only.
    std::fs::write(cv.join("secrets/b1-google-secret.json"), key(emails[0])).unwrap();
    assert_eq!(used("b1", json!({})).0.as_deref(), Some(emails[0]));
    assert_eq!(used("b2", json!({})).0.as_deref(), Some(emails[1]));
    // Options win over files.
    let option_key: Value = serde_json::from_str(&key(emails[3])).unwrap();
    assert_eq!(used("b1", json!({"secrets": option_key})).0.as_deref(), Some(emails[3]));
    let (who, req) = used("b1", json!({"gs_token": STATIC_TOKEN}));
    assert!(who.is_none() && req.bearer.as_deref() == Some(STATIC_TOKEN), "{req:?}");
    let (who, req) = used("b1", json!({"anonymous": true}));
    assert!(who.is_none() && req.bearer.is_none() && req.target == "/b1/l/obj", "{req:?}");
    // Secrets for another store only (S3 keys) are not ours: the files are used.
    assert_eq!(
        used("b2", json!({"secrets": {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}})).0.as_deref(),
        Some(emails[1])
    );
    // Without files: GOOGLE_APPLICATION_CREDENTIALS, when it names a service-account key.
    for f in ["secrets/google-secret.json", "secrets/b1-google-secret.json"] {
        std::fs::remove_file(cv.join(f)).unwrap();
    }
    std::fs::remove_file(cf.join("secrets/google-secret.json")).unwrap();
    let gac = tmp.path().join("adc.json");
    std::fs::write(&gac, key(emails[4])).unwrap();
    env.set("GOOGLE_APPLICATION_CREDENTIALS", &gac);
    assert_eq!(used("b1", json!({})).0.as_deref(), Some(emails[4]));
    std::fs::write(
        &gac,
        json!({"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"}).to_string(),
    )
    .unwrap();
    assert_eq!(used("b1", json!({})).0, None, "other application-default credentials: anonymous");
    assert_eq!(tokens.refused(), 0, "{:?}", tokens.refusals());
    drop(env);
}

#[test]
fn corrupted_bodies_are_retried_then_refused() {
    let Some(gcs) = FakeGcs::start(&["cbkt"]) else { return };
    let proxy = AuthProxy::start(&gcs.url(), None);
    let info = info_json("uint8", "raw");
    let chunk: Vec<u8> = (0..16 * 16 * 8).map(|i| (i % 253) as u8).collect();
    for layer in ["plain", "gz"] {
        gcs.upload("cbkt", &format!("{layer}/info"), info.as_bytes(), None);
        for (x, y) in [(0, 0), (16, 0), (0, 16), (16, 16)] {
            let name = format!("{layer}/4_4_40/{x}-{}_{y}-{}_0-8", x + 16, y + 16);
            if layer == "gz" {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                std::io::Write::write_all(&mut e, &chunk).unwrap();
                gcs.upload("cbkt", &name, &e.finish().unwrap(), Some("gzip"));
            } else {
                gcs.upload("cbkt", &name, &chunk, None);
            }
        }
    }
    proxy.set_corrupt(Some("0-16_0-16_0-8"));
    for (mode, auth) in [("json", json!({"gs_token": STATIC_TOKEN})), ("public", json!({"anonymous": true}))] {
        for layer in ["plain", "gz"] {
            let mut o = json!({"gs_endpoint": proxy.url(), "max_attempts": 3});
            for (k, v) in auth.as_object().unwrap() {
                o[k] = v.clone();
            }
            let what = format!("{mode} {layer}");
            proxy.clear_log();
            let s = store(&format!("gs://cbkt/{layer}"), &opts(o.clone()));
            let e = s.get("4_4_40/0-16_0-16_0-8").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Io, "{what}: {e}");
            assert!(e.message().contains("crc32c") && e.message().contains("0-16_0-16_0-8"), "{what}: {e}");
            assert!(e.message().contains("3 attempts"), "{what}: {e}");
            let gets = proxy.log().iter().filter(|r| r.method == "GET" && r.target.contains("0-16_0-16_0-8")).count();
            assert_eq!(gets, 3, "{what}: retried up to max_attempts");
            // Other chunks are fine.
            assert!(s.get("4_4_40/16-32_0-16_0-8").unwrap().is_some(), "{what}");
            // Through the C ABI: CV_ERR_IO naming the chunk, the buffer untouched.
            let h = open(&format!("gs://cbkt/{layer}"), &o).unwrap();
            let mut buf = vec![0xA5u8; 16 * 16 * 8];
            let (st, msg) = h.cutout_into(0, [0, 0, 0], [16, 16, 8], &mut buf);
            assert_eq!(st, CV_ERR_IO, "{what}: {msg}");
            assert!(msg.contains("crc32c") && msg.contains("0-16_0-16_0-8"), "{what}: {msg}");
            assert!(buf.iter().all(|&b| b == 0xA5), "{what}: corrupt bytes reached the buffer");
            // checksum off: one request, the bytes as they came.
            o["checksum"] = json!(false);
            proxy.clear_log();
            let got = store(&format!("gs://cbkt/{layer}"), &opts(o)).get("4_4_40/0-16_0-16_0-8").unwrap().unwrap();
            assert_eq!(proxy.log().len(), 1, "{what}");
            if layer == "plain" {
                assert!(got.bytes != chunk && got.bytes.len() == chunk.len(), "{what}");
            }
        }
    }
}

#[test]
fn the_gcs_store_passes_the_store_suite() {
    let Some(gcs) = FakeGcs::start(&["suitebkt"]) else { return };
    let static_ok: token_server::Validator = Arc::new(|t: &str| t == STATIC_TOKEN);
    let proxy = AuthProxy::start(&gcs.url(), Some(static_ok));
    let caps = support::store_suite::Capabilities { encodings: true, generations: true, listing: true };
    // The JSON API with a token (fake-gcs-server, like Google, takes no anonymous uploads).
    let authed = store("gs://suitebkt/authed", &opts(json!({"gs_endpoint": proxy.url(), "gs_token": STATIC_TOKEN})));
    support::store_suite::conformance(&*authed, "objects", "GCS (JSON API)", caps);
}

#[test]
fn has_data_is_a_json_api_listing_and_agrees_with_cloud_volume() {
    let Some(gcs) = FakeGcs::start(&["hdbkt"]) else { return };
    let static_ok: token_server::Validator = Arc::new(|t: &str| t == STATIC_TOKEN);
    let proxy = AuthProxy::start(&gcs.url(), Some(static_ok));
    let authed = json!({"gs_endpoint": proxy.url(), "gs_token": STATIC_TOKEN});
    let url = "gs://hdbkt/layers/hd";
    // 4_4_40 written; 8_8_40 only a folder marker; 4_4_4 nothing of its own, but a prefix of
    // 4_4_40's key (cloud-volume's bare prefix finds those); 16_16_40 nothing, though the
    // layer "hd2" beside has such a scale.
    let keys = ["4_4_40", "8_8_40", "4_4_4", "16_16_40"];
    let info = support::cv_python::info_with_scales(&keys).to_string();
    let vol = Volume::create(url, &info, opts(authed.clone())).unwrap();
    assert_eq!((0..4).map(|m| vol.has_data(m).unwrap()).collect::<Vec<_>>(), [false; 4], "only the info");
    vol.write_from(0, &Bbox::new([0, 0, 0], [16, 16, 8]), &[7u8; 16 * 16 * 8]).unwrap();
    gcs.upload("hdbkt", "layers/hd/8_8_40/", b"", None);
    gcs.upload("hdbkt", "layers/hd2/16_16_40/0-16_0-16_0-8", b"x", None);
    proxy.clear_log();
    let want = [true, false, true, false];
    assert_eq!((0..4).map(|m| vol.has_data(m).unwrap()).collect::<Vec<_>>(), want, "Volume::has_data");
    // One objects.list of one name per scale, with the token.
    let log = proxy.log();
    let targets: Vec<&str> = log.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        keys.iter()
            .map(|k| format!(
                "/storage/v1/b/hdbkt/o?prefix=layers%2Fhd%2F{k}&maxResults=1&fields=items%28name%29%2CnextPageToken"
            ))
            .collect::<Vec<_>>(),
        "{log:?}"
    );
    assert!(log.iter().all(|s| s.method == "GET" && s.bearer.as_deref() == Some(STATIC_TOKEN)), "{log:?}");
    // Through the C ABI, with a token and anonymously.
    let h = open(url, &authed).unwrap();
    assert_eq!((0..4).map(|m| h.has_data(m).unwrap()).collect::<Vec<_>>(), want, "cv_has_data");
    let anon = open(url, &json!({"gs_endpoint": gcs.url(), "anonymous": true})).unwrap();
    assert_eq!((0..4).map(|m| anon.has_data(m).unwrap()).collect::<Vec<_>>(), want, "anonymous cv_has_data");
    // cloud-volume (google-cloud-storage pointed at the same server).
    let home = TempDir::new("hd-home");
    if let Some(theirs) =
        support::cv_python::has_data(url, &Value::Null, home.path(), &[("STORAGE_EMULATOR_HOST", &gcs.url())])
    {
        assert_eq!(theirs, want, "cloud-volume's has_data");
    }
    // A folder marker before the first object: the next page is asked for.
    vol.write_from(1, &Bbox::new([0, 0, 0], [16, 16, 8]), &[1u8; 16 * 16 * 8]).unwrap();
    proxy.clear_log();
    assert!(vol.has_data(1).unwrap(), "the chunk after the marker");
    let log = proxy.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[1].target.contains("&maxResults=1000&") && log[1].target.contains("&pageToken="), "{log:?}");
    // 503s are retried.
    proxy.fail_next(2);
    assert!(h.has_data(0).unwrap());
    // Refused tokens and forbidden listings: CV_ERR_AUTH naming the bucket, never the token.
    proxy.set_validator(Some(Arc::new(|_: &str| false)));
    let (st, msg) = h.has_data(0).expect_err("a refused token");
    assert_eq!(st, CV_ERR_AUTH, "{msg}");
    assert!(msg.contains("401") && msg.contains("hdbkt") && !msg.contains(STATIC_TOKEN), "{msg}");
    proxy.set_validator(None);
    proxy.set_forbid(true);
    let (st, msg) = h.has_data(0).expect_err("forbidden");
    assert_eq!(st, CV_ERR_AUTH, "{msg}");
    assert!(msg.contains("403") && msg.contains("\"hdbkt\""), "{msg}");
    proxy.set_forbid(false);
    // A bucket that does not exist is no empty listing.
    let e = store("gs://no-such-bkt/layer", &opts(authed)).first_under("4_4_40").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("no-such-bkt"), "{e}");
}
