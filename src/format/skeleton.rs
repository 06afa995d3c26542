//! Skeletons without I/O (`neuroglancer_skeletons`): the skeleton directory's info and the
//! binary format.
//!
//! A skeleton is `u32 nv`, `u32 ne`, `nv` xyz `f32` vertices, `ne` pairs of `u32` vertex
//! indices, then each vertex attribute the info declares, in its order, `nv * num_components`
//! values of its type. A file that ends right after the edges carries no attributes (osteoid's
//! reading; osteoid then gives radius -1 and vertex_types 0); bytes past the declared
//! attributes are ignored, as osteoid ignores them. Vertices are in stored model space; the info's `transform` (float32, as osteoid
//! keeps it) makes them physical.

use serde_json::{json, Value};

use super::info::DataType;
use super::sharding::ShardingSpec;
use crate::error::{Error, Result};

/// One vertex attribute of the info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexAttribute {
    pub id: String,
    pub data_type: DataType,
    pub num_components: u32,
}

/// A skeleton directory's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct SkeletonInfo {
    /// Row-major 3x4 `[R|t]`, as float32 values; None: the identity.
    pub transform: Option<[f32; 12]>,
    pub vertex_attributes: Vec<VertexAttribute>,
    pub sharding: Option<ShardingSpec>,
}

/// Types a vertex attribute may have (Neuroglancer's list).
const ATTRIBUTE_TYPES: [DataType; 7] =
    [DataType::F32, DataType::I8, DataType::U8, DataType::I16, DataType::U16, DataType::I32, DataType::U32];

impl SkeletonInfo {
    /// The metadata of a skeleton directory whose `info` is `json` (None: there is none;
    /// cloud-volume's default info then applies).
    ///
    /// # Errors
    /// Malformed members (`Decode`), an attribute type Neuroglancer does not define
    /// (`Unsupported`), both naming `url`.
    pub fn parse(json: Option<&Value>, url: &str) -> Result<SkeletonInfo> {
        let default = Self::default_json();
        let j = json.unwrap_or(&default);
        let bad = |m: String| Error::decode(format!("{url}: skeleton info {m}"));
        let obj = j.as_object().ok_or_else(|| bad("must be an object".into()))?;
        if let Some(t) = obj.get("@type").and_then(Value::as_str) {
            if t != "neuroglancer_skeletons" {
                return Err(Error::unsupported(format!(
                    "{url}: skeleton \"@type\" \"{t}\" is not neuroglancer_skeletons"
                )));
            }
        }
        let transform = super::mesh::parse_transform(obj.get("transform"), url)?.map(|t| t.map(|x| x as f32));
        let mut vertex_attributes = Vec::new();
        if let Some(list) = obj.get("vertex_attributes").filter(|v| !v.is_null()) {
            let list = list.as_array().ok_or_else(|| bad("\"vertex_attributes\" must be a list".into()))?;
            for a in list {
                let id = a
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad(format!("vertex attribute {a} has no \"id\"")))?;
                if vertex_attributes.iter().any(|v: &VertexAttribute| v.id == id) {
                    return Err(bad(format!("vertex attribute \"{id}\" is declared twice")));
                }
                let name = a.get("data_type").and_then(Value::as_str).unwrap_or("");
                let data_type = DataType::parse(name)
                    .filter(|d| ATTRIBUTE_TYPES.contains(d))
                    .ok_or_else(|| {
                        Error::unsupported(format!(
                            "{url}: vertex attribute \"{id}\" has data_type \"{name}\" (float32, int8, uint8, int16, uint16, int32 or uint32)"
                        ))
                    })?;
                let num_components = a
                    .get("num_components")
                    .and_then(Value::as_u64)
                    .filter(|&n| (1..=1024).contains(&n))
                    .ok_or_else(|| bad(format!("vertex attribute \"{id}\" needs num_components in 1..=1024")))?
                    as u32;
                vertex_attributes.push(VertexAttribute { id: id.to_string(), data_type, num_components });
            }
        }
        let sharding = match obj.get("sharding") {
            None | Some(Value::Null) => None,
            Some(s) => Some(ShardingSpec::parse(s, url)?),
        };
        Ok(SkeletonInfo { transform, vertex_attributes, sharding })
    }

    /// cloud-volume's default skeleton info (`default_info`): radius (float32) and vertex_types
    /// (uint8), the identity transform, unsharded.
    pub fn default_json() -> Value {
        json!({
            "@type": "neuroglancer_skeletons",
            "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
            "vertex_attributes": [
                {"id": "radius", "data_type": "float32", "num_components": 1},
                {"id": "vertex_types", "data_type": "uint8", "num_components": 1},
            ],
        })
    }
}

/// A skeleton: vertices, edges, and the attributes read (each `nv * num_components` values,
/// little-endian bytes of its type).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Skeleton {
    pub vertices: Vec<[f32; 3]>,
    pub edges: Vec<[u32; 2]>,
    pub attributes: Vec<(VertexAttribute, Vec<u8>)>,
}

impl Skeleton {
    /// Decode a skeleton with the attributes `attrs` declares.
    ///
    /// # Errors
    /// A short file, one of another length than its counts and attributes make, an edge naming
    /// a vertex past `nv` (`Decode`, naming `url`).
    pub fn decode(b: &[u8], attrs: &[VertexAttribute], url: &str) -> Result<Skeleton> {
        let bad = |m: String| Error::decode(format!("{url}: skeleton {m}"));
        if b.len() < 8 {
            return Err(bad(format!("of {} bytes has no vertex and edge counts", b.len())));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let (nv, ne) = (u32_at(0) as u64, u32_at(4) as u64);
        let base = 8 + 12 * nv + 8 * ne;
        if (b.len() as u64) < base {
            return Err(bad(format!(
                "of {} bytes is shorter than its {nv} vertices and {ne} edges need ({base})",
                b.len()
            )));
        }
        let (nv, ne, base) = (nv as usize, ne as usize, base as usize);
        let vertices = (0..nv).map(|k| [0, 1, 2].map(|j| f32::from_bits(u32_at(8 + 12 * k + 4 * j)))).collect();
        let e0 = 8 + 12 * nv;
        let mut edges = Vec::with_capacity(ne);
        for k in 0..ne {
            let e = [u32_at(e0 + 8 * k), u32_at(e0 + 8 * k + 4)];
            if let Some(&v) = e.iter().find(|&&v| v as usize >= nv) {
                return Err(bad(format!("edge {k} names vertex {v} of {nv}")));
            }
            edges.push(e);
        }
        let mut attributes = Vec::new();
        if b.len() == base || attrs.is_empty() {
            // No attribute bytes, or an info declaring none: osteoid gives radius -1 and
            // vertex_types 0 (its Skeleton's defaults), whatever else the file holds.
            let radius = VertexAttribute { id: "radius".into(), data_type: DataType::F32, num_components: 1 };
            let types = VertexAttribute { id: "vertex_types".into(), data_type: DataType::U8, num_components: 1 };
            attributes.push((radius, (0..nv).flat_map(|_| (-1f32).to_le_bytes()).collect()));
            attributes.push((types, vec![0u8; nv]));
        } else {
            let mut at = base;
            for a in attrs {
                let n = nv * a.num_components as usize * a.data_type.size();
                let part = b.get(at..at + n).ok_or_else(|| {
                    bad(format!(
                        "of {} bytes ends inside vertex attribute \"{}\" (bytes {at}..{})",
                        b.len(),
                        a.id,
                        at + n
                    ))
                })?;
                attributes.push((a.clone(), part.to_vec()));
                at += n;
            }
            // Bytes past the declared attributes are ignored, as osteoid ignores them (a file
            // written with more attributes than the info now declares).
            let _ = at;
        }
        Ok(Skeleton { vertices, edges, attributes })
    }

    /// Encode with the attributes `attrs` declares; the skeleton must carry each of them (by
    /// id, in any order), or none (then none are written).
    ///
    /// # Errors
    /// A missing attribute or one of the wrong type or length, an edge past the vertices
    /// (`InvalidArgument`).
    pub fn encode(&self, attrs: &[VertexAttribute]) -> Result<Vec<u8>> {
        let nv = self.vertices.len();
        if let Some((k, e)) = self.edges.iter().enumerate().find(|(_, e)| e.iter().any(|&v| v as usize >= nv)) {
            return Err(Error::invalid(format!("skeleton edge {k} {e:?} names a vertex past its {nv}")));
        }
        let mut out = Vec::with_capacity(8 + 12 * nv + 8 * self.edges.len());
        out.extend_from_slice(&(nv as u32).to_le_bytes());
        out.extend_from_slice(&(self.edges.len() as u32).to_le_bytes());
        self.vertices.iter().flatten().for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
        self.edges.iter().flatten().for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
        if self.attributes.is_empty() {
            return Ok(out);
        }
        for a in attrs {
            let (have, bytes) = self.attributes.iter().find(|(h, _)| h.id == a.id).ok_or_else(|| {
                Error::invalid(format!("the skeleton has no vertex attribute \"{}\", which the info declares", a.id))
            })?;
            let n = nv * a.num_components as usize * a.data_type.size();
            if have.data_type != a.data_type || have.num_components != a.num_components || bytes.len() != n {
                return Err(Error::invalid(format!(
                    "vertex attribute \"{}\" is {} x {} ({} bytes); the info declares {} x {} ({n} bytes for {nv} vertices)",
                    a.id,
                    have.data_type.name(),
                    have.num_components,
                    bytes.len(),
                    a.data_type.name(),
                    a.num_components
                )));
            }
            out.extend_from_slice(bytes);
        }
        if let Some((extra, _)) = self.attributes.iter().find(|(h, _)| !attrs.iter().any(|a| a.id == h.id)) {
            return Err(Error::invalid(format!("vertex attribute \"{}\" is not in the info", extra.id)));
        }
        Ok(out)
    }

    /// The vertices under `transform` (osteoid's float32 `physical_space()`).
    pub fn physical(&self, transform: Option<&[f32; 12]>) -> Vec<[f32; 3]> {
        match transform {
            None => self.vertices.clone(),
            Some(t) => self
                .vertices
                .iter()
                .map(|v| [0, 1, 2].map(|r| t[4 * r] * v[0] + t[4 * r + 1] * v[1] + t[4 * r + 2] * v[2] + t[4 * r + 3]))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Vec<VertexAttribute> {
        vec![
            VertexAttribute { id: "radius".into(), data_type: DataType::F32, num_components: 1 },
            VertexAttribute { id: "rgb".into(), data_type: DataType::U8, num_components: 3 },
        ]
    }

    #[test]
    fn round_trip_and_refusals() {
        let a = attrs();
        let s = Skeleton {
            vertices: vec![[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]],
            edges: vec![[0, 1]],
            attributes: vec![
                (a[1].clone(), vec![1, 2, 3, 4, 5, 6]),
                (a[0].clone(), [1.5f32, 2.5].iter().flat_map(|x| x.to_le_bytes()).collect()),
            ],
        };
        let b = s.encode(&a).unwrap();
        assert_eq!(b.len(), 8 + 24 + 8 + 8 + 6);
        let back = Skeleton::decode(&b, &a, "u").unwrap();
        assert_eq!((back.vertices.clone(), back.edges.clone()), (s.vertices.clone(), s.edges.clone()));
        assert_eq!(back.attributes[0].0.id, "radius");
        assert_eq!(back.attributes[1].1, vec![1, 2, 3, 4, 5, 6]);
        // No attributes after the edges: osteoid's defaults.
        let d = Skeleton::decode(&b[..40], &a, "u").unwrap();
        assert_eq!((d.attributes[0].0.id.as_str(), d.attributes[1].1.clone()), ("radius", vec![0, 0]));
        assert_eq!(Skeleton::decode(&b, &[], "u").unwrap().attributes.len(), 2);
        assert!(Skeleton::decode(&b[..b.len() - 1], &a, "u").unwrap_err().message().contains("rgb"));
        assert!(Skeleton::decode(&b[..20], &a, "u").is_err());
        let mut e = b.clone();
        e[32..36].copy_from_slice(&7u32.to_le_bytes());
        assert!(Skeleton::decode(&e, &a, "u").unwrap_err().message().contains("vertex 7 of 2"));
        let mut big = b.clone();
        big[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Skeleton::decode(&big, &a, "u").is_err());
        let mut missing = s.clone();
        missing.attributes.pop();
        assert!(missing.encode(&a).unwrap_err().message().contains("radius"));
    }

    #[test]
    fn infos() {
        let i = SkeletonInfo::parse(None, "u").unwrap();
        assert_eq!((i.vertex_attributes.len(), i.transform), (2, None));
        let j = json!({"transform": [8, 0, 0, 0, 0, 8, 0, 0, 0, 0, 40, 0]});
        let i = SkeletonInfo::parse(Some(&j), "u").unwrap();
        assert!(i.vertex_attributes.is_empty());
        assert_eq!(i.transform.unwrap()[10], 40.0);
        let bad = json!({"vertex_attributes": [{"id": "x", "data_type": "float64", "num_components": 1}]});
        assert_eq!(SkeletonInfo::parse(Some(&bad), "u").unwrap_err().kind(), crate::error::ErrorKind::Unsupported);
        let dup = json!({"vertex_attributes": [{"id": "x", "data_type": "uint8", "num_components": 1},
                                               {"id": "x", "data_type": "uint8", "num_components": 1}]});
        assert!(SkeletonInfo::parse(Some(&dup), "u").is_err());
        let s = Skeleton { vertices: vec![[1.0, 2.0, 3.0]], edges: vec![], attributes: vec![] };
        assert_eq!(s.physical(i.transform.as_ref()), vec![[8.0, 16.0, 120.0]]);
    }
}
