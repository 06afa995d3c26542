//! compressed_segmentation (uint32 and uint64, any block size, any channel count), decoded
//! straight into the output: every voxel is looked up in its block's table and written once.

use std::borrow::Cow;

use super::{ChunkSpec, OutView};
use crate::error::{Error, Result};
use crate::format::{Bbox, DataType};

/// Most table entries looked up through the per-block array of values.
const LUT_MAX: usize = 4096;

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

pub fn decode_into(spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()> {
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
    let w: &[u32] = &words;
    let nc = spec.channels;
    if w.len() < nc {
        return Err(bad(format!("{} words cannot hold {nc} channel offsets", w.len())));
    }
    let block = spec.cseg_block.ok_or_else(|| bad("no block size in the info".into()))?;
    let shape = spec.cell.shape();
    let mut gb = [0i64; 3];
    for d in 0..3 {
        gb[d] = (shape[d] + block[d] - 1) / block[d];
    }
    let n_blocks = (gb[0] * gb[1] * gb[2]) as usize;
    let block_voxels = (block[0] * block[1] * block[2]) as u64;
    let wpe: usize = if wide { 2 } else { 1 };
    // Region relative to the cell.
    let rlo = [region.lo[0] - spec.cell.lo[0], region.lo[1] - spec.cell.lo[1], region.lo[2] - spec.cell.lo[2]];
    let rhi = [region.hi[0] - spec.cell.lo[0], region.hi[1] - spec.cell.lo[1], region.hi[2] - spec.cell.lo[2]];

    let mut lut: Vec<u64> = Vec::with_capacity(LUT_MAX);
    for c in 0..nc {
        let start = w[c] as usize;
        let end = if c + 1 < nc { w[c + 1] as usize } else { w.len() };
        if start < nc || start > end || end > w.len() {
            return Err(bad(format!("channel {c} offsets [{start}, {end}) outside the chunk of {} words", w.len())));
        }
        let ch = &w[start..end];
        if ch.len() < 2 * n_blocks {
            return Err(bad(format!("channel {c}: {} words cannot hold {n_blocks} block headers", ch.len())));
        }
        for bz in rlo[2] / block[2]..(rhi[2] + block[2] - 1) / block[2] {
            for by in rlo[1] / block[1]..(rhi[1] + block[1] - 1) / block[1] {
                for bx in rlo[0] / block[0]..(rhi[0] + block[0] - 1) / block[0] {
                    let bi = ((bz * gb[1] + by) * gb[0] + bx) as usize;
                    let h0 = ch[2 * bi];
                    let table_off = (h0 & 0xff_ffff) as usize;
                    let bits = h0 >> 24;
                    let values_off = (ch[2 * bi + 1] & 0xff_ffff) as usize;
                    if !matches!(bits, 0 | 1 | 2 | 4 | 8 | 16 | 32) {
                        return Err(bad(format!("channel {c} block {bi}: invalid bit width {bits}")));
                    }
                    if table_off + wpe > ch.len() {
                        return Err(bad(format!(
                            "channel {c} block {bi}: table offset {table_off} outside the channel of {} words",
                            ch.len()
                        )));
                    }
                    let table_len = (ch.len() - table_off) / wpe;
                    let table = &ch[table_off..];
                    let n_value_words = ((u64::from(bits) * block_voxels + 31) / 32) as usize;
                    if values_off + n_value_words > ch.len() {
                        return Err(bad(format!(
                            "channel {c} block {bi}: values at {values_off}+{n_value_words} outside the channel of {} words",
                            ch.len()
                        )));
                    }
                    let values = &ch[values_off..values_off + n_value_words];
                    // The part of the region inside this block, relative to the cell.
                    let b0 = [bx * block[0], by * block[1], bz * block[2]];
                    let lo = [rlo[0].max(b0[0]), rlo[1].max(b0[1]), rlo[2].max(b0[2])];
                    let hi = [
                        rhi[0].min(b0[0] + block[0]),
                        rhi[1].min(b0[1] + block[1]),
                        rhi[2].min(b0[2] + block[2]),
                    ];
                    let entry = |i: usize| -> u64 {
                        if wide {
                            u64::from(table[2 * i]) | (u64::from(table[2 * i + 1]) << 32)
                        } else {
                            u64::from(table[i])
                        }
                    };
                    let mask: u64 = if bits == 32 { 0xffff_ffff } else { (1u64 << bits) - 1 };
                    // The block's table as values, for the indices it can hold (capped: a table
                    // may run on to the end of the channel).
                    let nlut = if bits == 0 { 1 } else { (1usize << bits).min(table_len).min(LUT_MAX) };
                    lut.clear();
                    lut.extend((0..nlut).map(&entry));
                    let lookup = |idx: usize| -> Result<u64> {
                        if let Some(&v) = lut.get(idx) {
                            Ok(v)
                        } else if idx < table_len {
                            Ok(entry(idx))
                        } else {
                            Err(bad(format!("channel {c} block {bi}: index {idx} past the table of {table_len} entries")))
                        }
                    };
                    for z in lo[2]..hi[2] {
                        for y in lo[1]..hi[1] {
                            // SAFETY: each chunk writes its own region.
                            unsafe {
                                out.with_row(
                                    lo[0] + spec.cell.lo[0],
                                    hi[0] + spec.cell.lo[0],
                                    y + spec.cell.lo[1],
                                    z + spec.cell.lo[2],
                                    c,
                                    |row| -> Result<()> {
                                        if bits == 0 {
                                            write_run(row, lut[0], wide);
                                            return Ok(());
                                        }
                                        let k0 = (((z - b0[2]) * block[1] + (y - b0[1])) * block[0] + (lo[0] - b0[0])) as u64;
                                        let bits64 = u64::from(bits);
                                        let index_at = |i: usize| -> usize {
                                            let bitpos = (k0 + i as u64) * bits64;
                                            ((u64::from(values[(bitpos >> 5) as usize]) >> (bitpos & 31)) & mask) as usize
                                        };
                                        if wide {
                                            for (i, d) in row.chunks_exact_mut(8).enumerate() {
                                                let idx = index_at(i);
                                                let v = match lut.get(idx) {
                                                    Some(&v) => v,
                                                    None => lookup(idx)?,
                                                };
                                                d.copy_from_slice(&v.to_le_bytes());
                                            }
                                        } else {
                                            for (i, d) in row.chunks_exact_mut(4).enumerate() {
                                                let idx = index_at(i);
                                                let v = match lut.get(idx) {
                                                    Some(&v) => v,
                                                    None => lookup(idx)?,
                                                };
                                                d.copy_from_slice(&(v as u32).to_le_bytes());
                                            }
                                        }
                                        Ok(())
                                    },
                                )?;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn write_run(row: &mut [u8], v: u64, wide: bool) {
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
}
