//! Aligned image + segmentation cutouts through the C ABI, checked against unmodified
//! ImageryClient (tests/reference/imagery_check.py, driven against the same local layers and
//! the same chunkedgraph double) and, where ImageryClient's scipy zoom and physical alignment
//! part (odd corners, a factor of 3, downsampling), against the model that script computes from
//! plain cloud-volume cutouts; split masks; the overlay picture, decoded here pixel by pixel;
//! bad requests.

mod support;

use std::path::{Path, PathBuf};

use cloudvolume::ffi::*;
use serde_json::{json, Value};
use support::cabi::{cs, last_error, open_ok, status_name, Vol};
use support::chunkedgraph::{fixture, Double};
use support::env::{cli, reference_dir, required};

fn imagery() -> Option<(PathBuf, Value)> {
    let dir = reference_dir().join("imagery");
    match std::fs::read_to_string(dir.join("manifest.json")) {
        Ok(t) => Some((dir, serde_json::from_str(&t).expect("imagery manifest is JSON"))),
        Err(e) => {
            assert!(
                !required(),
                "CV_REQUIRE_REFERENCE=1 but {}/manifest.json cannot be read ({e}): run tests/reference/imagery_check.py",
                dir.display()
            );
            eprintln!("SKIP: no imagery fixture at {}", dir.display());
            None
        }
    }
}

fn triple_i(v: &Value) -> [i64; 3] {
    let a = v.as_array().expect("triple");
    [0, 1, 2].map(|d| a[d].as_i64().unwrap())
}

fn triple_f(v: &Value) -> [f64; 3] {
    let a = v.as_array().expect("triple");
    [0, 1, 2].map(|d| a[d].as_f64().unwrap())
}

fn u64s(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8).map(|e| u64::from_le_bytes(e.try_into().unwrap())).collect()
}

fn mip_of(v: &Value) -> i32 {
    v.as_i64().map_or(-1, |m| m as i32)
}

/// The request of a manifest case (its root ids kept alive in `ids`).
fn request(r: &Value, ids: &mut Vec<u64>) -> cv_aligned_request {
    let b = r["bounds"].as_array().unwrap();
    *ids = match &r["root_ids"] {
        Value::Array(a) => a.iter().map(|s| s.as_str().unwrap().parse().unwrap()).collect(),
        _ => Vec::new(),
    };
    cv_aligned_request {
        lo: triple_i(&b[0]),
        hi: triple_i(&b[1]),
        resolution: if r["resolution"].is_null() { [0.0; 3] } else { triple_f(&r["resolution"]) },
        image_mip: mip_of(&r["image_mip"]),
        segmentation_mip: mip_of(&r["segmentation_mip"]),
        root_ids: if r["root_ids"].is_array() { ids.as_ptr() } else { std::ptr::null() },
        n_root_ids: ids.len(),
        scale_to_bounds: i32::from(r["scale_to_bounds"].as_bool().unwrap_or(false)),
    }
}

struct Aligned {
    grid: cv_aligned_grid,
    image: Vec<u8>,
    seg: Vec<u64>,
}

fn aligned(img: &Vol, seg: &Vol, req: &cv_aligned_request) -> Result<Aligned, (cv_status, String)> {
    let mut grid = cv_aligned_grid::default();
    // SAFETY: live handles, a readable request, a writable grid.
    let st = unsafe { cv_aligned_grid_of(img.0, seg.0, req, &mut grid) };
    if st != CV_OK {
        return Err((st, last_error()));
    }
    let n: usize = (0..3).map(|d| (grid.hi[d] - grid.lo[d]) as usize).product();
    // Bytes per voxel of the image: channels x element size.
    let per = img.cutout_len([0; 3], [1; 3]).map_err(|_| (CV_ERR_INTERNAL, last_error()))?;
    let (mut image, mut s) = (vec![0u8; n * per], vec![0u64; n]);
    // SAFETY: buffers of the lengths passed.
    let st =
        unsafe { cv_aligned_cutout_into(img.0, seg.0, req, image.as_mut_ptr().cast(), n * per, s.as_mut_ptr(), n) };
    if st != CV_OK {
        return Err((st, last_error()));
    }
    Ok(Aligned { grid, image, seg: s })
}

fn seg_url(double: &Double, gdir: &Path, seg: &str) -> String {
    match seg.strip_prefix("graphene:") {
        Some(t) => double.url(t),
        None => format!("file://{}", gdir.join(seg).display()),
    }
}

fn seg_opts(token: &str, r: &Value) -> Value {
    let mut o = json!({"secrets": token, "bounded": false, "fill_missing": true,
                       "agglomerate": !r["root_ids"].is_null()});
    if let Some(t) = r["timestamp"].as_f64() {
        o["timestamp"] = json!(t);
    }
    o
}

#[test]
fn aligned_cutouts_equal_imageryclient_and_the_model() {
    let (Some((dir, m)), Some((gdir, gm))) = (imagery(), fixture()) else { return };
    let token = gm["token"].as_str().unwrap();
    let Some(double) = Double::start(&gdir, Some(token)) else { return };
    let img =
        open_ok(&format!("file://{}", dir.join("img").display()), &json!({"bounded": false, "fill_missing": true}));
    let (mut ic, mut model, mut masks, mut voxels) = (0, 0, 0, 0usize);
    for c in m["cases"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let r = &c["request"];
        let seg = open_ok(&seg_url(&double, &gdir, c["seg"].as_str().unwrap()), &seg_opts(token, r));
        let mut ids = Vec::new();
        let req = request(r, &mut ids);
        let got = aligned(&img, &seg, &req).unwrap_or_else(|(s, e)| panic!("{id}: {} {e}", status_name(s)));
        let shape: Vec<i64> = (0..3).map(|d| got.grid.hi[d] - got.grid.lo[d]).collect();
        // ImageryClient squeezes axes of size 1; compare the shapes without them.
        let squeezed: Vec<i64> = shape.iter().copied().filter(|&s| s != 1).collect();
        let want_shape: Vec<i64> =
            c["image"]["shape"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).filter(|&s| s != 1).collect();
        assert_eq!(squeezed, want_shape, "{id}: grid {:?}-{:?}", got.grid.lo, got.grid.hi);
        if !c["grid"].is_null() {
            assert_eq!(got.grid.lo, triple_i(&c["grid"]["lo"]), "{id}: grid lo");
            assert_eq!(got.grid.hi, triple_i(&c["grid"]["hi"]), "{id}: grid hi");
            assert_eq!(got.grid.resolution, triple_f(&c["grid"]["resolution"]), "{id}: grid resolution");
        }
        if let Some(d) = r.get("defaults") {
            if r["image_mip"].is_null() {
                assert_eq!(i64::from(got.grid.image_mip), d["image_mip"].as_i64().unwrap(), "{id}: default image mip");
            }
        }
        let want_img = std::fs::read(dir.join(c["image"]["file"].as_str().unwrap())).unwrap();
        assert!(got.image == want_img, "{id}: image differs ({})", c["source"]);
        if c["masks"].is_object() {
            let want_ids: Vec<u64> =
                c["masks"]["ids"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().parse().unwrap()).collect();
            let mut ours: Vec<u64> = got.seg.iter().copied().filter(|&v| v != 0).collect();
            ours.sort_unstable();
            ours.dedup();
            assert_eq!(ours, want_ids, "{id}: mask ids");
            let n = got.seg.len();
            let mut out = vec![0u8; n * ours.len()];
            // SAFETY: slices of the lengths passed.
            let st = unsafe {
                cv_split_masks_into(got.seg.as_ptr(), n, ours.as_ptr(), ours.len(), out.as_mut_ptr(), out.len())
            };
            assert_eq!(st, CV_OK, "{}", last_error());
            for (k, f) in c["masks"]["files"].as_array().unwrap().iter().enumerate() {
                let want = std::fs::read(dir.join(f["file"].as_str().unwrap())).unwrap();
                assert!(out[k * n..(k + 1) * n] == want[..], "{id}: mask of {}", ours[k]);
                masks += 1;
            }
        } else {
            let want = u64s(&std::fs::read(dir.join(c["segmentation"]["file"].as_str().unwrap())).unwrap());
            if c["float64_ids"] == true {
                // ImageryClient's scipy zoom rounded the ids through float64; so do we, here only.
                let rounded: Vec<u64> = got.seg.iter().map(|&v| v as f64 as u64).collect();
                assert!(rounded == want, "{id}: segmentation differs from ImageryClient's (float64-rounded)");
                assert!(got.seg != want, "{id}: ImageryClient's ids were expected to be rounded");
            } else {
                assert!(got.seg == want, "{id}: segmentation differs ({})", c["source"]);
            }
            assert!(want.iter().any(|&v| v != 0), "{id}: an all-zero segmentation proves little");
        }
        voxels += got.seg.len();
        if c["source"] == "model" {
            model += 1;
        } else {
            ic += 1;
        }
    }
    assert!(ic >= 8 && model >= 5 && masks >= 5, "{ic} ImageryClient cases, {model} model cases, {masks} masks");
    eprintln!("imagery: {ic} cases equal ImageryClient's, {model} the model's, {masks} split masks, {voxels} voxels");
}

#[test]
fn bad_aligned_requests_are_refused_clearly() {
    let (Some((dir, _)), Some((gdir, _))) = (imagery(), fixture()) else { return };
    let img = open_ok(&format!("file://{}", dir.join("img").display()), &json!({"fill_missing": true}));
    let seg = open_ok(&format!("file://{}", gdir.join("ws").display()), &json!({}));
    let base = cv_aligned_request {
        lo: [100, 80, 20],
        hi: [164, 144, 21],
        resolution: [0.0; 3],
        image_mip: -1,
        segmentation_mip: -1,
        root_ids: std::ptr::null(),
        n_root_ids: 0,
        scale_to_bounds: 0,
    };
    let fails = |req: &cv_aligned_request, st: cv_status, needle: &str| {
        let (s, e) = aligned(&img, &seg, req).err().unwrap_or_else(|| panic!("{req:?} was accepted"));
        assert_eq!(s, st, "{e}");
        assert!(e.contains(needle), "{needle:?} not in {e:?}");
    };
    fails(&cv_aligned_request { hi: [100, 144, 21], ..base }, CV_ERR_INVALID_ARGUMENT, "empty");
    fails(&cv_aligned_request { image_mip: 9, ..base }, CV_ERR_INVALID_ARGUMENT, "mip 9");
    fails(&cv_aligned_request { resolution: [-4.0, 4.0, 40.0], ..base }, CV_ERR_INVALID_ARGUMENT, "resolution");
    fails(&cv_aligned_request { n_root_ids: 2, ..base }, CV_ERR_INVALID_ARGUMENT, "root_ids");
    // Less than a voxel at the output grid: 1 voxel of 4 nm onto 8 nm.
    fails(
        &cv_aligned_request { lo: [400, 300, 20], hi: [401, 301, 21], resolution: [4.0, 4.0, 40.0], ..base },
        CV_ERR_INVALID_ARGUMENT,
        "less than one voxel",
    );
    // A bounded handle refuses a box past its edge, naming it.
    fails(&cv_aligned_request { lo: [0, 0, 0], hi: [64, 64, 1], ..base }, CV_ERR_OUT_OF_BOUNDS, "");
    // The image as a segmentation: not a label layer.
    let (s, e) = aligned(&seg, &img, &base).err().expect("a uint8 segmentation is refused");
    assert_eq!(s, CV_ERR_INVALID_ARGUMENT, "{e}");
    assert!(e.contains("uint8") && e.contains("img"), "{e}");
    // Wrong buffer lengths and NULLs.
    let mut buf = vec![0u8; 10];
    // SAFETY: buffer lengths as passed; NULL request.
    unsafe {
        let st = cv_aligned_cutout_into(img.0, seg.0, &base, buf.as_mut_ptr().cast(), 10, std::ptr::null_mut(), 0);
        assert_eq!(st, CV_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("image_len is 10"), "{}", last_error());
        let st = cv_aligned_grid_of(img.0, seg.0, std::ptr::null(), &mut cv_aligned_grid::default());
        assert_eq!(st, CV_ERR_INVALID_ARGUMENT);
        let st = cv_aligned_grid_of(std::ptr::null(), seg.0, &base, &mut cv_aligned_grid::default());
        assert_eq!(st, CV_ERR_INVALID_ARGUMENT);
        let st = cv_split_masks_into(std::ptr::null(), 4, std::ptr::null(), 0, std::ptr::null_mut(), 0);
        assert_eq!(st, CV_ERR_INVALID_ARGUMENT);
        let seg4 = [1u64, 2, 2, 0];
        let st = cv_split_masks_into(seg4.as_ptr(), 4, seg4.as_ptr(), 2, buf.as_mut_ptr(), 7);
        assert_eq!(st, CV_ERR_INVALID_ARGUMENT);
        let st = cv_overlay_rgb_into(buf.as_ptr(), seg4.as_ptr(), 2, 2, 2.0, 0, buf.as_mut_ptr(), 12);
        assert_eq!(st, CV_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("alpha"), "{}", last_error());
    }
}

/// Decode an 8-bit RGB PNG: (width, height, pixels).
fn decode_png(path: &Path) -> (usize, usize, Vec<u8>) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = png::Decoder::new(std::io::BufReader::new(f)).read_info().expect("a PNG");
    let mut px = vec![0u8; r.output_buffer_size()];
    let info = r.next_frame(&mut px).expect("PNG pixels");
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    px.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, px)
}

fn color(id: u64) -> [u8; 3] {
    let mut c = [0u8; 3];
    // SAFETY: 3 writable bytes.
    assert_eq!(unsafe { cv_segment_color(id, c.as_mut_ptr()) }, CV_OK);
    c
}

fn blend(g: u8, c: [u8; 3], a: f64) -> [u8; 3] {
    c.map(|v| (f64::from(g) * (1.0 - a) + f64::from(v) * a).round() as u8)
}

#[test]
fn overlay_pictures_colour_each_segment() {
    let (Some((dir, m)), Some((gdir, gm))) = (imagery(), fixture()) else { return };
    let token = gm["token"].as_str().unwrap();
    let Some(double) = Double::start(&gdir, Some(token)) else { return };
    let tmp = tempdir();
    let img_url = format!("file://{}", dir.join("img").display());
    // The case ImageryClient computed at the same place: its image and segmentation.
    let case = m["cases"].as_array().unwrap().iter().find(|c| c["id"] == "graphene_roots_image_coarser").unwrap();
    let want_img = std::fs::read(dir.join(case["image"]["file"].as_str().unwrap())).unwrap();
    let want_seg = u64s(&std::fs::read(dir.join(case["segmentation"]["file"].as_str().unwrap())).unwrap());
    let out = tmp.join("o.png");
    // Bounds [96,64,16]-[224,192,20] at 8 nm: centre 160,128,16, size 128,128,1 is its first slice.
    let run = cli()
        .args(["overlay", &img_url, &double.url("test"), "--center", "160,128,16", "--size", "128,128"])
        .args(["--resolution", "8,8,40", "--image-mip", "2", "--seg-mip", "0", "--alpha", "0.6", "-o"])
        .arg(&out)
        .args(["--seg-out"])
        .arg(tmp.join("seg.npy"))
        .args(["--options", &json!({"secrets": token}).to_string()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(said.contains("128x128 px") && said.contains("image mip 2"), "{said}");
    let (w, h, px) = decode_png(&out);
    assert_eq!((w, h), (128, 128));
    let mut colours = std::collections::HashMap::new();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let (g, s) = (want_img[i], want_seg[i]);
            let want = if s == 0 { [g; 3] } else { blend(g, color(s), 0.6) };
            assert_eq!(&px[i * 3..i * 3 + 3], &want, "pixel ({x}, {y}) of segment {s}");
            if s != 0 {
                colours.insert(s, color(s));
            }
        }
    }
    let distinct: std::collections::HashSet<[u8; 3]> = colours.values().copied().collect();
    assert!(
        colours.len() >= 5 && distinct.len() == colours.len(),
        "{} segments, {} colours",
        colours.len(),
        distinct.len()
    );
    // The saved segmentation is ImageryClient's first slice.
    let npy = std::fs::read(tmp.join("seg.npy")).unwrap();
    let body = &npy[npy.len() - w * h * 8..];
    assert!(u64s(body) == want_seg[..w * h], "--seg-out differs from ImageryClient's segmentation");

    // Outlines: only pixels with another label within 2 pixels are coloured, and slices of a
    // deeper box go to one file each.
    let out2 = tmp.join("l.png");
    let run = cli()
        .args(["overlay", &img_url, &double.url("test"), "--bbox", "96,64,16,224,192,18"])
        .args(["--resolution", "8,8,40", "--image-mip", "2", "--outline", "2", "--alpha", "1", "-o"])
        .arg(&out2)
        .args(["--options", &json!({"secrets": token}).to_string()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    for z in [16, 17] {
        let (w, h, px) = decode_png(&tmp.join(format!("l_z{z:04}.png")));
        let off = (z - 16) * w * h;
        let seg = &want_seg[off..off + w * h];
        let (mut edge, mut inner) = (0, 0);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let s = seg[i];
                let near = (0..h)
                    .flat_map(|yy| (0..w).map(move |xx| (xx, yy)))
                    .any(|(xx, yy)| x.abs_diff(xx) + y.abs_diff(yy) <= 2 && seg[yy * w + xx] != s);
                let g = want_img[off + i];
                let want = if s != 0 && near { color(s) } else { [g; 3] };
                assert_eq!(&px[i * 3..i * 3 + 3], &want, "outline pixel ({x}, {y}, {z})");
                if s != 0 && near {
                    edge += 1;
                } else if s != 0 {
                    inner += 1;
                }
            }
        }
        assert!(edge > 100 && inner > 100, "slice {z}: {edge} outline pixels, {inner} inside");
    }

    // Usage errors: no second URL, no box.
    let run = cli().args(["overlay", &img_url, "--center", "1,2,3", "--size", "4,4", "-o"]).arg(&out).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("SEG_URL"));
    let run = cli().args(["overlay", &img_url, &img_url, "-o"]).arg(&out).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--center"));
    // A uint8 "segmentation": the library's refusal, exit 1.
    let run =
        cli().args(["overlay", &img_url, &img_url, "--bbox", "100,80,20,110,90,21", "-o"]).arg(&out).output().unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("uint8"), "{}", String::from_utf8_lossy(&run.stderr));
    let _ = cs("");
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("cv-imagery-{}-{:?}", std::process::id(), std::thread::current().id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
