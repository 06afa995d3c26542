//! A loopback HTTP/1.1 static-file server for tests that COUNTS and LOGS requests and honours
//! single byte ranges, std only. (tests/support/httpd.rs serves whole files only.)
//!
//! Include it with
//! ```ignore
//! #[path = "support/range_httpd.rs"]
//! mod range_httpd;
//! ```
//!
//! - `GET` and `HEAD`; keep-alive (HTTP/1.1 default, `Connection: close` honoured);
//! - `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` answer `206 Partial Content` with
//!   `Content-Range`; a range starting at or past the end answers `416` (as GCS, S3 and nginx do);
//!   a range ending past the end is cut at the end (the body is shorter than asked, as nginx
//!   does); several ranges in one header are answered with the whole file (`200`), which RFC 9110
//!   allows;
//! - [`Config::honor_range`] `false` makes it ignore `Range` altogether and answer `200` with the
//!   whole file (a server without range support);
//! - a missing file is `404`.
//!
//! Every request is counted before it is answered, so once a client has its response the
//! counter includes it. [`RangeServer::take_log`] returns (and clears) what was asked.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
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
    /// The request target (path), as sent.
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

pub struct RangeServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl RangeServer {
    /// Serve the directory `root` on `127.0.0.1:0`, honouring ranges.
    pub fn start(root: &Path) -> io::Result<RangeServer> {
        RangeServer::start_with(root, Config::default())
    }

    pub fn start_with(root: &Path, cfg: Config) -> io::Result<RangeServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let root = root.to_path_buf();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let conns: Arc<Mutex<HashMap<u64, TcpStream>>> = Arc::default();
        let acceptor = {
            let (stop, shared, conns) = (stop.clone(), shared.clone(), conns.clone());
            thread::Builder::new()
                .name("range-httpd-accept".into())
                .spawn(move || {
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
                            conns
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(id, c);
                        }
                        let (root, shared, registry) =
                            (root.clone(), shared.clone(), conns.clone());
                        let _ = thread::Builder::new()
                            .name(format!("range-httpd-{id}"))
                            .spawn(move || {
                                let _ = serve(s, &root, &shared, cfg);
                                registry
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .remove(&id);
                            });
                    }
                })?
        };
        Ok(RangeServer {
            addr,
            stop,
            shared,
            conns,
            acceptor: Some(acceptor),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests answered so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The requests logged since the last call, in the order they were answered; clears the log.
    pub fn take_log(&self) -> Vec<Request> {
        std::mem::take(&mut *self.shared.log.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for RangeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        for (_, s) in self.conns.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Map a request target to a file under `root`, refusing `..` and anything odd.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or("");
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
        // Suffix: the last n bytes.
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
            continue;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let version = parts.next().unwrap_or("HTTP/1.0").to_string();
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
            if let Some((name, value)) = h.split_once(':') {
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
        }
        io::copy(&mut (&mut reader).take(body_len), &mut io::sink())?;

        let mut extra = String::new();
        let (status, reason, body): (u16, &str, Vec<u8>) = if method != "GET" && method != "HEAD" {
            extra.push_str("Allow: GET, HEAD\r\n");
            (405, "Method Not Allowed", b"method not allowed\n".to_vec())
        } else {
            match resolve(root, &target)
                .filter(|p| p.is_file())
                .and_then(|p| std::fs::read(p).ok())
            {
                None => (404, "Not Found", b"not found\n".to_vec()),
                Some(data) => {
                    let len = data.len() as u64;
                    match range
                        .as_deref()
                        .filter(|_| cfg.honor_range)
                        .map(|r| parse_range(r, len))
                    {
                        None | Some(Ok(None)) => (200, "OK", data),
                        Some(Ok(Some((a, b)))) => {
                            extra.push_str(&format!("Content-Range: bytes {a}-{b}/{len}\r\n"));
                            (
                                206,
                                "Partial Content",
                                data[a as usize..=b as usize].to_vec(),
                            )
                        }
                        Some(Err(())) => {
                            extra.push_str(&format!("Content-Range: bytes */{len}\r\n"));
                            (416, "Range Not Satisfiable", Vec::new())
                        }
                    }
                }
            }
        };
        let sent = if method == "HEAD" {
            0
        } else {
            body.len() as u64
        };
        // Count and log before answering: once the client has the answer, the count has it.
        shared.requests.fetch_add(1, Ordering::SeqCst);
        shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Request {
                method: method.clone(),
                path: target.clone(),
                range: range.clone(),
                status,
                bytes: sent,
            });
        let conn = if keep_alive { "keep-alive" } else { "close" };
        let accept = if cfg.honor_range {
            "Accept-Ranges: bytes\r\n"
        } else {
            ""
        };
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
