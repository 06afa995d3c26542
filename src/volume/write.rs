//! Writing: new layers (`create`, `add_scale`), boxes from a caller's buffer (aligned chunks
//! encoded and stored in parallel; non-aligned boxes read-modify-write their edge chunks),
//! whole-shard writes of sharded scales, and deletion of aligned boxes.

use std::collections::HashMap;

use rayon::prelude::*;
use serde_json::{json, Value};

use super::Volume;
use crate::cloudpath::CloudPath;
use crate::codec::encode::{self, EncodeOptions};
use crate::codec::{self, OutView};
use crate::error::{Error, Result};
use crate::format::grid::chunk_key;
use crate::format::sharding::{compressed_morton, DataEncoding, ShardingSpec};
use crate::format::{Bbox, ChunkGrid, DataType, Encoding, Info, LayerType, Scale};
use crate::options::{Compress, Options};
use crate::store::{self, ContentEncoding};

/// Most grid cells a sharded write scans to check that the shards it writes are complete.
const MAX_SHARD_SCAN_CELLS: u64 = 1 << 26;

/// Copy `region` between two planar `[x, y, z, c]` arrays covering `src_box` and `dst_box`.
pub(crate) fn copy_box(src: &[u8], src_box: &Bbox, dst: &mut [u8], dst_box: &Bbox, region: &Bbox, channels: usize, item: usize) {
    let ss = src_box.shape().map(|v| v as usize);
    let ds = dst_box.shape().map(|v| v as usize);
    let n = (region.hi[0] - region.lo[0]) as usize * item;
    for c in 0..channels {
        for z in region.lo[2]..region.hi[2] {
            for y in region.lo[1]..region.hi[1] {
                let so = (((c * ss[2] + (z - src_box.lo[2]) as usize) * ss[1] + (y - src_box.lo[1]) as usize) * ss[0]
                    + (region.lo[0] - src_box.lo[0]) as usize)
                    * item;
                let dof = (((c * ds[2] + (z - dst_box.lo[2]) as usize) * ds[1] + (y - dst_box.lo[1]) as usize) * ds[0]
                    + (region.lo[0] - dst_box.lo[0]) as usize)
                    * item;
                dst[dof..dof + n].copy_from_slice(&src[so..so + n]);
            }
        }
    }
}

fn content_type(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Raw => "application/octet-stream",
        Encoding::Jpeg => "image/jpeg",
        Encoding::Png => "image/png",
        Encoding::CompressedSegmentation => "image/x.compressed_segmentation",
        Encoding::Compresso => "image/x.compresso",
        Encoding::Jxl => "image/jxl",
    }
}

/// Format a resolution component for a scale key: integers without a decimal point.
fn res_str(r: f64) -> String {
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

/// The parameters of a new layer, for [`new_info`].
#[derive(Debug, Clone)]
pub struct NewInfo {
    pub layer_type: LayerType,
    pub data_type: DataType,
    pub encoding: Encoding,
    pub num_channels: u32,
    pub resolution: [f64; 3],
    pub voxel_offset: [i64; 3],
    pub size: [i64; 3],
    pub chunk_size: [i64; 3],
    /// compressed_segmentation block size (default 8x8x8).
    pub cseg_block_size: Option<[i64; 3]>,
}

/// A valid info JSON for a one-scale layer, like cloud-volume's `create_new_info`.
///
/// # Errors
/// The combination is invalid (the info would not parse).
pub fn new_info(p: &NewInfo) -> Result<Value> {
    let key = p.resolution.iter().map(|&r| res_str(r)).collect::<Vec<_>>().join("_");
    let mut scale = json!({
        "key": key,
        "size": p.size,
        "voxel_offset": p.voxel_offset,
        "resolution": p.resolution,
        "chunk_sizes": [p.chunk_size],
        "encoding": p.encoding.name(),
    });
    if p.encoding == Encoding::CompressedSegmentation {
        scale["compressed_segmentation_block_size"] = json!(p.cseg_block_size.unwrap_or([8, 8, 8]));
    }
    let info = json!({
        "type": match p.layer_type { LayerType::Image => "image", LayerType::Segmentation => "segmentation" },
        "data_type": p.data_type.name(),
        "num_channels": p.num_channels,
        "scales": [scale],
    });
    Info::from_json(info.clone(), "new info")?;
    Ok(info)
}

impl Volume {
    /// Create a layer: validate `info_json`, write it (refused when an info exists, unless the
    /// option `overwrite`), and open it.
    ///
    /// # Errors
    /// An invalid info (`Decode`/`Unsupported`), an existing info without `overwrite`
    /// (`InvalidArgument`), I/O errors.
    pub fn create(cloudpath: &str, info_json: &str, opts: Options) -> Result<Volume> {
        let path = CloudPath::parse(cloudpath, &opts)?;
        let store = store::open(&path, &opts)?;
        let info_url = store.url("info");
        let info = Info::parse(info_json.as_bytes(), &info_url)?;
        super::sharding_specs(&info, &info_url)?;
        for (i, sc) in info.scales.iter().enumerate() {
            if let Some(b) = sc.cseg_block_size {
                if b[0] * b[1] * b[2] > 65_536 {
                    return Err(Error::invalid(format!(
                        "{info_url}: scales[{i}] compressed_segmentation_block_size {b:?} has more than 65,536 voxels; \
                         such blocks can need 32-bit indices, which cloud-volume and Neuroglancer decode wrongly"
                    )));
                }
            }
        }
        if !opts.overwrite && store.exists("info")? {
            return Err(Error::invalid(format!(
                "{info_url}: an info already exists (open with {{\"overwrite\": true}} to replace it)"
            )));
        }
        let text = serde_json::to_vec_pretty(&info.json).map_err(|e| Error::internal(e.to_string()))?;
        store.put("info", &text, ContentEncoding::Identity, "application/json")?;
        Self::with_info(path, store, info, opts)
    }

    /// Add a scale downsampled from mip 0 by `factor` (resolution x factor, voxel_offset
    /// floored, size rounded up), with `chunk_size` (default: mip 0's) and mip 0's encoding,
    /// write the info, and return a handle on the new info. An existing scale with the same
    /// resolution is kept (its mip is returned).
    ///
    /// # Errors
    /// A factor below 1, I/O errors.
    pub fn add_scale(&self, factor: [i64; 3], chunk_size: Option<[i64; 3]>) -> Result<(Volume, u32)> {
        if factor.iter().any(|&f| f < 1) {
            return Err(Error::invalid(format!("scale factor {factor:?} must be >= 1 on every axis")));
        }
        if let Some(c) = chunk_size {
            if c.iter().any(|&v| !(1..=1 << 32).contains(&v)) {
                return Err(Error::invalid(format!("chunk size {c:?} must be in 1..=2^32 on every axis")));
            }
        }
        let base = &self.info.scales[0];
        let mut res = [0.0; 3];
        let mut off = [0i64; 3];
        let mut size = [0i64; 3];
        for d in 0..3 {
            res[d] = base.resolution[d] * factor[d] as f64;
            off[d] = base.voxel_offset[d].div_euclid(factor[d]);
            let hi = (base.voxel_offset[d] + base.size[d] + factor[d] - 1).div_euclid(factor[d]);
            size[d] = hi - off[d];
        }
        if let Some(i) = self.info.scales.iter().position(|s| s.resolution == res) {
            return Ok((Self::with_info(self.path.clone(), self.store.clone(), self.info.clone(), self.opts.clone())?, i as u32));
        }
        let mut json = self.info.json.clone();
        let mut scale = json["scales"][0].clone();
        scale["key"] = json!(res.iter().map(|&r| res_str(r)).collect::<Vec<_>>().join("_"));
        scale["resolution"] = json!(res);
        scale["voxel_offset"] = json!(off);
        scale["size"] = json!(size);
        scale["chunk_sizes"] = json!([chunk_size.unwrap_or(base.chunk_size)]);
        if let Some(sh) = scale.as_object_mut() {
            sh.remove("sharding");
        }
        let scales = json["scales"].as_array_mut().ok_or_else(|| Error::internal("info without scales"))?;
        scales.push(scale);
        // Keep the scales ordered finest to coarsest.
        scales.sort_by(|a, b| {
            let v = |s: &Value| s["resolution"].as_array().map_or(0.0, |r| r.iter().filter_map(Value::as_f64).product::<f64>());
            v(a).partial_cmp(&v(b)).unwrap_or(std::cmp::Ordering::Equal)
        });
        let info = Info::from_json(json, &self.store.url("info"))?;
        let text = serde_json::to_vec_pretty(&info.json).map_err(|e| Error::internal(e.to_string()))?;
        self.store.put("info", &text, ContentEncoding::Identity, "application/json")?;
        let mip = info.scales.iter().position(|s| s.resolution == res).unwrap_or(0) as u32;
        Ok((Self::with_info(self.path.clone(), self.store.clone(), info, self.opts.clone())?, mip))
    }

    /// The content encoding written chunks get.
    fn write_encoding(&self, encoding: Encoding) -> ContentEncoding {
        let file = self.path.protocol == crate::cloudpath::Protocol::File;
        match self.opts.compress {
            Compress::None => ContentEncoding::Identity,
            Compress::Gzip => ContentEncoding::Gzip,
            Compress::Zstd => ContentEncoding::Zstd,
            Compress::Default => {
                if !file && matches!(encoding, Encoding::Raw | Encoding::CompressedSegmentation) {
                    ContentEncoding::Gzip
                } else {
                    ContentEncoding::Identity
                }
            }
        }
    }

    fn encode_options(&self, _scale: &Scale, mip: u32) -> EncodeOptions {
        EncodeOptions::for_scale(&self.info, mip as usize)
    }

    /// Encode one chunk (planar, cell-shaped) into its stored bytes and content encoding.
    fn encode_stored(&self, scale: &Scale, mip: u32, cell: &Bbox, chunk: &[u8], url: &str) -> Result<(Vec<u8>, ContentEncoding)> {
        let shape = cell.shape().map(|v| v as usize);
        let bytes = encode::encode_chunk(
            scale.encoding,
            self.info.data_type,
            self.info.num_channels as usize,
            shape,
            chunk,
            &self.encode_options(scale, mip),
            url,
        )?;
        let enc = self.write_encoding(scale.encoding);
        let level = self.opts.compress_level;
        let stored = match enc {
            ContentEncoding::Identity => bytes,
            ContentEncoding::Gzip => encode::gzip(&bytes, level.unwrap_or(6).clamp(1, 12)),
            ContentEncoding::Zstd => zstd::bulk::compress(&bytes, level.unwrap_or(3))
                .map_err(|e| Error::internal(format!("{url}: zstd compression failed: {e}")))?,
            ContentEncoding::Brotli => return Err(Error::unsupported(format!("{url}: writing brotli is not supported"))),
        };
        Ok((stored, enc))
    }

    fn check_write_box(&self, mip: u32, scale: &Scale, bbox: &Bbox, len: usize, verb: &str) -> Result<ChunkGrid> {
        let want = self.cutout_len(bbox)?;
        if len != want {
            let s = bbox.shape();
            return Err(Error::invalid(format!(
                "buffer of {len} bytes for box {bbox}: expected {want} ({}x{}x{} voxels x {} channel(s) x {} bytes of {})",
                s[0],
                s[1],
                s[2],
                self.info.num_channels,
                self.info.data_type.size(),
                self.info.data_type.name()
            )));
        }
        let grid = ChunkGrid::of(scale);
        let bounds = grid.bounds();
        if !bounds.contains(bbox) {
            return Err(Error::out_of_bounds(format!(
                "{}: cannot {verb} box {bbox}: it leaves the bounds {bounds} of mip {mip}",
                self.path.path
            )));
        }
        if matches!(scale.encoding, Encoding::Compresso | Encoding::Jxl) {
            return Err(Error::unsupported(format!(
                "{}: mip {mip} uses the {} encoding, which cannot be written yet",
                self.path.path,
                scale.encoding.name()
            )));
        }
        Ok(grid)
    }

    fn misaligned(&self, mip: u32, grid: &ChunkGrid, bbox: &Bbox, verb: &str) -> Error {
        let hint = if self.sharding[mip as usize].is_some() {
            "sharded scales take whole shards"
        } else if verb == "delete" {
            "deletes remove whole chunks only"
        } else {
            "open with non_aligned_writes=true to merge partial chunks"
        };
        let bounds = grid.bounds();
        let mut why = Vec::new();
        for (d, axis) in ["x", "y", "z"].iter().enumerate() {
            if (bbox.lo[d] - grid.offset[d]).rem_euclid(grid.chunk[d]) != 0 {
                why.push(format!("{axis} starts at {} (not voxel_offset {} + a multiple of {})", bbox.lo[d], grid.offset[d], grid.chunk[d]));
            }
            if (bbox.hi[d] - grid.offset[d]).rem_euclid(grid.chunk[d]) != 0 && bbox.hi[d] != bounds.hi[d] {
                why.push(format!("{axis} ends at {} (not on the chunk grid nor the volume edge {})", bbox.hi[d], bounds.hi[d]));
            }
        }
        Error::invalid(format!(
            "{}: cannot {verb} box {bbox} at mip {mip}: it is not aligned to the chunk grid: {} ({hint})",
            self.path.path,
            why.join("; ")
        ))
    }

    /// Write the box `bbox` at `mip` from `buf` (Fortran order `[x, y, z, c]`, exactly
    /// [`Volume::cutout_len`] bytes). Chunks are encoded and stored in parallel; each chunk is
    /// replaced whole (a failed write leaves it old or new).
    ///
    /// # Errors
    /// A wrong length (`InvalidArgument`), a box leaving the volume (`OutOfBounds`), a box off
    /// the chunk grid without `non_aligned_writes` (`InvalidArgument`), a sharded write that
    /// does not cover whole shards (`InvalidArgument`), I/O errors.
    pub fn write_from(&self, mip: u32, bbox: &Bbox, buf: &[u8]) -> Result<()> {
        let scale = self.scale(mip)?;
        let grid = self.check_write_box(mip, scale, bbox, buf.len(), "write")?;
        let aligned = grid.is_aligned(bbox);
        if let Some(spec) = &self.sharding[mip as usize] {
            if !aligned {
                return Err(self.misaligned(mip, &grid, bbox, "write"));
            }
            return self.write_shards(mip, scale, spec, &grid, bbox, buf);
        }
        if !aligned && !self.opts.non_aligned_writes {
            return Err(self.misaligned(mip, &grid, bbox, "write"));
        }
        let nc = self.info.num_channels as usize;
        let item = self.info.data_type.size();
        let background = self.info.data_type.encode_scalar(self.opts.background_color);
        let cells = grid.cells_in(bbox);
        let task = |cell: &[i64; 3]| -> Result<()> {
            let cell_box = grid.cell_bbox(*cell);
            let Some(region) = cell_box.intersection(bbox) else { return Ok(()) };
            let key = chunk_key(&scale.key, &cell_box);
            let url = self.store.url(&key);
            let mut chunk = vec![0u8; cell_box.voxels().unwrap_or(0) as usize * nc * item];
            if region != cell_box {
                // Partial chunk: start from what is stored (background where nothing is).
                let (payload, purl) = self.chunk_payload(mip, scale, *cell)?;
                let view = OutView::new(&mut chunk, cell_box, nc, item);
                match payload {
                    Some(data) => {
                        let spec = self.chunk_spec(scale, cell_box, &purl);
                        codec::decode_into(&spec, &data, &cell_box, &view)?;
                    }
                    // SAFETY: the view is this task's own buffer.
                    None => unsafe { view.fill(&cell_box, &background) },
                }
            }
            copy_box(buf, bbox, &mut chunk, &cell_box, &region, nc, item);
            if self.opts.delete_black_uploads && chunk.chunks_exact(item).all(|e| e == &background[..]) {
                return self.store.delete(&key);
            }
            let (stored, enc) = self.encode_stored(scale, mip, &cell_box, &chunk, &url)?;
            // The decoded chunk is not needed while the (possibly slow) PUT runs.
            drop(chunk);
            self.store.put(&key, &stored, enc, content_type(scale.encoding))
        };
        if cells.len() == 1 {
            task(&cells[0])
        } else {
            self.pool.install(|| cells.par_iter().with_max_len(1).try_for_each(task))
        }
    }

    /// Write whole shards: every shard the box touches must lie entirely inside it.
    fn write_shards(&self, mip: u32, scale: &Scale, spec: &ShardingSpec, grid: &ChunkGrid, bbox: &Bbox, buf: &[u8]) -> Result<()> {
        let gshape = grid.grid_shape();
        let mut by_shard: HashMap<u64, Vec<([i64; 3], u64, u64)>> = HashMap::new();
        for cell in grid.cells_in(bbox) {
            let id = compressed_morton(cell, gshape);
            let (shard, ms) = spec.locate(id);
            by_shard.entry(shard).or_default().push((cell, id, ms));
        }
        // Every cell of the grid that maps to a touched shard must be in the box.
        let total: u64 = gshape.iter().map(|&g| g as u64).product();
        if total > MAX_SHARD_SCAN_CELLS {
            return Err(Error::unsupported(format!(
                "{}: sharded write to a grid of {total} chunks: checking shard completeness is limited to {MAX_SHARD_SCAN_CELLS}",
                self.path.path
            )));
        }
        let inside_cells = grid.cell_range(bbox);
        let mut missing: HashMap<u64, u64> = HashMap::new();
        for z in 0..gshape[2] {
            for y in 0..gshape[1] {
                for x in 0..gshape[0] {
                    let c = [x, y, z];
                    let (shard, _) = spec.locate(compressed_morton(c, gshape));
                    if by_shard.contains_key(&shard) && !(0..3).all(|d| inside_cells.0[d] <= c[d] && c[d] < inside_cells.1[d]) {
                        *missing.entry(shard).or_default() += 1;
                    }
                }
            }
        }
        if let Some((&shard, &n)) = missing.iter().min_by_key(|e| e.0) {
            return Err(Error::invalid(format!(
                "{}: sharded write of box {bbox} at mip {mip}: shard {} is only partly inside the box ({n} of its chunks are outside); sharded writes must cover whole shards",
                self.path.path,
                spec.shard_file(shard)
            )));
        }
        let nc = self.info.num_channels as usize;
        let item = self.info.data_type.size();
        let shards: Vec<(u64, Vec<([i64; 3], u64, u64)>)> = by_shard.into_iter().collect();
        let task = |(shard, cells): &(u64, Vec<([i64; 3], u64, u64)>)| -> Result<()> {
            let key = crate::cloudpath::join_key(&scale.key, &spec.shard_file(*shard));
            let url = self.store.url(&key);
            // Encode every chunk of the shard.
            let mut chunks: Vec<(u64, u64, Vec<u8>)> = cells
                .par_iter()
                .map(|&(cell, id, ms)| -> Result<(u64, u64, Vec<u8>)> {
                    let cell_box = grid.cell_bbox(cell);
                    let mut chunk = vec![0u8; cell_box.voxels().unwrap_or(0) as usize * nc * item];
                    copy_box(buf, bbox, &mut chunk, &cell_box, &cell_box, nc, item);
                    let curl = format!("{url} (chunk {id})");
                    let bytes = encode::encode_chunk(
                        scale.encoding,
                        self.info.data_type,
                        nc,
                        cell_box.shape().map(|v| v as usize),
                        &chunk,
                        &self.encode_options(scale, mip),
                        &curl,
                    )?;
                    let bytes = match spec.data_encoding {
                        DataEncoding::Raw => bytes,
                        DataEncoding::Gzip => encode::gzip(&bytes, self.opts.compress_level.unwrap_or(6).clamp(1, 12)),
                    };
                    Ok((ms, id, bytes))
                })
                .collect::<Result<_>>()?;
            chunks.sort_unstable_by_key(|c| (c.0, c.1));
            let file = build_shard(spec, &chunks, self.opts.compress_level);
            self.store.put(&key, &file, ContentEncoding::Identity, "application/octet-stream")
        };
        let r = if shards.len() == 1 {
            task(&shards[0])
        } else {
            self.pool.install(|| shards.par_iter().with_max_len(1).try_for_each(task))
        };
        // Cached indices of this scale may describe the old shards.
        self.shards.index.clear();
        self.shards.minishard.clear();
        r
    }

    /// Delete the chunks of an aligned box (unsharded), or the shard files of whole shards.
    ///
    /// # Errors
    /// A box off the grid or leaving the volume, a partial shard, I/O errors.
    pub fn delete_box(&self, mip: u32, bbox: &Bbox) -> Result<()> {
        let scale = self.scale(mip)?;
        let grid = ChunkGrid::of(scale);
        let len = self.cutout_len(bbox)?;
        self.check_write_box(mip, scale, bbox, len, "delete")?;
        if !grid.is_aligned(bbox) {
            return Err(self.misaligned(mip, &grid, bbox, "delete"));
        }
        if self.sharding[mip as usize].is_some() {
            return Err(Error::unsupported(format!(
                "{}: deleting boxes of a sharded scale (mip {mip}) is not supported; delete whole shard files",
                self.path.path
            )));
        }
        let cells = grid.cells_in(bbox);
        self.pool.install(|| {
            cells.par_iter().with_max_len(1).try_for_each(|c| self.store.delete(&chunk_key(&scale.key, &grid.cell_bbox(*c))))
        })
    }
}

/// Assemble a shard file: the shard index, then per minishard (ascending) its chunks sorted by
/// id followed by its index (tensorstore's layout). `chunks` is sorted by (minishard, id).
fn build_shard(spec: &ShardingSpec, chunks: &[(u64, u64, Vec<u8>)], level: Option<i32>) -> Vec<u8> {
    let s = spec.index_len();
    let n_ms = 1usize << spec.minishard_bits.min(30);
    let mut index = vec![0u8; s as usize];
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
        let encoded = match spec.minishard_index_encoding {
            DataEncoding::Raw => raw,
            DataEncoding::Gzip => encode::gzip(&raw, level.unwrap_or(6).clamp(1, 12)),
        };
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
