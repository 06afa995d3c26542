//! A loopback service double written in Python under `tests/servers/` (DVID, BOSS, ...):
//! started on a free port (it prints `PORT n`), scripted through `POST /__control`, its
//! requests read from `GET /__requests`; killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::env::{crate_dir, python};

pub struct ServiceDouble {
    child: Child,
    pub port: u16,
}

impl ServiceDouble {
    /// Start `tests/servers/<script>` with `args`, or None (after a notice) without the venv.
    pub fn start(script: &str, args: &[&str]) -> Option<ServiceDouble> {
        let py = python(&format!("the {script} double"))?;
        let mut child = Command::new(py)
            .arg(crate_dir().join("tests/servers").join(script))
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {script}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read PORT");
        let port = line.strip_prefix("PORT ").and_then(|p| p.trim().parse().ok()).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("the {script} double did not start: {line:?}")
        });
        Some(ServiceDouble { child, port })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `POST /__control` with `cmd`.
    pub fn control(&self, cmd: Value) {
        ureq::post(&format!("{}/__control", self.base())).send_string(&cmd.to_string()).expect("control the double");
    }

    /// The requests recorded (since the last `{"clear_log": true}`), once the record has stopped
    /// growing for 100 ms (a double records a request after answering it).
    pub fn requests(&self) -> Vec<Value> {
        let mut last = self.requests_now();
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = self.requests_now();
            if now.len() == last.len() {
                return now;
            }
            last = now;
        }
        last
    }

    fn requests_now(&self) -> Vec<Value> {
        let r = ureq::get(&format!("{}/__requests", self.base())).call().expect("the double's log");
        let v: Value = serde_json::from_reader(r.into_reader()).expect("JSON log");
        v.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for ServiceDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
