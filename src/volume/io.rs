//! The read (and write) interface of the volume layer: what a handle reads and writes one scale
//! through. [`crate::Volume`] does what is the same for every scale and source — argument and
//! buffer checks, bounds, background outside the volume — and hands each scale only boxes
//! inside its bounds.
//!
//! Implementations: the Precomputed readers (`precomputed::ChunkScale` over chunk files or
//! over shards), and, for services that answer whole boxes (DVID, BOSS, OCP), a reader that
//! fetches the box from the service and copies it into the view.

use std::sync::atomic::AtomicUsize;

use super::labels::{count_bytes, Counts};
use crate::codec::OutView;
use crate::error::{Error, Result};
use crate::format::Bbox;

/// One scale of an open layer.
pub trait ScaleIo: Send + Sync {
    /// Read `region` (inside the scale's bounds) into `out`, adding each unit of work done
    /// (a chunk) to `progress`.
    ///
    /// # Errors
    /// Missing data without `fill_missing` (`NotFound`), I/O and decode errors, an encoding
    /// that cannot be read (`Unsupported`).
    fn read_box(&self, region: &Bbox, out: &OutView<'_>, progress: Option<&AtomicUsize>) -> Result<()>;

    /// Read the voxels at `points` (each inside the bounds), every channel, into `out`: point
    /// after point, channel after channel, little-endian elements; `out` holds exactly that.
    ///
    /// # Errors
    /// As [`ScaleIo::read_box`].
    fn read_points(&self, points: &[[i64; 3]], out: &mut [u8]) -> Result<()>;

    /// The storage units (chunks) meeting `region` (inside the bounds), x fastest, each with
    /// whether it is stored.
    ///
    /// # Errors
    /// I/O errors.
    fn chunks_exist(&self, region: &Bbox) -> Result<Vec<(Bbox, bool)>>;

    /// How many units of work (chunks) a read of `region` (inside the bounds) takes: the
    /// total its progress counts up to.
    fn work_units(&self, region: &Bbox) -> usize;

    /// Write `region` (inside the bounds) from `buf`, planar Fortran order `[x, y, z, c]`
    /// covering exactly `region`. Default: read-only.
    ///
    /// # Errors
    /// A region the scale cannot take (`InvalidArgument`, naming why), I/O errors; a read-only
    /// source (`Unsupported`).
    fn write_box(&self, region: &Bbox, buf: &[u8]) -> Result<()> {
        let _ = buf;
        Err(Error::unsupported(format!("box {region}: this source is read-only")))
    }

    /// Delete the stored data of `region` (inside the bounds). Default: read-only.
    ///
    /// # Errors
    /// As [`ScaleIo::write_box`].
    fn delete_box(&self, region: &Bbox) -> Result<()> {
        Err(Error::unsupported(format!("box {region}: this source is read-only")))
    }

    /// The labels of `region` (inside the bounds) with their voxel counts over every one of
    /// `channels` channels of `item`-byte labels. Default: read the region a few z-slices at a
    /// time (at most about 64 MiB each) and count them.
    ///
    /// # Errors
    /// As [`ScaleIo::read_box`].
    fn label_counts(&self, region: &Bbox, channels: usize, item: usize) -> Result<Counts> {
        let shape = region.shape();
        let slice = (shape[0] * shape[1]) as usize * channels * item;
        let step = ((64usize << 20) / slice.max(1)).max(1) as i64;
        let mut counts = Counts::default();
        let mut buf = Vec::new();
        let mut z = region.lo[2];
        while z < region.hi[2] {
            let part =
                Bbox::new([region.lo[0], region.lo[1], z], [region.hi[0], region.hi[1], (z + step).min(region.hi[2])]);
            buf.clear();
            buf.resize(part.voxels().unwrap_or(0) as usize * channels * item, 0);
            self.read_box(&part, &OutView::new(&mut buf, part, channels, item), None)?;
            count_bytes(&buf, item, &mut counts);
            z = part.hi[2];
        }
        Ok(counts)
    }

    /// The stored files of the chunks meeting `region` (inside the bounds), in x-fastest cell
    /// order, each named as cloud-volume's `download_files` names it (the chunk key, or the
    /// compressed Morton code in a sharded scale), with their content encoding removed when
    /// `decompress`; missing chunks are left out. Default: this source has no chunk files.
    ///
    /// # Errors
    /// I/O errors, corrupt compression; `Unsupported` for sources without chunk files.
    fn chunk_files(&self, region: &Bbox, decompress: bool) -> Result<Vec<(String, Vec<u8>)>> {
        let _ = decompress;
        Err(Error::unsupported(format!("box {region}: this source stores no chunk files")))
    }

    /// Whether the scale holds any data, for sources without a store to list (services).
    /// Default: unsupported.
    ///
    /// # Errors
    /// `Unsupported`; a service's I/O errors.
    fn has_data(&self) -> Result<bool> {
        Err(Error::unsupported("this source cannot say whether a scale holds data"))
    }

    /// Drop what the scale keeps cached (indices). Default: nothing.
    fn clear_cache(&self) {}
}
