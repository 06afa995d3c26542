//! JPEG decoding with libjpeg-turbo's decoder (built statically through `mozjpeg-sys`): the
//! decoder tensorstore and Neuroglancer use, so chroma upsampling (4:2:0 from tensorstore, 4:4:4
//! from cloud-volume) matches the references. libjpeg reports errors through a callback that
//! must not return; ours unwinds (the C code is built with unwind tables) and the unwind is
//! caught here. Warnings (corrupt or truncated data that libjpeg would paper over) are errors.

use std::ffi::{c_int, c_ulong};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use mozjpeg_sys as mj;

/// libjpeg's error manager plus the first warning it emitted.
#[repr(C)]
struct ErrorMgr {
    base: mj::jpeg_error_mgr,
    warning: Option<String>,
}

/// The payload our error callback unwinds with.
struct JpegFailure(String);

fn message(cinfo: &mut mj::jpeg_common_struct) -> String {
    let buf = [0u8; 80];
    // SAFETY: cinfo.err points at the error manager installed below.
    unsafe {
        if let Some(fmt) = (*cinfo.err).format_message {
            fmt(cinfo, &buf);
        }
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut mj::jpeg_common_struct) {
    let msg = message(cinfo);
    // resume_unwind skips the panic hook: nothing is printed on the host's stderr.
    resume_unwind(Box::new(JpegFailure(msg)));
}

unsafe extern "C-unwind" fn emit_message(cinfo: &mut mj::jpeg_common_struct, level: c_int) {
    if level < 0 {
        let msg = message(cinfo);
        // SAFETY: err is the `base` field of an ErrorMgr (repr(C), first field).
        let mgr = &mut *cinfo.err.cast::<ErrorMgr>();
        mgr.base.num_warnings += 1;
        mgr.warning.get_or_insert(msg);
    }
}

/// A decoded image: interleaved 8-bit samples.
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub components: usize,
    pub pixels: Vec<u8>,
}

/// Why a decode failed.
pub enum Failure<E> {
    /// The header's size was refused by the caller's check.
    Header(E),
    /// libjpeg's complaint (the caller adds the chunk's URL).
    Corrupt(String),
}

impl<E> From<String> for Failure<E> {
    fn from(m: String) -> Self {
        Failure::Corrupt(m)
    }
}

/// Decode `data` to `components` (1: grayscale, 3: RGB) interleaved samples. `check(width,
/// height)` sees the size the header states before anything is allocated for the image.
pub fn decode<E>(data: &[u8], components: usize, check: impl FnOnce(usize, usize) -> Result<(), E>) -> Result<Image, Failure<E>> {
    if data.is_empty() {
        return Err(Failure::Corrupt("empty JPEG".into()));
    }
    // SAFETY: zeroed is the documented initial state of both structs before jpeg_std_error and
    // jpeg_create_decompress; both live on this frame until jpeg_destroy_decompress.
    let mut err: ErrorMgr = ErrorMgr { base: unsafe { std::mem::zeroed() }, warning: None };
    let mut cinfo: mj::jpeg_decompress_struct = unsafe { std::mem::zeroed() };
    unsafe {
        mj::jpeg_std_error(&mut err.base);
    }
    err.base.error_exit = Some(error_exit);
    err.base.emit_message = Some(emit_message);
    cinfo.common.err = &mut err.base;

    let result = catch_unwind(AssertUnwindSafe(|| -> Result<Image, Failure<E>> {
        // SAFETY: libjpeg calls on an initialised decompressor reading from `data`, which
        // outlives it; row pointers stay inside `pixels`.
        unsafe {
            mj::jpeg_create_decompress(&mut cinfo);
            mj::jpeg_mem_src(&mut cinfo, data.as_ptr(), data.len() as c_ulong);
            mj::jpeg_read_header(&mut cinfo, 1);
            let found = cinfo.num_components as usize;
            if found != components {
                return Err(format!("JPEG has {found} component(s), the layer {components} channel(s)").into());
            }
            check(cinfo.image_width as usize, cinfo.image_height as usize).map_err(Failure::Header)?;
            cinfo.out_color_space = if components == 1 { mj::J_COLOR_SPACE::JCS_GRAYSCALE } else { mj::J_COLOR_SPACE::JCS_RGB };
            mj::jpeg_start_decompress(&mut cinfo);
            let (w, h) = (cinfo.output_width as usize, cinfo.output_height as usize);
            if cinfo.output_components as usize != components {
                return Err(format!("JPEG decodes to {} components", cinfo.output_components).into());
            }
            let stride = w * components;
            let mut pixels = vec![0u8; stride * h];
            let base = pixels.as_mut_ptr();
            let mut rows: Vec<*mut u8> = (0..h).map(|r| base.add(r * stride)).collect();
            while (cinfo.output_scanline as usize) < h {
                let row = cinfo.output_scanline as usize;
                let n = mj::jpeg_read_scanlines(&mut cinfo, rows.as_mut_ptr().add(row), (h - row) as u32);
                if n == 0 {
                    return Err(format!("JPEG ended after {row} of {h} rows").into());
                }
            }
            mj::jpeg_finish_decompress(&mut cinfo);
            Ok(Image { width: w, height: h, components, pixels })
        }
    }));
    // SAFETY: destroying a created (or zeroed, never created) decompressor is allowed.
    unsafe { mj::jpeg_destroy_decompress(&mut cinfo) };
    let image = match result {
        Ok(r) => r?,
        Err(payload) => {
            return Err(match payload.downcast::<JpegFailure>() {
                Ok(f) => Failure::Corrupt(f.0),
                Err(other) => resume_unwind(other),
            })
        }
    };
    if let Some(w) = err.warning {
        return Err(Failure::Corrupt(w));
    }
    Ok(image)
}
