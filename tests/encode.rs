//! The chunk encoders of the write path (`cloudvolume::codec::encode`):
//!
//! - round trips through our decoders for every encoding x data type x channel count, odd shapes
//!   and block sizes (exact for raw, png and compressed_segmentation; JPEG within a tolerance on
//!   smooth data), gzip at every level, and the errors (each naming the chunk's URL);
//! - compressed_segmentation byte-identical to tensorstore's chunk files for the same voxels, and
//!   JPEG with the same headers (tables, sampling, baseline) as cloud-volume's encoder
//!   (simplejpeg) and as faithful, written by `tests/reference/encode_check.py write`;
//! - layers written here from our encoders (jpeg, png, compressed_segmentation, raw) read back by
//!   tensorstore (and cloud-volume where it decodes correctly) through
//!   `tests/reference/encode_check.py read`.
//!
//! The reference tests need `<crate>/target/venv/bin/python` (scripts/setup.sh makes it). Without
//! it they print a notice and pass, unless `CV_REQUIRE_REFERENCE=1`, when they fail.
//!
//! `cargo test --release --test encode -- --ignored --nocapture encode_speed` prints encoder
//! throughputs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cloudvolume::codec::compression::{gunzip, gzip};
use cloudvolume::codec::{decode_into, ChunkSpec, OutView};
use cloudvolume::codec::{encode_chunk, EncodeOptions};
use cloudvolume::{Bbox, DataType, Encoding, ErrorKind};
use serde_json::{json, Value};
use support::env::{crate_dir, python};

// ------------------------------------------------------------------------------------------------
// Helpers

const URL: &str = "mem://layer/s0/0-13_0-7_0-5";

/// A small deterministic hash (splitmix64).
fn mix(mut v: u64) -> u64 {
    v = v.wrapping_add(0x9E37_79B9_7F4A_7C15);
    v = (v ^ (v >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    v = (v ^ (v >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    v ^ (v >> 31)
}

/// Voxels of a planar `[x, y, z, c]` chunk, one u64 per element before truncation to `dtype`.
fn volume(
    dtype: DataType,
    channels: usize,
    shape: [usize; 3],
    f: impl Fn(usize, usize, usize, usize) -> u64,
) -> Vec<u8> {
    let item = dtype.size();
    let mut out = Vec::with_capacity(shape.iter().product::<usize>() * channels * item);
    for c in 0..channels {
        for z in 0..shape[2] {
            for y in 0..shape[1] {
                for x in 0..shape[0] {
                    out.extend_from_slice(&f(x, y, z, c).to_le_bytes()[..item]);
                }
            }
        }
    }
    out
}

/// Any bit pattern (raw, png).
fn noise(dtype: DataType, channels: usize, shape: [usize; 3], seed: u64) -> Vec<u8> {
    volume(dtype, channels, shape, |x, y, z, c| {
        mix(seed ^ mix((x + 1000 * y + 1_000_000 * z) as u64 + ((c as u64) << 40)))
    })
}

/// Label-like: regions, noise with few and with many values, zeros, a checkerboard.
fn labels(dtype: DataType, channels: usize, shape: [usize; 3], seed: u64) -> Vec<u8> {
    volume(dtype, channels, shape, |x, y, z, c| {
        let sel = (x / 8 + 2 * (y / 8) + 3 * (z / 4) + c) % 6;
        let h = mix(seed ^ (x + 1000 * y + 1_000_000 * z + (c << 30)) as u64);
        match sel {
            0 => 0,
            1 => mix(((x / 5) + 3 * (y / 4) + 7 * (z / 3) + 11 * c) as u64 % 97),
            2 => h % 3,
            3 => h % 20 + (1 << 33),
            4 => h,
            _ => 1 + ((x + y + z) % 2) as u64,
        }
    })
}

/// Smooth 8-bit image data (JPEG).
fn smooth(channels: usize, shape: [usize; 3]) -> Vec<u8> {
    volume(DataType::U8, channels, shape, |x, y, z, c| {
        let v = 128.0 + 60.0 * (x as f64 / 9.0 + c as f64).sin() * (y as f64 / 11.0).cos() + 3.0 * z as f64;
        v.clamp(0.0, 255.0) as u64
    })
}

/// Decode `bytes` with the library's decoder into a planar chunk.
fn decode(
    encoding: Encoding,
    dtype: DataType,
    channels: usize,
    shape: [usize; 3],
    block: Option<[i64; 3]>,
    bytes: &[u8],
) -> Vec<u8> {
    let cell = Bbox::new([3, -2, 7], [3 + shape[0] as i64, -2 + shape[1] as i64, 7 + shape[2] as i64]);
    let spec = ChunkSpec { encoding, dtype, channels, cell, cseg_block: block, url: URL };
    let mut out = vec![0u8; spec.decoded_len()];
    {
        let view = OutView::new(&mut out, cell, channels, dtype.size());
        decode_into(&spec, bytes, &cell, &view).unwrap_or_else(|e| {
            panic!("{} {} x{channels} {shape:?} {block:?}: decode failed: {e}", encoding.name(), dtype.name())
        });
    }
    out
}

fn opts(block: Option<[i64; 3]>) -> EncodeOptions {
    EncodeOptions { cseg_block: block, ..EncodeOptions::default() }
}

/// Run `encode_check.py <mode> <dir>`; return its stdout.
fn run_helper(py: &Path, mode: &str, dir: &Path) -> String {
    let script = crate_dir().join("tests/reference/encode_check.py");
    let out = Command::new(py).arg(&script).arg(mode).arg(dir).output().expect("run encode_check.py");
    assert!(
        out.status.success(),
        "encode_check.py {mode} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A fresh directory of this process (test runs may overlap); removed by the test on success.
fn scratch_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The cell `[lo, hi)` (relative to the volume's corner) of a planar volume of shape `size`.
fn extract(vol: &[u8], size: [usize; 3], channels: usize, item: usize, lo: [usize; 3], hi: [usize; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in 0..channels {
        for z in lo[2]..hi[2] {
            for y in lo[1]..hi[1] {
                let o = (((c * size[2] + z) * size[1] + y) * size[0] + lo[0]) * item;
                out.extend_from_slice(&vol[o..o + (hi[0] - lo[0]) * item]);
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Round trips

const SHAPES: [[usize; 3]; 5] = [[13, 7, 5], [1, 1, 1], [16, 16, 16], [64, 1, 3], [5, 9, 1]];

#[test]
fn raw_round_trips_every_type() {
    for dtype in DataType::ALL {
        for channels in [1, 2, 3] {
            for shape in SHAPES {
                let data = noise(dtype, channels, shape, 1);
                let enc = encode_chunk(Encoding::Raw, dtype, channels, shape, &data, &opts(None), URL).unwrap();
                assert_eq!(enc, data);
                assert_eq!(decode(Encoding::Raw, dtype, channels, shape, None, &enc), data);
            }
        }
    }
}

#[test]
fn cseg_round_trips_any_block_and_channels() {
    let blocks = [[8, 8, 8], [4, 3, 5], [1, 1, 1], [16, 2, 1], [32, 32, 32], [64, 64, 16]];
    for dtype in [DataType::U32, DataType::U64] {
        for channels in [1, 2, 3] {
            for shape in [[13, 7, 5], [1, 1, 1], [64, 1, 3], [5, 9, 1], [37, 29, 11], [33, 17, 20]] {
                for block in blocks {
                    for (seed, gen) in [(2u64, labels as fn(DataType, usize, [usize; 3], u64) -> Vec<u8>), (3, noise)] {
                        let data = gen(dtype, channels, shape, seed);
                        let o = opts(Some(block));
                        let enc =
                            encode_chunk(Encoding::CompressedSegmentation, dtype, channels, shape, &data, &o, URL)
                                .unwrap_or_else(|e| panic!("{dtype:?} x{channels} {shape:?} {block:?}: {e}"));
                        let back = decode(Encoding::CompressedSegmentation, dtype, channels, shape, Some(block), &enc);
                        assert!(
                            back == data,
                            "{dtype:?} x{channels} {shape:?} block {block:?} seed {seed}: round trip differs"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn cseg_reuses_tables_and_stays_small() {
    // One label everywhere: every 8^3 block has bits 0 and shares the first block's table.
    let shape = [64, 64, 64];
    let data = volume(DataType::U64, 1, shape, |_, _, _, _| 0x1234_5678_9abc_def0);
    let enc =
        encode_chunk(Encoding::CompressedSegmentation, DataType::U64, 1, shape, &data, &opts(Some([8, 8, 8])), URL)
            .unwrap();
    // 1 channel offset + 512 headers of 2 words + one table of 2 words.
    assert_eq!(enc.len(), 4 * (1 + 512 * 2 + 2));
    let w: Vec<u32> = enc.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
    for b in 0..512 {
        assert_eq!(w[1 + 2 * b], 1024, "block {b} table offset and bits");
        assert_eq!(w[2 + 2 * b], if b == 0 { 1024 } else { 1026 }, "block {b} values offset");
    }
}

#[test]
fn png_round_trips_8_and_16_bit_1_to_4_channels() {
    for dtype in [DataType::U8, DataType::U16] {
        for channels in 1..=4 {
            for shape in SHAPES.into_iter().chain([[64, 64, 2]]) {
                for level in [0u8, 1, 6, 9] {
                    for data in [
                        noise(dtype, channels, shape, 4),
                        smooth(1, [shape[0], shape[1], shape[2] * channels * dtype.size()]),
                    ] {
                        let o = EncodeOptions { png_level: level, ..EncodeOptions::default() };
                        let enc = encode_chunk(Encoding::Png, dtype, channels, shape, &data, &o, URL).unwrap();
                        let back = decode(Encoding::Png, dtype, channels, shape, None, &enc);
                        assert!(back == data, "png {dtype:?} x{channels} {shape:?} level {level}: round trip differs");
                        // Canonical layout: width sx, height sy*sz; colour type by channels.
                        let info = png::Decoder::new(&enc[..]).read_info().unwrap().info().clone();
                        assert_eq!((info.width as usize, info.height as usize), (shape[0], shape[1] * shape[2]));
                        assert_eq!(info.color_type.samples(), channels);
                        assert_eq!(info.bit_depth as usize, 8 * dtype.size());
                    }
                }
            }
        }
    }
    // Levels matter: smooth data compresses better at 9 than stored at 0.
    let data = smooth(1, [64, 64, 8]);
    let size = |level| {
        let o = EncodeOptions { png_level: level, ..EncodeOptions::default() };
        encode_chunk(Encoding::Png, DataType::U8, 1, [64, 64, 8], &data, &o, URL).unwrap().len()
    };
    assert!(size(9) < size(1) && size(1) < size(0), "{} {} {}", size(9), size(1), size(0));
}

fn jpeg_diff(a: &[u8], b: &[u8]) -> (u8, f64) {
    let max = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
    let mean = a.iter().zip(b).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.len() as f64;
    (max, mean)
}

#[test]
fn jpeg_round_trips_within_tolerance() {
    for channels in [1, 3] {
        for shape in [[13, 7, 5], [64, 64, 4], [16, 8, 4], [1, 1, 1], [256, 3, 2]] {
            let data = smooth(channels, shape);
            for quality in [85u8, 95, 100] {
                let o = EncodeOptions { jpeg_quality: quality, ..EncodeOptions::default() };
                let enc = encode_chunk(Encoding::Jpeg, DataType::U8, channels, shape, &data, &o, URL).unwrap();
                // Baseline sequential (SOF0), not progressive.
                assert!(enc.windows(2).any(|w| w == [0xff, 0xc0]) && !enc.windows(2).any(|w| w == [0xff, 0xc2]));
                let back = decode(Encoding::Jpeg, DataType::U8, channels, shape, None, &enc);
                let (max, mean) = jpeg_diff(&back, &data);
                let tol = if quality == 100 { 5 } else { 12 };
                assert!(
                    max <= tol && mean < 2.0,
                    "jpeg x{channels} {shape:?} q{quality}: max diff {max}, mean {mean:.2}"
                );
            }
        }
    }
}

#[test]
fn jpeg_too_tall_for_the_canonical_layout_uses_another_factorisation() {
    // sy*sz = 131072 > 65500: the image becomes 512 x 1024 (width sx*sy), same pixel order.
    let shape = [4, 128, 1024];
    let data = smooth(1, shape);
    let enc = encode_chunk(Encoding::Jpeg, DataType::U8, 1, shape, &data, &opts(None), URL).unwrap();
    let back = decode(Encoding::Jpeg, DataType::U8, 1, shape, None, &enc);
    let (max, _) = jpeg_diff(&back, &data);
    assert!(max <= 12, "max diff {max}");
    // A prime number of voxels above the limit has no factorisation: a clear error.
    let shape = [65_537, 1, 1];
    let e = encode_chunk(Encoding::Jpeg, DataType::U8, 1, shape, &vec![0; 65_537], &opts(None), URL).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains(URL) && e.message().contains("65537x1x1"), "{e}");
}

#[test]
fn gzip_every_level_round_trips() {
    let data = noise(DataType::U8, 1, [64, 64, 16], 9).iter().map(|b| b & 0x0f).collect::<Vec<_>>();
    let mut sizes = Vec::new();
    for level in [-3, 0, 1, 6, 9, 12, 40] {
        let z = gzip(&data, level);
        assert_eq!(&z[..2], &[0x1f, 0x8b]);
        assert_eq!(gunzip(&z, usize::MAX, URL).unwrap(), data, "level {level}");
        sizes.push(z.len());
    }
    assert!(sizes[2] <= sizes[0] + 64 && sizes[5] <= sizes[2], "{sizes:?}");
    assert_eq!(gunzip(&gzip(&[], 6), usize::MAX, URL).unwrap(), Vec::<u8>::new());
}

#[test]
fn errors_name_the_chunk_and_the_values() {
    let check = |r: cloudvolume::Result<Vec<u8>>, kind: ErrorKind, words: &[&str]| {
        let e = r.expect_err("should fail");
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.message().contains(URL), "{e}");
        for w in words {
            assert!(e.message().contains(w), "{e} (wanted {w})");
        }
    };
    let shape = [13, 7, 5];
    let n = 13 * 7 * 5;
    let d = Default::default();
    // Wrong length.
    check(
        encode_chunk(Encoding::Raw, DataType::U16, 2, shape, &[0; 10], &d, URL),
        ErrorKind::InvalidArgument,
        &["13x7x5", "1820 bytes", "got 10"],
    );
    check(
        encode_chunk(Encoding::Raw, DataType::U8, 1, [0, 7, 5], &[], &d, URL),
        ErrorKind::InvalidArgument,
        &["0x7x5"],
    );
    // Types and channels the encodings cannot hold.
    check(
        encode_chunk(Encoding::Jpeg, DataType::U16, 1, shape, &vec![0; 2 * n], &d, URL),
        ErrorKind::InvalidArgument,
        &["uint16"],
    );
    check(
        encode_chunk(Encoding::Jpeg, DataType::U8, 2, shape, &vec![0; 2 * n], &d, URL),
        ErrorKind::InvalidArgument,
        &["2"],
    );
    check(
        encode_chunk(Encoding::Png, DataType::U8, 5, shape, &vec![0; 5 * n], &d, URL),
        ErrorKind::InvalidArgument,
        &["5"],
    );
    check(
        encode_chunk(Encoding::Png, DataType::F32, 1, shape, &vec![0; 4 * n], &d, URL),
        ErrorKind::InvalidArgument,
        &["float32"],
    );
    check(
        encode_chunk(
            Encoding::CompressedSegmentation,
            DataType::I64,
            1,
            shape,
            &vec![0; 8 * n],
            &opts(Some([8, 8, 8])),
            URL,
        ),
        ErrorKind::InvalidArgument,
        &["int64"],
    );
    // Parameters.
    check(
        encode_chunk(Encoding::CompressedSegmentation, DataType::U32, 1, shape, &vec![0; 4 * n], &d, URL),
        ErrorKind::InvalidArgument,
        &["block size"],
    );
    check(
        encode_chunk(
            Encoding::CompressedSegmentation,
            DataType::U32,
            1,
            shape,
            &vec![0; 4 * n],
            &opts(Some([8, 0, 8])),
            URL,
        ),
        ErrorKind::InvalidArgument,
        &["[8, 0, 8]"],
    );
    let q = EncodeOptions { jpeg_quality: 101, ..Default::default() };
    check(
        encode_chunk(Encoding::Jpeg, DataType::U8, 1, shape, &vec![0; n], &q, URL),
        ErrorKind::InvalidArgument,
        &["101"],
    );
    let l = EncodeOptions { png_level: 10, ..Default::default() };
    check(
        encode_chunk(Encoding::Png, DataType::U8, 1, shape, &vec![0; n], &l, URL),
        ErrorKind::InvalidArgument,
        &["10"],
    );
    check(
        encode_chunk(Encoding::Compresso, DataType::U8, 1, shape, &vec![0; n], &d, URL),
        ErrorKind::Unsupported,
        &["compresso"],
    );
    // A block of 64x64x32 = 131072 voxels: fine with few labels, refused when it would need
    // 32 bits (more than 65536 distinct values).
    let big = [64, 64, 32];
    let few = labels(DataType::U64, 1, big, 5).iter().map(|b| b & 0x03).collect::<Vec<_>>();
    let o = opts(Some([64, 64, 32]));
    let enc = encode_chunk(Encoding::CompressedSegmentation, DataType::U64, 1, big, &few, &o, URL).unwrap();
    assert_eq!(decode(Encoding::CompressedSegmentation, DataType::U64, 1, big, Some([64, 64, 32]), &enc), few);
    let many = volume(DataType::U64, 1, big, |x, y, z, _| (x + 64 * y + 4096 * z) as u64);
    check(
        encode_chunk(Encoding::CompressedSegmentation, DataType::U64, 1, big, &many, &o, URL),
        ErrorKind::InvalidArgument,
        &["131072 distinct", "64x64x32"],
    );
}

// ------------------------------------------------------------------------------------------------
// Against the references

#[test]
fn cseg_is_byte_identical_to_tensorstore_and_jpeg_to_cloudvolume() {
    let Some(py) = python("the tensorstore comparison") else { return };
    let dir = scratch_dir("encode_ref");
    run_helper(&py, "write", &dir);
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut chunks = 0;
    for case in manifest["cseg"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let cdir = PathBuf::from(case["dir"].as_str().unwrap());
        let dtype = DataType::parse(case["data_type"].as_str().unwrap()).unwrap();
        let channels = case["num_channels"].as_u64().unwrap() as usize;
        let tri = |v: &Value| -> [i64; 3] { [0, 1, 2].map(|i| v[i].as_i64().unwrap()) };
        let size = tri(&case["size"]).map(|v| v as usize);
        let off = tri(&case["voxel_offset"]);
        let block = tri(&case["block_size"]);
        let vol = std::fs::read(cdir.join("volume.bin")).unwrap();
        let listed = case["chunks"].as_array().unwrap();
        assert!(!listed.is_empty(), "{name}: tensorstore wrote no chunk");
        for ch in listed {
            let lo = tri(&ch["lo"]);
            let hi = tri(&ch["hi"]);
            let rlo = [0, 1, 2].map(|d| (lo[d] - off[d]) as usize);
            let rhi = [0, 1, 2].map(|d| (hi[d] - off[d]) as usize);
            let cell = extract(&vol, size, channels, dtype.size(), rlo, rhi);
            let shape = [0, 1, 2].map(|d| rhi[d] - rlo[d]);
            let ours =
                encode_chunk(Encoding::CompressedSegmentation, dtype, channels, shape, &cell, &opts(Some(block)), URL)
                    .unwrap();
            let file = ch["file"].as_str().unwrap();
            let theirs = std::fs::read(cdir.join(file)).unwrap();
            if ours != theirs {
                let first = ours.iter().zip(&theirs).position(|(a, b)| a != b).unwrap_or(ours.len().min(theirs.len()));
                panic!(
                    "{name} {file}: our encoding ({} bytes) differs from tensorstore's ({} bytes) from byte {first} (word {})",
                    ours.len(),
                    theirs.len(),
                    first / 4
                );
            }
            chunks += 1;
        }
    }
    eprintln!("compressed_segmentation: {chunks} chunks byte-identical to tensorstore's");

    let mut identical = 0;
    for img in manifest["jpeg"].as_array().unwrap() {
        let name = img["name"].as_str().unwrap();
        let shape = [0, 1, 2].map(|i| img["shape"][i].as_u64().unwrap() as usize);
        let channels = img["num_channels"].as_u64().unwrap() as usize;
        let data = std::fs::read(img["data"].as_str().unwrap()).unwrap();
        let theirs = std::fs::read(img["jpeg"].as_str().unwrap()).unwrap();
        let ours =
            encode_chunk(Encoding::Jpeg, DataType::U8, channels, shape, &data, &EncodeOptions::default(), URL).unwrap();
        // Same settings (quality 85 tables, 4:4:4, baseline, standard Huffman tables): the
        // headers up to the scan are identical. The scans differ slightly (mozjpeg's
        // libjpeg-turbo 2.x base vs simplejpeg's 3.x), so compare fidelity, not bytes.
        let sos = |j: &[u8]| j.windows(2).position(|w| w == [0xff, 0xda]).expect("SOS marker");
        assert_eq!(&ours[..sos(&ours)], &theirs[..sos(&theirs)], "{name}: JPEG headers differ from simplejpeg's");
        let err = |j: &[u8]| {
            let back = decode(Encoding::Jpeg, DataType::U8, channels, shape, None, j);
            jpeg_diff(&back, &data).1
        };
        let (e_ours, e_theirs) = (err(&ours), err(&theirs));
        assert!(e_ours <= e_theirs * 1.1 + 0.05, "{name}: mean error {e_ours:.3}, simplejpeg's {e_theirs:.3}");
        let (a, b) = (ours.len() as f64, theirs.len() as f64);
        assert!((a - b).abs() <= 0.05 * b, "{name}: {a} bytes, simplejpeg's {b}");
        eprintln!("jpeg {name}: {a} bytes (simplejpeg {b}), mean error {e_ours:.3} (simplejpeg {e_theirs:.3})");
        if ours == theirs {
            identical += 1;
        }
    }
    eprintln!(
        "jpeg: {identical} of {} images byte-identical to simplejpeg's, the others as good",
        manifest["jpeg"].as_array().unwrap().len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One layer written from our encoders: info + every chunk + the expected voxels.
struct LayerCase {
    name: &'static str,
    encoding: Encoding,
    dtype: DataType,
    channels: usize,
    size: [usize; 3],
    offset: [i64; 3],
    chunk: [usize; 3],
    block: Option<[i64; 3]>,
    tolerance: f64,
    cloudvolume: bool,
}

fn write_layer(root: &Path, case: &LayerCase) -> Value {
    let dir = root.join(case.name);
    std::fs::create_dir_all(dir.join("s0")).unwrap();
    let item = case.dtype.size();
    let vol = match case.encoding {
        Encoding::Jpeg => smooth(case.channels, case.size),
        Encoding::CompressedSegmentation => labels(case.dtype, case.channels, case.size, 11),
        _ => noise(case.dtype, case.channels, case.size, 12),
    };
    let mut scale = json!({
        "key": "s0", "size": case.size, "voxel_offset": case.offset, "resolution": [4, 4, 40],
        "chunk_sizes": [case.chunk], "encoding": case.encoding.name(),
    });
    if let Some(b) = case.block {
        scale["compressed_segmentation_block_size"] = json!(b);
    }
    let seg = case.encoding == Encoding::CompressedSegmentation;
    let info = json!({
        "@type": "neuroglancer_multiscale_volume",
        "type": if seg { "segmentation" } else { "image" },
        "data_type": case.dtype.name(), "num_channels": case.channels, "scales": [scale],
    });
    std::fs::write(dir.join("info"), serde_json::to_vec(&info).unwrap()).unwrap();
    let o = EncodeOptions { cseg_block: case.block, ..EncodeOptions::default() };
    let grid = [0, 1, 2].map(|d| case.size[d].div_ceil(case.chunk[d]));
    for gz in 0..grid[2] {
        for gy in 0..grid[1] {
            for gx in 0..grid[0] {
                let g = [gx, gy, gz];
                let lo = [0, 1, 2].map(|d| g[d] * case.chunk[d]);
                let hi = [0, 1, 2].map(|d| ((g[d] + 1) * case.chunk[d]).min(case.size[d]));
                let cell = extract(&vol, case.size, case.channels, item, lo, hi);
                let shape = [0, 1, 2].map(|d| hi[d] - lo[d]);
                let key = format!(
                    "{}-{}_{}-{}_{}-{}",
                    lo[0] as i64 + case.offset[0],
                    hi[0] as i64 + case.offset[0],
                    lo[1] as i64 + case.offset[1],
                    hi[1] as i64 + case.offset[1],
                    lo[2] as i64 + case.offset[2],
                    hi[2] as i64 + case.offset[2]
                );
                let enc = encode_chunk(case.encoding, case.dtype, case.channels, shape, &cell, &o, &key).unwrap();
                std::fs::write(dir.join("s0").join(&key), enc).unwrap();
            }
        }
    }
    let expected = root.join(format!("{}.expected", case.name));
    std::fs::write(&expected, &vol).unwrap();
    json!({
        "name": case.name, "path": dir, "expected": expected, "data_type": case.dtype.name(),
        "num_channels": case.channels, "size": case.size, "cloudvolume": case.cloudvolume,
    })
}

#[test]
fn tensorstore_reads_our_chunks() {
    let Some(py) = python("the tensorstore comparison") else { return };
    let root = scratch_dir("encode_layers");
    let l = |name, encoding, dtype, channels, size, offset, chunk, block, tolerance, cloudvolume| LayerCase {
        name,
        encoding,
        dtype,
        channels,
        size,
        offset,
        chunk,
        block,
        tolerance,
        cloudvolume,
    };
    use DataType::*;
    use Encoding::*;
    let cases = [
        l("jpeg_gray", Jpeg, U8, 1, [37, 29, 11], [-5, 3, 0], [16, 16, 8], None, 12.0, true),
        l("jpeg_rgb", Jpeg, U8, 3, [40, 20, 6], [0, 0, 0], [16, 16, 4], None, 12.0, false),
        l("jpeg_tall", Jpeg, U8, 1, [4, 128, 1024], [0, 0, 0], [4, 128, 1024], None, 12.0, true),
        l("png_u8_1", Png, U8, 1, [21, 13, 7], [3, -2, 1], [8, 8, 8], None, 0.0, true),
        l("png_u8_2", Png, U8, 2, [21, 13, 7], [3, -2, 1], [8, 8, 8], None, 0.0, false),
        l("png_u8_3", Png, U8, 3, [21, 13, 7], [3, -2, 1], [8, 8, 8], None, 0.0, false),
        l("png_u8_4", Png, U8, 4, [21, 13, 7], [3, -2, 1], [8, 8, 8], None, 0.0, false),
        // cloud-volume 12.15.2 cannot read 16-bit PNG (pyspng 1.1.3 returns gray as gray+alpha),
        // tensorstore's chunks neither.
        l("png_u16_1", Png, U16, 1, [21, 13, 7], [3, -2, 1], [8, 8, 8], None, 0.0, false),
        l("png_u16_2", Png, U16, 2, [21, 13, 7], [3, -2, 1], [8, 8, 8], None, 0.0, false),
        l("png_u16_3", Png, U16, 3, [21, 13, 7], [3, -2, 1], [8, 8, 8], None, 0.0, false),
        l("png_u16_4", Png, U16, 4, [21, 13, 7], [3, -2, 1], [8, 8, 8], None, 0.0, false),
        l(
            "cseg_u64",
            CompressedSegmentation,
            U64,
            1,
            [37, 29, 11],
            [-5, 3, 0],
            [16, 16, 8],
            Some([8, 8, 8]),
            0.0,
            true,
        ),
        l(
            "cseg_u32_2ch",
            CompressedSegmentation,
            U32,
            2,
            [30, 20, 10],
            [1, 2, 3],
            [16, 16, 16],
            Some([4, 3, 5]),
            0.0,
            false,
        ),
        l("raw_i16_2ch", Raw, I16, 2, [21, 13, 7], [0, 0, 0], [8, 8, 8], None, 0.0, true),
        l("raw_f32", Raw, F32, 1, [21, 13, 7], [0, 0, 0], [8, 8, 8], None, 0.0, true),
    ];
    let manifest: Vec<Value> = cases.iter().map(|c| write_layer(&root, c)).collect();
    std::fs::write(root.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    run_helper(&py, "read", &root);
    let out = std::fs::read_to_string(root.join("results.json")).unwrap();
    let results: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad helper output {out}: {e}"));
    let mut failures = Vec::new();
    for (case, res) in cases.iter().zip(&results) {
        assert_eq!(res["name"], case.name);
        let readers: &[&str] = if case.cloudvolume { &["tensorstore", "cloudvolume"] } else { &["tensorstore"] };
        for reader in readers {
            let r = &res[*reader];
            match r["max_diff"].as_f64() {
                Some(d) if d <= case.tolerance => {}
                _ => failures.push(format!("{} read by {reader}: {r}", case.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&root);
}

// ------------------------------------------------------------------------------------------------
// Speed (manual)

#[test]
#[ignore = "timing; run with --release --ignored --nocapture"]
fn encode_speed() {
    let time = |name: &str, bytes: usize, f: &mut dyn FnMut() -> usize| {
        let mut out = f();
        let t = Instant::now();
        let mut n = 0;
        while t.elapsed().as_secs_f64() < 1.0 {
            out = f();
            n += 1;
        }
        let s = t.elapsed().as_secs_f64() / f64::from(n);
        eprintln!("{name:40} {:8.1} MB/s  ({} -> {} bytes)", bytes as f64 / s / 1e6, bytes, out);
    };
    // EM-like uint8 image: smooth plus noise.
    let shape = [256, 256, 64];
    let em = volume(DataType::U8, 1, shape, |x, y, z, _| {
        let v = 128.0 + 50.0 * (x as f64 / 13.0).sin() * (y as f64 / 17.0).cos() + 2.0 * z as f64;
        (v as u64).wrapping_add(mix((x + 256 * y + 65536 * z) as u64) % 24)
    });
    let n = em.len();
    time("raw uint8 EM + gzip level 6", n, &mut || gzip(&em, 6).len());
    time("raw uint8 EM + gzip level 1", n, &mut || gzip(&em, 1).len());
    let o = EncodeOptions::default();
    time("jpeg gray q85 (256x256x64)", n, &mut || {
        encode_chunk(Encoding::Jpeg, DataType::U8, 1, shape, &em, &o, URL).unwrap().len()
    });
    time("png gray level 6 (256x256x64)", n, &mut || {
        encode_chunk(Encoding::Png, DataType::U8, 1, shape, &em, &o, URL).unwrap().len()
    });
    let rgb = smooth(3, [256, 256, 16]);
    time("jpeg rgb 4:4:4 q85 (256x256x16x3)", rgb.len(), &mut || {
        encode_chunk(Encoding::Jpeg, DataType::U8, 3, [256, 256, 16], &rgb, &o, URL).unwrap().len()
    });
    let o1 = EncodeOptions { png_level: 1, ..EncodeOptions::default() };
    time("png gray level 1 (256x256x64)", n, &mut || {
        encode_chunk(Encoding::Png, DataType::U8, 1, shape, &em, &o1, URL).unwrap().len()
    });
    // Segmentation: blobs of ~6 voxels, uint64 ids, 128^3.
    let s = [128, 128, 128];
    let seg =
        volume(DataType::U64, 1, s, |x, y, z, _| mix(((x / 6) + 1000 * (y / 5) + 1_000_000 * (z / 4)) as u64 % 5000));
    let n = seg.len();
    let c = opts(Some([8, 8, 8]));
    time("cseg uint64 128^3 block 8^3 (labels)", n, &mut || {
        encode_chunk(Encoding::CompressedSegmentation, DataType::U64, 1, s, &seg, &c, URL).unwrap().len()
    });
    let big = volume(DataType::U64, 1, s, |x, y, z, _| mix(((x / 20) + 1000 * (y / 20) + 1_000_000 * (z / 10)) as u64));
    time("cseg uint64 128^3 block 8^3 (big labels)", n, &mut || {
        encode_chunk(Encoding::CompressedSegmentation, DataType::U64, 1, s, &big, &c, URL).unwrap().len()
    });
    let rnd = noise(DataType::U64, 1, s, 1);
    time("cseg uint64 128^3 block 8^3 (all distinct)", n, &mut || {
        encode_chunk(Encoding::CompressedSegmentation, DataType::U64, 1, s, &rnd, &c, URL).unwrap().len()
    });
    let seg32: Vec<u8> = seg.chunks_exact(8).flat_map(|v| v[..4].to_vec()).collect();
    time("cseg uint32 128^3 block 8^3 (labels)", seg32.len(), &mut || {
        encode_chunk(Encoding::CompressedSegmentation, DataType::U32, 1, s, &seg32, &c, URL).unwrap().len()
    });
    time("raw uint64 seg + gzip level 6", n, &mut || gzip(&seg, 6).len());
}
