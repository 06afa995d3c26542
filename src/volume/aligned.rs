//! Aligned image + segmentation cutouts (ImageryClient's `image_and_segmentation_cutout`): one
//! box, given in voxels of a stated resolution, read from an image layer and a segmentation
//! layer (any mix of Precomputed and graphene, each at its own mip) and returned on one grid.
//!
//! The grid is ImageryClient's: the finer of the two mips when their resolutions differ (the
//! image's when neither is finer on every axis), or the requested resolution itself with
//! `scale_to_bounds`. A layer on a different resolution is resampled by nearest neighbour by
//! physical position: output voxel `i` (on a grid of resolution `r`) takes the source voxel that
//! contains its centre, `(i + 1/2) r`, a tie going to the lower one; so a layer twice as coarse
//! repeats each voxel twice from its own grid's origin, whatever the box's parity.

use rayon::prelude::*;

use super::labels::{label_at, label_item, IdMap};
use super::Volume;
use crate::error::{Error, Result};
use crate::format::Bbox;

/// What to read: the box, its resolution and the mips.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlignedRequest {
    /// The box, in voxels of `resolution`, half-open.
    pub bounds: Bbox,
    /// nm per voxel of `bounds`; `None`: the image's resolution at its mip.
    pub resolution: Option<[f64; 3]>,
    /// `None`: the lowest mip whose key is not `"placeholder"`.
    pub image_mip: Option<u32>,
    pub segmentation_mip: Option<u32>,
    /// Keep only these labels (after agglomeration on graphene); the rest become 0. `None`
    /// keeps every label.
    pub root_ids: Option<Vec<u64>>,
    /// Put the output on the grid of `resolution` over exactly `bounds`.
    pub scale_to_bounds: bool,
}

/// The output grid of a request, and what each layer reads for it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlignedGrid {
    /// nm per output voxel.
    pub resolution: [f64; 3],
    /// The output box, in voxels of `resolution`.
    pub bbox: Bbox,
    pub image_mip: u32,
    pub segmentation_mip: u32,
    /// The boxes read, in voxels of each layer's mip.
    pub image_box: Bbox,
    pub segmentation_box: Bbox,
}

impl AlignedGrid {
    /// Output voxels (x, y, z).
    pub fn shape(&self) -> [usize; 3] {
        let s = self.bbox.shape();
        [s[0] as usize, s[1] as usize, s[2] as usize]
    }

    pub fn voxels(&self) -> usize {
        self.shape().iter().product()
    }
}

/// An aligned pair: `image` in the image layer's type and channels and `segmentation` as
/// uint64, both Fortran order over `grid.bbox`.
#[derive(Debug, Clone)]
pub struct AlignedCutout {
    pub grid: AlignedGrid,
    pub image: Vec<u8>,
    pub segmentation: Vec<u64>,
}

/// The default mip of a layer: the lowest whose key is not `"placeholder"` (ImageryClient).
pub fn default_mip(vol: &Volume) -> Result<u32> {
    vol.info()
        .scales
        .iter()
        .position(|s| s.key != "placeholder")
        .map(|m| m as u32)
        .ok_or_else(|| Error::invalid(format!("{}: every mip is labelled \"placeholder\"", vol.cloudpath())))
}

/// `[center - size/2, center - size/2 + size)` with `size/2` rounded down (ImageryClient's
/// `bounds_from_center`).
pub fn bounds_from_center(center: [i64; 3], size: [i64; 3]) -> Bbox {
    let lo = [0, 1, 2].map(|d| center[d] - size[d].div_euclid(2));
    Bbox::new(lo, [0, 1, 2].map(|d| lo[d] + size[d]))
}

/// The source index (on a grid of `r_src`) holding the centre of output voxel `i` (grid `r_out`).
fn source_index(i: i64, r_out: f64, r_src: f64) -> i64 {
    if r_out == r_src {
        return i;
    }
    let c = (2 * i + 1) as f64 * r_out / (2.0 * r_src);
    c.ceil() as i64 - 1
}

/// The box of a layer (resolution `r_src`) that output box `out` (resolution `r_out`) samples.
fn source_box(out: &Bbox, r_out: [f64; 3], r_src: [f64; 3]) -> Bbox {
    let lo = [0, 1, 2].map(|d| source_index(out.lo[d], r_out[d], r_src[d]));
    let hi = [0, 1, 2].map(|d| source_index(out.hi[d] - 1, r_out[d], r_src[d]) + 1);
    Bbox::new(lo, hi)
}

fn check_resolution(r: [f64; 3], what: &str) -> Result<()> {
    if r.iter().all(|v| v.is_finite() && *v > 0.0) {
        Ok(())
    } else {
        Err(Error::invalid(format!("{what} {r:?} must be positive and finite")))
    }
}

/// The output grid of `req` over `image` and `seg`, and the boxes each reads.
///
/// # Errors
/// A missing mip, a bad resolution, a box that is empty at the output resolution, a
/// segmentation layer that is not uint32/uint64 (`InvalidArgument`).
pub fn aligned_grid(image: &Volume, seg: &Volume, req: &AlignedRequest) -> Result<AlignedGrid> {
    let im = match req.image_mip {
        Some(m) => m,
        None => default_mip(image)?,
    };
    let sm = match req.segmentation_mip {
        Some(m) => m,
        None => default_mip(seg)?,
    };
    label_item(seg.info().data_type, seg.cloudpath())?;
    let ri = image.scale(im)?.resolution;
    let rs = seg.scale(sm)?.resolution;
    let res = req.resolution.unwrap_or(ri);
    check_resolution(res, "resolution")?;
    check_resolution(ri, "image resolution")?;
    check_resolution(rs, "segmentation resolution")?;
    if req.bounds.is_empty() {
        return Err(Error::invalid(format!("box {} is empty or inverted (need lo < hi on every axis)", req.bounds)));
    }
    let (r_out, bbox) = if req.scale_to_bounds {
        (res, req.bounds)
    } else {
        // ImageryClient's choice: equal, the segmentation's when the image is coarser (or
        // equal) on every axis, else the image's.
        let r = if (0..3).all(|d| ri[d] >= rs[d]) { rs } else { ri };
        // cloud-volume's download(coord_resolution=): lo / (r / res), truncated.
        let conv = |v: i64, d: usize| (v as f64 / (r[d] / res[d])) as i64;
        let b = Bbox::new([0, 1, 2].map(|d| conv(req.bounds.lo[d], d)), [0, 1, 2].map(|d| conv(req.bounds.hi[d], d)));
        (r, b)
    };
    if bbox.is_empty() {
        return Err(Error::invalid(format!(
            "box {} at resolution {res:?} is less than one voxel at {r_out:?}",
            req.bounds
        )));
    }
    Ok(AlignedGrid {
        resolution: r_out,
        bbox,
        image_mip: im,
        segmentation_mip: sm,
        image_box: source_box(&bbox, r_out, ri),
        segmentation_box: source_box(&bbox, r_out, rs),
    })
}

/// Per-axis source offsets (relative to `src`) of each output voxel.
fn index_tables(grid: &AlignedGrid, src: &Bbox, r_src: [f64; 3]) -> [Vec<usize>; 3] {
    [0, 1, 2].map(|d| {
        (grid.bbox.lo[d]..grid.bbox.hi[d])
            .map(|i| (source_index(i, grid.resolution[d], r_src[d]) - src.lo[d]) as usize)
            .collect()
    })
}

/// Whether a layer read over `src_box` at `r_src` is already the output grid.
fn is_grid(src_box: &Bbox, r_src: [f64; 3], grid: &AlignedGrid) -> bool {
    *src_box == grid.bbox && r_src == grid.resolution
}

/// Resample `src` (Fortran order over `src_box`, `item`-byte elements, `channels`) onto `grid`
/// into `out` (exactly the grid's voxels x channels x item bytes).
fn resample_into(
    src: &[u8],
    src_box: &Bbox,
    r_src: [f64; 3],
    grid: &AlignedGrid,
    channels: usize,
    item: usize,
    out: &mut [u8],
) {
    let [tx, ty, tz] = index_tables(grid, src_box, r_src);
    let ss = src_box.shape();
    let (sx, sy, sz) = (ss[0] as usize, ss[1] as usize, ss[2] as usize);
    let [ox, oy, oz] = grid.shape();
    debug_assert_eq!(out.len(), ox * oy * oz * channels * item);
    // One plane (z, c) per task.
    out.par_chunks_mut(ox * oy * item).enumerate().for_each(|(p, plane)| {
        let (z, c) = (p % oz, p / oz);
        let base = (c * sz + tz[z]) * sy;
        for (y, row) in plane.chunks_exact_mut(ox * item).enumerate() {
            let srow = &src[(base + ty[y]) * sx * item..][..sx * item];
            for (x, e) in row.chunks_exact_mut(item).enumerate() {
                e.copy_from_slice(&srow[tx[x] * item..][..item]);
            }
        }
    });
}

#[cfg(test)]
fn resample(src: &[u8], src_box: &Bbox, r_src: [f64; 3], grid: &AlignedGrid, channels: usize, item: usize) -> Vec<u8> {
    let mut out = vec![0u8; grid.voxels() * channels * item];
    resample_into(src, src_box, r_src, grid, channels, item, &mut out);
    out
}

/// Read `vol` over `src_box` at `mip` and place it on `grid` in `out`: straight into `out`
/// when the layer is already on the grid, else through one read of the source box.
fn read_onto(vol: &Volume, mip: u32, src_box: &Bbox, grid: &AlignedGrid, out: &mut [u8]) -> Result<()> {
    let r_src = vol.scale(mip)?.resolution;
    if is_grid(src_box, r_src, grid) {
        return vol.cutout_into(mip, src_box, out, None);
    }
    let raw = vol.cutout(mip, src_box)?;
    let info = vol.info();
    resample_into(&raw, src_box, r_src, grid, info.num_channels as usize, info.data_type.size(), out);
    Ok(())
}

/// The bytes of a uint64 slice (little-endian targets: the elements as they lie).
fn u64_bytes_mut(v: &mut [u64]) -> &mut [u8] {
    // SAFETY: u8 has no alignment or validity requirements; the length covers the same memory.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 8) }
}

/// Read the aligned pair of `req` into `image_out` (the image layer's type and channels over
/// the grid) and `seg_out` (uint64 over the grid), each skipped when `None`; returns the grid.
/// A layer already on the grid is read straight into its output.
///
/// # Errors
/// As [`aligned_grid`]; wrong output lengths (`InvalidArgument`); as [`Volume::cutout_into`]
/// for either read.
pub fn aligned_cutout_into(
    image: &Volume,
    seg: &Volume,
    req: &AlignedRequest,
    image_out: Option<&mut [u8]>,
    seg_out: Option<&mut [u64]>,
) -> Result<AlignedGrid> {
    let grid = aligned_grid(image, seg, req)?;
    let item = label_item(seg.info().data_type, seg.cloudpath())?;
    let n = grid.voxels();
    let img_len = n * image.info().num_channels as usize * image.info().data_type.size();
    if let Some(o) = &image_out {
        if o.len() != img_len {
            return Err(Error::invalid(format!(
                "image buffer of {} bytes for the aligned grid {}: expected {img_len}",
                o.len(),
                grid.bbox
            )));
        }
    }
    if let Some(o) = &seg_out {
        if o.len() != n {
            return Err(Error::invalid(format!(
                "segmentation buffer of {} elements for the aligned grid {}: expected {n}",
                o.len(),
                grid.bbox
            )));
        }
    }
    let seg_read = |out: &mut [u64]| -> Result<()> {
        let seg_res = seg.scale(grid.segmentation_mip)?.resolution;
        let direct = is_grid(&grid.segmentation_box, seg_res, &grid);
        if direct && item == 8 && seg.info().num_channels == 1 {
            seg.cutout_into(grid.segmentation_mip, &grid.segmentation_box, u64_bytes_mut(out), None)?;
            // The cutout's elements are little-endian.
            for v in out.iter_mut() {
                *v = u64::from_le(*v);
            }
        } else {
            // The first channel as uint64, then onto the grid.
            let raw = seg.cutout(grid.segmentation_mip, &grid.segmentation_box)?;
            let n_src = grid.segmentation_box.voxels().unwrap_or(0) as usize;
            let mut labels: Vec<u64> = (0..n_src).map(|i| label_at(&raw, item, i)).collect();
            drop(raw);
            if direct {
                out.copy_from_slice(&labels);
            } else {
                resample_into(
                    u64_bytes_mut(&mut labels),
                    &grid.segmentation_box,
                    seg_res,
                    &grid,
                    1,
                    8,
                    u64_bytes_mut(out),
                );
            }
        }
        if let Some(keep) = &req.root_ids {
            let keep: IdMap<()> = keep.iter().map(|&l| (l, ())).collect();
            let (mut last, mut hit) = (None, false);
            for v in out.iter_mut() {
                if last != Some(*v) {
                    last = Some(*v);
                    hit = keep.contains_key(v);
                }
                if !hit {
                    *v = 0;
                }
            }
        }
        Ok(())
    };
    let (a, b) = rayon::join(
        || image_out.map_or(Ok(()), |o| read_onto(image, grid.image_mip, &grid.image_box, &grid, o)),
        || seg_out.map_or(Ok(()), seg_read),
    );
    a?;
    b?;
    Ok(grid)
}

/// Read the aligned pair of `req` into new buffers.
///
/// # Errors
/// As [`aligned_cutout_into`].
pub fn aligned_cutout(image: &Volume, seg: &Volume, req: &AlignedRequest) -> Result<AlignedCutout> {
    let grid = aligned_grid(image, seg, req)?;
    let n = grid.voxels();
    let mut img = vec![0u8; n * image.info().num_channels as usize * image.info().data_type.size()];
    let mut segmentation = vec![0u64; n];
    let grid = aligned_cutout_into(image, seg, req, Some(&mut img), Some(&mut segmentation))?;
    Ok(AlignedCutout { grid, image: img, segmentation })
}

/// The distinct labels of `seg`, sorted, without 0 unless `include_zero`.
pub fn segment_ids(seg: &[u64], include_zero: bool) -> Vec<u64> {
    let mut seen = IdMap::<()>::default();
    let mut last = None;
    for &v in seg {
        if last != Some(v) {
            last = Some(v);
            seen.insert(v, ());
        }
    }
    let mut ids: Vec<u64> = seen.into_keys().filter(|&v| include_zero || v != 0).collect();
    ids.sort_unstable();
    ids
}

/// One 0/1 mask per id of `ids`, back to back in `out` (`ids.len() * seg.len()` bytes):
/// ImageryClient's `split_segmentation_cutout`.
///
/// # Errors
/// A wrong `out` length (`InvalidArgument`).
pub fn split_masks_into(seg: &[u64], ids: &[u64], out: &mut [u8]) -> Result<()> {
    let want = ids.len().checked_mul(seg.len());
    if want != Some(out.len()) {
        return Err(Error::invalid(format!(
            "mask buffer of {} bytes: expected {} ids x {} voxels",
            out.len(),
            ids.len(),
            seg.len()
        )));
    }
    if seg.is_empty() {
        return Ok(());
    }
    // The first slot of each id; a repeated id's later slots are copies of it.
    let mut slot = IdMap::<usize>::default();
    for (k, &id) in ids.iter().enumerate() {
        slot.entry(id).or_insert(k);
    }
    out.fill(0);
    let n = seg.len();
    for (i, v) in seg.iter().enumerate() {
        if let Some(&k) = slot.get(v) {
            out[k * n + i] = 1;
        }
    }
    for (k, id) in ids.iter().enumerate() {
        let first = slot[id];
        if first != k {
            out.copy_within(first * n..(first + 1) * n, k * n);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_by_physical_position() {
        // Same resolution: identity.
        assert_eq!(source_index(7, 8.0, 8.0), 7);
        // Source twice as coarse: each voxel twice, from the source grid's origin.
        let up: Vec<i64> = (-3..5).map(|i| source_index(i, 4.0, 8.0)).collect();
        assert_eq!(up, vec![-2, -1, -1, 0, 0, 1, 1, 2]);
        // Three times as coarse.
        let up3: Vec<i64> = (0..7).map(|i| source_index(i, 4.0, 12.0)).collect();
        assert_eq!(up3, vec![0, 0, 0, 1, 1, 1, 2]);
        // Twice as fine: the lower of the two (striding).
        let down: Vec<i64> = (0..4).map(|i| source_index(i, 8.0, 4.0)).collect();
        assert_eq!(down, vec![0, 2, 4, 6]);
        // 4 nm onto 6 nm: centres 2, 6 (a border: the lower), 10, 14 nm.
        let odd: Vec<i64> = (0..4).map(|i| source_index(i, 4.0, 6.0)).collect();
        assert_eq!(odd, vec![0, 0, 1, 2]);
        let b = source_box(&Bbox::new([3, 0, 0], [9, 1, 1]), [4.0, 1.0, 1.0], [8.0, 1.0, 1.0]);
        assert_eq!(b, Bbox::new([1, 0, 0], [5, 1, 1]));
    }

    #[test]
    fn centres_and_masks() {
        assert_eq!(bounds_from_center([10, 10, 5], [5, 4, 1]), Bbox::new([8, 8, 5], [13, 12, 6]));
        let seg = [0u64, 5, 5, 9, 0, 9];
        assert_eq!(segment_ids(&seg, false), vec![5, 9]);
        assert_eq!(segment_ids(&seg, true), vec![0, 5, 9]);
        let mut out = vec![7u8; 12];
        split_masks_into(&seg, &[5, 9], &mut out).unwrap();
        assert_eq!(out, vec![0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1]);
        assert!(split_masks_into(&seg, &[5], &mut out).is_err());
        // A repeated id gets the same mask twice.
        let mut out = vec![7u8; 18];
        split_masks_into(&seg, &[9, 5, 9], &mut out).unwrap();
        assert_eq!(out, vec![0, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1]);
    }

    #[test]
    fn resampling_repeats_planes_and_channels() {
        // A 2x1x1 source, 2 channels, onto 4 output voxels in x.
        let grid = AlignedGrid {
            resolution: [4.0, 8.0, 8.0],
            bbox: Bbox::new([0, 0, 0], [4, 1, 1]),
            image_mip: 0,
            segmentation_mip: 0,
            image_box: Bbox::new([0, 0, 0], [2, 1, 1]),
            segmentation_box: Bbox::new([0, 0, 0], [2, 1, 1]),
        };
        let src = [1u8, 2, 10, 20];
        let out = resample(&src, &grid.image_box, [8.0, 8.0, 8.0], &grid, 2, 1);
        assert_eq!(out, vec![1, 1, 2, 2, 10, 10, 20, 20]);
    }
}
