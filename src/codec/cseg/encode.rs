//! Encoding compressed_segmentation: the canonical encoding, byte-identical to tensorstore's for
//! the same chunk (tests/encode.rs compares them): blocks visited x fastest; per block its
//! packed indices, then its table (the block's distinct values, ascending); a table equal to
//! one the channel already emitted is not written again, the header points at the earlier one;
//! bits = smallest of 0, 1, 2, 4, 8, 16 with `2^bits >= distinct values`; partial blocks are
//! padded (padding indices 0); several channels get the header of channel offsets.
//!
//! Two limits keep every chunk readable by every reader (digest §3): a block that would need
//! 32 bits (more than 65,536 distinct values, possible only with blocks of more than 65,536
//! voxels) is refused, as is a chunk of more than 2^24 words (64 MiB), whose offsets would not
//! fit the 24 bits readers keep. Blocks of more than 65,536 voxels are otherwise accepted (they
//! exist in the wild), so the layer creator is the place to refuse such block sizes.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::format::DataType;

/// Words a compressed_segmentation chunk may hold: offsets are kept to 24 bits by readers.
const CSEG_MAX_WORDS: usize = 1 << 24;
/// Most distinct values of a block that 16 bits can index.
const CSEG_MAX_DISTINCT: usize = 1 << 16;

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

#[cfg(test)]
mod tests {
    use super::*;

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
