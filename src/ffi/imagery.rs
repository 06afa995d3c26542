//! The C ABI of aligned image + segmentation cutouts (ImageryClient's
//! `image_and_segmentation_cutout`), per-segment masks and the overlay picture.

use super::*;
use crate::error::Error;
use crate::render::{self, OverlayOptions};
use crate::volume::aligned::{self, AlignedRequest};

/// An aligned cutout request. Zero-initialise it, then set `lo`/`hi` (and what else you need):
/// an all-zero `resolution` means the image's resolution at its mip, a negative mip the layer's
/// lowest mip not labelled "placeholder".
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cv_aligned_request {
    /// The box, in voxels of `resolution`, half-open.
    pub lo: [i64; 3],
    pub hi: [i64; 3],
    /// nm per voxel of the box; all 0: the image layer's resolution at `image_mip`.
    pub resolution: [f64; 3],
    /// Mip of the image layer; < 0: the lowest whose key is not "placeholder".
    pub image_mip: i32,
    /// Mip of the segmentation layer; < 0 as for `image_mip`.
    pub segmentation_mip: i32,
    /// NULL: keep every label. Otherwise the `n_root_ids` labels to keep (compared after
    /// agglomeration on graphene); every other voxel becomes 0 (`n_root_ids` 0 keeps none).
    pub root_ids: *const u64,
    pub n_root_ids: usize,
    /// Non-zero: the output is on the grid of `resolution` over exactly `[lo, hi)`.
    pub scale_to_bounds: i32,
}

/// The output grid of an aligned cutout: the box `[lo, hi)` in voxels of `resolution` (nm),
/// and the mip each layer is read at.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cv_aligned_grid {
    pub lo: [i64; 3],
    pub hi: [i64; 3],
    pub resolution: [f64; 3],
    pub image_mip: u32,
    pub segmentation_mip: u32,
}

/// # Safety
/// `req` is NULL or readable; its `root_ids` NULL or `n_root_ids` readable uint64_t.
unsafe fn request_arg(req: *const cv_aligned_request) -> Result<AlignedRequest> {
    if req.is_null() {
        return Err(Error::invalid("req is NULL"));
    }
    let r = &*req;
    let mip = |m: i32| if m < 0 { None } else { Some(m as u32) };
    let resolution = if r.resolution == [0.0; 3] { None } else { Some(r.resolution) };
    let root_ids = if r.root_ids.is_null() {
        if r.n_root_ids > 0 {
            return Err(Error::invalid("root_ids is NULL but n_root_ids is not 0"));
        }
        None
    } else {
        Some(std::slice::from_raw_parts(r.root_ids, r.n_root_ids).to_vec())
    };
    Ok(AlignedRequest {
        bounds: Bbox::new(r.lo, r.hi),
        resolution,
        image_mip: mip(r.image_mip),
        segmentation_mip: mip(r.segmentation_mip),
        root_ids,
        scale_to_bounds: r.scale_to_bounds != 0,
    })
}

/// The grid an aligned cutout of `req` returns (its shape is `hi - lo`), without reading.
///
/// # Safety
/// `image` and `seg` are live handles; `req` as for `cv_aligned_cutout_into`; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn cv_aligned_grid_of(
    image: *const cv_volume,
    seg: *const cv_volume,
    req: *const cv_aligned_request,
    out: *mut cv_aligned_grid,
) -> cv_status {
    boundary(|| {
        let (iv, sv) = (vol_arg(image)?, vol_arg(seg)?);
        let r = request_arg(req)?;
        let out = out_arg(out, "out")?;
        let g = aligned::aligned_grid(iv, sv, &r)?;
        *out = cv_aligned_grid {
            lo: g.bbox.lo,
            hi: g.bbox.hi,
            resolution: g.resolution,
            image_mip: g.image_mip,
            segmentation_mip: g.segmentation_mip,
        };
        Ok(())
    })
}

/// Read an image layer and a segmentation layer (any mix of Precomputed and graphene) over one
/// box onto one grid (`cv_aligned_grid_of`): the finer of the two mips' resolutions (the image's
/// when neither is finer on every axis), or `req->resolution` with `scale_to_bounds`; a layer
/// on another resolution is resampled by nearest neighbour by physical position.
///
/// `image_out` receives the image in the image layer's type and channels (Fortran order
/// `[x, y, z, c]`; `image_len` bytes exactly), `seg_out` the segmentation's first channel as
/// uint64 (`seg_len` elements, one per voxel). Either may be NULL (with length 0) to skip it.
/// Both are written in place (a layer already on the grid is read straight into its output);
/// after a failure their contents are unspecified, as a failed `cv_cutout_into`'s buffer is.
///
/// # Safety
/// `image` and `seg` are live handles; `req` readable (its `root_ids` NULL or `n_root_ids`
/// readable); `image_out` NULL or `image_len` writable bytes; `seg_out` NULL or `seg_len`
/// writable uint64_t.
#[no_mangle]
pub unsafe extern "C" fn cv_aligned_cutout_into(
    image: *const cv_volume,
    seg: *const cv_volume,
    req: *const cv_aligned_request,
    image_out: *mut c_void,
    image_len: usize,
    seg_out: *mut u64,
    seg_len: usize,
) -> cv_status {
    boundary(|| {
        let (iv, sv) = (vol_arg(image)?, vol_arg(seg)?);
        let r = request_arg(req)?;
        let g = aligned::aligned_grid(iv, sv, &r)?;
        let n = g.voxels();
        let img_want = n * iv.info().num_channels as usize * iv.info().data_type.size();
        if !image_out.is_null() && image_len != img_want {
            return Err(Error::invalid(format!(
                "image_len is {image_len} bytes, but the aligned grid {} needs {img_want}",
                g.bbox
            )));
        }
        if !seg_out.is_null() && seg_len != n {
            return Err(Error::invalid(format!(
                "seg_len is {seg_len} elements, but the aligned grid {} needs {n}",
                g.bbox
            )));
        }
        let img = if image_out.is_null() {
            None
        } else {
            Some(std::slice::from_raw_parts_mut(image_out.cast::<u8>(), img_want))
        };
        let sg = if seg_out.is_null() { None } else { Some(std::slice::from_raw_parts_mut(seg_out, n)) };
        // Written in place: a failure can leave the outputs partly written (as cv_cutout_into's).
        aligned::aligned_cutout_into(iv, sv, &r, img, sg)?;
        Ok(())
    })
}

/// One 0/1 mask per label of `ids` over a segmentation of `n` voxels, back to back in `out`
/// (`out_len` = `n_ids * n` bytes): mask `k` is `out[k*n .. (k+1)*n]` (ImageryClient's
/// `split_segmentations`).
///
/// # Safety
/// `seg` holds `n` uint64_t (may be NULL when `n` is 0), `ids` `n_ids` (may be NULL when 0),
/// `out` `out_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_split_masks_into(
    seg: *const u64,
    n: usize,
    ids: *const u64,
    n_ids: usize,
    out: *mut u8,
    out_len: usize,
) -> cv_status {
    boundary(|| {
        let seg = slice_arg(seg, n, "seg")?;
        let ids = slice_arg(ids, n_ids, "ids")?;
        if out.is_null() && out_len > 0 {
            return Err(Error::invalid("out is NULL"));
        }
        let mut tmp = vec![0u8; out_len];
        aligned::split_masks_into(seg, ids, &mut tmp)?;
        if out_len > 0 {
            std::ptr::copy_nonoverlapping(tmp.as_ptr(), out, out_len);
        }
        Ok(())
    })
}

/// # Safety
/// `p` is NULL (only when `n` is 0) or `n` readable elements.
unsafe fn slice_arg<'a, T>(p: *const T, n: usize, name: &str) -> Result<&'a [T]> {
    if p.is_null() {
        if n > 0 {
            return Err(Error::invalid(format!("{name} is NULL")));
        }
        return Ok(&[]);
    }
    Ok(std::slice::from_raw_parts(p, n))
}

/// The overlay colour of segment `id` (the same in every picture; label 0 is never drawn).
///
/// # Safety
/// `rgb` points to 3 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_segment_color(id: u64, rgb: *mut u8) -> cv_status {
    boundary(|| {
        let out = out_arg(rgb, "rgb")?;
        let c = render::segment_color(id);
        std::ptr::copy_nonoverlapping(c.as_ptr(), out, 3);
        Ok(())
    })
}

fn overlay_opts(alpha: f32, outline: u32) -> OverlayOptions {
    OverlayOptions { alpha, outline }
}

/// Composite `seg` over `grey` (each `width * height` pixels, x fastest): every pixel of a
/// non-zero label (only those within `outline` pixels of another label, city block, when
/// `outline` > 0) gets `round(grey * (1 - alpha) + colour * alpha)` per channel with the
/// segment's `cv_segment_color`; others stay grey. `out` receives interleaved RGB, row by row
/// (`out_len` = `3 * width * height`).
///
/// # Safety
/// `grey` holds `width * height` bytes, `seg` as many uint64_t, `out` `out_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_overlay_rgb_into(
    grey: *const u8,
    seg: *const u64,
    width: usize,
    height: usize,
    alpha: f32,
    outline: u32,
    out: *mut u8,
    out_len: usize,
) -> cv_status {
    boundary(|| {
        let n = width.checked_mul(height).ok_or_else(|| Error::invalid("width * height overflows"))?;
        let (g, s) = (slice_arg(grey, n, "grey")?, slice_arg(seg, n, "seg")?);
        if out_len != n * 3 {
            return Err(Error::invalid(format!(
                "out_len is {out_len}, a {width}x{height} RGB picture needs {}",
                n * 3
            )));
        }
        let out = out_arg(out, "out")?;
        let rgb = render::composite_rgb(g, s, width, height, &overlay_opts(alpha, outline))?;
        std::ptr::copy_nonoverlapping(rgb.as_ptr(), out, rgb.len());
        Ok(())
    })
}

/// As `cv_overlay_rgb_into`, encoded as a PNG file (8-bit RGB): `*png` receives `*png_len`
/// bytes owned by the caller, released with `cv_bytes_free(*png, *png_len)`.
///
/// # Safety
/// `grey` and `seg` as for `cv_overlay_rgb_into`; `png` and `png_len` writable.
#[no_mangle]
pub unsafe extern "C" fn cv_overlay_png(
    grey: *const u8,
    seg: *const u64,
    width: usize,
    height: usize,
    alpha: f32,
    outline: u32,
    png: *mut *mut u8,
    png_len: *mut usize,
) -> cv_status {
    boundary(|| {
        let n = width.checked_mul(height).ok_or_else(|| Error::invalid("width * height overflows"))?;
        let (g, s) = (slice_arg(grey, n, "grey")?, slice_arg(seg, n, "seg")?);
        let (png, png_len) = (out_arg(png, "png")?, out_arg(png_len, "png_len")?);
        let bytes = render::overlay_png(g, s, width, height, &overlay_opts(alpha, outline))?.into_boxed_slice();
        *png_len = bytes.len();
        *png = Box::into_raw(bytes).cast::<u8>();
        Ok(())
    })
}
