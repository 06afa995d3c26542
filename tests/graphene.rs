//! graphene:// through the loopback PyChunkedGraph double, checked against what unmodified
//! cloud-volume read through the same double (tests/reference/graphene_check.py): root-id
//! cutouts (agglomerated, supervoxels, before an edit, stop layers 2 and 3; unsharded cseg and
//! sharded raw watershed layers; mips 0 and 1) voxel for voxel, the roots requests both made,
//! unique labels; CAVE tokens from secret files; refused tokens, faults and garbage answers.

mod support;

use cloudvolume::ffi::*;
use serde_json::{json, Value};
use support::cabi::{expect_err, open, open_ok, status_name};
use support::chunkedgraph::{fixture, Double};
use support::env::cli;

fn triple(v: &Value) -> [i64; 3] {
    let a = v.as_array().expect("triple");
    [a[0].as_i64().unwrap(), a[1].as_i64().unwrap(), a[2].as_i64().unwrap()]
}

fn opts(token: &str, c: &Value) -> Value {
    let mut o = json!({"secrets": token, "agglomerate": c["agglomerate"]});
    if !c["timestamp"].is_null() {
        o["timestamp"] = c["timestamp"].clone();
    }
    if !c["stop_layer"].is_null() {
        o["stop_layer"] = c["stop_layer"].clone();
    }
    o
}

/// The fields of a roots request both clients must agree on.
fn roots_requests(reqs: &[Value]) -> Vec<Value> {
    reqs.iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains("roots")))
        .map(|r| json!({"path": r["path"], "query": r["query"], "n_ids": r["n_ids"], "auth": r["auth"]}))
        .collect()
}

#[test]
fn root_id_cutouts_equal_cloud_volumes_with_the_same_requests() {
    let Some((dir, m)) = fixture() else { return };
    let token = m["token"].as_str().unwrap();
    let Some(double) = Double::start(&dir, Some(token)) else { return };
    let mut n = 0;
    for c in m["cutouts"].as_array().unwrap() {
        let url = double.url(c["table"].as_str().unwrap());
        let (mip, lo, hi) = (c["mip"].as_u64().unwrap() as u32, triple(&c["lo"]), triple(&c["hi"]));
        let o = opts(token, c);
        let vol = open_ok(&url, &o);
        double.control(json!({"clear_log": true}));
        let got =
            vol.read(mip, lo, hi).unwrap_or_else(|(s, e)| panic!("{url} {o} {lo:?}-{hi:?}: {} {e}", status_name(s)));
        let want = std::fs::read(dir.join(c["file"].as_str().unwrap())).unwrap();
        assert!(got == want, "{url} mip {mip} {lo:?}-{hi:?} {o}: differs from cloud-volume's cutout");
        let ours = roots_requests(&double.requests());
        let theirs = roots_requests(c["requests"].as_array().unwrap());
        assert_eq!(ours, theirs, "{url} mip {mip} {lo:?}-{hi:?} {o}: roots requests differ from cloud-volume's");
        n += 1;
    }
    assert!(n >= 30, "{n} cutouts");
    eprintln!("graphene: {n} cutouts equal cloud-volume's, roots requests identical");
}

#[test]
fn unique_equals_cloud_volumes() {
    let Some((dir, m)) = fixture() else { return };
    let token = m["token"].as_str().unwrap();
    let Some(double) = Double::start(&dir, Some(token)) else { return };
    for u in m["unique"].as_array().unwrap() {
        let url = double.url(u["table"].as_str().unwrap());
        let (mip, lo, hi) = (u["mip"].as_u64().unwrap() as u32, triple(&u["lo"]), triple(&u["hi"]));
        let vol = open_ok(&url, &json!({"secrets": token, "agglomerate": u["agglomerate"]}));
        let (labels, counts) = vol.unique(mip, lo, hi).expect("cv_unique");
        let want: Vec<u64> = std::fs::read(dir.join(u["file"].as_str().unwrap()))
            .unwrap()
            .chunks_exact(8)
            .map(|e| u64::from_le_bytes(e.try_into().unwrap()))
            .collect();
        assert_eq!(labels, want, "{url} {lo:?}-{hi:?} agglomerate={}", u["agglomerate"]);
        let voxels: i64 = (0..3).map(|d| hi[d] - lo[d]).product();
        assert_eq!(counts.iter().sum::<u64>(), voxels as u64);
        // The counts are those of the cutout.
        let cut = vol.read(mip, lo, hi).unwrap();
        let mut model = std::collections::BTreeMap::<u64, u64>::new();
        for e in cut.chunks_exact(8) {
            *model.entry(u64::from_le_bytes(e.try_into().unwrap())).or_default() += 1;
        }
        assert_eq!(counts, model.values().copied().collect::<Vec<_>>(), "{url}: counts");
    }
}

#[test]
fn tokens_are_found_in_secret_files_and_refusals_name_the_host_not_the_token() {
    let Some((dir, m)) = fixture() else { return };
    let token = m["token"].as_str().unwrap();
    let Some(double) = Double::start(&dir, Some(token)) else { return };
    let url = double.url("test");
    let c = &m["cutouts"][0];
    let (lo, hi) = (triple(&c["lo"]), triple(&c["hi"]));
    let bbox = format!("{},{},{},{},{},{}", lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]);
    let tmp = support::files::TempDir::new("graphene-secrets");
    let out = tmp.join("cut.raw");
    // cave-secret.json in $CLOUD_VOLUME_DIR/secrets (the CLI is a child process with its own env).
    let run = |cvdir: &std::path::Path| {
        cli()
            .env("CLOUD_VOLUME_DIR", cvdir)
            .env("HOME", tmp.path())
            .env("CLOUD_FILES_DIR", tmp.join("nocf"))
            .args(["cutout", &url, "--bbox", &bbox, "-o", out.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let r = run(&dir);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(dir.join(c["file"].as_str().unwrap())).unwrap());
    // The host-specific file wins over cave-secret.json; the legacy name is read too.
    let cv = tmp.join("cv");
    std::fs::create_dir_all(cv.join("secrets")).unwrap();
    std::fs::write(cv.join("secrets/chunkedgraph-secret.json"), json!({"token": token}).to_string()).unwrap();
    let r = run(&cv);
    assert!(r.status.success(), "legacy chunkedgraph-secret.json: {}", String::from_utf8_lossy(&r.stderr));
    let host = format!("127.0.0.1:{}", double.port);
    std::fs::write(cv.join(format!("secrets/{host}-cave-secret.json")), r#"{"token": "deadbeef00"}"#).unwrap();
    let r = run(&cv);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1));
    assert!(err.contains("401") && err.contains(&host) && err.contains("-cave-secret.json"), "{err}");
    assert!(!err.contains("deadbeef00") && !err.contains(token), "a token leaked: {err}");
    // A refused token through the C ABI: CV_ERR_AUTH naming the host, never the token.
    let e = expect_err(open(&url, &json!({"secrets": "0123abcd"})), CV_ERR_AUTH, &["401", &host]);
    assert!(!e.contains("0123abcd"), "{e}");
    // No token at all: middle_auth_client redirects to its sign-in page; the message says no
    // token was found.
    let empty = tmp.join("empty");
    let r = run(&empty);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("302") && err.contains("sign-in") && err.contains("no CAVE token"), "{err}");
    // A token file that is not a token: refused before any request, naming the file.
    std::fs::write(cv.join(format!("secrets/{host}-cave-secret.json")), r#"{"token": "not a token!"}"#).unwrap();
    let r = run(&cv);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("-cave-secret.json") && !err.contains("not a token!"), "{err}");
}

#[test]
fn faults_garbage_and_bad_tables_get_clear_statuses() {
    let Some((dir, m)) = fixture() else { return };
    let token = m["token"].as_str().unwrap();
    let Some(double) = Double::start(&dir, Some(token)) else { return };
    let c = &m["cutouts"][0];
    let (lo, hi) = (triple(&c["lo"]), triple(&c["hi"]));
    let want = std::fs::read(dir.join(c["file"].as_str().unwrap())).unwrap();
    let o = json!({"secrets": token, "retry_budget": 30});
    let vol = open_ok(&double.url("test"), &o);
    // Two scripted 503s: retried, then the right answer.
    double.control(json!({"fail": 2, "status": 503, "clear_log": true}));
    assert!(vol.read(0, lo, hi).expect("read after 503s") == want);
    let statuses: Vec<i64> = double.requests().iter().map(|r| r["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, vec![503, 503, 200], "two refusals, then the answer");
    // Too many 503s: CV_ERR_IO naming the URL and the attempts.
    let few = open_ok(&double.url("test"), &json!({"secrets": token, "max_attempts": 2}));
    double.control(json!({"fail": 5}));
    expect_err(few.read(0, lo, hi), CV_ERR_IO, &["roots_binary", "503", "2 attempts"]);
    double.control(json!({"reset": true}));
    // A server answering garbage: CV_ERR_DECODE naming the URL and the lengths.
    double.control(json!({"garbage": 1}));
    expect_err(vol.read(0, lo, hi), CV_ERR_DECODE, &["roots_binary", "7 bytes"]);
    // An unknown table, a data_dir that does not exist.
    expect_err(open(&double.url("nosuch"), &o), CV_ERR_NOT_FOUND, &["nosuch", "invalid_table_id"]);
    expect_err(open(&double.url("missing"), &o), CV_ERR_NOT_FOUND, &["ws_missing", "does not exist"]);
    // Bad options, a dead server, writes.
    expect_err(
        open(&double.url("test"), &json!({"secrets": token, "stop_layer": 9})),
        CV_ERR_INVALID_ARGUMENT,
        &["stop_layer", "4 layers"],
    );
    expect_err(
        open(
            &format!("graphene://http://127.0.0.1:{}/segmentation/table/test", support::env::free_port()),
            &json!({"secrets": token, "max_attempts": 1}),
        ),
        CV_ERR_IO,
        &["127.0.0.1"],
    );
    expect_err(
        open("graphene://http://127.0.0.1:1/segmentation/nope", None::<&str>),
        CV_ERR_INVALID_ARGUMENT,
        &["graphene path"],
    );
    let buf = vec![0u8; want.len()];
    // SAFETY: a live handle, 3-element boxes, a buffer of the length given.
    let st = unsafe { cv_write_from(vol.0, 0, lo.as_ptr(), hi.as_ptr(), buf.as_ptr().cast(), buf.len()) };
    let msg = support::cabi::last_error();
    assert_eq!(st, CV_ERR_UNSUPPORTED, "{msg}");
    assert!(msg.contains("graphene"), "{msg}");
    // Supervoxels with agglomerate=false make no roots request; stop_layer 1 neither.
    for o in [json!({"secrets": token, "agglomerate": false}), json!({"secrets": token, "stop_layer": 1})] {
        let v = open_ok(&double.url("test"), &o);
        double.control(json!({"clear_log": true}));
        v.read(0, lo, hi).unwrap();
        assert!(roots_requests(&double.requests()).is_empty(), "{o}: no roots requests");
    }
}

fn sha256_hex(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b).as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

fn u64s(bytes: &[u8]) -> Vec<u64> {
    bytes.chunks_exact(8).map(|e| u64::from_le_bytes(e.try_into().unwrap())).collect()
}

/// The label operations cloud-volume ran on the fixture's layers (graphene and the watershed
/// layers under it): masks, renumbering, download_point, has_data, download_files.
#[test]
fn label_operations_equal_cloud_volumes_on_the_fixture() {
    let Some((dir, m)) = fixture() else { return };
    let token = m["token"].as_str().unwrap();
    let Some(double) = Double::start(&dir, Some(token)) else { return };
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for c in m["cases"].as_array().unwrap() {
        let kind = c["kind"].as_str().unwrap();
        if !matches!(kind, "label_mask" | "renumber" | "download_point" | "has_data" | "download_files") {
            continue;
        }
        let layer = c["layer"].as_str().unwrap();
        let (url, opts) = match layer.strip_prefix("graphene:") {
            Some(t) => (double.url(t), json!({"secrets": token, "agglomerate": c["options"]["agglomerate"]})),
            None => (support::files::file_url(&dir.join(layer)), json!({})),
        };
        let vol = open_ok(&url, &opts);
        let mip = c["mip"].as_u64().unwrap() as u32;
        let id = c["id"].as_str().unwrap_or(kind);
        let expected = || std::fs::read(dir.join(c["expected"].as_str().unwrap())).unwrap();
        match kind {
            "label_mask" => {
                let (lo, hi) = (triple(&c["lo"]), triple(&c["hi"]));
                let label: u64 = c["options"]["label"].as_str().unwrap().parse().unwrap();
                let n: i64 = (0..3).map(|d| hi[d] - lo[d]).product();
                let got = vol.label_mask(mip, lo, hi, &[label], n as usize).expect("cv_label_mask_into");
                assert!(got == expected(), "{id}: mask differs from cloud-volume's");
            }
            "renumber" => {
                let (lo, hi) = (triple(&c["lo"]), triple(&c["hi"]));
                // cloud-volume numbers labels in the order its threads finish chunks; ours in
                // ascending order. Both must map back to the same cutout.
                let plain = u64s(&vol.read(mip, lo, hi).unwrap());
                let theirs: std::collections::HashMap<u64, u64> = c["mapping"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[1].as_str().unwrap().parse().unwrap(), p[0].as_str().unwrap().parse().unwrap()))
                    .collect();
                let want = expected();
                let size = match c["dtype"].as_str().unwrap() {
                    "uint8" => 1,
                    "uint16" => 2,
                    "uint32" => 4,
                    _ => 8,
                };
                let decode = |b: &[u8], size: usize| -> Vec<u64> {
                    b.chunks_exact(size)
                        .map(|e| {
                            let mut a = [0u8; 8];
                            a[..size].copy_from_slice(e);
                            u64::from_le_bytes(a)
                        })
                        .collect()
                };
                let cv_back: Vec<u64> = decode(&want, size).iter().map(|v| theirs[v]).collect();
                assert!(cv_back == plain, "{id}: cloud-volume's renumbered cutout does not map back to ours");
                let (data, dtype, labels) = vol.renumber(mip, lo, hi).expect("cv_renumber");
                let ours: Vec<u64> = decode(&data, cv_dtype_size(dtype)).iter().map(|&v| labels[v as usize]).collect();
                assert!(ours == plain, "{id}: our renumbered cutout does not map back");
                assert!(cv_dtype_size(dtype) <= size, "{id}: ours is no wider than cloud-volume's {size} bytes");
            }
            "download_point" => {
                let p = c["point"].as_array().unwrap();
                let pt = [p[0].as_f64().unwrap(), p[1].as_f64().unwrap(), p[2].as_f64().unwrap()];
                let size = match &c["size"] {
                    Value::Array(a) => [a[0].as_i64().unwrap(), a[1].as_i64().unwrap(), a[2].as_i64().unwrap()],
                    v => [v.as_i64().unwrap(); 3],
                };
                let cr = c["coord_resolution"]
                    .as_array()
                    .map(|a| [a[0].as_f64().unwrap(), a[1].as_f64().unwrap(), a[2].as_f64().unwrap()]);
                let (lo, hi) = vol.point_box(mip, pt, size, cr).expect("cv_point_box");
                assert_eq!((lo, hi), (triple(&c["read_lo"]), triple(&c["read_hi"])), "{id}: the box read");
                assert!(vol.read(mip, lo, hi).unwrap() == expected(), "{id}: the voxels read");
            }
            "has_data" => {
                let mut out = -1i32;
                // SAFETY: a live handle and a writable flag.
                assert_eq!(
                    unsafe { cv_has_data(vol.0, mip, &mut out) },
                    CV_OK,
                    "{id}: {}",
                    support::cabi::last_error()
                );
                assert_eq!(out == 1, c["value"].as_bool().unwrap(), "{id}");
            }
            _ => {
                let (lo, hi) = (triple(&c["lo"]), triple(&c["hi"]));
                let dec = c["options"]["decompress"].as_bool().unwrap_or(true);
                let ours: std::collections::BTreeMap<String, String> = vol
                    .download_files(mip, lo, hi, dec)
                    .unwrap()
                    .into_iter()
                    .map(|(n, b)| (n, sha256_hex(&b)))
                    .collect();
                let theirs: std::collections::BTreeMap<String, String> = c["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| (f["name"].as_str().unwrap().to_string(), f["sha256"].as_str().unwrap().to_string()))
                    .collect();
                assert_eq!(ours, theirs, "{id}: files");
            }
        }
        *checked.entry(kind.to_string()).or_default() += 1;
    }
    eprintln!("graphene fixture label operations equal cloud-volume's: {checked:?}");
    assert!(checked.len() == 5, "every kind checked: {checked:?}");
}
