//! 2-D image encodings: jpeg (1 and 3 channels) and png (8/16-bit, 1-4 channels). A chunk is one
//! image of any width x height whose product is the voxel count, pixels in x, y, z order, with
//! channels interleaved; they are transposed into the planar output here.

use super::{copy_interleaved, ChunkSpec, OutView};
use crate::error::{Error, Result};
use crate::format::{Bbox, DataType};

fn check_pixels(spec: &ChunkSpec<'_>, w: usize, h: usize, kind: &str) -> Result<()> {
    let voxels = spec.cell.voxels().unwrap_or(0) as usize;
    if w.checked_mul(h) != Some(voxels) {
        let s = spec.cell.shape();
        return Err(Error::decode(format!(
            "{}: {kind} image is {w}x{h} = {} pixels, but the chunk {}x{}x{} has {voxels} voxels",
            spec.url,
            (w as u128) * (h as u128),
            s[0],
            s[1],
            s[2]
        )));
    }
    Ok(())
}

pub fn decode_jpeg_into(spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()> {
    let url = spec.url;
    // The image's size is checked against the chunk once its header is read, before libjpeg
    // allocates anything for it.
    let img = super::jpeg::decode(data, spec.channels, |w, h| check_pixels(spec, w, h, "JPEG")).map_err(|e| match e {
        super::jpeg::Failure::Header(e) => e,
        super::jpeg::Failure::Corrupt(m) => Error::decode(format!("{url}: corrupt JPEG: {m}")),
    })?;
    copy_interleaved(&img.pixels, &spec.cell, spec.channels, region, out);
    Ok(())
}

pub fn decode_png_into(spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()> {
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
