//! The sharded format (`neuroglancer_uint64_sharded_v1`, format digest §4), written here from
//! the digest rather than taken from the library, so that the tests cross-check it: the hash of
//! §4.2, compressed Morton codes (§4.4) and a sharding spec with where a chunk id goes.

use serde_json::{json, Value};

/// The low `bits` bits set (all 64 from 64 on).
pub fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// MurmurHash3_x86_128, seed 0, of the 8 little-endian bytes of `key`: the low 64 bits (§4.2).
pub fn murmur3(key: u64) -> u64 {
    let (lo, hi) = (key as u32, (key >> 32) as u32);
    let (mut h1, mut h2, mut h3, mut h4) = (0u32, 0u32, 0u32, 0u32);
    h2 ^= hi.wrapping_mul(0xab0e_9789).rotate_left(16).wrapping_mul(0x38b3_4ae5);
    h1 ^= lo.wrapping_mul(0x239b_961b).rotate_left(15).wrapping_mul(0xab0e_9789);
    // The length, 8 bytes, into every lane.
    for h in [&mut h1, &mut h2, &mut h3, &mut h4] {
        *h ^= 8;
    }
    h1 = h1.wrapping_add(h2).wrapping_add(h3).wrapping_add(h4);
    h2 = h2.wrapping_add(h1);
    h3 = h3.wrapping_add(h1);
    h4 = h4.wrapping_add(h1);
    h1 = fmix32(h1);
    h2 = fmix32(h2);
    h3 = fmix32(h3);
    h4 = fmix32(h4);
    h1 = h1.wrapping_add(h2).wrapping_add(h3).wrapping_add(h4);
    h2 = h2.wrapping_add(h1);
    u64::from(h1) | (u64::from(h2) << 32)
}

/// The compressed Morton code of grid cell `cell` in a grid of `grid` cells (§4.4): bit i of
/// each axis, x first, for the axes that still have a bit i.
pub fn morton(cell: [i64; 3], grid: [i64; 3]) -> u64 {
    let bits = grid.map(|g| 64 - ((g.max(1) - 1) as u64).leading_zeros());
    let (mut id, mut j) = (0u64, 0);
    for i in 0..bits.iter().copied().max().unwrap_or(0) {
        for d in 0..3 {
            if i < bits[d] {
                id |= (((cell[d] as u64) >> i) & 1) << j;
                j += 1;
            }
        }
    }
    id
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Identity,
    Murmur,
}

/// A sharding spec.
#[derive(Clone, Copy, Debug)]
pub struct Sharding {
    pub hash: Hash,
    pub preshift: u32,
    pub minishard_bits: u32,
    pub shard_bits: u32,
    pub index_gzip: bool,
    pub data_gzip: bool,
}

impl Sharding {
    /// The identity hash, raw minishard indices and data.
    pub fn identity(preshift: u32, minishard_bits: u32, shard_bits: u32) -> Sharding {
        Sharding { hash: Hash::Identity, preshift, minishard_bits, shard_bits, index_gzip: false, data_gzip: false }
    }

    /// The `sharding` member of a scale.
    pub fn json(&self) -> Value {
        json!({
            "@type": "neuroglancer_uint64_sharded_v1",
            "hash": if self.hash == Hash::Identity { "identity" } else { "murmurhash3_x86_128" },
            "preshift_bits": self.preshift,
            "minishard_bits": self.minishard_bits,
            "shard_bits": self.shard_bits,
            "minishard_index_encoding": if self.index_gzip { "gzip" } else { "raw" },
            "data_encoding": if self.data_gzip { "gzip" } else { "raw" },
        })
    }

    /// (shard, minishard) of chunk `id`.
    pub fn locate(&self, id: u64) -> (u64, u64) {
        let shifted = if self.preshift >= 64 { 0 } else { id >> self.preshift };
        let h = match self.hash {
            Hash::Identity => shifted,
            Hash::Murmur => murmur3(shifted),
        };
        let shard = if self.minishard_bits >= 64 { 0 } else { (h >> self.minishard_bits) & mask(self.shard_bits) };
        (shard, h & mask(self.minishard_bits))
    }

    /// The file name of `shard`: lower-case hex, `ceil(shard_bits / 4)` digits (at least 1).
    pub fn file(&self, shard: u64) -> String {
        let digits = (self.shard_bits as usize).div_ceil(4).max(1);
        format!("{shard:0digits$x}.shard")
    }
}
