//! The volume engine: open a layer, then read any box at any mip into a caller's buffer, chunks
//! fetched and decoded in parallel, each writing its own part of the buffer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rayon::prelude::*;

use crate::cloudpath::CloudPath;
use crate::codec::{self, compression, ChunkSpec, OutView};
use crate::error::{Error, Result};
use crate::format::grid::chunk_key;
use crate::format::{Bbox, ChunkGrid, Info, Scale};
use crate::options::Options;
use crate::format::sharding::{morton_bits, ShardingSpec};
use crate::store::{self, Store};

mod points;
mod sharded;
mod write;

pub use write::{new_info, NewInfo};

/// Bytes of shard and minishard indices a handle keeps decoded.
const SHARD_CACHE_BYTES: usize = 128 << 20;

/// A counting semaphore: bounds how many chunks are decoded (and hold decoded buffers) at once,
/// while more requests than that may be in flight.
struct Permits {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Permits {
    fn new(n: usize) -> Permits {
        Permits { free: Mutex::new(n.max(1)), cv: Condvar::new() }
    }
    fn acquire(&self) -> PermitGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        PermitGuard(self)
    }
}

struct PermitGuard<'a>(&'a Permits);

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

/// Chunk-sized byte buffers reused across the chunks of a handle's reads, so that a cutout
/// does not allocate (and fragment the heap with) a fresh buffer per chunk.
struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl BufferPool {
    fn take(&self) -> Vec<u8> {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default()
    }
    fn give(&self, mut v: Vec<u8>) {
        v.clear();
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < self.keep && v.capacity() <= 256 << 20 {
            free.push(v);
        }
    }
    /// Release every pooled buffer (after a cutout: an idle handle holds no chunk memory).
    fn release(&self) {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// An open Precomputed layer. Thread-safe: many threads may read through one `Volume` at once.
pub struct Volume {
    path: CloudPath,
    store: Arc<dyn Store>,
    info: Info,
    opts: Options,
    /// Dropped by hand in `Drop`, which then waits for its threads to be gone.
    pool: std::mem::ManuallyDrop<rayon::ThreadPool>,
    /// Worker threads alive (started and not yet exited).
    live_threads: Arc<(Mutex<usize>, Condvar)>,
    decode_permits: Permits,
    buffers: BufferPool,
    /// The sharding spec of each scale (None: unsharded).
    sharding: Vec<Option<ShardingSpec>>,
    shards: sharded::ShardCaches,
}

impl Drop for Volume {
    /// Stop the worker threads and wait (briefly) until they are gone, so that a host which
    /// unloads the library after `cv_free` (MATLAB's `clear mex`) never leaves a thread running
    /// its code. Idle threads exit at once; the wait is capped at 5 s.
    fn drop(&mut self) {
        // SAFETY: the pool is dropped exactly once, here, and not used afterwards.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.pool) };
        let (count, cv) = &*self.live_threads;
        let n = count.lock().unwrap_or_else(|p| p.into_inner());
        let _ = cv.wait_timeout_while(n, std::time::Duration::from_secs(5), |n| *n > 0);
    }
}

/// Parse and check the sharding spec of every scale (None: unsharded).
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

impl Volume {
    /// Open the layer at `cloudpath`: parse the path, fetch and validate its `info`.
    ///
    /// # Errors
    /// A bad path or option (`InvalidArgument`), no info (`NotFound`), an unreachable host
    /// (`Io`), an invalid info (`Decode`) or an unsupported one (`Unsupported`).
    pub fn open(cloudpath: &str, opts: Options) -> Result<Volume> {
        let path = CloudPath::parse(cloudpath, &opts)?;
        let store = store::open(&path, &opts)?;
        let info_url = store.url("info");
        let obj = store
            .get("info")?
            .ok_or_else(|| Error::not_found(format!("{info_url}: no info file (is \"{cloudpath}\" a Precomputed layer?)")))?;
        let text = compression::decompress(obj, crate::format::info::MAX_INFO_BYTES, &info_url)?;
        let info = Info::parse(&text, &info_url)?;
        Self::with_info(path, store, info, opts)
    }

    fn with_info(path: CloudPath, store: Arc<dyn Store>, info: Info, opts: Options) -> Result<Volume> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = opts.parallel.unwrap_or_else(|| store.default_parallel()).max(1);
        // Counted from the start (rayon spawns every thread in `build`), so a drop racing the
        // threads' start still waits for them.
        let live_threads: Arc<(Mutex<usize>, Condvar)> = Arc::new((Mutex::new(threads), Condvar::new()));
        let down = live_threads.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("cloudvolume-{i}"))
            .exit_handler(move |_| {
                let mut n = down.0.lock().unwrap_or_else(|p| p.into_inner());
                *n = n.saturating_sub(1);
                down.1.notify_all();
            })
            .build()
            .map_err(|e| Error::internal(format!("cannot start {threads} worker threads: {e}")))?;
        let sharding = sharding_specs(&info, &store.url("info"))?;
        Ok(Volume {
            path,
            store,
            info,
            opts,
            pool: std::mem::ManuallyDrop::new(pool),
            live_threads,
            decode_permits: Permits::new(cores),
            buffers: BufferPool { free: Mutex::new(Vec::new()), keep: threads + cores },
            sharding,
            shards: sharded::ShardCaches::new(SHARD_CACHE_BYTES),
        })
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    /// Empty the handle's caches: the in-memory LRU and the layer's directory of the disk cache
    /// (cloud-volume's `cache.flush()`), plus the shard index caches.
    ///
    /// # Errors
    /// A cache directory that cannot be removed.
    pub fn clear_cache(&self) -> Result<()> {
        self.shards.clear();
        self.store.clear_cache()
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn cloudpath(&self) -> &str {
        &self.path.path
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

    /// Bytes a cutout of `bbox` takes: voxels x channels x element size.
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
        let out = OutView::strided(buf, *bbox, self.info.num_channels as usize, self.info.data_type.size(), byte_strides)?;
        self.cutout_view(mip, bbox, &out, None)
    }

    fn cutout_view(&self, mip: u32, bbox: &Bbox, out: &OutView<'_>, progress: Option<&AtomicUsize>) -> Result<()> {
        let scale = self.scale(mip)?;
        let grid = ChunkGrid::of(scale);
        let bounds = grid.bounds();
        if self.opts.bounded && !bounds.contains(bbox) {
            return Err(Error::out_of_bounds(format!(
                "{}: box {bbox} is outside the bounds {bounds} of mip {mip} (open with bounded=false to read past them)",
                self.path.path
            )));
        }
        let background = self.info.data_type.encode_scalar(self.opts.background_color);
        let inside = bounds.intersection(bbox);
        if inside != Some(*bbox) {
            // SAFETY: nothing else writes the buffer yet.
            unsafe { out.fill(bbox, &background) };
        }
        let Some(inside) = inside else { return Ok(()) };
        if matches!(scale.encoding, crate::format::Encoding::Compresso | crate::format::Encoding::Jxl) {
            return Err(Error::unsupported(format!(
                "{}: mip {mip} uses the {} encoding, which is not supported yet",
                self.path.path,
                scale.encoding.name()
            )));
        }
        if let Some(spec) = &self.sharding[mip as usize] {
            return self.retry_stale(|| self.read_sharded(mip, scale, spec, &inside, out, &background, progress));
        }
        let cells = grid.cells_in(&inside);
        let task = |cell: &[i64; 3]| -> Result<()> {
            let cell_box = grid.cell_bbox(*cell);
            let Some(region) = cell_box.intersection(&inside) else { return Ok(()) };
            self.read_chunk(scale, &cell_box, &region, out, &background)?;
            if let Some(p) = progress {
                p.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        };
        let r = if cells.len() == 1 {
            task(&cells[0])
        } else {
            self.pool.install(|| cells.par_iter().with_max_len(1).try_for_each(task))
        };
        self.buffers.release();
        r
    }

    /// Run `f`; when it finds a shard changed under its cached indices, drop the caches and run
    /// it once more. A second change is an I/O error.
    pub(crate) fn retry_stale<T>(&self, f: impl Fn() -> Result<T>) -> Result<T> {
        match f() {
            Err(e) if e.kind() == crate::error::ErrorKind::Stale => {
                self.shards.clear();
                f().map_err(|e| {
                    if e.kind() == crate::error::ErrorKind::Stale {
                        Error::io(format!("{} (the shard kept changing while being read)", e.message()))
                    } else {
                        e
                    }
                })
            }
            r => r,
        }
    }

    /// What a codec needs to decode a chunk of `scale` covering `cell`.
    pub(crate) fn chunk_spec<'a>(&self, scale: &Scale, cell: Bbox, url: &'a str) -> ChunkSpec<'a> {
        ChunkSpec {
            encoding: scale.encoding,
            dtype: self.info.data_type,
            channels: self.info.num_channels as usize,
            cell,
            cseg_block: scale.cseg_block_size,
            url,
        }
    }

    /// Fetch one chunk and write its part `region` into `out`.
    fn read_chunk(&self, scale: &Scale, cell: &Bbox, region: &Bbox, out: &OutView<'_>, background: &[u8]) -> Result<()> {
        let key = chunk_key(&scale.key, cell);
        let url = self.store.url(&key);
        let mut body = self.buffers.take();
        let encoding = match self.store.get_into(&key, &mut body)? {
            Some(e) if !body.is_empty() => e,
            // cloud-volume treats zero-byte chunks as missing.
            _ => {
                self.buffers.give(body);
                if self.opts.fill_missing {
                    // SAFETY: each chunk writes its own region.
                    unsafe { out.fill(region, background) };
                    return Ok(());
                }
                return Err(Error::not_found(format!(
                    "{url}: chunk missing (open with fill_missing=true to read it as background)"
                )));
            }
        };
        let _permit = self.decode_permits.acquire();
        let spec = self.chunk_spec(scale, *cell, &url);
        let mut decoded = self.buffers.take();
        let r = compression::decompress_into(&body, encoding, &mut decoded, spec.payload_limit(), &url).and_then(|inflated| {
            let data: &[u8] = if inflated { &decoded } else { &body };
            codec::decode_into(&spec, data, region, out)
        });
        self.buffers.give(decoded);
        self.buffers.give(body);
        r
    }
}

impl Volume {
    /// How many chunks a cutout of `bbox` at `mip` touches (for progress reporting).
    pub fn chunk_count(&self, mip: u32, bbox: &Bbox) -> Result<usize> {
        let grid = ChunkGrid::of(self.scale(mip)?);
        Ok(grid.bounds().intersection(bbox).map_or(0, |b| grid.cells_in(&b).len()))
    }
}
