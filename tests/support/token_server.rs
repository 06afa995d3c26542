//! Loopback stand-ins for Google's OAuth2 side, std + ring only:
//!
//! - [`TokenServer`]: a token endpoint (`POST /token`, RFC 7523 JWT bearer grant) that verifies
//!   the assertion's RS256 signature with the service account's public key, checks its header
//!   (`alg`, `typ`, `kid`) and claims (`iss` among the accepted accounts, `aud` = its own URL,
//!   a devstorage `scope`, `iat`/`exp` current and at most an hour apart) and hands out tokens
//!   that live `lifetime` (short in tests, so expiry and refresh happen). It counts requests and
//!   remembers every issued token, with the account it went to, until it expires.
//! - [`AuthProxy`]: an HTTP proxy in front of fake-gcs-server (which ignores `Authorization`)
//!   that answers 401 to a request whose bearer token the validator refuses, can answer 403 to
//!   everything, and can flip one byte of whole-object bodies while keeping their headers
//!   (`x-goog-hash` included), to test checksums, and can answer 503 to the next n requests.
//!   It logs every request.
//! - [`generate_key_pem`]: a fresh RSA key (PKCS#8 PEM) from `openssl`, else from Python's
//!   `cryptography` in `target/venv`; no key is ever committed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::signature::{RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde_json::Value;

// ------------------------------------------------------------------------------------------------
// Keys

/// A fresh 2048-bit RSA private key as PKCS#8 PEM (`BEGIN PRIVATE KEY`), or None when neither
/// openssl nor Python's cryptography is available.
pub fn generate_key_pem(dir: &Path) -> Option<String> {
    std::fs::create_dir_all(dir).ok()?;
    let out =
        dir.join(format!("key-{}.pem", std::process::id() as u64 * 1000 + COUNTER.fetch_add(1, Ordering::SeqCst)));
    let ok = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&out)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let py = super::env::venv_python();
        let script = "import sys\nfrom cryptography.hazmat.primitives.asymmetric import rsa\n\
            from cryptography.hazmat.primitives import serialization as s\n\
            k = rsa.generate_private_key(public_exponent=65537, key_size=2048)\n\
            open(sys.argv[1], 'wb').write(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))\n";
        let ok = Command::new(py).arg("-c").arg(script).arg(&out).status().is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
    }
    let pem = std::fs::read_to_string(&out).ok();
    let _ = std::fs::remove_file(&out);
    pem
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The DER of a PEM block.
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().join("");
    STANDARD.decode(b64.trim()).expect("PEM body is base64")
}

/// The RSAPublicKey DER of a PKCS#8 private key PEM (what ring verifies with).
pub fn public_key_der(pem: &str) -> Vec<u8> {
    let kp = RsaKeyPair::from_pkcs8(&pem_to_der(pem)).expect("ring accepts the generated key");
    kp.public().as_ref().to_vec()
}

/// A service-account key file's JSON for `email`, signing with `pem`, sending token requests
/// to `token_uri`.
pub fn service_account_json(email: &str, key_id: &str, pem: &str, token_uri: &str) -> Value {
    serde_json::json!({
        "type": "service_account",
        "project_id": "cv-test",
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": email,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
}

// ------------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 server: one request per connection.

pub struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Request { method, target, headers, body })
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// For HEAD: the Content-Length to announce without a body.
    pub head_length: Option<String>,
}

impl Response {
    pub fn json(status: u16, v: &Value) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
            head_length: None,
        }
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        412 => "Precondition Failed",
        _ => "Status",
    }
}

fn write_response(mut stream: &TcpStream, resp: &Response) {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match &resp.head_length {
        Some(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        None => head.push_str(&format!("Content-Length: {}\r\n", resp.body.len())),
    }
    head.push_str("Connection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
    if resp.head_length.is_none() {
        let _ = stream.write_all(&resp.body);
    }
    let _ = stream.flush();
}

/// A listener on a free loopback port answering each connection's one request with `handle`,
/// until `stop` is set (then one more connection wakes it).
fn serve(handle: Arc<dyn Fn(Request) -> Response + Send + Sync>, stop: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for conn in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = conn else { continue };
            let handle = handle.clone();
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                if let Some(req) = read_request(&stream) {
                    let resp = handle(req);
                    write_response(&stream, &resp);
                }
                let _ = stream.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

fn stop_listener(stop: &AtomicBool, port: u16) {
    stop.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect(("127.0.0.1", port));
}

fn form_decode(s: &str) -> HashMap<String, String> {
    let dec = |t: &str| -> String {
        let b = t.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    out.push(
                        u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00"), 16).unwrap_or(0),
                    );
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    s.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (dec(k), dec(v))).collect()
}

// ------------------------------------------------------------------------------------------------
// The token endpoint

/// An account the token server accepts: its email, key id and public key.
#[derive(Clone)]
pub struct Account {
    pub email: String,
    pub key_id: String,
    pub public_key: Vec<u8>,
}

struct TokenState {
    accounts: Mutex<Vec<Account>>,
    audience: Mutex<String>,
    lifetime: Mutex<Duration>,
    /// token -> (account email, expiry)
    issued: Mutex<HashMap<String, (String, Instant)>>,
    requests: AtomicU64,
    refused: AtomicU64,
    /// The `iss` of every request, in order (refused ones too).
    issuers: Mutex<Vec<String>>,
    /// Why requests were refused, in order.
    refusals: Mutex<Vec<String>>,
    counter: AtomicU64,
}

pub struct TokenServer {
    port: u16,
    state: Arc<TokenState>,
    stop: Arc<AtomicBool>,
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

impl TokenState {
    fn check(&self, req: &Request) -> Result<(String, String), String> {
        if req.method != "POST" || req.target.split('?').next() != Some("/token") {
            return Err(format!("unexpected {} {}", req.method, req.target));
        }
        if !req.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
            return Err("not a form".into());
        }
        let form = form_decode(std::str::from_utf8(&req.body).map_err(|_| "body not UTF-8")?);
        if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            return Err(format!("grant_type {:?}", form.get("grant_type")));
        }
        let jwt = form.get("assertion").ok_or("no assertion")?;
        let parts: Vec<&str> = jwt.split('.').collect();
        if parts.len() != 3 {
            return Err("assertion is not a JWS".into());
        }
        let json = |p: &str| -> Result<Value, String> {
            let raw = URL_SAFE_NO_PAD.decode(p).map_err(|_| "not base64url".to_string())?;
            serde_json::from_slice(&raw).map_err(|_| "not JSON".to_string())
        };
        let header = json(parts[0])?;
        let claims = json(parts[1])?;
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).map_err(|_| "signature not base64url")?;
        let iss = claims["iss"].as_str().unwrap_or("").to_string();
        self.issuers.lock().unwrap().push(iss.clone());
        if header["alg"] != "RS256" || header["typ"] != "JWT" {
            return Err(format!("header {header}"));
        }
        let account = self
            .accounts
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.email == iss)
            .cloned()
            .ok_or_else(|| format!("unknown issuer {iss}"))?;
        if header["kid"] != account.key_id.as_str() {
            return Err(format!("kid {}", header["kid"]));
        }
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &account.public_key)
            .verify(signed.as_bytes(), &sig)
            .map_err(|_| "Invalid JWT Signature.".to_string())?;
        let aud = self.audience.lock().unwrap().clone();
        if claims["aud"] != aud.as_str() {
            return Err(format!("aud {} != {aud}", claims["aud"]));
        }
        let scope = claims["scope"].as_str().unwrap_or("");
        if !scope.split(' ').any(|s| s.starts_with("https://www.googleapis.com/auth/devstorage.")) {
            return Err(format!("scope {scope}"));
        }
        let (iat, exp) = (claims["iat"].as_i64().ok_or("no iat")?, claims["exp"].as_i64().ok_or("no exp")?);
        let now = now_secs();
        if exp <= now || iat > now + 60 || exp - iat > 3600 || exp <= iat {
            return Err(format!("iat {iat} exp {exp} now {now}"));
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let token = format!("ya29.test-{n}-{:x}", now_nanos());
        Ok((token, account.email))
    }

    fn handle(&self, req: Request) -> Response {
        self.requests.fetch_add(1, Ordering::SeqCst);
        match self.check(&req) {
            Ok((token, email)) => {
                let life = *self.lifetime.lock().unwrap();
                self.issued.lock().unwrap().insert(token.clone(), (email, Instant::now() + life));
                Response::json(
                    200,
                    &serde_json::json!({
                        "access_token": token,
                        "expires_in": life.as_secs_f64().ceil() as u64,
                        "token_type": "Bearer",
                    }),
                )
            }
            Err(why) => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                self.refusals.lock().unwrap().push(why.clone());
                Response::json(400, &serde_json::json!({"error": "invalid_grant", "error_description": why}))
            }
        }
    }
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

impl TokenServer {
    /// A token endpoint accepting `accounts`, issuing tokens that live `lifetime` (whole
    /// seconds announced as `expires_in`).
    pub fn start(accounts: Vec<Account>, lifetime: Duration) -> TokenServer {
        let state = Arc::new(TokenState {
            accounts: Mutex::new(accounts),
            audience: Mutex::new(String::new()),
            lifetime: Mutex::new(lifetime),
            issued: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            issuers: Mutex::new(Vec::new()),
            refusals: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let s = state.clone();
        let port = serve(Arc::new(move |req| s.handle(req)), stop.clone());
        *state.audience.lock().unwrap() = format!("http://127.0.0.1:{port}/token");
        TokenServer { port, state, stop }
    }

    /// The `token_uri` for key files (also the `aud` the JWT must carry).
    pub fn token_uri(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }

    pub fn refusals(&self) -> Vec<String> {
        self.state.refusals.lock().unwrap().clone()
    }

    /// The `iss` of every token request so far.
    pub fn issuers(&self) -> Vec<String> {
        self.state.issuers.lock().unwrap().clone()
    }

    pub fn set_lifetime(&self, d: Duration) {
        *self.state.lifetime.lock().unwrap() = d;
    }

    /// Whether `token` was issued here and has not expired.
    pub fn valid(&self, token: &str) -> bool {
        self.state.issued.lock().unwrap().get(token).is_some_and(|(_, exp)| Instant::now() < *exp)
    }

    /// Forget every issued token (as if they were revoked).
    pub fn revoke_all(&self) {
        self.state.issued.lock().unwrap().clear();
    }

    /// A validator for [`AuthProxy`]: tokens issued here and still live.
    pub fn validator(&self) -> Validator {
        let s = self.state.clone();
        Arc::new(move |t: &str| s.issued.lock().unwrap().get(t).is_some_and(|(_, exp)| Instant::now() < *exp))
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        stop_listener(&self.stop, self.port);
    }
}

// ------------------------------------------------------------------------------------------------
// The checking proxy

/// Says whether a bearer token is good.
pub type Validator = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub bearer: Option<String>,
    pub status: u16,
}

struct ProxyState {
    upstream: String,
    agent: ureq::Agent,
    validator: Mutex<Option<Validator>>,
    forbid: AtomicBool,
    /// Answer 503 to this many of the next requests.
    fail_next: AtomicU64,
    /// Flip a byte of whole-object (200) GET bodies whose target contains this.
    corrupt: Mutex<Option<String>>,
    log: Mutex<Vec<Seen>>,
}

pub struct AuthProxy {
    port: u16,
    state: Arc<ProxyState>,
    stop: Arc<AtomicBool>,
}

impl ProxyState {
    fn handle(&self, req: Request) -> Response {
        let bearer = req.header("authorization").and_then(|a| a.strip_prefix("Bearer ")).map(str::to_string);
        let reply = |status: u16, resp: Response, log: &Mutex<Vec<Seen>>| {
            log.lock().unwrap().push(Seen {
                method: req.method.clone(),
                target: req.target.clone(),
                bearer: bearer.clone(),
                status,
            });
            resp
        };
        if self.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            let body = serde_json::json!({"error": {"code": 503, "message": "Service Unavailable"}});
            return reply(503, Response::json(503, &body), &self.log);
        }
        if self.forbid.load(Ordering::SeqCst) {
            let body = serde_json::json!({"error": {"code": 403, "message": "caller does not have storage.objects.get access"}});
            return reply(403, Response::json(403, &body), &self.log);
        }
        if let Some(v) = self.validator.lock().unwrap().clone() {
            if !bearer.as_deref().is_some_and(|t| v(t)) {
                let body = serde_json::json!({"error": {"code": 401, "message": "Invalid Credentials"}});
                return reply(401, Response::json(401, &body), &self.log);
            }
        }
        let url = format!("{}{}", self.upstream, req.target);
        let mut r = self.agent.request(&req.method, &url);
        for (k, v) in &req.headers {
            if !matches!(k.as_str(), "host" | "content-length" | "connection" | "transfer-encoding") {
                r = r.set(k, v);
            }
        }
        let result = if req.body.is_empty() && req.method != "POST" && req.method != "PUT" {
            r.call()
        } else {
            r.send_bytes(&req.body)
        };
        let resp = match result {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
            Err(ureq::Error::Transport(t)) => {
                return reply(502, Response::json(502, &serde_json::json!({"error": t.to_string()})), &self.log)
            }
        };
        let status = resp.status();
        let mut headers = Vec::new();
        let mut length = None;
        for name in resp.headers_names() {
            for v in resp.all(&name) {
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = Some(v.to_string()),
                    "connection" | "transfer-encoding" => {}
                    _ => headers.push((name.clone(), v.to_string())),
                }
            }
        }
        let mut body = Vec::new();
        let _ = resp.into_reader().read_to_end(&mut body);
        if req.method == "GET" && status == 200 && !body.is_empty() {
            if let Some(pat) = self.corrupt.lock().unwrap().as_deref() {
                if req.target.contains(pat) {
                    let i = body.len() / 2;
                    body[i] ^= 0x20;
                }
            }
        }
        let head_length = (req.method == "HEAD").then(|| length.unwrap_or_else(|| "0".into()));
        reply(status, Response { status, headers, body, head_length }, &self.log)
    }
}

impl AuthProxy {
    /// A proxy forwarding to `upstream` (`http://127.0.0.1:PORT`), checking bearer tokens with
    /// `validator` when given.
    pub fn start(upstream: &str, validator: Option<Validator>) -> AuthProxy {
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(30)).build(),
            validator: Mutex::new(validator),
            forbid: AtomicBool::new(false),
            fail_next: AtomicU64::new(0),
            corrupt: Mutex::new(None),
            log: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let s = state.clone();
        let port = serve(Arc::new(move |req| s.handle(req)), stop.clone());
        AuthProxy { port, state, stop }
    }

    /// `http://127.0.0.1:PORT`: the `gs_endpoint` to use.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_validator(&self, v: Option<Validator>) {
        *self.state.validator.lock().unwrap() = v;
    }

    /// Answer 403 to every request.
    pub fn set_forbid(&self, on: bool) {
        self.state.forbid.store(on, Ordering::SeqCst);
    }

    /// Answer 503 to the next `n` requests.
    pub fn fail_next(&self, n: u64) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// Flip a byte in the middle of whole-object GET bodies whose path contains `pattern`.
    pub fn set_corrupt(&self, pattern: Option<&str>) {
        *self.state.corrupt.lock().unwrap() = pattern.map(str::to_string);
    }

    pub fn log(&self) -> Vec<Seen> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }
}

impl Drop for AuthProxy {
    fn drop(&mut self) {
        stop_listener(&self.stop, self.port);
    }
}
