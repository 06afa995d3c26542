//! `gs://` buckets on Google Cloud Storage: the shared [`HttpStore`] with a [`GcsSigner`].
//!
//! Credentials are looked up as cloud-files does (`cloudfiles/secrets.py`): the `anonymous`
//! option sends none; the `gs_token` option is an OAuth2 access token; the `secrets` option (an
//! object or a file) is a service-account key; else `{bucket}-google-secret.json`, then
//! `google-secret.json`, in the secret places of [`crate::secrets`]; else the service-account
//! key file named by `GOOGLE_APPLICATION_CREDENTIALS`; else none.
//!
//! With credentials, every request goes to the JSON API (`{ep}/storage/v1/b/BUCKET/o/OBJECT`
//! with `alt=media` for bytes, multipart uploads carrying the object's `contentType`,
//! `contentEncoding` and crc32c) with a bearer token from a [`token::TokenSource`], renewed once
//! when refused. Without, requests go to the public URL `{ep}/BUCKET/OBJECT` (GET, HEAD, PUT,
//! DELETE), which is how Google serves public objects and how plain web servers standing in for
//! a bucket (`gs_endpoint`) look.
//!
//! Listings (`first_under`, what `has_data` asks) go to the JSON API's objects.list
//! (`{ep}/storage/v1/b/BUCKET/o?prefix=LAYER/PREFIX&maxResults=1`, then pages of 1000 while only
//! folder markers came back), with the token when there is one, without for anonymous access
//! (as google-cloud-storage's anonymous client lists public buckets).
//!
//! Both kinds of request check what Google sends: `x-goog-hash` (crc32c, else md5) against the
//! bytes of whole-object reads that were not transcoded (a mismatch is retried and never
//! decoded), `x-goog-generation` for reads conditioned on a generation (sharded reads), and the
//! size and crc32c the server stored for an upload.

mod token;

use std::borrow::Cow;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

pub use token::{ServiceAccount, Token, TokenSource};

use super::http::{Explanation, Headers, HttpConfig, HttpStore, ListPage, Op, Signer, Target};
use super::retry::Attempt;
use super::ContentEncoding;
use crate::cloudpath::{join_key, CloudPath};
use crate::error::{Error, Result};
use crate::options::{Redacted, StoreOptions};
use crate::secrets;

/// Google's storage endpoint (the `gs_endpoint` option replaces it).
pub const GS_ENDPOINT: &str = "https://storage.googleapis.com";

/// Generations from `x-goog-generation` carry this prefix; others are entity tags.
const GEN_PREFIX: &str = "gen:";

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
pub fn credentials(bucket: &str, opts: &StoreOptions, agent: &ureq::Agent) -> Result<Option<TokenSource>> {
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
    let gac =
        std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty()).map(std::path::PathBuf::from);
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

/// What a GCS store is configured with, besides the HTTP client.
#[derive(Debug, Clone)]
pub struct GcsConfig {
    /// `https://storage.googleapis.com` or the `gs_endpoint` option.
    pub endpoint: String,
    /// Check `x-goog-hash` of whole-object reads and the crc32c of uploads.
    pub checksum: bool,
    /// The `anonymous` option was given (for messages).
    pub anonymous_option: bool,
}

/// The store of a `gs://` path, with `auth` (None: anonymous) on the HTTP client `agent`
/// (the one the token source uses too).
///
/// # Errors
/// A path without a bucket.
pub fn open(
    path: &CloudPath,
    cfg: &GcsConfig,
    auth: Option<TokenSource>,
    agent: ureq::Agent,
    http: &HttpConfig,
) -> Result<HttpStore> {
    let signer = GcsSigner::new(path, cfg, auth)?;
    Ok(HttpStore::with_agent(&cfg.endpoint, agent, http.retry, Box::new(signer)))
}

/// The dialect of one `gs://bucket/prefix` layer: JSON API or public URLs, bearer tokens,
/// generation conditions, Google's checksums and error messages.
pub struct GcsSigner {
    bucket: String,
    /// The layer's object-name prefix in the bucket, without slashes at either end.
    prefix: String,
    endpoint: String,
    /// None: anonymous requests to public URLs.
    auth: Option<TokenSource>,
    checksum: bool,
    anonymous_option: bool,
}

impl std::fmt::Debug for GcsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsSigner")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl GcsSigner {
    /// # Errors
    /// A path without a bucket.
    pub fn new(path: &CloudPath, cfg: &GcsConfig, auth: Option<TokenSource>) -> Result<GcsSigner> {
        let bucket = path
            .bucket
            .clone()
            .ok_or_else(|| Error::invalid(format!("cloud path \"{}\" names no bucket", path.path)))?;
        let rest = path.path.strip_prefix("gs://").unwrap_or(&path.path);
        let prefix = rest.split_once('/').map_or("", |(_, p)| p).trim_matches('/').to_string();
        Ok(GcsSigner {
            bucket,
            prefix,
            endpoint: cfg.endpoint.trim_end_matches('/').to_string(),
            auth,
            checksum: cfg.checksum,
            anonymous_option: cfg.anonymous_option,
        })
    }

    /// Whether requests carry credentials (and so go to the JSON API).
    pub fn authenticated(&self) -> bool {
        self.auth.is_some()
    }

    /// The object name of `key` in the bucket.
    fn object(&self, key: &str) -> String {
        let base =
            if self.prefix.is_empty() { self.bucket.clone() } else { format!("{}/{}", self.bucket, self.prefix) };
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
}

impl Signer for GcsSigner {
    fn target(&self, op: Op, _base: &str, key: &str) -> Target {
        let authed = self.auth.is_some();
        match op {
            Op::Get { whole } => {
                let mut t = Target::new("GET", self.media_url(key));
                if whole {
                    // Stored bytes as stored (no decompressive transcoding): the checksums are theirs.
                    t.header("Accept-Encoding", "gzip");
                }
                t
            }
            Op::Head if authed => Target::new("GET", self.json_url(&self.object(key))),
            Op::Head => Target::new("HEAD", self.media_url(key)),
            Op::Delete if authed => Target::new("DELETE", self.json_url(&self.object(key))),
            Op::Delete => Target::new("DELETE", self.media_url(key)),
            Op::Put if authed => Target::new(
                "POST",
                format!("{}/upload/storage/v1/b/{}/o?uploadType=multipart", self.endpoint, encode_name(&self.bucket)),
            ),
            Op::Put => Target::new("PUT", self.media_url(key)),
        }
    }

    fn list_target(&self, _base: &str, prefix: &str, max: u32, token: Option<&str>) -> Option<Target> {
        // The JSON API's objects.list, with a token or without (public buckets list to anyone
        // allowed to, as google-cloud-storage's anonymous client asks).
        let mut url = format!(
            "{}/storage/v1/b/{}/o?prefix={}&maxResults={max}&fields={}",
            self.endpoint,
            encode_name(&self.bucket),
            encode_name(&super::list_prefix(&self.prefix, prefix)),
            encode_name("items(name),nextPageToken"),
        );
        if let Some(t) = token {
            url.push_str(&format!("&pageToken={}", encode_name(t)));
        }
        Some(Target::new("GET", url))
    }

    fn list_page(&self, url: &str, body: &str) -> Result<ListPage> {
        let bad = |why: &str| Error::decode(format!("GET {url}: not a listing of objects ({why})"));
        let v: Value = serde_json::from_str(body).map_err(|e| bad(&e.to_string()))?;
        let mut names = Vec::new();
        match v.get("items") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    let name = item.get("name").and_then(Value::as_str).ok_or_else(|| bad("an item without a name"))?;
                    names.push(super::relative_name(&self.prefix, name));
                }
            }
            Some(_) => return Err(bad("\"items\" is no array")),
        }
        let next = v.get("nextPageToken").and_then(Value::as_str).map(str::to_string);
        Ok(ListPage { names, next })
    }

    fn display_url(&self, _base: &str, key: &str) -> String {
        if self.auth.is_some() {
            format!("gs://{}/{}", self.bucket, self.object(key))
        } else {
            self.public_url(key)
        }
    }

    fn condition(&self, target: &mut Target, generation: &str) {
        match generation.strip_prefix(GEN_PREFIX) {
            Some(g) if self.auth.is_some() => target.url.push_str(&format!("&ifGenerationMatch={g}")),
            Some(g) => target.header("x-goog-if-generation-match", g),
            None => target.header("If-Match", generation),
        }
    }

    fn generation(&self, headers: &Headers) -> Option<String> {
        match headers.get("x-goog-generation").map(str::trim).filter(|g| !g.is_empty()) {
            Some(g) => Some(format!("{GEN_PREFIX}{g}")),
            None => headers.get("ETag").map(str::to_string),
        }
    }

    fn upload<'b>(
        &self,
        target: &mut Target,
        key: &str,
        bytes: &'b [u8],
        encoding: ContentEncoding,
        content_type: &str,
    ) -> Cow<'b, [u8]> {
        if self.auth.is_none() {
            target.header("Content-Type", content_type);
            if let Some(h) = encoding.header() {
                target.header("Content-Encoding", h);
            }
            return Cow::Borrowed(bytes);
        }
        let crc = crc32c::crc32c(bytes);
        let mut meta = serde_json::json!({
            "name": self.object(key),
            "contentType": content_type,
            // Google checks the upload against it (and refuses a corrupted one).
            "crc32c": STANDARD.encode(crc.to_be_bytes()),
        });
        if let Some(h) = encoding.header() {
            meta["contentEncoding"] = Value::String(h.to_string());
        }
        let boundary = boundary_for(bytes);
        let mut body = Vec::with_capacity(bytes.len() + 512);
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n").as_bytes(),
        );
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: {content_type}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        target.header("Content-Type", format!("multipart/related; boundary={boundary}"));
        Cow::Owned(body)
    }

    fn check_upload(&self, target: &Target, bytes: &[u8], answer: &str) -> Attempt<()> {
        if self.auth.is_none() {
            return Ok(());
        }
        let what = format!("{} {}", target.method, target.url);
        // The object resource says what the server stored: check it against what we sent.
        let Ok(v) = serde_json::from_str::<Value>(answer) else { return Ok(()) };
        let size = v.get("size").and_then(|s| s.as_str().and_then(|s| s.parse::<u64>().ok()).or_else(|| s.as_u64()));
        if size.is_some_and(|n| n != bytes.len() as u64) {
            return Err((
                true,
                Error::io(format!("{what}: the server stored {} bytes of {}", size.unwrap_or(0), bytes.len())),
            ));
        }
        if self.checksum {
            let crc = crc32c::crc32c(bytes);
            let theirs = v.get("crc32c").and_then(Value::as_str).and_then(decode_crc32c);
            if theirs.is_some_and(|t| t != crc) {
                return Err((
                    true,
                    Error::io(format!(
                        "{what}: crc32c checksum mismatch: sent {}, the server stored {}",
                        STANDARD.encode(crc.to_be_bytes()),
                        v["crc32c"].as_str().unwrap_or("")
                    )),
                ));
            }
        }
        Ok(())
    }

    fn sign(&self, req: ureq::Request, _method: &str, _url: &str, _payload: &[u8]) -> Attempt<ureq::Request> {
        match &self.auth {
            Some(src) => {
                let t = src.token()?;
                Ok(req.set("Authorization", &format!("Bearer {}", t.secret())))
            }
            None => Ok(req),
        }
    }

    fn refused(&self, signed_at: Instant) -> bool {
        match &self.auth {
            Some(src) if src.refreshable() => {
                src.invalidate_obtained_by(signed_at);
                true
            }
            _ => false,
        }
    }

    fn verify(&self, url: &str, headers: &Headers, body: &[u8]) -> Attempt<()> {
        if !self.checksum {
            return Ok(());
        }
        // Transcoded bytes (decompressed by Google on the way) are not the stored ones the
        // hashes describe.
        let sent = headers.get("Content-Encoding").map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty());
        let stored = headers.get("x-goog-stored-content-encoding").map(|s| s.trim().to_ascii_lowercase());
        if let Some(stored) = stored {
            let stored = if stored.is_empty() { "identity".to_string() } else { stored };
            if stored != sent.unwrap_or_else(|| "identity".to_string()) {
                return Ok(());
            }
        }
        let hashes: Vec<String> = headers.all("x-goog-hash").map(str::to_string).collect();
        verify_hashes(&hashes, body, url)
    }

    fn explain(&self, status: u16, _headers: &Headers, body: &str) -> Option<Explanation> {
        let why = token::excerpt(body, &[]);
        let why = if why.is_empty() { String::new() } else { format!(": {why}") };
        let bucket = &self.bucket;
        match status {
            401 => Some(Explanation {
                detail: format!(
                    "credentials refused for bucket \"{bucket}\"{}; {}{why}",
                    if self.auth.as_ref().is_some_and(TokenSource::refreshable) {
                        " after a token refresh"
                    } else {
                        ""
                    },
                    self.who()
                ),
                auth: true,
                retry: false,
            }),
            403 => Some(Explanation {
                detail: format!("access to bucket \"{bucket}\" refused; {}{why}", self.who()),
                auth: true,
                retry: false,
            }),
            // Google refuses an upload whose bytes do not match the checksum sent with it.
            400 if why.contains("CRC32C") || why.contains("crc32c") => {
                Some(Explanation { detail: why[2..].to_string(), auth: false, retry: true })
            }
            _ if !why.is_empty() => Some(Explanation { detail: why[2..].to_string(), auth: false, retry: false }),
            _ => None,
        }
    }
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
                return Err((
                    true,
                    Error::io(format!(
                    "GET {url}: md5 checksum mismatch: x-goog-hash says md5={want}, the {} bytes received have md5={}",
                    bytes.len(),
                    STANDARD.encode(got)
                )),
                ));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store(path: &str, opts: &StoreOptions) -> GcsSigner {
        let agent = ureq::Agent::new();
        let auth = credentials(&CloudPath::parse(path, opts).unwrap().bucket.unwrap(), opts, &agent).unwrap();
        let cfg = GcsConfig {
            endpoint: opts.gs_endpoint.clone().unwrap_or(GS_ENDPOINT.into()),
            checksum: true,
            anonymous_option: opts.anonymous,
        };
        GcsSigner::new(&CloudPath::parse(path, opts).unwrap(), &cfg, auth).unwrap()
    }

    #[test]
    fn object_names_and_urls() {
        let o = StoreOptions {
            gs_token: Some(Redacted("ya29.x".into())),
            gs_endpoint: Some("http://h:1".into()),
            ..StoreOptions::default()
        };
        let s = store("gs://bkt/a/b/", &o);
        assert_eq!(s.object("info"), "a/b/info");
        assert_eq!(s.object("../c/info"), "a/c/info");
        assert_eq!(
            s.media_url("4_4_40/0-8_0-8_0-8"),
            "http://h:1/storage/v1/b/bkt/o/a%2Fb%2F4_4_40%2F0-8_0-8_0-8?alt=media"
        );
        assert_eq!(s.display_url("", "info"), "gs://bkt/a/b/info");
        let s = store("gs://bkt", &o);
        assert_eq!(s.object("info"), "info");
        let anon = StoreOptions { anonymous: true, ..o.clone() };
        let s = store("gs://bkt/a/b", &anon);
        assert!(!s.authenticated());
        assert_eq!(s.media_url("info"), "http://h:1/bkt/a/b/info");
        assert_eq!(s.media_url("../../../../x y"), "http://h:1/bkt/x%20y", "keys stay in the bucket");
        assert_eq!(s.display_url("", "s/0-8_0-8_0-8"), "http://h:1/bkt/a/b/s/0-8_0-8_0-8");
        assert_eq!(encode_name("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn listings_are_objects_list_of_the_layers_prefix() {
        let o = StoreOptions {
            gs_token: Some(Redacted("ya29.x".into())),
            gs_endpoint: Some("http://h:1".into()),
            ..StoreOptions::default()
        };
        let s = store("gs://bkt/a/b c/", &o);
        let t = s.list_target("", "8_8_40", 1, None).unwrap();
        assert_eq!(
            (t.method, t.url.as_str()),
            (
                "GET",
                "http://h:1/storage/v1/b/bkt/o?prefix=a%2Fb%20c%2F8_8_40&maxResults=1&fields=items%28name%29%2CnextPageToken"
            )
        );
        let t = s.list_target("", "s/", 1000, Some("CgR0/+=")).unwrap();
        assert!(
            t.url.contains("?prefix=a%2Fb%20c%2Fs%2F&maxResults=1000&") && t.url.ends_with("&pageToken=CgR0%2F%2B%3D")
        );
        let body = r#"{"kind":"storage#objects","nextPageToken":"tok","items":[{"name":"a/b c/s/"},{"name":"a/b c/s/x","size":"3"}]}"#;
        let page = s.list_page("u", body).unwrap();
        assert_eq!(page.names, ["s/", "s/x"]);
        assert_eq!(page.next.as_deref(), Some("tok"));
        assert_eq!(s.list_page("u", r#"{"kind":"storage#objects"}"#).unwrap(), ListPage::default());
        for bad in ["<html>", r#"{"items": 5}"#, r#"{"items": [{"size": "1"}]}"#] {
            let e = s.list_page("http://h/list", bad).unwrap_err();
            assert!(e.kind() == crate::ErrorKind::Decode && e.message().contains("http://h/list"), "{bad}: {e}");
        }
        let root = store("gs://bkt", &o);
        assert!(root.list_target("", "8_8_40", 1, None).unwrap().url.contains("?prefix=8_8_40&"));
    }

    #[test]
    fn credentials_stay_out_of_debug_output() {
        let o = StoreOptions { gs_token: Some(Redacted("ya29.secretsecret".into())), ..StoreOptions::default() };
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
