//! Caches in front of a network store:
//!
//! - [`DiskCached`]: cloud-volume's local disk cache. A layer at `proto://rest` is cached under
//!   `{root}/{proto}/{rest}` (root: the `cache` option, `$CLOUD_VOLUME_CACHE_DIR`, or
//!   `$CLOUD_VOLUME_DIR/cache`), every object as a file named by its key, with cloud-files'
//!   `.gz`/`.br`/`.zstd` suffix when stored compressed, and a missing chunk as an empty file. The
//!   same tree cloud-volume writes, so a cache filled by either tool serves both.
//! - [`LruCached`]: the `lru_bytes` in-memory cache of objects as fetched (still encoded).
//!
//! Whole-object reads go through the caches; ranged reads of shards and listings go to the
//! store. Writes and deletes go to the store first, then drop the cached copies.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::file::FileStore;
use super::{ContentEncoding, GetOptions, Got, ReadableStore, Store, WritableStore};
use crate::cache::ByteLru;
use crate::cloudpath::CloudPath;
use crate::error::{Error, Result};

/// Where cloud-volume keeps the cache of the layer at `path` under `root`.
pub fn layer_cache_dir(root: &Path, path: &CloudPath) -> PathBuf {
    let (scheme, mut rest) = path.path.split_once("://").unwrap_or(("file", path.path.as_str()));
    // cloud-files' `s3://https://host/bucket/...`: the bucket path, without the endpoint.
    if let Some((_, after)) = rest.split_once("://").filter(|(s, _)| *s == "http" || *s == "https") {
        rest = after.split_once('/').map_or("", |(_, r)| r);
    }
    root.join(scheme).join(rest.trim_start_matches('/').trim_end_matches('/'))
}

/// Whether a missing object at `key` is cached as an empty file, as cloud-volume does for image
/// chunks (keys below a scale's directory), never for `info` and other top-level files.
fn caches_missing(key: &str) -> bool {
    key.contains('/')
}

/// A store with cloud-volume's disk cache in front.
pub struct DiskCached {
    inner: Arc<dyn Store>,
    cache: FileStore,
    dir: PathBuf,
}

impl DiskCached {
    pub fn new(inner: Arc<dyn Store>, dir: PathBuf) -> DiskCached {
        DiskCached { inner, cache: FileStore::new(&dir.to_string_lossy()), dir }
    }

    /// Remove the layer's whole cache (cloud-volume's `cache.flush()`).
    ///
    /// # Errors
    /// `Io` naming the directory when it cannot be removed.
    pub fn clear(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("cache {}: cannot remove it: {e}", self.dir.display()))),
        }
    }

    /// Store what the remote answered; a cache that cannot be written costs speed, not data.
    fn remember(&self, key: &str, found: Option<(&[u8], ContentEncoding)>) {
        let _ = match found {
            Some((bytes, enc)) => self.cache.put(key, bytes, enc, ""),
            None if caches_missing(key) => self.cache.put(key, &[], ContentEncoding::Identity, ""),
            None => Ok(()),
        };
    }
}

impl ReadableStore for DiskCached {
    fn get_with(&self, key: &str, opts: &GetOptions<'_>, buf: &mut Vec<u8>) -> Result<Got> {
        if opts.range.is_some() || opts.if_generation.is_some() {
            return self.inner.get_with(key, opts, buf);
        }
        let whole = GetOptions { max_len: opts.max_len, ..GetOptions::default() };
        if let Ok(Got::Found { encoding, generation }) = self.cache.get_with(key, &whole, buf) {
            // An empty file stands for a chunk the remote lacks (as cloud-volume writes it).
            return Ok(if buf.is_empty() && caches_missing(key) {
                Got::Missing
            } else {
                Got::Found { encoding, generation }
            });
        }
        let got = self.inner.get_with(key, opts, buf)?;
        match &got {
            Got::Found { encoding, .. } => self.remember(key, Some((&buf[..], *encoding))),
            Got::Missing => self.remember(key, None),
            Got::Stale => {}
        }
        Ok(got)
    }

    fn cheap_generation(&self, key: &str) -> Option<Result<Option<String>>> {
        self.inner.cheap_generation(key)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let mut buf = Vec::new();
        if let Ok(Some(_)) = self.cache.get_into(key, &mut buf, None) {
            if !buf.is_empty() || !caches_missing(key) {
                return Ok(true);
            }
        }
        self.inner.exists(key)
    }

    fn first_under(&self, prefix: &str) -> Result<Option<String>> {
        // What the store holds, not what was cached (cloud-volume lists the remote too).
        self.inner.first_under(prefix)
    }

    fn url(&self, key: &str) -> String {
        self.inner.url(key)
    }

    fn default_parallel(&self) -> usize {
        self.inner.default_parallel()
    }

    fn default_fetches(&self) -> usize {
        self.inner.default_fetches()
    }

    fn tells_length(&self) -> bool {
        self.inner.tells_length()
    }

    fn clear_cache(&self) -> Result<()> {
        self.clear()?;
        self.inner.clear_cache()
    }
}

impl WritableStore for DiskCached {
    fn put(&self, key: &str, bytes: &[u8], encoding: ContentEncoding, content_type: &str) -> Result<()> {
        self.inner.put(key, bytes, encoding, content_type)?;
        self.cache.delete(key)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)?;
        self.cache.delete(key)
    }
}

/// A store with an in-memory cache of whole objects, bounded in bytes.
pub struct LruCached {
    inner: Arc<dyn Store>,
    lru: ByteLru<String, (Vec<u8>, ContentEncoding)>,
}

impl LruCached {
    pub fn new(inner: Arc<dyn Store>, bytes: usize) -> LruCached {
        LruCached { inner, lru: ByteLru::new(bytes) }
    }
}

impl ReadableStore for LruCached {
    fn get_with(&self, key: &str, opts: &GetOptions<'_>, buf: &mut Vec<u8>) -> Result<Got> {
        if opts.range.is_some() || opts.if_generation.is_some() {
            return self.inner.get_with(key, opts, buf);
        }
        if let Some(hit) = self.lru.get(&key.to_string()) {
            if opts.max_len.is_some_and(|m| hit.0.len() as u64 > m) {
                return Err(super::too_large(&self.inner.url(key), hit.0.len() as u64, opts.max_len.unwrap_or(0)));
            }
            buf.clear();
            buf.extend_from_slice(&hit.0);
            return Ok(Got::Found { encoding: hit.1, generation: None });
        }
        let got = self.inner.get_with(key, opts, buf)?;
        if let Got::Found { encoding, .. } = &got {
            self.lru.insert(key.to_string(), Arc::new((buf.clone(), *encoding)), buf.len() + key.len() + 64);
        }
        Ok(got)
    }

    fn cheap_generation(&self, key: &str) -> Option<Result<Option<String>>> {
        self.inner.cheap_generation(key)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        if self.lru.get(&key.to_string()).is_some() {
            return Ok(true);
        }
        self.inner.exists(key)
    }

    fn first_under(&self, prefix: &str) -> Result<Option<String>> {
        // What the store holds, not what was cached (cloud-volume lists the remote too).
        self.inner.first_under(prefix)
    }

    fn url(&self, key: &str) -> String {
        self.inner.url(key)
    }

    fn default_parallel(&self) -> usize {
        self.inner.default_parallel()
    }

    fn default_fetches(&self) -> usize {
        self.inner.default_fetches()
    }

    fn tells_length(&self) -> bool {
        self.inner.tells_length()
    }

    fn clear_cache(&self) -> Result<()> {
        self.lru.clear();
        self.inner.clear_cache()
    }
}

impl WritableStore for LruCached {
    fn put(&self, key: &str, bytes: &[u8], encoding: ContentEncoding, content_type: &str) -> Result<()> {
        self.lru.remove(&key.to_string());
        let r = self.inner.put(key, bytes, encoding, content_type);
        self.lru.remove(&key.to_string());
        r
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.lru.remove(&key.to_string());
        self.inner.delete(key)
    }
}
