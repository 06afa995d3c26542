//! Pictures of aligned cutouts: segments coloured by a stable palette over a greyscale image
//! (ImageryClient's `composite_overlay`), filled or as inner outlines, written as RGB PNG.
//!
//! Sits above `volume/` (it takes the slices an aligned cutout gives) and uses the png codec
//! for the file; nothing below imports it.

use crate::codec::{png::Png, Codec, EncodeOptions, Planar};
use crate::error::{Error, Result};
use crate::format::DataType;

/// Widest outline drawn, in pixels.
pub const MAX_OUTLINE: u32 = 64;

/// How segments are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverlayOptions {
    /// Opacity of a segment's colour over the image, 0 (invisible) to 1 (opaque).
    pub alpha: f32,
    /// 0: segments filled; n > 0: only the pixels of a segment within n pixels (city-block
    /// distance) of a pixel of another label, inside the image, are coloured.
    pub outline: u32,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        OverlayOptions { alpha: 0.5, outline: 0 }
    }
}

impl OverlayOptions {
    fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(Error::invalid(format!("alpha {} is not in [0, 1]", self.alpha)));
        }
        if self.outline > MAX_OUTLINE {
            return Err(Error::invalid(format!("outline {} is wider than {MAX_OUTLINE} pixels", self.outline)));
        }
        Ok(())
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The colour of segment `id`: the same in every picture and every binding (a hue and
/// saturation hashed from the id at full value). Label 0 is never drawn.
pub fn segment_color(id: u64) -> [u8; 3] {
    let h = splitmix(id);
    let hue = (h >> 11) as f64 / (1u64 << 53) as f64 * 6.0;
    let sat = 0.6 + 0.4 * f64::from((h & 0xff) as u8) / 255.0;
    let sector = hue.floor();
    let f = hue - sector;
    let (p, q, t) = (1.0 - sat, 1.0 - sat * f, 1.0 - sat * (1.0 - f));
    let (r, g, b) = match sector as u32 {
        0 => (1.0, t, p),
        1 => (q, 1.0, p),
        2 => (p, 1.0, t),
        3 => (p, q, 1.0),
        4 => (t, p, 1.0),
        _ => (1.0, p, q),
    };
    [r, g, b].map(|c: f64| (c * 255.0).round() as u8)
}

/// `grey` (one byte per pixel) blended with `color` at `alpha`, rounded.
pub fn blend(grey: u8, color: [u8; 3], alpha: f32) -> [u8; 3] {
    let a = f64::from(alpha);
    color.map(|c| (f64::from(grey) * (1.0 - a) + f64::from(c) * a).round() as u8)
}

/// Whether pixel (x, y) of label `v` has a pixel of another label within `w` (city block).
fn near_other(seg: &[u64], width: usize, height: usize, x: usize, y: usize, w: usize) -> bool {
    let v = seg[y * width + x];
    let y0 = y.saturating_sub(w);
    let y1 = (y + w).min(height - 1);
    for yy in y0..=y1 {
        let r = w - yy.abs_diff(y);
        let x0 = x.saturating_sub(r);
        let x1 = (x + r).min(width - 1);
        if seg[yy * width + x0..=yy * width + x1].iter().any(|&u| u != v) {
            return true;
        }
    }
    false
}

/// The RGB picture (interleaved, row by row, x across and y down) of `seg` over `grey`, both
/// `width * height` pixels, x fastest.
///
/// # Errors
/// Wrong lengths or bad options (`InvalidArgument`).
pub fn composite_rgb(grey: &[u8], seg: &[u64], width: usize, height: usize, opts: &OverlayOptions) -> Result<Vec<u8>> {
    opts.check()?;
    let n = width.checked_mul(height).ok_or_else(|| Error::invalid("picture too large"))?;
    if grey.len() != n || seg.len() != n {
        return Err(Error::invalid(format!(
            "a {width}x{height} picture takes {n} pixels; the image has {}, the segmentation {}",
            grey.len(),
            seg.len()
        )));
    }
    let mut out = vec![0u8; n * 3];
    let mut last: Option<(u64, [u8; 3])> = None;
    for y in 0..height {
        for x in 0..width {
            let i = y * width + x;
            let (g, v) = (grey[i], seg[i]);
            let drawn = v != 0 && (opts.outline == 0 || near_other(seg, width, height, x, y, opts.outline as usize));
            let px = if drawn {
                let c = match last {
                    Some((id, c)) if id == v => c,
                    _ => {
                        let c = segment_color(v);
                        last = Some((v, c));
                        c
                    }
                };
                blend(g, c, opts.alpha)
            } else {
                [g; 3]
            };
            out[i * 3..i * 3 + 3].copy_from_slice(&px);
        }
    }
    Ok(out)
}

/// The PNG file (8-bit RGB) of an interleaved RGB picture.
///
/// # Errors
/// A wrong length (`InvalidArgument`).
pub fn rgb_png(rgb: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    let n = width * height;
    if rgb.len() != n * 3 || n == 0 {
        return Err(Error::invalid(format!("{} bytes is not a {width}x{height} RGB picture", rgb.len())));
    }
    // The codec takes planes.
    let mut planar = vec![0u8; n * 3];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            planar[c * n + i] = px[c];
        }
    }
    let chunk = Planar { dtype: DataType::U8, channels: 3, shape: [width, height, 1], data: &planar, url: "overlay" };
    Png.encode(&chunk, &EncodeOptions::default())
}

/// The PNG of `seg` over `grey` ([`composite_rgb`] then [`rgb_png`]).
///
/// # Errors
/// As those.
pub fn overlay_png(grey: &[u8], seg: &[u64], width: usize, height: usize, opts: &OverlayOptions) -> Result<Vec<u8>> {
    let rgb = composite_rgb(grey, seg, width, height, opts)?;
    rgb_png(&rgb, width, height)
}

/// One byte per pixel from the first channel of `n` elements of `dtype` (little-endian): uint8
/// as it is, anything else stretched linearly from its smallest to its largest finite value
/// (all one value: 0).
pub fn grey8(data: &[u8], dtype: DataType, n: usize) -> Vec<u8> {
    let item = dtype.size();
    let data = &data[..(n * item).min(data.len())];
    if dtype == DataType::U8 {
        return data.to_vec();
    }
    let value = |e: &[u8]| -> f64 {
        let mut b = [0u8; 8];
        b[..item].copy_from_slice(e);
        match dtype {
            DataType::U8 => f64::from(b[0]),
            DataType::I8 => f64::from(b[0] as i8),
            DataType::U16 => f64::from(u16::from_le_bytes([b[0], b[1]])),
            DataType::I16 => f64::from(i16::from_le_bytes([b[0], b[1]])),
            DataType::U32 => f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            DataType::I32 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            DataType::U64 => u64::from_le_bytes(b) as f64,
            DataType::I64 => i64::from_le_bytes(b) as f64,
            DataType::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            DataType::F64 => f64::from_le_bytes(b),
        }
    };
    let vals: Vec<f64> = data.chunks_exact(item).map(value).collect();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in vals.iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    vals.iter()
        .map(|&v| if v.is_finite() && hi > lo { ((v - lo) / (hi - lo) * 255.0).round() as u8 } else { 0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stable_and_distinct() {
        assert_eq!(segment_color(12345), segment_color(12345));
        let cs: std::collections::HashSet<[u8; 3]> = (1..200u64).map(segment_color).collect();
        assert!(cs.len() > 190, "{}", cs.len());
        assert_eq!(blend(100, [200, 0, 50], 0.5), [150, 50, 75]);
        assert_eq!(blend(100, [200, 0, 50], 0.0), [100, 100, 100]);
    }

    #[test]
    fn outlines_fill_and_refusals() {
        // 5x3: label 7 on x < 3, label 0 elsewhere.
        let seg: Vec<u64> = (0..15).map(|i| if i % 5 < 3 { 7 } else { 0 }).collect();
        let grey = vec![10u8; 15];
        let o = OverlayOptions { alpha: 1.0, outline: 1 };
        let rgb = composite_rgb(&grey, &seg, 5, 3, &o).unwrap();
        let c = segment_color(7);
        for i in 0..15 {
            let want = if i % 5 == 2 { c } else { [10; 3] };
            assert_eq!(&rgb[i * 3..i * 3 + 3], &want, "pixel {i}");
        }
        let filled = composite_rgb(&grey, &seg, 5, 3, &OverlayOptions { alpha: 1.0, outline: 0 }).unwrap();
        assert_eq!(filled.chunks_exact(3).filter(|p| *p == c).count(), 9);
        assert!(composite_rgb(&grey, &seg, 4, 3, &o).is_err());
        assert!(composite_rgb(&grey, &seg, 5, 3, &OverlayOptions { alpha: 1.5, outline: 0 }).is_err());
        let png = overlay_png(&grey, &seg, 5, 3, &o).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }

    #[test]
    fn grey_stretches_other_types() {
        let v: Vec<u8> = [100u16, 300, 500].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(grey8(&v, DataType::U16, 3), vec![0, 128, 255]);
        assert_eq!(grey8(&[3, 4], DataType::U8, 2), vec![3, 4]);
    }
}
