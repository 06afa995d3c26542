//! Reading sharded scales (`neuroglancer_uint64_sharded_v1`): chunk ids located in shard files
//! through the shard index and minishard indices (both cached, bounded in bytes, shared by all
//! threads of the handle), then chunk byte ranges fetched with adjacent ranges coalesced.
//!
//! A cold cutout of k chunks in one shard costs 1 request for the shard index, 1 per minishard
//! touched, and at most k for the data; a warm one at most k.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use super::Volume;
use crate::cloudpath::join_key;
use crate::codec::{self, compression, ChunkSpec, OutView};
use crate::error::{Error, Result};
use crate::format::sharding::{compressed_morton, decode_minishard_index, DataEncoding, ShardingSpec};
use crate::format::{Bbox, ChunkGrid, Scale};

/// Shard indices up to this size are fetched whole (one request serves every minishard).
const WHOLE_INDEX_MAX: u64 = 1 << 20;
/// Neighbouring chunk ranges closer than this are fetched in one request.
const COALESCE_GAP: u64 = 4096;
/// A coalesced request stays below this many bytes (memory held per request in flight).
const COALESCE_MAX: u64 = 4 << 20;

/// A minishard index: `(chunk id, start, end)` sorted by id.
pub(crate) type MinishardIndex = Vec<(u64, u64, u64)>;

/// The shard and minishard caches of a handle.
pub(crate) struct ShardCaches {
    /// (mip, shard) → the whole shard index, or None when the shard file does not exist.
    pub(crate) index: crate::cache::ByteLru<(u32, u64), Option<Vec<u8>>>,
    /// (mip, shard, minishard) → the decoded minishard index (None: shard file missing).
    pub(crate) minishard: crate::cache::ByteLru<(u32, u64, u64), Option<MinishardIndex>>,
}

impl ShardCaches {
    pub(crate) fn new(bytes: usize) -> ShardCaches {
        ShardCaches {
            index: crate::cache::ByteLru::new(bytes / 2),
            minishard: crate::cache::ByteLru::new(bytes / 2),
        }
    }
}

/// One chunk a cutout wants.
struct Want {
    cell: [i64; 3],
    id: u64,
    shard: u64,
    minishard: u64,
}

/// Where a wanted chunk's bytes are.
struct Located {
    want: usize,
    start: u64,
    end: u64,
}

impl Volume {
    fn shard_key(&self, scale: &Scale, spec: &ShardingSpec, shard: u64) -> String {
        join_key(&scale.key, &spec.shard_file(shard))
    }

    /// The byte range `[start, end)` of minishard `ms`'s index in shard `shard`, or None when
    /// the shard file does not exist.
    fn minishard_range(&self, mip: u32, scale: &Scale, spec: &ShardingSpec, shard: u64, ms: u64) -> Result<Option<(u64, u64)>> {
        let key = self.shard_key(scale, spec, shard);
        let s = spec.index_len();
        let entry: [u8; 16] = if s <= WHOLE_INDEX_MAX {
            let index = match self.shards.index.get(&(mip, shard)) {
                Some(i) => i,
                None => {
                    let fetched = self.store.get_range(&key, 0, s)?;
                    let bytes = fetched.as_ref().map_or(16, Vec::len);
                    let arc = Arc::new(fetched);
                    self.shards.index.insert((mip, shard), arc.clone(), bytes);
                    arc
                }
            };
            let Some(index) = index.as_ref() else { return Ok(None) };
            let at = (16 * ms) as usize;
            index[at..at + 16].try_into().unwrap_or([0; 16])
        } else {
            match self.store.get_range(&key, 16 * ms, 16 * ms + 16)? {
                Some(b) if b.len() == 16 => b[..].try_into().unwrap_or([0; 16]),
                Some(_) => return Err(Error::decode(format!("{}: short shard index entry", self.store.url(&key)))),
                None => return Ok(None),
            }
        };
        let start = u64::from_le_bytes(entry[..8].try_into().unwrap_or([0; 8]));
        let end = u64::from_le_bytes(entry[8..].try_into().unwrap_or([0; 8]));
        if end < start {
            return Err(Error::decode(format!(
                "{}: corrupt shard index: minishard {ms} ends ({end}) before it starts ({start})",
                self.store.url(&key)
            )));
        }
        let (a, b) = (start.checked_add(s), end.checked_add(s));
        match (a, b) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            _ => Err(Error::decode(format!(
                "{}: corrupt shard index: minishard {ms} range [{start}, {end}) overflows",
                self.store.url(&key)
            ))),
        }
    }

    /// Fetch (and cache) shard `shard`'s index when it is small enough to be fetched whole, so
    /// that parallel minishard look-ups that follow do not race to fetch it.
    pub(crate) fn prefetch_shard_index(&self, mip: u32, scale: &Scale, spec: &ShardingSpec, shard: u64) -> Result<()> {
        if spec.index_len() <= WHOLE_INDEX_MAX {
            self.minishard_range(mip, scale, spec, shard, 0)?;
        }
        Ok(())
    }

    /// The decoded index of minishard `ms` of shard `shard` (cached), or None when the shard
    /// file does not exist.
    pub(crate) fn minishard_index(&self, mip: u32, scale: &Scale, spec: &ShardingSpec, shard: u64, ms: u64) -> Result<Arc<Option<MinishardIndex>>> {
        if let Some(hit) = self.shards.minishard.get(&(mip, shard, ms)) {
            return Ok(hit);
        }
        let key = self.shard_key(scale, spec, shard);
        let url = self.store.url(&key);
        let decoded = match self.minishard_range(mip, scale, spec, shard, ms)? {
            None => None,
            Some((a, b)) if a == b => Some(Vec::new()),
            Some((a, b)) => {
                if b - a > 1 << 31 {
                    return Err(Error::decode(format!("{url}: minishard {ms} index of {} bytes is implausible", b - a)));
                }
                let raw = self
                    .store
                    .get_range(&key, a, b)
                    .map_err(|e| e.context(format!("reading the index of minishard {ms}")))?
                    .ok_or_else(|| Error::not_found(format!("{url}: shard file vanished while reading minishard {ms}")))?;
                let ctx = format!("{url} minishard {ms}");
                let raw = match spec.minishard_index_encoding {
                    DataEncoding::Raw => raw,
                    DataEncoding::Gzip => compression::gunzip(&raw, &ctx)?,
                };
                Some(decode_minishard_index(&raw, spec.index_len(), &ctx)?)
            }
        };
        let bytes = decoded.as_ref().map_or(16, |v| 24 * v.len() + 16);
        let arc = Arc::new(decoded);
        self.shards.minishard.insert((mip, shard, ms), arc.clone(), bytes);
        Ok(arc)
    }

    /// Read `inside` (within the bounds) of sharded scale `mip` into `out`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read_sharded(
        &self,
        mip: u32,
        scale: &Scale,
        spec: &ShardingSpec,
        inside: &Bbox,
        out: &OutView<'_>,
        background: &[u8],
        progress: Option<&AtomicUsize>,
    ) -> Result<()> {
        let grid = ChunkGrid::of(scale);
        let gshape = grid.grid_shape();
        let wants: Vec<Want> = grid
            .cells_in(inside)
            .into_iter()
            .map(|cell| {
                let id = compressed_morton(cell, gshape);
                let (shard, minishard) = spec.locate(id);
                Want { cell, id, shard, minishard }
            })
            .collect();
        // Minishard indices, one request each (the shard index fetched on the way), in parallel.
        let mut groups: Vec<(u64, u64)> = wants.iter().map(|w| (w.shard, w.minishard)).collect();
        groups.sort_unstable();
        groups.dedup();
        // Shard indices first, once per shard, so minishard tasks do not race to fetch them.
        let mut shards: Vec<u64> = groups.iter().map(|g| g.0).collect();
        shards.dedup();
        if shards.len() > 1 {
            self.pool.install(|| shards.par_iter().try_for_each(|&s| self.prefetch_shard_index(mip, scale, spec, s)))?;
        }
        let indices: Vec<Arc<Option<MinishardIndex>>> = if groups.len() > 1 {
            self.pool.install(|| {
                groups.par_iter().map(|&(s, m)| self.minishard_index(mip, scale, spec, s, m)).collect::<Result<_>>()
            })?
        } else {
            groups.iter().map(|&(s, m)| self.minishard_index(mip, scale, spec, s, m)).collect::<Result<_>>()?
        };
        let index_of = |w: &Want| -> &Option<MinishardIndex> {
            let g = groups.binary_search(&(w.shard, w.minishard)).unwrap_or(0);
            &indices[g]
        };
        // Locate every chunk; the absent ones are missing.
        let mut by_shard: BTreeMap<u64, Vec<Located>> = BTreeMap::new();
        let mut missing: Vec<usize> = Vec::new();
        for (i, w) in wants.iter().enumerate() {
            let found = index_of(w)
                .as_ref()
                .and_then(|idx| idx.binary_search_by_key(&w.id, |e| e.0).ok().map(|j| idx[j]));
            match found {
                Some((_, start, end)) if end > start => {
                    by_shard.entry(w.shard).or_default().push(Located { want: i, start, end })
                }
                _ => missing.push(i),
            }
        }
        for &i in &missing {
            let w = &wants[i];
            if !self.opts.fill_missing {
                let key = self.shard_key(scale, spec, w.shard);
                return Err(Error::not_found(format!(
                    "{}: chunk {} (grid cell {:?}) is not in minishard {} (open with fill_missing=true to read it as background)",
                    self.store.url(&key),
                    w.id,
                    w.cell,
                    w.minishard
                )));
            }
            let region = grid.cell_bbox(w.cell).intersection(inside);
            if let Some(region) = region {
                // SAFETY: each chunk writes its own region.
                unsafe { out.fill(&region, background) };
            }
            if let Some(p) = progress {
                p.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Coalesce neighbouring byte ranges of each shard into runs.
        let mut runs: Vec<(u64, Vec<Located>)> = Vec::new();
        for (shard, mut located) in by_shard {
            located.sort_unstable_by_key(|l| l.start);
            let mut run: Vec<Located> = Vec::new();
            for l in located {
                if let (Some(first), Some(last)) = (run.first(), run.last()) {
                    let gap_ok = l.start >= last.end && l.start - last.end <= COALESCE_GAP;
                    if !gap_ok || l.end - first.start > COALESCE_MAX {
                        runs.push((shard, std::mem::take(&mut run)));
                    }
                }
                run.push(l);
            }
            if !run.is_empty() {
                runs.push((shard, run));
            }
        }
        let read_run = |(shard, run): &(u64, Vec<Located>)| -> Result<()> {
            let key = self.shard_key(scale, spec, *shard);
            let url = self.store.url(&key);
            let (a, b) = (run[0].start, run.iter().map(|l| l.end).max().unwrap_or(run[0].end));
            let bytes = self
                .store
                .get_range(&key, a, b)
                .map_err(|e| {
                    let what: Vec<String> = run
                        .iter()
                        .map(|l| format!("chunk {} (minishard {})", wants[l.want].id, wants[l.want].minishard))
                        .collect();
                    e.context(format!("reading {}", what.join(", ")))
                })?
                .ok_or_else(|| Error::not_found(format!("{url}: shard file vanished during the read")))?;
            let decode_one = |l: &Located| -> Result<()> {
                let w = &wants[l.want];
                let payload = &bytes[(l.start - a) as usize..(l.end - a) as usize];
                let cell = grid.cell_bbox(w.cell);
                let Some(region) = cell.intersection(inside) else { return Ok(()) };
                let chunk_url = format!("{url} (chunk {}, grid cell {:?}, minishard {})", w.id, w.cell, w.minishard);
                let _permit = self.decode_permits.acquire();
                let data;
                let data_ref: &[u8] = match spec.data_encoding {
                    DataEncoding::Raw => payload,
                    DataEncoding::Gzip => {
                        data = compression::gunzip(payload, &chunk_url)?;
                        &data
                    }
                };
                let cspec = ChunkSpec {
                    encoding: scale.encoding,
                    dtype: self.info.data_type,
                    channels: self.info.num_channels as usize,
                    cell,
                    cseg_block: scale.cseg_block_size,
                    url: &chunk_url,
                };
                codec::decode_into(&cspec, data_ref, &region, out)?;
                if let Some(p) = progress {
                    p.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            };
            if run.len() > 1 {
                run.par_iter().try_for_each(decode_one)
            } else {
                decode_one(&run[0])
            }
        };
        if runs.len() > 1 {
            self.pool.install(|| runs.par_iter().try_for_each(read_run))
        } else {
            runs.iter().try_for_each(read_run)
        }
    }
}
