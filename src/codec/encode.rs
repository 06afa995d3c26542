//! Chunk encoders for the write path: one chunk, given in the decoded layout of the format digest
//! §2 (planar Fortran order `[x, y, z, c]`, little-endian elements, the clipped cell shape), into
//! the bytes stored for an encoding, plus gzip for content compression.
//!
//! - raw: the bytes as they are (length checked).
//! - compressed_segmentation: the canonical encoding, byte-identical to tensorstore's for the
//!   same chunk (tests/encode.rs compares them): blocks visited x fastest; per block
//!   its packed indices, then its table (the block's distinct values, ascending); a table equal
//!   to one the channel already emitted is not written again, the header points at the earlier
//!   one; bits = smallest of 0, 1, 2, 4, 8, 16 with `2^bits >= distinct values`; partial blocks
//!   are padded (padding indices 0); several channels get the header of channel offsets.
//!   Two limits keep every chunk readable by every reader (digest §3): a block that would need
//!   32 bits (more than 65,536 distinct values, possible only with blocks of more than 65,536
//!   voxels) is refused, as is a chunk of more than 2^24 words (64 MiB), whose offsets would not
//!   fit the 24 bits readers keep. Blocks of more than 65,536 voxels are otherwise accepted
//!   (they exist in the wild), so the layer creator is the place to refuse such block sizes.
//! - jpeg (uint8, 1 or 3 channels): libjpeg-turbo through `mozjpeg-sys`, with the `JCP_FASTEST`
//!   profile (baseline sequential, standard Huffman tables, no trellis: libjpeg-turbo's own
//!   defaults, as `simplejpeg`/TurboJPEG use them), accurate integer DCT, and 4:4:4 chroma for
//!   3 channels like cloud-volume (tensorstore writes 4:2:0); channels are rarely true colour in
//!   volumes, so no channel is subsampled. The headers (tables, sampling) equal those of
//!   cloud-volume's encoder at the same quality; a few coefficients of the scan differ (mozjpeg
//!   is built on an older libjpeg-turbo than simplejpeg's), with the same fidelity.
//! - png (uint8/uint16, 1-4 channels): the `png` crate writes the container (signature, IHDR,
//!   IDAT, IEND, CRCs); rows are filtered here (per-row choice among the five PNG filters by the
//!   minimum sum of absolute differences, libpng's heuristic; no filter at level 0) and deflated
//!   by libdeflate at `png_level` (0-9, zlib's scale), which is both faster than the crate's own
//!   deflate and honours every level. 16-bit samples are big-endian in the stream.
//!
//! Image encodings use the canonical layout: width `sx`, height `sy*sz`, pixel
//! `x + sx*(y + sy*z)`, channels interleaved. JPEG limits both sides to 65,500, so when `sy*sz`
//! (or `sx`) is larger another factorisation of the same pixel sequence is used (width
//! `sx*sy`, else the smallest divisor of the voxel count that fits); every reader accepts any
//! width x height whose product is the voxel count (digest §3).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_int;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::error::{Error, Result};
use crate::format::{DataType, Encoding};

/// Parameters of the encoders that have any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeOptions {
    /// JPEG quality, 0-100 (cloud-volume's default 85; tensorstore's is 75).
    pub jpeg_quality: u8,
    /// PNG deflate level, 0-9 (0: stored).
    pub png_level: u8,
    /// The scale's `compressed_segmentation_block_size`; required for that encoding.
    pub cseg_block: Option<[i64; 3]>,
}

impl EncodeOptions {
    /// The options of scale `mip` of `info`: its `jpeg_quality` and `png_level` members when
    /// present and in range (else the defaults), and its compressed_segmentation block size.
    pub fn for_scale(info: &crate::format::Info, mip: usize) -> EncodeOptions {
        let mut o = EncodeOptions::default();
        let member =
            |name: &str, max: u64| info.json["scales"][mip][name].as_u64().filter(|&v| v <= max).map(|v| v as u8);
        if let Some(q) = member("jpeg_quality", 100) {
            o.jpeg_quality = q;
        }
        if let Some(l) = member("png_level", 9) {
            o.png_level = l;
        }
        o.cseg_block = info.scales.get(mip).and_then(|s| s.cseg_block_size);
        o
    }
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { jpeg_quality: 85, png_level: 6, cseg_block: None }
    }
}

/// Largest JPEG width or height (libjpeg's `JPEG_MAX_DIMENSION`).
pub const JPEG_MAX_DIMENSION: usize = 65_500;
/// Largest PNG width or height (2^31 - 1).
const PNG_MAX_DIMENSION: usize = i32::MAX as usize;
/// Words a compressed_segmentation chunk may hold: offsets are kept to 24 bits by readers.
const CSEG_MAX_WORDS: usize = 1 << 24;
/// Most distinct values of a block that 16 bits can index.
const CSEG_MAX_DISTINCT: usize = 1 << 16;

/// Encode one chunk given in planar Fortran order `[x, y, z, c]` (x fastest, channel slowest,
/// little-endian elements) with clipped cell shape `shape`, into the stored bytes of `encoding`.
/// `url` names the chunk in messages.
pub fn encode_chunk(
    encoding: Encoding,
    dtype: DataType,
    channels: usize,
    shape: [usize; 3],
    data: &[u8],
    opts: &EncodeOptions,
    url: &str,
) -> Result<Vec<u8>> {
    let [sx, sy, sz] = shape;
    let voxels = sx.checked_mul(sy).and_then(|v| v.checked_mul(sz));
    let want = voxels.and_then(|v| v.checked_mul(channels)).and_then(|v| v.checked_mul(dtype.size()));
    let Some(want) = want.filter(|&w| w > 0) else {
        return Err(Error::invalid(format!(
            "{url}: cannot encode a {} chunk of shape {sx}x{sy}x{sz} with {channels} channel(s)",
            encoding.name()
        )));
    };
    if data.len() != want {
        return Err(Error::invalid(format!(
            "{url}: {} chunk {sx}x{sy}x{sz} with {channels} channel(s) of {} needs {want} bytes, got {}",
            encoding.name(),
            dtype.name(),
            data.len()
        )));
    }
    match encoding {
        Encoding::Raw => Ok(data.to_vec()),
        Encoding::CompressedSegmentation => {
            let block = opts.cseg_block.ok_or_else(|| {
                Error::invalid(format!("{url}: compressed_segmentation needs a block size, none given"))
            })?;
            encode_cseg(dtype, channels, shape, block, data, url)
        }
        Encoding::Jpeg => encode_jpeg(dtype, channels, shape, data, opts.jpeg_quality, url),
        Encoding::Png => encode_png(dtype, channels, shape, data, opts.png_level, url),
        Encoding::Compresso | Encoding::Jxl => {
            Err(Error::unsupported(format!("{url}: writing the {} encoding is not supported", encoding.name())))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// gzip

thread_local! {
    /// One libdeflate compressor per level, per thread (allocating one costs more than
    /// compressing a small chunk at low levels).
    static DEFLATERS: RefCell<[Option<libdeflater::Compressor>; 13]> = const { RefCell::new([const { None }; 13]) };
}

/// Run `f` with this thread's libdeflate compressor at `level` (clamped to 0..=12).
fn with_compressor<T>(level: i32, f: impl FnOnce(&mut libdeflater::Compressor) -> T) -> T {
    let level = level.clamp(0, 12);
    DEFLATERS.with(|c| {
        let mut c = c.borrow_mut();
        let slot = &mut c[level as usize];
        let comp = slot.get_or_insert_with(|| {
            libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).expect("level in 0..=12"))
        });
        f(comp)
    })
}

/// gzip (RFC 1952) at `level` 1..=12 (libdeflate levels; 6 default, 9 like cloud-volume and
/// tensorstore's shards). Levels outside the range are clamped to it.
pub fn gzip(data: &[u8], level: i32) -> Vec<u8> {
    with_compressor(level.clamp(1, 12), |c| {
        let mut out = vec![0u8; c.gzip_compress_bound(data.len())];
        let n = c.gzip_compress(data, &mut out).expect("gzip_compress_bound is enough");
        out.truncate(n);
        out
    })
}

/// zlib (RFC 1950) at `level` 0..=12, for PNG's IDAT.
fn zlib(data: &[u8], level: i32) -> Vec<u8> {
    with_compressor(level, |c| {
        let mut out = vec![0u8; c.zlib_compress_bound(data.len())];
        let n = c.zlib_compress(data, &mut out).expect("zlib_compress_bound is enough");
        out.truncate(n);
        out
    })
}

// ---------------------------------------------------------------------------------------------
// compressed_segmentation

/// Encode a chunk as compressed_segmentation with block size `block` (see the module notes).
pub fn encode_cseg(
    dtype: DataType,
    channels: usize,
    shape: [usize; 3],
    block: [i64; 3],
    data: &[u8],
    url: &str,
) -> Result<Vec<u8>> {
    let wide = match dtype {
        DataType::U32 => false,
        DataType::U64 => true,
        t => {
            return Err(Error::invalid(format!(
                "{url}: compressed_segmentation holds uint32 or uint64, not {}",
                t.name()
            )))
        }
    };
    let bad_block = || {
        Error::invalid(format!(
            "{url}: invalid compressed_segmentation block size [{}, {}, {}]",
            block[0], block[1], block[2]
        ))
    };
    if block.iter().any(|b| !(1..=1 << 24).contains(b)) {
        return Err(bad_block());
    }
    let b = block.map(|v| v as usize);
    let block_voxels =
        b[0].checked_mul(b[1]).and_then(|v| v.checked_mul(b[2])).filter(|&v| v <= 1 << 40).ok_or_else(bad_block)?;
    let want = shape[0]
        .checked_mul(shape[1])
        .and_then(|v| v.checked_mul(shape[2]))
        .and_then(|v| v.checked_mul(channels))
        .map(|v| v.saturating_mul(dtype.size()))
        .filter(|&v| v > 0);
    if want != Some(data.len()) {
        return Err(Error::invalid(format!(
            "{url}: compressed_segmentation chunk {}x{}x{} with {channels} channel(s) of {} needs {} bytes, got {}",
            shape[0],
            shape[1],
            shape[2],
            dtype.name(),
            want.map_or_else(|| "a positive number of".to_string(), |w| w.to_string()),
            data.len()
        )));
    }
    let mut enc = CsegEncoder::new(shape, b, block_voxels, url);
    let words = if wide { enc.encode::<8>(data, channels)? } else { enc.encode::<4>(data, channels)? };
    Ok(words_to_bytes(&words))
}

fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    if cfg!(target_endian = "little") {
        // SAFETY: u32 is plain data; the slice of bytes covers exactly the words.
        unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 4) }.to_vec()
    } else {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// A slot of the per-block open-addressing hash set of values: `stamp` says which block filled
/// it, so the table is never cleared.
#[derive(Clone, Copy, Default)]
struct Slot {
    key: u64,
    stamp: u32,
    id: u32,
}

/// Scratch space of the encoder, sized once per chunk.
struct CsegEncoder<'u> {
    shape: [usize; 3],
    block: [usize; 3],
    block_voxels: usize,
    url: &'u str,
    /// First-seen id of each in-bounds voxel of the block, in visiting order (z, y, x).
    ids: Vec<u32>,
    /// Distinct values of the block, in first-seen order.
    distinct: Vec<u64>,
    /// `value << 32 | first-seen id`, sorted (values are distinct, so this sorts by value).
    sorted: Vec<u128>,
    /// Table index of each first-seen id.
    rank: Vec<u32>,
    slots: Vec<Slot>,
    slot_shift: u32,
    stamp: u32,
}

#[inline]
fn read_label<const W: usize>(b: &[u8]) -> u64 {
    if W == 8 {
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    } else {
        u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn bits_for(n: usize) -> u32 {
    match n {
        0 | 1 => 0,
        2 => 1,
        3..=4 => 2,
        5..=16 => 4,
        17..=256 => 8,
        257..=65_536 => 16,
        _ => 32,
    }
}

impl<'u> CsegEncoder<'u> {
    fn new(shape: [usize; 3], block: [usize; 3], block_voxels: usize, url: &'u str) -> Self {
        // The part of a block that can lie inside the chunk bounds the distinct values.
        let inside = (0..3).map(|d| block[d].min(shape[d])).product::<usize>().max(1);
        let cap = (2 * inside).next_power_of_two().max(16);
        CsegEncoder {
            shape,
            block,
            block_voxels,
            url,
            ids: Vec::with_capacity(inside),
            distinct: Vec::with_capacity(inside.min(1 << 12)),
            sorted: Vec::new(),
            rank: Vec::new(),
            slots: vec![Slot::default(); cap],
            slot_shift: 64 - cap.trailing_zeros(),
            stamp: 0,
        }
    }

    fn too_large(&self, words: usize) -> Error {
        Error::invalid(format!(
            "{}: compressed_segmentation chunk would take {words} words or more; offsets are limited to 24 bits \
             (2^24 words); use a smaller chunk or block size",
            self.url
        ))
    }

    /// Encode every channel; the result is the chunk as u32 words.
    fn encode<const W: usize>(&mut self, data: &[u8], channels: usize) -> Result<Vec<u32>> {
        let [sx, sy, sz] = self.shape;
        let gb = [0, 1, 2].map(|d| self.shape[d].div_ceil(self.block[d]));
        let n_blocks = gb[0] * gb[1] * gb[2];
        let mut words: Vec<u32> = Vec::with_capacity(channels + channels * n_blocks * 4 + data.len() / 32);
        // The header of channel offsets, present even for one channel.
        words.resize(channels, 0);
        let channel_bytes = sx * sy * sz * W;
        for c in 0..channels {
            let base = words.len();
            words[c] = base as u32;
            if base + 2 * n_blocks > CSEG_MAX_WORDS {
                return Err(self.too_large(base + 2 * n_blocks));
            }
            words.resize(base + 2 * n_blocks, 0);
            let chan = &data[c * channel_bytes..(c + 1) * channel_bytes];
            // Tables already written in this channel: hash of the table -> (offset, length) list.
            let mut tables: HashMap<u64, Vec<(u32, u32)>> = HashMap::new();
            let mut bi = 0usize;
            for bz in 0..gb[2] {
                for by in 0..gb[1] {
                    for bx in 0..gb[0] {
                        let (bits, table_off, values_off) =
                            self.encode_block::<W>(chan, [bx, by, bz], base, &mut words, &mut tables, c)?;
                        words[base + 2 * bi] = table_off | (bits << 24);
                        words[base + 2 * bi + 1] = values_off;
                        bi += 1;
                    }
                }
            }
        }
        Ok(words)
    }

    /// Append block `g` of channel data `chan` to `words` (channel starting at `base`); return
    /// its bits, table offset and values offset (words from `base`).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn encode_block<const W: usize>(
        &mut self,
        chan: &[u8],
        g: [usize; 3],
        base: usize,
        words: &mut Vec<u32>,
        tables: &mut HashMap<u64, Vec<(u32, u32)>>,
        channel: usize,
    ) -> Result<(u32, u32, u32)> {
        let [sx, sy, _] = self.shape;
        let [bx, by, bz] = self.block;
        let lo = [g[0] * bx, g[1] * by, g[2] * bz];
        let hi = [0, 1, 2].map(|d| (lo[d] + self.block[d]).min(self.shape[d]));
        let (nx, ny, nz) = (hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]);

        // 1. Distinct values in first-seen order, and the first-seen id of every voxel.
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.slots.fill(Slot::default());
            self.stamp = 1;
        }
        let stamp = self.stamp;
        let mask = self.slots.len() - 1;
        let shift = self.slot_shift;
        self.ids.clear();
        self.distinct.clear();
        {
            let slots = &mut self.slots[..];
            let distinct = &mut self.distinct;
            let ids = &mut self.ids;
            let first = (lo[2] * sy + lo[1]) * sx + lo[0];
            let mut prev = read_label::<W>(&chan[first * W..]);
            let mut prev_id = u32::MAX;
            // Force a lookup for the first voxel.
            prev = prev.wrapping_add(1);
            for z in lo[2]..hi[2] {
                for y in lo[1]..hi[1] {
                    let row0 = (z * sy + y) * sx + lo[0];
                    let row = &chan[row0 * W..(row0 + nx) * W];
                    for v in row.chunks_exact(W) {
                        let v = read_label::<W>(v);
                        if v != prev {
                            prev = v;
                            let mut h = (v.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize;
                            loop {
                                let s = &mut slots[h];
                                if s.stamp != stamp {
                                    let id = distinct.len() as u32;
                                    *s = Slot { key: v, stamp, id };
                                    distinct.push(v);
                                    prev_id = id;
                                    break;
                                }
                                if s.key == v {
                                    prev_id = s.id;
                                    break;
                                }
                                h = (h + 1) & mask;
                            }
                        }
                        ids.push(prev_id);
                    }
                }
            }
        }
        let n = self.distinct.len();
        let bits = bits_for(n);
        if bits == 32 {
            return Err(Error::invalid(format!(
                "{}: compressed_segmentation block ({}, {}, {}) of channel {channel} (block size {bx}x{by}x{bz}) \
                 holds {n} distinct values, more than the {CSEG_MAX_DISTINCT} that 16 bits can index; 32-bit \
                 blocks are refused because compressed_segmentation and Neuroglancer decode them wrongly \
                 (keep blocks at 65,536 voxels or fewer)",
                self.url, g[0], g[1], g[2]
            )));
        }

        // 2. The table: distinct values ascending; the rank of each first-seen id.
        let wpe = W / 4;
        let value_words = (bits as usize * self.block_voxels).div_ceil(32);
        let start = words.len();
        let values_off = start - base;
        let table_hash;
        if n == 1 {
            table_hash = hash_table(&self.distinct);
        } else {
            self.sorted.clear();
            self.sorted.extend(self.distinct.iter().enumerate().map(|(i, &v)| (u128::from(v) << 32) | i as u128));
            self.sorted.sort_unstable();
            self.rank.resize(n, 0);
            for (j, &p) in self.sorted.iter().enumerate() {
                let (v, id) = ((p >> 32) as u64, p as u32);
                self.rank[id as usize] = j as u32;
                self.distinct[j] = v;
            }
            table_hash = hash_table(&self.distinct);
        }
        let table = &self.distinct[..];

        // 3. An identical table already written in this channel?
        let mut table_off = None;
        if let Some(list) = tables.get(&table_hash) {
            for &(off, len) in list {
                if len as usize == n && table_matches::<W>(&words[base + off as usize..], table) {
                    table_off = Some(off);
                    break;
                }
            }
        }
        let new_table = table_off.is_none();
        let end = start + value_words + if new_table { n * wpe } else { 0 };
        if end > CSEG_MAX_WORDS {
            return Err(self.too_large(end));
        }
        words.resize(start + value_words, 0);

        // 4. Packed indices (padding stays 0).
        if bits > 0 {
            let vals = &mut words[start..start + value_words];
            let rank = &self.rank[..];
            let mut ids = self.ids.iter();
            let bits = bits as usize;
            for z in 0..nz {
                for y in 0..ny {
                    let k0 = (z * by + y) * bx;
                    for x in 0..nx {
                        let idx = rank[*ids.next().expect("one id per voxel") as usize];
                        let bit = (k0 + x) * bits;
                        vals[bit >> 5] |= idx << (bit & 31);
                    }
                }
            }
        }

        // 5. The table, unless reused.
        let table_off = match table_off {
            Some(off) => off,
            None => {
                let off = (start + value_words - base) as u32;
                for &v in table {
                    words.push(v as u32);
                    if wpe == 2 {
                        words.push((v >> 32) as u32);
                    }
                }
                tables.entry(table_hash).or_default().push((off, n as u32));
                off
            }
        };
        Ok((bits, table_off, values_off as u32))
    }
}

fn hash_table(table: &[u64]) -> u64 {
    let mut h = table.len() as u64;
    for &v in table {
        h = (h.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h
}

fn table_matches<const W: usize>(at: &[u32], table: &[u64]) -> bool {
    if W == 8 {
        at.len() >= 2 * table.len()
            && table.iter().enumerate().all(|(i, &v)| at[2 * i] == v as u32 && at[2 * i + 1] == (v >> 32) as u32)
    } else {
        at.len() >= table.len() && table.iter().zip(at).all(|(&v, &w)| w == v as u32)
    }
}

// ---------------------------------------------------------------------------------------------
// Image encodings

/// Width and height of the chunk's image: canonical `sx` x `sy*sz` when both fit `max`, else
/// `sx*sy` x `sz`, else the smallest width dividing the voxel count that lets both fit.
fn image_dims(shape: [usize; 3], max: usize) -> Option<(usize, usize)> {
    let [sx, sy, sz] = shape;
    let n = sx * sy * sz;
    if sx <= max && sy * sz <= max {
        return Some((sx, sy * sz));
    }
    if sx * sy <= max && sz <= max {
        return Some((sx * sy, sz));
    }
    let lo = n.div_ceil(max).max(1);
    (lo..=max.min(n)).find(|w| n % w == 0).map(|w| (w, n / w))
}

/// Interleave planar channels into pixels (`item` bytes per sample); 16-bit samples may be
/// swapped to big-endian on the way.
fn interleave(data: &[u8], channels: usize, item: usize, swap: bool) -> Cow<'_, [u8]> {
    if channels == 1 && !swap {
        return Cow::Borrowed(data);
    }
    let plane = data.len() / channels;
    let n = plane / item;
    let mut out = vec![0u8; data.len()];
    let pix = channels * item;
    for c in 0..channels {
        let src = &data[c * plane..(c + 1) * plane];
        if item == 1 {
            for (i, &s) in src.iter().enumerate() {
                out[i * pix + c] = s;
            }
        } else {
            for i in 0..n {
                let o = i * pix + c * item;
                if swap {
                    out[o] = src[2 * i + 1];
                    out[o + 1] = src[2 * i];
                } else {
                    out[o..o + item].copy_from_slice(&src[i * item..(i + 1) * item]);
                }
            }
        }
    }
    Cow::Owned(out)
}

// --- JPEG ---

use mozjpeg_sys as mj;

/// libjpeg's error manager for the compressor.
#[repr(C)]
struct ErrorMgr {
    base: mj::jpeg_error_mgr,
}

/// The payload our error callback unwinds with.
struct JpegFailure(String);

unsafe extern "C-unwind" fn jpeg_error_exit(cinfo: &mut mj::jpeg_common_struct) {
    let buf = [0u8; 80];
    if let Some(fmt) = (*cinfo.err).format_message {
        fmt(cinfo, &buf);
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let msg = String::from_utf8_lossy(&buf[..end]).into_owned();
    // resume_unwind skips the panic hook: nothing is printed on the host's stderr.
    resume_unwind(Box::new(JpegFailure(msg)));
}

unsafe extern "C-unwind" fn jpeg_emit_message(_cinfo: &mut mj::jpeg_common_struct, _level: c_int) {}

/// A destination manager writing into a Rust vector (no malloc'd buffer to free on errors).
#[repr(C)]
struct Dest {
    base: mj::jpeg_destination_mgr,
    buf: Vec<u8>,
}

unsafe extern "C-unwind" fn dest_init(cinfo: &mut mj::jpeg_compress_struct) {
    // SAFETY: cinfo.dest is the `base` field of a Dest (repr(C), first field).
    let d = &mut *cinfo.dest.cast::<Dest>();
    d.base.next_output_byte = d.buf.as_mut_ptr();
    d.base.free_in_buffer = d.buf.len();
}

unsafe extern "C-unwind" fn dest_empty(cinfo: &mut mj::jpeg_compress_struct) -> mj::boolean {
    // libjpeg's contract: the whole buffer is full when this is called.
    let d = &mut *cinfo.dest.cast::<Dest>();
    let used = d.buf.len();
    d.buf.resize(used * 2, 0);
    d.base.next_output_byte = d.buf.as_mut_ptr().add(used);
    d.base.free_in_buffer = d.buf.len() - used;
    1
}

unsafe extern "C-unwind" fn dest_term(cinfo: &mut mj::jpeg_compress_struct) {
    let d = &mut *cinfo.dest.cast::<Dest>();
    let used = d.buf.len() - d.base.free_in_buffer;
    d.buf.truncate(used);
}

/// Compress `pixels` (interleaved, `components` of 1 or 3) as a baseline JPEG.
fn jpeg_compress(
    pixels: &[u8],
    width: usize,
    height: usize,
    components: usize,
    quality: u8,
) -> Result<Vec<u8>, String> {
    // SAFETY: zeroed is the documented initial state of these structs before jpeg_std_error and
    // jpeg_create_compress; all of them live on this frame until jpeg_destroy_compress.
    let mut err = ErrorMgr { base: unsafe { std::mem::zeroed() } };
    let mut cinfo: mj::jpeg_compress_struct = unsafe { std::mem::zeroed() };
    let mut dest = Dest {
        base: mj::jpeg_destination_mgr {
            next_output_byte: std::ptr::null_mut(),
            free_in_buffer: 0,
            init_destination: Some(dest_init),
            empty_output_buffer: Some(dest_empty),
            term_destination: Some(dest_term),
        },
        buf: vec![0u8; (pixels.len() / 4).max(4096)],
    };
    unsafe {
        mj::jpeg_std_error(&mut err.base);
    }
    err.base.error_exit = Some(jpeg_error_exit);
    err.base.emit_message = Some(jpeg_emit_message);
    cinfo.common.err = &mut err.base;

    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: libjpeg calls on an initialised compressor; the row pointers stay inside
        // `pixels`, which outlives the compressor; `dest` outlives it too.
        unsafe {
            mj::jpeg_create_compress(&mut cinfo);
            cinfo.dest = &mut dest.base;
            cinfo.image_width = width as mj::JDIMENSION;
            cinfo.image_height = height as mj::JDIMENSION;
            cinfo.input_components = components as c_int;
            cinfo.in_color_space =
                if components == 1 { mj::J_COLOR_SPACE::JCS_GRAYSCALE } else { mj::J_COLOR_SPACE::JCS_RGB };
            // libjpeg-turbo's defaults instead of mozjpeg's (progressive, trellis, optimised
            // Huffman tables: several times slower).
            mj::jpeg_c_set_int_param(&mut cinfo, mj::J_INT_PARAM::JINT_COMPRESS_PROFILE, mj::JCP_FASTEST as c_int);
            mj::jpeg_set_defaults(&mut cinfo);
            mj::jpeg_set_quality(&mut cinfo, c_int::from(quality), 1);
            cinfo.dct_method = mj::J_DCT_METHOD::JDCT_ISLOW;
            if components == 3 {
                // 4:4:4, like cloud-volume (simplejpeg's default).
                for i in 0..3 {
                    let ci = &mut *cinfo.comp_info.add(i);
                    ci.h_samp_factor = 1;
                    ci.v_samp_factor = 1;
                }
            }
            mj::jpeg_start_compress(&mut cinfo, 1);
            let stride = width * components;
            let base = pixels.as_ptr();
            let rows: Vec<*const u8> = (0..height).map(|r| base.add(r * stride)).collect();
            while (cinfo.next_scanline as usize) < height {
                let row = cinfo.next_scanline as usize;
                let n = mj::jpeg_write_scanlines(&mut cinfo, rows.as_ptr().add(row), (height - row) as mj::JDIMENSION);
                if n == 0 {
                    return Err(format!("libjpeg accepted no row at row {row} of {height}"));
                }
            }
            mj::jpeg_finish_compress(&mut cinfo);
            Ok(())
        }
    }));
    // SAFETY: destroying a created (or zeroed, never created) compressor is allowed.
    unsafe { mj::jpeg_destroy_compress(&mut cinfo) };
    match result {
        Ok(Ok(())) => Ok(std::mem::take(&mut dest.buf)),
        Ok(Err(e)) => Err(e),
        Err(payload) => Err(match payload.downcast::<JpegFailure>() {
            Ok(f) => f.0,
            Err(other) => resume_unwind(other),
        }),
    }
}

fn encode_jpeg(
    dtype: DataType,
    channels: usize,
    shape: [usize; 3],
    data: &[u8],
    quality: u8,
    url: &str,
) -> Result<Vec<u8>> {
    if dtype != DataType::U8 || !matches!(channels, 1 | 3) {
        return Err(Error::invalid(format!(
            "{url}: jpeg holds uint8 with 1 or 3 channels, not {} with {channels}",
            dtype.name()
        )));
    }
    if quality > 100 {
        return Err(Error::invalid(format!("{url}: jpeg quality {quality} is not in 0..=100")));
    }
    let (w, h) = image_dims(shape, JPEG_MAX_DIMENSION).ok_or_else(|| {
        Error::invalid(format!(
            "{url}: a {}x{}x{} chunk has no image factorisation with both sides <= {JPEG_MAX_DIMENSION} (JPEG's limit)",
            shape[0], shape[1], shape[2]
        ))
    })?;
    let pixels = interleave(data, channels, 1, false);
    jpeg_compress(&pixels, w, h, channels, quality)
        .map_err(|e| Error::internal(format!("{url}: JPEG compression of a {w}x{h} image failed: {e}")))
}

// --- PNG ---

/// Filter one row with PNG filter `f` (0-4) into `out` (without the filter byte).
#[inline]
fn png_filter(f: u8, bpp: usize, prev: &[u8], cur: &[u8], out: &mut [u8]) {
    let n = cur.len();
    match f {
        0 => out.copy_from_slice(cur),
        1 => {
            out[..bpp].copy_from_slice(&cur[..bpp]);
            for i in bpp..n {
                out[i] = cur[i].wrapping_sub(cur[i - bpp]);
            }
        }
        2 => {
            for i in 0..n {
                out[i] = cur[i].wrapping_sub(prev[i]);
            }
        }
        3 => {
            for i in 0..bpp {
                out[i] = cur[i].wrapping_sub(prev[i] >> 1);
            }
            for i in bpp..n {
                let avg = ((u16::from(cur[i - bpp]) + u16::from(prev[i])) >> 1) as u8;
                out[i] = cur[i].wrapping_sub(avg);
            }
        }
        _ => {
            for i in 0..bpp {
                // Paeth with a = c = 0 is b.
                out[i] = cur[i].wrapping_sub(prev[i]);
            }
            for i in bpp..n {
                let (a, b, c) = (i16::from(cur[i - bpp]), i16::from(prev[i]), i16::from(prev[i - bpp]));
                let p = a + b - c;
                let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                let pred = if pa <= pb && pa <= pc {
                    a
                } else if pb <= pc {
                    b
                } else {
                    c
                };
                out[i] = cur[i].wrapping_sub(pred as u8);
            }
        }
    }
}

/// Filter every row of `img` (height rows of `stride` bytes) into the PNG scanline stream.
fn png_filter_rows(img: &[u8], stride: usize, height: usize, bpp: usize, adaptive: bool) -> Vec<u8> {
    let mut out = vec![0u8; height * (stride + 1)];
    let zero = vec![0u8; stride];
    let mut scratch = vec![0u8; stride];
    for r in 0..height {
        let cur = &img[r * stride..(r + 1) * stride];
        let prev = if r == 0 { &zero[..] } else { &img[(r - 1) * stride..r * stride] };
        let dst = &mut out[r * (stride + 1)..(r + 1) * (stride + 1)];
        if !adaptive {
            dst[0] = 0;
            dst[1..].copy_from_slice(cur);
            continue;
        }
        let mut best = u64::MAX;
        for f in 0..5u8 {
            png_filter(f, bpp, prev, cur, &mut scratch);
            let cost: u64 = scratch.iter().map(|&b| u64::from((b as i8).unsigned_abs())).sum();
            if cost < best {
                best = cost;
                dst[0] = f;
                dst[1..].copy_from_slice(&scratch);
            }
        }
    }
    out
}

fn encode_png(
    dtype: DataType,
    channels: usize,
    shape: [usize; 3],
    data: &[u8],
    level: u8,
    url: &str,
) -> Result<Vec<u8>> {
    let depth = match dtype {
        DataType::U8 => 1,
        DataType::U16 => 2,
        t => {
            return Err(Error::invalid(format!("{url}: png holds uint8 or uint16, not {}", t.name())));
        }
    };
    let color = match channels {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        n => return Err(Error::invalid(format!("{url}: png holds 1 to 4 channels, not {n}"))),
    };
    if level > 9 {
        return Err(Error::invalid(format!("{url}: png level {level} is not in 0..=9")));
    }
    let (w, h) = image_dims(shape, PNG_MAX_DIMENSION).ok_or_else(|| {
        Error::invalid(format!("{url}: a {}x{}x{} chunk is too large for one PNG", shape[0], shape[1], shape[2]))
    })?;
    let img = interleave(data, channels, depth, depth == 2);
    let bpp = channels * depth;
    let filtered = png_filter_rows(&img, w * bpp, h, bpp, level > 0);
    let z = zlib(&filtered, i32::from(level));
    drop(filtered);

    let fail = |e: png::EncodingError| Error::internal(format!("{url}: PNG encoding of a {w}x{h} image failed: {e}"));
    let mut out = Vec::with_capacity(z.len() + 64);
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(color);
        enc.set_depth(if depth == 2 { png::BitDepth::Sixteen } else { png::BitDepth::Eight });
        let mut writer = enc.write_header().map_err(fail)?;
        // One IDAT chunk holds at most 2^31 - 1 bytes.
        for part in z.chunks(1 << 30) {
            writer.write_chunk(png::chunk::IDAT, part).map_err(fail)?;
        }
        writer.finish().map_err(fail)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_dims_fall_back_when_jpeg_is_too_tall() {
        assert_eq!(image_dims([16, 8, 4], JPEG_MAX_DIMENSION), Some((16, 32)));
        assert_eq!(image_dims([256, 256, 256], JPEG_MAX_DIMENSION), Some((512, 32768)));
        let (w, h) = image_dims([256, 256, 256], JPEG_MAX_DIMENSION).unwrap();
        assert!(w <= JPEG_MAX_DIMENSION && h <= JPEG_MAX_DIMENSION && w * h == 256 * 256 * 256);
        let (w, h) = image_dims([4, 128, 1024], JPEG_MAX_DIMENSION).unwrap();
        assert_eq!((w, h), (512, 1024));
        // A prime voxel count above the limit has no factorisation.
        assert_eq!(image_dims([65_537, 1, 1], JPEG_MAX_DIMENSION), None);
    }

    #[test]
    fn options_from_the_scale() {
        let info = crate::format::Info::parse(
            br#"{"type":"image","data_type":"uint8","num_channels":1,"scales":[
              {"key":"a","size":[8,8,8],"resolution":[1,1,1],"chunk_sizes":[[8,8,8]],"encoding":"jpeg","jpeg_quality":92},
              {"key":"b","size":[4,4,4],"resolution":[2,2,2],"chunk_sizes":[[4,4,4]],"encoding":"png","png_level":300}]}"#,
            "mem://info",
        )
        .unwrap();
        let o = EncodeOptions::for_scale(&info, 0);
        assert_eq!((o.jpeg_quality, o.png_level, o.cseg_block), (92, 6, None));
        let o = EncodeOptions::for_scale(&info, 1);
        assert_eq!((o.jpeg_quality, o.png_level), (85, 6));
        assert_eq!(EncodeOptions::for_scale(&info, 7), EncodeOptions::default());
    }

    #[test]
    fn png_has_only_the_critical_chunks() {
        let data: Vec<u8> = (0..13 * 7 * 5 * 2).map(|i| (i * 7) as u8).collect();
        let png =
            encode_chunk(Encoding::Png, DataType::U8, 2, [13, 7, 5], &data, &EncodeOptions::default(), "m").unwrap();
        let mut kinds = Vec::new();
        let mut at = 8;
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            kinds.push(String::from_utf8_lossy(&png[at + 4..at + 8]).into_owned());
            at += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        // IHDR: width 13, height 35, depth 8, colour type 4 (gray + alpha).
        assert_eq!(&png[16..26], &[0, 0, 0, 13, 0, 0, 0, 35, 8, 4]);
    }

    #[test]
    fn bits_are_the_canonical_widths() {
        let want =
            [(1, 0), (2, 1), (3, 2), (4, 2), (5, 4), (16, 4), (17, 8), (256, 8), (257, 16), (65_536, 16), (65_537, 32)];
        for (n, b) in want {
            assert_eq!(bits_for(n), b, "{n}");
        }
    }

    /// One 8x8x4 uint64 chunk, one (partial) 8^3 block, two values: 1 bit, values sized for
    /// the full block (16 words), then the table.
    #[test]
    fn cseg_two_values_one_bit() {
        let mut data = Vec::new();
        for k in 0..8 * 8 * 4 {
            let v: u64 = if k % 8 >= 3 { 0x0000_0007_dead_beef } else { 5 };
            data.extend_from_slice(&v.to_le_bytes());
        }
        let out = encode_cseg(DataType::U64, 1, [8, 8, 4], [8, 8, 8], &data, "mem://x").unwrap();
        let w: Vec<u32> = out.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(&w[..4], &[1, 0x0100_0012, 2, 0xf8f8_f8f8]);
        assert_eq!(w.len(), 1 + 2 + 16 + 4);
        // Rows z = 4..7 are padding: index 0.
        assert_eq!(&w[11..19], &[0; 8]);
        assert_eq!(&w[19..], &[5, 0, 0xdead_beef, 7]);
    }
}
