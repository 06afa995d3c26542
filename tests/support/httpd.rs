//! A loopback HTTP/1.1 static-file server for tests, std only, one thread per connection,
//! stopped on drop. It counts and logs every request.
//!
//! - `GET` and `HEAD` (anything else: `405`); keep-alive (the HTTP/1.1 default;
//!   `Connection: close` honoured); `Content-Length` on every answer; a request body is read and
//!   dropped;
//! - the target is percent-decoded and resolved below the root; `..` and other odd components
//!   answer `400`; a missing file `404`;
//! - a missing `name` whose `name.gz` (`.br`, `.zstd`) exists is served from it with
//!   `Content-Encoding: gzip` (`br`, `zstd`), which is how a bucket serves the files cloud-volume
//!   wrote compressed;
//! - byte ranges (`Accept-Ranges: bytes`): `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` answer
//!   `206 Partial Content` with `Content-Range` (of the stored bytes, encoded or not); a range
//!   starting at or past the end answers `416` (as GCS, S3 and nginx do); a range ending past the
//!   end is cut at the end (as nginx does); several ranges in one header get the whole file
//!   (`200`), which RFC 9110 allows. With [`Config::honor_range`] `false` the server ignores
//!   `Range` altogether and always sends the whole file (a server without range support).
//!
//! Every request is counted and logged before it is answered, so once a client has its
//! response, [`FileServer::requests`] and [`FileServer::take_log`] include it.
//!
//! [`http_get`] is a plain HTTP/1.0 client for checking servers by hand.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How the server behaves.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Answer `Range` requests with 206 (true) or ignore the header and send 200 (false).
    pub honor_range: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config { honor_range: true }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The request target, as sent.
    pub path: String,
    /// The `Range` header's value, if any.
    pub range: Option<String>,
    /// The status code answered.
    pub status: u16,
    /// Body bytes sent (0 for HEAD).
    pub bytes: u64,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if let Some(r) = &self.range {
            write!(f, " [{r}]")?;
        }
        write!(f, " -> {} ({} bytes)", self.status, self.bytes)
    }
}

#[derive(Default)]
struct Shared {
    requests: AtomicU64,
    log: Mutex<Vec<Request>>,
}

pub struct FileServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl FileServer {
    /// Serve the directory `root` on `127.0.0.1:0`, honouring ranges.
    pub fn start(root: &Path) -> io::Result<FileServer> {
        FileServer::start_with(root, Config::default())
    }

    pub fn start_with(root: &Path, cfg: Config) -> io::Result<FileServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        // std listens with a backlog of 128: a client opening hundreds of connections at once
        // would see SYNs dropped and retried a second later. Listening again raises it.
        // SAFETY: a valid listening socket's descriptor; listen() only changes its backlog.
        unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 1024) };
        let addr = listener.local_addr()?;
        let root = root.to_path_buf();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let conns: Arc<Mutex<HashMap<u64, TcpStream>>> = Arc::default();
        let acceptor = {
            let (stop, shared, conns) = (stop.clone(), shared.clone(), conns.clone());
            thread::Builder::new().name("httpd-accept".into()).spawn(move || {
                let mut next = 0u64;
                for s in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(s) = s else { continue };
                    let _ = s.set_nodelay(true);
                    next += 1;
                    let id = next;
                    if let Ok(c) = s.try_clone() {
                        lock(&conns).insert(id, c);
                    }
                    let (root, shared, registry) = (root.clone(), shared.clone(), conns.clone());
                    let _ = thread::Builder::new().name(format!("httpd-{id}")).spawn(move || {
                        let _ = serve(s, &root, &shared, cfg);
                        lock(&registry).remove(&id);
                    });
                }
            })?
        };
        Ok(FileServer { addr, stop, shared, conns, acceptor: Some(acceptor) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, for a proxy's upstream.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// The requests answered so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The requests logged since the last call, in the order they were answered; clears the log.
    pub fn take_log(&self) -> Vec<Request> {
        std::mem::take(&mut *lock(&self.shared.log))
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        for (_, s) in lock(&self.conns).drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A plain HTTP/1.0 GET of `path` from `addr` with `extra` header lines (each ending in CRLF):
/// the response's head, lower-cased, and its body.
pub fn http_get(addr: impl ToSocketAddrs, path: &str, extra: &str) -> io::Result<(String, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n{extra}\r\n")?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(resp.len());
    let body = resp.get(split + 4..).unwrap_or_default().to_vec();
    Ok((String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase(), body))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Map a request target to a file under `root`, refusing `..` and anything odd.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let path = percent_decode(path)?;
    let mut out = root.to_path_buf();
    for comp in Path::new(path.trim_start_matches('/')).components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn read_file(p: &Path) -> Option<Vec<u8>> {
    if p.is_file() {
        std::fs::read(p).ok()
    } else {
        None
    }
}

/// The bytes stored for `p` and the content encoding they carry: `p` itself, else the first of
/// `p.gz`, `p.br`, `p.zstd` that exists.
fn stored(p: &Path) -> Option<(Vec<u8>, Option<&'static str>)> {
    if let Some(b) = read_file(p) {
        return Some((b, None));
    }
    [(".gz", "gzip"), (".br", "br"), (".zstd", "zstd")].into_iter().find_map(|(suffix, encoding)| {
        let mut v = p.as_os_str().to_owned();
        v.push(suffix);
        read_file(Path::new(&v)).map(|b| (b, Some(encoding)))
    })
}

/// A single byte range of a `len`-byte object: Ok(Some((first, last_inclusive))), Ok(None) to
/// send the whole object, Err(()) for 416.
fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // A suffix: the last n bytes.
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || len == 0 {
            return Err(());
        }
        return Ok(Some((len.saturating_sub(n), len - 1)));
    }
    let Ok(first) = a.parse::<u64>() else {
        return Ok(None);
    };
    let last = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(l) if l >= first => l,
            _ => return Ok(None),
        }
    };
    if first >= len {
        return Err(());
    }
    Ok(Some((first, last.min(len - 1))))
}

/// The status, reason, extra header lines and body answering `method target` (with `range`).
fn answer(
    root: &Path,
    cfg: Config,
    method: &str,
    target: &str,
    range: Option<&str>,
) -> (u16, &'static str, String, Vec<u8>) {
    if method != "GET" && method != "HEAD" {
        return (405, "Method Not Allowed", "Allow: GET, HEAD\r\n".into(), b"method not allowed\n".to_vec());
    }
    let Some(path) = resolve(root, target) else {
        return (400, "Bad Request", String::new(), b"bad path\n".to_vec());
    };
    let Some((data, encoding)) = stored(&path) else {
        return (404, "Not Found", String::new(), b"not found\n".to_vec());
    };
    let mut extra = encoding.map(|e| format!("Content-Encoding: {e}\r\n")).unwrap_or_default();
    let len = data.len() as u64;
    match range.filter(|_| cfg.honor_range).map(|r| parse_range(r, len)) {
        None | Some(Ok(None)) => (200, "OK", extra, data),
        Some(Ok(Some((a, b)))) => {
            extra.push_str(&format!("Content-Range: bytes {a}-{b}/{len}\r\n"));
            (206, "Partial Content", extra, data[a as usize..=b as usize].to_vec())
        }
        Some(Err(())) => {
            extra.push_str(&format!("Content-Range: bytes */{len}\r\n"));
            (416, "Range Not Satisfiable", extra, Vec::new())
        }
    }
}

fn serve(stream: TcpStream, root: &Path, shared: &Shared, cfg: Config) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            continue; // a stray CRLF between requests
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let version = parts.next().unwrap_or("HTTP/1.0");
        let mut keep_alive = version == "HTTP/1.1";
        let mut body_len = 0u64;
        let mut range: Option<String> = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let Some((name, value)) = h.split_once(':') else { continue };
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("connection") {
                if value.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if value.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                body_len = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("range") {
                range = Some(value.to_string());
            }
        }
        io::copy(&mut (&mut reader).take(body_len), &mut io::sink())?;

        let (status, reason, extra, body) = answer(root, cfg, &method, &target, range.as_deref());
        let sent = if method == "HEAD" { 0 } else { body.len() as u64 };
        // Count and log before answering: once the client has the answer, the count has it.
        shared.requests.fetch_add(1, Ordering::SeqCst);
        lock(&shared.log).push(Request { method: method.clone(), path: target, range, status, bytes: sent });
        let conn = if keep_alive { "keep-alive" } else { "close" };
        let accept = if cfg.honor_range { "Accept-Ranges: bytes\r\n" } else { "" };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{accept}{extra}Connection: {conn}\r\n\r\n",
            body.len()
        );
        out.write_all(head.as_bytes())?;
        if method != "HEAD" {
            out.write_all(&body)?;
        }
        out.flush()?;
        if !keep_alive {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}
