//! Bad input of every kind gives the right status and a message naming what failed (the URL,
//! chunk key, member or value), never a panic (which the boundary would turn into
//! CV_ERR_INTERNAL). Most tests go through the extern "C" functions of `cloudvolume::ffi`, a few
//! through the Rust API.

mod support;

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudvolume::ffi::*;
use cloudvolume::{Bbox, ErrorKind, Options, Volume};
use serde_json::{json, Value};
use support::cabi::{expect_err, last_error, open, open_ok, status_name, Failure, Vol};
use support::files::{write_file, TempDir};
use support::layers::{chunk_name, elem_size, gzip, png_encode, scalar, Chunks, Layer, Pattern, Spec};

/// A uint8 layer of 16x16x8 voxels in four 8x8x8 chunks, offset (0,0,0).
fn small(chunks: Chunks) -> Layer {
    Layer::write(Spec::new("uint8", [16, 16, 8], [8, 8, 8]).chunks(chunks))
}

// ---------------------------------------------------------------------------------------------
// Malformed info files.

fn good_scale() -> Value {
    json!({"key": "s0", "size": [16, 16, 8], "voxel_offset": [0, 0, 0], "resolution": [4, 4, 40],
           "chunk_sizes": [[8, 8, 8]], "encoding": "raw"})
}

fn good_info() -> Value {
    json!({"type": "image", "data_type": "uint8", "num_channels": 1, "scales": [good_scale()]})
}

/// Open a layer whose info is `text`.
fn open_info_text(text: &str) -> (Layer, Result<Vol, Failure>) {
    let layer = small(Chunks::None);
    layer.write_info_text(text);
    let r = open(&layer.url(), None);
    (layer, r)
}

fn open_info(info: &Value) -> (Layer, Result<Vol, Failure>) {
    open_info_text(&info.to_string())
}

#[test]
fn info_that_is_not_json() {
    for text in ["{\"type\": \"image\", ", "not json at all", "", "\u{0}\u{1}\u{2}"] {
        let (layer, r) = open_info_text(text);
        let info_url = format!("{}/info", layer.url());
        expect_err(r, CV_ERR_DECODE, &[&info_url]);
    }
    for text in ["[1, 2, 3]", "42", "\"info\"", "null"] {
        let (layer, r) = open_info_text(text);
        expect_err(r, CV_ERR_DECODE, &[&layer.url()]);
    }
}

#[test]
fn info_missing_members() {
    for member in ["type", "data_type", "num_channels", "scales"] {
        let mut info = good_info();
        info.as_object_mut().unwrap().remove(member);
        let (layer, r) = open_info(&info);
        expect_err(r, CV_ERR_DECODE, &[&format!("\"{member}\""), &layer.url()]);
    }
    for member in ["key", "size", "resolution", "chunk_sizes", "encoding"] {
        let mut info = good_info();
        info["scales"][0].as_object_mut().unwrap().remove(member);
        let (layer, r) = open_info(&info);
        expect_err(r, CV_ERR_DECODE, &[&format!("\"{member}\""), &layer.url()]);
    }
    // voxel_offset is optional.
    let mut info = good_info();
    info["scales"][0].as_object_mut().unwrap().remove("voxel_offset");
    let (_layer, r) = open_info(&info);
    r.unwrap();
}

#[test]
fn info_members_of_the_wrong_type() {
    let top: &[(&str, Value)] = &[
        ("type", json!(5)),
        ("type", json!("volume")),
        ("num_channels", json!("1")),
        ("num_channels", json!(0)),
        ("num_channels", json!(-1)),
        ("num_channels", json!(1.5)),
        ("scales", json!({})),
        ("scales", json!([])),
        ("scales", json!("s0")),
    ];
    for (member, value) in top {
        let mut info = good_info();
        info[*member] = value.clone();
        let (layer, r) = open_info(&info);
        expect_err(r, CV_ERR_DECODE, &[member, &layer.url()]);
    }
    let scale: &[(&str, Value)] = &[
        ("key", json!(7)),
        ("key", json!("")),
        ("size", json!("16,16,8")),
        ("size", json!([16, 16, "8"])),
        ("size", json!([16.5, 16, 8])),
        ("size", json!([16, -1, 8])),
        ("voxel_offset", json!([0, 0])),
        ("voxel_offset", json!("origin")),
        ("resolution", json!("4,4,40")),
        ("resolution", json!([4, 4])),
        ("resolution", json!([4, "4", 40])),
        ("chunk_sizes", json!([8, 8, 8])),
        ("chunk_sizes", json!([])),
        ("chunk_sizes", json!([[8, 8]])),
        ("chunk_sizes", json!("8")),
        ("sharding", json!("yes")),
    ];
    for (member, value) in scale {
        let mut info = good_info();
        info["scales"][0][*member] = value.clone();
        let (layer, r) = open_info(&info);
        expect_err(r, CV_ERR_DECODE, &[member, &layer.url()]);
    }
    // A scale that is not an object.
    let mut info = good_info();
    info["scales"] = json!([3]);
    let (_layer, r) = open_info(&info);
    expect_err(r, CV_ERR_DECODE, &["scale"]);
    // data_type and encoding of the wrong JSON type: corrupt or unsupported, never a panic.
    for (path, value) in [("data_type", json!(8)), ("encoding", json!(1))] {
        let mut info = good_info();
        if path == "data_type" {
            info[path] = value;
        } else {
            info["scales"][0][path] = value;
        }
        let (_layer, r) = open_info(&info);
        let (st, msg) = r.err().expect("must fail");
        assert!(st == CV_ERR_DECODE || st == CV_ERR_UNSUPPORTED, "{path}: {} {msg}", status_name(st));
        assert!(msg.contains(path), "{msg}");
    }
}

#[test]
fn info_size_with_two_elements() {
    let mut info = good_info();
    info["scales"][0]["size"] = json!([16, 16]);
    let (layer, r) = open_info(&info);
    expect_err(r, CV_ERR_DECODE, &["\"size\"", "[16,16]", &layer.url()]);
}

#[test]
fn info_zero_chunk_size() {
    for cs in [json!([[0, 8, 8]]), json!([[8, 8, 0]]), json!([[8, -8, 8]])] {
        let mut info = good_info();
        info["scales"][0]["chunk_sizes"] = cs;
        let (layer, r) = open_info(&info);
        expect_err(r, CV_ERR_DECODE, &["chunk_sizes", &layer.url()]);
    }
}

#[test]
fn info_bad_resolution() {
    for res in [json!([4, -4, 40]), json!([0, 4, 40]), json!([4, 4, -0.5])] {
        let mut info = good_info();
        info["scales"][0]["resolution"] = res;
        let (layer, r) = open_info(&info);
        expect_err(r, CV_ERR_DECODE, &["resolution", &layer.url()]);
    }
    // Floats and integers both parse.
    let mut info = good_info();
    info["scales"][0]["resolution"] = json!([4.5, 4, 40.0]);
    let (_layer, r) = open_info(&info);
    let v = r.unwrap();
    let mut res = [0f64; 3];
    // SAFETY: valid handle and output.
    assert_eq!(unsafe { cv_resolution(v.0, 0, res.as_mut_ptr()) }, CV_OK);
    assert_eq!(res, [4.5, 4.0, 40.0]);
}

/// One scale in an encoding this library cannot read (crackle, as recent pipelines write it)
/// does not block the others: mip 0 reads, mip 1 fails naming crackle, writes to it too.
#[test]
fn one_unreadable_mip_does_not_block_the_layer() {
    let layer = Layer::write(Spec::new("uint8", [16, 16, 8], [8, 8, 8]).mips(2));
    let mut info = layer.spec.info();
    info["scales"][1]["encoding"] = json!("crackle");
    layer.write_info_text(&info.to_string());
    let vol = open(&layer.url(), None).unwrap_or_else(|(s, m)| panic!("{} {m}", status_name(s)));
    assert_eq!(vol.read_ok(0, [0, 0, 0], [16, 16, 8]), layer.expected(0, [0, 0, 0], [16, 16, 8], 0.0));
    let (lo, hi) = layer.spec.bounds(1);
    expect_err(vol.read(1, lo, hi), CV_ERR_UNSUPPORTED, &["crackle", "mip 1"]);
    let v = Volume::open(&layer.url(), Options::default()).unwrap();
    let buf = vec![0u8; v.cutout_len(&Bbox::new(lo, hi)).unwrap()];
    let e = v.write_from(1, &Bbox::new(lo, hi), &buf).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("crackle"), "{e}");
}

#[test]
fn info_unknown_encoding_and_data_type() {
    // An encoding without a name here: the layer opens, cv_encoding says CV_ENCODING_OTHER,
    // and reads of that mip fail naming the encoding and the layer.
    let mut info = good_info();
    info["scales"][0]["encoding"] = json!("webp");
    let (layer, r) = open_info(&info);
    let vol = r.unwrap_or_else(|(s, m)| panic!("an unknown encoding refused at open: {} {m}", status_name(s)));
    let mut code = 0;
    // SAFETY: a live handle and a writable out.
    assert_eq!(unsafe { cv_encoding(vol.0, 0, &mut code) }, CV_OK);
    assert_eq!(code, CV_ENCODING_OTHER);
    expect_err(vol.read(0, [0, 0, 0], [8, 8, 8]), CV_ERR_UNSUPPORTED, &["webp", "mip 0", &layer.url()]);

    let mut info = good_info();
    info["data_type"] = json!("complex128");
    let (layer, r) = open_info(&info);
    expect_err(r, CV_ERR_UNSUPPORTED, &["complex128", &layer.url()]);

    let mut info = good_info();
    info["@type"] = json!("neuroglancer_skeletons");
    let (_layer, r) = open_info(&info);
    expect_err(r, CV_ERR_UNSUPPORTED, &["neuroglancer_skeletons"]);

    // Case-insensitive names are fine.
    let mut info = good_info();
    info["scales"][0]["encoding"] = json!("RAW");
    info["data_type"] = json!("UInt8");
    info["@type"] = json!("neuroglancer_multiscale_volume");
    let (_layer, r) = open_info(&info);
    r.unwrap();
}

#[test]
fn info_encoding_that_cannot_hold_the_type() {
    let cases: &[(&str, u32, &str)] = &[
        ("uint16", 1, "jpeg"),
        ("uint8", 2, "jpeg"),
        ("float32", 1, "png"),
        ("uint8", 5, "png"),
        ("uint8", 1, "compressed_segmentation"),
        ("int32", 1, "compressed_segmentation"),
    ];
    for &(dt, nc, enc) in cases {
        let mut info = good_info();
        info["data_type"] = json!(dt);
        info["num_channels"] = json!(nc);
        info["scales"][0]["encoding"] = json!(enc);
        if enc == "compressed_segmentation" {
            info["scales"][0]["compressed_segmentation_block_size"] = json!([8, 8, 8]);
        }
        let (layer, r) = open_info(&info);
        expect_err(r, CV_ERR_DECODE, &[enc, dt, &layer.url()]);
    }
}

#[test]
fn info_compressed_segmentation_without_block_size() {
    let mut info = good_info();
    info["data_type"] = json!("uint32");
    info["scales"][0]["encoding"] = json!("compressed_segmentation");
    let (layer, r) = open_info(&info);
    expect_err(r, CV_ERR_DECODE, &["compressed_segmentation_block_size", &layer.url()]);
    info["scales"][0]["compressed_segmentation_block_size"] = json!([8, 0, 8]);
    let (_layer, r) = open_info(&info);
    expect_err(r, CV_ERR_DECODE, &["compressed_segmentation_block_size"]);
}

#[test]
fn sharded_scale_reads_are_unsupported() {
    let mut info = good_info();
    info["scales"][0]["sharding"] = json!({"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0,
        "hash": "identity", "minishard_bits": 0, "shard_bits": 0,
        "minishard_index_encoding": "raw", "data_encoding": "raw"});
    let (layer, r) = open_info(&info);
    let v = r.expect("a sharded layer opens");
    match v.read(0, [0, 0, 0], [4, 4, 4]) {
        Err((CV_ERR_UNSUPPORTED, msg)) => {
            assert!(msg.contains("shard") && msg.contains(&layer.url()), "{msg}");
            let v = open_ok(&layer.url(), Some(r#"{"fill_missing": true}"#));
            expect_err(v.read(0, [0, 0, 0], [16, 16, 8]), CV_ERR_UNSUPPORTED, &["shard"]);
        }
        // Once sharded reads exist: the layer has no shard files, so its chunks are missing.
        other => {
            if let Err((st, msg)) = other {
                assert_eq!(st, CV_ERR_NOT_FOUND, "{} {msg}", status_name(st));
            }
            let v = open_ok(&layer.url(), Some(r#"{"fill_missing": true, "background_color": 5}"#));
            assert_eq!(v.read_ok(0, [0, 0, 0], [16, 16, 8]), vec![5u8; 16 * 16 * 8]);
        }
    }
}

#[test]
fn compresso_and_jxl_reads_are_unsupported() {
    for enc in ["compresso", "jxl"] {
        let mut info = good_info();
        info["scales"][0]["encoding"] = json!(enc);
        let (_layer, r) = open_info(&info);
        let v = r.expect("opens");
        expect_err(v.read(0, [0, 0, 0], [4, 4, 4]), CV_ERR_UNSUPPORTED, &[enc]);
    }
}

#[test]
fn gzipped_info_and_empty_size_do_not_panic() {
    // cloud-volume's `.gz` suffix also applies to the info.
    let layer = small(Chunks::Raw);
    std::fs::remove_file(layer.path().join("info")).unwrap();
    write_file(&layer.path().join("info.gz"), &gzip(layer.spec.info().to_string().as_bytes()));
    let v = open_ok(&layer.url(), None);
    assert_eq!(v.read_ok(0, [0, 0, 0], [16, 16, 8]), layer.expected(0, [0, 0, 0], [16, 16, 8], 0.0));
    // A corrupt gzipped info.
    write_file(&layer.path().join("info.gz"), b"\x1f\x8b\x08\x00garbage garbage garbage");
    expect_err(open(&layer.url(), None), CV_ERR_DECODE, &["info"]);

    // A scale of size 0: nothing is inside it.
    let mut info = good_info();
    info["scales"][0]["size"] = json!([0, 16, 8]);
    let (_layer, r) = open_info(&info);
    if let Ok(v) = r {
        expect_err(v.read(0, [0, 0, 0], [1, 1, 1]), CV_ERR_OUT_OF_BOUNDS, &["bounds"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Corrupt chunks. The layer is 16x16x8 uint8 in four 8x8x8 chunks; cell 0 is spoiled, the box
// over the whole volume must fail naming it, and a box beside it must still read.

const ALL: ([i64; 3], [i64; 3]) = ([0, 0, 0], [16, 16, 8]);
const CELL0: ([i64; 3], [i64; 3]) = ([0, 0, 0], [8, 8, 8]);
const BESIDE: ([i64; 3], [i64; 3]) = ([8, 8, 0], [16, 16, 8]);

fn spoil(layer: &Layer, suffix: &str, bytes: &[u8], want: cv_status, needles: &[&str]) -> String {
    layer.put_chunk(0, CELL0.0, CELL0.1, suffix, bytes);
    let v = open_ok(&layer.url(), None);
    let key = chunk_name(CELL0.0, CELL0.1);
    let mut all: Vec<&str> = vec![&key];
    all.extend(needles);
    let msg = expect_err(v.read(0, ALL.0, ALL.1), want, &all);
    let (lo, hi) = BESIDE;
    assert_eq!(v.read_ok(0, lo, hi), layer.expected(0, lo, hi, 0.0), "read beside the spoiled chunk");
    msg
}

#[test]
fn truncated_and_oversized_raw_chunks() {
    let layer = small(Chunks::Raw);
    let good = layer.planar(CELL0.0, CELL0.1);
    assert_eq!(good.len(), 512);
    spoil(&layer, "", &good[..500], CV_ERR_DECODE, &["500", "512"]);
    let mut big = good.clone();
    big.extend([1, 2, 3]);
    spoil(&layer, "", &big, CV_ERR_DECODE, &["515", "512"]);
    spoil(&layer, "", &[7], CV_ERR_DECODE, &["512"]);
    // The same behind gzip.
    spoil(&layer, ".gz", &gzip(&good[..100]), CV_ERR_DECODE, &["100", "512"]);
    // And a correct gzipped chunk reads.
    layer.put_chunk(0, CELL0.0, CELL0.1, ".gz", &gzip(&good));
    let v = open_ok(&layer.url(), None);
    assert_eq!(v.read_ok(0, ALL.0, ALL.1), layer.expected(0, ALL.0, ALL.1, 0.0));
}

#[test]
fn corrupt_gzip_chunks() {
    let layer = small(Chunks::RawGz);
    let good = gzip(&layer.planar(CELL0.0, CELL0.1));
    // Garbage with a .gz suffix.
    spoil(&layer, ".gz", b"this is not gzip at all, just text", CV_ERR_DECODE, &["gzip"]);
    // A gzip header followed by noise.
    let mut noise = good[..10].to_vec();
    noise.extend((0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8));
    spoil(&layer, ".gz", &noise, CV_ERR_DECODE, &["gzip"]);
    // Truncated: half, and all but the trailer.
    spoil(&layer, ".gz", &good[..good.len() / 2], CV_ERR_DECODE, &["gzip"]);
    spoil(&layer, ".gz", &good[..good.len() - 8], CV_ERR_DECODE, &[]);
    // A flipped bit in the deflate data (the CRC catches what inflation does not).
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    spoil(&layer, ".gz", &flipped, CV_ERR_DECODE, &[]);
    // A trailer that lies about the size, both ways.
    for isize in [0u32, 17, 0x7fff_ffff, 0xffff_ffff] {
        let mut lying = good.clone();
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&isize.to_le_bytes());
        spoil(&layer, ".gz", &lying, CV_ERR_DECODE, &[]);
    }
    // Only the 10-byte header.
    spoil(&layer, ".gz", &good[..10], CV_ERR_DECODE, &["gzip"]);
}

#[test]
fn corrupt_jpeg_chunks() {
    let layer = Layer::write(Spec::new("uint8", [16, 16, 8], [8, 8, 8]).chunks(Chunks::CorruptJpeg));
    let v = open_ok(&layer.url(), None);
    let key = chunk_name(CELL0.0, CELL0.1);
    expect_err(v.read(0, CELL0.0, CELL0.1), CV_ERR_DECODE, &[&key, "JPEG"]);
    expect_err(v.read(0, ALL.0, ALL.1), CV_ERR_DECODE, &["JPEG"]);
    for bytes in [&b"abc"[..], &[0xFF, 0xD8][..], &[0xFF, 0xD8, 0xFF, 0xD9][..], &[0u8; 64][..]] {
        layer.put_chunk(0, CELL0.0, CELL0.1, "", bytes);
        expect_err(v.read(0, CELL0.0, CELL0.1), CV_ERR_DECODE, &[&key]);
    }
}

#[test]
fn png_chunks_read_and_corrupt_ones_fail() {
    // Valid PNG layers: 8-bit gray, 8-bit RGB, 16-bit gray+alpha, with an edge chunk.
    for (dt, nc) in [("uint8", 1), ("uint8", 3), ("uint16", 2), ("uint16", 4)] {
        let spec = Spec::new(dt, [20, 12, 9], [8, 8, 4]).channels(nc).offset([-4, 3, 0]).chunks(Chunks::Png);
        let layer = Layer::write(spec);
        let v = open_ok(&layer.url(), None);
        let (lo, hi) = layer.spec.bounds(0);
        assert_eq!(v.read_ok(0, lo, hi), layer.expected(0, lo, hi, 0.0), "png {dt} x{nc}");
        let (a, b) = ([-1, 5, 2], [13, 14, 7]);
        assert_eq!(v.read_ok(0, a, b), layer.expected(0, a, b, 0.0), "png {dt} x{nc} box");
    }

    let layer = Layer::write(Spec::new("uint8", [16, 16, 8], [8, 8, 8]).chunks(Chunks::Png));
    let good = layer.png(CELL0.0, CELL0.1);
    let planar = layer.planar(CELL0.0, CELL0.1);
    // Any width x height with the right product reads (tensorstore < 0.1.72 wrote them so).
    layer.put_chunk(0, CELL0.0, CELL0.1, "", &png_encode(&planar, 64, 8, 1, 1));
    let v = open_ok(&layer.url(), None);
    assert_eq!(v.read_ok(0, ALL.0, ALL.1), layer.expected(0, ALL.0, ALL.1, 0.0));

    // Garbage, a signature and garbage, truncated, a corrupted data byte.
    spoil(&layer, "", b"definitely not a png", CV_ERR_DECODE, &["PNG"]);
    let mut sig = good[..8].to_vec();
    sig.extend([0u8; 40]);
    spoil(&layer, "", &sig, CV_ERR_DECODE, &["PNG"]);
    spoil(&layer, "", &good[..good.len() / 2], CV_ERR_DECODE, &["PNG"]);
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 20] ^= 0xff;
    spoil(&layer, "", &flipped, CV_ERR_DECODE, &[]);
    // Wrong dimensions: 10 x 10 pixels for 512 voxels.
    spoil(&layer, "", &png_encode(&planar[..100], 10, 10, 1, 1), CV_ERR_DECODE, &["10x10", "512"]);
    // Wrong channel count: RGB for a 1-channel layer.
    let rgb: Vec<u8> = planar.iter().flat_map(|&p| [p, p, p]).collect();
    spoil(&layer, "", &png_encode(&rgb, 8, 64, 3, 1), CV_ERR_DECODE, &["3 channel"]);
    // Wrong depth: 16-bit samples for a uint8 layer.
    let wide: Vec<u8> = planar.iter().flat_map(|&p| [p, 0]).collect();
    spoil(&layer, "", &png_encode(&wide, 8, 64, 1, 2), CV_ERR_DECODE, &["16 bits"]);
}

fn check_cseg_layers(cases: Vec<Spec>) {
    for spec in cases {
        let layer = Layer::write(spec);
        let v = open_ok(&layer.url(), None);
        let (lo, hi) = layer.spec.bounds(0);
        assert_eq!(v.read_ok(0, lo, hi), layer.expected(0, lo, hi, 0.0), "{:?}", layer.spec);
        let a = [lo[0] + 1, lo[1] + 2, lo[2] + 1];
        let b = [hi[0] - 2, hi[1] - 1, hi[2] - 1];
        assert_eq!(v.read_ok(0, a, b), layer.expected(0, a, b, 0.0), "{:?}", layer.spec);
    }
}

#[test]
fn compressed_segmentation_chunks_read() {
    // Chunks one block wide in x (several blocks in y and z, partial blocks at the edges).
    check_cseg_layers(vec![
        Spec::new("uint32", [20, 12, 9], [8, 8, 4]).offset([5, -6, 7]).chunks(Chunks::Cseg),
        Spec::new("uint64", [20, 12, 9], [8, 16, 8]).pattern(Pattern::Labels).chunks(Chunks::CsegGz),
        Spec::new("uint64", [8, 13, 10], [8, 13, 10]).block([8, 3, 5]).channels(2).chunks(Chunks::Cseg),
        Spec::new("uint32", [7, 9, 5], [7, 9, 5]).pattern(Pattern::Labels).channels(3).chunks(Chunks::Cseg),
    ]);
}

#[test]
fn compressed_segmentation_chunks_several_blocks_wide() {
    // Chunks with more than one block along x.
    check_cseg_layers(vec![
        Spec::new("uint64", [20, 12, 9], [16, 8, 8]).pattern(Pattern::Labels).chunks(Chunks::CsegGz),
        Spec::new("uint64", [19, 13, 10], [19, 13, 10]).block([4, 3, 5]).channels(2).chunks(Chunks::Cseg),
        Spec::new("uint32", [17, 9, 5], [17, 9, 5]).pattern(Pattern::Labels).channels(3).chunks(Chunks::Cseg),
    ]);
}

#[test]
fn compressed_segmentation_with_offsets_out_of_range() {
    // 16x16x8 uint32 in 8x8x8 chunks, one 8x8x8 block per chunk.
    let layer = Layer::write(Spec::new("uint32", [16, 16, 8], [8, 8, 8]).chunks(Chunks::Cseg));
    let good = layer.cseg(CELL0.0, CELL0.1);
    let words: Vec<u32> = good.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(words[0], 1, "one channel: the first offset is 1");
    let bits = words[1] >> 24;
    assert!(bits >= 2, "gradient blocks need several bits");
    let to_bytes = |w: &[u32]| -> Vec<u8> { w.iter().flat_map(|v| v.to_le_bytes()).collect() };
    let with = |i: usize, v: u32| -> Vec<u8> {
        let mut w = words.clone();
        w[i] = v;
        to_bytes(&w)
    };
    let n = words.len() as u32;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("channel offset past the end", with(0, n + 100), "channel"),
        ("channel offset inside the header", with(0, 0), "channel"),
        ("table offset past the end", with(1, (bits << 24) | 0x00ff_fff0), "table"),
        ("values offset past the end", with(2, n - 3), "values"),
        ("bit width 3", with(1, (3 << 24) | (words[1] & 0xff_ffff)), "bit"),
        ("bit width 64", with(1, (64 << 24) | (words[1] & 0xff_ffff)), "bit"),
        ("table of one entry at the last word", with(1, (bits << 24) | (n - 2)), "index"),
        ("headers only", to_bytes(&words[..2]), ""),
        ("no channel data", to_bytes(&words[..1]), ""),
        ("length not a multiple of 4", good[..good.len() - 1].to_vec(), "multiple of 4"),
        ("a lone byte", vec![1], ""),
    ];
    for (what, bytes, needle) in cases {
        let msg = spoil(&layer, "", &bytes, CV_ERR_DECODE, &[needle]);
        println!("{what}: {msg}");
    }
    // uint64 table entries need two words: a table starting at the last word is too short.
    let layer = Layer::write(Spec::new("uint64", [16, 16, 8], [8, 8, 8]).chunks(Chunks::Cseg));
    let mut w: Vec<u32> =
        layer.cseg(CELL0.0, CELL0.1).chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
    let n = w.len() as u32;
    w[1] = (w[1] & 0xff00_0000) | (n - 2);
    spoil(&layer, "", &to_bytes(&w), CV_ERR_DECODE, &[]);
}

#[test]
fn compressed_segmentation_block_larger_than_the_chunk() {
    // A block bigger than the chunk is valid: one partial block per chunk.
    check_cseg_layers(vec![Spec::new("uint32", [16, 16, 8], [8, 8, 8])
        .block([64, 64, 64])
        .pattern(Pattern::Labels)
        .chunks(Chunks::Cseg)]);
    // An absurd block size (more than 2^32 voxels per block) is refused when the info is read,
    // naming the member; never a panic.
    let mut info = good_info();
    info["data_type"] = json!("uint32");
    info["scales"][0]["encoding"] = json!("compressed_segmentation");
    info["scales"][0]["compressed_segmentation_block_size"] = json!([1u64 << 21, 1u64 << 21, 1u64 << 22]);
    let (layer, r) = open_info(&info);
    drop(r);
    match open(&layer.url(), None) {
        Ok(_) => panic!("an info with a 2^64-voxel block was accepted"),
        Err((st, msg)) => {
            assert_eq!(st, CV_ERR_DECODE, "{} {msg}", status_name(st));
            assert!(msg.contains("compressed_segmentation_block_size"), "{msg}");
        }
    }
}

#[test]
fn directory_where_a_chunk_should_be() {
    let layer = small(Chunks::Raw);
    layer.remove_chunk(0, CELL0.0, CELL0.1);
    std::fs::create_dir_all(layer.chunk_path(0, CELL0.0, CELL0.1)).unwrap();
    let v = open_ok(&layer.url(), None);
    expect_err(v.read(0, ALL.0, ALL.1), CV_ERR_NOT_FOUND, &[&chunk_name(CELL0.0, CELL0.1)]);
    let v = open_ok(&layer.url(), Some(r#"{"fill_missing": true}"#));
    assert_eq!(v.read_ok(0, ALL.0, ALL.1), layer.expected_with(0, ALL.0, ALL.1, 0.0, &[CELL0]));
}

#[test]
fn zero_byte_chunks_count_as_missing() {
    for suffix in ["", ".gz"] {
        let layer = small(Chunks::Raw);
        layer.put_chunk(0, CELL0.0, CELL0.1, suffix, b"");
        let v = open_ok(&layer.url(), None);
        expect_err(v.read(0, ALL.0, ALL.1), CV_ERR_NOT_FOUND, &[&chunk_name(CELL0.0, CELL0.1)]);
        let v = open_ok(&layer.url(), Some(r#"{"fill_missing": true, "background_color": 3}"#));
        let got = v.read_ok(0, ALL.0, ALL.1);
        assert_eq!(got, layer.expected_with(0, ALL.0, ALL.1, 3.0, &[CELL0]));
    }
}

#[test]
fn missing_chunk_without_and_with_fill_missing() {
    let layer = small(Chunks::Raw);
    layer.remove_chunk(0, CELL0.0, CELL0.1);
    let v = open_ok(&layer.url(), None);
    let key = format!("{}/{}", layer.url(), layer.chunk_key(0, CELL0.0, CELL0.1));
    expect_err(v.read(0, ALL.0, ALL.1), CV_ERR_NOT_FOUND, &[&key, "fill_missing"]);
    let v = open_ok(&layer.url(), Some(r#"{"fill_missing": true}"#));
    assert_eq!(v.read_ok(0, ALL.0, ALL.1), layer.expected_with(0, ALL.0, ALL.1, 0.0, &[CELL0]));
}

// ---------------------------------------------------------------------------------------------
// Boxes, buffers and options.

#[test]
fn boxes_outside_the_bounds_or_inverted() {
    let layer = Layer::write(Spec::new("int16", [20, 12, 9], [8, 8, 4]).offset([-5, 3, 100]));
    let v = open_ok(&layer.url(), None);
    let (lo, hi) = layer.spec.bounds(0);
    assert_eq!((lo, hi), ([-5, 3, 100], [15, 15, 109]));
    assert_eq!(v.read_ok(0, lo, hi), layer.expected(0, lo, hi, 0.0));
    // Partly outside on each side of each axis, and wholly outside.
    for d in 0..3 {
        let mut a = lo;
        a[d] -= 1;
        expect_err(v.read(0, a, hi), CV_ERR_OUT_OF_BOUNDS, &["bounds", &layer.url()]);
        let mut b = hi;
        b[d] += 1;
        expect_err(v.read(0, lo, b), CV_ERR_OUT_OF_BOUNDS, &["bounds"]);
    }
    expect_err(v.read(0, [0, 0, 0], [4, 4, 4]), CV_ERR_OUT_OF_BOUNDS, &["[0,0,0]..[4,4,4]"]);
    // Inverted and empty boxes name the box.
    expect_err(v.read_len(0, [5, 5, 101], [0, 10, 105], Some(10)), CV_ERR_INVALID_ARGUMENT, &["[5,5,101]..[0,10,105]"]);
    expect_err(v.read_len(0, [0, 5, 101], [0, 10, 105], Some(0)), CV_ERR_INVALID_ARGUMENT, &["empty"]);
    expect_err(v.read_len(0, [0, 5, 101], [1, 10, 100], Some(10)), CV_ERR_INVALID_ARGUMENT, &["inverted"]);
    // The same through the Rust API.
    let vol = Volume::open(&layer.url(), Options::default()).unwrap();
    let e = vol.cutout(0, &Bbox::new([0, 0, 100], [4, 4, 200])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfBounds, "{e}");
    let e = vol.cutout(0, &Bbox::new([4, 4, 104], [0, 4, 105])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[test]
fn extreme_boxes_are_refused_not_panics() {
    let layer = small(Chunks::Raw);
    let mut failed = Vec::new();
    for opts in [None, Some(r#"{"bounded": false, "fill_missing": true}"#)] {
        let v = open_ok(&layer.url(), opts);
        let big = 1i64 << 62;
        for (lo, hi) in [
            ([-big, 0, 0], [big, 1, 1]),
            ([i64::MIN, 0, 0], [i64::MAX, 1, 1]),
            ([0, 0, 0], [big, big, big]),
            ([i64::MIN, i64::MIN, i64::MIN], [0, 0, 0]),
        ] {
            let (st, msg) = v.read_len(0, lo, hi, Some(16)).expect_err("must fail");
            if !(st == CV_ERR_INVALID_ARGUMENT || st == CV_ERR_OUT_OF_BOUNDS) {
                failed.push(format!("cv_cutout_into {lo:?}..{hi:?} ({opts:?}): {} {msg}", status_name(st)));
            }
            // cv_cutout_len: the exact byte count when it fits in a size_t, else a refusal.
            let exact: Option<u128> =
                (0..3).try_fold(1u128, |acc, d| acc.checked_mul((hi[d] as i128 - lo[d] as i128) as u128));
            let mut n = 0usize;
            // SAFETY: valid handle and pointers.
            let st = unsafe { cv_cutout_len(v.0, lo.as_ptr(), hi.as_ptr(), &mut n) };
            let fine = match st {
                CV_OK => Some(n as u128) == exact,
                CV_ERR_INVALID_ARGUMENT => true,
                _ => false,
            };
            if !fine {
                failed.push(format!(
                    "cv_cutout_len {lo:?}..{hi:?} (exactly {exact:?} bytes): {} {n} {}",
                    status_name(st),
                    last_error()
                ));
            }
        }
    }
    assert!(failed.is_empty(), "extreme boxes:\n{}", failed.join("\n"));
}

#[test]
fn layer_near_the_end_of_the_supported_coordinate_range() {
    // Offsets and sizes up to 2^60 are accepted, and reads near the top do not overflow.
    let top = 1i64 << 60;
    let mut info = good_info();
    info["scales"][0]["voxel_offset"] = json!([top - 16, 0, 0]);
    let (layer, r) = open_info(&info);
    drop(r);
    let v = open_ok(&layer.url(), Some(r#"{"fill_missing": true, "background_color": 4}"#));
    let got = v.read(0, [top - 4, 0, 0], [top, 2, 2]);
    assert_eq!(got, Ok(vec![4u8; 16]));
    let v = open_ok(&layer.url(), Some(r#"{"bounded": false, "background_color": 6}"#));
    assert_eq!(v.read(0, [top, 0, 0], [top + 4, 2, 2]), Ok(vec![6u8; 16]));
    let v = open_ok(&layer.url(), Some(r#"{"bounded": false, "background_color": 6}"#));
    assert_eq!(v.read(0, [i64::MAX - 4, 0, 0], [i64::MAX, 2, 2]), Ok(vec![6u8; 16]));
}

#[test]
fn layer_of_huge_size_reads_near_its_end() {
    // A scale of size 2^60 along x: reading its last voxels gives the background.
    let size = 1i64 << 60;
    let mut info = good_info();
    info["scales"][0]["size"] = json!([size, 16, 8]);
    let (layer, r) = open_info(&info);
    drop(r);
    let v = open_ok(&layer.url(), Some(r#"{"fill_missing": true, "background_color": 4}"#));
    assert_eq!(v.read(0, [0, 0, 0], [2, 2, 2]), Ok(vec![4u8; 8]), "first voxels");
    assert_eq!(v.read(0, [size - 4, 0, 0], [size, 2, 2]), Ok(vec![4u8; 16]), "last voxels");
}

#[test]
fn extents_past_2_pow_60_are_refused_naming_the_member() {
    for (member, value) in [("size", json!([i64::MAX - 4, 16, 8])), ("voxel_offset", json!([i64::MAX - 24, 0, 0]))] {
        let mut info = good_info();
        info["scales"][0][member] = value;
        let (layer, r) = open_info(&info);
        drop(r);
        match open(&layer.url(), None) {
            Ok(_) => panic!("{member} past 2^60 was accepted"),
            Err((st, msg)) => {
                assert_eq!(st, CV_ERR_DECODE, "{} {msg}", status_name(st));
                assert!(msg.contains(member), "{msg}");
            }
        }
    }
}

#[test]
fn wrong_buffer_length() {
    let layer = Layer::write(Spec::new("uint32", [16, 16, 8], [8, 8, 8]).channels(2));
    let v = open_ok(&layer.url(), None);
    let (lo, hi) = ([1, 2, 3], [5, 6, 7]);
    let want = 4 * 4 * 4 * 2 * 4;
    for len in [0, 1, want - 1, want + 1, want * 2] {
        let msg = expect_err(v.read_len(0, lo, hi, Some(len)), CV_ERR_INVALID_ARGUMENT, &[&want.to_string()]);
        assert!(msg.contains(&format!("{len} bytes")), "actual size missing: {msg}");
    }
    assert_eq!(v.read_len(0, lo, hi, Some(want)).unwrap(), layer.expected(0, lo, hi, 0.0));
    // The Rust API says the same.
    let vol = Volume::open(&layer.url(), Options::default()).unwrap();
    let mut buf = vec![0u8; want + 4];
    let e = vol.cutout_into(0, &Bbox::new(lo, hi), &mut buf, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains(&want.to_string()) && e.message().contains(&(want + 4).to_string()), "{e}");
}

#[test]
fn bad_strides() {
    let layer = Layer::write(Spec::new("uint16", [16, 16, 8], [8, 8, 8]).channels(2));
    let v = open_ok(&layer.url(), None);
    let (lo, hi) = ([1, 2, 3], [5, 7, 6]); // 4 x 5 x 3 voxels, 2 channels of 2 bytes
    let strided = |strides: Option<[i64; 4]>, len: usize| -> Result<Vec<u8>, Failure> {
        const GUARD: usize = 16;
        let mut buf = vec![0xA5u8; len + 2 * GUARD];
        let s = strides.unwrap_or_default();
        // SAFETY: the buffer holds len bytes after the guard; strides point to 4 int64 or NULL.
        let st = unsafe {
            cv_cutout_into_strided(
                v.0,
                0,
                lo.as_ptr(),
                hi.as_ptr(),
                buf.as_mut_ptr().add(GUARD).cast(),
                len,
                strides.map_or(std::ptr::null(), |_| s.as_ptr()),
            )
        };
        assert!(
            buf[..GUARD].iter().chain(&buf[GUARD + len..]).all(|&b| b == 0xA5),
            "cv_cutout_into_strided wrote outside its buffer (status {})",
            status_name(st)
        );
        if st == CV_OK {
            Ok(buf[GUARD..GUARD + len].to_vec())
        } else {
            Err((st, last_error()))
        }
    };
    // C order [x][y][z][c]: channel fastest.
    let c_order = [5 * 3 * 2 * 2, 3 * 2 * 2, 2 * 2, 2];
    let n = 4 * 5 * 3 * 2 * 2;
    let got = strided(Some(c_order), n).unwrap();
    let want = layer.expected(0, lo, hi, 0.0);
    for (i, e) in got.chunks_exact(2).enumerate() {
        let (c, z, y, x) = (i % 2, (i / 2) % 3, (i / 6) % 5, i / 30);
        let f = (((c * 3 + z) * 5 + y) * 4 + x) * 2;
        assert_eq!(e, &want[f..f + 2], "element x{x} y{y} z{z} c{c}");
    }
    expect_err(strided(None, n), CV_ERR_INVALID_ARGUMENT, &["byte_strides is NULL"]);
    expect_err(strided(Some([2, 8, 0, 1000]), 5000), CV_ERR_INVALID_ARGUMENT, &["stride 0 along z"]);
    expect_err(strided(Some([-2, 8, 40, 200]), 5000), CV_ERR_INVALID_ARGUMENT, &["stride -2 along x"]);
    // y's stride of 6 bytes is less than the 8 bytes that x's 4 elements of 2 bytes span.
    expect_err(strided(Some([2, 6, 48, 400]), 5000), CV_ERR_INVALID_ARGUMENT, &["overlap", "y stride 6"]);
    // Elements narrower than their type.
    expect_err(strided(Some([1, 8, 40, 120]), 5000), CV_ERR_INVALID_ARGUMENT, &["overlap", "x stride 1"]);
    // One byte short of the last element.
    expect_err(strided(Some(c_order), n - 1), CV_ERR_INVALID_ARGUMENT, &[&format!("{} bytes", n - 1), &n.to_string()]);
    // A bad box is still named as such.
    expect_err(
        {
            let mut b = vec![0u8; 64];
            let bad_hi = [0i64, 7, 6];
            // SAFETY: valid pointers; the call must refuse the box before writing.
            let st = unsafe {
                cv_cutout_into_strided(
                    v.0,
                    0,
                    lo.as_ptr(),
                    bad_hi.as_ptr(),
                    b.as_mut_ptr().cast(),
                    64,
                    c_order.as_ptr(),
                )
            };
            if st == CV_OK {
                Ok(())
            } else {
                Err((st, last_error()))
            }
        },
        CV_ERR_INVALID_ARGUMENT,
        &["empty or inverted"],
    );
}

#[test]
fn bad_mip() {
    let layer = Layer::write(Spec::new("uint8", [16, 16, 8], [8, 8, 8]).mips(2));
    let v = open_ok(&layer.url(), None);
    expect_err(v.read(2, [0, 0, 0], [2, 2, 2]), CV_ERR_INVALID_ARGUMENT, &["mip 2", "2 mip"]);
    expect_err(v.read(u32::MAX, [0, 0, 0], [2, 2, 2]), CV_ERR_INVALID_ARGUMENT, &[&u32::MAX.to_string()]);
    assert_eq!(v.read_ok(1, [0, 0, 0], [8, 8, 8]), layer.expected(1, [0, 0, 0], [8, 8, 8], 0.0));
    // The mip option is only a default for bindings: a mip the layer lacks may be refused at
    // open (naming it) or accepted, but never breaks anything.
    if let Err((st, msg)) = open(&layer.url(), Some(r#"{"mip": 9}"#)) {
        assert_eq!(st, CV_ERR_INVALID_ARGUMENT, "{msg}");
        assert!(msg.contains('9'), "{msg}");
    }
}

#[test]
fn bad_options() {
    let layer = small(Chunks::Raw);
    let url = layer.url();
    let cases: &[(&str, cv_status, &str)] = &[
        (r#"{"fill_mising": true}"#, CV_ERR_INVALID_ARGUMENT, "fill_mising"),
        (r#"{"progress": true}"#, CV_ERR_INVALID_ARGUMENT, "progress"),
        (r#"{"bounded": 1}"#, CV_ERR_INVALID_ARGUMENT, "bounded"),
        (r#"{"fill_missing": "true"}"#, CV_ERR_INVALID_ARGUMENT, "fill_missing"),
        (r#"{"background_color": "black"}"#, CV_ERR_INVALID_ARGUMENT, "background_color"),
        (r#"{"parallel": 0}"#, CV_ERR_INVALID_ARGUMENT, "parallel"),
        (r#"{"parallel": -3}"#, CV_ERR_INVALID_ARGUMENT, "parallel"),
        (r#"{"parallel": 100000}"#, CV_ERR_INVALID_ARGUMENT, "parallel"),
        (r#"{"mip": 1.5}"#, CV_ERR_INVALID_ARGUMENT, "mip"),
        (r#"{"timeout": 0}"#, CV_ERR_INVALID_ARGUMENT, "timeout"),
        (r#"{"timeout": -1}"#, CV_ERR_INVALID_ARGUMENT, "timeout"),
        (r#"{"max_attempts": 0}"#, CV_ERR_INVALID_ARGUMENT, "max_attempts"),
        (r#"{"gs_endpoint": "ftp://x"}"#, CV_ERR_INVALID_ARGUMENT, "gs_endpoint"),
        (r#"{"s3_endpoint": 5}"#, CV_ERR_INVALID_ARGUMENT, "s3_endpoint"),
        (r#"{"cache": 7}"#, CV_ERR_INVALID_ARGUMENT, "cache"),
        (r#"{"lru_bytes": -1}"#, CV_ERR_INVALID_ARGUMENT, "lru_bytes"),
        (r#"{"retry_budget": 0}"#, CV_ERR_INVALID_ARGUMENT, "retry_budget"),
        ("[]", CV_ERR_INVALID_ARGUMENT, "object"),
        ("true", CV_ERR_INVALID_ARGUMENT, "object"),
        ("{", CV_ERR_INVALID_ARGUMENT, "JSON"),
        ("{'bounded': false}", CV_ERR_INVALID_ARGUMENT, "JSON"),
    ];
    for &(opts, want, needle) in cases {
        expect_err(open(&url, Some(opts)), want, &[needle]);
    }
    // Empty options are the defaults.
    open_ok(&url, Some(""));
    open_ok(&url, Some("  "));
    open_ok(&url, Some(r#"{"parallel": true, "cache": false}"#));
}

#[test]
fn bad_cloud_paths() {
    expect_err(open("", None), CV_ERR_INVALID_ARGUMENT, &["empty"]);
    expect_err(open("ftp://host/layer", None), CV_ERR_INVALID_ARGUMENT, &["ftp://"]);
    expect_err(open("gs://", None), CV_ERR_INVALID_ARGUMENT, &["gs://"]);
    expect_err(open("n5://https://host/coll/exp/chan", None), CV_ERR_UNSUPPORTED, &["n5"]);
    expect_err(open("boss://coll/exp", None), CV_ERR_INVALID_ARGUMENT, &["boss://COLLECTION/EXPERIMENT/CHANNEL"]);
    expect_err(open("dvid://host/nothex/data", None), CV_ERR_INVALID_ARGUMENT, &["not hexadecimal"]);
    expect_err(open("ocp://host/a/b/c", None), CV_ERR_INVALID_ARGUMENT, &["TOKEN"]);
    expect_err(open("graphene://https://host/x", None), CV_ERR_INVALID_ARGUMENT, &["graphene path", "table"]);
    // A NUL-free but non-UTF-8 path.
    let bad = [b'f', b'i', 0xff, 0xfe, 0];
    let mut out: *mut cv_volume = std::ptr::null_mut();
    // SAFETY: a NUL-terminated string and a valid out pointer.
    let st = unsafe { cv_open(bad.as_ptr().cast(), std::ptr::null(), &mut out) };
    assert_eq!(st, CV_ERR_INVALID_ARGUMENT, "{}", last_error());
    assert!(last_error().contains("UTF-8"), "{}", last_error());
}

#[test]
fn layer_that_does_not_exist() {
    expect_err(open("file:///nonexistent/layer", None), CV_ERR_NOT_FOUND, &["file:///nonexistent/layer"]);
    expect_err(open("precomputed://file:///nonexistent/x", None), CV_ERR_NOT_FOUND, &["/nonexistent/x"]);
    // A directory that exists but holds no info.
    let dir = TempDir::new("empty-dir");
    expect_err(open(&dir.url(), None), CV_ERR_NOT_FOUND, &[&dir.url()]);
    // A path through a regular file.
    write_file(&dir.path().join("file"), b"x");
    expect_err(open(&format!("{}/file/layer", dir.url()), None), CV_ERR_NOT_FOUND, &["file/layer"]);
    // The Rust API.
    let e = Volume::open("file:///nonexistent/layer", Options::default()).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains("/nonexistent/layer"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Network failures, against a tiny HTTP server.

const FAST: &str = r#"{"max_attempts": 1, "timeout": 5}"#;

#[test]
fn dead_port_is_an_io_error_naming_the_url() {
    let t = Instant::now();
    expect_err(open("http://127.0.0.1:1/x", Some(FAST)), CV_ERR_IO, &["http://127.0.0.1:1/x"]);
    expect_err(
        open("http://127.0.0.1:1/x", Some(r#"{"max_attempts": 2, "timeout": 5}"#)),
        CV_ERR_IO,
        &["127.0.0.1:1", "2 attempts"],
    );
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
}

#[test]
fn host_that_does_not_exist_is_an_io_error() {
    // Name resolution is outside the library's timeouts; where the resolver itself hangs (no
    // DNS server at all), give up after 15 s rather than slow the suite down.
    let t = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = open("http://nonexistent-host.invalid/layer", Some(FAST)).map(drop);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(r) => {
            expect_err(r, CV_ERR_IO, &["http://nonexistent-host.invalid/layer/info"]);
            println!("refused in {:?}", t.elapsed());
        }
        Err(_) => println!("the resolver did not answer within 15 s here; not checked"),
    }
}

/// A response of the test server.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply { status, headers: vec![], body: format!("status {status}").into_bytes() }
    }
    fn ok(body: Vec<u8>) -> Reply {
        Reply { status: 200, headers: vec![], body }
    }
}

type Handler = dyn Fn(&str) -> Reply + Send + Sync;

/// A one-thread-per-connection HTTP/1.1 server on 127.0.0.1 that logs request paths.
struct Server {
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(handler: Box<Handler>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::from(handler);
        let log2 = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (h, l) = (handler.clone(), log2.clone());
                std::thread::spawn(move || serve(stream, &*h, &l));
            }
        });
        Server { base, log }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(mut s: TcpStream, handler: &Handler, log: &Mutex<Vec<String>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
        log.lock().unwrap().push(path.clone());
        let reply = handler(&path);
        let mut out = format!("HTTP/1.1 {} Test\r\n", reply.status).into_bytes();
        let mut has_len = false;
        for (k, v) in &reply.headers {
            has_len |= k.eq_ignore_ascii_case("content-length");
            out.extend(format!("{k}: {v}\r\n").into_bytes());
        }
        if !has_len {
            out.extend(format!("Content-Length: {}\r\n", reply.body.len()).into_bytes());
        }
        out.extend(b"\r\n");
        out.extend(&reply.body);
        if s.write_all(&out).is_err() || has_len {
            // A lying Content-Length: close after the short body.
            return;
        }
    }
}

/// Serve the files of `dir` under `/layer/`, a `.gz` file with `Content-Encoding: gzip`.
fn serve_dir(dir: PathBuf, overrides: HashMap<String, Reply>) -> Box<Handler> {
    Box::new(move |path: &str| {
        if let Some(r) = overrides.get(path) {
            return Reply { status: r.status, headers: r.headers.clone(), body: r.body.clone() };
        }
        let Some(rel) = path.strip_prefix("/layer/") else { return Reply::status(404) };
        let file = dir.join(rel);
        if let Ok(b) = std::fs::read(&file) {
            return Reply::ok(b);
        }
        if let Ok(b) = std::fs::read(format!("{}.gz", file.display())) {
            return Reply { status: 200, headers: vec![("Content-Encoding".into(), "gzip".into())], body: b };
        }
        Reply::status(404)
    })
}

#[test]
fn server_error_500_is_an_io_error_after_retries() {
    let server = Server::start(Box::new(|_| Reply::status(500)));
    let url = format!("{}/layer", server.base);
    expect_err(open(&url, Some(FAST)), CV_ERR_IO, &[&format!("{url}/info"), "500"]);
    assert_eq!(server.requests().len(), 1, "max_attempts 1: one request");
    let msg = expect_err(open(&url, Some(r#"{"max_attempts": 3, "timeout": 5}"#)), CV_ERR_IO, &[&url, "500"]);
    assert!(msg.contains("3 attempts"), "{msg}");
    assert_eq!(server.requests().len(), 4, "3 more requests with max_attempts 3");
}

#[test]
fn http_statuses_map_onto_codes() {
    let server = Server::start(Box::new(|path: &str| match path {
        "/forbidden/info" => Reply::status(403),
        "/unauthorized/info" => Reply::status(401),
        "/teapot/info" => Reply::status(418),
        "/gone/info" => Reply::status(410),
        "/badenc/info" => {
            Reply { status: 200, headers: vec![("Content-Encoding".into(), "lzma".into())], body: b"x".to_vec() }
        }
        "/badinfo/info" => Reply::ok(b"<html>not json</html>".to_vec()),
        "/short/info" => {
            Reply { status: 200, headers: vec![("Content-Length".into(), "1000".into())], body: b"{\"type\"".to_vec() }
        }
        _ => Reply::status(404),
    }));
    let b = &server.base;
    expect_err(open(&format!("{b}/missing"), Some(FAST)), CV_ERR_NOT_FOUND, &[&format!("{b}/missing/info")]);
    expect_err(open(&format!("{b}/gone"), Some(FAST)), CV_ERR_NOT_FOUND, &["/gone/info"]);
    expect_err(open(&format!("{b}/forbidden"), Some(FAST)), CV_ERR_AUTH, &["/forbidden/info", "403"]);
    expect_err(open(&format!("{b}/unauthorized"), Some(FAST)), CV_ERR_AUTH, &["/unauthorized/info", "401"]);
    expect_err(open(&format!("{b}/teapot"), Some(FAST)), CV_ERR_IO, &["/teapot/info", "418"]);
    expect_err(open(&format!("{b}/badenc"), Some(FAST)), CV_ERR_UNSUPPORTED, &["lzma"]);
    expect_err(open(&format!("{b}/badinfo"), Some(FAST)), CV_ERR_DECODE, &["/badinfo/info"]);
    expect_err(open(&format!("{b}/short"), Some(FAST)), CV_ERR_IO, &["/short/info"]);
}

#[test]
fn http_chunk_failures_name_the_chunk() {
    let layer = Layer::write(Spec::new("uint16", [16, 16, 8], [8, 8, 8]).chunks(Chunks::RawMixed));
    let key = |lo, hi| format!("/layer/{}", layer.chunk_key(0, lo, hi));
    let cells = layer.spec.cells(0);
    let mut overrides = HashMap::new();
    overrides.insert(key(cells[0].0, cells[0].1), Reply::status(500));
    overrides.insert(key(cells[1].0, cells[1].1), Reply::status(404));
    overrides.insert(key(cells[2].0, cells[2].1), Reply::status(403));
    let server = Server::start(serve_dir(layer.path().to_path_buf(), overrides));
    let url = format!("{}/layer", server.base);
    let v = open_ok(&url, Some(FAST));
    let name = |i: usize| chunk_name(cells[i].0, cells[i].1);
    expect_err(v.read(0, cells[0].0, cells[0].1), CV_ERR_IO, &[&format!("{url}/s0/{}", name(0)), "500"]);
    expect_err(v.read(0, cells[1].0, cells[1].1), CV_ERR_NOT_FOUND, &[&name(1)]);
    expect_err(v.read(0, cells[2].0, cells[2].1), CV_ERR_AUTH, &[&name(2)]);
    // Cell 3 (gzip Content-Encoding) reads.
    let (lo, hi) = cells[3];
    assert_eq!(v.read_ok(0, lo, hi), layer.expected(0, lo, hi, 0.0));
    let v = open_ok(&url, Some(r#"{"max_attempts": 1, "timeout": 5, "fill_missing": true, "background_color": 9}"#));
    let (a, b) = ([0, 8, 0], [16, 16, 8]); // cells 2 and 3
    expect_err(v.read(0, a, b), CV_ERR_AUTH, &[&name(2)]);
    let (a, b) = ([8, 0, 0], [16, 16, 8]); // cells 1 and 3: 1 is missing
    assert_eq!(v.read_ok(0, a, b), layer.expected_with(0, a, b, 9.0, &[cells[1]]));
}

// ---------------------------------------------------------------------------------------------
// bounded=false and fill_missing semantics.

#[test]
fn unbounded_reads_fill_the_outside_and_fetch_only_inside_chunks() {
    // file://: the outside cells have no files, so fetching one would fail without fill_missing.
    let layer = Layer::write(Spec::new("int16", [40, 40, 20], [16, 16, 10]).offset([-8, 0, 4]));
    let v = open_ok(&layer.url(), Some(r#"{"bounded": false, "background_color": -7}"#));
    for (lo, hi) in [
        ([-20, -10, 0], [10, 10, 10]),
        ([20, 30, 20], [50, 50, 30]),
        ([-8, 0, 4], [32, 40, 24]),
        ([100, 0, 0], [101, 1, 1]),
    ] {
        assert_eq!(v.read_ok(0, lo, hi), layer.expected(0, lo, hi, -7.0), "{lo:?}..{hi:?}");
    }

    // http://: the log shows exactly the inside cells.
    let server = Server::start(serve_dir(layer.path().to_path_buf(), HashMap::new()));
    let url = format!("{}/layer", server.base);
    let v = open_ok(&url, Some(r#"{"bounded": false, "background_color": 11, "max_attempts": 1}"#));
    let (lo, hi) = ([-30, -5, 0], [10, 10, 10]);
    assert_eq!(v.read_ok(0, lo, hi), layer.expected(0, lo, hi, 11.0));
    let mut got: Vec<String> = server.requests().into_iter().filter(|p| !p.ends_with("/info")).collect();
    got.sort();
    let mut want: Vec<String> = ["-8-8_0-16_4-14", "8-24_0-16_4-14"].iter().map(|n| format!("/layer/s0/{n}")).collect();
    want.sort();
    assert_eq!(got, want, "requests: {:?}", server.requests());
    // Wholly outside: no request at all.
    let before = server.requests().len();
    assert_eq!(
        v.read_ok(0, [-100, -100, -100], [-90, -95, -99]),
        layer.expected(0, [-100, -100, -100], [-90, -95, -99], 11.0)
    );
    assert_eq!(server.requests().len(), before);
}

#[test]
fn fill_missing_background_for_every_data_type() {
    let cases: &[(&str, f64)] = &[
        ("uint8", 200.0),
        ("int8", -5.0),
        ("uint16", 60000.0),
        ("int16", -300.0),
        ("uint32", 4.0e9),
        ("int32", -70000.0),
        ("uint64", 1099511627776.0),
        ("int64", -1099511627776.0),
        ("float32", -1.5),
        ("float64", 2.25),
    ];
    for &(dt, bg) in cases {
        let spec = Spec::new(dt, [20, 12, 9], [8, 8, 4]).offset([-3, -2, -1]).channels(2);
        let layer = Layer::write(spec);
        let cells = layer.spec.cells(0);
        let missing = [cells[0], cells[4], cells[cells.len() - 1]];
        for (lo, hi) in missing {
            layer.remove_chunk(0, lo, hi);
        }
        let (blo, bhi) = layer.spec.bounds(0);
        let v = open_ok(&layer.url(), None);
        expect_err(v.read(0, blo, bhi), CV_ERR_NOT_FOUND, &[&chunk_name(cells[0].0, cells[0].1)]);

        let opts = format!(r#"{{"fill_missing": true, "background_color": {bg}}}"#);
        let v = open_ok(&layer.url(), &opts);
        let got = v.read_ok(0, blo, bhi);
        assert_eq!(got, layer.expected_with(0, blo, bhi, bg, &missing), "{dt} background {bg}");
        // Spot check the first missing voxel's bytes.
        assert_eq!(&got[..scalar(dt, bg).len()], &scalar(dt, bg)[..], "{dt}");

        // Unbounded too: outside voxels and missing chunks both read as the background.
        let opts = format!(r#"{{"fill_missing": true, "bounded": false, "background_color": {bg}}}"#);
        let v = open_ok(&layer.url(), &opts);
        let (lo, hi) = ([-6, -4, -3], [20, 14, 10]);
        assert_eq!(v.read_ok(0, lo, hi), layer.expected_with(0, lo, hi, bg, &missing), "{dt} unbounded");

        // An info-only layer reads as all background.
        let empty = Layer::info_only(layer.spec.clone());
        let v = open_ok(&empty.url(), &format!(r#"{{"fill_missing": true, "background_color": {bg}}}"#));
        let want: Vec<u8> = (0..(20 * 12 * 9 * 2)).flat_map(|_| scalar(dt, bg)).collect();
        assert_eq!(v.read_ok(0, blo, bhi), want, "{dt} empty layer");
    }
}

#[test]
fn every_data_type_reads_raw_values() {
    for dt in ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64"] {
        let layer = Layer::write(Spec::new(dt, [13, 7, 5], [8, 4, 4]).offset([-20, -3, 2]).chunks(Chunks::RawMixed));
        let v = open_ok(&layer.url(), None);
        let (lo, hi) = layer.spec.bounds(0);
        assert_eq!(v.read_ok(0, lo, hi), layer.expected(0, lo, hi, 0.0), "{dt}");
        let mut code = 0i32;
        // SAFETY: valid handle and output.
        assert_eq!(unsafe { cv_data_type(v.0, &mut code) }, CV_OK);
        // SAFETY: static strings.
        let name = unsafe { CStr::from_ptr(cv_dtype_name(code)) }.to_str().unwrap();
        assert_eq!(name, dt);
        assert_eq!(cv_dtype_size(code), elem_size(dt));
    }
}
