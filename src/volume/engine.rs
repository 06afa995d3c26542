//! What a handle runs its work on: a rayon pool whose threads are the requests that may be in
//! flight (started at the first parallel task), a byte budget of fetched bodies held at once
//! (which decides how many of those threads have a request out: hundreds for small chunks, a
//! few dozen for 1 MiB ones), decode permits sized to the cores (so at most `cores` chunks are
//! decoded at once, whatever the number of fetching threads), a pool of `cores` threads for
//! decode-only work, reusable chunk buffers, and [`Engine::run`], the one parallel loop every
//! reader and writer uses (the error of the lowest-numbered failing item wins, so messages do
//! not depend on thread timing).

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

/// Requests out may reserve this many times the byte budget of bodies: a request waiting for
/// its answer holds no memory, so while some bodies fill the budget as many requests again
/// can be in their round trip.
const REQUESTS_PER_BUDGET: usize = 2;

/// A byte budget: bytes held at once, taken and given back by reservations. Waiters queue in
/// order and are handed their bytes by whoever releases (each woken alone, when its bytes are
/// its own): hundreds of requests waiting on one budget would otherwise all wake at every
/// release to find that one of them fits.
struct Budget {
    state: Mutex<BudgetState>,
    max: usize,
}

struct BudgetState {
    held: usize,
    queue: std::collections::VecDeque<Arc<Waiter>>,
}

/// A thread waiting for `need` bytes; `granted` once they are taken on its behalf.
struct Waiter {
    need: usize,
    granted: std::sync::atomic::AtomicBool,
    thread: std::thread::Thread,
}

impl Budget {
    fn new(max: usize) -> Budget {
        Budget { state: Mutex::new(BudgetState { held: 0, queue: Default::default() }), max: max.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().held
    }

    /// Take `n` bytes (at most the whole budget), waiting (behind earlier waiters) while they
    /// do not fit; a request alone always fits, so one larger than the budget still runs (by
    /// itself).
    fn acquire(&self, n: usize) -> usize {
        let n = n.min(self.max);
        let waiter = {
            let mut st = self.lock();
            if st.queue.is_empty() && (st.held == 0 || st.held + n <= self.max) {
                st.held += n;
                return n;
            }
            let w = Arc::new(Waiter { need: n, granted: false.into(), thread: std::thread::current() });
            st.queue.push_back(w.clone());
            w
        };
        while !waiter.granted.load(Ordering::Acquire) {
            std::thread::park();
        }
        n
    }

    /// Like `acquire`, with the size asked again once granted (an estimate that improved while
    /// the request waited: the bodies that came back meanwhile); any surplus is given back.
    fn acquire_with(&self, n: impl Fn() -> usize) -> usize {
        let got = self.acquire(n());
        let now = n().min(got);
        self.release(got - now);
        now
    }

    /// Take `n` more bytes if they fit now.
    fn try_take(&self, n: usize) -> bool {
        let mut st = self.lock();
        if st.held + n <= self.max {
            st.held += n;
            return true;
        }
        false
    }

    /// Take `n` more bytes whether or not they fit (a body read before its length was known).
    fn force(&self, n: usize) {
        self.lock().held += n;
    }

    /// Give `n` bytes back, handing them to the waiters at the front of the queue they fit.
    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut st = self.lock();
        st.held = st.held.saturating_sub(n);
        while let Some(w) = st.queue.front() {
            if st.held != 0 && st.held + w.need > self.max {
                break;
            }
            st.held += w.need;
            let w = st.queue.pop_front().expect("the front waiter");
            w.granted.store(true, Ordering::Release);
            w.thread.unpark();
        }
    }
}

/// What one request holds of the engine's two budgets (released on drop): its slot among the
/// requests out (the expected body's bytes, from before it is sent), and its body's bytes
/// (from when the answer says how long it is until the chunk is decoded).
pub(crate) struct Reservation<'a> {
    requests: &'a Budget,
    bodies: &'a Budget,
    slot: usize,
    body: usize,
}

impl Reservation<'_> {
    /// The body is `n` bytes (its length, now known, before it is read): take them of the
    /// budget of bodies held, waiting while they do not fit (giving back the body bytes held
    /// first, so no reservation waits while holding body bytes and growing ones cannot
    /// deadlock), and shrink the request slot to them.
    pub(crate) fn resize(&mut self, n: usize) {
        let n = n.min(self.bodies.max);
        if n <= self.body {
            self.bodies.release(self.body - n);
            self.body = n;
        } else if self.bodies.try_take(n - self.body) {
            self.body = n;
        } else {
            self.bodies.release(std::mem::take(&mut self.body));
            self.body = self.bodies.acquire(n);
        }
        if n < self.slot {
            self.requests.release(self.slot - n);
            self.slot = n;
        }
    }

    /// Hold at least `n` body bytes without waiting (a body already in memory, its length
    /// learnt only by reading it): the budget may be overshot by what was not known in advance.
    pub(crate) fn cover(&mut self, n: usize) {
        if n > self.body {
            self.bodies.force(n - self.body);
            self.body = n;
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.bodies.release(self.body);
        self.requests.release(self.slot);
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
    /// Free every pooled buffer; returns the bytes freed.
    fn release(&self) -> usize {
        let freed: Vec<Vec<u8>> = std::mem::take(&mut *self.free.lock().unwrap_or_else(|p| p.into_inner()));
        freed.iter().map(|v| v.capacity()).sum()
    }
}

/// Hand memory freed in the allocator's per-thread arenas back to the system. glibc keeps what
/// the fetching threads freed in their own arenas, and the next cutout's bodies land in other
/// arenas, so without this each cutout's peak carried the previous one's freed buffers (about
/// 25 MiB on a 128 MiB read of 1 MiB chunks).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The worker threads, permits and buffers of one handle.
pub(crate) struct Engine {
    /// The general pool (writes, indices, service tiles): `threads` threads, started at the
    /// first parallel task; dropped in `Drop`, which then waits for its threads to be gone.
    pool: std::sync::OnceLock<std::result::Result<rayon::ThreadPool, String>>,
    threads: usize,
    /// The chunk-fetching pool: as many threads as the byte budget lets requests be out at
    /// once (budget ÷ the mean body, plus the cores), at most `fetch_cap`; started by the first
    /// fetch and replaced by a larger one when a later fetch's chunks are smaller.
    fetch_pool: Mutex<Option<Arc<rayon::ThreadPool>>>,
    fetch_cap: usize,
    /// Worker threads alive (started and not yet exited).
    live_threads: Arc<(Mutex<usize>, Condvar)>,
    permits: Permits,
    /// Bytes of the bodies the requests out expect (`REQUESTS_PER_BUDGET` times the budget).
    requests: Budget,
    /// Bytes of bodies held (the budget, `max_inflight_bytes`).
    bodies: Budget,
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
        drop(self.pool.take());
        drop(self.fetch_pool.lock().unwrap_or_else(|p| p.into_inner()).take());
        drop(self.decode_pool.take());
        let (count, cv) = &*self.live_threads;
        let n = count.lock().unwrap_or_else(|p| p.into_inner());
        let _ = cv.wait_timeout_while(n, std::time::Duration::from_secs(5), |n| *n > 0);
    }
}

impl Engine {
    /// An engine with `threads` general workers, up to `fetch_cap` chunk requests in flight,
    /// `inflight_bytes` of fetched bodies held at once, and a decode permit per core. No thread
    /// starts until the first parallel task.
    ///
    /// # Errors
    /// None today (threads start later); kept for engines that start them here.
    pub(crate) fn new(threads: usize, fetch_cap: usize, inflight_bytes: usize) -> Result<Engine> {
        let threads = threads.max(1);
        let fetch_cap = fetch_cap.max(1);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Engine {
            pool: std::sync::OnceLock::new(),
            threads,
            fetch_pool: Mutex::new(None),
            fetch_cap,
            live_threads: Arc::new((Mutex::new(0), Condvar::new())),
            permits: Permits::new(cores),
            requests: Budget::new(inflight_bytes.max(1).saturating_mul(REQUESTS_PER_BUDGET)),
            bodies: Budget::new(inflight_bytes),
            buffers: BufferPool { free: Mutex::new(Vec::new()), keep: fetch_cap.max(threads) + cores },
            cores,
            decode_pool: std::sync::OnceLock::new(),
        })
    }

    /// A pool of `n` threads named `name-i`, counted in `live_threads` from before they start
    /// (rayon spawns them in `build`), so a drop racing their start still waits for them.
    fn start_pool(&self, n: usize, name: &'static str) -> std::result::Result<rayon::ThreadPool, String> {
        let live = self.live_threads.clone();
        *live.0.lock().unwrap_or_else(|p| p.into_inner()) += n;
        let down = live.clone();
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(move |i| format!("{name}-{i}"))
            .exit_handler(move |_| {
                let mut k = down.0.lock().unwrap_or_else(|p| p.into_inner());
                *k = k.saturating_sub(1);
                down.1.notify_all();
            })
            .build()
            .map_err(|e| {
                let mut k = live.0.lock().unwrap_or_else(|p| p.into_inner());
                *k = k.saturating_sub(n);
                format!("cannot start {n} {name} threads: {e}")
            })
    }

    /// The general pool, started on first use.
    fn io_pool(&self) -> Result<&rayon::ThreadPool> {
        let pool = self.pool.get_or_init(|| self.start_pool(self.threads, "cloudvolume"));
        pool.as_ref().map_err(|e| Error::internal(e.clone()))
    }

    /// A fetching pool of at least `want` threads (at most `fetch_cap`): the current one when it is large enough, else a larger one that replaces it (the
    /// old one's threads exit once the fetches on it are done).
    fn fetch_pool(&self, want: usize) -> Result<Arc<rayon::ThreadPool>> {
        let want = want.clamp(1, self.fetch_cap);
        let mut slot = self.fetch_pool.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = slot.as_ref().filter(|p| p.current_num_threads() >= want) {
            return Ok(p.clone());
        }
        // Grown by at least half again, so a handle's pool is rebuilt a few times at most.
        let now = slot.as_ref().map_or(0, |p| p.current_num_threads());
        let n = want.max(now + now / 2).next_multiple_of(8).min(self.fetch_cap);
        let p = Arc::new(self.start_pool(n, "cloudvolume-fetch").map_err(Error::internal)?);
        *slot = Some(p.clone());
        Ok(p)
    }

    /// Fetch every item with `f`, one request each, with as many in flight as the byte budget
    /// holds bodies of about `estimate` bytes (plus one per core); otherwise as [`Engine::run`].
    /// `f` hands each fetched body's decoding to the [`Decodes`] it is given: with `hand_off`
    /// that is the decode pool (`cores` threads), so a fetching thread goes on to its next
    /// request at once and only as many threads as requests in flight are needed; else the
    /// fetching thread decodes itself (local files, where reading is not the wait).
    ///
    /// # Errors
    /// As [`Engine::run`] (decoding errors included); threads that cannot be started
    /// (`Internal`).
    pub(crate) fn run_fetches<'x, T: Sync>(
        &'x self,
        items: &'x [T],
        estimate: usize,
        hand_off: bool,
        f: impl Fn(usize, &T, &Decodes<'_, 'x>) -> Result<()> + Sync + 'x,
    ) -> Result<()> {
        let failure = Arc::new(Failure::new());
        if items.len() == 1 {
            let inline = Decodes { scope: None, failure };
            return f(0, &items[0], &inline);
        }
        if !hand_off {
            let want = self.cores.min(items.len());
            let pool = self.fetch_pool(want)?;
            let inline = Decodes { scope: None, failure: failure.clone() };
            run_workers(&pool, items, want.min(pool.current_num_threads()), &failure, |i, t| f(i, t, &inline));
            return failure.result();
        }
        let want = (self.requests.max / estimate.max(1)).saturating_add(self.cores).min(items.len());
        let pool = self.fetch_pool(want)?;
        let decode_pool = self.decode_pool()?;
        let workers = want.min(pool.current_num_threads());
        decode_pool.in_place_scope(|scope| {
            let decodes = Decodes { scope: Some(scope), failure: failure.clone() };
            run_workers(&pool, items, workers, &failure, |i, t| f(i, t, &decodes));
        });
        // Fetching and decoding errors share one slot: the lowest-numbered item's wins.
        failure.result()
    }

    /// The decode pool, started on first use.
    fn decode_pool(&self) -> Result<&rayon::ThreadPool> {
        let pool = self.decode_pool.get_or_init(|| self.start_pool(self.cores, "cloudvolume-decode"));
        pool.as_ref().map_err(|e| Error::internal(e.clone()))
    }

    /// Reserve a request's slot, `estimate()` bytes of the requests' budget, before it is
    /// sent, waiting while they do not fit (the estimate asked again after each wait, as
    /// bodies come back); [`Reservation::resize`] takes the body's bytes once the answer gives
    /// its length.
    pub(crate) fn reserve(&self, estimate: impl Fn() -> usize) -> Reservation<'_> {
        let slot = self.requests.acquire_with(estimate);
        Reservation { requests: &self.requests, bodies: &self.bodies, slot, body: 0 }
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
        run_on(self.io_pool()?, items, f)
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
        let out = slots(items.len());
        self.run(items, |i, item| {
            *out[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(f(i, item)?);
            Ok(())
        })?;
        take_all(out)
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
        let out = slots(items.len());
        run_on(self.decode_pool()?, items, |i, item| {
            *out[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(f(i, item)?);
            Ok(())
        })?;
        take_all(out)
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
        if self.buffers.release() >= 8 << 20 {
            trim_heap();
        }
    }
}

/// [`Engine::run`]'s loop, on `pool`.
fn run_on<T: Sync>(pool: &rayon::ThreadPool, items: &[T], f: impl Fn(usize, &T) -> Result<()> + Sync) -> Result<()> {
    let failure = Failure::new();
    pool.install(|| {
        items.par_iter().enumerate().with_max_len(1).for_each(|(i, item)| {
            if !failure.skip(i) {
                if let Err(e) = f(i, item) {
                    failure.record(i, e);
                }
            }
        })
    });
    failure.result()
}

/// One result slot per item of a parallel map.
fn slots<R>(n: usize) -> Vec<Mutex<Option<R>>> {
    (0..n).map(|_| Mutex::new(None)).collect()
}

/// The results of a parallel map that succeeded, in item order.
fn take_all<R>(out: Vec<Mutex<Option<R>>>) -> Result<Vec<R>> {
    out.into_iter()
        .map(|m| {
            m.into_inner().unwrap_or_else(|p| p.into_inner()).ok_or_else(|| Error::internal("a task left no result"))
        })
        .collect()
}

/// The lowest-numbered error of a parallel loop, and the index past which items are skipped.
pub(crate) struct Failure {
    failed_at: AtomicUsize,
    first: Mutex<Option<(usize, Error)>>,
}

impl Failure {
    fn new() -> Failure {
        Failure { failed_at: AtomicUsize::new(usize::MAX), first: Mutex::new(None) }
    }

    /// Whether item `i` comes after a failed one (and need not run).
    fn skip(&self, i: usize) -> bool {
        i > self.failed_at.load(Ordering::Relaxed)
    }

    /// Keep `e` as item `i`'s error if no lower-numbered item has failed.
    fn record(&self, i: usize, e: Error) {
        let mut slot = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(|(j, _)| i < *j) {
            *slot = Some((i, e));
            self.failed_at.fetch_min(i, Ordering::Relaxed);
        }
    }

    /// The loop's result: the lowest-numbered error, if any (taken out).
    fn result(&self) -> Result<()> {
        match self.first.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

/// Where a fetched body is decoded: on the decode pool (a scope of it: the fetch waits for
/// every job it handed) or on the fetching thread.
pub(crate) struct Decodes<'r, 'x> {
    scope: Option<&'r rayon::Scope<'x>>,
    failure: Arc<Failure>,
}

impl<'x> Decodes<'_, 'x> {
    /// Decode item `i` with `job`: now on this thread (its error returned), or on the decode
    /// pool (its error kept for the loop to return; `Ok` here).
    ///
    /// # Errors
    /// The job's error, when it runs here.
    pub(crate) fn run(&self, i: usize, job: impl FnOnce() -> Result<()> + Send + 'x) -> Result<()> {
        let Some(scope) = self.scope else { return job() };
        let failure = self.failure.clone();
        scope.spawn(move |_| {
            if !failure.skip(i) {
                if let Err(e) = job() {
                    failure.record(i, e);
                }
            }
        });
        Ok(())
    }
}

/// Run `f` on every item with `workers` tasks on `pool`, each taking the next run of items in
/// order until none is left (no splitting and stealing: one wake-up per worker, not per item);
/// an item numbered above a failed one is not started, and errors go to `failure`. A run is an
/// eighth of a worker's share (one item when there are many workers): workers on neighbouring
/// chunks at once would write the same cache lines of the output where the chunks meet.
fn run_workers<T: Sync>(
    pool: &rayon::ThreadPool,
    items: &[T],
    workers: usize,
    failure: &Failure,
    f: impl Fn(usize, &T) -> Result<()> + Sync,
) {
    let next = AtomicUsize::new(0);
    let run = (items.len() / (workers.max(1) * 8)).max(1);
    let work = || loop {
        let start = next.fetch_add(run, Ordering::Relaxed);
        if start >= items.len() {
            break;
        }
        for i in start..(start + run).min(items.len()) {
            if failure.skip(i) {
                return;
            }
            if let Err(e) = f(i, &items[i]) {
                failure.record(i, e);
            }
        }
    };
    pool.scope(|s| {
        for _ in 1..workers.max(1) {
            s.spawn(|_| work());
        }
        work();
    });
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
        let e = Engine::new(4, 4, 1 << 20).unwrap();
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

    /// Many requests reserving, resizing (up and down) and releasing at once never hold more
    /// body bytes than the budget, nor request bytes than twice it (save `cover`, which is
    /// told after the fact), never deadlock, and give every byte back.
    #[test]
    fn the_byte_budget_holds_under_contention() {
        let e = Engine::new(32, 32, 100_000).unwrap();
        let held = |b: &Budget| b.held();
        let (peak_req, peak_body) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let items: Vec<usize> = (0..2000).collect();
        e.run(&items, |i, _| {
            let mut r = e.reserve(|| 1000 + (i * 7919) % 30_000);
            let now = held(&e.requests);
            peak_req.fetch_max(now, Ordering::Relaxed);
            assert!(now <= 200_000, "requests hold {now} of 200000 bytes");
            std::thread::sleep(std::time::Duration::from_micros(20));
            r.resize((i * 104_729) % 60_000);
            let now = held(&e.bodies);
            peak_body.fetch_max(now, Ordering::Relaxed);
            assert!(now <= 100_000, "bodies hold {now} of a 100000-byte budget");
            if i % 3 == 0 {
                // Larger than the whole budget: capped, and alone.
                r.resize(250_000);
                assert_eq!(held(&e.bodies), 100_000);
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
            Ok(())
        })
        .unwrap();
        assert_eq!((held(&e.requests), held(&e.bodies)), (0, 0), "bytes left held after every reservation dropped");
        assert!(peak_req.load(Ordering::Relaxed) > 100_000, "requests never overlapped past one budget");
        assert!(peak_body.load(Ordering::Relaxed) > 30_000, "bodies never overlapped");
        let mut r = e.reserve(|| 10);
        r.cover(500_000);
        assert_eq!(held(&e.bodies), 500_000);
        drop(r);
        assert_eq!((held(&e.requests), held(&e.bodies)), (0, 0));
    }
}
