//! The jpeg encoding (uint8, 1 or 3 channels), through libjpeg-turbo (built statically by
//! `mozjpeg-sys`) both ways.
//!
//! - Decoding: the decoder tensorstore and Neuroglancer use, so chroma upsampling (4:2:0 from
//!   tensorstore, 4:4:4 from cloud-volume) matches the references. The image's size is checked
//!   against the chunk once its header is read, before anything is allocated for it; warnings
//!   (corrupt or truncated data that libjpeg would paper over) are errors.
//! - Encoding: the `JCP_FASTEST` profile (baseline sequential, standard Huffman tables, no
//!   trellis: libjpeg-turbo's own defaults, as `simplejpeg`/TurboJPEG use them), accurate
//!   integer DCT, and 4:4:4 chroma for 3 channels like cloud-volume (tensorstore writes 4:2:0);
//!   channels are rarely true colour in volumes, so no channel is subsampled. The headers
//!   (tables, sampling) equal those of cloud-volume's encoder at the same quality; a few
//!   coefficients of the scan differ (mozjpeg is built on an older libjpeg-turbo than
//!   simplejpeg's), with the same fidelity.
//!
//! libjpeg reports errors through a callback that must not return; ours unwinds (the C code is
//! built with unwind tables) and the unwind is caught here, by [`guarded`].

use std::ffi::{c_int, c_ulong};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use mozjpeg_sys as mj;

use super::image::{check_pixels, copy_interleaved, image_dims, interleave};
use super::{ChunkSpec, Codec, EncodeOptions, OutView, Planar};
use crate::error::{Error, Result};
use crate::format::{Bbox, DataType};

/// Largest JPEG width or height (libjpeg's `JPEG_MAX_DIMENSION`).
pub const JPEG_MAX_DIMENSION: usize = 65_500;

/// The jpeg codec.
pub struct Jpeg;

impl Codec for Jpeg {
    /// One channel whose image rows are the chunk's x rows, read across the chunk's whole x
    /// extent into a view with contiguous rows: libjpeg writes each scanline straight into its
    /// row of the output (rows outside `region` into one scratch row), with no decoded chunk
    /// in between. Otherwise the chunk is decoded whole and its part copied.
    fn decode_into(&self, spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()> {
        let url = spec.url;
        let failed = |e: Failure<Error>| match e {
            Failure::Header(e) => e,
            Failure::Corrupt(m) => Error::decode(format!("{url}: corrupt JPEG: {m}")),
        };
        let cell = spec.cell;
        let s = cell.shape().map(|v| v as usize);
        let full_rows = region.lo[0] == cell.lo[0] && region.hi[0] == cell.hi[0];
        if spec.channels == 1
            && out.item == 1
            && full_rows
            && out.row_ptr(region.lo[0], region.hi[0], region.lo[1], region.lo[2], 0).is_some()
        {
            let mut scratch = vec![0u8; s[0]];
            let spare = scratch.as_mut_ptr();
            let rows = |w: usize, h: usize| -> Result<Vec<*mut u8>, Error> {
                check_pixels(spec, w, h, "JPEG")?;
                if w != s[0] {
                    return Ok(Vec::new());
                }
                Ok((0..h)
                    .map(|r| {
                        let (y, z) = (cell.lo[1] + (r % s[1]) as i64, cell.lo[2] + (r / s[1]) as i64);
                        let inside =
                            (region.lo[1]..region.hi[1]).contains(&y) && (region.lo[2]..region.hi[2]).contains(&z);
                        if inside {
                            out.row_ptr(cell.lo[0], cell.hi[0], y, z, 0).unwrap_or(spare)
                        } else {
                            spare
                        }
                    })
                    .collect())
            };
            // SAFETY: each pointer is a row of `s[0]` bytes: this chunk's own rows of the view
            // (regions of distinct chunks are disjoint) or the scratch row, which outlives the call.
            match unsafe { decode_rows(data, 1, rows) }.map_err(failed)? {
                Decoded::InPlace => return Ok(()),
                Decoded::Declined => {}
            }
        }
        let img = decode(data, spec.channels, |w, h| check_pixels(spec, w, h, "JPEG")).map_err(failed)?;
        copy_interleaved(&img.pixels, &spec.cell, spec.channels, region, out);
        Ok(())
    }

    fn encode(&self, chunk: &Planar<'_>, opts: &EncodeOptions) -> Result<Vec<u8>> {
        let (url, channels, quality) = (chunk.url, chunk.channels, opts.jpeg_quality);
        if chunk.dtype != DataType::U8 || !matches!(channels, 1 | 3) {
            return Err(Error::invalid(format!(
                "{url}: jpeg holds uint8 with 1 or 3 channels, not {} with {channels}",
                chunk.dtype.name()
            )));
        }
        if quality > 100 {
            return Err(Error::invalid(format!("{url}: jpeg quality {quality} is not in 0..=100")));
        }
        let shape = chunk.shape;
        let (w, h) = image_dims(shape, JPEG_MAX_DIMENSION).ok_or_else(|| {
            Error::invalid(format!(
                "{url}: a {}x{}x{} chunk has no image factorisation with both sides <= {JPEG_MAX_DIMENSION} (JPEG's limit)",
                shape[0], shape[1], shape[2]
            ))
        })?;
        let pixels = interleave(chunk.data, channels, 1, false);
        compress(&pixels, w, h, channels, quality)
            .map_err(|e| Error::internal(format!("{url}: JPEG compression of a {w}x{h} image failed: {e}")))
    }

    fn content_type(&self) -> &'static str {
        "image/jpeg"
    }
}

/// libjpeg's error manager plus the first warning it emitted.
#[repr(C)]
struct ErrorMgr {
    base: mj::jpeg_error_mgr,
    warning: Option<String>,
}

impl ErrorMgr {
    /// A manager whose errors unwind (see [`guarded`]) and whose warnings are kept.
    fn new() -> ErrorMgr {
        // SAFETY: zeroed is the documented initial state before jpeg_std_error fills it.
        let mut err = ErrorMgr { base: unsafe { std::mem::zeroed() }, warning: None };
        // SAFETY: `err.base` is a valid jpeg_error_mgr to initialise.
        unsafe {
            mj::jpeg_std_error(&mut err.base);
        }
        err.base.error_exit = Some(error_exit);
        err.base.emit_message = Some(emit_message);
        err
    }
}

/// The payload our error callback unwinds with.
struct JpegFailure(String);

fn message(cinfo: &mut mj::jpeg_common_struct) -> String {
    let buf = [0u8; 80];
    // SAFETY: cinfo.err points at the error manager installed by the caller.
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

/// Run `f` (libjpeg calls), turning the unwind of [`error_exit`] back into libjpeg's message;
/// any other panic goes on unwinding.
fn guarded<T, E: From<String>>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => match payload.downcast::<JpegFailure>() {
            Ok(failure) => Err(E::from(failure.0)),
            Err(other) => resume_unwind(other),
        },
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
///
/// # Errors
/// The check's error, or libjpeg's complaint.
pub fn decode<E>(
    data: &[u8],
    components: usize,
    check: impl FnOnce(usize, usize) -> Result<(), E>,
) -> Result<Image, Failure<E>> {
    let mut pixels = Vec::new();
    let mut dims = (0, 0);
    let rows = |w: usize, h: usize| -> Result<Vec<*mut u8>, E> {
        check(w, h)?;
        let stride = w * components;
        pixels = vec![0u8; stride * h];
        dims = (w, h);
        let base = pixels.as_mut_ptr();
        // SAFETY: every row starts inside `pixels`, `stride` bytes apart.
        Ok((0..h).map(|r| unsafe { base.add(r * stride) }).collect())
    };
    // SAFETY: the rows are disjoint `stride`-byte rows of `pixels`, alive until decode_rows returns.
    unsafe { decode_rows(data, components, rows)? };
    Ok(Image { width: dims.0, height: dims.1, components, pixels })
}

/// What [`decode_rows`] did.
pub enum Decoded {
    /// Every scanline was written where its pointer said.
    InPlace,
    /// The caller's `rows` gave no pointers (it will not take this image's shape): nothing was
    /// decoded.
    Declined,
}

/// Decode `data` to `components` interleaved samples, scanline `r` written at `rows(w, h)[r]`.
/// `rows(width, height)` sees the size the header states before anything is decoded; it may
/// refuse it (its error) or decline it (no pointers).
///
/// # Safety
/// Each pointer `rows` gives must be valid for writing `width * components` bytes until this
/// returns; pointers may repeat (rows whose samples are not wanted).
///
/// # Errors
/// The error of `rows`, or libjpeg's complaint.
pub unsafe fn decode_rows<E>(
    data: &[u8],
    components: usize,
    rows: impl FnOnce(usize, usize) -> Result<Vec<*mut u8>, E>,
) -> Result<Decoded, Failure<E>> {
    if data.is_empty() {
        return Err(Failure::Corrupt("empty JPEG".into()));
    }
    let mut err = ErrorMgr::new();
    // SAFETY: zeroed is the documented initial state before jpeg_create_decompress; it lives
    // on this frame until jpeg_destroy_decompress.
    let mut cinfo: mj::jpeg_decompress_struct = unsafe { std::mem::zeroed() };
    cinfo.common.err = &mut err.base;
    let result = guarded(|| -> Result<Decoded, Failure<E>> {
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
            cinfo.out_color_space =
                if components == 1 { mj::J_COLOR_SPACE::JCS_GRAYSCALE } else { mj::J_COLOR_SPACE::JCS_RGB };
            mj::jpeg_start_decompress(&mut cinfo);
            let (w, h) = (cinfo.output_width as usize, cinfo.output_height as usize);
            if cinfo.output_components as usize != components {
                return Err(format!("JPEG decodes to {} components", cinfo.output_components).into());
            }
            let mut rows = rows(w, h).map_err(Failure::Header)?;
            if rows.is_empty() {
                return Ok(Decoded::Declined);
            }
            if rows.len() != h {
                return Err(format!("{} row pointers for a JPEG of {h} rows", rows.len()).into());
            }
            while (cinfo.output_scanline as usize) < h {
                let row = cinfo.output_scanline as usize;
                let n = mj::jpeg_read_scanlines(&mut cinfo, rows.as_mut_ptr().add(row), (h - row) as u32);
                if n == 0 {
                    return Err(format!("JPEG ended after {row} of {h} rows").into());
                }
            }
            mj::jpeg_finish_decompress(&mut cinfo);
            Ok(Decoded::InPlace)
        }
    });
    // SAFETY: destroying a created (or zeroed, never created) decompressor is allowed.
    unsafe { mj::jpeg_destroy_decompress(&mut cinfo) };
    let decoded = result?;
    if let Some(w) = err.warning {
        return Err(Failure::Corrupt(w));
    }
    Ok(decoded)
}

/// A destination manager writing into a Rust vector (no malloc'd buffer to free on errors).
#[repr(C)]
struct Dest {
    base: mj::jpeg_destination_mgr,
    buf: Vec<u8>,
}

unsafe extern "C-unwind" fn dest_init(cinfo: &mut mj::jpeg_compress_struct) {
    // SAFETY: cinfo.dest is the `base` field of a Dest (repr(C), first field).
    let d = &mut *cinfo.dest.cast::<Dest>();
    d.base.next_output_byte = d.buf.as_mut_ptr();
    d.base.free_in_buffer = d.buf.len();
}

unsafe extern "C-unwind" fn dest_empty(cinfo: &mut mj::jpeg_compress_struct) -> mj::boolean {
    // libjpeg's contract: the whole buffer is full when this is called.
    let d = &mut *cinfo.dest.cast::<Dest>();
    let used = d.buf.len();
    d.buf.resize(used * 2, 0);
    d.base.next_output_byte = d.buf.as_mut_ptr().add(used);
    d.base.free_in_buffer = d.buf.len() - used;
    1
}

unsafe extern "C-unwind" fn dest_term(cinfo: &mut mj::jpeg_compress_struct) {
    let d = &mut *cinfo.dest.cast::<Dest>();
    let used = d.buf.len() - d.base.free_in_buffer;
    d.buf.truncate(used);
}

/// Compress `pixels` (interleaved, `components` of 1 or 3) as a baseline JPEG.
fn compress(pixels: &[u8], width: usize, height: usize, components: usize, quality: u8) -> Result<Vec<u8>, String> {
    let mut err = ErrorMgr::new();
    // SAFETY: zeroed is the documented initial state before jpeg_create_compress; the struct
    // and `dest` live on this frame until jpeg_destroy_compress.
    let mut cinfo: mj::jpeg_compress_struct = unsafe { std::mem::zeroed() };
    let mut dest = Dest {
        base: mj::jpeg_destination_mgr {
            next_output_byte: std::ptr::null_mut(),
            free_in_buffer: 0,
            init_destination: Some(dest_init),
            empty_output_buffer: Some(dest_empty),
            term_destination: Some(dest_term),
        },
        buf: vec![0u8; (pixels.len() / 4).max(4096)],
    };
    cinfo.common.err = &mut err.base;
    let result = guarded(|| -> Result<(), String> {
        // SAFETY: libjpeg calls on an initialised compressor; the row pointers stay inside
        // `pixels`, which outlives the compressor; `dest` outlives it too.
        unsafe {
            mj::jpeg_create_compress(&mut cinfo);
            cinfo.dest = &mut dest.base;
            cinfo.image_width = width as mj::JDIMENSION;
            cinfo.image_height = height as mj::JDIMENSION;
            cinfo.input_components = components as c_int;
            cinfo.in_color_space =
                if components == 1 { mj::J_COLOR_SPACE::JCS_GRAYSCALE } else { mj::J_COLOR_SPACE::JCS_RGB };
            // libjpeg-turbo's defaults instead of mozjpeg's (progressive, trellis, optimised
            // Huffman tables: several times slower).
            mj::jpeg_c_set_int_param(&mut cinfo, mj::J_INT_PARAM::JINT_COMPRESS_PROFILE, mj::JCP_FASTEST as c_int);
            mj::jpeg_set_defaults(&mut cinfo);
            mj::jpeg_set_quality(&mut cinfo, c_int::from(quality), 1);
            cinfo.dct_method = mj::J_DCT_METHOD::JDCT_ISLOW;
            if components == 3 {
                // 4:4:4, like cloud-volume (simplejpeg's default).
                for i in 0..3 {
                    let ci = &mut *cinfo.comp_info.add(i);
                    ci.h_samp_factor = 1;
                    ci.v_samp_factor = 1;
                }
            }
            mj::jpeg_start_compress(&mut cinfo, 1);
            let stride = width * components;
            let base = pixels.as_ptr();
            let rows: Vec<*const u8> = (0..height).map(|r| base.add(r * stride)).collect();
            while (cinfo.next_scanline as usize) < height {
                let row = cinfo.next_scanline as usize;
                let n = mj::jpeg_write_scanlines(&mut cinfo, rows.as_ptr().add(row), (height - row) as mj::JDIMENSION);
                if n == 0 {
                    return Err(format!("libjpeg accepted no row at row {row} of {height}"));
                }
            }
            mj::jpeg_finish_compress(&mut cinfo);
            Ok(())
        }
    });
    // SAFETY: destroying a created (or zeroed, never created) compressor is allowed.
    unsafe { mj::jpeg_destroy_compress(&mut cinfo) };
    result.map(|()| std::mem::take(&mut dest.buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Encoding;

    /// The in-place path (whole x rows into a contiguous view) and the copy path (part of the
    /// x rows, a strided view) read the same voxels as the whole decoded image, for boxes
    /// cutting the chunk along y and z.
    #[test]
    fn rows_decoded_in_place_equal_the_decoded_image() {
        let shape = [24usize, 10, 6];
        let cell = Bbox::new([8, -4, 2], [32, 6, 8]);
        let data: Vec<u8> =
            (0..shape[0] * shape[1] * shape[2]).map(|i| ((i * 37) % 251) as u8 ^ (i / 24) as u8).collect();
        let planar = Planar { dtype: DataType::U8, channels: 1, shape, data: &data, url: "t" };
        let bytes = Jpeg.encode(&planar, &EncodeOptions::default()).unwrap();
        let img = decode::<String>(&bytes, 1, |_, _| Ok(())).ok().unwrap();
        assert_eq!((img.width, img.height), (24, 60));
        let want = |x: i64, y: i64, z: i64| {
            img.pixels[((z - cell.lo[2]) as usize * shape[1] + (y - cell.lo[1]) as usize) * shape[0]
                + (x - cell.lo[0]) as usize]
        };
        let spec =
            ChunkSpec { encoding: Encoding::Jpeg, dtype: DataType::U8, channels: 1, cell, cseg_block: None, url: "t" };
        for region in [
            cell,
            Bbox::new([8, -1, 3], [32, 4, 7]),
            Bbox::new([8, 5, 7], [32, 6, 8]),
            Bbox::new([9, -4, 2], [31, 6, 8]),
        ] {
            // The output box is larger than the region, as a cutout's is.
            let obox = Bbox::new([0, -10, 0], [40, 10, 10]);
            let os = obox.shape().map(|v| v as usize);
            let mut buf = vec![7u8; os[0] * os[1] * os[2]];
            Jpeg.decode_into(&spec, &bytes, &region, &OutView::new(&mut buf, obox, 1, 1)).unwrap();
            let mut strided = vec![7u8; 2 * os[0] * os[1] * os[2]];
            let view = OutView::strided(&mut strided, obox, 1, 1, [2, 2 * os[0] as i64, 2 * (os[0] * os[1]) as i64, 1])
                .unwrap();
            Jpeg.decode_into(&spec, &bytes, &region, &view).unwrap();
            for z in obox.lo[2]..obox.hi[2] {
                for y in obox.lo[1]..obox.hi[1] {
                    for x in obox.lo[0]..obox.hi[0] {
                        let i = ((z - obox.lo[2]) as usize * os[1] + (y - obox.lo[1]) as usize) * os[0]
                            + (x - obox.lo[0]) as usize;
                        let inside = (0..3).all(|d| region.lo[d] <= [x, y, z][d] && [x, y, z][d] < region.hi[d]);
                        let expect = if inside { want(x, y, z) } else { 7 };
                        assert_eq!(buf[i], expect, "in place: ({x},{y},{z}) of region {region}");
                        assert_eq!(strided[2 * i], expect, "strided: ({x},{y},{z}) of region {region}");
                    }
                }
            }
        }
        // A corrupt body fails on either path, naming the chunk.
        let mut out = vec![0u8; shape[0] * shape[1] * shape[2]];
        let e =
            Jpeg.decode_into(&spec, &bytes[..bytes.len() / 2], &cell, &OutView::new(&mut out, cell, 1, 1)).unwrap_err();
        assert!(e.message().contains("t: corrupt JPEG"), "{e}");
    }
}
