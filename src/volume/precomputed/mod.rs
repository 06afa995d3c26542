//! The Precomputed readers and writers of one scale: [`ChunkScale`] over a [`ChunkSource`] —
//! chunk files ([`chunked::ChunkFiles`]) or shards ([`sharded::ShardFiles`]).
//!
//! A source only fetches payloads (each chunk's stored bytes with their content or shard data
//! encoding) and writes them; everything after a fetch is here, once: the payload limit,
//! decompression, the codec, the missing-chunk policy (`fill_missing` and the background),
//! progress, scattered points and existence.

pub mod chunked;
pub mod sharded;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::engine::{DisjointBytes, Engine};
use super::io::ScaleIo;
use super::labels::{self, Counts};
use crate::codec::{self, compression, ChunkSpec, Codec, EncodeOptions, OutView, Planar};
use crate::error::{Error, Result};
use crate::format::{Bbox, ChunkGrid, ContentEncoding, DataType, Encoding, Info, Scale};
use crate::options::{Compress, Options};
use crate::store::Store;

/// One fetched chunk, as handed from a source to the placing code.
pub(crate) struct Payload<'a> {
    /// The stored bytes (None: the chunk is missing, or zero bytes as cloud-volume counts it).
    pub(crate) data: Option<&'a [u8]>,
    /// What to remove before the codec: a content encoding, or the shard's data encoding.
    pub(crate) encoding: ContentEncoding,
    /// Names the chunk in messages (its URL, or its shard and id).
    pub(crate) url: &'a str,
}

/// The per-payload callback of [`ChunkSource::fetch`]: the index of the cell in the list
/// asked for, and its payload. Called from several threads at once.
pub(crate) type EachPayload<'f> = dyn Fn(usize, Payload<'_>) -> Result<()> + Sync + 'f;

/// Where a scale's chunks are stored: chunk files or shards.
pub(crate) trait ChunkSource: Send + Sync {
    /// Fetch the payloads of `cells` (in parallel, in any order), handing each to `each`.
    ///
    /// # Errors
    /// I/O errors, corrupt indices; the first error of `each`.
    fn fetch(&self, ctx: &ScaleCtx, cells: &[[i64; 3]], each: &EachPayload<'_>) -> Result<()>;

    /// Whether each of `cells` is stored.
    ///
    /// # Errors
    /// I/O errors, corrupt indices.
    fn exists(&self, ctx: &ScaleCtx, cells: &[[i64; 3]]) -> Result<Vec<bool>>;

    /// Write `region` (inside the bounds) from `buf` (planar, covering `region`).
    ///
    /// # Errors
    /// A region this layout cannot take; I/O and encode errors.
    fn write(&self, ctx: &ScaleCtx, region: &Bbox, buf: &[u8]) -> Result<()>;

    /// Delete the stored chunks of `region`.
    ///
    /// # Errors
    /// As `write`.
    fn delete(&self, ctx: &ScaleCtx, region: &Bbox) -> Result<()>;

    /// Drop cached indices.
    fn clear_cache(&self) {}

    /// The name cloud-volume's `download_files` gives the chunk of `cell`: its key.
    fn file_name(&self, ctx: &ScaleCtx, cell: [i64; 3]) -> String {
        crate::format::grid::chunk_key(&ctx.scale.key, &ctx.grid.cell_bbox(cell))
    }
}

/// What every reader and writer of one scale needs.
pub(crate) struct ScaleCtx {
    pub(crate) mip: u32,
    pub(crate) scale: Scale,
    pub(crate) grid: ChunkGrid,
    pub(crate) dtype: DataType,
    pub(crate) channels: usize,
    /// The codec of the scale's encoding, looked up once (None: not supported).
    codec: Option<&'static dyn Codec>,
    pub(crate) encode: EncodeOptions,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: Arc<Engine>,
    pub(crate) opts: Options,
    /// The element `background_color` stands for.
    pub(crate) background: Vec<u8>,
    /// The layer is on `file://` (the default compression differs).
    pub(crate) on_file: bool,
    /// The layer's cloud path, for messages.
    pub(crate) path: String,
    /// Bytes and count of the chunk bodies fetched so far: their mean is what a request
    /// reserves of the engine's byte budget before its answer says how long it is.
    bodies: (AtomicU64, AtomicU64),
}

impl ScaleCtx {
    /// The bytes a request for the chunk of `cell` reserves before it is sent: the mean of
    /// the bodies seen so far, or the decoded chunk's size before any.
    pub(crate) fn body_estimate(&self, cell: &Bbox) -> usize {
        let n = self.bodies.1.load(Ordering::Relaxed);
        if n == 0 {
            return self.chunk_len(cell).max(1);
        }
        (self.bodies.0.load(Ordering::Relaxed) / n).max(1) as usize
    }

    /// The capacity a pooled buffer takes for a body of `len` bytes of the chunk of `cell`.
    /// Raw chunks are usually gzip'd (cloud-volume uploads them so) and inflate to the decoded
    /// chunk: their buffers all hold one, so a body's buffer can later take an inflated chunk
    /// and the reverse without reallocating (blocks freed mid-read stay in the allocator's
    /// arenas). Other encodings inflate to their encoded stream: the body's length.
    pub(crate) fn buffer_len(&self, cell: &Bbox, len: usize) -> usize {
        if self.scale.encoding == Encoding::Raw {
            len.max(self.chunk_len(cell))
        } else {
            len
        }
    }

    /// Count a fetched body of `len` bytes into the estimate.
    pub(crate) fn note_body(&self, len: u64) {
        self.bodies.0.fetch_add(len, Ordering::Relaxed);
        self.bodies.1.fetch_add(1, Ordering::Relaxed);
    }

    /// The codec, or `Unsupported` naming the mip and encoding; `verb` is "read" or "written".
    pub(crate) fn codec(&self, verb: &str) -> Result<&'static dyn Codec> {
        self.codec.ok_or_else(|| {
            let how = if verb == "read" { "which is not supported yet" } else { "which cannot be written yet" };
            Error::unsupported(format!(
                "{}: mip {} uses the {} encoding, {how}",
                self.path, self.mip, self.scale.encoding_name
            ))
        })
    }

    /// What the codec needs to decode the chunk of `cell` (its voxels).
    pub(crate) fn chunk_spec<'a>(&self, cell: Bbox, url: &'a str) -> ChunkSpec<'a> {
        ChunkSpec {
            encoding: self.scale.encoding,
            dtype: self.dtype,
            channels: self.channels,
            cell,
            cseg_block: self.scale.cseg_block_size,
            url,
        }
    }

    /// The most bytes the stored payload of the chunk covering `cell` may take.
    pub(crate) fn stored_limit(&self, cell: Bbox) -> usize {
        compression::stored_bound(self.chunk_spec(cell, "").payload_limit())
    }

    /// Bytes of the decoded chunk of `cell`.
    pub(crate) fn chunk_len(&self, cell: &Bbox) -> usize {
        cell.voxels().unwrap_or(0) as usize * self.channels * self.dtype.size()
    }

    /// Remove `payload`'s encoding (bounded by the chunk's payload limit) and decode it, handing
    /// the codec's input to `f`.
    fn with_decoded<R>(
        &self,
        cell: Bbox,
        data: &[u8],
        encoding: ContentEncoding,
        url: &str,
        f: impl FnOnce(&ChunkSpec<'_>, &[u8]) -> Result<R>,
    ) -> Result<R> {
        let spec = self.chunk_spec(cell, url);
        let mut inflated = self.engine.take_buffer();
        if encoding != ContentEncoding::Identity {
            inflated.reserve(self.buffer_len(&cell, 0));
        }
        let r = compression::decompress_into(data, encoding, &mut inflated, spec.payload_limit(), url)
            .and_then(|did| f(&spec, if did { &inflated } else { data }));
        self.engine.give_buffer(inflated);
        r
    }

    /// Write the part `region` of the chunk of `cell` into `out` from `payload`, or apply the
    /// missing-chunk policy: background with `fill_missing`, else `NotFound` naming the chunk.
    pub(crate) fn place(&self, cell: Bbox, region: &Bbox, payload: Payload<'_>, out: &OutView<'_>) -> Result<()> {
        let Some(data) = payload.data else {
            if self.opts.read.fill_missing {
                // SAFETY: each chunk writes its own region.
                unsafe { out.fill(region, &self.background) };
                return Ok(());
            }
            return Err(self.missing(payload.url));
        };
        let codec = self.codec("read")?;
        let _permit = self.engine.decode_permit();
        self.with_decoded(cell, data, payload.encoding, payload.url, |spec, bytes| {
            codec.decode_into(spec, bytes, region, out)
        })
    }

    /// The error of a missing chunk.
    pub(crate) fn missing(&self, url: &str) -> Error {
        Error::not_found(format!("{url}: chunk missing (open with fill_missing=true to read it as background)"))
    }

    /// Encode the planar chunk of `cell` into its stored bytes (codec only; no content
    /// compression).
    pub(crate) fn encode_chunk(&self, cell: &Bbox, chunk: &[u8], url: &str) -> Result<Vec<u8>> {
        let codec = self.codec("written")?;
        let shape = cell.shape().map(|v| v as usize);
        codec.encode(&Planar { dtype: self.dtype, channels: self.channels, shape, data: chunk, url }, &self.encode)
    }

    /// The content encoding written chunk files get (cloud-volume's `compress`).
    pub(crate) fn write_encoding(&self) -> ContentEncoding {
        match self.opts.write.compress {
            Compress::None => ContentEncoding::Identity,
            Compress::Gzip => ContentEncoding::Gzip,
            Compress::Zstd => ContentEncoding::Zstd,
            Compress::Default => {
                if !self.on_file && matches!(self.scale.encoding, Encoding::Raw | Encoding::CompressedSegmentation) {
                    ContentEncoding::Gzip
                } else {
                    ContentEncoding::Identity
                }
            }
        }
    }

    /// The `Content-Type` of written chunks.
    pub(crate) fn content_type(&self) -> &'static str {
        self.codec.map_or("application/octet-stream", |c| c.content_type())
    }

    /// The error for a box off the chunk grid.
    pub(crate) fn misaligned(&self, bbox: &Bbox, verb: &str, sharded: bool) -> Error {
        let grid = &self.grid;
        let hint = if sharded {
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
                why.push(format!(
                    "{axis} starts at {} (not voxel_offset {} + a multiple of {})",
                    bbox.lo[d], grid.offset[d], grid.chunk[d]
                ));
            }
            if (bbox.hi[d] - grid.offset[d]).rem_euclid(grid.chunk[d]) != 0 && bbox.hi[d] != bounds.hi[d] {
                why.push(format!(
                    "{axis} ends at {} (not on the chunk grid nor the volume edge {})",
                    bbox.hi[d], bounds.hi[d]
                ));
            }
        }
        Error::invalid(format!(
            "{}: cannot {verb} box {bbox} at mip {}: it is not aligned to the chunk grid: {} ({hint})",
            self.path,
            self.mip,
            why.join("; ")
        ))
    }
}

/// A Precomputed scale read and written through its chunk source.
pub(crate) struct ChunkScale<S: ChunkSource> {
    pub(crate) ctx: ScaleCtx,
    pub(crate) source: S,
}

impl<S: ChunkSource> ScaleIo for ChunkScale<S> {
    fn read_box(&self, region: &Bbox, out: &OutView<'_>, progress: Option<&AtomicUsize>) -> Result<()> {
        let ctx = &self.ctx;
        ctx.codec("read")?;
        let cells = ctx.grid.cells_in(region);
        let r = self.source.fetch(ctx, &cells, &|i, payload| {
            let cell = ctx.grid.cell_bbox(cells[i]);
            if let Some(part) = cell.intersection(region) {
                ctx.place(cell, &part, payload, out)?;
            }
            if let Some(p) = progress {
                p.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
        ctx.engine.release_buffers();
        r
    }

    fn read_points(&self, points: &[[i64; 3]], out: &mut [u8]) -> Result<()> {
        let ctx = &self.ctx;
        let codec = ctx.codec("read")?;
        let (nc, item) = (ctx.channels, ctx.dtype.size());
        let per_point = nc * item;
        let mut by_cell: HashMap<[i64; 3], Vec<usize>> = HashMap::new();
        for (i, p) in points.iter().enumerate() {
            let (cell, _) = ctx.grid.cell_range(&Bbox::new(*p, [p[0] + 1, p[1] + 1, p[2] + 1]));
            by_cell.entry(cell).or_default().push(i);
        }
        let (cells, idxs): (Vec<[i64; 3]>, Vec<Vec<usize>>) = by_cell.into_iter().unzip();
        let dst = DisjointBytes::new(out);
        // Each point's bytes are written by the one task of its cell.
        let put = |i: usize, v: &[u8]| unsafe { dst.write(i * per_point, v) };
        self.source.fetch(ctx, &cells, &|k, payload| {
            let cell = ctx.grid.cell_bbox(cells[k]);
            let Some(data) = payload.data else {
                if !ctx.opts.read.fill_missing {
                    return Err(ctx.missing(payload.url));
                }
                let v = ctx.background.repeat(nc);
                idxs[k].iter().for_each(|&i| put(i, &v));
                return Ok(());
            };
            let _permit = ctx.engine.decode_permit();
            ctx.with_decoded(cell, data, payload.encoding, payload.url, |spec, bytes| {
                if codec.random_access() {
                    // Decode just the voxels asked for.
                    let mut v = vec![0u8; per_point];
                    for &i in &idxs[k] {
                        let p = points[i];
                        let vbox = Bbox::new(p, [p[0] + 1, p[1] + 1, p[2] + 1]);
                        codec.decode_into(spec, bytes, &vbox, &OutView::new(&mut v, vbox, nc, item))?;
                        put(i, &v);
                    }
                    return Ok(());
                }
                let mut chunk = vec![0u8; ctx.chunk_len(&cell)];
                codec.decode_into(spec, bytes, &cell, &OutView::new(&mut chunk, cell, nc, item))?;
                let s = cell.shape().map(|v| v as usize);
                let cvox = s[0] * s[1] * s[2];
                let mut v = Vec::with_capacity(per_point);
                for &i in &idxs[k] {
                    let p = points[i];
                    let lin = ((p[2] - cell.lo[2]) as usize * s[1] + (p[1] - cell.lo[1]) as usize) * s[0]
                        + (p[0] - cell.lo[0]) as usize;
                    v.clear();
                    for c in 0..nc {
                        let o = (c * cvox + lin) * item;
                        v.extend_from_slice(&chunk[o..o + item]);
                    }
                    put(i, &v);
                }
                Ok(())
            })
        })
    }

    fn chunks_exist(&self, region: &Bbox) -> Result<Vec<(Bbox, bool)>> {
        let cells = self.ctx.grid.cells_in(region);
        let present = self.source.exists(&self.ctx, &cells)?;
        Ok(cells.iter().zip(present).map(|(&c, p)| (self.ctx.grid.cell_bbox(c), p)).collect())
    }

    /// Chunk by chunk: each fetched chunk's part inside `region` is counted straight from its
    /// encoding where the codec can (compressed_segmentation), else decoded into a buffer of
    /// that part and counted; per-thread tallies are merged at the end.
    fn label_counts(&self, region: &Bbox, channels: usize, item: usize) -> Result<Counts> {
        let ctx = &self.ctx;
        let codec = ctx.codec("read")?;
        let cells = ctx.grid.cells_in(region);
        let tallies: Mutex<Vec<Counts>> = Mutex::new(Vec::new());
        let bg = labels::label_at(&ctx.background, item, 0);
        let r = self.source.fetch(ctx, &cells, &|i, payload| {
            let cell = ctx.grid.cell_bbox(cells[i]);
            let Some(part) = cell.intersection(region) else { return Ok(()) };
            let mut counts = tallies.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
            let voxels = part.voxels().unwrap_or(0) * channels as u64;
            let r = match payload.data {
                None if ctx.opts.read.fill_missing => {
                    *counts.entry(bg).or_insert(0) += voxels;
                    Ok(())
                }
                None => Err(ctx.missing(payload.url)),
                Some(data) => {
                    let _permit = ctx.engine.decode_permit();
                    ctx.with_decoded(cell, data, payload.encoding, payload.url, |spec, bytes| {
                        let mut add = |label: u64, n: u64| *counts.entry(label).or_insert(0) += n;
                        match codec.count_labels(spec, bytes, &part, &mut add) {
                            Some(r) => r,
                            None => {
                                let mut buf = ctx.engine.take_buffer();
                                buf.clear();
                                buf.resize(voxels as usize * item, 0);
                                let r = codec.decode_into(
                                    spec,
                                    bytes,
                                    &part,
                                    &OutView::new(&mut buf, part, channels, item),
                                );
                                if r.is_ok() {
                                    labels::count_bytes(&buf, item, &mut counts);
                                }
                                ctx.engine.give_buffer(buf);
                                r
                            }
                        }
                    })
                }
            };
            tallies.lock().unwrap_or_else(|p| p.into_inner()).push(counts);
            r
        });
        ctx.engine.release_buffers();
        r?;
        let mut all = Counts::default();
        for t in tallies.into_inner().unwrap_or_else(|p| p.into_inner()) {
            labels::merge(&mut all, t);
        }
        Ok(all)
    }

    fn chunk_files(&self, region: &Bbox, decompress: bool) -> Result<Vec<(String, Vec<u8>)>> {
        let ctx = &self.ctx;
        let cells = ctx.grid.cells_in(region);
        let files: Mutex<Vec<(usize, String, Vec<u8>)>> = Mutex::new(Vec::new());
        self.source.fetch(ctx, &cells, &|i, payload| {
            let Some(data) = payload.data else { return Ok(()) };
            let bytes = if decompress {
                let cell = ctx.grid.cell_bbox(cells[i]);
                let limit = ctx.chunk_spec(cell, payload.url).payload_limit();
                let mut out = Vec::new();
                if compression::decompress_into(data, payload.encoding, &mut out, limit, payload.url)? {
                    out
                } else {
                    data.to_vec()
                }
            } else {
                data.to_vec()
            };
            let name = self.source.file_name(ctx, cells[i]);
            files.lock().unwrap_or_else(|p| p.into_inner()).push((i, name, bytes));
            Ok(())
        })?;
        ctx.engine.release_buffers();
        let mut files = files.into_inner().unwrap_or_else(|p| p.into_inner());
        files.sort_unstable_by_key(|f| f.0);
        Ok(files.into_iter().map(|(_, n, b)| (n, b)).collect())
    }

    fn work_units(&self, region: &Bbox) -> usize {
        let (lo, hi) = self.ctx.grid.cell_range(region);
        (0..3).map(|d| (hi[d] - lo[d]).max(0) as usize).product()
    }

    fn write_box(&self, region: &Bbox, buf: &[u8]) -> Result<()> {
        self.ctx.codec("written")?;
        self.source.write(&self.ctx, region, buf)
    }

    fn delete_box(&self, region: &Bbox) -> Result<()> {
        self.ctx.codec("written")?;
        self.source.delete(&self.ctx, region)
    }

    fn clear_cache(&self) {
        self.source.clear_cache();
    }
}

/// Copy `region` between two planar `[x, y, z, c]` arrays covering `src_box` and `dst_box`.
pub(crate) fn copy_box(
    src: &[u8],
    src_box: &Bbox,
    dst: &mut [u8],
    dst_box: &Bbox,
    region: &Bbox,
    channels: usize,
    item: usize,
) {
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

/// The readers and writers of every scale of a Precomputed layer on `store`: chunk files, or
/// shards where the scale says so (each sharding spec checked here).
///
/// # Errors
/// An invalid sharding spec, or a grid needing more than 64 bits of chunk id (`Decode`).
pub(crate) fn scales(
    info: &Info,
    store: &Arc<dyn Store>,
    engine: &Arc<Engine>,
    opts: &Options,
    path: &crate::cloudpath::CloudPath,
) -> Result<Vec<Box<dyn ScaleIo>>> {
    let info_url = store.url("info");
    let specs = sharded::sharding_specs(info, &info_url)?;
    let caches = Arc::new(sharded::ShardCaches::new(sharded::SHARD_CACHE_BYTES));
    let background = info.data_type.encode_scalar(opts.read.background_color);
    let mut out: Vec<Box<dyn ScaleIo>> = Vec::with_capacity(info.scales.len());
    for (mip, (scale, spec)) in info.scales.iter().zip(specs).enumerate() {
        let ctx = ScaleCtx {
            mip: mip as u32,
            scale: scale.clone(),
            grid: ChunkGrid::of(scale),
            dtype: info.data_type,
            channels: info.num_channels as usize,
            codec: codec::codec_for(scale.encoding),
            encode: EncodeOptions::for_scale(info, mip),
            store: store.clone(),
            engine: engine.clone(),
            opts: opts.clone(),
            background: background.clone(),
            on_file: path.protocol == crate::cloudpath::Protocol::File,
            path: path.path.clone(),
            bodies: (AtomicU64::new(0), AtomicU64::new(0)),
        };
        out.push(match spec {
            None => Box::new(ChunkScale { ctx, source: chunked::ChunkFiles }),
            Some(spec) => Box::new(ChunkScale { ctx, source: sharded::ShardFiles::new(spec, caches.clone()) }),
        });
    }
    Ok(out)
}
