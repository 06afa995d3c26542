//! Cloud paths: `file://`, `http(s)://`, `gs://`, `s3://`, optionally behind `precomputed://`.

use crate::error::{Error, Result};
use crate::options::Options;

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
}

const GS_ENDPOINT: &str = "https://storage.googleapis.com";
const S3_ENDPOINT: &str = "https://s3.amazonaws.com";

impl CloudPath {
    pub fn parse(input: &str, opts: &Options) -> Result<CloudPath> {
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
                CloudPath { path: s.to_string(), protocol: Protocol::File, base: path, bucket: None }
            }
            "http" | "https" => {
                if rest.is_empty() {
                    return Err(Error::invalid(format!("cloud path \"{input}\" names no host")));
                }
                CloudPath { path: s.to_string(), protocol: Protocol::Http, base: s.to_string(), bucket: None }
            }
            "gs" => {
                let (bucket, all) = bucket_and_key(rest)?;
                let ep = opts.gs_endpoint.as_deref().unwrap_or(GS_ENDPOINT);
                CloudPath { path: s.to_string(), protocol: Protocol::Gs, base: format!("{ep}/{all}"), bucket: Some(bucket) }
            }
            "s3" => {
                let (bucket, all) = bucket_and_key(rest)?;
                let ep = opts.s3_endpoint.as_deref().unwrap_or(S3_ENDPOINT);
                CloudPath { path: s.to_string(), protocol: Protocol::S3, base: format!("{ep}/{all}"), bucket: Some(bucket) }
            }
            "graphene" | "boss" | "dvid" | "ocp" | "n5" | "zarr" | "zarr2" | "zarr3" | "mem" | "matrix"
            | "tigerdata" | "middleauth+https" | "ngauth+https" => {
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
        let o = Options::default();
        let p = CloudPath::parse("precomputed://gs://bucket/a/b/", &o).unwrap();
        assert_eq!(p.protocol, Protocol::Gs);
        assert_eq!(p.base, "https://storage.googleapis.com/bucket/a/b");
        assert_eq!(p.bucket.as_deref(), Some("bucket"));
        let o2 = Options { s3_endpoint: Some("http://127.0.0.1:9000".into()), ..Options::default() };
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
    fn joins_keys_with_dot_dot() {
        assert_eq!(join_key("http://h/a/b", "8_8_8/1-2_3-4_5-6"), "http://h/a/b/8_8_8/1-2_3-4_5-6");
        assert_eq!(join_key("/d/layer", "../other/s0"), "/d/other/s0");
        assert_eq!(join_key("/d/layer", "s0/../s1"), "/d/layer/s1");
    }
}
