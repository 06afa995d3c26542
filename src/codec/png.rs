//! The png encoding (uint8/uint16, 1-4 channels).
//!
//! - Decoding: the `png` crate, palette images expanded, 16-bit samples big-endian in the
//!   stream; the size the header states is checked against the chunk before pixels are
//!   allocated, and the decoder's own allocations are bounded by the chunk.
//! - Encoding: the `png` crate writes the container (signature, IHDR, IDAT, IEND, CRCs); rows
//!   are filtered here (per-row choice among the five PNG filters by the minimum sum of
//!   absolute differences, libpng's heuristic; no filter at level 0) and deflated by libdeflate
//!   at `png_level` (0-9, zlib's scale), which is both faster than the crate's own deflate and
//!   honours every level.

use super::compression::zlib;
use super::image::{check_pixels, copy_interleaved, image_dims, interleave};
use super::{ChunkSpec, Codec, EncodeOptions, OutView, Planar};
use crate::error::{Error, Result};
use crate::format::{Bbox, DataType};

/// Largest PNG width or height (2^31 - 1).
const PNG_MAX_DIMENSION: usize = i32::MAX as usize;

/// The png codec.
pub struct Png;

impl Codec for Png {
    fn decode_into(&self, spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()> {
        decode_png_into(spec, data, region, out)
    }

    fn encode(&self, chunk: &Planar<'_>, opts: &EncodeOptions) -> Result<Vec<u8>> {
        encode_png(chunk, opts.png_level)
    }

    fn content_type(&self) -> &'static str {
        "image/png"
    }
}

fn decode_png_into(spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()> {
    let url = spec.url;
    let corrupt = |e: png::DecodingError| Error::decode(format!("{url}: corrupt PNG: {e}"));
    // The decoder's own allocations are bounded by the chunk (its default allows 64 MiB).
    let limits = png::Limits { bytes: spec.decoded_len().saturating_mul(2).saturating_add(1 << 20) };
    let mut dec = png::Decoder::new_with_limits(data, limits);
    // Palette images expand to RGB(A); samples keep their depth (16-bit stays big-endian).
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().map_err(corrupt)?;
    // The size the header states is checked before a buffer is allocated for it.
    let (w, h) = reader.info().size();
    check_pixels(spec, w as usize, h as usize, "PNG")?;
    let mut pixels = vec![0u8; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).map_err(corrupt)?;
    pixels.truncate(frame.buffer_size());
    let comps = frame.color_type.samples();
    let depth = match frame.bit_depth {
        png::BitDepth::Eight => 1,
        png::BitDepth::Sixteen => 2,
        d => return Err(Error::decode(format!("{url}: PNG bit depth {d:?} is not 8 or 16"))),
    };
    let want_depth = match spec.dtype {
        DataType::U8 => 1,
        DataType::U16 => 2,
        t => return Err(Error::decode(format!("{url}: png cannot hold {}", t.name()))),
    };
    if depth != want_depth || comps != spec.channels {
        return Err(Error::decode(format!(
            "{url}: PNG has {comps} channel(s) of {} bits, the layer {} channel(s) of {}",
            depth * 8,
            spec.channels,
            spec.dtype.name()
        )));
    }
    check_pixels(spec, frame.width as usize, frame.height as usize, "PNG")?;
    if frame.line_size != frame.width as usize * comps * depth {
        return Err(Error::decode(format!("{url}: PNG rows are padded ({} bytes)", frame.line_size)));
    }
    if depth == 2 {
        for s in pixels.chunks_exact_mut(2) {
            s.swap(0, 1);
        }
    }
    copy_interleaved(&pixels, &spec.cell, spec.channels, region, out);
    Ok(())
}

/// Filter one row with PNG filter `f` (0-4) into `out` (without the filter byte).
#[inline]
fn png_filter(f: u8, bpp: usize, prev: &[u8], cur: &[u8], out: &mut [u8]) {
    let n = cur.len();
    match f {
        0 => out.copy_from_slice(cur),
        1 => {
            out[..bpp].copy_from_slice(&cur[..bpp]);
            for i in bpp..n {
                out[i] = cur[i].wrapping_sub(cur[i - bpp]);
            }
        }
        2 => {
            for i in 0..n {
                out[i] = cur[i].wrapping_sub(prev[i]);
            }
        }
        3 => {
            for i in 0..bpp {
                out[i] = cur[i].wrapping_sub(prev[i] >> 1);
            }
            for i in bpp..n {
                let avg = ((u16::from(cur[i - bpp]) + u16::from(prev[i])) >> 1) as u8;
                out[i] = cur[i].wrapping_sub(avg);
            }
        }
        _ => {
            for i in 0..bpp {
                // Paeth with a = c = 0 is b.
                out[i] = cur[i].wrapping_sub(prev[i]);
            }
            for i in bpp..n {
                let (a, b, c) = (i16::from(cur[i - bpp]), i16::from(prev[i]), i16::from(prev[i - bpp]));
                let p = a + b - c;
                let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                let pred = if pa <= pb && pa <= pc {
                    a
                } else if pb <= pc {
                    b
                } else {
                    c
                };
                out[i] = cur[i].wrapping_sub(pred as u8);
            }
        }
    }
}

/// Filter every row of `img` (height rows of `stride` bytes) into the PNG scanline stream.
fn png_filter_rows(img: &[u8], stride: usize, height: usize, bpp: usize, adaptive: bool) -> Vec<u8> {
    let mut out = vec![0u8; height * (stride + 1)];
    let zero = vec![0u8; stride];
    let mut scratch = vec![0u8; stride];
    for r in 0..height {
        let cur = &img[r * stride..(r + 1) * stride];
        let prev = if r == 0 { &zero[..] } else { &img[(r - 1) * stride..r * stride] };
        let dst = &mut out[r * (stride + 1)..(r + 1) * (stride + 1)];
        if !adaptive {
            dst[0] = 0;
            dst[1..].copy_from_slice(cur);
            continue;
        }
        let mut best = u64::MAX;
        for f in 0..5u8 {
            png_filter(f, bpp, prev, cur, &mut scratch);
            let cost: u64 = scratch.iter().map(|&b| u64::from((b as i8).unsigned_abs())).sum();
            if cost < best {
                best = cost;
                dst[0] = f;
                dst[1..].copy_from_slice(&scratch);
            }
        }
    }
    out
}

fn encode_png(chunk: &Planar<'_>, level: u8) -> Result<Vec<u8>> {
    let (dtype, channels, shape, data, url) = (chunk.dtype, chunk.channels, chunk.shape, chunk.data, chunk.url);
    let depth = match dtype {
        DataType::U8 => 1,
        DataType::U16 => 2,
        t => {
            return Err(Error::invalid(format!("{url}: png holds uint8 or uint16, not {}", t.name())));
        }
    };
    let color = match channels {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        n => return Err(Error::invalid(format!("{url}: png holds 1 to 4 channels, not {n}"))),
    };
    if level > 9 {
        return Err(Error::invalid(format!("{url}: png level {level} is not in 0..=9")));
    }
    let (w, h) = image_dims(shape, PNG_MAX_DIMENSION).ok_or_else(|| {
        Error::invalid(format!("{url}: a {}x{}x{} chunk is too large for one PNG", shape[0], shape[1], shape[2]))
    })?;
    let img = interleave(data, channels, depth, depth == 2);
    let bpp = channels * depth;
    let filtered = png_filter_rows(&img, w * bpp, h, bpp, level > 0);
    let z = zlib(&filtered, i32::from(level));
    drop(filtered);

    let fail = |e: png::EncodingError| Error::internal(format!("{url}: PNG encoding of a {w}x{h} image failed: {e}"));
    let mut out = Vec::with_capacity(z.len() + 64);
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(color);
        enc.set_depth(if depth == 2 { png::BitDepth::Sixteen } else { png::BitDepth::Eight });
        let mut writer = enc.write_header().map_err(fail)?;
        // One IDAT chunk holds at most 2^31 - 1 bytes.
        for part in z.chunks(1 << 30) {
            writer.write_chunk(png::chunk::IDAT, part).map_err(fail)?;
        }
        writer.finish().map_err(fail)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_has_only_the_critical_chunks() {
        let data: Vec<u8> = (0..13 * 7 * 5 * 2).map(|i| (i * 7) as u8).collect();
        let chunk = Planar { dtype: DataType::U8, channels: 2, shape: [13, 7, 5], data: &data, url: "m" };
        let png = Png.encode(&chunk, &EncodeOptions::default()).unwrap();
        let mut kinds = Vec::new();
        let mut at = 8;
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            kinds.push(String::from_utf8_lossy(&png[at + 4..at + 8]).into_owned());
            at += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        // IHDR: width 13, height 35, depth 8, colour type 4 (gray + alpha).
        assert_eq!(&png[16..26], &[0, 0, 0, 13, 0, 0, 0, 35, 8, 4]);
    }
}
