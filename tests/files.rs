//! `cv_download_files` against cloud-volume's `download_files` on the reference layers:
//! the same names (chunk keys; compressed Morton codes in sharded scales) and the same bytes
//! decompressed; undecompressed, ours are the stored bytes (cloud-volume inflates `.gz` files
//! on file:// even then), which inflate to cloud-volume's.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;
use support::cabi::{expect_err, open_ok};
use support::env::{python, reference_dir, required};
use support::files::file_url;

/// (layer, mip, lo, hi) cases: gzip'd chunk files, cseg, sharded (cloud-volume and tensorstore
/// written), a box off the grid and a box past the edge of the grid.
fn cases(m: &Value) -> Vec<(String, u32, [i64; 3], [i64; 3])> {
    let mut out = Vec::new();
    for name in
        ["cv/raw_uint16_c2", "cv/cseg_uint64_c1_b8x8x8", "cv/sharded_cseg_uint64_c1", "ts/sharded_raw_uint32_c1_mixed"]
    {
        let l = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["path"] == name)
            .unwrap_or_else(|| panic!("{name} in the manifest"));
        for (mip, g) in l["mips"].as_array().unwrap().iter().enumerate().take(2) {
            let t = |k: &str| -> [i64; 3] {
                let a = g[k].as_array().unwrap();
                [a[0].as_i64().unwrap(), a[1].as_i64().unwrap(), a[2].as_i64().unwrap()]
            };
            let (o, s) = (t("voxel_offset"), t("size"));
            out.push((name.to_string(), mip as u32, o, [o[0] + s[0], o[1] + s[1], o[2] + s[2]]));
            out.push((
                name.to_string(),
                mip as u32,
                [o[0] + 3, o[1] + 1, o[2] + 1],
                [o[0] + s[0] / 2 + 1, o[1] + s[1] - 2, o[2] + s[2]],
            ));
        }
    }
    out
}

#[test]
fn download_files_equals_cloud_volumes() {
    let dir = reference_dir();
    let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) else {
        assert!(!required(), "CV_REQUIRE_REFERENCE=1 but no reference layers at {}", dir.display());
        eprintln!("SKIP: no reference layers; download_files checks skipped");
        return;
    };
    let Some(py) = python("download_files checks against cloud-volume") else { return };
    let m: Value = serde_json::from_str(&text).unwrap();
    let cases = cases(&m);
    let spec: Vec<Value> = cases
        .iter()
        .map(|(l, mip, lo, hi)| serde_json::json!({"url": file_url(&dir.join(l)), "mip": mip, "lo": lo, "hi": hi}))
        .collect();
    let script = r#"
import hashlib, json, sys, warnings
warnings.filterwarnings("ignore")
from cloudvolume import CloudVolume, Bbox
out = []
for c in json.loads(sys.argv[1]):
    vol = CloudVolume(c["url"], mip=c["mip"], progress=False)
    row = {}
    for dec in (True, False):
        files = vol.download_files(Bbox(c["lo"], c["hi"]), mip=c["mip"], decompress=dec)
        row[str(dec)] = {str(k): hashlib.sha256(v).hexdigest() for k, v in files.items() if v is not None}
    out.append(row)
print(json.dumps(out))
"#;
    let res = Command::new(py).arg("-c").arg(script).arg(Value::Array(spec).to_string()).output().expect("run python");
    assert!(res.status.success(), "cloud-volume failed: {}", String::from_utf8_lossy(&res.stderr));
    let want: Vec<Value> = serde_json::from_slice(&res.stdout).expect("JSON from cloud-volume");
    let mut checked = 0;
    for ((layer, mip, lo, hi), w) in cases.iter().zip(&want) {
        let v = open_ok(&file_url(&dir.join(layer)), None::<&str>);
        for dec in [true, false] {
            let got = v.download_files(*mip, *lo, *hi, dec).unwrap_or_else(|e| panic!("{layer} {mip}: {e:?}"));
            let ours: BTreeMap<String, String> = got.iter().map(|(n, b)| (n.clone(), sha256_hex(b))).collect();
            let theirs: BTreeMap<String, String> = w[dec.to_string().replace('t', "T").replace('f', "F")]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            assert_eq!(
                ours.keys().collect::<Vec<_>>(),
                theirs.keys().collect::<Vec<_>>(),
                "{layer} mip {mip} {lo:?}-{hi:?} decompress={dec}: names"
            );
            if dec {
                assert!(
                    ours == theirs,
                    "{layer} mip {mip} {lo:?}-{hi:?}: decompressed contents differ from cloud-volume's"
                );
            } else {
                // cloud-volume inflates `.gz` chunk files on file:// even with decompress=False;
                // ours are the stored bytes: inflated, they are cloud-volume's.
                for (n, b) in &got {
                    // Shard data is handed over as stored by both.
                    let plain = if layer.contains("sharded") { b.clone() } else { inflate(b) };
                    assert_eq!(
                        sha256_hex(&plain),
                        theirs[n],
                        "{layer} mip {mip} {n}: stored bytes do not inflate to cloud-volume's"
                    );
                }
            }
            assert!(!ours.is_empty());
            checked += ours.len();
        }
    }
    eprintln!("download_files: {checked} files in {} cases equal cloud-volume's", cases.len());
}

/// gzip removed when the bytes are gzip, else the bytes.
fn inflate(b: &[u8]) -> Vec<u8> {
    if b.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(b), &mut out).expect("gzip");
        out
    } else {
        b.to_vec()
    }
}

fn sha256_hex(b: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, b);
    d.as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn download_files_bad_input() {
    let seg = support::layers::Layer::write(support::layers::Spec::new("uint8", [16, 16, 8], [8, 8, 8]));
    let v = open_ok(&seg.dir.url(), None::<&str>);
    expect_err(v.download_files(0, [0, 0, 0], [0, 4, 4], true), cloudvolume::ffi::CV_ERR_INVALID_ARGUMENT, &["empty"]);
    expect_err(v.download_files(0, [0, 0, 0], [20, 4, 4], true), cloudvolume::ffi::CV_ERR_OUT_OF_BOUNDS, &["bounds"]);
    let all = v.download_files(0, [0, 0, 0], [16, 16, 8], true).expect("files");
    assert_eq!(
        all.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        ["s0/0-8_0-8_0-8", "s0/8-16_0-8_0-8", "s0/0-8_8-16_0-8", "s0/8-16_8-16_0-8"]
    );
    assert!(all.iter().all(|f| f.1.len() == 512), "raw chunks of 8x8x8 uint8");
    std::fs::remove_file(seg.dir.join("s0/8-16_0-8_0-8")).unwrap();
    assert_eq!(
        v.download_files(0, [0, 0, 0], [16, 16, 8], true).expect("files").len(),
        3,
        "a missing chunk is left out"
    );
    // SAFETY: NULL handles are refused or ignored.
    unsafe {
        assert_eq!(cloudvolume::ffi::cv_files_count(std::ptr::null()), 0);
        cloudvolume::ffi::cv_files_free(std::ptr::null_mut());
    }
}
