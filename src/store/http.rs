//! `http(s)://`, and public `gs://` and `s3://` buckets read over their HTTPS endpoints.

use std::io::Read;
use std::time::Duration;

use super::retry::{Attempt, Retry};
use super::{ContentEncoding, Object, RangeRead, Store};
use crate::cloudpath::join_key;
use crate::error::{Error, Result};
use crate::options::{Options, DEFAULT_NETWORK_PARALLEL};

/// Adds credentials to a request just before it is sent (S3 signatures, bearer tokens, basic
/// auth). Called on every attempt, so signatures and tokens are fresh.
pub trait Signer: Send + Sync {
    /// Sign `req` (method `method`, full `url`, body `payload`: empty for GET/HEAD/DELETE).
    ///
    /// # Errors
    /// `Auth` when credentials cannot be had (a refused token request); the message names no
    /// secret.
    fn sign(&self, req: ureq::Request, method: &str, url: &str, payload: &[u8]) -> Attempt<ureq::Request>;
}

/// The ureq agent every network store uses: timeouts from the options, a connection pool sized
/// for `parallel` requests in flight.
pub fn agent(opts: &Options) -> ureq::Agent {
    let parallel = opts.parallel.unwrap_or(DEFAULT_NETWORK_PARALLEL);
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs_f64(opts.connect_timeout_secs.min(opts.timeout_secs)))
        .timeout_read(Duration::from_secs_f64(opts.timeout_secs))
        .timeout_write(Duration::from_secs_f64(opts.timeout_secs))
        .max_idle_connections(parallel * 4)
        .max_idle_connections_per_host(parallel * 2)
        .user_agent(concat!("cloudvolume-rs/", env!("CARGO_PKG_VERSION")))
        .build()
}

pub struct HttpStore {
    base: String,
    agent: ureq::Agent,
    retry: Retry,
    signer: Option<Box<dyn Signer>>,
}

impl HttpStore {
    pub fn new(base: &str, opts: &Options) -> Result<HttpStore> {
        Ok(HttpStore { base: base.to_string(), agent: agent(opts), retry: Retry::from_options(opts), signer: None })
    }

    /// A store whose every request passes through `signer`.
    pub fn with_signer(base: &str, opts: &Options, signer: Box<dyn Signer>) -> Result<HttpStore> {
        Ok(HttpStore { signer: Some(signer), ..HttpStore::new(base, opts)? })
    }

    fn request(&self, method: &str, url: &str, payload: &[u8]) -> Attempt<ureq::Request> {
        let req = self.agent.request(method, url);
        match &self.signer {
            Some(s) => s.sign(req, method, url, payload),
            None => Ok(req),
        }
    }

    fn head_once(&self, url: &str) -> std::result::Result<bool, (bool, Error)> {
        match self.request("HEAD", url, &[])?.call() {
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(code, _)) => match code {
                404 | 410 => Ok(false),
                401 | 403 => Err((false, Error::auth(format!("{url}: HTTP {code} (access refused)")))),
                408 | 429 | 500..=599 => Err((true, Error::io(format!("{url}: HTTP {code}")))),
                _ => Err((false, Error::io(format!("{url}: HTTP {code}")))),
            },
            Err(ureq::Error::Transport(t)) => Err((true, Error::io(format!("{url}: {t}")))),
        }
    }

    fn get_once(&self, url: &str, range: Option<(u64, u64)>) -> std::result::Result<Option<Object>, (bool, Error)> {
        let mut bytes = Vec::new();
        match self.get_once_if(url, range, None, &mut bytes)? {
            Answer::Body { encoding, .. } => Ok(Some(Object { bytes, encoding })),
            Answer::Missing | Answer::Stale => Ok(None),
        }
    }

    fn get_once_if(
        &self,
        url: &str,
        range: Option<(u64, u64)>,
        if_match: Option<&str>,
        bytes: &mut Vec<u8>,
    ) -> std::result::Result<Answer, (bool, Error)> {
        let mut req = self.request("GET", url, &[])?;
        if let Some((a, b)) = range {
            req = req.set("Range", &format!("bytes={a}-{}", b - 1));
        }
        if let Some(tag) = if_match {
            req = req.set("If-Match", tag);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, resp)) => {
                return match code {
                    404 | 410 => Ok(Answer::Missing),
                    412 if if_match.is_some() => Ok(Answer::Stale),
                    416 => Err((false, Error::decode(format!(
                        "{url}: byte range {:?} reaches past the end of the object (HTTP 416)",
                        range.unwrap_or_default()
                    )))),
                    401 | 403 => Err((false, Error::auth(format!("{url}: HTTP {code} (access refused)")))),
                    408 | 429 | 500..=599 => Err((true, Error::io(format!("{url}: HTTP {code}")))),
                    _ => {
                        let _ = resp.into_string();
                        Err((false, Error::io(format!("{url}: HTTP {code}"))))
                    }
                };
            }
            Err(ureq::Error::Transport(t)) => return Err((true, Error::io(format!("{url}: {t}")))),
        };
        let encoding = ContentEncoding::from_header(resp.header("Content-Encoding"), url).map_err(|e| (false, e))?;
        let partial = resp.status() == 206;
        let etag = resp.header("ETag").map(str::to_string);
        let expected: Option<usize> = resp.header("Content-Length").and_then(|v| v.trim().parse().ok());
        bytes.clear();
        bytes.reserve(expected.unwrap_or(1 << 16).min(1 << 30));
        resp.into_reader()
            .read_to_end(bytes)
            .map_err(|e| (true, Error::io(format!("{url}: reading the body failed: {e}"))))?;
        if let Some(n) = expected {
            if n != bytes.len() {
                return Err((true, Error::io(format!("{url}: body truncated: got {} of {n} bytes", bytes.len()))));
            }
        }
        if let Some((a, b)) = range {
            if encoding != ContentEncoding::Identity {
                return Err((false, Error::unsupported(format!("{url}: ranged response with Content-Encoding {encoding:?}"))));
            }
            let want = (b - a) as usize;
            if !partial {
                // The server ignored Range and sent the whole object: slice it here.
                if (b as usize) > bytes.len() {
                    return Err((false, Error::decode(format!(
                        "{url}: byte range [{a}, {b}) reaches past the end of the object ({} bytes)",
                        bytes.len()
                    ))));
                }
                bytes.truncate(b as usize);
                bytes.drain(..a as usize);
            } else if bytes.len() != want {
                return Err((false, Error::decode(format!(
                    "{url}: byte range [{a}, {b}) returned {} bytes (past the end of the object?)",
                    bytes.len()
                ))));
            }
        }
        Ok(Answer::Body { encoding, etag })
    }

    fn with_retries<T>(&self, once: impl FnMut() -> Attempt<T>) -> Result<T> {
        self.retry.run(once)
    }
}

/// What one GET brought.
enum Answer {
    Missing,
    /// `If-Match` failed: the object changed.
    Stale,
    /// The body is in the caller's buffer.
    Body { encoding: ContentEncoding, etag: Option<String> },
}

fn status_error(url: &str, verb: &str, code: u16) -> (bool, Error) {
    match code {
        401 | 403 => (false, Error::auth(format!("{verb} {url}: HTTP {code} (access refused)"))),
        405 | 501 => (false, Error::unsupported(format!("{verb} {url}: HTTP {code} (the server does not take {verb})"))),
        408 | 429 | 500..=599 => (true, Error::io(format!("{verb} {url}: HTTP {code}"))),
        _ => (false, Error::io(format!("{verb} {url}: HTTP {code}"))),
    }
}

impl Store for HttpStore {
    fn put(&self, key: &str, bytes: &[u8], encoding: ContentEncoding, content_type: &str) -> Result<()> {
        let url = self.url(key);
        self.with_retries(|| {
            let mut req = self.request("PUT", &url, bytes)?.set("Content-Type", content_type);
            if let Some(h) = encoding.header() {
                req = req.set("Content-Encoding", h);
            }
            match req.send_bytes(bytes) {
                Ok(_) => Ok(()),
                Err(ureq::Error::Status(code, _)) => Err(status_error(&url, "PUT", code)),
                Err(ureq::Error::Transport(t)) => Err((true, Error::io(format!("PUT {url}: {t}")))),
            }
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        let url = self.url(key);
        self.with_retries(|| match self.request("DELETE", &url, &[])?.call() {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(404 | 410, _)) => Ok(()),
            Err(ureq::Error::Status(code, _)) => Err(status_error(&url, "DELETE", code)),
            Err(ureq::Error::Transport(t)) => Err((true, Error::io(format!("DELETE {url}: {t}")))),
        })
    }

    fn get(&self, key: &str) -> Result<Option<Object>> {
        let url = self.url(key);
        self.with_retries(|| self.get_once(&url, None))
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let url = self.url(key);
        self.with_retries(|| self.head_once(&url))
    }

    fn get_into(&self, key: &str, buf: &mut Vec<u8>) -> Result<Option<ContentEncoding>> {
        let url = self.url(key);
        Ok(match self.with_retries(|| self.get_once_if(&url, None, None, buf))? {
            Answer::Body { encoding, .. } => Some(encoding),
            Answer::Missing | Answer::Stale => None,
        })
    }

    fn get_range_if(&self, key: &str, start: u64, end: u64, if_generation: Option<&str>) -> Result<RangeRead> {
        if end <= start {
            return Ok(RangeRead::Data(Vec::new(), None));
        }
        let url = self.url(key);
        let mut bytes = Vec::new();
        Ok(match self.with_retries(|| self.get_once_if(&url, Some((start, end)), if_generation, &mut bytes))? {
            Answer::Missing => RangeRead::Missing,
            Answer::Stale => RangeRead::Stale,
            Answer::Body { etag, .. } => RangeRead::Data(bytes, etag),
        })
    }

    fn url(&self, key: &str) -> String {
        join_key(&self.base, key)
    }

    fn default_parallel(&self) -> usize {
        DEFAULT_NETWORK_PARALLEL
    }
}
