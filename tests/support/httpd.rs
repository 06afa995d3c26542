//! A minimal static-file HTTP/1.1 server for tests, std only: GET and HEAD, keep-alive,
//! `Content-Length`, 404 for what is missing. A missing `name` whose `name.gz` (`.br`, `.zstd`)
//! exists is served from it with `Content-Encoding: gzip` (`br`, `zstd`), which is how a bucket
//! serves files cloud-volume wrote compressed. One thread per connection. Stops on drop.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub struct FileServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl FileServer {
    /// Serve the directory `root` on `127.0.0.1:0`.
    pub fn start(root: &Path) -> io::Result<FileServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let root = root.to_path_buf();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let conns: Arc<Mutex<HashMap<u64, TcpStream>>> = Arc::default();
        let acceptor = {
            let (stop, requests, conns) = (stop.clone(), requests.clone(), conns.clone());
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
                        conns.lock().unwrap_or_else(|p| p.into_inner()).insert(id, c);
                    }
                    let (root, requests, registry) = (root.clone(), requests.clone(), conns.clone());
                    let _ = thread::Builder::new().name(format!("httpd-{id}")).spawn(move || {
                        let _ = serve(s, &root, &requests);
                        registry.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    });
                }
            })?
        };
        Ok(FileServer { addr, stop, requests, conns, acceptor: Some(acceptor) })
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

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FileServer {
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

fn serve(stream: TcpStream, root: &Path, requests: &AtomicU64) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            continue; // stray CRLF between requests
        }
        let mut parts = line.split_whitespace();
        let (method, target, version) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("HTTP/1.0").to_string(),
        );
        let mut keep_alive = version == "HTTP/1.1";
        let mut body_len = 0u64;
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
                }
            }
        }
        // Discard a request body.
        io::copy(&mut io::Read::take(&mut reader, body_len), &mut io::sink())?;
        requests.fetch_add(1, Ordering::SeqCst);

        let conn = if keep_alive { "keep-alive" } else { "close" };
        let (status, extra, body): (&str, &str, Vec<u8>) = if method != "GET" && method != "HEAD" {
            ("405 Method Not Allowed", "Allow: GET, HEAD\r\n", b"method not allowed\n".to_vec())
        } else {
            match resolve(root, &target) {
                None => ("400 Bad Request", "", b"bad path\n".to_vec()),
                Some(p) => match read_file(&p) {
                    Some(b) => ("200 OK", "", b),
                    None => {
                        let variants = [(".gz", "Content-Encoding: gzip\r\n"), (".br", "Content-Encoding: br\r\n"), (".zstd", "Content-Encoding: zstd\r\n")];
                        let found = variants.iter().find_map(|(suffix, header)| {
                            let mut v = p.clone().into_os_string();
                            v.push(suffix);
                            read_file(Path::new(&v)).map(|b| (*header, b))
                        });
                        match found {
                            Some((header, b)) => ("200 OK", header, b),
                            None => ("404 Not Found", "", b"not found\n".to_vec()),
                        }
                    }
                },
            }
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{extra}Connection: {conn}\r\n\r\n",
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

fn read_file(p: &Path) -> Option<Vec<u8>> {
    if p.is_file() {
        std::fs::read(p).ok()
    } else {
        None
    }
}
