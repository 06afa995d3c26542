//! Sharded scales (`neuroglancer_uint64_sharded_v1`, format digest §4), through the C ABI and
//! the CLI, on layers written here by a small shard writer that follows the digest:
//!
//! - (a) request counts over a loopback HTTP server that counts and honours byte ranges
//!   (tests/support/httpd.rs): a cold cutout of k chunks in one shard costs at most
//!   2 + (minishards touched) + k requests (info and shard index included), the same cutout
//!   again at most k, scattered points after warm-up at most one per point;
//! - (b) bad input: truncated and corrupt shard files, corrupt minishard indices, bad specs,
//!   missing shards and chunks, each a clear status and message, never a crash;
//! - (c) the worked example of §4.6, built byte for byte (and compared with tensorstore's files
//!   when the reference layers of tests/reference/make_layers.py are present) and read back;
//! - the CLI's `points` and `exists`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use cloudvolume::ffi::{cv_status, CV_ERR_DECODE, CV_ERR_NOT_FOUND, CV_ERR_UNSUPPORTED, CV_OK};
use serde_json::{json, Value};
use support::cabi::{open, Failure, Vol};
use support::env::{cli, reference_dir, required};
use support::httpd::{self, FileServer};
use support::layers::{chunk_name, gzip};
use support::sharding::{morton, murmur3, Hash, Sharding};

// ------------------------------------------------------------------------------------------------
// Shard files, written from the digest (§4.4) with the test-side hash and Morton codes of
// tests/support/sharding.rs.

/// One shard file and where its parts are.
struct ShardFile {
    bytes: Vec<u8>,
    /// minishard -> [start, end) of its (encoded) index, absolute.
    minishards: BTreeMap<u64, (usize, usize)>,
    /// chunk id -> [start, end) of its (encoded) payload, absolute.
    chunks: BTreeMap<u64, (usize, usize)>,
}

/// Shard files holding `chunks` (id, unencoded payload), laid out as tensorstore writes them:
/// for each non-empty minishard in ascending order, its payloads sorted by id, then its index.
fn build_shards(spec: &Sharding, chunks: &[(u64, Vec<u8>)]) -> BTreeMap<u64, ShardFile> {
    // shard -> minishard -> (id, encoded payload)
    type Grouped = BTreeMap<u64, BTreeMap<u64, Vec<(u64, Vec<u8>)>>>;
    let mut by: Grouped = BTreeMap::new();
    for (id, payload) in chunks {
        let (shard, ms) = spec.locate(*id);
        let p = if spec.data_gzip { gzip(payload) } else { payload.clone() };
        by.entry(shard).or_default().entry(ms).or_default().push((*id, p));
    }
    let s = 16usize << spec.minishard_bits;
    let mut out = BTreeMap::new();
    for (shard, minishards) in by {
        let mut f = ShardFile { bytes: vec![0u8; s], minishards: BTreeMap::new(), chunks: BTreeMap::new() };
        for (ms, mut entries) in minishards {
            entries.sort_by_key(|e| e.0);
            let n = entries.len();
            let mut words = vec![0u64; 3 * n];
            let (mut prev_id, mut prev_end) = (0u64, s as u64);
            for (i, (id, p)) in entries.iter().enumerate() {
                let start = f.bytes.len();
                f.bytes.extend_from_slice(p);
                f.chunks.insert(*id, (start, f.bytes.len()));
                words[i] = id - prev_id;
                words[n + i] = start as u64 - prev_end;
                words[2 * n + i] = p.len() as u64;
                prev_id = *id;
                prev_end = f.bytes.len() as u64;
            }
            let raw: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let index = if spec.index_gzip { gzip(&raw) } else { raw };
            let (a, b) = (f.bytes.len(), f.bytes.len() + index.len());
            f.bytes.extend_from_slice(&index);
            f.minishards.insert(ms, (a, b));
            let at = 16 * ms as usize;
            f.bytes[at..at + 8].copy_from_slice(&((a - s) as u64).to_le_bytes());
            f.bytes[at + 8..at + 16].copy_from_slice(&((b - s) as u64).to_le_bytes());
        }
        out.insert(shard, f);
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Layers

#[derive(Clone, Copy, Debug)]
struct Mip {
    size: [i64; 3],
    offset: [i64; 3],
    chunk: [i64; 3],
    sharding: Option<Sharding>,
}

impl Mip {
    fn grid(&self) -> [i64; 3] {
        [0, 1, 2].map(|d| (self.size[d] + self.chunk[d] - 1) / self.chunk[d])
    }
    fn hi(&self) -> [i64; 3] {
        [0, 1, 2].map(|d| self.offset[d] + self.size[d])
    }
    fn cell_box(&self, c: [i64; 3]) -> ([i64; 3], [i64; 3]) {
        let lo = [0, 1, 2].map(|d| self.offset[d] + c[d] * self.chunk[d]);
        let hi = [0, 1, 2].map(|d| (lo[d] + self.chunk[d]).min(self.offset[d] + self.size[d]));
        (lo, hi)
    }
    fn cell_of(&self, p: [i64; 3]) -> [i64; 3] {
        [0, 1, 2].map(|d| (p[d] - self.offset[d]) / self.chunk[d])
    }
    fn key(i: usize) -> String {
        format!("m{i}")
    }
}

/// The voxel values of the test layers (uint16): many distinct values, different per mip.
fn value(mip: u32, p: [i64; 3]) -> u64 {
    (p[0] * 7 + p[1] * 131 + p[2] * 1031 + i64::from(mip) * 50021) as u64 & 0xffff
}

struct Layer {
    dir: PathBuf,
    dtype: &'static str,
    mips: Vec<Mip>,
    value: fn(u32, [i64; 3]) -> u64,
    /// mip -> shard number -> the file as written.
    shards: Vec<BTreeMap<u64, ShardFile>>,
}

impl Layer {
    fn item(&self) -> usize {
        if self.dtype == "uint8" {
            1
        } else {
            2
        }
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn shard_path(&self, mip: usize, shard: u64) -> PathBuf {
        let spec = self.mips[mip].sharding.expect("a sharded mip");
        self.dir.join(Mip::key(mip)).join(spec.file(shard))
    }

    /// The expected bytes of `[lo, hi)` at `mip` (Fortran order), `bg` where `missing` says so.
    fn expected(&self, mip: u32, lo: [i64; 3], hi: [i64; 3], missing: &dyn Fn([i64; 3]) -> bool, bg: u64) -> Vec<u8> {
        let m = self.mips[mip as usize];
        let mut v = Vec::new();
        for z in lo[2]..hi[2] {
            for y in lo[1]..hi[1] {
                for x in lo[0]..hi[0] {
                    let p = [x, y, z];
                    let val = if missing(m.cell_of(p)) { bg } else { (self.value)(mip, p) };
                    v.extend_from_slice(&val.to_le_bytes()[..self.item()]);
                }
            }
        }
        v
    }
}

fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "cv-sharded-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Write a raw single-channel layer at `dir`: info, then per mip either shard files or chunk
/// files; cells for which `omit(mip, cell)` is true are not stored.
fn write_layer(
    dir: &Path,
    dtype: &'static str,
    mips: &[Mip],
    value: fn(u32, [i64; 3]) -> u64,
    omit: &dyn Fn(u32, [i64; 3]) -> bool,
) -> Layer {
    std::fs::create_dir_all(dir).unwrap();
    let scales: Vec<Value> = mips
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let f = 1i64 << i;
            let mut s = json!({
                "key": Mip::key(i),
                "size": m.size,
                "voxel_offset": m.offset,
                "resolution": [4 * f, 4 * f, 40],
                "chunk_sizes": [m.chunk],
                "encoding": "raw",
            });
            if let Some(sh) = m.sharding {
                s["sharding"] = sh.json();
            }
            s
        })
        .collect();
    let info = json!({"@type": "neuroglancer_multiscale_volume", "type": "image", "data_type": dtype,
                      "num_channels": 1, "scales": scales});
    std::fs::write(dir.join("info"), serde_json::to_vec_pretty(&info).unwrap()).unwrap();
    let mut layer = Layer { dir: dir.to_path_buf(), dtype, mips: mips.to_vec(), value, shards: Vec::new() };
    for (i, m) in mips.iter().enumerate() {
        let key_dir = dir.join(Mip::key(i));
        std::fs::create_dir_all(&key_dir).unwrap();
        let grid = m.grid();
        let mut chunks = Vec::new();
        for z in 0..grid[2] {
            for y in 0..grid[1] {
                for x in 0..grid[0] {
                    let c = [x, y, z];
                    if omit(i as u32, c) {
                        continue;
                    }
                    let (lo, hi) = m.cell_box(c);
                    let payload = layer.expected(i as u32, lo, hi, &|_| false, 0);
                    match m.sharding {
                        Some(_) => chunks.push((morton(c, grid), payload)),
                        None => {
                            std::fs::write(key_dir.join(chunk_name(lo, hi)), payload).unwrap();
                        }
                    }
                }
            }
        }
        let files = match m.sharding {
            Some(spec) => build_shards(&spec, &chunks),
            None => BTreeMap::new(),
        };
        for (shard, f) in &files {
            std::fs::write(key_dir.join(m.sharding.unwrap().file(*shard)), &f.bytes).unwrap();
        }
        layer.shards.push(files);
    }
    layer
}

// ------------------------------------------------------------------------------------------------
// The C ABI

/// The voxels of `[lo, hi)` at `mip`, `item` bytes each (the buffer poisoned first).
fn cutout(h: &Vol, mip: u32, lo: [i64; 3], hi: [i64; 3], item: usize) -> Result<Vec<u8>, Failure> {
    let n: i64 = (0..3).map(|d| hi[d] - lo[d]).product();
    let mut buf = vec![0xA5u8; n as usize * item];
    match h.cutout_into(mip, lo, hi, &mut buf) {
        (CV_OK, _) => Ok(buf),
        e => Err(e),
    }
}

/// The values at `pts` (`item` bytes each) through `cv_scattered_points`.
fn points(h: &Vol, mip: u32, pts: &[[i64; 3]], item: usize) -> Result<Vec<u8>, Failure> {
    let mut buf = vec![0xA5u8; pts.len() * item];
    match h.points_into(mip, pts, &mut buf) {
        (CV_OK, _) => Ok(buf),
        e => Err(e),
    }
}

/// The stored-chunk flags of `[lo, hi)`, checked against the count the call reported.
fn chunks_exist(h: &Vol, mip: u32, lo: [i64; 3], hi: [i64; 3]) -> Result<Vec<u8>, Failure> {
    let (flags, present) = h.chunks_exist(mip, lo, hi)?;
    assert_eq!(present, flags.iter().filter(|&&f| f == 1).count(), "n_present disagrees with the flags");
    Ok(flags)
}

fn expected_points(layer: &Layer, mip: u32, pts: &[[i64; 3]]) -> Vec<u8> {
    pts.iter().flat_map(|p| (layer.value)(mip, *p).to_le_bytes()[..layer.item()].to_vec()).collect()
}

/// Shards, (shard, minishard) pairs and chunk cells.
type Touched = (BTreeSet<u64>, BTreeSet<(u64, u64)>, Vec<[i64; 3]>);

/// The distinct shards, (shard, minishard) pairs and chunk cells that `[lo, hi)` at `mip` meets.
fn touched(m: &Mip, lo: [i64; 3], hi: [i64; 3]) -> Touched {
    let spec = m.sharding.unwrap();
    let (c0, c1) = (m.cell_of(lo), m.cell_of([hi[0] - 1, hi[1] - 1, hi[2] - 1]));
    let (mut shards, mut minishards, mut cells) = (BTreeSet::new(), BTreeSet::new(), Vec::new());
    for z in c0[2]..=c1[2] {
        for y in c0[1]..=c1[1] {
            for x in c0[0]..=c1[0] {
                let loc = spec.locate(morton([x, y, z], m.grid()));
                shards.insert(loc.0);
                minishards.insert(loc);
                cells.push([x, y, z]);
            }
        }
    }
    (shards, minishards, cells)
}

fn log_text(log: &[httpd::Request]) -> String {
    log.iter().map(|r| format!("\n    {r}")).collect()
}

// ------------------------------------------------------------------------------------------------
// (a) Request counts

/// The request-count layer: 64x48x40 uint16 voxels in 8³ chunks (grid 8x6x5, 9 Morton bits);
/// identity hash with preshift 3, minishard 3, shard 3 (shards are 4x4x4-chunk boxes, minishards
/// 2x2x2), or murmurhash with gzip indices and data.
fn count_layer(name: &str, murmur_gzip: bool) -> (Layer, PathBuf) {
    let root = temp_dir(name);
    let sharding = if murmur_gzip {
        Sharding {
            hash: Hash::Murmur,
            preshift: 0,
            minishard_bits: 2,
            shard_bits: 2,
            index_gzip: true,
            data_gzip: true,
        }
    } else {
        Sharding::identity(3, 3, 3)
    };
    let mips = [Mip { size: [64, 48, 40], offset: [-32, 16, -3], chunk: [8, 8, 8], sharding: Some(sharding) }];
    let layer = write_layer(&root.join("layer"), "uint16", &mips, value, &|_, _| false);
    (layer, root)
}

#[derive(Debug)]
struct Counts {
    what: String,
    requests: u64,
    bound: u64,
}

/// Counts of one scenario on a fresh server and handle.
fn request_counts(murmur_gzip: bool) -> Vec<Counts> {
    let (layer, root) = count_layer(if murmur_gzip { "count-murmur" } else { "count-identity" }, murmur_gzip);
    let server = FileServer::start(&root).unwrap();
    let url = format!("{}/layer", server.url());
    let m = layer.mips[0];
    let mut out = Vec::new();
    let mut failures = Vec::new();
    let mut check = |what: String, requests: u64, bound: u64, log: &[httpd::Request]| {
        if requests > bound {
            failures.push(format!("{what}: {requests} requests, more than {bound}:{}", log_text(log)));
        }
        out.push(Counts { what, requests, bound });
    };

    // A box of k = 3x2x1 chunks, cutting the outer ones, all in shard 0 (identity: cells
    // 0..3 x 0..2 x 0 sit in the first 4x4x4-chunk shard).
    let lo = [m.offset[0] + 3, m.offset[1] + 1, m.offset[2] + 2];
    let hi = [m.offset[0] + 8 * 2 + 5, m.offset[1] + 8 + 7, m.offset[2] + 7];
    let (shards, minishards, cells) = touched(&m, lo, hi);
    let k = cells.len() as u64;
    let h = open(&url, &json!({})).unwrap_or_else(|e| panic!("open {url}: {e:?}"));
    let opened = server.take_log();
    let got = cutout(&h, 0, lo, hi, 2).unwrap_or_else(|e| panic!("cutout: {e:?}"));
    assert_eq!(got, layer.expected(0, lo, hi, &|_| false, 0), "cold cutout over http");
    let log = server.take_log();
    let total = (opened.len() + log.len()) as u64;
    if !murmur_gzip {
        assert_eq!(shards.len(), 1, "the test box should lie in one shard");
    }
    check(
        format!(
            "cold cutout of k={k} chunks in {} shard(s), {} minishard(s) (open + cutout; bound 1 + shards + minishards + k, i.e. 2 + minishards + k in one shard)",
            shards.len(),
            minishards.len()
        ),
        total,
        1 + shards.len() as u64 + minishards.len() as u64 + k,
        &[opened.clone(), log.clone()].concat(),
    );
    let got = cutout(&h, 0, lo, hi, 2).unwrap();
    assert_eq!(got, layer.expected(0, lo, hi, &|_| false, 0), "warm cutout");
    let log = server.take_log();
    check(format!("warm cutout of the same k={k} chunks (bound k)"), log.len() as u64, k, &log);

    // A cold cutout across shards on a new handle: at most one shard index per shard, one
    // minishard index per minishard and one request per chunk, plus the info.
    let h2 = open(&url, &json!({})).unwrap();
    let lo2 = [m.offset[0] + 20, m.offset[1] + 12, m.offset[2] + 5];
    let hi2 = [m.offset[0] + 45, m.offset[1] + 37, m.offset[2] + 20];
    let (s2, ms2, cells2) = touched(&m, lo2, hi2);
    let got = cutout(&h2, 0, lo2, hi2, 2).unwrap();
    assert_eq!(got, layer.expected(0, lo2, hi2, &|_| false, 0), "cutout across shards");
    let log = server.take_log();
    check(
        format!(
            "cold cutout of k={} chunks across {} shards, {} minishards (open + cutout; bound 1 + shards + minishards + k)",
            cells2.len(),
            s2.len(),
            ms2.len()
        ),
        log.len() as u64,
        1 + (s2.len() + ms2.len() + cells2.len()) as u64,
        &log,
    );

    // Scattered points: cold on a new handle, then again (warm), then other points in chunks
    // whose minishards are warm.
    let h3 = open(&url, &json!({})).unwrap();
    server.take_log();
    let mut pts: Vec<[i64; 3]> = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = |n: i64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as i64
    };
    for _ in 0..24 {
        pts.push([0, 1, 2].map(|d| m.offset[d] + rnd(m.size[d])));
    }
    let (mut pshards, mut pms, mut pcells) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for p in &pts {
        let c = m.cell_of(*p);
        let loc = m.sharding.unwrap().locate(morton(c, m.grid()));
        pshards.insert(loc.0);
        pms.insert(loc);
        pcells.insert(c);
    }
    let got = points(&h3, 0, &pts, 2).unwrap_or_else(|e| panic!("points: {e:?}"));
    assert_eq!(got, expected_points(&layer, 0, &pts), "cold points");
    let log = server.take_log();
    // Reported, not enforced here (cold_points_read_only_the_indices_they_need enforces it).
    let ideal = (pshards.len() + pms.len() + pcells.len()) as u64;
    check(
        format!(
            "cold scattered points: {} points in {} chunks, {} shards, {} minishards (shards + minishards + chunks = {ideal}; \
             bound here 2 x shards + minishards + chunks)",
            pts.len(),
            pcells.len(),
            pshards.len(),
            pms.len()
        ),
        log.len() as u64,
        ideal + pshards.len() as u64,
        &log,
    );
    let got = points(&h3, 0, &pts, 2).unwrap();
    assert_eq!(got, expected_points(&layer, 0, &pts), "warm points");
    let log = server.take_log();
    check(
        format!("warm scattered points: the same {} points (bound 1 per point)", pts.len()),
        log.len() as u64,
        pts.len() as u64,
        &log,
    );
    // Other points, in chunks of the minishards already read.
    let others: Vec<[i64; 3]> = pcells
        .iter()
        .map(|c| {
            let (lo, hi) = m.cell_box(*c);
            [0, 1, 2].map(|d| hi[d] - 1 - (lo[d] % 2).abs())
        })
        .collect();
    let got = points(&h3, 0, &others, 2).unwrap();
    assert_eq!(got, expected_points(&layer, 0, &others), "other points in warm minishards");
    let log = server.take_log();
    check(
        format!("{} other points in chunks of warm minishards (bound 1 per point)", others.len()),
        log.len() as u64,
        others.len() as u64,
        &log,
    );
    // Chunk existence of the whole volume: index look-ups only (no chunk data); on a warm
    // handle no request at all.
    let h4 = open(&url, &json!({})).unwrap();
    server.take_log();
    let all_s = 1u64 << m.sharding.unwrap().shard_bits;
    let all_ms = all_s << m.sharding.unwrap().minishard_bits;
    let flags = chunks_exist(&h4, 0, m.offset, m.hi()).unwrap();
    assert!(flags.iter().all(|&f| f == 1), "every chunk is stored");
    let log = server.take_log();
    check(
        format!("cold cv_chunks_exist over all {} chunks (bound shards + minishards)", flags.len()),
        log.len() as u64,
        all_s + all_ms,
        &log,
    );
    let data_reads: Vec<_> = log.iter().filter(|r| r.bytes > 4096).cloned().collect();
    check(
        "cold cv_chunks_exist: requests of more than 4 KiB (chunk data; bound 0)".into(),
        data_reads.len() as u64,
        0,
        &data_reads,
    );
    chunks_exist(&h4, 0, m.offset, m.hi()).unwrap();
    let log = server.take_log();
    check("warm cv_chunks_exist over the whole volume (bound 0)".into(), log.len() as u64, 0, &log);
    drop((h, h2, h3, h4));
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
    for c in &out {
        eprintln!(
            "request counts ({}): {}: {} requests (bound {})",
            if murmur_gzip { "murmurhash, gzip" } else { "identity, raw" },
            c.what,
            c.requests,
            c.bound
        );
    }
    assert!(failures.is_empty(), "request counts over the bound:\n{}", failures.join("\n"));
    out
}

/// Cold scattered points (and chunk existence) read the shard index and the minishard indices
/// of the minishards holding them, then one range per chunk: nothing else. Points all in
/// minishard 1 of shard 0 must not read minishard 0's index.
#[test]
fn cold_points_read_only_the_indices_they_need() {
    let (layer, root) = count_layer("cold-points", false);
    let server = FileServer::start(&root).unwrap();
    let url = format!("{}/layer", server.url());
    let m = layer.mips[0];
    let spec = m.sharding.unwrap();
    let grid = m.grid();
    let mut cells = Vec::new();
    for z in 0..grid[2] {
        for y in 0..grid[1] {
            for x in 0..grid[0] {
                if spec.locate(morton([x, y, z], grid)) == (0, 1) {
                    cells.push([x, y, z]);
                }
            }
        }
    }
    let cells = &cells[..3];
    let pts: Vec<[i64; 3]> = cells.iter().map(|c| m.cell_box(*c).0.map(|v| v + 2)).collect();
    let ms0_index = layer.shards[0][&0].minishards[&0];
    let ms0_range = format!("bytes={}-{}", ms0_index.0, ms0_index.1 - 1);
    let mut failures = Vec::new();
    for call in ["cv_scattered_points", "cv_chunks_exist"] {
        let h = open(&url, &json!({})).unwrap();
        server.take_log();
        if call == "cv_scattered_points" {
            assert_eq!(points(&h, 0, &pts, 2).unwrap(), expected_points(&layer, 0, &pts));
        } else {
            let (a, b) = (m.cell_box(cells[0]).0, m.cell_box(cells[0]).1);
            assert_eq!(chunks_exist(&h, 0, a, b).unwrap(), vec![1]);
        }
        let log = server.take_log();
        let bound = if call == "cv_scattered_points" { 2 + cells.len() } else { 2 };
        eprintln!(
            "{call}, cold, {} chunk(s) of shard 0 minishard 1: {} requests (bound {bound})",
            if bound == 2 { 1 } else { cells.len() },
            log.len()
        );
        if log.len() > bound || log.iter().any(|r| r.range.as_deref() == Some(ms0_range.as_str())) {
            failures.push(format!(
                "{call}, cold, on chunks of minishard 1 of 0.shard only: {} requests (want at most {bound}: the shard \
                 index, minishard 1's index{}), minishard 0's index is {ms0_range}:{}",
                log.len(),
                if bound == 2 { "" } else { ", one per chunk" },
                log_text(&log)
            ));
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn request_counts_identity_raw() {
    request_counts(false);
}

#[test]
fn request_counts_murmur_gzip() {
    request_counts(true);
}

/// A server that ignores Range (answers 200 with the whole shard): the reader slices locally.
#[test]
fn server_without_range_support() {
    let (layer, root) = count_layer("no-range", true);
    let server = FileServer::start_with(&root, httpd::Config { honor_range: false }).unwrap();
    let url = format!("{}/layer", server.url());
    let m = layer.mips[0];
    let h = open(&url, &json!({})).unwrap();
    let (lo, hi) =
        ([m.offset[0] + 5, m.offset[1] + 3, m.offset[2] + 1], [m.offset[0] + 41, m.offset[1] + 30, m.offset[2] + 19]);
    let got = cutout(&h, 0, lo, hi, 2).unwrap_or_else(|e| panic!("cutout from a server without ranges: {e:?}"));
    assert_eq!(got, layer.expected(0, lo, hi, &|_| false, 0));
    let pts =
        [[m.offset[0], m.offset[1], m.offset[2]], [m.offset[0] + 63, m.offset[1] + 47, m.offset[2] + 39], [0, 20, 0]];
    assert_eq!(points(&h, 0, &pts, 2).unwrap(), expected_points(&layer, 0, &pts));
    assert!(server.take_log().iter().all(|r| r.range.is_none() || r.status == 200));
    drop(h);
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

// ------------------------------------------------------------------------------------------------
// (b) Bad input

/// The small layer of the bad-input cases: 16x16x8 uint16 in 8³ chunks (grid 2x2x1, ids
/// x | y<<1), identity hash, preshift 0, 1 minishard bit, 1 shard bit: `0.shard` holds cells
/// (0,0,0) (minishard 0) and (1,0,0) (minishard 1), `1.shard` the cells with y = 1.
fn small(dir: &Path, index_gzip: bool, data_gzip: bool, omit: &dyn Fn(u32, [i64; 3]) -> bool) -> Layer {
    let sharding = Sharding { index_gzip, data_gzip, ..Sharding::identity(0, 1, 1) };
    let mips = [Mip { size: [16, 16, 8], offset: [-8, 4, 2], chunk: [8, 8, 8], sharding: Some(sharding) }];
    write_layer(dir, "uint16", &mips, value, omit)
}

fn edit_info(layer: &Layer, f: impl FnOnce(&mut Value)) {
    let p = layer.dir.join("info");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn set_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// What a case must give.
enum Want {
    /// cv_open fails with this status and a message containing these strings.
    OpenFails(cv_status, Vec<String>),
    /// The cutout of the whole volume and points in every chunk fail with this status and a
    /// message containing these strings.
    ReadFails(cv_status, Vec<String>),
    /// Reads succeed; chunks of these cells read as background.
    Reads(Vec<[i64; 3]>),
}

/// One bad-input case: a small layer, how to spoil it, the options to open it with, what it must
/// give, and the minishard its read errors concern (their messages must name it).
struct Case {
    name: &'static str,
    index_gzip: bool,
    data_gzip: bool,
    omit: Option<[i64; 3]>,
    spoil: Box<dyn Fn(&Layer)>,
    opts: Value,
    want: Want,
    minishard: Option<u64>,
}

/// Run one case over file:// and over HTTP; failures are collected, not panicked, so that one
/// run reports every case. With `name_minishard`, read errors must also name `case.minishard`.
fn run_case(
    case: &Case,
    layer: &Layer,
    root: &Path,
    server: &FileServer,
    name_minishard: bool,
    failures: &mut Vec<String>,
) {
    let rel = layer.dir.strip_prefix(root).unwrap().display().to_string();
    let m = layer.mips[0];
    let (lo, hi) = (m.offset, m.hi());
    let cells: Vec<[i64; 3]> = (0..m.grid()[1]).flat_map(|y| (0..m.grid()[0]).map(move |x| [x, y, 0])).collect();
    // One point in each chunk.
    let pts: Vec<[i64; 3]> = cells.iter().map(|c| m.cell_box(*c).0.map(|v| v + 1)).collect();
    let opts = &case.opts;
    let missing: Vec<[i64; 3]> = match &case.want {
        Want::Reads(c) => c.clone(),
        _ => Vec::new(),
    };
    let bg = opts["background_color"].as_u64().unwrap_or(0);
    let mut must_name: Vec<String> = match &case.want {
        Want::ReadFails(_, w) | Want::OpenFails(_, w) => w.clone(),
        Want::Reads(_) => Vec::new(),
    };
    if name_minishard {
        if let Some(ms) = case.minishard {
            must_name.push(format!("minishard {ms}"));
        }
    }
    for url in [layer.url(), format!("{}/{rel}", server.url())] {
        let ctx = format!("{} ({url}, options {opts})", case.name);
        let h = match (open(&url, opts), &case.want) {
            (Err((st, msg)), Want::OpenFails(ws, _)) => {
                if st != *ws {
                    failures.push(format!("{ctx}: cv_open: status {st}, want {ws}: {msg}"));
                }
                for w in &must_name {
                    if !msg.contains(w.as_str()) {
                        failures.push(format!("{ctx}: cv_open: the message does not name {w:?}: {msg}"));
                    }
                }
                continue;
            }
            (Err((st, msg)), _) => {
                failures.push(format!("{ctx}: cv_open failed: status {st}: {msg}"));
                continue;
            }
            (Ok(_), Want::OpenFails(ws, _)) => {
                failures.push(format!("{ctx}: cv_open succeeded, want status {ws}"));
                continue;
            }
            (Ok(h), _) => h,
        };
        let expected_box = layer.expected(0, lo, hi, &|c| missing.contains(&c), bg);
        let expected_pts: Vec<u8> = pts
            .iter()
            .flat_map(|p| {
                let v = if missing.contains(&m.cell_of(*p)) { bg } else { value(0, *p) };
                v.to_le_bytes()[..2].to_vec()
            })
            .collect();
        let results = [
            ("cutout", cutout(&h, 0, lo, hi, 2), expected_box),
            ("cv_scattered_points", points(&h, 0, &pts, 2), expected_pts),
        ];
        for (call, got, expected) in results {
            match (got, &case.want) {
                (Ok(buf), Want::Reads(_)) => {
                    if buf != expected {
                        failures.push(format!("{ctx}: {call}: wrong values"));
                    }
                }
                (Ok(_), Want::ReadFails(ws, _) | Want::OpenFails(ws, _)) => {
                    failures.push(format!("{ctx}: {call} succeeded, want status {ws}"))
                }
                (Err((st, msg)), Want::ReadFails(ws, _)) => {
                    if st != *ws {
                        failures.push(format!("{ctx}: {call}: status {st}, want {ws}: {msg}"));
                    }
                    for w in &must_name {
                        if !msg.contains(w.as_str()) {
                            failures.push(format!("{ctx}: {call}: the message does not name {w:?}: {msg}"));
                        }
                    }
                }
                (Err((st, msg)), _) => failures.push(format!("{ctx}: {call}: status {st}: {msg}")),
            }
        }
    }
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

fn shard0(l: &Layer) -> PathBuf {
    l.shard_path(0, 0)
}

/// Rewrite `0.shard` of the small layer with `f` (given where its parts are).
fn edit0(l: &Layer, f: impl Fn(&mut Vec<u8>, &ShardFile)) {
    let mut b = std::fs::read(shard0(l)).unwrap();
    f(&mut b, &l.shards[0][&0]);
    std::fs::write(shard0(l), b).unwrap();
}

fn edit_sharding(f: impl Fn(&mut Value) + 'static) -> Box<dyn Fn(&Layer)> {
    Box::new(move |l: &Layer| edit_info(l, |v| f(&mut v["scales"][0]["sharding"])))
}

/// Every bad-input case. The small layer's `0.shard` (S = 32): minishard 0 = chunk id 0 (cell
/// (0,0,0), 1024 bytes at 32) then its index; minishard 1 = chunk id 1 (cell (1,0,0)) then its
/// index; `1.shard` holds the cells with y = 1.
fn bad_cases() -> Vec<Case> {
    let decode = |w: &[&str]| Want::ReadFails(CV_ERR_DECODE, words(w));
    let open_fails = |st: cv_status, w: &[&str]| Want::OpenFails(st, words(w));
    let c = |name: &'static str,
             index_gzip: bool,
             data_gzip: bool,
             spoil: Box<dyn Fn(&Layer)>,
             want: Want,
             minishard: Option<u64>| Case {
        name,
        index_gzip,
        data_gzip,
        omit: None,
        spoil,
        opts: json!({}),
        want,
        minishard,
    };
    let mut v = vec![
        // Sanity: the intact layer reads.
        c("intact", false, false, Box::new(|_| {}), Want::Reads(vec![]), None),
        c("intact, gzip", true, true, Box::new(|_| {}), Want::Reads(vec![]), None),
        // Truncated shard files.
        c(
            "shard file truncated inside the minishard 1 index",
            false,
            false,
            Box::new(|l| edit0(l, |b, f| b.truncate(f.minishards[&1].0 + 10))),
            decode(&["0.shard"]),
            Some(1),
        ),
        c(
            "shard file truncated inside the shard index",
            false,
            false,
            Box::new(|l| edit0(l, |b, _| b.truncate(20))),
            decode(&["0.shard"]),
            None,
        ),
        c("empty shard file", false, false, Box::new(|l| edit0(l, |b, _| b.clear())), decode(&["0.shard"]), None),
        // The shard index.
        c(
            "shard index entry of minishard 1 ending past the end of the file",
            false,
            false,
            Box::new(|l| edit0(l, |b, _| set_u64(b, 16 + 8, 1 << 20))),
            decode(&["0.shard"]),
            Some(1),
        ),
        c(
            "shard index entry of minishard 1 starting past the end of the file",
            false,
            false,
            Box::new(|l| {
                edit0(l, |b, _| {
                    set_u64(b, 16, 1 << 20);
                    set_u64(b, 24, (1 << 20) + 24);
                })
            }),
            decode(&["0.shard"]),
            Some(1),
        ),
        c(
            "shard index entry of minishard 0 ending before it starts",
            false,
            false,
            Box::new(|l| edit0(l, |b, _| set_u64(b, 0, 100))),
            decode(&["0.shard"]),
            Some(0),
        ),
        c(
            "shard index entry of minishard 0 with an overflowing end",
            false,
            false,
            Box::new(|l| edit0(l, |b, _| set_u64(b, 8, u64::MAX - 8))),
            decode(&["0.shard"]),
            Some(0),
        ),
        // Minishard indices.
        c(
            "corrupt gzip minishard index",
            true,
            false,
            Box::new(|l| {
                edit0(l, |b, f| {
                    let (a, e) = f.minishards[&0];
                    for x in &mut b[a + 10..e - 8] {
                        *x ^= 0x5a;
                    }
                })
            }),
            decode(&["0.shard"]),
            Some(0),
        ),
        c(
            "gzip minishard index that is not gzip at all",
            true,
            false,
            Box::new(|l| {
                edit0(l, |b, f| {
                    let (a, e) = f.minishards[&1];
                    b[a..e].fill(0x42);
                })
            }),
            decode(&["0.shard"]),
            Some(1),
        ),
        c(
            "minishard index of 23 bytes (not a multiple of 24)",
            false,
            false,
            Box::new(|l| {
                edit0(l, |b, f| {
                    let (a, _) = f.minishards[&0];
                    set_u64(b, 8, (a + 23 - 32) as u64);
                })
            }),
            decode(&["0.shard", "24"]),
            Some(0),
        ),
        c(
            "minishard index pointing its chunk past the end of the file",
            false,
            false,
            Box::new(|l| {
                edit0(l, |b, f| {
                    let (a, _) = f.minishards[&1];
                    set_u64(b, a + 16, 1 << 20); // the size of its one chunk
                })
            }),
            decode(&["0.shard"]),
            Some(1),
        ),
        c(
            "minishard index with an overflowing chunk size",
            false,
            false,
            Box::new(|l| {
                edit0(l, |b, f| {
                    let (a, _) = f.minishards[&1];
                    set_u64(b, a + 16, u64::MAX - 100);
                })
            }),
            decode(&["0.shard"]),
            Some(1),
        ),
        // Chunk payloads.
        c(
            "corrupt gzip chunk",
            false,
            true,
            Box::new(|l| {
                edit0(l, |b, f| {
                    let (a, e) = f.chunks[&1];
                    for x in &mut b[a + 10..e - 8] {
                        *x ^= 0xa5;
                    }
                })
            }),
            decode(&["0.shard"]),
            Some(1),
        ),
        c(
            "raw chunk of the wrong size",
            false,
            false,
            Box::new(|l| {
                edit0(l, |b, f| {
                    let (a, _) = f.minishards[&0];
                    set_u64(b, a + 16, 1000); // 1024 bytes stored
                })
            }),
            decode(&["0.shard"]),
            Some(0),
        ),
        // Specs.
        c(
            "unknown hash name",
            false,
            false,
            edit_sharding(|s| s["hash"] = json!("md5")),
            open_fails(CV_ERR_UNSUPPORTED, &["md5"]),
            None,
        ),
        c(
            "unknown sharding @type",
            false,
            false,
            edit_sharding(|s| s["@type"] = json!("neuroglancer_uint64_sharded_v2")),
            open_fails(CV_ERR_UNSUPPORTED, &["neuroglancer_uint64_sharded_v2"]),
            None,
        ),
        c(
            "minishard_bits + shard_bits = 72 > 64",
            false,
            false,
            edit_sharding(|s| {
                s["minishard_bits"] = json!(32);
                s["shard_bits"] = json!(40);
            }),
            open_fails(CV_ERR_DECODE, &["64"]),
            None,
        ),
        c(
            "shard_bits 65",
            false,
            false,
            edit_sharding(|s| s["shard_bits"] = json!(65)),
            open_fails(CV_ERR_DECODE, &["shard_bits"]),
            None,
        ),
        c(
            "negative preshift_bits",
            false,
            false,
            edit_sharding(|s| s["preshift_bits"] = json!(-1)),
            open_fails(CV_ERR_DECODE, &["preshift_bits"]),
            None,
        ),
        c(
            "unknown data_encoding",
            false,
            false,
            edit_sharding(|s| s["data_encoding"] = json!("zstd")),
            open_fails(CV_ERR_DECODE, &["data_encoding"]),
            None,
        ),
        c(
            "non-string minishard_index_encoding",
            false,
            false,
            edit_sharding(|s| s["minishard_index_encoding"] = json!(7)),
            open_fails(CV_ERR_DECODE, &["minishard_index_encoding"]),
            None,
        ),
        c(
            "a grid needing 66 Morton bits",
            false,
            false,
            Box::new(|l| {
                edit_info(l, |v| {
                    v["scales"][0]["size"] = json!([1u64 << 22, 1u64 << 22, 1u64 << 22]);
                    v["scales"][0]["chunk_sizes"] = json!([[1, 1, 1]]);
                })
            }),
            open_fails(CV_ERR_DECODE, &["64"]),
            None,
        ),
        // Missing shards and chunks.
        c(
            "missing shard file",
            false,
            false,
            Box::new(|l| std::fs::remove_file(l.shard_path(0, 1)).unwrap()),
            Want::ReadFails(CV_ERR_NOT_FOUND, words(&["1.shard"])),
            None,
        ),
    ];
    let gone = || -> Box<dyn Fn(&Layer)> { Box::new(|l: &Layer| std::fs::remove_file(l.shard_path(0, 1)).unwrap()) };
    let y1 = vec![[0, 1, 0], [1, 1, 0]];
    v.push(Case {
        opts: json!({"fill_missing": true}),
        ..c("missing shard file, fill_missing", false, false, gone(), Want::Reads(y1.clone()), None)
    });
    v.push(Case {
        opts: json!({"fill_missing": true, "background_color": 777}),
        ..c("missing shard file, fill_missing, background 777", false, false, gone(), Want::Reads(y1), None)
    });
    v.push(Case {
        omit: Some([1, 0, 0]),
        ..c(
            "chunk absent from its minishard",
            false,
            false,
            Box::new(|_| {}),
            Want::ReadFails(CV_ERR_NOT_FOUND, words(&["0.shard"])),
            Some(1),
        )
    });
    v.push(Case {
        omit: Some([0, 0, 0]),
        opts: json!({"fill_missing": true}),
        ..c(
            "chunk absent from its minishard, fill_missing",
            false,
            false,
            Box::new(|_| {}),
            Want::Reads(vec![[0, 0, 0]]),
            None,
        )
    });
    // An empty minishard: its shard index entry is (0, 0).
    v.push(Case {
        omit: Some([1, 0, 0]),
        opts: json!({"fill_missing": true, "background_color": 3}),
        ..c("empty minishard, fill_missing", true, true, Box::new(|_| {}), Want::Reads(vec![[1, 0, 0]]), None)
    });
    // A chunk listed in its minishard index with zero bytes.
    v.push(Case {
        opts: json!({"fill_missing": true}),
        ..c(
            "zero-byte chunk, fill_missing",
            false,
            false,
            Box::new(|l| {
                edit0(l, |b, f| {
                    let (a, _) = f.minishards[&1];
                    set_u64(b, a + 16, 0);
                })
            }),
            Want::Reads(vec![[1, 0, 0]]),
            None,
        )
    });
    v
}

fn run_bad_cases(name_minishard: bool) {
    let root = temp_dir(if name_minishard { "bad-names" } else { "bad" });
    let server = FileServer::start(&root).unwrap();
    let mut failures = Vec::new();
    let mut n = 0;
    for (i, case) in bad_cases().iter().enumerate() {
        if name_minishard && case.minishard.is_none() {
            continue;
        }
        n += 1;
        let omit = case.omit;
        let layer =
            small(&root.join(format!("case{i}")), case.index_gzip, case.data_gzip, &move |_, c| Some(c) == omit);
        (case.spoil)(&layer);
        run_case(case, &layer, &root, &server, name_minishard, &mut failures);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
    eprintln!("bad input: {n} cases, each over file:// and http://, cutout and points");
    assert!(failures.is_empty(), "{} of the bad-input checks failed:\n  - {}", failures.len(), failures.join("\n  - "));
}

/// Each bad shard, spec or missing piece: the right status (CV_ERR_DECODE for corrupt data,
/// CV_ERR_UNSUPPORTED for an unknown hash or type, CV_ERR_NOT_FOUND for what is missing without
/// fill_missing), a message naming the shard file, or the right values; never a crash.
#[test]
fn bad_shards_and_specs() {
    run_bad_cases(false);
}

/// The read errors of a corrupt or absent minishard index entry or chunk also name the
/// minishard (and so the chunk's place), over file:// and http://.
#[test]
fn bad_shard_errors_name_the_minishard() {
    run_bad_cases(true);
}

// ------------------------------------------------------------------------------------------------
// (c) The worked example of §4.6

/// `3.shard` exactly as tensorstore 0.1.86 wrote it (format digest §4.6).
const WORKED_3_SHARD: [u8; 94] = [
    0x08, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, //
    0x26, 0, 0, 0, 0, 0, 0, 0, 0x3e, 0, 0, 0, 0, 0, 0, 0, //
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x0c, 0, 0, 0, 0, 0, 0, 0, //
    0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, //
    0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x0e, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, //
    0, 0, 0, 0, 0, 0, 0x06, 0, 0, 0, 0, 0, 0, 0,
];

fn worked_value(_mip: u32, p: [i64; 3]) -> u64 {
    let (x, y, z) = (p[0] - 100, p[1] - 200, p[2] - 300);
    (16 * (x / 4) + 4 * (y / 4) + z / 4 + 1) as u64
}

fn words_of(b: &[u8]) -> Vec<u64> {
    b.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn worked_example_byte_exact() {
    let root = temp_dir("worked");
    let mips = [Mip {
        size: [10, 7, 5],
        offset: [100, 200, 300],
        chunk: [4, 4, 4],
        sharding: Some(Sharding::identity(1, 1, 2)),
    }];
    let layer = write_layer(&root.join("worked"), "uint8", &mips, worked_value, &|_, _| false);
    let spec = mips[0].sharding.unwrap();

    // How ids map to files: id = x0 | y0<<1 | z0<<2 | x1<<3, minishard y0, shard z0 + 2*x1.
    let grid = mips[0].grid();
    assert_eq!(grid, [3, 2, 2]);
    for x in 0..3 {
        for y in 0..2 {
            for z in 0..2 {
                let id = morton([x, y, z], grid);
                assert_eq!(id, (x & 1 | (y << 1) | (z << 2) | ((x >> 1) << 3)) as u64);
                assert_eq!(spec.locate(id), ((z + 2 * (x >> 1)) as u64, y as u64));
            }
        }
    }
    let dir = layer.dir.join("m0");
    let sizes: Vec<(String, u64)> = (0..4)
        .map(|s| {
            let f = spec.file(s);
            let n = std::fs::metadata(dir.join(&f)).unwrap().len();
            (f, n)
        })
        .collect();
    assert_eq!(
        sizes,
        [("0.shard", 352), ("1.shard", 184), ("2.shard", 136), ("3.shard", 94)].map(|(f, n)| (f.to_string(), n)),
        "shard file sizes of §4.6"
    );
    // 0.shard, byte for byte as §4.6 lists it.
    let b = std::fs::read(dir.join("0.shard")).unwrap();
    assert_eq!(words_of(&b[..0x20]), [0x80, 0xb0, 0x110, 0x140], "0.shard: shard index");
    assert!(b[0x20..0x60].iter().all(|&v| v == 0x01), "id 0 = cell (0,0,0)");
    assert!(b[0x60..0xa0].iter().all(|&v| v == 0x11), "id 1 = cell (1,0,0)");
    assert_eq!(words_of(&b[0xa0..0xd0]), [0, 1, 0, 0, 0x40, 0x40], "minishard 0 index");
    assert!(b[0xd0..0x100].iter().all(|&v| v == 0x05), "id 2 = cell (0,1,0), 4x3x4");
    assert!(b[0x100..0x130].iter().all(|&v| v == 0x15), "id 3 = cell (1,1,0)");
    assert_eq!(words_of(&b[0x130..0x160]), [2, 1, 0xb0, 0, 0x30, 0x30], "minishard 1 index (restarts from S)");
    assert_eq!(std::fs::read(dir.join("3.shard")).unwrap(), WORKED_3_SHARD, "3.shard");

    // The same bytes as tensorstore's files, when the reference layers are present.
    let reference = reference_dir().join("ts/sharded_worked_example");
    if let Ok(text) = std::fs::read_to_string(reference.join("info")) {
        let info: Value = serde_json::from_str(&text).unwrap();
        let key = info["scales"][0]["key"].as_str().unwrap().to_string();
        assert_eq!(info["scales"][0]["sharding"], spec.json(), "tensorstore's sharding spec");
        let mut names: Vec<String> = std::fs::read_dir(reference.join(&key))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["0.shard", "1.shard", "2.shard", "3.shard"]);
        for n in &names {
            assert_eq!(
                std::fs::read(reference.join(&key).join(n)).unwrap(),
                std::fs::read(dir.join(n)).unwrap(),
                "{n}: tensorstore's bytes differ from the digest's"
            );
        }
        eprintln!("worked example: the 4 shard files equal tensorstore's ({})", reference.display());
    } else if required() {
        panic!("CV_REQUIRE_REFERENCE=1 but {} has no info", reference.display());
    } else {
        eprintln!(
            "note: no tensorstore copy of the worked example at {} (tests/reference/make_layers.py writes it); \
             compared with the digest only",
            reference.display()
        );
    }

    // Read back: the whole volume, every voxel its chunk's marker; points; existence.
    let server = FileServer::start(&root).unwrap();
    for url in [layer.url(), format!("{}/worked", server.url())] {
        let h = open(&url, &json!({})).unwrap_or_else(|e| panic!("{url}: {e:?}"));
        let all = cutout(&h, 0, [100, 200, 300], [110, 207, 305], 1).unwrap();
        assert_eq!(all, layer.expected(0, [100, 200, 300], [110, 207, 305], &|_| false, 0), "{url}: whole volume");
        let part = cutout(&h, 0, [103, 203, 303], [109, 206, 305], 1).unwrap();
        assert_eq!(
            part,
            layer.expected(0, [103, 203, 303], [109, 206, 305], &|_| false, 0),
            "{url}: a box across 8 chunks"
        );
        let pts = [[100, 200, 300], [109, 206, 304], [108, 203, 304], [104, 204, 300], [103, 206, 303]];
        assert_eq!(points(&h, 0, &pts, 1).unwrap(), vec![0x01, 0x26, 0x22, 0x15, 0x05], "{url}: points");
        assert_eq!(chunks_exist(&h, 0, [100, 200, 300], [110, 207, 305]).unwrap(), vec![1; 12], "{url}: existence");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

/// The test writer agrees with the digest's hash vectors (§4.2).
#[test]
fn murmur_vectors() {
    assert_eq!(murmur3(0), 0x4772_b084_e028_ae41);
    assert_eq!(murmur3(1), 0xe8bd_67d6_16d4_ce9a);
    assert_eq!(murmur3(42), 0xc20b_94f9_5119_f47a);
}

// ------------------------------------------------------------------------------------------------
// More layouts read back: two-digit shard names, shard_bits 0, Morton bits above
// preshift+minishard+shard, preshift 64, an unsharded mip next to sharded ones.

#[test]
fn layouts_read_back() {
    let root = temp_dir("layouts");
    let server = FileServer::start(&root).unwrap();
    let geoms = [([37, 29, 11], [-13, 7, -5], [8, 8, 4]), ([45, 20, 19], [100, -60, 3], [16, 4, 8])];
    let shardings = [
        Sharding {
            hash: Hash::Murmur,
            preshift: 0,
            minishard_bits: 1,
            shard_bits: 6,
            index_gzip: true,
            data_gzip: false,
        },
        Sharding {
            hash: Hash::Identity,
            preshift: 2,
            minishard_bits: 3,
            shard_bits: 0,
            index_gzip: false,
            data_gzip: true,
        },
        Sharding::identity(0, 1, 2), // fewer bits than the grid's: ids wrap onto the same minishards
        Sharding::identity(64, 0, 0), // every id hashes 0
        Sharding {
            hash: Hash::Murmur,
            preshift: 1,
            minishard_bits: 0,
            shard_bits: 9,
            index_gzip: false,
            data_gzip: false,
        },
    ];
    let mut n = 0;
    for (gi, g) in geoms.iter().enumerate() {
        for (si, s) in shardings.iter().enumerate() {
            let half = [(g.0[0] + 1) / 2, (g.0[1] + 1) / 2, g.0[2]];
            let mips = [
                Mip { size: g.0, offset: g.1, chunk: g.2, sharding: Some(*s) },
                Mip {
                    size: half,
                    offset: [g.1[0] / 2, g.1[1] / 2, g.1[2]],
                    chunk: g.2,
                    sharding: if si % 2 == 0 { None } else { Some(shardings[(si + 1) % 5]) },
                },
            ];
            let name = format!("l{gi}{si}");
            let layer = write_layer(&root.join(&name), "uint16", &mips, value, &|_, _| false);
            if s.shard_bits > 4 {
                assert!(layer.shards[0].keys().any(|&k| spec_name_len(s, k) >= 2));
            }
            for url in [layer.url(), format!("{}/{name}", server.url())] {
                let h = open(&url, &json!({})).unwrap_or_else(|e| panic!("{url}: {e:?}"));
                for (mi, m) in mips.iter().enumerate() {
                    let got =
                        cutout(&h, mi as u32, m.offset, m.hi(), 2).unwrap_or_else(|e| panic!("{url} mip {mi}: {e:?}"));
                    assert_eq!(
                        got,
                        layer.expected(mi as u32, m.offset, m.hi(), &|_| false, 0),
                        "{url} mip {mi} (sharding {s:?})"
                    );
                    let lo = [m.offset[0] + 3, m.offset[1] + 1, m.offset[2] + 1];
                    let hi = [m.hi()[0] - 2, m.hi()[1] - 1, m.hi()[2]];
                    let got = cutout(&h, mi as u32, lo, hi, 2).unwrap();
                    assert_eq!(got, layer.expected(mi as u32, lo, hi, &|_| false, 0), "{url} mip {mi} inner box");
                    let pts =
                        [m.offset, [m.hi()[0] - 1, m.hi()[1] - 1, m.hi()[2] - 1], lo, [hi[0] - 1, lo[1], hi[2] - 1]];
                    assert_eq!(
                        points(&h, mi as u32, &pts, 2).unwrap(),
                        expected_points(&layer, mi as u32, &pts),
                        "{url} mip {mi} points"
                    );
                    let flags = chunks_exist(&h, mi as u32, m.offset, m.hi()).unwrap();
                    assert!(flags.iter().all(|&f| f == 1), "{url} mip {mi}: existence {flags:?}");
                    n += 1;
                }
            }
        }
    }
    eprintln!("layouts: {n} (layer, mip, protocol) read back");
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

fn spec_name_len(s: &Sharding, shard: u64) -> usize {
    s.file(shard).trim_end_matches(".shard").len()
}

// ------------------------------------------------------------------------------------------------
// CLI: points and exists

/// A two-mip sharded layer with one shard file deleted (mip 0) and one chunk omitted (mip 1).
fn cli_layer(root: &Path) -> (Layer, Vec<[i64; 3]>, [i64; 3]) {
    let mips = [
        Mip { size: [40, 30, 9], offset: [-10, 5, 0], chunk: [8, 8, 3], sharding: Some(Sharding::identity(1, 1, 2)) },
        Mip {
            size: [20, 15, 9],
            offset: [-5, 2, 0],
            chunk: [8, 8, 3],
            sharding: Some(Sharding { hash: Hash::Murmur, ..Sharding::identity(0, 1, 5) }),
        },
    ];
    let omitted = [1, 1, 2];
    let layer = write_layer(&root.join("cli"), "uint16", &mips, value, &|mip, c| mip == 1 && c == omitted);
    // Delete the shard of cell (0, 0, 0) at mip 0; its cells are missing.
    let spec = mips[0].sharding.unwrap();
    let grid = mips[0].grid();
    let (gone, _) = spec.locate(morton([0, 0, 0], grid));
    std::fs::remove_file(layer.shard_path(0, gone)).unwrap();
    let mut missing = Vec::new();
    for z in 0..grid[2] {
        for y in 0..grid[1] {
            for x in 0..grid[0] {
                if spec.locate(morton([x, y, z], grid)).0 == gone {
                    missing.push([x, y, z]);
                }
            }
        }
    }
    (layer, missing, omitted)
}

fn fmt_box(lo: [i64; 3], hi: [i64; 3]) -> String {
    format!("[{},{},{}]..[{},{},{}]", lo[0], lo[1], lo[2], hi[0], hi[1], hi[2])
}

#[test]
fn cli_points() {
    let root = temp_dir("cli-points");
    let (layer, missing0, omitted1) = cli_layer(&root);
    let m1 = layer.mips[1];
    // Points at mip 1, away from the omitted chunk, in three spellings and with comments.
    let pts: Vec<[i64; 3]> = vec![[-5, 2, 0], [14, 16, 8], [3, 9, 4], [10, 3, 1], [-5, 16, 8], [3, 9, 4]];
    assert!(pts.iter().all(|p| m1.cell_of(*p) != omitted1));
    let file = root.join("pts.txt");
    let mut text = String::from("# x y z at mip 1\n\n");
    for (i, p) in pts.iter().enumerate() {
        text.push_str(&match i % 3 {
            0 => format!("{} {} {}\n", p[0], p[1], p[2]),
            1 => format!("{},{},{}\n", p[0], p[1], p[2]),
            _ => format!("  {}, {}  {}  \n", p[0], p[1], p[2]),
        });
    }
    std::fs::write(&file, text).unwrap();
    let out = cli().args(["points", &layer.url()]).arg(&file).args(["--mip", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let want: Vec<String> = pts.iter().map(|p| format!("{} {} {}: {}", p[0], p[1], p[2], value(1, *p))).collect();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want, "points output");

    // -o FILE: the raw values, point after point.
    let raw = root.join("pts.bin");
    let out = cli().args(["points", &layer.url()]).arg(&file).args(["--mip", "1", "-o"]).arg(&raw).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&raw).unwrap(), expected_points(&layer, 1, &pts));

    // A point in a chunk of the deleted shard (mip 0): refused, then background with --fill-missing.
    let m0 = layer.mips[0];
    let gone_pt = m0.cell_box(missing0[0]).0;
    let ok_pt = m0
        .cell_box(
            *(0..m0.grid()[0]).map(|x| [x, 1, 1]).collect::<Vec<_>>().iter().find(|c| !missing0.contains(c)).unwrap(),
        )
        .0;
    std::fs::write(
        &file,
        format!("{} {} {}\n{} {} {}\n", gone_pt[0], gone_pt[1], gone_pt[2], ok_pt[0], ok_pt[1], ok_pt[2]),
    )
    .unwrap();
    let out = cli().args(["points", &layer.url()]).arg(&file).args(["--mip", "0"]).output().unwrap();
    assert!(!out.status.success(), "a point in a missing shard must fail without --fill-missing");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line on stderr: {err}");
    assert!(err.contains(".shard"), "the error names the shard: {err}");
    let out = cli().args(["points", &layer.url()]).arg(&file).args(["--mip", "0", "--fill-missing"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().collect::<Vec<_>>(),
        [
            format!("{} {} {}: 0", gone_pt[0], gone_pt[1], gone_pt[2]),
            format!("{} {} {}: {}", ok_pt[0], ok_pt[1], ok_pt[2], value(0, ok_pt))
        ]
    );

    // Outside the bounds: refused, background with --unbounded.
    std::fs::write(&file, "-11 5 0\n").unwrap();
    let out = cli().args(["points", &layer.url()]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    let out = cli()
        .args(["points", &layer.url()])
        .arg(&file)
        .args(["--unbounded", "--options", r#"{"background_color": 9}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "-11 5 0: 9");

    // A malformed line: a one-line error naming the line.
    std::fs::write(&file, "1 2 3\n4 5\n").unwrap();
    let out = cli().args(["points", &layer.url()]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(":2:"), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn cli_exists() {
    let root = temp_dir("cli-exists");
    let (layer, missing0, omitted1) = cli_layer(&root);
    let server = FileServer::start(&root).unwrap();
    for (mip, missing) in [(0u32, missing0.clone()), (1, vec![omitted1])] {
        let m = layer.mips[mip as usize];
        // A box cutting chunks at both ends, clipped at the volume's high corner.
        let lo = [m.offset[0] + 1, m.offset[1] + 2, m.offset[2]];
        let hi = [m.hi()[0] + 5, m.hi()[1], m.hi()[2] - 1];
        let bbox = format!("{},{},{},{},{},{}", lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]);
        let (c0, c1) = (m.cell_of(lo), m.cell_of([m.hi()[0] - 1, hi[1] - 1, hi[2] - 1]));
        let mut want = Vec::new();
        let mut n_present = 0;
        for z in c0[2]..=c1[2] {
            for y in c0[1]..=c1[1] {
                for x in c0[0]..=c1[0] {
                    let (a, b) = m.cell_box([x, y, z]);
                    let present = !missing.contains(&[x, y, z]);
                    n_present += usize::from(present);
                    want.push(format!("{} {}", if present { "present" } else { "missing" }, fmt_box(a, b)));
                }
            }
        }
        want.push(format!("{n_present} of {} chunk(s) present", want.len()));
        assert!(n_present < want.len() - 1, "mip {mip}: the box should meet a missing chunk");
        for url in [layer.url(), format!("{}/cli", server.url())] {
            // The box leaves the volume: --unbounded counts its inside (without, it is refused).
            let out = cli()
                .args(["exists", &url, "--bbox", &bbox, "--mip", &mip.to_string(), "--unbounded"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(
                String::from_utf8(out.stdout).unwrap().lines().collect::<Vec<_>>(),
                want,
                "{url} mip {mip}: exists"
            );
        }
    }
    // No --bbox: a one-line usage error.
    let out = cli().args(["exists", &layer.url()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bbox"));
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
