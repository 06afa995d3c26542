//! The caller's output buffer as a view codecs write into: disjoint rows written in place from
//! many threads, cache-bypassing row copies for big outputs, background fills.

use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::format::Bbox;

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
    pub fn strided(
        buf: &'a mut [u8],
        bbox: Bbox,
        channels: usize,
        item: usize,
        strides: [i64; 4],
    ) -> Result<OutView<'a>> {
        let s = bbox.shape();
        let extent = [s[0] as u128, s[1] as u128, s[2] as u128, channels as u128];
        let names = ["x", "y", "z", "channel"];
        let mut st = [0u128; 4];
        for i in 0..4 {
            if strides[i] <= 0 {
                return Err(Error::invalid(format!("byte stride {} along {} must be positive", strides[i], names[i])));
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
            if !self.contiguous
                || x0 >= x1
                || x0 < b.lo[0]
                || x1 > b.hi[0]
                || y < b.lo[1]
                || y >= b.hi[1]
                || z < b.lo[2]
                || z >= b.hi[2]
                || c >= self.channels
            {
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

    /// Where voxels `x0..x1` of row `(y, z)`, channel `c` (absolute coordinates inside
    /// `bbox`) start, when the view's rows are contiguous (a codec may write them in place);
    /// None for strided views or coordinates outside the view.
    pub fn row_ptr(&self, x0: i64, x1: i64, y: i64, z: i64, c: usize) -> Option<*mut u8> {
        let b = &self.bbox;
        let inside = b.lo[0] <= x0
            && x0 <= x1
            && x1 <= b.hi[0]
            && (b.lo[1]..b.hi[1]).contains(&y)
            && (b.lo[2]..b.hi[2]).contains(&z)
            && c < self.channels;
        if !self.contiguous || !inside {
            return None;
        }
        let off = self.offset(x0, y, z, c);
        let n = (x1 - x0) as usize * self.item;
        (off + n <= self.len).then(|| self.ptr.wrapping_add(off))
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

    /// Hand `f` the current bytes of voxels `x0..x1` at row `(y, z)` of channel `c`, elements
    /// packed, to read or rewrite in place (a strided view gathers them first).
    ///
    /// # Safety
    /// As for [`OutView::with_row`].
    pub unsafe fn update_row<R>(
        &self,
        x0: i64,
        x1: i64,
        y: i64,
        z: i64,
        c: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        if self.contiguous {
            return self.with_row(x0, x1, y, z, c, f);
        }
        let off = self.offset(x0, y, z, c);
        let (item, step) = (self.item, self.strides[0]);
        self.with_row(x0, x1, y, z, c, |row| {
            for (i, e) in row.chunks_exact_mut(item).enumerate() {
                std::ptr::copy_nonoverlapping(self.ptr.add(off + i * step), e.as_mut_ptr(), item);
            }
            f(row)
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
