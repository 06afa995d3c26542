//! Caches (issue #5): cloud-volume's local disk cache (`cache`) and the in-memory chunk cache
//! (`lru_bytes`). Requests are counted by a pass-through proxy (tests/support/fault_proxy.rs with
//! no faults) in front of a static file server. The disk cache is checked against cloud-volume
//! itself (target/venv): a cache it fills serves this library with zero requests, and a cache
//! this library fills serves cloud-volume without a single chunk request (cloud-volume still
//! re-reads the info and provenance at the source).

mod support;

use std::path::Path;
use std::process::Command;

use cloudvolume::{Bbox, Options, Volume};
use support::env::python;
use support::files::{tree, TempDir};
use support::layers::Chunks;
use support::proxied_layer::ProxiedLayer;

fn rig(tag: &str, chunks: Chunks) -> ProxiedLayer {
    ProxiedLayer::start(tag, chunks)
}

const LO: [i64; 3] = [0, 0, 0];
const HI: [i64; 3] = [64, 64, 16];

fn whole() -> Bbox {
    Bbox::new(LO, HI)
}

fn cache_opt(dir: &Path) -> String {
    format!(r#"{{"cache": {}}}"#, serde_json::Value::String(dir.to_string_lossy().into_owned()))
}

#[test]
fn a_second_cutout_and_a_second_open_make_no_requests() {
    let r = rig("cache-disk", Chunks::RawGz);
    let cache = TempDir::new("cache-dir");
    let want = r.layer.expected(0, LO, HI, 0.0);
    let vol = r.open(&cache_opt(cache.path()));
    assert!(vol.cutout(0, &whole()).unwrap() == want);
    let first = r.proxy.requests();
    assert_eq!(first, 1 + 32, "info and 32 chunks");
    assert!(vol.cutout(0, &whole()).unwrap() == want);
    assert_eq!(r.proxy.requests(), first, "the second cutout went to the server");
    // cloud-volume's layout: {root}/{protocol}/{host:port/path}/{key}/{chunk}(.gz as fetched).
    let layer_dir =
        cache.path().join("http").join(r.proxy.addr().to_string()).join(r.layer.path().file_name().unwrap());
    let files = tree(&layer_dir);
    assert!(files.contains(&"info".to_string()), "{files:?}");
    assert_eq!(files.iter().filter(|f| f.ends_with(".gz")).count(), 32, "{files:?}");
    // A new handle reads the info from the cache too: no request at all.
    let vol2 = r.open(&cache_opt(cache.path()));
    assert!(vol2.cutout(0, &whole()).unwrap() == want);
    assert_eq!(r.proxy.requests(), first);
    // Clearing empties the layer's cache; the next cutout fetches again.
    vol2.clear_cache().unwrap();
    assert!(!layer_dir.exists());
    assert!(vol2.cutout(0, &whole()).unwrap() == want);
    assert_eq!(r.proxy.requests(), first + 32);
}

#[test]
fn missing_chunks_are_cached_as_empty_files_like_cloud_volume() {
    let r = rig("cache-missing", Chunks::Raw);
    let gone = r.layer.path().join(r.layer.chunk_key(0, [0, 0, 0], [16, 16, 8]));
    std::fs::remove_file(&gone).unwrap();
    let cache = TempDir::new("cache-missing-dir");
    let vol = Volume::open(
        &r.url(),
        Options::parse(Some(&format!(r#"{{"cache": "{}", "fill_missing": true}}"#, cache.path().display()))).unwrap(),
    )
    .unwrap();
    let a = vol.cutout(0, &whole()).unwrap();
    let n = r.proxy.requests();
    let b = vol.cutout(0, &whole()).unwrap();
    assert_eq!(r.proxy.requests(), n);
    assert!(a == b);
    assert!(a[..2].iter().all(|&v| v == 0), "the missing chunk reads as background");
}

#[test]
fn writes_through_a_cached_handle_are_read_back() {
    let r = rig("cache-write", Chunks::Raw);
    let cache = TempDir::new("cache-write-dir");
    // Fill the cache over HTTP, then change the layer on disk behind it through a file:// handle
    // and clear: the cached handle must not serve what it held before the clear.
    let vol = r.open(&format!(r#"{{"cache": "{}", "lru_bytes": 1000000}}"#, cache.path().display()));
    let before = vol.cutout(0, &whole()).unwrap();
    let writer = Volume::open(&r.layer.url(), Options::default()).unwrap();
    let cell = Bbox::new([0, 0, 0], [16, 16, 8]);
    let ones = vec![1u8; 16 * 16 * 8 * 2];
    writer.write_from(0, &cell, &ones).unwrap();
    assert!(vol.cutout(0, &whole()).unwrap() == before, "caches serve what they hold");
    vol.clear_cache().unwrap();
    assert_eq!(vol.cutout(0, &cell).unwrap(), ones);
}

#[test]
fn lru_bytes_serves_repeats_from_memory_and_evicts_by_size() {
    let r = rig("cache-lru", Chunks::RawGz);
    let want = r.layer.expected(0, LO, HI, 0.0);
    let vol = r.open(r#"{"lru_bytes": 100000000}"#);
    assert!(vol.cutout(0, &whole()).unwrap() == want);
    let n = r.proxy.requests();
    for _ in 0..3 {
        assert!(vol.cutout(0, &whole()).unwrap() == want);
    }
    assert_eq!(r.proxy.requests(), n, "repeats went to the server");
    // Room for about 4 gzip chunks of ~4 KiB: most of 32 are evicted.
    let small = r.open(r#"{"lru_bytes": 20000}"#);
    assert!(small.cutout(0, &whole()).unwrap() == want);
    let n = r.proxy.requests();
    assert!(small.cutout(0, &whole()).unwrap() == want);
    let again = r.proxy.requests() - n;
    assert!((24..=32).contains(&again), "{again} requests with a 20 kB LRU");
}

/// cloud-volume reads the whole layer at `url` with `cache=dir`, writes the bytes (Fortran
/// order) to `out`.
fn cloud_volume_read(py: &Path, url: &str, dir: &Path, out: &Path) {
    let script = r#"
import sys, numpy as np
from cloudvolume import CloudVolume
url, cache, out = sys.argv[1:4]
vol = CloudVolume(url, cache=cache, progress=False, parallel=1)
img = vol[0:64, 0:64, 0:16][..., 0]
open(out, "wb").write(np.asfortranarray(img).tobytes(order="F"))
"#;
    let st =
        Command::new(py).args(["-c", script, url, &dir.to_string_lossy(), &out.to_string_lossy()]).output().unwrap();
    assert!(st.status.success(), "cloud-volume failed: {}", String::from_utf8_lossy(&st.stderr));
}

#[test]
fn a_cache_filled_by_either_tool_serves_the_other() {
    let Some(py) = python("the cache comparison with cloud-volume") else { return };
    for chunks in [Chunks::RawGz, Chunks::Raw] {
        let r = rig("cache-cv", chunks);
        let want = r.layer.expected(0, LO, HI, 0.0);
        let out = TempDir::new("cache-cv-out");
        let bytes = out.path().join("cv.bin");

        // cloud-volume fills, this library reads with zero requests.
        let by_cv = TempDir::new("cache-by-cv");
        cloud_volume_read(&py, &r.url(), by_cv.path(), &bytes);
        assert!(std::fs::read(&bytes).unwrap() == want, "cloud-volume read wrong bytes");
        let n = r.proxy.requests();
        let vol = r.open(&cache_opt(by_cv.path()));
        assert!(vol.cutout(0, &whole()).unwrap() == want, "{chunks:?}: wrong bytes from cloud-volume's cache");
        assert_eq!(
            r.proxy.requests(),
            n,
            "{chunks:?}: requests despite cloud-volume's cache: {:?}",
            r.proxy.take_log()
        );

        // This library fills, cloud-volume reads with zero requests.
        let by_us = TempDir::new("cache-by-us");
        let vol = r.open(&cache_opt(by_us.path()));
        assert!(vol.cutout(0, &whole()).unwrap() == want);
        r.proxy.take_log();
        std::fs::remove_file(&bytes).unwrap();
        cloud_volume_read(&py, &r.url(), by_us.path(), &bytes);
        assert!(std::fs::read(&bytes).unwrap() == want, "{chunks:?}: cloud-volume read wrong bytes from our cache");
        // cloud-volume still checks the info and provenance files at the source; no chunk may
        // be fetched (chunk keys lie below the scale's directory).
        let key = format!("/{}/", r.layer.spec.key(0));
        let log = r.proxy.take_log();
        let chunk_requests: Vec<_> = log.iter().filter(|(_, p, _)| p.contains(&key)).collect();
        assert!(
            chunk_requests.is_empty(),
            "{chunks:?}: cloud-volume fetched chunks despite our cache: {chunk_requests:?}"
        );
        assert!(log.len() <= 3, "{chunks:?}: {log:?}");
    }
}
