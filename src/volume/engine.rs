//! What a handle runs its work on: a rayon pool sized for requests in flight, a decode
//! semaphore sized to the cores (memory: decoded chunks held at once), reusable chunk buffers,
//! and [`Engine::run`], the one parallel loop every reader and writer uses (the error of the
//! lowest-numbered failing item wins, so messages do not depend on thread timing).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rayon::prelude::*;

use crate::error::{Error, Result};

/// A counting semaphore: bounds how many chunks are decoded (and hold decoded buffers) at once,
/// while more requests than that may be in flight.
struct Permits {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Permits {
    fn new(n: usize) -> Permits {
        Permits { free: Mutex::new(n.max(1)), cv: Condvar::new() }
    }
    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

/// A held decode permit; released on drop.
pub(crate) struct Permit<'a>(&'a Permits);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

/// Chunk-sized byte buffers reused across the chunks of a handle's reads, so that a cutout
/// does not allocate (and fragment the heap with) a fresh buffer per chunk.
struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl BufferPool {
    fn take(&self) -> Vec<u8> {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default()
    }
    fn give(&self, mut v: Vec<u8>) {
        v.clear();
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < self.keep && v.capacity() <= 256 << 20 {
            free.push(v);
        }
    }
    fn release(&self) {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The worker threads, permits and buffers of one handle.
pub(crate) struct Engine {
    /// Dropped by hand in `Drop`, which then waits for its threads to be gone.
    pool: std::mem::ManuallyDrop<rayon::ThreadPool>,
    /// Worker threads alive (started and not yet exited).
    live_threads: Arc<(Mutex<usize>, Condvar)>,
    permits: Permits,
    buffers: BufferPool,
    cores: usize,
    /// A pool of `cores` threads for decode-heavy work (started when first used), so that
    /// decoding does not contend with the I/O pool's many threads for the cores.
    decode_pool: std::sync::OnceLock<std::result::Result<rayon::ThreadPool, String>>,
}

impl Drop for Engine {
    /// Stop the worker threads and wait (briefly) until they are gone, so that a host which
    /// unloads the library after `cv_free` (MATLAB's `clear mex`) never leaves a thread running
    /// its code. Idle threads exit at once; the wait is capped at 5 s.
    fn drop(&mut self) {
        // SAFETY: the pool is dropped exactly once, here, and not used afterwards.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.pool) };
        drop(self.decode_pool.take());
        let (count, cv) = &*self.live_threads;
        let n = count.lock().unwrap_or_else(|p| p.into_inner());
        let _ = cv.wait_timeout_while(n, std::time::Duration::from_secs(5), |n| *n > 0);
    }
}

impl Engine {
    /// An engine with `threads` workers (requests in flight) and a decode permit per core.
    ///
    /// # Errors
    /// Threads that cannot be started (`Internal`).
    pub(crate) fn new(threads: usize) -> Result<Engine> {
        let threads = threads.max(1);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Counted from the start (rayon spawns every thread in `build`), so a drop racing the
        // threads' start still waits for them.
        let live_threads: Arc<(Mutex<usize>, Condvar)> = Arc::new((Mutex::new(threads), Condvar::new()));
        let down = live_threads.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("cloudvolume-{i}"))
            .exit_handler(move |_| {
                let mut n = down.0.lock().unwrap_or_else(|p| p.into_inner());
                *n = n.saturating_sub(1);
                down.1.notify_all();
            })
            .build()
            .map_err(|e| Error::internal(format!("cannot start {threads} worker threads: {e}")))?;
        Ok(Engine {
            pool: std::mem::ManuallyDrop::new(pool),
            live_threads,
            permits: Permits::new(cores),
            buffers: BufferPool { free: Mutex::new(Vec::new()), keep: threads + cores },
            cores,
            decode_pool: std::sync::OnceLock::new(),
        })
    }

    /// Run `f` on every item, in parallel on the pool (inline for a single item). Every item
    /// runs unless one numbered lower has failed; the error returned is the lowest-numbered
    /// one's.
    ///
    /// # Errors
    /// The first (lowest-index) error of `f`.
    pub(crate) fn run<T: Sync>(&self, items: &[T], f: impl Fn(usize, &T) -> Result<()> + Sync) -> Result<()> {
        if items.len() == 1 {
            return f(0, &items[0]);
        }
        let failed_at = AtomicUsize::new(usize::MAX);
        let first: Mutex<Option<(usize, Error)>> = Mutex::new(None);
        self.pool.install(|| {
            items.par_iter().enumerate().with_max_len(1).for_each(|(i, item)| {
                if i > failed_at.load(Ordering::Relaxed) {
                    return;
                }
                if let Err(e) = f(i, item) {
                    let mut slot = first.lock().unwrap_or_else(|p| p.into_inner());
                    if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                        *slot = Some((i, e));
                        failed_at.fetch_min(i, Ordering::Relaxed);
                    }
                }
            })
        });
        match first.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Like [`Engine::run`], collecting each item's result in order.
    ///
    /// # Errors
    /// As [`Engine::run`].
    pub(crate) fn map<T: Sync, R: Send>(
        &self,
        items: &[T],
        f: impl Fn(usize, &T) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        let out: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
        self.run(items, |i, item| {
            let r = f(i, item)?;
            *out[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            Ok(())
        })?;
        out.into_iter()
            .map(|m| {
                m.into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .ok_or_else(|| Error::internal("a task left no result"))
            })
            .collect()
    }

    /// Like [`Engine::map`], on the decode pool (`cores` threads; nested maps stay on it).
    ///
    /// # Errors
    /// As [`Engine::run`]; threads that cannot be started (`Internal`).
    pub(crate) fn map_decode<T: Sync, R: Send>(
        &self,
        items: &[T],
        f: impl Fn(usize, &T) -> Result<R> + Sync + Send,
    ) -> Result<Vec<R>> {
        let pool = self.decode_pool.get_or_init(|| {
            let live = self.live_threads.clone();
            *live.0.lock().unwrap_or_else(|p| p.into_inner()) += self.cores;
            let down = live.clone();
            let cores = self.cores;
            rayon::ThreadPoolBuilder::new()
                .num_threads(cores)
                .thread_name(|i| format!("cloudvolume-decode-{i}"))
                .exit_handler(move |_| {
                    let mut n = down.0.lock().unwrap_or_else(|p| p.into_inner());
                    *n = n.saturating_sub(1);
                    down.1.notify_all();
                })
                .build()
                .map_err(|e| {
                    let mut n = live.0.lock().unwrap_or_else(|p| p.into_inner());
                    *n = n.saturating_sub(cores);
                    format!("cannot start {cores} decoding threads: {e}")
                })
        });
        let pool = pool.as_ref().map_err(|e| Error::internal(e.clone()))?;
        pool.install(|| {
            let out: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
            let failed_at = AtomicUsize::new(usize::MAX);
            let first: Mutex<Option<(usize, Error)>> = Mutex::new(None);
            items.par_iter().enumerate().with_max_len(1).for_each(|(i, item)| {
                if i > failed_at.load(Ordering::Relaxed) {
                    return;
                }
                match f(i, item) {
                    Ok(r) => *out[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r),
                    Err(e) => {
                        let mut slot = first.lock().unwrap_or_else(|p| p.into_inner());
                        if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                            *slot = Some((i, e));
                            failed_at.fetch_min(i, Ordering::Relaxed);
                        }
                    }
                }
            });
            if let Some((_, e)) = first.into_inner().unwrap_or_else(|p| p.into_inner()) {
                return Err(e);
            }
            out.into_iter()
                .map(|m| {
                    m.into_inner()
                        .unwrap_or_else(|p| p.into_inner())
                        .ok_or_else(|| Error::internal("a task left no result"))
                })
                .collect()
        })
    }

    /// Wait for a decode permit (held until dropped).
    pub(crate) fn decode_permit(&self) -> Permit<'_> {
        self.permits.acquire()
    }

    /// A reusable chunk buffer (empty).
    pub(crate) fn take_buffer(&self) -> Vec<u8> {
        self.buffers.take()
    }

    /// Hand a chunk buffer back for reuse.
    pub(crate) fn give_buffer(&self, v: Vec<u8>) {
        self.buffers.give(v)
    }

    /// Release every pooled buffer (after a cutout: an idle handle holds no chunk memory).
    pub(crate) fn release_buffers(&self) {
        self.buffers.release()
    }
}

/// A byte slice written from several threads at disjoint offsets (scattered points).
pub(crate) struct DisjointBytes<'a> {
    ptr: *mut u8,
    len: usize,
    _buf: std::marker::PhantomData<&'a mut [u8]>,
}

// SAFETY: writers promise disjoint ranges (`write`'s contract); the slice outlives the view.
unsafe impl Send for DisjointBytes<'_> {}
unsafe impl Sync for DisjointBytes<'_> {}

impl<'a> DisjointBytes<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> DisjointBytes<'a> {
        DisjointBytes { ptr: buf.as_mut_ptr(), len: buf.len(), _buf: std::marker::PhantomData }
    }

    /// Copy `src` to byte `at`.
    ///
    /// # Safety
    /// No two threads write overlapping ranges at once.
    pub(crate) unsafe fn write(&self, at: usize, src: &[u8]) {
        assert!(at.checked_add(src.len()).is_some_and(|end| end <= self.len), "write outside the buffer");
        std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(at), src.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_failing_item_wins_whatever_the_timing() {
        let e = Engine::new(4).unwrap();
        let items: Vec<usize> = (0..64).collect();
        for _ in 0..20 {
            let r = e.run(&items, |i, _| {
                if i == 63 {
                    return Err(Error::io("last"));
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
                if i % 10 == 7 {
                    Err(Error::io(format!("item {i}")))
                } else {
                    Ok(())
                }
            });
            assert_eq!(r.unwrap_err().message(), "item 7");
        }
        let squares = e.map(&items, |i, &v| Ok(i * v)).unwrap();
        assert_eq!(squares[9], 81);
    }
}
