//! DVID data instances through the loopback DVID double (tests/servers/dvid.py, built from DVID's
//! own source): repos and instances created, every type DVID stores written and read back
//! (aligned and unaligned boxes, past the extents), the bytes on the wire checked against DVID's
//! ZYX layout with plain HTTP, labelmap supervoxels vs merged labels and its computed downres
//! level, tiles in parallel, non-aligned writes, busy and failing servers, tokens, unknown nodes
//! and instances, the C ABI and the CLI.

mod support;

use cloudvolume::volume::{create_dvid_repo, new_info, NewInfo};
use cloudvolume::{Bbox, DataType, Encoding, ErrorKind, Options, Volume};
use serde_json::{json, Value};
use support::env::cli;
use support::service_double::ServiceDouble;

fn opts(v: Value) -> Options {
    Options::parse(Some(&v.to_string())).expect("options")
}

/// A deterministic pseudo-random byte stream.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Labels: a few distinct uint64 values in blobs (so LZ4 has something to do), some 0.
fn labels(shape: [i64; 3], seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for z in 0..shape[2] {
        for y in 0..shape[1] {
            for x in 0..shape[0] {
                let v: u64 = ((x / 7 + y / 5 * 3 + z / 4 * 11) as u64 + seed) % 9;
                let v = if v == 0 { 0 } else { v + (1 << 40) };
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    out
}

/// The part `inner` of planar `[x, y, z, c]` data over `outer` (zeros where `inner` leaves it).
fn sub(data: &[u8], outer: &Bbox, inner: &Bbox, channels: usize, item: usize) -> Vec<u8> {
    let os = outer.shape();
    let is = inner.shape();
    let mut out = vec![0u8; (is[0] * is[1] * is[2]) as usize * channels * item];
    for c in 0..channels as i64 {
        for z in inner.lo[2]..inner.hi[2] {
            for y in inner.lo[1]..inner.hi[1] {
                for x in inner.lo[0]..inner.hi[0] {
                    let inside = (0..3).all(|d| [x, y, z][d] >= outer.lo[d] && [x, y, z][d] < outer.hi[d]);
                    if !inside {
                        continue;
                    }
                    let si = ((((c * os[2] + z - outer.lo[2]) * os[1] + y - outer.lo[1]) * os[0]) + x - outer.lo[0])
                        as usize
                        * item;
                    let di = ((((c * is[2] + z - inner.lo[2]) * is[1] + y - inner.lo[1]) * is[0]) + x - inner.lo[0])
                        as usize
                        * item;
                    out[di..di + item].copy_from_slice(&data[si..si + item]);
                }
            }
        }
    }
    out
}

/// Planar `[x, y, z, c]` as DVID's packed voxels (channels interleaved per voxel).
fn packed(planar: &[u8], voxels: usize, channels: usize, item: usize) -> Vec<u8> {
    let mut out = vec![0u8; planar.len()];
    for c in 0..channels {
        for v in 0..voxels {
            out[(v * channels + c) * item..][..item].copy_from_slice(&planar[(c * voxels + v) * item..][..item]);
        }
    }
    out
}

fn info(dtype: DataType, channels: u32, seg: bool, chunk: i64, res: [f64; 3]) -> String {
    new_info(&NewInfo {
        layer_type: if seg {
            cloudvolume::format::LayerType::Segmentation
        } else {
            cloudvolume::format::LayerType::Image
        },
        data_type: dtype,
        encoding: Encoding::Raw,
        num_channels: channels,
        resolution: res,
        voxel_offset: [0, 0, 0],
        size: [1, 1, 1],
        chunk_size: [chunk; 3],
        cseg_block_size: None,
    })
    .expect("info")
    .to_string()
}

/// `GET` a path of the double, the body.
fn get(base: &str, path: &str) -> Vec<u8> {
    let r = ureq::get(&format!("{base}{path}")).call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut v).unwrap();
    v
}

fn start(args: &[&str]) -> Option<(ServiceDouble, String, String)> {
    let d = ServiceDouble::start("dvid.py", args)?;
    let host = format!("127.0.0.1:{}", d.port);
    let o = if args.contains(&"--token") { json!({"secrets": "sekrit"}) } else { json!({}) };
    let uuid = create_dvid_repo(&host, "tests", "cloudvolume's DVID tests", &opts(o)).expect("create a repo");
    Some((d, host, uuid))
}

#[test]
fn every_type_round_trips_and_lies_on_the_wire_as_dvid_lays_it() {
    let Some((d, host, uuid)) = start(&[]) else { return };
    let types: [(&str, DataType, u32, bool); 7] = [
        ("u8", DataType::U8, 1, false),
        ("u16", DataType::U16, 1, false),
        ("u32", DataType::U32, 1, false),
        ("u64", DataType::U64, 1, false),
        ("f32", DataType::F32, 1, false),
        ("rgba", DataType::U8, 4, false),
        ("labels", DataType::U64, 1, true),
    ];
    let written = Bbox::new([32, 64, 0], [96, 128, 48]);
    let mut checked = 0;
    for (i, (name, dt, ch, seg)) in types.iter().enumerate() {
        let url = format!("dvid://{host}/{uuid}/{name}");
        let vol = Volume::create(&url, &info(*dt, *ch, *seg, 16, [4.0, 4.0, 40.0]), opts(json!({"bounded": false})))
            .unwrap_or_else(|e| panic!("{url}: create: {e}"));
        let item = dt.size();
        let (n, chn) = (written.voxels().unwrap() as usize, *ch as usize);
        let data = if *seg { labels(written.shape(), i as u64) } else { bytes(n * chn * item, i as u64 + 1) };
        vol.write_from(0, &written, &data).unwrap_or_else(|e| panic!("{url}: write: {e}"));
        // A fresh handle sees the extents that grew; the bounds are what was written.
        let fresh = Volume::open(&url, opts(json!({"bounded": false}))).unwrap();
        assert_eq!(fresh.scale(0).unwrap().bounds(), written, "{url}: extents");
        assert_eq!(fresh.info().num_channels, *ch, "{url}");
        assert_eq!(fresh.info().data_type, *dt, "{url}");
        // Unaligned boxes, inside, across the edge (zeros outside), from both handles.
        for b in [
            Bbox::new([33, 65, 1], [95, 127, 47]),
            Bbox::new([20, 60, 0], [70, 100, 20]),
            Bbox::new([90, 120, 40], [140, 150, 60]),
            Bbox::new([48, 80, 16], [64, 96, 32]),
        ] {
            let want = sub(&data, &written, &b, chn, item);
            for h in [&vol, &fresh] {
                let got = h.cutout(0, &b).unwrap_or_else(|e| panic!("{url} {b}: {e}"));
                assert!(got == want, "{url} {b}: differs from what was written");
            }
            checked += 1;
        }
        // On the wire: DVID's own answer (no compression) is the packed ZYX voxels.
        let b = Bbox::new([40, 70, 5], [77, 101, 9]);
        let s = b.shape();
        let raw = get(
            &d.base(),
            &format!(
                "/api/node/{uuid}/{name}/raw/0_1_2/{}_{}_{}/{}_{}_{}",
                s[0], s[1], s[2], b.lo[0], b.lo[1], b.lo[2]
            ),
        );
        let want = packed(&sub(&data, &written, &b, chn, item), b.voxels().unwrap() as usize, chn, item);
        assert!(raw == want, "{url}: DVID's bytes of {b} are not our write in ZYX order");
    }
    assert_eq!(checked, 28);
    // Label bodies went as LZ4 both ways; image bodies raw.
    let reqs = d.requests();
    let label_raw: Vec<&Value> = reqs
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains("/labels/raw/") && !p.ends_with("/37_31_4/40_70_5")))
        .collect();
    assert!(!label_raw.is_empty());
    assert!(label_raw.iter().all(|r| r["query"]["compression"] == "lz4"), "{label_raw:?}");
    let posts = label_raw.iter().filter(|r| r["method"] == "POST").count();
    assert!(posts >= 1);
}

#[test]
fn labelmap_supervoxels_merges_and_downres_levels() {
    let Some((d, host, uuid)) = start(&[]) else { return };
    let url = format!("dvid://{host}/{uuid}/seg");
    // Two scales: labelmap computes level 1 itself.
    let mut i: Value = serde_json::from_str(&info(DataType::U64, 1, true, 32, [8.0, 8.0, 8.0])).unwrap();
    let mut s1 = i["scales"][0].clone();
    s1["resolution"] = json!([16.0, 16.0, 16.0]);
    s1["key"] = json!("16_16_16");
    i["scales"].as_array_mut().unwrap().push(s1);
    let vol = Volume::create(&url, &i.to_string(), opts(json!({}))).expect("create a labelmap with a downres level");
    let b = Bbox::new([0, 0, 0], [64, 64, 64]);
    let data = labels(b.shape(), 3);
    vol.write_from(0, &b, &data).unwrap();
    // One block wide and deep: written whole (a label write must stay block-aligned).
    let one = Bbox::new([64, 0, 0], [96, 32, 32]);
    let one_data = labels(one.shape(), 5);
    vol.write_from(0, &one, &one_data).expect("a one-block label write");
    let fresh = Volume::open(&url, opts(json!({"agglomerate": false}))).unwrap();
    assert!(fresh.cutout(0, &one).unwrap() == one_data, "the one-block write did not land");
    let e = vol.write_from(1, &Bbox::new([0, 0, 0], [32, 32, 32]), &vec![0u8; 32 * 32 * 32 * 8]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.message().contains("scale 0"), "{e}");
    // Merge label 1+2^40+2 into 1+2^40+1 (POST merge [target, merged]).
    let (target, merged) = ((1u64 << 40) + 1, (1u64 << 40) + 2);
    ureq::post(&format!("{}/api/node/{uuid}/seg/merge", d.base()))
        .send_string(&json!([target, merged]).to_string())
        .expect("merge");
    let mapped = Volume::open(&url, opts(json!({}))).unwrap();
    let svs = Volume::open(&url, opts(json!({"agglomerate": false}))).unwrap();
    let q = Bbox::new([3, 5, 7], [61, 59, 50]);
    let sv = svs.cutout(0, &q).unwrap();
    let want_sv = sub(&data, &b, &q, 1, 8);
    assert!(sv == want_sv, "supervoxels differ from what was written");
    let m = mapped.cutout(0, &q).unwrap();
    let want_m: Vec<u8> = want_sv
        .chunks_exact(8)
        .flat_map(|e| {
            let v = u64::from_le_bytes(e.try_into().unwrap());
            (if v == merged { target } else { v }).to_le_bytes()
        })
        .collect();
    assert!(m == want_m, "mapped labels are not the merge's");
    assert!(m != sv, "the merge changed nothing");
    assert!(d.requests().iter().any(|r| r["query"]["supervoxels"] == "true"));
    // Level 1 as DVID computed it (its own answer, no compression), through our lz4 path.
    assert_eq!(mapped.info().scales.len(), 2);
    let b1 = Bbox::new([1, 2, 3], [31, 29, 30]);
    let ours = svs.cutout(1, &b1).unwrap();
    let s = b1.shape();
    let theirs = get(
        &d.base(),
        &format!(
            "/api/node/{uuid}/seg/raw/0_1_2/{}_{}_{}/{}_{}_{}?scale=1&supervoxels=true",
            s[0], s[1], s[2], b1.lo[0], b1.lo[1], b1.lo[2]
        ),
    );
    assert!(ours == theirs, "scale 1 differs from DVID's");
    assert!(ours.chunks_exact(8).any(|e| e != [0; 8]));
    // unique over DVID (the default label_counts reader).
    let u = svs.unique(0, &q).unwrap();
    assert!(u.labels.len() >= 5 && u.labels.contains(&merged), "{:?}", u.labels);
    let u = mapped.unique(0, &q).unwrap();
    assert!(!u.labels.contains(&merged) && u.labels.contains(&target));
}

#[test]
fn large_boxes_go_in_parallel_tiles_and_writes_keep_their_neighbours() {
    let Some((d, host, uuid)) = start(&[]) else { return };
    let url = format!("dvid://{host}/{uuid}/big");
    let vol =
        Volume::create(&url, &info(DataType::U64, 1, false, 32, [8.0; 3]), opts(json!({"bounded": false}))).unwrap();
    let b = Bbox::new([0, 0, 0], [256, 256, 64]);
    let data = bytes(b.voxels().unwrap() as usize * 8, 9);
    d.control(json!({"clear_log": true}));
    vol.write_from(0, &b, &data).unwrap();
    let posts = d.requests().iter().filter(|r| r["method"] == "POST").count();
    assert!(posts >= 4, "{posts} POSTs for a 32 MiB box");
    d.control(json!({"clear_log": true}));
    let got = vol.cutout(0, &Bbox::new([1, 1, 1], [255, 255, 63])).unwrap();
    assert!(got == sub(&data, &b, &Bbox::new([1, 1, 1], [255, 255, 63]), 1, 8));
    let gets = d.requests().iter().filter(|r| r["method"] == "GET").count();
    assert!(gets >= 4, "{gets} GETs for a 32 MiB box");
    // An unaligned write is refused, naming the block size...
    let w = Bbox::new([10, 20, 30], [50, 60, 40]);
    let patch = bytes(w.voxels().unwrap() as usize * 8, 10);
    let e = vol.write_from(0, &w, &patch).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("32x32x32") && e.message().contains("non_aligned_writes"), "{e}");
    assert!(vol.cutout(0, &b).unwrap() == data, "a refused write changed data");
    // ...and with non_aligned_writes painted into the blocks around it.
    let na = Volume::open(&url, opts(json!({"non_aligned_writes": true}))).unwrap();
    na.write_from(0, &w, &patch).unwrap();
    let mut want = data.clone();
    for z in w.lo[2]..w.hi[2] {
        for y in w.lo[1]..w.hi[1] {
            for x in w.lo[0]..w.hi[0] {
                let di = ((z * 256 + y) * 256 + x) as usize * 8;
                let si = (((z - w.lo[2]) * 40 + y - w.lo[1]) * 40 + x - w.lo[0]) as usize * 8;
                want[di..di + 8].copy_from_slice(&patch[si..si + 8]);
            }
        }
    }
    assert!(na.cutout(0, &b).unwrap() == want, "the non-aligned write lost or misplaced voxels");
    let e = na.delete_box(0, &Bbox::new([0, 0, 0], [32, 32, 32])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(na.has_data(0).unwrap());
}

#[test]
fn busy_failing_and_refusing_servers() {
    let Some((d, host, uuid)) = start(&["--token", "sekrit"]) else { return };
    let url = format!("dvid://{host}/{uuid}/img");
    let good = json!({"secrets": "sekrit", "bounded": false});
    let vol = Volume::create(&url, &info(DataType::U8, 1, false, 32, [8.0; 3]), opts(good.clone())).unwrap();
    let b = Bbox::new([0, 0, 0], [64, 64, 32]);
    let data = bytes(64 * 64 * 32, 4);
    vol.write_from(0, &b, &data).unwrap();
    // DVID's 503 (busy or unavailable) is retried.
    d.control(json!({"clear_log": true, "unavailable": 3}));
    assert!(vol.cutout(0, &b).unwrap() == data);
    let st: Vec<i64> = d.requests().iter().map(|r| r["status"].as_i64().unwrap_or(0)).collect();
    assert_eq!(st.iter().filter(|&&s| s == 503).count(), 3, "{st:?}");
    // Another 5xx is not.
    d.control(json!({"clear_log": true, "fail": 1, "status": 500}));
    let e = vol.cutout(0, &b).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains("HTTP 500") && e.message().contains("/api/node/"), "{e}");
    assert_eq!(d.requests().len(), 1, "a 500 was retried");
    // A dropped connection is retried.
    d.control(json!({"drop": 1}));
    assert!(vol.cutout(0, &b).unwrap() == data);
    // A damaged body: a clear error naming the URL, never other voxels.
    let lab = format!("dvid://{host}/{uuid}/lab");
    let lv = Volume::create(&lab, &info(DataType::U64, 1, true, 32, [8.0; 3]), opts(good.clone())).unwrap();
    let lb = Bbox::new([0, 0, 0], [64, 64, 32]);
    lv.write_from(0, &lb, &labels(lb.shape(), 2)).unwrap();
    d.control(json!({"corrupt": 1}));
    let e = lv.cutout(0, &Bbox::new([1, 1, 1], [63, 63, 31])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    assert!(e.message().contains("LZ4") && e.message().contains("/lab/raw/"), "{e}");
    // (An uncompressed image body of the right length has no checksum: no client can tell
    // damaged bytes from data there; the library refuses one of another length.)
    // Tokens: none, a wrong one (named by where it came from, never printed).
    for (o, needle) in [(json!({}), "no token"), (json!({"secrets": "wrong-token"}), "option \"secrets\"")] {
        let e = Volume::open(&url, opts(o)).err().expect("refused");
        assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
        assert!(e.message().contains(&host) && e.message().contains(needle), "{e}");
        assert!(!e.message().contains("wrong-token") && !e.message().contains("sekrit"), "{e}");
    }
    // Unknown node and instance: NotFound naming them; a bad URL; a dead server.
    let e = Volume::open(&format!("dvid://{host}/ffff/img"), opts(good.clone())).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("ffff"), "{e}");
    let e = Volume::open(&format!("dvid://{host}/{uuid}/nosuch"), opts(good.clone())).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("nosuch"), "{e}");
    let e = Volume::open(&format!("dvid://{host}/not-hex/img"), opts(good.clone())).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let dead = support::env::free_port();
    let e = Volume::open(&format!("dvid://127.0.0.1:{dead}/{uuid}/img"), opts(json!({"retry_budget": 1}))).err();
    assert_eq!(e.expect("a dead server").kind(), ErrorKind::Io);
    // A name already taken, and a type DVID has none of.
    let e = Volume::create(&url, &info(DataType::U8, 1, false, 32, [8.0; 3]), opts(good.clone())).err().unwrap();
    assert!(e.message().contains("already exists"), "{e}");
    let e = Volume::create(
        &format!("dvid://{host}/{uuid}/f64"),
        &info(DataType::F64, 1, false, 32, [8.0; 3]),
        opts(good.clone()),
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    // A uuid prefix names the same node.
    let short = Volume::open(&format!("dvid://{host}/{}/img", &uuid[..6]), opts(good)).unwrap();
    assert!(short.cutout(0, &b).unwrap() == data);
}

#[test]
fn the_c_abi_and_the_cli_reach_dvid() {
    let Some(d) = ServiceDouble::start("dvid.py", &[]) else { return };
    let host = format!("127.0.0.1:{}", d.port);
    // cv_dvid_create_repo.
    let (server, alias, desc) = (support::cabi::cs(&host), support::cabi::cs("abi"), support::cabi::cs(""));
    let mut out: *mut std::ffi::c_char = std::ptr::null_mut();
    // SAFETY: NUL-terminated strings and a writable pointer.
    let st = unsafe {
        cloudvolume::ffi::cv_dvid_create_repo(
            server.as_ptr(),
            alias.as_ptr(),
            desc.as_ptr(),
            std::ptr::null(),
            &mut out,
        )
    };
    assert_eq!(st, cloudvolume::ffi::CV_OK, "{}", support::cabi::last_error());
    // SAFETY: a string from the library.
    let uuid = unsafe { std::ffi::CStr::from_ptr(out) }.to_str().unwrap().to_string();
    unsafe { cloudvolume::ffi::cv_string_free(out) };
    assert_eq!(uuid.len(), 32, "{uuid}");
    // The CLI: a repo, an instance, an upload, a cutout.
    let run = cli().args(["dvid-repo", &host, "--alias", "cli"]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let cli_uuid = String::from_utf8_lossy(&run.stdout).trim().to_string();
    assert_eq!(cli_uuid.len(), 32);
    assert_ne!(cli_uuid, uuid);
    let url = format!("dvid://{host}/{cli_uuid}/grey");
    let run = cli()
        .args(["create", &url, "--dtype", "uint16", "--size", "64,64,32", "--chunk", "32,32,32"])
        .args(["--resolution", "4,4,40"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let dir = support::files::TempDir::new("dvid-cli");
    let input = dir.path().join("in.raw");
    let data = bytes(64 * 64 * 32 * 2, 5);
    std::fs::write(&input, &data).unwrap();
    let run = cli().args(["upload", &url]).arg(&input).args(["--bbox", "0,0,0,64,64,32"]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let outp = dir.path().join("out.raw");
    let run = cli().args(["cutout", &url, "--bbox", "0,0,0,64,64,32", "-o"]).arg(&outp).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(std::fs::read(&outp).unwrap() == data, "the CLI's cutout differs from its upload");
    let run = cli().args(["info", &url]).output().unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("\"uint16\"") && text.contains("uint16blk"), "{text}");
    // Through the C ABI: open and read.
    let vol = support::cabi::open_ok(&url, &json!({}));
    assert!(vol.read_ok(0, [0, 0, 0], [64, 64, 32]) == data);
    let run = cli().args(["has-data", &url]).output().unwrap();
    assert!(String::from_utf8_lossy(&run.stdout).contains("mip 0: data"), "{}", String::from_utf8_lossy(&run.stdout));
}
