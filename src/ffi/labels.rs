//! The C ABI of label operations on uint32/uint64 layers (Precomputed and graphene): unique
//! labels with counts, label masks, the box of `download_point`.

use super::*;
use crate::error::Error;

/// The labels of the box `[lo, hi)` at `mip`, sorted ascending, with their voxel counts (every
/// channel): `np.unique(cutout, return_counts=True)` without the cutout. Counted chunk by
/// chunk (compressed_segmentation from its block tables). Voxels outside the volume (with
/// `bounded=false`) count as `background_color`. On a graphene layer with `agglomerate` the
/// labels are roots (or `stop_layer` ancestors).
///
/// On success `*labels` (and `*counts`, when `counts` is not NULL) receive arrays of `*n`
/// elements owned by the caller, released with `cv_labels_free(p, n)`; with `*n == 0` they are
/// NULL. A layer that is not uint32/uint64 is `CV_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t; `labels` and `n` are writable;
/// `counts` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cv_unique(
    vol: *const cv_volume,
    mip: u32,
    lo: *const i64,
    hi: *const i64,
    labels: *mut *mut u64,
    counts: *mut *mut u64,
    n: *mut usize,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = box_arg(lo, hi)?;
        let labels = out_arg(labels, "labels")?;
        let n = out_arg(n, "n")?;
        let found = v.unique(mip, &bbox)?;
        *n = found.labels.len();
        *labels = into_c_array(found.labels);
        if !counts.is_null() {
            *counts = into_c_array(found.counts);
        }
        Ok(())
    })
}

/// A vector handed to C: NULL when empty, else a boxed slice of exactly its length.
fn into_c_array(v: Vec<u64>) -> *mut u64 {
    if v.is_empty() {
        return std::ptr::null_mut();
    }
    Box::into_raw(v.into_boxed_slice()).cast::<u64>()
}

/// Release an array of `n` labels or counts from `cv_unique` (NULL is a no-op).
///
/// # Safety
/// `p` is NULL or an array from `cv_unique` of `n` elements, not released before.
#[no_mangle]
pub unsafe extern "C" fn cv_labels_free(p: *mut u64, n: usize) {
    if !p.is_null() {
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n)));
    }
}

/// Read the box `[lo, hi)` at `mip` as a mask: `out[i]` is 1 where voxel `i` (Fortran order,
/// x fastest, then y, z, channel) holds one of the `n_labels` labels, else 0 (cloud-volume's
/// `download(bbox, label=L)`, for a set of labels). `out_len` must be exactly one byte per
/// voxel and channel. On a graphene layer the labels are compared after agglomeration.
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t; `labels_in` holds `n_labels`
/// uint64_t (may be NULL when `n_labels` is 0); `out` holds `out_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_label_mask_into(
    vol: *const cv_volume,
    mip: u32,
    lo: *const i64,
    hi: *const i64,
    labels_in: *const u64,
    n_labels: usize,
    out: *mut u8,
    out_len: usize,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = box_arg(lo, hi)?;
        if labels_in.is_null() && n_labels > 0 {
            return Err(Error::invalid("labels is NULL"));
        }
        if out.is_null() {
            return Err(Error::invalid("out is NULL"));
        }
        let want = if n_labels == 0 { &[][..] } else { std::slice::from_raw_parts(labels_in, n_labels) };
        let mut tmp = vec![0u8; out_len];
        v.label_mask_into(mip, &bbox, want, &mut tmp)?;
        std::ptr::copy_nonoverlapping(tmp.as_ptr(), out, out_len);
        Ok(())
    })
}

/// The box cloud-volume's `download_point(pt, size, mip, coord_resolution)` reads: the point
/// `pt` (in mip 0 voxels, or in voxels of `coord_resolution` (3 doubles, nm) when not NULL)
/// moved to `mip`, and `size` voxels around it: `[p - size/2, p + size/2)` with `size/2`
/// rounded down, `[p, p + 1)` on axes of size 1. Read it with `cv_cutout_into`.
///
/// # Safety
/// `vol` is a live handle; `pt` points to 3 doubles, `size` to 3 int64_t; `coord_resolution`
/// is NULL or points to 3 doubles; `lo_out` and `hi_out` point to 3 writable int64_t.
#[no_mangle]
pub unsafe extern "C" fn cv_point_box(
    vol: *const cv_volume,
    mip: u32,
    pt: *const f64,
    size: *const i64,
    coord_resolution: *const f64,
    lo_out: *mut i64,
    hi_out: *mut i64,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        if pt.is_null() {
            return Err(Error::invalid("pt is NULL"));
        }
        let p = [*pt, *pt.add(1), *pt.add(2)];
        let s = triple_arg(size, "size")?;
        let cr = if coord_resolution.is_null() {
            None
        } else {
            Some([*coord_resolution, *coord_resolution.add(1), *coord_resolution.add(2)])
        };
        let lo = out_arg(lo_out, "lo_out")?;
        let hi = out_arg(hi_out, "hi_out")?;
        let b = v.point_box(mip, p, s, cr)?;
        for d in 0..3 {
            *lo.add(d) = b.lo[d];
            *hi.add(d) = b.hi[d];
        }
        Ok(())
    })
}

/// Read the box `[lo, hi)` at `mip` renumbered (cloud-volume's `download(renumber=True)`): its
/// labels in ascending order become 1, 2, ... (0 stays 0), stored in the smallest of uint8,
/// uint16, uint32 and uint64 that holds them. On success `*out` receives `*out_len` bytes
/// (Fortran order, every channel) of type `*out_dtype` (a `CV_DTYPE_*` code), released with
/// `cv_bytes_free(*out, *out_len)`, and `*labels` an array of `*n` original labels, released
/// with `cv_labels_free`: output value `v` stands for `labels[v]` (`labels[0]` is 0).
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t; every output pointer is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_renumber(
    vol: *const cv_volume,
    mip: u32,
    lo: *const i64,
    hi: *const i64,
    out: *mut *mut u8,
    out_len: *mut usize,
    out_dtype: *mut i32,
    labels: *mut *mut u64,
    n: *mut usize,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = box_arg(lo, hi)?;
        let (out, out_len, out_dtype) =
            (out_arg(out, "out")?, out_arg(out_len, "out_len")?, out_arg(out_dtype, "out_dtype")?);
        let (labels, n) = (out_arg(labels, "labels")?, out_arg(n, "n")?);
        let r = v.renumber(mip, &bbox)?;
        *out_len = r.data.len();
        *out_dtype = r.dtype.code();
        *out = Box::into_raw(r.data.into_boxed_slice()).cast::<u8>();
        *n = r.labels.len();
        *labels = into_c_array(r.labels);
        Ok(())
    })
}
