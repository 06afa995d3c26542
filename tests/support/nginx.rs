//! A real nginx on 127.0.0.1 for integration tests: it serves a directory over HTTP (with Range
//! support, which nginx gives static files by default), optionally takes writes, and is killed
//! when the handle drops.
//!
//! The binary is `$CV_NGINX`, else `/usr/sbin/nginx`, else `nginx` on `PATH` (Debian package
//! `nginx-light`, which has the dav module writes need). Each server runs in the foreground
//! (`daemon off; master_process off;`) from its own temporary directory holding its config, pid
//! file, logs and temp paths, on a free port. The document root belongs to the caller.
//!
//! When nginx is missing, [`Nginx::start`] returns `None` after printing a skip notice, unless
//! `CV_REQUIRE_REFERENCE=1`, in which case it panics. An nginx that is present but does not start
//! is always a panic (with its error log).
//!
//! [`Config`] options:
//! - Content encodings: [`Config::encoded`] maps URL prefixes to a `Content-Encoding` header,
//!   for trees whose files are stored compressed under their plain names (as GCS and S3 serve
//!   objects uploaded with a content encoding); [`Config::encoded_root`] does so for a second
//!   directory. [`Config::gzip_static`] makes a request for `name` answer with `name.gz` and
//!   `Content-Encoding: gzip` when that file exists, which is how cloud-volume's
//!   gzip-compressed `file://` layers (`chunk.gz`) look when served like a bucket.
//! - Writes: [`Config::writable`] lets the dav module take `PUT` (intermediate directories
//!   created) and `DELETE` under `/`, storing request bodies as they arrive (a body sent with
//!   `Content-Encoding: gzip` is stored as the gzip bytes, as GCS and S3 store objects uploaded
//!   with a content encoding), and adds two more views of the root: `/gz/...` (`/gz/a/b` is
//!   `root/a/b`, writable too) serves every file but `.../info` with `Content-Encoding: gzip`, as
//!   a bucket serves objects uploaded gzip-compressed; `/ro/...` is read only (PUT and DELETE
//!   answer 405).
//! - The request log: [`Config::log_requests`] (on with `writable`) writes an access log of one
//!   line per request, `METHOD URI STATUS CONTENT_ENCODING CONTENT_TYPE` (the request's
//!   headers; `-` when absent), which [`Nginx::requests`] reads. nginx writes a line after it
//!   has answered, so reading waits for the log to stop growing.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::env::{free_port, required};

/// What to serve, and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The document root: `http://127.0.0.1:PORT/a/b` is the file `root/a/b`.
    pub root: PathBuf,
    /// `(url_prefix, encoding)`: responses under `url_prefix` (for example `/encoded/gzip/`)
    /// carry `Content-Encoding: encoding` (`gzip`, `br`, `zstd`, ...). The prefix must start and
    /// end with `/`.
    pub encoded: Vec<(String, String)>,
    /// `(url_prefix, directory, encoding)`: like `encoded`, but the prefix maps onto another
    /// directory (`url_prefix/x` is `directory/x`), a second root.
    pub encoded_roots: Vec<(String, PathBuf, String)>,
    /// Serve `name.gz` with `Content-Encoding: gzip` for a request of `name` when it exists
    /// (nginx's `gzip_static always`), outside the `encoded` prefixes.
    pub gzip_static: bool,
    /// PUT and DELETE under `/` and `/gz/`, and the `/gz/` and `/ro/` views.
    pub writable: bool,
    /// Log every request for [`Nginx::requests`].
    pub log_requests: bool,
}

impl Config {
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            encoded: Vec::new(),
            encoded_roots: Vec::new(),
            gzip_static: false,
            writable: false,
            log_requests: false,
        }
    }

    pub fn encoded(mut self, url_prefix: &str, encoding: &str) -> Config {
        self.encoded.push((url_prefix.to_string(), encoding.to_string()));
        self
    }

    pub fn encoded_root(mut self, url_prefix: &str, dir: impl Into<PathBuf>, encoding: &str) -> Config {
        self.encoded_roots.push((url_prefix.to_string(), dir.into(), encoding.to_string()));
        self
    }

    pub fn gzip_static(mut self, on: bool) -> Config {
        self.gzip_static = on;
        self
    }

    /// Writes (and the request log with them).
    pub fn writable(mut self, on: bool) -> Config {
        self.writable = on;
        self.log_requests |= on;
        self
    }

    pub fn log_requests(mut self, on: bool) -> Config {
        self.log_requests = on;
        self
    }
}

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

/// A running nginx. Killed (and its own directory removed) on drop.
pub struct Nginx {
    port: u16,
    child: Child,
    dir: PathBuf,
    root: PathBuf,
    log_requests: bool,
}

/// The nginx binary to run, if any.
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CV_NGINX").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        // An explicit override that does not exist is a configuration error, not a skip.
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
    // nginx config strings: double-quoted, with backslash and quote escaped.
    let s = p.to_string_lossy();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `dir` with a trailing slash, quoted: what `alias` wants for a `/prefix/` location.
fn quote_dir(dir: &Path) -> String {
    let mut r = dir.to_string_lossy().into_owned();
    if !r.ends_with('/') {
        r.push('/');
    }
    quote(Path::new(&r))
}

fn check_prefix(prefix: &str) {
    assert!(
        prefix.starts_with('/') && prefix.ends_with('/') && !prefix.contains(['"', ' ', ';', '{', '}']),
        "nginx location prefix must look like /a/b/, got {prefix:?}"
    );
}

/// Temp-path directives this nginx knows (a custom build may lack some modules).
fn temp_path_directives(bin: &Path) -> Vec<&'static str> {
    let v = Command::new(bin).arg("-V").output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
    let v = v.unwrap_or_default();
    let mut d = vec!["client_body_temp_path"];
    for (directive, module) in [
        ("proxy_temp_path", "http_proxy_module"),
        ("fastcgi_temp_path", "http_fastcgi_module"),
        ("uwsgi_temp_path", "http_uwsgi_module"),
        ("scgi_temp_path", "http_scgi_module"),
    ] {
        if !v.contains(&format!("--without-{module}")) {
            d.push(directive);
        }
    }
    d
}

fn supports_e_flag(bin: &Path) -> bool {
    // `-e` (error log before the config is read) exists from nginx 1.19.5 on.
    let out = Command::new(bin).arg("-v").output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
    let out = out.unwrap_or_default();
    let Some(ver) = out.split("nginx/").nth(1) else {
        return false;
    };
    let nums: Vec<u32> = ver.split(|c: char| !c.is_ascii_digit()).take(3).filter_map(|s| s.parse().ok()).collect();
    nums.len() == 3 && (nums[0], nums[1], nums[2]) >= (1, 19, 5)
}

/// What makes a location writable (the dav module).
const DAV: &str = "dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:rw all:r;";

fn write_config(dir: &Path, bin: &Path, port: u16, cfg: &Config) -> PathBuf {
    let mut temps = String::new();
    for d in temp_path_directives(bin) {
        let p = dir.join(d.trim_end_matches("_temp_path"));
        temps.push_str(&format!("    {d} {};\n", quote(&p)));
    }
    let mut locations = String::new();
    for (prefix, enc) in &cfg.encoded {
        check_prefix(prefix);
        locations.push_str(&format!(
            "        location ^~ {prefix} {{\n            gzip_static off;\n            add_header Content-Encoding {enc} always;\n        }}\n"
        ));
    }
    for (prefix, root, enc) in &cfg.encoded_roots {
        check_prefix(prefix);
        locations.push_str(&format!(
            "        location ^~ {prefix} {{\n            alias {};\n            gzip_static off;\n            add_header Content-Encoding {enc} always;\n        }}\n",
            quote_dir(root)
        ));
    }
    let (mut root_location, mut http_extra) = (String::new(), String::new());
    if cfg.writable {
        root_location = format!("            {DAV}\n");
        http_extra.push_str("    map $uri $cv_gz_encoding {\n        ~/info$ \"\";\n        default gzip;\n    }\n");
        let alias = quote_dir(&cfg.root);
        locations.push_str(&format!(
            r#"        location ^~ /ro/ {{
            alias {alias};
        }}
        location ^~ /gz/ {{
            alias {alias};
            {DAV}
            add_header Content-Encoding $cv_gz_encoding;
        }}
"#
        ));
    }
    let access_log = if cfg.log_requests {
        let format = "'$request_method $request_uri $status $http_content_encoding $content_type'";
        format!("log_format cv {format};\n    access_log {} cv;", quote(&dir.join("access.log")))
    } else {
        "access_log off;".to_string()
    };
    let gzip_static = if cfg.gzip_static { "always" } else { "off" };
    let text = format!(
        r#"# written by tests/support/nginx.rs
daemon off;
master_process off;
worker_processes 1;
pid {pid};
error_log {log} warn;
events {{
    worker_connections 1024;
}}
http {{
    {access_log}
    default_type application/octet-stream;
    types {{ }}
    sendfile on;
    keepalive_timeout 60s;
    keepalive_requests 100000;
    server_tokens off;
    client_max_body_size 0;
    client_body_buffer_size 1m;
{temps}{http_extra}    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        gzip off;
        gzip_static {gzip_static};
        location / {{
{root_location}        }}
{locations}    }}
}}
"#,
        pid = quote(&dir.join("nginx.pid")),
        log = quote(&dir.join("error.log")),
        root = quote(&cfg.root),
    );
    let path = dir.join("nginx.conf");
    fs::write(&path, text).expect("write nginx.conf");
    path
}

fn own_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "cv-nginx-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).expect("create the nginx directory");
    dir
}

/// True once something answers HTTP on the port.
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

impl Nginx {
    /// Start nginx serving `cfg`. `None` (after a notice on stderr) when nginx is not installed
    /// and `CV_REQUIRE_REFERENCE` is not `1`.
    ///
    /// # Panics
    /// When nginx is missing and required, or when it is present but fails to start.
    pub fn start(cfg: Config) -> Option<Nginx> {
        let Some(bin) = binary() else {
            assert!(
                !required(),
                "nginx not found (looked at $CV_NGINX, /usr/sbin/nginx and PATH) but CV_REQUIRE_REFERENCE=1: \
                 install nginx-light (scripts/setup.sh does) or set CV_NGINX"
            );
            // Straight to stderr, past libtest's capture, so the skip shows in a passing run.
            let _ = writeln!(
                std::io::stderr(),
                "SKIP: nginx not found (install nginx-light or set CV_NGINX); HTTP tests skipped"
            );
            return None;
        };
        assert!(cfg.root.is_dir(), "nginx root {} is not a directory", cfg.root.display());
        let e_flag = supports_e_flag(&bin);
        let mut last_log = String::new();
        for _attempt in 0..8 {
            let dir = own_dir();
            let port = free_port();
            let conf = write_config(&dir, &bin, port, &cfg);
            let mut cmd = Command::new(&bin);
            cmd.arg("-p").arg(&dir).arg("-c").arg(&conf);
            if e_flag {
                cmd.arg("-e").arg(dir.join("error.log"));
            }
            let stderr = fs::File::create(dir.join("stderr.log")).expect("create nginx stderr log");
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
            let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let mut n = Nginx { port, child, dir, root: cfg.root.clone(), log_requests: cfg.log_requests };
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(status)) = n.child.try_wait() {
                    last_log = n.logs();
                    eprintln!("nginx exited with {status} on port {port}: {last_log}");
                    break; // Drop removes the directory; retry on another port.
                }
                if answers(port) {
                    if n.log_requests {
                        n.wait_quiet();
                    }
                    return Some(n);
                }
                if Instant::now() > deadline {
                    last_log = n.logs();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !last_log.contains("Address already in use") {
                break;
            }
        }
        panic!("nginx ({}) did not start: {last_log}", bin.display());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The URL of `path` (relative to the root; a leading `/` is optional).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url(), path.trim_start_matches('/'))
    }

    /// The document root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The server's error log and stderr, for failure messages.
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

    /// Every request logged so far, oldest first (the server logs with `log_requests`).
    pub fn requests(&self) -> Vec<Request> {
        assert!(self.log_requests, "this nginx does not log requests (Config::log_requests)");
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

    /// The number of requests logged so far (a mark for [`Nginx::requests_since`]).
    pub fn mark(&self) -> usize {
        self.requests().len()
    }

    /// The requests logged after `mark`.
    pub fn requests_since(&self, mark: usize) -> Vec<Request> {
        self.requests().into_iter().skip(mark).collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
