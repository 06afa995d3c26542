//! A layer's skeletons (`neuroglancer_skeletons`): the file `<id>` of the skeleton directory or
//! the sharded value of `id`, decoded with the info's vertex attributes and made physical with
//! its transform (osteoid's `physical_space()`); unsharded skeletons written as cloud-volume's
//! `upload` writes them (gzip unless told otherwise).

use std::sync::Arc;

use super::kv::ShardedKv;
use crate::codec::compression;
use crate::error::{Error, Result};
use crate::format::skeleton::{Skeleton, SkeletonInfo};
use crate::format::ContentEncoding;
use crate::store::Store;
use crate::volume::engine::Engine;

/// Largest skeleton read.
const MAX_SKELETON: usize = 1 << 30;

/// The skeleton directory of a layer.
pub(crate) struct Skeletons {
    store: Arc<dyn Store>,
    dir: String,
    pub(crate) info: SkeletonInfo,
    kv: Option<ShardedKv>,
    engine: Arc<Engine>,
}

impl Skeletons {
    pub(crate) fn new(store: Arc<dyn Store>, dir: &str, info: SkeletonInfo, engine: Arc<Engine>) -> Skeletons {
        let kv = info.sharding.clone().map(|s| ShardedKv::new(s, dir, 32 << 20));
        Skeletons { store, dir: dir.to_string(), info, kv, engine }
    }

    fn key(&self, id: u64) -> String {
        crate::cloudpath::join_key(&self.dir, &id.to_string())
    }

    /// The stored skeleton of `id` (vertices as stored), None when missing.
    fn raw(&self, id: u64) -> Result<Option<Skeleton>> {
        let (bytes, url) = match &self.kv {
            Some(kv) => match kv.get(self.store.as_ref(), id, MAX_SKELETON)? {
                None => return Ok(None),
                Some((b, at)) => (b, format!("{} (segment {id})", self.store.url(&at.key))),
            },
            None => {
                let key = self.key(id);
                let url = self.store.url(&key);
                let mut bytes = Vec::new();
                match self.store.get_into(&key, &mut bytes, Some(compression::stored_bound(MAX_SKELETON) as u64))? {
                    None => return Ok(None),
                    Some(encoding) => {
                        (compression::decompress(compression::Object { bytes, encoding }, MAX_SKELETON, &url)?, url)
                    }
                }
            }
        };
        Skeleton::decode(&bytes, &self.info.vertex_attributes, &url).map(Some)
    }

    fn missing_url(&self, id: u64) -> String {
        match &self.kv {
            Some(kv) => {
                let (shard, _) = kv.spec.locate(id);
                let key = crate::cloudpath::join_key(&self.dir, &kv.spec.shard_file(shard));
                format!("{} (no entry for it)", self.store.url(&key))
            }
            None => self.store.url(&self.key(id)),
        }
    }

    /// The skeletons of `ids`, physical (in the order of `ids`; a missing one is None with
    /// `allow_missing`).
    ///
    /// # Errors
    /// A missing skeleton (`NotFound`, naming the id and URL), a damaged one (`Decode`), I/O.
    pub(crate) fn get(&self, ids: &[u64], allow_missing: bool) -> Result<Vec<Option<Skeleton>>> {
        if let (Some(kv), true) = (&self.kv, ids.len() > 1) {
            // Sharded, several: neighbouring values fetched together, then decoded in parallel.
            let values = kv.get_many(self.store.as_ref(), &self.engine, ids, MAX_SKELETON)?;
            return self.engine.map(&values, |i, v| match v {
                Some((bytes, at)) => {
                    let url = format!("{} (segment {})", self.store.url(&at.key), ids[i]);
                    let mut s = Skeleton::decode(bytes, &self.info.vertex_attributes, &url)?;
                    s.vertices = s.physical(self.info.transform.as_ref());
                    Ok(Some(s))
                }
                None if allow_missing => Ok(None),
                None => {
                    Err(Error::not_found(format!("segment {} has no skeleton: {}", ids[i], self.missing_url(ids[i]))))
                }
            });
        }
        self.engine.map(ids, |_, &id| match self.raw(id)? {
            Some(mut s) => {
                s.vertices = s.physical(self.info.transform.as_ref());
                Ok(Some(s))
            }
            None if allow_missing => Ok(None),
            None => Err(Error::not_found(format!("segment {id} has no skeleton: {}", self.missing_url(id)))),
        })
    }

    /// Write the skeleton of `id` (vertices as given, attributes in the info's order).
    ///
    /// # Errors
    /// A sharded directory (`Unsupported`); attributes that do not match the info, edges past
    /// the vertices (`InvalidArgument`); I/O errors.
    pub(crate) fn put(&self, id: u64, s: &Skeleton, compress: bool) -> Result<()> {
        if self.kv.is_some() {
            return Err(Error::unsupported(format!(
                "{}: writing single skeletons into shards is not supported (write them unsharded)",
                self.store.url(&self.dir)
            )));
        }
        let bytes = s.encode(&self.info.vertex_attributes)?;
        let key = self.key(id);
        if compress {
            self.store.put(&key, &compression::gzip(&bytes, 6), ContentEncoding::Gzip, "application/octet-stream")
        } else {
            self.store.put(&key, &bytes, ContentEncoding::Identity, "application/octet-stream")
        }
    }
}
