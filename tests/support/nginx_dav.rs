//! A writable nginx on 127.0.0.1 for the write tests: the dav module takes `PUT` (intermediate
//! directories created) and `DELETE` under `/`, stores request bodies as they arrive (a body sent
//! with `Content-Encoding: gzip` is stored as the gzip bytes, as GCS and S3 store objects
//! uploaded with a content encoding), and logs every request to an access log the test reads.
//!
//! Three views of the same document root:
//! - `/...`: files served without a `Content-Encoding` (what was PUT, byte for byte), for
//!   layers stored without content compression;
//! - `/gz/...` (`/gz/a/b` is the file `root/a/b`): every file except `.../info` served with
//!   `Content-Encoding: gzip`, which is how a bucket serves objects uploaded gzip-compressed; for
//!   layers whose chunks are all PUT with `Content-Encoding: gzip` (the default for raw and
//!   compressed_segmentation over HTTP), so read-modify-write and read-back work there;
//! - `/ro/...` (`/ro/a/b` is the file `root/a/b`): read only (PUT and DELETE answer 405).
//!
//! The access log has one line per request: `METHOD URI STATUS CONTENT_ENCODING CONTENT_TYPE`
//! (the request's headers; `-` when absent). nginx writes a line after it has answered, so [`DavNginx::requests`] waits
//! for the log to stop growing before reading it.
//!
//! Include with `#[path = "support/nginx_dav.rs"] mod nginx_dav;`. The binary is `$CV_NGINX`,
//! else `/usr/sbin/nginx`, else `nginx` on `PATH`; it needs `--with-http_dav_module` (Debian's
//! nginx-light has it). Missing nginx: `None` with a notice, or a panic under
//! `CV_REQUIRE_REFERENCE=1`.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub uri: String,
    pub status: u16,
    /// The request's `Content-Encoding` header, if any.
    pub content_encoding: Option<String>,
    /// The request's `Content-Type` header, if any.
    pub content_type: Option<String>,
}

/// A running writable nginx; killed (and its own directory removed) on drop. The document root
/// belongs to the caller.
pub struct DavNginx {
    port: u16,
    child: Child,
    dir: PathBuf,
    root: PathBuf,
}

fn required() -> bool {
    std::env::var("CV_REQUIRE_REFERENCE").is_ok_and(|v| v == "1")
}

fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CV_NGINX").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "CV_NGINX={} does not name an nginx binary", p.display());
        return Some(p);
    }
    let sbin = PathBuf::from("/usr/sbin/nginx");
    if sbin.is_file() {
        return Some(sbin);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("nginx")).find(|p| p.is_file()))
}

fn quote(p: &Path) -> String {
    let s = p.to_string_lossy();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind a free port")
}

fn own_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "cv-nginx-dav-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).expect("create the nginx directory");
    dir
}

fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"HEAD / HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.")
}

fn write_config(dir: &Path, port: u16, root: &Path) -> PathBuf {
    let mut r = root.to_string_lossy().into_owned();
    if !r.ends_with('/') {
        r.push('/');
    }
    let text = format!(
        r#"# written by tests/support/nginx_dav.rs
daemon off;
master_process off;
worker_processes 1;
pid {pid};
error_log {errlog} warn;
events {{
    worker_connections 1024;
}}
http {{
    log_format cv '$request_method $request_uri $status $http_content_encoding $content_type';
    access_log {access} cv;
    default_type application/octet-stream;
    types {{ }}
    sendfile on;
    keepalive_timeout 60s;
    keepalive_requests 100000;
    server_tokens off;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    client_body_temp_path {body};
    map $uri $cv_gz_encoding {{
        ~/info$ "";
        default gzip;
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        gzip off;
        gzip_static off;
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:rw all:r;
        }}
        location ^~ /ro/ {{
            alias {alias};
        }}
        location ^~ /gz/ {{
            alias {alias};
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:rw all:r;
            add_header Content-Encoding $cv_gz_encoding;
        }}
    }}
}}
"#,
        pid = quote(&dir.join("nginx.pid")),
        errlog = quote(&dir.join("error.log")),
        access = quote(&dir.join("access.log")),
        body = quote(&dir.join("body")),
        root = quote(root),
        alias = quote(Path::new(&r)),
    );
    let path = dir.join("nginx.conf");
    fs::write(&path, text).expect("write nginx.conf");
    path
}

impl DavNginx {
    /// Start a writable nginx whose document root is `root` (an existing directory).
    pub fn start(root: &Path) -> Option<DavNginx> {
        let Some(bin) = binary() else {
            assert!(!required(), "nginx not found but CV_REQUIRE_REFERENCE=1 (scripts/setup.sh installs it)");
            let _ = writeln!(std::io::stderr(), "SKIP: nginx not found; HTTP write tests skipped");
            return None;
        };
        assert!(root.is_dir(), "nginx root {} is not a directory", root.display());
        let mut last = String::new();
        for _ in 0..8 {
            let dir = own_dir();
            let port = free_port();
            let conf = write_config(&dir, port, root);
            let stderr = fs::File::create(dir.join("stderr.log")).expect("create the stderr log");
            let child = Command::new(&bin)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let mut n = DavNginx { port, child, dir, root: root.to_path_buf() };
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(_)) = n.child.try_wait() {
                    last = n.logs();
                    break;
                }
                if answers(port) {
                    n.wait_quiet();
                    return Some(n);
                }
                if Instant::now() > deadline {
                    last = n.logs();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !last.contains("Address already in use") {
                break;
            }
        }
        panic!("nginx ({}) with the dav module did not start: {last}", bin.display());
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["error.log", "stderr.log"] {
            if let Ok(t) = fs::read_to_string(self.dir.join(f)) {
                s.push_str(t.trim());
                s.push(' ');
            }
        }
        s
    }

    fn log_len(&self) -> u64 {
        fs::metadata(self.dir.join("access.log")).map_or(0, |m| m.len())
    }

    /// Wait until the access log has not grown for 50 ms (nginx logs after answering).
    pub fn wait_quiet(&self) {
        let mut len = self.log_len();
        let mut still = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(5);
        while still.elapsed() < Duration::from_millis(50) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
            let now = self.log_len();
            if now != len {
                len = now;
                still = Instant::now();
            }
        }
    }

    /// Every request logged so far, oldest first.
    pub fn requests(&self) -> Vec<Request> {
        self.wait_quiet();
        let text = fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut it = l.split(' ');
                let method = it.next()?.to_string();
                let uri = it.next()?.to_string();
                let status = it.next()?.parse().ok()?;
                let ce = it.next().filter(|v| *v != "-" && !v.is_empty()).map(str::to_string);
                let ct = it.next().filter(|v| *v != "-" && !v.is_empty()).map(str::to_string);
                Some(Request { method, uri, status, content_encoding: ce, content_type: ct })
            })
            .collect()
    }

    /// The number of requests logged so far (a mark for [`DavNginx::requests_since`]).
    pub fn mark(&self) -> usize {
        self.requests().len()
    }

    /// The requests logged after `mark`.
    pub fn requests_since(&self, mark: usize) -> Vec<Request> {
        self.requests().into_iter().skip(mark).collect()
    }
}

impl Drop for DavNginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
