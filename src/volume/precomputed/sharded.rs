//! Sharded scales (`neuroglancer_uint64_sharded_v1`): chunk ids located in shard files through
//! the shard index and minishard indices (both cached, bounded in bytes, shared by all threads
//! of the handle), then chunk byte ranges fetched with adjacent ranges coalesced. Writes take
//! whole shards.
//!
//! A cold read of k chunks in one shard costs 1 request for the shard index, 1 per minishard
//! touched, and at most k for the data; a warm one at most k. Every data read is conditioned
//! on the generation of the shard its indices came from: a shard rewritten meanwhile is noticed
//! (`Stale`), the caches dropped and the read done once more.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{copy_box, ChunkSource, EachPayload, Payload, ScaleCtx};
use crate::cache::ByteLru;
use crate::cloudpath::join_key;
use crate::codec::compression;
use crate::error::{Error, ErrorKind, Result};
use crate::format::sharding::{
    assemble_shard, compressed_morton, decode_minishard_index, morton_bits, DataEncoding, ShardingSpec,
};
use crate::format::{Bbox, ChunkGrid, ContentEncoding, Info};
use crate::store::RangeRead;

/// Bytes of shard and minishard indices a handle keeps decoded.
pub(crate) const SHARD_CACHE_BYTES: usize = 128 << 20;
/// Shard indices up to this size are fetched whole (one request serves every minishard).
const WHOLE_INDEX_MAX: u64 = 1 << 20;
/// Neighbouring chunk ranges closer than this are fetched in one request.
const COALESCE_GAP: u64 = 4096;
/// A coalesced request stays below this many bytes (memory held per request in flight).
const COALESCE_MAX: u64 = 4 << 20;
/// Most grid cells a sharded write scans to check that the shards it writes are complete.
const MAX_SHARD_SCAN_CELLS: u64 = 1 << 26;

/// Parse and check the sharding spec of every scale (None: unsharded).
///
/// # Errors
/// An invalid spec, or a grid needing more than 64 bits of compressed Morton code (`Decode`).
pub(crate) fn sharding_specs(info: &Info, info_url: &str) -> Result<Vec<Option<ShardingSpec>>> {
    let mut sharding = Vec::with_capacity(info.scales.len());
    for (i, scale) in info.scales.iter().enumerate() {
        let ctx = format!("{info_url} (info) scales[{i}] (key \"{}\")", scale.key);
        let spec = match &scale.sharding {
            None => None,
            Some(v) => {
                let spec = ShardingSpec::parse(v, &ctx)?;
                let bits: u32 = morton_bits(ChunkGrid::of(scale).grid_shape()).iter().sum();
                if bits > 64 {
                    return Err(Error::decode(format!(
                        "{ctx}: the chunk grid needs {bits} bits of compressed Morton code, more than 64"
                    )));
                }
                Some(spec)
            }
        };
        sharding.push(spec);
    }
    Ok(sharding)
}

/// A shard file's index, with the generation of the file it came from.
pub(crate) struct ShardIndex {
    generation: Option<String>,
    bytes: Vec<u8>,
}

/// A decoded minishard index (`(chunk id, start, end)` sorted by id), with the generation of
/// the shard file it came from. Every read that relies on it is conditioned on that generation.
pub(crate) struct Minishard {
    pub(crate) generation: Option<String>,
    pub(crate) entries: Vec<(u64, u64, u64)>,
}

impl Minishard {
    /// The byte range of chunk `id`, if stored.
    pub(crate) fn find(&self, id: u64) -> Option<(u64, u64)> {
        let j = self.entries.binary_search_by_key(&id, |e| e.0).ok()?;
        let (_, a, b) = self.entries[j];
        (b > a).then_some((a, b))
    }
}

/// The shard and minishard caches of a handle (all its sharded scales). Missing shards are not
/// cached (a shard written later is found).
pub(crate) struct ShardCaches {
    /// (mip, shard) → the whole shard index.
    index: ByteLru<(u32, u64), ShardIndex>,
    /// (mip, shard, minishard) → the decoded minishard index.
    minishard: ByteLru<(u32, u64, u64), Minishard>,
}

impl ShardCaches {
    pub(crate) fn new(bytes: usize) -> ShardCaches {
        ShardCaches { index: ByteLru::new(bytes / 2), minishard: ByteLru::new(bytes / 2) }
    }

    fn clear(&self) {
        self.index.clear();
        self.minishard.clear();
    }
}

/// The chunks of one shard a write gathers: (grid cell, chunk id, minishard).
type ShardCells = Vec<([i64; 3], u64, u64)>;
/// Where a minishard's index is in its shard file, with the file's generation.
type IndexRange = ((u64, u64), Option<String>);
/// The chunks a read wants, each with its minishard index (None: no shard file).
type WantsAndIndices = (Vec<Want>, Vec<Option<Arc<Minishard>>>);
/// Runs of neighbouring chunk ranges, each fetched with one request, by shard.
type Runs = Vec<(u64, Vec<Located>)>;

/// One chunk a read wants.
struct Want {
    cell: [i64; 3],
    id: u64,
    shard: u64,
    minishard: u64,
}

/// Where a wanted chunk's bytes are (`want` indexes the list of wanted chunks).
struct Located {
    want: usize,
    start: u64,
    end: u64,
}

/// Group the byte ranges of each shard (key: shard number) into runs of neighbours, each run
/// fetched with one request: gaps of at most `COALESCE_GAP` bytes, at most `COALESCE_MAX` bytes.
fn coalesce(by_shard: BTreeMap<u64, Vec<Located>>) -> Runs {
    let mut runs: Runs = Vec::new();
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

/// The shard files of a scale.
pub(crate) struct ShardFiles {
    spec: ShardingSpec,
    caches: Arc<ShardCaches>,
}

impl ShardFiles {
    pub(crate) fn new(spec: ShardingSpec, caches: Arc<ShardCaches>) -> ShardFiles {
        ShardFiles { spec, caches }
    }

    fn shard_key(&self, ctx: &ScaleCtx, shard: u64) -> String {
        join_key(&ctx.scale.key, &self.spec.shard_file(shard))
    }

    /// Run `f`; when it finds a shard changed under its cached indices, drop the caches and run
    /// it once more. A second change is an I/O error.
    fn retry_stale<T>(&self, f: impl Fn() -> Result<T>) -> Result<T> {
        match f() {
            Err(e) if e.kind() == ErrorKind::Stale => {
                self.caches.clear();
                f().map_err(|e| {
                    if e.kind() == ErrorKind::Stale {
                        Error::io(format!("{} (the shard kept changing while being read)", e.message()))
                    } else {
                        e
                    }
                })
            }
            r => r,
        }
    }

    /// The byte range `[start, end)` of minishard `ms`'s index in shard `shard` and the shard
    /// file's generation, or None when the shard file does not exist.
    fn minishard_range(&self, ctx: &ScaleCtx, shard: u64, ms: u64) -> Result<Option<IndexRange>> {
        let key = self.shard_key(ctx, shard);
        let s = self.spec.index_len();
        let (entry, generation): ([u8; 16], Option<String>) = if s <= WHOLE_INDEX_MAX {
            let index = match self.caches.index.get(&(ctx.mip, shard)) {
                Some(i) => i,
                None => match ctx.store.get_range_if(&key, 0, s, None)? {
                    RangeRead::Missing | RangeRead::Stale => return Ok(None),
                    RangeRead::Data(bytes, generation) => {
                        let n = bytes.len();
                        let arc = Arc::new(ShardIndex { generation, bytes });
                        self.caches.index.insert((ctx.mip, shard), arc.clone(), n);
                        arc
                    }
                },
            };
            let at = (16 * ms) as usize;
            (index.bytes[at..at + 16].try_into().unwrap_or([0; 16]), index.generation.clone())
        } else {
            match ctx.store.get_range_if(&key, 16 * ms, 16 * ms + 16, None)? {
                RangeRead::Data(b, g) if b.len() == 16 => (b[..].try_into().unwrap_or([0; 16]), g),
                RangeRead::Data(..) => {
                    return Err(Error::decode(format!("{}: short shard index entry", ctx.store.url(&key))))
                }
                RangeRead::Missing | RangeRead::Stale => return Ok(None),
            }
        };
        let start = u64::from_le_bytes(entry[..8].try_into().unwrap_or([0; 8]));
        let end = u64::from_le_bytes(entry[8..].try_into().unwrap_or([0; 8]));
        if end < start {
            return Err(Error::decode(format!(
                "{}: corrupt shard index: minishard {ms} ends ({end}) before it starts ({start})",
                ctx.store.url(&key)
            )));
        }
        match (start.checked_add(s), end.checked_add(s)) {
            (Some(a), Some(b)) => Ok(Some(((a, b), generation))),
            _ => Err(Error::decode(format!(
                "{}: corrupt shard index: minishard {ms} range [{start}, {end}) overflows",
                ctx.store.url(&key)
            ))),
        }
    }

    /// The decoded index of minishard `ms` of shard `shard` (cached), or None when the shard
    /// file does not exist.
    fn minishard_index(&self, ctx: &ScaleCtx, shard: u64, ms: u64) -> Result<Option<Arc<Minishard>>> {
        if let Some(hit) = self.caches.minishard.get(&(ctx.mip, shard, ms)) {
            return Ok(Some(hit));
        }
        let key = self.shard_key(ctx, shard);
        let url = ctx.store.url(&key);
        let Some(((a, b), generation)) = self.minishard_range(ctx, shard, ms)? else { return Ok(None) };
        let limit = self.spec.minishard_index_limit(ctx.grid.grid_shape());
        let entries = if a == b {
            Vec::new()
        } else {
            let stored_max = match self.spec.minishard_index_encoding {
                DataEncoding::Raw => limit,
                DataEncoding::Gzip => compression::stored_bound(limit),
            };
            if b - a > stored_max as u64 {
                return Err(Error::decode(format!(
                    "{url}: minishard {ms} index of {} bytes is larger than the {stored_max} bytes an index of at most {limit} bytes (what the sharding spec allows for this grid) can take",
                    b - a
                )));
            }
            let raw = match ctx
                .store
                .get_range_if(&key, a, b, generation.as_deref())
                .map_err(|e| e.context(format!("reading the index of minishard {ms}")))?
            {
                RangeRead::Data(raw, _) => raw,
                RangeRead::Stale => {
                    return Err(Error::stale(format!("{url}: shard changed while reading minishard {ms}")))
                }
                RangeRead::Missing => {
                    return Err(Error::stale(format!("{url}: shard file vanished while reading minishard {ms}")))
                }
            };
            let what = format!("{url} minishard {ms}");
            let raw = match self.spec.minishard_index_encoding {
                DataEncoding::Raw => raw,
                DataEncoding::Gzip => compression::gunzip(&raw, limit, &what)?,
            };
            decode_minishard_index(&raw, self.spec.index_len(), &what)?
        };
        let bytes = 24 * entries.len() + 64;
        let arc = Arc::new(Minishard { generation, entries });
        self.caches.minishard.insert((ctx.mip, shard, ms), arc.clone(), bytes);
        Ok(Some(arc))
    }

    /// Drop the cached indices of `shards` whose files changed, where the store can tell
    /// cheaply (files: one `stat` per shard).
    fn revalidate(&self, ctx: &ScaleCtx, shards: &[u64]) -> Result<()> {
        for &shard in shards {
            let Some(cached) = self.caches.index.get(&(ctx.mip, shard)) else { continue };
            if let Some(now) = ctx.store.cheap_generation(&self.shard_key(ctx, shard)) {
                if now? != cached.generation {
                    self.caches.clear();
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The chunks of `cells` and the minishard index of each (fetched in parallel: shard
    /// indices first, once per shard, so minishard look-ups do not race to fetch them).
    fn indices(&self, ctx: &ScaleCtx, cells: &[[i64; 3]]) -> Result<WantsAndIndices> {
        let gshape = ctx.grid.grid_shape();
        let wants: Vec<Want> = cells
            .iter()
            .map(|&cell| {
                let id = compressed_morton(cell, gshape);
                let (shard, minishard) = self.spec.locate(id);
                Want { cell, id, shard, minishard }
            })
            .collect();
        let mut groups: Vec<(u64, u64)> = wants.iter().map(|w| (w.shard, w.minishard)).collect();
        groups.sort_unstable();
        groups.dedup();
        let mut shards: Vec<u64> = groups.iter().map(|g| g.0).collect();
        shards.dedup();
        self.revalidate(ctx, &shards)?;
        if self.spec.index_len() <= WHOLE_INDEX_MAX && shards.len() > 1 {
            ctx.engine.run(&shards, |_, &s| self.minishard_range(ctx, s, 0).map(|_| ()))?;
        }
        let indices = ctx.engine.map(&groups, |_, &(s, m)| self.minishard_index(ctx, s, m))?;
        let per_want = wants
            .iter()
            .map(|w| groups.binary_search(&(w.shard, w.minishard)).ok().and_then(|g| indices[g].clone()))
            .collect();
        Ok((wants, per_want))
    }

    /// Refuse a chunk whose byte range in its shard is larger than its payload can be (a
    /// corrupt index), before anything is fetched for it.
    fn check_range(&self, ctx: &ScaleCtx, w: &Want, len: u64) -> Result<()> {
        let max = match self.spec.data_encoding {
            DataEncoding::Raw => ctx.chunk_spec(ctx.grid.cell_bbox(w.cell), "").payload_limit(),
            DataEncoding::Gzip => ctx.stored_limit(ctx.grid.cell_bbox(w.cell)),
        };
        if len > max as u64 {
            return Err(Error::decode(format!(
                "{}: chunk {} (minishard {}) takes {len} bytes in the shard, more than the {max} a chunk of this scale can take (corrupt minishard index)",
                ctx.store.url(&self.shard_key(ctx, w.shard)),
                w.id,
                w.minishard
            )));
        }
        Ok(())
    }

    fn fetch_once(&self, ctx: &ScaleCtx, cells: &[[i64; 3]], each: &EachPayload<'_>) -> Result<()> {
        let (wants, indices) = self.indices(ctx, cells)?;
        let encoding = match self.spec.data_encoding {
            DataEncoding::Raw => ContentEncoding::Identity,
            DataEncoding::Gzip => ContentEncoding::Gzip,
        };
        let chunk_url = |shard_url: &str, w: &Want| {
            format!("{shard_url} (chunk {}, grid cell {:?}, minishard {})", w.id, w.cell, w.minishard)
        };
        // Locate every chunk; the absent ones are missing.
        let mut by_shard: BTreeMap<u64, Vec<Located>> = BTreeMap::new();
        let mut generations: BTreeMap<u64, Option<String>> = BTreeMap::new();
        let mut missing: Vec<usize> = Vec::new();
        for (i, (w, ms)) in wants.iter().zip(&indices).enumerate() {
            match ms.as_ref().and_then(|m| m.find(w.id).map(|r| (r, m.generation.clone()))) {
                Some(((start, end), g)) => {
                    self.check_range(ctx, w, end - start)?;
                    if generations.insert(w.shard, g.clone()).is_some_and(|old| old != g) {
                        return Err(Error::stale(format!("shard {} changed between two minishard reads", w.shard)));
                    }
                    by_shard.entry(w.shard).or_default().push(Located { want: i, start, end });
                }
                None => missing.push(i),
            }
        }
        for &i in &missing {
            let w = &wants[i];
            let url = chunk_url(&ctx.store.url(&self.shard_key(ctx, w.shard)), w);
            each(i, Payload { data: None, encoding, url: &url })?;
        }
        let runs = coalesce(by_shard);
        ctx.engine.run(&runs, |_, (shard, run)| {
            let key = self.shard_key(ctx, *shard);
            let url = ctx.store.url(&key);
            let (a, b) = (run[0].start, run.iter().map(|l| l.end).max().unwrap_or(run[0].end));
            let generation = generations.get(shard).cloned().unwrap_or_default();
            // The run's bytes are known: held from before the request until its chunks are
            // decoded.
            let mut held = ctx.engine.reserve(|| (b - a) as usize);
            held.resize((b - a) as usize);
            let read = ctx.store.get_range_if(&key, a, b, generation.as_deref()).map_err(|e| {
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
            ctx.engine.run(run, |_, l| {
                let payload = &bytes[(l.start - a) as usize..(l.end - a) as usize];
                let curl = chunk_url(&url, &wants[l.want]);
                each(l.want, Payload { data: Some(payload), encoding, url: &curl })
            })
        })
    }
}

impl ChunkSource for ShardFiles {
    /// cloud-volume names the chunks of a sharded scale by their compressed Morton code.
    fn file_name(&self, ctx: &ScaleCtx, cell: [i64; 3]) -> String {
        compressed_morton(cell, ctx.grid.grid_shape()).to_string()
    }

    fn fetch(&self, ctx: &ScaleCtx, cells: &[[i64; 3]], each: &EachPayload<'_>) -> Result<()> {
        self.retry_stale(|| self.fetch_once(ctx, cells, each))
    }

    fn exists(&self, ctx: &ScaleCtx, cells: &[[i64; 3]]) -> Result<Vec<bool>> {
        self.retry_stale(|| {
            let (wants, indices) = self.indices(ctx, cells)?;
            Ok(wants.iter().zip(&indices).map(|(w, m)| m.as_ref().is_some_and(|m| m.find(w.id).is_some())).collect())
        })
    }

    /// Write whole shards: every shard the box touches must lie entirely inside it.
    fn write(&self, ctx: &ScaleCtx, region: &Bbox, buf: &[u8]) -> Result<()> {
        let (grid, spec) = (&ctx.grid, &self.spec);
        if !grid.is_aligned(region) {
            return Err(ctx.misaligned(region, "write", true));
        }
        let gshape = grid.grid_shape();
        let mut by_shard: HashMap<u64, ShardCells> = HashMap::new();
        for cell in grid.cells_in(region) {
            let id = compressed_morton(cell, gshape);
            let (shard, ms) = spec.locate(id);
            by_shard.entry(shard).or_default().push((cell, id, ms));
        }
        // Every cell of the grid that maps to a touched shard must be in the box.
        let total: u64 = gshape.iter().map(|&g| g as u64).product();
        if total > MAX_SHARD_SCAN_CELLS {
            return Err(Error::unsupported(format!(
                "{}: sharded write to a grid of {total} chunks: checking shard completeness is limited to {MAX_SHARD_SCAN_CELLS}",
                ctx.path
            )));
        }
        let inside = grid.cell_range(region);
        let mut missing: HashMap<u64, u64> = HashMap::new();
        for z in 0..gshape[2] {
            for y in 0..gshape[1] {
                for x in 0..gshape[0] {
                    let c = [x, y, z];
                    let (shard, _) = spec.locate(compressed_morton(c, gshape));
                    if by_shard.contains_key(&shard) && !(0..3).all(|d| inside.0[d] <= c[d] && c[d] < inside.1[d]) {
                        *missing.entry(shard).or_default() += 1;
                    }
                }
            }
        }
        if let Some((&shard, &n)) = missing.iter().min_by_key(|e| e.0) {
            return Err(Error::invalid(format!(
                "{}: sharded write of box {region} at mip {}: shard {} is only partly inside the box ({n} of its chunks are outside); sharded writes must cover whole shards",
                ctx.path,
                ctx.mip,
                spec.shard_file(shard)
            )));
        }
        let (nc, item) = (ctx.channels, ctx.dtype.size());
        let level = ctx.opts.write.compress_level;
        let mut shards: Vec<(u64, ShardCells)> = by_shard.into_iter().collect();
        shards.sort_unstable_by_key(|s| s.0);
        let r = ctx.engine.run(&shards, |_, (shard, cells)| {
            let key = self.shard_key(ctx, *shard);
            let url = ctx.store.url(&key);
            let mut chunks: Vec<(u64, u64, Vec<u8>)> = ctx.engine.map(cells, |_, &(cell, id, ms)| {
                let cell_box = grid.cell_bbox(cell);
                let mut chunk = vec![0u8; ctx.chunk_len(&cell_box)];
                copy_box(buf, region, &mut chunk, &cell_box, &cell_box, nc, item);
                let curl = format!("{url} (chunk {id})");
                let bytes = ctx.encode_chunk(&cell_box, &chunk, &curl)?;
                let bytes = match spec.data_encoding {
                    DataEncoding::Raw => bytes,
                    DataEncoding::Gzip => compression::gzip(&bytes, level.unwrap_or(6).clamp(1, 12)),
                };
                Ok((ms, id, bytes))
            })?;
            chunks.sort_unstable_by_key(|c| (c.0, c.1));
            let file = assemble_shard(spec, &chunks, |raw| match spec.minishard_index_encoding {
                DataEncoding::Raw => raw,
                DataEncoding::Gzip => compression::gzip(&raw, level.unwrap_or(6).clamp(1, 12)),
            });
            ctx.store.put(&key, &file, ContentEncoding::Identity, "application/octet-stream")
        });
        // Cached indices of this scale may describe the old shards.
        self.caches.clear();
        r
    }

    fn delete(&self, ctx: &ScaleCtx, region: &Bbox) -> Result<()> {
        if !ctx.grid.is_aligned(region) {
            return Err(ctx.misaligned(region, "delete", true));
        }
        Err(Error::unsupported(format!(
            "{}: deleting boxes of a sharded scale (mip {}) is not supported; delete whole shard files",
            ctx.path, ctx.mip
        )))
    }

    fn clear_cache(&self) {
        self.caches.clear();
    }
}
