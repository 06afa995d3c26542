//! Where credentials are found, as cloud-files (cloud-volume's storage layer) looks for them:
//! `$CLOUD_VOLUME_DIR/secrets/NAME` (default `~/.cloudvolume/secrets`), then the back-compat
//! places `/NAME` and `$CLOUD_FILES_DIR/secrets/NAME` (default `~/.cloudfiles/secrets`).
//!
//! Secret values never enter error messages: messages name the file, never its contents.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

fn env_dir(var: &str, default_leaf: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => home().join(default_leaf),
    }
}

/// `$CLOUD_VOLUME_DIR`, default `~/.cloudvolume`.
pub fn cloud_volume_dir() -> PathBuf {
    env_dir("CLOUD_VOLUME_DIR", ".cloudvolume")
}

/// The preferred secrets directory, `$CLOUD_VOLUME_DIR/secrets`.
pub fn secrets_dir() -> PathBuf {
    cloud_volume_dir().join("secrets")
}

/// The file cloud-files would read for the secret `name`: the first that exists of the
/// preferred directory, `/`, and `$CLOUD_FILES_DIR/secrets`; None when none exists.
pub fn secret_path(name: &str) -> Option<PathBuf> {
    let candidates = [
        secrets_dir().join(name),
        Path::new("/").join(name),
        env_dir("CLOUD_FILES_DIR", ".cloudfiles").join("secrets").join(name),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

/// Read and parse a secret file as a JSON object. Errors name the file, not its contents.
///
/// # Errors
/// `Auth` when the file cannot be read or is not a JSON object.
pub fn read_secret_file(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::auth(format!("secret file {}: cannot be read: {e}", path.display())))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::auth(format!("secret file {}: not a JSON object", path.display()))),
        // serde's message quotes no input beyond a line and column.
        Err(e) => Err(Error::auth(format!("secret file {}: not valid JSON ({e})", path.display()))),
    }
}

/// The first of `names` (most specific first, e.g. `["mybucket-aws-secret.json",
/// "aws-secret.json"]`) that exists in the secret places, parsed; None when none exists.
///
/// # Errors
/// As [`read_secret_file`].
pub fn find_secret(names: &[String]) -> Result<Option<(PathBuf, serde_json::Map<String, Value>)>> {
    for name in names {
        if let Some(p) = secret_path(name) {
            let m = read_secret_file(&p)?;
            return Ok(Some((p, m)));
        }
    }
    Ok(None)
}

/// A secret handed in through the `secrets` option: an object, or the path of a JSON file.
///
/// # Errors
/// As [`read_secret_file`]; any other JSON type is `InvalidArgument`.
pub fn from_option(v: &Value) -> Result<serde_json::Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m.clone()),
        Value::String(p) => read_secret_file(Path::new(p)),
        _ => Err(Error::invalid("option \"secrets\" must be an object or the path of a JSON file")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_secret_files_name_the_file_not_the_contents() {
        let dir = std::env::temp_dir().join(format!("cv-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("aws-secret.json");
        std::fs::write(&p, "{\"AWS_SECRET_ACCESS_KEY\": \"hunter2hunter2\"").unwrap();
        let e = read_secret_file(&p).unwrap_err();
        assert!(e.message().contains("aws-secret.json"), "{e}");
        assert!(!e.message().contains("hunter2"), "{e}");
        std::fs::write(&p, "[\"hunter2hunter2\"]").unwrap();
        let e = read_secret_file(&p).unwrap_err();
        assert!(!e.message().contains("hunter2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
