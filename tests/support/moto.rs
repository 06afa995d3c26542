//! moto's S3 server on 127.0.0.1 for integration tests, with AWS signature checking turned on.
//!
//! [`Moto::start`] runs one Python process of the test venv (`target/venv`, moto 5.2.5 from
//! `tests/servers/requirements.txt`) that:
//! 1. starts moto's server (`moto.server.ThreadedMotoServer`, the server `moto_server` runs) on a
//!    free loopback port;
//! 2. while moto still lets every request through, creates through boto3: an IAM user `cv` with
//!    an inline policy allowing `s3:*` and an access key, a user `nobody` with a key and no
//!    policy, a user `reader` allowed `s3:GetObject` only (reads, no listings), a role
//!    `cv-role` allowing `s3:*` assumed once through STS (temporary credentials with a session
//!    token), the buckets asked for, and uploads the directories asked for (cloud-volume's
//!    `.gz`/`.br`/`.zstd` files become objects with that `Content-Encoding`);
//! 3. turns moto's IAM enforcement on (`INITIAL_NO_AUTH_ACTION_COUNT = 0`, what moto's
//!    `/moto-api/reset-auth` does): from then on every S3 request must carry a valid AWS
//!    Signature V4 of a known key (else `SignatureDoesNotMatch`, `InvalidAccessKeyId`,
//!    `InvalidToken`), and the key's policies must allow the action (else `AccessDenied`);
//! 4. prints one JSON line (port and keys), then serves until it is killed or its parent (the
//!    test binary) exits — it polls its parent pid, so a server held in a `static` does not
//!    outlive the tests.
//!
//! Dropping a [`Moto`] kills the process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{json, Value};

use super::env::venv_python;

/// An access key moto knows.
#[derive(Clone)]
pub struct Keys {
    pub id: String,
    pub secret: String,
    pub token: Option<String>,
}

impl Keys {
    /// The members of an `aws-secret.json` (and of the `secrets` option).
    pub fn secret_json(&self) -> Value {
        let mut v = json!({"AWS_ACCESS_KEY_ID": self.id, "AWS_SECRET_ACCESS_KEY": self.secret});
        if let Some(t) = &self.token {
            v["AWS_SESSION_TOKEN"] = json!(t);
        }
        v
    }
}

/// What to create before signatures are enforced.
#[derive(Default, Clone)]
pub struct Setup {
    pub buckets: Vec<String>,
    /// (bucket, key prefix, local directory): every file under the directory is uploaded.
    pub uploads: Vec<(String, String, PathBuf)>,
}

pub struct Moto {
    pub port: u16,
    /// May do anything in S3.
    pub user: Keys,
    /// Signs correctly but may do nothing.
    pub nobody: Keys,
    /// May read objects (`s3:GetObject`) but not list them.
    pub reader: Keys,
    /// Temporary credentials (with a session token) of a role that may do anything in S3.
    pub session: Keys,
    child: Mutex<Option<Child>>,
    /// moto's log while it starts (shown if it fails; removed once it is up).
    pub log: PathBuf,
}

const LAUNCHER: &str = r#"
import json, os, sys, time, mimetypes
spec = json.loads(sys.argv[1])
from moto.server import ThreadedMotoServer
import boto3
from botocore.config import Config

srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
srv.start()
port = srv.get_host_and_port()[1]
kw = dict(endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
          aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
sts = boto3.client("sts", **kw)
s3 = boto3.client("s3", config=Config(request_checksum_calculation="when_required"), **kw)

allow = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
iam.create_user(UserName="cv")
iam.put_user_policy(UserName="cv", PolicyName="s3", PolicyDocument=allow)
user = iam.create_access_key(UserName="cv")["AccessKey"]
iam.create_user(UserName="nobody")
nobody = iam.create_access_key(UserName="nobody")["AccessKey"]
read_only = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
iam.create_user(UserName="reader")
iam.put_user_policy(UserName="reader", PolicyName="s3-get", PolicyDocument=read_only)
reader = iam.create_access_key(UserName="reader")["AccessKey"]
trust = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})
role = iam.create_role(RoleName="cv-role", AssumeRolePolicyDocument=trust)["Role"]
iam.put_role_policy(RoleName="cv-role", PolicyName="s3", PolicyDocument=allow)
session = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="cv-test")["Credentials"]

for b in spec["buckets"]:
    s3.create_bucket(Bucket=b)
encodings = {".gz": "gzip", ".br": "br", ".zstd": "zstd"}
for bucket, prefix, root in spec["uploads"]:
    for d, _, files in os.walk(root):
        for f in files:
            path = os.path.join(d, f)
            key = os.path.relpath(path, root)
            extra = {}
            for suffix, enc in encodings.items():
                if key.endswith(suffix):
                    key = key[: -len(suffix)]
                    extra["ContentEncoding"] = enc
            with open(path, "rb") as fh:
                body = fh.read()
            ctype = "application/json" if key == "info" else "application/octet-stream"
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{key}" if prefix else key, Body=body,
                          ContentType=ctype, **extra)

# From here on every request must be signed by a known key whose policies allow it.
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
ActionAuthenticatorMixin.request_count = 0

print(json.dumps({
    "port": port,
    "user": [user["AccessKeyId"], user["SecretAccessKey"]],
    "nobody": [nobody["AccessKeyId"], nobody["SecretAccessKey"]],
    "reader": [reader["AccessKeyId"], reader["SecretAccessKey"]],
    "session": [session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"]],
}), flush=True)
parent = os.getppid()
while os.getppid() == parent:
    time.sleep(0.3)
os._exit(0)
"#;

/// Whether the venv has moto's server (scripts/setup.sh installs it).
pub fn available() -> bool {
    let py = venv_python();
    py.exists()
        && Command::new(&py)
            .args(["-c", "import moto.server, boto3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

impl Moto {
    /// Start moto, create what `setup` asks for, and enforce signatures. Panics (with moto's
    /// log) when it does not come up within a minute.
    pub fn start(setup: &Setup) -> Moto {
        let log = std::env::temp_dir().join(format!("cv-moto-{}-{}.log", std::process::id(), next_id()));
        let spec = json!({
            "buckets": setup.buckets,
            "uploads": setup.uploads.iter().map(|(b, p, d)| json!([b, p, d])).collect::<Vec<_>>(),
        });
        let mut child = Command::new(venv_python())
            .args(["-c", LAUNCHER, &spec.to_string()])
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .env("MOTO_CALL_RESET_API", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("moto log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", venv_python().display()));
        let stdout = child.stdout.take().expect("moto stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(l) if !l.trim().is_empty() => l,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "moto did not start ({other:?}); its log {}:\n{}",
                    log.display(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("moto's line {line:?}: {e}"));
        // Up and running: its log (request lines) is of no more use.
        let _ = std::fs::remove_file(&log);
        let keys = |k: &str| {
            let a = v[k].as_array().expect("keys");
            Keys {
                id: a[0].as_str().unwrap().to_string(),
                secret: a[1].as_str().unwrap().to_string(),
                token: a.get(2).and_then(Value::as_str).map(str::to_string),
            }
        };
        Moto {
            port: v["port"].as_u64().expect("port") as u16,
            user: keys("user"),
            nobody: keys("nobody"),
            reader: keys("reader"),
            session: keys("session"),
            child: Mutex::new(Some(child)),
            log,
        }
    }

    /// `http://127.0.0.1:PORT`, for the `s3_endpoint` option.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kill the server now.
    pub fn stop(&self) {
        if let Some(mut c) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn next_id() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

// ------------------------------------------------------------------------------------------------
// A tampering proxy

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A loopback HTTP/1.1 proxy to one upstream, one request per connection (it answers with
/// `Connection: close`). It records every request's head, and flips the last byte of the body of
/// `200` answers to requests whose target contains [`Tamper::tamper`]'s substring, leaving every
/// header (the ETag too) as upstream sent it.
pub struct Tamper {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pattern: Arc<Mutex<Option<String>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Tamper {
    pub fn start(upstream: SocketAddr) -> Tamper {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let pattern: Arc<Mutex<Option<String>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let acceptor = {
            let (stop, pattern, seen) = (stop.clone(), pattern.clone(), seen.clone());
            thread::spawn(move || {
                for s in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(s) = s else { continue };
                    let (pattern, seen) = (pattern.clone(), seen.clone());
                    thread::spawn(move || {
                        let _ = relay(s, upstream, &pattern, &seen);
                    });
                }
            })
        };
        Tamper { addr, stop, pattern, seen, acceptor: Some(acceptor) }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Corrupt answers to targets containing `pattern` (None: none).
    pub fn tamper(&self, pattern: Option<&str>) {
        *self.pattern.lock().unwrap() = pattern.map(str::to_string);
    }

    /// The requests seen so far, and forget them.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Tamper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    pattern: &Mutex<Option<String>>,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    // The request head, then its body by Content-Length.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = (first.next().unwrap_or("").to_string(), first.next().unwrap_or("").to_string());
    let mut headers = Vec::new();
    let mut out_head = format!("{method} {target} HTTP/1.1\r\n");
    let mut body_len = 0usize;
    for l in lines.filter(|l| !l.is_empty()) {
        let Some((n, v)) = l.split_once(':') else { continue };
        let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_string());
        if n == "content-length" {
            body_len = v.parse().unwrap_or(0);
        }
        if n != "connection" {
            out_head.push_str(l);
            out_head.push_str("\r\n");
        }
        headers.push((n, v));
    }
    out_head.push_str("Connection: close\r\n\r\n");
    while buf.len() < head_end + body_len {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    seen.lock().unwrap().push(Seen { method: method.clone(), target: target.clone(), headers });
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(out_head.as_bytes())?;
    up.write_all(&buf[head_end..])?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let corrupt = pattern.lock().unwrap().as_deref().is_some_and(|p| target.contains(p));
    let ok = resp.split(|&b| b == b' ').nth(1) == Some(b"200".as_slice());
    if corrupt && method == "GET" && ok {
        if let Some(i) = find(&resp, b"\r\n\r\n") {
            if resp.len() > i + 4 {
                let last = resp.len() - 1;
                resp[last] ^= 0x01;
            }
        }
    }
    client.write_all(&resp)?;
    client.flush()?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}
