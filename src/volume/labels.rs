//! Label operations on uint32/uint64 layers (cloud-volume's `unique`, `download(label=)`,
//! `download(renumber=True)`, `download_point`), over the read interface of any source:
//! labels are counted chunk by chunk (compressed_segmentation from its block tables) without
//! the box ever being held in memory whole.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::Volume;
use crate::error::{Error, Result};
use crate::format::{Bbox, DataType};

/// A renumbered cutout ([`Volume::renumber`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renumbered {
    /// The cutout, Fortran order, elements of `dtype`.
    pub data: Vec<u8>,
    pub dtype: DataType,
    /// `labels[v]`: the original label of output value `v`.
    pub labels: Vec<u64>,
}

/// A hasher for labels: one multiply (labels are already well spread, and never chosen by an
/// adversary who could gain from collisions).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        self.0 ^= self.0 >> 32;
    }
}

/// A map keyed by label.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Labels with their voxel counts.
pub type Counts = IdMap<u64>;

/// The labels of a box with their voxel counts, sorted by label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelCounts {
    pub labels: Vec<u64>,
    pub counts: Vec<u64>,
}

impl LabelCounts {
    /// Sorted by label.
    pub fn from_counts(c: Counts) -> LabelCounts {
        let mut pairs: Vec<(u64, u64)> = c.into_iter().collect();
        pairs.sort_unstable_by_key(|p| p.0);
        let (labels, counts) = pairs.into_iter().unzip();
        LabelCounts { labels, counts }
    }
}

/// Add `src` into `dst`.
pub fn merge(dst: &mut Counts, src: Counts) {
    if dst.len() < src.len() {
        let small = std::mem::replace(dst, src);
        return merge(dst, small);
    }
    for (k, n) in src {
        *dst.entry(k).or_insert(0) += n;
    }
}

/// Read the element `i` of little-endian `bytes` holding `item`-byte labels (4 or 8).
#[inline(always)]
pub fn label_at(bytes: &[u8], item: usize, i: usize) -> u64 {
    if item == 8 {
        u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]))
    } else {
        u64::from(u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap_or([0; 4])))
    }
}

/// Count the labels of `bytes` (little-endian elements of `item` bytes, 4 or 8) into `into`;
/// runs of one label cost one look-up.
pub fn count_bytes(bytes: &[u8], item: usize, into: &mut Counts) {
    let n = bytes.len() / item;
    if n == 0 {
        return;
    }
    let mut run = label_at(bytes, item, 0);
    let mut len = 0u64;
    for i in 0..n {
        let v = label_at(bytes, item, i);
        if v == run {
            len += 1;
        } else {
            *into.entry(run).or_insert(0) += len;
            run = v;
            len = 1;
        }
    }
    *into.entry(run).or_insert(0) += len;
}

/// The element size of a label type, or `InvalidArgument` naming the layer and type.
///
/// # Errors
/// A data type other than uint32 and uint64.
pub fn label_item(dtype: DataType, what: &str) -> Result<usize> {
    match dtype {
        DataType::U32 => Ok(4),
        DataType::U64 => Ok(8),
        t => Err(Error::invalid(format!(
            "{what}: label operations need a uint32 or uint64 layer, this one is {}",
            t.name()
        ))),
    }
}

/// The box cloud-volume's `download_point` reads: `pt` (in mip 0 voxels, or in voxels of
/// `coord_resolution` when given) moved to `mip` (the ratio of resolutions in float32, as
/// cloud-volume computes it, then floored), and `size` voxels around it: `[pt - size/2,
/// pt + size/2)` with `size/2` rounded down, and `[pt, pt + 1)` on axes of size 1.
pub fn point_box(
    res0: [f64; 3],
    res_mip: [f64; 3],
    pt: [f64; 3],
    size: [i64; 3],
    coord_resolution: Option<[f64; 3]>,
) -> Bbox {
    let mut lo = [0i64; 3];
    let mut hi = [0i64; 3];
    for d in 0..3 {
        let mut p = pt[d];
        if let Some(cr) = coord_resolution {
            p /= res0[d] / cr[d];
        }
        let ratio = f64::from(res0[d] as f32 / res_mip[d] as f32);
        let c = (p * ratio).floor() as i64;
        let half = size[d].div_euclid(2);
        if size[d] == 1 {
            (lo[d], hi[d]) = (c, c + 1);
        } else {
            (lo[d], hi[d]) = (c - half, c + half);
        }
    }
    Bbox::new(lo, hi)
}

impl Volume {
    fn label_item(&self) -> Result<usize> {
        label_item(self.info.data_type, &self.path.path)
    }

    /// The labels of `bbox` at `mip` with their voxel counts (every channel), sorted: what
    /// `np.unique(cutout, return_counts=True)` gives, without the cutout. Voxels outside the
    /// volume (with `bounded=false`) count as `background_color`.
    ///
    /// # Errors
    /// A layer that is not uint32/uint64 (`InvalidArgument`); as [`Volume::cutout_into`].
    pub fn unique(&self, mip: u32, bbox: &Bbox) -> Result<LabelCounts> {
        let item = self.label_item()?;
        self.cutout_len(bbox)?;
        let io = self.io(mip)?;
        let bounds = self.scale(mip)?.bounds();
        self.check_bounded(mip, bbox)?;
        let nc = self.info.num_channels as usize;
        let mut counts = match bounds.intersection(bbox) {
            Some(inside) => io.label_counts(&inside, nc, item)?,
            None => Counts::default(),
        };
        let inside = bounds.intersection(bbox).and_then(|b| b.voxels()).unwrap_or(0);
        let outside = (bbox.voxels().unwrap_or(0) - inside) * nc as u64;
        if outside > 0 {
            let bg = label_at(&self.info.data_type.encode_scalar(self.opts.read.background_color), item, 0);
            *counts.entry(bg).or_insert(0) += outside;
        }
        Ok(LabelCounts::from_counts(counts))
    }

    /// Read `bbox` at `mip` as a mask: `out[i]` is 1 where voxel `i` (Fortran order, every
    /// channel) holds one of `labels`, else 0 (cloud-volume's `download(label=...)`, for a
    /// set of labels). `out` must be exactly one byte per voxel and channel.
    ///
    /// # Errors
    /// A wrong `out` length, a non-label layer (`InvalidArgument`); as [`Volume::cutout_into`].
    pub fn label_mask_into(&self, mip: u32, bbox: &Bbox, labels: &[u64], out: &mut [u8]) -> Result<()> {
        let item = self.label_item()?;
        let n = self.cutout_len(bbox)? / item;
        if out.len() != n {
            return Err(Error::invalid(format!(
                "mask buffer of {} bytes for box {bbox}: expected {n} (one byte per voxel and channel)",
                out.len()
            )));
        }
        let buf = self.cutout(mip, bbox)?;
        let want: IdMap<()> = labels.iter().map(|&l| (l, ())).collect();
        let (mut last, mut hit) = (None, 0u8);
        for (i, o) in out.iter_mut().enumerate() {
            let v = label_at(&buf, item, i);
            if last != Some(v) {
                last = Some(v);
                hit = u8::from(want.contains_key(&v));
            }
            *o = hit;
        }
        Ok(())
    }

    /// Read `bbox` at `mip` renumbered (cloud-volume's `download(renumber=True)`): its labels
    /// in ascending order become 1, 2, ... (0 stays 0), in the smallest of uint8, uint16,
    /// uint32 and uint64 that holds them. Returns the bytes (Fortran order, every channel), their
    /// type, and `labels` with `labels[v]` the original label of output value `v` (`labels[0]`
    /// is 0 whether or not 0 occurs).
    ///
    /// # Errors
    /// A non-label layer (`InvalidArgument`); as [`Volume::cutout_into`].
    pub fn renumber(&self, mip: u32, bbox: &Bbox) -> Result<Renumbered> {
        let item = self.label_item()?;
        // One read: the labels come from the cutout itself.
        let buf = self.cutout(mip, bbox)?;
        let mut distinct = Counts::default();
        count_bytes(&buf, item, &mut distinct);
        let mut labels: Vec<u64> = distinct.into_keys().filter(|&l| l != 0).collect();
        labels.sort_unstable();
        labels.insert(0, 0);
        let n = labels.len() as u64 - 1;
        let dtype = if n <= u64::from(u8::MAX) {
            DataType::U8
        } else if n <= u64::from(u16::MAX) {
            DataType::U16
        } else if n <= u64::from(u32::MAX) {
            DataType::U32
        } else {
            DataType::U64
        };
        let map: IdMap<u64> = labels.iter().enumerate().map(|(i, &l)| (l, i as u64)).collect();
        let size = dtype.size();
        let mut out = vec![0u8; buf.len() / item * size];
        let (mut last, mut to) = (None, 0u64);
        for (i, o) in out.chunks_exact_mut(size).enumerate() {
            let v = label_at(&buf, item, i);
            if last != Some(v) {
                last = Some(v);
                // Every label of the buffer is in the map, built from the same buffer.
                to = map.get(&v).copied().unwrap_or(0);
            }
            o.copy_from_slice(&to.to_le_bytes()[..size]);
        }
        Ok(Renumbered { data: out, dtype, labels })
    }

    /// The box of [`point_box`] for this layer at `mip`.
    ///
    /// # Errors
    /// An unknown mip, a size below 1 or a resolution that is not positive (`InvalidArgument`).
    pub fn point_box(
        &self,
        mip: u32,
        pt: [f64; 3],
        size: [i64; 3],
        coord_resolution: Option<[f64; 3]>,
    ) -> Result<Bbox> {
        let res_mip = self.scale(mip)?.resolution;
        let res0 = self.scale(0)?.resolution;
        if size.iter().any(|&s| s < 1) {
            return Err(Error::invalid(format!("download_point size {size:?} must be at least 1 on every axis")));
        }
        if pt.iter().any(|p| !p.is_finite()) {
            return Err(Error::invalid(format!("download_point point {pt:?} is not finite")));
        }
        if let Some(cr) = coord_resolution {
            if cr.iter().any(|&r| !(r.is_finite() && r > 0.0)) {
                return Err(Error::invalid(format!("coord_resolution {cr:?} must be positive")));
            }
        }
        Ok(point_box(res0, res_mip, pt, size, coord_resolution))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_runs_and_merging() {
        let vals: Vec<u64> = vec![5, 5, 5, 0, 0, 7, 5, u64::MAX];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut c = Counts::default();
        count_bytes(&bytes, 8, &mut c);
        let lc = LabelCounts::from_counts(c.clone());
        assert_eq!(lc.labels, vec![0, 5, 7, u64::MAX]);
        assert_eq!(lc.counts, vec![2, 4, 1, 1]);
        let small: Vec<u8> = [7u32, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut d = Counts::default();
        count_bytes(&small, 4, &mut d);
        merge(&mut d, c);
        let lc = LabelCounts::from_counts(d);
        assert_eq!(lc.labels, vec![0, 5, 7, 9, u64::MAX]);
        assert_eq!(lc.counts, vec![2, 4, 2, 1, 1]);
    }

    #[test]
    fn point_boxes_as_cloud_volume_computes_them() {
        // size 256 at mip 0: [pt - 128, pt + 128).
        let b = point_box([8.0; 3], [8.0; 3], [100.0, 200.0, 30.0], [256, 256, 1], None);
        assert_eq!((b.lo, b.hi), ([-28, 72, 30], [228, 328, 31]));
        // mip 1 at twice the resolution in x, y; odd sizes lose a voxel (size // 2 each side).
        let b = point_box([4.0, 4.0, 40.0], [8.0, 8.0, 40.0], [101.0, 51.0, 7.0], [5, 4, 3], None);
        assert_eq!((b.lo, b.hi), ([48, 23, 6], [52, 27, 8]));
        // A point in another resolution: 8 nm voxels given against 4 nm mip 0.
        let b = point_box([4.0, 4.0, 40.0], [4.0, 4.0, 40.0], [10.0, 10.0, 2.0], [2, 2, 1], Some([8.0, 8.0, 40.0]));
        assert_eq!((b.lo, b.hi), ([19, 19, 2], [21, 21, 3]));
    }
}
