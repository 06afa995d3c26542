//! Options of `cv_open`, a JSON object whose keys follow cloud-volume's keyword names.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Default number of requests in flight for network stores.
pub const DEFAULT_NETWORK_PARALLEL: usize = 24;

/// How written chunks are compressed (cloud-volume's `compress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    /// cloud-volume's default: gzip for raw and compressed_segmentation on object stores and
    /// HTTP (as `Content-Encoding`); nothing on `file://`, so plain files stay readable by
    /// Neuroglancer and tensorstore.
    Default,
    /// No compression.
    None,
    /// gzip: `Content-Encoding: gzip`, or cloud-volume's `.gz` suffix on `file://`.
    Gzip,
    /// zstd: `Content-Encoding: zstd`, or the `.zstd` suffix on `file://`.
    Zstd,
}

/// A value kept out of `Debug` output (credentials).
#[derive(Clone, Default)]
pub struct Redacted<T>(pub T);

impl<T> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Per-handle options. Unknown keys are refused, not ignored.
#[derive(Debug, Clone)]
pub struct Options {
    /// Default mip for bindings (the C calls take an explicit mip).
    pub mip: u32,
    /// Refuse boxes that leave the volume (`true`), or fill the outside with background.
    pub bounded: bool,
    /// Read missing (or zero-byte) chunks as background instead of failing.
    pub fill_missing: bool,
    /// The value of missing and out-of-bounds voxels, cast to the layer's type.
    pub background_color: f64,
    /// Concurrent chunk requests; None picks by store (cores for file://, 24 for network).
    pub parallel: Option<usize>,
    /// Base URL that stands for `https://storage.googleapis.com` in gs:// paths.
    pub gs_endpoint: Option<String>,
    /// Base URL that stands for `https://s3.amazonaws.com` in s3:// paths.
    pub s3_endpoint: Option<String>,
    /// Seconds one HTTP request may take in all (connecting, sending, receiving the answer).
    pub timeout_secs: f64,
    /// Attempts per HTTP request on connection errors, 429 and 5xx.
    pub max_attempts: u32,
    /// Allow writes of boxes off the chunk grid (partial chunks are read, merged, rewritten).
    pub non_aligned_writes: bool,
    /// Compression of written chunks.
    pub compress: Compress,
    /// Compression level of written chunks (gzip 1-12, zstd 1-22); None: 6 for gzip, 3 for zstd.
    pub compress_level: Option<i32>,
    /// Delete chunks that are entirely `background_color` instead of writing them.
    pub delete_black_uploads: bool,
    /// `cv_create`: replace an existing info.
    pub overwrite: bool,
    /// Credentials handed in directly (cloud-volume's `secrets=`): an object, or the path of a
    /// JSON file; each store reads the members it knows. None: look them up as cloud-files does.
    pub secrets: Option<Redacted<serde_json::Value>>,
    /// An OAuth2 access token for gs:// (instead of a service account).
    pub gs_token: Option<Redacted<String>>,
    /// Send no credentials, even if secret files exist (public buckets).
    pub anonymous: bool,
    /// The S3 region used in signatures; None: from the secret, `AWS_DEFAULT_REGION`, or us-east-1.
    pub s3_region: Option<String>,
    /// Timeout of connecting, in seconds.
    pub connect_timeout_secs: f64,
    /// Total seconds one request may spend on retries before it fails.
    pub retry_budget_secs: f64,
    /// Check the checksums a store sends (GCS crc32c/md5, S3 single-part ETag).
    pub checksum: bool,
    /// Bytes of fetched chunks kept in memory (cloud-volume's `lru_bytes`); 0 turns it off.
    pub lru_bytes: usize,
    /// cloud-volume's local disk cache: None off, Some(dir) the cache root (`cache=true` gives
    /// `$CLOUD_VOLUME_CACHE_DIR`, else `$CLOUD_VOLUME_DIR/cache`).
    pub cache: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mip: 0,
            bounded: true,
            fill_missing: false,
            background_color: 0.0,
            parallel: None,
            gs_endpoint: None,
            s3_endpoint: None,
            timeout_secs: 60.0,
            max_attempts: 7,
            non_aligned_writes: false,
            compress: Compress::Default,
            compress_level: None,
            delete_black_uploads: false,
            overwrite: false,
            secrets: None,
            gs_token: None,
            anonymous: false,
            s3_region: None,
            connect_timeout_secs: 10.0,
            retry_budget_secs: 300.0,
            checksum: true,
            lru_bytes: 0,
            cache: None,
        }
    }
}

/// The keys `Options::parse` accepts, for messages and documentation.
pub const OPTION_KEYS: &[&str] = &[
    "mip",
    "bounded",
    "fill_missing",
    "background_color",
    "parallel",
    "cache",
    "gs_endpoint",
    "s3_endpoint",
    "timeout",
    "max_attempts",
    "non_aligned_writes",
    "compress",
    "compress_level",
    "delete_black_uploads",
    "overwrite",
    "secrets",
    "gs_token",
    "anonymous",
    "s3_region",
    "connect_timeout",
    "retry_budget",
    "checksum",
    "lru_bytes",
];

/// The root of cloud-volume's disk cache: `$CLOUD_VOLUME_CACHE_DIR`, else `$CLOUD_VOLUME_DIR/cache`.
pub fn default_cache_dir() -> std::path::PathBuf {
    match std::env::var_os("CLOUD_VOLUME_CACHE_DIR") {
        Some(d) if !d.is_empty() => std::path::PathBuf::from(d),
        _ => crate::secrets::cloud_volume_dir().join("cache"),
    }
}

fn positive_secs(key: &str, val: &Value) -> Result<f64> {
    val.as_f64()
        .filter(|t| *t > 0.0 && t.is_finite())
        .ok_or_else(|| Error::invalid(format!("option \"{key}\" must be a positive number of seconds, got {val}")))
}

fn want_bool(key: &str, v: &Value) -> Result<bool> {
    v.as_bool().ok_or_else(|| Error::invalid(format!("option \"{key}\" must be true or false, got {v}")))
}

fn want_url(key: &str, v: &Value) -> Result<String> {
    match v.as_str() {
        Some(s) if s.starts_with("http://") || s.starts_with("https://") => {
            Ok(s.trim_end_matches('/').to_string())
        }
        _ => Err(Error::invalid(format!("option \"{key}\" must be an http(s):// URL, got {v}"))),
    }
}

impl Options {
    /// Parse an options JSON object; `None` or an empty string gives the defaults.
    pub fn parse(text: Option<&str>) -> Result<Options> {
        let mut o = Options::default();
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else { return Ok(o) };
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("options are not valid JSON ({e}): {text}")))?;
        let map: &Map<String, Value> =
            v.as_object().ok_or_else(|| Error::invalid(format!("options must be a JSON object, got {text}")))?;
        for (key, val) in map {
            match key.as_str() {
                "mip" => {
                    o.mip = val
                        .as_u64()
                        .and_then(|m| u32::try_from(m).ok())
                        .ok_or_else(|| Error::invalid(format!("option \"mip\" must be an integer >= 0, got {val}")))?
                }
                "bounded" => o.bounded = want_bool(key, val)?,
                "fill_missing" => o.fill_missing = want_bool(key, val)?,
                "background_color" => {
                    o.background_color = val.as_f64().ok_or_else(|| {
                        Error::invalid(format!("option \"background_color\" must be a number, got {val}"))
                    })?
                }
                "parallel" => {
                    o.parallel = match val {
                        // cloud-volume's parallel counts processes; threads stay at our default.
                        Value::Bool(_) | Value::Null => None,
                        _ => match val.as_u64() {
                            Some(n @ 1..=1024) => Some(n as usize),
                            _ => {
                                return Err(Error::invalid(format!(
                                    "option \"parallel\" must be true, false or an integer in 1..=1024, got {val}"
                                )))
                            }
                        },
                    }
                }
                "cache" => {
                    o.cache = match val {
                        Value::Bool(false) | Value::Null => None,
                        Value::Bool(true) => Some(default_cache_dir()),
                        Value::String(s) if !s.is_empty() => Some(std::path::PathBuf::from(s.strip_prefix("file://").unwrap_or(s))),
                        _ => {
                            return Err(Error::invalid(format!(
                                "option \"cache\" must be true, false or a directory, got {val}"
                            )))
                        }
                    }
                }
                "secrets" => {
                    o.secrets = match val {
                        Value::Null => None,
                        Value::Object(_) | Value::String(_) => Some(Redacted(val.clone())),
                        _ => {
                            return Err(Error::invalid(
                                "option \"secrets\" must be an object or the path of a JSON file",
                            ))
                        }
                    }
                }
                "gs_token" => {
                    o.gs_token = match val {
                        Value::Null => None,
                        Value::String(t) if !t.is_empty() => Some(Redacted(t.clone())),
                        _ => return Err(Error::invalid("option \"gs_token\" must be a non-empty string")),
                    }
                }
                "anonymous" => o.anonymous = want_bool(key, val)?,
                "s3_region" => {
                    o.s3_region = Some(
                        val.as_str()
                            .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                            .ok_or_else(|| Error::invalid(format!("option \"s3_region\" must be a region name, got {val}")))?
                            .to_string(),
                    )
                }
                "connect_timeout" => o.connect_timeout_secs = positive_secs(key, val)?,
                "retry_budget" => o.retry_budget_secs = positive_secs(key, val)?,
                "checksum" => o.checksum = want_bool(key, val)?,
                "lru_bytes" => {
                    o.lru_bytes = val
                        .as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| Error::invalid(format!("option \"lru_bytes\" must be an integer >= 0, got {val}")))?
                }
                "gs_endpoint" => o.gs_endpoint = Some(want_url(key, val)?),
                "s3_endpoint" => o.s3_endpoint = Some(want_url(key, val)?),
                "timeout" => o.timeout_secs = positive_secs(key, val)?,
                "max_attempts" => {
                    o.max_attempts = val
                        .as_u64()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| Error::invalid(format!("option \"max_attempts\" must be in 1..=100, got {val}")))?
                        as u32
                }
                "non_aligned_writes" => o.non_aligned_writes = want_bool(key, val)?,
                "delete_black_uploads" => o.delete_black_uploads = want_bool(key, val)?,
                "overwrite" => o.overwrite = want_bool(key, val)?,
                "compress" => {
                    o.compress = match val {
                        Value::Null => Compress::Default,
                        Value::Bool(false) => Compress::None,
                        Value::Bool(true) => Compress::Gzip,
                        Value::String(s) => match s.as_str() {
                            "gzip" => Compress::Gzip,
                            "zstd" => Compress::Zstd,
                            "" => Compress::None,
                            "br" | "xz" | "bz2" => {
                                return Err(Error::unsupported(format!(
                                    "option \"compress\" = \"{s}\": writing {s} is not supported (gzip and zstd are)"
                                )))
                            }
                            _ => return Err(Error::invalid(format!("option \"compress\" = \"{s}\" is not a compression"))),
                        },
                        _ => return Err(Error::invalid(format!("option \"compress\" must be null, a boolean or a name, got {val}"))),
                    }
                }
                "compress_level" => {
                    o.compress_level = Some(
                        val.as_i64()
                            .filter(|l| (1..=22).contains(l))
                            .ok_or_else(|| Error::invalid(format!("option \"compress_level\" must be in 1..=22, got {val}")))?
                            as i32,
                    )
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "unknown option \"{key}\" (known: {})",
                        OPTION_KEYS.join(", ")
                    )))
                }
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn defaults_and_known_keys() {
        let o = Options::parse(None).unwrap();
        assert!(o.bounded && !o.fill_missing);
        let o = Options::parse(Some(r#"{"bounded":false,"fill_missing":true,"background_color":7,"parallel":3,
            "gs_endpoint":"http://127.0.0.1:9/"}"#))
        .unwrap();
        assert!(!o.bounded && o.fill_missing);
        assert_eq!(o.background_color, 7.0);
        assert_eq!(o.parallel, Some(3));
        assert_eq!(o.gs_endpoint.as_deref(), Some("http://127.0.0.1:9"));
    }

    #[test]
    fn unknown_and_bad_values_are_refused_by_name() {
        let e = Options::parse(Some(r#"{"fill_mising":true}"#)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("fill_mising"));
        let e = Options::parse(Some(r#"{"bounded":1}"#)).unwrap_err();
        assert!(e.message().contains("bounded"));
        let e = Options::parse(Some("[1]")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = Options::parse(Some(r#"{"cache":7}"#)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = Options::parse(Some(r#"{"secrets":7}"#)).unwrap_err();
        assert!(e.message().contains("secrets"));
    }

    #[test]
    fn credentials_stay_out_of_debug_output() {
        let o = Options::parse(Some(r#"{"secrets":{"AWS_SECRET_ACCESS_KEY":"hunter2hunter2"},"gs_token":"ya29.tokentoken"}"#)).unwrap();
        let d = format!("{o:?}");
        assert!(!d.contains("hunter2") && !d.contains("ya29"), "{d}");
    }
}
