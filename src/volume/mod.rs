//! The volume layer: an open layer ([`Volume`]) reads and writes any box at any mip through
//! the read interface of each scale ([`ScaleIo`]), after the checks that are the same for
//! every scale: the mip, the box, the buffer, the bounds, background outside the volume.
//!
//! - `io.rs`: the [`ScaleIo`] trait (read_box, read_points, chunks_exist, write_box, ...);
//! - `precomputed/`: its Precomputed implementations (chunk files, shards);
//! - `graphene.rs`: `graphene://` layers (supervoxels from the Precomputed readers, mapped to
//!   roots by the chunkedgraph server);
//! - `dvid.rs`: DVID data instances (`dvid://`), a service answering boxes;
//! - `boss.rs`: BOSS channels (`boss://`), likewise; `ocp.rs`: OCP/ndstore projects (`ocp://`);
//! - `labels.rs`: label operations (unique, masks, point boxes) over any source;
//! - `aligned.rs`: aligned image + segmentation cutouts over two volumes;
//! - `objects/`: meshes and skeletons of segmentation layers;
//! - `engine.rs`: the handle's thread pool, decode permits and buffers.

pub mod aligned;
mod boss;
mod dvid;
mod engine;
mod graphene;
pub mod io;
pub mod labels;
pub mod objects;
mod ocp;
mod precomputed;
mod service;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::cloudpath::CloudPath;
use crate::codec::{compression, OutView};
use crate::error::{Error, Result};
use crate::format::create::{self, AddedScale};
use crate::format::{Bbox, ContentEncoding, Info, Scale};
use crate::options::Options;
use crate::store::{self, Store};

pub use crate::format::create::{new_info, NewInfo};
pub use dvid::create_repo as create_dvid_repo;
pub use io::ScaleIo;

/// An open layer. Thread-safe: many threads may read through one `Volume` at once.
pub struct Volume {
    path: CloudPath,
    source: Source,
    info: Info,
    opts: Options,
    /// The read interface of each mip. They share the handle's engine, whose drop (with the
    /// last scale's) waits for the worker threads, so `cv_free` leaves none running.
    scales: Vec<Box<dyn ScaleIo>>,
    /// Meshes and skeletons (Precomputed layers only).
    objects: Option<objects::Objects>,
}

/// What a handle reads from, beyond its scales' readers: where its info lives.
pub(crate) enum Source {
    /// A Precomputed layer: its info and chunks in a store.
    Precomputed(Arc<dyn Store>),
    /// A `graphene://` layer: its info belongs to the chunkedgraph server (read-only), its
    /// supervoxels to the store of `data_dir`.
    Graphene(Arc<dyn Store>),
    /// A volume service answering boxes (DVID, the BOSS, ndstore): its metadata mapped onto an info.
    Service(&'static str),
}

impl Source {
    fn store(&self) -> Option<&Arc<dyn Store>> {
        match self {
            Source::Precomputed(s) | Source::Graphene(s) => Some(s),
            Source::Service(_) => None,
        }
    }
}

impl Volume {
    /// Open the layer at `cloudpath`: parse the path, fetch and validate its `info`.
    ///
    /// # Errors
    /// A bad path or option (`InvalidArgument`), no info (`NotFound`), an unreachable host
    /// (`Io`), an invalid info (`Decode`) or an unsupported one (`Unsupported`).
    pub fn open(cloudpath: &str, opts: Options) -> Result<Volume> {
        if cloudpath.trim_start().starts_with("graphene://") {
            return graphene::open(cloudpath, opts);
        }
        if cloudpath.trim_start().starts_with("dvid://") {
            return dvid::open(cloudpath, opts);
        }
        if cloudpath.trim_start().starts_with("boss://") {
            return boss::open(cloudpath, opts);
        }
        if cloudpath.trim_start().starts_with("ocp://") {
            return ocp::open(cloudpath, opts);
        }
        let path = CloudPath::parse(cloudpath, &opts.store)?;
        let store = store::open(&path, &opts.store)?;
        let info_url = store.url("info");
        let max = crate::format::info::MAX_INFO_BYTES;
        let mut bytes = Vec::new();
        let encoding =
            store.get_into("info", &mut bytes, Some(compression::stored_bound(max) as u64))?.ok_or_else(|| {
                Error::not_found(format!("{info_url}: no info file (is \"{cloudpath}\" a Precomputed layer?)"))
            })?;
        let text = compression::decompress(compression::Object { bytes, encoding }, max, &info_url)?;
        let info = Info::parse(&text, &info_url)?;
        Self::with_info(path, store, info, opts)
    }

    fn with_info(path: CloudPath, store: Arc<dyn Store>, info: Info, opts: Options) -> Result<Volume> {
        let threads = opts.store.parallel.unwrap_or_else(|| store.default_parallel());
        let engine = Arc::new(engine::Engine::new(
            threads,
            opts.store.parallel.unwrap_or_else(|| store.default_fetches()),
            opts.store.max_inflight_bytes,
        )?);
        let scales = precomputed::scales(&info, &store, &engine, &opts, &path)?;
        let objects = Some(objects::Objects::new(store.clone(), engine, &info));
        Ok(Volume { path, source: Source::Precomputed(store), info, opts, scales, objects })
    }

    /// Create a layer: validate `info_json`, write it (refused when an info exists, unless the
    /// option `overwrite`), and open it.
    ///
    /// # Errors
    /// An invalid info (`Decode`/`Unsupported`), an existing info without `overwrite`
    /// (`InvalidArgument`), I/O errors.
    pub fn create(cloudpath: &str, info_json: &str, opts: Options) -> Result<Volume> {
        if cloudpath.trim_start().starts_with("dvid://") {
            return dvid::create(cloudpath, info_json, opts);
        }
        if cloudpath.trim_start().starts_with("graphene://") {
            return Err(Error::unsupported(format!(
                "{cloudpath}: graphene layers are created by the chunkedgraph server, not here"
            )));
        }
        if cloudpath.trim_start().starts_with("ocp://") {
            return Err(Error::unsupported(format!(
                "{cloudpath}: creating an ndstore project is not supported (ndstore's admin tools create them); open an existing one to write it"
            )));
        }
        if cloudpath.trim_start().starts_with("boss://") {
            return Err(Error::unsupported(format!(
                "{cloudpath}: BOSS channels are created with the BOSS's own tools (intern's create_project); \
                 open an existing channel to write it"
            )));
        }
        let path = CloudPath::parse(cloudpath, &opts.store)?;
        let store = store::open(&path, &opts.store)?;
        let info_url = store.url("info");
        let info = Info::parse(info_json.as_bytes(), &info_url)?;
        precomputed::sharded::sharding_specs(&info, &info_url)?;
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
        if !opts.write.overwrite && store.exists("info")? {
            return Err(Error::invalid(format!(
                "{info_url}: an info already exists (open with {{\"overwrite\": true}} to replace it)"
            )));
        }
        Self::write_info(&*store, &info)?;
        Self::with_info(path, store, info, opts)
    }

    fn write_info(store: &dyn Store, info: &Info) -> Result<()> {
        let text = serde_json::to_vec_pretty(&info.json).map_err(|e| Error::internal(e.to_string()))?;
        store.put("info", &text, ContentEncoding::Identity, "application/json")
    }

    /// Add a scale downsampled from mip 0 by `factor` (resolution x factor, voxel_offset
    /// floored, size rounded up), with `chunk_size` (default: mip 0's) and mip 0's encoding,
    /// write the info, and return a handle on the new info with the scale's mip. An existing
    /// scale with the same resolution is kept (its mip is returned). No voxels are written.
    ///
    /// # Errors
    /// A factor below 1, I/O errors.
    pub fn add_scale(&self, factor: [i64; 3], chunk_size: Option<[i64; 3]>) -> Result<(Volume, u32)> {
        let store = match &self.source {
            Source::Precomputed(s) => s,
            Source::Graphene(_) => {
                return Err(Error::unsupported(format!(
                    "{}: graphene layers cannot be written (no scales can be added)",
                    self.path.path
                )))
            }
            Source::Service(name) => {
                return Err(Error::unsupported(format!(
                    "{}: {name} keeps its own scales; add_scale writes Precomputed infos only",
                    self.path.path
                )))
            }
        };
        let (info, mip) = match create::add_scale(&self.info, factor, chunk_size, &store.url("info"))? {
            AddedScale::Existing(mip) => (self.info.clone(), mip),
            AddedScale::New(info, mip) => {
                Self::write_info(&**store, &info)?;
                (info, mip)
            }
        };
        Ok((Self::with_info(self.path.clone(), store.clone(), info, self.opts.clone())?, mip))
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn cloudpath(&self) -> &str {
        &self.path.path
    }

    /// Empty the handle's caches: the in-memory LRU and the layer's directory of the disk cache
    /// (cloud-volume's `cache.flush()`), plus the shard index caches.
    ///
    /// # Errors
    /// A cache directory that cannot be removed.
    pub fn clear_cache(&self) -> Result<()> {
        self.scales.iter().for_each(|s| s.clear_cache());
        match self.source.store() {
            Some(s) => s.clear_cache(),
            None => Ok(()),
        }
    }

    /// The scale at `mip`, or an `InvalidArgument` naming the number of mips.
    pub fn scale(&self, mip: u32) -> Result<&Scale> {
        self.info.scales.get(mip as usize).ok_or_else(|| {
            Error::invalid(format!(
                "{}: mip {mip} does not exist (the layer has {} mip(s))",
                self.path.path,
                self.info.scales.len()
            ))
        })
    }

    /// The read interface of `mip`.
    fn io(&self, mip: u32) -> Result<&dyn ScaleIo> {
        self.scale(mip)?;
        Ok(self.scales[mip as usize].as_ref())
    }

    /// Bytes a cutout of `bbox` takes: voxels x channels x element size.
    ///
    /// # Errors
    /// An empty or inverted box, or one too large to address (`InvalidArgument`).
    pub fn cutout_len(&self, bbox: &Bbox) -> Result<usize> {
        if bbox.is_empty() {
            return Err(Error::invalid(format!("box {bbox} is empty or inverted (need lo < hi on every axis)")));
        }
        bbox.voxels()
            .and_then(|v| v.checked_mul(u64::from(self.info.num_channels)))
            .and_then(|v| v.checked_mul(self.info.data_type.size() as u64))
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| Error::invalid(format!("box {bbox} is too large to read into memory")))
    }

    /// Read `bbox` at `mip` into a new buffer (Fortran order `[x, y, z, c]`).
    ///
    /// # Errors
    /// As [`Volume::cutout_into`].
    pub fn cutout(&self, mip: u32, bbox: &Bbox) -> Result<Vec<u8>> {
        let n = self.cutout_len(bbox)?;
        let mut buf = vec![0u8; n];
        self.cutout_into(mip, bbox, &mut buf, None)?;
        Ok(buf)
    }

    /// Read `bbox` at `mip` into `buf`, which must be exactly [`Volume::cutout_len`] bytes.
    /// `progress`, when given, counts the chunks done (for progress bars).
    ///
    /// # Errors
    /// A bad box or buffer (`InvalidArgument`), a box leaving the volume while `bounded`
    /// (`OutOfBounds`), a missing chunk without `fill_missing` (`NotFound`), I/O and decode errors.
    pub fn cutout_into(&self, mip: u32, bbox: &Bbox, buf: &mut [u8], progress: Option<&AtomicUsize>) -> Result<()> {
        self.scale(mip)?;
        let want = self.cutout_len(bbox)?;
        if buf.len() != want {
            let s = bbox.shape();
            return Err(Error::invalid(format!(
                "buffer of {} bytes for box {bbox}: expected {want} ({}x{}x{} voxels x {} channel(s) x {} bytes)",
                buf.len(),
                s[0],
                s[1],
                s[2],
                self.info.num_channels,
                self.info.data_type.size()
            )));
        }
        let out = OutView::new(buf, *bbox, self.info.num_channels as usize, self.info.data_type.size());
        self.cutout_view(mip, bbox, &out, progress)
    }

    /// Read `bbox` at `mip` into `buf` laid out by `byte_strides` (the byte step along x, y, z
    /// and channel; positive, elements not overlapping, all inside `buf`): C order, a sub-view
    /// of a larger array, or any other layout, with no copy in between.
    ///
    /// # Errors
    /// As for [`Volume::cutout_into`]; bad strides are `InvalidArgument`.
    pub fn cutout_into_strided(&self, mip: u32, bbox: &Bbox, buf: &mut [u8], byte_strides: [i64; 4]) -> Result<()> {
        self.scale(mip)?;
        self.cutout_len(bbox)?;
        let out =
            OutView::strided(buf, *bbox, self.info.num_channels as usize, self.info.data_type.size(), byte_strides)?;
        self.cutout_view(mip, bbox, &out, None)
    }

    /// With `bounded`, refuse a box that leaves the bounds of `mip`.
    fn check_bounded(&self, mip: u32, bbox: &Bbox) -> Result<()> {
        let bounds = self.scale(mip)?.bounds();
        if self.opts.read.bounded && !bounds.contains(bbox) {
            return Err(Error::out_of_bounds(format!(
                "{}: box {bbox} is outside the bounds {bounds} of mip {mip} (open with bounded=false to read past them)",
                self.path.path
            )));
        }
        Ok(())
    }

    fn cutout_view(&self, mip: u32, bbox: &Bbox, out: &OutView<'_>, progress: Option<&AtomicUsize>) -> Result<()> {
        let io = self.io(mip)?;
        let bounds = self.scale(mip)?.bounds();
        self.check_bounded(mip, bbox)?;
        // A service answers any box (what was never written reads as its background), and its
        // extents can grow after the handle opened: the whole box goes to it.
        let inside = if matches!(self.source, Source::Service(_)) { Some(*bbox) } else { bounds.intersection(bbox) };
        if inside != Some(*bbox) {
            let background = self.info.data_type.encode_scalar(self.opts.read.background_color);
            // SAFETY: nothing else writes the buffer yet.
            unsafe { out.fill(bbox, &background) };
        }
        match inside {
            Some(inside) => io.read_box(&inside, out, progress),
            None => Ok(()),
        }
    }

    /// How many chunks a cutout of `bbox` at `mip` touches (for progress reporting).
    ///
    /// # Errors
    /// An unknown mip.
    pub fn chunk_count(&self, mip: u32, bbox: &Bbox) -> Result<usize> {
        let io = self.io(mip)?;
        Ok(self.scale(mip)?.bounds().intersection(bbox).map_or(0, |b| io.work_units(&b)))
    }

    /// Read `points` (absolute voxel coordinates at `mip`), every channel of each, into `out`:
    /// point after point, channel after channel, elements little-endian. Each distinct chunk is
    /// fetched once.
    ///
    /// # Errors
    /// A wrong `out` length (`InvalidArgument`), a point outside the volume while `bounded`
    /// (`OutOfBounds`), a missing chunk without `fill_missing` (`NotFound`), I/O and decode errors.
    pub fn scattered_points(&self, mip: u32, points: &[[i64; 3]], out: &mut [u8]) -> Result<()> {
        let io = self.io(mip)?;
        let bounds = self.scale(mip)?.bounds();
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
        let background = self.info.data_type.encode_scalar(self.opts.read.background_color);
        let mut inside: Vec<usize> = Vec::with_capacity(points.len());
        for (i, p) in points.iter().enumerate() {
            let b = Bbox::new(*p, [p[0].saturating_add(1), p[1].saturating_add(1), p[2].saturating_add(1)]);
            if !b.is_empty() && bounds.contains(&b) {
                inside.push(i);
            } else if self.opts.read.bounded {
                return Err(Error::out_of_bounds(format!(
                    "{}: point {i} at {p:?} is outside the bounds {bounds} of mip {mip}",
                    self.path.path
                )));
            } else {
                out[i * per_point..(i + 1) * per_point].copy_from_slice(&background.repeat(nc));
            }
        }
        if inside.len() == points.len() {
            return io.read_points(points, out);
        }
        let some: Vec<[i64; 3]> = inside.iter().map(|&i| points[i]).collect();
        let mut got = vec![0u8; some.len() * per_point];
        io.read_points(&some, &mut got)?;
        for (k, &i) in inside.iter().enumerate() {
            out[i * per_point..(i + 1) * per_point].copy_from_slice(&got[k * per_point..(k + 1) * per_point]);
        }
        Ok(())
    }

    /// The grid cells of `bbox` (clipped to the bounds), x fastest, each with whether its
    /// chunk is stored. Unsharded: one HEAD (or stat) per chunk; sharded: index look-ups.
    ///
    /// # Errors
    /// An empty box (`InvalidArgument`), I/O errors.
    pub fn chunks_exist(&self, mip: u32, bbox: &Bbox) -> Result<Vec<(Bbox, bool)>> {
        let io = self.io(mip)?;
        if bbox.is_empty() {
            return Err(Error::invalid(format!("box {bbox} is empty or inverted (need lo < hi on every axis)")));
        }
        match self.scale(mip)?.bounds().intersection(bbox) {
            Some(inside) => io.chunks_exist(&inside),
            None => Ok(Vec::new()),
        }
    }

    /// Whether the scale `mip` appears to hold data, as cloud-volume's `image.has_data(mip)`
    /// decides: whether any object's key starts with the scale's key (one listing request on
    /// S3 and GCS, a directory walk that stops at the first file on file://). An empty
    /// directory, or a scale whose info was added but nothing written, holds none. As in
    /// cloud-volume the key is a bare prefix: "8_8_40" also finds the objects of a scale
    /// "8_8_400", or a file "8_8_40.json". Graphene layers ask their `data_dir`.
    ///
    /// # Errors
    /// A mip the layer lacks (`InvalidArgument`); a store that cannot list (plain HTTP:
    /// `Unsupported`); refused credentials (`Auth`); I/O errors.
    pub fn has_data(&self, mip: u32) -> Result<bool> {
        let key = &self.scale(mip)?.key;
        let Some(store) = self.source.store() else {
            return self.io(mip)?.has_data();
        };
        let found =
            store.first_under(key).map_err(|e| e.context(format!("{}: has_data of mip {mip}", self.path.path)))?;
        Ok(found.is_some())
    }

    /// The stored chunk files meeting `bbox` at `mip` (cloud-volume's `download_files`): each
    /// named by its key (unsharded) or its compressed Morton code (sharded), with gzip, brotli
    /// or zstd removed when `decompress`; missing chunks left out. The box is checked against
    /// the bounds as a cutout's is.
    ///
    /// # Errors
    /// A bad box, a box leaving the bounds while `bounded`, I/O errors.
    pub fn download_files(&self, mip: u32, bbox: &Bbox, decompress: bool) -> Result<Vec<(String, Vec<u8>)>> {
        let io = self.io(mip)?;
        self.cutout_len(bbox)?;
        self.check_bounded(mip, bbox)?;
        match self.scale(mip)?.bounds().intersection(bbox) {
            Some(inside) => io.chunk_files(&inside, decompress),
            None => Ok(Vec::new()),
        }
    }

    /// Check a write or delete of `bbox` at `mip`: the buffer length, the bounds.
    fn check_write_box(&self, mip: u32, bbox: &Bbox, len: usize, verb: &str) -> Result<&dyn ScaleIo> {
        let io = self.io(mip)?;
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
        let bounds = self.scale(mip)?.bounds();
        // A service's extents grow as it is written.
        if !bounds.contains(bbox) && !matches!(self.source, Source::Service(_)) {
            return Err(Error::out_of_bounds(format!(
                "{}: cannot {verb} box {bbox}: it leaves the bounds {bounds} of mip {mip}",
                self.path.path
            )));
        }
        Ok(io)
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
        self.check_write_box(mip, bbox, buf.len(), "write")?.write_box(bbox, buf)
    }

    /// Delete the chunks of an aligned box (unsharded scales).
    ///
    /// # Errors
    /// A box off the grid or leaving the volume, a sharded scale, I/O errors.
    pub fn delete_box(&self, mip: u32, bbox: &Bbox) -> Result<()> {
        let len = self.cutout_len(bbox)?;
        self.check_write_box(mip, bbox, len, "delete")?.delete_box(bbox)
    }
}
