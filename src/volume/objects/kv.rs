//! Values keyed by segment id in `neuroglancer_uint64_sharded_v1` shard files (meshes and
//! skeletons): the shard index (whole when small) and the minishard indices are cached, bounded
//! in bytes; a value is then one range request.

use std::sync::Arc;

use crate::cache::ByteLru;
use crate::cloudpath::join_key;
use crate::codec::compression;
use crate::error::{Error, Result};
use crate::format::sharding::{decode_minishard_index, DataEncoding, ShardingSpec};
use crate::store::Store;

/// Values of one shard this close together (bytes between them) are fetched in one range.
const COALESCE_GAP: u64 = 32 << 10;
/// Largest coalesced range.
const COALESCE_MAX: u64 = 16 << 20;

/// Shard indices up to this size are fetched whole.
const WHOLE_INDEX_MAX: u64 = 1 << 20;
/// Largest decoded minishard index accepted (about 2.8 million entries).
const MAX_MINISHARD_INDEX: usize = 64 << 20;

/// A decoded minishard index: `(id, start, end)` sorted by id.
type MinishardIndex = Vec<(u64, u64, u64)>;

/// A value read with where it was, or None when not stored.
pub(crate) type Found = Option<(Vec<u8>, Located)>;

/// Where a stored value is: its shard file's key and byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub key: String,
    pub start: u64,
    pub end: u64,
}

/// The shard files of one mesh or skeleton directory.
pub(crate) struct ShardedKv {
    pub spec: ShardingSpec,
    /// The directory's key in the layer's store.
    dir: String,
    index: ByteLru<u64, Vec<u8>>,
    minishard: ByteLru<(u64, u64), MinishardIndex>,
}

impl ShardedKv {
    pub(crate) fn new(spec: ShardingSpec, dir: &str, cache_bytes: usize) -> ShardedKv {
        ShardedKv {
            spec,
            dir: dir.to_string(),
            index: ByteLru::new(cache_bytes / 2),
            minishard: ByteLru::new(cache_bytes / 2),
        }
    }

    fn shard_key(&self, shard: u64) -> String {
        join_key(&self.dir, &self.spec.shard_file(shard))
    }

    /// Minishard `ms`'s index range in shard `shard` (absolute), None without a shard file.
    fn minishard_range(&self, store: &dyn Store, shard: u64, ms: u64) -> Result<Option<(u64, u64)>> {
        let key = self.shard_key(shard);
        let s = self.spec.index_len();
        let entry: Vec<u8> = if s <= WHOLE_INDEX_MAX {
            let index = match self.index.get(&shard) {
                Some(i) => i,
                None => match store.get_range(&key, 0, s)? {
                    None => return Ok(None),
                    Some(b) => {
                        if b.len() as u64 != s {
                            return Err(Error::decode(format!(
                                "{}: shard index of {} bytes, the spec makes it {s}",
                                store.url(&key),
                                b.len()
                            )));
                        }
                        let arc = Arc::new(b);
                        self.index.insert(shard, arc.clone(), s as usize);
                        arc
                    }
                },
            };
            index[(16 * ms) as usize..(16 * ms + 16) as usize].to_vec()
        } else {
            match store.get_range(&key, 16 * ms, 16 * ms + 16)? {
                None => return Ok(None),
                Some(b) if b.len() == 16 => b,
                Some(_) => return Err(Error::decode(format!("{}: short shard index entry", store.url(&key)))),
            }
        };
        let word = |i: usize| u64::from_le_bytes(entry[i..i + 8].try_into().unwrap_or([0; 8]));
        let (a, b) = (word(0), word(8));
        if b < a {
            return Err(Error::decode(format!(
                "{}: corrupt shard index: minishard {ms} ends ({b}) before it starts ({a})",
                store.url(&key)
            )));
        }
        match (a.checked_add(s), b.checked_add(s)) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            _ => Err(Error::decode(format!("{}: corrupt shard index: minishard {ms} overflows", store.url(&key)))),
        }
    }

    fn minishard_index(&self, store: &dyn Store, shard: u64, ms: u64) -> Result<Option<Arc<MinishardIndex>>> {
        if let Some(hit) = self.minishard.get(&(shard, ms)) {
            return Ok(Some(hit));
        }
        let key = self.shard_key(shard);
        let url = store.url(&key);
        let Some((a, b)) = self.minishard_range(store, shard, ms)? else { return Ok(None) };
        let entries = if a == b {
            Vec::new()
        } else {
            let stored_max = match self.spec.minishard_index_encoding {
                DataEncoding::Raw => MAX_MINISHARD_INDEX,
                DataEncoding::Gzip => compression::stored_bound(MAX_MINISHARD_INDEX),
            };
            if b - a > stored_max as u64 {
                return Err(Error::decode(format!(
                    "{url}: minishard {ms} index of {} bytes is larger than any index this library reads ({stored_max})",
                    b - a
                )));
            }
            let raw = store
                .get_range(&key, a, b)?
                .ok_or_else(|| Error::io(format!("{url}: shard file vanished while reading minishard {ms}")))?;
            if raw.len() as u64 != b - a {
                return Err(Error::decode(format!(
                    "{url}: minishard {ms} index is bytes {a}..{b}, the shard file ends at {}",
                    a + raw.len() as u64
                )));
            }
            let what = format!("{url} minishard {ms}");
            let raw = match self.spec.minishard_index_encoding {
                DataEncoding::Raw => raw,
                DataEncoding::Gzip => compression::gunzip(&raw, MAX_MINISHARD_INDEX, &what)?,
            };
            decode_minishard_index(&raw, self.spec.index_len(), &what)?
        };
        let bytes = 24 * entries.len() + 64;
        let arc = Arc::new(entries);
        self.minishard.insert((shard, ms), arc.clone(), bytes);
        Ok(Some(arc))
    }

    /// Where the value of `id` is, or None when it is not stored.
    ///
    /// # Errors
    /// I/O errors; corrupt shard or minishard indices (`Decode`).
    pub(crate) fn locate(&self, store: &dyn Store, id: u64) -> Result<Option<Located>> {
        let (shard, ms) = self.spec.locate(id);
        let Some(index) = self.minishard_index(store, shard, ms)? else { return Ok(None) };
        let Ok(j) = index.binary_search_by_key(&id, |e| e.0) else { return Ok(None) };
        let (_, start, end) = index[j];
        Ok(Some(Located { key: self.shard_key(shard), start, end }))
    }

    /// The value of `id` (the spec's data encoding removed, at most `limit` bytes decoded),
    /// with where it is; None when it is not stored.
    ///
    /// # Errors
    /// I/O errors; corrupt indices, a range past the shard's end, a damaged gzip value (`Decode`).
    pub(crate) fn get(&self, store: &dyn Store, id: u64, limit: usize) -> Result<Option<(Vec<u8>, Located)>> {
        let Some(at) = self.locate(store, id)? else { return Ok(None) };
        let url = format!("{} (segment {id})", store.url(&at.key));
        let stored_max = match self.spec.data_encoding {
            DataEncoding::Raw => limit,
            DataEncoding::Gzip => compression::stored_bound(limit),
        };
        if at.end - at.start > stored_max as u64 {
            return Err(Error::decode(format!(
                "{url}: a value of {} bytes, more than the {stored_max} this library reads for it",
                at.end - at.start
            )));
        }
        let raw = self.range(store, &at.key, at.start, at.end, &url)?;
        let value = match self.spec.data_encoding {
            DataEncoding::Raw => raw,
            DataEncoding::Gzip => compression::gunzip(&raw, limit, &url)?,
        };
        Ok(Some((value, at)))
    }

    /// The values of `ids` (as [`ShardedKv::get`], in the order of `ids`), located in parallel,
    /// then fetched with neighbouring values of a shard coalesced into one range request (gaps
    /// up to 32 KiB, ranges up to 16 MiB), as cloud-volume's `ShardReader.get_data` merges
    /// adjacent ones.
    ///
    /// # Errors
    /// As [`ShardedKv::get`].
    pub(crate) fn get_many(
        &self,
        store: &dyn Store,
        engine: &crate::volume::engine::Engine,
        ids: &[u64],
        limit: usize,
    ) -> Result<Vec<Found>> {
        let located = engine.map(ids, |_, &id| self.locate(store, id))?;
        let stored_max = match self.spec.data_encoding {
            DataEncoding::Raw => limit,
            DataEncoding::Gzip => compression::stored_bound(limit),
        } as u64;
        // (key, start, end, [index into ids...]) runs, per shard file in byte order.
        let mut order: Vec<usize> = (0..ids.len()).filter(|&i| located[i].is_some()).collect();
        for &i in &order {
            let at = located[i].as_ref().expect("filtered");
            if at.end - at.start > stored_max {
                return Err(Error::decode(format!(
                    "{} (segment {}): a value of {} bytes, more than the {stored_max} this library reads for it",
                    store.url(&at.key),
                    ids[i],
                    at.end - at.start
                )));
            }
        }
        order.sort_by(|&i, &j| {
            let (a, b) = (located[i].as_ref().expect("filtered"), located[j].as_ref().expect("filtered"));
            (&a.key, a.start).cmp(&(&b.key, b.start))
        });
        let mut runs: Vec<(String, u64, u64, Vec<usize>)> = Vec::new();
        for i in order {
            let at = located[i].as_ref().expect("filtered");
            match runs.last_mut() {
                Some((k, a, b, members))
                    if *k == at.key
                        && at.start <= b.saturating_add(COALESCE_GAP)
                        && at.end.max(*b) - *a <= COALESCE_MAX =>
                {
                    *b = (*b).max(at.end);
                    members.push(i);
                }
                _ => runs.push((at.key.clone(), at.start, at.end, vec![i])),
            }
        }
        let fetched = engine.map(&runs, |_, (key, a, b, members)| {
            let url = store.url(key);
            let what = format!("{url} (segments {} and others)", ids[members[0]]);
            let raw = self.range(store, key, *a, *b, &what)?;
            members
                .iter()
                .map(|&i| {
                    let at = located[i].as_ref().expect("filtered");
                    let bytes = &raw[(at.start - a) as usize..(at.end - a) as usize];
                    let url = format!("{url} (segment {})", ids[i]);
                    let value = match self.spec.data_encoding {
                        DataEncoding::Raw => bytes.to_vec(),
                        DataEncoding::Gzip => compression::gunzip(bytes, limit, &url)?,
                    };
                    Ok((i, value))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let mut out: Vec<Found> = (0..ids.len()).map(|_| None).collect();
        for (i, value) in fetched.into_iter().flatten() {
            out[i] = Some((value, located[i].clone().expect("filtered")));
        }
        Ok(out)
    }

    /// Bytes `[a, b)` of shard file `key`, all of them.
    pub(crate) fn range(&self, store: &dyn Store, key: &str, a: u64, b: u64, what: &str) -> Result<Vec<u8>> {
        let raw = store
            .get_range(key, a, b)?
            .ok_or_else(|| Error::io(format!("{what}: the shard file vanished during the read")))?;
        if raw.len() as u64 != b - a {
            return Err(Error::decode(format!(
                "{what}: bytes {a}..{b} asked, the shard file ends at {}",
                a + raw.len() as u64
            )));
        }
        Ok(raw)
    }
}
