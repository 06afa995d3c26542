//! The C ABI of reading: opening a layer, cutouts, scattered points, chunk existence, whether a
//! scale holds data, and the layer's metadata.

use std::ffi::{c_char, c_void, CString};

use super::*;
use crate::error::Error;
use crate::format::{Bbox, Encoding};
use crate::options::Options;
use crate::volume::Volume;

/// Open the Precomputed layer at `cloudpath` (`file://`, `http(s)://`, `gs://`, `s3://`,
/// optionally behind `precomputed://`), or the `graphene://` layer of a chunkedgraph table,
/// with options (NULL or a JSON object: `mip`, `bounded`, `fill_missing`, `background_color`,
/// `parallel`, `gs_endpoint`, `s3_endpoint`, `timeout`, `connect_timeout`, `max_attempts`,
/// `retry_budget`, `checksum`, `secrets`, `gs_token`, `s3_region`, `anonymous`, `use_https`,
/// `cache`, `lru_bytes`, and for graphene `agglomerate`, `timestamp`, `stop_layer`; README
/// lists them all). On success `*out`
/// receives a handle to release with `cv_free`.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cv_open(
    cloudpath: *const c_char,
    options_json: *const c_char,
    out: *mut *mut cv_volume,
) -> cv_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let path = str_arg(cloudpath, "cloudpath")?;
        let opts = if options_json.is_null() { None } else { Some(str_arg(options_json, "options_json")?) };
        let opts = Options::parse(opts)?;
        let vol = Volume::open(path, opts)?;
        *out = Box::into_raw(Box::new(cv_volume { magic: MAGIC_LIVE, vol }));
        Ok(())
    })
}

/// Read the half-open box `[lo, hi)` (absolute voxel coordinates at `mip`) into `buf`, which
/// must be exactly `(hi-lo).x * (hi-lo).y * (hi-lo).z * channels * element size` bytes, laid out
/// in Fortran order: x fastest, then y, then z, then channel; elements little-endian.
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t; `buf` holds `buf_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_cutout_into(
    vol: *const cv_volume,
    mip: u32,
    lo: *const i64,
    hi: *const i64,
    buf: *mut c_void,
    buf_len: usize,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = box_buffer_args(v, mip, lo, hi, buf.cast_const(), buf_len)?;
        let out = std::slice::from_raw_parts_mut(buf.cast::<u8>(), buf_len);
        v.cutout_into(mip, &bbox, out, None)
    })
}

/// Read the half-open box `[lo, hi)` at `mip` into `buf` with any layout: element `(x, y, z, c)`
/// (offsets from `lo`, channel `c`) lands at byte `x*s[0] + y*s[1] + z*s[2] + c*s[3]` of `buf`,
/// where `s = byte_strides` points to 4 int64_t. For C order `[x][y][z][c]` of a box of shape
/// (X, Y, Z) with C channels of E bytes: `{Y*Z*C*E, Z*C*E, C*E, E}`; for an array indexed
/// `[z][y][x]` (which is Fortran `[x, y, z]`): `{E, X*E, X*Y*E, X*Y*Z*E}`; a sub-view of a
/// larger array uses that array's strides and a `buf` pointing at the sub-view's first element.
/// Strides must be positive and keep elements from overlapping; `buf_len` must cover the last
/// element. Bytes of `buf` between elements are left untouched. Otherwise as `cv_cutout_into`.
///
/// # Safety
/// `vol` is a live handle; `lo`, `hi` point to 3 int64_t and `byte_strides` to 4; `buf` holds
/// `buf_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_cutout_into_strided(
    vol: *const cv_volume,
    mip: u32,
    lo: *const i64,
    hi: *const i64,
    buf: *mut c_void,
    buf_len: usize,
    byte_strides: *const i64,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = box_arg(lo, hi)?;
        v.scale(mip)?;
        if byte_strides.is_null() {
            return Err(Error::invalid("byte_strides is NULL"));
        }
        let strides = [*byte_strides, *byte_strides.add(1), *byte_strides.add(2), *byte_strides.add(3)];
        if buf.is_null() {
            return Err(Error::invalid("buf is NULL"));
        }
        if buf_len > isize::MAX as usize {
            return Err(Error::invalid(format!("buf_len {buf_len} is larger than any buffer can be")));
        }
        let out = std::slice::from_raw_parts_mut(buf.cast::<u8>(), buf_len);
        v.cutout_into_strided(mip, &bbox, out, strides)
    })
}

/// Empty the handle's caches: the in-memory chunk cache (`lru_bytes`) and the layer's part of
/// the disk cache (`cache`), as cloud-volume's `vol.cache.flush()` does. Without caches it does
/// nothing.
///
/// # Safety
/// `vol` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn cv_cache_clear(vol: *const cv_volume) -> cv_status {
    boundary(|| vol_arg(vol)?.clear_cache())
}

/// The element type of the layer, one of `CV_DTYPE_*`.
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_data_type(vol: *const cv_volume, out: *mut i32) -> cv_status {
    get(vol, out, |v| Ok(v.info().data_type.code()))
}

/// Number of channels.
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_num_channels(vol: *const cv_volume, out: *mut u32) -> cv_status {
    get(vol, out, |v| Ok(v.info().num_channels))
}

/// Number of mips (scales).
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_num_mips(vol: *const cv_volume, out: *mut u32) -> cv_status {
    get(vol, out, |v| Ok(v.info().scales.len() as u32))
}

/// The handle's default mip (option `mip`, for bindings).
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_default_mip(vol: *const cv_volume, out: *mut u32) -> cv_status {
    get(vol, out, |v| Ok(v.options().mip))
}

/// Run a getter: `*out = f(vol)` on success.
///
/// # Safety
/// `vol` is NULL or a live handle; `out` is NULL or writable.
unsafe fn get<T>(vol: *const cv_volume, out: *mut T, f: impl FnOnce(&Volume) -> Result<T>) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let value = f(v)?;
        *out_arg(out, "out")? = value;
        Ok(())
    })
}

/// Write three values to `out`.
///
/// # Safety
/// `out` points to 3 writable values.
unsafe fn put_triple<T: Copy>(out: *mut T, v: [T; 3]) {
    for (d, x) in v.into_iter().enumerate() {
        *out.add(d) = x;
    }
}

/// The bounds of `mip`: `lo = voxel_offset`, `hi = voxel_offset + size` (3 values each).
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 writable int64_t.
#[no_mangle]
pub unsafe extern "C" fn cv_bounds(vol: *const cv_volume, mip: u32, lo: *mut i64, hi: *mut i64) -> cv_status {
    boundary(|| {
        let b = vol_arg(vol)?.scale(mip)?.bounds();
        let (lo, hi) = (out_arg(lo, "lo")?, out_arg(hi, "hi")?);
        put_triple(lo, b.lo);
        put_triple(hi, b.hi);
        Ok(())
    })
}

/// The chunk size of `mip` (3 values).
///
/// # Safety
/// `vol` is a live handle; `out` points to 3 writable int64_t.
#[no_mangle]
pub unsafe extern "C" fn cv_chunk_size(vol: *const cv_volume, mip: u32, out: *mut i64) -> cv_status {
    boundary(|| {
        put_triple(out_arg(out, "out")?, vol_arg(vol)?.scale(mip)?.chunk_size);
        Ok(())
    })
}

/// The resolution of `mip` in nanometres (3 values).
///
/// # Safety
/// `vol` is a live handle; `out` points to 3 writable doubles.
#[no_mangle]
pub unsafe extern "C" fn cv_resolution(vol: *const cv_volume, mip: u32, out: *mut f64) -> cv_status {
    boundary(|| {
        put_triple(out_arg(out, "out")?, vol_arg(vol)?.scale(mip)?.resolution);
        Ok(())
    })
}

/// The chunk encoding of `mip`, one of `CV_ENCODING_*`.
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_encoding(vol: *const cv_volume, mip: u32, out: *mut i32) -> cv_status {
    boundary(|| {
        let e = vol_arg(vol)?.scale(mip)?.encoding;
        *out_arg(out, "out")? = match e {
            Encoding::Raw => CV_ENCODING_RAW,
            Encoding::Jpeg => CV_ENCODING_JPEG,
            Encoding::Png => CV_ENCODING_PNG,
            Encoding::CompressedSegmentation => CV_ENCODING_COMPRESSED_SEGMENTATION,
            Encoding::Compresso => CV_ENCODING_COMPRESSO,
            Encoding::Jxl => CV_ENCODING_JXL,
            Encoding::Other => CV_ENCODING_OTHER,
        };
        Ok(())
    })
}

/// The number of bytes `cv_cutout_into` needs for the box `[lo, hi)`.
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_cutout_len(
    vol: *const cv_volume,
    lo: *const i64,
    hi: *const i64,
    out: *mut usize,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = Bbox::new(triple_arg(lo, "lo")?, triple_arg(hi, "hi")?);
        let n = v.cutout_len(&bbox)?;
        *out_arg(out, "out")? = n;
        Ok(())
    })
}

/// The layer's info JSON (every member, known or not). `*out` receives a NUL-terminated string
/// to release with `cv_string_free`.
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_info_json(vol: *const cv_volume, out: *mut *mut c_char) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let out = out_arg(out, "out")?;
        let text = serde_json::to_string(&v.info().json).map_err(|e| Error::internal(e.to_string()))?;
        *out = CString::new(text).map_err(|e| Error::internal(e.to_string()))?.into_raw();
        Ok(())
    })
}

/// Read `n` single voxels, every channel of each, at the points `xyz[3*i .. 3*i+3)` (absolute
/// voxel coordinates at `mip`) into `out`: point after point, channel after channel, elements
/// little-endian; `out_len` must be exactly `n * channels * element size` bytes. Each distinct
/// chunk is fetched once. Points outside the volume are `CV_ERR_OUT_OF_BOUNDS` with `bounded`,
/// background without.
///
/// # Safety
/// `vol` is a live handle; `xyz` points to `3 * n` int64_t; `out` holds `out_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_scattered_points(
    vol: *const cv_volume,
    mip: u32,
    n: usize,
    xyz: *const i64,
    out: *mut c_void,
    out_len: usize,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        v.scale(mip)?;
        let per = v.info().num_channels as usize * v.info().data_type.size();
        let want = n.checked_mul(per).ok_or_else(|| Error::invalid(format!("n = {n} points is too many")))?;
        if out_len != want {
            return Err(Error::invalid(format!("out_len is {out_len} bytes, but {n} point(s) need {want}")));
        }
        if n == 0 {
            return Ok(());
        }
        if xyz.is_null() {
            return Err(Error::invalid("xyz is NULL"));
        }
        if out.is_null() {
            return Err(Error::invalid("out is NULL"));
        }
        let coords = std::slice::from_raw_parts(xyz, 3 * n);
        let points: Vec<[i64; 3]> = coords.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
        let mut tmp = vec![0u8; out_len];
        v.scattered_points(mip, &points, &mut tmp)?;
        std::ptr::copy_nonoverlapping(tmp.as_ptr(), out.cast::<u8>(), out_len);
        Ok(())
    })
}

/// Whether the scale `mip` appears to hold data, as cloud-volume's `vol.image.has_data(mip)`:
/// `*out` = 1 when any stored object's key starts with the scale's key (the key as a bare
/// prefix, as cloud-volume lists it: "8_8_40" also matches a scale "8_8_400"), else 0 (an
/// empty directory, a scale whose info was added but nothing written). One listing request on
/// gs:// and s3://, a directory walk that stops at the first file on file://. Plain HTTP
/// servers cannot list: `CV_ERR_UNSUPPORTED`; refused credentials: `CV_ERR_AUTH`; a mip the
/// layer lacks: `CV_ERR_INVALID_ARGUMENT`. On failure `*out` is left alone.
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_has_data(vol: *const cv_volume, mip: u32, out: *mut i32) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let out = out_arg(out, "out")?;
        *out = i32::from(v.has_data(mip)?);
        Ok(())
    })
}

/// The number of chunks (grid cells) the box `[lo, hi)` meets inside the bounds of `mip`:
/// the length `cv_chunks_exist` wants.
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_chunk_count(
    vol: *const cv_volume,
    mip: u32,
    lo: *const i64,
    hi: *const i64,
    out: *mut usize,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = box_arg(lo, hi)?;
        let n = v.chunk_count(mip, &bbox)?;
        *out_arg(out, "out")? = n;
        Ok(())
    })
}

/// Which chunks of the box `[lo, hi)` at `mip` are stored: `out[i]` is 1 or 0 for the i-th
/// grid cell the box meets inside the bounds, cells in x-fastest order (`out_len` must equal
/// `cv_chunk_count`). `*n_present` (may be NULL) receives the number stored.
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t; `out` holds `out_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_chunks_exist(
    vol: *const cv_volume,
    mip: u32,
    lo: *const i64,
    hi: *const i64,
    out: *mut u8,
    out_len: usize,
    n_present: *mut usize,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = box_arg(lo, hi)?;
        let want = v.chunk_count(mip, &bbox)?;
        if out_len != want {
            return Err(Error::invalid(format!("out_len is {out_len}, but box {bbox} meets {want} chunk(s)")));
        }
        if out.is_null() && want > 0 {
            return Err(Error::invalid("out is NULL"));
        }
        let found = v.chunks_exist(mip, &bbox)?;
        for (i, (_, present)) in found.iter().enumerate() {
            *out.add(i) = u8::from(*present);
        }
        if !n_present.is_null() {
            *n_present = found.iter().filter(|f| f.1).count();
        }
        Ok(())
    })
}
