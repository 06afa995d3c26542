//! The C ABI (`include/cloudvolume.h`, generated from this file by cbindgen).
//!
//! Conventions: every fallible call returns a `cv_status` and writes its outputs only on success;
//! every failure also sets this thread's last error (`cv_last_error`); no panic crosses the
//! boundary (each body runs under `catch_unwind` and a panic becomes `CV_ERR_INTERNAL`); every
//! pointer is checked for NULL; handles are thread-safe; `*_free(NULL)` is a no-op.

#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{Error, ErrorKind, Result};
use crate::format::{Bbox, DataType, Encoding};
use crate::options::Options;
use crate::volume::Volume;

/// cbindgen:ignore
pub mod storage;

/// A status code: `CV_OK` (0) or one of the `CV_ERR_*` codes.
pub type cv_status = i32;

/// Success.
pub const CV_OK: cv_status = 0;
/// A NULL argument, a bad box, a wrong buffer length, a bad option, an unknown mip.
pub const CV_ERR_INVALID_ARGUMENT: cv_status = 1;
/// A box outside the volume while the handle is `bounded`.
pub const CV_ERR_OUT_OF_BOUNDS: cv_status = 2;
/// A layer, info or chunk that does not exist (chunks: without `fill_missing`).
pub const CV_ERR_NOT_FOUND: cv_status = 3;
/// An I/O or network failure, after retries.
pub const CV_ERR_IO: cv_status = 4;
/// Credentials refused (HTTP 401/403, permission denied).
pub const CV_ERR_AUTH: cv_status = 5;
/// Corrupt data: a bad info, chunk or shard index.
pub const CV_ERR_DECODE: cv_status = 6;
/// A feature this library does not implement; the message says which.
pub const CV_ERR_UNSUPPORTED: cv_status = 7;
/// A bug inside the library (a caught panic); the message says where.
pub const CV_ERR_INTERNAL: cv_status = 8;

/// Element types, as returned by `cv_data_type`.
pub const CV_DTYPE_UINT8: i32 = 1;
pub const CV_DTYPE_INT8: i32 = 2;
pub const CV_DTYPE_UINT16: i32 = 3;
pub const CV_DTYPE_INT16: i32 = 4;
pub const CV_DTYPE_UINT32: i32 = 5;
pub const CV_DTYPE_INT32: i32 = 6;
pub const CV_DTYPE_UINT64: i32 = 7;
pub const CV_DTYPE_INT64: i32 = 8;
pub const CV_DTYPE_FLOAT32: i32 = 9;
pub const CV_DTYPE_FLOAT64: i32 = 10;

/// Chunk encodings, as returned by `cv_encoding`.
pub const CV_ENCODING_RAW: i32 = 1;
pub const CV_ENCODING_JPEG: i32 = 2;
pub const CV_ENCODING_PNG: i32 = 3;
pub const CV_ENCODING_COMPRESSED_SEGMENTATION: i32 = 4;
pub const CV_ENCODING_COMPRESSO: i32 = 5;
pub const CV_ENCODING_JXL: i32 = 6;

const MAGIC_LIVE: u64 = 0x6376_5f76_6f6c_756d; // "cv_volum"
const MAGIC_FREED: u64 = 0x6672_6565_6421_2121; // "freed!!!"

/// An open layer. Opaque to C; created by `cv_open`, released by `cv_free`.
pub struct cv_volume {
    magic: u64,
    vol: Volume,
}

fn status_of(kind: ErrorKind) -> cv_status {
    match kind {
        ErrorKind::InvalidArgument => CV_ERR_INVALID_ARGUMENT,
        ErrorKind::OutOfBounds => CV_ERR_OUT_OF_BOUNDS,
        ErrorKind::NotFound => CV_ERR_NOT_FOUND,
        ErrorKind::Io | ErrorKind::Stale => CV_ERR_IO,
        ErrorKind::Auth => CV_ERR_AUTH,
        ErrorKind::Decode => CV_ERR_DECODE,
        ErrorKind::Unsupported => CV_ERR_UNSUPPORTED,
        ErrorKind::Internal => CV_ERR_INTERNAL,
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Run an exported body: clear the last error, catch panics, map errors onto status codes.
fn boundary(f: impl FnOnce() -> Result<()>) -> cv_status {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CV_OK,
        Ok(Err(e)) => {
            set_last_error(e.message());
            status_of(e.kind())
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (a bug in cloudvolume, please report it): {what}"));
            CV_ERR_INTERNAL
        }
    }
}

/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::invalid(format!("{name} is NULL")));
    }
    CStr::from_ptr(p).to_str().map_err(|_| Error::invalid(format!("{name} is not valid UTF-8")))
}

/// # Safety
/// `p` is NULL, or a pointer from `cv_open` not yet freed.
unsafe fn vol_arg<'a>(p: *const cv_volume) -> Result<&'a Volume> {
    if p.is_null() {
        return Err(Error::invalid("vol is NULL"));
    }
    let h = &*p;
    if h.magic != MAGIC_LIVE {
        return Err(Error::invalid("vol is not a live cv_volume handle (freed or foreign pointer)"));
    }
    Ok(&h.vol)
}

/// # Safety
/// `p` is NULL or points to 3 readable int64_t.
unsafe fn triple_arg(p: *const i64, name: &str) -> Result<[i64; 3]> {
    if p.is_null() {
        return Err(Error::invalid(format!("{name} is NULL")));
    }
    Ok([*p, *p.add(1), *p.add(2)])
}

/// # Safety
/// As `triple_arg` for both corners.
unsafe fn box_arg(lo: *const i64, hi: *const i64) -> Result<Bbox> {
    let bbox = Bbox::new(triple_arg(lo, "lo")?, triple_arg(hi, "hi")?);
    if bbox.is_empty() {
        return Err(Error::invalid(format!("box {bbox} is empty or inverted (need lo < hi on every axis)")));
    }
    Ok(bbox)
}

/// The box `[lo, hi)` of a read or write at `mip`, after checking that `buf` is non-NULL and
/// exactly as long as the box needs (before any I/O).
///
/// # Safety
/// As `triple_arg` for both corners.
unsafe fn box_buffer_args(v: &Volume, mip: u32, lo: *const i64, hi: *const i64, buf: *const c_void, buf_len: usize) -> Result<Bbox> {
    let bbox = Bbox::new(triple_arg(lo, "lo")?, triple_arg(hi, "hi")?);
    v.scale(mip)?;
    let want = v.cutout_len(&bbox)?;
    if buf_len != want {
        return Err(Error::invalid(format!("buf_len is {buf_len} bytes, but box {bbox} at mip {mip} needs {want}")));
    }
    if buf.is_null() {
        return Err(Error::invalid("buf is NULL"));
    }
    Ok(bbox)
}

fn out_arg<T>(p: *mut T, name: &str) -> Result<*mut T> {
    if p.is_null() {
        Err(Error::invalid(format!("{name} (output) is NULL")))
    } else {
        Ok(p)
    }
}

/// Open the Precomputed layer at `cloudpath` (`file://`, `http(s)://`, `gs://`, `s3://`,
/// optionally behind `precomputed://`) with options (NULL or a JSON object: `mip`, `bounded`,
/// `fill_missing`, `background_color`, `parallel`, `gs_endpoint`, `s3_endpoint`, `timeout`,
/// `connect_timeout`, `max_attempts`, `retry_budget`, `checksum`, `secrets`, `gs_token`,
/// `s3_region`, `anonymous`, `cache`, `lru_bytes`; README lists them all). On success `*out`
/// receives a handle to release with `cv_free`.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cv_open(cloudpath: *const c_char, options_json: *const c_char, out: *mut *mut cv_volume) -> cv_status {
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

/// Release a handle. NULL is a no-op. The handle must not be used afterwards.
///
/// # Safety
/// `vol` is NULL or a live handle from `cv_open`, used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn cv_free(vol: *mut cv_volume) {
    if vol.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if (*vol).magic == MAGIC_LIVE {
            (*vol).magic = MAGIC_FREED;
            drop(Box::from_raw(vol));
        }
    }));
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

/// This thread's last error message, "" if the last call succeeded. Owned by the library; valid
/// on this thread until its next `cv_*` call.
#[no_mangle]
pub extern "C" fn cv_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// The library version (for example "0.1.0"); a static string.
#[no_mangle]
pub extern "C" fn cv_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The element type of the layer, one of `CV_DTYPE_*`.
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_data_type(vol: *const cv_volume, out: *mut i32) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        *out_arg(out, "out")? = v.info().data_type.code();
        Ok(())
    })
}

/// Bytes per element of a `CV_DTYPE_*` code; 0 for an unknown code.
#[no_mangle]
pub extern "C" fn cv_dtype_size(dtype: i32) -> usize {
    DataType::from_code(dtype).map_or(0, DataType::size)
}

/// The info name of a `CV_DTYPE_*` code ("uint8", ...); "" for an unknown code. Static string.
#[no_mangle]
pub extern "C" fn cv_dtype_name(dtype: i32) -> *const c_char {
    let s: &'static [u8] = match DataType::from_code(dtype) {
        Some(DataType::U8) => b"uint8\0",
        Some(DataType::I8) => b"int8\0",
        Some(DataType::U16) => b"uint16\0",
        Some(DataType::I16) => b"int16\0",
        Some(DataType::U32) => b"uint32\0",
        Some(DataType::I32) => b"int32\0",
        Some(DataType::U64) => b"uint64\0",
        Some(DataType::I64) => b"int64\0",
        Some(DataType::F32) => b"float32\0",
        Some(DataType::F64) => b"float64\0",
        None => b"\0",
    };
    s.as_ptr().cast()
}

/// Number of channels.
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_num_channels(vol: *const cv_volume, out: *mut u32) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        *out_arg(out, "out")? = v.info().num_channels;
        Ok(())
    })
}

/// Number of mips (scales).
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_num_mips(vol: *const cv_volume, out: *mut u32) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        *out_arg(out, "out")? = v.info().scales.len() as u32;
        Ok(())
    })
}

/// The handle's default mip (option `mip`, for bindings).
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_default_mip(vol: *const cv_volume, out: *mut u32) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        *out_arg(out, "out")? = v.options().mip;
        Ok(())
    })
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
        for d in 0..3 {
            *lo.add(d) = b.lo[d];
            *hi.add(d) = b.hi[d];
        }
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
        let c = vol_arg(vol)?.scale(mip)?.chunk_size;
        let out = out_arg(out, "out")?;
        for (d, v) in c.iter().enumerate() {
            *out.add(d) = *v;
        }
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
        let r = vol_arg(vol)?.scale(mip)?.resolution;
        let out = out_arg(out, "out")?;
        for (d, v) in r.iter().enumerate() {
            *out.add(d) = *v;
        }
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
        };
        Ok(())
    })
}

/// The number of bytes `cv_cutout_into` needs for the box `[lo, hi)`.
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_cutout_len(vol: *const cv_volume, lo: *const i64, hi: *const i64, out: *mut usize) -> cv_status {
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

/// Release a string returned by the library. NULL is a no-op.
///
/// # Safety
/// `s` is NULL or a string from a `cv_*` call that hands out ownership, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn cv_string_free(s: *mut c_char) {
    if !s.is_null() {
        drop(CString::from_raw(s));
    }
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

/// The number of chunks (grid cells) the box `[lo, hi)` meets inside the bounds of `mip`:
/// the length `cv_chunks_exist` wants.
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_chunk_count(vol: *const cv_volume, mip: u32, lo: *const i64, hi: *const i64, out: *mut usize) -> cv_status {
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

/// Create a layer at `cloudpath` from `info_json` (validated as on read) and open it. An
/// existing info is refused unless `options_json` has `"overwrite": true`. Options as for
/// `cv_open`, plus the write options `non_aligned_writes`, `compress` (null, false, true,
/// "gzip", "zstd"), `compress_level`, `delete_black_uploads`.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cv_create(
    cloudpath: *const c_char,
    info_json: *const c_char,
    options_json: *const c_char,
    out: *mut *mut cv_volume,
) -> cv_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let path = str_arg(cloudpath, "cloudpath")?;
        let info = str_arg(info_json, "info_json")?;
        let opts = if options_json.is_null() { None } else { Some(str_arg(options_json, "options_json")?) };
        let vol = Volume::create(path, info, Options::parse(opts)?)?;
        *out = Box::into_raw(Box::new(cv_volume { magic: MAGIC_LIVE, vol }));
        Ok(())
    })
}

/// Write the box `[lo, hi)` at `mip` from `buf`: same layout and exact length as
/// `cv_cutout_into`. The box must lie inside the volume and on the chunk grid (or reach the
/// volume edge) unless the handle has `non_aligned_writes`; sharded scales take whole shards.
/// Each chunk is replaced whole: a failed write leaves every chunk old or new.
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t; `buf` holds `buf_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_write_from(
    vol: *const cv_volume,
    mip: u32,
    lo: *const i64,
    hi: *const i64,
    buf: *const c_void,
    buf_len: usize,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = box_buffer_args(v, mip, lo, hi, buf, buf_len)?;
        let data = std::slice::from_raw_parts(buf.cast::<u8>(), buf_len);
        v.write_from(mip, &bbox, data)
    })
}

/// Delete the chunks of the chunk-aligned box `[lo, hi)` at `mip` (unsharded scales).
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t.
#[no_mangle]
pub unsafe extern "C" fn cv_delete(vol: *const cv_volume, mip: u32, lo: *const i64, hi: *const i64) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = Bbox::new(triple_arg(lo, "lo")?, triple_arg(hi, "hi")?);
        v.delete_box(mip, &bbox)
    })
}

/// Add a scale downsampled from mip 0 by `factor` (3 values >= 1) with `chunk_size` (3 values,
/// or NULL for mip 0's), write the info, and make the handle see it; `*new_mip` (may be NULL)
/// receives the scale's mip. Takes the handle mutably: no other call may use it meanwhile.
///
/// # Safety
/// `vol` is a live handle used by no other thread during the call; `factor` points to 3
/// int64_t; `chunk_size` is NULL or points to 3 int64_t.
#[no_mangle]
pub unsafe extern "C" fn cv_add_scale(
    vol: *mut cv_volume,
    factor: *const i64,
    chunk_size: *const i64,
    new_mip: *mut u32,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let factor = triple_arg(factor, "factor")?;
        let chunk = if chunk_size.is_null() { None } else { Some(triple_arg(chunk_size, "chunk_size")?) };
        let (fresh, mip) = v.add_scale(factor, chunk)?;
        (*vol).vol = fresh;
        if !new_mip.is_null() {
            *new_mip = mip;
        }
        Ok(())
    })
}

/// Build a valid info JSON for a new one-scale layer, like cloud-volume's `create_new_info`:
/// `layer_type` "image" or "segmentation", `data_type` ("uint8", ...), `encoding` ("raw",
/// "jpeg", "png", "compressed_segmentation"), resolution in nm, voxel offset, size and chunk
/// size (3 values each). `*out` receives a string to release with `cv_string_free`.
///
/// # Safety
/// Strings are NUL-terminated; arrays point to 3 values; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_new_info(
    layer_type: *const c_char,
    data_type: *const c_char,
    encoding: *const c_char,
    num_channels: u32,
    resolution: *const f64,
    voxel_offset: *const i64,
    size: *const i64,
    chunk_size: *const i64,
    out: *mut *mut c_char,
) -> cv_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let lt = match str_arg(layer_type, "layer_type")? {
            "image" => crate::format::LayerType::Image,
            "segmentation" => crate::format::LayerType::Segmentation,
            other => return Err(Error::invalid(format!("layer_type \"{other}\" is neither \"image\" nor \"segmentation\""))),
        };
        let dt_name = str_arg(data_type, "data_type")?;
        let dt = DataType::parse(dt_name).ok_or_else(|| Error::invalid(format!("unknown data_type \"{dt_name}\"")))?;
        let enc_name = str_arg(encoding, "encoding")?;
        let enc = Encoding::parse(enc_name).ok_or_else(|| Error::invalid(format!("unknown encoding \"{enc_name}\"")))?;
        if resolution.is_null() {
            return Err(Error::invalid("resolution is NULL"));
        }
        let res = [*resolution, *resolution.add(1), *resolution.add(2)];
        let p = crate::volume::NewInfo {
            layer_type: lt,
            data_type: dt,
            encoding: enc,
            num_channels,
            resolution: res,
            voxel_offset: triple_arg(voxel_offset, "voxel_offset")?,
            size: triple_arg(size, "size")?,
            chunk_size: triple_arg(chunk_size, "chunk_size")?,
            cseg_block_size: None,
        };
        let info = crate::volume::new_info(&p).map_err(|e| Error::invalid(e.message().to_string()))?;
        *out = CString::new(info.to_string()).map_err(|e| Error::internal(e.to_string()))?.into_raw();
        Ok(())
    })
}
