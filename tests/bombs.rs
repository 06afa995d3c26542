//! Decompression bombs and lying image headers, as a hostile server would send them: a small
//! object that expands to gigabytes (gzip, zstd, brotli; as chunk files, as HTTP bodies with
//! `Content-Encoding`, as sharded chunk data and minishard indices) and images whose headers
//! claim gigapixels. Each case runs in a child process (this test binary again, running the
//! `worker` test) so that its peak resident memory is its own (VmHWM, which exec resets): the
//! status must be `CV_ERR_DECODE`, the message must name the object and the limit, and the
//! child's peak RSS must stay under 256 MiB.

mod support;

use std::ffi::CString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cloudvolume::ffi::*;
use serde_json::json;
use support::cabi::last_error;
use support::files::{write_file, TempDir};
use support::httpd;
use support::layers::{self, chunk_name};

/// The peak RSS every case must stay under.
const PEAK_MAX_KIB: u64 = 256 << 10;
/// What each big bomb expands to.
const BOMB_BYTES: u64 = 3 << 30;
/// The most bytes the stored object of a 32^3 uint8 raw chunk may take (its 32 KiB plus the
/// slack any compressor may add): bigger objects are refused unread.
const CHUNK_STORED_MAX: &str = "33824 bytes";

/// Big bombs (3 GiB, stored in 0.1 to 3 MB: over what a 32 KiB chunk may take, so refused
/// unread) and small ones (stored in under 32 KiB, which a chunk may take, expanding to tens or
/// hundreds of MiB: stopped while decompressing), with their file suffix.
fn bombs() -> Vec<(&'static str, PathBuf, PathBuf, &'static str)> {
    vec![
        ("gzip", gzip_bomb(BOMB_BYTES), gzip_bomb(24 << 20), ".gz"),
        ("zstd", zstd_bomb(BOMB_BYTES), zstd_bomb(256 << 20), ".zstd"),
        ("brotli", brotli_bomb(BOMB_BYTES), brotli_bomb(64 << 20), ".br"),
    ]
}

// ---------------------------------------------------------------------------------------------
// Bombs, made without ever holding their output: gzip from one compressed segment of zeros
// repeated (a full flush makes each segment byte-aligned and self-contained), zstd and brotli
// by streaming encoders. Cached under the target directory.

fn bomb_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bombs-v1");
    std::fs::create_dir_all(&d).expect("bomb dir");
    d
}

/// A cached file made by `make` (written to a temporary name of its own, then renamed: tests
/// running at once may make the same file).
fn cached(name: &str, make: impl FnOnce(&mut dyn Write)) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = bomb_dir().join(name);
    if !path.exists() {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = bomb_dir().join(format!(".{name}.{}-{n}", std::process::id()));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).expect("create bomb"));
        make(&mut f);
        f.flush().expect("flush bomb");
        drop(f);
        std::fs::rename(&tmp, &path).expect("rename bomb");
    }
    path
}

/// A gzip member of `total` zero bytes (a multiple of 1 MiB), with a true CRC and size.
fn gzip_bomb(total: u64) -> PathBuf {
    cached(&format!("zeros-{total}.gz"), |out| {
        let mib = vec![0u8; 1 << 20];
        let mut c = flate2::Compress::new(flate2::Compression::best(), false);
        let mut seg = Vec::with_capacity(64 << 10);
        c.compress_vec(&mib, &mut seg, flate2::FlushCompress::Full).expect("deflate");
        assert_eq!(c.total_in(), 1 << 20, "one segment takes the whole MiB");
        let mut crc = flate2::Crc::new();
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]).unwrap();
        for _ in 0..total >> 20 {
            out.write_all(&seg).unwrap();
            crc.update(&mib);
        }
        // A final, empty fixed-Huffman block, then the trailer.
        out.write_all(&[0x03, 0x00]).unwrap();
        out.write_all(&crc.sum().to_le_bytes()).unwrap();
        out.write_all(&(total as u32).to_le_bytes()).unwrap();
    })
}

fn zstd_bomb(total: u64) -> PathBuf {
    cached(&format!("zeros-{total}.zstd"), |out| {
        let mib = vec![0u8; 1 << 20];
        let mut e = zstd::stream::write::Encoder::new(out, 3).expect("zstd");
        for _ in 0..total >> 20 {
            e.write_all(&mib).unwrap();
        }
        e.finish().expect("zstd");
    })
}

fn brotli_bomb(total: u64) -> PathBuf {
    cached(&format!("zeros-{total}.br"), |out| {
        let mib = vec![0u8; 1 << 20];
        let mut e = brotli::CompressorWriter::new(out, 1 << 16, 1, 22);
        for _ in 0..total >> 20 {
            e.write_all(&mib).unwrap();
        }
        e.flush().unwrap();
    })
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

// ---------------------------------------------------------------------------------------------
// The child: one read through the C ABI, its status and message printed.

/// Runs only as a child (CV_BOMB_URL set): open, read the box (or its corners as points),
/// print `RESULT <status>\t<message>`.
#[test]
fn worker() {
    let Ok(url) = std::env::var("CV_BOMB_URL") else { return };
    let opts = std::env::var("CV_BOMB_OPTS").unwrap_or_default();
    let nums: Vec<i64> = std::env::var("CV_BOMB_BOX").unwrap().split(',').map(|v| v.parse().unwrap()).collect();
    let (lo, hi) = ([nums[0], nums[1], nums[2]], [nums[3], nums[4], nums[5]]);
    let points = std::env::var("CV_BOMB_POINTS").is_ok();
    let (c_url, c_opts) = (CString::new(url).unwrap(), CString::new(opts).unwrap());
    let mut vol: *mut cv_volume = std::ptr::null_mut();
    // SAFETY: valid strings and out-pointer; the buffers match the lengths passed.
    let (status, msg) = unsafe {
        let s = cv_open(c_url.as_ptr(), c_opts.as_ptr(), &mut vol);
        if s != CV_OK {
            (s, last_error())
        } else {
            let mut len = 0usize;
            assert_eq!(cv_cutout_len(vol, lo.as_ptr(), hi.as_ptr(), &mut len), CV_OK);
            let s = if points {
                let mut xyz = Vec::new();
                for p in [lo, [hi[0] - 1, hi[1] - 1, hi[2] - 1]] {
                    xyz.extend(p);
                }
                let mut out = vec![0u8; 2 * len / ((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2])) as usize];
                cv_scattered_points(vol, 0, 2, xyz.as_ptr(), out.as_mut_ptr().cast(), out.len())
            } else {
                let mut buf = vec![0u8; len];
                cv_cutout_into(vol, 0, lo.as_ptr(), hi.as_ptr(), buf.as_mut_ptr().cast(), len)
            };
            let m = last_error();
            cv_free(vol);
            (s, m)
        }
    };
    // The peak of this process since its exec (a fork's count would include the parent's).
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches("kB").trim().to_string()))
        })
        .unwrap_or_default();
    println!("RESULT {status}\t{hwm}\t{}", msg.replace('\n', " "));
}

/// What a child reported, and its peak RSS in KiB.
struct Outcome {
    status: cv_status,
    message: String,
    peak_kib: u64,
}

fn run_child(url: &str, opts: &serde_json::Value, lo: [i64; 3], hi: [i64; 3], points: bool) -> Outcome {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args(["worker", "--exact", "--nocapture", "--test-threads", "1"])
        .env("CV_BOMB_URL", url)
        .env("CV_BOMB_OPTS", opts.to_string())
        .env("CV_BOMB_BOX", format!("{},{},{},{},{},{}", lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if points {
        cmd.env("CV_BOMB_POINTS", "1");
    }
    let done = cmd.spawn().expect("spawn worker").wait_with_output().expect("worker output");
    let text = String::from_utf8_lossy(&done.stdout).into_owned();
    assert!(done.status.success(), "worker failed ({}):\n{text}", done.status);
    let line = text
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no RESULT in:\n{text}"));
    let mut parts = line.splitn(3, '\t');
    let (code, hwm, message) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    Outcome {
        status: code.trim().parse().expect("status"),
        message: message.to_string(),
        peak_kib: hwm.parse().expect("VmHWM of the worker"),
    }
}

/// Assert a refusal: `CV_ERR_DECODE`, a message with every word of `names`, a bounded peak.
fn refused(case: &str, o: &Outcome, names: &[&str]) {
    eprintln!("{case}: status {} peak {} MiB: {}", o.status, o.peak_kib >> 10, o.message);
    assert_eq!(o.status, CV_ERR_DECODE, "{case}: {}", o.message);
    for n in names {
        assert!(o.message.contains(n), "{case}: message lacks \"{n}\": {}", o.message);
    }
    assert!(o.peak_kib <= PEAK_MAX_KIB, "{case}: peak RSS {} MiB over {} MiB", o.peak_kib >> 10, PEAK_MAX_KIB >> 10);
}

// ---------------------------------------------------------------------------------------------
// Layers.

fn raw_info(size: [i64; 3], chunk: [i64; 3], encoding: &str, sharding: Option<serde_json::Value>) -> serde_json::Value {
    let mut scale = json!({"key": "s0", "size": size, "voxel_offset": [0, 0, 0], "resolution": [1, 1, 1],
        "chunk_sizes": [chunk], "encoding": encoding});
    if let Some(s) = sharding {
        scale["sharding"] = s;
    }
    json!({"type": "image", "data_type": "uint8", "num_channels": 1, "scales": [scale]})
}

fn layer_with(dir: &Path, info: &serde_json::Value) {
    write_file(&dir.join("info"), info.to_string().as_bytes());
}

/// A 32^3 raw uint8 layer whose one chunk is the bomb `bomb` stored with `suffix`.
fn bomb_layer(tag: &str, bomb: &Path, suffix: &str) -> TempDir {
    let t = TempDir::new(tag);
    layer_with(t.path(), &raw_info([32, 32, 32], [32, 32, 32], "raw", None));
    let dst = t.path().join("s0").join(format!("{}{suffix}", chunk_name([0, 0, 0], [32, 32, 32])));
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::hard_link(bomb, &dst).or_else(|_| std::fs::copy(bomb, &dst).map(|_| ())).expect("link bomb");
    t
}

const CHUNK: ([i64; 3], [i64; 3]) = ([0, 0, 0], [32, 32, 32]);

#[test]
fn chunk_file_bombs_are_refused_within_the_chunk_size() {
    let chunk = "s0/0-32_0-32_0-32";
    for (name, big, small, suffix) in bombs() {
        let t = bomb_layer(&format!("bomb-{name}"), &big, suffix);
        let o = run_child(&t.url(), &json!({}), CHUNK.0, CHUNK.1, false);
        refused(&format!("3 GiB {name} chunk file"), &o, &[chunk, CHUNK_STORED_MAX, "refused unread"]);
        let o = run_child(&t.url(), &json!({}), CHUNK.0, CHUNK.1, true);
        refused(&format!("3 GiB {name} chunk file, points"), &o, &[chunk, CHUNK_STORED_MAX]);
        let t = bomb_layer(&format!("bomb-small-{name}"), &small, suffix);
        let o = run_child(&t.url(), &json!({}), CHUNK.0, CHUNK.1, false);
        refused(&format!("small {name} chunk file"), &o, &[chunk, "expands past 32768 bytes", name]);
        let o = run_child(&t.url(), &json!({}), CHUNK.0, CHUNK.1, true);
        refused(&format!("small {name} chunk file, points"), &o, &[chunk, "expands past 32768 bytes"]);
    }
}

#[test]
fn content_encoding_bombs_over_http_are_refused() {
    for (name, big, small, suffix) in bombs() {
        for (size, bomb, words) in [
            ("3 GiB", &big, [CHUNK_STORED_MAX, "refused unread"]),
            ("small", &small, ["expands past 32768 bytes", name]),
        ] {
            let t = bomb_layer(&format!("bomb-http-{name}"), bomb, suffix);
            let server = httpd::FileServer::start(t.path()).expect("httpd");
            let o = run_child(&server.url(), &json!({}), CHUNK.0, CHUNK.1, false);
            let url = format!("{}/s0/0-32_0-32_0-32", server.url());
            refused(&format!("{size} {name} Content-Encoding over HTTP"), &o, &[&url, words[0], words[1]]);
        }
    }
}

#[test]
fn sixty_four_bombs_read_in_parallel_stay_bounded() {
    // Small bombs, which a chunk may take: each is stopped while it decompresses.
    let bomb = gzip_bomb(24 << 20);
    let t = TempDir::new("bomb-64");
    layer_with(t.path(), &raw_info([128, 128, 128], [32, 32, 32], "raw", None));
    std::fs::create_dir_all(t.path().join("s0")).unwrap();
    for z in 0..4 {
        for y in 0..4 {
            for x in 0..4 {
                let lo = [32 * x, 32 * y, 32 * z];
                let name = format!("{}.gz", chunk_name(lo, [lo[0] + 32, lo[1] + 32, lo[2] + 32]));
                let dst = t.path().join("s0").join(name);
                std::fs::hard_link(&bomb, &dst).or_else(|_| std::fs::copy(&bomb, &dst).map(|_| ())).expect("link");
            }
        }
    }
    let o = run_child(&t.url(), &json!({"parallel": 64}), [0, 0, 0], [128, 128, 128], false);
    refused("64 gzip chunks in parallel", &o, &["32768 bytes", "gzip"]);
}

// ---------------------------------------------------------------------------------------------
// Sharded layers, built by hand: one shard (shard and minishard bits 0, identity hash), chunks
// in id order, then the minishard index.

fn shard_file(chunks: &[(u64, Vec<u8>)], index_gzip: Option<Vec<u8>>) -> Vec<u8> {
    let mut body = Vec::new();
    let (mut ids, mut offs, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut prev_id, mut prev_end) = (0u64, 0u64);
    for (id, bytes) in chunks {
        let start = body.len() as u64;
        body.extend_from_slice(bytes);
        ids.push(id - prev_id);
        offs.push(start - prev_end);
        sizes.push(bytes.len() as u64);
        prev_id = *id;
        prev_end = start + bytes.len() as u64;
    }
    let index: Vec<u8> = match index_gzip {
        Some(b) => b,
        None => ids.iter().chain(&offs).chain(&sizes).flat_map(|v| v.to_le_bytes()).collect(),
    };
    let start = body.len() as u64;
    body.extend_from_slice(&index);
    let mut file = start.to_le_bytes().to_vec();
    file.extend((start + index.len() as u64).to_le_bytes());
    file.extend(body);
    file
}

fn sharding(index: &str, data: &str) -> serde_json::Value {
    json!({"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0, "hash": "identity", "minishard_bits": 0,
        "shard_bits": 0, "minishard_index_encoding": index, "data_encoding": data})
}

#[test]
fn sharded_chunk_data_bombs_are_refused() {
    // 128^3 chunks (2 MiB): a 1.5 GiB gzip bomb of ~1.6 MB fits the stored size a chunk may
    // take, and must be stopped by its decoded size.
    let bomb = read(&gzip_bomb(1536 << 20));
    let t = TempDir::new("bomb-shard-data");
    layer_with(t.path(), &raw_info([256, 128, 128], [128, 128, 128], "raw", Some(sharding("raw", "gzip"))));
    let good = layers::gzip(&vec![7u8; 128 * 128 * 128]);
    write_file(&t.path().join("s0/0.shard"), &shard_file(&[(0, bomb), (1, good)], None));
    let o = run_child(&t.url(), &json!({}), [0, 0, 0], [256, 128, 128], false);
    refused("sharded gzip chunk data", &o, &["0.shard", "chunk 0", "2097152 bytes"]);
    let o = run_child(&t.url(), &json!({}), [0, 0, 0], [128, 128, 128], true);
    refused("sharded gzip chunk data, points", &o, &["0.shard", "chunk 0", "2097152 bytes"]);
    // A chunk range larger than any chunk of the scale is refused before it is fetched.
    let big = read(&gzip_bomb(BOMB_BYTES));
    write_file(&t.path().join("s0/0.shard"), &shard_file(&[(0, big)], None));
    let o = run_child(&t.url(), &json!({}), [0, 0, 0], [128, 128, 128], false);
    refused("oversized shard range", &o, &["0.shard", "chunk 0", "corrupt minishard index"]);
}

#[test]
fn minishard_index_bombs_are_refused() {
    let t = TempDir::new("bomb-minishard");
    layer_with(t.path(), &raw_info([64, 32, 32], [32, 32, 32], "raw", Some(sharding("gzip", "raw"))));
    let chunk = vec![1u8; 32 * 32 * 32];
    // A 3 GiB index (3 MB stored): far more than two chunks' index, refused unread.
    let huge = read(&gzip_bomb(BOMB_BYTES));
    write_file(&t.path().join("s0/0.shard"), &shard_file(&[(0, chunk.clone())], Some(huge)));
    let o = run_child(&t.url(), &json!({}), [0, 0, 0], [32, 32, 32], false);
    refused("3 GiB minishard index", &o, &["0.shard", "minishard 0", "48 bytes"]);
    // A small stored index (256 KiB of zeros, ~300 bytes gzipped) that expands past the 48
    // bytes two entries take: stopped there.
    let small = layers::gzip(&vec![0u8; 256 << 10]);
    write_file(&t.path().join("s0/0.shard"), &shard_file(&[(0, chunk)], Some(small)));
    let o = run_child(&t.url(), &json!({}), [0, 0, 0], [32, 32, 32], false);
    refused("expanding minishard index", &o, &["0.shard", "minishard 0", "expands past 48 bytes"]);
}

// ---------------------------------------------------------------------------------------------
// Images whose headers claim far more pixels than the chunk has.

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    v.extend(crc.sum().to_be_bytes());
    v
}

#[test]
fn image_headers_claiming_gigapixels_are_refused_before_allocating() {
    let t = TempDir::new("bomb-images");
    // PNG: 65535 x 65535 RGBA, 16 bits (32 GiB of pixels), with an IDAT of a few zeros.
    let mut ihdr = 65535u32.to_be_bytes().to_vec();
    ihdr.extend(65535u32.to_be_bytes());
    ihdr.extend([16, 6, 0, 0, 0]);
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    png.extend(png_chunk(b"IHDR", &ihdr));
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&[0u8; 4096]).unwrap();
    png.extend(png_chunk(b"IDAT", &z.finish().unwrap()));
    png.extend(png_chunk(b"IEND", &[]));
    let mut info = raw_info([32, 32, 32], [32, 32, 32], "png", None);
    info["num_channels"] = json!(4);
    info["data_type"] = json!("uint16");
    layer_with(t.path(), &info);
    write_file(&t.path().join("s0").join(chunk_name(CHUNK.0, CHUNK.1)), &png);
    let o = run_child(&t.url(), &json!({}), CHUNK.0, CHUNK.1, false);
    refused("gigapixel PNG", &o, &["PNG", "65535x65535", "32768 voxels"]);

    // JPEG: a real 32x1024 image whose frame header is changed to claim 65500 x 65500.
    let planar: Vec<u8> = (0..32 * 32 * 32).map(|i| (i % 251) as u8).collect();
    let mut jpeg = cloudvolume::codec::encode_chunk(
        cloudvolume::Encoding::Jpeg,
        cloudvolume::DataType::U8,
        1,
        [32, 32, 32],
        &planar,
        &Default::default(),
        "test",
    )
    .expect("encode jpeg");
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("SOF0");
    jpeg[sof + 5..sof + 7].copy_from_slice(&65500u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&65500u16.to_be_bytes());
    let t2 = TempDir::new("bomb-jpeg");
    layer_with(t2.path(), &raw_info([32, 32, 32], [32, 32, 32], "jpeg", None));
    write_file(&t2.path().join("s0").join(chunk_name(CHUNK.0, CHUNK.1)), &jpeg);
    let o = run_child(&t2.url(), &json!({}), CHUNK.0, CHUNK.1, false);
    refused("gigapixel JPEG", &o, &["JPEG", "65500x65500", "32768 voxels"]);
}
