//! Files by key (`cv_storage_*`, the C calls under the Julia binding's `StorageWrapper`),
//! through the extern "C" functions:
//!
//! - file:// round trips: nested keys, empty and binary values, overwrites, exists, delete;
//!   values stored as plain files (shared with every other tool), content encodings (`.gz`,
//!   `.zstd` suffixes written by cloud-volume) removed on get and replaced by a put;
//! - errors: a missing key is `CV_ERR_NOT_FOUND` naming its URL with the outputs untouched;
//!   NULL handles, keys and outputs, keys leaving the location, bad options and protocols;
//! - HTTP through a writable nginx (`tests/support/nginx.rs`, writable; skipped with a notice when
//!   nginx is missing, unless `CV_REQUIRE_REFERENCE=1`), including a gzip `Content-Encoding`;
//! - the same calls from C: a program compiled against include/cloudvolume.h with
//!   `cc -std=c11 -Wall -Wextra -Werror -pedantic`.

mod support;

use std::process::Command;

use cloudvolume::ffi::storage::*;
use cloudvolume::ffi::*;
use support::cabi::{cs, last_error};
use support::files::TempDir;
use support::nginx::{Config, Nginx};

/// An open storage handle, freed on drop.
struct St(*mut cv_storage);

impl St {
    fn open(url: &str, opts: Option<&str>) -> Result<St, (cv_status, String)> {
        let url = cs(url);
        let opts = opts.map(cs);
        let mut out: *mut cv_storage = std::ptr::null_mut();
        let st =
            unsafe { cv_storage_open(url.as_ptr(), opts.as_ref().map_or(std::ptr::null(), |o| o.as_ptr()), &mut out) };
        if st == CV_OK {
            assert!(!out.is_null());
            Ok(St(out))
        } else {
            assert!(out.is_null(), "output written on failure");
            Err((st, last_error()))
        }
    }
    fn get(&self, key: &str) -> Result<Vec<u8>, (cv_status, String)> {
        let key = cs(key);
        let sentinel = 0x5a5a as *mut u8;
        let (mut data, mut len) = (sentinel, 777usize);
        let st = unsafe { cv_storage_get(self.0, key.as_ptr(), &mut data, &mut len) };
        if st != CV_OK {
            assert_eq!((data, len), (sentinel, 777), "outputs written on failure");
            return Err((st, last_error()));
        }
        assert_eq!(last_error(), "");
        assert!(!data.is_null());
        let v = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
        unsafe { cv_bytes_free(data, len) };
        Ok(v)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), (cv_status, String)> {
        let key = cs(key);
        match unsafe { cv_storage_put(self.0, key.as_ptr(), bytes.as_ptr(), bytes.len()) } {
            CV_OK => Ok(()),
            st => Err((st, last_error())),
        }
    }
    fn delete(&self, key: &str) -> Result<(), (cv_status, String)> {
        let key = cs(key);
        match unsafe { cv_storage_delete(self.0, key.as_ptr()) } {
            CV_OK => Ok(()),
            st => Err((st, last_error())),
        }
    }
    fn exists(&self, key: &str) -> Result<bool, (cv_status, String)> {
        let key = cs(key);
        let mut out = 7i32;
        match unsafe { cv_storage_exists(self.0, key.as_ptr(), &mut out) } {
            CV_OK => {
                assert!(out == 0 || out == 1, "exists gave {out}");
                Ok(out == 1)
            }
            st => {
                assert_eq!(out, 7, "output written on failure");
                Err((st, last_error()))
            }
        }
    }
}

impl Drop for St {
    fn drop(&mut self) {
        unsafe { cv_storage_free(self.0) };
    }
}

fn binary_value() -> Vec<u8> {
    (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).chain([0, 0, 255]).collect()
}

#[test]
fn file_round_trips() {
    let dir = TempDir::new("roundtrip");
    let s = St::open(&dir.url(), None).expect("open");
    assert!(!s.exists("a").unwrap());
    s.put("a", b"content").unwrap();
    assert!(s.exists("a").unwrap());
    assert_eq!(s.get("a").unwrap(), b"content");
    // Stored as the plain bytes, under the key's own name.
    assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"content");

    let bin = binary_value();
    s.put("mesh/1/0:0", &bin).unwrap();
    assert_eq!(std::fs::read(dir.path().join("mesh/1/0:0")).unwrap(), bin);
    assert_eq!(s.get("mesh/1/0:0").unwrap(), bin);
    assert_eq!(s.get("/mesh//1/./0:0").unwrap(), bin, "keys are normalised like chunk keys");

    s.put("empty", b"").unwrap();
    assert!(s.exists("empty").unwrap());
    assert_eq!(s.get("empty").unwrap(), b"");
    let key = cs("empty-null");
    assert_eq!(unsafe { cv_storage_put(s.0, key.as_ptr(), std::ptr::null(), 0) }, CV_OK);
    assert_eq!(s.get("empty-null").unwrap(), b"");

    s.put("a", b"replaced").unwrap();
    assert_eq!(s.get("a").unwrap(), b"replaced");
    s.delete("a").unwrap();
    assert!(!s.exists("a").unwrap());
    s.delete("a").expect("deleting a missing file is no error");
    assert!(dir.path().read_dir().unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp")));

    // A bare path and precomputed:// open the same files.
    let bare = St::open(&dir.path().display().to_string(), Some("{}")).unwrap();
    assert_eq!(bare.get("mesh/1/0:0").unwrap(), bin);
    let pre = St::open(&format!("precomputed://{}", dir.url()), None).unwrap();
    assert!(pre.exists("empty").unwrap());
    // Opening a location without files is no error; its directory is created by a put.
    let fresh = St::open(&format!("{}/not/yet/there", dir.url()), None).unwrap();
    assert!(!fresh.exists("x").unwrap());
    fresh.put("x", b"1").unwrap();
    assert_eq!(std::fs::read(dir.path().join("not/yet/there/x")).unwrap(), b"1");
}

#[test]
fn content_encodings_are_removed_on_get_and_replaced_by_put() {
    let dir = TempDir::new("encodings");
    let s = St::open(&dir.url(), None).unwrap();
    let bin = binary_value();
    std::fs::write(dir.path().join("g.gz"), cloudvolume::codec::compression::gzip(&bin, 6)).unwrap();
    std::fs::write(dir.path().join("z.zstd"), zstd::encode_all(&bin[..], 3).unwrap()).unwrap();
    assert!(s.exists("g").unwrap() && s.exists("z").unwrap());
    assert_eq!(s.get("g").unwrap(), bin);
    assert_eq!(s.get("z").unwrap(), bin);
    // A put stores plain bytes and removes the compressed variant that would contradict it.
    s.put("g", b"plain").unwrap();
    assert!(!dir.path().join("g.gz").exists());
    assert_eq!(std::fs::read(dir.path().join("g")).unwrap(), b"plain");
    assert_eq!(s.get("g").unwrap(), b"plain");
    // Delete removes every variant.
    s.delete("z").unwrap();
    assert!(!dir.path().join("z.zstd").exists());
    assert!(!s.exists("z").unwrap());
    // A corrupt compressed file is a decode error naming it.
    std::fs::write(dir.path().join("bad.gz"), b"not gzip at all, not at all").unwrap();
    let (st, msg) = s.get("bad").unwrap_err();
    assert_eq!(st, CV_ERR_DECODE, "{msg}");
    assert!(msg.contains("bad.gz") || msg.contains("/bad"), "{msg}");
}

#[test]
fn errors_name_what_failed() {
    let dir = TempDir::new("errors");
    let s = St::open(&dir.url(), None).unwrap();
    let (st, msg) = s.get("missing/key").unwrap_err();
    assert_eq!(st, CV_ERR_NOT_FOUND);
    assert!(msg.contains(&format!("{}/missing/key", dir.url())), "{msg}");

    for bad in ["", "/", "./", "..", "../x", "a/../../x", "a/.."] {
        let (st, msg) = s.get(bad).unwrap_err();
        assert_eq!(st, CV_ERR_INVALID_ARGUMENT, "key {bad:?}: {msg}");
        assert!(msg.contains("key"), "{msg}");
        assert_eq!(s.put(bad, b"x").unwrap_err().0, CV_ERR_INVALID_ARGUMENT);
        assert_eq!(s.delete(bad).unwrap_err().0, CV_ERR_INVALID_ARGUMENT);
        assert_eq!(s.exists(bad).unwrap_err().0, CV_ERR_INVALID_ARGUMENT);
    }
    s.put("a/../b", b"inside").unwrap();
    assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"inside");

    unsafe {
        let key = cs("k");
        let (mut data, mut len, mut ex) = (std::ptr::null_mut::<u8>(), 0usize, 0i32);
        assert_eq!(cv_storage_get(std::ptr::null(), key.as_ptr(), &mut data, &mut len), CV_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("st is NULL"), "{}", last_error());
        assert_eq!(cv_storage_get(s.0, std::ptr::null(), &mut data, &mut len), CV_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("key is NULL"));
        s.put("k", b"v").unwrap();
        assert_eq!(cv_storage_get(s.0, key.as_ptr(), std::ptr::null_mut(), &mut len), CV_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("data (output) is NULL"));
        assert_eq!(cv_storage_get(s.0, key.as_ptr(), &mut data, std::ptr::null_mut()), CV_ERR_INVALID_ARGUMENT);
        assert_eq!(cv_storage_exists(s.0, key.as_ptr(), std::ptr::null_mut()), CV_ERR_INVALID_ARGUMENT);
        assert_eq!(cv_storage_exists(std::ptr::null(), key.as_ptr(), &mut ex), CV_ERR_INVALID_ARGUMENT);
        assert_eq!(cv_storage_put(s.0, key.as_ptr(), std::ptr::null(), 3), CV_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("data is NULL"));
        assert_eq!(cv_storage_put(std::ptr::null(), key.as_ptr(), b"x".as_ptr(), 1), CV_ERR_INVALID_ARGUMENT);
        assert_eq!(cv_storage_delete(std::ptr::null(), key.as_ptr()), CV_ERR_INVALID_ARGUMENT);
        assert_eq!(cv_storage_delete(s.0, std::ptr::null()), CV_ERR_INVALID_ARGUMENT);
        // A volume handle is not a storage handle (magic tags differ).
        let fake = [0u64; 4];
        assert_eq!(cv_storage_delete(fake.as_ptr().cast(), key.as_ptr()), CV_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("not a live cv_storage"), "{}", last_error());
        assert_eq!(std::fs::read(dir.path().join("k")).unwrap(), b"v");
        let mut out: *mut cv_storage = std::ptr::null_mut();
        assert_eq!(cv_storage_open(std::ptr::null(), std::ptr::null(), &mut out), CV_ERR_INVALID_ARGUMENT);
        assert_eq!(
            cv_storage_open(cs("/tmp").as_ptr(), std::ptr::null(), std::ptr::null_mut()),
            CV_ERR_INVALID_ARGUMENT
        );
        assert!(out.is_null());
        cv_storage_free(std::ptr::null_mut());
        cv_bytes_free(std::ptr::null_mut(), 0);
        // A successful call clears the last error.
        assert!(s.exists("k").unwrap());
        assert_eq!(last_error(), "");
    }
    let (st, msg) = St::open(&dir.url(), Some("{\"nonsense\": 1}")).err().unwrap();
    assert_eq!(st, CV_ERR_INVALID_ARGUMENT, "{msg}");
    assert!(msg.contains("nonsense"), "{msg}");
    assert_eq!(St::open(&dir.url(), Some("[1")).err().unwrap().0, CV_ERR_INVALID_ARGUMENT);
    let (st, msg) = St::open("graphene://https://example.org/seg", None).err().unwrap();
    assert_eq!(st, CV_ERR_UNSUPPORTED, "{msg}");
    assert_eq!(St::open("foo://bar", None).err().unwrap().0, CV_ERR_INVALID_ARGUMENT);
    assert_eq!(St::open("gs://", None).err().unwrap().0, CV_ERR_INVALID_ARGUMENT);
}

#[test]
fn handles_are_shared_between_threads() {
    let dir = TempDir::new("threads");
    let s = St::open(&dir.url(), None).unwrap();
    let addr = s.0 as usize;
    std::thread::scope(|scope| {
        for t in 0..4 {
            scope.spawn(move || {
                let s = St(addr as *mut cv_storage);
                for i in 0..25 {
                    let key = format!("t{t}/{i}");
                    let val = format!("{t}:{i}").into_bytes();
                    s.put(&key, &val).unwrap();
                    assert_eq!(s.get(&key).unwrap(), val);
                }
                std::mem::forget(s);
            });
        }
    });
    assert!(s.exists("t3/24").unwrap());
}

#[test]
fn http_round_trips() {
    let root = TempDir::new("dav");
    let Some(nginx) = Nginx::start(Config::new(root.path()).writable(true)) else { return };
    let base = format!("{}/bucket/layer", nginx.base_url());
    let s = St::open(&base, Some("{\"max_attempts\": 2, \"timeout\": 10}")).unwrap();
    assert!(!s.exists("a").unwrap());
    let (st, msg) = s.get("a").unwrap_err();
    assert_eq!(st, CV_ERR_NOT_FOUND);
    assert!(msg.contains(&format!("{base}/a")), "{msg}");
    let bin = binary_value();
    s.put("dir/a", &bin).unwrap();
    assert!(s.exists("dir/a").unwrap());
    assert_eq!(s.get("dir/a").unwrap(), bin);
    assert_eq!(std::fs::read(root.path().join("bucket/layer/dir/a")).unwrap(), bin, "PUT stores the plain bytes");
    let puts: Vec<_> = nginx.requests().into_iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0].content_encoding, None, "{puts:?}");
    s.put("empty", b"").unwrap();
    assert_eq!(s.get("empty").unwrap(), b"");
    s.delete("dir/a").unwrap();
    assert!(!s.exists("dir/a").unwrap());
    s.delete("dir/a").expect("deleting a missing file is no error");

    // Files served with Content-Encoding: gzip come back decoded; gs:// endpoints work alike.
    std::fs::create_dir_all(root.path().join("bucket/layer")).unwrap();
    std::fs::write(root.path().join("bucket/layer/g"), cloudvolume::codec::compression::gzip(&bin, 6)).unwrap();
    let gz = St::open(&format!("{}/gz/bucket/layer", nginx.base_url()), None).unwrap();
    assert_eq!(gz.get("g").unwrap(), bin);
    let gs = St::open("gs://bucket/layer", Some(&format!("{{\"gs_endpoint\": \"{}\"}}", nginx.base_url()))).unwrap();
    gs.put("via-gs", b"hello").unwrap();
    assert_eq!(std::fs::read(root.path().join("bucket/layer/via-gs")).unwrap(), b"hello");
    assert_eq!(s.get("via-gs").unwrap(), b"hello");
    // A read-only server refuses writes with a status naming the URL.
    let ro = St::open(&format!("{}/ro/bucket/layer", nginx.base_url()), Some("{\"max_attempts\": 1}")).unwrap();
    assert_eq!(ro.get("via-gs").unwrap(), b"hello");
    let (st, msg) = ro.put("nope", b"x").unwrap_err();
    assert_ne!(st, CV_OK);
    assert!(msg.contains("/ro/bucket/layer/nope"), "{msg}");
}

const C_PROGRAM: &str = r#"
#include <stdio.h>
#include <string.h>
#include "cloudvolume.h"

static int failures = 0;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAIL line %d: %s (%s)\n", __LINE__, #c, cv_last_error()); failures++; } } while (0)

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  cv_storage *st = NULL;
  CHECK(cv_storage_open(argv[1], NULL, &st) == CV_OK && st != NULL);
  const uint8_t value[5] = {1, 0, 2, 255, 3};
  CHECK(cv_storage_put(st, "dir/key", value, sizeof value) == CV_OK);
  int32_t ex = -1;
  CHECK(cv_storage_exists(st, "dir/key", &ex) == CV_OK && ex == 1);
  uint8_t *data = NULL;
  size_t len = 0;
  CHECK(cv_storage_get(st, "dir/key", &data, &len) == CV_OK);
  CHECK(len == 5 && data != NULL && memcmp(data, value, 5) == 0);
  cv_bytes_free(data, len);
  data = NULL;
  len = 99;
  CHECK(cv_storage_get(st, "absent", &data, &len) == CV_ERR_NOT_FOUND);
  CHECK(data == NULL && len == 99);
  CHECK(strstr(cv_last_error(), "absent") != NULL);
  CHECK(cv_storage_put(st, "../escape", value, 1) == CV_ERR_INVALID_ARGUMENT);
  CHECK(cv_storage_delete(st, "dir/key") == CV_OK);
  CHECK(cv_storage_exists(st, "dir/key", &ex) == CV_OK && ex == 0);
  CHECK(cv_storage_exists(NULL, "dir/key", &ex) == CV_ERR_INVALID_ARGUMENT);
  CHECK(strlen(cv_last_error()) > 0);
  cv_storage_free(st);
  cv_storage_free(NULL);
  cv_bytes_free(NULL, 0);
  printf("test_storage: %d failures\n", failures);
  return failures != 0;
}
"#;

#[test]
fn c_program_uses_the_storage_calls() {
    let work = TempDir::new("c");
    let src = work.path().join("test_storage.c");
    std::fs::write(&src, C_PROGRAM).unwrap();
    let exe = work.path().join("test_storage");
    support::cc::compile(&src, &exe);
    let files = TempDir::new("c-files");
    let run = Command::new(&exe).arg(files.url()).output().expect("run test_storage");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && stdout.contains(" 0 failures"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn file_and_http_stores_pass_the_store_suite() {
    use cloudvolume::cloudpath::CloudPath;
    use cloudvolume::options::StoreOptions;
    use support::store_suite::{conformance, Capabilities};
    let open = |url: &str| {
        cloudvolume::store::open(&CloudPath::parse(url, &StoreOptions::default()).unwrap(), &StoreOptions::default())
            .unwrap()
    };
    let dir = TempDir::new("suite");
    conformance(
        &*open(&dir.url()),
        "objects",
        "file",
        Capabilities { encodings: true, generations: true, listing: true },
    );
    let root = TempDir::new("suite-dav");
    let Some(nginx) = Nginx::start(Config::new(root.path()).writable(true)) else { return };
    // A WebDAV server keeps no Content-Encoding of its own.
    conformance(
        &*open(&format!("{}/bucket/layer", nginx.base_url())),
        "objects",
        "HTTP (nginx WebDAV)",
        Capabilities { encodings: false, generations: true, listing: false },
    );
}
