//! Asking cloud-volume itself (the venv's python, scripts/setup.sh) about a layer, to compare
//! with this library's answer: `vol.image.has_data(mip)` for every mip.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::env::python;

const HAS_DATA: &str = r#"
import contextlib, io, json, sys, warnings
warnings.filterwarnings("ignore")
url, secrets = sys.argv[1], json.loads(sys.argv[2])
# cloud-files prints notices about missing credentials on stdout.
with contextlib.redirect_stdout(io.StringIO()):
    from cloudvolume import CloudVolume
    vol = CloudVolume(url, progress=False, secrets=secrets)
    got = [bool(vol.image.has_data(m)) for m in range(len(vol.scales))]
print(json.dumps(got))
"#;

/// cloud-volume's `has_data` of every mip of the layer at `url` (cloud-volume's spelling of it,
/// e.g. `s3://http://host:port/bucket/layer`), opened with `secrets` (its `secrets` argument;
/// null for none). The child's secret places (`CLOUD_VOLUME_DIR`, `CLOUD_FILES_DIR`) are
/// `home`, so no real secret is read, and `env` is added to its environment. None (after a
/// notice) without the venv; a failing cloud-volume panics with its stderr.
pub fn has_data(url: &str, secrets: &Value, home: &Path, env: &[(&str, &str)]) -> Option<Vec<bool>> {
    let py = python("the comparison with cloud-volume's has_data")?;
    std::fs::create_dir_all(home).expect("the child's secret directory");
    let mut cmd = Command::new(py);
    cmd.arg("-c").arg(HAS_DATA).arg(url).arg(secrets.to_string());
    cmd.env("CLOUD_VOLUME_DIR", home).env("CLOUD_FILES_DIR", home).env_remove("GOOGLE_APPLICATION_CREDENTIALS");
    for v in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the venv's python");
    assert!(out.status.success(), "cloud-volume's has_data on {url} failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    Some(serde_json::from_str(line).unwrap_or_else(|e| panic!("cloud-volume's answer {text:?}: {e}")))
}

/// The info of a uint8 raw layer whose scales have the keys `keys` (each 32x32x8 voxels in
/// chunks of 16x16x8, the resolution the key's numbers), for checks of `has_data`.
pub fn info_with_scales(keys: &[&str]) -> Value {
    let scales: Vec<Value> = keys
        .iter()
        .map(|k| {
            let res: Vec<f64> = k.split('_').map(|n| n.parse().expect("a key of three numbers")).collect();
            serde_json::json!({
                "key": k, "size": [32, 32, 8], "voxel_offset": [0, 0, 0], "resolution": res,
                "chunk_sizes": [[16, 16, 8]], "encoding": "raw",
            })
        })
        .collect();
    serde_json::json!({"type": "image", "data_type": "uint8", "num_channels": 1, "scales": scales})
}
