//! The meshes of a `graphene://` layer, read as cloud-volume 12.15.2's
//! `GrapheneShardedMeshSource.get` reads them (facts: docs/graphene-meshes.md).
//!
//! 1. The chunkedgraph's meshing service answers a manifest for a node (`GET
//!    .../meshing/api/v1/table/<t>/manifest/<id>:0?verify=True&return_seg_ids=1`, body
//!    `{"start_layer": L}`, L the node's layer capped at `max_meshed_layer`): the highest
//!    descendants that have meshes, each named either `~<layer>/<chunk>-<shard>.shard:<offset>:<size>`
//!    (an initial mesh: a byte range of a shard file under `<mesh dir>/initial/`) or
//!    `<id>:0:<bbox>` (a dynamic mesh made after an edit, a file under `<mesh dir>/dynamic/`).
//! 2. Each fragment is a Draco mesh whose positions are physical (Draco's own quantisation).
//! 3. The fragments are stitched: a vertex within half a Draco grid step of its fragment's chunk
//!    grid (the chunk of that fragment's layer) whose coordinates occur exactly twice is merged
//!    with its twin (`Mesh.deduplicate_vertices`).
//! 4. Then, by default, a layer-2 node's mesh is deduplicated once more on the graph's chunk
//!    grid; `weld` true consolidates instead; `weld` false skips that step.
//!
//! Fragments are put together dynamic ones first, each kind in reverse manifest order: the
//! order cloud-volume's reads end in over `file://` (over the network its order is the order
//! its downloads finish, so its vertex and face order is not reproducible; ours is). The Draco
//! grid step of the first fragment's layer is used for all, as there.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::mesh::{Lod, MeshRequest};
use crate::codec::{compression, draco};
use crate::error::{Error, Result};
use crate::format::graphene::GraphMeta;
use crate::format::mesh::{consolidate, deduplicate_vertices, Mesh, MeshInfo, MeshKind};
use crate::format::sharding::ShardingSpec;
use crate::format::Info;
use crate::store::Store;
use crate::volume::engine::Engine;

/// Largest manifest answer read.
pub(crate) const MAX_MANIFEST: usize = 256 << 20;
/// Largest fragment read.
const MAX_FRAGMENT: usize = 1 << 30;

/// Asks the chunkedgraph's meshing service for manifests (the graphene client).
pub(crate) trait ManifestSource: Send + Sync {
    /// The manifest of `id` from `start_layer` down, JSON, with the URL asked.
    ///
    /// # Errors
    /// HTTP, authentication and transport errors, naming the URL.
    fn manifest(&self, id: u64, start_layer: u32) -> Result<(String, Value)>;
}

/// What a graphene layer's meshes need from its handle: the chunkedgraph, the mesh metadata
/// of the layer info, and the handle's mip (cloud-volume's `config.mip`).
#[derive(Clone)]
pub(crate) struct GrapheneLink {
    pub(crate) source: Arc<dyn ManifestSource>,
    pub(crate) meta: GrapheneMeshMeta,
    pub(crate) mip: u32,
}

/// What the layer info says about its meshes (`mesh_metadata`, the graph).
#[derive(Clone)]
pub(crate) struct GrapheneMeshMeta {
    pub(crate) graph: GraphMeta,
    /// `mesh_metadata.uniform_draco_grid_size`.
    uniform_grid: Option<f64>,
    /// `mesh_metadata.draco_grid_sizes`, by layer.
    grid_sizes: BTreeMap<u32, f64>,
    /// `mesh_metadata.max_meshed_layer` (default: the graph's layers).
    max_meshed_layer: u32,
    /// `mesh_metadata.unsharded_mesh_dir` (default `dynamic`).
    dynamic_dir: String,
    /// Whether the info has a `mesh_metadata` at all (else it is not Draco-meshed).
    has_metadata: bool,
    /// (resolution, voxel_offset, chunk_size) per mip.
    scales: Vec<([f64; 3], [i64; 3], [i64; 3])>,
}

impl GrapheneMeshMeta {
    /// Read the mesh members of a graphene layer info.
    ///
    /// # Errors
    /// Malformed `mesh_metadata` members (`Decode`, naming `url`).
    pub(crate) fn from_info(info: &Info, graph: GraphMeta, url: &str) -> Result<GrapheneMeshMeta> {
        let bad = |what: String| Error::decode(format!("{url}: graphene info: mesh_metadata: {what}"));
        let md = info.json.get("mesh_metadata").filter(|m| !m.is_null());
        let md_obj = match md {
            None => None,
            Some(m) => Some(m.as_object().ok_or_else(|| bad(format!("must be an object, got {m}")))?),
        };
        let num = |v: &Value, what: &str| -> Result<f64> {
            v.as_f64()
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| bad(format!("{what} must be a positive number, got {v}")))
        };
        let mut uniform_grid = None;
        let mut grid_sizes = BTreeMap::new();
        let mut max_meshed_layer = graph.n_layers;
        let mut dynamic_dir = "dynamic".to_string();
        if let Some(m) = md_obj {
            if let Some(v) = m.get("uniform_draco_grid_size").filter(|v| !v.is_null()) {
                uniform_grid = Some(num(v, "uniform_draco_grid_size")?);
            }
            if let Some(v) = m.get("draco_grid_sizes").filter(|v| !v.is_null()) {
                let o = v.as_object().ok_or_else(|| bad(format!("draco_grid_sizes must be an object, got {v}")))?;
                for (k, g) in o {
                    let layer =
                        k.parse::<u32>().map_err(|_| bad(format!("draco_grid_sizes key \"{k}\" is not a layer")))?;
                    grid_sizes.insert(layer, num(g, &format!("draco_grid_sizes[\"{k}\"]"))?);
                }
            }
            if let Some(v) = m.get("max_meshed_layer").filter(|v| !v.is_null()) {
                max_meshed_layer = v
                    .as_u64()
                    .and_then(|l| u32::try_from(l).ok())
                    .ok_or_else(|| bad(format!("max_meshed_layer must be a layer number, got {v}")))?;
            }
            if let Some(v) = m.get("unsharded_mesh_dir").filter(|v| !v.is_null()) {
                dynamic_dir = v
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad(format!("unsharded_mesh_dir must be a name, got {v}")))?
                    .trim_matches('/')
                    .to_string();
            }
        }
        Ok(GrapheneMeshMeta {
            graph,
            uniform_grid,
            grid_sizes,
            max_meshed_layer,
            dynamic_dir,
            has_metadata: md_obj.is_some(),
            scales: info.scales.iter().map(|s| (s.resolution, s.voxel_offset, s.chunk_size)).collect(),
        })
    }

    /// cloud-volume's `get_draco_grid_size(layer)`.
    fn draco_grid_size(&self, layer: u32, url: &str) -> Result<f64> {
        if !self.has_metadata {
            return Err(Error::decode(format!("{url}: the layer info has no mesh_metadata: it is not Draco-meshed")));
        }
        if let Some(g) = self.uniform_grid {
            return Ok(g);
        }
        if layer > self.max_meshed_layer {
            return Err(Error::decode(format!(
                "{url}: a fragment of layer {layer}, past max_meshed_layer {}",
                self.max_meshed_layer
            )));
        }
        self.grid_sizes.get(&layer).copied().ok_or_else(|| {
            Error::decode(format!("{url}: mesh_metadata has no draco_grid_sizes entry for layer {layer}"))
        })
    }

    fn scale(&self, mip: u32) -> Result<([f64; 3], [i64; 3], [i64; 3])> {
        self.scales.get(mip as usize).copied().ok_or_else(|| {
            Error::invalid(format!("mip {mip} is not a scale of the layer ({} scales)", self.scales.len()))
        })
    }
}

/// cloud-volume's `is_draco_chunk_aligned`: within half a grid step of the chunk grid (behind,
/// strictly; ahead, inclusively) on any axis. `v` is already relative to the grid's origin.
fn draco_aligned(v: [f64; 3], chunk: [f64; 3], grid: f64) -> bool {
    (0..3).any(|j| {
        let behind = v[j].rem_euclid(chunk[j]);
        let ahead = chunk[j] - behind;
        behind < grid / 2.0 || ahead <= grid / 2.0
    })
}

/// One fragment named by a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fragment {
    /// `~<layer>/<file>:<offset>:<size>`: bytes of a shard file under `initial/<layer>/`.
    Initial { layer: String, file: String, offset: u64, size: u64, segid: u64 },
    /// A file under the dynamic directory.
    Dynamic { name: String, segid: u64 },
}

/// A manifest's `fragments` and `seg_ids`, parsed as cloud-volume's
/// `parse_manifest_filenames` does (an initial name is found anywhere in the string; empty
/// names are skipped); dynamic fragments first, each kind in reverse manifest order.
fn parse_manifest(v: &Value, url: &str) -> Result<Vec<Fragment>> {
    let bad = |what: String| Error::decode(format!("{url}: the mesh manifest {what}"));
    let frags = v.get("fragments").and_then(Value::as_array).ok_or_else(|| bad("has no \"fragments\" list".into()))?;
    let ids = v.get("seg_ids").and_then(Value::as_array).ok_or_else(|| bad("has no \"seg_ids\" list".into()))?;
    let mut dynamic = Vec::new();
    let mut initial = Vec::new();
    for (k, (f, s)) in frags.iter().zip(ids).enumerate() {
        let name = f.as_str().ok_or_else(|| bad(format!("fragment {k} is not a string: {f}")))?;
        if name.is_empty() {
            continue;
        }
        let segid = match s {
            Value::Number(n) => n.as_u64(),
            Value::String(t) => t.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| bad(format!("seg_ids[{k}] is not a uint64: {s}")))?;
        if name.starts_with('~') {
            let parsed = find_initial(name).ok_or_else(|| {
                bad(format!("fragment {k} \"{name}\" is not ~<layer>/<chunk>-<shard>.shard:<offset>:<size>"))
            })?;
            let (layer, file, offset, size) = parsed;
            initial.push(Fragment::Initial { layer, file, offset, size, segid });
        } else {
            if name.contains("..") || name.starts_with('/') {
                return Err(bad(format!("fragment {k} \"{name}\" is not a file name")));
            }
            dynamic.push(Fragment::Dynamic { name: name.to_string(), segid });
        }
    }
    // cloud-volume pops each kind's downloads from the end: over file:// (one thread, request
    // order) that is each kind reversed; over the network it is completion order.
    dynamic.reverse();
    initial.reverse();
    dynamic.extend(initial);
    Ok(dynamic)
}

/// The first match of `~(\d+)/([0-9a-f\-]+\.shard):(\d+):(\d+)` in `s`: cloud-volume's
/// pattern, except that the shard number may hold hex digits (it is hex: `12-a.shard` with
/// `shard_bits` >= 4, a name cloud-volume's `[\d\-]+` fails on).
fn find_initial(s: &str) -> Option<(String, String, u64, u64)> {
    let b = s.as_bytes();
    let digits = |at: usize| b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    for start in s.match_indices('~').map(|(i, _)| i) {
        let mut at = start + 1;
        let n = digits(at);
        if n == 0 || b.get(at + n) != Some(&b'/') {
            continue;
        }
        let layer = &s[at..at + n];
        at += n + 1;
        let f = b[at..].iter().take_while(|c| c.is_ascii_digit() || matches!(**c, b'a'..=b'f' | b'-')).count();
        if f == 0 || !s[at + f..].starts_with(".shard:") {
            continue;
        }
        let file = &s[at..at + f + 6];
        at += f + 7;
        let n1 = digits(at);
        if n1 == 0 || b.get(at + n1) != Some(&b':') {
            continue;
        }
        let offset = s[at..at + n1].parse().ok()?;
        at += n1 + 1;
        let n2 = digits(at);
        if n2 == 0 {
            continue;
        }
        let size = s[at..at + n2].parse().ok()?;
        return Some((layer.to_string(), file.to_string(), offset, size));
    }
    None
}

/// The mesh directory of a graphene layer.
pub(crate) struct GrapheneMeshes {
    store: Arc<dyn Store>,
    dir: String,
    pub(crate) info: MeshInfo,
    /// The layers the mesh info has a shard configuration for.
    levels: BTreeMap<u32, ShardingSpec>,
    meta: GrapheneMeshMeta,
    source: Arc<dyn ManifestSource>,
    engine: Arc<Engine>,
    /// cloud-volume's `config.mip`: the handle's mip.
    mip: u32,
}

/// A fragment, decoded: f64 vertices, faces, and the layer of the node it belongs to.
type Decoded = (Vec<[f64; 3]>, Vec<[u32; 3]>, u32);

impl GrapheneMeshes {
    /// The mesh directory `dir` of a graphene layer, from its `info` (`json`, read from `url`).
    ///
    /// # Errors
    /// A mesh info that is not graphene's sharded one (`Unsupported`), malformed members
    /// (`Decode`).
    pub(crate) fn new(
        store: Arc<dyn Store>,
        dir: &str,
        json: Option<&Value>,
        url: &str,
        link: GrapheneLink,
        engine: Arc<Engine>,
    ) -> Result<GrapheneMeshes> {
        let GrapheneLink { source, meta, mip: handle_mip } = link;
        let json = json.ok_or_else(|| Error::not_found(format!("{url}: the graphene layer has no mesh info")))?;
        let obj = json.as_object().ok_or_else(|| Error::decode(format!("{url}: a mesh info must be an object")))?;
        let sharding = obj.get("sharding").filter(|s| !s.is_null()).ok_or_else(|| {
            Error::unsupported(format!(
                "{url}: unsharded graphene meshes are not supported (PyChunkedGraph's manifests name sharded initial \
                 meshes; this mesh info has no \"sharding\")"
            ))
        })?;
        let levels_json = sharding
            .as_object()
            .ok_or_else(|| Error::decode(format!("{url}: \"sharding\" must be an object of layer: spec")))?;
        let mut levels = BTreeMap::new();
        for (k, spec) in levels_json {
            let layer = k
                .parse::<u32>()
                .map_err(|_| Error::decode(format!("{url}: \"sharding\" key \"{k}\" is not a layer number")))?;
            levels.insert(layer, ShardingSpec::parse(spec, &format!("{url}: sharding[\"{k}\"]"))?);
        }
        let mip = match obj.get("mip") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .ok_or_else(|| Error::decode(format!("{url}: \"mip\" must be an integer >= 0, got {v}")))?,
            ),
        };
        let transform = crate::format::mesh::parse_transform(obj.get("transform"), url)?;
        let info = MeshInfo { kind: MeshKind::Graphene { levels: levels.keys().copied().collect() }, transform, mip };
        Ok(GrapheneMeshes { store, dir: dir.to_string(), info, levels, meta, source, engine, mip: handle_mip })
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.dir.clone();
        for p in parts {
            k = crate::cloudpath::join_key(&k, p);
        }
        k
    }

    /// The mip the meshes were made at: the mesh info's `mip`, else 0.
    fn mesh_mip(&self) -> u32 {
        self.info.mip.unwrap_or(0)
    }

    /// Each id's mesh (None: no fragments, with `allow_missing`).
    ///
    /// # Errors
    /// An id without mesh fragments (`NotFound`), a lod other than 0 (`InvalidArgument`),
    /// damaged fragments (`Decode`), server and I/O errors.
    pub(crate) fn get(&self, ids: &[u64], req: &MeshRequest) -> Result<Vec<Option<Mesh>>> {
        if let Lod::Index(l) = req.lod {
            if l > 0 {
                return Err(Error::invalid(format!("graphene meshes have one level of detail; lod {l} is not one")));
            }
        }
        self.engine.map(ids, |_, &id| match self.one(id, req)? {
            Some(m) => Ok(Some(m)),
            None if req.allow_missing => Ok(None),
            None => Err(Error::not_found(format!(
                "segment {id} has no mesh: the manifest of {} names no fragments",
                self.store.url(&self.dir)
            ))),
        })
    }

    /// The meshes of `ids` as one (cloud-volume's `fuse=True`): concatenated, consolidated.
    ///
    /// # Errors
    /// As [`GrapheneMeshes::get`].
    pub(crate) fn get_merged(&self, ids: &[u64], req: &MeshRequest) -> Result<Mesh> {
        let mut uniq = ids.to_vec();
        uniq.sort_unstable();
        uniq.dedup();
        let parts = self.get(&uniq, req)?;
        let (mut v, mut f) = (Vec::new(), Vec::new());
        for m in parts.into_iter().flatten() {
            let base =
                u32::try_from(v.len()).map_err(|_| Error::invalid("the merged mesh has more than 2^32 vertices"))?;
            v.extend(m.vertices.iter().map(|p| p.map(f64::from)));
            f.extend(m.faces.iter().map(|t| t.map(|x| x + base)));
        }
        Ok(consolidate(&v, &f))
    }

    /// How many levels of detail the mesh of `id` has: 1, once its manifest names fragments
    /// (only the manifest is fetched).
    ///
    /// # Errors
    /// As [`GrapheneMeshes::get`].
    pub(crate) fn num_lods(&self, id: u64) -> Result<usize> {
        let (murl, frags) = self.fragments(id)?;
        if frags.is_empty() {
            return Err(Error::not_found(format!("segment {id} has no mesh: the manifest {murl} names no fragments")));
        }
        Ok(1)
    }

    /// The fragments the chunkedgraph's manifest names for `id`, with the manifest's URL.
    fn fragments(&self, id: u64) -> Result<(String, Vec<Fragment>)> {
        let layer = self.meta.graph.layer(id);
        if layer < 2 {
            return Err(Error::invalid(format!(
                "segment {id} is a layer-{layer} id: graphene meshes belong to nodes of layer 2 and above"
            )));
        }
        let level = layer.min(self.meta.max_meshed_layer);
        if !self.levels.contains_key(&level) {
            return Err(Error::decode(format!(
                "{}: the mesh info has no shard configuration for layer {level} (segment {id})",
                self.store.url(&self.key(&["info"]))
            )));
        }
        let (murl, manifest) = self.source.manifest(id, level)?;
        let frags = parse_manifest(&manifest, &murl)?;
        Ok((murl, frags))
    }

    fn one(&self, id: u64, req: &MeshRequest) -> Result<Option<Mesh>> {
        let g = &self.meta.graph;
        let layer = g.layer(id);
        let (murl, frags) = self.fragments(id)?;
        if frags.is_empty() {
            return Ok(None);
        }
        let decoded = self.engine.map(&frags, |_, f| self.fragment(f, &murl))?;
        // Stitch: the chunk grid of each fragment's layer, the grid step of the first's.
        let mesh_mip = self.mesh_mip();
        let (_, _, chunk_at_mesh_mip) = self.meta.scale(mesh_mip)?;
        let (res_cfg, off_cfg, _) = self.meta.scale(self.mip)?;
        let (res_mesh, off_mesh, _) = self.meta.scale(mesh_mip)?;
        let offset =
            if g.chunks_start_at_voxel_offset { [0, 1, 2].map(|j| off_mesh[j] as f64 * res_mesh[j]) } else { [0.0; 3] };
        let lvl2_nm = [0, 1, 2].map(|j| chunk_at_mesh_mip[j] as f64 * res_cfg[j]);
        let grid = self.meta.draco_grid_size(decoded[0].2, &murl)?;
        let (mut v, mut f, mut aligned) = (Vec::new(), Vec::new(), Vec::new());
        for (pv, pf, l) in &decoded {
            let scale = 2f64.powi(*l as i32 - 2);
            let chunk = lvl2_nm.map(|c| c * scale);
            let base = u32::try_from(v.len()).map_err(|_| Error::decode(format!("{murl}: more than 2^32 vertices")))?;
            aligned.extend(pv.iter().map(|p| draco_aligned([0, 1, 2].map(|j| p[j] - offset[j]), chunk, grid)));
            v.extend_from_slice(pv);
            f.extend(pf.iter().map(|t| t.map(|x| x + base)));
        }
        let stitched = deduplicate_vertices(&v, &f, &aligned);
        let sv: Vec<[f64; 3]> = stitched.vertices.iter().map(|p| p.map(f64::from)).collect();
        let out = match req.weld {
            Some(true) => consolidate(&sv, &stitched.faces),
            Some(false) => stitched,
            None if layer == 2 => {
                let grid2 = self.meta.draco_grid_size(2, &murl)?;
                let off = if g.chunks_start_at_voxel_offset {
                    [0, 1, 2].map(|j| off_cfg[j] as f64 * res_cfg[j])
                } else {
                    [0.0; 3]
                };
                let chunk = [0, 1, 2].map(|j| g.chunk_size[j] as f64 * res_cfg[j]);
                let al: Vec<bool> =
                    sv.iter().map(|p| draco_aligned([0, 1, 2].map(|j| p[j] - off[j]), chunk, grid2)).collect();
                deduplicate_vertices(&sv, &stitched.faces, &al)
            }
            // cloud-volume leaves meshes of higher layers as stitched (its issue #299).
            None => stitched,
        };
        Ok(Some(out))
    }

    /// Fetch and decode one fragment.
    fn fragment(&self, f: &Fragment, murl: &str) -> Result<Decoded> {
        let (key, bytes, segid) = match f {
            Fragment::Dynamic { name, segid } => {
                let key = self.key(&[&self.meta.dynamic_dir, name]);
                let url = self.store.url(&key);
                let mut raw = Vec::new();
                let enc = self
                    .store
                    .get_into(&key, &mut raw, Some(compression::stored_bound(MAX_FRAGMENT) as u64))
                    .map_err(|e| e.context(format!("node {segid}'s mesh named by the manifest {murl}")))?
                    .ok_or_else(|| {
                        Error::not_found(format!("{url}: the dynamic mesh of node {segid} named by {murl} is missing"))
                    })?;
                let bytes =
                    compression::decompress(compression::Object { bytes: raw, encoding: enc }, MAX_FRAGMENT, &url)?;
                (key, bytes, *segid)
            }
            Fragment::Initial { layer, file, offset, size, segid } => {
                let key = self.key(&["initial", layer, file]);
                let url = self.store.url(&key);
                if *size > MAX_FRAGMENT as u64 {
                    return Err(Error::decode(format!("{murl}: node {segid}'s fragment claims {size} bytes of {url}")));
                }
                let end = offset.checked_add(*size).ok_or_else(|| {
                    Error::decode(format!("{murl}: node {segid}'s fragment range {offset}+{size} overflows"))
                })?;
                let got = self
                    .store
                    .get_range(&key, *offset, end)
                    .map_err(|e| e.context(format!("node {segid}'s mesh as the manifest {murl} places it")))?
                    .ok_or_else(|| {
                        Error::not_found(format!(
                            "{url}: the shard holding node {segid}'s mesh (named by {murl}) is missing"
                        ))
                    })?;
                if got.len() as u64 != *size {
                    return Err(Error::decode(format!(
                        "{url}: the manifest {murl} puts node {segid}'s mesh at bytes {offset}..{end}, the file ends at {}",
                        offset + got.len() as u64
                    )));
                }
                (key, got, *segid)
            }
        };
        let url = self.store.url(&key);
        let _permit = self.engine.decode_permit();
        let d = draco::decode(&bytes, &format!("{url} (node {segid})"))?;
        let t = self.info.transform;
        let v = d
            .points
            .iter()
            .map(|p| {
                let p = p.map(f64::from);
                t.as_ref().map_or(p, |t| crate::format::mesh::transform_point(t, p))
            })
            .collect();
        Ok((v, d.faces, self.meta.graph.layer(segid)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_names_as_cloud_volume_finds_them() {
        assert_eq!(
            find_initial("~2/344239114-0.shard:224659:442"),
            Some(("2".into(), "344239114-0.shard".into(), 224659, 442))
        );
        // re.search: found after other text, first match wins.
        assert_eq!(find_initial("x~3/1-q.shard:1:2 ~2/5-0.shard:7:8"), Some(("2".into(), "5-0.shard".into(), 7, 8)));
        assert_eq!(find_initial("~2/5-0.shard:7"), None);
        assert_eq!(find_initial("~3/12-a.shard:7:8"), Some(("3".into(), "12-a.shard".into(), 7, 8)));
        assert_eq!(find_initial("~/5-0.shard:7:8"), None);
        let v: Value = serde_json::json!({
            "fragments": ["~2/5-0.shard:7:8", "", "123:0:0-64_0-64_0-16"],
            "seg_ids": [11, "12", 13u64]
        });
        let f = parse_manifest(&v, "u").unwrap();
        assert_eq!(f.len(), 2);
        assert!(matches!(&f[0], Fragment::Dynamic { segid: 13, .. }));
        assert!(matches!(&f[1], Fragment::Initial { segid: 11, offset: 7, size: 8, .. }));
        let two = serde_json::json!({"fragments": ["~2/5-0.shard:7:8", "~2/5-0.shard:15:8"], "seg_ids": [1, 2]});
        let f = parse_manifest(&two, "u").unwrap();
        assert!(
            matches!(&f[0], Fragment::Initial { segid: 2, .. }) && matches!(&f[1], Fragment::Initial { segid: 1, .. })
        );
        let bad = serde_json::json!({"fragments": ["~2/x.shard:1:2"], "seg_ids": [1]});
        assert!(parse_manifest(&bad, "u").unwrap_err().to_string().contains("not ~<layer>"));
        let bad = serde_json::json!({"fragments": ["../../etc/passwd"], "seg_ids": [1]});
        assert!(parse_manifest(&bad, "u").is_err());
        assert!(parse_manifest(&serde_json::json!({"fragments": []}), "u").is_err());
    }

    #[test]
    fn alignment_is_half_a_grid_step_behind_strict_ahead_inclusive() {
        let c = [512.0, 512.0, 640.0];
        assert!(draco_aligned([512.0 + 4.9, 10.0, 10.0], c, 10.0));
        assert!(!draco_aligned([512.0 + 5.0, 100.0, 100.0], c, 10.0));
        assert!(draco_aligned([507.0, 100.0, 100.0], c, 10.0));
        assert!(!draco_aligned([506.9, 100.0, 100.0], c, 10.0));
        assert!(draco_aligned([-1.0, 100.0, 100.0], c, 10.0));
    }
}
