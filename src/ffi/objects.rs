//! The C ABI of meshes and skeletons. A read gives an opaque result (`cv_mesh`, `cv_skeleton`)
//! whose sizes are asked first (`cv_mesh_counts`, `cv_skeleton_counts`) and whose arrays are
//! then copied into the caller's buffers, each call checking the buffer's exact length in
//! bytes; results are read-only (any thread may read one) and released with `cv_mesh_free` /
//! `cv_skeleton_free`.

use std::ffi::{c_char, c_void, CString};
use std::path::Path;

use super::*;
use crate::error::Error;
use crate::export::objects::{save_mesh, save_swc};
use crate::format::mesh::Mesh;
use crate::format::skeleton::{Skeleton, VertexAttribute};
use crate::volume::objects::{Lod, MeshRequest};

const MESH_LIVE: u64 = 0x6376_5f6d_6573_6821; // "cv_mesh!"
const SKELETON_LIVE: u64 = 0x6376_5f73_6b65_6c21; // "cv_skel!"

/// A mesh: vertices (x, y, z float32, physical nm) and triangles (3 uint32 vertex indices,
/// from 0). Opaque to C.
pub struct cv_mesh {
    magic: u64,
    mesh: Mesh,
}

/// A skeleton: vertices (x, y, z float32, physical), edges (2 uint32 vertex indices) and
/// vertex attributes. Opaque to C.
pub struct cv_skeleton {
    magic: u64,
    skeleton: Skeleton,
    names: Vec<CString>,
    scale: [f32; 3],
}

/// # Safety
/// `p` is NULL or a pointer from `cv_mesh_get` not yet freed.
unsafe fn mesh_arg<'a>(p: *const cv_mesh) -> Result<&'a Mesh> {
    if p.is_null() {
        return Err(Error::invalid("mesh is NULL"));
    }
    if (*p).magic != MESH_LIVE {
        return Err(Error::invalid("mesh is not a live cv_mesh (freed or foreign pointer)"));
    }
    Ok(&(*p).mesh)
}

/// # Safety
/// `p` is NULL or a pointer from `cv_skeleton_get` not yet freed.
unsafe fn skeleton_arg<'a>(p: *const cv_skeleton) -> Result<&'a cv_skeleton> {
    if p.is_null() {
        return Err(Error::invalid("skeleton is NULL"));
    }
    if (*p).magic != SKELETON_LIVE {
        return Err(Error::invalid("skeleton is not a live cv_skeleton (freed or foreign pointer)"));
    }
    Ok(&*p)
}

/// Copy `src` into the caller's `buf` of `buf_len` bytes, which must be exactly its size.
///
/// # Safety
/// `buf` is NULL or holds `buf_len` writable bytes.
unsafe fn copy_out(src: &[u8], buf: *mut c_void, buf_len: usize, what: &str) -> Result<()> {
    if buf_len != src.len() {
        return Err(Error::invalid(format!("buf_len is {buf_len} bytes, but the {what} take {}", src.len())));
    }
    if src.is_empty() {
        return Ok(());
    }
    if buf.is_null() {
        return Err(Error::invalid("buf is NULL"));
    }
    std::ptr::copy_nonoverlapping(src.as_ptr(), buf.cast::<u8>(), src.len());
    Ok(())
}

fn f32_bytes<const N: usize>(v: &[[f32; N]]) -> Vec<u8> {
    v.iter().flatten().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32_bytes<const N: usize>(v: &[[u32; N]]) -> Vec<u8> {
    v.iter().flatten().flat_map(|x| x.to_le_bytes()).collect()
}

/// # Safety
/// `p` is NULL (with `n == 0`) or points to `n` readable `T`.
unsafe fn slice_arg<'a, T>(p: *const T, n: usize, name: &str) -> Result<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::invalid(format!("{name} is NULL but its count is {n}")));
    }
    Ok(std::slice::from_raw_parts(p, n))
}

/// The mesh of the `n_ids` segments `ids`, as one (cloud-volume's `vol.mesh.get([a, b, c])`):
/// concatenated in id order; `lod` a level of detail (0 the finest) or -1 for the coarsest
/// (legacy meshes have only lod 0); `weld` 1 to merge equal vertices (cloud-volume's
/// `remove_duplicate_vertices`), 0 not to, -1 for cloud-volume's default (legacy meshes welded,
/// multi-resolution ones not); `chunk_size` NULL, or 3 int64_t: weld legacy meshes only where
/// cloud-volume's `chunk_size` does (pairs on the planes of that chunk grid, voxels at the
/// meshes' mip); `allow_missing` non-zero leaves out ids without a mesh. `*out` receives the
/// mesh (release with `cv_mesh_free`).
///
/// # Safety
/// `vol` is a live handle; `ids` points to `n_ids` uint64_t; `chunk_size` is NULL or points to
/// 3 int64_t; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_mesh_get(
    vol: *const cv_volume,
    ids: *const u64,
    n_ids: usize,
    lod: i32,
    weld: i32,
    chunk_size: *const i64,
    allow_missing: i32,
    out: *mut *mut cv_mesh,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let ids = slice_arg(ids, n_ids, "ids")?;
        let out = out_arg(out, "out")?;
        if ids.is_empty() {
            return Err(Error::invalid("no segment ids (n_ids is 0)"));
        }
        let req = mesh_request(lod, weld, chunk_size, allow_missing)?;
        let mesh = v.mesh(ids, &req)?;
        *out = Box::into_raw(Box::new(cv_mesh { magic: MESH_LIVE, mesh }));
        Ok(())
    })
}

/// The meshes of the `n_ids` segments `ids`, each on its own (cloud-volume's `vol.mesh.get(ids,
/// fuse=False)` for legacy meshes, `vol.mesh.get(ids)` for multi-resolution ones), fetched and
/// decoded in parallel: `out[i]` receives segment `ids[i]`'s mesh, or NULL when it has none and
/// `allow_missing` is non-zero. The other arguments are `cv_mesh_get`'s. On failure every
/// `out[i]` is NULL. Release each with `cv_mesh_free`.
///
/// # Safety
/// As `cv_mesh_get`; `out` points to `n_ids` writable pointers.
#[no_mangle]
pub unsafe extern "C" fn cv_mesh_get_each(
    vol: *const cv_volume,
    ids: *const u64,
    n_ids: usize,
    lod: i32,
    weld: i32,
    chunk_size: *const i64,
    allow_missing: i32,
    out: *mut *mut cv_mesh,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let ids = slice_arg(ids, n_ids, "ids")?;
        let out = out_arg(out, "out")?;
        for i in 0..ids.len() {
            *out.add(i) = std::ptr::null_mut();
        }
        let req = mesh_request(lod, weld, chunk_size, allow_missing)?;
        for (i, m) in v.meshes(ids, &req)?.into_iter().enumerate() {
            if let Some(mesh) = m {
                *out.add(i) = Box::into_raw(Box::new(cv_mesh { magic: MESH_LIVE, mesh }));
            }
        }
        Ok(())
    })
}

/// The arguments of a mesh read as a request.
///
/// # Safety
/// `chunk_size` is NULL or points to 3 int64_t.
unsafe fn mesh_request(lod: i32, weld: i32, chunk_size: *const i64, allow_missing: i32) -> Result<MeshRequest> {
    let lod = match lod {
        -1 => Lod::Coarsest,
        l if l >= 0 => Lod::Index(l as usize),
        l => return Err(Error::invalid(format!("lod {l}: a level (>= 0) or -1 for the coarsest"))),
    };
    let weld = match weld {
        -1 => None,
        0 => Some(false),
        1 => Some(true),
        w => return Err(Error::invalid(format!("weld {w}: 1, 0 or -1 (the default)"))),
    };
    let chunk_size = if chunk_size.is_null() { None } else { Some(triple_arg(chunk_size, "chunk_size")?) };
    Ok(MeshRequest { lod, weld, allow_missing: allow_missing != 0, chunk_size })
}

/// The number of levels of detail of segment `id`'s mesh (1 for a legacy mesh).
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_mesh_lods(vol: *const cv_volume, id: u64, out: *mut u32) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let out = out_arg(out, "out")?;
        *out = u32::try_from(v.mesh_lods(id)?).unwrap_or(u32::MAX);
        Ok(())
    })
}

/// A mesh's vertex and triangle counts: the vertices take `12 * n_vertices` bytes, the faces
/// `12 * n_faces`.
///
/// # Safety
/// `mesh` is a live mesh; the outputs are writable.
#[no_mangle]
pub unsafe extern "C" fn cv_mesh_counts(
    mesh: *const cv_mesh,
    n_vertices: *mut usize,
    n_faces: *mut usize,
) -> cv_status {
    boundary(|| {
        let m = mesh_arg(mesh)?;
        let (nv, nf) = (out_arg(n_vertices, "n_vertices")?, out_arg(n_faces, "n_faces")?);
        *nv = m.vertices.len();
        *nf = m.faces.len();
        Ok(())
    })
}

/// The vertices, x y z float32 per vertex; `buf_len` must be `12 * n_vertices`.
///
/// # Safety
/// `mesh` is a live mesh; `buf` holds `buf_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_mesh_vertices_into(mesh: *const cv_mesh, buf: *mut f32, buf_len: usize) -> cv_status {
    boundary(|| {
        let m = mesh_arg(mesh)?;
        copy_out(&f32_bytes(&m.vertices), buf.cast(), buf_len, "vertices")
    })
}

/// The triangles, 3 uint32 vertex indices (from 0) each; `buf_len` must be `12 * n_faces`.
///
/// # Safety
/// `mesh` is a live mesh; `buf` holds `buf_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_mesh_faces_into(mesh: *const cv_mesh, buf: *mut u32, buf_len: usize) -> cv_status {
    boundary(|| {
        let m = mesh_arg(mesh)?;
        copy_out(&u32_bytes(&m.faces), buf.cast(), buf_len, "faces")
    })
}

/// Save the mesh to `path` as OBJ, PLY or STL, named by the extension (cloud-volume's
/// `to_obj` / `to_ply` renderings; binary STL).
///
/// # Safety
/// `mesh` is a live mesh; `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn cv_mesh_save(mesh: *const cv_mesh, path: *const c_char) -> cv_status {
    boundary(|| {
        let m = mesh_arg(mesh)?;
        save_mesh(m, Path::new(str_arg(path, "path")?))
    })
}

/// Release a mesh. NULL is a no-op.
///
/// # Safety
/// `mesh` is NULL or a live mesh, used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn cv_mesh_free(mesh: *mut cv_mesh) {
    if mesh.is_null() || (*mesh).magic != MESH_LIVE {
        return;
    }
    (*mesh).magic = 0;
    drop(Box::from_raw(mesh));
}

/// Write segment `id`'s legacy mesh (cloud-volume's `vol.mesh.put`): `n_vertices` x y z
/// float32 and `n_faces` triangles of uint32 indices. The fragment is gzipped unless option
/// `compress` is false. A multi-resolution mesh directory is `CV_ERR_UNSUPPORTED`.
///
/// # Safety
/// `vol` is a live handle; `vertices` points to `3 * n_vertices` floats, `faces` to
/// `3 * n_faces` uint32_t.
#[no_mangle]
pub unsafe extern "C" fn cv_mesh_put(
    vol: *const cv_volume,
    id: u64,
    vertices: *const f32,
    n_vertices: usize,
    faces: *const u32,
    n_faces: usize,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let nv3 = n_vertices.checked_mul(3).ok_or_else(|| Error::invalid("n_vertices overflows"))?;
        let nf3 = n_faces.checked_mul(3).ok_or_else(|| Error::invalid("n_faces overflows"))?;
        let vs = slice_arg(vertices, nv3, "vertices")?;
        let fs = slice_arg(faces, nf3, "faces")?;
        let mesh = Mesh {
            vertices: vs.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
            faces: fs.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
        };
        v.put_mesh(id, &mesh)
    })
}

/// The mesh directory's `info` as this library understands it, JSON (`{"@type", ...}`;
/// `neuroglancer_legacy_mesh` when there is no info). Release with `cv_string_free`.
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_mesh_info_json(vol: *const cv_volume, out: *mut *mut c_char) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let out = out_arg(out, "out")?;
        let i = v.mesh_info()?;
        let mut j = match &i.kind {
            crate::format::mesh::MeshKind::Legacy => serde_json::json!({"@type": "neuroglancer_legacy_mesh"}),
            crate::format::mesh::MeshKind::MultiLod { vertex_quantization_bits, lod_scale_multiplier, sharding } => {
                serde_json::json!({"@type": "neuroglancer_multilod_draco",
                                   "vertex_quantization_bits": vertex_quantization_bits,
                                   "lod_scale_multiplier": lod_scale_multiplier,
                                   "sharded": sharding.is_some()})
            }
            crate::format::mesh::MeshKind::Graphene { levels } => {
                serde_json::json!({"@type": "neuroglancer_legacy_mesh", "graphene": true, "sharded_layers": levels})
            }
        };
        if let Some(t) = i.transform {
            j["transform"] = serde_json::json!(t);
        }
        *out = CString::new(j.to_string()).map_err(|e| Error::internal(e.to_string()))?.into_raw();
        Ok(())
    })
}

/// The skeletons of the `n_ids` segments `ids` (cloud-volume's `vol.skeleton.get(ids)`), fetched
/// and decoded in parallel: `out[i]` receives `ids[i]`'s, or NULL when it has none and
/// `allow_missing` is non-zero. On failure every `out[i]` is NULL. Release each with
/// `cv_skeleton_free`.
///
/// # Safety
/// `vol` is a live handle; `ids` points to `n_ids` uint64_t; `out` to `n_ids` writable pointers.
#[no_mangle]
pub unsafe extern "C" fn cv_skeleton_get_each(
    vol: *const cv_volume,
    ids: *const u64,
    n_ids: usize,
    allow_missing: i32,
    out: *mut *mut cv_skeleton,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let ids = slice_arg(ids, n_ids, "ids")?;
        let out = out_arg(out, "out")?;
        for i in 0..ids.len() {
            *out.add(i) = std::ptr::null_mut();
        }
        let info = v.skeleton_info()?;
        let scale = info.transform.map_or([1.0; 3], |t| [t[0], t[5], t[10]]);
        let all = v.skeletons(ids, allow_missing != 0)?;
        let mut made = Vec::with_capacity(all.len());
        for s in all {
            made.push(match s {
                Some(skeleton) => Some(new_skeleton(skeleton, scale)?),
                None => None,
            });
        }
        for (i, s) in made.into_iter().enumerate() {
            if let Some(s) = s {
                *out.add(i) = Box::into_raw(s);
            }
        }
        Ok(())
    })
}

fn new_skeleton(skeleton: Skeleton, scale: [f32; 3]) -> Result<Box<cv_skeleton>> {
    let names = skeleton
        .attributes
        .iter()
        .map(|(a, _)| CString::new(a.id.clone()).map_err(|_| Error::decode("an attribute id holds a NUL byte")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Box::new(cv_skeleton { magic: SKELETON_LIVE, skeleton, names, scale }))
}

/// Segment `id`'s skeleton (cloud-volume's `vol.skeleton.get(id)`): vertices made physical
/// with the skeleton info's transform, the info's vertex attributes. `*out` receives it
/// (release with `cv_skeleton_free`).
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_skeleton_get(vol: *const cv_volume, id: u64, out: *mut *mut cv_skeleton) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let out = out_arg(out, "out")?;
        let info = v.skeleton_info()?;
        let skeleton = v
            .skeletons(&[id], false)?
            .pop()
            .flatten()
            .ok_or_else(|| Error::not_found(format!("segment {id} has no skeleton")))?;
        let scale = info.transform.map_or([1.0; 3], |t| [t[0], t[5], t[10]]);
        *out = Box::into_raw(new_skeleton(skeleton, scale)?);
        Ok(())
    })
}

/// A skeleton's counts: vertices (`12 * n_vertices` bytes), edges (`8 * n_edges`) and vertex
/// attributes.
///
/// # Safety
/// `skeleton` is live; the outputs are writable.
#[no_mangle]
pub unsafe extern "C" fn cv_skeleton_counts(
    skeleton: *const cv_skeleton,
    n_vertices: *mut usize,
    n_edges: *mut usize,
    n_attributes: *mut usize,
) -> cv_status {
    boundary(|| {
        let s = &skeleton_arg(skeleton)?.skeleton;
        let (nv, ne, na) =
            (out_arg(n_vertices, "n_vertices")?, out_arg(n_edges, "n_edges")?, out_arg(n_attributes, "n_attributes")?);
        *nv = s.vertices.len();
        *ne = s.edges.len();
        *na = s.attributes.len();
        Ok(())
    })
}

/// The vertices, x y z float32 each; `buf_len` must be `12 * n_vertices`.
///
/// # Safety
/// `skeleton` is live; `buf` holds `buf_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_skeleton_vertices_into(
    skeleton: *const cv_skeleton,
    buf: *mut f32,
    buf_len: usize,
) -> cv_status {
    boundary(|| copy_out(&f32_bytes(&skeleton_arg(skeleton)?.skeleton.vertices), buf.cast(), buf_len, "vertices"))
}

/// The edges, 2 uint32 vertex indices (from 0) each; `buf_len` must be `8 * n_edges`.
///
/// # Safety
/// `skeleton` is live; `buf` holds `buf_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_skeleton_edges_into(
    skeleton: *const cv_skeleton,
    buf: *mut u32,
    buf_len: usize,
) -> cv_status {
    boundary(|| copy_out(&u32_bytes(&skeleton_arg(skeleton)?.skeleton.edges), buf.cast(), buf_len, "edges"))
}

/// Vertex attribute `i`: `*name` (NUL-terminated, valid until `cv_skeleton_free`), its
/// `CV_DTYPE_*` code and components per vertex; its values take `n_vertices *
/// num_components * cv_dtype_size(data_type)` bytes.
///
/// # Safety
/// `skeleton` is live; the outputs are writable.
#[no_mangle]
pub unsafe extern "C" fn cv_skeleton_attribute(
    skeleton: *const cv_skeleton,
    i: usize,
    name: *mut *const c_char,
    data_type: *mut i32,
    num_components: *mut u32,
) -> cv_status {
    boundary(|| {
        let s = skeleton_arg(skeleton)?;
        let (name, dt, nc) =
            (out_arg(name, "name")?, out_arg(data_type, "data_type")?, out_arg(num_components, "num_components")?);
        let (a, _) = s
            .skeleton
            .attributes
            .get(i)
            .ok_or_else(|| Error::invalid(format!("attribute {i} of {}", s.skeleton.attributes.len())))?;
        *name = s.names[i].as_ptr();
        *dt = a.data_type.code();
        *nc = a.num_components;
        Ok(())
    })
}

/// The values of vertex attribute `i` (vertex after vertex, components together,
/// little-endian); `buf_len` must be exactly their size.
///
/// # Safety
/// `skeleton` is live; `buf` holds `buf_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_skeleton_attribute_into(
    skeleton: *const cv_skeleton,
    i: usize,
    buf: *mut c_void,
    buf_len: usize,
) -> cv_status {
    boundary(|| {
        let s = &skeleton_arg(skeleton)?.skeleton;
        let (a, bytes) =
            s.attributes.get(i).ok_or_else(|| Error::invalid(format!("attribute {i} of {}", s.attributes.len())))?;
        copy_out(bytes, buf, buf_len, &format!("values of attribute \"{}\"", a.id))
    })
}

/// Save the skeleton to `path` as SWC (osteoid's `to_swc` rendering).
///
/// # Safety
/// `skeleton` is live; `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn cv_skeleton_save_swc(skeleton: *const cv_skeleton, path: *const c_char) -> cv_status {
    boundary(|| {
        let s = skeleton_arg(skeleton)?;
        save_swc(&s.skeleton, s.scale, Path::new(str_arg(path, "path")?))
    })
}

/// Release a skeleton. NULL is a no-op.
///
/// # Safety
/// `skeleton` is NULL or live, used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn cv_skeleton_free(skeleton: *mut cv_skeleton) {
    if skeleton.is_null() || (*skeleton).magic != SKELETON_LIVE {
        return;
    }
    (*skeleton).magic = 0;
    drop(Box::from_raw(skeleton));
}

/// The skeleton directory's `info` as this library reads it (cloud-volume's default when the
/// layer names none), JSON with `transform` and `vertex_attributes` (`[{id, data_type,
/// num_components}]`, the order `cv_skeleton_put` takes them in). Release with
/// `cv_string_free`.
///
/// # Safety
/// `vol` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_skeleton_info_json(vol: *const cv_volume, out: *mut *mut c_char) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let out = out_arg(out, "out")?;
        let i = v.skeleton_info()?;
        let attrs: Vec<serde_json::Value> = i
            .vertex_attributes
            .iter()
            .map(|a| serde_json::json!({"id": a.id, "data_type": a.data_type.name(), "num_components": a.num_components}))
            .collect();
        let t = i.transform.unwrap_or([1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        let j = serde_json::json!({"@type": "neuroglancer_skeletons", "transform": t, "vertex_attributes": attrs,
                                   "sharded": i.sharding.is_some()});
        *out = CString::new(j.to_string()).map_err(|e| Error::internal(e.to_string()))?.into_raw();
        Ok(())
    })
}

/// Write segment `id`'s skeleton (cloud-volume's `vol.skeleton.upload`): `n_vertices` x y z
/// float32 (written as given), `n_edges` pairs of uint32 indices, and either no attributes
/// (`n_attributes` 0) or one buffer per attribute of the skeleton info, in its order, each
/// `n_vertices * num_components` values of its type. gzipped unless option `compress` is
/// false. A sharded skeleton directory is `CV_ERR_UNSUPPORTED`.
///
/// # Safety
/// `vol` is a live handle; the arrays hold what their counts say; `attributes` points to
/// `n_attributes` pointers.
#[no_mangle]
pub unsafe extern "C" fn cv_skeleton_put(
    vol: *const cv_volume,
    id: u64,
    vertices: *const f32,
    n_vertices: usize,
    edges: *const u32,
    n_edges: usize,
    attributes: *const *const c_void,
    n_attributes: usize,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let info = v.skeleton_info()?;
        let nv3 = n_vertices.checked_mul(3).ok_or_else(|| Error::invalid("n_vertices overflows"))?;
        let ne2 = n_edges.checked_mul(2).ok_or_else(|| Error::invalid("n_edges overflows"))?;
        let vs = slice_arg(vertices, nv3, "vertices")?;
        let es = slice_arg(edges, ne2, "edges")?;
        let ptrs = slice_arg(attributes, n_attributes, "attributes")?;
        if n_attributes != 0 && n_attributes != info.vertex_attributes.len() {
            return Err(Error::invalid(format!(
                "n_attributes is {n_attributes}; the skeleton info declares {} ({}), or pass 0",
                info.vertex_attributes.len(),
                info.vertex_attributes.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let mut attrs: Vec<(VertexAttribute, Vec<u8>)> = Vec::new();
        for (a, &p) in info.vertex_attributes.iter().zip(ptrs) {
            let n = n_vertices * a.num_components as usize * a.data_type.size();
            let bytes = slice_arg(p.cast::<u8>(), n, &format!("attribute \"{}\"", a.id))?;
            attrs.push((a.clone(), bytes.to_vec()));
        }
        let s = Skeleton {
            vertices: vs.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect(),
            edges: es.chunks_exact(2).map(|c| [c[0], c[1]]).collect(),
            attributes: attrs,
        };
        v.put_skeleton(id, &s)
    })
}
