//! `file://`: local directories, with cloud-volume's compression suffixes (`.gz`, `.br`, `.zstd`).

use std::io::ErrorKind as IoKind;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{ContentEncoding, Object, RangeRead, Store};

/// A file's generation: size, modification time and inode (a rename-into-place changes it).
fn generation_of(m: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{}-{}.{}-{}", m.len(), m.mtime(), m.mtime_nsec(), m.ino())
}
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

/// Distinguishes the temporary files of concurrent writers in one process.
static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Store for FileStore {
    fn get(&self, key: &str) -> Result<Option<Object>> {
        let mut bytes = Vec::new();
        Ok(self.get_into(key, &mut bytes)?.map(|encoding| Object { bytes, encoding }))
    }

    fn get_into(&self, key: &str, buf: &mut Vec<u8>) -> Result<Option<ContentEncoding>> {
        use std::io::Read;
        let path = join_key(&self.base, key);
        let first = self.hint.load(Ordering::Relaxed);
        let order = std::iter::once(first).chain((0..SUFFIXES.len()).filter(|&i| i != first));
        for i in order {
            let (suffix, encoding) = SUFFIXES[i];
            let full = format!("{path}{suffix}");
            let opened = std::fs::File::open(&full).and_then(|mut f| {
                let len = f.metadata()?.len() as usize;
                buf.clear();
                buf.reserve(len);
                f.read_to_end(buf)
            });
            match opened {
                Ok(_) => {
                    if i != first {
                        self.hint.store(i, Ordering::Relaxed);
                    }
                    return Ok(Some(encoding));
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

    fn put(&self, key: &str, bytes: &[u8], encoding: ContentEncoding, _content_type: &str) -> Result<()> {
        use std::io::Write;
        let path = join_key(&self.base, key);
        let suffix = SUFFIXES.iter().find(|s| s.1 == encoding).map_or("", |s| s.0);
        let full = format!("{path}{suffix}");
        let target = std::path::Path::new(&full);
        let dir = target.parent().unwrap_or(std::path::Path::new("/"));
        let denied = |e: &std::io::Error, what: &str| {
            if e.kind() == IoKind::PermissionDenied {
                Error::auth(format!("file://{full}: permission denied ({what})"))
            } else {
                Error::io(format!("file://{full}: {what}: {e}"))
            }
        };
        std::fs::create_dir_all(dir).map_err(|e| denied(&e, "creating its directory"))?;
        let name = target.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.flush()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(denied(&e, "writing a temporary file"));
        }
        if let Err(e) = std::fs::rename(&tmp, target) {
            let _ = std::fs::remove_file(&tmp);
            return Err(denied(&e, "renaming the temporary file into place"));
        }
        // Other stored variants of the key would shadow or contradict the new object.
        for (other, _) in SUFFIXES {
            if other != suffix {
                match std::fs::remove_file(format!("{path}{other}")) {
                    Ok(()) => {}
                    Err(e) if e.kind() == IoKind::NotFound => {}
                    Err(e) => return Err(denied(&e, "removing a stale variant")),
                }
            }
        }
        if let Some(i) = SUFFIXES.iter().position(|s| s.0 == suffix) {
            self.hint.store(i, Ordering::Relaxed);
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = join_key(&self.base, key);
        for (suffix, _) in SUFFIXES {
            match std::fs::remove_file(format!("{path}{suffix}")) {
                Ok(()) => {}
                Err(e) if e.kind() == IoKind::NotFound => {}
                Err(e) if e.kind() == IoKind::PermissionDenied => {
                    return Err(Error::auth(format!("file://{path}{suffix}: permission denied")))
                }
                Err(e) => return Err(Error::io(format!("file://{path}{suffix}: {e}"))),
            }
        }
        Ok(())
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

    fn get_range_if(&self, key: &str, start: u64, end: u64, if_generation: Option<&str>) -> Result<RangeRead> {
        use std::os::unix::fs::FileExt;
        let path = join_key(&self.base, key);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(RangeRead::Missing),
            Err(e) if e.kind() == IoKind::PermissionDenied => {
                return Err(Error::auth(format!("file://{path}: permission denied")))
            }
            Err(e) => return Err(Error::io(format!("file://{path}: {e}"))),
        };
        let meta = file.metadata().map_err(|e| Error::io(format!("file://{path}: {e}")))?;
        let generation = generation_of(&meta);
        if if_generation.is_some_and(|g| g != generation) {
            return Ok(RangeRead::Stale);
        }
        let len = usize::try_from(end.saturating_sub(start))
            .map_err(|_| Error::decode(format!("file://{path}: byte range [{start}, {end}) is too large")))?;
        if end > meta.len() {
            return Err(Error::decode(format!(
                "file://{path}: byte range [{start}, {end}) reaches past the end of the file ({} bytes)",
                meta.len()
            )));
        }
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            match file.read_at(&mut buf[done..], start + done as u64) {
                Ok(0) => {
                    return Err(Error::decode(format!(
                        "file://{path}: byte range [{start}, {end}) reaches past the end of the file ({} bytes)",
                        meta.len()
                    )));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(Error::io(format!("file://{path}: {e}"))),
            }
        }
        Ok(RangeRead::Data(buf, Some(generation)))
    }

    fn cheap_generation(&self, key: &str) -> Option<Result<Option<String>>> {
        let path = join_key(&self.base, key);
        Some(match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(generation_of(&m))),
            Err(e) if e.kind() == IoKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("file://{path}: {e}"))),
        })
    }

    fn url(&self, key: &str) -> String {
        format!("file://{}", join_key(&self.base, key))
    }

    fn default_parallel(&self) -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}
