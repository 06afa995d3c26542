//! A layer's meshes: legacy (`<id>:0` manifests naming fragment files) and multi-resolution
//! (`neuroglancer_multilod_draco`, unsharded or sharded), read as cloud-volume 12.15.2 reads
//! them; legacy meshes written as cloud-volume writes them.
//!
//! - Legacy `get`: the manifest, then its fragments in parallel, concatenated in name order
//!   (cloud-volume sorts them so), the transform applied in `f64`, then (by default) welded as
//!   `Mesh.consolidate()` welds: equal vertices merged, vertices sorted, faces sorted and
//!   repeated ones dropped. Several ids at once are concatenated in id order before the weld
//!   (`get([a, b, c])`).
//! - Multi-resolution `get`: the manifest (`<id>.index`, or the sharded value), then the byte
//!   range of the chosen lod's fragments in one request (`<id>`, or the bytes before the
//!   manifest in its shard); each Draco fragment's positions mapped to model space, the
//!   transform applied, fragments concatenated in manifest order; not welded by default (as
//!   cloud-volume). Empty fragments are skipped.

use std::sync::Arc;

use super::kv::{Located, ShardedKv};
use crate::cache::ByteLru;
use crate::codec::{compression, draco};
use crate::error::{Error, Result};
use crate::format::mesh::{
    consolidate, deduplicate_chunk_boundaries, encode_legacy_fragment, legacy_fragment, legacy_manifest,
    legacy_manifest_json, transform_point, Mesh, MeshInfo, MeshKind, MultiLodManifest,
};
use crate::format::ContentEncoding;
use crate::store::Store;
use crate::volume::engine::Engine;

/// Largest manifest (legacy JSON or multi-resolution binary) read.
const MAX_MANIFEST: usize = 64 << 20;
/// Largest fragment (legacy file) or lod's fragment data read.
const MAX_FRAGMENT: usize = 1 << 30;

/// Which level of detail to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lod {
    /// This level (0: the finest).
    Index(usize),
    /// The coarsest the mesh has (cloud-volume's `lod=-1`).
    Coarsest,
}

/// How meshes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshRequest {
    pub lod: Lod,
    /// Weld equal vertices (cloud-volume's `remove_duplicate_vertices`); None: cloud-volume's
    /// default (legacy meshes welded, multi-resolution ones not).
    pub weld: Option<bool>,
    /// Leave out ids without a mesh instead of failing.
    pub allow_missing: bool,
    /// Legacy meshes: instead of welding every equal vertex, merge only pairs on the planes of
    /// this chunk grid (voxels at the meshes' mip; cloud-volume's `chunk_size`).
    pub chunk_size: Option<[i64; 3]>,
}

impl Default for MeshRequest {
    fn default() -> Self {
        MeshRequest { lod: Lod::Index(0), weld: None, allow_missing: false, chunk_size: None }
    }
}

/// A multi-resolution manifest with where its fragment data is.
struct Manifest {
    m: MultiLodManifest,
    /// The key holding the fragments and the offset where lod 0's start.
    data_key: String,
    data_start: u64,
}

/// The mesh directory of a layer.
pub(crate) struct Meshes {
    store: Arc<dyn Store>,
    dir: String,
    pub(crate) info: MeshInfo,
    kv: Option<ShardedKv>,
    engine: Arc<Engine>,
    manifests: ByteLru<u64, Manifest>,
    /// The layer's (resolution, voxel_offset) per mip, for `chunk_size` deduplication.
    scales: Vec<([f64; 3], [i64; 3])>,
}

/// A multi-resolution mesh's chosen lod, fetched and not yet decoded.
struct Fetched {
    man: Arc<Manifest>,
    lod: usize,
    data: Vec<u8>,
    url: String,
}

/// What one id's read produced: vertices (transformed) and faces, or None (missing).
type Part = Option<(Verts, Vec<[u32; 3]>)>;

/// A part's vertices: `f64` while a weld may still compare them, `f32` (the output) at once
/// when none will.
enum Verts {
    F64(Vec<[f64; 3]>),
    F32(Vec<[f32; 3]>),
}

impl Verts {
    fn len(&self) -> usize {
        match self {
            Verts::F64(v) => v.len(),
            Verts::F32(v) => v.len(),
        }
    }
}

impl Meshes {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        dir: &str,
        info: MeshInfo,
        engine: Arc<Engine>,
        scales: Vec<([f64; 3], [i64; 3])>,
    ) -> Meshes {
        let kv = match &info.kind {
            MeshKind::MultiLod { sharding: Some(spec), .. } => Some(ShardedKv::new(spec.clone(), dir, 32 << 20)),
            _ => None,
        };
        Meshes { store, dir: dir.to_string(), info, kv, engine, manifests: ByteLru::new(16 << 20), scales }
    }

    /// The mip legacy meshes were made at: the info's `mip`, else `mesh_mip_N` in the
    /// directory's name, else 0 (cloud-volume's order).
    fn mesh_mip(&self) -> u32 {
        self.info.mip.unwrap_or_else(|| {
            let name = self.dir.rsplit('/').next().unwrap_or("");
            name.find("mesh_mip_")
                .and_then(|i| {
                    let digits: String = name[i + 9..].chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().ok()
                })
                .unwrap_or(0)
        })
    }

    /// Whether `req` welds (or chunk-deduplicates) what it reads.
    fn welds(&self, req: &MeshRequest) -> bool {
        req.weld.unwrap_or(matches!(self.info.kind, MeshKind::Legacy))
    }

    /// Welded, chunk-deduplicated or as is, then `f32`.
    fn finish(&self, v: Verts, f: Vec<[u32; 3]>, req: &MeshRequest) -> Result<Mesh> {
        let v = match v {
            Verts::F32(vertices) => return Ok(Mesh { vertices, faces: f }),
            Verts::F64(v) => v,
        };
        let legacy = matches!(self.info.kind, MeshKind::Legacy);
        match (req.chunk_size, req.weld.unwrap_or(legacy)) {
            (Some(c), true) if legacy => {
                let mip = self.mesh_mip();
                let (res, off) = *self.scales.get(mip as usize).ok_or_else(|| {
                    Error::invalid(format!(
                        "the meshes' mip {mip} is not a scale of the layer ({} scales)",
                        self.scales.len()
                    ))
                })?;
                if c.iter().any(|&x| x <= 0) {
                    return Err(Error::invalid(format!("chunk_size {c:?} must be positive")));
                }
                let chunk = [0, 1, 2].map(|j| c[j] as f64 * res[j]);
                let offset = [0, 1, 2].map(|j| off[j] as f64 * res[j]);
                Ok(deduplicate_chunk_boundaries(&v, &f, chunk, offset))
            }
            (_, weld) => Ok(finish(v, f, weld)),
        }
    }

    fn key(&self, name: &str) -> String {
        crate::cloudpath::join_key(&self.dir, name)
    }

    /// An object, decompressed; None when missing.
    fn object(&self, key: &str, limit: usize) -> Result<Option<Vec<u8>>> {
        let mut bytes = Vec::new();
        let url = self.store.url(key);
        match self.store.get_into(key, &mut bytes, Some(compression::stored_bound(limit) as u64))? {
            None => Ok(None),
            Some(encoding) => compression::decompress(compression::Object { bytes, encoding }, limit, &url).map(Some),
        }
    }

    fn missing(&self, id: u64, what: &str) -> Error {
        Error::not_found(format!("segment {id} has no mesh: {what}"))
    }

    /// Each id's mesh (in the order of `ids`; a missing one is None with `allow_missing`).
    ///
    /// # Errors
    /// A missing mesh (`NotFound`, naming the id and the manifest's URL), a lod the mesh does
    /// not have (`InvalidArgument`), damaged manifests or fragments (`Decode`), I/O errors.
    pub(crate) fn get(&self, ids: &[u64], req: &MeshRequest) -> Result<Vec<Option<Mesh>>> {
        let parts = self.parts(ids, req)?;
        parts.into_iter().map(|p| p.map(|(v, f)| self.finish(v, f, req)).transpose()).collect()
    }

    /// The meshes of `ids` as one (cloud-volume's fused `get([a, b, c])`): concatenated in id
    /// order, then welded as one when welding.
    ///
    /// # Errors
    /// As [`Meshes::get`]; more than 2^32 - 1 vertices (`InvalidArgument`).
    pub(crate) fn get_merged(&self, ids: &[u64], req: &MeshRequest) -> Result<Mesh> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i]);
        order.dedup_by_key(|i| ids[*i]);
        let parts = self.parts(ids, req)?;
        let (mut v64, mut v32, mut f) = (Vec::new(), Vec::new(), Vec::new());
        for i in order {
            if let Some((pv, pf)) = &parts[i] {
                let base = u32::try_from(v64.len() + v32.len())
                    .map_err(|_| Error::invalid("the merged mesh has more than 2^32 vertices"))?;
                match pv {
                    Verts::F64(p) => v64.extend_from_slice(p),
                    Verts::F32(p) => v32.extend_from_slice(p),
                }
                f.extend(pf.iter().map(|t| t.map(|x| x + base)));
            }
        }
        // One kind per request: parts are f32 exactly when nothing welds.
        let v = if v64.is_empty() && !v32.is_empty() { Verts::F32(v32) } else { Verts::F64(v64) };
        self.finish(v, f, req)
    }

    fn parts(&self, ids: &[u64], req: &MeshRequest) -> Result<Vec<Part>> {
        if let MeshKind::MultiLod { vertex_quantization_bits, .. } = &self.info.kind {
            return self.multilods(ids, req.lod, *vertex_quantization_bits, !self.welds(req), req.allow_missing);
        }
        self.engine.map(ids, |_, &id| {
            let part = match &self.info.kind {
                MeshKind::Legacy => self.legacy(id)?,
                MeshKind::MultiLod { .. } => unreachable!("multi-resolution meshes are read by multilods"),
                MeshKind::Graphene { .. } => return Err(graphene_here()),
            };
            match part {
                Some(p) => Ok(Some(p)),
                None if req.allow_missing => Ok(None),
                None => Err(self.missing(id, &self.manifest_url(id))),
            }
        })
    }

    fn manifest_url(&self, id: u64) -> String {
        match (&self.info.kind, &self.kv) {
            (MeshKind::Legacy, _) => self.store.url(&self.key(&format!("{id}:0"))),
            (_, Some(kv)) => {
                let (shard, _) = kv.spec.locate(id);
                format!("{} (no entry for it)", self.store.url(&self.key(&kv.spec.shard_file(shard))))
            }
            _ => self.store.url(&self.key(&format!("{id}.index"))),
        }
    }

    /// How many levels of detail the mesh of `id` has (1 for legacy meshes).
    ///
    /// # Errors
    /// As [`Meshes::get`].
    pub(crate) fn num_lods(&self, id: u64) -> Result<usize> {
        match &self.info.kind {
            MeshKind::Legacy => {
                let key = self.key(&format!("{id}:0"));
                match self.store.exists(&key)? {
                    true => Ok(1),
                    false => Err(self.missing(id, &self.store.url(&key))),
                }
            }
            MeshKind::MultiLod { .. } => match self.manifest(id)? {
                Some(m) => Ok(m.m.num_lods()),
                None => Err(self.missing(id, &self.manifest_url(id))),
            },
            MeshKind::Graphene { .. } => Err(graphene_here()),
        }
    }

    fn legacy(&self, id: u64) -> Result<Part> {
        let mkey = self.key(&format!("{id}:0"));
        let Some(bytes) = self.object(&mkey, MAX_MANIFEST)? else { return Ok(None) };
        let murl = self.store.url(&mkey);
        let mut names = legacy_manifest(&bytes, &murl)?;
        // cloud-volume fetches each name once and decodes in name order.
        names.sort();
        names.dedup();
        let frags = self.engine.map(&names, |_, name| {
            let key = self.key(name);
            let url = self.store.url(&key);
            let bytes = self.object(&key, MAX_FRAGMENT)?.ok_or_else(|| {
                Error::not_found(format!("{url}: fragment \"{name}\" of segment {id}'s mesh ({murl}) is missing"))
            })?;
            legacy_fragment(&bytes, &url)
        })?;
        let t = self.info.transform;
        let (mut v, mut f) = (Vec::new(), Vec::new());
        for m in &frags {
            let base = u32::try_from(v.len()).map_err(|_| Error::decode(format!("{murl}: more than 2^32 vertices")))?;
            v.extend(m.vertices.iter().map(|p| {
                let p = p.map(f64::from);
                t.as_ref().map_or(p, |t| transform_point(t, p))
            }));
            f.extend(m.faces.iter().map(|x| x.map(|k| k + base)));
        }
        Ok(Some((Verts::F64(v), f)))
    }

    /// The multi-resolution manifest of `id` (cached), None when missing.
    fn manifest(&self, id: u64) -> Result<Option<Arc<Manifest>>> {
        if let Some(m) = self.manifests.get(&id) {
            return Ok(Some(m));
        }
        let (m, data_key, data_start) = match &self.kv {
            Some(kv) => {
                let Some((bytes, Located { key, start, .. })) = kv.get(self.store.as_ref(), id, MAX_MANIFEST)? else {
                    return Ok(None);
                };
                let url = format!("{} (segment {id})", self.store.url(&key));
                let m = MultiLodManifest::parse(&bytes, &url)?;
                let total = m.total_bytes();
                let data_start = start.checked_sub(total).ok_or_else(|| {
                    Error::decode(format!(
                        "{url}: the manifest at byte {start} says {total} bytes of fragments precede it"
                    ))
                })?;
                (m, key, data_start)
            }
            None => {
                let key = self.key(&format!("{id}.index"));
                let Some(bytes) = self.object(&key, MAX_MANIFEST)? else { return Ok(None) };
                (MultiLodManifest::parse(&bytes, &self.store.url(&key))?, self.key(&id.to_string()), 0)
            }
        };
        let bytes = 64 + m.positions.iter().map(|p| 16 * p.len()).sum::<usize>();
        let arc = Arc::new(Manifest { m, data_key, data_start });
        self.manifests.insert(id, arc.clone(), bytes);
        Ok(Some(arc))
    }

    /// One multi-resolution mesh's chosen lod, fetched: its manifest, the lod, the fragment
    /// data and a URL naming it; None when the mesh is missing.
    fn multilod_fetch(&self, id: u64, lod: Lod) -> Result<Option<Fetched>> {
        let Some(man) = self.manifest(id)? else { return Ok(None) };
        let m = &man.m;
        let n = m.num_lods();
        let lod = match lod {
            Lod::Index(l) if l < n => l,
            Lod::Coarsest if n > 0 => n - 1,
            Lod::Index(l) => {
                return Err(Error::invalid(format!("segment {id}'s mesh has {n} levels of detail; lod {l} is not one")))
            }
            Lod::Coarsest => {
                return Err(Error::decode(format!("segment {id}'s mesh manifest declares no levels of detail")))
            }
        };
        let len = m.lod_bytes(lod);
        if len > MAX_FRAGMENT as u64 {
            return Err(Error::decode(format!("segment {id}: lod {lod} claims {len} bytes of fragments")));
        }
        let a = man.data_start + m.lod_start(lod);
        let url = format!("{} (segment {id}, lod {lod})", self.store.url(&man.data_key));
        let data = if len == 0 {
            Vec::new()
        } else {
            let got = self
                .store
                .get_range(&man.data_key, a, a + len)?
                .ok_or_else(|| Error::not_found(format!("{url}: the fragment data is missing")))?;
            if got.len() as u64 != len {
                return Err(Error::decode(format!(
                    "{url}: the manifest puts lod {lod}'s fragments at bytes {a}..{}, the data ends at {}",
                    a + len,
                    a + got.len() as u64
                )));
            }
            got
        };
        Ok(Some(Fetched { man, lod, data, url }))
    }

    /// The multi-resolution meshes of `ids`, in parallel: each one's lod fetched (one range
    /// request), its fragments decoded on their own (in parallel when many, a decode permit
    /// each) and put together in manifest order. `direct`: vertices made `f32` as they are
    /// mapped (nothing will weld them).
    fn multilods(&self, ids: &[u64], lod: Lod, q: u32, direct: bool, allow_missing: bool) -> Result<Vec<Part>> {
        let fetched = self.engine.map(ids, |_, &id| match self.multilod_fetch(id, lod)? {
            Some(f) => Ok(Some(f)),
            None if allow_missing => Ok(None),
            None => Err(self.missing(id, &self.manifest_url(id))),
        })?;
        self.engine.map_decode(&fetched, |_, f| f.as_ref().map(|f| self.multilod_decode(f, q, direct)).transpose())
    }

    fn multilod_decode(&self, f: &Fetched, q: u32, direct: bool) -> Result<(Verts, Vec<[u32; 3]>)> {
        let m = &f.man.m;
        let url = &f.url;
        let mut spans = Vec::with_capacity(m.sizes[f.lod].len());
        let mut at = 0usize;
        for (k, &sz) in m.sizes[f.lod].iter().enumerate() {
            if sz > 0 {
                spans.push((k, at, at + sz as usize));
            }
            at += sz as usize;
        }
        let t = self.info.transform;
        let pieces = self.engine.map_decode(&spans, |_, &(k, s, e)| {
            let d = draco::decode(&f.data[s..e], &format!("{url} fragment {k}"))?;
            let limit = 2f32.powi(q as i32);
            let outside = |p: &[f32; 3]| {
                Error::decode(format!(
                    "{url} fragment {k}: vertex {p:?} lies outside [0, 2^{q}) (vertex_quantization_bits)"
                ))
            };
            let map = m.fragment_map(f.lod, k, q);
            let model = |p: &[f32; 3]| {
                if !(p[0] >= 0.0 && p[0] < limit && p[1] >= 0.0 && p[1] < limit && p[2] >= 0.0 && p[2] < limit) {
                    return Err(outside(p));
                }
                let mp = map.apply(*p);
                Ok(t.as_ref().map_or(mp, |t| transform_point(t, mp)))
            };
            let v = if direct {
                let mut v = Vec::with_capacity(d.points.len());
                for p in &d.points {
                    v.push(model(p)?.map(|c| c as f32));
                }
                Verts::F32(v)
            } else {
                Verts::F64(d.points.iter().map(model).collect::<Result<_>>()?)
            };
            Ok((v, d.faces))
        })?;
        let nv = pieces.iter().map(|(v, _)| v.len()).sum();
        let nf = pieces.iter().map(|(_, f)| f.len()).sum();
        let mut faces = Vec::with_capacity(nf);
        let (mut v64, mut v32) =
            if direct { (Vec::new(), Vec::with_capacity(nv)) } else { (Vec::with_capacity(nv), Vec::new()) };
        for (pv, pf) in pieces {
            let base = u32::try_from(v64.len() + v32.len())
                .map_err(|_| Error::decode(format!("{url}: more than 2^32 vertices")))?;
            match pv {
                Verts::F64(p) => v64.extend(p),
                Verts::F32(p) => v32.extend(p),
            }
            faces.extend(pf.iter().map(|x| x.map(|k| k + base)));
        }
        Ok((if direct { Verts::F32(v32) } else { Verts::F64(v64) }, faces))
    }

    /// Write the legacy mesh of `id` as cloud-volume's `put` does: the fragment `<id>:0:1`
    /// (gzip) and then the manifest `<id>:0` naming it; fragments the old manifest named are
    /// deleted afterwards, so a failed write leaves the old mesh readable.
    ///
    /// # Errors
    /// A multi-resolution directory (`Unsupported`); faces past the vertices
    /// (`InvalidArgument`); I/O errors.
    pub(crate) fn put(&self, id: u64, mesh: &Mesh, compress: bool) -> Result<()> {
        if !matches!(self.info.kind, MeshKind::Legacy) {
            return Err(Error::unsupported(format!(
                "{}: writing neuroglancer_multilod_draco meshes is not supported (only legacy meshes are written)",
                self.store.url(&self.dir)
            )));
        }
        let nv = mesh.vertices.len();
        if let Some((k, f)) = mesh.faces.iter().enumerate().find(|(_, f)| f.iter().any(|&i| i as usize >= nv)) {
            return Err(Error::invalid(format!("mesh face {k} {f:?} names a vertex past its {nv}")));
        }
        let mkey = self.key(&format!("{id}:0"));
        let old = match self.object(&mkey, MAX_MANIFEST)? {
            Some(b) => legacy_manifest(&b, &self.store.url(&mkey)).unwrap_or_default(),
            None => Vec::new(),
        };
        let name = format!("{id}:0:1");
        let frag = encode_legacy_fragment(mesh);
        if compress {
            self.store.put(
                &self.key(&name),
                &compression::gzip(&frag, 6),
                ContentEncoding::Gzip,
                "application/octet-stream",
            )?;
        } else {
            self.store.put(&self.key(&name), &frag, ContentEncoding::Identity, "application/octet-stream")?;
        }
        self.store.put(
            &mkey,
            &legacy_manifest_json(std::slice::from_ref(&name)),
            ContentEncoding::Identity,
            "application/json",
        )?;
        for stale in old.iter().filter(|n| **n != name) {
            self.store.delete(&self.key(stale))?;
        }
        Ok(())
    }
}

/// A Precomputed mesh directory never holds graphene's kind (`objects::graphene` reads those).
fn graphene_here() -> Error {
    Error::internal("graphene meshes are read through objects::graphene, not a Precomputed mesh directory")
}

/// Vertices to `f32`, welded first when asked.
fn finish(v: Vec<[f64; 3]>, f: Vec<[u32; 3]>, weld: bool) -> Mesh {
    if weld {
        consolidate(&v, &f)
    } else {
        Mesh { vertices: v.iter().map(|p| p.map(|c| c as f32)).collect(), faces: f }
    }
}
