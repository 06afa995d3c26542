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

    /// Check a body read whole (a GET without Range, or one the server answered whole) against
    /// what its response headers promise (S3's single-part ETag, GCS's hashes). A mismatch is
    /// a retryable `Io` error naming the URL. Default: no check.
    ///
    /// # Errors
    /// The body does not match.
    fn verify(&self, _url: &str, _headers: &Headers, _body: &[u8]) -> Attempt<()> {
        Ok(())
    }

    /// Read a failed response (HTTP `status`, its headers, at most 64 KiB of its body) for what
    /// the service says (S3's XML `<Code>`, `x-amz-bucket-region`). None: nothing to add. The
    /// detail must quote no secret.
    fn explain(&self, _status: u16, _headers: &Headers, _body: &str) -> Option<Explanation> {
        None
    }
}

/// What a [`Signer`] made of a failed response.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// Appended to the error message.
    pub detail: String,
    /// The failure is about credentials: the error becomes `Auth`, not retried.
    pub auth: bool,
    /// Worth another attempt (a transient error, or the signer corrected itself).
    pub retry: bool,
}

/// The headers of a response, kept for checks once its body has been read.
#[derive(Debug, Clone, Default)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    fn of(resp: &ureq::Response) -> Headers {
        Headers(resp.headers_names().into_iter().filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string()))).collect())
    }

    /// The first value of header `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The ureq agent every network store uses: timeouts from the options, a connection pool sized
/// for `parallel` requests in flight.
pub fn agent(opts: &Options) -> ureq::Agent {
    let parallel = opts.parallel.unwrap_or(DEFAULT_NETWORK_PARALLEL);
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs_f64(opts.connect_timeout_secs.min(opts.timeout_secs)))
        // A deadline for the whole request, not `timeout_read`: ureq 2.12 drops the read
        // timeout of connections it takes from its pool, so a stalled keep-alive connection
        // would hang forever.
        .timeout(Duration::from_secs_f64(opts.timeout_secs))
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

    /// Let the signer read a failed response's body and refine `failure` (kind, retry, detail).
    fn explained(&self, status: u16, resp: ureq::Response, failure: (bool, Error)) -> (bool, Error) {
        let Some(signer) = &self.signer else { return failure };
        let headers = Headers::of(&resp);
        let mut body = String::new();
        if resp.into_reader().take(64 << 10).read_to_string(&mut body).is_err() {
            return failure;
        }
        match signer.explain(status, &headers, &body) {
            None => failure,
            Some(x) => {
                let e = failure.1;
                let message = format!("{}: {}", e.message(), x.detail);
                if x.auth {
                    (false, Error::auth(message))
                } else {
                    (x.retry || failure.0, Error::new(e.kind(), message))
                }
            }
        }
    }

    fn head_once(&self, url: &str) -> std::result::Result<bool, (bool, Error)> {
        match self.request("HEAD", url, &[])?.call() {
            Ok(r) if r.status() >= 300 => {
                let c = r.status();
                Err(self.explained(c, r, redirect_error(url, "HEAD", c)))
            }
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(code, resp)) => match code {
                404 | 410 => Ok(false),
                401 | 403 => Err(self.explained(code, resp, (false, Error::auth(format!("{url}: HTTP {code} (access refused)"))))),
                408 | 429 | 500..=599 => Err(self.explained(code, resp, (true, Error::io(format!("{url}: HTTP {code}"))))),
                _ => Err(self.explained(code, resp, (false, Error::io(format!("{url}: HTTP {code}"))))),
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
            // A redirect ureq did not follow (S3's PermanentRedirect has no Location): its body
            // is no object.
            Ok(r) if r.status() >= 300 => {
                let code = r.status();
                return Err(self.explained(code, r, redirect_error(url, "GET", code)));
            }
            Ok(r) => r,
            Err(ureq::Error::Status(code, resp)) => {
                return match code {
                    404 | 410 => Ok(Answer::Missing),
                    412 if if_match.is_some() => Ok(Answer::Stale),
                    416 => Err((false, Error::decode(format!(
                        "{url}: byte range {:?} reaches past the end of the object (HTTP 416)",
                        range.unwrap_or_default()
                    )))),
                    401 | 403 => Err(self.explained(code, resp, (false, Error::auth(format!("{url}: HTTP {code} (access refused)"))))),
                    408 | 429 | 500..=599 => Err(self.explained(code, resp, (true, Error::io(format!("{url}: HTTP {code}"))))),
                    _ => Err(self.explained(code, resp, (false, Error::io(format!("{url}: HTTP {code}"))))),
                };
            }
            Err(ureq::Error::Transport(t)) => return Err((true, Error::io(format!("{url}: {t}")))),
        };
        let encoding = ContentEncoding::from_header(resp.header("Content-Encoding"), url).map_err(|e| (false, e))?;
        let partial = resp.status() == 206;
        let etag = resp.header("ETag").map(str::to_string);
        let headers = match (&self.signer, range.is_none() || !partial) {
            (Some(_), true) => Some(Headers::of(&resp)),
            _ => None,
        };
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
        if let (Some(signer), Some(headers)) = (&self.signer, &headers) {
            signer.verify(url, headers, bytes)?;
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

/// A 3xx answer ureq did not follow (no `Location`, or too many redirects).
fn redirect_error(url: &str, verb: &str, code: u16) -> (bool, Error) {
    (false, Error::io(format!("{verb} {url}: HTTP {code} redirect that was not followed")))
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
                Ok(r) if r.status() >= 300 => {
                    let c = r.status();
                    Err(self.explained(c, r, redirect_error(&url, "PUT", c)))
                }
                Ok(_) => Ok(()),
                Err(ureq::Error::Status(code, resp)) => Err(self.explained(code, resp, status_error(&url, "PUT", code))),
                Err(ureq::Error::Transport(t)) => Err((true, Error::io(format!("PUT {url}: {t}")))),
            }
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        let url = self.url(key);
        self.with_retries(|| match self.request("DELETE", &url, &[])?.call() {
            Ok(r) if r.status() >= 300 => {
                let c = r.status();
                Err(self.explained(c, r, redirect_error(&url, "DELETE", c)))
            }
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(404 | 410, _)) => Ok(()),
            Err(ureq::Error::Status(code, resp)) => Err(self.explained(code, resp, status_error(&url, "DELETE", code))),
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
