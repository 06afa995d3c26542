//! Meshes without I/O: the mesh directory's info, legacy manifests and fragments, the
//! multi-resolution (`neuroglancer_multilod_draco`) manifest and its vertex mapping, and the
//! welding cloud-volume applies to legacy meshes.
//!
//! - Legacy: the manifest `<id>:0` is JSON `{"fragments": [names]}`, names relative to the mesh
//!   directory; a fragment is `u32 nv`, `nv` xyz `f32` vertices, then `u32` triangles to the end.
//! - Multi-resolution: `<id>.index` (or the sharded value of `id`) is the binary manifest; the
//!   fragments of every lod, Draco meshes with integer positions, are concatenated in manifest
//!   order (lod 0 first) in `<id>` (or stored just before the manifest in its shard).
//! - Vertices become physical coordinates as cloud-volume computes them (in `f64`, then `f32`):
//!   `grid_origin + vertex_offsets[lod] + chunk_shape * 2^lod * (position + v / (2^q - 1))`,
//!   then the info's `transform`.

use serde_json::Value;

use super::sharding::ShardingSpec;
use crate::error::{Error, Result};

/// A triangle mesh: physical vertices (nm) and faces indexing them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    pub vertices: Vec<[f32; 3]>,
    pub faces: Vec<[u32; 3]>,
}

impl Mesh {
    /// Append `other`, its face indices shifted past this mesh's vertices (cloud-volume's
    /// `Mesh.concatenate`).
    ///
    /// # Errors
    /// More than `u32::MAX` vertices (`InvalidArgument`).
    pub fn append(&mut self, other: &Mesh) -> Result<()> {
        let base = u32::try_from(self.vertices.len())
            .ok()
            .filter(|b| u32::try_from(other.vertices.len()).is_ok_and(|n| b.checked_add(n).is_some()))
            .ok_or_else(|| Error::invalid("a mesh of more than 2^32 - 1 vertices cannot be indexed by u32 faces"))?;
        self.vertices.extend_from_slice(&other.vertices);
        self.faces.extend(other.faces.iter().map(|f| [f[0] + base, f[1] + base, f[2] + base]));
        Ok(())
    }
}

/// The kind of a mesh directory, from its `info` (none: legacy).
#[derive(Debug, Clone, PartialEq)]
pub enum MeshKind {
    /// `neuroglancer_legacy_mesh` (or no info).
    Legacy,
    /// `neuroglancer_multilod_draco`.
    MultiLod { vertex_quantization_bits: u32, lod_scale_multiplier: f64, sharding: Option<ShardingSpec> },
    /// A graphene layer's meshes: Draco fragments named by the chunkedgraph's manifests, the
    /// initial ones in shard files of each of these layers (`sharding` keyed by layer).
    Graphene { levels: Vec<u32> },
}

/// A mesh directory's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshInfo {
    pub kind: MeshKind,
    /// Row-major 3x4 `[R|t]` from stored model coordinates to physical ones; None: identity.
    pub transform: Option<[f64; 12]>,
    /// The mip the meshes were made at (the info's `mip`), if it says.
    pub mip: Option<u32>,
}

/// Parse a 12-number transform member (None when absent or the identity).
///
/// # Errors
/// Anything but 12 finite numbers (`Decode`, naming `url`).
pub fn parse_transform(v: Option<&Value>, url: &str) -> Result<Option<[f64; 12]>> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(None) };
    let nums: Option<Vec<f64>> = v.as_array().and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<_>>>());
    let nums = nums
        .filter(|n| n.len() == 12 && n.iter().all(|x| x.is_finite()))
        .ok_or_else(|| Error::decode(format!("{url}: \"transform\" must be 12 finite numbers, got {v}")))?;
    let mut t = [0.0; 12];
    t.copy_from_slice(&nums);
    const IDENTITY: [f64; 12] = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    Ok(if t == IDENTITY { None } else { Some(t) })
}

impl MeshInfo {
    /// The metadata of a mesh directory whose `info` is `json` (None: there is none, legacy).
    ///
    /// # Errors
    /// Malformed members (`Decode`), another `@type` (`Unsupported`), both naming `url`.
    pub fn parse(json: Option<&Value>, url: &str) -> Result<MeshInfo> {
        let Some(j) = json else { return Ok(MeshInfo { kind: MeshKind::Legacy, transform: None, mip: None }) };
        let obj = j.as_object().ok_or_else(|| Error::decode(format!("{url}: a mesh info must be an object")))?;
        let transform = parse_transform(obj.get("transform"), url)?;
        let mip = match obj.get("mip") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|m| u32::try_from(m).ok())
                    .ok_or_else(|| Error::decode(format!("{url}: \"mip\" must be an integer >= 0, got {v}")))?,
            ),
        };
        match obj.get("@type").and_then(Value::as_str) {
            None | Some("neuroglancer_legacy_mesh") => {
                if obj.get("sharding").is_some_and(|s| !s.is_null()) {
                    return Err(Error::unsupported(format!(
                        "{url}: a sharded neuroglancer_legacy_mesh directory is read only through its graphene:// \
                         layer (the chunkedgraph names the fragments); as Precomputed, sharded meshes are \
                         neuroglancer_multilod_draco"
                    )));
                }
                Ok(MeshInfo { kind: MeshKind::Legacy, transform, mip })
            }
            Some("neuroglancer_multilod_draco") => {
                let q = obj.get("vertex_quantization_bits").and_then(Value::as_u64);
                let q = match q {
                    Some(q @ (10 | 16)) => q as u32,
                    _ => {
                        return Err(Error::decode(format!(
                            "{url}: \"vertex_quantization_bits\" must be 10 or 16, got {}",
                            obj.get("vertex_quantization_bits").unwrap_or(&Value::Null)
                        )))
                    }
                };
                let lsm = match obj.get("lod_scale_multiplier") {
                    None | Some(Value::Null) => 1.0,
                    Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                        Error::decode(format!("{url}: \"lod_scale_multiplier\" must be a number, got {v}"))
                    })?,
                };
                let sharding = match obj.get("sharding") {
                    None | Some(Value::Null) => None,
                    Some(s) => Some(ShardingSpec::parse(s, url)?),
                };
                // The multi-resolution format requires a transform; an identity one is None.
                Ok(MeshInfo {
                    kind: MeshKind::MultiLod { vertex_quantization_bits: q, lod_scale_multiplier: lsm, sharding },
                    transform,
                    mip,
                })
            }
            Some(other) => Err(Error::unsupported(format!(
                "{url}: mesh \"@type\" \"{other}\" is not neuroglancer_legacy_mesh or neuroglancer_multilod_draco"
            ))),
        }
    }
}

/// The fragment names of a legacy manifest.
///
/// # Errors
/// Not JSON with a `fragments` list of strings (`Decode`, naming `url`).
pub fn legacy_manifest(bytes: &[u8], url: &str) -> Result<Vec<String>> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::decode(format!("{url}: the mesh manifest is not JSON: {e}")))?;
    let frags = v
        .get("fragments")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::decode(format!("{url}: the mesh manifest has no \"fragments\" list")))?;
    frags
        .iter()
        .map(|f| {
            f.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| Error::decode(format!("{url}: fragment name {f} is not a non-empty string")))
        })
        .collect()
}

/// A legacy manifest naming `fragments`.
pub fn legacy_manifest_json(fragments: &[String]) -> Vec<u8> {
    serde_json::json!({ "fragments": fragments }).to_string().into_bytes()
}

/// Decode a legacy fragment (`u32 nv`, vertices, triangles).
///
/// # Errors
/// A short or ragged file, a triangle naming a vertex past `nv` (`Decode`, naming `url`).
pub fn legacy_fragment(bytes: &[u8], url: &str) -> Result<Mesh> {
    let bad = |m: String| Error::decode(format!("{url}: legacy mesh fragment {m}"));
    if bytes.len() < 4 {
        return Err(bad(format!("of {} bytes has no vertex count", bytes.len())));
    }
    let nv = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let vend = nv.checked_mul(12).and_then(|n| n.checked_add(4)).filter(|&e| e <= bytes.len()).ok_or_else(|| {
        bad(format!("says {nv} vertices ({} bytes) but holds {} bytes", nv as u128 * 12 + 4, bytes.len()))
    })?;
    let rest = bytes.len() - vend;
    if rest % 12 != 0 {
        return Err(bad(format!("has {rest} bytes of triangles, not a multiple of 12")));
    }
    let f32_at = |i: usize| f32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let vertices = (0..nv).map(|k| [f32_at(4 + 12 * k), f32_at(8 + 12 * k), f32_at(12 + 12 * k)]).collect();
    let mut faces = Vec::with_capacity(rest / 12);
    for k in 0..rest / 12 {
        let at = vend + 12 * k;
        let f = [u32_at(at), u32_at(at + 4), u32_at(at + 8)];
        if let Some(&v) = f.iter().find(|&&v| v as usize >= nv) {
            return Err(bad(format!("triangle {k} names vertex {v} of {nv}")));
        }
        faces.push(f);
    }
    Ok(Mesh { vertices, faces })
}

/// Encode a legacy fragment.
pub fn encode_legacy_fragment(mesh: &Mesh) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 12 * (mesh.vertices.len() + mesh.faces.len()));
    out.extend_from_slice(&(mesh.vertices.len() as u32).to_le_bytes());
    for v in &mesh.vertices {
        v.iter().for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
    }
    for f in &mesh.faces {
        f.iter().for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
    }
    out
}

/// Apply a 3x4 row-major transform to `v` in `f64` (cloud-volume's `apply_transform`).
pub fn transform_point(t: &[f64; 12], v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|r| t[4 * r] * v[0] + t[4 * r + 1] * v[1] + t[4 * r + 2] * v[2] + t[4 * r + 3])
}

/// The `f64` vertices of `mesh` under `transform` (None: as stored).
pub fn transformed(mesh: &Mesh, transform: Option<&[f64; 12]>) -> Vec<[f64; 3]> {
    mesh.vertices
        .iter()
        .map(|v| {
            let p = v.map(f64::from);
            match transform {
                Some(t) => transform_point(t, p),
                None => p,
            }
        })
        .collect()
}

/// cloud-volume's `Mesh.consolidate()` over `f64` vertices: equal vertices welded into one, the
/// vertices sorted (x, then y, then z, ascending), faces renumbered, then sorted and repeated
/// faces dropped (the same three indices in the same order); vertices end as `f32`.
pub fn consolidate(vertices: &[[f64; 3]], faces: &[[u32; 3]]) -> Mesh {
    if vertices.is_empty() {
        return Mesh::default();
    }
    let cmp = |a: &[f64; 3], b: &[f64; 3]| {
        a[0].total_cmp_eq(b[0]).then(a[1].total_cmp_eq(b[1])).then(a[2].total_cmp_eq(b[2]))
    };
    let mut order: Vec<u32> = (0..vertices.len() as u32).collect();
    order.sort_by(|&i, &j| cmp(&vertices[i as usize], &vertices[j as usize]));
    let mut new_index = vec![0u32; vertices.len()];
    let mut out_v: Vec<[f64; 3]> = Vec::new();
    for &i in &order {
        let v = vertices[i as usize];
        if out_v.last().is_none_or(|last| cmp(last, &v) != std::cmp::Ordering::Equal) {
            out_v.push(v);
        }
        new_index[i as usize] = (out_v.len() - 1) as u32;
    }
    let mut out_f: Vec<[u32; 3]> = faces.iter().map(|f| f.map(|i| new_index[i as usize])).collect();
    out_f.sort_unstable();
    out_f.dedup();
    Mesh { vertices: out_v.iter().map(|v| v.map(|c| c as f32)).collect(), faces: out_f }
}

/// cloud-volume's `Mesh.deduplicate_vertices(is_chunk_aligned)`: a vertex whose exact
/// coordinates occur exactly twice and that is `aligned` is merged with its twin; the corners
/// of the faces become the vertices, sorted by (x, y, z, own index or -1 when merged), repeats
/// (the same vertex used by several faces, merged twins) made one; faces renumbered, kept as
/// they are. Vertices end as `f32`.
pub fn deduplicate_vertices(vertices: &[[f64; 3]], faces: &[[u32; 3]], aligned: &[bool]) -> Mesh {
    use std::cmp::Ordering;
    let cmp3 = |a: &[f64; 3], b: &[f64; 3]| {
        a[0].total_cmp_eq(b[0]).then(a[1].total_cmp_eq(b[1])).then(a[2].total_cmp_eq(b[2]))
    };
    // How many times each vertex's coordinates occur.
    let mut order: Vec<usize> = (0..vertices.len()).collect();
    order.sort_by(|&i, &j| cmp3(&vertices[i], &vertices[j]));
    let mut count = vec![0usize; vertices.len()];
    let mut k = 0;
    while k < order.len() {
        let mut e = k + 1;
        while e < order.len() && cmp3(&vertices[order[k]], &vertices[order[e]]) == Ordering::Equal {
            e += 1;
        }
        for &i in &order[k..e] {
            count[i] = e - k;
        }
        k = e;
    }
    let tag = |i: usize| if count[i] == 2 && aligned.get(i).copied().unwrap_or(false) { -1.0 } else { i as f64 };
    let key = |i: usize| (vertices[i], tag(i));
    let corners: Vec<usize> = faces.iter().flatten().map(|&i| i as usize).collect();
    let mut sorted: Vec<usize> = (0..corners.len()).collect();
    let cmp4 = |a: usize, b: usize| {
        let ((va, ta), (vb, tb)) = (key(corners[a]), key(corners[b]));
        cmp3(&va, &vb).then(ta.total_cmp_eq(tb))
    };
    sorted.sort_by(|&a, &b| cmp4(a, b));
    let mut out_v: Vec<[f32; 3]> = Vec::new();
    let mut new_index = vec![0u32; corners.len()];
    for (n, &c) in sorted.iter().enumerate() {
        if n == 0 || cmp4(sorted[n - 1], c) != Ordering::Equal {
            out_v.push(vertices[corners[c]].map(|x| x as f32));
        }
        new_index[c] = (out_v.len() - 1) as u32;
    }
    let out_f = new_index.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    Mesh { vertices: out_v, faces: out_f }
}

/// cloud-volume's legacy `chunk_size` deduplication: vertices on a plane of the grid of
/// `chunk_nm` from `offset_nm` (on any axis) may merge (`deduplicate_vertices`).
pub fn deduplicate_chunk_boundaries(
    vertices: &[[f64; 3]],
    faces: &[[u32; 3]],
    chunk_nm: [f64; 3],
    offset_nm: [f64; 3],
) -> Mesh {
    let aligned: Vec<bool> =
        vertices.iter().map(|v| (0..3).any(|j| (v[j] - offset_nm[j]).rem_euclid(chunk_nm[j]) == 0.0)).collect();
    deduplicate_vertices(vertices, faces, &aligned)
}

/// Comparison of floats as numpy's sort orders them: by value, with -0 equal to 0 and NaN last.
trait NumpyOrder {
    fn total_cmp_eq(self, other: f64) -> std::cmp::Ordering;
}

impl NumpyOrder for f64 {
    fn total_cmp_eq(self, other: f64) -> std::cmp::Ordering {
        match self.partial_cmp(&other) {
            Some(o) => o,
            None => self.is_nan().cmp(&other.is_nan()),
        }
    }
}

/// A multi-resolution mesh manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiLodManifest {
    pub chunk_shape: [f32; 3],
    pub grid_origin: [f32; 3],
    pub lod_scales: Vec<f32>,
    /// Per lod, xyz.
    pub vertex_offsets: Vec<[f32; 3]>,
    /// Per lod, each fragment's grid position.
    pub positions: Vec<Vec<[u32; 3]>>,
    /// Per lod, each fragment's byte size.
    pub sizes: Vec<Vec<u32>>,
}

/// Most levels of detail a manifest may declare.
pub const MAX_LODS: usize = 64;

impl MultiLodManifest {
    /// Parse a manifest, which must be exactly as long as its counts say.
    ///
    /// # Errors
    /// A short or long manifest, absurd counts (`Decode`, naming `url`).
    pub fn parse(b: &[u8], url: &str) -> Result<MultiLodManifest> {
        let bad = |m: String| Error::decode(format!("{url}: multi-resolution mesh manifest {m}"));
        let u32_at = |i: usize| -> Result<u32> {
            b.get(i..i + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                .ok_or_else(|| bad(format!("ends at byte {} (needs more than {i})", b.len())))
        };
        let f32_at = |i: usize| u32_at(i).map(f32::from_bits);
        let v3 = |i: usize| -> Result<[f32; 3]> { Ok([f32_at(i)?, f32_at(i + 4)?, f32_at(i + 8)?]) };
        let chunk_shape = v3(0)?;
        let grid_origin = v3(12)?;
        let num_lods = u32_at(24)? as usize;
        if num_lods > MAX_LODS {
            return Err(bad(format!("declares {num_lods} levels of detail (at most {MAX_LODS})")));
        }
        let mut at = 28;
        let lod_scales = (0..num_lods).map(|l| f32_at(at + 4 * l)).collect::<Result<Vec<_>>>()?;
        at += 4 * num_lods;
        let vertex_offsets = (0..num_lods).map(|l| v3(at + 12 * l)).collect::<Result<Vec<_>>>()?;
        at += 12 * num_lods;
        let counts = (0..num_lods).map(|l| u32_at(at + 4 * l)).collect::<Result<Vec<_>>>()?;
        at += 4 * num_lods;
        let mut positions = Vec::with_capacity(num_lods);
        let mut sizes = Vec::with_capacity(num_lods);
        for (lod, &n) in counts.iter().enumerate() {
            let n = n as usize;
            let need = n.checked_mul(16).and_then(|x| x.checked_add(at));
            if need.is_none_or(|e| e > b.len()) {
                return Err(bad(format!("of {} bytes cannot hold the {n} fragments lod {lod} declares", b.len())));
            }
            let p: Vec<[u32; 3]> = (0..n)
                .map(|k| Ok([u32_at(at + 4 * k)?, u32_at(at + 4 * (n + k))?, u32_at(at + 4 * (2 * n + k))?]))
                .collect::<Result<_>>()?;
            at += 12 * n;
            let s: Vec<u32> = (0..n).map(|k| u32_at(at + 4 * k)).collect::<Result<_>>()?;
            at += 4 * n;
            positions.push(p);
            sizes.push(s);
        }
        if at != b.len() {
            return Err(bad(format!("is {} bytes, its counts make it {at}", b.len())));
        }
        Ok(MultiLodManifest { chunk_shape, grid_origin, lod_scales, vertex_offsets, positions, sizes })
    }

    pub fn num_lods(&self) -> usize {
        self.lod_scales.len()
    }

    /// Bytes of every fragment of `lod`.
    pub fn lod_bytes(&self, lod: usize) -> u64 {
        self.sizes.get(lod).map_or(0, |s| s.iter().map(|&x| u64::from(x)).sum())
    }

    /// Where `lod`'s fragments start in the fragment data, and all fragments' bytes.
    pub fn lod_start(&self, lod: usize) -> u64 {
        (0..lod).map(|l| self.lod_bytes(l)).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        (0..self.num_lods()).map(|l| self.lod_bytes(l)).sum()
    }

    /// A quantized vertex `v` of fragment `frag` at `lod` in model coordinates, as cloud-volume's
    /// `from_stored_model_space` computes it (float32 header values, `f64` arithmetic).
    pub fn model_point(&self, lod: usize, frag: usize, v: [f64; 3], quantization_bits: u32) -> [f64; 3] {
        self.fragment_map(lod, frag, quantization_bits).apply(v.map(|c| c as f32))
    }

    /// [`MultiLodManifest::model_point`] for every vertex of one fragment, its constants
    /// computed once.
    pub fn fragment_map(&self, lod: usize, frag: usize, quantization_bits: u32) -> FragmentMap {
        let q = 2f64.powi(quantization_bits as i32) - 1.0;
        let scale = 2f64.powi(lod as i32);
        let p = self.positions[lod][frag];
        FragmentMap {
            // grid_origin + vertex_offsets are added in float32 first, as numpy does.
            base: [0, 1, 2].map(|j| f64::from(self.grid_origin[j] + self.vertex_offsets[lod][j])),
            cs: [0, 1, 2].map(|j| f64::from(self.chunk_shape[j] * scale as f32)),
            p: p.map(f64::from),
            q: q as f32,
        }
    }
}

/// The map from one fragment's quantized vertices to model coordinates (cloud-volume's
/// `from_stored_model_space`: float32 division, `f64` arithmetic after).
#[derive(Debug, Clone, Copy)]
pub struct FragmentMap {
    base: [f64; 3],
    cs: [f64; 3],
    p: [f64; 3],
    q: f32,
}

impl FragmentMap {
    /// Vertex `v` (quantized, as Draco decoded it) in model coordinates.
    #[inline]
    pub fn apply(&self, v: [f32; 3]) -> [f64; 3] {
        [0, 1, 2].map(|j| self.base[j] + self.cs[j] * (self.p[j] + f64::from(v[j] / self.q)))
    }
}

/// Encode a manifest (the inverse of [`MultiLodManifest::parse`]).
pub fn encode_multilod_manifest(m: &MultiLodManifest) -> Vec<u8> {
    let mut out = Vec::new();
    let f = |out: &mut Vec<u8>, x: f32| out.extend_from_slice(&x.to_le_bytes());
    let u = |out: &mut Vec<u8>, x: u32| out.extend_from_slice(&x.to_le_bytes());
    m.chunk_shape.iter().for_each(|&x| f(&mut out, x));
    m.grid_origin.iter().for_each(|&x| f(&mut out, x));
    u(&mut out, m.lod_scales.len() as u32);
    m.lod_scales.iter().for_each(|&x| f(&mut out, x));
    m.vertex_offsets.iter().flatten().for_each(|&x| f(&mut out, x));
    m.positions.iter().for_each(|p| u(&mut out, p.len() as u32));
    for (p, s) in m.positions.iter().zip(&m.sizes) {
        for j in 0..3 {
            p.iter().for_each(|pos| u(&mut out, pos[j]));
        }
        s.iter().for_each(|&x| u(&mut out, x));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legacy_round_trip_and_refusals() {
        let m = Mesh { vertices: vec![[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.5, 7.0, -8.0]], faces: vec![[0, 1, 2]] };
        let b = encode_legacy_fragment(&m);
        assert_eq!(b.len(), 4 + 36 + 12);
        assert_eq!(legacy_fragment(&b, "u").unwrap(), m);
        assert!(legacy_fragment(&b[..b.len() - 1], "u").unwrap_err().message().contains("multiple of 12"));
        assert!(legacy_fragment(&b[..30], "u").unwrap_err().message().contains("3 vertices"));
        let mut bad = b.clone();
        bad[44..48].copy_from_slice(&9u32.to_le_bytes());
        assert!(legacy_fragment(&bad, "u").unwrap_err().message().contains("vertex 9 of 3"));
        assert!(legacy_fragment(&[1, 2], "u").is_err());
        let huge = u32::MAX.to_le_bytes();
        assert!(legacy_fragment(&huge, "u").is_err());
    }

    #[test]
    fn manifests() {
        assert_eq!(legacy_manifest(br#"{"fragments": ["a", "b:0:1"]}"#, "u").unwrap(), ["a", "b:0:1"]);
        assert!(legacy_manifest(b"{}", "u").is_err());
        assert!(legacy_manifest(br#"{"fragments": [1]}"#, "u").is_err());
        let m = MultiLodManifest {
            chunk_shape: [8.0, 8.0, 4.0],
            grid_origin: [1.0, 2.0, 3.0],
            lod_scales: vec![1.0, 2.0],
            vertex_offsets: vec![[0.0; 3], [0.5, 0.5, 0.5]],
            positions: vec![vec![[0, 0, 0], [1, 0, 2]], vec![[0, 0, 1]]],
            sizes: vec![vec![10, 20], vec![5]],
        };
        let b = encode_multilod_manifest(&m);
        assert_eq!(MultiLodManifest::parse(&b, "u").unwrap(), m);
        assert_eq!((m.lod_start(1), m.total_bytes()), (30, 35));
        assert!(MultiLodManifest::parse(&b[..b.len() - 4], "u").is_err());
        let mut long = b.clone();
        long.push(0);
        assert!(MultiLodManifest::parse(&long, "u").unwrap_err().message().contains("counts"));
        let mut absurd = b.clone();
        absurd[24..28].copy_from_slice(&1000u32.to_le_bytes());
        assert!(MultiLodManifest::parse(&absurd, "u").is_err());
        // model coordinates: origin + offset + chunk*2^lod*(p + v/(2^q-1))
        let p = m.model_point(1, 0, [1023.0, 0.0, 0.0], 10);
        assert_eq!(p, [1.5 + 16.0, 2.5, 3.5 + 8.0]);
    }

    #[test]
    fn infos() {
        assert_eq!(MeshInfo::parse(None, "u").unwrap().kind, MeshKind::Legacy);
        let j = json!({"@type": "neuroglancer_multilod_draco", "vertex_quantization_bits": 16,
                       "transform": [2, 0, 0, 1, 0, 2, 0, 0, 0, 0, 2, 0], "lod_scale_multiplier": 1});
        let i = MeshInfo::parse(Some(&j), "u").unwrap();
        assert!(matches!(i.kind, MeshKind::MultiLod { vertex_quantization_bits: 16, .. }));
        assert_eq!(i.transform.unwrap()[3], 1.0);
        let j = json!({"@type": "neuroglancer_multilod_draco", "vertex_quantization_bits": 12});
        assert!(MeshInfo::parse(Some(&j), "u").is_err());
        let j = json!({"@type": "neuroglancer_legacy_mesh", "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]});
        assert_eq!(MeshInfo::parse(Some(&j), "u").unwrap().transform, None);
        assert!(MeshInfo::parse(Some(&json!({"@type": "x"})), "u").is_err());
        assert_eq!(MeshInfo::parse(Some(&json!({"mip": 2})), "u").unwrap().mip, Some(2));
    }

    #[test]
    fn consolidate_sorts_welds_and_dedups_faces() {
        let v = [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-0.0, 0.0, 0.0]];
        let f = [[0, 1, 3], [2, 4, 3], [3, 2, 1]];
        let m = consolidate(&v, &f);
        assert_eq!(m.vertices, vec![[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]);
        // [2,0,1] twice, [1,2,0]: sorted, repeated ones dropped.
        assert_eq!(m.faces, vec![[1, 2, 0], [2, 0, 1]]);
    }

    #[test]
    fn chunk_boundary_dedup_merges_aligned_pairs_only() {
        // Two triangles meeting on the plane x = 8: the shared pair merges; (8,0,0) occurs three
        // times, so it stays duplicated; (1,1,0) is not on a plane.
        let v = [
            [8.0, 5.0, 0.0],
            [1.0, 1.0, 0.0],
            [8.0, 0.0, 0.0],
            [8.0, 5.0, 0.0],
            [9.0, 1.0, 0.0],
            [8.0, 0.0, 0.0],
            [8.0, 0.0, 0.0],
        ];
        let f = [[0, 1, 2], [3, 4, 5], [6, 6, 6]];
        let m = deduplicate_chunk_boundaries(&v, &f, [8.0, 8.0, 8.0], [0.0; 3]);
        assert_eq!(m.vertices.len(), 6);
        assert_eq!(m.faces[0][0], m.faces[1][0]); // (8,5,0) merged
        assert_ne!(m.faces[0][2], m.faces[1][2]); // (8,0,0) kept apart
    }
}
