//! Calling the C ABI (`cloudvolume::ffi`) from Rust: statuses and last errors, volume handles
//! freed on drop, and reads that check what the library promises on both outcomes (a success
//! leaves no last error and no stray bytes; a failure always has a message and writes no
//! output handle).

use std::ffi::{c_void, CStr, CString};

use cloudvolume::ffi::*;
use serde_json::{Map, Value};

/// A failed call: its status and `cv_last_error()`.
pub type Failure = (cv_status, String);

/// This thread's last error.
pub fn last_error() -> String {
    // SAFETY: cv_last_error returns a NUL-terminated string owned by the library.
    unsafe { CStr::from_ptr(cv_last_error()) }.to_string_lossy().into_owned()
}

pub fn status_name(s: cv_status) -> &'static str {
    match s {
        CV_OK => "CV_OK",
        CV_ERR_INVALID_ARGUMENT => "CV_ERR_INVALID_ARGUMENT",
        CV_ERR_OUT_OF_BOUNDS => "CV_ERR_OUT_OF_BOUNDS",
        CV_ERR_NOT_FOUND => "CV_ERR_NOT_FOUND",
        CV_ERR_IO => "CV_ERR_IO",
        CV_ERR_AUTH => "CV_ERR_AUTH",
        CV_ERR_DECODE => "CV_ERR_DECODE",
        CV_ERR_UNSUPPORTED => "CV_ERR_UNSUPPORTED",
        CV_ERR_INTERNAL => "CV_ERR_INTERNAL",
        _ => "(unknown status)",
    }
}

pub fn cs(s: &str) -> CString {
    CString::new(s).expect("no NUL in the string")
}

/// A status as a result: success leaves no last error, failure always has a message.
#[track_caller]
pub fn status(st: cv_status) -> Result<(), Failure> {
    if st == CV_OK {
        assert_eq!(last_error(), "", "a successful call left a last error");
        Ok(())
    } else {
        let m = last_error();
        assert!(!m.is_empty(), "{} without a message", status_name(st));
        Err((st, m))
    }
}

/// A status and its message (empty on success), for comparisons and reports.
#[track_caller]
pub fn status_and_message(st: cv_status) -> (cv_status, String) {
    match status(st) {
        Ok(()) => (CV_OK, String::new()),
        Err(f) => f,
    }
}

#[track_caller]
pub fn ok<T>(r: Result<T, Failure>, what: &str) -> T {
    r.unwrap_or_else(|(s, m)| panic!("{what}: {} {m}", status_name(s)))
}

/// Assert a failure with status `want` whose message contains every needle; return it.
#[track_caller]
pub fn expect_err<T>(r: Result<T, Failure>, want: cv_status, needles: &[&str]) -> String {
    let (st, msg) = match r {
        Ok(_) => panic!("expected {} (naming {needles:?}), got success", status_name(want)),
        Err(f) => f,
    };
    assert_eq!(st, want, "expected {} (naming {needles:?}), got {}: {msg}", status_name(want), status_name(st));
    assert!(!msg.is_empty(), "{} with an empty message", status_name(st));
    for n in needles {
        assert!(msg.contains(n), "message of {} does not name {n:?}: {msg}", status_name(st));
    }
    msg
}

/// The options argument of `cv_open`: none (NULL), a JSON string, a JSON value, or a JSON
/// object (NULL when empty).
pub trait OpenOptions {
    fn c_string(&self) -> Option<CString>;
}

impl OpenOptions for Option<&str> {
    fn c_string(&self) -> Option<CString> {
        self.map(cs)
    }
}

impl OpenOptions for &str {
    fn c_string(&self) -> Option<CString> {
        Some(cs(self))
    }
}

impl OpenOptions for &String {
    fn c_string(&self) -> Option<CString> {
        Some(cs(self))
    }
}

impl OpenOptions for &Value {
    fn c_string(&self) -> Option<CString> {
        Some(cs(&self.to_string()))
    }
}

impl OpenOptions for &Map<String, Value> {
    fn c_string(&self) -> Option<CString> {
        (!self.is_empty()).then(|| cs(&Value::Object((*self).clone()).to_string()))
    }
}

/// An open volume handle, freed on drop. Handles are thread-safe (c-api.md).
pub struct Vol(pub *mut cv_volume);

// SAFETY: the C ABI promises thread-safe handles (many threads may read through one).
unsafe impl Send for Vol {}
unsafe impl Sync for Vol {}

impl Drop for Vol {
    fn drop(&mut self) {
        // SAFETY: the handle came from cv_open or cv_create and is freed once.
        unsafe { cv_free(self.0) }
    }
}

/// `cv_open`: a handle on success (and no last error); on failure no handle written and a
/// message.
#[track_caller]
pub fn open(url: &str, opts: impl OpenOptions) -> Result<Vol, Failure> {
    open_c(url, opts.c_string().as_deref())
}

#[track_caller]
pub fn open_ok(url: &str, opts: impl OpenOptions) -> Vol {
    let o = opts.c_string();
    open_c(url, o.as_deref()).unwrap_or_else(|(s, m)| panic!("cv_open({url}, {o:?}) failed: {} {m}", status_name(s)))
}

#[track_caller]
fn open_c(url: &str, opts: Option<&CStr>) -> Result<Vol, Failure> {
    let u = cs(url);
    let mut out: *mut cv_volume = std::ptr::null_mut();
    // SAFETY: valid strings and out pointer.
    let st = unsafe { cv_open(u.as_ptr(), opts.map_or(std::ptr::null(), CStr::as_ptr), &mut out) };
    if st == CV_OK {
        assert!(!out.is_null(), "cv_open succeeded without a handle");
    } else {
        assert!(out.is_null(), "cv_open wrote its output on failure ({})", status_name(st));
    }
    status(st).map(|()| Vol(out))
}

impl Vol {
    /// `cv_cutout_len` of `[lo, hi)`.
    pub fn cutout_len(&self, lo: [i64; 3], hi: [i64; 3]) -> Result<usize, Failure> {
        let mut n = 0usize;
        // SAFETY: a live handle and valid pointers.
        status(unsafe { cv_cutout_len(self.0, lo.as_ptr(), hi.as_ptr(), &mut n) })?;
        Ok(n)
    }

    /// Read `[lo, hi)` at `mip` into a buffer of `len` bytes (the exact size when None, 0 when
    /// `cv_cutout_len` refuses the box), checking that no byte beyond the buffer is touched.
    #[track_caller]
    pub fn read_len(&self, mip: u32, lo: [i64; 3], hi: [i64; 3], len: Option<usize>) -> Result<Vec<u8>, Failure> {
        let len = len.unwrap_or_else(|| {
            let mut n = 0usize;
            // SAFETY: a live handle and valid pointers.
            let st = unsafe { cv_cutout_len(self.0, lo.as_ptr(), hi.as_ptr(), &mut n) };
            if st == CV_OK {
                n
            } else {
                0
            }
        });
        const GUARD: usize = 32;
        let mut buf = vec![0xA5u8; len + 2 * GUARD];
        // SAFETY: the buffer holds len bytes after the guard.
        let st =
            unsafe { cv_cutout_into(self.0, mip, lo.as_ptr(), hi.as_ptr(), buf.as_mut_ptr().add(GUARD).cast(), len) };
        assert!(
            buf[..GUARD].iter().chain(&buf[GUARD + len..]).all(|&b| b == 0xA5),
            "cv_cutout_into wrote outside its buffer (status {})",
            status_name(st)
        );
        status(st)?;
        Ok(buf[GUARD..GUARD + len].to_vec())
    }

    #[track_caller]
    pub fn read(&self, mip: u32, lo: [i64; 3], hi: [i64; 3]) -> Result<Vec<u8>, Failure> {
        self.read_len(mip, lo, hi, None)
    }

    #[track_caller]
    pub fn read_ok(&self, mip: u32, lo: [i64; 3], hi: [i64; 3]) -> Vec<u8> {
        ok(self.read(mip, lo, hi), &format!("read {lo:?}..{hi:?} at mip {mip}"))
    }

    /// `cv_cutout_into` of `[lo, hi)` at `mip` into `buf`: the status and its message.
    #[track_caller]
    pub fn cutout_into(&self, mip: u32, lo: [i64; 3], hi: [i64; 3], buf: &mut [u8]) -> (cv_status, String) {
        // SAFETY: a live handle, 3-element lo/hi, buf of buf.len() writable bytes.
        let st = unsafe {
            cv_cutout_into(self.0, mip, lo.as_ptr(), hi.as_ptr(), buf.as_mut_ptr().cast::<c_void>(), buf.len())
        };
        status_and_message(st)
    }

    /// `cv_scattered_points` of `points` at `mip` into `buf`: the status and its message.
    #[track_caller]
    pub fn points_into(&self, mip: u32, points: &[[i64; 3]], buf: &mut [u8]) -> (cv_status, String) {
        let xyz: Vec<i64> = points.iter().flatten().copied().collect();
        // SAFETY: a live handle, 3 * n coordinates, buf of buf.len() writable bytes.
        let st = unsafe {
            cv_scattered_points(self.0, mip, points.len(), xyz.as_ptr(), buf.as_mut_ptr().cast::<c_void>(), buf.len())
        };
        status_and_message(st)
    }

    /// `cv_chunk_count`, then `cv_chunks_exist` over `[lo, hi)`: one flag per grid cell (x
    /// fastest) and the count of present ones the call reported. The message of a failure
    /// names the call.
    #[track_caller]
    pub fn chunks_exist(&self, mip: u32, lo: [i64; 3], hi: [i64; 3]) -> Result<(Vec<u8>, usize), Failure> {
        let mut n = usize::MAX;
        // SAFETY: a live handle, 3-element lo/hi, a writable count.
        status(unsafe { cv_chunk_count(self.0, mip, lo.as_ptr(), hi.as_ptr(), &mut n) })
            .map_err(|(st, m)| (st, format!("cv_chunk_count: {m}")))?;
        let mut flags = vec![0xA5u8; n];
        let mut present = usize::MAX;
        // SAFETY: as above; flags holds n writable bytes.
        status(unsafe { cv_chunks_exist(self.0, mip, lo.as_ptr(), hi.as_ptr(), flags.as_mut_ptr(), n, &mut present) })
            .map_err(|(st, m)| (st, format!("cv_chunks_exist: {m}")))?;
        Ok((flags, present))
    }

    /// `cv_has_data` of `mip`: whether the scale holds data. The output is checked to be 0 or
    /// 1 on success and left alone on failure.
    #[track_caller]
    pub fn has_data(&self, mip: u32) -> Result<bool, Failure> {
        let mut out: i32 = -7;
        // SAFETY: a live handle and a writable int32_t.
        let r = status(unsafe { cv_has_data(self.0, mip, &mut out) });
        match r {
            Ok(()) => {
                assert!(out == 0 || out == 1, "cv_has_data wrote {out}");
                Ok(out == 1)
            }
            Err(f) => {
                assert_eq!(out, -7, "cv_has_data wrote its output on failure");
                Err(f)
            }
        }
    }

    /// `cv_unique` over `[lo, hi)`: the labels and their counts (copied, the arrays freed).
    #[track_caller]
    pub fn unique(&self, mip: u32, lo: [i64; 3], hi: [i64; 3]) -> Result<(Vec<u64>, Vec<u64>), Failure> {
        let (mut labels, mut counts, mut n) = (std::ptr::null_mut::<u64>(), std::ptr::null_mut::<u64>(), usize::MAX);
        // SAFETY: a live handle, 3-element lo/hi, writable outputs.
        status(unsafe { cv_unique(self.0, mip, lo.as_ptr(), hi.as_ptr(), &mut labels, &mut counts, &mut n) })?;
        assert_eq!(n == 0, labels.is_null() && counts.is_null(), "cv_unique: NULL arrays exactly when n is 0");
        let copy = |p: *mut u64| {
            if p.is_null() {
                return Vec::new();
            }
            // SAFETY: cv_unique returned n elements at p, released here once.
            unsafe {
                let v = std::slice::from_raw_parts(p, n).to_vec();
                cv_labels_free(p, n);
                v
            }
        };
        Ok((copy(labels), copy(counts)))
    }

    /// `cv_label_mask_into` over `[lo, hi)` with an output of `len` bytes.
    #[track_caller]
    pub fn label_mask(
        &self,
        mip: u32,
        lo: [i64; 3],
        hi: [i64; 3],
        labels: &[u64],
        len: usize,
    ) -> Result<Vec<u8>, Failure> {
        let mut out = vec![0xA5u8; len];
        // SAFETY: a live handle, 3-element lo/hi, labels and out of the lengths given.
        status(unsafe {
            cv_label_mask_into(
                self.0,
                mip,
                lo.as_ptr(),
                hi.as_ptr(),
                labels.as_ptr(),
                labels.len(),
                out.as_mut_ptr(),
                len,
            )
        })?;
        Ok(out)
    }

    /// `cv_renumber` over `[lo, hi)`: the bytes, their `CV_DTYPE_*` code and the labels (copied,
    /// the library's arrays freed).
    #[track_caller]
    pub fn renumber(&self, mip: u32, lo: [i64; 3], hi: [i64; 3]) -> Result<(Vec<u8>, i32, Vec<u64>), Failure> {
        let (mut out, mut len, mut dtype) = (std::ptr::null_mut::<u8>(), 0usize, -1i32);
        let (mut labels, mut n) = (std::ptr::null_mut::<u64>(), 0usize);
        // SAFETY: a live handle, 3-element lo/hi, writable outputs.
        status(unsafe {
            cv_renumber(self.0, mip, lo.as_ptr(), hi.as_ptr(), &mut out, &mut len, &mut dtype, &mut labels, &mut n)
        })?;
        // SAFETY: the arrays cv_renumber returned, of the lengths it gave, released once.
        unsafe {
            let data = std::slice::from_raw_parts(out, len).to_vec();
            cloudvolume::ffi::storage::cv_bytes_free(out, len);
            let l = std::slice::from_raw_parts(labels, n).to_vec();
            cv_labels_free(labels, n);
            Ok((data, dtype, l))
        }
    }

    /// `cv_download_files` over `[lo, hi)`: (name, bytes) of each file, the list walked with
    /// `cv_files_count`/`cv_files_get` and freed.
    #[track_caller]
    pub fn download_files(
        &self,
        mip: u32,
        lo: [i64; 3],
        hi: [i64; 3],
        decompress: bool,
    ) -> Result<Vec<(String, Vec<u8>)>, Failure> {
        let mut files = std::ptr::null_mut::<cv_files>();
        // SAFETY: a live handle, 3-element lo/hi, a writable output.
        status(unsafe { cv_download_files(self.0, mip, lo.as_ptr(), hi.as_ptr(), i32::from(decompress), &mut files) })?;
        let mut out = Vec::new();
        // SAFETY: the list cv_download_files returned, read and freed once.
        unsafe {
            for i in 0..cv_files_count(files) {
                let (mut name, mut data, mut len) = (std::ptr::null(), std::ptr::null(), 0usize);
                status(cv_files_get(files, i, &mut name, &mut data, &mut len))?;
                out.push((
                    CStr::from_ptr(name).to_string_lossy().into_owned(),
                    std::slice::from_raw_parts(data, len).to_vec(),
                ));
            }
            let n = cv_files_count(files);
            let (mut name, mut data, mut len) = (std::ptr::null(), std::ptr::null(), 0usize);
            assert_ne!(cv_files_get(files, n, &mut name, &mut data, &mut len), CV_OK, "file {n} of {n} is refused");
            cv_files_free(files);
        }
        Ok(out)
    }

    /// `cv_point_box`: the box `download_point` reads.
    #[track_caller]
    pub fn point_box(
        &self,
        mip: u32,
        pt: [f64; 3],
        size: [i64; 3],
        coord_resolution: Option<[f64; 3]>,
    ) -> Result<([i64; 3], [i64; 3]), Failure> {
        let (mut lo, mut hi) = ([0i64; 3], [0i64; 3]);
        let cr = coord_resolution.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: a live handle and arrays of three.
        status(unsafe { cv_point_box(self.0, mip, pt.as_ptr(), size.as_ptr(), cr, lo.as_mut_ptr(), hi.as_mut_ptr()) })?;
        Ok((lo, hi))
    }
}
