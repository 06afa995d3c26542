//! Label operations through the C ABI (`cv_unique`, `cv_label_mask_into`, `cv_point_box`),
//! checked against cloud-volume's and tensorstore's cutouts of every uint32/uint64 reference
//! layer (tests/reference/make_layers.py: raw and compressed_segmentation, sharded and not,
//! every mip and box kind): `cv_unique` must equal `np.unique(cutout, return_counts=True)` of
//! the reference reader's bytes, a mask must equal `cutout == label` there, and a renumbered
//! cutout must map back to it through its labels.

mod support;

use std::collections::BTreeMap;

use cloudvolume::ffi::*;
use serde_json::Value;
use support::cabi::{expect_err, open_ok, status_name};
use support::env::{reference_dir, required};
use support::files::file_url;
use support::layers::{Chunks, Layer, Pattern, Spec};

fn manifest() -> Option<Value> {
    let path = reference_dir().join("manifest.json");
    match std::fs::read_to_string(&path) {
        Ok(t) => Some(serde_json::from_str(&t).expect("manifest.json is JSON")),
        Err(e) => {
            assert!(!required(), "CV_REQUIRE_REFERENCE=1 but {} cannot be read: {e}", path.display());
            eprintln!("SKIP: no reference layers at {}; label tests against them skipped", path.display());
            None
        }
    }
}

fn triple(v: &Value) -> [i64; 3] {
    let a = v.as_array().expect("a triple");
    [a[0].as_i64().unwrap(), a[1].as_i64().unwrap(), a[2].as_i64().unwrap()]
}

fn labels_of(bytes: &[u8], item: usize) -> Vec<u64> {
    bytes
        .chunks_exact(item)
        .map(|e| {
            if item == 8 {
                u64::from_le_bytes(e.try_into().unwrap())
            } else {
                u64::from(u32::from_le_bytes(e.try_into().unwrap()))
            }
        })
        .collect()
}

#[test]
fn unique_and_masks_equal_the_reference_cutouts() {
    let Some(m) = manifest() else { return };
    let dir = reference_dir();
    let (mut layers, mut boxes, mut masks) = (0, 0, 0);
    let mut kinds = std::collections::BTreeSet::new();
    for l in m["layers"].as_array().expect("layers") {
        let item = match l["dtype"].as_str() {
            Some("uint32") => 4,
            Some("uint64") => 8,
            _ => continue,
        };
        let url = file_url(&dir.join(l["path"].as_str().unwrap()));
        let mut opened: BTreeMap<String, support::cabi::Vol> = BTreeMap::new();
        let mut any = false;
        for b in l["boxes"].as_array().unwrap() {
            let Some(expected) = b["expected"].as_str() else { continue };
            let opts = b.get("options").filter(|o| o.as_object().is_some_and(|o| !o.is_empty()));
            let key = opts.map_or(String::new(), Value::to_string);
            let vol = opened.entry(key.clone()).or_insert_with(|| match opts {
                Some(o) => open_ok(&url, o),
                None => open_ok(&url, None::<&str>),
            });
            let (mip, lo, hi) = (b["mip"].as_u64().unwrap() as u32, triple(&b["lo"]), triple(&b["hi"]));
            let bytes = std::fs::read(dir.join(expected)).expect("expected bytes");
            let vals = labels_of(&bytes, item);
            let mut want: BTreeMap<u64, u64> = BTreeMap::new();
            for &v in &vals {
                *want.entry(v).or_insert(0) += 1;
            }
            let (got_l, got_c) = vol.unique(mip, lo, hi).unwrap_or_else(|(s, msg)| {
                panic!("{url} mip {mip} {lo:?}-{hi:?} {key}: cv_unique failed: {} {msg}", status_name(s))
            });
            let want_l: Vec<u64> = want.keys().copied().collect();
            let want_c: Vec<u64> = want.values().copied().collect();
            assert_eq!(got_l, want_l, "{url} mip {mip} {lo:?}-{hi:?} {key}: labels differ from the reference cutout");
            assert_eq!(got_c, want_c, "{url} mip {mip} {lo:?}-{hi:?} {key}: counts differ from the reference cutout");
            // A mask of the most common label and one absent label.
            if let Some((&top, _)) = want.iter().max_by_key(|(_, &n)| n) {
                let absent = (1..).find(|v| !want.contains_key(v)).unwrap();
                let mask = vol.label_mask(mip, lo, hi, &[top, absent], vals.len()).expect("cv_label_mask_into");
                let model: Vec<u8> = vals.iter().map(|&v| u8::from(v == top)).collect();
                assert!(mask == model, "{url} mip {mip} {lo:?}-{hi:?}: mask of {top} differs from cutout == {top}");
                masks += 1;
            }
            // Renumbered: ascending labels from 1 (0 kept), the smallest type, and the labels
            // array gives the cutout back.
            let (data, dtype, back) = vol.renumber(mip, lo, hi).expect("cv_renumber");
            let nonzero = want.keys().filter(|&&l| l != 0).count() as u64;
            let size = match nonzero {
                0..=255 => 1,
                256..=65535 => 2,
                _ => 4,
            };
            assert_eq!(cv_dtype_size(dtype), size, "renumber type for {nonzero} labels");
            assert_eq!(back[0], 0);
            assert_eq!(&back[1..], &want.keys().copied().filter(|&l| l != 0).collect::<Vec<_>>()[..]);
            let restored: Vec<u64> = data
                .chunks_exact(size)
                .map(|e| {
                    let mut b = [0u8; 8];
                    b[..size].copy_from_slice(e);
                    back[u64::from_le_bytes(b) as usize]
                })
                .collect();
            assert!(restored == vals, "{url} mip {mip} {lo:?}-{hi:?}: renumbered cutout does not map back");
            kinds.insert(format!("{}/{}", l["encoding"].as_str().unwrap(), l["sharding"].is_array()));
            boxes += 1;
            any = true;
        }
        layers += usize::from(any);
    }
    eprintln!("unique/mask/renumber checked on {boxes} boxes of {layers} label layers ({masks} masks); {kinds:?}");
    assert!(layers >= 6 && boxes >= 50, "too few label layers ({layers}) or boxes ({boxes}) in the manifest");
}

#[test]
fn label_operations_refuse_what_they_cannot_do() {
    let img = Layer::write(Spec::new("float32", [16, 16, 8], [8, 8, 8]));
    let v = open_ok(&img.dir.url(), None::<&str>);
    expect_err(v.unique(0, [0, 0, 0], [4, 4, 4]), CV_ERR_INVALID_ARGUMENT, &["uint32 or uint64", "float32"]);
    expect_err(v.label_mask(0, [0, 0, 0], [4, 4, 4], &[1], 64), CV_ERR_INVALID_ARGUMENT, &["float32"]);
    let seg = Layer::write(Spec::new("uint64", [16, 16, 8], [8, 8, 8]).chunks(Chunks::Raw));
    let s = open_ok(&seg.dir.url(), None::<&str>);
    expect_err(s.unique(0, [0, 0, 0], [0, 4, 4]), CV_ERR_INVALID_ARGUMENT, &["empty"]);
    expect_err(s.unique(0, [0, 0, 0], [20, 4, 4]), CV_ERR_OUT_OF_BOUNDS, &["outside the bounds"]);
    expect_err(s.unique(3, [0, 0, 0], [2, 2, 2]), CV_ERR_INVALID_ARGUMENT, &["mip 3"]);
    expect_err(s.label_mask(0, [0, 0, 0], [4, 4, 4], &[1], 63), CV_ERR_INVALID_ARGUMENT, &["63", "64"]);
    expect_err(s.point_box(0, [1.0, 2.0, 3.0], [0, 4, 4], None), CV_ERR_INVALID_ARGUMENT, &["size"]);
    expect_err(s.point_box(0, [f64::NAN, 2.0, 3.0], [4, 4, 4], None), CV_ERR_INVALID_ARGUMENT, &["finite"]);
    expect_err(
        s.point_box(0, [1.0, 2.0, 3.0], [4, 4, 4], Some([0.0, 1.0, 1.0])),
        CV_ERR_INVALID_ARGUMENT,
        &["coord_resolution"],
    );
    // NULL outputs and inputs.
    let (lo, hi) = ([0i64; 3], [4i64; 3]);
    let mut n = 0usize;
    // SAFETY: NULL on purpose; the library must refuse it.
    let st = unsafe { cv_unique(s.0, 0, lo.as_ptr(), hi.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut(), &mut n) };
    assert_eq!(st, CV_ERR_INVALID_ARGUMENT);
    // SAFETY: as above.
    let st =
        unsafe { cv_label_mask_into(s.0, 0, lo.as_ptr(), hi.as_ptr(), std::ptr::null(), 2, std::ptr::null_mut(), 64) };
    assert_eq!(st, CV_ERR_INVALID_ARGUMENT);
    let (mut a, mut b) = ([0i64; 3], [0i64; 3]);
    // SAFETY: NULL handle.
    let st = unsafe {
        cv_point_box(
            std::ptr::null(),
            0,
            [0.0; 3].as_ptr(),
            [1i64; 3].as_ptr(),
            std::ptr::null(),
            a.as_mut_ptr(),
            b.as_mut_ptr(),
        )
    };
    assert_eq!(st, CV_ERR_INVALID_ARGUMENT);
    // SAFETY: freeing NULL is a no-op.
    unsafe { cv_labels_free(std::ptr::null_mut(), 0) };
}

#[test]
fn unique_outside_the_volume_counts_background_and_fill_missing_chunks() {
    let seg = Layer::write(Spec::new("uint32", [16, 16, 8], [8, 8, 8]).chunks(Chunks::Cseg).pattern(Pattern::Labels));
    let url = seg.dir.url();
    let inside = open_ok(&url, None::<&str>);
    let (l0, c0) = inside.unique(0, [0, 0, 0], [16, 16, 8]).expect("unique inside");
    assert_eq!(c0.iter().sum::<u64>(), 16 * 16 * 8);
    assert!(l0.len() > 2, "a label pattern has several labels");
    let outside = open_ok(&url, r#"{"bounded": false, "background_color": 4000000000}"#);
    let (l1, c1) = outside.unique(0, [-4, 0, 0], [16, 16, 8]).expect("unique past the edge");
    assert_eq!(c1.iter().sum::<u64>(), 20 * 16 * 8);
    let bg = l1.iter().position(|&l| l == 4_000_000_000).expect("background counted");
    assert_eq!(c1[bg], 4 * 16 * 8, "the 4-voxel slab outside is background");
    assert!(l0.iter().all(|l| l1.contains(l)));
    // A missing chunk: NOT_FOUND naming it, or background with fill_missing.
    std::fs::remove_file(seg.dir.join("s0/0-8_0-8_0-8")).expect("remove a chunk");
    expect_err(inside.unique(0, [0, 0, 0], [16, 16, 8]), CV_ERR_NOT_FOUND, &["0-8_0-8_0-8", "fill_missing"]);
    let filled = open_ok(&url, r#"{"fill_missing": true}"#);
    let (l2, c2) = filled.unique(0, [0, 0, 0], [8, 8, 8]).expect("unique of a missing chunk");
    assert_eq!((l2, c2), (vec![0], vec![512]));
}

#[test]
fn point_boxes_follow_cloud_volume() {
    let spec = Spec::new("uint64", [64, 64, 16], [16, 16, 8]).offset([10, 20, 0]).mips(2);
    let (_, _, r0) = spec.geometry(0);
    let (_, _, r1) = spec.geometry(1);
    let seg = Layer::write(spec);
    let v = open_ok(&seg.dir.url(), None::<&str>);
    let p = [41.0, 50.0, 7.0];
    let (lo, hi) = v.point_box(1, p, [8, 8, 1], None).expect("point box");
    let c: Vec<i64> = (0..3).map(|d| (p[d] * f64::from(r0[d] as f32 / r1[d] as f32)).floor() as i64).collect();
    assert_eq!(lo, [c[0] - 4, c[1] - 4, c[2]]);
    assert_eq!(hi, [c[0] + 4, c[1] + 4, c[2] + 1]);
}
