//! Content encodings: how a stored object's bytes are compressed as a whole — the
//! `Content-Encoding` of an HTTP answer, cloud-volume's `.gz` / `.br` / `.zstd` file suffixes, the
//! gzip `data_encoding` of shard payloads. Removing them is the codec layer's job
//! (`codec::compression`); stores only carry the tag.

use crate::error::{Error, Result};

/// The content encoding of stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentEncoding {
    Identity,
    Gzip,
    Brotli,
    Zstd,
}

impl ContentEncoding {
    /// Every encoding, in the order cloud-files probes file suffixes.
    pub const ALL: [ContentEncoding; 4] =
        [ContentEncoding::Identity, ContentEncoding::Gzip, ContentEncoding::Brotli, ContentEncoding::Zstd];

    /// The `Content-Encoding` header value (None for identity).
    pub fn header(self) -> Option<&'static str> {
        match self {
            ContentEncoding::Identity => None,
            ContentEncoding::Gzip => Some("gzip"),
            ContentEncoding::Brotli => Some("br"),
            ContentEncoding::Zstd => Some("zstd"),
        }
    }

    /// cloud-volume's file suffix for objects stored with this encoding (`""` for identity).
    pub fn file_suffix(self) -> &'static str {
        match self {
            ContentEncoding::Identity => "",
            ContentEncoding::Gzip => ".gz",
            ContentEncoding::Brotli => ".br",
            ContentEncoding::Zstd => ".zstd",
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            ContentEncoding::Identity => "identity",
            ContentEncoding::Gzip => "gzip",
            ContentEncoding::Brotli => "brotli",
            ContentEncoding::Zstd => "zstd",
        }
    }

    /// Parse a `Content-Encoding` header value; `url` names the object in messages.
    ///
    /// # Errors
    /// An encoding this library does not decode (`Unsupported`).
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
