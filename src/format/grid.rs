//! Boxes, the chunk grid of a scale, and unsharded chunk keys.

use std::fmt;

use super::info::Scale;

/// A half-open box `[lo, hi)` in absolute voxel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Bbox {
    pub lo: [i64; 3],
    pub hi: [i64; 3],
}

impl Bbox {
    pub fn new(lo: [i64; 3], hi: [i64; 3]) -> Bbox {
        Bbox { lo, hi }
    }

    pub fn shape(&self) -> [i64; 3] {
        [self.hi[0] - self.lo[0], self.hi[1] - self.lo[1], self.hi[2] - self.lo[2]]
    }

    /// The extent per axis, or None when some axis is empty, inverted, or wider than i64.
    pub fn checked_shape(&self) -> Option<[u64; 3]> {
        let mut s = [0u64; 3];
        for d in 0..3 {
            let w = i128::from(self.hi[d]) - i128::from(self.lo[d]);
            if w <= 0 || w > i128::from(i64::MAX) {
                return None;
            }
            s[d] = w as u64;
        }
        Some(s)
    }

    /// True when some axis has `hi <= lo`.
    pub fn is_empty(&self) -> bool {
        (0..3).any(|d| self.hi[d] <= self.lo[d])
    }

    /// Number of voxels, or None on overflow. Empty boxes have 0.
    pub fn voxels(&self) -> Option<u64> {
        if self.is_empty() {
            return Some(0);
        }
        let s = self.checked_shape()?;
        s[0].checked_mul(s[1])?.checked_mul(s[2])
    }

    pub fn intersection(&self, other: &Bbox) -> Option<Bbox> {
        let mut b = Bbox { lo: [0; 3], hi: [0; 3] };
        for d in 0..3 {
            b.lo[d] = self.lo[d].max(other.lo[d]);
            b.hi[d] = self.hi[d].min(other.hi[d]);
        }
        (!b.is_empty()).then_some(b)
    }

    pub fn contains(&self, inner: &Bbox) -> bool {
        (0..3).all(|d| self.lo[d] <= inner.lo[d] && inner.hi[d] <= self.hi[d])
    }
}

impl fmt::Display for Bbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{},{},{}]..[{},{},{}]", self.lo[0], self.lo[1], self.lo[2], self.hi[0], self.hi[1], self.hi[2])
    }
}

/// The chunk grid of one scale: cells anchored at `voxel_offset`, clipped at the volume edge.
#[derive(Debug, Clone, Copy)]
pub struct ChunkGrid {
    pub offset: [i64; 3],
    pub size: [i64; 3],
    pub chunk: [i64; 3],
}

impl ChunkGrid {
    pub fn of(scale: &Scale) -> ChunkGrid {
        ChunkGrid { offset: scale.voxel_offset, size: scale.size, chunk: scale.chunk_size }
    }

    pub fn bounds(&self) -> Bbox {
        Bbox {
            lo: self.offset,
            hi: [self.offset[0] + self.size[0], self.offset[1] + self.size[1], self.offset[2] + self.size[2]],
        }
    }

    /// Number of cells per axis, `ceil(size / chunk)`.
    pub fn grid_shape(&self) -> [i64; 3] {
        let mut g = [0; 3];
        for d in 0..3 {
            g[d] = (self.size[d] + self.chunk[d] - 1) / self.chunk[d];
        }
        g
    }

    /// The voxels of cell `g`, clipped to the volume.
    pub fn cell_bbox(&self, g: [i64; 3]) -> Bbox {
        let mut b = Bbox { lo: [0; 3], hi: [0; 3] };
        for d in 0..3 {
            b.lo[d] = self.offset[d] + g[d] * self.chunk[d];
            b.hi[d] = self.offset[d] + ((g[d] + 1) * self.chunk[d]).min(self.size[d]);
        }
        b
    }

    /// The range of cells (half-open, per axis) that intersect `b`; `b` must lie inside the
    /// bounds.
    pub fn cell_range(&self, b: &Bbox) -> ([i64; 3], [i64; 3]) {
        let mut lo = [0; 3];
        let mut hi = [0; 3];
        for d in 0..3 {
            lo[d] = (b.lo[d] - self.offset[d]).div_euclid(self.chunk[d]);
            hi[d] = (b.hi[d] - self.offset[d] + self.chunk[d] - 1).div_euclid(self.chunk[d]);
        }
        (lo, hi)
    }

    /// Every cell that intersects `b`, x fastest. `b` must lie inside the bounds.
    pub fn cells_in(&self, b: &Bbox) -> Vec<[i64; 3]> {
        let (lo, hi) = self.cell_range(b);
        let mut out = Vec::new();
        for z in lo[2]..hi[2] {
            for y in lo[1]..hi[1] {
                for x in lo[0]..hi[0] {
                    out.push([x, y, z]);
                }
            }
        }
        out
    }

    /// True when `b` (inside the bounds) starts and ends on cell boundaries or the volume edge.
    pub fn is_aligned(&self, b: &Bbox) -> bool {
        let bounds = self.bounds();
        (0..3).all(|d| {
            (b.lo[d] - self.offset[d]).rem_euclid(self.chunk[d]) == 0
                && ((b.hi[d] - self.offset[d]).rem_euclid(self.chunk[d]) == 0 || b.hi[d] == bounds.hi[d])
        })
    }
}

/// The unsharded key of a cell: `<scale key>/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>`.
pub fn chunk_key(scale_key: &str, cell: &Bbox) -> String {
    format!(
        "{}/{}-{}_{}-{}_{}-{}",
        scale_key.trim_end_matches('/'),
        cell.lo[0],
        cell.hi[0],
        cell.lo[1],
        cell.hi[1],
        cell.lo[2],
        cell.hi[2]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_include_the_offset_and_clip_at_the_edge() {
        let g = ChunkGrid { offset: [5, 6, 7], size: [20, 12, 9], chunk: [64, 64, 64] };
        assert_eq!(g.grid_shape(), [1, 1, 1]);
        assert_eq!(chunk_key("s0", &g.cell_bbox([0, 0, 0])), "s0/5-25_6-18_7-16");
        let g = ChunkGrid { offset: [-5, 3, 0], size: [8, 8, 8], chunk: [8, 8, 8] };
        assert_eq!(chunk_key("k", &g.cell_bbox([0, 0, 0])), "k/-5-3_3-11_0-8");
    }

    #[test]
    fn cells_cover_boxes_cut_anywhere() {
        let g = ChunkGrid { offset: [-3, 0, 10], size: [10, 7, 5], chunk: [4, 4, 4] };
        assert_eq!(g.grid_shape(), [3, 2, 2]);
        let b = Bbox::new([-2, 3, 13], [2, 5, 14]);
        assert_eq!(g.cells_in(&b), vec![[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]);
        assert_eq!(g.cell_bbox([2, 1, 1]), Bbox::new([5, 4, 14], [7, 7, 15]));
        // Every voxel of the bounds lies in exactly one cell.
        let all = g.cells_in(&g.bounds());
        let total: u64 = all.iter().map(|&c| g.cell_bbox(c).voxels().unwrap()).sum();
        assert_eq!(total, g.bounds().voxels().unwrap());
    }

    #[test]
    fn alignment_counts_the_volume_edge() {
        let g = ChunkGrid { offset: [0, 0, 0], size: [10, 8, 8], chunk: [4, 4, 4] };
        assert!(g.is_aligned(&Bbox::new([4, 0, 0], [10, 8, 8])));
        assert!(!g.is_aligned(&Bbox::new([4, 0, 0], [9, 8, 8])));
        assert!(!g.is_aligned(&Bbox::new([1, 0, 0], [4, 8, 8])));
    }
}
