//! Options of `cv_open`, a JSON object whose keys follow cloud-volume's keyword names, in three
//! parts: where the bytes come from ([`StoreOptions`]), how reads treat the volume's edges and
//! gaps ([`ReadOptions`]), how writes are made ([`WriteOptions`]), plus the default `mip`.
//!
//! The keys are the fields of the three structs (serde derive), listed nowhere else: the
//! accepted keys, unknown-key messages and each key's parsing come from them. An unknown key is
//! refused, not ignored.

use std::path::PathBuf;

use serde::de::{self, Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Default number of worker threads for network stores and services: requests in flight for
/// what is not a chunk read (writes, shard indices, the tiles of DVID, BOSS and OCP).
pub const DEFAULT_NETWORK_PARALLEL: usize = 24;

/// Default cap on chunk requests in flight from network stores; how many are out at once is
/// set by the byte budget, [`DEFAULT_MAX_INFLIGHT_BYTES`]: hundreds of small chunks, a few
/// dozen 1 MiB ones.
pub const DEFAULT_NETWORK_FETCHES: usize = 256;

/// Default byte budget of fetched bodies held at once (`max_inflight_bytes`).
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 32 << 20;

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

/// Where a layer's bytes come from: endpoints, credentials, the network, the caches.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct StoreOptions {
    /// Concurrent requests; None picks by store: on file://, the cores; on network stores, 24
    /// workers and up to 256 chunk reads in flight (as many as `max_inflight_bytes` holds).
    /// A number sets both.
    #[serde(deserialize_with = "parallel")]
    pub parallel: Option<usize>,
    /// Bytes of fetched bodies held at once (from before a request is sent until its chunk is
    /// decoded): what decides how many requests are in flight within `parallel`.
    #[serde(deserialize_with = "inflight_bytes")]
    pub max_inflight_bytes: usize,
    /// Base URL that stands for `https://storage.googleapis.com` in gs:// paths.
    #[serde(deserialize_with = "endpoint")]
    pub gs_endpoint: Option<String>,
    /// Base URL that stands for `https://s3.amazonaws.com` in s3:// paths.
    #[serde(deserialize_with = "endpoint")]
    pub s3_endpoint: Option<String>,
    /// Seconds one HTTP request may take in all (connecting, sending, receiving the answer).
    #[serde(rename = "timeout", deserialize_with = "seconds")]
    pub timeout_secs: f64,
    /// Timeout of connecting, in seconds.
    #[serde(rename = "connect_timeout", deserialize_with = "seconds")]
    pub connect_timeout_secs: f64,
    /// Attempts per HTTP request on connection errors, 429 and 5xx.
    #[serde(deserialize_with = "attempts")]
    pub max_attempts: u32,
    /// Total seconds one request may spend on retries before it fails.
    #[serde(rename = "retry_budget", deserialize_with = "seconds")]
    pub retry_budget_secs: f64,
    /// Check the checksums a store sends (GCS crc32c/md5, S3 single-part ETag).
    pub checksum: bool,
    /// Credentials handed in directly (cloud-volume's `secrets=`): an object, or the path of a
    /// JSON file; each store reads the members it knows. None: look them up as cloud-files does.
    #[serde(deserialize_with = "secrets")]
    pub secrets: Option<Redacted<Value>>,
    /// An OAuth2 access token for gs:// (instead of a service account).
    #[serde(deserialize_with = "token")]
    pub gs_token: Option<Redacted<String>>,
    /// Send no credentials, even if secret files exist (public buckets).
    pub anonymous: bool,
    /// The S3 region used in signatures; None: from the secret, `AWS_DEFAULT_REGION`, or us-east-1.
    #[serde(deserialize_with = "region")]
    pub s3_region: Option<String>,
    /// Bytes of fetched chunks kept in memory (cloud-volume's `lru_bytes`); 0 turns it off.
    pub lru_bytes: usize,
    /// cloud-volume's local disk cache: None off, Some(dir) the cache root (`cache=true` gives
    /// `$CLOUD_VOLUME_CACHE_DIR`, else `$CLOUD_VOLUME_DIR/cache`).
    #[serde(deserialize_with = "cache")]
    pub cache: Option<PathBuf>,
    /// Read gs:// and s3:// paths through their public HTTPS endpoints, without credentials
    /// (cloud-volume's `use_https`).
    pub use_https: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            parallel: None,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            gs_endpoint: None,
            s3_endpoint: None,
            timeout_secs: 60.0,
            connect_timeout_secs: 10.0,
            max_attempts: 7,
            retry_budget_secs: 300.0,
            checksum: true,
            secrets: None,
            gs_token: None,
            anonymous: false,
            s3_region: None,
            lru_bytes: 0,
            cache: None,
            use_https: false,
        }
    }
}

/// How reads treat the volume's edge and missing chunks.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct ReadOptions {
    /// Refuse boxes that leave the volume (`true`), or fill the outside with background.
    pub bounded: bool,
    /// Read missing (or zero-byte) chunks as background instead of failing.
    pub fill_missing: bool,
    /// The value of missing and out-of-bounds voxels, cast to the layer's type.
    pub background_color: f64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { bounded: true, fill_missing: false, background_color: 0.0 }
    }
}

/// How writes are made.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct WriteOptions {
    /// Allow writes of boxes off the chunk grid (partial chunks are read, merged, rewritten).
    pub non_aligned_writes: bool,
    /// Compression of written chunks.
    #[serde(deserialize_with = "compress")]
    pub compress: Compress,
    /// Compression level of written chunks (gzip 1-12, zstd 1-22); None: 6 for gzip, 3 for zstd.
    #[serde(deserialize_with = "level")]
    pub compress_level: Option<i32>,
    /// Delete chunks that are entirely `background_color` instead of writing them.
    pub delete_black_uploads: bool,
    /// `cv_create`: replace an existing info.
    pub overwrite: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            non_aligned_writes: false,
            compress: Compress::Default,
            compress_level: None,
            delete_black_uploads: false,
            overwrite: false,
        }
    }
}

/// How `graphene://` layers answer (ignored by other layers).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct GrapheneOptions {
    /// Map supervoxels to their roots (`true`, the default) or return supervoxels.
    pub agglomerate: bool,
    /// The graph's state at this unix time (seconds); None: the latest.
    #[serde(deserialize_with = "timestamp")]
    pub timestamp: Option<f64>,
    /// Map supervoxels to their ancestors at this layer instead of the roots (1 ..= n_layers).
    #[serde(deserialize_with = "stop_layer")]
    pub stop_layer: Option<u32>,
}

impl Default for GrapheneOptions {
    fn default() -> Self {
        GrapheneOptions { agglomerate: true, timestamp: None, stop_layer: None }
    }
}

/// The body an OCP / ndstore project is asked for (`ocp_format`); writes always POST `npz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcpFormat {
    /// zlib over a `.npy` file (ndstore's `npz`).
    #[default]
    Npz,
    /// The array's C-order bytes.
    Raw,
    /// An HDF5 file (ndstore's group-per-channel layout, or OCP's older root `CUTOUT`).
    Hdf5,
}

/// How the volume services (DVID, BOSS, OCP) are asked (ignored by other layers).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct ServiceOptions {
    /// OCP / ndstore: the cutout body to request.
    #[serde(deserialize_with = "ocp_format")]
    pub ocp_format: OcpFormat,
}

/// Per-handle options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Default mip for bindings (the C calls take an explicit mip).
    pub mip: u32,
    pub store: StoreOptions,
    pub read: ReadOptions,
    pub write: WriteOptions,
    pub graphene: GrapheneOptions,
    pub service: ServiceOptions,
}

/// The root of cloud-volume's disk cache: `$CLOUD_VOLUME_CACHE_DIR`, else `$CLOUD_VOLUME_DIR/cache`.
pub fn default_cache_dir() -> PathBuf {
    match std::env::var_os("CLOUD_VOLUME_CACHE_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => crate::secrets::cloud_volume_dir().join("cache"),
    }
}

// ---------------------------------------------------------------------------------------------
// Value parsers. Their messages complete `option "KEY" `; an "unsupported" one is marked.

/// Marks a message whose error is `Unsupported` rather than `InvalidArgument`.
const UNSUPPORTED: &str = "\u{1}unsupported\u{1}";

fn bad<E: de::Error>(what: &str, got: &Value) -> E {
    E::custom(format!("must be {what}, got {got}"))
}

fn parallel<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<usize>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        // cloud-volume's parallel counts processes; threads stay at our default.
        Value::Bool(_) | Value::Null => Ok(None),
        _ => match v.as_u64() {
            Some(n @ 1..=1024) => Ok(Some(n as usize)),
            _ => Err(bad("true, false or an integer in 1..=1024", &v)),
        },
    }
}

fn inflight_bytes<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<usize, D::Error> {
    let v = Value::deserialize(d)?;
    match v.as_u64() {
        Some(n @ 65_536..=1_099_511_627_776) => Ok(n as usize),
        _ => Err(bad("an integer number of bytes in 65536..=2^40", &v)),
    }
}

fn endpoint<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    match v.as_str() {
        Some(s) if s.starts_with("http://") || s.starts_with("https://") => {
            Ok(Some(s.trim_end_matches('/').to_string()))
        }
        _ => Err(bad("an http(s):// URL", &v)),
    }
}

fn seconds<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    let v = Value::deserialize(d)?;
    v.as_f64().filter(|t| *t > 0.0 && t.is_finite()).ok_or_else(|| bad("a positive number of seconds", &v))
}

fn attempts<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u32, D::Error> {
    let v = Value::deserialize(d)?;
    v.as_u64().filter(|n| (1..=100).contains(n)).map(|n| n as u32).ok_or_else(|| bad("in 1..=100", &v))
}

fn secrets<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Redacted<Value>>, D::Error> {
    let v = Value::deserialize(d)?;
    match v {
        Value::Null => Ok(None),
        Value::Object(_) | Value::String(_) => Ok(Some(Redacted(v))),
        // The value may be a secret: not quoted.
        _ => Err(de::Error::custom("must be an object or the path of a JSON file")),
    }
}

fn token<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Redacted<String>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(t) if !t.is_empty() => Ok(Some(Redacted(t))),
        _ => Err(de::Error::custom("must be a non-empty string")),
    }
}

fn region<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    v.as_str()
        .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(|r| Some(r.to_string()))
        .ok_or_else(|| bad("a region name", &v))
}

fn cache<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<PathBuf>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Bool(false) | Value::Null => Ok(None),
        Value::Bool(true) => Ok(Some(default_cache_dir())),
        Value::String(s) if !s.is_empty() => Ok(Some(PathBuf::from(s.strip_prefix("file://").unwrap_or(s)))),
        _ => Err(bad("true, false or a directory", &v)),
    }
}

fn compress<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Compress, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Null => Ok(Compress::Default),
        Value::Bool(false) => Ok(Compress::None),
        Value::Bool(true) => Ok(Compress::Gzip),
        Value::String(s) => match s.as_str() {
            "gzip" => Ok(Compress::Gzip),
            "zstd" => Ok(Compress::Zstd),
            "" => Ok(Compress::None),
            "br" | "xz" | "bz2" => Err(de::Error::custom(format!(
                "{UNSUPPORTED}= \"{s}\": writing {s} is not supported (gzip and zstd are)"
            ))),
            _ => Err(de::Error::custom(format!("= \"{s}\" is not a compression"))),
        },
        _ => Err(bad("null, a boolean or a name", &v)),
    }
}

fn ocp_format<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<OcpFormat, D::Error> {
    let v = Value::deserialize(d)?;
    match v.as_str() {
        Some("npz") => Ok(OcpFormat::Npz),
        Some("raw") => Ok(OcpFormat::Raw),
        Some("hdf5") => Ok(OcpFormat::Hdf5),
        Some(s @ ("blosc" | "zip" | "tiff" | "jpeg")) => Err(de::Error::custom(format!(
            "{UNSUPPORTED}= \"{s}\": OCP cutouts are read as \"npz\", \"raw\" or \"hdf5\""
        ))),
        _ => Err(bad("\"npz\", \"raw\" or \"hdf5\"", &v)),
    }
}

fn timestamp<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Null => Ok(None),
        _ => v
            .as_f64()
            .filter(|t| t.is_finite() && *t >= 0.0)
            .map(Some)
            .ok_or_else(|| bad("unix seconds (a number >= 0)", &v)),
    }
}

fn stop_layer<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Null => Ok(None),
        _ => v
            .as_u64()
            .filter(|l| (1..=255).contains(l))
            .map(|l| Some(l as u32))
            .ok_or_else(|| bad("a layer in 1..=255", &v)),
    }
}

fn level<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i32>, D::Error> {
    let v = Value::deserialize(d)?;
    v.as_i64().filter(|l| (1..=22).contains(l)).map(|l| Some(l as i32)).ok_or_else(|| bad("in 1..=22", &v))
}

// ---------------------------------------------------------------------------------------------
// Parsing.

/// The field names of a derived `Deserialize` struct, as serde's derive passes them to
/// `deserialize_struct`: the option keys each part takes.
fn keys_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    struct Keys(&'static [&'static str]);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names collected")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    struct Collector<'a>(&'a mut Keys);
    impl<'de> Deserializer<'de> for Collector<'_> {
        type Error = Stop;
        fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, Stop> {
            self.0 .0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut keys = Keys(&[]);
    let _ = T::deserialize(Collector(&mut keys));
    keys.0
}

/// Deserialize one part from the members of `map` it owns.
fn part<T: for<'de> Deserialize<'de> + Default>(map: &Map<String, Value>, keys: &[&str]) -> Result<T> {
    let mine: Map<String, Value> =
        map.iter().filter(|(k, _)| keys.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    if mine.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_value(Value::Object(mine.clone())).map_err(|_| {
        // serde's error does not say which member: find it, one member at a time.
        for (k, v) in &mine {
            let one: Map<String, Value> = std::iter::once((k.clone(), v.clone())).collect();
            if let Err(e) = serde_json::from_value::<T>(Value::Object(one)) {
                let msg = e.to_string();
                return match msg.strip_prefix(UNSUPPORTED) {
                    Some(m) => Error::unsupported(format!("option \"{k}\" {m}")),
                    None if msg.starts_with("must") || msg.starts_with('=') => {
                        Error::invalid(format!("option \"{k}\" {msg}"))
                    }
                    None => Error::invalid(format!("option \"{k}\": {msg}, got {v}")),
                };
            }
        }
        Error::invalid(format!("options {} are not valid", Value::Object(mine.clone())))
    })
}

impl Options {
    /// Every key `Options::parse` accepts, for messages and documentation.
    pub fn keys() -> Vec<&'static str> {
        let mut all = vec!["mip"];
        all.extend(keys_of::<StoreOptions>());
        all.extend(keys_of::<ReadOptions>());
        all.extend(keys_of::<WriteOptions>());
        all.extend(keys_of::<GrapheneOptions>());
        all.extend(keys_of::<ServiceOptions>());
        all
    }

    /// Parse an options JSON object; `None` or an empty string gives the defaults.
    ///
    /// # Errors
    /// Not a JSON object, an unknown key, a bad value (`InvalidArgument`, naming the key); a
    /// value asking for something unsupported (`Unsupported`).
    pub fn parse(text: Option<&str>) -> Result<Options> {
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else { return Ok(Options::default()) };
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("options are not valid JSON ({e}): {text}")))?;
        let map = v.as_object().ok_or_else(|| Error::invalid(format!("options must be a JSON object, got {text}")))?;
        let keys = Self::keys();
        if let Some(k) = map.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(Error::invalid(format!("unknown option \"{k}\" (known: {})", keys.join(", "))));
        }
        let mip = match map.get("mip") {
            None => 0,
            Some(v) => v
                .as_u64()
                .and_then(|m| u32::try_from(m).ok())
                .ok_or_else(|| Error::invalid(format!("option \"mip\" must be an integer >= 0, got {v}")))?,
        };
        Ok(Options {
            mip,
            store: part(map, keys_of::<StoreOptions>())?,
            read: part(map, keys_of::<ReadOptions>())?,
            write: part(map, keys_of::<WriteOptions>())?,
            graphene: part(map, keys_of::<GrapheneOptions>())?,
            service: part(map, keys_of::<ServiceOptions>())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn defaults_and_known_keys() {
        let o = Options::parse(None).unwrap();
        assert!(o.read.bounded && !o.read.fill_missing);
        let o = Options::parse(Some(
            r#"{"bounded":false,"fill_missing":true,"background_color":7,"parallel":3,
            "gs_endpoint":"http://127.0.0.1:9/"}"#,
        ))
        .unwrap();
        assert!(!o.read.bounded && o.read.fill_missing);
        assert_eq!(o.read.background_color, 7.0);
        assert_eq!(o.store.parallel, Some(3));
        assert_eq!(o.store.gs_endpoint.as_deref(), Some("http://127.0.0.1:9"));
        let o = Options::parse(Some(r#"{"timeout":2.5,"compress":"zstd","compress_level":9,"mip":2}"#)).unwrap();
        assert_eq!(
            (o.store.timeout_secs, o.write.compress, o.write.compress_level, o.mip),
            (2.5, Compress::Zstd, Some(9), 2)
        );
    }

    #[test]
    fn every_key_is_listed_once() {
        let keys = Options::keys();
        for k in [
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
            "ocp_format",
            "overwrite",
            "secrets",
            "gs_token",
            "anonymous",
            "s3_region",
            "connect_timeout",
            "retry_budget",
            "checksum",
            "lru_bytes",
            "max_inflight_bytes",
            "use_https",
            "agglomerate",
            "timestamp",
            "stop_layer",
        ] {
            assert_eq!(keys.iter().filter(|&&x| x == k).count(), 1, "{k} in {keys:?}");
        }
        assert_eq!(keys.len(), 29, "{keys:?}");
    }

    #[test]
    fn service_options() {
        assert_eq!(Options::parse(None).unwrap().service.ocp_format, OcpFormat::Npz);
        for (v, f) in [("npz", OcpFormat::Npz), ("raw", OcpFormat::Raw), ("hdf5", OcpFormat::Hdf5)] {
            let o = Options::parse(Some(&format!(r#"{{"ocp_format":"{v}"}}"#))).unwrap();
            assert_eq!(o.service.ocp_format, f);
        }
        let e = Options::parse(Some(r#"{"ocp_format":"blosc"}"#)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(e.message().contains("ocp_format") && e.message().contains("hdf5"), "{e}");
        let e = Options::parse(Some(r#"{"ocp_format":5}"#)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }

    #[test]
    fn graphene_options() {
        let o = Options::parse(None).unwrap();
        assert!(o.graphene.agglomerate && o.graphene.timestamp.is_none() && o.graphene.stop_layer.is_none());
        let o =
            Options::parse(Some(r#"{"agglomerate":false,"timestamp":1700000000.5,"stop_layer":2,"use_https":true}"#))
                .unwrap();
        assert!(!o.graphene.agglomerate && o.store.use_https);
        assert_eq!((o.graphene.timestamp, o.graphene.stop_layer), (Some(1_700_000_000.5), Some(2)));
        for bad in [r#"{"timestamp":-1}"#, r#"{"timestamp":"now"}"#, r#"{"stop_layer":0}"#, r#"{"agglomerate":1}"#] {
            let e = Options::parse(Some(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_and_bad_values_are_refused_by_name() {
        let e = Options::parse(Some(r#"{"fill_mising":true}"#)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("fill_mising") && e.message().contains("fill_missing"), "{e}");
        let e = Options::parse(Some(r#"{"bounded":1}"#)).unwrap_err();
        assert!(e.message().contains("bounded") && e.message().contains('1'), "{e}");
        let e = Options::parse(Some("[1]")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = Options::parse(Some(r#"{"cache":7}"#)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("cache"), "{e}");
        let e = Options::parse(Some(r#"{"secrets":7}"#)).unwrap_err();
        assert!(e.message().contains("secrets"));
        let e = Options::parse(Some(r#"{"parallel":2000,"bounded":true}"#)).unwrap_err();
        assert!(e.message().contains("\"parallel\"") && e.message().contains("2000"), "{e}");
        for bad in ["1000", "-1", "\"32MiB\"", "65536.5", "2000000000000"] {
            let e = Options::parse(Some(&format!(r#"{{"max_inflight_bytes":{bad}}}"#))).unwrap_err();
            assert!(e.message().contains("\"max_inflight_bytes\"") && e.message().contains(bad), "{e}");
        }
        let o = Options::parse(Some(r#"{"max_inflight_bytes":1048576}"#)).unwrap();
        assert_eq!(o.store.max_inflight_bytes, 1 << 20);
        assert_eq!(Options::parse(None).unwrap().store.max_inflight_bytes, DEFAULT_MAX_INFLIGHT_BYTES);
        let e = Options::parse(Some(r#"{"compress":"lzma"}"#)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("lzma"), "{e}");
        let e = Options::parse(Some(r#"{"compress":"br"}"#)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.message().contains("compress") && e.message().contains("br"), "{e}");
    }

    #[test]
    fn credentials_stay_out_of_debug_output() {
        let o = Options::parse(Some(
            r#"{"secrets":{"AWS_SECRET_ACCESS_KEY":"hunter2hunter2"},"gs_token":"ya29.tokentoken"}"#,
        ))
        .unwrap();
        let d = format!("{o:?}");
        assert!(!d.contains("hunter2") && !d.contains("ya29"), "{d}");
        let e = Options::parse(Some(r#"{"gs_token":17}"#)).unwrap_err();
        assert!(e.message().contains("gs_token"), "{e}");
    }
}
