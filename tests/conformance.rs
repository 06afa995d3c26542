//! Conformance against the reference implementations: layers written by cloud-volume 12.15.2 and
//! tensorstore 0.1.86 (tests/reference/make_layers.py), read through the C ABI and compared with
//! what the writing library read back for the same boxes.
//!
//! The fixtures live in `$CV_REFERENCE_DIR` (default `<crate>/target/reference`); scripts/test.sh
//! generates them. Without them the tests print a notice and pass, unless
//! `CV_REQUIRE_REFERENCE=1`, when they fail.
//!
//! Each layer is read (a) over file://, (b) over http:// from a loopback nginx serving the
//! fixture directory, (c) as gs:// and s3:// URLs whose endpoint option points at that nginx (the
//! bucket is the first path component), and (d) from copies stored compressed under plain names
//! that nginx serves with `Content-Encoding: gzip|br|zstd`. Boxes that carry options
//! (`fill_missing`, `bounded`, `background_color`) check those semantics against cloud-volume;
//! boxes that cloud-volume refused must fail with the matching status.
//!
//! Sharded layers (`neuroglancer_uint64_sharded_v1`, written by tensorstore and by cloud-volume)
//! go through the same passes. Layers that list scattered-point sets are also read with
//! `cv_scattered_points` (exact, or within the JPEG tolerance) in the file://, http://, gs://,
//! s3:// and Content-Encoding passes, and layers that list the chunks their writer stored
//! (tensorstore's sharded kvstore listing, cloud-volume's shard labels, or the chunk files) have
//! `cv_chunks_exist` checked against that list, over each mip and over a box cutting cells in
//! the middle of it.

mod support;

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use cloudvolume::ffi::{cv_cutout_into_strided, cv_status, CV_ERR_NOT_FOUND, CV_ERR_OUT_OF_BOUNDS, CV_OK};
use serde_json::{Map, Value};
use support::cabi::{self, last_error, Vol};
use support::env::{reference_dir, required};
use support::files::file_url;
use support::httpd::http_get;
use support::layers::elem_size;
use support::nginx::{self, Nginx};

// ------------------------------------------------------------------------------------------------
// The manifest

#[derive(Debug, Clone)]
struct BoxCase {
    mip: u32,
    lo: [i64; 3],
    hi: [i64; 3],
    kind: String,
    reader: String,
    options: Map<String, Value>,
    /// Path of the expected bytes (relative to the reference dir), or the expected error.
    expect: Expect,
}

#[derive(Debug, Clone)]
enum Expect {
    Bytes(String),
    Error(String),
}

/// A scattered-point set: `cv_scattered_points` at `mip` must return what `reader` read.
#[derive(Debug, Clone)]
struct PointSet {
    mip: u32,
    kind: String,
    reader: String,
    options: Map<String, Value>,
    points: Vec<[i64; 3]>,
    /// Expected bytes: point after point, channel after channel, little-endian.
    expect: Expect,
}

/// The grid cells of one mip whose chunk the writer stored (as the writing library lists them).
#[derive(Debug, Clone)]
struct ChunkSet {
    mip: u32,
    grid: [i64; 3],
    present: Vec<[i64; 3]>,
    source: String,
}

/// One mip's geometry.
#[derive(Debug, Clone, Copy)]
struct Mip {
    size: [i64; 3],
    voxel_offset: [i64; 3],
    chunk_size: [i64; 3],
}

#[derive(Debug, Clone)]
struct Layer {
    path: String,
    writer: String,
    encoding: String,
    dtype: String,
    channels: usize,
    tolerance: u8,
    file_compression: Option<String>,
    http: bool,
    boxes: Vec<BoxCase>,
    /// (content encoding, path) of copies stored compressed under plain names.
    encoded: Vec<(String, String)>,
    reader_note: Option<String>,
    mips: Vec<Mip>,
    /// Per mip: the sharding spec, or None (unsharded).
    sharding: Vec<Option<Value>>,
    points: Vec<PointSet>,
    chunks: Vec<ChunkSet>,
}

impl Layer {
    fn sharded(&self) -> bool {
        self.sharding.iter().any(Option::is_some)
    }
}

struct Reference {
    dir: PathBuf,
    layers: Vec<Layer>,
    json: Value,
}

fn triple(v: &Value, what: &str) -> [i64; 3] {
    let a = v.as_array().unwrap_or_else(|| panic!("manifest: {what} is not an array: {v}"));
    assert_eq!(a.len(), 3, "manifest: {what} must have 3 elements: {v}");
    let g = |i: usize| a[i].as_i64().unwrap_or_else(|| panic!("manifest: {what}[{i}] is not an integer: {v}"));
    [g(0), g(1), g(2)]
}

fn string(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("manifest: \"{key}\" missing in {v}")).to_string()
}

/// Load the manifest, or None (after a notice) when the fixtures are absent and not required.
fn load() -> Option<Reference> {
    let dir = reference_dir();
    let mpath = dir.join("manifest.json");
    let text = match std::fs::read_to_string(&mpath) {
        Ok(t) => t,
        Err(e) => {
            if required() {
                panic!(
                    "CV_REQUIRE_REFERENCE=1 but {} cannot be read ({e}): generate it with \
                     `target/venv/bin/python tests/reference/make_layers.py {}` (scripts/test.sh does)",
                    mpath.display(),
                    dir.display()
                );
            }
            // Straight to stderr, past libtest's capture, so the skip shows in a passing run.
            let _ = writeln!(
                std::io::stderr(),
                "SKIP: no reference layers at {} (run scripts/test.sh, or tests/reference/make_layers.py DIR \
                 with CV_REFERENCE_DIR=DIR); conformance tests skipped",
                dir.display()
            );
            return None;
        }
    };
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", mpath.display()));
    let layers = json["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no \"layers\" array", mpath.display()))
        .iter()
        .map(|l| {
            let boxes = l["boxes"]
                .as_array()
                .expect("manifest: layer without boxes")
                .iter()
                .map(|b| BoxCase {
                    mip: b["mip"].as_u64().expect("manifest: box mip") as u32,
                    lo: triple(&b["lo"], "lo"),
                    hi: triple(&b["hi"], "hi"),
                    kind: b["kind"].as_str().unwrap_or("").to_string(),
                    reader: string(b, "reader"),
                    options: b["options"].as_object().cloned().unwrap_or_default(),
                    expect: match (b["expected"].as_str(), b["error"].as_str()) {
                        (Some(p), None) => Expect::Bytes(p.to_string()),
                        (None, Some(e)) => Expect::Error(e.to_string()),
                        _ => panic!("manifest: box needs exactly one of \"expected\" and \"error\": {b}"),
                    },
                })
                .collect();
            Layer {
                path: string(l, "path"),
                writer: string(l, "writer"),
                encoding: string(l, "encoding"),
                dtype: string(l, "dtype"),
                channels: l["channels"].as_u64().expect("manifest: channels") as usize,
                tolerance: l["tolerance"].as_u64().unwrap_or(0) as u8,
                file_compression: l["file_compression"].as_str().map(str::to_string),
                http: l["http"].as_bool().unwrap_or(true),
                boxes,
                encoded: l["encoded_copies"]
                    .as_array()
                    .map(|a| a.iter().map(|e| (string(e, "content_encoding"), string(e, "path"))).collect())
                    .unwrap_or_default(),
                reader_note: l["reader_note"].as_str().map(str::to_string),
                mips: l["mips"]
                    .as_array()
                    .expect("manifest: layer without mips")
                    .iter()
                    .map(|m| Mip {
                        size: triple(&m["size"], "size"),
                        voxel_offset: triple(&m["voxel_offset"], "voxel_offset"),
                        chunk_size: triple(&m["chunk_size"], "chunk_size"),
                    })
                    .collect(),
                sharding: l["sharding"]
                    .as_array()
                    .map(|a| a.iter().map(|v| (!v.is_null()).then(|| v.clone())).collect())
                    .unwrap_or_default(),
                points: l["points"].as_array().map(|a| a.iter().map(point_set).collect()).unwrap_or_default(),
                chunks: l["chunks"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|c| ChunkSet {
                                mip: c["mip"].as_u64().expect("manifest: chunks mip") as u32,
                                grid: triple(&c["grid"], "grid"),
                                present: c["present"]
                                    .as_array()
                                    .expect("manifest: chunks without present")
                                    .iter()
                                    .map(|v| triple(v, "present cell"))
                                    .collect(),
                                source: c["source"].as_str().unwrap_or("").to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    Some(Reference { dir, layers, json })
}

fn expect_of(v: &Value) -> Expect {
    match (v["expected"].as_str(), v["error"].as_str()) {
        (Some(p), None) => Expect::Bytes(p.to_string()),
        (None, Some(e)) => Expect::Error(e.to_string()),
        _ => panic!("manifest: entry needs exactly one of \"expected\" and \"error\": {v}"),
    }
}

fn point_set(p: &Value) -> PointSet {
    PointSet {
        mip: p["mip"].as_u64().expect("manifest: points mip") as u32,
        kind: p["kind"].as_str().unwrap_or("").to_string(),
        reader: string(p, "reader"),
        options: p["options"].as_object().cloned().unwrap_or_default(),
        points: p["points"]
            .as_array()
            .expect("manifest: point set without points")
            .iter()
            .map(|v| triple(v, "point"))
            .collect(),
        expect: expect_of(p),
    }
}

/// One element, little-endian, formatted for messages.
fn show(dtype: &str, b: &[u8]) -> String {
    macro_rules! le {
        ($t:ty) => {
            <$t>::from_le_bytes(b.try_into().unwrap()).to_string()
        };
    }
    match dtype {
        "uint8" => le!(u8),
        "int8" => le!(i8),
        "uint16" => le!(u16),
        "int16" => le!(i16),
        "uint32" => le!(u32),
        "int32" => le!(i32),
        "uint64" => le!(u64),
        "int64" => le!(i64),
        "float32" => format!("{} (0x{:08x})", le!(f32), u32::from_le_bytes(b.try_into().unwrap())),
        "float64" => format!("{} (0x{:016x})", le!(f64), u64::from_le_bytes(b.try_into().unwrap())),
        _ => format!("{b:?}"),
    }
}

// ------------------------------------------------------------------------------------------------
// The C ABI

/// `cv_open` with the options of a box (none when empty); the error names the call.
fn open(url: &str, options: &Map<String, Value>) -> Result<Vol, String> {
    cabi::open(url, options)
        .map_err(|(st, m)| format!("cv_open({url}, {}) -> status {st}: {m}", Value::Object(options.clone())))
}

/// `cv_chunk_count` then `cv_chunks_exist` over `[lo, hi)`: one flag per grid cell, x fastest,
/// and the count of present ones the call reported.
fn chunks_exist(h: &Vol, mip: u32, lo: [i64; 3], hi: [i64; 3]) -> Result<(Vec<u8>, usize), String> {
    h.chunks_exist(mip, lo, hi).map_err(|(st, m)| format!("status {st}: {m}"))
}

// ------------------------------------------------------------------------------------------------
// Running a pass

/// Where to read a layer from in one pass: its URL and extra options (endpoints), and whether
/// the pass also reads the layer's scattered-point sets and checks its stored chunks.
struct Target {
    url: String,
    extra: Map<String, Value>,
    points_and_chunks: bool,
    /// Also read every box through `cv_cutout_into_strided` (C order inside a padded array).
    strided: bool,
}

impl Target {
    /// Boxes only, through `cv_cutout_into`, with no extra options.
    fn new(url: String) -> Target {
        Target { url, extra: Map::new(), points_and_chunks: false, strided: false }
    }

    fn extra(mut self, extra: &Map<String, Value>) -> Target {
        self.extra = extra.clone();
        self
    }

    /// Also the point sets and the stored chunks.
    fn points_and_chunks(mut self) -> Target {
        self.points_and_chunks = true;
        self
    }

    fn strided(mut self) -> Target {
        self.strided = true;
        self
    }
}

#[derive(Default)]
struct Outcome {
    cases: usize,
    failures: Vec<String>,
    /// Point sets read, and points in them.
    point_sets: usize,
    points: usize,
    /// Chunk-existence queries made (whole mips and sub-boxes).
    chunk_queries: usize,
}

fn status_for(error: &str) -> cv_status {
    match error {
        "not_found" => CV_ERR_NOT_FOUND,
        "out_of_bounds" => CV_ERR_OUT_OF_BOUNDS,
        other => panic!("manifest: unknown expected error {other:?}"),
    }
}

/// Compare; None when equal (within the tolerance), else a message naming the first difference.
fn compare(layer: &Layer, case: &BoxCase, got: &[u8], want: &[u8]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("expected file has {} bytes, the cutout {}", want.len(), got.len()));
    }
    let tol = layer.tolerance;
    let item = elem_size(&layer.dtype);
    let first = if tol == 0 {
        if got == want {
            return None;
        }
        got.iter().zip(want).position(|(a, b)| a != b).map(|i| i / item)
    } else {
        assert_eq!(item, 1, "a tolerance applies to uint8 layers only");
        let bad = got.iter().zip(want).position(|(a, b)| a.abs_diff(*b) > tol);
        bad?;
        bad
    };
    let e = first.unwrap();
    let s = [case.hi[0] - case.lo[0], case.hi[1] - case.lo[1], case.hi[2] - case.lo[2]].map(|v| v as usize);
    let (x, r) = (e % s[0], e / s[0]);
    let (y, r) = (r % s[1], r / s[1]);
    let (z, c) = (r % s[2], r / s[2]);
    let nbad = if tol == 0 {
        got.chunks(item).zip(want.chunks(item)).filter(|(a, b)| a != b).count()
    } else {
        got.iter().zip(want).filter(|(a, b)| a.abs_diff(**b) > tol).count()
    };
    let maxdiff = if tol > 0 {
        format!(", largest difference {}", got.iter().zip(want).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0))
    } else {
        String::new()
    };
    Some(format!(
        "first difference at voxel ({}, {}, {}) channel {c} (element {e}): got {}, want {}{}; {nbad} of {} elements differ{maxdiff}",
        case.lo[0] + x as i64,
        case.lo[1] + y as i64,
        case.lo[2] + z as i64,
        show(&layer.dtype, &got[e * item..(e + 1) * item]),
        show(&layer.dtype, &want[e * item..(e + 1) * item]),
        if tol > 0 { format!(" (tolerance {tol})") } else { String::new() },
        got.len() / item,
    ))
}

/// Read every box of `layer` from `target`, opening one handle per distinct option set.
/// Read `case` again through `cv_cutout_into_strided` in C order `[x][y][z][c]`, inside an
/// array padded by one element before and after every axis (a sub-view), and compare with the
/// Fortran-order read `fortran`: every element transposed, every padding byte untouched.
fn check_strided(h: &Vol, case: &BoxCase, channels: usize, item: usize, fortran: &[u8]) -> Option<String> {
    let s: Vec<usize> = (0..3).map(|d| (case.hi[d] - case.lo[d]) as usize).collect();
    let dims = [s[0], s[1], s[2], channels];
    let padded = dims.map(|n| n + 2);
    // C-order strides of the padded array, in bytes: channel fastest.
    let mut stride = [0usize; 4];
    let mut acc = item;
    for d in (0..4).rev() {
        stride[d] = acc;
        acc *= padded[d];
    }
    let total = acc;
    let start: usize = stride.iter().sum(); // element (1, 1, 1, 1)
    let mut big = vec![0x5Au8; total];
    let strides = stride.map(|v| v as i64);
    // SAFETY: a live handle; the sub-view starts inside `big` and covers the rest of it.
    let st = unsafe {
        cv_cutout_into_strided(
            h.0,
            case.mip,
            case.lo.as_ptr(),
            case.hi.as_ptr(),
            big.as_mut_ptr().add(start).cast::<c_void>(),
            total - start,
            strides.as_ptr(),
        )
    };
    if st != CV_OK {
        return Some(format!("status {st}: {}", last_error()));
    }
    let mut touched = vec![false; total];
    for c in 0..channels {
        for z in 0..s[2] {
            for y in 0..s[1] {
                for x in 0..s[0] {
                    let f = (((c * s[2] + z) * s[1] + y) * s[0] + x) * item;
                    let o = start + x * stride[0] + y * stride[1] + z * stride[2] + c * stride[3];
                    if big[o..o + item] != fortran[f..f + item] {
                        return Some(format!(
                            "element ({x}, {y}, {z}, channel {c}) differs from the Fortran-order read"
                        ));
                    }
                    touched[o..o + item].fill(true);
                }
            }
        }
    }
    if let Some(i) = (0..total).find(|&i| !touched[i] && big[i] != 0x5A) {
        return Some(format!("byte {i} of the padding was overwritten"));
    }
    None
}

fn run_layer(reference: &Reference, layer: &Layer, target: &Target, boxes: &[&BoxCase], out: &mut Outcome) {
    let mut groups: BTreeMap<String, (Map<String, Value>, Vec<&BoxCase>)> = BTreeMap::new();
    for case in boxes {
        let mut opts = case.options.clone();
        for (k, v) in &target.extra {
            opts.insert(k.clone(), v.clone());
        }
        let key = Value::Object(opts.clone()).to_string();
        groups.entry(key).or_insert_with(|| (opts, Vec::new())).1.push(case);
    }
    let item = elem_size(&layer.dtype);
    for (_key, (opts, cases)) in groups {
        let h = match open(&target.url, &opts) {
            Ok(h) => h,
            Err(e) => {
                out.cases += cases.len();
                out.failures.push(format!(
                    "{} [{} writer {}]: {e} ({} boxes not read)",
                    layer.path,
                    layer.encoding,
                    layer.writer,
                    cases.len()
                ));
                continue;
            }
        };
        for case in cases {
            out.cases += 1;
            let voxels: i64 = (0..3).map(|d| case.hi[d] - case.lo[d]).product();
            let n = voxels as usize * layer.channels * item;
            // Poison the buffer so that voxels the reader never writes cannot pass by accident.
            let mut buf = vec![0xA5u8; n];
            let (st, err) = h.cutout_into(case.mip, case.lo, case.hi, &mut buf);
            let what = || {
                format!(
                    "{} ({} {} x{}, written by {}) mip {} box [{},{},{}]..[{},{},{}] ({}){}",
                    target.url,
                    layer.encoding,
                    layer.dtype,
                    layer.channels,
                    layer.writer,
                    case.mip,
                    case.lo[0],
                    case.lo[1],
                    case.lo[2],
                    case.hi[0],
                    case.hi[1],
                    case.hi[2],
                    case.kind,
                    if case.options.is_empty() {
                        String::new()
                    } else {
                        format!(" options {}", Value::Object(case.options.clone()))
                    }
                )
            };
            let differs = |want: &[u8]| compare(layer, case, &buf, want);
            match check_read(reference, &case.expect, (st, &err), &case.reader, &what, differs, &mut out.failures) {
                Checked::Refused => {
                    // The message must name what failed: the layer (its URL or a chunk key).
                    let name = layer.path.rsplit('/').next().unwrap_or(&layer.path);
                    if !err.contains(name) {
                        out.failures.push(format!(
                            "{}: status {st} as expected, but cv_last_error() does not name the layer ({name}): {err:?}",
                            what()
                        ));
                    }
                }
                Checked::Read if target.strided => {
                    if let Some(msg) = check_strided(&h, case, layer.channels, item, &buf) {
                        out.failures.push(format!("{}: cv_cutout_into_strided: {msg}", what()));
                    }
                }
                Checked::Read | Checked::Failed => {}
            }
        }
    }
}

/// What a read came to, against its expectation.
enum Checked {
    /// Refused with the expected status.
    Refused,
    /// Read (`CV_OK`), whether or not the bytes matched.
    Read,
    /// Neither: the failure is recorded.
    Failed,
}

/// Check the outcome `(st, err)` of the read `what()` against `expect`: the status `reader`
/// refused it with, or `reader`'s bytes (from the reference directory), which `differs` compares
/// with what was read (None when equal). Failures are pushed onto `failures`.
fn check_read(
    reference: &Reference,
    expect: &Expect,
    (st, err): (cv_status, &str),
    reader: &str,
    what: &dyn Fn() -> String,
    differs: impl FnOnce(&[u8]) -> Option<String>,
    failures: &mut Vec<String>,
) -> Checked {
    match expect {
        Expect::Error(e) => {
            let want = status_for(e);
            if st == want {
                return Checked::Refused;
            }
            failures.push(format!("{}: expected status {want} ({e}, as {reader} refused it), got {st} {err}", what()));
            Checked::Failed
        }
        Expect::Bytes(p) => {
            if st != CV_OK {
                failures.push(format!("{}: status {st}: {err}", what()));
                return Checked::Failed;
            }
            let want = std::fs::read(reference.dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
            if let Some(msg) = differs(&want) {
                failures.push(format!("{}: differs from {reader}'s read ({p}): {msg}", what()));
            }
            Checked::Read
        }
    }
}

/// Compare the values of a point set; None when equal (within the tolerance).
fn compare_points(layer: &Layer, set: &PointSet, got: &[u8], want: &[u8]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("expected file has {} bytes, the points {}", want.len(), got.len()));
    }
    let item = elem_size(&layer.dtype);
    let tol = layer.tolerance;
    let bad = |a: &[u8], b: &[u8]| {
        if tol == 0 {
            a != b
        } else {
            a.iter().zip(b).any(|(x, y)| x.abs_diff(*y) > tol)
        }
    };
    let pairs = || got.chunks(item).zip(want.chunks(item));
    let first = pairs().position(|(a, b)| bad(a, b))?;
    let nbad = pairs().filter(|(a, b)| bad(a, b)).count();
    let (i, c) = (first / layer.channels, first % layer.channels);
    Some(format!(
        "first difference at point {i} {:?} channel {c}: got {}, want {}{}; {nbad} of {} values differ",
        set.points[i],
        show(&layer.dtype, &got[first * item..(first + 1) * item]),
        show(&layer.dtype, &want[first * item..(first + 1) * item]),
        if tol > 0 { format!(" (tolerance {tol})") } else { String::new() },
        got.len() / item,
    ))
}

/// The cells of grid `grid` from `c0` to `c1` (exclusive), x fastest: the order of
/// `cv_chunks_exist`.
fn cells_between(c0: [i64; 3], c1: [i64; 3]) -> Vec<[i64; 3]> {
    let mut v = Vec::new();
    for z in c0[2]..c1[2] {
        for y in c0[1]..c1[1] {
            for x in c0[0]..c1[0] {
                v.push([x, y, z]);
            }
        }
    }
    v
}

/// Read every scattered-point set of `layer` through `cv_scattered_points`, and check
/// `cv_chunks_exist` against the chunks the writer stored (the whole of each listed mip, and a
/// box cutting cells in the middle of it).
fn run_points_and_chunks(reference: &Reference, layer: &Layer, target: &Target, out: &mut Outcome) {
    let with_extra = |o: &Map<String, Value>| {
        let mut opts = o.clone();
        for (k, v) in &target.extra {
            opts.insert(k.clone(), v.clone());
        }
        opts
    };
    let item = elem_size(&layer.dtype);
    // One handle per distinct option set, shared by the point sets and the chunk queries.
    let mut handles: BTreeMap<String, Result<Vol, String>> = BTreeMap::new();
    fn cached<'a>(
        handles: &'a mut BTreeMap<String, Result<Vol, String>>,
        url: &str,
        opts: Map<String, Value>,
    ) -> Result<&'a Vol, String> {
        handles
            .entry(Value::Object(opts.clone()).to_string())
            .or_insert_with(|| open(url, &opts))
            .as_ref()
            .map_err(Clone::clone)
    }
    for set in &layer.points {
        out.point_sets += 1;
        out.points += set.points.len();
        let what = || {
            format!(
                "{} ({} {} x{}, written by {}{}) mip {} {} point(s) ({}){}",
                target.url,
                layer.encoding,
                layer.dtype,
                layer.channels,
                layer.writer,
                if layer.sharded() { ", sharded" } else { "" },
                set.mip,
                set.points.len(),
                set.kind,
                if set.options.is_empty() {
                    String::new()
                } else {
                    format!(" options {}", Value::Object(set.options.clone()))
                }
            )
        };
        let h = match cached(&mut handles, &target.url, with_extra(&set.options)) {
            Ok(h) => h,
            Err(e) => {
                out.failures.push(format!("{}: {e}", what()));
                continue;
            }
        };
        let mut buf = vec![0xA5u8; set.points.len() * layer.channels * item];
        let (st, err) = h.points_into(set.mip, &set.points, &mut buf);
        let what = || format!("{}: cv_scattered_points", what());
        let differs = |want: &[u8]| compare_points(layer, set, &buf, want);
        check_read(reference, &set.expect, (st, &err), &set.reader, &what, differs, &mut out.failures);
    }
    if layer.chunks.is_empty() {
        return;
    }
    let h = match cached(&mut handles, &target.url, with_extra(&Map::new())) {
        Ok(h) => h,
        Err(e) => {
            out.failures.push(format!("{}: chunk existence: {e}", target.url));
            return;
        }
    };
    for set in &layer.chunks {
        let m = layer.mips[set.mip as usize];
        let lo = m.voxel_offset;
        let hi = [0, 1, 2].map(|d| lo[d] + m.size[d]);
        let grid = set.grid;
        let mid0 = grid.map(|g| g / 3);
        let mid1 = [0, 1, 2].map(|d| (2 * grid[d] / 3 + 1).clamp(mid0[d] + 1, grid[d]));
        // A box from one voxel into cell mid0 to one voxel into cell mid1 - 1.
        let sub_lo = [0, 1, 2].map(|d| lo[d] + mid0[d] * m.chunk_size[d] + (m.chunk_size[d] - 1).min(1));
        let sub_hi = [0, 1, 2].map(|d| (lo[d] + (mid1[d] - 1) * m.chunk_size[d] + 2).min(hi[d]));
        let sub_lo = [0, 1, 2].map(|d| sub_lo[d].min(sub_hi[d] - 1));
        for (blo, bhi, cells) in [(lo, hi, cells_between([0; 3], grid)), (sub_lo, sub_hi, cells_between(mid0, mid1))] {
            out.chunk_queries += 1;
            let what = format!(
                "{} ({}{}) mip {} box [{},{},{}]..[{},{},{}]: cv_chunks_exist",
                target.url,
                layer.writer,
                if layer.sharded() { ", sharded" } else { "" },
                set.mip,
                blo[0],
                blo[1],
                blo[2],
                bhi[0],
                bhi[1],
                bhi[2]
            );
            let (flags, n_present) = match chunks_exist(h, set.mip, blo, bhi) {
                Ok(r) => r,
                Err(e) => {
                    out.failures.push(format!("{what}: {e}"));
                    continue;
                }
            };
            if flags.len() != cells.len() {
                out.failures.push(format!("{what}: {} cells reported, the box meets {}", flags.len(), cells.len()));
                continue;
            }
            let want: Vec<u8> = cells.iter().map(|c| u8::from(set.present.contains(c))).collect();
            let wrong: Vec<String> = cells
                .iter()
                .zip(flags.iter().zip(&want))
                .filter(|(_, (g, w))| g != w)
                .map(|(c, (g, w))| format!("cell {c:?}: got {g}, want {w}"))
                .collect();
            let n_want = want.iter().filter(|&&w| w == 1).count();
            if !wrong.is_empty() || n_present != n_want {
                out.failures.push(format!(
                    "{what}: differs from the chunks the writer stored ({}): {} of {} cells wrong ({}); n_present {n_present}, want {n_want}",
                    set.source,
                    wrong.len(),
                    cells.len(),
                    wrong.iter().take(4).cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
}

fn run_pass(name: &str, reference: &Reference, targets: &[(&Layer, Target, Vec<&BoxCase>)]) {
    let t0 = Instant::now();
    let mut out = Outcome::default();
    for (layer, target, boxes) in targets {
        run_layer(reference, layer, target, boxes, &mut out);
        if target.points_and_chunks {
            run_points_and_chunks(reference, layer, target, &mut out);
        }
    }
    eprintln!(
        "conformance {name}: {} layers, {} boxes, {} point sets ({} points), {} chunk-existence queries, {} failures, {:.1} s",
        targets.len(),
        out.cases,
        out.point_sets,
        out.points,
        out.chunk_queries,
        out.failures.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(out.cases > 0, "conformance {name}: no box was read");
    if !out.failures.is_empty() {
        let mut msg = format!(
            "conformance {name}: {} failures ({} boxes, {} point sets, {} chunk-existence queries):\n",
            out.failures.len(),
            out.cases,
            out.point_sets,
            out.chunk_queries
        );
        for f in out.failures.iter().take(40) {
            let _ = writeln!(msg, "  - {f}");
        }
        if out.failures.len() > 40 {
            let _ = writeln!(msg, "  ... and {} more", out.failures.len() - 40);
        }
        panic!("{msg}");
    }
}

fn all_boxes(layer: &Layer) -> Vec<&BoxCase> {
    layer.boxes.iter().collect()
}

/// Every box of the layers that `keep` keeps, each layer read from `target(layer)`.
fn every_box(
    r: &Reference,
    keep: impl Fn(&Layer) -> bool,
    target: impl Fn(&Layer) -> Target,
) -> Vec<(&Layer, Target, Vec<&BoxCase>)> {
    r.layers.iter().filter(|l| keep(l)).map(|l| (l, target(l), all_boxes(l))).collect()
}

fn server(reference: &Reference) -> Option<Nginx> {
    let enc = reference.dir.join("encoded");
    let mut cfg = nginx::Config::new(&reference.dir).gzip_static(true);
    for e in ["gzip", "br", "zstd"] {
        if enc.join(e).is_dir() {
            cfg = cfg.encoded(&format!("/encoded/{e}/"), e);
        }
    }
    Nginx::start(cfg)
}

// ------------------------------------------------------------------------------------------------
// Tests

/// The manifest covers what the reader claims to support; guards against a generator that
/// silently shrinks.
#[test]
fn manifest_covers_the_matrix() {
    let Some(r) = load() else { return };
    let has = |w: &str, enc: &str, dt: &str, nc: usize| {
        r.layers.iter().any(|l| l.writer == w && l.encoding == enc && l.dtype == dt && l.channels == nc)
    };
    let mut missing = Vec::new();
    for dt in ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "float32"] {
        for w in ["cloud-volume", "tensorstore"] {
            if !has(w, "raw", dt, 1) {
                missing.push(format!("{w} raw {dt} x1"));
            }
            if !r.layers.iter().any(|l| l.writer == w && l.encoding == "raw" && l.dtype == dt && l.channels > 1) {
                missing.push(format!("{w} raw {dt} multi-channel"));
            }
        }
    }
    for dt in ["int64", "float64"] {
        if !has("cloud-volume", "raw", dt, 1) {
            missing.push(format!("cloud-volume raw {dt}"));
        }
    }
    for w in ["cloud-volume", "tensorstore"] {
        for nc in [1, 3] {
            if !has(w, "jpeg", "uint8", nc) {
                missing.push(format!("{w} jpeg x{nc}"));
            }
        }
        for dt in ["uint32", "uint64"] {
            if !has(w, "compressed_segmentation", dt, 1) {
                missing.push(format!("{w} compressed_segmentation {dt}"));
            }
        }
    }
    for nc in 1..=4 {
        for dt in ["uint8", "uint16"] {
            if !has("tensorstore", "png", dt, nc) {
                missing.push(format!("tensorstore png {dt} x{nc}"));
            }
        }
    }
    if !has("tensorstore", "compressed_segmentation", "uint64", 2) {
        missing.push("tensorstore compressed_segmentation x2".into());
    }
    for c in ["gzip", "br", "zstd"] {
        if !r.layers.iter().any(|l| l.file_compression.as_deref() == Some(c)) {
            missing.push(format!("cloud-volume file:// .{c} layer"));
        }
        if !r.layers.iter().any(|l| l.encoded.iter().any(|(e, _)| e == c)) {
            missing.push(format!("Content-Encoding {c} copy"));
        }
    }
    let errors = |e: &str| {
        r.layers.iter().flat_map(|l| &l.boxes).filter(|b| matches!(&b.expect, Expect::Error(x) if x == e)).count()
    };
    if errors("not_found") == 0 {
        missing.push("boxes over missing chunks".into());
    }
    if errors("out_of_bounds") == 0 {
        missing.push("out-of-bounds boxes".into());
    }
    let opt = |k: &str| r.layers.iter().flat_map(|l| &l.boxes).filter(|b| b.options.contains_key(k)).count();
    for k in ["fill_missing", "bounded", "background_color"] {
        if opt(k) == 0 {
            missing.push(format!("boxes with option {k}"));
        }
    }
    if r.layers.iter().any(|l| l.writer == "cloud-volume" && l.encoding == "png") {
        for nc in 1..=4 {
            if !has("cloud-volume", "png", "uint8", nc) {
                missing.push(format!("cloud-volume png uint8 x{nc}"));
            }
        }
    } else {
        eprintln!("note: the reference set has no cloud-volume png layer (pyspng-seunglab missing when it was made)");
    }
    // Sharded layers (issue 3): both hashes, both encodings of minishard indices and of data,
    // one-digit and two-digit shard file names, both writers, jpeg and compressed_segmentation,
    // several mips, missing chunks and shards, scattered points and stored-chunk lists.
    let specs: Vec<(&Layer, &Value)> =
        r.layers.iter().flat_map(|l| l.sharding.iter().flatten().map(move |s| (l, s))).collect();
    let any_spec = |f: &dyn Fn(&Value) -> bool| specs.iter().any(|(_, s)| f(s));
    for hash in ["identity", "murmurhash3_x86_128"] {
        if !any_spec(&|s| s["hash"] == hash) {
            missing.push(format!("sharded layer with hash {hash}"));
        }
    }
    for member in ["minishard_index_encoding", "data_encoding"] {
        for enc in ["raw", "gzip"] {
            if !any_spec(&|s| s[member] == enc) {
                missing.push(format!("sharded layer with {member} {enc}"));
            }
        }
    }
    if !any_spec(&|s| s["shard_bits"] == 0) {
        missing.push("sharded layer with shard_bits 0".into());
    }
    if !any_spec(&|s| s["shard_bits"].as_u64().unwrap_or(0) > 4) {
        missing.push("sharded layer with shard_bits > 4 (two-digit shard file names)".into());
    }
    if !any_spec(&|s| {
        s["hash"] == "identity" && s["preshift_bits"] == 9 && s["minishard_bits"] == 6 && s["shard_bits"] == 13
    }) {
        missing.push("sharded layer with FAFB's parameters".into());
    }
    for w in ["cloud-volume", "tensorstore"] {
        if !r.layers.iter().any(|l| l.sharded() && l.writer == w) {
            missing.push(format!("sharded layer written by {w}"));
        }
    }
    for (enc, dt) in [("jpeg", "uint8"), ("compressed_segmentation", "uint64"), ("raw", "uint16")] {
        if !r.layers.iter().any(|l| l.sharded() && l.encoding == enc && l.dtype == dt) {
            missing.push(format!("sharded {enc} {dt} layer"));
        }
    }
    if !r.layers.iter().any(|l| l.sharding.iter().filter(|s| s.is_some()).count() > 1) {
        missing.push("sharded layer with two sharded mips".into());
    }
    if !r.layers.iter().any(|l| {
        l.sharded()
            && l.boxes.iter().any(|b| b.options.contains_key("fill_missing"))
            && l.boxes.iter().any(|b| matches!(&b.expect, Expect::Error(e) if e == "not_found"))
    }) {
        missing.push("sharded layer with missing chunks (fill_missing boxes and refusals)".into());
    }
    for sharded in [true, false] {
        let sets = r.layers.iter().filter(|l| l.sharded() == sharded).flat_map(|l| &l.points);
        if sets.count() == 0 {
            missing.push(format!("scattered points on {} layers", if sharded { "sharded" } else { "unsharded" }));
        }
        if !r.layers.iter().any(|l| l.sharded() == sharded && !l.chunks.is_empty()) {
            missing.push(format!("stored-chunk lists of {} layers", if sharded { "sharded" } else { "unsharded" }));
        }
    }
    if !r.layers.iter().flat_map(|l| &l.points).any(|p| matches!(&p.expect, Expect::Error(_))) {
        missing.push("point sets that must be refused".into());
    }
    if !r.layers.iter().flat_map(|l| &l.chunks).any(|c| (c.present.len() as i64) < c.grid.iter().product::<i64>()) {
        missing.push("stored-chunk lists with absent chunks".into());
    }
    assert!(missing.is_empty(), "the reference manifest lacks: {}", missing.join(", "));
    let nboxes: usize = r.layers.iter().map(|l| l.boxes.len()).sum();
    let nsharded = r.layers.iter().filter(|l| l.sharded()).count();
    let npoints: usize = r.layers.iter().flat_map(|l| &l.points).map(|p| p.points.len()).sum();
    eprintln!(
        "reference: {nsharded} sharded layers; {} point sets ({npoints} points); {} stored-chunk lists",
        r.layers.iter().map(|l| l.points.len()).sum::<usize>(),
        r.layers.iter().map(|l| l.chunks.len()).sum::<usize>()
    );
    eprintln!(
        "reference: {} layers, {} boxes; generated by {}; cross-checks {}",
        r.layers.len(),
        nboxes,
        r.json["generated_by"],
        r.json["cross_checks"]
    );
    for l in r.layers.iter().filter_map(|l| l.reader_note.as_ref().map(|n| (l, n))).take(1) {
        eprintln!("note ({}): {}", l.0.path, l.1);
    }
}

/// (a) Every layer and box over file://, including cloud-volume's .gz/.br/.zstd file suffixes.
#[test]
fn file_protocol() {
    let Some(r) = load() else { return };
    let targets =
        every_box(&r, |_| true, |l| Target::new(file_url(&r.dir.join(&l.path))).points_and_chunks().strided());
    run_pass("file://", &r, &targets);
}

/// Cloud paths without a scheme (a plain absolute path) and behind `precomputed://` name the
/// same layers; checked on the whole volume at mip 0 of every layer.
#[test]
fn path_spellings() {
    let Some(r) = load() else { return };
    let targets: Vec<_> = r
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let p = r.dir.join(&l.path).display().to_string();
            let url = if i % 2 == 0 { p } else { format!("precomputed://file://{p}/") };
            let boxes = l.boxes.iter().filter(|b| b.kind == "whole" && b.options.is_empty()).take(1).collect();
            (l, Target::new(url), boxes)
        })
        .collect();
    run_pass("path spellings", &r, &targets);
}

/// (b) Over http:// from nginx. cloud-volume's `.gz` chunk files are served with
/// `Content-Encoding: gzip` (gzip_static), as a bucket serves them; `.br`/`.zstd` suffix layers
/// are file://-only.
#[test]
fn http_protocol() {
    let Some(r) = load() else { return };
    let Some(ng) = server(&r) else { return };
    let targets = every_box(&r, |l| l.http, |l| Target::new(ng.url(&l.path)).points_and_chunks().strided());
    run_pass("http://", &r, &targets);
    drop(ng);
}

fn bucket_pass(scheme: &str, option: &str) {
    let Some(r) = load() else { return };
    let Some(ng) = server(&r) else { return };
    let mut extra = Map::new();
    extra.insert(option.to_string(), Value::String(ng.base_url()));
    // A public bucket: whatever secrets this machine holds are not sent to the loopback server.
    extra.insert("anonymous".to_string(), Value::Bool(true));
    let targets =
        every_box(&r, |l| l.http, |l| Target::new(format!("{scheme}://{}", l.path)).extra(&extra).points_and_chunks());
    run_pass(&format!("{scheme}:// ({option})"), &r, &targets);
    drop(ng);
}

/// (c) gs://BUCKET/... with `gs_endpoint` pointing at nginx (the bucket is the first component).
#[test]
fn gs_protocol_via_endpoint() {
    bucket_pass("gs", "gs_endpoint");
}

/// (c) s3://BUCKET/... with `s3_endpoint` pointing at nginx.
#[test]
fn s3_protocol_via_endpoint() {
    bucket_pass("s3", "s3_endpoint");
}

/// (d) Copies stored compressed under plain names (info included), served with
/// `Content-Encoding: gzip|br|zstd`; once over http:// and once as gs://.
#[test]
fn content_encoding_over_http() {
    let Some(r) = load() else { return };
    let Some(ng) = server(&r) else { return };
    let mut gs = Map::new();
    gs.insert("gs_endpoint".into(), Value::String(ng.base_url()));
    let mut targets = Vec::new();
    for l in &r.layers {
        for (i, (_enc, path)) in l.encoded.iter().enumerate() {
            let t = if i % 2 == 0 { Target::new(ng.url(path)) } else { Target::new(format!("gs://{path}")).extra(&gs) };
            targets.push((l, t.points_and_chunks(), all_boxes(l)));
        }
    }
    assert!(!targets.is_empty() || !required(), "the manifest lists no Content-Encoding copies");
    if targets.is_empty() {
        return;
    }
    // The server really labels these responses: a plain GET must carry the header.
    let (_, (enc, path)) = r.layers.iter().flat_map(|l| l.encoded.iter().map(move |e| (l, e))).next().unwrap();
    let header = raw_get_header(ng.port(), &format!("/{path}/info"), "content-encoding");
    assert_eq!(header.as_deref(), Some(enc.as_str()), "nginx does not send Content-Encoding for {path}/info");
    run_pass("Content-Encoding", &r, &targets);
    drop(ng);
}

/// A header of a plain HTTP/1.0 GET, lower-cased name.
fn raw_get_header(port: u16, path: &str, name: &str) -> Option<String> {
    let (head, _) = http_get(("127.0.0.1", port), path, "").ok()?;
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
    })
}

/// fill_missing / bounded / background_color and the refusals, read through http:// too (a
/// missing chunk is a 404 there, a zero-byte chunk an empty 200): only the boxes that carry
/// options or expect an error. (file:// runs them in `file_protocol`.)
#[test]
fn missing_chunks_and_bounds_over_http() {
    let Some(r) = load() else { return };
    let Some(ng) = server(&r) else { return };
    let targets: Vec<_> = r
        .layers
        .iter()
        .filter(|l| l.http)
        .map(|l| {
            let boxes: Vec<_> =
                l.boxes.iter().filter(|b| !b.options.is_empty() || matches!(b.expect, Expect::Error(_))).collect();
            (l, Target::new(ng.url(&l.path)), boxes)
        })
        .filter(|(_, _, b)| !b.is_empty())
        .collect();
    if targets.is_empty() {
        assert!(!required(), "the manifest has no fill_missing/bounded boxes");
        return;
    }
    run_pass("fill_missing/bounded over http://", &r, &targets);
    drop(ng);
}

/// The nginx helper: byte ranges (the sharded reader relies on them), 404s, Content-Encoding
/// prefixes over the main root and over a second root, and gzip_static.
#[test]
fn nginx_helper_serves_ranges_and_encodings() {
    let dir = std::env::temp_dir().join(format!("cv-conformance-nginx-{}", std::process::id()));
    let second = dir.join("second");
    std::fs::create_dir_all(dir.join("root/b")).unwrap();
    std::fs::create_dir_all(dir.join("root/enc/br")).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("root/b/obj"), &body).unwrap();
    std::fs::write(dir.join("root/b/z.gz"), b"gzipped bytes").unwrap();
    std::fs::write(dir.join("root/enc/br/x"), b"brotli bytes").unwrap();
    std::fs::write(second.join("y"), b"zstd bytes").unwrap();
    let cfg = nginx::Config::new(dir.join("root"))
        .gzip_static(true)
        .encoded("/enc/br/", "br")
        .encoded_root("/second/", &second, "zstd");
    let Some(ng) = Nginx::start(cfg) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let get = |path: &str, extra: &str| http_get(("127.0.0.1", ng.port()), path, extra).unwrap();
    let (head, data) = get("/b/obj", "Range: bytes=100-199\r\n");
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert_eq!(data, &body[100..200]);
    let (head, data) = get("/b/obj", "");
    assert!(head.starts_with("http/1.1 200") && !head.contains("content-encoding"), "{head}");
    assert_eq!(data, body);
    let (head, _) = get("/b/nothing", "");
    assert!(head.starts_with("http/1.1 404"), "{head}");
    let (head, data) = get("/b/z", "");
    assert!(head.starts_with("http/1.1 200") && head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(data, b"gzipped bytes");
    let (head, data) = get("/enc/br/x", "");
    assert!(head.contains("content-encoding: br"), "{head}");
    assert_eq!(data, b"brotli bytes");
    let (head, data) = get("/second/y", "");
    assert!(head.contains("content-encoding: zstd"), "{head}");
    assert_eq!(data, b"zstd bytes");
    drop(ng);
    let _ = std::fs::remove_dir_all(&dir);
}
