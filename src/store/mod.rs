//! Storage: where the bytes of a layer live, by key. Stores are split by capability, as zarrs
//! splits them: [`ReadableStore`] (one read primitive, [`ReadableStore::get_with`], plus
//! `exists`, `url` and the listing [`ReadableStore::first_under`]; the usual reads are default
//! methods over it) and [`WritableStore`] (`put`, `delete`); a [`Store`] is both. Objects come
//! back with their content encoding ([`ContentEncoding`]); removing it is `codec::compression`'s
//! job.
//!
//! Backends: `file` (local directories with cloud-volume's suffixes), `http` (the HTTP client
//! every network store shares: retries, ranges, conditions, status mapping, with a [`Signer`]
//! hook per service), `s3` and `gcs` (signers on that client), `cached` (disk and memory
//! caches in front of any store). [`open`] builds one for a cloud path.

pub mod cached;
pub mod file;
pub mod gcs;
pub mod http;
mod open;
pub mod retry;
pub mod s3;

pub use crate::codec::compression::Object;
pub use crate::format::ContentEncoding;
pub use http::Signer;
pub use open::{http_config, open};

use crate::error::Result;

/// Told a body's length once the answer's headers are in, before the body is read, with the
/// buffer it will be read into (which it may swap for one of its own: a reused one); it may
/// block (a byte budget of bodies held waits for room).
#[derive(Clone, Copy)]
pub struct OnLength<'a>(pub &'a dyn Fn(u64, &mut Vec<u8>));

impl std::fmt::Debug for OnLength<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnLength")
    }
}

/// What a read asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct GetOptions<'a> {
    /// Bytes `[start, end)` only, as stored (None: the whole object, its content encoding kept).
    pub range: Option<(u64, u64)>,
    /// Only if the object is still this generation (an ETag, a file's size and times).
    pub if_generation: Option<&'a str>,
    /// The most bytes the caller accepts: a larger object is refused as `Decode` without being
    /// read (a chunk can only take so much).
    pub max_len: Option<u64>,
    /// Called with the body's length before it is read, when the store knows it then (HTTP's
    /// `Content-Length`); not called otherwise (files, caches, chunked answers).
    pub on_length: Option<OnLength<'a>>,
}

/// What a read found; the bytes are in the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// The object does not exist.
    Missing,
    /// The object is no longer the generation the read was conditioned on.
    Stale,
    /// The bytes, with their content encoding (identity for ranges) and the object's
    /// generation when the store has one.
    Found { encoding: ContentEncoding, generation: Option<String> },
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
pub trait ReadableStore: Send + Sync {
    /// Read the object at `key` as `opts` asks into `buf` (cleared first; its capacity is
    /// reused).
    ///
    /// # Errors
    /// I/O and network failures (after retries), refused credentials (`Auth`); a range
    /// reaching past the end of the object, or an object over `max_len` (`Decode`).
    fn get_with(&self, key: &str, opts: &GetOptions<'_>, buf: &mut Vec<u8>) -> Result<Got>;

    /// Whether an object exists at `key` (without fetching it).
    ///
    /// # Errors
    /// As `get_with`.
    fn exists(&self, key: &str) -> Result<bool>;

    /// The full URL or path of `key`, for messages.
    fn url(&self, key: &str) -> String;

    /// How many requests this store serves well at once.
    fn default_parallel(&self) -> usize;

    /// Whether reads call [`GetOptions::on_length`] before the body (HTTP's `Content-Length`):
    /// a caller can then wait to take a buffer for the body until its bytes are granted.
    fn tells_length(&self) -> bool {
        false
    }

    /// How many chunk reads may be in flight at once by default (the byte budget decides how
    /// many are): the same as `default_parallel` unless the store is remote.
    fn default_fetches(&self) -> usize {
        self.default_parallel()
    }

    /// The object's current generation when the store can tell it cheaply (a `stat` of a
    /// file); None when asking would cost a request.
    fn cheap_generation(&self, _key: &str) -> Option<Result<Option<String>>> {
        None
    }

    /// The name of one object whose key starts with `prefix`, or None when there is none:
    /// cloud-files' `first(CloudFiles(base).list(prefix))`, what cloud-volume's
    /// `image.has_data(mip)` asks with the scale's key.
    ///
    /// As in cloud-files, `prefix` is a plain string prefix of the keys, joined onto the base as
    /// keys are (`.` and `..` resolved): `"8_8_40"` matches `8_8_40/0-64_0-64_0-64`, and also
    /// `8_8_400/...` and `8_8_40.json`; `"8_8_40/"` only what lies inside that folder; `""`
    /// everything under the base. Folders are no objects: an empty directory, or a folder
    /// marker (an object whose name ends in `/`) matches nothing. The name comes back relative
    /// to the base, as cloud-files yields it (a file's `.gz`/`.br`/`.zstd` suffix removed); when
    /// several match, which one is not promised (the first in order on S3 and GCS).
    ///
    /// # Errors
    /// A store that cannot list (plain HTTP: `Unsupported`, naming its URL); refused credentials
    /// (`Auth`); a bucket that does not exist (`NotFound`); I/O and network failures (after
    /// retries); an answer that is no listing (`Decode`).
    fn first_under(&self, _prefix: &str) -> Result<Option<String>> {
        Err(cannot_list(&self.url("")))
    }

    /// Empty the caches in front of the store (disk and memory); a store without one does
    /// nothing.
    ///
    /// # Errors
    /// A cache directory that cannot be removed.
    fn clear_cache(&self) -> Result<()> {
        Ok(())
    }

    /// The whole object at `key` into `buf` (at most `max_len` bytes when given), with its
    /// content encoding; None when it does not exist.
    ///
    /// # Errors
    /// As `get_with`.
    fn get_into(&self, key: &str, buf: &mut Vec<u8>, max_len: Option<u64>) -> Result<Option<ContentEncoding>> {
        Ok(match self.get_with(key, &GetOptions { max_len, ..GetOptions::default() }, buf)? {
            Got::Found { encoding, .. } => Some(encoding),
            Got::Missing | Got::Stale => None,
        })
    }

    /// The whole object at `key`, or None when it does not exist.
    ///
    /// # Errors
    /// As `get_with`.
    fn get(&self, key: &str) -> Result<Option<Object>> {
        let mut bytes = Vec::new();
        Ok(self.get_into(key, &mut bytes, None)?.map(|encoding| Object { bytes, encoding }))
    }

    /// Bytes `[start, end)` of `key`, only if the object is still generation `if_generation`
    /// (when given and the store knows generations).
    ///
    /// # Errors
    /// As `get_with`.
    fn get_range_if(&self, key: &str, start: u64, end: u64, if_generation: Option<&str>) -> Result<RangeRead> {
        if end <= start {
            return Ok(RangeRead::Data(Vec::new(), None));
        }
        let mut bytes = Vec::new();
        let opts = GetOptions { range: Some((start, end)), if_generation, ..GetOptions::default() };
        Ok(match self.get_with(key, &opts, &mut bytes)? {
            Got::Missing => RangeRead::Missing,
            Got::Stale => RangeRead::Stale,
            Got::Found { generation, .. } => RangeRead::Data(bytes, generation),
        })
    }

    /// Bytes `[start, end)` of the object at `key`, or None when the object does not exist.
    ///
    /// # Errors
    /// As `get_with`.
    fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Option<Vec<u8>>> {
        match self.get_range_if(key, start, end, None)? {
            RangeRead::Data(b, _) => Ok(Some(b)),
            RangeRead::Missing | RangeRead::Stale => Ok(None),
        }
    }
}

/// A store objects can be written to and deleted from.
pub trait WritableStore: Send + Sync {
    /// Store `bytes` at `key` with its content encoding, replacing what was there. The object
    /// is replaced whole or not at all (file: a temporary file renamed into place).
    ///
    /// # Errors
    /// I/O and network failures, refused credentials, a server that takes no writes
    /// (`Unsupported`).
    fn put(&self, key: &str, bytes: &[u8], encoding: ContentEncoding, content_type: &str) -> Result<()>;

    /// Delete the object at `key` (every stored variant of it); a missing object is no error.
    ///
    /// # Errors
    /// As `put`.
    fn delete(&self, key: &str) -> Result<()>;
}

/// A store that can be read and written: what a layer is opened on.
pub trait Store: ReadableStore + WritableStore {}

impl<T: ReadableStore + WritableStore + ?Sized> Store for T {}

/// A refusal of an object larger than the caller accepts.
pub(crate) fn too_large(url: &str, len: u64, max: u64) -> crate::error::Error {
    crate::error::Error::decode(format!(
        "{url}: object of {len} bytes is larger than the {max} bytes it can hold; refused unread (corrupt, or not what it should be)"
    ))
}

/// The refusal of a listing by a store that has no way to list (plain HTTP servers).
pub(crate) fn cannot_list(url: &str) -> crate::error::Error {
    crate::error::Error::unsupported(format!(
        "{url}: listing is not possible over plain HTTP (a web server has no listing API); checking whether a \
         scale holds data needs file://, gs:// or s3:// (without use_https)"
    ))
}

/// The object-name prefix a listing of `prefix` asks for in a layer whose objects are named
/// `{layer}/{key}` (`layer` without slashes at either end; empty for a bucket's root), as
/// cloud-files' `posixpath.join(layer + "/", prefix)`, with `.` and `..` resolved as
/// [`join_key`](crate::cloudpath::join_key) resolves keys. A trailing `/` is kept: it limits the
/// listing to a folder.
pub(crate) fn list_prefix(layer: &str, prefix: &str) -> String {
    let joined = crate::cloudpath::join_key(&format!("/{layer}"), prefix);
    let mut full = joined.trim_start_matches('/').to_string();
    if !full.is_empty() && (prefix.is_empty() || prefix.ends_with('/')) {
        full.push('/');
    }
    full
}

/// The name of object `name` relative to a layer named `layer` (as [`list_prefix`]): cloud-files'
/// `name.removeprefix(layer + "/")`.
pub(crate) fn relative_name(layer: &str, name: &str) -> String {
    if layer.is_empty() {
        return name.to_string();
    }
    match name.strip_prefix(layer).and_then(|r| r.strip_prefix('/')) {
        Some(rest) => rest.to_string(),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_prefixes_are_cloud_files_joins() {
        assert_eq!(list_prefix("a/layer", "8_8_40"), "a/layer/8_8_40");
        assert_eq!(list_prefix("a/layer", "8_8_40/"), "a/layer/8_8_40/");
        assert_eq!(list_prefix("a/layer", ""), "a/layer/");
        assert_eq!(list_prefix("", "8_8_40"), "8_8_40");
        assert_eq!(list_prefix("", "s/"), "s/");
        assert_eq!(list_prefix("", ""), "");
        assert_eq!(list_prefix("a/layer", "../other/s0"), "a/other/s0");
        assert_eq!(list_prefix("a/layer", "./s0//x"), "a/layer/s0/x");
        assert_eq!(relative_name("a/layer", "a/layer/8_8_40/0-1_0-1_0-1"), "8_8_40/0-1_0-1_0-1");
        assert_eq!(relative_name("", "8_8_40/x"), "8_8_40/x");
        assert_eq!(relative_name("a/layer", "a/other/s0/x"), "a/other/s0/x");
        assert_eq!(relative_name("a/layer", "a/layer2/x"), "a/layer2/x");
    }
}
