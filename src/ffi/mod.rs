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
use crate::format::{Bbox, DataType};
use crate::volume::Volume;

// The header test hands cbindgen every file of src/ffi/ itself, so it follows no module here.
/// cbindgen:ignore
pub mod files;
/// cbindgen:ignore
pub mod imagery;
/// cbindgen:ignore
pub mod labels;
/// cbindgen:ignore
pub mod objects;
/// cbindgen:ignore
pub mod services;
/// cbindgen:ignore
pub mod storage;
/// cbindgen:ignore
pub mod volume;
/// cbindgen:ignore
pub mod write;

pub use files::*;
pub use imagery::*;
pub use labels::*;
pub use objects::*;
pub use services::*;
pub use volume::*;
pub use write::*;

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
/// An encoding the library does not know (its name is in the info); reads of that mip fail
/// with `CV_ERR_UNSUPPORTED` naming it.
pub const CV_ENCODING_OTHER: i32 = 7;

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
unsafe fn box_buffer_args(
    v: &Volume,
    mip: u32,
    lo: *const i64,
    hi: *const i64,
    buf: *const c_void,
    buf_len: usize,
) -> Result<Bbox> {
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
