//! A loopback TCP latency proxy for HTTP/1.x, std only.
//!
//! [`LatencyProxy`] listens on a local port and forwards every connection to one upstream
//! `host:port`. Each HTTP request is held back until `delay` has passed since its first byte
//! arrived, then forwarded, so every request costs `+delay` round trip, also on keep-alive
//! connections (requests are delimited by parsing their heads and `Content-Length`). Optionally
//! a new connection costs `connect_delay` too (the extra round trip of a TCP handshake).
//!
//! It counts requests and connections, and tracks how many requests are in flight at once: a
//! request is in flight from its first byte at the proxy until the first byte of its response
//! comes back from upstream (exact for clients that do not pipeline, which none of ours do).
//!
//! Dropping the proxy stops it: the listener closes and every open connection is shut down.
//!
//! Used by `tests/latency.rs` and by `examples/latency_proxy.rs` (the benchmark's proxy).

// Also included on its own by examples/ (`#[path]`), where the tree-wide allow of
// tests/support/mod.rs does not reach.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Largest request head we parse; anything longer is passed through unparsed (and undelayed).
const MAX_HEAD: usize = 64 * 1024;

/// Counters shared by the proxy's threads.
#[derive(Default)]
pub struct Stats {
    requests: AtomicU64,
    connections: AtomicU64,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// A point-in-time copy of the proxy's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// HTTP requests seen (request heads parsed).
    pub requests: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Most requests in flight at once since start (or the last reset).
    pub peak_in_flight: usize,
    /// Bytes forwarded client -> upstream.
    pub bytes_up: u64,
    /// Bytes forwarded upstream -> client.
    pub bytes_down: u64,
}

impl Snapshot {
    /// One JSON object, for the command-line wrapper.
    pub fn to_json(self) -> String {
        format!(
            "{{\"requests\":{},\"connections\":{},\"in_flight\":{},\"peak_in_flight\":{},\"bytes_up\":{},\"bytes_down\":{}}}",
            self.requests, self.connections, self.in_flight, self.peak_in_flight, self.bytes_up, self.bytes_down
        )
    }
}

impl Stats {
    fn request_started(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
    }

    fn requests_answered(&self, n: usize) {
        if n > 0 {
            self.in_flight.fetch_sub(n, Ordering::SeqCst);
        }
    }
}

/// Configuration of a proxy.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on, e.g. `127.0.0.1:0`.
    pub listen: String,
    /// Upstream `host:port`.
    pub upstream: String,
    /// Added to every HTTP request.
    pub delay: Duration,
    /// Added once per new connection, before its first request is forwarded.
    pub connect_delay: Duration,
}

/// A running latency proxy. Stops on drop.
pub struct LatencyProxy {
    addr: SocketAddr,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<HashMap<u64, (TcpStream, TcpStream)>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl LatencyProxy {
    /// Listen on `127.0.0.1:0` and forward to `upstream`, adding `delay` to every request.
    pub fn start(upstream: &str, delay: Duration) -> io::Result<LatencyProxy> {
        LatencyProxy::with_config(Config {
            listen: "127.0.0.1:0".into(),
            upstream: upstream.into(),
            delay,
            connect_delay: Duration::ZERO,
        })
    }

    pub fn with_config(cfg: Config) -> io::Result<LatencyProxy> {
        let upstream: SocketAddr =
            cfg.upstream.to_socket_addrs()?.next().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("no address for {}", cfg.upstream))
            })?;
        let listener = TcpListener::bind(&cfg.listen)?;
        // std listens with a backlog of 128: a client opening hundreds of connections at once
        // would see SYNs dropped and retried a second later. Listening again raises it.
        // SAFETY: a valid listening socket's descriptor; listen() only changes its backlog.
        unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 1024) };
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<HashMap<u64, (TcpStream, TcpStream)>>> = Arc::default();
        let acceptor = {
            let (stats, stop, conns) = (stats.clone(), stop.clone(), conns.clone());
            let (delay, connect_delay) = (cfg.delay, cfg.connect_delay);
            thread::Builder::new().name("proxy-accept".into()).spawn(move || {
                let mut next_id = 0u64;
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(upstream) else {
                        // Upstream down: the client sees the connection close.
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    stats.connections.fetch_add(1, Ordering::SeqCst);
                    next_id += 1;
                    let id = next_id;
                    match (client.try_clone(), server.try_clone()) {
                        (Ok(c), Ok(s)) => {
                            conns.lock().unwrap_or_else(|p| p.into_inner()).insert(id, (c, s));
                        }
                        _ => continue,
                    }
                    // Racing a drop: it may have missed this connection, so close it here.
                    if stop.load(Ordering::SeqCst) {
                        let _ = client.shutdown(Shutdown::Both);
                        let _ = server.shutdown(Shutdown::Both);
                        break;
                    }
                    let conn = Conn { stats: stats.clone(), outstanding: Arc::new(AtomicUsize::new(0)) };
                    let registry = conns.clone();
                    let spawned = thread::Builder::new().name(format!("proxy-conn-{id}")).spawn(move || {
                        conn.run(client, server, delay, connect_delay);
                        registry.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    });
                    if spawned.is_err() {
                        // Out of threads: close the pair (the closure that owned it is gone).
                        if let Some((c, s)) = conns.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) {
                            let _ = c.shutdown(Shutdown::Both);
                            let _ = s.shutdown(Shutdown::Both);
                        }
                    }
                }
            })?
        };
        Ok(LatencyProxy { addr, stats, stop, conns, acceptor: Some(acceptor) })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.stats.in_flight.load(Ordering::SeqCst)
    }

    pub fn peak_in_flight(&self) -> usize {
        self.stats.peak_in_flight.load(Ordering::SeqCst)
    }

    pub fn snapshot(&self) -> Snapshot {
        let s = &self.stats;
        Snapshot {
            requests: s.requests.load(Ordering::SeqCst),
            connections: s.connections.load(Ordering::SeqCst),
            in_flight: s.in_flight.load(Ordering::SeqCst),
            peak_in_flight: s.peak_in_flight.load(Ordering::SeqCst),
            bytes_up: s.bytes_up.load(Ordering::SeqCst),
            bytes_down: s.bytes_down.load(Ordering::SeqCst),
        }
    }

    /// Zero the counters (the peak restarts from the requests in flight now).
    pub fn reset(&self) {
        let s = &self.stats;
        s.requests.store(0, Ordering::SeqCst);
        s.connections.store(0, Ordering::SeqCst);
        s.bytes_up.store(0, Ordering::SeqCst);
        s.bytes_down.store(0, Ordering::SeqCst);
        s.peak_in_flight.store(s.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor with a connection of our own; it sees `stop` and exits.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        for (_, (c, s)) in self.conns.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            let _ = c.shutdown(Shutdown::Both);
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// One proxied connection.
struct Conn {
    stats: Arc<Stats>,
    /// Requests of this connection forwarded (or waiting) whose response has not started.
    outstanding: Arc<AtomicUsize>,
}

impl Conn {
    fn run(self, client: TcpStream, server: TcpStream, delay: Duration, connect_delay: Duration) {
        let (Ok(client_r), Ok(server_w)) = (client.try_clone(), server.try_clone()) else { return };
        let down = {
            let stats = self.stats.clone();
            let outstanding = self.outstanding.clone();
            let (mut from, mut to) = (server, client);
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match from.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    // Response bytes: every request outstanding on this connection is answered.
                    stats.requests_answered(outstanding.swap(0, Ordering::SeqCst));
                    stats.bytes_down.fetch_add(n as u64, Ordering::Relaxed);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(Shutdown::Write);
                let _ = from.shutdown(Shutdown::Read);
            })
        };
        self.pump_requests(client_r, server_w, delay, connect_delay);
        let _ = down.join();
        // Requests that never got an answer are no longer in flight.
        self.stats.requests_answered(self.outstanding.swap(0, Ordering::SeqCst));
    }

    /// Client -> upstream: split the byte stream into requests, hold each until `delay` after its
    /// first byte arrived, forward it.
    fn pump_requests(&self, mut from: TcpStream, mut to: TcpStream, delay: Duration, connect_delay: Duration) {
        enum State {
            Head,
            /// Body bytes of the current request still to forward.
            Body(u64),
            /// Unparseable (chunked request body, huge head, upgrade): forward as is.
            Raw,
        }
        let mut state = State::Head;
        let mut pending: Vec<u8> = Vec::new();
        let mut started: Option<Instant> = None;
        let mut first = true;
        let mut buf = vec![0u8; 64 * 1024];
        'outer: loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let now = Instant::now();
            let mut data = &buf[..n];
            while !data.is_empty() {
                match state {
                    State::Raw => {
                        if self.forward(&mut to, data).is_err() {
                            break 'outer;
                        }
                        data = &[];
                    }
                    State::Body(left) => {
                        let k = (left as usize).min(data.len());
                        if self.forward(&mut to, &data[..k]).is_err() {
                            break 'outer;
                        }
                        data = &data[k..];
                        state = if left as usize == k { State::Head } else { State::Body(left - k as u64) };
                    }
                    State::Head => {
                        if pending.is_empty() {
                            started = Some(now);
                        }
                        pending.extend_from_slice(data);
                        data = &[];
                        // Forward every complete head in `pending` (more than one if pipelined).
                        loop {
                            let Some(end) = find(&pending, b"\r\n\r\n") else {
                                if pending.len() > MAX_HEAD {
                                    if self.forward(&mut to, &pending).is_err() {
                                        break 'outer;
                                    }
                                    pending.clear();
                                    state = State::Raw;
                                }
                                break;
                            };
                            let head_len = end + 4;
                            let body = parse_body_len(&pending[..head_len]);
                            self.outstanding.fetch_add(1, Ordering::SeqCst);
                            self.stats.request_started();
                            let mut wait = delay;
                            if first {
                                wait += connect_delay;
                                first = false;
                            }
                            let due = started.unwrap_or(now) + wait;
                            let left = due.saturating_duration_since(Instant::now());
                            if !left.is_zero() {
                                thread::sleep(left);
                            }
                            if self.forward(&mut to, &pending[..head_len]).is_err() {
                                break 'outer;
                            }
                            let rest = pending.split_off(head_len);
                            pending = rest;
                            match body {
                                BodyLen::Known(0) => {}
                                BodyLen::Known(k) => {
                                    // Body bytes already received go out with the head.
                                    let m = (k as usize).min(pending.len());
                                    if self.forward(&mut to, &pending[..m]).is_err() {
                                        break 'outer;
                                    }
                                    pending.drain(..m);
                                    if (m as u64) < k {
                                        state = State::Body(k - m as u64);
                                        debug_assert!(pending.is_empty());
                                        break;
                                    }
                                }
                                BodyLen::Unknown => {
                                    if self.forward(&mut to, &pending).is_err() {
                                        break 'outer;
                                    }
                                    pending.clear();
                                    state = State::Raw;
                                    break;
                                }
                            }
                            // The next request (if any bytes of it are here) started arriving now.
                            started = Some(now);
                            if pending.is_empty() {
                                break;
                            }
                        }
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        let _ = from.shutdown(Shutdown::Read);
    }

    fn forward(&self, to: &mut TcpStream, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.stats.bytes_up.fetch_add(data.len() as u64, Ordering::Relaxed);
        to.write_all(data)
    }
}

enum BodyLen {
    Known(u64),
    /// Chunked or otherwise undelimited: the rest of the connection is passed through.
    Unknown,
}

/// The request body length from a request head (`Content-Length`, else none).
fn parse_body_len(head: &[u8]) -> BodyLen {
    let text = String::from_utf8_lossy(head);
    let mut len = 0u64;
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && !value.trim().eq_ignore_ascii_case("identity") {
            return BodyLen::Unknown;
        }
        if name.eq_ignore_ascii_case("upgrade") {
            return BodyLen::Unknown;
        }
        if name.eq_ignore_ascii_case("content-length") {
            match value.trim().parse() {
                Ok(n) => len = n,
                Err(_) => return BodyLen::Unknown,
            }
        }
    }
    BodyLen::Known(len)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
