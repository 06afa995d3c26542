//! `file://`: local directories, with cloud-volume's compression suffixes (`.gz`, `.br`, `.zstd`).

use std::io::ErrorKind as IoKind;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{ContentEncoding, Object, Store};
use crate::cloudpath::join_key;
use crate::error::{Error, Result};

/// Suffixes probed after the plain name, as cloud-files does.
const SUFFIXES: [(&str, ContentEncoding); 4] = [
    ("", ContentEncoding::Identity),
    (".gz", ContentEncoding::Gzip),
    (".br", ContentEncoding::Brotli),
    (".zstd", ContentEncoding::Zstd),
];

pub struct FileStore {
    base: String,
    /// The suffix that matched last: a layer is usually written one way throughout, so trying it
    /// first saves a failed open per chunk.
    hint: AtomicUsize,
}

impl FileStore {
    pub fn new(base: &str) -> FileStore {
        FileStore { base: base.to_string(), hint: AtomicUsize::new(0) }
    }
}

impl Store for FileStore {
    fn get(&self, key: &str) -> Result<Option<Object>> {
        let path = join_key(&self.base, key);
        let first = self.hint.load(Ordering::Relaxed);
        let order = std::iter::once(first).chain((0..SUFFIXES.len()).filter(|&i| i != first));
        for i in order {
            let (suffix, encoding) = SUFFIXES[i];
            let full = format!("{path}{suffix}");
            match std::fs::read(&full) {
                Ok(bytes) => {
                    if i != first {
                        self.hint.store(i, Ordering::Relaxed);
                    }
                    return Ok(Some(Object { bytes, encoding }));
                }
                Err(e) if e.kind() == IoKind::NotFound => continue,
                // A directory where a file is expected, or a path through a file.
                Err(e) if e.kind() == IoKind::IsADirectory || e.raw_os_error() == Some(libc::ENOTDIR) => {
                    continue
                }
                Err(e) if e.kind() == IoKind::PermissionDenied => {
                    return Err(Error::auth(format!("file://{full}: permission denied")))
                }
                Err(e) => return Err(Error::io(format!("file://{full}: {e}"))),
            }
        }
        Ok(None)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let path = join_key(&self.base, key);
        for (suffix, _) in SUFFIXES {
            match std::fs::metadata(format!("{path}{suffix}")) {
                Ok(m) if m.is_file() => return Ok(true),
                Ok(_) => {}
                Err(e) if e.kind() == IoKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {}
                Err(e) => return Err(Error::io(format!("file://{path}{suffix}: {e}"))),
            }
        }
        Ok(false)
    }

    fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Option<Vec<u8>>> {
        use std::os::unix::fs::FileExt;
        let path = join_key(&self.base, key);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(None),
            Err(e) if e.kind() == IoKind::PermissionDenied => {
                return Err(Error::auth(format!("file://{path}: permission denied")))
            }
            Err(e) => return Err(Error::io(format!("file://{path}: {e}"))),
        };
        let len = usize::try_from(end.saturating_sub(start))
            .map_err(|_| Error::decode(format!("file://{path}: byte range [{start}, {end}) is too large")))?;
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            match file.read_at(&mut buf[done..], start + done as u64) {
                Ok(0) => {
                    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                    return Err(Error::decode(format!(
                        "file://{path}: byte range [{start}, {end}) reaches past the end of the file ({size} bytes)"
                    )));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(Error::io(format!("file://{path}: {e}"))),
            }
        }
        Ok(Some(buf))
    }

    fn url(&self, key: &str) -> String {
        format!("file://{}", join_key(&self.base, key))
    }

    fn default_parallel(&self) -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}
