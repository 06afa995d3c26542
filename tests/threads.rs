//! Handles are thread-safe: many threads reading random boxes through one handle at once get the
//! same bytes as one thread reading them in turn (and as the layer holds); several handles work
//! side by side; each thread's last error stays its own.

mod support;

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use cloudvolume::ffi::CV_ERR_NOT_FOUND;
use cloudvolume::{Bbox, Options, Volume};
use support::cabi::{last_error, open_ok, Failure, Vol};
use support::layers::{chunk_name, Chunks, Layer, Pattern, Rng, Spec};

const THREADS: usize = 16;

/// A mip and a box `[lo, hi)` in it.
type MipBox = (u32, [i64; 3], [i64; 3]);

/// Read `[lo, hi)` at `mip` into a buffer of `len` bytes (checked: nothing written past it, no
/// last error after a success).
fn read(v: &Vol, mip: u32, lo: [i64; 3], hi: [i64; 3], len: usize) -> Result<Vec<u8>, Failure> {
    v.read_len(mip, lo, hi, Some(len))
}

fn box_len(spec: &Spec, lo: [i64; 3], hi: [i64; 3]) -> usize {
    ((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2])) as usize * spec.num_channels * spec.elem_size()
}

/// Run `f` on another thread and fail if it takes longer than `secs` (a deadlock guard).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => h.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Ok(_) => unreachable!(),
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("no result within {secs} s: deadlock?"),
    }
}

/// Random boxes inside the bounds of `mip`, `per_thread` for each of `THREADS` threads.
fn boxes(spec: &Spec, mip: u32, seed: u64, per_thread: usize, max: i64) -> Vec<Vec<([i64; 3], [i64; 3])>> {
    let (lo, hi) = spec.bounds(mip);
    let mut rng = Rng(seed);
    (0..THREADS).map(|_| (0..per_thread).map(|_| rng.bbox(lo, hi, max)).collect()).collect()
}

fn big_layer() -> Layer {
    // 90 chunks of 16x16x16, raw and gzip mixed, 2 mips, a negative offset.
    Layer::write(Spec::new("uint32", [96, 80, 48], [16, 16, 16]).offset([-10, 7, 3]).chunks(Chunks::RawMixed).mips(2))
}

#[test]
fn many_threads_on_one_handle_read_what_one_thread_reads() {
    let layer = Arc::new(big_layer());
    let url = layer.url();
    within(60, move || {
        let vol = Arc::new(open_ok(&url, r#"{"parallel": 4}"#));
        let work: Vec<Vec<MipBox>> = boxes(&layer.spec, 0, 0x9E37_79B9_7F4A_7C15, 12, 40)
            .into_iter()
            .zip(boxes(&layer.spec, 1, 12345, 12, 30))
            .map(|(a, b)| {
                // Alternate mips 0 and 1.
                a.into_iter()
                    .map(|(l, h)| (0, l, h))
                    .zip(b.into_iter().map(|(l, h)| (1, l, h)))
                    .flat_map(|(x, y)| [x, y])
                    .collect()
            })
            .collect();

        // One thread, in turn.
        let sequential: Vec<Vec<Vec<u8>>> = work
            .iter()
            .map(|boxes| {
                boxes
                    .iter()
                    .map(|&(mip, lo, hi)| {
                        let got = read(&vol, mip, lo, hi, box_len(&layer.spec, lo, hi)).unwrap();
                        assert_eq!(got, layer.expected(mip, lo, hi, 0.0), "mip {mip} {lo:?}..{hi:?}");
                        got
                    })
                    .collect()
            })
            .collect();

        // THREADS threads at once, each its boxes several times over.
        let barrier = Arc::new(Barrier::new(THREADS));
        let sequential = Arc::new(sequential);
        let handles: Vec<_> = work
            .into_iter()
            .enumerate()
            .map(|(t, boxes)| {
                let (vol, barrier, seq, layer) = (vol.clone(), barrier.clone(), sequential.clone(), layer.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    for round in 0..3 {
                        for (i, &(mip, lo, hi)) in boxes.iter().enumerate() {
                            let got = read(&vol, mip, lo, hi, box_len(&layer.spec, lo, hi))
                                .unwrap_or_else(|e| panic!("thread {t} round {round} box {i}: {e:?}"));
                            assert!(got == seq[t][i], "thread {t} round {round}: mip {mip} {lo:?}..{hi:?} differs");
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn many_threads_through_the_rust_api() {
    let layer = Arc::new(Layer::write(
        Spec::new("uint64", [70, 50, 30], [16, 16, 8])
            .offset([3, -4, 0])
            .pattern(Pattern::Labels)
            .chunks(Chunks::CsegGz)
            .block([16, 4, 4]),
    ));
    let url = layer.url();
    within(60, move || {
        let vol = Arc::new(Volume::open(&url, Options::default()).unwrap());
        let work = boxes(&layer.spec, 0, 77, 10, 30);
        let handles: Vec<_> = work
            .into_iter()
            .map(|boxes| {
                let (vol, layer) = (vol.clone(), layer.clone());
                std::thread::spawn(move || {
                    for (lo, hi) in boxes {
                        let got = vol.cutout(0, &Bbox::new(lo, hi)).unwrap();
                        assert!(got == layer.expected(0, lo, hi, 0.0), "{lo:?}..{hi:?}");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn several_handles_at_once() {
    let layers: Vec<Arc<Layer>> = vec![
        Arc::new(big_layer()),
        Arc::new(Layer::write(
            Spec::new("uint16", [40, 30, 20], [8, 8, 8]).channels(3).chunks(Chunks::Png).offset([0, 0, -5]),
        )),
        Arc::new(Layer::write(Spec::new("uint32", [33, 21, 17], [16, 8, 8]).chunks(Chunks::Cseg).block([16, 8, 8]))),
        Arc::new(Layer::write(Spec::new("float32", [25, 25, 25], [10, 10, 10]).channels(2))),
    ];
    within(60, move || {
        // Two handles per layer, with different options.
        let handles: Vec<(Arc<Vol>, Arc<Layer>)> = layers
            .iter()
            .flat_map(|l| {
                [
                    (Arc::new(open_ok(&l.url(), "{}")), l.clone()),
                    (Arc::new(open_ok(&l.url(), r#"{"parallel": 2, "fill_missing": true}"#)), l.clone()),
                ]
            })
            .collect();
        let barrier = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (vol, layer) = handles[t % handles.len()].clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let (lo, hi) = layer.spec.bounds(0);
                    let mut rng = Rng(1000 + t as u64);
                    barrier.wait();
                    for _ in 0..10 {
                        let (a, b) = rng.bbox(lo, hi, 24);
                        let got = read(&vol, 0, a, b, box_len(&layer.spec, a, b))
                            .unwrap_or_else(|e| panic!("thread {t} {a:?}..{b:?}: {e:?}"));
                        assert!(got == layer.expected(0, a, b, 0.0), "thread {t}: {a:?}..{b:?} differs");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

#[test]
fn last_errors_stay_on_their_threads() {
    // A layer of 4x4 chunks in x and y; thread t reads its own cell, and the odd cells are
    // missing: odd threads must fail naming their own cell, even threads succeed with "".
    let layer = Arc::new(Layer::write(Spec::new("uint8", [32, 32, 4], [8, 8, 4])));
    let cells = layer.spec.cells(0);
    assert_eq!(cells.len(), THREADS);
    for (i, (lo, hi)) in cells.iter().enumerate() {
        if i % 2 == 1 {
            layer.remove_chunk(0, *lo, *hi);
        }
    }
    let url = layer.url();
    within(60, move || {
        let vol = Arc::new(open_ok(&url, "{}"));
        let barrier = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (vol, barrier, layer) = (vol.clone(), barrier.clone(), layer.clone());
                let (lo, hi) = cells[t];
                std::thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..50 {
                        let r = read(&vol, 0, lo, hi, 64 * 4);
                        if t % 2 == 1 {
                            let (st, msg) = r.expect_err("missing chunk must fail");
                            assert_eq!(st, CV_ERR_NOT_FOUND, "{msg}");
                            assert!(msg.contains(&chunk_name(lo, hi)), "thread {t} got another thread's error: {msg}");
                            // Still there after other threads' calls.
                            std::thread::yield_now();
                            assert_eq!(last_error(), msg);
                        } else {
                            assert_eq!(r.unwrap(), layer.expected(0, lo, hi, 0.0));
                            std::thread::yield_now();
                            assert_eq!(last_error(), "");
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

#[test]
fn many_threads_with_a_small_pool_do_not_deadlock() {
    let layer = Arc::new(big_layer());
    let url = layer.url();
    within(60, move || {
        let vol = Arc::new(open_ok(&url, r#"{"parallel": 1}"#));
        let work = boxes(&layer.spec, 0, 4242, 4, 48);
        let threads: Vec<_> = work
            .into_iter()
            .map(|boxes| {
                let (vol, layer) = (vol.clone(), layer.clone());
                std::thread::spawn(move || {
                    for (lo, hi) in boxes {
                        let got = read(&vol, 0, lo, hi, box_len(&layer.spec, lo, hi)).unwrap();
                        assert!(got == layer.expected(0, lo, hi, 0.0), "{lo:?}..{hi:?}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

#[test]
fn handles_opened_and_freed_on_many_threads() {
    let layer = Arc::new(Layer::write(Spec::new("int8", [24, 24, 8], [8, 8, 8]).chunks(Chunks::RawGz)));
    within(60, move || {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let layer = layer.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng(7 + t as u64);
                    let (lo, hi) = layer.spec.bounds(0);
                    for _ in 0..8 {
                        let v = open_ok(&layer.url(), r#"{"parallel": 2}"#);
                        let (a, b) = rng.bbox(lo, hi, 20);
                        let got = read(&v, 0, a, b, box_len(&layer.spec, a, b)).unwrap();
                        assert!(got == layer.expected(0, a, b, 0.0));
                        drop(v);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}
