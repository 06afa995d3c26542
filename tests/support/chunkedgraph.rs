//! The loopback PyChunkedGraph double (`tests/servers/chunkedgraph.py`) over the graphene
//! fixture of `tests/reference/graphene_check.py` (`$CV_REFERENCE_DIR/graphene`), the same
//! double the fixture script drove unmodified cloud-volume through.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::env::{crate_dir, python, reference_dir, required};

/// The fixture directory and its manifest, or None (after a notice) when absent and not required.
pub fn fixture() -> Option<(PathBuf, Value)> {
    let dir = reference_dir().join("graphene");
    match std::fs::read_to_string(dir.join("manifest.json")) {
        Ok(t) => Some((dir, serde_json::from_str(&t).expect("graphene manifest is JSON"))),
        Err(e) => {
            assert!(
                !required(),
                "CV_REQUIRE_REFERENCE=1 but {}/manifest.json cannot be read ({e}): run tests/reference/graphene_check.py",
                dir.display()
            );
            eprintln!("SKIP: no graphene fixture at {}; graphene tests skipped", dir.display());
            None
        }
    }
}

/// A running double; killed on drop.
pub struct Double {
    child: Child,
    pub port: u16,
}

impl Double {
    /// Start the double on `fixture`, requiring `token` when given.
    pub fn start(fixture: &Path, token: Option<&str>) -> Option<Double> {
        let py = python("the chunkedgraph double")?;
        let mut cmd = Command::new(py);
        cmd.arg(crate_dir().join("tests/servers/chunkedgraph.py")).arg("--fixture").arg(fixture).args(["--port", "0"]);
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start the chunkedgraph double");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read PORT");
        let port = line.strip_prefix("PORT ").and_then(|p| p.trim().parse().ok()).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("the chunkedgraph double did not start: {line:?}")
        });
        Some(Double { child, port })
    }

    /// `graphene://http://127.0.0.1:PORT/segmentation/table/TABLE`.
    pub fn url(&self, table: &str) -> String {
        format!("graphene://http://127.0.0.1:{}/segmentation/table/{table}", self.port)
    }

    /// `POST /__control` with `cmd`.
    pub fn control(&self, cmd: Value) {
        ureq::post(&format!("http://127.0.0.1:{}/__control", self.port))
            .send_string(&cmd.to_string())
            .expect("control the double");
    }

    /// The requests recorded since the last `{"clear_log": true}`.
    pub fn requests(&self) -> Vec<Value> {
        let r = ureq::get(&format!("http://127.0.0.1:{}/__requests", self.port)).call().expect("the double's log");
        let v: Value = serde_json::from_reader(r.into_reader()).expect("JSON log");
        v.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
