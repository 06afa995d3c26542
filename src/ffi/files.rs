//! The C ABI of `download_files`: the stored chunk files of a box, as a list the caller walks
//! and releases.

use std::ffi::{c_char, CString};

use super::*;
use crate::error::Error;

const FILES_LIVE: u64 = 0x6376_5f66_696c_6573; // "cv_files"

/// The chunk files of a box. Opaque to C; created by `cv_download_files`, released by
/// `cv_files_free`; read-only, so any thread may read it.
pub struct cv_files {
    magic: u64,
    files: Vec<(CString, Vec<u8>)>,
}

/// # Safety
/// `p` is NULL, or a pointer from `cv_download_files` not yet freed.
unsafe fn files_arg<'a>(p: *const cv_files) -> Result<&'a [(CString, Vec<u8>)]> {
    if p.is_null() {
        return Err(Error::invalid("files is NULL"));
    }
    let h = &*p;
    if h.magic != FILES_LIVE {
        return Err(Error::invalid("files is not a live cv_files list (freed or foreign pointer)"));
    }
    Ok(&h.files)
}

/// The stored files of the chunks meeting the box `[lo, hi)` at `mip` (cloud-volume's
/// `download_files`): each named by its key (`8_8_40/0-64_0-64_0-64`) or, in a sharded scale,
/// by its compressed Morton code in decimal; with gzip, brotli or zstd removed when
/// `decompress` is non-zero; missing chunks left out; in x-fastest cell order. `*out`
/// receives a list to read with `cv_files_count` and `cv_files_get`, and to release with
/// `cv_files_free`.
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_download_files(
    vol: *const cv_volume,
    mip: u32,
    lo: *const i64,
    hi: *const i64,
    decompress: i32,
    out: *mut *mut cv_files,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = box_arg(lo, hi)?;
        let out = out_arg(out, "out")?;
        let files = v
            .download_files(mip, &bbox, decompress != 0)?
            .into_iter()
            .map(|(n, b)| Ok((CString::new(n).map_err(|_| Error::internal("a file name holds a NUL byte"))?, b)))
            .collect::<Result<Vec<_>>>()?;
        *out = Box::into_raw(Box::new(cv_files { magic: FILES_LIVE, files }));
        Ok(())
    })
}

/// The number of files in `files` (0 for NULL or a freed list).
///
/// # Safety
/// `files` is NULL or a list from `cv_download_files`.
#[no_mangle]
pub unsafe extern "C" fn cv_files_count(files: *const cv_files) -> usize {
    files_arg(files).map_or(0, <[_]>::len)
}

/// File `i` of `files`: `*name` (NUL-terminated) and `*data` (`*len` bytes) stay valid until
/// `cv_files_free`.
///
/// # Safety
/// `files` is a live list; the output pointers are writable.
#[no_mangle]
pub unsafe extern "C" fn cv_files_get(
    files: *const cv_files,
    i: usize,
    name: *mut *const c_char,
    data: *mut *const u8,
    len: *mut usize,
) -> cv_status {
    boundary(|| {
        let all = files_arg(files)?;
        let (name, data, len) = (out_arg(name, "name")?, out_arg(data, "data")?, out_arg(len, "len")?);
        let (n, b) = all.get(i).ok_or_else(|| Error::invalid(format!("file {i} of a list of {}", all.len())))?;
        *name = n.as_ptr();
        *data = b.as_ptr();
        *len = b.len();
        Ok(())
    })
}

/// Release a list from `cv_download_files`. NULL is a no-op.
///
/// # Safety
/// `files` is NULL or a live list, used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn cv_files_free(files: *mut cv_files) {
    if files.is_null() || (*files).magic != FILES_LIVE {
        return;
    }
    (*files).magic = 0;
    drop(Box::from_raw(files));
}
