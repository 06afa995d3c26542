//! `gs://` buckets on Google Cloud Storage.
//!
//! Credentials are looked up as cloud-files does (`cloudfiles/secrets.py`): the `anonymous`
//! option sends none; the `gs_token` option is an OAuth2 access token; the `secrets` option (an
//! object or a file) is a service-account key; else `{bucket}-google-secret.json`, then
//! `google-secret.json`, in the secret places of [`crate::secrets`]; else the service-account
//! key file named by `GOOGLE_APPLICATION_CREDENTIALS`; else none.
//!
//! With credentials, every request goes to the JSON API (`{ep}/storage/v1/b/BUCKET/o/OBJECT`
//! with `alt=media` for bytes, multipart uploads carrying the object's `contentType` and
//! `contentEncoding`) with a bearer token from a [`token::TokenSource`]. Without, requests go to
//! the public URL `{ep}/BUCKET/OBJECT` (GET, HEAD, PUT, DELETE), which is how Google serves
//! public objects and how plain web servers standing in for a bucket (`gs_endpoint`) look.
//!
//! Both kinds of request check what Google sends: `x-goog-hash` (crc32c, else md5) against the
//! bytes of whole-object reads that were not transcoded (a mismatch is retried and never
//! decoded), `x-goog-generation` for reads conditioned on a generation (sharded reads), and the
//! crc32c the server computed for an upload.

mod token;

use std::io::Read;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

pub use token::{ServiceAccount, Token, TokenSource};

use super::http::agent;
use super::retry::{Attempt, Retry};
use super::{ContentEncoding, Object, RangeRead, Store};
use crate::cloudpath::{join_key, CloudPath};
use crate::error::{Error, Result};
use crate::options::{Options, Redacted, DEFAULT_NETWORK_PARALLEL};
use crate::secrets;

/// Google's storage endpoint (the `gs_endpoint` option replaces it).
pub const GS_ENDPOINT: &str = "https://storage.googleapis.com";

/// Open the store of a `gs://` path.
///
/// # Errors
/// Unreadable or invalid credentials (`Auth`), a bad `secrets` option.
pub fn open(path: &CloudPath, opts: &Options) -> Result<Box<dyn Store>> {
    Ok(Box::new(GcsStore::new(path, opts)?))
}

/// The object-name encoding of the JSON API: every byte but the unreserved ones escaped
/// (`/` too).
fn encode_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The credentials for `bucket`, looked up as cloud-files does; None: anonymous.
///
/// # Errors
/// A secret file or `secrets` option that cannot be read or is no usable key (`Auth`).
pub fn credentials(bucket: &str, opts: &Options, agent: &ureq::Agent) -> Result<Option<TokenSource>> {
    let what = format!("gs://{bucket}");
    if opts.anonymous {
        return Ok(None);
    }
    if let Some(Redacted(t)) = &opts.gs_token {
        return Ok(Some(TokenSource::fixed(t.clone(), &what, agent.clone())));
    }
    if let Some(Redacted(v)) = &opts.secrets {
        let m = secrets::from_option(v)?;
        // The option may carry another store's secrets only; those are not ours to refuse.
        if ["type", "client_email", "private_key"].iter().any(|k| m.contains_key(*k)) {
            let source = match v {
                Value::String(p) => format!("secret file {p} (option \"secrets\")"),
                _ => "the \"secrets\" option".to_string(),
            };
            let sa = ServiceAccount::from_json(&m, &source)?;
            return Ok(Some(TokenSource::service_account(sa, &what, agent.clone())));
        }
    }
    let names = [format!("{bucket}-google-secret.json"), "google-secret.json".to_string()];
    if let Some((path, m)) = secrets::find_secret(&names)? {
        let sa = ServiceAccount::from_json(&m, &format!("secret file {}", path.display()))?;
        return Ok(Some(TokenSource::service_account(sa, &what, agent.clone())));
    }
    let gac = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty()).map(std::path::PathBuf::from);
    // A variable naming no file is left alone (public buckets stay readable).
    if let Some(path) = gac.filter(|p| p.is_file()) {
        let m = secrets::read_secret_file(&path)?;
        // Other kinds of application-default credentials (gcloud user logins, workload
        // identity) are not understood here: public buckets stay readable without them.
        if m.get("type").and_then(Value::as_str) == Some("service_account") {
            let source = format!("GOOGLE_APPLICATION_CREDENTIALS file {}", path.display());
            let sa = ServiceAccount::from_json(&m, &source)?;
            return Ok(Some(TokenSource::service_account(sa, &what, agent.clone())));
        }
    }
    Ok(None)
}

/// A generation condition: Google's object generation, or an HTTP entity tag.
enum Condition<'a> {
    Generation(&'a str),
    ETag(&'a str),
}

const GEN_PREFIX: &str = "gen:";

fn condition(g: &str) -> Condition<'_> {
    match g.strip_prefix(GEN_PREFIX) {
        Some(n) => Condition::Generation(n),
        None => Condition::ETag(g),
    }
}

/// What one GET brought.
enum Answer {
    Missing,
    /// The object is no longer the generation asked for.
    Stale,
    /// The body is in the caller's buffer.
    Body { encoding: ContentEncoding, generation: Option<String> },
}

/// A response: success, or another status (still to be read for its message).
enum Reply {
    Ok(ureq::Response),
    Status(u16, ureq::Response),
}

/// The store of one `gs://bucket/prefix` layer.
pub struct GcsStore {
    bucket: String,
    /// The layer's object-name prefix in the bucket, without slashes at either end.
    prefix: String,
    /// `https://storage.googleapis.com` or `gs_endpoint`.
    endpoint: String,
    /// None: anonymous requests to public URLs.
    auth: Option<TokenSource>,
    agent: ureq::Agent,
    retry: Retry,
    checksum: bool,
    /// The `anonymous` option was given (for messages).
    anonymous_option: bool,
}

impl std::fmt::Debug for GcsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsStore")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl GcsStore {
    /// # Errors
    /// As [`credentials`]; a path without a bucket.
    pub fn new(path: &CloudPath, opts: &Options) -> Result<GcsStore> {
        let bucket = path.bucket.clone().ok_or_else(|| Error::invalid(format!("cloud path \"{}\" names no bucket", path.path)))?;
        let rest = path.path.strip_prefix("gs://").unwrap_or(&path.path);
        let prefix = rest.split_once('/').map_or("", |(_, p)| p).trim_matches('/').to_string();
        let agent = agent(opts);
        let auth = credentials(&bucket, opts, &agent)?;
        Ok(GcsStore {
            endpoint: opts.gs_endpoint.clone().unwrap_or_else(|| GS_ENDPOINT.to_string()),
            bucket,
            prefix,
            auth,
            agent,
            retry: Retry::from_options(opts),
            checksum: opts.checksum,
            anonymous_option: opts.anonymous,
        })
    }

    /// Whether requests carry credentials (and so go to the JSON API).
    pub fn authenticated(&self) -> bool {
        self.auth.is_some()
    }

    /// The object name of `key` in the bucket.
    fn object(&self, key: &str) -> String {
        let base = if self.prefix.is_empty() { self.bucket.clone() } else { format!("{}/{}", self.bucket, self.prefix) };
        let full = join_key(&base, key);
        full.strip_prefix(&self.bucket).and_then(|r| r.strip_prefix('/')).unwrap_or("").to_string()
    }

    /// The JSON API URL of the object's metadata (append `?alt=media` for its bytes).
    fn json_url(&self, object: &str) -> String {
        format!("{}/storage/v1/b/{}/o/{}", self.endpoint, encode_name(&self.bucket), encode_name(object))
    }

    /// The URL the bytes of `key` are read from.
    fn media_url(&self, key: &str) -> String {
        if self.auth.is_some() {
            format!("{}?alt=media", self.json_url(&self.object(key)))
        } else {
            self.public_url(key)
        }
    }

    /// The public URL of `key`: `{endpoint}/{bucket}/{object}`, each path segment escaped.
    fn public_url(&self, key: &str) -> String {
        let object = self.object(key);
        let path: Vec<String> = object.split('/').map(encode_name).collect();
        format!("{}/{}/{}", self.endpoint, encode_name(&self.bucket), path.join("/"))
    }

    /// Send one request (with the current token), asking for a new token once if the server
    /// refuses it with 401.
    fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Attempt<Reply> {
        let mut refreshed = false;
        loop {
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let token = match &self.auth {
                Some(src) => {
                    let t = src.token()?;
                    req = req.set("Authorization", &format!("Bearer {}", t.secret()));
                    Some(t)
                }
                None => None,
            };
            let r = match body {
                Some(b) => req.send_bytes(b),
                None => req.call(),
            };
            return match r {
                Ok(resp) => Ok(Reply::Ok(resp)),
                Err(ureq::Error::Status(401, resp)) if !refreshed => match (&self.auth, &token) {
                    (Some(src), Some(t)) if src.refreshable() => {
                        drain(resp);
                        src.invalidate(t);
                        refreshed = true;
                        continue;
                    }
                    _ => Ok(Reply::Status(401, resp)),
                },
                Err(ureq::Error::Status(code, resp)) => Ok(Reply::Status(code, resp)),
                Err(ureq::Error::Transport(t)) => Err((true, Error::io(format!("{method} {url}: {t}")))),
            };
        }
    }

    /// Who asked, for messages about refused requests.
    fn who(&self) -> String {
        match &self.auth {
            Some(src) => src.describe(),
            None if self.anonymous_option => "anonymous request (option \"anonymous\")".to_string(),
            None => format!(
                "anonymous request: no Google credentials found (put a service account key in {}, pass the \
                 \"secrets\" or \"gs_token\" option)",
                secrets::secrets_dir().join("google-secret.json").display()
            ),
        }
    }

    /// The error for an unexpected status.
    fn status_error(&self, verb: &str, url: &str, code: u16, resp: ureq::Response) -> (bool, Error) {
        let why = {
            let body = resp.into_string().unwrap_or_default();
            let e = token::excerpt(&body, &[]);
            if e.is_empty() { String::new() } else { format!(": {e}") }
        };
        match code {
            401 => (false, Error::auth(format!(
                "{verb} {url}: HTTP 401 (credentials refused for bucket \"{}\"{}; {}){why}",
                self.bucket,
                if self.auth.as_ref().is_some_and(TokenSource::refreshable) { " after a token refresh" } else { "" },
                self.who()
            ))),
            403 => (false, Error::auth(format!(
                "{verb} {url}: HTTP 403 (access to bucket \"{}\" refused; {}){why}",
                self.bucket,
                self.who()
            ))),
            405 | 501 => (false, Error::unsupported(format!("{verb} {url}: HTTP {code} (the server does not take {verb}){why}"))),
            408 | 429 | 500..=599 => (true, Error::io(format!("{verb} {url}: HTTP {code}{why}"))),
            _ => (false, Error::io(format!("{verb} {url}: HTTP {code}{why}"))),
        }
    }

    /// One GET of `key`, whole or `[a, b)`, optionally conditioned on a generation.
    fn get_once(&self, key: &str, range: Option<(u64, u64)>, cond: Option<&str>, bytes: &mut Vec<u8>) -> Attempt<Answer> {
        let mut url = self.media_url(key);
        let mut headers: Vec<(&str, String)> = Vec::new();
        if let Some((a, b)) = range {
            headers.push(("Range", format!("bytes={a}-{}", b - 1)));
        } else {
            // Stored bytes as stored (no decompressive transcoding): the checksums are theirs.
            headers.push(("Accept-Encoding", "gzip".to_string()));
        }
        match cond.map(condition) {
            Some(Condition::Generation(g)) if self.auth.is_some() => url.push_str(&format!("&ifGenerationMatch={g}")),
            Some(Condition::Generation(g)) => headers.push(("x-goog-if-generation-match", g.to_string())),
            Some(Condition::ETag(t)) => headers.push(("If-Match", t.to_string())),
            None => {}
        }
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = match self.send("GET", &url, &hdrs, None)? {
            Reply::Ok(r) => r,
            Reply::Status(code, resp) => {
                return match code {
                    404 | 410 => {
                        drain(resp);
                        Ok(Answer::Missing)
                    }
                    412 if cond.is_some() => {
                        drain(resp);
                        Ok(Answer::Stale)
                    }
                    416 => Err((false, Error::decode(format!(
                        "GET {url}: byte range {:?} reaches past the end of the object (HTTP 416)",
                        range.unwrap_or_default()
                    )))),
                    _ => Err(self.status_error("GET", &url, code, resp)),
                };
            }
        };
        let encoding = ContentEncoding::from_header(resp.header("Content-Encoding"), &url).map_err(|e| (false, e))?;
        let stored = resp.header("x-goog-stored-content-encoding").map(|s| s.trim().to_ascii_lowercase());
        let goog_generation = resp.header("x-goog-generation").map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let etag = resp.header("ETag").map(str::to_string);
        let hashes: Vec<String> = resp.all("x-goog-hash").into_iter().map(str::to_string).collect();
        let partial = resp.status() == 206;
        let expected: Option<usize> = resp.header("Content-Length").and_then(|v| v.trim().parse().ok());
        bytes.clear();
        bytes.reserve(expected.unwrap_or(1 << 16).min(1 << 30));
        resp.into_reader()
            .read_to_end(bytes)
            .map_err(|e| (true, Error::io(format!("GET {url}: reading the body failed: {e}"))))?;
        if let Some(n) = expected {
            if n != bytes.len() {
                return Err((true, Error::io(format!("GET {url}: body truncated: got {} of {n} bytes", bytes.len()))));
            }
        }
        // A server that ignores the condition still says which generation it sent.
        match cond.map(condition) {
            Some(Condition::Generation(g)) if goog_generation.as_deref().is_some_and(|now| now != g) => return Ok(Answer::Stale),
            Some(Condition::ETag(t)) if etag.as_deref().is_some_and(|now| now != t) => return Ok(Answer::Stale),
            _ => {}
        }
        let generation = goog_generation.map(|g| format!("{GEN_PREFIX}{g}")).or(etag);
        match range {
            None => {
                let transcoded = stored.as_deref().is_some_and(|s| {
                    let s = if s.is_empty() { "identity" } else { s };
                    s != encoding.header().unwrap_or("identity")
                });
                if self.checksum && !transcoded && !partial {
                    verify_hashes(&hashes, bytes, &url)?;
                }
            }
            Some((a, b)) => {
                if encoding != ContentEncoding::Identity {
                    return Err((false, Error::unsupported(format!("GET {url}: ranged response with Content-Encoding {encoding:?}"))));
                }
                if !partial {
                    // The server ignored Range (or transcoded) and sent the whole object.
                    if (b as usize) > bytes.len() {
                        return Err((false, Error::decode(format!(
                            "GET {url}: byte range [{a}, {b}) reaches past the end of the object ({} bytes)",
                            bytes.len()
                        ))));
                    }
                    bytes.truncate(b as usize);
                    bytes.drain(..a as usize);
                } else if bytes.len() as u64 != b - a {
                    return Err((false, Error::decode(format!(
                        "GET {url}: byte range [{a}, {b}) returned {} bytes (past the end of the object?)",
                        bytes.len()
                    ))));
                }
            }
        }
        Ok(Answer::Body { encoding, generation })
    }

    fn exists_once(&self, key: &str) -> Attempt<bool> {
        let (verb, url) = if self.auth.is_some() { ("GET", self.json_url(&self.object(key))) } else { ("HEAD", self.media_url(key)) };
        match self.send(verb, &url, &[], None)? {
            Reply::Ok(r) => {
                drain(r);
                Ok(true)
            }
            Reply::Status(404 | 410, resp) => {
                drain(resp);
                Ok(false)
            }
            Reply::Status(code, resp) => Err(self.status_error(verb, &url, code, resp)),
        }
    }

    fn put_once(&self, key: &str, bytes: &[u8], encoding: ContentEncoding, content_type: &str) -> Attempt<()> {
        if self.auth.is_none() {
            let url = self.media_url(key);
            let mut headers = vec![("Content-Type", content_type)];
            if let Some(h) = encoding.header() {
                headers.push(("Content-Encoding", h));
            }
            return match self.send("PUT", &url, &headers, Some(bytes))? {
                Reply::Ok(resp) => {
                    drain(resp);
                    Ok(())
                }
                Reply::Status(code, resp) => Err(self.status_error("PUT", &url, code, resp)),
            };
        }
        let object = self.object(key);
        let url = format!("{}/upload/storage/v1/b/{}/o?uploadType=multipart", self.endpoint, encode_name(&self.bucket));
        let crc = crc32c::crc32c(bytes);
        let mut meta = serde_json::json!({
            "name": object,
            "contentType": content_type,
            // Google checks the upload against it (and refuses a corrupted one).
            "crc32c": STANDARD.encode(crc.to_be_bytes()),
        });
        if let Some(h) = encoding.header() {
            meta["contentEncoding"] = Value::String(h.to_string());
        }
        let boundary = boundary_for(bytes);
        let mut body = Vec::with_capacity(bytes.len() + 512);
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n").as_bytes());
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: {content_type}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let ct = format!("multipart/related; boundary={boundary}");
        let what = format!("POST {url} (object {object})");
        match self.send("POST", &url, &[("Content-Type", &ct)], Some(&body))? {
            Reply::Ok(resp) => {
                let text = resp.into_string().map_err(|e| (true, Error::io(format!("{what}: reading the answer failed: {e}"))))?;
                // The object resource says what the server stored: check it against what we sent.
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    let size = v.get("size").and_then(|s| s.as_str().and_then(|s| s.parse::<u64>().ok()).or_else(|| s.as_u64()));
                    if size.is_some_and(|n| n != bytes.len() as u64) {
                        return Err((true, Error::io(format!("{what}: the server stored {} bytes of {}", size.unwrap_or(0), bytes.len()))));
                    }
                    if self.checksum {
                        let theirs = v.get("crc32c").and_then(Value::as_str).and_then(decode_crc32c);
                        if theirs.is_some_and(|t| t != crc) {
                            return Err((true, Error::io(format!(
                                "{what}: crc32c checksum mismatch: sent {}, the server stored {}",
                                STANDARD.encode(crc.to_be_bytes()),
                                v["crc32c"].as_str().unwrap_or("")
                            ))));
                        }
                    }
                }
                Ok(())
            }
            Reply::Status(code, resp) => {
                let (retry, e) = self.status_error("POST", &url, code, resp);
                // Google refuses an upload whose bytes do not match the checksum sent with it.
                let corrupt = code == 400 && (e.message().contains("CRC32C") || e.message().contains("crc32c"));
                Err((retry || corrupt, e.context(format!("object {object}"))))
            }
        }
    }

    fn delete_once(&self, key: &str) -> Attempt<()> {
        let url = if self.auth.is_some() { self.json_url(&self.object(key)) } else { self.media_url(key) };
        match self.send("DELETE", &url, &[], None)? {
            Reply::Ok(resp) | Reply::Status(404 | 410, resp) => {
                drain(resp);
                Ok(())
            }
            Reply::Status(code, resp) => Err(self.status_error("DELETE", &url, code, resp)),
        }
    }
}

/// Read a small answer to its end, so its connection goes back to the pool.
fn drain(resp: ureq::Response) {
    let mut sink = [0u8; 4096];
    let mut r = resp.into_reader().take(1 << 16);
    while matches!(r.read(&mut sink), Ok(n) if n > 0) {}
}

fn decode_crc32c(b64: &str) -> Option<u32> {
    let raw = STANDARD.decode(b64.trim()).ok()?;
    Some(u32::from_be_bytes(raw.try_into().ok()?))
}

/// Check the body against the `x-goog-hash` values (`crc32c=...`, `md5=...`, in one header or
/// several): crc32c when given, else md5. Malformed values are not checked.
fn verify_hashes(headers: &[String], bytes: &[u8], url: &str) -> Attempt<()> {
    let mut crc = None;
    let mut md5 = None;
    for part in headers.iter().flat_map(|h| h.split(',')) {
        if let Some((k, v)) = part.trim().split_once('=') {
            match k.trim().to_ascii_lowercase().as_str() {
                "crc32c" => crc = Some(v.trim().to_string()),
                "md5" => md5 = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    if let Some(want) = crc {
        if let Some(w) = decode_crc32c(&want) {
            let got = crc32c::crc32c(bytes);
            if got != w {
                return Err((true, Error::io(format!(
                    "GET {url}: crc32c checksum mismatch: x-goog-hash says crc32c={want}, the {} bytes received have crc32c={}",
                    bytes.len(),
                    STANDARD.encode(got.to_be_bytes())
                ))));
            }
        }
        return Ok(());
    }
    if let Some(want) = md5 {
        if let Ok(w) = STANDARD.decode(want.as_bytes()) {
            use md5::Digest as _;
            let got = md5::Md5::digest(bytes);
            if w.len() == 16 && got.as_slice() != w.as_slice() {
                return Err((true, Error::io(format!(
                    "GET {url}: md5 checksum mismatch: x-goog-hash says md5={want}, the {} bytes received have md5={}",
                    bytes.len(),
                    STANDARD.encode(got)
                ))));
            }
        }
    }
    Ok(())
}

/// A multipart boundary that does not occur in `bytes`.
fn boundary_for(bytes: &[u8]) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let b = format!("cloudvolume-{:016x}{:08x}", t ^ n.rotate_left(40), n as u32);
        if !bytes.windows(b.len()).any(|w| w == b.as_bytes()) {
            return b;
        }
    }
}

impl Store for GcsStore {
    fn get(&self, key: &str) -> Result<Option<Object>> {
        let mut bytes = Vec::new();
        Ok(self.get_into(key, &mut bytes)?.map(|encoding| Object { bytes, encoding }))
    }

    fn get_into(&self, key: &str, buf: &mut Vec<u8>) -> Result<Option<ContentEncoding>> {
        Ok(match self.retry.run(|| self.get_once(key, None, None, buf))? {
            Answer::Body { encoding, .. } => Some(encoding),
            Answer::Missing | Answer::Stale => None,
        })
    }

    fn get_range_if(&self, key: &str, start: u64, end: u64, if_generation: Option<&str>) -> Result<RangeRead> {
        if end <= start {
            return Ok(RangeRead::Data(Vec::new(), None));
        }
        let mut bytes = Vec::new();
        Ok(match self.retry.run(|| self.get_once(key, Some((start, end)), if_generation, &mut bytes))? {
            Answer::Missing => RangeRead::Missing,
            Answer::Stale => RangeRead::Stale,
            Answer::Body { generation, .. } => RangeRead::Data(bytes, generation),
        })
    }

    fn exists(&self, key: &str) -> Result<bool> {
        self.retry.run(|| self.exists_once(key))
    }

    fn put(&self, key: &str, bytes: &[u8], encoding: ContentEncoding, content_type: &str) -> Result<()> {
        self.retry.run(|| self.put_once(key, bytes, encoding, content_type))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.retry.run(|| self.delete_once(key))
    }

    fn url(&self, key: &str) -> String {
        if self.auth.is_some() {
            format!("gs://{}/{}", self.bucket, self.object(key))
        } else {
            self.public_url(key)
        }
    }

    fn default_parallel(&self) -> usize {
        DEFAULT_NETWORK_PARALLEL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(path: &str, opts: &Options) -> GcsStore {
        GcsStore::new(&CloudPath::parse(path, opts).unwrap(), opts).unwrap()
    }

    #[test]
    fn object_names_and_urls() {
        let o = Options { gs_token: Some(Redacted("ya29.x".into())), gs_endpoint: Some("http://h:1".into()), ..Options::default() };
        let s = store("gs://bkt/a/b/", &o);
        assert_eq!(s.object("info"), "a/b/info");
        assert_eq!(s.object("../c/info"), "a/c/info");
        assert_eq!(s.media_url("4_4_40/0-8_0-8_0-8"), "http://h:1/storage/v1/b/bkt/o/a%2Fb%2F4_4_40%2F0-8_0-8_0-8?alt=media");
        assert_eq!(s.url("info"), "gs://bkt/a/b/info");
        let s = store("gs://bkt", &o);
        assert_eq!(s.object("info"), "info");
        let anon = Options { anonymous: true, ..o.clone() };
        let s = store("gs://bkt/a/b", &anon);
        assert!(!s.authenticated());
        assert_eq!(s.media_url("info"), "http://h:1/bkt/a/b/info");
        assert_eq!(s.media_url("../../../../x y"), "http://h:1/bkt/x%20y", "keys stay in the bucket");
        assert_eq!(s.url("s/0-8_0-8_0-8"), "http://h:1/bkt/a/b/s/0-8_0-8_0-8");
        assert_eq!(encode_name("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn credentials_stay_out_of_debug_output() {
        let o = Options { gs_token: Some(Redacted("ya29.secretsecret".into())), ..Options::default() };
        let s = store("gs://bkt/a", &o);
        let d = format!("{s:?}");
        assert!(!d.contains("ya29") && d.contains("bkt"), "{d}");
    }

    #[test]
    fn hashes_are_checked() {
        let body = b"hello";
        // crc32c("hello") = 0x9a71bb4c, md5 = 5d41402abc4b2a76b9719d911017c592
        let good = vec!["crc32c=mnG7TA==,md5=XUFAKrxLKna5cZ2REBfFkg==".to_string()];
        verify_hashes(&good, body, "u").unwrap();
        let split = vec!["crc32c=mnG7TA==".to_string(), "md5=XUFAKrxLKna5cZ2REBfFkg==".to_string()];
        verify_hashes(&split, body, "u").unwrap();
        let (retry, e) = verify_hashes(&good, b"hellp", "http://x/o").unwrap_err();
        assert!(retry && e.message().contains("crc32c") && e.message().contains("http://x/o"), "{e}");
        let md5_only = vec!["md5=XUFAKrxLKna5cZ2REBfFkg==".to_string()];
        verify_hashes(&md5_only, body, "u").unwrap();
        assert!(verify_hashes(&md5_only, b"hellp", "u").unwrap_err().1.message().contains("md5"));
        verify_hashes(&["crc32c=???".to_string()], body, "u").unwrap();
        verify_hashes(&[], body, "u").unwrap();
    }

    #[test]
    fn boundaries_avoid_the_payload() {
        let b = boundary_for(b"abc");
        let payload = format!("xx{b}yy");
        let b2 = boundary_for(payload.as_bytes());
        assert!(!payload.contains(&b2));
    }
}
