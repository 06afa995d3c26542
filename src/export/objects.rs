//! Meshes and skeletons saved for other tools, in cloud-volume's own renderings:
//!
//! - OBJ (`Mesh.to_obj`): `v x y z` with 5 decimals, then `f a b c` 1-based, `\n` line ends.
//! - PLY (`Mesh.to_ply`): binary little-endian, `float` x y z, faces as `list int int`.
//! - STL: binary; an 80-byte header, the triangle count, and per triangle its unit normal (zero
//!   for a degenerate one), three vertices and a zero attribute word.
//! - SWC (osteoid's `to_swc`): a `#` header with `SCALE`, then per connected component with edges
//!   a depth-first walk from its first edge's first vertex (neighbours pushed in ascending order,
//!   so the largest is walked first, as CPython's small-int sets order them in osteoid),
//!   rows `n T x y z R P` (6 decimals) numbered from 1 in visit order, the root's parent -1; the
//!   type from the `vertex_types` attribute (else 0), the radius from `radius` (else -1).
//!   Vertices without edges are left out, as osteoid leaves them.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::mesh::Mesh;
use crate::format::skeleton::Skeleton;
use crate::format::DataType;

/// A mesh file format, from a path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshFormat {
    Obj,
    Ply,
    Stl,
}

impl MeshFormat {
    /// The format named by `path`'s extension (`.obj`, `.ply`, `.stl`, any case).
    ///
    /// # Errors
    /// Another extension (`InvalidArgument`).
    pub fn of_path(path: &Path) -> Result<MeshFormat> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("obj") => Ok(MeshFormat::Obj),
            Some("ply") => Ok(MeshFormat::Ply),
            Some("stl") => Ok(MeshFormat::Stl),
            _ => Err(Error::invalid(format!(
                "{}: a mesh is saved as .obj, .ply or .stl (named by the extension)",
                path.display()
            ))),
        }
    }
}

/// cloud-volume's OBJ text.
pub fn mesh_obj(m: &Mesh) -> Vec<u8> {
    let mut s = String::with_capacity(40 * m.vertices.len() + 24 * m.faces.len());
    for v in &m.vertices {
        let _ = writeln!(s, "v {:.5} {:.5} {:.5}", v[0], v[1], v[2]);
    }
    for f in &m.faces {
        let _ = writeln!(s, "f {} {} {}", u64::from(f[0]) + 1, u64::from(f[1]) + 1, u64::from(f[2]) + 1);
    }
    s.into_bytes()
}

/// cloud-volume's binary PLY.
pub fn mesh_ply(m: &Mesh) -> Vec<u8> {
    let mut out = format!(
        "ply\nformat binary_little_endian 1.0\nelement vertex {}\nproperty float x\nproperty float y\nproperty float z\n\
         element face {}\nproperty list int int vertex_indices\nend_header\n",
        m.vertices.len(),
        m.faces.len()
    )
    .into_bytes();
    out.reserve(12 * m.vertices.len() + 16 * m.faces.len());
    m.vertices.iter().flatten().for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
    for f in &m.faces {
        out.extend_from_slice(&3i32.to_le_bytes());
        f.iter().for_each(|&i| out.extend_from_slice(&(i as i32).to_le_bytes()));
    }
    out
}

/// Binary STL.
pub fn mesh_stl(m: &Mesh) -> Vec<u8> {
    let mut out = Vec::with_capacity(84 + 50 * m.faces.len());
    let mut header = [0u8; 80];
    let tag = b"cloudvolume binary STL";
    header[..tag.len()].copy_from_slice(tag);
    out.extend_from_slice(&header);
    out.extend_from_slice(&(m.faces.len() as u32).to_le_bytes());
    for f in &m.faces {
        let [a, b, c] = f.map(|i| m.vertices[i as usize].map(f64::from));
        let (u, w) = ([0, 1, 2].map(|j| b[j] - a[j]), [0, 1, 2].map(|j| c[j] - a[j]));
        let n = [u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]];
        let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        let n = if len > 0.0 { n.map(|x| (x / len) as f32) } else { [0.0; 3] };
        n.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        for v in [a, b, c] {
            v.iter().for_each(|&x| out.extend_from_slice(&(x as f32).to_le_bytes()));
        }
        out.extend_from_slice(&0u16.to_le_bytes());
    }
    out
}

/// The mesh in `format`.
pub fn mesh_bytes(m: &Mesh, format: MeshFormat) -> Vec<u8> {
    match format {
        MeshFormat::Obj => mesh_obj(m),
        MeshFormat::Ply => mesh_ply(m),
        MeshFormat::Stl => mesh_stl(m),
    }
}

/// Write `m` to `path` in the format its extension names (replacing the file).
///
/// # Errors
/// An unknown extension (`InvalidArgument`); I/O errors (`Io`, naming the path).
pub fn save_mesh(m: &Mesh, path: &Path) -> Result<()> {
    let bytes = mesh_bytes(m, MeshFormat::of_path(path)?);
    std::fs::write(path, bytes).map_err(|e| Error::io(format!("{}: cannot write the mesh: {e}", path.display())))
}

/// A one-component attribute's values as `f64` (None when absent or not one component).
fn attribute_values(s: &Skeleton, id: &str) -> Option<Vec<f64>> {
    let (a, bytes) = s.attributes.iter().find(|(a, _)| a.id == id)?;
    if a.num_components != 1 {
        return None;
    }
    let size = a.data_type.size();
    Some(
        bytes
            .chunks_exact(size)
            .map(|c| match a.data_type {
                DataType::F32 => f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                DataType::U8 => f64::from(c[0]),
                DataType::I8 => f64::from(c[0] as i8),
                DataType::U16 => f64::from(u16::from_le_bytes([c[0], c[1]])),
                DataType::I16 => f64::from(i16::from_le_bytes([c[0], c[1]])),
                DataType::U32 => f64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                DataType::I32 => f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                _ => 0.0,
            })
            .collect(),
    )
}

/// osteoid's SWC text; `scale` is the header's `SCALE` (the transform's diagonal).
pub fn skeleton_swc(s: &Skeleton, scale: [f32; 3]) -> String {
    let nv = s.vertices.len();
    let types = attribute_values(s, "vertex_types");
    let radii = attribute_values(s, "radius");
    let mut out = format!(
        "# ORIGINAL_SOURCE cloudvolume {}\n# CREATURE \n# REGION\n# FIELD/LAYER\n# TYPE\n# CONTRIBUTOR \n# REFERENCE\n\
         # RAW \n# EXTRAS \n# SOMA_AREA\n# SHINKAGE_CORRECTION \n# VERSION_NUMBER {}\n# SCALE {:.6} {:.6} {:.6}\n\n",
        crate::VERSION,
        crate::VERSION,
        scale[0],
        scale[1],
        scale[2]
    );
    let mut adj: Vec<Vec<u32>> = vec![Vec::new(); nv];
    for e in &s.edges {
        adj[e[0] as usize].push(e[1]);
        adj[e[1] as usize].push(e[0]);
    }
    adj.iter_mut().for_each(|a| {
        a.sort_unstable();
        a.dedup();
    });
    let mut number = vec![0u64; nv];
    let mut next = 1u64;
    // Components in the order their first edge appears.
    for e in &s.edges {
        let root = e[0] as usize;
        if number[root] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, i64)> = vec![(root, -1)];
        while let Some((node, parent)) = stack.pop() {
            if number[node] != 0 {
                continue;
            }
            number[node] = next;
            next += 1;
            let v = s.vertices[node];
            let t = types.as_ref().map_or(0.0, |t| t[node]);
            let r = radii.as_ref().map_or(-1.0, |r| r[node]);
            let _ = writeln!(out, "{} {} {:.6} {:.6} {:.6} {:.6} {}", number[node], t, v[0], v[1], v[2], r, parent);
            // Pushed in ascending order (osteoid pushes in set order), so the largest is walked first.
            for &c in adj[node].iter() {
                if number[c as usize] == 0 {
                    stack.push((c as usize, number[node] as i64));
                }
            }
        }
    }
    // osteoid ends the last row without a newline.
    if out.ends_with('\n') && next > 1 {
        out.pop();
    }
    out
}

/// Write `s` as SWC to `path`.
///
/// # Errors
/// I/O errors (`Io`, naming the path).
pub fn save_swc(s: &Skeleton, scale: [f32; 3], path: &Path) -> Result<()> {
    std::fs::write(path, skeleton_swc(s, scale))
        .map_err(|e| Error::io(format!("{}: cannot write the skeleton: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::skeleton::VertexAttribute;

    fn tri() -> Mesh {
        Mesh { vertices: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.5, 0.0]], faces: vec![[0, 1, 2]] }
    }

    #[test]
    fn obj_ply_stl() {
        let obj = String::from_utf8(mesh_obj(&tri())).unwrap();
        assert_eq!(obj, "v 0.00000 0.00000 0.00000\nv 1.00000 0.00000 0.00000\nv 0.00000 2.50000 0.00000\nf 1 2 3\n");
        let ply = mesh_ply(&tri());
        let h = b"end_header\n";
        let at = ply.windows(h.len()).position(|w| w == h).unwrap() + h.len();
        assert_eq!(ply.len() - at, 36 + 16);
        let stl = mesh_stl(&tri());
        assert_eq!(stl.len(), 84 + 50);
        assert_eq!(f32::from_le_bytes(stl[92..96].try_into().unwrap()), 1.0); // normal +z
        assert!(MeshFormat::of_path(Path::new("a.OBJ")).is_ok() && MeshFormat::of_path(Path::new("a.x")).is_err());
    }

    #[test]
    fn swc_walks_each_component_depth_first() {
        let r = VertexAttribute { id: "radius".into(), data_type: DataType::F32, num_components: 1 };
        let s = Skeleton {
            vertices: vec![[0.0; 3], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [9.0; 3], [5.0; 3], [6.0; 3]],
            edges: vec![[1, 0], [1, 2], [4, 5]],
            attributes: vec![(r, [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|x| x.to_le_bytes()).collect())],
        };
        let swc = skeleton_swc(&s, [1.0, 1.0, 1.0]);
        let rows: Vec<&str> = swc.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
        assert_eq!(
            rows,
            [
                "1 0 1.000000 0.000000 0.000000 2.000000 -1",
                "2 0 2.000000 0.000000 0.000000 3.000000 1",
                "3 0 0.000000 0.000000 0.000000 1.000000 1",
                "4 0 5.000000 5.000000 5.000000 5.000000 -1",
                "5 0 6.000000 6.000000 6.000000 6.000000 4",
            ]
        );
    }
}
