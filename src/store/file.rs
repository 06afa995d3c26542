//! `file://`: local directories, with cloud-volume's compression suffixes (`.gz`, `.br`, `.zstd`).
//! Listings walk the directory of a prefix as cloud-files' `os.walk` does, stopping at the first
//! file found.

use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{too_large, ContentEncoding, GetOptions, Got, ReadableStore, WritableStore};
use crate::cloudpath::join_key;
use crate::error::{Error, Result};

/// A file's generation: size, modification time and inode (a rename-into-place changes it).
fn generation_of(m: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{}-{}.{}-{}", m.len(), m.mtime(), m.mtime_nsec(), m.ino())
}

/// A file in `dir` whose name starts with `start`, or in (any depth of) a directory in `dir`
/// whose name does, as Python's `os.walk` finds them for cloud-files: symbolic links to
/// directories are not followed, other links count as files; a directory that is missing (or
/// a file) holds nothing.
fn file_under(dir: &Path, start: &[u8]) -> Result<Option<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let failed = |e: std::io::Error, p: &Path| {
        if e.kind() == IoKind::PermissionDenied {
            Error::auth(format!("file://{}: permission denied (listing the directory)", p.display()))
        } else {
            Error::io(format!("file://{}: listing the directory: {e}", p.display()))
        }
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == IoKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
        Err(e) => return Err(failed(e, dir)),
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.kind() == IoKind::NotFound => continue,
            Err(e) => return Err(failed(e, dir)),
        };
        if !entry.file_name().as_bytes().starts_with(start) {
            continue;
        }
        let path = entry.path();
        let kind = match entry.file_type() {
            Ok(k) => k,
            Err(e) if e.kind() == IoKind::NotFound => continue,
            Err(e) => return Err(failed(e, &path)),
        };
        if kind.is_dir() {
            if let Some(found) = file_under(&path, b"")? {
                return Ok(Some(found));
            }
        } else if !(kind.is_symlink() && path.is_dir()) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Suffixes probed after the plain name, as cloud-files does.
const SUFFIXES: [ContentEncoding; 4] = ContentEncoding::ALL;

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

impl FileStore {
    /// The whole object under `path` (the plain name, then each suffix), into `buf`.
    fn read_whole(&self, path: &str, opts: &GetOptions<'_>, buf: &mut Vec<u8>) -> Result<Got> {
        use std::io::Read;
        let first = self.hint.load(Ordering::Relaxed);
        let order = std::iter::once(first).chain((0..SUFFIXES.len()).filter(|&i| i != first));
        for i in order {
            let encoding = SUFFIXES[i];
            let full = format!("{path}{}", encoding.file_suffix());
            let opened = std::fs::File::open(&full).and_then(|f| {
                let meta = f.metadata()?;
                Ok((f, meta))
            });
            let (mut f, meta) = match opened {
                Ok(o) => o,
                Err(e) if e.kind() == IoKind::NotFound => continue,
                // A directory where a file is expected, or a path through a file.
                Err(e) if e.kind() == IoKind::IsADirectory || e.raw_os_error() == Some(libc::ENOTDIR) => continue,
                Err(e) if e.kind() == IoKind::PermissionDenied => {
                    return Err(Error::auth(format!("file://{full}: permission denied")))
                }
                Err(e) => return Err(Error::io(format!("file://{full}: {e}"))),
            };
            if meta.is_dir() {
                continue;
            }
            let generation = generation_of(&meta);
            if opts.if_generation.is_some_and(|g| g != generation) {
                return Ok(Got::Stale);
            }
            if let Some(max) = opts.max_len.filter(|&m| meta.len() > m) {
                return Err(too_large(&format!("file://{full}"), meta.len(), max));
            }
            buf.clear();
            buf.reserve(meta.len() as usize);
            let read = match opts.max_len {
                // A file growing while it is read is cut at the limit and refused.
                Some(max) => (&mut f).take(max + 1).read_to_end(buf),
                None => f.read_to_end(buf),
            };
            read.map_err(|e| Error::io(format!("file://{full}: {e}")))?;
            if let Some(max) = opts.max_len.filter(|&m| buf.len() as u64 > m) {
                return Err(too_large(&format!("file://{full}"), buf.len() as u64, max));
            }
            if i != first {
                self.hint.store(i, Ordering::Relaxed);
            }
            return Ok(Got::Found { encoding, generation: Some(generation) });
        }
        Ok(Got::Missing)
    }

    /// Bytes `[start, end)` of the file at `path` (no suffixes: ranges are of shard files).
    fn read_range(path: &str, start: u64, end: u64, if_generation: Option<&str>, buf: &mut Vec<u8>) -> Result<Got> {
        use std::os::unix::fs::FileExt;
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(Got::Missing),
            Err(e) if e.kind() == IoKind::PermissionDenied => {
                return Err(Error::auth(format!("file://{path}: permission denied")))
            }
            Err(e) => return Err(Error::io(format!("file://{path}: {e}"))),
        };
        let meta = file.metadata().map_err(|e| Error::io(format!("file://{path}: {e}")))?;
        let generation = generation_of(&meta);
        if if_generation.is_some_and(|g| g != generation) {
            return Ok(Got::Stale);
        }
        let past_end = || {
            Error::decode(format!(
                "file://{path}: byte range [{start}, {end}) reaches past the end of the file ({} bytes)",
                meta.len()
            ))
        };
        if end > meta.len() {
            return Err(past_end());
        }
        let len = usize::try_from(end.saturating_sub(start))
            .map_err(|_| Error::decode(format!("file://{path}: byte range [{start}, {end}) is too large")))?;
        buf.clear();
        buf.resize(len, 0);
        let mut done = 0;
        while done < len {
            match file.read_at(&mut buf[done..], start + done as u64) {
                Ok(0) => return Err(past_end()),
                Ok(n) => done += n,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(Error::io(format!("file://{path}: {e}"))),
            }
        }
        Ok(Got::Found { encoding: ContentEncoding::Identity, generation: Some(generation) })
    }
}

impl ReadableStore for FileStore {
    fn get_with(&self, key: &str, opts: &GetOptions<'_>, buf: &mut Vec<u8>) -> Result<Got> {
        let path = join_key(&self.base, key);
        match opts.range {
            None => self.read_whole(&path, opts, buf),
            Some((start, end)) => Self::read_range(&path, start, end, opts.if_generation, buf),
        }
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let path = join_key(&self.base, key);
        for encoding in SUFFIXES {
            let full = format!("{path}{}", encoding.file_suffix());
            match std::fs::metadata(&full) {
                Ok(m) if m.is_file() => return Ok(true),
                Ok(_) => {}
                Err(e) if e.kind() == IoKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {}
                Err(e) => return Err(Error::io(format!("file://{full}: {e}"))),
            }
        }
        Ok(false)
    }

    fn first_under(&self, prefix: &str) -> Result<Option<String>> {
        // cloud-files walks the directory of the prefix and keeps the files whose path relative
        // to the layer starts with it: here, the entries of that directory whose names start
        // with the prefix's last part, each a file or a directory holding one.
        let (dir, start) = match prefix.rfind('/') {
            Some(i) => (&prefix[..i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let Some(found) = file_under(Path::new(&join_key(&self.base, dir)), start.as_bytes())? else {
            return Ok(None);
        };
        let full = found.to_string_lossy();
        let name = super::relative_name(self.base.trim_end_matches('/'), &full);
        // Keys, as cloud-files names them: without their compression suffix.
        let suffix = SUFFIXES.iter().map(|e| e.file_suffix()).find(|s| !s.is_empty() && name.ends_with(s));
        Ok(Some(name[..name.len() - suffix.map_or(0, str::len)].to_string()))
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

impl WritableStore for FileStore {
    fn put(&self, key: &str, bytes: &[u8], encoding: ContentEncoding, _content_type: &str) -> Result<()> {
        use std::io::Write;
        let path = join_key(&self.base, key);
        let suffix = encoding.file_suffix();
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
        let tmp =
            dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), TMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
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
        for other in SUFFIXES.map(ContentEncoding::file_suffix) {
            if other != suffix {
                match std::fs::remove_file(format!("{path}{other}")) {
                    Ok(()) => {}
                    Err(e) if e.kind() == IoKind::NotFound => {}
                    Err(e) => return Err(denied(&e, "removing a stale variant")),
                }
            }
        }
        if let Some(i) = SUFFIXES.iter().position(|&e| e == encoding) {
            self.hint.store(i, Ordering::Relaxed);
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = join_key(&self.base, key);
        for suffix in SUFFIXES.map(ContentEncoding::file_suffix) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_find_files_by_prefix_as_cloud_files_does() {
        let root = std::env::temp_dir().join(format!("cv-file-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let layer = root.join("layer");
        for d in ["8_8_40", "16_16_40/a/b", "4_4_4"] {
            std::fs::create_dir_all(layer.join(d)).unwrap();
        }
        std::fs::write(layer.join("info"), b"{}").unwrap();
        std::fs::create_dir_all(layer.join("32_32_40")).unwrap();
        std::fs::write(layer.join("32_32_40/0-1_0-1_0-1.gz"), b"x").unwrap();
        std::fs::write(root.join("other"), b"x").unwrap();
        let s = FileStore::new(&layer.to_string_lossy());
        let first = |p: &str| s.first_under(p).unwrap();
        assert_eq!(first("8_8_40"), None, "an empty directory");
        assert_eq!(first("16_16_40"), None, "empty directories");
        assert_eq!(first("4_4_4"), None, "an empty directory, nothing below 4_4_40 either");
        assert_eq!(first("32_32_40").as_deref(), Some("32_32_40/0-1_0-1_0-1"), "the suffix removed");
        assert_eq!(first("32_32_40/").as_deref(), Some("32_32_40/0-1_0-1_0-1"));
        assert_eq!(first("3").as_deref(), Some("32_32_40/0-1_0-1_0-1"), "a bare prefix");
        assert_eq!(first("32_32_40/0-1").as_deref(), Some("32_32_40/0-1_0-1_0-1"));
        assert_eq!(first("inf").as_deref(), Some("info"));
        assert_eq!(first("info/"), None, "a file is no folder");
        assert_eq!(first("nothing/at/all"), None);
        assert_eq!(first("../oth").as_deref().map(|n| n.ends_with("/other")), Some(true), "keys leave as reads do");
        std::fs::write(layer.join("16_16_40/a/b/c"), b"").unwrap();
        assert_eq!(first("16_16_40").as_deref(), Some("16_16_40/a/b/c"), "an empty file is a file");
        assert!(first("").is_some());
        let missing = FileStore::new(&root.join("nowhere").to_string_lossy());
        assert_eq!(missing.first_under("").unwrap(), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
