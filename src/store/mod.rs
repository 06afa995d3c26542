//! Storage backends: where the bytes of a layer live. Each returns an object's stored bytes with
//! their content encoding; decompression happens in `codec::compression`.

pub mod cached;
pub mod file;
pub mod gcs;
pub mod http;
pub mod retry;
pub mod s3;

use std::sync::Arc;

use crate::cloudpath::{CloudPath, Protocol};
use crate::error::{Error, Result};
use crate::options::Options;

/// The content encoding of stored bytes (`Content-Encoding` over HTTP, a file suffix on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    Identity,
    Gzip,
    Brotli,
    Zstd,
}

impl ContentEncoding {
    /// The `Content-Encoding` header value (None for identity).
    pub fn header(self) -> Option<&'static str> {
        match self {
            ContentEncoding::Identity => None,
            ContentEncoding::Gzip => Some("gzip"),
            ContentEncoding::Brotli => Some("br"),
            ContentEncoding::Zstd => Some("zstd"),
        }
    }

    /// Parse a `Content-Encoding` header value.
    pub fn from_header(value: Option<&str>, url: &str) -> Result<ContentEncoding> {
        match value.map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(ContentEncoding::Identity),
            Some(v) => match v.as_str() {
                "" | "identity" => Ok(ContentEncoding::Identity),
                "gzip" | "x-gzip" => Ok(ContentEncoding::Gzip),
                "br" => Ok(ContentEncoding::Brotli),
                "zstd" => Ok(ContentEncoding::Zstd),
                other => Err(Error::unsupported(format!("{url}: unsupported Content-Encoding \"{other}\""))),
            },
        }
    }
}

/// An object as stored.
#[derive(Debug)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub encoding: ContentEncoding,
}

/// The answer to a ranged read.
#[derive(Debug)]
pub enum RangeRead {
    /// The object does not exist.
    Missing,
    /// The object is no longer the generation the read was conditioned on.
    Stale,
    /// The bytes, with the object's generation (ETag, or size and modification time of a file)
    /// when the store has one.
    Data(Vec<u8>, Option<String>),
}

/// A readable store of keyed objects under one base location.
pub trait Store: Send + Sync {
    /// The whole object at `key`, or `None` when it does not exist.
    ///
    /// # Errors
    /// I/O and network failures (after retries), refused credentials.
    fn get(&self, key: &str) -> Result<Option<Object>>;

    /// Bytes `[start, end)` of the object at `key`, or `None` when the object does not exist.
    ///
    /// # Errors
    /// As `get`; a range reaching past the end of the object is `Decode` (the index that
    /// pointed there is corrupt).
    fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Option<Vec<u8>>> {
        match self.get_range_if(key, start, end, None)? {
            RangeRead::Data(b, _) => Ok(Some(b)),
            RangeRead::Missing | RangeRead::Stale => Ok(None),
        }
    }

    /// Bytes `[start, end)` of `key`, only if the object is still generation `if_generation`
    /// (when given and the store knows generations).
    ///
    /// # Errors
    /// As `get_range`.
    fn get_range_if(&self, key: &str, start: u64, end: u64, if_generation: Option<&str>) -> Result<RangeRead>;

    /// The object's current generation when the store can tell it cheaply (a `stat` of a
    /// file); None when asking would cost a request.
    fn cheap_generation(&self, _key: &str) -> Option<Result<Option<String>>> {
        None
    }

    /// Whether an object exists at `key` (without fetching it).
    ///
    /// # Errors
    /// As `get`.
    fn exists(&self, key: &str) -> Result<bool>;

    /// Store `bytes` at `key` with its content encoding, replacing what was there. The object
    /// is replaced whole or not at all (file: a temporary file renamed into place).
    ///
    /// # Errors
    /// I/O and network failures, refused credentials, a read-only store (`Unsupported`).
    fn put(&self, key: &str, bytes: &[u8], encoding: ContentEncoding, content_type: &str) -> Result<()>;

    /// Delete the object at `key` (every stored variant of it); a missing object is no error.
    ///
    /// # Errors
    /// As `put`.
    fn delete(&self, key: &str) -> Result<()>;

    /// Like `get`, but fills `buf` (cleared first, its capacity reused) and returns the content
    /// encoding, or None when the object does not exist.
    ///
    /// # Errors
    /// As `get`.
    fn get_into(&self, key: &str, buf: &mut Vec<u8>) -> Result<Option<ContentEncoding>> {
        Ok(self.get(key)?.map(|o| {
            *buf = o.bytes;
            o.encoding
        }))
    }

    /// The full URL or path of `key`, for messages.
    fn url(&self, key: &str) -> String;

    /// How many requests this store serves well at once.
    fn default_parallel(&self) -> usize;

    /// Empty the caches in front of the store (disk and memory); a store without one does
    /// nothing.
    ///
    /// # Errors
    /// A cache directory that cannot be removed.
    fn clear_cache(&self) -> Result<()> {
        Ok(())
    }
}

/// Open the store for a cloud path, with the caches the options ask for in front: the disk
/// cache (`cache`, network protocols only) and then the in-memory LRU (`lru_bytes`).
///
/// # Errors
/// Unreadable credentials, a bad endpoint.
pub fn open(path: &CloudPath, opts: &Options) -> Result<Arc<dyn Store>> {
    let mut store: Arc<dyn Store> = match path.protocol {
        Protocol::File => Arc::new(file::FileStore::new(&path.base)),
        Protocol::Http => Arc::new(http::HttpStore::new(&path.base, opts)?),
        Protocol::Gs => Arc::from(gcs::open(path, opts)?),
        Protocol::S3 => Arc::from(s3::open(path, opts)?),
    };
    if let Some(root) = &opts.cache {
        if path.protocol != Protocol::File {
            store = Arc::new(cached::DiskCached::new(store, cached::layer_cache_dir(root, path)));
        }
    }
    if opts.lru_bytes > 0 {
        store = Arc::new(cached::LruCached::new(store, opts.lru_bytes));
    }
    Ok(store)
}
