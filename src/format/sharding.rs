//! The `neuroglancer_uint64_sharded_v1` format: the spec object, chunk ids (compressed Morton
//! codes), hashing, and where a chunk id lives (shard file and minishard). No I/O.

use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardHash {
    Identity,
    Murmur3,
}

/// How the minishard indices or the chunk payloads are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataEncoding {
    Raw,
    Gzip,
}

/// A validated sharding spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardingSpec {
    pub preshift_bits: u32,
    pub hash: ShardHash,
    pub minishard_bits: u32,
    pub shard_bits: u32,
    pub minishard_index_encoding: DataEncoding,
    pub data_encoding: DataEncoding,
}

impl ShardingSpec {
    /// Parse and validate a spec; `ctx` names where it came from.
    pub fn parse(v: &Value, ctx: &str) -> Result<ShardingSpec> {
        let bad = |m: String| Error::decode(format!("{ctx}: sharding: {m}"));
        let obj = v.as_object().ok_or_else(|| bad("must be an object".into()))?;
        match obj.get("@type").and_then(Value::as_str) {
            Some("neuroglancer_uint64_sharded_v1") => {}
            other => {
                return Err(Error::unsupported(format!(
                    "{ctx}: sharding \"@type\" {other:?} is not \"neuroglancer_uint64_sharded_v1\""
                )))
            }
        }
        let bits = |name: &str, max: u64| -> Result<u32> {
            let val = obj.get(name).ok_or_else(|| bad(format!("missing \"{name}\"")))?;
            val.as_u64()
                .filter(|&b| b <= max)
                .map(|b| b as u32)
                .ok_or_else(|| bad(format!("\"{name}\" must be an integer in 0..={max}, got {val}")))
        };
        let preshift_bits = bits("preshift_bits", 64)?;
        let minishard_bits = bits("minishard_bits", 32)?;
        let shard_bits = bits("shard_bits", 64)?;
        if minishard_bits + shard_bits > 64 {
            return Err(bad(format!("minishard_bits + shard_bits = {} exceeds 64", minishard_bits + shard_bits)));
        }
        let hash = match obj.get("hash").and_then(Value::as_str) {
            Some("identity") => ShardHash::Identity,
            Some("murmurhash3_x86_128") => ShardHash::Murmur3,
            _ => {
                return Err(Error::unsupported(format!(
                    "{ctx}: sharding \"hash\" {} is neither \"identity\" nor \"murmurhash3_x86_128\"",
                    obj.get("hash").map_or("(missing)".to_string(), Value::to_string)
                )))
            }
        };
        let enc = |name: &str| -> Result<DataEncoding> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(DataEncoding::Raw),
                Some(v) => match v.as_str() {
                    Some("raw") => Ok(DataEncoding::Raw),
                    Some("gzip") => Ok(DataEncoding::Gzip),
                    _ => Err(bad(format!("\"{name}\" must be \"raw\" or \"gzip\", got {v}"))),
                },
            }
        };
        Ok(ShardingSpec {
            preshift_bits,
            hash,
            minishard_bits,
            shard_bits,
            minishard_index_encoding: enc("minishard_index_encoding")?,
            data_encoding: enc("data_encoding")?,
        })
    }

    /// The (shard number, minishard number) holding chunk `id`.
    pub fn locate(&self, id: u64) -> (u64, u64) {
        let shifted = if self.preshift_bits >= 64 { 0 } else { id >> self.preshift_bits };
        let h = match self.hash {
            ShardHash::Identity => shifted,
            ShardHash::Murmur3 => murmur3_x86_128_u64(shifted),
        };
        let minishard = h & low_mask(self.minishard_bits);
        let shard = if self.minishard_bits >= 64 { 0 } else { (h >> self.minishard_bits) & low_mask(self.shard_bits) };
        (shard, minishard)
    }

    /// The shard file name: lowercase hex, zero-padded to ceil(shard_bits / 4) digits (at least 1).
    pub fn shard_file(&self, shard: u64) -> String {
        let digits = (self.shard_bits as usize).div_ceil(4).max(1);
        format!("{shard:0digits$x}.shard")
    }

    /// Bytes of the shard index at the start of each shard file: 16 per minishard.
    pub fn index_len(&self) -> u64 {
        16u64 << self.minishard_bits
    }

    /// The most bytes a decoded minishard index can take in a grid of `grid_shape` chunks
    /// (24 per entry). A minishard holds the chunks whose hashed `id >> preshift_bits` falls in
    /// its bucket: with the identity hash at most `2^preshift_bits` ids per value in the bucket;
    /// with murmurhash3 the values spread evenly over the buckets, and four times the even
    /// share plus 64 is a bound no real layout reaches. Never more than the grid's chunks.
    pub fn minishard_index_limit(&self, grid_shape: [i64; 3]) -> usize {
        let chunks: u128 = grid_shape.iter().map(|&g| g.max(1) as u128).product();
        let id_bits: u32 = morton_bits(grid_shape).iter().sum();
        let pre = self.preshift_bits.min(id_bits);
        // Distinct values of id >> preshift_bits, and buckets (shard, minishard) they fall in.
        let values = 1u128 << (id_bits - pre);
        let buckets = 1u128 << (self.minishard_bits + self.shard_bits).min(100);
        let per_bucket = match self.hash {
            ShardHash::Identity => values.div_ceil(buckets),
            ShardHash::Murmur3 => 4 * values.div_ceil(buckets) + 64,
        };
        let entries = (per_bucket << pre).min(chunks);
        usize::try_from(entries.saturating_mul(24)).unwrap_or(usize::MAX)
    }
}

fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Bits of the compressed Morton code per axis: `bit_length(grid - 1)`.
pub fn morton_bits(grid_shape: [i64; 3]) -> [u32; 3] {
    grid_shape.map(|g| 64 - ((g.max(1) - 1) as u64).leading_zeros())
}

/// The compressed Morton code of grid cell `g` in a grid of `grid_shape` cells.
pub fn compressed_morton(g: [i64; 3], grid_shape: [i64; 3]) -> u64 {
    let bits = morton_bits(grid_shape);
    let max = *bits.iter().max().unwrap_or(&0);
    let mut id = 0u64;
    let mut j = 0;
    for i in 0..max {
        for d in 0..3 {
            if i < bits[d] {
                id |= (((g[d] as u64) >> i) & 1) << j;
                j += 1;
            }
        }
    }
    id
}

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// MurmurHash3_x86_128 with seed 0 of the 8 little-endian bytes of `key`, low 64 bits.
pub fn murmur3_x86_128_u64(key: u64) -> u64 {
    let lo = key as u32;
    let hi = (key >> 32) as u32;
    let (mut h1, mut h2, mut h3, mut h4) = (0u32, 0u32, 0u32, 0u32);
    let k2 = hi.wrapping_mul(0xab0e_9789).rotate_left(16).wrapping_mul(0x38b3_4ae5);
    h2 ^= k2;
    let k1 = lo.wrapping_mul(0x239b_961b).rotate_left(15).wrapping_mul(0xab0e_9789);
    h1 ^= k1;
    h1 ^= 8;
    h2 ^= 8;
    h3 ^= 8;
    h4 ^= 8;
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

/// Decode a minishard index (already gunzipped): `(chunk id, start, end)` in absolute byte
/// offsets of the shard file, sorted by id.
pub fn decode_minishard_index(data: &[u8], index_len: u64, ctx: &str) -> Result<Vec<(u64, u64, u64)>> {
    if data.len() % 24 != 0 {
        return Err(Error::decode(format!("{ctx}: minishard index of {} bytes is not a multiple of 24", data.len())));
    }
    let n = data.len() / 24;
    let word = |i: usize| u64::from_le_bytes(data[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
    let mut out = Vec::with_capacity(n);
    let (mut id, mut end) = (0u64, index_len);
    for i in 0..n {
        id = id.wrapping_add(word(i));
        let start = end.wrapping_add(word(n + i));
        let size = word(2 * n + i);
        end = start.checked_add(size).ok_or_else(|| {
            Error::decode(format!("{ctx}: minishard index entry {i} overflows (start {start}, size {size})"))
        })?;
        out.push((id, start, end));
    }
    out.sort_unstable_by_key(|e| e.0);
    Ok(out)
}

/// Assemble a shard file: the shard index, then per minishard (ascending) its chunks sorted by
/// id followed by its index (tensorstore's layout). `chunks` holds `(minishard, id, payload)`
/// sorted by (minishard, id), payloads already data-encoded; `encode_index` applies the
/// spec's `minishard_index_encoding` to a raw index.
pub fn assemble_shard(
    spec: &ShardingSpec,
    chunks: &[(u64, u64, Vec<u8>)],
    encode_index: impl Fn(Vec<u8>) -> Vec<u8>,
) -> Vec<u8> {
    let n_ms = 1usize << spec.minishard_bits.min(30);
    let mut index = vec![0u8; spec.index_len() as usize];
    let mut body: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < chunks.len() {
        let ms = chunks[i].0;
        let mut j = i;
        let (mut ids, mut offs, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
        let (mut prev_id, mut prev_end) = (0u64, 0u64);
        while j < chunks.len() && chunks[j].0 == ms {
            let (_, id, ref bytes) = chunks[j];
            let start = body.len() as u64;
            body.extend_from_slice(bytes);
            ids.push(id - prev_id);
            offs.push(start - prev_end);
            sizes.push(bytes.len() as u64);
            prev_id = id;
            prev_end = start + bytes.len() as u64;
            j += 1;
        }
        let mut raw = Vec::with_capacity(24 * ids.len());
        for v in ids.iter().chain(&offs).chain(&sizes) {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        let encoded = encode_index(raw);
        let start = body.len() as u64;
        body.extend_from_slice(&encoded);
        let end = body.len() as u64;
        if (ms as usize) < n_ms {
            index[16 * ms as usize..16 * ms as usize + 8].copy_from_slice(&start.to_le_bytes());
            index[16 * ms as usize + 8..16 * ms as usize + 16].copy_from_slice(&end.to_le_bytes());
        }
        i = j;
    }
    index.extend_from_slice(&body);
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_vectors() {
        assert_eq!(murmur3_x86_128_u64(0), 0x4772_b084_e028_ae41);
        assert_eq!(murmur3_x86_128_u64(1), 0xe8bd_67d6_16d4_ce9a);
        assert_eq!(murmur3_x86_128_u64(42), 0xc20b_94f9_5119_f47a);
    }

    #[test]
    fn worked_example_ids_and_files() {
        // Grid [3,2,2]: bits [2,1,1]; id = x0 | y0<<1 | z0<<2 | x1<<3.
        let grid = [3, 2, 2];
        assert_eq!(morton_bits(grid), [2, 1, 1]);
        assert_eq!(compressed_morton([1, 1, 0], grid), 3);
        assert_eq!(compressed_morton([2, 0, 1], grid), 12);
        assert_eq!(compressed_morton([2, 1, 1], grid), 14);
        let spec = ShardingSpec {
            preshift_bits: 1,
            hash: ShardHash::Identity,
            minishard_bits: 1,
            shard_bits: 2,
            minishard_index_encoding: DataEncoding::Raw,
            data_encoding: DataEncoding::Raw,
        };
        assert_eq!(spec.locate(12), (3, 0));
        assert_eq!(spec.locate(14), (3, 1));
        assert_eq!(spec.locate(3), (0, 1));
        assert_eq!(spec.shard_file(3), "3.shard");
        let wide = ShardingSpec { shard_bits: 5, ..spec.clone() };
        assert_eq!(wide.shard_file(0x1f), "1f.shard");
        assert_eq!(wide.shard_file(0), "00.shard");
        assert_eq!(ShardingSpec { shard_bits: 0, ..spec }.shard_file(0), "0.shard");
    }

    #[test]
    fn minishard_index_restarts_from_the_shard_index_end() {
        // 0.shard's minishard 1: ids delta [2,1], offsets delta [0xb0,0], sizes [0x30,0x30], S=32.
        let words: [u64; 6] = [2, 1, 0xb0, 0, 0x30, 0x30];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let e = decode_minishard_index(&bytes, 32, "t").unwrap();
        assert_eq!(e, vec![(2, 0xd0, 0x100), (3, 0x100, 0x130)]);
        assert!(decode_minishard_index(&bytes[..20], 32, "t").is_err());
    }

    #[test]
    fn spec_validation() {
        let ok = serde_json::json!({"@type":"neuroglancer_uint64_sharded_v1","preshift_bits":9,"hash":"identity",
            "minishard_bits":6,"shard_bits":13,"minishard_index_encoding":"gzip","data_encoding":"gzip"});
        let s = ShardingSpec::parse(&ok, "x").unwrap();
        assert_eq!((s.minishard_bits, s.data_encoding), (6, DataEncoding::Gzip));
        let mut bad = ok.clone();
        bad["hash"] = "md5".into();
        assert!(ShardingSpec::parse(&bad, "x").unwrap_err().message().contains("md5"));
        let mut bad = ok.clone();
        bad["shard_bits"] = 40.into();
        bad["minishard_bits"] = 30.into();
        assert!(ShardingSpec::parse(&bad, "x").unwrap_err().message().contains("exceeds 64"));
    }
}
