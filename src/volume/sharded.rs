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
use crate::codec::{self, compression, OutView};
use crate::error::{Error, Result};
use crate::format::sharding::{compressed_morton, decode_minishard_index, DataEncoding, ShardingSpec};
use crate::format::{Bbox, ChunkGrid, Scale};
use crate::store::RangeRead;

/// Shard indices up to this size are fetched whole (one request serves every minishard).
const WHOLE_INDEX_MAX: u64 = 1 << 20;
/// Neighbouring chunk ranges closer than this are fetched in one request.
const COALESCE_GAP: u64 = 4096;
/// A coalesced request stays below this many bytes (memory held per request in flight).
const COALESCE_MAX: u64 = 4 << 20;

/// A minishard index: `(chunk id, start, end)` sorted by id.
pub(crate) type MinishardIndex = Vec<(u64, u64, u64)>;

/// A shard file's index, with the generation of the file it came from.
pub(crate) struct ShardIndex {
    generation: Option<String>,
    bytes: Vec<u8>,
}

/// A decoded minishard index, with the generation of the shard file it came from. Every read
/// that relies on it is conditioned on that generation, so a rewritten shard is noticed.
pub(crate) struct Minishard {
    pub(crate) generation: Option<String>,
    pub(crate) entries: MinishardIndex,
}

impl Minishard {
    /// The byte range of chunk `id`, if stored.
    pub(crate) fn find(&self, id: u64) -> Option<(u64, u64)> {
        let j = self.entries.binary_search_by_key(&id, |e| e.0).ok()?;
        let (_, a, b) = self.entries[j];
        (b > a).then_some((a, b))
    }
}

/// The shard and minishard caches of a handle. Missing shards are not cached (a shard written
/// later is found).
pub(crate) struct ShardCaches {
    /// (mip, shard) → the whole shard index.
    pub(crate) index: crate::cache::ByteLru<(u32, u64), ShardIndex>,
    /// (mip, shard, minishard) → the decoded minishard index.
    pub(crate) minishard: crate::cache::ByteLru<(u32, u64, u64), Minishard>,
}

impl ShardCaches {
    pub(crate) fn new(bytes: usize) -> ShardCaches {
        ShardCaches {
            index: crate::cache::ByteLru::new(bytes / 2),
            minishard: crate::cache::ByteLru::new(bytes / 2),
        }
    }

    pub(crate) fn clear(&self) {
        self.index.clear();
        self.minishard.clear();
    }
}

/// Group the byte ranges of each shard (key: shard number) into runs of neighbours, each run
/// fetched with one request: gaps of at most `COALESCE_GAP` bytes, at most `COALESCE_MAX` bytes.
pub(crate) fn coalesce(by_shard: BTreeMap<u64, Vec<Located>>) -> Vec<(u64, Vec<Located>)> {
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
    runs
}

/// One chunk a cutout wants.
struct Want {
    cell: [i64; 3],
    id: u64,
    shard: u64,
    minishard: u64,
}

/// Where a wanted chunk's bytes are (`want` indexes the caller's list of chunks).
pub(crate) struct Located {
    pub(crate) want: usize,
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl Volume {
    pub(crate) fn shard_key(&self, scale: &Scale, spec: &ShardingSpec, shard: u64) -> String {
        join_key(&scale.key, &spec.shard_file(shard))
    }

    /// The byte range `[start, end)` of minishard `ms`'s index in shard `shard` and the shard
    /// file's generation, or None when the shard file does not exist.
    fn minishard_range(
        &self,
        mip: u32,
        scale: &Scale,
        spec: &ShardingSpec,
        shard: u64,
        ms: u64,
    ) -> Result<Option<((u64, u64), Option<String>)>> {
        let key = self.shard_key(scale, spec, shard);
        let s = spec.index_len();
        let (entry, generation): ([u8; 16], Option<String>) = if s <= WHOLE_INDEX_MAX {
            let index = match self.shards.index.get(&(mip, shard)) {
                Some(i) => i,
                None => match self.store.get_range_if(&key, 0, s, None)? {
                    RangeRead::Missing | RangeRead::Stale => return Ok(None),
                    RangeRead::Data(bytes, generation) => {
                        let n = bytes.len();
                        let arc = Arc::new(ShardIndex { generation, bytes });
                        self.shards.index.insert((mip, shard), arc.clone(), n);
                        arc
                    }
                },
            };
            let at = (16 * ms) as usize;
            (index.bytes[at..at + 16].try_into().unwrap_or([0; 16]), index.generation.clone())
        } else {
            match self.store.get_range_if(&key, 16 * ms, 16 * ms + 16, None)? {
                RangeRead::Data(b, g) if b.len() == 16 => (b[..].try_into().unwrap_or([0; 16]), g),
                RangeRead::Data(..) => {
                    return Err(Error::decode(format!("{}: short shard index entry", self.store.url(&key))))
                }
                RangeRead::Missing | RangeRead::Stale => return Ok(None),
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
            (Some(a), Some(b)) => Ok(Some(((a, b), generation))),
            _ => Err(Error::decode(format!(
                "{}: corrupt shard index: minishard {ms} range [{start}, {end}) overflows",
                self.store.url(&key)
            ))),
        }
    }

    /// Refuse a chunk whose byte range in its shard is larger than its payload can be (a
    /// corrupt index), before anything is fetched for it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check_shard_range(&self, scale: &Scale, spec: &ShardingSpec, shard: u64, ms: u64, id: u64, cell: Bbox, len: u64) -> Result<()> {
        let key = self.shard_key(scale, spec, shard);
        let url = self.store.url(&key);
        let limit = self.chunk_spec(scale, cell, &url).payload_limit();
        let max = match spec.data_encoding {
            DataEncoding::Raw => limit,
            DataEncoding::Gzip => compression::stored_bound(limit),
        };
        if len > max as u64 {
            return Err(Error::decode(format!(
                "{url}: chunk {id} (minishard {ms}) takes {len} bytes in the shard, more than the {max} a chunk of this scale can take (corrupt minishard index)"
            )));
        }
        Ok(())
    }

    /// Fetch (and cache) shard `shard`'s index when it is small enough to be fetched whole, so
    /// that parallel minishard look-ups that follow do not race to fetch it.
    pub(crate) fn prefetch_shard_index(&self, mip: u32, scale: &Scale, spec: &ShardingSpec, shard: u64) -> Result<()> {
        if spec.index_len() <= WHOLE_INDEX_MAX {
            self.minishard_range(mip, scale, spec, shard, 0)?;
        }
        Ok(())
    }

    /// Drop the cached indices of shards whose files changed, where the store can tell cheaply
    /// (files: one `stat` per shard).
    pub(crate) fn revalidate_shards(&self, mip: u32, scale: &Scale, spec: &ShardingSpec, shards: &[u64]) -> Result<()> {
        for &shard in shards {
            let Some(cached) = self.shards.index.get(&(mip, shard)) else { continue };
            let key = self.shard_key(scale, spec, shard);
            if let Some(now) = self.store.cheap_generation(&key) {
                if now? != cached.generation {
                    self.shards.clear();
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The decoded index of minishard `ms` of shard `shard` (cached), or None when the shard
    /// file does not exist.
    pub(crate) fn minishard_index(&self, mip: u32, scale: &Scale, spec: &ShardingSpec, shard: u64, ms: u64) -> Result<Option<Arc<Minishard>>> {
        if let Some(hit) = self.shards.minishard.get(&(mip, shard, ms)) {
            return Ok(Some(hit));
        }
        let key = self.shard_key(scale, spec, shard);
        let url = self.store.url(&key);
        let Some(((a, b), generation)) = self.minishard_range(mip, scale, spec, shard, ms)? else { return Ok(None) };
        let limit = spec.minishard_index_limit(ChunkGrid::of(scale).grid_shape());
        let entries = if a == b {
            Vec::new()
        } else {
            let stored_max = match spec.minishard_index_encoding {
                DataEncoding::Raw => limit,
                DataEncoding::Gzip => compression::stored_bound(limit),
            };
            if b - a > stored_max as u64 {
                return Err(Error::decode(format!(
                    "{url}: minishard {ms} index of {} bytes is larger than the {stored_max} bytes an index of at most {limit} bytes (what the sharding spec allows for this grid) can take",
                    b - a
                )));
            }
            let raw = match self
                .store
                .get_range_if(&key, a, b, generation.as_deref())
                .map_err(|e| e.context(format!("reading the index of minishard {ms}")))?
            {
                RangeRead::Data(raw, _) => raw,
                RangeRead::Stale => return Err(Error::stale(format!("{url}: shard changed while reading minishard {ms}"))),
                RangeRead::Missing => {
                    return Err(Error::stale(format!("{url}: shard file vanished while reading minishard {ms}")))
                }
            };
            let ctx = format!("{url} minishard {ms}");
            let raw = match spec.minishard_index_encoding {
                DataEncoding::Raw => raw,
                DataEncoding::Gzip => compression::gunzip(&raw, limit, &ctx)?,
            };
            decode_minishard_index(&raw, spec.index_len(), &ctx)?
        };
        let bytes = 24 * entries.len() + 64;
        let arc = Arc::new(Minishard { generation, entries });
        self.shards.minishard.insert((mip, shard, ms), arc.clone(), bytes);
        Ok(Some(arc))
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
        self.revalidate_shards(mip, scale, spec, &shards)?;
        if shards.len() > 1 {
            self.pool.install(|| shards.par_iter().try_for_each(|&s| self.prefetch_shard_index(mip, scale, spec, s)))?;
        }
        let indices: Vec<Option<Arc<Minishard>>> = if groups.len() > 1 {
            self.pool.install(|| {
                groups.par_iter().map(|&(s, m)| self.minishard_index(mip, scale, spec, s, m)).collect::<Result<_>>()
            })?
        } else {
            groups.iter().map(|&(s, m)| self.minishard_index(mip, scale, spec, s, m)).collect::<Result<_>>()?
        };
        let index_of = |w: &Want| -> &Option<Arc<Minishard>> {
            let g = groups.binary_search(&(w.shard, w.minishard)).unwrap_or(0);
            &indices[g]
        };
        // Locate every chunk; the absent ones are missing.
        let mut by_shard: BTreeMap<u64, Vec<Located>> = BTreeMap::new();
        let mut generations: BTreeMap<u64, Option<String>> = BTreeMap::new();
        let mut missing: Vec<usize> = Vec::new();
        for (i, w) in wants.iter().enumerate() {
            let ms = index_of(w);
            match ms.as_ref().and_then(|m| m.find(w.id)) {
                Some((start, end)) => {
                    self.check_shard_range(scale, spec, w.shard, w.minishard, w.id, grid.cell_bbox(w.cell), end - start)?;
                    let m = ms.as_ref().map(|m| m.generation.clone()).unwrap_or_default();
                    if generations.insert(w.shard, m.clone()).is_some_and(|g| g != m) {
                        return Err(Error::stale(format!("shard {} changed between two minishard reads", w.shard)));
                    }
                    by_shard.entry(w.shard).or_default().push(Located { want: i, start, end })
                }
                None => missing.push(i),
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
        let runs = coalesce(by_shard);
        let read_run = |(shard, run): &(u64, Vec<Located>)| -> Result<()> {
            let key = self.shard_key(scale, spec, *shard);
            let url = self.store.url(&key);
            let (a, b) = (run[0].start, run.iter().map(|l| l.end).max().unwrap_or(run[0].end));
            let generation = generations.get(shard).cloned().unwrap_or_default();
            let read = self
                .store
                .get_range_if(&key, a, b, generation.as_deref())
                .map_err(|e| {
                    let what: Vec<String> = run
                        .iter()
                        .map(|l| format!("chunk {} (minishard {})", wants[l.want].id, wants[l.want].minishard))
                        .collect();
                    e.context(format!("reading {}", what.join(", ")))
                })?;
            let bytes = match read {
                RangeRead::Data(b, _) => b,
                RangeRead::Stale | RangeRead::Missing => {
                    return Err(Error::stale(format!("{url}: shard changed during the read")))
                }
            };
            let decode_one = |l: &Located| -> Result<()> {
                let w = &wants[l.want];
                let payload = &bytes[(l.start - a) as usize..(l.end - a) as usize];
                let cell = grid.cell_bbox(w.cell);
                let Some(region) = cell.intersection(inside) else { return Ok(()) };
                let chunk_url = format!("{url} (chunk {}, grid cell {:?}, minishard {})", w.id, w.cell, w.minishard);
                let _permit = self.decode_permits.acquire();
                let cspec = self.chunk_spec(scale, cell, &chunk_url);
                let data;
                let data_ref: &[u8] = match spec.data_encoding {
                    DataEncoding::Raw => payload,
                    DataEncoding::Gzip => {
                        data = compression::gunzip(payload, cspec.payload_limit(), &chunk_url)?;
                        &data
                    }
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
