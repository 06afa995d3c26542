//! Tiny Neuroglancer Precomputed layers written into temporary directories, for tests.
//!
//! A [`Spec`] describes a layer (data type, channels, size, offset, chunk size, chunk format,
//! number of mips); [`Layer::write`] writes its `info` and every chunk, whose voxels follow a
//! fixed formula ([`Pattern`]) so that a test can compute the bytes any box must read as
//! ([`Layer::expected`]).
//!
//! Chunk formats: raw, raw + gzip (`.gz` suffix, as cloud-volume writes on `file://`),
//! compressed_segmentation (a small encoder written from the format digest, §3), optionally
//! gzipped, and png (8/16-bit, 1-4 channels, through the `png` crate). JPEG layers get chunks of
//! corrupt bytes only ([`corrupt_jpeg`]), since no encoder is at hand.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::files::{write_file, TempDir};

/// How voxel values are generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `x*7 + y*131 + z*1031 + c*50021` (as i64), truncated to the element type: many distinct
    /// values, negative ones for signed types. Floats get `(v mod 100003) * 0.25 - 5000`.
    Gradient,
    /// Label-like: few distinct values per 8-voxel neighbourhood, with high bits set for uint64.
    Labels,
}

/// The chunk files written for every cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunks {
    Raw,
    RawGz,
    /// Raw and raw + gzip alternating over the cells (a mixed layer).
    RawMixed,
    Cseg,
    CsegGz,
    Png,
    /// `encoding: jpeg` in the info, every chunk corrupt JPEG bytes.
    CorruptJpeg,
    /// Only the info; no chunk at all.
    None,
}

impl Chunks {
    pub fn encoding(self) -> &'static str {
        match self {
            Chunks::Raw | Chunks::RawGz | Chunks::RawMixed | Chunks::None => "raw",
            Chunks::Cseg | Chunks::CsegGz => "compressed_segmentation",
            Chunks::Png => "png",
            Chunks::CorruptJpeg => "jpeg",
        }
    }
}

/// A layer description. Mip `m > 0` halves x and y of mip 0 (size rounded up, offset down) and
/// doubles their resolution; its voxels follow the same pattern in its own coordinates.
#[derive(Clone, Debug)]
pub struct Spec {
    pub data_type: &'static str,
    pub num_channels: usize,
    pub size: [i64; 3],
    pub voxel_offset: [i64; 3],
    pub chunk_size: [i64; 3],
    pub resolution: [f64; 3],
    pub chunks: Chunks,
    pub block_size: [i64; 3],
    pub pattern: Pattern,
    pub mips: u32,
    pub layer_type: &'static str,
}

impl Spec {
    pub fn new(data_type: &'static str, size: [i64; 3], chunk_size: [i64; 3]) -> Spec {
        let seg = matches!(data_type, "uint32" | "uint64");
        Spec {
            data_type,
            num_channels: 1,
            size,
            voxel_offset: [0, 0, 0],
            chunk_size,
            resolution: [4.0, 4.0, 40.0],
            chunks: Chunks::Raw,
            block_size: [8, 8, 8],
            pattern: Pattern::Gradient,
            mips: 1,
            layer_type: if seg { "segmentation" } else { "image" },
        }
    }
    pub fn offset(mut self, o: [i64; 3]) -> Spec {
        self.voxel_offset = o;
        self
    }
    pub fn channels(mut self, n: usize) -> Spec {
        self.num_channels = n;
        self
    }
    pub fn chunks(mut self, c: Chunks) -> Spec {
        self.chunks = c;
        self
    }
    pub fn block(mut self, b: [i64; 3]) -> Spec {
        self.block_size = b;
        self
    }
    pub fn pattern(mut self, p: Pattern) -> Spec {
        self.pattern = p;
        self
    }
    pub fn mips(mut self, n: u32) -> Spec {
        self.mips = n.max(1);
        self
    }

    pub fn elem_size(&self) -> usize {
        elem_size(self.data_type)
    }

    /// `(voxel_offset, size, resolution)` of `mip`.
    pub fn geometry(&self, mip: u32) -> ([i64; 3], [i64; 3], [f64; 3]) {
        let mut o = self.voxel_offset;
        let mut s = self.size;
        let mut r = self.resolution;
        for _ in 0..mip {
            for d in 0..2 {
                let hi = o[d] + s[d];
                o[d] = o[d].div_euclid(2);
                let nhi = (hi + 1).div_euclid(2);
                s[d] = (nhi - o[d]).max(1);
                r[d] *= 2.0;
            }
        }
        (o, s, r)
    }

    pub fn key(&self, mip: u32) -> String {
        format!("s{mip}")
    }

    /// Bounds `[lo, hi)` of `mip`.
    pub fn bounds(&self, mip: u32) -> ([i64; 3], [i64; 3]) {
        let (o, s, _) = self.geometry(mip);
        (o, [o[0] + s[0], o[1] + s[1], o[2] + s[2]])
    }

    /// Every cell of `mip` as its clipped box `(lo, hi)`, x fastest.
    pub fn cells(&self, mip: u32) -> Vec<([i64; 3], [i64; 3])> {
        let (o, s, _) = self.geometry(mip);
        let c = self.chunk_size;
        let g: Vec<i64> = (0..3).map(|d| (s[d] + c[d] - 1) / c[d]).collect();
        let mut out = Vec::new();
        for gz in 0..g[2] {
            for gy in 0..g[1] {
                for gx in 0..g[0] {
                    let gg = [gx, gy, gz];
                    let mut lo = [0; 3];
                    let mut hi = [0; 3];
                    for d in 0..3 {
                        lo[d] = o[d] + gg[d] * c[d];
                        hi[d] = o[d] + ((gg[d] + 1) * c[d]).min(s[d]);
                    }
                    out.push((lo, hi));
                }
            }
        }
        out
    }

    /// The info document of this spec, with an unknown top-level member kept for round trips.
    pub fn info(&self) -> Value {
        let scales: Vec<Value> = (0..self.mips)
            .map(|m| {
                let (o, s, r) = self.geometry(m);
                let mut sc = json!({
                    "key": self.key(m),
                    "size": s,
                    "voxel_offset": o,
                    "resolution": r,
                    "chunk_sizes": [self.chunk_size],
                    "encoding": self.chunks.encoding(),
                });
                if self.chunks.encoding() == "compressed_segmentation" {
                    sc["compressed_segmentation_block_size"] = json!(self.block_size);
                }
                sc
            })
            .collect();
        json!({
            "type": self.layer_type,
            "data_type": self.data_type,
            "num_channels": self.num_channels,
            "scales": scales,
            "extra_member": {"kept": true},
        })
    }
}

/// Bytes per element of an info `data_type` name.
pub fn elem_size(data_type: &str) -> usize {
    match data_type {
        "uint8" | "int8" => 1,
        "uint16" | "int16" => 2,
        "uint32" | "int32" | "float32" => 4,
        "uint64" | "int64" | "float64" => 8,
        other => panic!("unknown data type {other}"),
    }
}

/// The raw 64-bit value of the pattern at a voxel (before conversion to the element type).
pub fn pattern_u64(p: Pattern, x: i64, y: i64, z: i64, c: usize) -> u64 {
    match p {
        Pattern::Gradient => (x * 7 + y * 131 + z * 1031 + c as i64 * 50021) as u64,
        Pattern::Labels => {
            let base = (x.div_euclid(3) + 5 * y.div_euclid(4) + 17 * z.div_euclid(5)).rem_euclid(7) as u64;
            (base + 1) * 0x0100_0000_0001 + c as u64 * 1000
        }
    }
}

/// The little-endian element bytes of the pattern at a voxel.
pub fn element(data_type: &str, p: Pattern, x: i64, y: i64, z: i64, c: usize) -> Vec<u8> {
    let v = pattern_u64(p, x, y, z, c);
    match data_type {
        "float32" => (((v % 100_003) as f32) * 0.25 - 5000.0).to_le_bytes().to_vec(),
        "float64" => ((((v % 100_003) as f64) * 0.25) - 5000.0).to_le_bytes().to_vec(),
        t => v.to_le_bytes()[..elem_size(t)].to_vec(),
    }
}

/// The little-endian bytes of `value` cast to the element type (Rust `as`: saturating, toward 0).
pub fn scalar(data_type: &str, value: f64) -> Vec<u8> {
    match data_type {
        "uint8" => vec![value as u8],
        "int8" => (value as i8).to_le_bytes().to_vec(),
        "uint16" => (value as u16).to_le_bytes().to_vec(),
        "int16" => (value as i16).to_le_bytes().to_vec(),
        "uint32" => (value as u32).to_le_bytes().to_vec(),
        "int32" => (value as i32).to_le_bytes().to_vec(),
        "uint64" => (value as u64).to_le_bytes().to_vec(),
        "int64" => (value as i64).to_le_bytes().to_vec(),
        "float32" => (value as f32).to_le_bytes().to_vec(),
        "float64" => value.to_le_bytes().to_vec(),
        other => panic!("unknown data type {other}"),
    }
}

/// gzip `data` (RFC 1952, one member).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// The `x-y_y-y_z-z` name of a cell.
pub fn chunk_name(lo: [i64; 3], hi: [i64; 3]) -> String {
    format!("{}-{}_{}-{}_{}-{}", lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
}

/// A layer written on disk. The directory goes away when the layer is dropped.
pub struct Layer {
    pub dir: TempDir,
    pub spec: Spec,
}

impl Layer {
    /// Write the info and every chunk of every mip of `spec` into a new temp directory.
    pub fn write(spec: Spec) -> Layer {
        Self::write_tagged(spec, "layer")
    }

    pub fn write_tagged(spec: Spec, tag: &str) -> Layer {
        let dir = TempDir::new(tag);
        let layer = Layer { dir, spec };
        layer.write_info(&layer.spec.info());
        for mip in 0..layer.spec.mips {
            for (i, (lo, hi)) in layer.spec.cells(mip).into_iter().enumerate() {
                layer.write_chunk_as(mip, lo, hi, layer.spec.chunks, i);
            }
        }
        layer
    }

    /// Write only the info of `spec` (no chunks).
    pub fn info_only(spec: Spec) -> Layer {
        let layer = Layer { dir: TempDir::new("info-only"), spec };
        layer.write_info(&layer.spec.info());
        layer
    }

    pub fn write_info(&self, info: &Value) {
        write_file(&self.dir.path().join("info"), info.to_string().as_bytes());
    }

    /// Replace the info with arbitrary text (for malformed infos).
    pub fn write_info_text(&self, text: &str) {
        write_file(&self.dir.path().join("info"), text.as_bytes());
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        self.dir.url()
    }

    /// `<scale key>/<chunk name>`: the key of a cell, relative to the layer.
    pub fn chunk_key(&self, mip: u32, lo: [i64; 3], hi: [i64; 3]) -> String {
        format!("{}/{}", self.spec.key(mip), chunk_name(lo, hi))
    }

    /// The file of a cell, without compression suffix.
    pub fn chunk_path(&self, mip: u32, lo: [i64; 3], hi: [i64; 3]) -> PathBuf {
        self.dir.path().join(self.chunk_key(mip, lo, hi))
    }

    /// Remove a cell's file (whatever its suffix).
    pub fn remove_chunk(&self, mip: u32, lo: [i64; 3], hi: [i64; 3]) {
        let p = self.chunk_path(mip, lo, hi);
        for suffix in ["", ".gz"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
    }

    /// Overwrite a cell with `bytes` (removing any other version of it first).
    pub fn put_chunk(&self, mip: u32, lo: [i64; 3], hi: [i64; 3], suffix: &str, bytes: &[u8]) {
        self.remove_chunk(mip, lo, hi);
        let p = self.chunk_path(mip, lo, hi);
        write_file(Path::new(&format!("{}{suffix}", p.display())), bytes);
    }

    /// The decoded bytes of a cell: planar Fortran order `[x, y, z, c]`.
    pub fn planar(&self, lo: [i64; 3], hi: [i64; 3]) -> Vec<u8> {
        planar(&self.spec, lo, hi)
    }

    /// The encoded (uncompressed) bytes of a cell in the spec's format.
    pub fn encode(&self, lo: [i64; 3], hi: [i64; 3]) -> Vec<u8> {
        match self.spec.chunks {
            Chunks::Raw | Chunks::RawGz | Chunks::RawMixed | Chunks::None => self.planar(lo, hi),
            Chunks::Cseg | Chunks::CsegGz => self.cseg(lo, hi),
            Chunks::Png => self.png(lo, hi),
            Chunks::CorruptJpeg => corrupt_jpeg(),
        }
    }

    fn write_chunk_as(&self, mip: u32, lo: [i64; 3], hi: [i64; 3], how: Chunks, index: usize) {
        let p = self.chunk_path(mip, lo, hi);
        let plain = |b: Vec<u8>| write_file(&p, &b);
        let gz = |b: Vec<u8>| write_file(Path::new(&format!("{}.gz", p.display())), &gzip(&b));
        match how {
            Chunks::None => {}
            Chunks::Raw | Chunks::Cseg | Chunks::Png | Chunks::CorruptJpeg => plain(self.encode(lo, hi)),
            Chunks::RawGz | Chunks::CsegGz => gz(self.encode(lo, hi)),
            Chunks::RawMixed => {
                if index % 2 == 0 {
                    plain(self.planar(lo, hi))
                } else {
                    gz(self.planar(lo, hi))
                }
            }
        }
    }

    /// The cell as a compressed_segmentation chunk (uint32/uint64 layers).
    pub fn cseg(&self, lo: [i64; 3], hi: [i64; 3]) -> Vec<u8> {
        let wide = match self.spec.data_type {
            "uint32" => false,
            "uint64" => true,
            t => panic!("compressed_segmentation cannot hold {t}"),
        };
        let shape = [(hi[0] - lo[0]) as usize, (hi[1] - lo[1]) as usize, (hi[2] - lo[2]) as usize];
        let n = shape[0] * shape[1] * shape[2];
        let data = self.planar(lo, hi);
        let es = self.spec.elem_size();
        let values: Vec<u64> = data
            .chunks_exact(es)
            .map(|b| {
                let mut w = [0u8; 8];
                w[..es].copy_from_slice(b);
                u64::from_le_bytes(w)
            })
            .collect();
        assert_eq!(values.len(), n * self.spec.num_channels);
        let b = self.spec.block_size.map(|v| v as usize);
        cseg_encode(&values, shape, self.spec.num_channels, b, wide)
    }

    /// The cell as a PNG: width sx, height sy*sz, 8 or 16 bits, channels interleaved.
    pub fn png(&self, lo: [i64; 3], hi: [i64; 3]) -> Vec<u8> {
        let s = [(hi[0] - lo[0]) as u32, (hi[1] - lo[1]) as u32, (hi[2] - lo[2]) as u32];
        let planar = self.planar(lo, hi);
        let depth = self.spec.elem_size();
        let nc = self.spec.num_channels;
        let pixels = interleave(&planar, nc, depth);
        png_encode(&pixels, s[0], s[1] * s[2], nc, depth)
    }

    /// The bytes a cutout of `[lo, hi)` at `mip` must give: voxels outside the bounds, and in
    /// the cells listed in `missing` (each `(lo, hi)`), read as `background`.
    pub fn expected_with(
        &self,
        mip: u32,
        lo: [i64; 3],
        hi: [i64; 3],
        background: f64,
        missing: &[([i64; 3], [i64; 3])],
    ) -> Vec<u8> {
        let (blo, bhi) = self.spec.bounds(mip);
        let bg = scalar(self.spec.data_type, background);
        let es = self.spec.elem_size();
        let mut out = Vec::new();
        let inside = |x: i64, y: i64, z: i64| {
            let p = [x, y, z];
            (0..3).all(|d| blo[d] <= p[d] && p[d] < bhi[d])
                && !missing.iter().any(|(ml, mh)| (0..3).all(|d| ml[d] <= p[d] && p[d] < mh[d]))
        };
        for c in 0..self.spec.num_channels {
            for z in lo[2]..hi[2] {
                for y in lo[1]..hi[1] {
                    for x in lo[0]..hi[0] {
                        if inside(x, y, z) {
                            out.extend(element(self.spec.data_type, self.spec.pattern, x, y, z, c));
                        } else {
                            out.extend(&bg);
                        }
                    }
                }
            }
        }
        debug_assert_eq!(out.len() % es, 0);
        out
    }

    /// The bytes a cutout of `[lo, hi)` at `mip` must give (outside the bounds: `background`).
    pub fn expected(&self, mip: u32, lo: [i64; 3], hi: [i64; 3], background: f64) -> Vec<u8> {
        self.expected_with(mip, lo, hi, background, &[])
    }
}

/// The voxels of `[lo, hi)` in planar Fortran order `[x, y, z, c]`.
pub fn planar(spec: &Spec, lo: [i64; 3], hi: [i64; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in 0..spec.num_channels {
        for z in lo[2]..hi[2] {
            for y in lo[1]..hi[1] {
                for x in lo[0]..hi[0] {
                    out.extend(element(spec.data_type, spec.pattern, x, y, z, c));
                }
            }
        }
    }
    out
}

/// Planar `[x, y, z, c]` to interleaved `[c, x, y, z]` (pixels with their channels together).
pub fn interleave(planar: &[u8], channels: usize, item: usize) -> Vec<u8> {
    let per_channel = planar.len() / channels;
    let voxels = per_channel / item;
    let mut out = vec![0u8; planar.len()];
    for c in 0..channels {
        for v in 0..voxels {
            let src = c * per_channel + v * item;
            let dst = (v * channels + c) * item;
            out[dst..dst + item].copy_from_slice(&planar[src..src + item]);
        }
    }
    out
}

/// Encode interleaved little-endian samples as a PNG of `width` x `height` with `channels`
/// components of `depth` bytes (1 or 2; 16-bit samples are written big-endian, as PNG wants).
pub fn png_encode(pixels: &[u8], width: u32, height: u32, channels: usize, depth: usize) -> Vec<u8> {
    let color = match channels {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        n => panic!("png cannot hold {n} channels"),
    };
    let bit_depth = match depth {
        1 => png::BitDepth::Eight,
        2 => png::BitDepth::Sixteen,
        d => panic!("png cannot hold {d}-byte samples"),
    };
    let mut data = pixels.to_vec();
    if depth == 2 {
        for s in data.chunks_exact_mut(2) {
            s.swap(0, 1);
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(color);
        enc.set_depth(bit_depth);
        let mut w = enc.write_header().expect("png header");
        w.write_image_data(&data).expect("png data");
        w.finish().expect("png finish");
    }
    out
}

/// Bytes that start like a JPEG (SOI, an APP0 marker) and then turn to garbage.
pub fn corrupt_jpeg() -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00];
    v.extend([0x00, 0x01, 0x00, 0x01, 0x00, 0x00]);
    // A start-of-frame claiming a 4000x4000 image, then noise and no end of image.
    v.extend([0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x0F, 0xA0, 0x0F, 0xA0, 0x01, 0x01, 0x11, 0x00]);
    v.extend((0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    v
}

/// The canonical compressed_segmentation encoding of `values` (planar `[x, y, z, c]`, `shape`
/// the clipped chunk shape) with block size `block`; `wide` selects uint64 tables.
pub fn cseg_encode(values: &[u64], shape: [usize; 3], channels: usize, block: [usize; 3], wide: bool) -> Vec<u8> {
    let n = shape[0] * shape[1] * shape[2];
    assert_eq!(values.len(), n * channels);
    let mut words: Vec<u32> = vec![0; channels];
    for c in 0..channels {
        words[c] = words.len() as u32;
        let ch = cseg_channel(&values[c * n..(c + 1) * n], shape, block, wide);
        words.extend(ch);
    }
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn cseg_channel(values: &[u64], shape: [usize; 3], block: [usize; 3], wide: bool) -> Vec<u32> {
    let gb = [0, 1, 2].map(|d| shape[d].div_ceil(block[d]));
    let n_blocks = gb[0] * gb[1] * gb[2];
    let block_voxels = block[0] * block[1] * block[2];
    let mut w: Vec<u32> = vec![0; 2 * n_blocks];
    let mut tables: Vec<(Vec<u64>, usize)> = Vec::new();
    for bz in 0..gb[2] {
        for by in 0..gb[1] {
            for bx in 0..gb[0] {
                let bi = bx + gb[0] * (by + gb[1] * bz);
                let b0 = [bx * block[0], by * block[1], bz * block[2]];
                // Distinct values of the voxels inside the chunk.
                let mut table: Vec<u64> = Vec::new();
                let at = |x: usize, y: usize, z: usize| values[x + shape[0] * (y + shape[1] * z)];
                for z in b0[2]..(b0[2] + block[2]).min(shape[2]) {
                    for y in b0[1]..(b0[1] + block[1]).min(shape[1]) {
                        for x in b0[0]..(b0[0] + block[0]).min(shape[0]) {
                            table.push(at(x, y, z));
                        }
                    }
                }
                table.sort_unstable();
                table.dedup();
                let bits: u32 = match table.len() {
                    0 | 1 => 0,
                    2 => 1,
                    3..=4 => 2,
                    5..=16 => 4,
                    17..=256 => 8,
                    257..=65536 => 16,
                    _ => 32,
                };
                let values_off = w.len();
                let n_words = (bits as usize * block_voxels).div_ceil(32);
                w.resize(values_off + n_words, 0);
                if bits > 0 {
                    for z in 0..block[2] {
                        for y in 0..block[1] {
                            for x in 0..block[0] {
                                let (ax, ay, az) = (b0[0] + x, b0[1] + y, b0[2] + z);
                                if ax >= shape[0] || ay >= shape[1] || az >= shape[2] {
                                    continue; // padding: index 0
                                }
                                let idx = table.binary_search(&at(ax, ay, az)).expect("in table") as u32;
                                let k = x + block[0] * (y + block[1] * z);
                                let bit = k * bits as usize;
                                w[values_off + (bit >> 5)] |= idx << (bit & 31);
                            }
                        }
                    }
                }
                let table_off = match tables.iter().find(|(t, _)| *t == table) {
                    Some((_, off)) => *off,
                    None => {
                        let off = w.len();
                        for v in &table {
                            w.push(*v as u32);
                            if wide {
                                w.push((*v >> 32) as u32);
                            }
                        }
                        tables.push((table, off));
                        off
                    }
                };
                w[2 * bi] = table_off as u32 | (bits << 24);
                w[2 * bi + 1] = values_off as u32;
            }
        }
    }
    w
}

/// A small xorshift generator for reproducible random boxes.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
    /// A random non-empty box inside `[lo, hi)`, at most `max` voxels per axis.
    pub fn bbox(&mut self, lo: [i64; 3], hi: [i64; 3], max: i64) -> ([i64; 3], [i64; 3]) {
        let mut a = [0; 3];
        let mut b = [0; 3];
        for d in 0..3 {
            a[d] = self.range(lo[d], hi[d]);
            let len = self.range(1, max.min(hi[d] - a[d]) + 1);
            b[d] = a[d] + len;
        }
        (a, b)
    }
}
