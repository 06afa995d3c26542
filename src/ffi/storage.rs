//! Files by key under a layer (`cv_storage_*`): get, put, delete and exists of whole objects
//! over the same storage backends as volumes (file, http(s), gs, s3), for bindings' key-value
//! stores (CloudVolume.jl's `StorageWrapper`).
//!
//! Values are raw bytes: `cv_storage_get` removes a content encoding (gzip, brotli, zstd, as a
//! `Content-Encoding` or a `.gz`/`.br`/`.zstd` file suffix) and `cv_storage_put` stores the
//! bytes as given, uncompressed, so files are shared with every other tool. Conventions as in
//! the parent module: statuses, the last error, NULL checks, outputs only on success, a
//! magic-tagged opaque handle that is thread-safe.

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::{boundary, cv_status, out_arg, str_arg};
use crate::cloudpath::CloudPath;
use crate::codec::compression::decompress;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::store::{self, ContentEncoding, Store};

const MAGIC_LIVE: u64 = 0x6376_5f73_746f_7265; // "cv_store"
const MAGIC_FREED: u64 = 0x6672_6565_6421_2121; // "freed!!!"
/// The largest value `cv_storage_get` decompresses (a bigger one is refused as `Decode`).
const MAX_VALUE_BYTES: usize = 4 << 30;

/// Files under one base location. Opaque to C; created by `cv_storage_open`, released by
/// `cv_storage_free`.
pub struct cv_storage {
    magic: u64,
    store: Arc<dyn Store>,
}

/// # Safety
/// `p` is NULL, or a pointer from `cv_storage_open` not yet freed.
unsafe fn storage_arg<'a>(p: *const cv_storage) -> Result<&'a dyn Store> {
    if p.is_null() {
        return Err(Error::invalid("st is NULL"));
    }
    let h = &*p;
    if h.magic != MAGIC_LIVE {
        return Err(Error::invalid("st is not a live cv_storage handle (freed or foreign pointer)"));
    }
    Ok(h.store.as_ref())
}

/// A key: not empty, not only slashes, and not leaving the base location through `..`.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn key_arg<'a>(p: *const c_char) -> Result<&'a str> {
    let key = str_arg(p, "key")?;
    let mut depth: i64 = 0;
    let mut named = false;
    for seg in key.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Err(Error::invalid(format!("key \"{key}\" leaves the storage location")));
                }
            }
            _ => {
                depth += 1;
                named = true;
            }
        }
    }
    if !named || depth == 0 {
        return Err(Error::invalid(format!("key \"{key}\" names no file")));
    }
    Ok(key)
}

/// Open the files under `cloudpath` (`file://` or a bare path, `http(s)://`, `gs://`, `s3://`,
/// optionally behind `precomputed://`; usually a layer) with options (NULL or a JSON object, as
/// for `cv_open`; `gs_endpoint`, `s3_endpoint`, `timeout` and `max_attempts` apply). Nothing is
/// read: a location without files is no error. On success `*out` receives a handle to release
/// with `cv_storage_free`.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cv_storage_open(
    cloudpath: *const c_char,
    options_json: *const c_char,
    out: *mut *mut cv_storage,
) -> cv_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let path = str_arg(cloudpath, "cloudpath")?;
        let opts = if options_json.is_null() { None } else { Some(str_arg(options_json, "options_json")?) };
        let opts = Options::parse(opts)?;
        let cp = CloudPath::parse(path, &opts.store)?;
        let store = store::open(&cp, &opts.store)?;
        *out = Box::into_raw(Box::new(cv_storage { magic: MAGIC_LIVE, store }));
        Ok(())
    })
}

/// Release a storage handle. NULL is a no-op. The handle must not be used afterwards.
///
/// # Safety
/// `st` is NULL or a live handle from `cv_storage_open`, used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn cv_storage_free(st: *mut cv_storage) {
    if st.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if (*st).magic == MAGIC_LIVE {
            (*st).magic = MAGIC_FREED;
            drop(Box::from_raw(st));
        }
    }));
}

/// Read the file `key` (relative to the storage location; `/`-separated) whole, its content
/// encoding removed. On success `*data` receives `*len` bytes to release with
/// `cv_bytes_free(*data, *len)` (a non-NULL pointer, also for an empty file). A missing file is
/// `CV_ERR_NOT_FOUND` naming its URL.
///
/// # Safety
/// `st` is a live handle; `key` is NUL-terminated; `data` and `len` are writable.
#[no_mangle]
pub unsafe extern "C" fn cv_storage_get(
    st: *const cv_storage,
    key: *const c_char,
    data: *mut *mut u8,
    len: *mut usize,
) -> cv_status {
    boundary(|| {
        let s = storage_arg(st)?;
        let key = key_arg(key)?;
        let (data, len) = (out_arg(data, "data")?, out_arg(len, "len")?);
        let url = s.url(key);
        let obj = s.get(key)?.ok_or_else(|| Error::not_found(format!("{url}: no such file")))?;
        let bytes = decompress(obj, MAX_VALUE_BYTES, &url)?.into_boxed_slice();
        *len = bytes.len();
        *data = Box::into_raw(bytes).cast::<u8>();
        Ok(())
    })
}

/// Release bytes returned by `cv_storage_get`, with the length it gave. NULL is a no-op.
///
/// # Safety
/// `data` is NULL or a pointer from `cv_storage_get` not yet freed, and `len` its length.
#[no_mangle]
pub unsafe extern "C" fn cv_bytes_free(data: *mut u8, len: usize) {
    if !data.is_null() {
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, len)));
    }
}

/// Store `len` bytes at `key`, uncompressed and replacing the file whole (on `file://` a
/// temporary file renamed into place, intermediate directories created; over HTTP a PUT).
/// `data` may be NULL when `len` is 0.
///
/// # Safety
/// `st` is a live handle; `key` is NUL-terminated; `data` holds `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_storage_put(
    st: *const cv_storage,
    key: *const c_char,
    data: *const u8,
    len: usize,
) -> cv_status {
    boundary(|| {
        let s = storage_arg(st)?;
        let key = key_arg(key)?;
        let bytes: &[u8] = if len == 0 {
            &[]
        } else if data.is_null() {
            return Err(Error::invalid(format!("data is NULL but len is {len}")));
        } else {
            std::slice::from_raw_parts(data, len)
        };
        s.put(key, bytes, ContentEncoding::Identity, "application/octet-stream")
    })
}

/// Delete the file `key` (every stored variant of it: plain, `.gz`, `.br`, `.zstd`); a missing
/// file is no error.
///
/// # Safety
/// `st` is a live handle; `key` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn cv_storage_delete(st: *const cv_storage, key: *const c_char) -> cv_status {
    boundary(|| {
        let s = storage_arg(st)?;
        let key = key_arg(key)?;
        s.delete(key)
    })
}

/// Whether the file `key` exists (in any stored variant): `*out` receives 1 or 0.
///
/// # Safety
/// `st` is a live handle; `key` is NUL-terminated; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_storage_exists(st: *const cv_storage, key: *const c_char, out: *mut i32) -> cv_status {
    boundary(|| {
        let s = storage_arg(st)?;
        let key = key_arg(key)?;
        let out = out_arg(out, "out")?;
        *out = i32::from(s.exists(key)?);
        Ok(())
    })
}
