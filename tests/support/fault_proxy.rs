//! A loopback HTTP/1.1 reverse proxy that injects faults, std only: the test double for the
//! failures large downloads meet (issue #5). Each request from a client is parsed, forwarded to
//! the upstream on a connection of its own, and its answer re-framed with `Content-Length` —
//! unless the next fault says otherwise:
//!
//! - [`Fault::Status`]: answer that status (503, 429, 500, ...) without asking upstream;
//! - [`Fault::Reset`]: drop the connection with a TCP reset, no answer;
//! - [`Fault::Stall`]: wait that long before answering (past the client's read timeout);
//! - [`Fault::Truncate`]: send the head with the full `Content-Length`, half the body, then close;
//! - [`Fault::Corrupt`]: flip one byte in the middle of the body (length and headers kept);
//! - [`Fault::Pass`]: forward as is.
//!
//! Faults come from a script (a queue consumed one per request) and, once it is empty, from a
//! seeded random rate of 503s (the benchmark's fault run). Requests and injected faults are
//! counted, and every request is logged (method, path, fault).

// Also included on its own by examples/ (`#[path]`), where the tree-wide allow of
// tests/support/mod.rs does not reach.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Status(u16),
    Reset,
    Stall(Duration),
    Truncate,
    Corrupt,
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Fault>>,
    /// 503s per million requests once the script is empty.
    rate_ppm: AtomicU64,
    rng: Mutex<u64>,
    /// Only requests whose path contains this are eligible for faults (None: all).
    only: Mutex<Option<String>>,
    requests: AtomicU64,
    injected: AtomicU64,
    log: Mutex<Vec<(String, String, Fault)>>,
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listen on `listen` (e.g. `127.0.0.1:0`) and forward to `upstream` (`host:port`).
    pub fn start_on(listen: &str, upstream: &str) -> io::Result<FaultProxy> {
        let upstream: SocketAddr = upstream
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no address for {upstream}")))?;
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { rng: Mutex::new(0x9e37_79b9_7f4a_7c15), ..Shared::default() });
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<HashMap<u64, TcpStream>>> = Arc::default();
        let acceptor = {
            let (shared, stop, conns) = (shared.clone(), stop.clone(), conns.clone());
            thread::Builder::new().name("fault-proxy".into()).spawn(move || {
                let mut next = 0u64;
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    next += 1;
                    let id = next;
                    if let Ok(c) = client.try_clone() {
                        conns.lock().unwrap_or_else(|p| p.into_inner()).insert(id, c);
                    }
                    let (shared, conns) = (shared.clone(), conns.clone());
                    let _ = thread::Builder::new().name(format!("fault-conn-{id}")).spawn(move || {
                        serve(client, upstream, &shared);
                        conns.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    });
                }
            })?
        };
        Ok(FaultProxy { addr, shared, stop, conns, acceptor: Some(acceptor) })
    }

    pub fn start(upstream: &str) -> io::Result<FaultProxy> {
        FaultProxy::start_on("127.0.0.1:0", upstream)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Append faults to the script (one per request, in order).
    pub fn script(&self, faults: &[Fault]) {
        self.shared.script.lock().unwrap_or_else(|p| p.into_inner()).extend(faults.iter().copied());
    }

    /// Faults still queued.
    pub fn pending(&self) -> usize {
        self.shared.script.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Answer this fraction of requests (after the script) with 503, drawn from a seeded RNG.
    pub fn set_503_rate(&self, rate: f64, seed: u64) {
        self.shared.rate_ppm.store((rate.clamp(0.0, 1.0) * 1e6) as u64, Ordering::SeqCst);
        *self.shared.rng.lock().unwrap_or_else(|p| p.into_inner()) = seed | 1;
    }

    /// Only requests whose path contains `needle` get faults (None: every request).
    pub fn only_paths_containing(&self, needle: Option<&str>) {
        *self.shared.only.lock().unwrap_or_else(|p| p.into_inner()) = needle.map(str::to_string);
    }

    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn injected(&self) -> u64 {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// (method, path, fault) of every request so far, cleared.
    pub fn take_log(&self) -> Vec<(String, String, Fault)> {
        std::mem::take(&mut *self.shared.log.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        for (_, c) in self.conns.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn next_fault(shared: &Shared, path: &str) -> Fault {
    if let Some(needle) = &*shared.only.lock().unwrap_or_else(|p| p.into_inner()) {
        if !path.contains(needle.as_str()) {
            return Fault::Pass;
        }
    }
    if let Some(f) = shared.script.lock().unwrap_or_else(|p| p.into_inner()).pop_front() {
        return f;
    }
    let ppm = shared.rate_ppm.load(Ordering::SeqCst);
    if ppm == 0 {
        return Fault::Pass;
    }
    let mut x = shared.rng.lock().unwrap_or_else(|p| p.into_inner());
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    if *x % 1_000_000 < ppm {
        Fault::Status(503)
    } else {
        Fault::Pass
    }
}

/// A parsed message head: the first line and the headers (names lower-cased).
struct Head {
    line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "head cut short"));
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok(Some(Head { line: line.trim_end().to_string(), headers }))
}

fn read_body(r: &mut impl BufRead, head: &Head, until_eof: bool) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if head.get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if n == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut t = String::new();
                    if r.read_line(&mut t)? == 0 || t.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + n, 0);
            r.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if let Some(n) = head.get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if until_eof {
        r.read_to_end(&mut body)?;
    }
    Ok(body)
}

fn write_answer(
    w: &mut impl Write,
    status_line: &str,
    headers: &[(String, String)],
    body: &[u8],
    content_length: usize,
) -> io::Result<()> {
    let mut out = format!("{status_line}\r\n");
    for (k, v) in headers {
        if k != "content-length" && k != "transfer-encoding" && k != "connection" {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str(&format!("content-length: {content_length}\r\n\r\n"));
    w.write_all(out.as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

fn serve(client: TcpStream, upstream: SocketAddr, shared: &Shared) {
    let Ok(mut w) = client.try_clone() else { return };
    let mut r = BufReader::new(client);
    while let Ok(Some(head)) = read_head(&mut r) {
        let Ok(body) = read_body(&mut r, &head, false) else { break };
        let mut parts = head.line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let fault = next_fault(shared, &path);
        if fault != Fault::Pass {
            shared.injected.fetch_add(1, Ordering::SeqCst);
        }
        shared.log.lock().unwrap_or_else(|p| p.into_inner()).push((method.clone(), path.clone(), fault));
        match fault {
            Fault::Status(code) => {
                let line = format!("HTTP/1.1 {code} Injected");
                if write_answer(&mut w, &line, &[], b"", 0).is_err() {
                    break;
                }
                continue;
            }
            Fault::Reset => {
                // SO_LINGER 0: close with RST.
                let fd = std::os::unix::io::AsRawFd::as_raw_fd(&w);
                let lg = libc::linger { l_onoff: 1, l_linger: 0 };
                // SAFETY: a valid socket and a correctly sized option value.
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        (&lg as *const libc::linger).cast(),
                        std::mem::size_of::<libc::linger>() as u32,
                    );
                }
                drop(w);
                return;
            }
            Fault::Stall(d) => thread::sleep(d),
            _ => {}
        }
        // Forward on a fresh upstream connection and read the whole answer.
        let answer = (|| -> io::Result<(Head, Vec<u8>)> {
            let mut up = TcpStream::connect(upstream)?;
            let mut req = format!("{}\r\n", head.line);
            for (k, v) in &head.headers {
                if k != "connection" && k != "content-length" && k != "transfer-encoding" && k != "keep-alive" {
                    req.push_str(&format!("{k}: {v}\r\n"));
                }
            }
            req.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
            up.write_all(req.as_bytes())?;
            up.write_all(&body)?;
            let mut ur = BufReader::new(up);
            let h = read_head(&mut ur)?.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no answer"))?;
            let b = if method == "HEAD" { Vec::new() } else { read_body(&mut ur, &h, true)? };
            Ok((h, b))
        })();
        let Ok((h, mut b)) = answer else {
            let _ = write_answer(&mut w, "HTTP/1.1 502 Bad Gateway", &[], b"", 0);
            break;
        };
        let declared =
            if method == "HEAD" { h.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0) } else { b.len() };
        let sent = match fault {
            Fault::Truncate => {
                let full = b.len();
                b.truncate(full / 2);
                let _ = write_answer(&mut w, &h.line, &h.headers, &b, full);
                break;
            }
            Fault::Corrupt => {
                if !b.is_empty() {
                    let mid = b.len() / 2;
                    b[mid] ^= 0x55;
                }
                write_answer(&mut w, &h.line, &h.headers, &b, declared)
            }
            _ => {
                if method == "HEAD" {
                    write_answer(&mut w, &h.line, &h.headers, b"", declared)
                } else {
                    write_answer(&mut w, &h.line, &h.headers, &b, declared)
                }
            }
        };
        if sent.is_err() {
            break;
        }
    }
}
