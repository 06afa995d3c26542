//! OAuth2 access tokens for Google Cloud Storage: an explicit token (the `gs_token` option), or a
//! service account's key exchanged for short-lived tokens (RFC 7523 JWT bearer grant, as
//! google-auth does it: an RS256-signed JWT posted to the key file's `token_uri`).
//!
//! A [`TokenSource`] is shared by every thread of a handle. It keeps one token; a token close to
//! its expiry is refreshed by one thread while the others go on with the still-valid one, and a
//! missing or expired token makes the other threads wait for that one refresh instead of each
//! asking for its own. A token the server refused (HTTP 401) is dropped once and asked again.
//!
//! Secrets (the private key, tokens) never enter error messages or `Debug` output.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::store::retry::Attempt;

/// Where Google's key files send token requests when they name none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The scope asked for: read and write objects (cloud-files asks for full control; objects
/// need no more than read_write).
pub const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// Lifetime asked for in the JWT (Google's maximum).
const JWT_LIFETIME_SECS: u64 = 3600;

/// One access token and when it stops being good.
pub struct Token {
    value: String,
    obtained: Instant,
    expires: Instant,
}

impl Token {
    /// A token with no known expiry (the `gs_token` option).
    pub fn fixed(value: String) -> Token {
        let now = Instant::now();
        // About 30 years: never refreshed by time.
        Token { value, obtained: now, expires: now + Duration::from_secs(1 << 30) }
    }

    /// The bearer value.
    pub fn secret(&self) -> &str {
        &self.value
    }

    fn lifetime(&self) -> Duration {
        self.expires.saturating_duration_since(self.obtained)
    }

    /// Due for a refresh: less than min(5 min, half its lifetime) left.
    fn stale(&self, now: Instant) -> bool {
        let margin = Duration::from_secs(300).min(self.lifetime() / 2);
        now + margin >= self.expires
    }

    /// Too close to its expiry to send: less than min(10 s, a tenth of its lifetime) left.
    fn expired(&self, now: Instant) -> bool {
        let margin = Duration::from_secs(10).min(self.lifetime() / 10);
        now + margin >= self.expires
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("expires_in", &self.expires.saturating_duration_since(Instant::now()))
            .finish()
    }
}

/// A service account's key, parsed from its JSON key file.
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key_id: Option<String>,
    pub token_uri: String,
    key: RsaKeyPair,
    /// Where the key came from ("secret file /path", "option \"secrets\""), for messages.
    pub source: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("source", &self.source)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// The DER bytes inside a PEM block, with the block's label ("PRIVATE KEY", "RSA PRIVATE KEY").
fn pem_der(pem: &str) -> Option<(String, Vec<u8>)> {
    let begin = pem.find("-----BEGIN ")?;
    let rest = &pem[begin + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + 5..];
    let end = body.find("-----END ")?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(b64.as_bytes()).ok()?;
    Some((label, der))
}

impl ServiceAccount {
    /// Parse a service-account key (the JSON Google hands out). Messages name `source` and the
    /// member at fault, never a value.
    ///
    /// # Errors
    /// `Auth` for a key of another type, missing members, or a private key that is not an RSA
    /// key in PEM (PKCS#8 or PKCS#1).
    pub fn from_json(m: &Map<String, Value>, source: &str) -> Result<ServiceAccount, Error> {
        let bad = |what: &str| Error::auth(format!("Google credentials from {source}: {what}"));
        match m.get("type").and_then(Value::as_str) {
            None | Some("service_account") => {}
            Some(other) => {
                return Err(bad(&format!(
                "credentials of type \"{other}\" are not supported (use a service account key, or the gs_token option)"
            )))
            }
        }
        let text = |k: &str| m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let client_email = text("client_email").ok_or_else(|| bad("no \"client_email\""))?.to_string();
        let pem = text("private_key").ok_or_else(|| bad("no \"private_key\""))?;
        let (label, der) = pem_der(pem).ok_or_else(|| bad("\"private_key\" is not a PEM block"))?;
        let key = match label.as_str() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            _ => {
                return Err(bad(
                    "\"private_key\" is not an RSA private key (PEM \"PRIVATE KEY\" or \"RSA PRIVATE KEY\")",
                ))
            }
        }
        .map_err(|e| bad(&format!("\"private_key\" is not a usable RSA key ({e})")))?;
        let token_uri = text("token_uri").unwrap_or(DEFAULT_TOKEN_URI).to_string();
        if !(token_uri.starts_with("https://") || token_uri.starts_with("http://")) {
            return Err(bad("\"token_uri\" is not an http(s) URL"));
        }
        Ok(ServiceAccount {
            client_email,
            private_key_id: text("private_key_id").map(str::to_string),
            token_uri,
            key,
            source: source.to_string(),
        })
    }

    /// The signed JWT asking for `scope`, issued at `iat` (seconds since the epoch).
    ///
    /// # Errors
    /// `Auth` if signing fails (it does not for a key ring accepted).
    pub fn assertion(&self, scope: &str, iat: u64) -> Result<String, Error> {
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = Value::String(kid.clone());
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + JWT_LIFETIME_SECS,
        });
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut sig).map_err(|_| {
            Error::auth(format!("Google credentials from {}: signing the token request failed", self.source))
        })?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// `application/x-www-form-urlencoded` escaping.
fn form_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Where tokens come from.
#[derive(Debug)]
enum Grant {
    /// The `gs_token` option: one token, never refreshed.
    Fixed(Arc<Token>),
    ServiceAccount(Box<ServiceAccount>),
}

/// A shared, refreshed access token.
pub struct TokenSource {
    grant: Grant,
    /// For messages: what the token is for ("gs://bucket").
    what: String,
    agent: ureq::Agent,
    current: RwLock<Option<Arc<Token>>>,
    /// Held by the one thread asking the token endpoint.
    refreshing: Mutex<()>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource").field("for", &self.what).field("grant", &self.grant).finish_non_exhaustive()
    }
}

fn now_epoch_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A short, single-line excerpt of a server's error answer (OAuth2 `error` and
/// `error_description`, or the start of the body), with `hide` (a secret) removed.
pub(super) fn excerpt(body: &str, hide: &[&str]) -> String {
    let text = match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let (e, d) = (s("error"), s("error_description"));
            match (e.is_empty(), d.is_empty()) {
                (false, false) => format!("{e}: {d}"),
                (false, true) => e,
                _ => v.pointer("/error/message").and_then(Value::as_str).unwrap_or(body).to_string(),
            }
        }
        Err(_) => body.to_string(),
    };
    let mut t: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect();
    for h in hide {
        if h.len() >= 8 {
            t = t.replace(h, "<redacted>");
        }
    }
    t.trim().to_string()
}

impl TokenSource {
    /// A source handing out the fixed token `value`.
    pub fn fixed(value: String, what: &str, agent: ureq::Agent) -> TokenSource {
        let t = Arc::new(Token::fixed(value));
        TokenSource {
            grant: Grant::Fixed(t.clone()),
            what: what.to_string(),
            agent,
            current: RwLock::new(Some(t)),
            refreshing: Mutex::new(()),
        }
    }

    /// A source exchanging `account`'s key for tokens.
    pub fn service_account(account: ServiceAccount, what: &str, agent: ureq::Agent) -> TokenSource {
        TokenSource {
            grant: Grant::ServiceAccount(Box::new(account)),
            what: what.to_string(),
            agent,
            current: RwLock::new(None),
            refreshing: Mutex::new(()),
        }
    }

    /// Whether a refused token can be replaced by asking again.
    pub fn refreshable(&self) -> bool {
        matches!(self.grant, Grant::ServiceAccount(_))
    }

    /// Where the credentials came from, for messages.
    pub fn describe(&self) -> String {
        match &self.grant {
            Grant::Fixed(_) => "the gs_token option".to_string(),
            Grant::ServiceAccount(a) => format!("service account {} ({})", a.client_email, a.source),
        }
    }

    fn cached(&self) -> Option<Arc<Token>> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A token good to send now.
    ///
    /// # Errors
    /// A refused token request (`Auth`, not retryable), or an unreachable or failing token
    /// endpoint (`Io`, retryable).
    pub fn token(&self) -> Attempt<Arc<Token>> {
        let grant = match &self.grant {
            Grant::Fixed(t) => return Ok(t.clone()),
            Grant::ServiceAccount(a) => a,
        };
        let now = Instant::now();
        if let Some(t) = self.cached() {
            if !t.stale(now) {
                return Ok(t);
            }
            if !t.expired(now) {
                // Due for a refresh but still good: one thread refreshes, the others go on.
                let Ok(_guard) = self.refreshing.try_lock() else { return Ok(t) };
                if let Some(fresh) = self.cached().filter(|c| !c.stale(Instant::now())) {
                    return Ok(fresh);
                }
                return Ok(self.fetch(grant).unwrap_or(t));
            }
        }
        // No usable token: wait for the thread refreshing, or refresh.
        let _guard = self.refreshing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = self.cached().filter(|c| !c.stale(Instant::now())) {
            return Ok(t);
        }
        match self.fetch(grant) {
            Ok(t) => Ok(t),
            // A failed refresh of a token not yet expired: keep using it.
            Err(e) => match self.cached().filter(|c| !c.expired(Instant::now())) {
                Some(t) => Ok(t),
                None => Err(e),
            },
        }
    }

    /// Forget `token` after the server refused it, so the next [`TokenSource::token`] asks
    /// for a new one (unless another thread already has).
    pub fn invalidate(&self, token: &Arc<Token>) {
        let mut w = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.as_ref().is_some_and(|c| Arc::ptr_eq(c, token)) {
            *w = None;
        }
    }

    /// Forget the current token if it was obtained at or before `t`: a request signed at `t`
    /// carried it and was refused; a token obtained since is a newer one and stays.
    pub fn invalidate_obtained_by(&self, t: Instant) {
        let mut w = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.as_ref().is_some_and(|c| c.obtained <= t) {
            *w = None;
        }
    }

    /// Ask the token endpoint (with the refresh lock held) and keep the answer.
    fn fetch(&self, account: &ServiceAccount) -> Attempt<Arc<Token>> {
        let uri = &account.token_uri;
        let who = format!(
            "{}: token request to {uri} for service account {} ({})",
            self.what, account.client_email, account.source
        );
        let assertion = account.assertion(SCOPE, now_epoch_secs()).map_err(|e| (false, e))?;
        let body = format!(
            "grant_type={}&assertion={}",
            form_escape("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            form_escape(&assertion)
        );
        let asked = Instant::now();
        let resp = match self
            .agent
            .post(uri)
            .set("Content-Type", "application/x-www-form-urlencoded")
            .set("Accept", "application/json")
            .send_string(&body)
        {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                let why = excerpt(&text, &[&assertion]);
                let retry = matches!(code, 408 | 429 | 500..=599);
                let e =
                    format!("{who}: HTTP {code}{}", if why.is_empty() { String::new() } else { format!(" ({why})") });
                return Err((
                    retry,
                    if retry { Error::io(e) } else { Error::auth(format!("{e}: credentials refused")) },
                ));
            }
            Err(ureq::Error::Transport(t)) => {
                return Err((true, Error::io(format!("{who}: {}", crate::store::http::transport_text(&t)))))
            }
        };
        let text =
            resp.into_string().map_err(|e| (true, Error::io(format!("{who}: reading the answer failed: {e}"))))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|_| (true, Error::io(format!("{who}: the answer is not JSON"))))?;
        let value = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| (false, Error::auth(format!("{who}: the answer holds no usable access_token"))))?
            .to_string();
        let secs = match v.get("expires_in") {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(3600.0)
        .min(86_400.0);
        // Lifetime counted from when the request left, so a slow answer errs on the safe side.
        let t = Arc::new(Token { value, obtained: asked, expires: asked + Duration::from_secs_f64(secs) });
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(t.clone());
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_freshness_margins() {
        let now = Instant::now();
        let t = Token { value: "x".into(), obtained: now, expires: now + Duration::from_secs(3600) };
        assert!(!t.stale(now) && !t.expired(now));
        assert!(t.stale(now + Duration::from_secs(3301)));
        assert!(!t.expired(now + Duration::from_secs(3580)));
        assert!(t.expired(now + Duration::from_secs(3591)));
        let short = Token { value: "x".into(), obtained: now, expires: now + Duration::from_secs(2) };
        assert!(!short.stale(now + Duration::from_millis(900)));
        assert!(short.stale(now + Duration::from_millis(1100)));
        assert!(!short.expired(now + Duration::from_millis(1700)));
        assert!(short.expired(now + Duration::from_millis(1900)));
        let d = format!("{:?}", Token::fixed("ya29.secretsecret".into()));
        assert!(!d.contains("ya29"), "{d}");
    }

    #[test]
    fn bad_keys_name_the_member_not_the_value() {
        let mut m = Map::new();
        m.insert("type".into(), json!("service_account"));
        m.insert("client_email".into(), json!("a@b.iam.gserviceaccount.com"));
        m.insert(
            "private_key".into(),
            json!("-----BEGIN PRIVATE KEY-----\nc2VjcmV0c2VjcmV0c2VjcmV0\n-----END PRIVATE KEY-----\n"),
        );
        let e = ServiceAccount::from_json(&m, "secret file /x/google-secret.json").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Auth);
        assert!(e.message().contains("private_key") && e.message().contains("/x/google-secret.json"), "{e}");
        assert!(!e.message().contains("c2VjcmV0"), "{e}");
        m.insert("type".into(), json!("authorized_user"));
        let e = ServiceAccount::from_json(&m, "option").unwrap_err();
        assert!(e.message().contains("authorized_user"), "{e}");
        m.insert("type".into(), json!("service_account"));
        m.remove("client_email");
        assert!(ServiceAccount::from_json(&m, "option").unwrap_err().message().contains("client_email"));
    }

    #[test]
    fn excerpts_hide_secrets_and_control_characters() {
        let body = r#"{"error":"invalid_grant","error_description":"bad jwt eyJhbGciOiJSUzI1NiJ9.x\nmore"}"#;
        let e = excerpt(body, &["eyJhbGciOiJSUzI1NiJ9.x"]);
        assert_eq!(e, "invalid_grant: bad jwt <redacted> more");
        assert_eq!(form_escape("a b/c+d=e&"), "a%20b%2Fc%2Bd%3De%26");
    }
}
