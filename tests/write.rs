//! Writes (issue "Write volumes"), through the C ABI: `cv_new_info`, `cv_create`,
//! `cv_write_from`, `cv_add_scale`, `cv_delete`, and the CLI's `create`/`upload`/`add-scale`/
//! `delete`.
//!
//! - Round trips for every encoding x data type x channel count, read back by this library,
//!   tensorstore and cloud-volume (`tests/reference/write_check.py`); compressed_segmentation
//!   chunk files byte-identical to tensorstore's for the same voxels.
//! - Content compression: plain files by default and `.gz` with `{"compress":"gzip"}` on
//!   file:// (read by cloud-volume), `Content-Encoding: gzip` PUTs for raw and
//!   compressed_segmentation over HTTP, gs:// and s3:// endpoints (a writable nginx, its access
//!   log and the files it stored).
//! - Sharded scales: whole-shard and whole-volume writes (identity and murmurhash, raw and gzip)
//!   read back by tensorstore and cloud-volume; partial shards refused naming the shard file.
//! - Non-aligned writes: refused without the option; with it, merged at every edge and corner
//!   against a model kept here (also into missing chunks, cseg and jpeg layers); aligned writes
//!   never read (nginx access log).
//! - Concurrent writers of disjoint boxes; a `cloudvolume upload` killed with SIGKILL leaves
//!   every chunk old or new; bad input; `delete_black_uploads` and `cv_delete`; the CLI.
//!
//! The reference comparisons need `target/venv/bin/python` (scripts/setup.sh), the HTTP ones
//! nginx with the dav module; without them those parts print a notice and pass, unless
//! `CV_REQUIRE_REFERENCE=1`.

#![allow(clippy::type_complexity)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cloudvolume::codec::compression::gunzip;
use cloudvolume::codec::{encode_chunk, EncodeOptions};
use cloudvolume::ffi::*;
use cloudvolume::{DataType, Encoding};
use serde_json::{json, Value};
use support::cabi::{cs, expect_err, ok, open, status, status_name, Failure, Vol};
use support::env::{cli, crate_dir, python};
use support::files::{file_names, snapshot, TempDir};
use support::layers::chunk_name;
use support::nginx::{Config, Nginx};
use support::sharding::{morton, murmur3, Hash, Sharding};

// ---------------------------------------------------------------------------------------------
// The C ABI from Rust

#[allow(clippy::too_many_arguments)]
fn new_info(
    layer_type: &str,
    dtype: &str,
    encoding: &str,
    nc: u32,
    res: [f64; 3],
    off: [i64; 3],
    size: [i64; 3],
    chunk: [i64; 3],
) -> Result<Value, Failure> {
    let (a, b, e) = (cs(layer_type), cs(dtype), cs(encoding));
    let mut out: *mut c_char = std::ptr::null_mut();
    // SAFETY: valid strings and arrays of 3.
    let st = unsafe {
        cv_new_info(
            a.as_ptr(),
            b.as_ptr(),
            e.as_ptr(),
            nc,
            res.as_ptr(),
            off.as_ptr(),
            size.as_ptr(),
            chunk.as_ptr(),
            &mut out,
        )
    };
    if st != CV_OK {
        assert!(out.is_null(), "cv_new_info wrote its output on failure");
    }
    status(st)?;
    // SAFETY: a string from the library, released once.
    let text = unsafe { CStr::from_ptr(out) }.to_string_lossy().into_owned();
    unsafe { cv_string_free(out) };
    Ok(serde_json::from_str(&text).unwrap_or_else(|e| panic!("cv_new_info gave invalid JSON {text}: {e}")))
}

fn create_text(url: &str, info: &str, opts: Option<&str>) -> Result<Vol, Failure> {
    let (u, i) = (cs(url), cs(info));
    let o = opts.map(cs);
    let mut out: *mut cv_volume = std::ptr::null_mut();
    // SAFETY: valid strings and out pointer.
    let st =
        unsafe { cv_create(u.as_ptr(), i.as_ptr(), o.as_ref().map_or(std::ptr::null(), |o| o.as_ptr()), &mut out) };
    if st != CV_OK {
        assert!(out.is_null(), "cv_create wrote its output on failure");
    }
    status(st).map(|()| Vol(out))
}

fn create(url: &str, info: &Value, opts: Option<&str>) -> Result<Vol, Failure> {
    create_text(url, &info.to_string(), opts)
}

impl Vol {
    fn write(&self, mip: u32, lo: [i64; 3], hi: [i64; 3], buf: &[u8]) -> Result<(), Failure> {
        // SAFETY: buf holds buf.len() bytes.
        status(unsafe { cv_write_from(self.0, mip, lo.as_ptr(), hi.as_ptr(), buf.as_ptr().cast(), buf.len()) })
    }

    #[track_caller]
    fn write_ok(&self, mip: u32, lo: [i64; 3], hi: [i64; 3], buf: &[u8]) {
        ok(self.write(mip, lo, hi, buf), &format!("write {lo:?}..{hi:?} at mip {mip}"));
    }

    fn delete(&self, mip: u32, lo: [i64; 3], hi: [i64; 3]) -> Result<(), Failure> {
        // SAFETY: valid pointers.
        status(unsafe { cv_delete(self.0, mip, lo.as_ptr(), hi.as_ptr()) })
    }

    fn add_scale(&mut self, factor: [i64; 3], chunk: Option<[i64; 3]>) -> Result<u32, Failure> {
        let mut mip = u32::MAX;
        let cp = chunk.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: a live handle used by this thread only; arrays of 3.
        status(unsafe { cv_add_scale(self.0, factor.as_ptr(), cp, &mut mip) })?;
        Ok(mip)
    }

    fn num_mips(&self) -> u32 {
        let mut n = 0;
        // SAFETY: valid pointers.
        ok(status(unsafe { cv_num_mips(self.0, &mut n) }), "cv_num_mips");
        n
    }

    fn bounds(&self, mip: u32) -> ([i64; 3], [i64; 3]) {
        let (mut lo, mut hi) = ([0i64; 3], [0i64; 3]);
        // SAFETY: arrays of 3.
        ok(status(unsafe { cv_bounds(self.0, mip, lo.as_mut_ptr(), hi.as_mut_ptr()) }), "cv_bounds");
        (lo, hi)
    }

    fn info(&self) -> Value {
        let mut out: *mut c_char = std::ptr::null_mut();
        // SAFETY: valid pointers; the string is released once.
        ok(status(unsafe { cv_info_json(self.0, &mut out) }), "cv_info_json");
        let text = unsafe { CStr::from_ptr(out) }.to_string_lossy().into_owned();
        unsafe { cv_string_free(out) };
        serde_json::from_str(&text).unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Data, boxes and the model

/// splitmix64.
fn mix(mut v: u64) -> u64 {
    v = v.wrapping_add(0x9E37_79B9_7F4A_7C15);
    v = (v ^ (v >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    v = (v ^ (v >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    v ^ (v >> 31)
}

/// What the voxels look like: any bit pattern, smooth 8-bit images (jpeg), labels (cseg).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Noise,
    Smooth,
    Labels,
}

fn kind_for(enc: Encoding) -> Kind {
    match enc {
        Encoding::Jpeg => Kind::Smooth,
        Encoding::CompressedSegmentation => Kind::Labels,
        _ => Kind::Noise,
    }
}

/// The element at absolute voxel `p`, channel `c`, of the pattern `seed`, as u64 bits
/// (truncated to the type's size by the caller).
fn element(dtype: DataType, kind: Kind, p: [i64; 3], c: usize, seed: u64) -> u64 {
    let [x, y, z] = p;
    let h = mix(mix(seed.wrapping_mul(0x100_0000_01B3))
        ^ (x as u64).wrapping_add((y as u64) << 20).wrapping_add((z as u64) << 40).wrapping_add((c as u64) << 58));
    match kind {
        Kind::Smooth => {
            let v = 120.0
                + 60.0 * (x as f64 / 9.0 + c as f64 * 1.3).sin() * (y as f64 / 11.0).cos()
                + 2.0 * z as f64
                + 3.0 * (seed % 4) as f64;
            v.clamp(0.0, 255.0) as u64
        }
        Kind::Labels => {
            let region = (x.div_euclid(5) + 3 * y.div_euclid(4) + 7 * z.div_euclid(3) + 11 * c as i64 + seed as i64)
                .rem_euclid(13);
            let v = if region == 0 {
                0
            } else if h % 17 == 0 {
                1 + h % 3
            } else {
                mix(region as u64 ^ (seed << 8))
            };
            if dtype.size() == 4 {
                v & 0xFFFF_FFFF
            } else {
                v
            }
        }
        Kind::Noise => match dtype {
            DataType::F32 => u64::from((((h % 2_000_001) as f32) - 1_000_000.0).mul_add(0.125, 0.0).to_bits()),
            DataType::F64 => ((h as i64) as f64 / 3.0).to_bits(),
            _ => h,
        },
    }
}

/// A box `[lo, hi)` of the pattern, planar Fortran order `[x, y, z, c]`.
fn fill(dtype: DataType, kind: Kind, nc: usize, lo: [i64; 3], hi: [i64; 3], seed: u64) -> Vec<u8> {
    let item = dtype.size();
    let n: i64 = (0..3).map(|d| hi[d] - lo[d]).product();
    let mut out = Vec::with_capacity(n as usize * nc * item);
    for c in 0..nc {
        for z in lo[2]..hi[2] {
            for y in lo[1]..hi[1] {
                for x in lo[0]..hi[0] {
                    out.extend_from_slice(&element(dtype, kind, [x, y, z], c, seed).to_le_bytes()[..item]);
                }
            }
        }
    }
    out
}

fn shape(lo: [i64; 3], hi: [i64; 3]) -> [usize; 3] {
    [0, 1, 2].map(|d| (hi[d] - lo[d]) as usize)
}

/// Copy the region `[r_lo, r_hi)` between planar arrays covering `[s_lo, s_hi)` and `[d_lo, d_hi)`.
#[allow(clippy::too_many_arguments)]
fn copy_region(
    src: &[u8],
    s_lo: [i64; 3],
    s_hi: [i64; 3],
    dst: &mut [u8],
    d_lo: [i64; 3],
    d_hi: [i64; 3],
    r_lo: [i64; 3],
    r_hi: [i64; 3],
    nc: usize,
    item: usize,
) {
    let (ss, ds) = (shape(s_lo, s_hi), shape(d_lo, d_hi));
    let n = (r_hi[0] - r_lo[0]) as usize * item;
    for c in 0..nc {
        for z in r_lo[2]..r_hi[2] {
            for y in r_lo[1]..r_hi[1] {
                let so = (((c * ss[2] + (z - s_lo[2]) as usize) * ss[1] + (y - s_lo[1]) as usize) * ss[0]
                    + (r_lo[0] - s_lo[0]) as usize)
                    * item;
                let dof = (((c * ds[2] + (z - d_lo[2]) as usize) * ds[1] + (y - d_lo[1]) as usize) * ds[0]
                    + (r_lo[0] - d_lo[0]) as usize)
                    * item;
                dst[dof..dof + n].copy_from_slice(&src[so..so + n]);
            }
        }
    }
}

/// What a layer's mip should hold: a planar array over its bounds.
#[derive(Clone)]
struct Model {
    lo: [i64; 3],
    hi: [i64; 3],
    nc: usize,
    item: usize,
    data: Vec<u8>,
}

impl Model {
    fn new(lo: [i64; 3], hi: [i64; 3], nc: usize, item: usize, background: &[u8]) -> Model {
        assert_eq!(background.len(), item);
        let n = shape(lo, hi).iter().product::<usize>() * nc;
        Model { lo, hi, nc, item, data: background.repeat(n) }
    }

    fn paint(&mut self, lo: [i64; 3], hi: [i64; 3], buf: &[u8]) {
        let (slo, shi) = (self.lo, self.hi);
        copy_region(buf, lo, hi, &mut self.data, slo, shi, lo, hi, self.nc, self.item);
    }

    fn get(&self, lo: [i64; 3], hi: [i64; 3]) -> Vec<u8> {
        let mut out = vec![0u8; shape(lo, hi).iter().product::<usize>() * self.nc * self.item];
        copy_region(&self.data, self.lo, self.hi, &mut out, lo, hi, lo, hi, self.nc, self.item);
        out
    }

    fn all(&self) -> Vec<u8> {
        self.data.clone()
    }
}

/// Where two planar arrays over `[lo, hi)` first differ, for messages.
fn first_diff(got: &[u8], want: &[u8], lo: [i64; 3], hi: [i64; 3], nc: usize, item: usize) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("lengths differ: {} vs {}", got.len(), want.len()));
    }
    let s = shape(lo, hi);
    let want_len = s.iter().product::<usize>() * nc * item;
    if got.len() != want_len {
        return Some(format!("{} bytes, but the box with {nc} channel(s) holds {want_len}", got.len()));
    }
    let i = got.chunks(item).zip(want.chunks(item)).position(|(a, b)| a != b)?;
    let count = got.chunks(item).zip(want.chunks(item)).filter(|(a, b)| a != b).count();
    let (x, r) = (i % s[0], i / s[0]);
    let (y, r) = (r % s[1], r / s[1]);
    let (z, c) = (r % s[2], r / s[2]);
    Some(format!(
        "{count} element(s) differ; first at voxel ({}, {}, {}) channel {c}: got {:?}, want {:?}",
        lo[0] + x as i64,
        lo[1] + y as i64,
        lo[2] + z as i64,
        &got[i * item..(i + 1) * item],
        &want[i * item..(i + 1) * item]
    ))
}

#[track_caller]
fn assert_same(got: &[u8], want: &[u8], lo: [i64; 3], hi: [i64; 3], nc: usize, item: usize, what: &str) {
    if let Some(d) = first_diff(got, want, lo, hi, nc, item) {
        panic!("{what}: {d}");
    }
}

/// (max, mean) absolute difference of two u8 arrays.
fn u8_diff(a: &[u8], b: &[u8]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let max = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
    let mean = a.iter().zip(b).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.len().max(1) as f64;
    (max, mean)
}

/// The clipped grid cells `[lo, hi)` of a scale that meet the box `[blo, bhi)`.
fn cells(bounds: ([i64; 3], [i64; 3]), chunk: [i64; 3], blo: [i64; 3], bhi: [i64; 3]) -> Vec<([i64; 3], [i64; 3])> {
    let (vlo, vhi) = bounds;
    let mut ranges = [(0i64, 0i64); 3];
    for d in 0..3 {
        ranges[d] = ((blo[d] - vlo[d]).div_euclid(chunk[d]), (bhi[d] - vlo[d] + chunk[d] - 1).div_euclid(chunk[d]));
    }
    let mut out = Vec::new();
    for gz in ranges[2].0..ranges[2].1 {
        for gy in ranges[1].0..ranges[1].1 {
            for gx in ranges[0].0..ranges[0].1 {
                let g = [gx, gy, gz];
                let lo = [0, 1, 2].map(|d| vlo[d] + g[d] * chunk[d]);
                let hi = [0, 1, 2].map(|d| (lo[d] + chunk[d]).min(vhi[d]));
                out.push((lo, hi));
            }
        }
    }
    out
}

/// Parse `x0-x1_y0-y1_z0-z1` (negative numbers allowed).
fn parse_chunk_name(name: &str) -> Option<([i64; 3], [i64; 3])> {
    let parts: Vec<&str> = name.split('_').collect();
    if parts.len() != 3 {
        return None;
    }
    let mut lo = [0i64; 3];
    let mut hi = [0i64; 3];
    for (d, p) in parts.iter().enumerate() {
        let i = p.get(1..)?.find('-')? + 1;
        lo[d] = p[..i].parse().ok()?;
        hi[d] = p[i + 1..].parse().ok()?;
    }
    Some((lo, hi))
}

// ---------------------------------------------------------------------------------------------
// Files, processes, the reference helper

/// Run write_check.py on a manifest; return results.json.
fn run_reference(py: &Path, dir: &Path, manifest: &Value) -> Value {
    let path = dir.join("manifest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
    let out = Command::new(py)
        .arg(crate_dir().join("tests/reference/write_check.py"))
        .arg(&path)
        .output()
        .expect("run write_check.py");
    assert!(
        out.status.success(),
        "write_check.py failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let outdir = PathBuf::from(manifest["outdir"].as_str().expect("manifest outdir"));
    serde_json::from_slice(&std::fs::read(outdir.join("results.json")).unwrap()).unwrap()
}

/// A reader's voxels of `name` at `mip` from write_check.py's output, or its error.
fn reference_voxels(
    results: &Value,
    outdir: &Path,
    name: &str,
    reader: &str,
    mip: u32,
) -> Result<(Vec<usize>, Vec<u8>), String> {
    let r = &results[name][reader][mip.to_string()];
    if let Some(e) = r["error"].as_str() {
        return Err(e.to_string());
    }
    let shape: Vec<usize> = r["shape"]
        .as_array()
        .ok_or_else(|| format!("no result: {r}"))?
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let bytes = std::fs::read(outdir.join(format!("{name}.{reader}.{mip}.bin"))).map_err(|e| e.to_string())?;
    Ok((shape, bytes))
}

// ---------------------------------------------------------------------------------------------
// The common geometry: odd size, negative offsets, clipped edge chunks.

const RES: [f64; 3] = [4.0, 4.0, 40.0];
const OFF: [i64; 3] = [-5, 3, -2];
const SIZE: [i64; 3] = [37, 29, 11];
const CHUNK: [i64; 3] = [16, 16, 8];
const LO: [i64; 3] = OFF;
const HI: [i64; 3] = [OFF[0] + SIZE[0], OFF[1] + SIZE[1], OFF[2] + SIZE[2]];
/// Mip 1 from `cv_add_scale([2, 2, 1], [8, 8, 8])`: offset floored, size rounded up.
const LO1: [i64; 3] = [-3, 1, -2];
const HI1: [i64; 3] = [16, 16, 9];
const CHUNK1: [i64; 3] = [8, 8, 8];

/// Aligned boxes (with pattern seeds) covering the whole of mip 0 (odd sizes, ending at the
/// volume's edges), the last one overwriting a chunk written before.
const BOXES0: [([i64; 3], [i64; 3], u64); 5] = [
    ([-5, 3, -2], [11, 32, 9], 1),
    ([11, 3, -2], [32, 19, 6], 2),
    ([11, 19, -2], [32, 32, 9], 3),
    ([11, 3, 6], [32, 19, 9], 4),
    ([11, 3, -2], [27, 19, 6], 5),
];
const BOXES1: [([i64; 3], [i64; 3], u64); 2] = [([-3, 1, -2], [5, 16, 9], 6), ([5, 1, -2], [16, 16, 9], 7)];

fn layer_type_for(enc: Encoding) -> &'static str {
    if enc == Encoding::CompressedSegmentation {
        "segmentation"
    } else {
        "image"
    }
}

/// The info of a one-scale layer of the common geometry, from cv_new_info.
fn std_info(enc: Encoding, dtype: DataType, nc: usize, block: Option<[i64; 3]>) -> Value {
    let mut info = ok(
        new_info(layer_type_for(enc), dtype.name(), enc.name(), nc as u32, RES, OFF, SIZE, CHUNK),
        &format!("cv_new_info {} {} x{nc}", enc.name(), dtype.name()),
    );
    if let Some(b) = block {
        info["scales"][0]["compressed_segmentation_block_size"] = json!(b);
    }
    info
}

/// Write `BOXES0` into mip 0 of `vol`, painting `model`.
fn write_boxes0(vol: &Vol, model: &mut Model, dtype: DataType, kind: Kind, nc: usize, seed_base: u64) {
    for (lo, hi, seed) in BOXES0 {
        let buf = fill(dtype, kind, nc, lo, hi, seed + seed_base);
        vol.write_ok(0, lo, hi, &buf);
        model.paint(lo, hi, &buf);
    }
}

fn zero(dtype: DataType) -> Vec<u8> {
    vec![0u8; dtype.size()]
}

// ---------------------------------------------------------------------------------------------
// 1. Round trips and cross-reads

struct Case {
    name: String,
    enc: Encoding,
    dtype: DataType,
    nc: usize,
    block: Option<[i64; 3]>,
    /// tensorstore reads this layer (it has no int64/float64).
    ts: bool,
    /// cloud-volume 12.15.2 decodes this layer correctly: not multi-channel jpeg and png (it
    /// reshapes interleaved pixels as planar: format digest §6), nor 16-bit png (pyspng returns
    /// gray as gray+alpha, so 1 and 3 channels fail to reshape and 2 and 4 are misdecoded).
    cv: bool,
}

fn round_trip_cases() -> Vec<Case> {
    let mut v = Vec::new();
    for dtype in DataType::ALL {
        for nc in 1..=3 {
            v.push(Case {
                name: format!("raw_{}_{nc}", dtype.name()),
                enc: Encoding::Raw,
                dtype,
                nc,
                block: None,
                ts: !matches!(dtype, DataType::I64 | DataType::F64),
                cv: true,
            });
        }
    }
    for nc in [1, 3] {
        v.push(Case {
            name: format!("jpeg_uint8_{nc}"),
            enc: Encoding::Jpeg,
            dtype: DataType::U8,
            nc,
            block: None,
            ts: true,
            cv: nc == 1,
        });
    }
    for dtype in [DataType::U8, DataType::U16] {
        for nc in 1..=4 {
            v.push(Case {
                name: format!("png_{}_{nc}", dtype.name()),
                enc: Encoding::Png,
                dtype,
                nc,
                block: None,
                ts: true,
                cv: dtype == DataType::U8 && nc == 1,
            });
        }
    }
    for (dtype, nc, block) in [
        (DataType::U32, 1, [8, 8, 8]),
        (DataType::U32, 2, [4, 3, 5]),
        (DataType::U64, 1, [4, 3, 5]),
        (DataType::U64, 2, [8, 8, 8]),
    ] {
        v.push(Case {
            name: format!("cseg_{}_{nc}_b{}{}{}", dtype.name(), block[0], block[1], block[2]),
            enc: Encoding::CompressedSegmentation,
            dtype,
            nc,
            block: Some(block),
            ts: true,
            cv: true,
        });
    }
    v
}

/// JPEG against the voxels it was written from: within the loss of quality 85 on smooth data.
#[track_caller]
fn assert_jpeg_close(got: &[u8], want: &[u8], what: &str) {
    let (max, mean) = u8_diff(got, want);
    assert!(max <= 24 && mean < 2.5, "{what}: jpeg differs from the written voxels by max {max}, mean {mean:.2}");
}

/// Everything below `dir` that is a file: relative path -> bytes.
fn chunk_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(dir).into_iter().filter(|(k, _)| !k.ends_with('/') && k != "info").collect()
}

#[test]
fn round_trip_every_encoding_type_and_channel_count() {
    let root = TempDir::in_target("roundtrip");
    let cases = round_trip_cases();
    let mut reads = Vec::new();
    let mut tswrites = Vec::new();
    // Our reads of each case at mips 0 and 1, for the comparison with the references.
    let mut ours: Vec<[Vec<u8>; 2]> = Vec::new();
    for case in &cases {
        let (enc, dtype, nc) = (case.enc, case.dtype, case.nc);
        let kind = kind_for(enc);
        let item = dtype.size();
        let info = std_info(enc, dtype, nc, case.block);
        if enc == Encoding::CompressedSegmentation && case.block.is_none() {
            assert_eq!(info["scales"][0]["compressed_segmentation_block_size"], json!([8, 8, 8]));
        }
        let url = root.url_of(&case.name);
        let mut vol = ok(create(&url, &info, None), &format!("cv_create {}", case.name));
        assert_eq!(vol.num_mips(), 1);
        let mut m0 = Model::new(LO, HI, nc, item, &zero(dtype));
        write_boxes0(&vol, &mut m0, dtype, kind, nc, 0);
        // A second mip, with its own chunk size, written separately (no downsampling).
        let mip = ok(vol.add_scale([2, 2, 1], Some(CHUNK1)), &format!("cv_add_scale {}", case.name));
        assert_eq!(mip, 1, "{}", case.name);
        assert_eq!(vol.num_mips(), 2);
        assert_eq!(vol.bounds(1), (LO1, HI1), "{}: bounds of the new mip", case.name);
        let scale1 = &vol.info()["scales"][1];
        assert_eq!(scale1["key"], "8_8_40");
        assert_eq!(scale1["chunk_sizes"], json!([CHUNK1]));
        assert_eq!(scale1["encoding"], enc.name());
        // The info on disk has the scale too.
        let disk: Value = serde_json::from_slice(&std::fs::read(root.join(&case.name).join("info")).unwrap()).unwrap();
        assert_eq!(disk["scales"].as_array().unwrap().len(), 2, "{}: info on disk", case.name);
        let mut m1 = Model::new(LO1, HI1, nc, item, &zero(dtype));
        for (lo, hi, seed) in BOXES1 {
            let buf = fill(dtype, kind, nc, lo, hi, seed);
            vol.write_ok(1, lo, hi, &buf);
            m1.paint(lo, hi, &buf);
        }
        drop(vol);

        // Read back through a fresh handle.
        let v = ok(open(&url, None), &format!("cv_open {}", case.name));
        let got0 = v.read_ok(0, LO, HI);
        let got1 = v.read_ok(1, LO1, HI1);
        let sub = ([0, 10, 0], [20, 25, 7]);
        let got_sub = v.read_ok(0, sub.0, sub.1);
        if enc == Encoding::Jpeg {
            assert_jpeg_close(&got0, &m0.all(), &format!("{} mip 0", case.name));
            assert_jpeg_close(&got1, &m1.all(), &format!("{} mip 1", case.name));
            assert_jpeg_close(&got_sub, &m0.get(sub.0, sub.1), &format!("{} sub-box", case.name));
        } else {
            assert_same(&got0, &m0.all(), LO, HI, nc, item, &format!("{} mip 0", case.name));
            assert_same(&got1, &m1.all(), LO1, HI1, nc, item, &format!("{} mip 1", case.name));
            assert_same(&got_sub, &m0.get(sub.0, sub.1), sub.0, sub.1, nc, item, &format!("{} sub-box", case.name));
        }
        // The chunk files: one per cell, named by its clipped box, raw ones exactly the voxels.
        let files0: BTreeSet<String> = file_names(&root.join(&case.name).join("4_4_40")).into_iter().collect();
        let want0: BTreeSet<String> =
            cells((LO, HI), CHUNK, LO, HI).into_iter().map(|(a, b)| chunk_name(a, b)).collect();
        assert_eq!(files0, want0, "{}: chunk files of mip 0", case.name);
        if enc == Encoding::Raw {
            for (a, b) in cells((LO, HI), CHUNK, LO, HI) {
                let f = std::fs::read(root.join(&case.name).join("4_4_40").join(chunk_name(a, b))).unwrap();
                assert!(f == m0.get(a, b), "{}: raw chunk {} is not the voxels", case.name, chunk_name(a, b));
            }
        }
        if enc == Encoding::CompressedSegmentation {
            let dir = root.join(&case.name);
            std::fs::write(dir.join("model0.bin"), m0.all()).unwrap();
            std::fs::write(dir.join("model1.bin"), m1.all()).unwrap();
            let sh = |lo: [i64; 3], hi: [i64; 3]| {
                let s = shape(lo, hi);
                json!([s[0], s[1], s[2], nc])
            };
            tswrites.push(json!({
                "name": case.name,
                "path": root.join(format!("ts_{}", case.name)),
                "info": dir.join("info"),
                "scales": [
                    {"scale_index": 0, "data": dir.join("model0.bin"), "dtype": dtype.name(), "shape": sh(LO, HI)},
                    {"scale_index": 1, "data": dir.join("model1.bin"), "dtype": dtype.name(), "shape": sh(LO1, HI1)},
                ],
            }));
        }
        reads.push(json!({
            "name": case.name,
            "path": root.join(&case.name),
            "dtype": dtype.name(),
            "mips": [0, 1],
            "readers": ["tensorstore", "cloudvolume"],
        }));
        ours.push([got0, got1]);
    }

    let Some(py) = python("reference comparisons") else { return };
    let outdir = root.join("out");
    let results = run_reference(&py, root.path(), &json!({"outdir": outdir, "tswrite": tswrites, "read": reads}));
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for (case, our) in cases.iter().zip(&ours) {
        for (reader, expected) in [("tensorstore", case.ts), ("cloudvolume", case.cv)] {
            for mip in [0u32, 1] {
                let (lo, hi) = if mip == 0 { (LO, HI) } else { (LO1, HI1) };
                let s = shape(lo, hi);
                let want_shape = vec![s[0], s[1], s[2], case.nc];
                let outcome = match reference_voxels(&results, &outdir, &case.name, reader, mip) {
                    Err(e) => Err(format!("error: {e}")),
                    Ok((sh, _)) if sh != want_shape => Err(format!("shape {sh:?}, expected {want_shape:?}")),
                    Ok((_, bytes)) => {
                        if case.enc == Encoding::Jpeg {
                            // Both decode with libjpeg-turbo: within +-3 of our decode.
                            let (max, mean) = u8_diff(&bytes, &our[mip as usize]);
                            if max <= 3 {
                                Ok(())
                            } else {
                                Err(format!("decodes differently from us: max diff {max}, mean {mean:.2}"))
                            }
                        } else {
                            match first_diff(&bytes, &our[mip as usize], lo, hi, case.nc, case.dtype.size()) {
                                None => Ok(()),
                                Some(d) => Err(format!("decodes differently from us: {d}")),
                            }
                        }
                    }
                };
                match (outcome, expected) {
                    (Ok(()), _) => {
                        if !expected {
                            notes.push(format!("{} mip {mip}: {reader} reads it correctly (not expected)", case.name));
                        }
                    }
                    (Err(e), true) => failures.push(format!("{} mip {mip} read by {reader}: {e}", case.name)),
                    (Err(e), false) => {
                        let short: String = e.chars().take(150).collect();
                        notes.push(format!("{} mip {mip}: {reader} (excluded): {short}", case.name));
                    }
                }
            }
        }
    }
    // compressed_segmentation: tensorstore's chunk files for the same voxels are ours, byte for byte.
    let mut identical = 0;
    for case in cases.iter().filter(|c| c.enc == Encoding::CompressedSegmentation) {
        let ours_files = chunk_files(&root.join(&case.name));
        let theirs = chunk_files(&root.join(format!("ts_{}", case.name)));
        let ours_files: BTreeMap<_, _> = ours_files.into_iter().filter(|(k, _)| !k.ends_with(".bin")).collect();
        if ours_files.keys().collect::<Vec<_>>() != theirs.keys().collect::<Vec<_>>() {
            failures.push(format!(
                "{}: chunk files differ from tensorstore's: ours {:?}, theirs {:?}",
                case.name,
                ours_files.keys().collect::<Vec<_>>(),
                theirs.keys().collect::<Vec<_>>()
            ));
            continue;
        }
        for (k, bytes) in &ours_files {
            if bytes != &theirs[k] {
                let first =
                    bytes.iter().zip(&theirs[k]).position(|(a, b)| a != b).unwrap_or(bytes.len().min(theirs[k].len()));
                failures.push(format!(
                    "{} {k}: {} bytes, tensorstore's {} bytes, first difference at byte {first}",
                    case.name,
                    bytes.len(),
                    theirs[k].len()
                ));
            } else {
                identical += 1;
            }
        }
    }
    for n in &notes {
        eprintln!("note: {n}");
    }
    eprintln!("compressed_segmentation: {identical} chunk files byte-identical to tensorstore's");
    assert!(identical >= 4 * 24, "too few cseg chunks compared ({identical})");
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 2. Content compression

/// The encoding of a chunk of `model` as this library stores it (before content compression).
fn encoded_chunk(
    enc: Encoding,
    dtype: DataType,
    nc: usize,
    block: Option<[i64; 3]>,
    model: &Model,
    lo: [i64; 3],
    hi: [i64; 3],
) -> Vec<u8> {
    let o = EncodeOptions { cseg_block: block, ..EncodeOptions::default() };
    encode_chunk(enc, dtype, nc, shape(lo, hi), &model.get(lo, hi), &o, "test").unwrap()
}

#[test]
fn file_compression_plain_by_default_gz_suffix_on_request() {
    use DataType::*;
    use Encoding::*;
    let root = TempDir::in_target("filecomp");
    // name, encoding, type, channels, block, options, expected suffix
    let cases: [(&str, Encoding, DataType, usize, Option<[i64; 3]>, Option<&str>, &str); 7] = [
        ("raw_default", Raw, U16, 2, None, None, ""),
        ("cseg_default", CompressedSegmentation, U64, 1, Some([8, 8, 8]), Some(r#"{"compress":null}"#), ""),
        ("raw_gzip", Raw, U16, 2, None, Some(r#"{"compress":"gzip"}"#), ".gz"),
        (
            "cseg_gzip",
            CompressedSegmentation,
            U64,
            1,
            Some([4, 3, 5]),
            Some(r#"{"compress":"gzip","compress_level":9}"#),
            ".gz",
        ),
        ("raw_true", Raw, U8, 1, None, Some(r#"{"compress":true}"#), ".gz"),
        ("jpeg_gzip", Jpeg, U8, 1, None, Some(r#"{"compress":"gzip"}"#), ".gz"),
        ("raw_zstd", Raw, F32, 1, None, Some(r#"{"compress":"zstd"}"#), ".zstd"),
    ];
    let mut reads = Vec::new();
    let mut models = Vec::new();
    for (name, enc, dtype, nc, block, opts, suffix) in cases {
        let url = root.url_of(name);
        let vol = ok(create(&url, &std_info(enc, dtype, nc, block), opts), name);
        let mut m = Model::new(LO, HI, nc, dtype.size(), &zero(dtype));
        write_boxes0(&vol, &mut m, dtype, kind_for(enc), nc, 0);
        drop(vol);
        let dir = root.join(name).join("4_4_40");
        let all = cells((LO, HI), CHUNK, LO, HI);
        let want: BTreeSet<String> = all.iter().map(|(a, b)| format!("{}{suffix}", chunk_name(*a, *b))).collect();
        let got: BTreeSet<String> = file_names(&dir).into_iter().collect();
        assert_eq!(got, want, "{name}: chunk files");
        // The info is never compressed.
        let info: Value = serde_json::from_slice(&std::fs::read(root.join(name).join("info")).unwrap())
            .unwrap_or_else(|e| panic!("{name}: info is not plain JSON: {e}"));
        assert_eq!(info["data_type"], dtype.name());
        for (a, b) in &all {
            let stored = std::fs::read(dir.join(format!("{}{suffix}", chunk_name(*a, *b)))).unwrap();
            let plain = match suffix {
                "" => stored,
                ".gz" => gunzip(&stored, usize::MAX, name).unwrap_or_else(|e| panic!("{name}: {e}")),
                _ => zstd::stream::decode_all(&stored[..]).unwrap_or_else(|e| panic!("{name}: not zstd: {e}")),
            };
            if enc == Jpeg {
                assert_eq!(&plain[..2], &[0xFF, 0xD8], "{name}: a JPEG inside");
            } else {
                assert!(
                    plain == encoded_chunk(enc, dtype, nc, block, &m, *a, *b),
                    "{name}: chunk {} holds other bytes",
                    chunk_name(*a, *b)
                );
            }
        }
        let back = ok(open(&url, None), name).read_ok(0, LO, HI);
        if enc == Jpeg {
            assert_jpeg_close(&back, &m.all(), name);
        } else {
            assert_same(&back, &m.all(), LO, HI, nc, dtype.size(), name);
        }
        // cloud-volume reads every variant; tensorstore only plain files.
        let readers = if suffix.is_empty() { json!(["tensorstore", "cloudvolume"]) } else { json!(["cloudvolume"]) };
        if suffix != ".zstd" {
            reads.push(
                json!({"name": name, "path": root.join(name), "dtype": dtype.name(), "mips": [0], "readers": readers}),
            );
        }
        models.push((name, enc, dtype, nc, back));
    }

    if let Some(py) = python("reference comparisons") {
        compare_file_compression_references(&py, &root, reads, &models);
    }

    // Rewriting a .gz layer without compression replaces the .gz files by plain ones.
    let url = root.url_of("raw_gzip");
    let vol = ok(open(&url, Some(r#"{"compress":false}"#)), "reopen");
    let mut m = Model::new(LO, HI, 2, 2, &zero(U16));
    write_boxes0(&vol, &mut m, U16, Kind::Noise, 2, 40);
    let names = file_names(&root.join("raw_gzip/4_4_40"));
    assert!(names.iter().all(|n| !n.ends_with(".gz")) && names.len() == 12, "stale .gz variants remain: {names:?}");
    assert_same(&ok(open(&url, None), "reopen").read_ok(0, LO, HI), &m.all(), LO, HI, 2, 2, "raw_gzip rewritten plain");
}

type ModelRead<'a> = (&'a str, Encoding, DataType, usize, Vec<u8>);

fn compare_file_compression_references(py: &Path, root: &TempDir, reads: Vec<Value>, models: &[ModelRead]) {
    use Encoding::*;
    let outdir = root.join("out");
    let results = run_reference(py, root.path(), &json!({"outdir": outdir, "read": reads}));
    let mut failures = Vec::new();
    for (name, enc, dtype, nc, ours) in models {
        for reader in ["tensorstore", "cloudvolume"] {
            if results[*name].get(reader).is_none() {
                continue;
            }
            match reference_voxels(&results, &outdir, name, reader, 0) {
                Err(e) => failures.push(format!("{name} read by {reader}: {e}")),
                Ok((_, bytes)) => {
                    let bad = if *enc == Jpeg {
                        let (max, _) = u8_diff(&bytes, ours);
                        (max > 3).then(|| format!("max diff {max}"))
                    } else {
                        first_diff(&bytes, ours, LO, HI, *nc, dtype.size())
                    };
                    if let Some(d) = bad {
                        failures.push(format!("{name} read by {reader}: {d}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn http_gs_s3_writes_put_gzip_content_encoding_for_raw_and_cseg() {
    use DataType::*;
    use Encoding::*;
    let root = TempDir::in_target("http");
    let Some(ng) = Nginx::start(Config::new(root.path()).writable(true)) else {
        return;
    };
    let base = ng.base_url();
    // (label, url of a layer named NAME through the gzip view, through the plain view, options
    // of each, directory where nginx stores NAME)
    let targets: Vec<(&str, Box<dyn Fn(&str, bool) -> (String, Option<String>)>, Box<dyn Fn(&str) -> PathBuf>)> = vec![
        (
            "http",
            Box::new(|n: &str, gz: bool| (format!("{base}/{}web/{n}", if gz { "gz/" } else { "" }), None)),
            Box::new(|n: &str| root.join(format!("web/{n}"))),
        ),
        (
            "gs",
            Box::new(|n: &str, gz: bool| {
                (
                    format!("gs://bucket/gsl/{n}"),
                    Some(json!({"gs_endpoint": format!("{base}{}", if gz { "/gz" } else { "" })}).to_string()),
                )
            }),
            Box::new(|n: &str| root.join(format!("bucket/gsl/{n}"))),
        ),
        (
            "s3",
            Box::new(|n: &str, gz: bool| {
                (
                    format!("s3://bucket/s3l/{n}"),
                    Some(json!({"s3_endpoint": format!("{base}{}", if gz { "/gz" } else { "" })}).to_string()),
                )
            }),
            Box::new(|n: &str| root.join(format!("bucket/s3l/{n}"))),
        ),
    ];
    // name, encoding, type, channels, block, extra options, gzip expected
    let cases: [(&str, Encoding, DataType, usize, Option<[i64; 3]>, Option<&str>, bool); 5] = [
        ("raw", Raw, U16, 2, None, None, true),
        ("cseg", CompressedSegmentation, U64, 1, Some([4, 3, 5]), None, true),
        ("jpeg", Jpeg, U8, 1, None, None, false),
        ("png", Png, U16, 3, None, None, false),
        ("raw_plain", Raw, I32, 1, None, Some("false"), false),
    ];
    for (label, url_of, dir_of) in &targets {
        for (name, enc, dtype, nc, block, compress, gz) in cases {
            let what = format!("{label} {name}");
            let (url, opts) = url_of(name, gz);
            let opts = match (opts, compress) {
                (Some(o), Some(c)) => {
                    let mut v: Value = serde_json::from_str(&o).unwrap();
                    v["compress"] = serde_json::from_str(c).unwrap();
                    Some(v.to_string())
                }
                (None, Some(c)) => Some(format!(r#"{{"compress":{c}}}"#)),
                (o, None) => o,
            };
            let mark = ng.mark();
            let vol = ok(create(&url, &std_info(enc, dtype, nc, block), opts.as_deref()), &what);
            let mut m = Model::new(LO, HI, nc, dtype.size(), &zero(dtype));
            write_boxes0(&vol, &mut m, dtype, kind_for(enc), nc, 0);
            drop(vol);
            // What nginx stored: the info as plain JSON, the chunks as sent.
            let dir = dir_of(name);
            let info: Value = serde_json::from_slice(&std::fs::read(dir.join("info")).unwrap())
                .unwrap_or_else(|e| panic!("{what}: stored info is not plain JSON: {e}"));
            assert_eq!(info["num_channels"], nc, "{what}");
            let all = cells((LO, HI), CHUNK, LO, HI);
            let names: BTreeSet<String> = file_names(&dir.join("4_4_40")).into_iter().collect();
            let want: BTreeSet<String> = all.iter().map(|(a, b)| chunk_name(*a, *b)).collect();
            assert_eq!(names, want, "{what}: stored chunk objects (no suffixes over HTTP)");
            for (a, b) in &all {
                let stored = std::fs::read(dir.join("4_4_40").join(chunk_name(*a, *b))).unwrap();
                let is_gzip = stored.starts_with(&[0x1f, 0x8b]);
                assert_eq!(is_gzip, gz, "{what}: chunk {} gzip-compressed?", chunk_name(*a, *b));
                let plain = if gz { gunzip(&stored, usize::MAX, &what).unwrap() } else { stored };
                match enc {
                    Jpeg => assert_eq!(&plain[..2], &[0xFF, 0xD8], "{what}"),
                    _ => assert!(
                        plain == encoded_chunk(enc, dtype, nc, block, &m, *a, *b),
                        "{what}: chunk {} holds other bytes",
                        chunk_name(*a, *b)
                    ),
                }
            }
            // How it was sent: chunk PUTs with Content-Encoding gzip exactly when compressed,
            // the info without; an existence check (HEAD) of the info before; nothing else.
            let reqs = ng.requests_since(mark);
            let puts: Vec<_> = reqs.iter().filter(|r| r.method == "PUT").collect();
            assert_eq!(puts.len(), all.len() + 1 + 1, "{what}: PUTs (info + chunks, one chunk twice): {reqs:?}");
            for r in &puts {
                assert!(r.status == 201 || r.status == 204, "{what}: {r:?}");
                let is_info = r.uri.ends_with("/info");
                let want_ce = (gz && !is_info).then(|| "gzip".to_string());
                assert_eq!(r.content_encoding, want_ce, "{what}: {r:?}");
                // cloud-volume's content types.
                let want_ct = match enc {
                    _ if is_info => "application/json",
                    Raw => "application/octet-stream",
                    Jpeg => "image/jpeg",
                    Png => "image/png",
                    _ => "image/x.compressed_segmentation",
                };
                assert_eq!(r.content_type.as_deref(), Some(want_ct), "{what}: {r:?}");
            }
            assert!(
                reqs.iter().all(|r| r.method == "PUT" || (r.method == "HEAD" && r.uri.ends_with("/info"))),
                "{what}: {reqs:?}"
            );
            // Read back over HTTP (gzip objects served with Content-Encoding: gzip).
            let back = ok(open(&url, opts.as_deref()), &what).read_ok(0, LO, HI);
            if enc == Jpeg {
                assert_jpeg_close(&back, &m.all(), &what);
            } else {
                assert_same(&back, &m.all(), LO, HI, nc, dtype.size(), &what);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Sharded writes

const SH_OFF: [i64; 3] = [-3, 5, 0];
const SH_SIZE: [i64; 3] = [60, 50, 30];
const SH_CHUNK: [i64; 3] = [16, 16, 16];
const SH_LO: [i64; 3] = SH_OFF;
const SH_HI: [i64; 3] = [57, 55, 30];
const SH_GRID: [i64; 3] = [4, 4, 2];

/// The grid cells of each shard.
fn shard_cells(s: &Sharding) -> BTreeMap<u64, Vec<[i64; 3]>> {
    let mut out: BTreeMap<u64, Vec<[i64; 3]>> = BTreeMap::new();
    for z in 0..SH_GRID[2] {
        for y in 0..SH_GRID[1] {
            for x in 0..SH_GRID[0] {
                out.entry(s.locate(morton([x, y, z], SH_GRID)).0).or_default().push([x, y, z]);
            }
        }
    }
    out
}

fn cell_box(g: [i64; 3]) -> ([i64; 3], [i64; 3]) {
    let lo = [0, 1, 2].map(|d| SH_LO[d] + g[d] * SH_CHUNK[d]);
    let hi = [0, 1, 2].map(|d| (lo[d] + SH_CHUNK[d]).min(SH_HI[d]));
    (lo, hi)
}

#[test]
fn sharding_helpers_match_the_digest_vectors() {
    assert_eq!(murmur3(0), 0x4772_b084_e028_ae41);
    assert_eq!(murmur3(1), 0xe8bd_67d6_16d4_ce9a);
    assert_eq!(murmur3(42), 0xc20b_94f9_5119_f47a);
    // Digest §4.6: grid [3,2,2], id = x0 | y0<<1 | z0<<2 | x1<<3.
    assert_eq!(morton([2, 1, 1], [3, 2, 2]), 0b1110);
    assert_eq!(morton([1, 0, 1], [3, 2, 2]), 0b0101);
}

#[test]
fn sharded_writes_whole_shards_read_by_tensorstore_and_cloudvolume() {
    use DataType::*;
    use Encoding::*;
    let root = TempDir::in_target("sharded");
    // name, encoding, type, channels, sharding, write shard by shard (else the whole volume)
    let layers: [(&str, Encoding, DataType, usize, Sharding, bool); 4] = [
        // identity, preshift 2, 1 minishard bit, 2 shard bits: shard = (x1, y1), a 2x2x2-cell box.
        (
            "identity_raw",
            Raw,
            U16,
            1,
            Sharding {
                preshift: 2,
                hash: Hash::Identity,
                minishard_bits: 1,
                shard_bits: 2,
                index_gzip: false,
                data_gzip: false,
            },
            true,
        ),
        (
            "identity_gzip_2ch",
            Raw,
            U8,
            2,
            Sharding {
                preshift: 2,
                hash: Hash::Identity,
                minishard_bits: 1,
                shard_bits: 2,
                index_gzip: true,
                data_gzip: true,
            },
            true,
        ),
        (
            "murmur_gzip",
            Raw,
            U32,
            1,
            Sharding {
                preshift: 0,
                hash: Hash::Murmur,
                minishard_bits: 2,
                shard_bits: 1,
                index_gzip: true,
                data_gzip: true,
            },
            false,
        ),
        (
            "murmur_cseg",
            CompressedSegmentation,
            U64,
            1,
            Sharding {
                preshift: 1,
                hash: Hash::Murmur,
                minishard_bits: 1,
                shard_bits: 2,
                index_gzip: true,
                data_gzip: false,
            },
            false,
        ),
    ];
    let mut reads = Vec::new();
    let mut ours = Vec::new();
    for (name, enc, dtype, nc, sh, by_shard) in &layers {
        let (enc, dtype, nc) = (*enc, *dtype, *nc);
        let kind = kind_for(enc);
        let url = root.url_of(name);
        let mut info = ok(
            new_info(layer_type_for(enc), dtype.name(), enc.name(), nc as u32, RES, SH_OFF, SH_SIZE, SH_CHUNK),
            name,
        );
        info["scales"][0]["sharding"] = sh.json();
        let vol = ok(create(&url, &info, None), name);
        let mut m = Model::new(SH_LO, SH_HI, nc, dtype.size(), &zero(dtype));
        let shards = shard_cells(sh);
        if *by_shard {
            for (i, (shard, cs)) in shards.iter().enumerate() {
                // The shard is the box of its cells.
                let lo = [0, 1, 2].map(|d| cs.iter().map(|c| c[d]).min().unwrap());
                let hi = [0, 1, 2].map(|d| cs.iter().map(|c| c[d]).max().unwrap());
                let (blo, _) = cell_box(lo);
                let (_, bhi) = cell_box(hi);
                assert_eq!(
                    cs.len() as i64,
                    (0..3).map(|d| hi[d] - lo[d] + 1).product::<i64>(),
                    "{name}: shard {shard} is not a box"
                );
                let buf = fill(dtype, kind, nc, blo, bhi, 10 + i as u64);
                vol.write_ok(0, blo, bhi, &buf);
                m.paint(blo, bhi, &buf);
            }
        } else {
            let buf = fill(dtype, kind, nc, SH_LO, SH_HI, 20);
            vol.write_ok(0, SH_LO, SH_HI, &buf);
            m.paint(SH_LO, SH_HI, &buf);
        }
        // Exactly the shard files, no chunk files.
        let files: BTreeSet<String> = file_names(&root.join(name).join("4_4_40")).into_iter().collect();
        let want: BTreeSet<String> = shards.keys().map(|s| sh.file(*s)).collect();
        assert_eq!(files, want, "{name}: shard files");
        let back = ok(open(&url, None), name).read_ok(0, SH_LO, SH_HI);
        assert_same(&back, &m.all(), SH_LO, SH_HI, nc, dtype.size(), &format!("{name} read back"));

        // A box covering a shard partly is refused, naming the shard file; nothing changes.
        let before = snapshot(&root.join(name));
        let (clo, chi) = cell_box([1, 2, 1]);
        let first = sh.locate(morton([1, 2, 1], SH_GRID)).0;
        let msg = expect_err(
            vol.write(0, clo, chi, &fill(dtype, kind, nc, clo, chi, 99)),
            CV_ERR_INVALID_ARGUMENT,
            &[&sh.file(first), "shard"],
        );
        let boxtxt = format!("[{},{},{}]..[{},{},{}]", clo[0], clo[1], clo[2], chi[0], chi[1], chi[2]);
        assert!(msg.contains(&boxtxt) && msg.contains("partly"), "{name}: {msg} (wanted the box {boxtxt})");
        // A non-aligned box is refused too, and cv_delete of a sharded scale is unsupported.
        expect_err(
            vol.write(0, [0, 5, 0], [13, 21, 16], &fill(dtype, kind, nc, [0, 5, 0], [13, 21, 16], 1)),
            CV_ERR_INVALID_ARGUMENT,
            &["align"],
        );
        expect_err(vol.delete(0, SH_LO, SH_HI), CV_ERR_UNSUPPORTED, &["shard"]);
        assert!(snapshot(&root.join(name)) == before, "{name}: a refused sharded write changed files");

        if *by_shard {
            // Rewrite one shard: the others are untouched, the handle sees the new data.
            let (shard, cs) = shards.iter().nth(2).unwrap();
            let (blo, _) = cell_box(cs[0]);
            let (_, bhi) = cell_box(*cs.last().unwrap());
            let buf = fill(dtype, kind, nc, blo, bhi, 77);
            let other = sh.file(*shards.keys().next().unwrap());
            let other_before = std::fs::read(root.join(name).join("4_4_40").join(&other)).unwrap();
            // The writing handle has the shard indices cached from this read.
            assert_same(&vol.read_ok(0, SH_LO, SH_HI), &m.all(), SH_LO, SH_HI, nc, dtype.size(), name);
            vol.write_ok(0, blo, bhi, &buf);
            m.paint(blo, bhi, &buf);
            assert_eq!(
                std::fs::read(root.join(name).join("4_4_40").join(&other)).unwrap(),
                other_before,
                "{name}: shard {other} changed"
            );
            assert_same(
                &vol.read_ok(0, SH_LO, SH_HI),
                &m.all(),
                SH_LO,
                SH_HI,
                nc,
                dtype.size(),
                &format!("{name} after rewriting shard {shard}"),
            );
        }
        reads.push(json!({"name": name, "path": root.join(name), "dtype": dtype.name(), "mips": [0], "readers": ["tensorstore", "cloudvolume"]}));
        ours.push((*name, nc, dtype, m));
    }

    // Over HTTP: the same shard files (shards are PUT without a content encoding) and Range
    // reads of them.
    if let Some(ng) = Nginx::start(Config::new(root.path()).writable(true)) {
        for (name, enc, dtype, nc, sh, _) in &layers {
            let url = format!("{}/web/{name}", ng.base_url());
            let mut info = ok(
                new_info(layer_type_for(*enc), dtype.name(), enc.name(), *nc as u32, RES, SH_OFF, SH_SIZE, SH_CHUNK),
                name,
            );
            info["scales"][0]["sharding"] = sh.json();
            let vol = ok(create(&url, &info, None), &url);
            let m = &ours.iter().find(|o| o.0 == *name).unwrap().3;
            let mark = ng.mark();
            vol.write_ok(0, SH_LO, SH_HI, &m.all());
            let reqs = ng.requests_since(mark);
            assert!(
                reqs.iter().all(|r| r.method == "PUT" && r.content_encoding.is_none() && r.uri.ends_with(".shard")),
                "{name}: {reqs:?}"
            );
            let web = chunk_files(&root.join(format!("web/{name}")));
            let file = chunk_files(&root.join(name));
            assert!(web == file, "{name}: shard files written over HTTP differ from those written to file://");
            assert_same(
                &ok(open(&url, None), &url).read_ok(0, SH_LO, SH_HI),
                &m.all(),
                SH_LO,
                SH_HI,
                *nc,
                dtype.size(),
                &format!("{name} over HTTP"),
            );
        }
    }

    let Some(py) = python("reference comparisons") else { return };
    let outdir = root.join("out");
    let results = run_reference(&py, root.path(), &json!({"outdir": outdir, "read": reads}));
    let mut failures = Vec::new();
    for (name, nc, dtype, m) in &ours {
        for reader in ["tensorstore", "cloudvolume"] {
            match reference_voxels(&results, &outdir, name, reader, 0) {
                Err(e) => failures.push(format!("{name} read by {reader}: {e}")),
                Ok((_, bytes)) => {
                    if let Some(d) = first_diff(&bytes, &m.all(), SH_LO, SH_HI, *nc, dtype.size()) {
                        failures.push(format!("{name} read by {reader}: {d}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A handle that read a sharded scale keeps its shard and minishard indices cached; after
/// another handle rewrites the shard, its reads must still give the old or the new voxels, never
/// an error (tensorstore revalidates cached indices against the shard's generation).
#[test]
fn sharded_rewrite_is_read_correctly_by_a_handle_that_read_before() {
    let root = TempDir::in_target("stale");
    let sh = Sharding {
        preshift: 2,
        hash: Hash::Identity,
        minishard_bits: 1,
        shard_bits: 2,
        index_gzip: true,
        data_gzip: true,
    };
    let mut info = ok(new_info("image", "uint16", "raw", 1, RES, SH_OFF, SH_SIZE, SH_CHUNK), "info");
    info["scales"][0]["sharding"] = sh.json();
    let url = root.url_of("layer");
    let writer = ok(create(&url, &info, None), "create");
    let old = fill(DataType::U16, Kind::Labels, 1, SH_LO, SH_HI, 1);
    writer.write_ok(0, SH_LO, SH_HI, &old);
    let reader = ok(open(&url, None), "reader");
    assert!(reader.read_ok(0, SH_LO, SH_HI) == old);
    // New voxels that compress differently: every chunk moves inside the shard files.
    let new = fill(DataType::U16, Kind::Noise, 1, SH_LO, SH_HI, 2);
    writer.write_ok(0, SH_LO, SH_HI, &new);
    match reader.read(0, SH_LO, SH_HI) {
        Ok(got) => assert!(got == new || got == old, "a handle opened before the rewrite read neither the old nor the new voxels"),
        Err((st, msg)) => panic!(
            "a handle opened before the shards were rewritten fails with {}: {msg} (stale cached shard/minishard indices)",
            status_name(st)
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Non-aligned writes

#[test]
fn non_aligned_write_refused_without_the_option_naming_the_misalignment() {
    let root = TempDir::in_target("misaligned");
    let url = root.url_of("layer");
    let vol = ok(create(&url, &std_info(Encoding::Raw, DataType::U8, 1, None), None), "create");
    let before = snapshot(root.path());
    let cases: [([i64; 3], [i64; 3], &[&str]); 4] = [
        ([0, 3, -2], [11, 19, 6], &["x starts at 0", "not aligned", "non_aligned_writes"]),
        ([-5, 3, -2], [10, 19, 6], &["x ends at 10", "not aligned"]),
        ([-5, 4, -2], [11, 19, 5], &["y starts at 4", "z ends at 5"]),
        ([11, 19, 6], [27, 31, 9], &["y ends at 31"]),
    ];
    for (lo, hi, needles) in cases {
        let mut n = needles.to_vec();
        n.push(&url[7..]);
        expect_err(vol.write(0, lo, hi, &fill(DataType::U8, Kind::Noise, 1, lo, hi, 1)), CV_ERR_INVALID_ARGUMENT, &n);
    }
    assert!(snapshot(root.path()) == before, "a refused write changed files");
    // Boxes ending at the volume's edge are aligned.
    vol.write_ok(0, [11, 19, 6], [32, 32, 9], &fill(DataType::U8, Kind::Noise, 1, [11, 19, 6], [32, 32, 9], 1));
}

/// Boxes cutting chunks at every face, edge and corner, single voxels at the volume's corners,
/// a box inside one chunk, an aligned one, then pseudo-random boxes.
fn non_aligned_boxes() -> Vec<([i64; 3], [i64; 3])> {
    let mut v = vec![
        ([0, 6, 0], [5, 9, 3]),     // inside one chunk, into an empty layer
        ([2, 10, 1], [30, 25, 8]),  // cuts 3x2x2 chunks: corners, edges, faces
        ([-5, 3, -2], [-4, 4, -1]), // the volume's first voxel
        ([31, 31, 8], [32, 32, 9]), // its last voxel (a clipped chunk)
        ([10, 18, 5], [12, 20, 7]), // 2x2x2 around a chunk corner: 8 chunks, one voxel each
        ([11, 3, -2], [27, 19, 6]), // aligned
        ([-5, 3, -2], [32, 32, 9]), // everything
    ];
    let mut r = 12345u64;
    let mut next = |n: i64| {
        r = mix(r);
        (r % n as u64) as i64
    };
    for _ in 0..14 {
        let mut lo = [0i64; 3];
        let mut hi = [0i64; 3];
        for d in 0..3 {
            let a = LO[d] + next(SIZE[d]);
            let b = LO[d] + next(SIZE[d]);
            lo[d] = a.min(b);
            hi[d] = a.max(b) + 1;
        }
        v.push((lo, hi));
    }
    v
}

#[test]
fn non_aligned_writes_merge_at_every_edge_and_corner() {
    use DataType::*;
    use Encoding::*;
    let root = TempDir::in_target("nonaligned");
    // name, encoding, type, channels, block, background
    // name, encoding, type, channels, block, background, compression
    let cases: [(&str, Encoding, DataType, usize, Option<[i64; 3]>, f64, Value); 4] = [
        ("raw_u16_2", Raw, U16, 2, None, 0.0, Value::Null),
        ("raw_f32_bg", Raw, F32, 1, None, 9.0, json!("gzip")),
        ("cseg_u64", CompressedSegmentation, U64, 1, Some([4, 3, 5]), 0.0, json!("gzip")),
        ("cseg_u32_2_bg", CompressedSegmentation, U32, 2, Some([8, 8, 8]), 5.0, Value::Null),
    ];
    for (name, enc, dtype, nc, block, bg, compress) in cases {
        let url = root.url_of(name);
        let opts = json!({"non_aligned_writes": true, "background_color": bg, "compress": compress}).to_string();
        let vol = ok(create(&url, &std_info(enc, dtype, nc, block), Some(&opts)), name);
        let reader = ok(open(&url, &json!({"fill_missing": true, "background_color": bg})), name);
        let bgv = match dtype {
            F32 => (bg as f32).to_le_bytes().to_vec(),
            _ => (bg as u64).to_le_bytes()[..dtype.size()].to_vec(),
        };
        let mut m = Model::new(LO, HI, nc, dtype.size(), &bgv);
        for (i, (lo, hi)) in non_aligned_boxes().into_iter().enumerate() {
            let buf = fill(dtype, kind_for(enc), nc, lo, hi, 100 + i as u64);
            vol.write_ok(0, lo, hi, &buf);
            m.paint(lo, hi, &buf);
            let got = reader.read_ok(0, LO, HI);
            assert_same(&got, &m.all(), LO, HI, nc, dtype.size(), &format!("{name} after box {i} {lo:?}..{hi:?}"));
            if i == 0 {
                // The first write made exactly one chunk, background around the box.
                let sfx = if compress.is_null() { "" } else { ".gz" };
                assert_eq!(
                    file_names(&root.join(name).join("4_4_40")),
                    vec![format!("-5-11_3-19_-2-6{sfx}")],
                    "{name}"
                );
            }
        }
        if name == "raw_u16_2" {
            // Mip 1 (its own grid: chunks of 8 from -3, 1, -2).
            let mut vol = vol;
            assert_eq!(ok(vol.add_scale([2, 2, 1], Some(CHUNK1)), name), 1);
            let reader = ok(open(&url, Some(r#"{"fill_missing":true}"#)), name);
            let mut m1 = Model::new(LO1, HI1, nc, dtype.size(), &bgv);
            for (i, (lo, hi)) in [
                ([0, 2, 0], [9, 10, 7]),
                ([-3, 1, -2], [-2, 2, -1]),
                ([4, 8, 5], [6, 10, 7]),
                ([-3, 1, -2], [16, 16, 9]),
                ([1, 3, -1], [15, 14, 8]),
            ]
            .into_iter()
            .enumerate()
            {
                let buf = fill(dtype, Kind::Noise, nc, lo, hi, 300 + i as u64);
                vol.write_ok(1, lo, hi, &buf);
                m1.paint(lo, hi, &buf);
                assert_same(
                    &reader.read_ok(1, LO1, HI1),
                    &m1.all(),
                    LO1,
                    HI1,
                    nc,
                    dtype.size(),
                    &format!("{name} mip 1 after box {i} {lo:?}..{hi:?}"),
                );
            }
            // Mip 0 is untouched.
            assert_same(
                &reader.read_ok(0, LO, HI),
                &m.all(),
                LO,
                HI,
                nc,
                dtype.size(),
                &format!("{name} mip 0 after writing mip 1"),
            );
        }
    }

    // jpeg: the merge re-encodes what it read, so compare within the loss.
    let url = root.url_of("jpeg");
    let vol = ok(create(&url, &std_info(Jpeg, U8, 1, None), Some(r#"{"non_aligned_writes":true}"#)), "jpeg");
    let mut m = Model::new(LO, HI, 1, 1, &[0]);
    for (i, (lo, hi)) in non_aligned_boxes().into_iter().enumerate() {
        let buf = fill(U8, Kind::Smooth, 1, lo, hi, i as u64);
        vol.write_ok(0, lo, hi, &buf);
        m.paint(lo, hi, &buf);
        let got = ok(open(&url, Some(r#"{"fill_missing":true}"#)), "jpeg").read_ok(0, LO, HI);
        // Before the full write, the unwritten parts of the first chunks are background (0)
        // next to bright voxels: JPEG rings there; afterwards the data is smooth.
        if i >= 6 {
            assert_jpeg_close(&got, &m.all(), &format!("jpeg after box {i} {lo:?}..{hi:?}"));
        }
        // Inside the box just written the voxels are the new ones, within the loss.
        let (max, mean) = u8_diff(&vol.read_ok(0, lo, hi), &buf);
        let fine = if i < 6 { max <= 80 } else { max <= 24 && mean < 3.0 };
        assert!(fine, "jpeg box {i} {lo:?}..{hi:?}: max {max}, mean {mean:.2}");
    }
}

#[test]
fn aligned_writes_never_read_partial_chunks_are_read_once() {
    let root = TempDir::in_target("count");
    let Some(ng) = Nginx::start(Config::new(root.path()).writable(true)) else {
        return;
    };
    let url = format!("{}/gz/count/layer", ng.base_url());
    let vol = ok(
        create(&url, &std_info(Encoding::Raw, DataType::U8, 1, None), Some(r#"{"non_aligned_writes":true}"#)),
        "create",
    );
    let mut m = Model::new(LO, HI, 1, 1, &[0]);
    let bounds = (LO, HI);
    let key = |lo: [i64; 3], hi: [i64; 3]| format!("/gz/count/layer/4_4_40/{}", chunk_name(lo, hi));
    for (i, (lo, hi)) in [
        // aligned: 4 chunks, then everything (12)
        ([-5, 3, -2], [11, 32, 9]),
        ([-5, 3, -2], [32, 32, 9]),
        // non-aligned: 8 partial chunks
        ([0, 10, 1], [20, 25, 7]),
        // 4 chunks covered whole, 4 partly
        ([-5, 3, -2], [20, 32, 9]),
        // inside one chunk
        ([12, 4, 0], [13, 5, 1]),
    ]
    .into_iter()
    .enumerate()
    {
        let mark = ng.mark();
        let buf = fill(DataType::U8, Kind::Noise, 1, lo, hi, i as u64);
        vol.write_ok(0, lo, hi, &buf);
        m.paint(lo, hi, &buf);
        let reqs = ng.requests_since(mark);
        let touched = cells(bounds, CHUNK, lo, hi);
        let partial: BTreeSet<String> = touched
            .iter()
            .filter(|(a, b)| (0..3).any(|d| a[d] < lo[d] || b[d] > hi[d]))
            .map(|(a, b)| key(*a, *b))
            .collect();
        let gets: BTreeSet<String> = reqs.iter().filter(|r| r.method != "PUT").map(|r| r.uri.clone()).collect();
        let n_reads = reqs.iter().filter(|r| r.method != "PUT").count();
        let puts: BTreeSet<String> = reqs.iter().filter(|r| r.method == "PUT").map(|r| r.uri.clone()).collect();
        assert_eq!(gets, partial, "box {i} {lo:?}..{hi:?}: reads must be exactly the partial chunks: {reqs:?}");
        assert_eq!(n_reads, partial.len(), "box {i}: each partial chunk is read once: {reqs:?}");
        assert!(reqs.iter().all(|r| r.method == "PUT" || r.method == "GET"), "box {i}: {reqs:?}");
        let want_puts: BTreeSet<String> = touched.iter().map(|(a, b)| key(*a, *b)).collect();
        assert_eq!(puts, want_puts, "box {i}: one PUT per chunk touched");
        assert_eq!(reqs.iter().filter(|r| r.method == "PUT").count(), touched.len(), "box {i}: {reqs:?}");
    }
    let back = ok(open(&url, None), "reopen").read_ok(0, LO, HI);
    assert_same(&back, &m.all(), LO, HI, 1, 1, "after the counted writes");
}

// ---------------------------------------------------------------------------------------------
// 5. Concurrent writers

#[test]
fn concurrent_writers_of_disjoint_aligned_boxes_lose_nothing() {
    let root = TempDir::in_target("concurrent");
    let (off, size, chunk) = ([-8, 4, 0], [64, 45, 40], [16, 16, 8]);
    let (lo, hi) = (off, [off[0] + size[0], off[1] + size[1], off[2] + size[2]]);
    let info = ok(new_info("image", "uint32", "raw", 1, RES, off, size, chunk), "info");
    let ng = Nginx::start(Config::new(root.path()).writable(true));
    let mut targets = vec![(root.url_of("layer"), None)];
    if let Some(ng) = &ng {
        targets.push((format!("{}/gz/web/layer", ng.base_url()), None));
    }
    let all = cells((lo, hi), chunk, lo, hi);
    assert_eq!(all.len(), 4 * 3 * 5);
    for (url, opts) in targets {
        let vol = ok(create(&url, &info, opts), &url);
        let mut m = Model::new(lo, hi, 1, 4, &[0; 4]);
        // Round 1: 8 threads share one handle; boxes are columns of cells along z (aligned,
        // 5 chunks each), interleaved between threads.
        let columns: Vec<([i64; 3], [i64; 3])> =
            all.iter().filter(|(a, _)| a[2] == lo[2]).map(|(a, b)| (*a, [b[0], b[1], hi[2]])).collect();
        std::thread::scope(|s| {
            for t in 0..8 {
                let (vol, columns) = (&vol, &columns);
                s.spawn(move || {
                    for (i, (a, b)) in columns.iter().enumerate().filter(|(i, _)| i % 8 == t) {
                        vol.write_ok(0, *a, *b, &fill(DataType::U32, Kind::Noise, 1, *a, *b, i as u64));
                    }
                });
            }
        });
        for (i, (a, b)) in columns.iter().enumerate() {
            m.paint(*a, *b, &fill(DataType::U32, Kind::Noise, 1, *a, *b, i as u64));
        }
        assert_same(&vol.read_ok(0, lo, hi), &m.all(), lo, hi, 1, 4, &format!("{url}: one shared handle"));
        // Round 2: 6 threads with a handle each; single-chunk boxes.
        std::thread::scope(|s| {
            for t in 0..6 {
                let (url, all) = (&url, &all);
                s.spawn(move || {
                    let v = ok(open(url, None), url);
                    for (i, (a, b)) in all.iter().enumerate().filter(|(i, _)| i % 6 == t) {
                        v.write_ok(0, *a, *b, &fill(DataType::U32, Kind::Noise, 1, *a, *b, 1000 + i as u64));
                    }
                });
            }
        });
        for (i, (a, b)) in all.iter().enumerate() {
            m.paint(*a, *b, &fill(DataType::U32, Kind::Noise, 1, *a, *b, 1000 + i as u64));
        }
        assert_same(
            &ok(open(&url, None), &url).read_ok(0, lo, hi),
            &m.all(),
            lo,
            hi,
            1,
            4,
            &format!("{url}: a handle per thread"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Atomicity: a killed upload leaves every chunk old or new

fn write_npy(path: &Path, descr: &str, shape: &[usize], fortran: bool, data: &[u8]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape_txt}, }}",
        if fortran { "True" } else { "False" }
    );
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend(((total - 10) as u16).to_le_bytes());
    h.extend(dict.as_bytes());
    h.extend(std::iter::repeat_n(b' ', total - unpadded));
    h.push(b'\n');
    h.extend_from_slice(data);
    std::fs::write(path, h).unwrap();
}

#[test]
fn killed_upload_leaves_every_chunk_old_or_new() {
    let root = TempDir::in_target("kill");
    let (size, chunk) = ([256i64, 256, 64], [32i64, 32, 16]);
    let (lo, hi) = ([0i64; 3], size);
    let url = root.url_of("layer");
    let info = ok(new_info("image", "uint8", "raw", 1, RES, lo, size, chunk), "info");
    let vol = ok(create(&url, &info, None), "create");
    let all = cells((lo, hi), chunk, lo, hi);
    // Two patterns differing in every chunk; the layer starts as A.
    let pats: Vec<Vec<u8>> = (0..2u64).map(|s| fill(DataType::U8, Kind::Noise, 1, lo, hi, 500 + s)).collect();
    let models: Vec<Model> = pats
        .iter()
        .map(|p| {
            let mut m = Model::new(lo, hi, 1, 1, &[0]);
            m.paint(lo, hi, p);
            m
        })
        .collect();
    let chunk_of = |which: usize, a: [i64; 3], b: [i64; 3]| models[which].get(a, b);
    vol.write_ok(0, lo, hi, &pats[0]);
    let files: Vec<PathBuf> = (0..2).map(|i| root.join(format!("pat{i}.raw"))).collect();
    for (f, p) in files.iter().zip(&pats) {
        std::fs::write(f, p).unwrap();
    }
    let bbox = format!("{},{},{},{},{},{}", lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]);
    let upload = |which: usize| {
        cli()
            .args(["upload", &url])
            .arg(&files[which])
            .args(["--bbox", &bbox])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Time a whole upload (of A over A: nothing changes).
    let t = Instant::now();
    let out = upload(0).wait_with_output().unwrap();
    assert!(out.status.success(), "upload failed: {}", String::from_utf8_lossy(&out.stderr));
    let full = t.elapsed();

    let key_dir = root.join("layer/4_4_40");
    let names: BTreeSet<String> = all.iter().map(|(a, b)| chunk_name(*a, *b)).collect();
    // What a kill between creating and renaming a temporary file leaves: a truncated
    // `.NAME.tmp-PID-N` beside the chunk. It is not the chunk.
    let (a0, b0) = all[0];
    let planted = key_dir.join(format!(".{}.tmp-4242-7", chunk_name(a0, b0)));
    std::fs::write(&planted, &chunk_of(1, a0, b0)[..1000]).unwrap();
    // The state each chunk is known to be in: 0 or 1 (pattern), from the last check.
    let mut mixed_runs = 0;
    let mut temp_seen: BTreeSet<String> = BTreeSet::new();
    let mut current = 0usize;
    let mut attempts = 0;
    let fractions = [0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 0.25, 0.5, 0.65, 0.8, 0.35, 0.55];
    while attempts < fractions.len() && (mixed_runs < 2 || attempts < 4) {
        let next = 1 - current;
        let delay = full.mul_f64(fractions[attempts]);
        attempts += 1;
        let mut child = upload(next);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Every chunk file is whole: old or new, never truncated or foreign.
        let (mut old, mut new) = (0, 0);
        for name in file_names(&key_dir) {
            if let Some(rest) = name.strip_prefix('.') {
                // A temporary file of the killed process: .NAME.tmp-PID-N
                let (chunk, tail) = rest.split_once(".tmp-").unwrap_or_else(|| panic!("stray file {name}"));
                assert!(names.contains(chunk), "temporary file {name} of an unknown chunk");
                let mut nums = tail.split('-');
                assert!(
                    nums.next().is_some_and(|p| p.parse::<u32>().is_ok())
                        && nums.next().is_some_and(|n| n.parse::<u64>().is_ok()),
                    "{name}"
                );
                temp_seen.insert(name.clone());
                continue;
            }
            assert!(names.contains(&name), "unexpected file {name} in the key directory");
            let (a, b) = parse_chunk_name(&name).unwrap();
            let bytes = std::fs::read(key_dir.join(&name)).unwrap();
            if bytes == chunk_of(current, a, b) {
                old += 1;
            } else if bytes == chunk_of(next, a, b) {
                new += 1;
            } else {
                panic!("chunk {name} is neither old nor new after a kill at {delay:?} ({} bytes)", bytes.len());
            }
        }
        assert_eq!(old + new, all.len(), "chunks missing after a kill at {delay:?}");
        // The library reads the same (temporary files are not chunks), every chunk present.
        let v = ok(open(&url, None), "reopen");
        assert!(ok(v.chunks_exist(0, lo, hi), "cv_chunks_exist").0.iter().all(|&e| e == 1));
        let got = v.read_ok(0, lo, hi);
        for (a, b) in &all {
            let part = {
                let mut out = vec![0u8; shape(*a, *b).iter().product()];
                copy_region(&got, lo, hi, &mut out, *a, *b, *a, *b, 1, 1);
                out
            };
            let on_disk = std::fs::read(key_dir.join(chunk_name(*a, *b))).unwrap();
            assert!(part == on_disk, "the library read chunk {} differently from its file", chunk_name(*a, *b));
        }
        eprintln!("kill after {delay:?} (full upload {full:?}): {new} new, {old} old chunks");
        if new > 0 && old > 0 {
            mixed_runs += 1;
        }
        if new == all.len() {
            current = next;
        } else if new > 0 {
            // Mixed: finish the upload so the next round starts from one pattern.
            let out = upload(next).wait_with_output().unwrap();
            assert!(out.status.success());
            current = next;
        }
    }
    assert!(planted.exists());
    eprintln!("{mixed_runs} kill(s) landed mid-upload; {} temporary file(s) seen (one planted)", temp_seen.len());
    assert!(mixed_runs >= 1, "no kill landed mid-upload (full upload {full:?}): the test did not test anything");
}

// ---------------------------------------------------------------------------------------------
// 7. Bad input

#[test]
fn bad_writes_fail_clearly_and_write_nothing() {
    let root = TempDir::in_target("badwrite");
    let url = root.url_of("layer");
    let vol = ok(create(&url, &std_info(Encoding::Raw, DataType::U16, 2, None), None), "create");
    let before = snapshot(root.path());
    let (lo, hi) = ([-5, 3, -2], [11, 19, 6]);
    let good = fill(DataType::U16, Kind::Noise, 2, lo, hi, 1);
    // A uint8 buffer for a uint16 layer; one byte too many; nothing.
    let n = good.len();
    expect_err(vol.write(0, lo, hi, &good[..n / 2]), CV_ERR_INVALID_ARGUMENT, &[&(n / 2).to_string(), &n.to_string()]);
    expect_err(
        vol.write(0, lo, hi, &[good.clone(), vec![0]].concat()),
        CV_ERR_INVALID_ARGUMENT,
        &[&(n + 1).to_string(), &n.to_string()],
    );
    // SAFETY: a NULL buffer of the right length is refused before it is read.
    let st = unsafe { cv_write_from(vol.0, 0, lo.as_ptr(), hi.as_ptr(), std::ptr::null(), n) };
    expect_err(status(st), CV_ERR_INVALID_ARGUMENT, &["buf"]);
    // SAFETY: NULL box pointers are refused.
    let st = unsafe { cv_write_from(vol.0, 0, std::ptr::null(), hi.as_ptr(), good.as_ptr().cast(), n) };
    expect_err(status(st), CV_ERR_INVALID_ARGUMENT, &["lo"]);
    // Outside the bounds, on either side; empty and inverted boxes; an unknown mip.
    for (blo, bhi) in [([-6, 3, -2], [11, 19, 6]), ([11, 19, 6], [32, 32, 10]), ([-21, 3, -2], [-5, 19, 6])] {
        let buf = fill(DataType::U16, Kind::Noise, 2, blo, bhi, 1);
        expect_err(vol.write(0, blo, bhi, &buf), CV_ERR_OUT_OF_BOUNDS, &["bounds"]);
    }
    expect_err(vol.write(0, [0, 3, -2], [0, 19, 6], &[]), CV_ERR_INVALID_ARGUMENT, &[]);
    expect_err(vol.write(0, hi, lo, &good), CV_ERR_INVALID_ARGUMENT, &[]);
    expect_err(vol.write(3, lo, hi, &good), CV_ERR_INVALID_ARGUMENT, &["mip"]);
    expect_err(vol.delete(0, [-6, 3, -2], [11, 19, 6]), CV_ERR_OUT_OF_BOUNDS, &["bounds"]);
    assert!(snapshot(root.path()) == before, "refused writes changed files");
    // The layer is still writable, also from a buffer at an odd address.
    let mut odd = vec![0u8; n + 1];
    odd[1..].copy_from_slice(&good);
    vol.write_ok(0, lo, hi, &odd[1..]);
    assert!(vol.read_ok(0, lo, hi) == good);

    // A server that refuses PUT: CV_ERR_UNSUPPORTED naming the URL, for cv_create and writes.
    let Some(ng) = Nginx::start(Config::new(root.path()).writable(true)) else {
        return;
    };
    let ro = format!("{}/ro/layer", ng.base_url());
    let before = snapshot(root.path());
    let info = std_info(Encoding::Raw, DataType::U16, 2, None);
    expect_err(
        create(&format!("{}/ro/new", ng.base_url()), &info, None),
        CV_ERR_UNSUPPORTED,
        &["PUT", "/ro/new/info", "405"],
    );
    let v = ok(open(&ro, None), "read-only layer");
    expect_err(v.write(0, lo, hi, &good), CV_ERR_UNSUPPORTED, &["PUT", "/ro/layer/4_4_40/", "405"]);
    expect_err(v.delete(0, lo, hi), CV_ERR_UNSUPPORTED, &["DELETE", "/ro/layer/4_4_40/", "405"]);
    assert!(snapshot(root.path()) == before, "a refused PUT changed files");
}

/// An info whose sharding spec is invalid is refused by cv_create before anything is written,
/// and with overwrite the existing info survives.
#[test]
fn create_with_a_bad_sharding_spec_writes_nothing() {
    let root = TempDir::in_target("badsharding");
    let info = std_info(Encoding::Raw, DataType::U8, 1, None);
    let mut sharded = info.clone();
    sharded["scales"][0]["sharding"] = json!({
        "@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0, "hash": "md5",
        "minishard_bits": 1, "shard_bits": 1, "minishard_index_encoding": "raw", "data_encoding": "raw",
    });
    let (st, msg) = create(&root.url_of("new"), &sharded, None).err().expect("cv_create accepted the hash md5");
    assert!(matches!(st, CV_ERR_INVALID_ARGUMENT | CV_ERR_DECODE | CV_ERR_UNSUPPORTED), "{}: {msg}", status_name(st));
    assert!(msg.contains("md5"), "{msg}");
    // With overwrite, over a good layer: refused, and the layer still opens.
    drop(ok(create(&root.url_of("good"), &info, None), "good"));
    let before = std::fs::read(root.join("good/info")).unwrap();
    let r = create(&root.url_of("good"), &sharded, Some(r#"{"overwrite":true}"#));
    assert!(r.is_err(), "cv_create accepted the hash md5");
    let after = std::fs::read(root.join("good/info")).unwrap();
    let reopen = open(&root.url_of("good"), None).err().map(|(s, m)| format!("{} {m}", status_name(s)));
    assert!(
        !root.join("new").exists() && after == before,
        "a refused cv_create (bad sharding spec) wrote its info: new layer files {:?}; existing info replaced: {}; cv_open of it now: {reopen:?}",
        snapshot(&root.join("new")).keys().collect::<Vec<_>>(),
        after != before
    );
}

#[test]
fn add_scale_refuses_bad_arguments_as_invalid() {
    let root = TempDir::in_target("addscale");
    let url = root.url_of("layer");
    let mut vol = ok(create(&url, &std_info(Encoding::Raw, DataType::U8, 1, None), None), "create");
    let before = std::fs::read(root.join("layer/info")).unwrap();
    expect_err(vol.add_scale([0, 2, 1], None), CV_ERR_INVALID_ARGUMENT, &["factor"]);
    expect_err(vol.add_scale([2, -2, 1], None), CV_ERR_INVALID_ARGUMENT, &["factor"]);
    // SAFETY: a NULL factor is refused.
    let st = unsafe { cv_add_scale(vol.0, std::ptr::null(), std::ptr::null(), std::ptr::null_mut()) };
    expect_err(status(st), CV_ERR_INVALID_ARGUMENT, &["factor"]);
    assert_eq!(std::fs::read(root.join("layer/info")).unwrap(), before);
    assert_eq!(vol.num_mips(), 1);
    // Adding scales: coarser ones in order; the same factor again returns its mip.
    assert_eq!(ok(vol.add_scale([2, 2, 1], None), "2,2,1"), 1);
    assert_eq!(ok(vol.add_scale([4, 4, 1], Some([8, 8, 4])), "4,4,1"), 2);
    assert_eq!(ok(vol.add_scale([2, 2, 1], Some([4, 4, 4])), "again"), 1);
    let info = vol.info();
    let keys: Vec<&str> = info["scales"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["4_4_40", "8_8_40", "16_16_40"]);
    assert_eq!(info["scales"][1]["chunk_sizes"], json!([CHUNK]), "an existing scale is kept as it was");
    assert_eq!(info["scales"][2]["chunk_sizes"], json!([[8, 8, 4]]));
    // A chunk size of 0 is a bad argument (the caller's), not corrupt data.
    let before = std::fs::read(root.join("layer/info")).unwrap();
    expect_err(vol.add_scale([8, 8, 1], Some([0, 8, 8])), CV_ERR_INVALID_ARGUMENT, &["chunk"]);
    assert_eq!(std::fs::read(root.join("layer/info")).unwrap(), before, "a refused cv_add_scale changed the info");
}

#[test]
fn bad_layers_fail_clearly_and_write_nothing() {
    let root = TempDir::in_target("badlayer");
    let info = std_info(Encoding::Raw, DataType::U8, 1, None);
    // No info: cv_open is NOT_FOUND naming it; nothing appears.
    std::fs::create_dir_all(root.join("empty")).unwrap();
    expect_err(open(&root.url_of("empty"), None), CV_ERR_NOT_FOUND, &["info"]);
    expect_err(open(&root.url_of("nothing/here"), None), CV_ERR_NOT_FOUND, &["info"]);
    assert!(file_names(&root.join("empty")).is_empty());
    assert!(!root.join("nothing").exists());

    // An existing info is kept unless overwrite.
    let url = root.url_of("layer");
    drop(ok(create(&url, &info, None), "create"));
    let first = std::fs::read(root.join("layer/info")).unwrap();
    let mut bigger = info.clone();
    bigger["scales"][0]["size"] = json!([64, 64, 64]);
    expect_err(create(&url, &bigger, None), CV_ERR_INVALID_ARGUMENT, &["info", "exists", "overwrite"]);
    expect_err(create(&url, &bigger, Some(r#"{"overwrite":false}"#)), CV_ERR_INVALID_ARGUMENT, &["exists"]);
    assert_eq!(std::fs::read(root.join("layer/info")).unwrap(), first, "a refused cv_create changed the info");
    let v = ok(create(&url, &bigger, Some(r#"{"overwrite":true}"#)), "overwrite");
    assert_eq!(v.bounds(0), (OFF, [OFF[0] + 64, OFF[1] + 64, OFF[2] + 64]));
    let disk: Value = serde_json::from_slice(&std::fs::read(root.join("layer/info")).unwrap()).unwrap();
    assert_eq!(disk["scales"][0]["size"], json!([64, 64, 64]));

    // An unwritable place. Permission bits do not stop root: then use a path through a file.
    let ro = root.join("readonly");
    std::fs::create_dir_all(&ro).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let probe = ro.join("probe");
    let privileged = std::fs::write(&probe, b"x").is_ok();
    let _ = std::fs::remove_file(&probe);
    let (bad_url, watch) = if privileged {
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(ro.join("a_file"), b"not a directory").unwrap();
        (format!("file://{}/a_file/layer", ro.display()), ro.clone())
    } else {
        (format!("file://{}/layer", ro.display()), ro.clone())
    };
    let before = snapshot(&watch);
    let (st, msg) = create(&bad_url, &info, None).err().expect("cv_create into an unwritable place succeeded");
    assert!(st == CV_ERR_IO || st == CV_ERR_AUTH, "{}: {msg}", status_name(st));
    assert!(msg.contains(&bad_url[7..]), "{msg} does not name {bad_url}");
    assert!(snapshot(&watch) == before, "a failed cv_create left files");
    let _ = std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755));

    // Infos no encoder can honour are refused at create, before anything is written.
    let bad_combos: [(&str, &str, &str, u32, &[&str]); 4] = [
        ("image", "uint8", "jpeg", 2, &["jpeg", "2 channel"]),
        ("image", "uint16", "jpeg", 1, &["jpeg", "uint16"]),
        ("image", "float32", "png", 1, &["png", "float32"]),
        ("segmentation", "uint8", "compressed_segmentation", 1, &["compressed_segmentation", "uint8"]),
    ];
    for (lt, dt, enc, nc, needles) in bad_combos {
        // cv_new_info refuses it ...
        expect_err(new_info(lt, dt, enc, nc, RES, OFF, SIZE, CHUNK), CV_ERR_INVALID_ARGUMENT, needles);
        // ... and so does cv_create given such an info by hand.
        let mut hand = info.clone();
        hand["type"] = json!(lt);
        hand["data_type"] = json!(dt);
        hand["num_channels"] = json!(nc);
        hand["scales"][0]["encoding"] = json!(enc);
        if enc == "compressed_segmentation" {
            hand["scales"][0]["compressed_segmentation_block_size"] = json!([8, 8, 8]);
        }
        let dir = format!("bad_{enc}_{dt}_{nc}");
        let (st, msg) = create(&root.url_of(&dir), &hand, None)
            .err()
            .unwrap_or_else(|| panic!("cv_create accepted {enc} {dt} x{nc}"));
        assert!(
            matches!(st, CV_ERR_INVALID_ARGUMENT | CV_ERR_DECODE | CV_ERR_UNSUPPORTED),
            "{}: {msg}",
            status_name(st)
        );
        for n in needles {
            assert!(msg.contains(n), "{msg} does not name {n}");
        }
        assert!(!root.join(&dir).exists(), "a refused cv_create wrote {dir}");
    }

    // cv_new_info: bad names and values, each named; nothing written anywhere.
    let before = snapshot(root.path());
    let bad: [(&str, &str, &str, u32, [i64; 3], [i64; 3], &str); 8] = [
        ("imag", "uint8", "raw", 1, SIZE, CHUNK, "imag"),
        ("image", "uint7", "raw", 1, SIZE, CHUNK, "uint7"),
        ("image", "uint8", "jpg", 1, SIZE, CHUNK, "jpg"),
        ("image", "uint8", "compresso2", 1, SIZE, CHUNK, "compresso2"),
        ("image", "UINT8 ", "raw", 1, SIZE, CHUNK, "UINT8"),
        ("image", "uint8", "raw", 0, SIZE, CHUNK, "num_channels"),
        ("image", "uint8", "raw", 1, SIZE, [16, 0, 8], "chunk"),
        ("image", "uint8", "raw", 1, [37, -1, 11], CHUNK, "size"),
    ];
    for (lt, dt, enc, nc, size, chunk, needle) in bad {
        expect_err(new_info(lt, dt, enc, nc, RES, OFF, size, chunk), CV_ERR_INVALID_ARGUMENT, &[needle]);
    }
    expect_err(
        new_info("image", "uint8", "raw", 1, [4.0, 0.0, 40.0], OFF, SIZE, CHUNK),
        CV_ERR_INVALID_ARGUMENT,
        &["resolution"],
    );
    // NULL arguments.
    let mut out: *mut c_char = std::ptr::null_mut();
    let (a, b) = (cs("image"), cs("uint8"));
    // SAFETY: NULL encoding and resolution are refused.
    let st = unsafe {
        cv_new_info(
            a.as_ptr(),
            b.as_ptr(),
            std::ptr::null(),
            1,
            RES.as_ptr(),
            OFF.as_ptr(),
            SIZE.as_ptr(),
            CHUNK.as_ptr(),
            &mut out,
        )
    };
    expect_err(status(st), CV_ERR_INVALID_ARGUMENT, &["encoding"]);
    let e = cs("raw");
    // SAFETY: as above.
    let st = unsafe {
        cv_new_info(
            a.as_ptr(),
            b.as_ptr(),
            e.as_ptr(),
            1,
            std::ptr::null(),
            OFF.as_ptr(),
            SIZE.as_ptr(),
            CHUNK.as_ptr(),
            &mut out,
        )
    };
    expect_err(status(st), CV_ERR_INVALID_ARGUMENT, &["resolution"]);
    assert!(out.is_null());
    // cv_create: not JSON, not an info, bad options, NULL arguments.
    expect_err(create_text(&root.url_of("x1"), "{not json", None), CV_ERR_DECODE, &["JSON"]);
    expect_err(create_text(&root.url_of("x2"), r#"{"type":"image"}"#, None), CV_ERR_DECODE, &["data_type"]);
    expect_err(
        create(&root.url_of("x3"), &info, Some(r#"{"overwrite":"yes"}"#)),
        CV_ERR_INVALID_ARGUMENT,
        &["overwrite"],
    );
    expect_err(
        create(&root.url_of("x4"), &info, Some(r#"{"compress":"lzma"}"#)),
        CV_ERR_INVALID_ARGUMENT,
        &["compress"],
    );
    expect_err(
        create(&root.url_of("x5"), &info, Some(r#"{"non_aligned":true}"#)),
        CV_ERR_INVALID_ARGUMENT,
        &["non_aligned"],
    );
    let mut h: *mut cv_volume = std::ptr::null_mut();
    let u = cs(&root.url_of("x6"));
    // SAFETY: a NULL info is refused.
    let st = unsafe { cv_create(u.as_ptr(), std::ptr::null(), std::ptr::null(), &mut h) };
    expect_err(status(st), CV_ERR_INVALID_ARGUMENT, &["info_json"]);
    assert!(h.is_null());
    assert!(snapshot(root.path()) == before, "failed calls wrote files");
}

// ---------------------------------------------------------------------------------------------
// 8. delete_black_uploads and cv_delete

#[test]
fn delete_black_uploads_and_cv_delete() {
    let root = TempDir::in_target("delete");
    let (size, chunk) = ([40i64, 32, 12], [16i64, 16, 8]);
    let (lo, hi) = ([-8i64, 0, 4], [32i64, 32, 16]);
    let all = cells((lo, hi), chunk, lo, hi);
    assert_eq!(all.len(), 3 * 2 * 2);
    let dark = |i: usize| i % 3 == 0; // chunks 0, 3, 6, 9 become background
    for (name, bg, compress) in [("zero", 0u8, "null"), ("seven", 7u8, "null"), ("gz", 0u8, "\"gzip\"")] {
        let url = root.url_of(name);
        let info = ok(new_info("image", "uint8", "raw", 1, RES, lo, size, chunk), name);
        let suffix = if compress == "null" { "" } else { ".gz" };
        let vol = ok(create(&url, &info, Some(&format!(r#"{{"compress":{compress}}}"#))), name);
        let full = fill(DataType::U8, Kind::Noise, 1, lo, hi, 3).iter().map(|v| v | 0x80).collect::<Vec<u8>>();
        vol.write_ok(0, lo, hi, &full);
        let key_dir = root.join(name).join("4_4_40");
        assert_eq!(file_names(&key_dir).len(), all.len());
        // With delete_black_uploads, background chunks are deleted instead of written: also
        // the ones that existed; other chunks (some voxels background) are written.
        let opts = format!(r#"{{"delete_black_uploads":true,"background_color":{bg},"compress":{compress}}}"#);
        let dv = ok(open(&url, &opts), name);
        let mut m = Model::new(lo, hi, 1, 1, &[bg]);
        let mut buf = fill(DataType::U8, Kind::Noise, 1, lo, hi, 4);
        for (i, (a, b)) in all.iter().enumerate() {
            let mut part = vec![0u8; shape(*a, *b).iter().product()];
            copy_region(&buf, lo, hi, &mut part, *a, *b, *a, *b, 1, 1);
            if dark(i) {
                part.iter_mut().for_each(|v| *v = bg);
            } else {
                part[0] = bg;
            }
            copy_region(&part.clone(), *a, *b, &mut buf, lo, hi, *a, *b, 1, 1);
        }
        dv.write_ok(0, lo, hi, &buf);
        m.paint(lo, hi, &buf);
        let want: BTreeSet<String> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| !dark(*i))
            .map(|(_, (a, b))| format!("{}{suffix}", chunk_name(*a, *b)))
            .collect();
        assert_eq!(
            file_names(&key_dir).into_iter().collect::<BTreeSet<_>>(),
            want,
            "{name}: background chunks deleted"
        );
        let exist = ok(dv.chunks_exist(0, lo, hi), "cv_chunks_exist").0;
        assert_eq!(exist, (0..all.len()).map(|i| u8::from(!dark(i))).collect::<Vec<_>>(), "{name}");
        // Missing chunks read as background with fill_missing, else NOT_FOUND naming the key.
        let filled = ok(open(&url, &format!(r#"{{"fill_missing":true,"background_color":{bg}}}"#)), name);
        assert_same(&filled.read_ok(0, lo, hi), &m.all(), lo, hi, 1, 1, name);
        let plain = ok(open(&url, None), name);
        let msg = expect_err(plain.read(0, lo, hi), CV_ERR_NOT_FOUND, &["4_4_40/", "fill_missing"]);
        assert!(
            all.iter().enumerate().any(|(i, (a, b))| dark(i) && msg.contains(&chunk_name(*a, *b))),
            "{msg} names no deleted chunk"
        );
        if bg != 0 {
            // All-zero chunks are not background here: written.
            let (a, b) = all[3];
            dv.write_ok(0, a, b, &vec![0u8; shape(a, b).iter().product()]);
            assert!(
                key_dir.join(format!("{}{suffix}", chunk_name(a, b))).exists(),
                "{name}: a zero chunk with background 7 was not written"
            );
            m.paint(a, b, &vec![0u8; shape(a, b).iter().product()]);
        }

        // cv_delete of an aligned box (reaching the clipped edge) removes its chunks.
        let (dlo, dhi) = ([8, 0, 4], [32, 32, 12]);
        let gone: Vec<_> = cells((lo, hi), chunk, dlo, dhi);
        assert_eq!(gone.len(), 4);
        ok(vol.delete(0, dlo, dhi), &format!("{name}: cv_delete"));
        for (a, b) in &gone {
            for sfx in ["", ".gz"] {
                assert!(
                    !key_dir.join(format!("{}{sfx}", chunk_name(*a, *b))).exists(),
                    "{name}: {} survived cv_delete",
                    chunk_name(*a, *b)
                );
            }
        }
        let bgbuf = vec![bg; shape(dlo, dhi).iter().product()];
        m.paint(dlo, dhi, &bgbuf);
        assert_same(&filled.read_ok(0, lo, hi), &m.all(), lo, hi, 1, 1, &format!("{name} after cv_delete"));
        let msg = expect_err(plain.read(0, dlo, dhi), CV_ERR_NOT_FOUND, &["4_4_40/"]);
        assert!(gone.iter().any(|(a, b)| msg.contains(&chunk_name(*a, *b))), "{msg} names no deleted chunk");
        // Deleting what is not there is fine; a misaligned box is refused and deletes nothing.
        ok(vol.delete(0, dlo, dhi), "delete again");
        let before = snapshot(&key_dir);
        expect_err(vol.delete(0, [-8, 0, 4], [9, 16, 12]), CV_ERR_INVALID_ARGUMENT, &["x ends at 9", "not aligned"]);
        expect_err(vol.delete(0, [-7, 0, 4], [8, 16, 12]), CV_ERR_INVALID_ARGUMENT, &["x starts at -7"]);
        assert!(snapshot(&key_dir) == before, "{name}: a refused delete removed files");
    }

    // Over HTTP: DELETE requests, and the objects are gone.
    let Some(ng) = Nginx::start(Config::new(root.path()).writable(true)) else {
        return;
    };
    let url = format!("{}/gz/web/layer", ng.base_url());
    let info = ok(new_info("image", "uint8", "raw", 1, RES, lo, size, chunk), "http");
    let vol = ok(create(&url, &info, Some(r#"{"delete_black_uploads":true}"#)), "http");
    vol.write_ok(0, lo, hi, &vec![1u8; shape(lo, hi).iter().product()]);
    let mark = ng.mark();
    let (dlo, dhi) = ([-8, 0, 4], [8, 32, 16]);
    vol.write_ok(0, dlo, dhi, &vec![0u8; shape(dlo, dhi).iter().product()]);
    let reqs = ng.requests_since(mark);
    assert_eq!(reqs.iter().filter(|r| r.method == "DELETE").count(), 4, "{reqs:?}");
    assert!(reqs.iter().all(|r| r.method == "DELETE"), "background chunks are deleted, not written: {reqs:?}");
    let mark = ng.mark();
    ok(vol.delete(0, [8, 0, 4], [32, 16, 16]), "http delete");
    let reqs = ng.requests_since(mark);
    assert_eq!(reqs.iter().filter(|r| r.method == "DELETE").count(), 4, "{reqs:?}");
    let left = file_names(&root.join("web/layer/4_4_40"));
    assert_eq!(
        left,
        vec![
            "24-32_16-32_4-12".to_string(),
            "24-32_16-32_12-16".to_string(),
            "8-24_16-32_12-16".to_string(),
            "8-24_16-32_4-12".to_string()
        ]
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// 9. The CLI

#[track_caller]
fn run_cli(args: &[&str]) -> String {
    let out = cli().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "cloudvolume {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command that must fail with one line on stderr containing every needle.
#[track_caller]
fn cli_fails(args: &[&str], needles: &[&str]) {
    let out = cli().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "cloudvolume {args:?} succeeded");
    let first = err.lines().next().unwrap_or("");
    for n in needles {
        assert!(first.contains(n), "cloudvolume {args:?}: {first:?} does not name {n:?}");
    }
}

/// `data` (planar Fortran `[x, y, z, c]`) in C order of the same shape (channel fastest).
fn to_c_order(data: &[u8], s: [usize; 4], item: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    for x in 0..s[0] {
        for y in 0..s[1] {
            for z in 0..s[2] {
                for c in 0..s[3] {
                    let ci = (((x * s[1] + y) * s[2] + z) * s[3] + c) * item;
                    let fi = (((c * s[2] + z) * s[1] + y) * s[0] + x) * item;
                    out[ci..ci + item].copy_from_slice(&data[fi..fi + item]);
                }
            }
        }
    }
    out
}

#[test]
fn cli_create_upload_add_scale_delete() {
    let root = TempDir::in_target("cli");
    let url = root.url_of("layer");
    let out = run_cli(&[
        "create",
        &url,
        "--dtype",
        "uint16",
        "--size",
        "37,29,11",
        "--offset",
        "-5,3,-2",
        "--chunk",
        "16,16,8",
        "--channels",
        "2",
        "--resolution",
        "4,4,40",
    ]);
    let printed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("create printed {out}: {e}"));
    let disk: Value = serde_json::from_slice(&std::fs::read(root.join("layer/info")).unwrap()).unwrap();
    assert_eq!(printed, disk);
    assert_eq!(disk["type"], "image");
    assert_eq!(disk["num_channels"], 2);
    assert_eq!(disk["scales"][0]["encoding"], "raw");
    assert_eq!(disk["scales"][0]["voxel_offset"], json!(OFF));
    assert_eq!(disk["scales"][0]["chunk_sizes"], json!([CHUNK]));
    // Again: refused without --overwrite, replaced with it.
    cli_fails(&["create", &url, "--dtype", "uint8", "--size", "8,8,8"], &["exists"]);
    assert_eq!(serde_json::from_slice::<Value>(&std::fs::read(root.join("layer/info")).unwrap()).unwrap(), disk);
    cli_fails(&["create", &root.url_of("l2"), "--dtype", "uint7", "--size", "8,8,8"], &["uint7"]);
    cli_fails(
        &["create", &root.url_of("l2"), "--dtype", "uint8", "--size", "8,8,8", "--encoding", "jpeg", "--channels", "2"],
        &["jpeg"],
    );
    assert!(!root.join("l2").exists());
    let seg = run_cli(&[
        "create",
        &root.url_of("seg"),
        "--dtype",
        "uint64",
        "--size",
        "8,8,8",
        "--encoding",
        "compressed_segmentation",
    ]);
    let seg: Value = serde_json::from_str(&seg).unwrap();
    assert_eq!(seg["type"], "segmentation");
    assert_eq!(seg["scales"][0]["compressed_segmentation_block_size"], json!([8, 8, 8]));

    let item = 2;
    let mut m = Model::new(LO, HI, 2, item, &[0, 0]);
    let s = shape(LO, HI);
    // Fortran-order .npy of the whole volume.
    let f_data = fill(DataType::U16, Kind::Noise, 2, LO, HI, 1);
    let f_npy = root.join("f.npy");
    write_npy(&f_npy, "<u2", &[s[0], s[1], s[2], 2], true, &f_data);
    run_cli(&["upload", &url, f_npy.to_str().unwrap(), "--bbox", "-5,3,-2,32,32,9"]);
    m.paint(LO, HI, &f_data);
    assert_same(&ok(open(&url, None), "open").read_ok(0, LO, HI), &m.all(), LO, HI, 2, item, "Fortran .npy upload");
    // C-order .npy of an aligned box.
    let (blo, bhi) = ([11, 3, -2], [32, 19, 6]);
    let bs = shape(blo, bhi);
    let c_data = fill(DataType::U16, Kind::Noise, 2, blo, bhi, 2);
    let c_npy = root.join("c.npy");
    write_npy(&c_npy, "<u2", &[bs[0], bs[1], bs[2], 2], false, &to_c_order(&c_data, [bs[0], bs[1], bs[2], 2], item));
    run_cli(&["upload", &url, c_npy.to_str().unwrap(), "--bbox", "11,3,-2,32,19,6"]);
    m.paint(blo, bhi, &c_data);
    assert_same(&ok(open(&url, None), "open").read_ok(0, LO, HI), &m.all(), LO, HI, 2, item, "C-order .npy upload");
    // Raw bytes (Fortran order) of another box.
    let (rlo, rhi) = ([-5, 19, 6], [11, 32, 9]);
    let r_data = fill(DataType::U16, Kind::Noise, 2, rlo, rhi, 3);
    let raw = root.join("box.raw");
    std::fs::write(&raw, &r_data).unwrap();
    run_cli(&["upload", &url, raw.to_str().unwrap(), "--bbox", "-5,19,6,11,32,9"]);
    m.paint(rlo, rhi, &r_data);
    assert_same(&ok(open(&url, None), "open").read_ok(0, LO, HI), &m.all(), LO, HI, 2, item, "raw upload");
    // Refusals: misaligned without --non-aligned, wrong dtype, wrong shape, wrong raw length.
    let (nlo, nhi) = ([0, 5, 0], [7, 9, 2]);
    let n_data = fill(DataType::U16, Kind::Noise, 2, nlo, nhi, 4);
    let ns = shape(nlo, nhi);
    let n_npy = root.join("n.npy");
    write_npy(&n_npy, "<u2", &[ns[0], ns[1], ns[2], 2], true, &n_data);
    let before = snapshot(&root.join("layer"));
    cli_fails(&["upload", &url, n_npy.to_str().unwrap(), "--bbox", "0,5,0,7,9,2"], &["not aligned"]);
    let i_npy = root.join("i.npy");
    write_npy(&i_npy, "<i2", &[ns[0], ns[1], ns[2], 2], true, &n_data);
    cli_fails(&["upload", &url, i_npy.to_str().unwrap(), "--bbox", "0,5,0,7,9,2", "--non-aligned"], &["<i2", "uint16"]);
    cli_fails(&["upload", &url, n_npy.to_str().unwrap(), "--bbox", "0,5,0,7,9,3", "--non-aligned"], &["shape"]);
    cli_fails(&["upload", &url, raw.to_str().unwrap(), "--bbox", "-5,19,6,11,32,8"], &["2496", "1664"]);
    assert!(snapshot(&root.join("layer")) == before, "refused uploads changed files");
    // With --non-aligned it merges.
    run_cli(&["upload", &url, n_npy.to_str().unwrap(), "--bbox", "0,5,0,7,9,2", "--non-aligned"]);
    m.paint(nlo, nhi, &n_data);
    assert_same(&ok(open(&url, None), "open").read_ok(0, LO, HI), &m.all(), LO, HI, 2, item, "--non-aligned upload");

    // add-scale, then an upload at mip 1.
    let out = run_cli(&["add-scale", &url, "--factor", "2,2,1", "--chunk", "8,8,8"]);
    assert_eq!(out.trim(), "mip 1");
    let v = ok(open(&url, None), "open");
    assert_eq!(v.num_mips(), 2);
    assert_eq!(v.bounds(1), (LO1, HI1));
    assert_eq!(run_cli(&["add-scale", &url, "--factor", "2,2,1"]).trim(), "mip 1", "the same scale again");
    let s1 = shape(LO1, HI1);
    let d1 = fill(DataType::U16, Kind::Noise, 2, LO1, HI1, 5);
    let npy1 = root.join("m1.npy");
    write_npy(&npy1, "<u2", &[s1[0], s1[1], s1[2], 2], false, &to_c_order(&d1, [s1[0], s1[1], s1[2], 2], item));
    run_cli(&["upload", &url, npy1.to_str().unwrap(), "--bbox", "-3,1,-2,16,16,9", "--mip", "1"]);
    assert_same(&ok(open(&url, None), "open").read_ok(1, LO1, HI1), &d1, LO1, HI1, 2, item, "mip 1 upload");
    assert_eq!(file_names(&root.join("layer/8_8_40")).len(), 3 * 2 * 2);

    // delete: the chunks of the box go; cutout --fill-missing reads background there.
    run_cli(&["delete", &url, "--bbox", "11,3,-2,32,32,9"]);
    let left = file_names(&root.join("layer/4_4_40"));
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(left.iter().all(|n| n.starts_with("-5-11_")), "{left:?}");
    cli_fails(&["delete", &url, "--bbox", "0,3,-2,32,32,9"], &["not aligned"]);
    let cut = root.join("cut.raw");
    run_cli(&["cutout", &url, "--bbox", "-5,3,-2,32,32,9", "--fill-missing", "-o", cut.to_str().unwrap()]);
    m.paint([11, 3, -2], [32, 32, 9], &vec![0u8; shape([11, 3, -2], [32, 32, 9]).iter().product::<usize>() * 2 * item]);
    assert_same(&std::fs::read(&cut).unwrap(), &m.all(), LO, HI, 2, item, "after delete");

    // A one-channel layer takes a 3-D .npy in either order.
    let url3 = root.url_of("gray");
    run_cli(&[
        "create", &url3, "--dtype", "float32", "--size", "37,29,11", "--offset", "-5,3,-2", "--chunk", "16,16,8",
    ]);
    let g = fill(DataType::F32, Kind::Noise, 1, LO, HI, 6);
    let g_npy = root.join("g.npy");
    write_npy(&g_npy, "<f4", &[s[0], s[1], s[2]], false, &to_c_order(&g, [s[0], s[1], s[2], 1], 4));
    run_cli(&["upload", &url3, g_npy.to_str().unwrap(), "--bbox", "-5,3,-2,32,32,9"]);
    assert_same(&ok(open(&url3, None), "open").read_ok(0, LO, HI), &g, LO, HI, 1, 4, "3-D C-order .npy");
}

#[test]
fn create_and_add_scale_keep_unknown_info_members() {
    let root = TempDir::in_target("members");
    let mut info = std_info(Encoding::CompressedSegmentation, DataType::U64, 1, Some([4, 3, 5]));
    info["mesh"] = json!("mesh");
    info["extra"] = json!({"k": [1, 2]});
    info["scales"][0]["hidden"] = json!(false);
    info["scales"][0]["note"] = json!("kept");
    let url = root.url_of("layer");
    let mut vol = ok(create(&url, &info, None), "create");
    let disk = || serde_json::from_slice::<Value>(&std::fs::read(root.join("layer/info")).unwrap()).unwrap();
    assert_eq!(disk(), info, "cv_create wrote another info than given");
    assert_eq!(ok(vol.add_scale([2, 2, 2], None), "add"), 1);
    let d = disk();
    assert_eq!(d["mesh"], "mesh");
    assert_eq!(d["extra"], json!({"k": [1, 2]}));
    assert_eq!(d["scales"][0], info["scales"][0], "mip 0 changed");
    let s1 = &d["scales"][1];
    assert_eq!(s1["key"], "8_8_80");
    assert_eq!(s1["encoding"], "compressed_segmentation");
    assert_eq!(s1["compressed_segmentation_block_size"], json!([4, 3, 5]));
    assert_eq!(s1["chunk_sizes"], json!([CHUNK]));
    assert_eq!(s1["voxel_offset"], json!([-3, 1, -1]));
    // ceil((offset + size) / 2) - floor(offset / 2): every voxel of mip 0 has a parent.
    assert_eq!(s1["size"], json!([19, 15, 6]));
    assert_eq!(d, vol.info(), "the handle's info is the one on disk");
}

#[test]
fn has_data_tells_written_scales_from_empty_ones_as_cloud_volume_does() {
    use support::cv_python::{self, info_with_scales};
    let root = TempDir::in_target("hasdata");
    let url = root.url_of("layer");
    // 4_4_40 written; 8_8_40 an empty directory; 4_4_4 nothing of its own, but its key is a
    // prefix of 4_4_40's (cloud-volume's bare prefix finds those); 16_16_40 empty directories.
    let keys = ["4_4_40", "8_8_40", "4_4_4", "16_16_40"];
    let mut vol = ok(create(&url, &info_with_scales(&keys), None), "create");
    let nothing: Vec<bool> = (0..4).map(|m| ok(vol.has_data(m), "has_data before writing")).collect();
    assert_eq!(nothing, [false; 4], "a layer with only its info");
    vol.write_ok(0, [0, 0, 0], [16, 16, 8], &[7u8; 16 * 16 * 8]);
    std::fs::create_dir_all(root.join("layer/8_8_40")).unwrap();
    std::fs::create_dir_all(root.join("layer/16_16_40/a/b")).unwrap();
    let want = [true, false, true, false];
    let got: Vec<bool> = (0..4).map(|m| ok(vol.has_data(m), &format!("has_data({m})"))).collect();
    assert_eq!(got, want, "cv_has_data");
    let lib = cloudvolume::Volume::open(&url, cloudvolume::Options::default()).unwrap();
    assert_eq!((0..4).map(|m| lib.has_data(m).unwrap()).collect::<Vec<_>>(), want, "Volume::has_data");
    if let Some(theirs) = cv_python::has_data(&url, &Value::Null, &root.join("home"), &[]) {
        assert_eq!(theirs, want, "cloud-volume's has_data");
    }
    // A symbolic link to a directory is not followed (as os.walk does not); a file is data,
    // compressed or not, however deep.
    std::os::unix::fs::symlink(root.join("layer/4_4_40"), root.join("layer/8_8_40/link")).unwrap();
    assert!(!ok(vol.has_data(1), "a link to a directory"));
    std::fs::write(root.join("layer/16_16_40/a/b/0-16_0-16_0-8.gz"), b"x").unwrap();
    assert!(ok(vol.has_data(3), "a file deep down"));
    // An added scale has no data until written.
    let mip = ok(vol.add_scale([16, 16, 1], None), "add_scale");
    assert_eq!(mip, 4);
    assert!(!ok(vol.has_data(mip), "an added scale"));
    vol.write_ok(mip, [0, 0, 0], [2, 2, 8], &[1u8; 2 * 2 * 8]);
    assert!(ok(vol.has_data(mip), "a written added scale"));
    // A mip the layer lacks; a NULL output.
    expect_err(vol.has_data(5), CV_ERR_INVALID_ARGUMENT, &["mip 5"]);
    // SAFETY: a live handle; a NULL output is refused.
    expect_err(status(unsafe { cv_has_data(vol.0, 0, std::ptr::null_mut()) }), CV_ERR_INVALID_ARGUMENT, &["out"]);
    // SAFETY: a NULL handle is refused.
    let mut out = 0i32;
    expect_err(status(unsafe { cv_has_data(std::ptr::null(), 0, &mut out) }), CV_ERR_INVALID_ARGUMENT, &[]);
    // Over plain HTTP nothing can be listed: refused, naming the URL, no guess.
    let Some(ng) = Nginx::start(Config::new(root.path())) else { return };
    let web = format!("{}/layer", ng.base_url());
    let h = ok(open(&web, None), "open over HTTP");
    expect_err(h.has_data(0), CV_ERR_UNSUPPORTED, &["listing is not possible over plain HTTP", &web]);
}
