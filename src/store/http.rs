//! The HTTP client every network store shares: `http(s)://` directly, and `gs://` and `s3://`
//! through their signers. One place sends requests (signed on every attempt, a refused token
//! renewed once), retries them ([`Retry`]), maps statuses onto errors, conditions reads on a
//! generation, slices ranges a server answered whole, refuses bodies over the caller's limit
//! and checks whole bodies against what their headers promise.
//!
//! A service's dialect is a [`Signer`]: where each operation on a key goes, how a read is
//! conditioned, how an upload is framed, what a response's generation is, how a prefix is
//! listed and the listing read (plain HTTP cannot list), how a failure is explained. Every hook
//! has a default that is plain HTTP.

use std::borrow::Cow;
use std::io::Read;
use std::time::{Duration, Instant};

use super::retry::{Attempt, Retry};
use super::{too_large, ContentEncoding, GetOptions, Got, ReadableStore, WritableStore};
use crate::cloudpath::join_key;
use crate::error::{Error, Result};

pub use crate::options::DEFAULT_NETWORK_PARALLEL;

/// The most bytes a page of a listing may take (a thousand long names fit many times over).
const LIST_BODY_MAX: u64 = 32 << 20;

/// What the HTTP client is configured with.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Seconds one request may take in all.
    pub timeout_secs: f64,
    /// Seconds to connect.
    pub connect_timeout_secs: f64,
    /// Requests in flight (sizes the connection pool).
    pub parallel: usize,
    pub retry: Retry,
}

/// The ureq agent every network store uses: timeouts from the configuration, a connection pool
/// sized for `parallel` requests in flight.
pub fn agent(cfg: &HttpConfig) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs_f64(cfg.connect_timeout_secs.min(cfg.timeout_secs)))
        // A deadline for the whole request, not `timeout_read`: ureq 2.12 drops the read
        // timeout of connections it takes from its pool, so a stalled keep-alive connection
        // would hang forever.
        .timeout(Duration::from_secs_f64(cfg.timeout_secs))
        .max_idle_connections(cfg.parallel * 4)
        .max_idle_connections_per_host(cfg.parallel * 2)
        .user_agent(concat!("cloudvolume-rs/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What a failed connection says, without the URL ureq repeats (messages name it already).
pub fn transport_text(t: &ureq::Transport) -> String {
    match t.message() {
        Some(m) => format!("{}: {m}", t.kind()),
        None => t.kind().to_string(),
    }
}

/// An operation on an object, for a [`Signer`] to address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Read bytes: the whole object, or a range of it.
    Get {
        whole: bool,
    },
    /// Ask whether the object exists.
    Head,
    Put,
    Delete,
}

impl Op {
    fn method(self) -> &'static str {
        match self {
            Op::Get { .. } => "GET",
            Op::Head => "HEAD",
            Op::Put => "PUT",
            Op::Delete => "DELETE",
        }
    }
}

/// A request about to be sent: method, URL and headers.
#[derive(Debug, Clone)]
pub struct Target {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

impl Target {
    pub fn new(method: &'static str, url: String) -> Target {
        Target { method, url, headers: Vec::new() }
    }

    pub fn header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_string(), value.into()));
    }
}

/// The headers of a response, kept for checks once its body has been read.
#[derive(Debug, Clone, Default)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    fn of(resp: &ureq::Response) -> Headers {
        let mut all = Vec::new();
        for name in resp.headers_names() {
            for v in resp.all(&name) {
                all.push((name.clone(), v.to_string()));
            }
        }
        Headers(all)
    }

    /// The first value of header `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (any case), in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
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

/// One page of a listing (see [`Signer::list_target`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// The names found, relative to the layer (cloud-files' `name.removeprefix(layer + "/")`).
    pub names: Vec<String>,
    /// The token of the next page, when there is one.
    pub next: Option<String>,
}

/// A service's dialect of HTTP: addressing, credentials, conditions, checks. Every method has
/// a plain-HTTP default.
pub trait Signer: Send + Sync {
    /// Where operation `op` on `key` goes. Default: `base/key` with the operation's method.
    fn target(&self, op: Op, base: &str, key: &str) -> Target {
        Target::new(op.method(), join_key(base, key))
    }

    /// The URL that names `key` in messages. Default: `base/key`.
    fn display_url(&self, base: &str, key: &str) -> String {
        join_key(base, key)
    }

    /// Condition a read on generation `generation` (one this signer's [`Signer::generation`]
    /// gave). Default: `If-Match`.
    fn condition(&self, target: &mut Target, generation: &str) {
        target.header("If-Match", generation);
    }

    /// The generation a response states. Default: its `ETag`.
    fn generation(&self, headers: &Headers) -> Option<String> {
        headers.get("ETag").map(str::to_string)
    }

    /// The body of an upload of `bytes` (and the headers it needs). Default: the bytes, with
    /// `Content-Type` and `Content-Encoding`.
    fn upload<'b>(
        &self,
        target: &mut Target,
        _key: &str,
        bytes: &'b [u8],
        encoding: ContentEncoding,
        content_type: &str,
    ) -> Cow<'b, [u8]> {
        target.header("Content-Type", content_type);
        if let Some(h) = encoding.header() {
            target.header("Content-Encoding", h);
        }
        Cow::Borrowed(bytes)
    }

    /// Check the answer to an upload of `bytes` (its body, at most 64 KiB). Default: nothing.
    ///
    /// # Errors
    /// The service stored something else (retryable `Io`).
    fn check_upload(&self, _target: &Target, _bytes: &[u8], _answer: &str) -> Attempt<()> {
        Ok(())
    }

    /// Add credentials to `req` (method `method`, full `url`, body `payload`) just before it is
    /// sent; called on every attempt, so signatures and tokens are fresh. Default: none.
    ///
    /// # Errors
    /// `Auth` when credentials cannot be had (a refused token request); the message names no
    /// secret.
    fn sign(&self, req: ureq::Request, _method: &str, _url: &str, _payload: &[u8]) -> Attempt<ureq::Request> {
        Ok(req)
    }

    /// A request signed at `signed_at` was refused with 401: drop the credentials it carried if
    /// they can be renewed, and say whether to send it again at once. Default: no.
    fn refused(&self, _signed_at: Instant) -> bool {
        false
    }

    /// Check a body read whole (a GET without Range, or one the server answered whole) against
    /// what its response headers promise (S3's single-part ETag, GCS's hashes). Default: no
    /// check.
    ///
    /// # Errors
    /// The body does not match (retryable `Io` naming the URL).
    fn verify(&self, _url: &str, _headers: &Headers, _body: &[u8]) -> Attempt<()> {
        Ok(())
    }

    /// Where a listing of the objects whose keys start with `prefix` goes (keys as the store's,
    /// relative to `base`; the prefix as [`super::ReadableStore::first_under`] takes it): at
    /// most `max` names, the page after `token` when given. None: the service cannot list,
    /// which is the default (a plain web server has no listing API).
    fn list_target(&self, _base: &str, _prefix: &str, _max: u32, _token: Option<&str>) -> Option<Target> {
        None
    }

    /// Read one page of a listing from the body of its (successful) answer.
    ///
    /// # Errors
    /// A body that is no listing (`Decode`, naming `url`).
    fn list_page(&self, url: &str, _body: &str) -> Result<ListPage> {
        Err(Error::decode(format!("GET {url}: this service has no listings")))
    }

    /// Read a failed response (HTTP `status`, its headers, at most 64 KiB of its body) for what
    /// the service says (S3's XML `<Code>`, GCS's JSON message). None: nothing to add. The
    /// detail must quote no secret.
    fn explain(&self, _status: u16, _headers: &Headers, _body: &str) -> Option<Explanation> {
        None
    }
}

/// Plain HTTP: every default.
struct Plain;

impl Signer for Plain {}

/// A store over HTTP: a base URL and a [`Signer`] for the service behind it.
pub struct HttpStore {
    base: String,
    agent: ureq::Agent,
    retry: Retry,
    signer: Box<dyn Signer>,
}

impl HttpStore {
    /// A plain HTTP store under `base`.
    pub fn new(base: &str, cfg: &HttpConfig) -> HttpStore {
        Self::with_signer(base, cfg, Box::new(Plain))
    }

    /// A store whose every request goes through `signer`.
    pub fn with_signer(base: &str, cfg: &HttpConfig, signer: Box<dyn Signer>) -> HttpStore {
        Self::with_agent(base, agent(cfg), cfg.retry, signer)
    }

    /// As [`HttpStore::with_signer`], on an existing agent (shared with a token source).
    pub fn with_agent(base: &str, agent: ureq::Agent, retry: Retry, signer: Box<dyn Signer>) -> HttpStore {
        HttpStore { base: base.trim_end_matches('/').to_string(), agent, retry, signer }
    }

    /// The signer, for its own checks (tests, messages).
    pub fn signer(&self) -> &dyn Signer {
        self.signer.as_ref()
    }

    /// Send `target` with `body`, signed; a 401 the signer can renew credentials for is sent
    /// once more at once. Any HTTP status is an answer; transport failures are retryable.
    fn send(&self, target: &Target, body: Option<&[u8]>) -> Attempt<ureq::Response> {
        let mut renewed = false;
        loop {
            let mut req = self.agent.request(target.method, &target.url);
            for (k, v) in &target.headers {
                req = req.set(k, v);
            }
            let req = self.signer.sign(req, target.method, &target.url, body.unwrap_or(&[]))?;
            // After signing: the credentials it used are no newer than this.
            let signed_at = Instant::now();
            let r = match body {
                Some(b) => req.send_bytes(b),
                None => req.call(),
            };
            return match r {
                Ok(resp) => Ok(resp),
                Err(ureq::Error::Status(401, resp)) if !renewed && self.signer.refused(signed_at) => {
                    drain(resp);
                    renewed = true;
                    continue;
                }
                Err(ureq::Error::Status(_, resp)) => Ok(resp),
                Err(ureq::Error::Transport(t)) => {
                    Err((true, Error::io(format!("{} {}: {}", target.method, target.url, transport_text(&t)))))
                }
            };
        }
    }

    /// The error for a response that is neither success nor an expected answer: the status
    /// mapped onto a kind and whether to retry, refined by the signer's reading of the body.
    fn failure(&self, target: &Target, resp: ureq::Response) -> (bool, Error) {
        let (verb, url, code) = (target.method, &target.url, resp.status());
        let (retry, e) = match code {
            300..=399 => (false, Error::io(format!("{verb} {url}: HTTP {code} redirect that was not followed"))),
            401 | 403 => (false, Error::auth(format!("{verb} {url}: HTTP {code} (access refused)"))),
            405 | 501 => {
                (false, Error::unsupported(format!("{verb} {url}: HTTP {code} (the server does not take {verb})")))
            }
            408 | 429 | 500..=599 => (true, Error::io(format!("{verb} {url}: HTTP {code}"))),
            _ => (false, Error::io(format!("{verb} {url}: HTTP {code}"))),
        };
        let headers = Headers::of(&resp);
        let mut body = String::new();
        if resp.into_reader().take(64 << 10).read_to_string(&mut body).is_err() {
            return (retry, e);
        }
        match self.signer.explain(code, &headers, &body) {
            None => (retry, e),
            Some(x) => {
                let message = format!("{}: {}", e.message(), x.detail);
                if x.auth {
                    (false, Error::auth(message))
                } else {
                    (x.retry || retry, Error::new(e.kind(), message))
                }
            }
        }
    }

    fn get_once(&self, key: &str, opts: &GetOptions<'_>, buf: &mut Vec<u8>) -> Attempt<Got> {
        let mut target = self.signer.target(Op::Get { whole: opts.range.is_none() }, &self.base, key);
        if let Some((a, b)) = opts.range {
            target.header("Range", format!("bytes={a}-{}", b - 1));
        }
        if let Some(g) = opts.if_generation {
            self.signer.condition(&mut target, g);
        }
        let url = target.url.clone();
        let resp = self.send(&target, None)?;
        match resp.status() {
            200..=299 => {}
            404 | 410 => {
                drain(resp);
                return Ok(Got::Missing);
            }
            412 if opts.if_generation.is_some() => {
                drain(resp);
                return Ok(Got::Stale);
            }
            416 => {
                return Err((
                    false,
                    Error::decode(format!(
                        "GET {url}: byte range {:?} reaches past the end of the object (HTTP 416)",
                        opts.range.unwrap_or_default()
                    )),
                ))
            }
            _ => return Err(self.failure(&target, resp)),
        }
        let encoding = ContentEncoding::from_header(resp.header("Content-Encoding"), &url).map_err(|e| (false, e))?;
        let partial = resp.status() == 206;
        let headers = Headers::of(&resp);
        let generation = self.signer.generation(&headers);
        let expected: Option<u64> = resp.header("Content-Length").and_then(|v| v.trim().parse().ok());
        // A whole object over the limit is refused unread; a range is as long as it was asked.
        let limit = if opts.range.is_none() { opts.max_len } else { None };
        if let (Some(n), Some(max)) = (expected, limit) {
            if n > max {
                return Err((false, too_large(&url, n, max)));
            }
        }
        if let (Some(n), Some(hook)) = (expected, opts.on_length) {
            (hook.0)(n, buf);
        }
        buf.clear();
        buf.reserve(expected.unwrap_or(1 << 16).min(1 << 30) as usize);
        let mut reader = resp.into_reader();
        let read = match limit {
            Some(max) => (&mut reader).take(max + 1).read_to_end(buf),
            None => reader.read_to_end(buf),
        };
        read.map_err(|e| (true, Error::io(format!("GET {url}: reading the body failed: {e}"))))?;
        if let Some(max) = limit.filter(|&m| buf.len() as u64 > m) {
            return Err((false, too_large(&url, buf.len() as u64, max)));
        }
        if let Some(n) = expected {
            if n != buf.len() as u64 {
                return Err((true, Error::io(format!("GET {url}: body truncated: got {} of {n} bytes", buf.len()))));
            }
        }
        // A server that ignores the condition still says which generation it sent.
        if let (Some(want), Some(now)) = (opts.if_generation, generation.as_deref()) {
            if want != now {
                return Ok(Got::Stale);
            }
        }
        if opts.range.is_none() || !partial {
            self.signer.verify(&url, &headers, buf)?;
        }
        if let Some((a, b)) = opts.range {
            if encoding != ContentEncoding::Identity {
                return Err((
                    false,
                    Error::unsupported(format!("GET {url}: ranged response with Content-Encoding {}", encoding.name())),
                ));
            }
            if !partial {
                // The server ignored Range and sent the whole object: slice it here.
                if b > buf.len() as u64 {
                    return Err((
                        false,
                        Error::decode(format!(
                            "GET {url}: byte range [{a}, {b}) reaches past the end of the object ({} bytes)",
                            buf.len()
                        )),
                    ));
                }
                buf.truncate(b as usize);
                buf.drain(..a as usize);
            } else if buf.len() as u64 != b - a {
                return Err((
                    false,
                    Error::decode(format!(
                        "GET {url}: byte range [{a}, {b}) returned {} bytes (past the end of the object?)",
                        buf.len()
                    )),
                ));
            }
        }
        Ok(Got::Found { encoding, generation })
    }

    fn exists_once(&self, key: &str) -> Attempt<bool> {
        let target = self.signer.target(Op::Head, &self.base, key);
        let resp = self.send(&target, None)?;
        match resp.status() {
            200..=299 => {
                drain(resp);
                Ok(true)
            }
            404 | 410 => {
                drain(resp);
                Ok(false)
            }
            _ => Err(self.failure(&target, resp)),
        }
    }

    /// One page of a listing: `target` sent, its answer read by the signer.
    fn list_once(&self, target: &Target) -> Attempt<ListPage> {
        let resp = self.send(target, None)?;
        let url = &target.url;
        match resp.status() {
            200..=299 => {}
            // A listing of nothing is an empty page: what is missing is the bucket.
            404 | 410 => {
                let (_, e) = self.failure(target, resp);
                return Err((false, Error::not_found(format!("{}: the bucket does not exist", e.message()))));
            }
            _ => return Err(self.failure(target, resp)),
        }
        let mut body = String::new();
        let read = resp.into_reader().take(LIST_BODY_MAX + 1).read_to_string(&mut body);
        read.map_err(|e| (true, Error::io(format!("GET {url}: reading the listing failed: {e}"))))?;
        if body.len() as u64 > LIST_BODY_MAX {
            return Err((false, too_large(url, body.len() as u64, LIST_BODY_MAX)));
        }
        self.signer.list_page(url, &body).map_err(|e| (false, e))
    }

    fn put_once(&self, key: &str, bytes: &[u8], encoding: ContentEncoding, content_type: &str) -> Attempt<()> {
        let mut target = self.signer.target(Op::Put, &self.base, key);
        let body = self.signer.upload(&mut target, key, bytes, encoding, content_type);
        let resp = self.send(&target, Some(&body))?;
        if !(200..300).contains(&resp.status()) {
            return Err(self.failure(&target, resp));
        }
        let mut answer = String::new();
        resp.into_reader().take(64 << 10).read_to_string(&mut answer).map_err(|e| {
            (true, Error::io(format!("{} {}: reading the answer failed: {e}", target.method, target.url)))
        })?;
        self.signer.check_upload(&target, bytes, &answer)
    }

    fn delete_once(&self, key: &str) -> Attempt<()> {
        let target = self.signer.target(Op::Delete, &self.base, key);
        let resp = self.send(&target, None)?;
        match resp.status() {
            200..=299 | 404 | 410 => {
                drain(resp);
                Ok(())
            }
            _ => Err(self.failure(&target, resp)),
        }
    }
}

/// Read a small answer to its end, so its connection goes back to the pool.
pub(crate) fn drain(resp: ureq::Response) {
    let mut sink = [0u8; 4096];
    let mut r = resp.into_reader().take(1 << 16);
    while matches!(r.read(&mut sink), Ok(n) if n > 0) {}
}

impl ReadableStore for HttpStore {
    fn get_with(&self, key: &str, opts: &GetOptions<'_>, buf: &mut Vec<u8>) -> Result<Got> {
        if let Some((a, b)) = opts.range {
            if b <= a {
                buf.clear();
                return Ok(Got::Found { encoding: ContentEncoding::Identity, generation: None });
            }
        }
        self.retry.run(|| self.get_once(key, opts, buf))
    }

    fn exists(&self, key: &str) -> Result<bool> {
        self.retry.run(|| self.exists_once(key))
    }

    fn first_under(&self, prefix: &str) -> Result<Option<String>> {
        // One name answers the question; later pages (larger, as only folder markers can make
        // the first come back empty-handed) when the first holds none that counts.
        let mut token: Option<String> = None;
        loop {
            let max = if token.is_none() { 1 } else { 1000 };
            let target = self
                .signer
                .list_target(&self.base, prefix, max, token.as_deref())
                .ok_or_else(|| super::cannot_list(&self.url("")))?;
            let page = self.retry.run(|| self.list_once(&target))?;
            // As cloud-files lists: neither the layer's own name nor folder markers are objects.
            if let Some(name) = page.names.into_iter().find(|n| !n.is_empty() && !n.ends_with('/')) {
                return Ok(Some(name));
            }
            match page.next.filter(|t| !t.is_empty()) {
                Some(t) if token.as_deref() != Some(t.as_str()) => token = Some(t),
                _ => return Ok(None),
            }
        }
    }

    fn url(&self, key: &str) -> String {
        self.signer.display_url(&self.base, key)
    }

    fn default_parallel(&self) -> usize {
        DEFAULT_NETWORK_PARALLEL
    }

    fn default_fetches(&self) -> usize {
        crate::options::DEFAULT_NETWORK_FETCHES
    }

    fn tells_length(&self) -> bool {
        true
    }
}

impl WritableStore for HttpStore {
    fn put(&self, key: &str, bytes: &[u8], encoding: ContentEncoding, content_type: &str) -> Result<()> {
        self.retry.run(|| self.put_once(key, bytes, encoding, content_type))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.retry.run(|| self.delete_once(key))
    }
}
