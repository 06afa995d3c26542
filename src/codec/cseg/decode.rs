//! Decoding compressed_segmentation straight into the output: every voxel is looked up in its
//! block's table and written once (into outputs of 8 MiB and more past the cache, whole lines
//! only; see `decode_into`).

use std::borrow::Cow;

use crate::codec::{ChunkSpec, OutView};
use crate::error::{Error, Result};
use crate::format::{Bbox, DataType};

/// One block of a row of blocks, checked and ready to decode rows from.
#[derive(Clone, Copy)]
struct Block {
    bits: u32,
    /// Word offset of the table in the channel.
    table: usize,
    /// Table entries from `table` to the end of the channel (an index may not reach past them).
    table_len: usize,
    /// Every index `bits` can hold is inside the table: rows need no per-voxel check.
    all_inside: bool,
    /// Word offset of the packed indices in the channel.
    values: usize,
    /// Voxels of the region in this block along x, relative to the cell.
    x0: i64,
    x1: i64,
    /// Block origin relative to the cell.
    b0: [i64; 3],
    index: usize,
}

/// The chunk as little-endian u32 words, borrowed when the bytes are aligned.
fn as_words(data: &[u8]) -> Cow<'_, [u32]> {
    if cfg!(target_endian = "little") {
        // SAFETY: u32 has no invalid bit patterns; align_to only reinterprets the aligned middle.
        let (pre, mid, post) = unsafe { data.align_to::<u32>() };
        if pre.is_empty() && post.is_empty() {
            return Cow::Borrowed(mid);
        }
    }
    Cow::Owned(data.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// A chunk's words and geometry, checked: its data type, its length, its block size.
struct Chunk<'a> {
    words: Cow<'a, [u32]>,
    wide: bool,
    block: [i64; 3],
    /// Blocks per axis of the cell.
    gb: [i64; 3],
    n_blocks: usize,
    block_voxels: u64,
    /// Words per table entry.
    wpe: usize,
}

impl<'a> Chunk<'a> {
    fn parse(spec: &ChunkSpec<'_>, data: &'a [u8]) -> Result<Chunk<'a>> {
        let url = spec.url;
        let bad = |what: String| Error::decode(format!("{url}: corrupt compressed_segmentation chunk: {what}"));
        let wide = match spec.dtype {
            DataType::U32 => false,
            DataType::U64 => true,
            t => return Err(Error::decode(format!("{url}: compressed_segmentation cannot hold {}", t.name()))),
        };
        if data.len() % 4 != 0 {
            return Err(bad(format!("length {} is not a multiple of 4", data.len())));
        }
        let words = as_words(data);
        let nc = spec.channels;
        if words.len() < nc {
            return Err(bad(format!("{} words cannot hold {nc} channel offsets", words.len())));
        }
        let block = spec.cseg_block.ok_or_else(|| bad("no block size in the info".into()))?;
        if block.iter().any(|&b| b <= 0) {
            return Err(bad(format!("block size {block:?} is not positive")));
        }
        let shape = spec.cell.shape();
        let gb: [i64; 3] = std::array::from_fn(|d| (shape[d] + block[d] - 1) / block[d]);
        Ok(Chunk {
            words,
            wide,
            block,
            gb,
            n_blocks: (gb[0] * gb[1] * gb[2]) as usize,
            block_voxels: (block[0] * block[1] * block[2]) as u64,
            wpe: if wide { 2 } else { 1 },
        })
    }

    /// The words of channel `c` (of `nc`), checked to hold every block header.
    fn channel(&self, c: usize, nc: usize, url: &str) -> Result<&[u32]> {
        let w: &[u32] = &self.words;
        let bad = |what: String| Error::decode(format!("{url}: corrupt compressed_segmentation chunk: {what}"));
        let start = w[c] as usize;
        let end = if c + 1 < nc { w[c + 1] as usize } else { w.len() };
        if start < nc || start > end || end > w.len() {
            return Err(bad(format!("channel {c} offsets [{start}, {end}) outside the chunk of {} words", w.len())));
        }
        let ch = &w[start..end];
        if ch.len() < 2 * self.n_blocks {
            return Err(bad(format!("channel {c}: {} words cannot hold {} block headers", ch.len(), self.n_blocks)));
        }
        Ok(ch)
    }
}

/// Decode `region` (inside `spec.cell`) of a compressed_segmentation chunk into `out`.
///
/// Rows are decoded whole: for each (y, z) of the region one output row is written, block after
/// block along x, each block's header checked once per row of blocks. Every offset, bit width and
/// table index is checked against the chunk; a corrupt chunk is `Decode`, never a panic.
///
/// Into outputs the caller will not find in cache anyway ([`OutView::streams`]), rows go out with
/// non-temporal stores of whole cache lines: uint64 rows of 8-wide blocks that start on a line
/// directly, block row by block row; other rows through a scratch row and
/// [`crate::codec::stream_row`], their partial end lines (shared with the neighbouring chunk) written
/// normally and prefetched a block height of rows ahead.
pub fn decode_into(spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()> {
    let r = decode_rows(spec, data, region, out);
    crate::codec::fence_streaming_stores();
    r
}

fn decode_rows(spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()> {
    let url = spec.url;
    let bad = |what: String| Error::decode(format!("{url}: corrupt compressed_segmentation chunk: {what}"));
    let chunk = Chunk::parse(spec, data)?;
    let (wide, block, gb, block_voxels, wpe) = (chunk.wide, chunk.block, chunk.gb, chunk.block_voxels, chunk.wpe);
    let nc = spec.channels;
    let item = if wide { 8 } else { 4 };
    // Region relative to the cell.
    let rlo = [region.lo[0] - spec.cell.lo[0], region.lo[1] - spec.cell.lo[1], region.lo[2] - spec.cell.lo[2]];
    let rhi = [region.hi[0] - spec.cell.lo[0], region.hi[1] - spec.cell.lo[1], region.hi[2] - spec.cell.lo[2]];
    let mut row_blocks: Vec<Block> = Vec::with_capacity(((rhi[0] - rlo[0]) / block[0] + 2) as usize);
    let streaming = out.streams();
    // Rows whose block rows are whole 64-byte lines when the row starts on a line.
    let direct = wide && block[0] == 8 && rlo[0] % 8 == 0;
    let mut scratch = if streaming { vec![0u8; (rhi[0] - rlo[0]).max(0) as usize * item] } else { Vec::new() };

    for c in 0..nc {
        let ch = chunk.channel(c, nc, url)?;
        for bz in rlo[2] / block[2]..(rhi[2] + block[2] - 1) / block[2] {
            for by in rlo[1] / block[1]..(rhi[1] + block[1] - 1) / block[1] {
                // Check the headers of this row of blocks once.
                row_blocks.clear();
                for bx in rlo[0] / block[0]..(rhi[0] + block[0] - 1) / block[0] {
                    let bi = ((bz * gb[1] + by) * gb[0] + bx) as usize;
                    let Header { bits, table, table_len, values } =
                        header(ch, bi, block_voxels, wpe).map_err(|m| bad(format!("channel {c} {m}")))?;
                    let b0 = [bx * block[0], by * block[1], bz * block[2]];
                    row_blocks.push(Block {
                        bits,
                        table,
                        table_len,
                        all_inside: bits < 32 && (1usize << bits) <= table_len,
                        values,
                        x0: rlo[0].max(b0[0]),
                        x1: rhi[0].min(b0[0] + block[0]),
                        b0,
                        index: bi,
                    });
                }
                let z_range = rlo[2].max(bz * block[2])..rhi[2].min((bz + 1) * block[2]);
                let y_range = rlo[1].max(by * block[1])..rhi[1].min((by + 1) * block[1]);
                for z in z_range.clone() {
                    for y in y_range.clone() {
                        let decode_row = |row: &mut [u8], nt: bool| -> Result<()> {
                            let mut at = 0usize;
                            for b in &row_blocks {
                                let n = (b.x1 - b.x0) as usize;
                                let seg = &mut row[at * item..(at + n) * item];
                                at += n;
                                let k0 =
                                    (((z - b.b0[2]) * block[1] + (y - b.b0[1])) * block[0] + (b.x0 - b.b0[0])) as usize;
                                let ok = if nt {
                                    decode_segment::<true>(ch, b, k0, seg, wide)
                                } else {
                                    decode_segment::<false>(ch, b, k0, seg, wide)
                                };
                                if !ok {
                                    return Err(bad(format!(
                                        "channel {c} block {}: an index points past the table of {} entries",
                                        b.index, b.table_len
                                    )));
                                }
                            }
                            Ok(())
                        };
                        if streaming {
                            // The row written a block height of rows from now: the same y in
                            // the next z, or after the last z the first z of the next row of
                            // blocks (outside the region: ignored).
                            let (py, pz) = if z + 1 < z_range.end { (y, z + 1) } else { (y + block[1], z_range.start) };
                            if py < rhi[1] {
                                out.prefetch_row_ends(
                                    rlo[0] + spec.cell.lo[0],
                                    rhi[0] + spec.cell.lo[0],
                                    py + spec.cell.lo[1],
                                    pz + spec.cell.lo[2],
                                    c,
                                );
                            }
                        }
                        // SAFETY: each chunk writes its own region.
                        unsafe {
                            out.with_row(
                                rlo[0] + spec.cell.lo[0],
                                rhi[0] + spec.cell.lo[0],
                                y + spec.cell.lo[1],
                                z + spec.cell.lo[2],
                                c,
                                |row| -> Result<()> {
                                    if !streaming {
                                        decode_row(row, false)
                                    } else if direct && (row.as_ptr() as usize) % 64 == 0 {
                                        // Line-aligned uint64 row of 8-voxel block rows: each is
                                        // a whole line, stored straight past the cache.
                                        decode_row(row, true)
                                    } else {
                                        // Otherwise (uint32, other blocks, lines straddled) assembled
                                        // in a cached scratch row, then streamed out line by line
                                        // with the partial end lines written normally.
                                        let tmp = &mut scratch[..row.len()];
                                        decode_row(tmp, false)?;
                                        crate::codec::stream_row(row, tmp);
                                        Ok(())
                                    }
                                },
                            )?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// A block's header, checked against its channel.
struct Header {
    bits: u32,
    /// Word offset of the table in the channel.
    table: usize,
    /// Table entries from `table` to the end of the channel.
    table_len: usize,
    /// Word offset of the packed indices in the channel.
    values: usize,
}

/// Read and check the header of block `bi` of channel `ch`: a valid bit width, the table
/// and the packed indices inside the channel. The message names the block.
fn header(ch: &[u32], bi: usize, block_voxels: u64, wpe: usize) -> std::result::Result<Header, String> {
    let h0 = ch[2 * bi];
    let table = (h0 & 0xff_ffff) as usize;
    let bits = h0 >> 24;
    let values = (ch[2 * bi + 1] & 0xff_ffff) as usize;
    if !matches!(bits, 0 | 1 | 2 | 4 | 8 | 16 | 32) {
        return Err(format!("block {bi}: invalid bit width {bits}"));
    }
    if table + wpe > ch.len() {
        return Err(format!("block {bi}: table offset {table} outside the channel of {} words", ch.len()));
    }
    let n_value_words = (u64::from(bits) * block_voxels).div_ceil(32) as usize;
    if values + n_value_words > ch.len() {
        return Err(format!(
            "block {bi}: values at {values}+{n_value_words} outside the channel of {} words",
            ch.len()
        ));
    }
    Ok(Header { bits, table, table_len: (ch.len() - table) / wpe, values })
}

/// Count the labels of `region` (inside `spec.cell`) of a compressed_segmentation chunk
/// without decoding it into voxels: per block, the packed indices of the voxels inside the
/// region are tallied and each used table entry handed to `add(label, voxels)` once. Checks as
/// [`decode_into`].
///
/// # Errors
/// A corrupt chunk (`Decode`, naming the chunk), a data type other than uint32/uint64.
pub fn count_labels(spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, add: &mut dyn FnMut(u64, u64)) -> Result<()> {
    let url = spec.url;
    let bad = |what: String| Error::decode(format!("{url}: corrupt compressed_segmentation chunk: {what}"));
    let chunk = Chunk::parse(spec, data)?;
    let (wide, block, gb, block_voxels, wpe) = (chunk.wide, chunk.block, chunk.gb, chunk.block_voxels, chunk.wpe);
    let nc = spec.channels;
    let rlo: [i64; 3] = std::array::from_fn(|d| region.lo[d] - spec.cell.lo[d]);
    let rhi: [i64; 3] = std::array::from_fn(|d| region.hi[d] - spec.cell.lo[d]);
    // Voxels per table index of the block at hand (bit widths up to 16), the indices touched,
    // and for 32-bit indices a short list instead.
    let mut tally: Vec<u64> = vec![0; 1 << 16];
    let mut touched: Vec<u32> = Vec::new();
    let mut wide_seen: Vec<(u32, u64)> = Vec::new();
    for c in 0..nc {
        let ch = chunk.channel(c, nc, url)?;
        for bz in rlo[2] / block[2]..(rhi[2] + block[2] - 1) / block[2] {
            for by in rlo[1] / block[1]..(rhi[1] + block[1] - 1) / block[1] {
                for bx in rlo[0] / block[0]..(rhi[0] + block[0] - 1) / block[0] {
                    let bi = ((bz * gb[1] + by) * gb[0] + bx) as usize;
                    let h = header(ch, bi, block_voxels, wpe).map_err(|m| bad(format!("channel {c} {m}")))?;
                    let b0 = [bx * block[0], by * block[1], bz * block[2]];
                    let lo: [i64; 3] = std::array::from_fn(|d| rlo[d].max(b0[d]) - b0[d]);
                    let hi: [i64; 3] = std::array::from_fn(|d| rhi[d].min(b0[d] + block[d]) - b0[d]);
                    let inside = ((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2])) as u64;
                    if h.bits == 0 {
                        add(entry(ch, h.table, 0, wide), inside);
                        continue;
                    }
                    let mask = if h.bits == 32 { u32::MAX } else { (1u32 << h.bits) - 1 };
                    let mut bump = |idx: u32, n: u64| {
                        if n == 0 {
                            return;
                        }
                        if h.bits <= 16 {
                            let t = &mut tally[idx as usize];
                            if *t == 0 {
                                touched.push(idx);
                            }
                            *t += n;
                        } else {
                            match wide_seen.iter_mut().find(|(i, _)| *i == idx) {
                                Some((_, m)) => *m += n,
                                None => wide_seen.push((idx, n)),
                            }
                        }
                    };
                    if lo == [0, 0, 0] && hi == block {
                        // A whole block: its packed indices word by word, a word of one
                        // index repeated (the common case in label volumes) in one step, runs
                        // carried across words.
                        let per_word = 32 / h.bits as usize;
                        let n_words = (block_voxels as usize).div_ceil(per_word);
                        let ones = u32::MAX / mask;
                        let mut left = block_voxels as usize;
                        let (mut run, mut len) = (ch[h.values] & mask, 0u64);
                        for &word in &ch[h.values..h.values + n_words] {
                            let k = per_word.min(left);
                            left -= k;
                            let first = word & mask;
                            if k == per_word && word == first.wrapping_mul(ones) {
                                if first != run {
                                    bump(run, len);
                                    (run, len) = (first, 0);
                                }
                                len += k as u64;
                                continue;
                            }
                            let mut w = word;
                            for _ in 0..k {
                                let idx = w & mask;
                                if idx == run {
                                    len += 1;
                                } else {
                                    bump(run, len);
                                    (run, len) = (idx, 1);
                                }
                                w = w.checked_shr(h.bits).unwrap_or(0);
                            }
                        }
                        bump(run, len);
                    } else {
                        for z in lo[2]..hi[2] {
                            for y in lo[1]..hi[1] {
                                let row = ((z * block[1] + y) * block[0]) as u64;
                                for x in lo[0]..hi[0] {
                                    let bit = (row + x as u64) * u64::from(h.bits);
                                    let word = ch[h.values + (bit / 32) as usize];
                                    bump((word >> (bit % 32)) & mask, 1);
                                }
                            }
                        }
                    }
                    let mut emit = |idx: usize, n: u64| -> Result<()> {
                        if idx >= h.table_len {
                            return Err(bad(format!(
                                "channel {c} block {bi}: an index points past the table of {} entries",
                                h.table_len
                            )));
                        }
                        add(entry(ch, h.table, idx, wide), n);
                        Ok(())
                    };
                    for idx in touched.drain(..) {
                        let n = std::mem::take(&mut tally[idx as usize]);
                        emit(idx as usize, n)?;
                    }
                    for (idx, n) in wide_seen.drain(..) {
                        emit(idx as usize, n)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Read table entry `i` (which must be inside the channel).
#[inline(always)]
fn entry(ch: &[u32], table: usize, i: usize, wide: bool) -> u64 {
    if wide {
        u64::from(ch[table + 2 * i]) | (u64::from(ch[table + 2 * i + 1]) << 32)
    } else {
        u64::from(ch[table + i])
    }
}

/// Decode the voxels `k0..k0 + len` (in the block's x-fastest order) of block `b` into `seg`
/// (`len` elements). False when an index points past the table.
#[inline]
fn decode_segment<const NT: bool>(ch: &[u32], b: &Block, k0: usize, seg: &mut [u8], wide: bool) -> bool {
    if b.bits == 0 {
        let v = entry(ch, b.table, 0, wide);
        write_run::<NT>(seg, v, wide);
        return true;
    }
    let bits = b.bits as usize;
    let mask: u64 = if bits == 32 { 0xffff_ffff } else { (1u64 << bits) - 1 };
    let values = &ch[b.values..];
    let table = &ch[b.table..];
    let n = seg.len() / if wide { 8 } else { 4 };
    let bp0 = k0 * bits;
    // bits divides 32, so no index straddles two words.
    if b.all_inside && (bp0 & 31) + n * bits <= 32 {
        // The whole segment's indices sit in one word: shift them out one by one.
        let word = u64::from(values[bp0 >> 5]) >> (bp0 & 31);
        if wide && cfg!(target_endian = "little") {
            // The common case (8-voxel block rows of uint64), unrolled per bit width (8 indices
            // in one word: 1, 2 or 4 bits).
            if let Ok(seg) = <&mut [u8; 64]>::try_from(&mut *seg) {
                match bits {
                    1 => return seg8::<1, NT>(word, &table[..2 << bits], seg),
                    2 => return seg8::<2, NT>(word, &table[..2 << bits], seg),
                    4 => return seg8::<4, NT>(word, &table[..2 << bits], seg),
                    _ => {}
                }
            }
        }
        if wide {
            // Every index fits the table (all_inside), so entry reads cannot go past it.
            let t = &table[..2 << bits];
            let tp = t.as_ptr().cast::<u64>();
            for (i, d) in seg.chunks_exact_mut(8).enumerate() {
                let idx = ((word >> (i * bits)) & mask) as usize;
                let v = if cfg!(target_endian = "little") {
                    // SAFETY: idx < 2^bits and `t` holds 2^bits entries of two words each.
                    unsafe { tp.add(idx).read_unaligned() }
                } else {
                    u64::from(t[2 * idx]) | (u64::from(t[2 * idx + 1]) << 32)
                };
                d.copy_from_slice(&v.to_le_bytes());
            }
        } else {
            let t = &table[..1 << bits];
            for (i, d) in seg.chunks_exact_mut(4).enumerate() {
                let idx = ((word >> (i * bits)) & mask) as usize;
                d.copy_from_slice(&t[idx].to_le_bytes());
            }
        }
        return true;
    }
    let index_at = |i: usize| -> usize {
        let bp = bp0 + i * bits;
        ((u64::from(values[bp >> 5]) >> (bp & 31)) & mask) as usize
    };
    if wide {
        for (i, d) in seg.chunks_exact_mut(8).enumerate() {
            let idx = index_at(i);
            if idx >= b.table_len {
                return false;
            }
            let v = u64::from(table[2 * idx]) | (u64::from(table[2 * idx + 1]) << 32);
            d.copy_from_slice(&v.to_le_bytes());
        }
    } else {
        for (i, d) in seg.chunks_exact_mut(4).enumerate() {
            let idx = index_at(i);
            if idx >= b.table_len {
                return false;
            }
            d.copy_from_slice(&table[idx].to_le_bytes());
        }
    }
    true
}

/// Eight uint64 voxels whose `BITS`-bit indices are the low bits of `word`, looked up in `t`
/// (which holds all 2^BITS entries).
#[inline(always)]
fn seg8<const BITS: usize, const NT: bool>(word: u64, t: &[u32], seg: &mut [u8; 64]) -> bool {
    assert!(t.len() >= 2 << BITS);
    let tp = t.as_ptr().cast::<u64>();
    let mask = (1u64 << BITS) - 1;
    let mut v = [0u64; 8];
    for (i, v) in v.iter_mut().enumerate() {
        let idx = ((word >> (i * BITS)) & mask) as usize;
        // SAFETY: idx < 2^BITS and `t` holds 2^BITS entries of two words each (asserted).
        *v = unsafe { tp.add(idx).read_unaligned() };
    }
    put8::<NT>(seg, &v);
    true
}

/// Store eight little-endian u64 into `seg`; with `NT`, when `seg` is exactly one cache line,
/// with cache-bypassing stores (a whole line: no read of it first; the caller fences).
#[inline(always)]
fn put8<const NT: bool>(seg: &mut [u8; 64], v: &[u64; 8]) {
    #[cfg(target_arch = "x86_64")]
    {
        if NT && (seg.as_ptr() as usize) % 64 == 0 {
            let p = seg.as_mut_ptr().cast::<i64>();
            for (i, &x) in v.iter().enumerate() {
                // SAFETY: p + i is inside `seg` and 8-byte aligned; SSE2 is part of x86_64.
                unsafe { std::arch::x86_64::_mm_stream_si64(p.add(i), x as i64) };
            }
            return;
        }
    }
    for (i, &x) in v.iter().enumerate() {
        seg[8 * i..8 * i + 8].copy_from_slice(&x.to_le_bytes());
    }
}

fn write_run<const NT: bool>(row: &mut [u8], v: u64, wide: bool) {
    if wide && row.len() == 64 {
        if let Ok(seg) = <&mut [u8; 64]>::try_from(&mut *row) {
            put8::<NT>(seg, &[v; 8]);
            return;
        }
    }
    if wide {
        for d in row.chunks_exact_mut(8) {
            d.copy_from_slice(&v.to_le_bytes());
        }
    } else {
        for d in row.chunks_exact_mut(4) {
            d.copy_from_slice(&(v as u32).to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Encoding;

    fn spec(cell: Bbox, dtype: DataType) -> ChunkSpec<'static> {
        ChunkSpec {
            encoding: Encoding::CompressedSegmentation,
            dtype,
            channels: 1,
            cell,
            cseg_block: Some([8, 8, 8]),
            url: "mem://chunk",
        }
    }

    /// The worked example of the format digest: one 8x8x4 uint64 chunk, one block, 4 bits.
    fn worked_example() -> Vec<u8> {
        let mut w: Vec<u32> = vec![1, 0x0400_0042, 2];
        // x = 0..2 -> index 0, x = 3..7 -> index 1, in every row of the 8x8x4 chunk.
        let mut values = vec![0u32; 64];
        for k in 0..512u32 {
            let x = k % 8;
            let idx = u32::from(x >= 3);
            let bit = k * 4;
            values[(bit >> 5) as usize] |= idx << (bit & 31);
        }
        assert_eq!(values[0], 0x1111_1000);
        w.extend(values);
        w.extend([5, 0, 0xdead_beef, 7]);
        w.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn decodes_the_worked_example() {
        let data = worked_example();
        let cell = Bbox::new([16, 16, 8], [24, 24, 12]);
        let region = Bbox::new([17, 16, 9], [23, 18, 10]);
        let mut buf = vec![0u8; 6 * 2 * 8];
        let out = OutView::new(&mut buf, region, 1, 8);
        decode_into(&spec(cell, DataType::U64), &data, &region, &out).unwrap();
        let vals: Vec<u64> = buf.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        let want = 0x0000_0007_dead_beef_u64;
        assert_eq!(&vals[..6], &[5, 5, want, want, want, want]);
    }

    #[test]
    fn corrupt_offsets_are_errors_not_panics() {
        let cell = Bbox::new([0, 0, 0], [8, 8, 4]);
        let mut data = worked_example();
        let mut out_buf = vec![0u8; 8 * 8 * 4 * 8];
        let out = OutView::new(&mut out_buf, cell, 1, 8);
        // Table offset far outside.
        data[4..8].copy_from_slice(&0x04ff_ff00u32.to_le_bytes());
        assert!(decode_into(&spec(cell, DataType::U64), &data, &cell, &out).is_err());
        // Bad bit width.
        let mut d2 = worked_example();
        d2[4..8].copy_from_slice(&0x0300_0042u32.to_le_bytes());
        assert!(decode_into(&spec(cell, DataType::U64), &d2, &cell, &out).is_err());
        // Truncated.
        let d3 = worked_example();
        let e = decode_into(&spec(cell, DataType::U64), &d3[..100], &cell, &out).unwrap_err();
        assert!(e.message().contains("mem://chunk"), "{e}");
        // Channel offset past the end.
        let mut d4 = worked_example();
        d4[0..4].copy_from_slice(&9999u32.to_le_bytes());
        assert!(decode_into(&spec(cell, DataType::U64), &d4, &cell, &out).is_err());
        // Index past the table: table at the last word leaves room for no uint64 entry.
        let mut d5 = worked_example();
        let last = (d5.len() / 4 - 1) as u32;
        d5[4..8].copy_from_slice(&(0x0400_0000 | (last - 1)).to_le_bytes());
        assert!(decode_into(&spec(cell, DataType::U64), &d5, &cell, &out).is_err());
    }

    /// A tiny deterministic generator (xorshift) for the randomized tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Random chunks of every width, block shape, channel count and value mix, encoded by our
    /// encoder and decoded into random sub-regions, inside C-order and Fortran-order views:
    /// every voxel equals the source. Then every chunk with random words overwritten: an error
    /// or some output, never a panic.
    /// Outputs big enough to be streamed past the cache, at every alignment of their rows to
    /// cache lines: chunks side by side (decoded at once on two threads, sharing the lines where
    /// they meet) land exactly, and not a byte around them changes.
    #[test]
    fn streamed_outputs_at_any_alignment_are_exact() {
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        for (wide, shift, clip) in [
            (true, 0, false),
            (true, 16, false),
            (true, 8, true),
            (false, 0, false),
            (false, 40, false),
            (false, 4, true),
        ] {
            let (dtype, item) = if wide { (DataType::U64, 8usize) } else { (DataType::U32, 4) };
            let chunk = [64i64, 32, 16];
            // Output 512 x 64 x 32 (x 2 for uint32): at least 8 MiB, so it streams.
            let ob = Bbox::new([0, 0, 0], [512, 64, if wide { 32 } else { 64 }]);
            let n = (ob.shape().iter().product::<i64>() as usize) * item;
            let mut back = vec![0x5Au8; n + 128];
            let base = back.as_ptr().align_offset(64) + shift;
            let buf = &mut back[base..base + n];
            let out = OutView::new(buf, ob, 1, item);
            assert!(out.streams());
            // Two neighbouring cells along x, each with its own values (bit widths 0 to 4).
            let cells: Vec<(Bbox, Vec<u8>, Bbox)> = (0..2)
                .map(|k| {
                    let lo = [128 + 64 * k, 16, 8];
                    let cell = Bbox::new(lo, [lo[0] + chunk[0], lo[1] + chunk[1], lo[2] + chunk[2]]);
                    let nvals = [1u64, 2, 3, 16][rng.below(4) as usize];
                    let palette: Vec<u64> = (0..nvals).map(|_| rng.next() >> if wide { 0 } else { 32 }).collect();
                    let mut src = vec![0u8; (chunk[0] * chunk[1] * chunk[2]) as usize * item];
                    for (i, e) in src.chunks_exact_mut(item).enumerate() {
                        // Runs of 8 along x in places (single-value blocks), noise elsewhere.
                        let v = if (i / 4096) % 2 == 0 {
                            palette[(i / 8) % palette.len()]
                        } else {
                            palette[rng.below(nvals) as usize]
                        };
                        e.copy_from_slice(&v.to_le_bytes()[..item]);
                    }
                    // Clipped: a region starting and ending inside blocks.
                    let region = if clip {
                        Bbox::new(
                            [cell.lo[0] + 3, cell.lo[1] + 1, cell.lo[2]],
                            [cell.hi[0] - 5, cell.hi[1], cell.hi[2] - 2],
                        )
                    } else {
                        cell
                    };
                    (cell, src, region)
                })
                .collect();
            let encoded: Vec<Vec<u8>> = cells
                .iter()
                .map(|(_, src, _)| {
                    crate::codec::cseg::encode_cseg(dtype, 1, chunk.map(|v| v as usize), [8, 8, 8], src, "mem://x")
                        .unwrap()
                })
                .collect();
            std::thread::scope(|s| {
                for k in 0..2 {
                    let (out, cells, encoded) = (&out, &cells, &encoded);
                    s.spawn(move || {
                        let mut sp = spec(cells[k].0, dtype);
                        sp.cseg_block = Some([8, 8, 8]);
                        decode_into(&sp, &encoded[k], &cells[k].2, out).unwrap();
                    });
                }
            });
            let buf = &back[base..base + n];
            let s = ob.shape();
            for z in 0..s[2] {
                for y in 0..s[1] {
                    for x in 0..s[0] {
                        let oi = (((z * s[1] + y) * s[0] + x) as usize) * item;
                        let got = &buf[oi..oi + item];
                        let want = cells
                            .iter()
                            .find(|(_, _, r)| r.contains(&Bbox::new([x, y, z], [x + 1, y + 1, z + 1])))
                            .map(|(cell, src, _)| {
                                let (cx, cy, cz) = (x - cell.lo[0], y - cell.lo[1], z - cell.lo[2]);
                                let si = (((cz * chunk[1] + cy) * chunk[0] + cx) as usize) * item;
                                &src[si..si + item]
                            });
                        match want {
                            Some(w) => assert_eq!(got, w, "wide {wide} shift {shift} clip {clip} at {x},{y},{z}"),
                            None => assert!(
                                got.iter().all(|&b| b == 0x5A),
                                "wide {wide} shift {shift} clip {clip}: {x},{y},{z} outside the cells was written"
                            ),
                        }
                    }
                }
            }
            assert!(
                back[..base].iter().chain(&back[base + n..]).all(|&b| b == 0x5A),
                "bytes outside the buffer changed"
            );
        }
    }

    #[test]
    fn random_chunks_round_trip_and_corruption_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..300 {
            let wide = rng.below(2) == 0;
            let (dtype, item) = if wide { (DataType::U64, 8) } else { (DataType::U32, 4) };
            let channels = 1 + rng.below(2) as usize;
            let shape = [1 + rng.below(20) as i64, 1 + rng.below(20) as i64, 1 + rng.below(9) as i64];
            let block = [[8, 8, 8], [4, 4, 4], [2, 3, 5], [8, 4, 2], [16, 2, 1]][rng.below(5) as usize];
            // Distinct values per case: 1, 2, 3, 5, 17, 300 (bit widths 0 to 16).
            let nvals = [1u64, 2, 3, 5, 17, 300][rng.below(6) as usize];
            let palette: Vec<u64> =
                (0..nvals).map(|_| if wide { rng.next() } else { rng.next() & 0xffff_ffff }).collect();
            let voxels = (shape[0] * shape[1] * shape[2]) as usize;
            let mut src = vec![0u8; voxels * channels * item];
            for e in src.chunks_exact_mut(item) {
                let v = palette[rng.below(nvals) as usize];
                e.copy_from_slice(&v.to_le_bytes()[..item]);
            }
            let ushape = shape.map(|v| v as usize);
            let data = crate::codec::cseg::encode_cseg(dtype, channels, ushape, block, &src, "mem://x").unwrap();
            let lo = [7, -3, 100];
            let cell = Bbox::new(lo, [lo[0] + shape[0], lo[1] + shape[1], lo[2] + shape[2]]);
            let mut r_lo = [0i64; 3];
            let mut r_hi = [0i64; 3];
            for d in 0..3 {
                let a = rng.below(shape[d] as u64) as i64;
                let b = a + 1 + rng.below((shape[d] - a) as u64) as i64;
                r_lo[d] = lo[d] + a;
                r_hi[d] = lo[d] + b;
            }
            let region = Bbox::new(r_lo, r_hi);
            let rs = region.shape();
            let n = (rs[0] * rs[1] * rs[2]) as usize;
            let mut sp = spec(cell, dtype);
            sp.channels = channels;
            sp.cseg_block = Some(block);
            for c_order in [false, true] {
                let mut buf = vec![0xAAu8; n * channels * item];
                let out = if c_order {
                    let st = [
                        (channels * item) as i64,
                        (channels * item) as i64 * rs[0],
                        (channels * item) as i64 * rs[0] * rs[1],
                        item as i64,
                    ];
                    OutView::strided(&mut buf, region, channels, item, st).unwrap()
                } else {
                    OutView::new(&mut buf, region, channels, item)
                };
                decode_into(&sp, &data, &region, &out).unwrap_or_else(|e| panic!("case {case}: {e}"));
                for c in 0..channels {
                    for z in 0..rs[2] {
                        for y in 0..rs[1] {
                            for x in 0..rs[0] {
                                let (sx, sy, sz) = (x + r_lo[0] - lo[0], y + r_lo[1] - lo[1], z + r_lo[2] - lo[2]);
                                let si = (((c as i64 * shape[2] + sz) * shape[1] + sy) * shape[0] + sx) as usize * item;
                                let oi = if c_order {
                                    ((((z * rs[1] + y) * rs[0] + x) as usize) * channels + c) * item
                                } else {
                                    ((((c as i64 * rs[2] + z) * rs[1] + y) * rs[0] + x) as usize) * item
                                };
                                assert_eq!(
                                    &buf[oi..oi + item],
                                    &src[si..si + item],
                                    "case {case} c_order {c_order} at {x},{y},{z},{c}"
                                );
                            }
                        }
                    }
                }
            }
            // Corrupt words: never a panic.
            for _ in 0..20 {
                let mut bad = data.clone();
                let words = bad.len() / 4;
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(words as u64) as usize * 4;
                    let v = rng.next() as u32;
                    bad[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                let mut buf = vec![0u8; n * channels * item];
                let out = OutView::new(&mut buf, region, channels, item);
                let r =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_into(&sp, &bad, &region, &out)));
                assert!(r.is_ok(), "case {case}: corrupt chunk panicked");
                let cut = rng.below(bad.len() as u64 + 1) as usize & !3;
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    decode_into(&sp, &bad[..cut], &region, &out)
                }));
                assert!(r.is_ok(), "case {case}: truncated chunk panicked");
            }
        }
    }
}
