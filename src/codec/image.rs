//! What the 2-D image encodings (jpeg, png) share. A chunk is one image of any width x height
//! whose product is the voxel count, pixels in x, y, z order, channels interleaved; they are
//! transposed into the planar output on reading and from the planar input on writing. The
//! canonical layout written is width `sx`, height `sy*sz`; when a side would pass the format's
//! limit, another factorisation of the same pixel sequence is used (width `sx*sy`, else the
//! smallest divisor of the voxel count that fits): every reader accepts any of them.

use std::borrow::Cow;

use super::{ChunkSpec, OutView};
use crate::error::{Error, Result};
use crate::format::Bbox;

/// Refuse an image of `w` x `h` pixels for `spec`'s chunk unless `w * h` is its voxel count
/// (checked on the header, before pixels are allocated).
///
/// # Errors
/// `Decode` naming the image's size and the chunk's.
pub fn check_pixels(spec: &ChunkSpec<'_>, w: usize, h: usize, kind: &str) -> Result<()> {
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

/// Width and height of the chunk's image: canonical `sx` x `sy*sz` when both fit `max`, else
/// `sx*sy` x `sz`, else the smallest width dividing the voxel count that lets both fit.
pub fn image_dims(shape: [usize; 3], max: usize) -> Option<(usize, usize)> {
    let [sx, sy, sz] = shape;
    let n = sx * sy * sz;
    if sx <= max && sy * sz <= max {
        return Some((sx, sy * sz));
    }
    if sx * sy <= max && sz <= max {
        return Some((sx * sy, sz));
    }
    let lo = n.div_ceil(max).max(1);
    (lo..=max.min(n)).find(|w| n % w == 0).map(|w| (w, n / w))
}

/// Interleave planar channels into pixels (`item` bytes per sample); 16-bit samples may be
/// swapped to big-endian on the way.
pub fn interleave(data: &[u8], channels: usize, item: usize, swap: bool) -> Cow<'_, [u8]> {
    if channels == 1 && !swap {
        return Cow::Borrowed(data);
    }
    let plane = data.len() / channels;
    let n = plane / item;
    let mut out = vec![0u8; data.len()];
    let pix = channels * item;
    for c in 0..channels {
        let src = &data[c * plane..(c + 1) * plane];
        if item == 1 {
            for (i, &s) in src.iter().enumerate() {
                out[i * pix + c] = s;
            }
        } else {
            for i in 0..n {
                let o = i * pix + c * item;
                if swap {
                    out[o] = src[2 * i + 1];
                    out[o + 1] = src[2 * i];
                } else {
                    out[o..o + item].copy_from_slice(&src[i * item..(i + 1) * item]);
                }
            }
        }
    }
    Cow::Owned(out)
}

/// Copy `region` from a chunk whose channels are interleaved per voxel (`[c, x, y, z]`), as
/// images store them.
pub fn copy_interleaved(src: &[u8], cell: &Bbox, channels: usize, region: &Bbox, out: &OutView<'_>) {
    let item = out.item;
    let s = cell.shape().map(|v| v as usize);
    let pix = channels * item;
    for c in 0..channels {
        for z in region.lo[2]..region.hi[2] {
            for y in region.lo[1]..region.hi[1] {
                let first = (((z - cell.lo[2]) as usize * s[1] + (y - cell.lo[1]) as usize) * s[0]
                    + (region.lo[0] - cell.lo[0]) as usize)
                    * pix
                    + c * item;
                // SAFETY: regions of distinct chunks are disjoint.
                unsafe {
                    out.with_row(region.lo[0], region.hi[0], y, z, c, |dst| {
                        if channels == 1 {
                            dst.copy_from_slice(&src[first..first + dst.len()]);
                        } else {
                            for (i, d) in dst.chunks_exact_mut(item).enumerate() {
                                let o = first + i * pix;
                                d.copy_from_slice(&src[o..o + item]);
                            }
                        }
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_dims_fall_back_when_jpeg_is_too_tall() {
        let max = super::super::jpeg::JPEG_MAX_DIMENSION;
        assert_eq!(image_dims([16, 8, 4], max), Some((16, 32)));
        assert_eq!(image_dims([256, 256, 256], max), Some((512, 32768)));
        let (w, h) = image_dims([256, 256, 256], max).unwrap();
        assert!(w <= max && h <= max && w * h == 256 * 256 * 256);
        let (w, h) = image_dims([4, 128, 1024], max).unwrap();
        assert_eq!((w, h), (512, 1024));
        // A prime voxel count above the limit has no factorisation.
        assert_eq!(image_dims([65_537, 1, 1], max), None);
    }
}
