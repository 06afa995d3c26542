//! graphene:// root-id cutouts holding more supervoxels than one `roots_binary` request takes,
//! through the loopback PyChunkedGraph double, checked against what unmodified cloud-volume read
//! through the same double (tests/reference/graphene_big.py, `$CV_REFERENCE_DIR/graphene_big`):
//! the voxels, and from the double's request record that the ids went in batches of at most
//! 250,000 (each id asked once, split as cloud-volume splits them), that request bodies past
//! 1 MB were sent gzipped and that answers past 1 MB came back gzipped and were read.
//!
//! PyChunkedGraph's `roots_binary` itself has no limit on the ids of a request (the batch is the
//! clients' own choice), and neither has the double, so there is no over-the-limit error to test.

mod support;

use std::path::PathBuf;
use std::time::Instant;

use cloudvolume::{Bbox, Options, Volume};
use serde_json::{json, Value};
use support::chunkedgraph::Double;
use support::env::{reference_dir, required};

/// The fixture directory and its manifest, or None (after a notice) when absent and not required.
fn fixture() -> Option<(PathBuf, Value)> {
    let dir = reference_dir().join("graphene_big");
    match std::fs::read_to_string(dir.join("manifest.json")) {
        Ok(t) => Some((dir, serde_json::from_str(&t).expect("graphene_big manifest is JSON"))),
        Err(e) => {
            assert!(
                !required(),
                "CV_REQUIRE_REFERENCE=1 but {}/manifest.json cannot be read ({e}): run tests/reference/graphene_big.py",
                dir.display()
            );
            eprintln!("SKIP: no graphene_big fixture at {}; test skipped", dir.display());
            None
        }
    }
}

fn triple(v: &Value) -> [i64; 3] {
    let a = v.as_array().expect("triple");
    [a[0].as_i64().unwrap(), a[1].as_i64().unwrap(), a[2].as_i64().unwrap()]
}

fn num(v: &Value, what: &str) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{what}: not a count: {v}"))
}

/// The `roots_binary` records of a request log.
fn roots_binary(reqs: &[Value]) -> Vec<&Value> {
    reqs.iter().filter(|r| r["route"] == "roots_binary").collect()
}

#[test]
fn cutouts_past_one_roots_batch_equal_cloud_volumes_in_batches_gzipped_both_ways() {
    let Some((dir, m)) = fixture() else { return };
    let token = m["token"].as_str().expect("token");
    let limit = num(&m["batch_limit"], "batch_limit");
    let gzip_over = num(&m["gzip_over"], "gzip_over");
    let supervoxels = num(&m["supervoxels"], "supervoxels");
    assert_eq!((limit, gzip_over), (250_000, 1_000_000), "the fixture's limits");
    assert!(supervoxels > 300_000, "the fixture holds {supervoxels} distinct supervoxels, want > 300,000");
    let Some(double) = Double::start(&dir, Some(token)) else { return };
    let url = double.url(m["table"].as_str().expect("table"));
    let cutouts = m["cutouts"].as_array().expect("cutouts");
    assert!(!cutouts.is_empty());
    for c in cutouts {
        let id = c["id"].as_str().unwrap();
        let (lo, hi) = (triple(&c["lo"]), triple(&c["hi"]));
        let mut o = json!({"secrets": token, "agglomerate": c["options"]["agglomerate"]});
        if !c["options"]["stop_layer"].is_null() {
            o["stop_layer"] = c["options"]["stop_layer"].clone();
        }
        let opts = Options::parse(Some(&o.to_string())).unwrap_or_else(|e| panic!("{id}: options {o}: {e}"));
        let vol = Volume::open(&url, opts).unwrap_or_else(|e| panic!("{id}: open {url}: {e}"));
        double.control(json!({"clear_log": true}));
        let t = Instant::now();
        let got = vol.cutout(0, &Bbox::new(lo, hi)).unwrap_or_else(|e| panic!("{id}: cutout {lo:?}-{hi:?}: {e}"));
        let secs = t.elapsed().as_secs_f64();
        let reqs = double.requests();

        // The voxels: cloud-volume's, byte for byte.
        let want = std::fs::read(dir.join(c["file"].as_str().unwrap())).unwrap();
        if got != want {
            let bad = got.chunks_exact(8).zip(want.chunks_exact(8)).filter(|(a, b)| a != b).count();
            panic!(
                "{id}: {bad} of {} voxels differ from cloud-volume's cutout ({} bytes read, {} expected)",
                want.len() / 8,
                got.len(),
                want.len()
            );
        }

        // Our batches, from the double's record.
        let ours = roots_binary(&reqs);
        assert!(ours.len() >= 2, "{id}: {} roots_binary requests for {supervoxels} ids, want >= 2", ours.len());
        let mut total = 0;
        let mut big = 0;
        for (i, r) in ours.iter().enumerate() {
            // 200 (under --token also: the token was taken), and no retries to count as batches.
            assert_eq!(r["status"], 200, "{id}: roots_binary request {i}: {r}");
            let n = num(&r["n_ids"], "n_ids");
            let raw = n * 8;
            let what = format!("{id}: roots_binary request {i} ({n} ids)");
            assert!(n <= limit, "{what}: more than {limit} ids in one request");
            total += n;
            if raw > gzip_over {
                big += 1;
                // Sent gzipped: the header says so, and the body on the wire is the compressed one
                // (the double gunzipped it into n ids).
                assert_eq!(r["content_encoding"], "gzip", "{what}: a {raw}-byte body sent without gzip: {r}");
                let wire = num(&r["content_length"], "content_length");
                assert!(wire < raw, "{what}: {wire} bytes on the wire for a {raw}-byte body: {r}");
                // The answer (one uint64 per id, past 1 MB too) was asked for and sent gzipped;
                // that we read it is shown by the voxels above.
                let accept = r["accept_encoding"].as_str().unwrap_or("");
                assert!(accept.contains("gzip"), "{what}: Accept-Encoding {accept:?}: {r}");
                assert_eq!(r["response_encoding"], "gzip", "{what}: the {raw}-byte answer was not gzipped: {r}");
                let back = num(&r["response_bytes"], "response_bytes");
                assert!(back < raw, "{what}: {back} bytes answered for {raw}: {r}");
            }
        }
        assert_eq!(total, supervoxels, "{id}: ids asked in all (each distinct supervoxel once)");
        assert!(big >= 1, "{id}: no request body past {gzip_over} bytes: the gzip checks checked nothing");

        // Split as cloud-volume splits them (both sort the distinct ids), same route and query.
        let theirs = roots_binary(c["requests"].as_array().unwrap());
        let shape = |rs: &[&Value]| -> Vec<Value> {
            rs.iter().map(|r| json!({"path": r["path"], "query": r["query"], "n_ids": r["n_ids"]})).collect()
        };
        assert_eq!(shape(&ours), shape(&theirs), "{id}: our batches differ from cloud-volume's");
        let sizes: Vec<String> = ours
            .iter()
            .map(|r| {
                format!(
                    "{} ids, {} -> {} B {}, answer {} B {}",
                    r["n_ids"],
                    num(&r["n_ids"], "n_ids") * 8,
                    r["content_length"],
                    r["content_encoding"].as_str().unwrap_or("plain"),
                    r["response_bytes"],
                    r["response_encoding"].as_str().unwrap_or("plain")
                )
            })
            .collect();
        eprintln!("graphene_big {id}: {supervoxels} supervoxels, cutout {secs:.2} s, roots_binary: {sizes:?}");
    }
}
