//! `s3://` buckets on AWS and on S3-compatible stores: an [`HttpStore`] whose requests carry AWS
//! Signature Version 4, and whose whole-object reads are checked against S3's ETag.
//!
//! Credentials are found as cloud-files finds them (`cloudfiles/secrets.py`,
//! `aws_credentials(bucket, service)`): the `secrets` option; else the first secret file of
//! `{bucket}-{service}-secret.json` and `{service}-secret.json` (service `aws` for `s3://`, the
//! alias's name for `matrix://` and the like); else the environment variables
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. With none of them, or
//! with the option `anonymous`, requests go unsigned (public buckets).
//!
//! The region of the signatures is the option `s3_region`, else the secret's
//! `AWS_DEFAULT_REGION`, else `AWS_DEFAULT_REGION` / `AWS_REGION` from the environment, else
//! us-east-1; when AWS answers that the bucket lives elsewhere, the signer takes the region it
//! names and the request is tried again, as boto3 does.
//!
//! Listings (`first_under`, what `has_data` asks) are ListObjectsV2 requests
//! (`?list-type=2&prefix=LAYER/PREFIX&max-keys=1`, then pages of 1000 after a continuation
//! token while only folder markers came back), signed, retried and mapped as every request; a
//! missing bucket (`NoSuchBucket`) is `NotFound`.
//!
//! Addressing: on AWS, virtual-hosted (`https://BUCKET.s3[.REGION].amazonaws.com/KEY`) when the
//! bucket name is a plain DNS label, path-style otherwise; on any other endpoint (option
//! `s3_endpoint`, `s3://https://host/...`, an alias) path-style (`ENDPOINT/BUCKET/KEY`).
//!
//! No secret, and no access key id, ever enters a message or `Debug` output.

use std::fmt::Write as _;
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest, Md5};
use ring::{digest, hmac};
use serde_json::{Map, Value};

use super::http::{Explanation, Headers, HttpConfig, HttpStore, ListPage, Signer, Target};
use super::retry::Attempt;
use crate::cloudpath::{CloudPath, S3_ENDPOINT};
use crate::error::{Error, Result};
use crate::options::Redacted;
use crate::secrets;

/// The region signatures use when nothing names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// An access key pair, with the session token of temporary credentials.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: Redacted<String>,
    pub secret_access_key: Redacted<String>,
    pub session_token: Option<Redacted<String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What the credential lookup found.
#[derive(Debug, Clone)]
pub struct Found {
    /// None: send unsigned requests.
    pub credentials: Option<Credentials>,
    /// The region named next to the credentials (a secret's `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// Where the credentials came from, for messages ("secret file /x/aws-secret.json").
    pub source: String,
}

fn member(m: &Map<String, Value>, key: &str, source: &str) -> Result<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::auth(format!("{source}: \"{key}\" must be a string"))),
    }
}

/// Credentials (and region) from a secret object (a secret file, or the `secrets` option).
///
/// # Errors
/// `Auth` when only one of the key pair is there, or a member is not a string; the message
/// names the source and the member, never a value.
pub fn from_secret(m: &Map<String, Value>, source: &str) -> Result<Found> {
    let id = member(m, "AWS_ACCESS_KEY_ID", source)?;
    let secret = member(m, "AWS_SECRET_ACCESS_KEY", source)?;
    let token = member(m, "AWS_SESSION_TOKEN", source)?;
    let region = member(m, "AWS_DEFAULT_REGION", source)?;
    let credentials = match (id, secret) {
        (Some(id), Some(secret)) => Some(Credentials {
            access_key_id: Redacted(id),
            secret_access_key: Redacted(secret),
            session_token: token.map(Redacted),
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(Error::auth(format!("{source}: AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY")))
        }
        (None, Some(_)) => {
            return Err(Error::auth(format!("{source}: AWS_SECRET_ACCESS_KEY without AWS_ACCESS_KEY_ID")))
        }
    };
    Ok(Found { credentials, region, source: source.to_string() })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_region() -> Option<String> {
    env("AWS_DEFAULT_REGION").or_else(|| env("AWS_REGION"))
}

/// Look up the credentials of `bucket` for `service` ("aws" for s3://, an alias's name) as
/// cloud-files does: `secrets` (the option), `{bucket}-{service}-secret.json`,
/// `{service}-secret.json`, the `AWS_*` environment variables; nothing when `anonymous`.
///
/// # Errors
/// `Auth` for an unreadable or malformed secret; `InvalidArgument` for a bad `secrets` option.
pub fn find_credentials(bucket: &str, service: &str, secret_option: Option<&Value>, anonymous: bool) -> Result<Found> {
    let service = if service == "s3" { "aws" } else { service };
    if anonymous {
        return Ok(Found { credentials: None, region: None, source: "anonymous access".into() });
    }
    if let Some(v) = secret_option {
        let m = secrets::from_option(v)?;
        let source = match v {
            Value::String(p) => format!("secret file {p} (option \"secrets\")"),
            _ => "the \"secrets\" option".to_string(),
        };
        return from_secret(&m, &source);
    }
    let mut names = Vec::with_capacity(2);
    if !bucket.is_empty() {
        names.push(format!("{bucket}-{service}-secret.json"));
    }
    names.push(format!("{service}-secret.json"));
    if let Some((path, m)) = secrets::find_secret(&names)? {
        return from_secret(&m, &format!("secret file {}", path.display()));
    }
    match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Ok(Found {
            credentials: Some(Credentials {
                access_key_id: Redacted(id),
                secret_access_key: Redacted(secret),
                session_token: env("AWS_SESSION_TOKEN").map(Redacted),
            }),
            region: None,
            source: "the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        }),
        _ => Ok(Found {
            credentials: None,
            region: None,
            source: format!(
                "no credentials (no {} in {}, no AWS_* variables)",
                names.join(" or "),
                secrets::secrets_dir().display()
            ),
        }),
    }
}

/// Whether `bucket` can be the first label of a virtual-hosted HTTPS name (no dots, which
/// would break the certificate match).
fn dns_label(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

/// The base URL of a layer on AWS: virtual-hosted when the bucket allows it.
fn aws_base(bucket: &str, prefix: &str, region: Option<&str>) -> String {
    let host = match region {
        Some(r) if r != DEFAULT_REGION => format!("s3.{r}.amazonaws.com"),
        _ => "s3.amazonaws.com".to_string(),
    };
    let prefix = prefix.trim_matches('/');
    let mut base =
        if dns_label(bucket) { format!("https://{bucket}.{host}") } else { format!("https://{host}/{bucket}") };
    if !prefix.is_empty() {
        base.push('/');
        base.push_str(prefix);
    }
    base
}

/// What an S3 store is configured with, besides the HTTP client.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// The `s3_region` option.
    pub region: Option<String>,
    /// The `s3_endpoint` option was given (no AWS addressing).
    pub custom_endpoint: bool,
    /// Check ETags of whole-object reads.
    pub checksum: bool,
}

/// The store of an `s3://` path (or an S3 alias) signed with `found`.
pub fn open(path: &CloudPath, found: Found, cfg: &S3Config, http: &HttpConfig) -> HttpStore {
    let bucket = path.bucket.clone().unwrap_or_default();
    let named_region = cfg.region.clone().or_else(|| found.region.clone()).or_else(env_region);
    let region = named_region.clone().unwrap_or_else(|| DEFAULT_REGION.to_string());
    let aws_prefix = format!("{S3_ENDPOINT}/{bucket}");
    let on_aws = !cfg.custom_endpoint && (path.base == aws_prefix || path.base.starts_with(&format!("{aws_prefix}/")));
    let base = if on_aws {
        aws_base(&bucket, &path.base[aws_prefix.len()..], named_region.as_deref())
    } else {
        path.base.clone()
    };
    let acl = match path.alias.as_deref() {
        Some("tigerdata") => "private",
        Some("nokura") => "public-read",
        _ => "bucket-owner-full-control",
    };
    let (list_url, layer) = listing_base(&base, &bucket, on_aws && dns_label(&bucket));
    let signer = S3Signer {
        credentials: found.credentials,
        region: RwLock::new(region),
        region_fixed: cfg.region.is_some(),
        bucket,
        source: found.source,
        acl,
        checksum: cfg.checksum,
        key_cache: Mutex::new(None),
        list_url,
        layer,
    };
    HttpStore::with_signer(&base, http, Box::new(signer))
}

/// The URL of a bucket's listings and the layer's object-name prefix in it, out of the layer's
/// base URL: `https://BUCKET.host/PREFIX` when `virtual_hosted`, else `ENDPOINT/BUCKET/PREFIX`.
fn listing_base(base: &str, bucket: &str, virtual_hosted: bool) -> (String, String) {
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_end..].find('/').map_or(base.len(), |i| authority_end + i);
    let (host, path) = base.split_at(path_start);
    if virtual_hosted {
        return (format!("{host}/"), path.trim_matches('/').to_string());
    }
    let seg = format!("/{bucket}");
    let mut from = 0;
    while let Some(i) = path[from..].find(&seg).map(|i| from + i) {
        let end = i + seg.len();
        if end == path.len() || path.as_bytes()[end] == b'/' {
            return (format!("{host}{}", &path[..end]), path[end..].trim_matches('/').to_string());
        }
        from = i + 1;
    }
    (base.to_string(), String::new())
}

/// Signs requests with SigV4 (when it has credentials) and checks ETags.
pub struct S3Signer {
    credentials: Option<Credentials>,
    /// The signing region; AWS's answer can correct it.
    region: RwLock<String>,
    /// The region was given by the `s3_region` option (still corrected, but said so).
    region_fixed: bool,
    bucket: String,
    source: String,
    /// The canned ACL of PUTs (cloud-files' per-alias choice).
    acl: &'static str,
    checksum: bool,
    /// (date, region, signing key) of the last signature.
    key_cache: Mutex<Option<(String, String, hmac::Key)>>,
    /// Where the bucket's listings go (`ENDPOINT/BUCKET`, or `https://BUCKET.host/`).
    list_url: String,
    /// The layer's object-name prefix in the bucket, without slashes at either end.
    layer: String,
}

impl std::fmt::Debug for S3Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Signer")
            .field("credentials", &self.credentials)
            .field("region", &*self.region.read().unwrap_or_else(|p| p.into_inner()))
            .field("bucket", &self.bucket)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl S3Signer {
    fn region(&self) -> String {
        self.region.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How requests are signed, for messages: the credentials' source, never their values.
    fn how_signed(&self) -> String {
        if self.credentials.is_some() {
            format!("signed with credentials from {}, region {}", self.source, self.region())
        } else {
            format!("unsigned: {}", self.source)
        }
    }

    fn signing_key(&self, secret: &str, date: &str, region: &str) -> hmac::Key {
        let mut cache = self.key_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((d, r, k)) = &*cache {
            if d == date && r == region {
                return k.clone();
            }
        }
        let k = signing_key(secret, date, region, "s3");
        *cache = Some((date.to_string(), region.to_string(), k.clone()));
        k
    }
}

impl Signer for S3Signer {
    fn list_target(&self, _base: &str, prefix: &str, max: u32, token: Option<&str>) -> Option<Target> {
        // ListObjectsV2, signed as every request (the query is part of the signature).
        let full = super::list_prefix(&self.layer, prefix);
        let mut url = format!("{}?list-type=2&prefix={}&max-keys={max}", self.list_url, uri_encode(&full, false));
        if let Some(t) = token {
            url.push_str(&format!("&continuation-token={}", uri_encode(t, false)));
        }
        Some(Target::new("GET", url))
    }

    fn list_page(&self, url: &str, body: &str) -> Result<ListPage> {
        if !body.contains("<ListBucketResult") {
            let start: String = body.chars().take(80).filter(|c| !c.is_control()).collect();
            return Err(Error::decode(format!("GET {url}: not a ListBucketResult (the answer starts \"{start}\")")));
        }
        let mut names = Vec::new();
        let mut rest = body;
        while let Some(i) = rest.find("<Contents>") {
            let block = &rest[i..];
            let end = block.find("</Contents>").unwrap_or(block.len());
            // Not trimmed: a key's spaces are its own.
            let contents = &block[..end];
            if let Some(a) = contents.find("<Key>").map(|a| a + "<Key>".len()) {
                let key = &contents[a..contents[a..].find("</Key>").map_or(contents.len(), |b| a + b)];
                names.push(super::relative_name(&self.layer, &xml_unescape(key)));
            }
            rest = &block[end..];
        }
        let truncated = xml_element(body, "IsTruncated").is_some_and(|t| t.eq_ignore_ascii_case("true"));
        let next = xml_element(body, "NextContinuationToken").filter(|_| truncated).map(xml_unescape);
        Ok(ListPage { names, next })
    }

    fn sign(&self, req: ureq::Request, method: &str, url: &str, payload: &[u8]) -> Attempt<ureq::Request> {
        // Reads ask for the checksum the object was stored with (see `verify`).
        let ask_checksum = self.checksum && method == "GET";
        let Some(c) = &self.credentials else {
            return Ok(if ask_checksum { req.set("x-amz-checksum-mode", "ENABLED") } else { req });
        };
        let parts = UrlParts::parse(url)
            .ok_or_else(|| (false, Error::invalid(format!("{url}: not a URL that can be signed"))))?;
        let amz_date = amz_date(SystemTime::now());
        let payload_hash = hex(digest::digest(&digest::SHA256, payload).as_ref());
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), parts.host.clone()),
            ("x-amz-content-sha256".into(), payload_hash.clone()),
            ("x-amz-date".into(), amz_date.clone()),
        ];
        if let Some(t) = &c.session_token {
            headers.push(("x-amz-security-token".into(), t.0.clone()));
        }
        if method == "PUT" {
            headers.push(("x-amz-acl".into(), self.acl.to_string()));
        }
        if ask_checksum {
            headers.push(("x-amz-checksum-mode".into(), "ENABLED".into()));
        }
        let region = self.region();
        let key = self.signing_key(&c.secret_access_key.0, &amz_date[..8], &region);
        let auth =
            authorization(&c.access_key_id.0, &key, &region, method, &parts, &mut headers, &payload_hash, &amz_date);
        let mut req = req;
        for (name, value) in &headers {
            req = req.set(name, value);
        }
        Ok(req.set("Authorization", &auth))
    }

    fn verify(&self, url: &str, headers: &Headers, body: &[u8]) -> Attempt<()> {
        if !self.checksum {
            return Ok(());
        }
        // A CRC the object was stored with (asked for by `x-amz-checksum-mode`; uploads of the
        // current AWS SDKs carry one) is checked instead of the ETag's MD5: the same guard at a
        // twentieth of the CPU. Composite checksums of multipart uploads ("...-N") are not of
        // the whole body.
        for (name, algorithm) in [("x-amz-checksum-crc32c", "CRC32C"), ("x-amz-checksum-crc32", "CRC32")] {
            let Some(want) = headers.get(name).filter(|v| !v.contains('-')) else { continue };
            let crc = if algorithm == "CRC32C" {
                crc32c::crc32c(body)
            } else {
                let mut c = flate2::Crc::new();
                c.update(body);
                c.sum()
            };
            let got = STANDARD.encode(crc.to_be_bytes());
            if got == want.trim() {
                return Ok(());
            }
            return Err((
                true,
                Error::io(format!(
                    "{url}: checksum mismatch: the object's {algorithm} is {}, the {} bytes received have {got}",
                    want.trim(),
                    body.len()
                )),
            ));
        }
        let Some(etag) = headers.get("ETag") else { return Ok(()) };
        // Objects encrypted with KMS keys or customer keys have ETags that are no MD5.
        if headers.get("x-amz-server-side-encryption").is_some_and(|v| v.starts_with("aws:kms"))
            || headers.get("x-amz-server-side-encryption-customer-algorithm").is_some()
        {
            return Ok(());
        }
        let Some(want) = single_part_md5(etag) else { return Ok(()) };
        let got = hex(&Md5::digest(body));
        if got == want {
            Ok(())
        } else {
            Err((
                true,
                Error::io(format!(
                    "{url}: checksum mismatch: the ETag says MD5 {want}, the {} bytes received have MD5 {got}",
                    body.len()
                )),
            ))
        }
    }

    fn explain(&self, status: u16, headers: &Headers, body: &str) -> Option<Explanation> {
        let bucket = &self.bucket;
        let code = xml_element(body, "Code")
            .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
        let bucket_region =
            xml_element(body, "Region").or_else(|| headers.get("x-amz-bucket-region")).filter(|r| plain_word(r));
        // Signed for another region than the bucket's (a HEAD says so in a header only): sign
        // for the bucket's from now on and try again, as boto3 does.
        if let (Some(right), Some(_), 400) = (bucket_region, &self.credentials, status) {
            if matches!(code, None | Some("AuthorizationHeaderMalformed" | "IllegalLocationConstraintException")) {
                let mut region = self.region.write().unwrap_or_else(|p| p.into_inner());
                if *region != right {
                    let detail = format!(
                        "S3 {}: bucket \"{bucket}\" is in region {right}, not {}{}; signing for {right} from now on",
                        code.unwrap_or("HTTP 400"),
                        *region,
                        if self.region_fixed { " (option s3_region)" } else { "" }
                    );
                    *region = right.to_string();
                    return Some(Explanation { detail, auth: false, retry: true });
                }
            }
        }
        let in_region =
            bucket_region.map(|r| format!(" (it is in region {r}: set the option s3_region)")).unwrap_or_default();
        let Some(code) = code else {
            // No S3 error document (a HEAD, a proxy's page): still say how the request went.
            return match status {
                401 | 403 => Some(Explanation {
                    detail: format!("access to bucket \"{bucket}\" refused ({})", self.how_signed()),
                    auth: true,
                    retry: false,
                }),
                300..=400 if bucket_region.is_some() => Some(Explanation {
                    detail: format!("bucket \"{bucket}\" is elsewhere{in_region}"),
                    auth: false,
                    retry: false,
                }),
                _ => None,
            };
        };
        match code {
            "PermanentRedirect" | "TemporaryRedirect" | "Redirect" | "IllegalLocationConstraintException" => {
                let endpoint = xml_element(body, "Endpoint").filter(|e| plain_word(e));
                Some(Explanation {
                    detail: format!(
                        "S3 {code}: bucket \"{bucket}\" must be reached at {}{in_region}",
                        endpoint.unwrap_or("another endpoint")
                    ),
                    auth: false,
                    retry: false,
                })
            }
            "AccessDenied"
            | "AllAccessDisabled"
            | "AccountProblem"
            | "InvalidAccessKeyId"
            | "InvalidSecurity"
            | "InvalidToken"
            | "ExpiredToken"
            | "TokenRefreshRequired"
            | "SignatureDoesNotMatch"
            | "AuthorizationHeaderMalformed"
            | "MissingSecurityHeader"
            | "RequestTimeTooSkewed"
            | "InvalidClientTokenId"
            | "UnauthorizedAccess"
            | "MissingAuthenticationToken"
            | "IncompleteSignature" => Some(Explanation {
                detail: format!("S3 {code} for bucket \"{bucket}\" ({}){in_region}", self.how_signed()),
                auth: true,
                retry: false,
            }),
            "RequestTimeout" | "SlowDown" | "InternalError" | "ServiceUnavailable" => {
                Some(Explanation { detail: format!("S3 {code}"), auth: false, retry: true })
            }
            _ => Some(Explanation {
                detail: format!("S3 {code} (HTTP {status}, bucket \"{bucket}\")"),
                auth: false,
                retry: false,
            }),
        }
    }
}

/// A word safe to quote from a response: a region or a host name.
fn plain_word(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The text of the first `<name>...</name>` in `xml` (S3 error bodies are flat).
fn xml_element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim())
}

/// The text of an XML element with its five predefined entities and character references
/// replaced (a reference that does not decode stays as written).
fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest.find(';').and_then(|j| {
            let ch = match &rest[1..j] {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                r => {
                    let code = match r.strip_prefix("#x").or_else(|| r.strip_prefix("#X")) {
                        Some(h) => u32::from_str_radix(h, 16).ok(),
                        None => r.strip_prefix('#').and_then(|d| d.parse().ok()),
                    };
                    code.and_then(char::from_u32)
                }
            };
            ch.map(|c| (c, j))
        });
        match decoded {
            Some((c, j)) => {
                out.push(c);
                rest = &rest[j + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The MD5 an ETag stands for, when it is a single-part upload's (a quoted 32-digit hex MD5;
/// multipart ETags end in `-N`, weak ones start with `W/`).
fn single_part_md5(etag: &str) -> Option<String> {
    let t = etag.trim();
    let inner = t.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(t);
    (inner.len() == 32 && inner.bytes().all(|b| b.is_ascii_hexdigit())).then(|| inner.to_ascii_lowercase())
}

// ------------------------------------------------------------------------------------------------
// Signature Version 4

/// The parts of a URL a signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// The `Host` header: host, and the port unless it is the scheme's default.
    pub host: String,
    /// The path as sent (starting with `/`).
    pub path: String,
    /// The query (without `?`), possibly empty.
    pub query: String,
}

impl UrlParts {
    pub fn parse(url: &str) -> Option<UrlParts> {
        let (scheme, rest) = url.split_once("://")?;
        let rest = rest.split('#').next().unwrap_or("");
        let (authority, path_query) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let authority = authority.rsplit('@').next().unwrap_or(authority).to_ascii_lowercase();
        if authority.is_empty() {
            return None;
        }
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "https" => ":443",
            "http" => ":80",
            _ => "",
        };
        let host = match authority.strip_suffix(default_port) {
            Some(h) if !default_port.is_empty() && !h.ends_with(':') => h.to_string(),
            _ => authority,
        };
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        let path = if path.is_empty() { "/".to_string() } else { path.to_string() };
        Some(UrlParts { host, path, query: query.to_string() })
    }
}

/// `AWS4-HMAC-SHA256` signing key for a day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let step = |key: &[u8], data: &str| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes());
    let k = step(format!("AWS4{secret}").as_bytes(), date);
    let k = step(k.as_ref(), region);
    let k = step(k.as_ref(), service);
    let k = step(k.as_ref(), "aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k.as_ref())
}

/// S3's URI encoding: everything but `A-Za-z0-9-_.~` as `%XX` (and `/` kept when `path`).
pub fn uri_encode(s: &str, path: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (path && b == b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Undo percent-encoding (bytes that do not decode stay as they are).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
            let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(digit(b[i + 1]) * 16 + digit(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The canonical URI: each segment of the (decoded) path URI-encoded once (S3 does not
/// normalize paths nor encode twice).
pub fn canonical_uri(path: &str) -> String {
    let p = path.split('/').map(|seg| uri_encode(&percent_decode(seg), false)).collect::<Vec<_>>().join("/");
    if p.is_empty() {
        "/".into()
    } else {
        p
    }
}

/// The canonical query string: parameters encoded, sorted by name then value, `name=value`.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&percent_decode(k), false), uri_encode(&percent_decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// The canonical request, and the signed header list (`headers` gets sorted by name).
pub fn canonical_request(
    method: &str,
    parts: &UrlParts,
    headers: &mut [(String, String)],
    payload_hash: &str,
) -> (String, String) {
    for h in headers.iter_mut() {
        h.0 = h.0.to_ascii_lowercase();
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canon = String::new();
    for (n, v) in headers.iter() {
        let _ = writeln!(canon, "{n}:{}", v.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    let signed = headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
    let req = format!(
        "{method}\n{}\n{}\n{canon}\n{signed}\n{payload_hash}",
        canonical_uri(&parts.path),
        canonical_query(&parts.query)
    );
    (req, signed)
}

/// The `Authorization` header value of a request (`headers`: every header to sign, host
/// included; sorted in place).
#[allow(clippy::too_many_arguments)]
pub fn authorization(
    access_key_id: &str,
    key: &hmac::Key,
    region: &str,
    method: &str,
    parts: &UrlParts,
    headers: &mut [(String, String)],
    payload_hash: &str,
    amz_date: &str,
) -> String {
    let (creq, signed) = canonical_request(method, parts, headers, payload_hash);
    let scope = format!("{}/{region}/s3/aws4_request", &amz_date[..8]);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, creq.as_bytes()).as_ref())
    );
    let signature = hex(hmac::sign(key, to_sign.as_bytes()).as_ref());
    format!("AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={signed}, Signature={signature}")
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `YYYYMMDDTHHMMSSZ` (UTC) of a time.
pub fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", sod / 3600, sod % 3600 / 60, sod % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // The examples of AWS's "Signature Version 4 for S3: examples of the complete process"
    // (authenticating requests with the Authorization header).
    const ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20130524T000000Z";
    const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn sign_example(method: &str, url: &str, extra: &[(&str, &str)], payload_hash: &str) -> String {
        let parts = UrlParts::parse(url).unwrap();
        let mut headers: Vec<(String, String)> = vec![
            ("Host".into(), parts.host.clone()),
            ("x-amz-content-sha256".into(), payload_hash.into()),
            ("x-amz-date".into(), DATE.into()),
        ];
        headers.extend(extra.iter().map(|(n, v)| ((*n).to_string(), (*v).to_string())));
        let key = signing_key(SECRET, &DATE[..8], "us-east-1", "s3");
        authorization(ID, &key, "us-east-1", method, &parts, &mut headers, payload_hash, DATE)
    }

    #[test]
    fn get_object_example_from_the_aws_docs() {
        let auth = sign_example(
            "GET",
            "https://examplebucket.s3.amazonaws.com/test.txt",
            &[("Range", "bytes=0-9")],
            EMPTY_SHA,
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn put_object_example_from_the_aws_docs() {
        let body = b"Welcome to Amazon S3.";
        let sha = hex(digest::digest(&digest::SHA256, body).as_ref());
        assert_eq!(sha, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
        // The key is `test$file.text`: `$` is encoded in the canonical URI, whether or not the
        // URL carried it encoded.
        for url in [
            "https://examplebucket.s3.amazonaws.com/test$file.text",
            "https://examplebucket.s3.amazonaws.com/test%24file.text",
        ] {
            let auth = sign_example(
                "PUT",
                url,
                &[("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
                &sha,
            );
            assert!(
                auth.ends_with(
                    "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
                 Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
                ),
                "{auth}"
            );
        }
    }

    #[test]
    fn query_examples_from_the_aws_docs() {
        let auth = sign_example("GET", "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", &[], EMPTY_SHA);
        assert!(auth.ends_with("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"), "{auth}");
        // Parameters are sorted whatever their order in the URL.
        let auth = sign_example("GET", "https://examplebucket.s3.amazonaws.com/?prefix=J&max-keys=2", &[], EMPTY_SHA);
        assert!(auth.ends_with("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"), "{auth}");
        let auth = sign_example("GET", "https://examplebucket.s3.amazonaws.com/?lifecycle", &[], EMPTY_SHA);
        assert!(auth.ends_with("Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"), "{auth}");
    }

    #[test]
    fn canonical_pieces() {
        assert_eq!(canonical_uri("/b/8_8_40/-7-9_11-18_-1-3"), "/b/8_8_40/-7-9_11-18_-1-3");
        assert_eq!(canonical_uri("/b/mesh/12:0"), "/b/mesh/12%3A0");
        assert_eq!(canonical_uri("/b/a%20b/c+d~"), "/b/a%20b/c%2Bd~");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_query("b=2&a=1&a=0&c"), "a=0&a=1&b=2&c=");
        assert_eq!(uri_encode("a/b é", true), "a/b%20%C3%A9");
        let p = UrlParts::parse("HTTP://127.0.0.1:9000/bk/x?y=1").unwrap();
        assert_eq!((p.host.as_str(), p.path.as_str(), p.query.as_str()), ("127.0.0.1:9000", "/bk/x", "y=1"));
        assert_eq!(UrlParts::parse("https://b.s3.amazonaws.com:443/k").unwrap().host, "b.s3.amazonaws.com");
        assert_eq!(UrlParts::parse("http://h").unwrap().path, "/");
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(amz_date(UNIX_EPOCH + Duration::from_secs(1_369_353_600)), DATE);
        assert_eq!(amz_date(UNIX_EPOCH + Duration::from_secs(951_782_400 + 86_399)), "20000229T235959Z");
        assert_eq!(amz_date(UNIX_EPOCH + Duration::from_secs(4_102_444_800)), "21000101T000000Z");
    }

    #[test]
    fn etags_of_single_part_uploads_only() {
        assert_eq!(
            single_part_md5("\"D41D8CD98F00B204E9800998ECF8427E\"").as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(single_part_md5("\"d41d8cd98f00b204e9800998ecf8427e-3\""), None);
        assert_eq!(single_part_md5("W/\"d41d8cd98f00b204e9800998ecf8427e\""), None);
        assert_eq!(single_part_md5("\"5f1e2a3b-1a2\""), None);
        let s = S3Signer {
            credentials: None,
            region: RwLock::new(DEFAULT_REGION.into()),
            region_fixed: false,
            bucket: "b".into(),
            source: "test".into(),
            acl: "private",
            checksum: true,
            key_cache: Mutex::new(None),
            list_url: "http://h/b".into(),
            layer: String::new(),
        };
        let h = |v: &str| Headers(vec![("etag".into(), v.into())]);
        assert!(s.verify("u", &h("\"d41d8cd98f00b204e9800998ecf8427e\""), b"").is_ok());
        let e = s.verify("http://h/b/k", &h("\"d41d8cd98f00b204e9800998ecf8427e\""), b"x").unwrap_err();
        assert!(e.0 && e.1.message().contains("http://h/b/k") && e.1.message().contains("checksum"), "{:?}", e.1);
        assert!(s.verify("u", &h("\"d41d8cd98f00b204e9800998ecf8427e-2\""), b"x").is_ok());
        let kms = Headers(vec![
            ("ETag".into(), "\"d41d8cd98f00b204e9800998ecf8427e\"".into()),
            ("x-amz-server-side-encryption".into(), "aws:kms".into()),
        ]);
        assert!(s.verify("u", &kms, b"x").is_ok());
        // A stored CRC32C or CRC32 (base64 of the big-endian value) is checked before the ETag.
        let with = |name: &str, v: &str| {
            Headers(vec![("ETag".into(), "\"0123456789abcdef0123456789abcdef\"".into()), (name.into(), v.into())])
        };
        // crc32c("123456789") = e3069283, crc32("123456789") = cbf43926 (the check values).
        assert!(s.verify("u", &with("x-amz-checksum-crc32c", "4waSgw=="), b"123456789").is_ok());
        assert!(s.verify("u", &with("x-amz-checksum-crc32", "y/Q5Jg=="), b"123456789").is_ok());
        let e = s.verify("http://h/b/k", &with("x-amz-checksum-crc32", "y/Q5Jg=="), b"123456780").unwrap_err();
        assert!(
            e.0 && e.1.message().contains("CRC32 is y/Q5Jg==") && e.1.message().contains("http://h/b/k"),
            "{:?}",
            e.1
        );
        // A composite (multipart) checksum falls back to the ETag, here a wrong MD5.
        assert!(s.verify("u", &with("x-amz-checksum-crc32", "y/Q5Jg==-3"), b"123456789").is_err());
    }

    #[test]
    fn error_bodies_name_the_code_and_no_secret() {
        let s = S3Signer {
            credentials: Some(Credentials {
                access_key_id: Redacted("AKIDSECRETID".into()),
                secret_access_key: Redacted("hunter2hunter2".into()),
                session_token: None,
            }),
            region: RwLock::new(DEFAULT_REGION.into()),
            region_fixed: false,
            bucket: "bk".into(),
            source: "secret file /x/aws-secret.json".into(),
            acl: "private",
            checksum: true,
            key_cache: Mutex::new(None),
            list_url: "http://h/b".into(),
            layer: String::new(),
        };
        let body = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>m</Message>\
                    <AWSAccessKeyId>AKIDSECRETID</AWSAccessKeyId><StringToSign>x</StringToSign></Error>";
        let x = s.explain(403, &Headers::default(), body).unwrap();
        assert!(x.auth && !x.retry);
        assert!(
            x.detail.contains("SignatureDoesNotMatch")
                && x.detail.contains("\"bk\"")
                && x.detail.contains("aws-secret.json"),
            "{}",
            x.detail
        );
        assert!(!x.detail.contains("AKIDSECRETID") && !x.detail.contains("hunter2"), "{}", x.detail);
        let d = format!("{s:?}");
        assert!(!d.contains("AKIDSECRETID") && !d.contains("hunter2"), "{d}");
        // A wrong region is corrected once, then the request is tried again.
        let body = "<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-1</Region></Error>";
        let x = s.explain(400, &Headers::default(), body).unwrap();
        assert!(x.retry && !x.auth, "{x:?}");
        assert_eq!(s.region(), "eu-west-1");
        assert!(s.explain(400, &Headers::default(), body).unwrap().auth);
        // A HEAD says it in a header only.
        let h = Headers(vec![("X-Amz-Bucket-Region".into(), "us-west-2".into())]);
        let x = s.explain(400, &h, "").unwrap();
        assert!(x.retry && !x.auth, "{x:?}");
        assert_eq!(s.region(), "us-west-2");
        let x = s.explain(301, &h, "").unwrap();
        assert!(!x.retry && !x.auth && x.detail.contains("us-west-2") && x.detail.contains("s3_region"), "{x:?}");
        let x = s.explain(403, &h, "").unwrap();
        assert!(x.auth && x.detail.contains("\"bk\""), "{x:?}");
        assert!(s.explain(400, &Headers::default(), "<Error><Code>RequestTimeout</Code></Error>").unwrap().retry);
        assert!(s.explain(404, &Headers::default(), "not xml").is_none());
    }

    #[test]
    fn listings_are_list_objects_v2_of_the_layers_prefix() {
        assert_eq!(
            listing_base("https://bk.s3.amazonaws.com/a/layer", "bk", true),
            ("https://bk.s3.amazonaws.com/".to_string(), "a/layer".to_string())
        );
        assert_eq!(listing_base("https://bk.s3.amazonaws.com", "bk", true).1, "");
        assert_eq!(
            listing_base("http://bk:9000/bk/a/layer", "bk", false),
            ("http://bk:9000/bk".to_string(), "a/layer".to_string())
        );
        assert_eq!(
            listing_base("https://h/s3/bkx/bk/layer", "bk", false),
            ("https://h/s3/bkx/bk".to_string(), "layer".to_string()),
            "the bucket is a whole segment"
        );
        assert_eq!(listing_base("http://h/bk", "bk", false), ("http://h/bk".to_string(), String::new()));
        let mut s = S3Signer {
            credentials: None,
            region: RwLock::new(DEFAULT_REGION.into()),
            region_fixed: false,
            bucket: "bk".into(),
            source: "test".into(),
            acl: "private",
            checksum: true,
            key_cache: Mutex::new(None),
            list_url: "http://h:9000/bk".into(),
            layer: "a/my layer".into(),
        };
        let t = s.list_target("", "8_8_40", 1, None).unwrap();
        assert_eq!(
            (t.method, t.url.as_str()),
            ("GET", "http://h:9000/bk?list-type=2&prefix=a%2Fmy%20layer%2F8_8_40&max-keys=1")
        );
        let t = s.list_target("", "", 1000, Some("tok/+=")).unwrap();
        assert_eq!(
            t.url,
            "http://h:9000/bk?list-type=2&prefix=a%2Fmy%20layer%2F&max-keys=1000&continuation-token=tok%2F%2B%3D"
        );
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
            <Name>bk</Name><Prefix>a/my layer/8</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>\
            <IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>\
            <Contents><Key>a/my layer/8_8_40/</Key><Size>0</Size></Contents>\
            <Contents><Key>a/my layer/8_8_40/a&amp;b &lt;1&gt; &#x41;&#66; </Key><Size>3</Size></Contents></ListBucketResult>";
        let page = s.list_page("u", body).unwrap();
        assert_eq!(page.names, ["8_8_40/", "8_8_40/a&b <1> AB "]);
        assert_eq!(page.next.as_deref(), Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="));
        let empty = "<ListBucketResult><Name>bk</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>";
        assert_eq!(s.list_page("u", empty).unwrap(), ListPage::default());
        let e = s.list_page("http://h/bk?list-type=2", "<html>hello</html>").unwrap_err();
        assert!(e.kind() == crate::ErrorKind::Decode && e.message().contains("ListBucketResult"), "{e}");
        s.layer = String::new();
        assert!(s.list_target("", "8_8_40", 1, None).unwrap().url.ends_with("?list-type=2&prefix=8_8_40&max-keys=1"));
        assert_eq!(xml_unescape("a &amp bad; &#xZZ; &unknown; &amp;&#38;"), "a &amp bad; &#xZZ; &unknown; &&");
    }

    #[test]
    fn aws_addressing() {
        assert_eq!(aws_base("my-bucket", "/a/b", None), "https://my-bucket.s3.amazonaws.com/a/b");
        assert_eq!(aws_base("my-bucket", "", Some("us-west-2")), "https://my-bucket.s3.us-west-2.amazonaws.com");
        assert_eq!(aws_base("my.bucket", "/a", Some("us-east-1")), "https://s3.amazonaws.com/my.bucket/a");
        assert_eq!(aws_base("My_Bucket", "/a", Some("eu-west-1")), "https://s3.eu-west-1.amazonaws.com/My_Bucket/a");
    }

    #[test]
    fn secrets_need_both_halves_and_never_show_them() {
        let m: Map<String, Value> = serde_json::from_str(r#"{"AWS_ACCESS_KEY_ID":"AKIDX","AWS_SECRET_ACCESS_KEY":"hunter2hunter2","AWS_DEFAULT_REGION":"eu-west-1"}"#).unwrap();
        let f = from_secret(&m, "src").unwrap();
        assert_eq!(f.region.as_deref(), Some("eu-west-1"));
        let d = format!("{f:?}");
        assert!(!d.contains("AKIDX") && !d.contains("hunter2"), "{d}");
        let m: Map<String, Value> = serde_json::from_str(r#"{"AWS_SECRET_ACCESS_KEY":"hunter2hunter2"}"#).unwrap();
        let e = from_secret(&m, "secret file /s/aws-secret.json").unwrap_err();
        assert!(e.message().contains("aws-secret.json") && !e.message().contains("hunter2"), "{e}");
        let m: Map<String, Value> =
            serde_json::from_str(r#"{"AWS_ACCESS_KEY_ID":5,"AWS_SECRET_ACCESS_KEY":"hunter2hunter2"}"#).unwrap();
        assert!(from_secret(&m, "s").is_err());
        let f = from_secret(&Map::new(), "s").unwrap();
        assert!(f.credentials.is_none());
    }
}
