//! Cloud paths: `file://`, `http(s)://`, `gs://`, `s3://`, optionally behind `precomputed://`.
//!
//! S3-compatible stores are reached as `s3://https://HOST/bucket/path` (cloud-files' form), or
//! through cloud-files' named aliases: the official ones (`matrix://`, `tigerdata://`,
//! `nokura://`) and those of `$CLOUD_FILES_DIR/aliases.json` (default `~/.cloudfiles`), each a
//! prefix standing for its `host`. An aliased path keeps the alias's name, which names its
//! credentials (`matrix-secret.json`, as cloud-files looks them up).

use crate::error::{Error, Result};
use crate::options::StoreOptions;

/// The protocol of a layer's location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    File,
    Http,
    Gs,
    S3,
}

/// A parsed layer location.
#[derive(Debug, Clone)]
pub struct CloudPath {
    /// The path as given (after removing the format prefix and suffix).
    pub path: String,
    pub protocol: Protocol,
    /// For `file`: the absolute directory. For the others: the base URL the layer's keys are
    /// appended to, with gs:// and s3:// mapped onto their HTTPS endpoints.
    pub base: String,
    /// For gs:// and s3://: the bucket.
    pub bucket: Option<String>,
    /// For s3:// reached through a named alias (`matrix://`...): the alias, which is the
    /// service name of its secret files (`matrix-secret.json`).
    pub alias: Option<String>,
}

const GS_ENDPOINT: &str = "https://storage.googleapis.com";
/// The endpoint of `s3://` paths that name no other: AWS.
pub const S3_ENDPOINT: &str = "https://s3.amazonaws.com";

/// cloud-files' official aliases (`cloudfiles/paths.py`): each scheme stands for its prefix.
const OFFICIAL_ALIASES: &[(&str, &str)] = &[
    ("nokura", "s3://https://c10s.pni.princeton.edu/"),
    ("matrix", "s3://https://s3-hpcrc.rc.princeton.edu/"),
    ("tigerdata", "s3://https://td.princeton.edu/"),
];

/// Schemes an alias may not take (cloud-files' base protocols and formats).
const RESERVED_SCHEMES: &[&str] = &[
    "gs",
    "file",
    "s3",
    "http",
    "https",
    "mem",
    "middleauth+https",
    "ngauth+https",
    "graphene",
    "precomputed",
    "boss",
    "n5",
    "zarr",
    "zarr2",
    "zarr3",
    "brainmaps",
    "deepzoom",
    "nggraph",
    "render",
    "vtk",
    "nifti",
    "dvid",
];

/// The prefix the alias `scheme` stands for: an official alias, else one of
/// `$CLOUD_FILES_DIR/aliases.json` (`{"name": {"host": "s3://https://host/"}}`).
fn alias_host(scheme: &str) -> Result<Option<String>> {
    if let Some((_, host)) = OFFICIAL_ALIASES.iter().find(|(a, _)| *a == scheme) {
        return Ok(Some((*host).to_string()));
    }
    if RESERVED_SCHEMES.contains(&scheme) {
        return Ok(None);
    }
    let dir = match std::env::var_os("CLOUD_FILES_DIR") {
        Some(d) if !d.is_empty() => std::path::PathBuf::from(d),
        _ => std::env::var_os("HOME")
            .map_or_else(|| std::path::PathBuf::from("/"), std::path::PathBuf::from)
            .join(".cloudfiles"),
    };
    let file = dir.join("aliases.json");
    let Ok(text) = std::fs::read_to_string(&file) else { return Ok(None) };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(format!("alias file {}: not valid JSON ({e})", file.display())))?;
    Ok(v.get(scheme).and_then(|a| a.get("host")).and_then(|h| h.as_str()).map(|h| {
        if h.ends_with('/') {
            h.to_string()
        } else {
            format!("{h}/")
        }
    }))
}

impl CloudPath {
    pub fn parse(input: &str, opts: &StoreOptions) -> Result<CloudPath> {
        Self::parse_aliased(input, opts, None)
    }

    fn parse_aliased(input: &str, opts: &StoreOptions, alias: Option<&str>) -> Result<CloudPath> {
        let mut s = input.trim();
        if let Some(rest) = s.strip_prefix("precomputed://") {
            s = rest;
        }
        if let Some(rest) = s.strip_suffix("|neuroglancer-precomputed:") {
            s = rest;
        }
        if s.is_empty() {
            return Err(Error::invalid(format!("empty cloud path \"{input}\"")));
        }
        let (scheme, rest) = match s.find("://") {
            Some(i) => (&s[..i], s[i + 3..].trim_end_matches('/')),
            None => ("file", s.trim_end_matches('/')),
        };
        let s = s.trim_end_matches('/');
        if alias.is_none() && !matches!(scheme, "file" | "http" | "https" | "gs" | "s3") {
            if let Some(host) = alias_host(scheme)? {
                let resolved = format!("{host}{rest}");
                let mut cp = Self::parse_aliased(&resolved, opts, Some(scheme))
                    .map_err(|e| e.context(format!("cloud path \"{input}\"")))?;
                if cp.protocol == Protocol::S3 {
                    cp.alias = Some(scheme.to_string());
                }
                cp.path = s.to_string();
                return Ok(cp);
            }
        }
        let bucket_and_key = |rest: &str| -> Result<(String, String)> {
            let bucket = rest.split('/').next().unwrap_or("");
            if bucket.is_empty() {
                return Err(Error::invalid(format!("cloud path \"{input}\" names no bucket")));
            }
            Ok((bucket.to_string(), rest.to_string()))
        };
        let cp = match scheme {
            "file" => {
                let path = if rest.starts_with('/') {
                    rest.to_string()
                } else {
                    let cwd = std::env::current_dir()
                        .map_err(|e| Error::io(format!("cannot resolve relative path \"{rest}\": {e}")))?;
                    cwd.join(rest).to_string_lossy().into_owned()
                };
                CloudPath { path: s.to_string(), protocol: Protocol::File, base: path, bucket: None, alias: None }
            }
            "http" | "https" => {
                if rest.is_empty() {
                    return Err(Error::invalid(format!("cloud path \"{input}\" names no host")));
                }
                CloudPath {
                    path: s.to_string(),
                    protocol: Protocol::Http,
                    base: s.to_string(),
                    bucket: None,
                    alias: None,
                }
            }
            "gs" => {
                let (bucket, all) = bucket_and_key(rest)?;
                let ep = opts.gs_endpoint.as_deref().unwrap_or(GS_ENDPOINT);
                CloudPath {
                    path: s.to_string(),
                    protocol: Protocol::Gs,
                    base: format!("{ep}/{all}"),
                    bucket: Some(bucket),
                    alias: None,
                }
            }
            "s3" => {
                // cloud-files' `s3://https://host/bucket/path`: an S3-compatible endpoint.
                let (endpoint, rest) = match rest.split_once("://") {
                    Some((sch @ ("http" | "https"), after)) => {
                        let (host, tail) = after.split_once('/').unwrap_or((after, ""));
                        if host.is_empty() {
                            return Err(Error::invalid(format!("cloud path \"{input}\" names no endpoint host")));
                        }
                        (Some(format!("{sch}://{host}")), tail.trim_start_matches('/'))
                    }
                    _ => (None, rest),
                };
                let (bucket, all) = bucket_and_key(rest)?;
                let ep = opts.s3_endpoint.as_deref().or(endpoint.as_deref()).unwrap_or(S3_ENDPOINT);
                CloudPath {
                    path: s.to_string(),
                    protocol: Protocol::S3,
                    base: format!("{ep}/{all}"),
                    bucket: Some(bucket),
                    alias: None,
                }
            }
            "graphene" => {
                return Err(Error::unsupported(format!(
                    "cloud path \"{input}\": graphene:// layers are read-only: they open with cv_open, \
                     but cannot be created, written or used as a key-value store"
                )))
            }
            "boss" | "dvid" | "ocp" => {
                return Err(Error::unsupported(format!(
                    "cloud path \"{input}\": {scheme}:// volumes open with cv_open (and dvid:// ones are created \
                     with cv_create), but a {scheme} service is not a key-value store of files"
                )))
            }
            "n5" | "zarr" | "zarr2" | "zarr3" | "mem" | "middleauth+https" | "ngauth+https" => {
                return Err(Error::unsupported(format!(
                    "cloud path \"{input}\": the {scheme}:// protocol is not supported yet"
                )))
            }
            _ => return Err(Error::invalid(format!("cloud path \"{input}\": unknown protocol \"{scheme}://\""))),
        };
        Ok(cp)
    }
}

/// Join a `/`-separated key onto a base, resolving `.` and `..` segments lexically as tensorstore
/// does (each `..` pops one component of the key part).
pub fn join_key(base: &str, key: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut popped_past = 0usize;
    for seg in key.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    popped_past += 1;
                }
            }
            s => parts.push(s),
        }
    }
    let mut b = base.trim_end_matches('/').to_string();
    for _ in 0..popped_past {
        if let Some(i) = b.rfind('/') {
            b.truncate(i);
        }
    }
    if parts.is_empty() {
        b
    } else {
        format!("{b}/{}", parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_protocol() {
        let o = StoreOptions::default();
        let p = CloudPath::parse("precomputed://gs://bucket/a/b/", &o).unwrap();
        assert_eq!(p.protocol, Protocol::Gs);
        assert_eq!(p.base, "https://storage.googleapis.com/bucket/a/b");
        assert_eq!(p.bucket.as_deref(), Some("bucket"));
        let o2 = StoreOptions { s3_endpoint: Some("http://127.0.0.1:9000".into()), ..StoreOptions::default() };
        let p = CloudPath::parse("s3://bk/x|neuroglancer-precomputed:", &o2).unwrap();
        assert_eq!(p.base, "http://127.0.0.1:9000/bk/x");
        let p = CloudPath::parse("file:///tmp/x", &o).unwrap();
        assert_eq!((p.protocol, p.base.as_str()), (Protocol::File, "/tmp/x"));
        let p = CloudPath::parse("/tmp/y", &o).unwrap();
        assert_eq!(p.base, "/tmp/y");
        assert!(CloudPath::parse("graphene://https://x/y", &o).is_err());
        assert!(CloudPath::parse("ftp://x/y", &o).is_err());
        assert!(CloudPath::parse("gs://", &o).is_err());
    }

    #[test]
    fn s3_endpoints_in_the_path_and_aliases() {
        let o = StoreOptions::default();
        let p = CloudPath::parse("s3://https://minio.example.org:9000/bk/a/b/", &o).unwrap();
        assert_eq!(
            (p.protocol, p.base.as_str(), p.bucket.as_deref()),
            (Protocol::S3, "https://minio.example.org:9000/bk/a/b", Some("bk"))
        );
        assert_eq!(p.alias, None);
        let p = CloudPath::parse("precomputed://matrix://bk/layer", &o).unwrap();
        assert_eq!((p.protocol, p.base.as_str()), (Protocol::S3, "https://s3-hpcrc.rc.princeton.edu/bk/layer"));
        assert_eq!(
            (p.bucket.as_deref(), p.alias.as_deref(), p.path.as_str()),
            (Some("bk"), Some("matrix"), "matrix://bk/layer")
        );
        let p = CloudPath::parse("tigerdata://bk/l", &o).unwrap();
        assert_eq!((p.base.as_str(), p.alias.as_deref()), ("https://td.princeton.edu/bk/l", Some("tigerdata")));
        let p = CloudPath::parse("nokura://bk/l", &o).unwrap();
        assert_eq!(p.base, "https://c10s.pni.princeton.edu/bk/l");
        // The endpoint option stands for any endpoint, an alias's too.
        let o2 = StoreOptions { s3_endpoint: Some("http://127.0.0.1:9".into()), ..StoreOptions::default() };
        let p = CloudPath::parse("matrix://bk/l", &o2).unwrap();
        assert_eq!((p.base.as_str(), p.alias.as_deref()), ("http://127.0.0.1:9/bk/l", Some("matrix")));
        let p = CloudPath::parse("s3://https://h.org/bk/l", &o2).unwrap();
        assert_eq!(p.base, "http://127.0.0.1:9/bk/l");
        assert!(CloudPath::parse("s3://https:///bk", &o).is_err());
        assert!(CloudPath::parse("matrix://", &o).is_err());
    }

    #[test]
    fn joins_keys_with_dot_dot() {
        assert_eq!(join_key("http://h/a/b", "8_8_8/1-2_3-4_5-6"), "http://h/a/b/8_8_8/1-2_3-4_5-6");
        assert_eq!(join_key("/d/layer", "../other/s0"), "/d/other/s0");
        assert_eq!(join_key("/d/layer", "s0/../s1"), "/d/layer/s1");
    }
}
