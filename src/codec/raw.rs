//! The raw encoding: the decoded chunk as stored, planar Fortran order `[x, y, z, c]`,
//! little-endian elements.

use super::out::{fence_streaming_stores, stream_row};
use super::{ChunkSpec, Codec, OutView, Planar};
use crate::error::{Error, Result};
use crate::format::Bbox;

/// The raw codec.
pub struct Raw;

impl Codec for Raw {
    fn decode_into(&self, spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()> {
        let want = spec.decoded_len();
        if data.len() != want {
            return Err(Error::decode(format!(
                "{}: raw chunk has {} bytes, expected {want} ({} voxels x {} channel(s) x {} bytes)",
                spec.url,
                data.len(),
                spec.cell.voxels().unwrap_or(0),
                spec.channels,
                spec.dtype.size()
            )));
        }
        copy_planar(data, &spec.cell, spec.channels, region, out);
        Ok(())
    }

    fn encode(&self, chunk: &Planar<'_>, _opts: &super::EncodeOptions) -> Result<Vec<u8>> {
        Ok(chunk.data.to_vec())
    }

    fn payload_limit(&self, spec: &ChunkSpec<'_>) -> usize {
        spec.decoded_len()
    }

    fn random_access(&self) -> bool {
        true
    }
}

/// Copy `region` from a chunk in planar Fortran order `[x, y, z, c]` covering `cell`.
pub fn copy_planar(src: &[u8], cell: &Bbox, channels: usize, region: &Bbox, out: &OutView<'_>) {
    let item = out.item;
    let s = cell.shape().map(|v| v as usize);
    let n = (region.hi[0] - region.lo[0]) as usize * item;
    // Big outputs: rows streamed past the cache, whole lines only (see `stream_row`), the
    // partial end lines of the row four rows on prefetched for writing.
    let streaming = out.streams();
    for c in 0..channels {
        for z in region.lo[2]..region.hi[2] {
            for y in region.lo[1]..region.hi[1] {
                let off = (((c * s[2] + (z - cell.lo[2]) as usize) * s[1] + (y - cell.lo[1]) as usize) * s[0]
                    + (region.lo[0] - cell.lo[0]) as usize)
                    * item;
                if streaming {
                    if y + 4 < region.hi[1] {
                        out.prefetch_row_ends(region.lo[0], region.hi[0], y + 4, z, c);
                    }
                    // SAFETY: regions of distinct chunks are disjoint.
                    unsafe {
                        out.with_row(region.lo[0], region.hi[0], y, z, c, |dst| stream_row(dst, &src[off..off + n]))
                    };
                } else {
                    // SAFETY: regions of distinct chunks are disjoint.
                    unsafe { out.put_row(region.lo[0], y, z, c, &src[off..off + n]) };
                }
            }
        }
    }
    if streaming {
        fence_streaming_stores();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Bbox;

    /// Raw rows copied into an output big enough to be streamed, at odd alignments: two chunks
    /// side by side (copied at once on two threads, sharing the cache lines where they meet)
    /// land exactly, and no byte around them changes.
    #[test]
    fn streamed_planar_copies_at_any_alignment_are_exact() {
        for (item, shift, channels) in
            [(1usize, 0usize, 1usize), (1, 16, 1), (1, 3, 2), (2, 40, 1), (4, 12, 1), (8, 8, 1)]
        {
            // Output 1024 x 128 x 64 / item voxels: 8 MiB per channel.
            let ob = Bbox::new([0, 0, 0], [1024, 128, 64 / item as i64]);
            let n = ob.shape().iter().product::<i64>() as usize * item * channels;
            let mut back = vec![0xC3u8; n + 128];
            let base = back.as_ptr().align_offset(64) + shift;
            let out = OutView::new(&mut back[base..base + n], ob, channels, item);
            assert!(out.streams());
            let chunk = [96i64, 20, 6];
            let cells: Vec<(Bbox, Vec<u8>, Bbox)> = (0..2i64)
                .map(|k| {
                    let lo = [200 + 96 * k, 30, 2];
                    let cell = Bbox::new(lo, [lo[0] + chunk[0], lo[1] + chunk[1], lo[2] + chunk[2]]);
                    let len = (chunk[0] * chunk[1] * chunk[2]) as usize * item * channels;
                    let src: Vec<u8> =
                        (0..len).map(|i| (i as u64).wrapping_mul(2654435761 + k as u64) as u8 | 1).collect();
                    let region = if k == 0 {
                        Bbox::new([lo[0] + 5, lo[1], lo[2]], cell.hi)
                    } else {
                        Bbox::new(lo, [cell.hi[0] - 7, cell.hi[1] - 1, cell.hi[2]])
                    };
                    (cell, src, region)
                })
                .collect();
            std::thread::scope(|s| {
                for (cell, src, region) in &cells {
                    let out = &out;
                    s.spawn(move || copy_planar(src, cell, channels, region, out));
                }
            });
            let buf = &back[base..base + n];
            let sh = ob.shape();
            for c in 0..channels as i64 {
                for z in 0..sh[2] {
                    for y in 0..sh[1] {
                        for x in 0..sh[0] {
                            let oi = ((((c * sh[2] + z) * sh[1] + y) * sh[0] + x) as usize) * item;
                            let p = Bbox::new([x, y, z], [x + 1, y + 1, z + 1]);
                            let got = &buf[oi..oi + item];
                            match cells.iter().find(|(_, _, r)| r.contains(&p)) {
                                Some((cell, src, _)) => {
                                    let (cx, cy, cz) = (x - cell.lo[0], y - cell.lo[1], z - cell.lo[2]);
                                    let si = ((((c * chunk[2] + cz) * chunk[1] + cy) * chunk[0] + cx) as usize) * item;
                                    assert_eq!(
                                        got,
                                        &src[si..si + item],
                                        "item {item} shift {shift} at {x},{y},{z},{c}"
                                    );
                                }
                                None => assert!(
                                    got.iter().all(|&b| b == 0xC3),
                                    "item {item} shift {shift}: {x},{y},{z},{c} written"
                                ),
                            }
                        }
                    }
                }
            }
            assert!(
                back[..base].iter().chain(&back[base + n..]).all(|&b| b == 0xC3),
                "bytes outside the buffer changed"
            );
        }
    }
}
