//! Cutouts saved as HDF5 and TIFF slices (`cloudvolume::export`), read back by h5py and tifffile
//! (the venv's python) and compared byte for byte with what was written.
//!
//! - HDF5: every data type, 1 channel (13x7x5), 3 uint8 and 4 uint16 channels, and a cutout of
//!   several chunks and z slabs per channel; the dataset's type, shape `(z, y, x)` /
//!   `(c, z, y, x)`, chunking, gzip and shuffle, and the attributes.
//! - TIFF: every data type as greyscale (the sample format and bits of each page, no 8-bit
//!   squashing: values past 255 and 2^16 survive, the bug ocpAccess warned about), RGB (3 uint8),
//!   RGBA (4 uint16, with its ExtraSamples tag), one page per channel otherwise, the file names
//!   (absolute z, negative too) and what is in the directory.
//! - Bad input: wrong buffer lengths, no channels, empty boxes, unwritable paths: errors of the
//!   right kind naming the path, never a panic.
//!
//! The HDF5 tests need the crate feature `hdf5` (`cargo test --features hdf5-metno --test
//! export`); without it one test checks that `write_hdf5` refuses clearly.
//!
//! The reads need `target/venv/bin/python` with h5py and tifffile (scripts/setup.sh); without
//! them those tests print a notice and pass, unless `CV_REQUIRE_REFERENCE=1`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

use cloudvolume::export::write_tiff_slices;

// The CLI's HDF5 writer (it lives in the binary so the library never links libhdf5).
#[path = "../src/bin/cloudvolume/hdf5.rs"]
mod hdf5_writer;
use cloudvolume::{DataType, ErrorKind, Result};
use hdf5_writer::write_hdf5;
use serde_json::{json, Value};
use support::env::{python, required};
use support::files::TempDir;

/// libhdf5 opens files without close-on-exec, and takes a lock on them: a python started by
/// another test thread while an HDF5 file is open here inherits the descriptor, and with it the
/// lock, so that h5py cannot open the file until that python exits. Writes and process starts
/// take turns under this lock.
static FDS: Mutex<()> = Mutex::new(());

fn fds() -> MutexGuard<'static, ()> {
    FDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `write_hdf5` while no process is being started.
#[allow(clippy::too_many_arguments)]
fn h5(
    path: &Path,
    data: &[u8],
    t: DataType,
    channels: usize,
    shape: [usize; 3],
    res: [f64; 3],
    off: [i64; 3],
    name: &str,
) -> Result<()> {
    let _turn = fds();
    write_hdf5(path, data, t, channels, shape, res, off, name)
}

/// `cmd`'s output, started while no HDF5 file is open.
fn output(cmd: &mut Command) -> std::io::Result<Output> {
    let child = {
        let _turn = fds();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?
    };
    child.wait_with_output()
}

/// The venv's python when it can import h5py, tifffile and numpy; else None after a notice
/// (a panic under `CV_REQUIRE_REFERENCE=1`).
fn reader() -> Option<&'static Path> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        let py = python("reading exports back with h5py and tifffile")?;
        let ok = output(Command::new(&py).args(["-c", "import h5py, tifffile, numpy"]));
        match ok {
            Ok(out) if out.status.success() => Some(py),
            Ok(out) => {
                let why = String::from_utf8_lossy(&out.stderr).into_owned();
                assert!(!required(), "CV_REQUIRE_REFERENCE=1 but the venv lacks h5py or tifffile: {why}");
                eprintln!("NOTICE: the venv lacks h5py or tifffile ({why}); export read-backs skipped");
                None
            }
            Err(e) => panic!("run {}: {e}", py.display()),
        }
    })
    .as_deref()
}

/// Runs `script` with `args`; returns its stdout parsed as JSON (panics with its stderr).
fn run_python(py: &Path, script: &str, args: &[&Path]) -> Value {
    let out = output(Command::new(py).arg("-c").arg(script).args(args)).expect("run python");
    assert!(
        out.status.success(),
        "python failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("python printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[cfg(feature = "hdf5")]
/// h5py: every dataset's little-endian bytes into `<out>/<name>.raw`; its facts as JSON.
const H5_READ: &str = r#"
import sys, json, os, h5py, numpy as np
path, out = sys.argv[1], sys.argv[2]
info = {}
with h5py.File(path, "r") as f:
    info["keys"] = list(f.keys())
    info["root_attrs"] = list(f.attrs.keys())
    for name in f.keys():
        d = f[name]
        a = d[()]
        le = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False)
        with open(os.path.join(out, name + ".raw"), "wb") as w:
            w.write(le.tobytes())
        attrs = {}
        for k, v in d.attrs.items():
            if isinstance(v, str):
                attrs[k] = {"type": "str", "value": v}
            else:
                v = np.asarray(v)
                attrs[k] = {"type": v.dtype.str, "shape": list(v.shape), "value": v.tolist()}
        info[name] = {
            "dtype": a.dtype.str,
            "file_dtype": d.dtype.str,
            "order": str(d.id.get_type().get_order()),
            "shape": list(a.shape),
            "chunks": list(d.chunks) if d.chunks else None,
            "compression": d.compression,
            "compression_opts": d.compression_opts,
            "shuffle": bool(d.shuffle),
            "attrs": attrs,
        }
print(json.dumps(info))
"#;

/// tifffile: each file's pages' little-endian bytes into `<out>/<file>.raw` (pages in order);
/// the tags that say what the samples are, as JSON.
const TIFF_READ: &str = r#"
import sys, json, os, tifffile, numpy as np
out = sys.argv[1]
info = []
for path in sys.argv[2:]:
    pages = []
    with tifffile.TiffFile(path) as t, open(os.path.join(out, os.path.basename(path) + ".raw"), "wb") as w:
        for p in t.pages:
            a = p.asarray()
            w.write(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
            pages.append({
                "shape": list(a.shape),
                "dtype": a.dtype.str,
                "bits": p.bitspersample,
                "sampleformat": int(p.sampleformat),
                "samples": p.samplesperpixel,
                "photometric": int(p.photometric),
                "planar": int(p.planarconfig),
                "extrasamples": [int(e) for e in p.extrasamples],
                "width": p.imagewidth,
                "length": p.imagelength,
            })
        info.append({"path": path, "bigtiff": t.is_bigtiff, "byteorder": t.byteorder, "pages": pages})
print(json.dumps(info))
"#;

/// Deterministic noise (xorshift64*): every byte pattern, NaNs and infinities included.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// numpy's `dtype.str` of each type (little-endian).
fn numpy_str(t: DataType) -> &'static str {
    match t {
        DataType::U8 => "|u1",
        DataType::I8 => "|i1",
        DataType::U16 => "<u2",
        DataType::I16 => "<i2",
        DataType::U32 => "<u4",
        DataType::I32 => "<i4",
        DataType::U64 => "<u8",
        DataType::I64 => "<i8",
        DataType::F32 => "<f4",
        DataType::F64 => "<f8",
    }
}

/// TIFF's SampleFormat: 1 unsigned, 2 signed, 3 IEEE float.
fn sample_format(t: DataType) -> i64 {
    match t {
        DataType::U8 | DataType::U16 | DataType::U32 | DataType::U64 => 1,
        DataType::I8 | DataType::I16 | DataType::I32 | DataType::I64 => 2,
        DataType::F32 | DataType::F64 => 3,
    }
}

/// The test buffer: noise, checked to hold what a truncation to 8 bits (or a sign or float
/// reinterpretation) would lose, so that the comparisons can fail.
fn cutout(t: DataType, channels: usize, shape: [usize; 3], seed: u64) -> Vec<u8> {
    let n = shape.iter().product::<usize>() * channels;
    let data = noise(n * t.size(), seed);
    if t.size() > 1 {
        let high = data.chunks_exact(t.size()).filter(|v| v[1..].iter().any(|&b| b != 0)).count();
        assert!(high > n / 2, "test data of {} has too few values past 255", t.name());
    }
    data
}

/// `data` after `seed % 2` bytes of padding: odd seeds hand the writers a buffer misaligned for
/// every type wider than a byte (their copying path), even seeds an aligned one (their direct
/// one).
fn misaligned(data: Vec<u8>, seed: u64) -> Vec<u8> {
    let mut v = vec![0xAA; (seed % 2) as usize];
    v.extend_from_slice(&data);
    v
}

fn read_file(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Asserts `got == want` byte for byte, naming the first difference.
fn same_bytes(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: {} bytes read back, {} written", got.len(), want.len());
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: byte {i} reads back as {:#04x}, {:#04x} was written", got[i], want[i]);
    }
}

// ---------------------------------------------------------------------------------------------
// HDF5

#[cfg(feature = "hdf5")]
fn hdf5_case(t: DataType, channels: usize, shape: [usize; 3], seed: u64) {
    let Some(py) = reader() else { return };
    let dir = TempDir::new(&format!("h5-{}-{channels}", t.name()));
    let store = misaligned(cutout(t, channels, shape, seed), seed);
    let data = &store[(seed % 2) as usize..];
    let path = dir.join("out.h5");
    let res = [4.0, 4.5, 40.0];
    let off = [-3, 1000, 1 << 40];
    h5(&path, data, t, channels, shape, res, off, "main").expect("write_hdf5");

    let info = run_python(py, H5_READ, &[&path, dir.path()]);
    assert_eq!(info["keys"], serde_json::json!(["main"]), "one dataset, named as asked");
    assert_eq!(info["root_attrs"], serde_json::json!([]), "attributes on the dataset, none on the file");
    let d = &info["main"];
    let [x, y, z] = shape;
    let want_shape: Vec<usize> = if channels == 1 { vec![z, y, x] } else { vec![channels, z, y, x] };
    assert_eq!(d["dtype"], numpy_str(t), "element type of {}", t.name());
    assert_eq!(d["file_dtype"], numpy_str(t), "stored type of {}", t.name());
    if t.size() > 1 {
        assert_eq!(d["order"], "0", "stored little-endian (H5T_ORDER_LE)");
    }
    assert_eq!(d["shape"], serde_json::json!(want_shape));
    let chunks: Vec<usize> = serde_json::from_value(d["chunks"].clone()).expect("a chunked dataset");
    assert_eq!(chunks.len(), want_shape.len());
    assert!(chunks.iter().zip(&want_shape).all(|(c, s)| c <= s && *c >= 1), "chunks {chunks:?} in {want_shape:?}");
    if channels > 1 {
        assert_eq!(chunks[0], 1, "one channel a chunk");
    }
    let chunk_bytes = chunks.iter().product::<usize>() * t.size();
    assert!(chunk_bytes <= 1 << 20, "chunks of {chunk_bytes} bytes");
    assert_eq!(d["compression"], "gzip");
    assert_eq!(d["compression_opts"], 4);
    assert_eq!(d["shuffle"], true);

    let a = &d["attrs"];
    assert_eq!(a["resolution"]["type"], "<f8");
    assert_eq!(a["resolution"]["value"], serde_json::json!(res));
    assert_eq!(a["voxel_offset"]["type"], "<i8");
    assert_eq!(a["voxel_offset"]["value"], serde_json::json!(off));
    assert_eq!(a["axes"]["type"], "str");
    assert_eq!(a["axes"]["value"], if channels == 1 { "zyx" } else { "czyx" });
    assert_eq!(a["dtype"]["type"], "str");
    assert_eq!(a["dtype"]["value"], t.name());
    assert_eq!(a.as_object().map(|m| m.len()), Some(4), "exactly the four attributes: {a}");

    // C order (c, z, y, x) is the buffer's Fortran [x, y, z, c]: the very same bytes.
    same_bytes(&format!("HDF5 {} x{channels}", t.name()), &read_file(&dir.join("main.raw")), data);
}

macro_rules! hdf5_one_channel {
    ($($name:ident: $t:expr,)*) => {$(
        #[test]
        #[cfg(feature = "hdf5")]
        fn $name() {
            hdf5_case($t, 1, [13, 7, 5], 11 + $t.code() as u64);
        }
    )*};
}
hdf5_one_channel! {
    hdf5_uint8: DataType::U8,
    hdf5_int8: DataType::I8,
    hdf5_uint16: DataType::U16,
    hdf5_int16: DataType::I16,
    hdf5_uint32: DataType::U32,
    hdf5_int32: DataType::I32,
    hdf5_uint64: DataType::U64,
    hdf5_int64: DataType::I64,
    hdf5_float32: DataType::F32,
    hdf5_float64: DataType::F64,
}

#[cfg(feature = "hdf5")]
#[test]
fn hdf5_uint8_three_channels() {
    hdf5_case(DataType::U8, 3, [13, 7, 5], 101);
}

#[cfg(feature = "hdf5")]
#[test]
fn hdf5_uint16_four_channels() {
    hdf5_case(DataType::U16, 4, [13, 7, 5], 102);
}

#[cfg(feature = "hdf5")]
/// Several chunks per axis and channel (64-bit chunks are 32 deep).
#[test]
fn hdf5_many_chunks_and_slabs() {
    hdf5_case(DataType::U64, 2, [70, 66, 71], 103);
    hdf5_case(DataType::U8, 1, [130, 3, 129], 104);
}

#[cfg(feature = "hdf5")]
/// Another dataset name, and an existing file replaced.
#[test]
fn hdf5_dataset_name_and_replace() {
    let Some(py) = reader() else { return };
    let dir = TempDir::new("h5-name");
    let path = dir.join("cut.h5");
    let first = cutout(DataType::I16, 1, [4, 3, 2], 105);
    h5(&path, &first, DataType::I16, 1, [4, 3, 2], [1.0; 3], [0; 3], "main").expect("first write");
    let second = cutout(DataType::F32, 2, [3, 2, 2], 106);
    h5(&path, &second, DataType::F32, 2, [3, 2, 2], [8.0, 8.0, 33.0], [1, 2, 3], "image").expect("replace");
    let info = run_python(py, H5_READ, &[&path, dir.path()]);
    assert_eq!(info["keys"], serde_json::json!(["image"]), "the old file is gone, the new dataset named as asked");
    assert_eq!(info["image"]["shape"], serde_json::json!([2, 2, 2, 3]));
    same_bytes("renamed dataset", &read_file(&dir.join("image.raw")), &second);
}

/// Without the `hdf5` feature: a clear refusal naming the file and the feature, no file.
#[test]
#[cfg(not(feature = "hdf5"))]
fn hdf5_needs_its_feature() {
    let tmp = TempDir::new("h5-off");
    let path = tmp.join("out.h5");
    let e = h5(&path, &[1, 2, 3, 4], DataType::U8, 1, [2, 2, 1], [1.0; 3], [0; 3], "main").expect_err("no HDF5");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.message().contains(&*path.to_string_lossy()) && e.message().contains("hdf5"), "{e}");
    assert!(!path.exists(), "no file written");
}

// ---------------------------------------------------------------------------------------------
// TIFF

/// What one slice's file must read back as: per page, its bytes and (shape, samples, photometric).
struct Page {
    bytes: Vec<u8>,
    shape: Vec<usize>,
    samples: i64,
    photometric: i64,
}

/// The pages slice `k` must hold, built from the Fortran buffer independently of the writer.
fn expected_pages(data: &[u8], t: DataType, channels: usize, shape: [usize; 3], k: usize) -> Vec<Page> {
    let [x, y, z] = shape;
    let s = t.size();
    let at = |c: usize, yy: usize, xx: usize| {
        let i = (xx + x * (yy + y * (k + z * c))) * s;
        &data[i..i + s]
    };
    let rgb = matches!(channels, 3 | 4) && matches!(t, DataType::U8 | DataType::U16);
    if rgb {
        let mut bytes = Vec::new();
        for yy in 0..y {
            for xx in 0..x {
                for c in 0..channels {
                    bytes.extend_from_slice(at(c, yy, xx));
                }
            }
        }
        vec![Page { bytes, shape: vec![y, x, channels], samples: channels as i64, photometric: 2 }]
    } else {
        (0..channels)
            .map(|c| {
                let mut bytes = Vec::new();
                for yy in 0..y {
                    for xx in 0..x {
                        bytes.extend_from_slice(at(c, yy, xx));
                    }
                }
                Page { bytes, shape: vec![y, x], samples: 1, photometric: 1 }
            })
            .collect()
    }
}

fn tiff_case(t: DataType, channels: usize, shape: [usize; 3], offset_z: i64, seed: u64) {
    let Some(py) = reader() else { return };
    let tmp = TempDir::new(&format!("tif-{}-{channels}", t.name()));
    let dir = tmp.join("slices"); // created by the writer
    let store = misaligned(cutout(t, channels, shape, seed), seed);
    let data = &store[(seed % 2) as usize..];
    let files = write_tiff_slices(&dir, data, t, channels, shape, offset_z).expect("write_tiff_slices");

    let z = shape[2];
    let names: Vec<String> = (0..z).map(|k| format!("{:05}.tif", offset_z + k as i64)).collect();
    let want: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    assert_eq!(files, want, "one file per slice, named by absolute z");
    let mut listed: Vec<String> = std::fs::read_dir(&dir)
        .expect("list slices")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "nothing else in the directory");

    let out = tmp.join("read");
    std::fs::create_dir(&out).expect("mkdir read");
    let mut args: Vec<&Path> = vec![&out];
    args.extend(files.iter().map(PathBuf::as_path));
    let info = run_python(py, TIFF_READ, &args);
    let info = info.as_array().expect("a list");
    assert_eq!(info.len(), z);
    for (k, f) in info.iter().enumerate() {
        let what = format!("{} x{channels} slice {k} ({})", t.name(), names[k]);
        assert_eq!(f["bigtiff"], false, "{what}");
        assert_eq!(f["byteorder"], "<", "{what}: little-endian");
        let pages = expected_pages(data, t, channels, shape, k);
        let got = f["pages"].as_array().expect("pages");
        assert_eq!(got.len(), pages.len(), "{what}: pages");
        let mut want_bytes = Vec::new();
        for (p, w) in got.iter().zip(&pages) {
            assert_eq!(p["dtype"], numpy_str(t), "{what}: sample type");
            assert_eq!(p["sampleformat"], sample_format(t), "{what}: SampleFormat");
            assert_eq!(p["bits"], (t.size() * 8) as i64, "{what}: BitsPerSample");
            assert_eq!(p["samples"], w.samples, "{what}: SamplesPerPixel");
            assert_eq!(p["photometric"], w.photometric, "{what}: PhotometricInterpretation");
            assert_eq!(p["planar"], 1, "{what}: samples interleaved");
            assert_eq!(p["width"], shape[0] as i64, "{what}: width is x");
            assert_eq!(p["length"], shape[1] as i64, "{what}: length is y");
            assert_eq!(p["shape"], serde_json::json!(w.shape), "{what}: array shape");
            let extra: Vec<i64> = if w.samples == 4 { vec![2] } else { vec![] };
            assert_eq!(p["extrasamples"], serde_json::json!(extra), "{what}: ExtraSamples (unassociated alpha)");
            want_bytes.extend_from_slice(&w.bytes);
        }
        same_bytes(&what, &read_file(&out.join(format!("{}.raw", names[k]))), &want_bytes);
    }
}

macro_rules! tiff_one_channel {
    ($($name:ident: $t:expr,)*) => {$(
        #[test]
        fn $name() {
            tiff_case($t, 1, [13, 7, 5], 0, 201 + $t.code() as u64);
        }
    )*};
}
tiff_one_channel! {
    tiff_uint8: DataType::U8,
    tiff_int8: DataType::I8,
    tiff_uint16: DataType::U16,
    tiff_int16: DataType::I16,
    tiff_uint32: DataType::U32,
    tiff_int32: DataType::I32,
    tiff_uint64: DataType::U64,
    tiff_int64: DataType::I64,
    tiff_float32: DataType::F32,
    tiff_float64: DataType::F64,
}

#[test]
fn tiff_rgb_uint8() {
    tiff_case(DataType::U8, 3, [13, 7, 5], 120, 301);
}

#[test]
fn tiff_rgba_uint16() {
    tiff_case(DataType::U16, 4, [13, 7, 5], 7, 302);
}

#[test]
fn tiff_rgba_uint8_and_rgb_uint16() {
    tiff_case(DataType::U8, 4, [6, 5, 2], 0, 303);
    tiff_case(DataType::U16, 3, [6, 5, 2], 0, 304);
}

/// Channel counts and types that are not RGB(A): one greyscale page per channel.
#[test]
fn tiff_page_per_channel() {
    tiff_case(DataType::U8, 2, [13, 7, 3], 0, 305);
    tiff_case(DataType::F32, 3, [13, 7, 3], 0, 306);
    tiff_case(DataType::I16, 4, [5, 4, 2], 0, 307);
    tiff_case(DataType::U32, 5, [5, 4, 2], 0, 308);
}

/// Negative and large slice numbers name the files (`-0002.tif`, `123456.tif`).
#[test]
fn tiff_slice_names() {
    tiff_case(DataType::U8, 1, [3, 2, 4], -2, 309);
    tiff_case(DataType::U16, 1, [3, 2, 2], 123_455, 310);
}

/// The bug ocpAccess warned about: 16- and 32-bit slices saved as 8 bits (or as floats, or
/// byte-swapped). Values chosen to be wrong under each of those.
#[test]
fn tiff_wide_integers_exact() {
    let Some(py) = reader() else { return };
    let tmp = TempDir::new("tif-wide");
    let u16s: [u16; 6] = [0, 1, 255, 256, 0x1234, 0xFFFF];
    let u32s: [u32; 6] = [0, 256, 65_536, 16_777_217, 0x1234_5678, u32::MAX];
    let i32s: [i32; 6] = [i32::MIN, -1, 0, 300, 16_777_217, i32::MAX];
    let cases: [(&str, DataType, Vec<u8>, Vec<i128>); 3] = [
        ("u16", DataType::U16, u16s.iter().flat_map(|v| v.to_le_bytes()).collect(), u16s.map(i128::from).to_vec()),
        ("u32", DataType::U32, u32s.iter().flat_map(|v| v.to_le_bytes()).collect(), u32s.map(i128::from).to_vec()),
        ("i32", DataType::I32, i32s.iter().flat_map(|v| v.to_le_bytes()).collect(), i32s.map(i128::from).to_vec()),
    ];
    for (name, t, data, values) in cases {
        let dir = tmp.join(name);
        let files = write_tiff_slices(&dir, &data, t, 1, [3, 2, 1], 0).expect("write");
        let script = "import sys, json, tifffile\na = tifffile.imread(sys.argv[1])\n\
                      print(json.dumps({'dtype': a.dtype.str, 'shape': list(a.shape), 'v': a.ravel().tolist()}))";
        let got = run_python(py, script, &[&files[0]]);
        assert_eq!(got["dtype"], numpy_str(t), "{name}");
        assert_eq!(got["shape"], serde_json::json!([2, 3]), "{name}");
        let v: Vec<i128> = serde_json::from_value(got["v"].clone()).expect("integers");
        assert_eq!(v, values, "{name}: values read back by tifffile");
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: errors, never panics.

/// A bad cutout: what is wrong, the buffer, its type, channels and shape.
type BadCase = (&'static str, Vec<u8>, DataType, usize, [usize; 3]);

#[test]
fn wrong_buffers_are_refused() {
    let tmp = TempDir::new("export-bad");
    let h5_path = tmp.join("x.h5");
    let tifs = tmp.join("slices");
    let cases: [BadCase; 5] = [
        ("one byte short", vec![0; 13 * 7 * 5 * 2 - 1], DataType::U16, 1, [13, 7, 5]),
        ("one byte long", vec![0; 13 * 7 * 5 + 1], DataType::U8, 1, [13, 7, 5]),
        ("channels not counted", vec![0; 13 * 7 * 5 * 4], DataType::F32, 3, [13, 7, 5]),
        ("no channels", vec![], DataType::U8, 0, [13, 7, 5]),
        ("empty box", vec![], DataType::U8, 1, [13, 0, 5]),
    ];
    for (what, data, t, c, shape) in &cases {
        let e = h5(&h5_path, data, *t, *c, *shape, [1.0; 3], [0; 3], "main").expect_err(what);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "hdf5, {what}: {e}");
        assert!(e.message().contains(&*h5_path.to_string_lossy()), "hdf5, {what}: names the file: {e}");
        let e = write_tiff_slices(&tifs, data, *t, *c, *shape, 0).expect_err(what);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "tiff, {what}: {e}");
        assert!(e.message().contains(&*tifs.to_string_lossy()), "tiff, {what}: names the directory: {e}");
    }
    let overflow = write_tiff_slices(&tifs, &[0; 4], DataType::U8, 1, [1, 1, 4], i64::MAX - 1).expect_err("z overflow");
    assert_eq!(overflow.kind(), ErrorKind::InvalidArgument, "{overflow}");
    assert!(!h5_path.exists(), "nothing written for bad input");
    assert!(!tifs.exists(), "nothing written for bad input");
    let e = h5(&h5_path, &[0; 8], DataType::U8, 1, [2, 2, 2], [1.0; 3], [0; 3], "").expect_err("no name");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[test]
fn unwritable_paths_are_io_errors_naming_them() {
    let tmp = TempDir::new("export-io");
    let data = vec![7u8; 2 * 2 * 2];
    let missing = tmp.join("no/such/dir/x.h5");
    let e = h5(&missing, &data, DataType::U8, 1, [2, 2, 2], [1.0; 3], [0; 3], "main").expect_err("no dir");
    let kind = if cfg!(feature = "hdf5") { ErrorKind::Io } else { ErrorKind::Unsupported };
    assert_eq!(e.kind(), kind, "{e}");
    assert!(e.message().contains(&*missing.to_string_lossy()), "names the file: {e}");

    let file = tmp.join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let e = write_tiff_slices(&file, &data, DataType::U8, 1, [2, 2, 2], 0).expect_err("dir is a file");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains(&*file.to_string_lossy()), "names the directory: {e}");

    let dir = tmp.join("slices");
    std::fs::create_dir_all(dir.join("00001.tif")).expect("a directory where a slice goes");
    let e = write_tiff_slices(&dir, &data, DataType::U8, 1, [2, 2, 2], 0).expect_err("slice path is a dir");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains(&*dir.join("00001.tif").to_string_lossy()), "names the slice file: {e}");
}

/// The CLI: `cutout -o FILE.h5` and `-o DIR/` hold exactly the raw cutout's voxels, with the
/// layer's resolution and the box's offset in the HDF5 attributes.
#[test]
fn cli_cutouts_to_hdf5_and_tiff_slices() {
    let Some(py) = reader() else { return };
    let dir = std::env::temp_dir().join(format!("cv-export-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let layer = support::env::crate_dir().join("data/sample_layer");
    let bbox = "-10,9,1,70,80,23";
    let run = |out: &Path| {
        let o = output(
            Command::new(env!("CARGO_BIN_EXE_cloudvolume"))
                .args(["cutout", layer.to_str().unwrap(), "--bbox", bbox, "-o"])
                .arg(out),
        )
        .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let raw = dir.join("c.raw");
    run(&raw);
    let said = run(&dir.join("c.h5"));
    assert!(said.contains("HDF5"), "{said}");
    let slices = dir.join("slices/");
    let said = run(&slices);
    assert!(said.contains("TIFF slices"), "{said}");
    let script = r#"
import json, sys, glob, h5py, tifffile, numpy as np
raw, h5, sl = sys.argv[1:4]
with h5py.File(h5, "r") as f:
    d = f["main"]
    a = d[...]
    attrs = {"resolution": [float(v) for v in d.attrs["resolution"]], "voxel_offset": [int(v) for v in d.attrs["voxel_offset"]],
             "axes": d.attrs["axes"] if isinstance(d.attrs["axes"], str) else d.attrs["axes"].decode()}
pages = [tifffile.imread(p) for p in sorted(glob.glob(sl + "/*.tif"))]
names = sorted(p.rsplit("/", 1)[1] for p in glob.glob(sl + "/*.tif"))
r = open(raw, "rb").read()
print(json.dumps({"h5_equal": a.tobytes() == r, "shape": list(a.shape), "dtype": str(a.dtype), "attrs": attrs,
                  "tiff_equal": np.stack(pages).tobytes() == r, "names": names}))
"#;
    let v = run_python(py, script, &[&raw, &dir.join("c.h5"), &dir.join("slices")]);
    assert_eq!(v["h5_equal"], true, "{v}");
    assert_eq!(v["shape"], json!([22, 71, 80]), "{v}");
    assert_eq!(v["dtype"], "uint8");
    assert_eq!(v["attrs"]["resolution"], json!([8.0, 8.0, 40.0]), "{v}");
    assert_eq!(v["attrs"]["voxel_offset"], json!([-10, 9, 1]), "{v}");
    assert_eq!(v["attrs"]["axes"], "zyx");
    assert_eq!(v["tiff_equal"], true, "{v}");
    assert_eq!(v["names"].as_array().unwrap().len(), 22);
    assert_eq!(v["names"][0], "00001.tif");
    let _ = std::fs::remove_dir_all(&dir);
}
