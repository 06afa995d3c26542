//! Scattered points (single voxels read with one fetch per distinct chunk) and the query of
//! which chunks of a box are stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rayon::prelude::*;

use super::sharded::{coalesce, Located};
use super::Volume;
use crate::codec::{self, compression, OutView};
use crate::error::{Error, Result};
use crate::format::grid::chunk_key;
use crate::format::sharding::{compressed_morton, DataEncoding};
use crate::format::{Bbox, ChunkGrid, Encoding, Scale};
use crate::store::RangeRead;

impl Volume {
    /// The stored bytes of grid cell `cell` with every content and shard encoding removed, or
    /// None when the chunk is missing (or zero bytes). Also returns the chunk's URL for messages.
    pub(crate) fn chunk_payload(&self, mip: u32, scale: &Scale, cell: [i64; 3]) -> Result<(Option<Vec<u8>>, String)> {
        let grid = ChunkGrid::of(scale);
        match &self.sharding[mip as usize] {
            None => {
                let cell_box = grid.cell_bbox(cell);
                let key = chunk_key(&scale.key, &cell_box);
                let url = self.store.url(&key);
                let limit = self.chunk_spec(scale, cell_box, &url).payload_limit();
                let data = match self.store.get(&key)? {
                    Some(o) if !o.bytes.is_empty() => Some(compression::decompress(o, limit, &url)?),
                    _ => None,
                };
                Ok((data, url))
            }
            Some(spec) => {
                let id = compressed_morton(cell, grid.grid_shape());
                let (shard, ms) = spec.locate(id);
                let key = crate::cloudpath::join_key(&scale.key, &spec.shard_file(shard));
                let url = format!("{} (chunk {id}, grid cell {cell:?}, minishard {ms})", self.store.url(&key));
                let Some(index) = self.minishard_index(mip, scale, spec, shard, ms)? else {
                    return Ok((None, url));
                };
                let Some((a, b)) = index.find(id) else { return Ok((None, url)) };
                self.check_shard_range(scale, spec, shard, ms, id, grid.cell_bbox(cell), b - a)?;
                let raw = match self
                    .store
                    .get_range_if(&key, a, b, index.generation.as_deref())
                    .map_err(|e| e.context(format!("reading chunk {id} (minishard {ms})")))?
                {
                    RangeRead::Data(raw, _) => raw,
                    RangeRead::Stale | RangeRead::Missing => {
                        return Err(Error::stale(format!("{url}: shard changed during the read")))
                    }
                };
                let data = match spec.data_encoding {
                    DataEncoding::Raw => raw,
                    DataEncoding::Gzip => {
                        let limit = self.chunk_spec(scale, grid.cell_bbox(cell), &url).payload_limit();
                        compression::gunzip(&raw, limit, &url)?
                    }
                };
                Ok((Some(data), url))
            }
        }
    }

    /// Fetch the minishard indices of every cell in `cells` once, in parallel, so that the
    /// per-chunk tasks that follow find them cached.
    fn prefetch_indices(&self, mip: u32, scale: &Scale, cells: &[[i64; 3]]) -> Result<()> {
        let Some(spec) = &self.sharding[mip as usize] else { return Ok(()) };
        let gshape = ChunkGrid::of(scale).grid_shape();
        let mut groups: Vec<(u64, u64)> = cells.iter().map(|&c| spec.locate(compressed_morton(c, gshape))).collect();
        groups.sort_unstable();
        groups.dedup();
        let mut shards: Vec<u64> = groups.iter().map(|g| g.0).collect();
        shards.dedup();
        self.pool.install(|| {
            shards.par_iter().try_for_each(|&s| self.prefetch_shard_index(mip, scale, spec, s))?;
            groups.par_iter().try_for_each(|&(s, m)| self.minishard_index(mip, scale, spec, s, m).map(|_| ()))
        })
    }

    /// Read `points` (absolute voxel coordinates at `mip`), every channel of each, into `out`:
    /// point after point, channel after channel, elements little-endian. Each distinct chunk is
    /// fetched once.
    ///
    /// # Errors
    /// A wrong `out` length (`InvalidArgument`), a point outside the volume while `bounded`
    /// (`OutOfBounds`), a missing chunk without `fill_missing` (`NotFound`), I/O and decode errors.
    pub fn scattered_points(&self, mip: u32, points: &[[i64; 3]], out: &mut [u8]) -> Result<()> {
        let cell = std::cell::RefCell::new(out);
        self.retry_stale(|| self.scattered_points_once(mip, points, &mut cell.borrow_mut()))
    }

    fn scattered_points_once(&self, mip: u32, points: &[[i64; 3]], out: &mut [u8]) -> Result<()> {
        let scale = self.scale(mip)?;
        let nc = self.info.num_channels as usize;
        let item = self.info.data_type.size();
        let per_point = nc * item;
        let want = points.len().checked_mul(per_point).ok_or_else(|| Error::invalid("too many points"))?;
        if out.len() != want {
            return Err(Error::invalid(format!(
                "output of {} bytes for {} point(s): expected {want} ({nc} channel(s) x {item} bytes each)",
                out.len(),
                points.len()
            )));
        }
        let grid = ChunkGrid::of(scale);
        let bounds = grid.bounds();
        let background = self.info.data_type.encode_scalar(self.opts.background_color);
        let mut by_cell: HashMap<[i64; 3], Vec<usize>> = HashMap::new();
        for (i, p) in points.iter().enumerate() {
            let b = Bbox::new(*p, [p[0].saturating_add(1), p[1].saturating_add(1), p[2].saturating_add(1)]);
            if bounds.contains(&b) && !b.is_empty() {
                let (cell, _) = grid.cell_range(&b);
                by_cell.entry(cell).or_default().push(i);
            } else if self.opts.bounded {
                return Err(Error::out_of_bounds(format!(
                    "{}: point {i} at {p:?} is outside the bounds {bounds} of mip {mip}",
                    self.path.path
                )));
            } else {
                for c in 0..nc {
                    let o = (i * nc + c) * item;
                    out[o..o + item].copy_from_slice(&background);
                }
            }
        }
        let cells: Vec<([i64; 3], Vec<usize>)> = by_cell.into_iter().collect();
        let cell_list: Vec<[i64; 3]> = cells.iter().map(|c| c.0).collect();
        self.prefetch_indices(mip, scale, &cell_list)?;
        let points_ref = points;
        // Decode the points of one cell from its chunk (None: missing).
        let decode_cell = |cell: &[i64; 3], idxs: &[usize], payload: Option<&[u8]>, url: &str| -> Result<Vec<(usize, Vec<u8>)>> {
            let cell_box = grid.cell_bbox(*cell);
            let Some(data) = payload else {
                if !self.opts.fill_missing {
                    return Err(Error::not_found(format!(
                        "{url}: chunk missing (open with fill_missing=true to read it as background)"
                    )));
                }
                let v: Vec<u8> = background.repeat(nc);
                return Ok(idxs.iter().map(|&i| (i, v.clone())).collect());
            };
            let spec = self.chunk_spec(scale, cell_box, url);
            let _permit = self.decode_permits.acquire();
            let mut results = Vec::with_capacity(idxs.len());
            if matches!(scale.encoding, Encoding::Raw | Encoding::CompressedSegmentation) {
                // Random access: decode just the voxels asked for.
                for &i in idxs {
                    let p = points_ref[i];
                    let vbox = Bbox::new(p, [p[0] + 1, p[1] + 1, p[2] + 1]);
                    let mut v = vec![0u8; per_point];
                    codec::decode_into(&spec, data, &vbox, &OutView::new(&mut v, vbox, nc, item))?;
                    results.push((i, v));
                }
            } else {
                let n = spec.decoded_len();
                let mut chunk = vec![0u8; n];
                codec::decode_into(&spec, data, &cell_box, &OutView::new(&mut chunk, cell_box, nc, item))?;
                let s = cell_box.shape().map(|v| v as usize);
                let cvox = s[0] * s[1] * s[2];
                for &i in idxs {
                    let p = points_ref[i];
                    let lin = ((p[2] - cell_box.lo[2]) as usize * s[1] + (p[1] - cell_box.lo[1]) as usize) * s[0]
                        + (p[0] - cell_box.lo[0]) as usize;
                    let mut v = Vec::with_capacity(per_point);
                    for c in 0..nc {
                        let o = (c * cvox + lin) * item;
                        v.extend_from_slice(&chunk[o..o + item]);
                    }
                    results.push((i, v));
                }
            }
            Ok(results)
        };
        let parts: Vec<Vec<(usize, Vec<u8>)>> = match &self.sharding[mip as usize] {
            None => {
                let task = |(cell, idxs): &([i64; 3], Vec<usize>)| -> Result<Vec<(usize, Vec<u8>)>> {
                    let (payload, url) = self.chunk_payload(mip, scale, *cell)?;
                    decode_cell(cell, idxs, payload.as_deref(), &url)
                };
                if cells.len() > 1 {
                    self.pool.install(|| cells.par_iter().with_max_len(1).map(task).collect::<Result<_>>())?
                } else {
                    cells.iter().map(task).collect::<Result<_>>()?
                }
            }
            Some(spec) => {
                // Locate every chunk, then fetch neighbouring ones together (as a cutout does).
                let gshape = grid.grid_shape();
                let mut by_shard: BTreeMap<u64, Vec<Located>> = BTreeMap::new();
                let mut generations: BTreeMap<u64, Option<String>> = BTreeMap::new();
                let mut parts = Vec::new();
                for (i, (cell, idxs)) in cells.iter().enumerate() {
                    let id = compressed_morton(*cell, gshape);
                    let (shard, ms) = spec.locate(id);
                    let index = self.minishard_index(mip, scale, spec, shard, ms)?;
                    match index.as_ref().and_then(|m| m.find(id).map(|r| (r, m.generation.clone()))) {
                        Some(((start, end), g)) => {
                            self.check_shard_range(scale, spec, shard, ms, id, grid.cell_bbox(*cell), end - start)?;
                            if generations.insert(shard, g.clone()).is_some_and(|old| old != g) {
                                return Err(Error::stale(format!("shard {shard} changed between two minishard reads")));
                            }
                            by_shard.entry(shard).or_default().push(Located { want: i, start, end });
                        }
                        None => {
                            let key = self.shard_key(scale, spec, shard);
                            let url = format!("{} (chunk {id}, grid cell {cell:?}, minishard {ms})", self.store.url(&key));
                            parts.push(decode_cell(cell, idxs, None, &url)?);
                        }
                    }
                }
                let runs = coalesce(by_shard);
                let read_run = |(shard, run): &(u64, Vec<Located>)| -> Result<Vec<Vec<(usize, Vec<u8>)>>> {
                    let key = self.shard_key(scale, spec, *shard);
                    let url = self.store.url(&key);
                    let (a, b) = (run[0].start, run.iter().map(|l| l.end).max().unwrap_or(run[0].end));
                    let generation = generations.get(shard).cloned().unwrap_or_default();
                    let bytes = match self
                        .store
                        .get_range_if(&key, a, b, generation.as_deref())
                        .map_err(|e| {
                            let what: Vec<String> = run
                                .iter()
                                .map(|l| {
                                    let id = compressed_morton(cells[l.want].0, gshape);
                                    format!("chunk {id} (minishard {})", spec.locate(id).1)
                                })
                                .collect();
                            e.context(format!("reading {}", what.join(", ")))
                        })?
                    {
                        RangeRead::Data(bytes, _) => bytes,
                        RangeRead::Stale | RangeRead::Missing => {
                            return Err(Error::stale(format!("{url}: shard changed during the read")))
                        }
                    };
                    run.iter()
                        .map(|l| {
                            let (cell, idxs) = &cells[l.want];
                            let id = compressed_morton(*cell, gshape);
                            let curl = format!("{url} (chunk {id}, grid cell {cell:?}, minishard {})", spec.locate(id).1);
                            let payload = &bytes[(l.start - a) as usize..(l.end - a) as usize];
                            match spec.data_encoding {
                                DataEncoding::Raw => decode_cell(cell, idxs, Some(payload), &curl),
                                DataEncoding::Gzip => {
                                    let limit = self.chunk_spec(scale, grid.cell_bbox(*cell), &curl).payload_limit();
                                    let data = compression::gunzip(payload, limit, &curl)?;
                                    decode_cell(cell, idxs, Some(&data), &curl)
                                }
                            }
                        })
                        .collect()
                };
                let fetched: Vec<Vec<Vec<(usize, Vec<u8>)>>> = if runs.len() > 1 {
                    self.pool.install(|| runs.par_iter().with_max_len(1).map(read_run).collect::<Result<_>>())?
                } else {
                    runs.iter().map(read_run).collect::<Result<_>>()?
                };
                parts.extend(fetched.into_iter().flatten());
                parts
            }
        };
        for (i, v) in parts.into_iter().flatten() {
            out[i * per_point..(i + 1) * per_point].copy_from_slice(&v);
        }
        Ok(())
    }

    /// The grid cells of `bbox` (clipped to the bounds), x fastest, each with whether its
    /// chunk is stored. Unsharded: one HEAD (or stat) per chunk; sharded: index look-ups.
    pub fn chunks_exist(&self, mip: u32, bbox: &Bbox) -> Result<Vec<(Bbox, bool)>> {
        self.retry_stale(|| self.chunks_exist_once(mip, bbox))
    }

    fn chunks_exist_once(&self, mip: u32, bbox: &Bbox) -> Result<Vec<(Bbox, bool)>> {
        let scale = self.scale(mip)?;
        if bbox.is_empty() {
            return Err(Error::invalid(format!("box {bbox} is empty or inverted (need lo < hi on every axis)")));
        }
        let grid = ChunkGrid::of(scale);
        let Some(inside) = grid.bounds().intersection(bbox) else { return Ok(Vec::new()) };
        let cells = grid.cells_in(&inside);
        self.prefetch_indices(mip, scale, &cells)?;
        let spec = self.sharding[mip as usize].clone().map(Arc::new);
        let gshape = grid.grid_shape();
        let check = |cell: &[i64; 3]| -> Result<(Bbox, bool)> {
            let b = grid.cell_bbox(*cell);
            let present = match &spec {
                None => self.store.exists(&chunk_key(&scale.key, &b))?,
                Some(spec) => {
                    let id = compressed_morton(*cell, gshape);
                    let (shard, ms) = spec.locate(id);
                    self.minishard_index(mip, scale, spec, shard, ms)?.is_some_and(|m| m.find(id).is_some())
                }
            };
            Ok((b, present))
        };
        self.pool.install(|| cells.par_iter().with_max_len(1).map(check).collect())
    }
}
