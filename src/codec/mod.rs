//! Chunk codecs. Each decodes one chunk and writes the part of it that lies inside the cutout
//! straight into that part of the caller's buffer (an [`OutView`]).

pub mod compression;
pub mod cseg;
pub mod encode;
pub mod image;
pub mod jpeg;

use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::format::{Bbox, DataType, Encoding};

/// The caller's output buffer seen as a 4-D array `[x, y, z, c]` covering `bbox`: Fortran order
/// (x fastest) by default, or any non-overlapping byte strides ([`OutView::strided`]).
/// Tasks on several threads write disjoint regions of it at once.
pub struct OutView<'a> {
    ptr: *mut u8,
    len: usize,
    pub bbox: Bbox,
    pub channels: usize,
    pub item: usize,
    strides: [usize; 4],
    /// x rows are contiguous (`strides[0] == item`): codecs write them in place.
    contiguous: bool,
    _buf: PhantomData<&'a mut [u8]>,
}

// SAFETY: the view hands out byte rows only through `with_row`, whose contract makes callers
// write disjoint regions; the buffer outlives the view ('a).
unsafe impl Send for OutView<'_> {}
unsafe impl Sync for OutView<'_> {}

thread_local! {
    /// Where rows of a view with a non-unit x stride are assembled before being scattered.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Outputs at least this big are written with cache-bypassing stores where a codec assembles
/// whole rows (a few times the L2 cache: the caller will not find it cached anyway).
const STREAM_MIN_BYTES: usize = 8 << 20;

/// Copy `src` into `dst` (equal lengths): the 64-byte cache lines that lie wholly inside `dst`
/// with non-temporal stores (where the target has them; rows under two lines are copied plainly), and the partial lines at either end
/// (which neighbouring chunks share) with ordinary ones: a partial line written non-temporally
/// costs a read-modify-write in memory, five times slower than an ordinary store. Call
/// [`fence_streaming_stores`] before the data is handed to anyone.
#[inline]
pub fn stream_row(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "stream_row lengths");
    #[cfg(target_arch = "x86_64")]
    {
        if dst.len() >= 128 {
            use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
            let head = dst.as_ptr().align_offset(64).min(dst.len());
            let lines = (dst.len() - head) / 64;
            let body = head + lines * 64;
            copy_small(&mut dst[..head], &src[..head]);
            let d = dst[head..body].as_mut_ptr();
            let s = src[head..body].as_ptr();
            for i in 0..lines {
                // SAFETY: line i of the body lies inside both slices; `d + 64 i` is 64-byte
                // aligned (align_offset above), as _mm_stream_si128 needs 16; SSE2 is part of x86_64.
                unsafe {
                    let (dp, sp) = (d.add(64 * i).cast::<__m128i>(), s.add(64 * i).cast::<__m128i>());
                    _mm_stream_si128(dp, _mm_loadu_si128(sp));
                    _mm_stream_si128(dp.add(1), _mm_loadu_si128(sp.add(1)));
                    _mm_stream_si128(dp.add(2), _mm_loadu_si128(sp.add(2)));
                    _mm_stream_si128(dp.add(3), _mm_loadu_si128(sp.add(3)));
                }
            }
            copy_small(&mut dst[body..], &src[body..]);
            return;
        }
    }
    dst.copy_from_slice(src);
}

/// Copy a few bytes (under a cache line) in words, without a call into `memcpy`.
#[inline(always)]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(s);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// Order the non-temporal stores of [`stream_row`] before whatever the thread does next (the
/// signal that its chunk is done).
#[inline]
pub fn fence_streaming_stores() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86_64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

impl<'a> OutView<'a> {
    /// `buf` must hold exactly `voxels(bbox) * channels * item` bytes (checked by the caller).
    pub fn new(buf: &'a mut [u8], bbox: Bbox, channels: usize, item: usize) -> OutView<'a> {
        let s = bbox.shape().map(|v| v as usize);
        let sx = s[0] * item;
        let sy = sx * s[1];
        let sz = sy * s[2];
        debug_assert_eq!(sz * channels, buf.len());
        OutView {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            bbox,
            channels,
            item,
            strides: [item, sx, sy, sz],
            contiguous: true,
            _buf: PhantomData,
        }
    }

    /// A view whose element `(x, y, z, c)` sits at byte `strides · (x, y, z, c) - lo` of `buf`.
    ///
    /// # Errors
    /// `InvalidArgument` when a stride is not positive, two elements would overlap, or the last
    /// element would end past `buf`.
    pub fn strided(buf: &'a mut [u8], bbox: Bbox, channels: usize, item: usize, strides: [i64; 4]) -> Result<OutView<'a>> {
        let s = bbox.shape();
        let extent = [s[0] as u128, s[1] as u128, s[2] as u128, channels as u128];
        let names = ["x", "y", "z", "channel"];
        let mut st = [0u128; 4];
        for i in 0..4 {
            if strides[i] <= 0 {
                return Err(Error::invalid(format!(
                    "byte stride {} along {} must be positive",
                    strides[i], names[i]
                )));
            }
            st[i] = strides[i] as u128;
        }
        // Elements are disjoint when, axes taken from the smallest stride up, each stride is at
        // least the span of the axes before it (axes of extent 1 take no room).
        let mut order: Vec<usize> = (0..4).filter(|&i| extent[i] > 1).collect();
        order.sort_by_key(|&i| st[i]);
        let mut span = item as u128;
        for &i in &order {
            if st[i] < span {
                return Err(Error::invalid(format!(
                    "byte strides {strides:?} (x, y, z, channel) make elements overlap: the {} stride {} is less than the {span} bytes the smaller axes span",
                    names[i], st[i]
                )));
            }
            span = st[i] * extent[i];
        }
        let last: u128 = (0..4).map(|i| (extent[i] - 1) * st[i]).sum::<u128>() + item as u128;
        if last > buf.len() as u128 {
            return Err(Error::invalid(format!(
                "buf_len is {} bytes, but box {bbox} with {channels} channel(s) of {item} bytes at byte strides {strides:?} reaches byte {last}",
                buf.len()
            )));
        }
        let strides = strides.map(|v| v as usize);
        Ok(OutView {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            bbox,
            channels,
            item,
            contiguous: strides[0] == item,
            strides,
            _buf: PhantomData,
        })
    }

    /// Byte offset of voxel `(x, y, z)` of channel `c` (absolute coordinates, inside `bbox`).
    #[inline]
    fn offset(&self, x: i64, y: i64, z: i64, c: usize) -> usize {
        (x - self.bbox.lo[0]) as usize * self.strides[0]
            + (y - self.bbox.lo[1]) as usize * self.strides[1]
            + (z - self.bbox.lo[2]) as usize * self.strides[2]
            + c * self.strides[3]
    }

    /// Whether rows written into this view should bypass the caches ([`stream_row`]): the
    /// output is too big to stay cached for the caller anyway, and rows are written in place.
    #[inline]
    pub fn streams(&self) -> bool {
        self.contiguous && self.len >= STREAM_MIN_BYTES
    }

    /// Ask the cache for the partial cache lines at either end of row `(y, z)`, voxels
    /// `x0..x1`, of channel `c` (lines a neighbouring chunk shares): with an output not aligned
    /// to 64 bytes every row begins and ends inside a line that must be read before it can be
    /// written, and asking a few rows ahead hides that wait. Only a hint: nothing is read or
    /// written, and coordinates outside the view are ignored.
    #[inline]
    pub fn prefetch_row_ends(&self, x0: i64, x1: i64, y: i64, z: i64, c: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let b = &self.bbox;
            if !self.contiguous || x0 >= x1 || x0 < b.lo[0] || x1 > b.hi[0] || y < b.lo[1] || y >= b.hi[1] || z < b.lo[2] || z >= b.hi[2] || c >= self.channels {
                return;
            }
            let off = self.offset(x0, y, z, c);
            let end = off + (x1 - x0) as usize * self.item;
            let start = self.ptr.wrapping_add(off);
            let last = self.ptr.wrapping_add(end - 1);
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
            // SAFETY: prefetching is a hint that never faults; both addresses are in the buffer.
            unsafe {
                if (start as usize) % 64 != 0 {
                    _mm_prefetch::<_MM_HINT_ET0>(start.cast::<i8>());
                }
                if (last as usize + 1) % 64 != 0 {
                    _mm_prefetch::<_MM_HINT_ET0>(last.cast::<i8>());
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (x0, x1, y, z, c);
    }

    /// Hand `f` the bytes of voxels `x0..x1` at row `(y, z)` of channel `c` (absolute
    /// coordinates), elements packed; what `f` leaves there lands in the buffer.
    ///
    /// # Safety
    /// No two threads may write overlapping rows at once; the coordinates must lie in `bbox`.
    #[inline]
    pub unsafe fn with_row<R>(&self, x0: i64, x1: i64, y: i64, z: i64, c: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let off = self.offset(x0, y, z, c);
        let count = (x1 - x0) as usize;
        let n = count * self.item;
        if self.contiguous {
            assert!(off + n <= self.len, "row outside the output buffer");
            return f(std::slice::from_raw_parts_mut(self.ptr.add(off), n));
        }
        if count == 0 {
            return f(&mut []);
        }
        assert!(off + (count - 1) * self.strides[0] + self.item <= self.len, "row outside the output buffer");
        SCRATCH.with(|scratch| {
            let mut row = scratch.borrow_mut();
            row.resize(n, 0);
            let r = f(&mut row[..n]);
            for (i, e) in row[..n].chunks_exact(self.item).enumerate() {
                std::ptr::copy_nonoverlapping(e.as_ptr(), self.ptr.add(off + i * self.strides[0]), self.item);
            }
            r
        })
    }

    /// Copy `src` (packed elements) into voxels `x0..` of row `(y, z)`, channel `c`.
    ///
    /// # Safety
    /// As for [`OutView::with_row`].
    #[inline]
    pub unsafe fn put_row(&self, x0: i64, y: i64, z: i64, c: usize, src: &[u8]) {
        let x1 = x0 + (src.len() / self.item) as i64;
        self.with_row(x0, x1, y, z, c, |dst| dst.copy_from_slice(src));
    }

    /// Fill `region` (inside `bbox`) with the element `value` in every channel.
    ///
    /// # Safety
    /// As for [`OutView::with_row`]: `region` is written by this caller alone.
    pub unsafe fn fill(&self, region: &Bbox, value: &[u8]) {
        for c in 0..self.channels {
            for z in region.lo[2]..region.hi[2] {
                for y in region.lo[1]..region.hi[1] {
                    self.with_row(region.lo[0], region.hi[0], y, z, c, |row| fill_pattern(row, value));
                }
            }
        }
    }
}

/// Repeat `value` over `dst` (whose length is a multiple of it).
pub fn fill_pattern(dst: &mut [u8], value: &[u8]) {
    if value.iter().all(|&b| b == value[0]) {
        dst.fill(value[0]);
    } else {
        for chunk in dst.chunks_exact_mut(value.len()) {
            chunk.copy_from_slice(value);
        }
    }
}

/// Everything a codec needs to know about the chunk it decodes.
pub struct ChunkSpec<'a> {
    pub encoding: Encoding,
    pub dtype: DataType,
    pub channels: usize,
    /// The cell's voxels (clipped at the volume edge): the decoded chunk's shape.
    pub cell: Bbox,
    pub cseg_block: Option<[i64; 3]>,
    /// The chunk's URL, for messages.
    pub url: &'a str,
}

/// Slack allowed over an image chunk's decoded size (headers, tables, ancillary data).
const IMAGE_SLACK: usize = 1 << 20;

impl ChunkSpec<'_> {
    pub fn decoded_len(&self) -> usize {
        usize::try_from(self.cell.voxels().unwrap_or(0))
            .unwrap_or(usize::MAX)
            .saturating_mul(self.channels)
            .saturating_mul(self.dtype.size())
    }

    /// The most bytes this chunk's payload (its content encoding removed, before the codec)
    /// can take: the decoded size for raw; for compressed_segmentation the largest valid
    /// encoding of the cell (every block 32-bit indices and a full table of its own); for
    /// images four times the decoded size plus headers. Decompression stops there.
    pub fn payload_limit(&self) -> usize {
        let decoded = self.decoded_len();
        match self.encoding {
            Encoding::Raw => decoded,
            Encoding::CompressedSegmentation => {
                let block = self.cseg_block.unwrap_or([8, 8, 8]);
                let shape = self.cell.shape();
                let blocks: u128 = (0..3).map(|d| (shape[d].max(0) as u128).div_ceil(block[d].max(1) as u128)).product();
                let block_voxels: u128 = block.iter().map(|&b| b.max(1) as u128).product();
                let table_words = if self.dtype.size() == 8 { 2 } else { 1 };
                let per_channel = 1 + blocks * (2 + block_voxels * (1 + table_words));
                let bytes = 4 * (self.channels as u128) * per_channel;
                usize::try_from(bytes).unwrap_or(usize::MAX)
            }
            _ => decoded.saturating_mul(4).saturating_add(IMAGE_SLACK),
        }
    }
}

/// Decode `data` (content encoding already removed) and write `region` into `out`.
pub fn decode_into(spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()> {
    match spec.encoding {
        Encoding::Raw => {
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
        Encoding::CompressedSegmentation => cseg::decode_into(spec, data, region, out),
        Encoding::Jpeg => image::decode_jpeg_into(spec, data, region, out),
        Encoding::Png => image::decode_png_into(spec, data, region, out),
        Encoding::Compresso | Encoding::Jxl => Err(Error::unsupported(format!(
            "{}: the {} encoding is not supported yet",
            spec.url,
            spec.encoding.name()
        ))),
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
                    unsafe { out.with_row(region.lo[0], region.hi[0], y, z, c, |dst| stream_row(dst, &src[off..off + n])) };
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

    /// Raw rows copied into an output big enough to be streamed, at odd alignments: two chunks
    /// side by side (copied at once on two threads, sharing the cache lines where they meet)
    /// land exactly, and no byte around them changes.
    #[test]
    fn streamed_planar_copies_at_any_alignment_are_exact() {
        for (item, shift, channels) in [(1usize, 0usize, 1usize), (1, 16, 1), (1, 3, 2), (2, 40, 1), (4, 12, 1), (8, 8, 1)] {
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
                    let src: Vec<u8> = (0..len).map(|i| (i as u64).wrapping_mul(2654435761 + k as u64) as u8 | 1).collect();
                    let region = if k == 0 { Bbox::new([lo[0] + 5, lo[1], lo[2]], cell.hi) } else { Bbox::new(lo, [cell.hi[0] - 7, cell.hi[1] - 1, cell.hi[2]]) };
                    (cell, src, region)
                })
                .collect();
            std::thread::scope(|s| {
                for (cell, src, region) in &cells {
                    let out = &out;
                    s.spawn(move || copy_planar(src, cell, channels, region, out));
                }
            });
            drop(out);
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
                                    assert_eq!(got, &src[si..si + item], "item {item} shift {shift} at {x},{y},{z},{c}");
                                }
                                None => assert!(got.iter().all(|&b| b == 0xC3), "item {item} shift {shift}: {x},{y},{z},{c} written"),
                            }
                        }
                    }
                }
            }
            assert!(back[..base].iter().chain(&back[base + n..]).all(|&b| b == 0xC3), "bytes outside the buffer changed");
        }
    }
}
