//! What the services that answer boxes (DVID, the BOSS, ndstore) share: cutting a box into
//! grid-aligned tiles of a target size for parallel requests, and points read as boxes.

use std::io::Read;

use super::io::ScaleIo;
use crate::codec::OutView;
use crate::error::{Error, Result};
use crate::format::Bbox;
use crate::store::retry::Attempt;

/// The body of a successful answer, at most `limit` bytes: a read cut short is worth retrying,
/// a longer body is not (`Decode`).
pub(super) fn read_answer(resp: ureq::Response, limit: usize, method: &str, url: &str) -> Attempt<Vec<u8>> {
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| (true, Error::io(format!("{method} {url}: reading the answer failed: {e}"))))?;
    if bytes.len() > limit {
        return Err((false, Error::decode(format!("{method} {url}: the answer is larger than {limit} bytes"))));
    }
    Ok(bytes)
}

/// Place `data`, one channel of `tile` packed x fastest, into `out`.
pub(super) fn place_rows(tile: &Bbox, data: &[u8], item: usize, out: &OutView<'_>) {
    let w = (tile.hi[0] - tile.lo[0]) as usize * item;
    let mut i = 0;
    for z in tile.lo[2]..tile.hi[2] {
        for y in tile.lo[1]..tile.hi[1] {
            // SAFETY: callers place disjoint tiles; each row is written by one task.
            unsafe { out.put_row(tile.lo[0], y, z, 0, &data[i..i + w]) };
            i += w;
        }
    }
}

/// Tiles covering `region`, clipped to it: `cell`-aligned boxes whose extent starts at `cell`
/// and doubles along the axes of `grow` in turn (each while the tile stays under `region`'s
/// extent, plus one cell when `overshoot`) until a tile holds about `target` bytes of
/// `per_voxel`-byte voxels.
pub(super) fn grid_tiles(
    region: &Bbox,
    cell: [i64; 3],
    per_voxel: usize,
    target: usize,
    grow: [usize; 3],
    overshoot: bool,
) -> Vec<Bbox> {
    let mut t = cell;
    let span = region.shape();
    for d in grow {
        let limit = if overshoot { span[d] + cell[d] } else { span[d] };
        while t[d] < limit && (t[0] * t[1] * t[2]) as usize * per_voxel * 2 <= target {
            t[d] *= 2;
        }
    }
    let lo = [0, 1, 2].map(|d| region.lo[d].div_euclid(cell[d]) * cell[d]);
    let mut out = Vec::new();
    let mut z = lo[2];
    while z < region.hi[2] {
        let mut y = lo[1];
        while y < region.hi[1] {
            let mut x = lo[0];
            while x < region.hi[0] {
                if let Some(c) = Bbox::new([x, y, z], [x + t[0], y + t[1], z + t[2]]).intersection(region) {
                    out.push(c);
                }
                x += t[0];
            }
            y += t[1];
        }
        z += t[2];
    }
    out
}

/// `ScaleIo::read_points` for a service: each point a one-voxel box (`per` bytes: channels x
/// element), `channels` channels of `item` bytes.
pub(super) fn points_as_boxes(
    io: &dyn ScaleIo,
    points: &[[i64; 3]],
    out: &mut [u8],
    channels: usize,
    item: usize,
) -> Result<()> {
    let per = channels * item;
    for (i, p) in points.iter().enumerate() {
        let b = Bbox::new(*p, [p[0] + 1, p[1] + 1, p[2] + 1]);
        let mut one = vec![0u8; per];
        io.read_box(&b, &OutView::new(&mut one, b, channels, item), None)?;
        out[i * per..(i + 1) * per].copy_from_slice(&one);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_once_on_the_grid() {
        let r = Bbox::new([5, 0, 3], [300, 70, 40]);
        let tiles = grid_tiles(&r, [64, 64, 16], 1, 1 << 20, [2, 0, 1], false);
        let total: u64 = tiles.iter().map(|t| t.voxels().unwrap()).sum();
        assert_eq!(total, r.voxels().unwrap());
        for t in &tiles {
            assert!(r.contains(t));
            for d in 0..3 {
                assert!(t.lo[d] == r.lo[d] || t.lo[d] % [64, 64, 16][d] == 0, "{t}");
            }
        }
        for (i, a) in tiles.iter().enumerate() {
            for b in &tiles[i + 1..] {
                assert!(a.intersection(b).is_none(), "{a} {b}");
            }
        }
    }
}
