#!/usr/bin/env python3
"""Write reference mesh and skeleton layers, and what cloud-volume 12.15.2 reads from them.

Usage:
  target/venv/bin/python tests/reference/make_meshes.py OUTDIR           # write, then self-check
  target/venv/bin/python tests/reference/make_meshes.py --check OUTDIR   # re-read everything, compare

Everything is seeded: the same command gives the same layers and the same expectations (the
only exception is the `# VERSION_DATE` line of the saved SWC text, which osteoid fills with the
current time). Runtime is about 10 s on 2 cores (the --check pass about 6 s).

Geometry shared by every layer: uint64 segmentation, size 128x128x64 voxels, resolution [8,8,40],
voxel_offset [64,32,8], chunk_size [64,64,32]. Labels are painted ellipsoids (a few dozen ids,
several above 2^32, one above 2^63). Only `legacy/` stores the label image itself
(compressed_segmentation, gzip); the other layers carry the same `info` without image chunks.

How each part is written (who wrote it matters, so it is stated here and in manifest.json):

legacy/ (mesh dir `mesh`, mesh info written by cloud-volume's PrecomputedMeshMetadata.commit_info,
  i.e. {"@type": "neuroglancer_legacy_mesh", "spatial_index": null}).
  Meshes are zmesh marching cubes (no simplification, voxel_centered=False) run per 32x32x16
  chunk with one voxel of overlap on the high side, igneous MeshTask style, so every object
  is cut into one fragment per chunk it touches, with duplicate vertices on chunk planes.
  Fragment coordinates are absolute physical nm (voxel_offset included).
  - most objects: written by THIS SCRIPT per the format (cloud-volume's `vol.mesh.put` can only
    write one fragment per object): manifest `<id>:0` = {"fragments": [...]} (plain JSON, listed
    in chunk order x fastest, which is NOT lexicographic order), fragments
    `<id>:0:<x0>-<x1>_<y0>-<y1>_<z0>-<z1>` (igneous' naming); the fragments of every other object
    are gzipped and stored as `<name>.gz` (cloud-files' file:// convention), the rest plain.
  - a few objects: written by cloud-volume `vol.mesh.put(Mesh)` (one fragment `<id>:0:1`, gzipped
    by cloud-volume to `<id>:0:1.gz`; the Mesh is the chunk fragments concatenated, duplicates kept).
  - one object whose manifest lists the same fragment twice (cloud-volume reads it once).
legacy_transform/ (mesh dir `mesh_mip_0_err_40`, named by the layer info's "mesh" member; mesh
  info {"@type": "neuroglancer_legacy_mesh", "transform": [8,0,0,512, 0,8,0,256, 0,0,40,320],
  "mip": 0}; cloud-volume honours `transform` for legacy meshes). Same objects, fragments
  stored in voxel units relative to voxel_offset, written by this script, all gzipped.
multilod/ (unsharded neuroglancer_multilod_draco, vertex_quantization_bits 10,
  lod_scale_multiplier 2.0, transform [8,0,0,512, 0,8,0,256, 0,0,40,320]).
multilod_sharded/ (neuroglancer_uint64_sharded_v1, murmurhash3_x86_128, preshift 0, minishard
  bits 1, shard bits 1, minishard_index_encoding gzip, data_encoding raw; bits 16,
  lod_scale_multiplier 0.5, transform with shear [8,0,0.5,512, 0,8,0,256, 0,0.25,40,320]);
  shard files built with cloud-volume's sharding.synthesize_shard_files(spec, {id: fragments +
  manifest}, data_offset={id: len(manifest)}), i.e. cloud-volume's own layout (index, data,
  minishard indices).
multilod_sharded_gzip/ (identity hash, preshift 0, minishard bits 2, shard bits 2, gzip minishard
  index AND gzip data_encoding: the manifest is gzipped, the fragment data before it is raw;
  bits 10). Shards built by THIS SCRIPT's own writer in tensorstore's layout (per minishard:
  payloads, then that minishard's index), because cloud-volume's writer would gzip the fragment
  data together with the manifest.
  All multilod meshes: 3 lods. lod 0 = full zmesh mesh, lod 1/2 = zmesh simplification with
  reduction factors 4 and 16. Stored model space = voxel units relative to voxel_offset;
  chunk_shape [16,16,8] (lod 0 node), per-object grid_origin, non-zero vertex_offsets for lods
  1 and 2. Fragments: zmesh.chunk_mesh cuts the lod mesh at node boundaries (for lod > 0 at the
  octant planes, so no triangle crosses the midpoint 2^(q-1)), positions quantized with
  round(x * (2^q - 1)), stored as a Draco int32 POSITION attribute (DracoPy.encode with int32
  points: no Draco quantization; some fragments with preserve_order=True, i.e. sequential
  encoding, the rest edgebreaker). Fragments are listed in Z-order; every node's parent exists
  at the next lod (empty fragments, size 0, where the coarser mesh has nothing there), except in
  the object with zero lod-2 fragments. Special
  objects: one whose manifest has zero fragments at lod 2, one with a single fragment per lod,
  one with a forced empty (size 0) fragment at lod 1.
skeletons/ (unsharded; info written by cloud-volume commit_info: transform [8,0,0,512, 0,8,0,256,
  0,0,40,320], vertex_attributes radius f32x1, vertex_types u8x1, compartment i16x1,
  direction f32x3), skeletons written by cloud-volume `vol.skeleton.upload` (gzipped, `.gz`).
skeletons_sharded/ (identity hash, preshift 0, minishard bits 2, shard bits 1, gzip/gzip,
  transform [4,0,0,-100, 0,4,0,50, 0,0,20,1000]), written by cloud-volume's sharded
  `vol.skeleton.upload`, called once per shard with every skeleton of that shard.
  A dozen random trees of a few hundred vertices (coordinates multiples of 1/16 voxel, so the
  float32 transform is exact), one forest (two trees), one single-vertex skeleton without edges.
skel_defaults/{noinfo,noattrs,notransform}/: unsharded skeleton layers whose skeletons/info is
  missing, lacks vertex_attributes, or lacks transform (cloud-volume's defaults and errors).
bad/: layers for error tests (see manifest.json "reads" entries with "bad": true and the "bad"
  layer entry's "defects"): legacy manifest naming a missing fragment, a truncated legacy
  fragment, an empty fragment list; multilod data cut inside a fragment, data ending before
  lod 1, corrupt Draco magic, truncated index, index with trailing bytes; skeletons with an edge
  past the vertices, cut inside the edges, without attribute bytes, with attributes cut short.

Expectations: for every object and every lod, OUTDIR/expected/... holds .npy files of what
unmodified cloud-volume returns (see manifest.json; schema in the "schema" member), plus
to_obj()/to_ply() bytes of two legacy meshes and one multilod mesh and to_swc() text of three
skeletons (a tree, a forest, a single vertex) under OUTDIR/expected/text/.

Checks (run after writing, and by --check): every recorded call is re-run on a fresh
CloudVolume and compared; every good read is also re-derived from the raw files with the rules
in docs/meshes.md (own parsers for manifests, fragments, shards and skeletons; DracoPy for
Draco), bit for bit; the OBJ/PLY texts are parsed with trimesh.
"""

import gzip
import importlib.metadata as md
import io
import json
import os
import shutil
import struct
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import DracoPy  # noqa: E402
import zmesh  # noqa: E402
from cloudvolume import CloudVolume  # noqa: E402
from cloudvolume.datasource.precomputed.sharding import (  # noqa: E402
    ShardingSpecification, synthesize_shard_files)
from cloudvolume.mesh import Mesh  # noqa: E402
from cloudvolume.skeleton import Skeleton  # noqa: E402


class _QuickPoll:
    """cloud-files' ThreadedQueue polls its queue every 0.1 s; poll every 0.1 ms instead (the
    reads are otherwise dominated by that sleep)."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds):
        time.sleep(min(seconds, 0.0001))


import cloudfiles.threaded_queue  # noqa: E402

cloudfiles.threaded_queue.time = _QuickPoll()

SHAPE = np.array([128, 128, 64])
RES = np.array([8, 8, 40])
OFFSET = np.array([64, 32, 8])
CHUNK = np.array([64, 64, 32])
MESH_TASK = np.array([32, 32, 16])  # legacy meshing task (fragment) size, voxels
TRANSFORM_VOX = [8, 0, 0, 512, 0, 8, 0, 256, 0, 0, 40, 320]  # voxel units (rel. offset) -> nm
TRANSFORM_SHEAR = [8, 0, 0.5, 512, 0, 8, 0, 256, 0, 0.25, 40, 320]
TRANSFORM_SKEL2 = [4, 0, 0, -100, 0, 4, 0, 50, 0, 0, 20, 1000]
ML_CHUNK = np.array([16.0, 16.0, 8.0])  # lod-0 node size, stored model units (voxels)
ML_VERTEX_OFFSETS = np.array([[0, 0, 0], [-0.25, 0.5, -0.125], [0.5, -0.75, 0.25]], dtype=np.float32)
LOD_REDUCTION = [0, 4, 16]
MISSING_ID = 999999
SKEL_ATTRS = [
    {"id": "radius", "data_type": "float32", "num_components": 1},
    {"id": "vertex_types", "data_type": "uint8", "num_components": 1},
    {"id": "compartment", "data_type": "int16", "num_components": 1},
    {"id": "direction", "data_type": "float32", "num_components": 3},
]

OUT = None
manifest_geometry = {}
READS = []  # manifest "reads"
LAYERS = []  # manifest "layers"
TEXTS = []  # manifest "texts"


def rel(*parts):
    return "/".join(str(p) for p in parts)


def absp(relpath):
    return os.path.join(OUT, relpath)


def write_bytes(relpath, data):
    p = absp(relpath)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


# ----------------------------------------------------------------------------------------------
# Labels


def make_labels():
    rng = np.random.default_rng(20250101)
    big = [2**32 + 1, 2**32 + 77, 2**40 + 5, 2**53 + 1, 2**63 + 11, 2**64 - 2, 5_000_000_000]
    small = list(range(1, 25))
    ids = small[:12] + big[:4] + small[12:] + big[4:]
    labels = np.zeros(SHAPE, dtype=np.uint64, order="F")
    xx, yy, zz = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")

    def paint(segid, c, r):
        m = ((xx - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((zz - c[2]) / r[2]) ** 2 <= 1.0
        labels[m] = segid

    placed = {}
    # Fixed placements first: a big blob on the chunk corner (8 legacy fragments), a tiny blob
    # inside one chunk and one multilod node, and three touching blobs (merged-read triple).
    fixed = {
        ids[0]: ((64, 64, 32), (14, 13, 7)),
        ids[1]: ((20, 20, 5), (2.5, 2.5, 1.6)),
        ids[2]: ((100, 30, 40), (9, 8, 5)),
        ids[3]: ((100, 47, 40), (9, 8, 5)),
        ids[4]: ((100, 64, 40), (9, 8, 5)),
        2**63 + 11: ((30, 100, 45), (10, 12, 6)),
        2**32 + 1: ((64, 100, 20), (12, 9, 8)),
    }
    for segid, (c, r) in fixed.items():
        paint(segid, c, r)
        placed[segid] = True
    for segid in ids:
        if segid in placed:
            continue
        c = rng.uniform([8, 8, 4], SHAPE - [8, 8, 4])
        r = rng.uniform([3, 3, 2], [11, 11, 6])
        paint(segid, c, r)
    present = set(int(v) for v in np.unique(labels) if v != 0)
    ids = [i for i in ids if i in present]
    return labels, ids


def layer_info(mesh_dir=None, skel_dir=None):
    return CloudVolume.create_new_info(
        num_channels=1, layer_type="segmentation", data_type="uint64",
        encoding="compressed_segmentation", resolution=RES.tolist(), voxel_offset=OFFSET.tolist(),
        volume_size=SHAPE.tolist(), mesh=mesh_dir, skeletons=skel_dir, chunk_size=CHUNK.tolist())


def cv_open(layer):
    return CloudVolume("file://" + absp(layer), progress=False, mip=0)


def make_layer(layer, mesh_dir=None, skel_dir=None, labels=None):
    vol = CloudVolume("file://" + absp(layer), info=layer_info(mesh_dir, skel_dir), progress=False)
    vol.commit_info()
    if labels is not None:
        vol[:, :, :] = labels
    return vol


# ----------------------------------------------------------------------------------------------
# Legacy meshes


def legacy_fragments(labels, anisotropy, vertex_offset_fn):
    """igneous MeshTask style: one zmesh run per chunk (+1 voxel overlap on the high side).
    Returns {segid: [(bbox_name, vertices, faces), ...]} in chunk order (x fastest)."""
    out = {}
    grid = -(-SHAPE // MESH_TASK)
    for gz_ in range(grid[2]):
        for gy in range(grid[1]):
            for gx in range(grid[0]):
                g = np.array([gx, gy, gz_])
                lo = g * MESH_TASK
                hi = np.minimum(lo + MESH_TASK, SHAPE)
                hi_ov = np.minimum(hi + 1, SHAPE)
                sub = np.asfortranarray(labels[lo[0]:hi_ov[0], lo[1]:hi_ov[1], lo[2]:hi_ov[2]])
                mesher = zmesh.Mesher(anisotropy)
                mesher.mesh(sub)
                alo, ahi = lo + OFFSET, hi + OFFSET
                name = "%d-%d_%d-%d_%d-%d" % (alo[0], ahi[0], alo[1], ahi[1], alo[2], ahi[2])
                for segid in sorted(mesher.ids()):
                    m = mesher.get(segid, normals=False)
                    if len(m.faces) == 0:
                        continue
                    v = (m.vertices + vertex_offset_fn(lo)).astype(np.float32)
                    out.setdefault(int(segid), []).append((name, v, m.faces.astype(np.uint32)))
    return out


def precomputed_fragment(v, f):
    return struct.pack("<I", len(v)) + v.astype("<f4").tobytes() + f.astype("<u4").tobytes()


def write_legacy_layers(labels, ids):
    # legacy/: physical nm, mixed writers and compression.
    vol = make_layer("legacy", mesh_dir="mesh", labels=labels)
    vol.mesh.meta.commit_info()  # {"@type": "neuroglancer_legacy_mesh", "spatial_index": null}
    frags = legacy_fragments(labels, RES.tolist(), lambda lo: ((lo + OFFSET) * RES).astype(np.float32))
    put_ids = [ids[5], ids[12], 2**53 + 1]
    dup_id = ids[6]
    objects = []
    for k, segid in enumerate(ids):
        pieces = frags[segid]
        if segid in put_ids:
            v = np.concatenate([p[1] for p in pieces])
            offs = np.cumsum([0] + [len(p[1]) for p in pieces[:-1]])
            f = np.concatenate([p[2] + o for p, o in zip(pieces, offs)])
            vol.mesh.put(Mesh(v, f, segid=segid))
            objects.append({"id": segid, "writer": "cloud-volume vol.mesh.put", "fragments": 1,
                            "gzip": True})
            continue
        names = ["%d:0:%s" % (segid, p[0]) for p in pieces]
        use_gz = (k % 2 == 0)
        for name, (_, v, f) in zip(names, pieces):
            data = precomputed_fragment(v, f)
            if use_gz:
                write_bytes(rel("legacy/mesh", name + ".gz"), gz(data))
            else:
                write_bytes(rel("legacy/mesh", name), data)
        listed = list(names)
        if segid == dup_id:
            listed = listed + [listed[0]]
        write_bytes(rel("legacy/mesh", "%d:0" % segid), json.dumps({"fragments": listed}).encode())
        obj = {"id": segid, "writer": "make_meshes.py", "fragments": len(names), "gzip": use_gz,
               "manifest_order_is_lexicographic": listed == sorted(listed)}
        if segid == dup_id:
            obj["note"] = "manifest lists its first fragment twice; cloud-volume reads it once"
        objects.append(obj)
    LAYERS.append({"name": "legacy", "kind": "neuroglancer_legacy_mesh", "mesh_dir": "mesh",
                   "has_image": True, "objects": objects})

    # legacy_transform/: voxel units, transform in the mesh info, mesh dir from the layer info.
    mdir = "mesh_mip_0_err_40"
    make_layer("legacy_transform", mesh_dir=mdir)
    write_bytes(rel("legacy_transform", mdir, "info"), json.dumps(
        {"@type": "neuroglancer_legacy_mesh", "transform": TRANSFORM_VOX, "mip": 0}).encode())
    frags_v = legacy_fragments(labels, [1, 1, 1], lambda lo: lo.astype(np.float32))
    objects = []
    for segid in ids:
        pieces = frags_v[segid]
        names = ["%d:0:%s" % (segid, p[0]) for p in pieces]
        for name, (_, v, f) in zip(names, pieces):
            write_bytes(rel("legacy_transform", mdir, name + ".gz"), gz(precomputed_fragment(v, f)))
        write_bytes(rel("legacy_transform", mdir, "%d:0" % segid), json.dumps({"fragments": names}).encode())
        objects.append({"id": segid, "writer": "make_meshes.py", "fragments": len(names), "gzip": True})
    LAYERS.append({"name": "legacy_transform", "kind": "neuroglancer_legacy_mesh", "mesh_dir": mdir,
                   "transform": TRANSFORM_VOX, "has_image": False, "objects": objects})


# ----------------------------------------------------------------------------------------------
# Multi-resolution meshes


def morton_key(p):
    key = 0
    for bit in range(21):
        for d in range(3):
            key |= ((int(p[d]) >> bit) & 1) << (3 * bit + d)
    return key


def weld(v, f):
    """Merge exactly equal vertices, drop degenerate and repeated triangles (generator only)."""
    if len(f) == 0:
        return np.zeros((0, 3), v.dtype), np.zeros((0, 3), np.uint32)
    uv, inv = np.unique(v, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    f2 = inv[f]
    keep = (f2[:, 0] != f2[:, 1]) & (f2[:, 1] != f2[:, 2]) & (f2[:, 0] != f2[:, 2])
    f2 = f2[keep]
    used = np.unique(f2)
    remap = np.full(len(uv), -1, np.int64)
    remap[used] = np.arange(len(used))
    return uv[used], remap[f2].astype(np.uint32)


def chunk_pieces(v, f, size, origin):
    """zmesh.chunk_mesh: {(gx,gy,gz): (vertices, faces)} with triangles cut at grid planes."""
    m = zmesh.Mesh(v.astype(np.float32), f.astype(np.uint32), None)
    out = {}
    for key, sub in zmesh.chunk_mesh(m, [float(s) for s in size], grid_origin=tuple(float(o) for o in origin)).items():
        vv, ff = weld(sub.vertices, sub.faces)
        if len(ff):
            out[tuple(int(k) for k in key)] = (vv, ff)
    return out


def partition_ok(q, vertices, faces):
    """neuroglancer_draco.cc's octant test: every triangle must fit one octant."""
    pp = 2 ** (q - 1)
    tri = vertices[faces]  # (F,3,3)
    lo = np.all(tri <= pp, axis=1)
    hi = np.all(tri >= pp, axis=1)
    return bool(np.all(lo | hi))


def draco_encode(qv, f, sequential):
    return DracoPy.encode(qv.astype(np.int32), f.astype(np.uint32), compression_level=7,
                          preserve_order=bool(sequential))


def build_multilod(segid, lod_meshes, q, special, counter):
    """Return (manifest_bytes, fragment_bytes, summary) for one object."""
    qmax = 2 ** q - 1
    allv = lod_meshes[0][0]
    grid_origin = (np.floor(allv.min(axis=0)) - 1.0).astype(np.float32)
    nodes_by_lod = []
    prev_nodes = set()
    for L, (v, f) in enumerate(lod_meshes):
        size = ML_CHUNK * 2**L
        origin = grid_origin.astype(np.float64) + ML_VERTEX_OFFSETS[L].astype(np.float64)
        content = {}
        if L == 0:
            for key, (vv, ff) in chunk_pieces(v, f, size, origin).items():
                content[key] = [(key, vv, ff)]
        else:
            for key, piece in chunk_pieces(v, f, size / 2, origin).items():
                parent = tuple(k // 2 for k in key)
                content.setdefault(parent, []).append((key, piece[0], piece[1]))
        nodes = set(content) | {tuple(k // 2 for k in n) for n in prev_nodes}
        if special == "zero_lod2" and L == 2:
            nodes, content = set(), {}
        if special == "empty_lod1" and L == 1 and len(nodes) > 1:
            victim = sorted(nodes, key=morton_key)[-1]
            content.pop(victim, None)
        order = sorted(nodes, key=morton_key)
        frags = []
        for p in order:
            if p not in content:
                frags.append((p, b"", 0, 0))
                continue
            node_lo = origin + np.array(p) * size
            vs, fs, base = [], [], 0
            for key, vv, ff in content[p]:
                qv = np.clip(np.round((vv - node_lo) / size * qmax), 0, qmax)
                if L > 0:
                    # keep each octant's vertices on its side of the midpoint 2^(q-1)
                    octant = np.array(key) - 2 * np.array(p)
                    lo_ = np.where(octant == 1, 2 ** (q - 1), 0)
                    hi_ = np.where(octant == 1, qmax, 2 ** (q - 1))
                    qv = np.clip(qv, lo_, hi_)
                vs.append(qv)
                fs.append(ff + base)
                base += len(qv)
            qv, ff = weld(np.concatenate(vs), np.concatenate(fs))
            if len(ff) == 0:
                frags.append((p, b"", 0, 0))
                continue
            if L > 0:
                assert partition_ok(q, qv, ff), (segid, L, p)
            counter[0] += 1
            data = draco_encode(qv, ff, sequential=(counter[0] % 3 == 0))
            frags.append((p, data, len(qv), len(ff)))
        nodes_by_lod.append(frags)
        prev_nodes = set(order)

    num_lods = len(lod_meshes)
    parts = [ML_CHUNK.astype("<f4").tobytes(), grid_origin.astype("<f4").tobytes(),
             struct.pack("<I", num_lods),
             (np.array([1, 2, 4], dtype="<f4")[:num_lods] * np.float32(ML_CHUNK.max())).tobytes(),
             ML_VERTEX_OFFSETS[:num_lods].astype("<f4").tobytes(),
             np.array([len(fr) for fr in nodes_by_lod], dtype="<u4").tobytes()]
    for frags in nodes_by_lod:
        pos = np.array([p for p, *_ in frags], dtype="<u4").reshape(-1, 3)
        parts.append(pos.T.copy().tobytes())  # [3][n]: all x, then all y, then all z
        parts.append(np.array([len(d) for _, d, *_ in frags], dtype="<u4").tobytes())
    manifest = b"".join(parts)
    data = b"".join(d for frags in nodes_by_lod for _, d, *_ in frags)
    summary = {"id": segid, "grid_origin": grid_origin.tolist(),
               "fragments_per_lod": [len(fr) for fr in nodes_by_lod],
               "empty_fragments_per_lod": [sum(1 for _, d, *_ in fr if not d) for fr in nodes_by_lod]}
    if special:
        summary["special"] = special
    return manifest, data, summary


def lod_meshes_for(labels):
    mesher = zmesh.Mesher((1, 1, 1))
    mesher.mesh(labels)
    out = {}
    for segid in mesher.ids():
        lods = []
        for L, red in enumerate(LOD_REDUCTION):
            m = mesher.get(segid, normals=False, reduction_factor=red, max_error=1.5 * 2**L)
            lods.append((m.vertices.astype(np.float64), m.faces.astype(np.uint32)))
        out[int(segid)] = lods
    return out


def write_multilod_layers(ids, lodm):
    specials = {ids[3]: "zero_lod2", ids[1]: "single_fragment", ids[0]: "empty_lod1"}
    configs = [
        ("multilod", 10, 2.0, TRANSFORM_VOX, None),
        ("multilod_sharded", 16, 0.5, TRANSFORM_SHEAR,
         {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0, "hash": "murmurhash3_x86_128",
          "minishard_bits": 1, "shard_bits": 1, "minishard_index_encoding": "gzip", "data_encoding": "raw"}),
        ("multilod_sharded_gzip", 10, 1.0, TRANSFORM_VOX,
         {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0, "hash": "identity",
          "minishard_bits": 2, "shard_bits": 2, "minishard_index_encoding": "gzip", "data_encoding": "gzip"}),
    ]
    for name, q, lsm, transform, sharding in configs:
        vol = make_layer(name, mesh_dir="mesh")
        vol.mesh.meta.mip = 0  # to_multi_resolution needs a mip (info "mip" or a mesh_mip_N dir name)
        vol.mesh.meta.to_multi_resolution(q)
        vol.mesh.meta.info["transform"] = transform
        vol.mesh.meta.info["lod_scale_multiplier"] = lsm
        if sharding:
            vol.mesh.meta.info["sharding"] = sharding
        vol.mesh.meta.commit_info()
        counter = [0]
        summaries, built = [], {}
        for segid in ids:
            manifest, data, summary = build_multilod(segid, lodm[segid], q, specials.get(segid), counter)
            summaries.append(summary)
            built[segid] = (manifest, data)
        layer = {"name": name, "kind": "neuroglancer_multilod_draco", "mesh_dir": "mesh",
                 "vertex_quantization_bits": q, "lod_scale_multiplier": lsm, "transform": transform,
                 "chunk_shape": ML_CHUNK.tolist(), "vertex_offsets": ML_VERTEX_OFFSETS.tolist(),
                 "sharding": sharding, "has_image": False, "objects": summaries}
        if sharding is None:
            for segid, (manifest, data) in built.items():
                write_bytes(rel(name, "mesh", "%d.index" % segid), manifest)
                write_bytes(rel(name, "mesh", "%d" % segid), data)
            layer["writer"] = "make_meshes.py (<id>.index + <id>)"
        elif sharding["data_encoding"] == "raw":
            spec = ShardingSpecification.from_dict(sharding)
            files = synthesize_shard_files(
                spec, {s: d + m for s, (m, d) in built.items()},
                data_offset={s: len(m) for s, (m, d) in built.items()})
            for fname, blob in files.items():
                write_bytes(rel(name, "mesh", fname), blob)
            layer["writer"] = "cloud-volume sharding.synthesize_shard_files (data_offset = manifest size)"
            layer["shard_files"] = sorted(files)
        else:
            files = own_shards(ShardingSpecification.from_dict(sharding), built)
            for fname, blob in files.items():
                write_bytes(rel(name, "mesh", fname), blob)
            layer["writer"] = "make_meshes.py own shard writer (tensorstore layout)"
            layer["shard_files"] = sorted(files)
        LAYERS.append(layer)


def own_shards(spec, built):
    """Shard files with per-minishard [payloads..., minishard index]; payload = raw fragment
    data followed by the (gzip-encoded) manifest; the index entry points at the manifest."""
    groups = {}
    for segid in built:
        loc = spec.compute_shard_location(segid)
        groups.setdefault(loc.shard_number, {}).setdefault(int(loc.minishard_number), []).append(segid)
    nmini = 2**spec.minishard_bits
    files = {}
    for shard, minis in groups.items():
        body = bytearray()
        index = np.zeros((nmini, 2), dtype="<u8")
        for mno in sorted(minis):
            entries = []
            for segid in sorted(minis[mno]):
                manifest, data = built[segid]
                stored = gz(manifest) if spec.data_encoding == "gzip" else manifest
                body += data
                start = len(body)
                body += stored
                entries.append((segid, start, len(stored)))
            ids_ = np.array([e[0] for e in entries], dtype=np.uint64)
            starts = np.array([e[1] for e in entries], dtype=np.int64)
            sizes = np.array([e[2] for e in entries], dtype=np.int64)
            d_ids = np.diff(np.concatenate([[np.uint64(0)], ids_])).astype("<u8")
            ends_prev = np.concatenate([[0], starts[:-1] + sizes[:-1]])
            d_off = (starts - ends_prev).astype("<u8")
            msi = np.concatenate([d_ids, d_off, sizes.astype("<u8")]).tobytes()
            if spec.minishard_index_encoding == "gzip":
                msi = gz(msi)
            index[mno] = (len(body), len(body) + len(msi))
            body += msi
        files["%s.shard" % shard] = index.tobytes() + bytes(body)
    return files


# ----------------------------------------------------------------------------------------------
# Skeletons


def random_skeleton(rng, segid, n, forest=False):
    if n == 1:
        verts = np.array([[40.5, 60.25, 30.0]], dtype=np.float32)
        edges = np.zeros((0, 2), dtype=np.uint32)
    else:
        verts = np.zeros((n, 3), dtype=np.float64)
        verts[0] = rng.uniform([20, 20, 10], [108, 108, 54])
        parent = np.full(n, -1, dtype=np.int64)
        roots = {0}
        if forest:
            roots.add(n // 2)
            verts[n // 2] = rng.uniform([20, 20, 10], [108, 108, 54])
        for i in range(1, n):
            if i in roots:
                parent[i] = -1
                continue
            lo = (n // 2) if (forest and i > n // 2) else 0
            parent[i] = rng.integers(max(lo, i - 6), i)
            verts[i] = verts[parent[i]] + rng.normal(0, [1.5, 1.5, 0.6])
        verts = np.clip(np.round(verts * 16) / 16, 0, SHAPE - 1).astype(np.float32)
        edges = np.array([[parent[i], i] for i in range(n) if parent[i] >= 0], dtype=np.uint32)
        flip = rng.random(len(edges)) < 0.3
        edges[flip] = edges[flip][:, ::-1]
        edges = edges[rng.permutation(len(edges))]
    radius = (np.round(rng.uniform(0.5, 12, n) * 64) / 64).astype(np.float32)
    vtypes = rng.integers(0, 5, n).astype(np.uint8)
    compartment = rng.integers(-300, 300, n).astype(np.int16)
    direction = rng.normal(0, 1, (n, 3)).astype(np.float32)
    sk = Skeleton(verts, edges, radius, vtypes, segid=segid,
                  extra_attributes=[dict(a) for a in SKEL_ATTRS])
    sk.compartment = compartment
    sk.direction = direction
    return sk


def make_skeletons(ids):
    rng = np.random.default_rng(777)
    chosen = ids[:8] + [i for i in ids if i > 2**32][:5]
    skels = []
    for k, segid in enumerate(chosen):
        if k == 3:
            skels.append(random_skeleton(rng, segid, 1))
        elif k == 5:
            skels.append(random_skeleton(rng, segid, 240, forest=True))
        else:
            skels.append(random_skeleton(rng, segid, int(rng.integers(150, 400))))
    return skels


def write_skeleton_layers(ids):
    skels = make_skeletons(ids)
    vol = make_layer("skeletons", skel_dir="skeletons")
    vol.skeleton.meta.info["transform"] = TRANSFORM_VOX
    vol.skeleton.meta.info["vertex_attributes"] = [dict(a) for a in SKEL_ATTRS]
    vol.skeleton.meta.commit_info()
    vol = cv_open("skeletons")
    vol.skeleton.upload(skels)
    LAYERS.append({"name": "skeletons", "kind": "neuroglancer_skeletons", "skeleton_dir": "skeletons",
                   "writer": "cloud-volume vol.skeleton.upload (gzip, .gz files)",
                   "transform": TRANSFORM_VOX, "vertex_attributes": SKEL_ATTRS, "has_image": False,
                   "objects": [{"id": int(s.id), "vertices": len(s.vertices), "edges": len(s.edges)} for s in skels]})

    sharding = {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0, "hash": "identity",
                "minishard_bits": 2, "shard_bits": 1, "minishard_index_encoding": "gzip",
                "data_encoding": "gzip"}
    vol = make_layer("skeletons_sharded", skel_dir="skeletons")
    vol.skeleton.meta.info["transform"] = TRANSFORM_SKEL2
    vol.skeleton.meta.info["vertex_attributes"] = [dict(a) for a in SKEL_ATTRS]
    vol.skeleton.meta.info["sharding"] = sharding
    vol.skeleton.meta.commit_info()
    vol = cv_open("skeletons_sharded")
    spec = ShardingSpecification.from_dict(sharding)
    by_shard = {}
    for s in skels:
        by_shard.setdefault(spec.compute_shard_location(s.id).shard_number, []).append(s)
    for shard in sorted(by_shard):
        vol.skeleton.upload(by_shard[shard])
    LAYERS.append({"name": "skeletons_sharded", "kind": "neuroglancer_skeletons", "skeleton_dir": "skeletons",
                   "writer": "cloud-volume sharded vol.skeleton.upload, once per shard",
                   "transform": TRANSFORM_SKEL2, "vertex_attributes": SKEL_ATTRS, "sharding": sharding,
                   "shard_files": sorted("%s.shard" % s for s in by_shard), "has_image": False,
                   "objects": [{"id": int(s.id), "vertices": len(s.vertices), "edges": len(s.edges)} for s in skels]})
    return skels


def write_skeleton_default_layers():
    """Unsharded skeleton layers whose info lacks members, to pin cloud-volume's defaults."""
    v = np.array([[1, 2, 3], [4.5, 5, 6], [7, 8.25, 9]], dtype=np.float32)
    e = np.array([[0, 1], [1, 2]], dtype=np.uint32)
    base = struct.pack("<II", 3, 2) + v.tobytes() + e.tobytes()
    r_vt = np.array([1.5, 2.5, 3.5], dtype="<f4").tobytes() + bytes([1, 2, 3])
    files = {1: base, 2: base + r_vt, 3: base + r_vt + b"xyz", 4: base + r_vt[:12] + bytes([4])}
    cases = [
        ("skel_defaults/noinfo", None, "no skeletons/info file at all"),
        ("skel_defaults/noattrs", {"@type": "neuroglancer_skeletons", "transform": [2, 0, 0, 1, 0, 2, 0, 0, 0, 0, 2, 0]},
         "info without vertex_attributes"),
        ("skel_defaults/notransform", {"@type": "neuroglancer_skeletons",
                                       "vertex_attributes": [dict(a) for a in SKEL_ATTRS[:2]]},
         "info without transform"),
    ]
    out = []
    for name, info, what in cases:
        make_layer(name, skel_dir="skeletons")
        if info is not None:
            write_bytes(rel(name, "skeletons/info"), json.dumps(info).encode())
        for segid, buf in files.items():
            write_bytes(rel(name, "skeletons", str(segid)), buf)
        LAYERS.append({"name": name, "kind": "neuroglancer_skeletons (defaults)", "skeleton_dir": "skeletons",
                       "writer": "make_meshes.py", "info": info, "note": what, "has_image": False,
                       "objects": [{"id": 1, "bytes": "vertices+edges only"},
                                   {"id": 2, "bytes": "+ radius f32 + vertex_types u8"},
                                   {"id": 3, "bytes": "+ radius + vertex_types + 3 junk bytes"},
                                   {"id": 4, "bytes": "+ radius + 1 of 3 vertex_types bytes"}]})
        out.append(name)
    return out


# ----------------------------------------------------------------------------------------------
# Bad inputs


def write_bad_layers(ids, lodm, legacy_frags):
    notes = []
    # 1. legacy manifest naming a missing fragment.
    make_layer("bad/legacy", mesh_dir="mesh")
    segid = ids[0]
    names = []
    for (bbox, v, f) in legacy_frags[segid]:
        name = "%d:0:%s" % (segid, bbox)
        names.append(name)
        write_bytes(rel("bad/legacy/mesh", name), precomputed_fragment(v, f))
    os.remove(absp(rel("bad/legacy/mesh", names[1])))
    write_bytes(rel("bad/legacy/mesh", "%d:0" % segid), json.dumps({"fragments": names}).encode())
    notes.append({"layer": "bad/legacy", "id": segid, "defect": "manifest names missing fragment " + names[1]})
    # A truncated legacy fragment (vertex count says more than the file holds).
    segid2 = ids[2]
    bbox, v, f = legacy_frags[segid2][0]
    name = "%d:0:%s" % (segid2, bbox)
    write_bytes(rel("bad/legacy/mesh", name), precomputed_fragment(v, f)[: 4 + 12 * (len(v) // 2)])
    write_bytes(rel("bad/legacy/mesh", "%d:0" % segid2), json.dumps({"fragments": [name]}).encode())
    notes.append({"layer": "bad/legacy", "id": segid2,
                  "defect": "fragment truncated inside its vertex array (nv = %d)" % len(v)})
    write_bytes(rel("bad/legacy/mesh", "%d:0" % ids[3]), b'{"fragments": []}')
    notes.append({"layer": "bad/legacy", "id": ids[3], "defect": "manifest with an empty fragment list"})

    # 2-4. multilod: fragment sizes past the data end, corrupt draco, truncated index.
    vol = make_layer("bad/multilod", mesh_dir="mesh")
    vol.mesh.meta.mip = 0
    vol.mesh.meta.to_multi_resolution(10)
    vol.mesh.meta.info["transform"] = TRANSFORM_VOX
    vol.mesh.meta.commit_info()
    counter = [0]
    cases = {}
    for segid in ids[:5]:
        cases[segid] = build_multilod(segid, lodm[segid], 10, None, counter)[:2]
    a, b, c, d, e = ids[:5]
    # a: the lod-0 data is cut in the middle of its last fragment (sizes run past the end).
    m, data = cases[a]
    lod0 = manifest_lod_sizes(m)[0]
    cut = int(sum(lod0) - lod0[-1] // 2)
    write_bytes(rel("bad/multilod/mesh", "%d.index" % a), m)
    write_bytes(rel("bad/multilod/mesh", "%d" % a), data[:cut])
    notes.append({"layer": "bad/multilod", "id": a, "defect": "data file ends in the middle of the last "
                  "lod-0 fragment (%d of %d bytes kept)" % (cut, len(data))})
    # b: the data file ends exactly where lod 1 starts (lod 1 and 2 lie wholly past the end).
    m, data = cases[b]
    lod0 = manifest_lod_sizes(m)[0]
    write_bytes(rel("bad/multilod/mesh", "%d.index" % b), m)
    write_bytes(rel("bad/multilod/mesh", "%d" % b), data[:int(sum(lod0))])
    notes.append({"layer": "bad/multilod", "id": b, "defect": "data file holds only lod 0; lods 1-2 lie past its end"})
    # c: corrupt draco: the "DRACO" magic of the first lod-0 fragment flipped.
    m, data = cases[c]
    bad = bytearray(data)
    for i in range(5):
        bad[i] ^= 0xFF
    write_bytes(rel("bad/multilod/mesh", "%d.index" % c), m)
    write_bytes(rel("bad/multilod/mesh", "%d" % c), bytes(bad))
    notes.append({"layer": "bad/multilod", "id": c, "defect": "first lod-0 fragment: bytes 0-4 (DRACO magic) xor 0xFF"})
    # d: index truncated by 6 bytes (inside the last lod's sizes).
    m, data = cases[d]
    write_bytes(rel("bad/multilod/mesh", "%d.index" % d), m[:-6])
    write_bytes(rel("bad/multilod/mesh", "%d" % d), data)
    notes.append({"layer": "bad/multilod", "id": d, "defect": "index truncated by 6 bytes"})
    # e: index with 4 trailing junk bytes.
    m, data = cases[e]
    write_bytes(rel("bad/multilod/mesh", "%d.index" % e), m + b"\0\0\0\0")
    write_bytes(rel("bad/multilod/mesh", "%d" % e), data)
    notes.append({"layer": "bad/multilod", "id": e, "defect": "index has 4 trailing bytes"})

    # 5. skeletons: edges past the vertices; truncated file; attributes missing from the file.
    vol = make_layer("bad/skeletons", skel_dir="skeletons")
    vol.skeleton.meta.info["transform"] = TRANSFORM_VOX
    vol.skeleton.meta.info["vertex_attributes"] = [dict(a) for a in SKEL_ATTRS]
    vol.skeleton.meta.commit_info()
    rng = np.random.default_rng(31337)
    sk = random_skeleton(rng, 101, 50)
    sk.edges = sk.edges.copy()
    sk.edges[3] = [2, 75]
    write_bytes("bad/skeletons/skeletons/101", sk.to_precomputed())
    notes.append({"layer": "bad/skeletons", "id": 101, "defect": "edge 3 = [2, 75] with 50 vertices"})
    sk = random_skeleton(rng, 102, 50)
    write_bytes("bad/skeletons/skeletons/102", sk.to_precomputed()[:8 + 12 * 50 + 8 * 20])
    notes.append({"layer": "bad/skeletons", "id": 102, "defect": "file ends inside the edge array"})
    sk = random_skeleton(rng, 103, 50)
    buf = sk.to_precomputed()
    write_bytes("bad/skeletons/skeletons/103", buf[:8 + 12 * 50 + 8 * 49])
    notes.append({"layer": "bad/skeletons", "id": 103,
                  "defect": "vertices and edges only (no attribute bytes) while info lists 4 attributes"})
    write_bytes("bad/skeletons/skeletons/104", buf[:8 + 12 * 50 + 8 * 49 + 4 * 50 + 50 + 30])
    notes.append({"layer": "bad/skeletons", "id": 104,
                  "defect": "attributes cut short: radius, vertex_types complete, compartment 15 of 50 values, no direction"})
    LAYERS.append({"name": "bad", "kind": "bad inputs", "defects": notes})
    return notes


def manifest_lod_sizes(m):
    num_lods = struct.unpack_from("<I", m, 24)[0]
    off = 28 + 4 * num_lods + 12 * num_lods
    counts = struct.unpack_from("<%dI" % num_lods, m, off)
    off += 4 * num_lods
    out = []
    for n in counts:
        off += 12 * n
        out.append(list(struct.unpack_from("<%dI" % n, m, off)))
        off += 4 * n
    return out


# ----------------------------------------------------------------------------------------------
# Expectations


def npy(relpath, arr):
    p = absp(relpath)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    np.save(p, arr, allow_pickle=False)
    return relpath


def id_tag(segids):
    if isinstance(segids, (list, tuple)):
        return "+".join(str(s) for s in segids)
    return str(segids)


def save_mesh(prefix, mesh, segid):
    v = np.asarray(mesh.vertices)
    entry = {"segid": segid, "vertices_dtype": str(v.dtype),
             "vertex_count": int(len(v)), "face_count": int(len(mesh.faces))}
    entry["vertices"] = npy(prefix + ".vertices.npy", v.astype(np.float32).reshape(-1, 3))
    if v.dtype == np.float64:  # what cloud-volume returned, before the float32 cast
        entry["vertices_f64"] = npy(prefix + ".vertices_f64.npy", v.reshape(-1, 3))
    entry["faces"] = npy(prefix + ".faces.npy", np.asarray(mesh.faces, dtype=np.uint32).reshape(-1, 3))
    n = np.asarray(mesh.normals)
    entry["normals"] = npy(prefix + ".normals.npy", n.astype(np.float32).reshape(-1, 3)) if n.size else None
    return entry


def save_skeleton(prefix, sk):
    entry = {"segid": int(sk.id), "space": sk.space, "transform": np.asarray(sk.transform).tolist(),
             "vertices_dtype": str(sk.vertices.dtype), "vertex_count": int(len(sk.vertices)),
             "edge_count": int(len(sk.edges))}
    entry["vertices"] = npy(prefix + ".vertices.npy", np.asarray(sk.vertices, dtype=np.float32).reshape(-1, 3))
    entry["edges"] = npy(prefix + ".edges.npy", np.asarray(sk.edges, dtype=np.uint32).reshape(-1, 2))
    attrs = {}
    for a in sk.extra_attributes:
        arr = np.asarray(getattr(sk, a["id"]))
        attrs[a["id"]] = {"file": npy(prefix + ".attr." + a["id"] + ".npy", arr), "dtype": str(arr.dtype),
                          "shape": list(arr.shape)}
    for name in ("radius", "vertex_types"):  # always present on an osteoid Skeleton (defaults -1 / 0)
        if name not in attrs and hasattr(sk, name):
            arr = np.asarray(getattr(sk, name))
            attrs[name] = {"file": npy(prefix + ".attr." + name + ".npy", arr), "dtype": str(arr.dtype),
                           "shape": list(arr.shape), "implicit": True}
    entry["extra_attributes"] = [dict(a) for a in sk.extra_attributes]
    entry["attributes"] = attrs
    return entry


def error_entry(err):
    return {"type": type(err).__name__, "message": str(err)[:300],
            "mro": [c.__name__ for c in type(err).__mro__[:-2]]}


def run_call(vol, kind, segids, kwargs):
    if kind == "mesh.get":
        return vol.mesh.get(segids, **kwargs)
    if kind == "skeleton.get":
        return vol.skeleton.get(segids, **kwargs)
    if kind == "mesh.exists":
        return vol.mesh.exists(segids)
    raise ValueError(kind)


def call_text(kind, segids, kwargs):
    args = [repr(segids)] + ["%s=%r" % kv for kv in kwargs.items()]
    return "vol.%s(%s)" % (kind, ", ".join(args))


def record(layer, kind, segids, kwargs=None, bad=False, note=None):
    """Run one cloud-volume call on a freshly opened layer and save its result."""
    kwargs = dict(kwargs or {})
    entry = {"layer": layer, "call": kind, "segids": segids, "kwargs": kwargs,
             "python": call_text(kind, segids, kwargs)}
    if bad:
        entry["bad"] = True
    if note:
        entry["note"] = note
    tag = id_tag(segids) + "".join(
        ".%s=%s" % (k, "x".join(str(x) for x in v) if isinstance(v, (list, tuple)) else v)
        for k, v in sorted(kwargs.items()))
    prefix = rel("expected", layer, tag)
    vol = cv_open(layer)
    try:
        with contextlib_quiet():
            res = run_call(vol, kind, segids, kwargs)
    except Exception as err:  # noqa: BLE001 - errors are expectations too
        entry["error"] = error_entry(err)
        READS.append(entry)
        return entry, None
    entry["outputs"] = describe(prefix, kind, res)
    READS.append(entry)
    return entry, res


def describe(prefix, kind, res):
    if kind == "mesh.exists":
        return {"result_type": type(res).__name__, "value": jsonable(res)}
    if kind == "skeleton.get":
        if res is None:
            return {"result_type": "NoneType", "items": []}
        if isinstance(res, list):
            return {"result_type": "list", "items": [save_skeleton("%s.%d" % (prefix, i), s) for i, s in enumerate(res)]}
        return {"result_type": "Skeleton", "items": [save_skeleton(prefix, res)]}
    if isinstance(res, Mesh):
        return {"result_type": "Mesh", "items": [save_mesh(prefix, res, res.segid)]}
    items = []
    for segid in sorted(res):
        m = res[segid]
        if isinstance(m, list):
            for j, mm in enumerate(m):
                items.append(save_mesh("%s.%d.%d" % (prefix, segid, j), mm, int(segid)))
        else:
            items.append(save_mesh("%s.%d" % (prefix, segid), m, int(segid)))
    return {"result_type": type(res).__name__, "keys": [int(k) for k in sorted(res)], "items": items}


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (bool, int, float, str)) or x is None:
        return x
    if hasattr(x, "segment_id") and hasattr(x, "num_lods"):
        return "MultiLevelPrecomputedMeshManifest(segment_id=%d, num_lods=%d)" % (x.segment_id, x.num_lods)
    return repr(x)


class contextlib_quiet:
    """Silence cloud-volume's prints ("... had a problem.") while recording."""

    def __enter__(self):
        self._old = sys.stdout
        sys.stdout = io.StringIO()

    def __exit__(self, *exc):
        self.captured = sys.stdout.getvalue()
        sys.stdout = self._old
        return False


def record_all(ids, skels):
    triple = [ids[2], ids[3], ids[4]]
    for layer in ("legacy", "legacy_transform"):
        for segid in ids:
            record(layer, "mesh.get", segid)
            record(layer, "mesh.get", segid, {"remove_duplicate_vertices": False})
        record(layer, "mesh.get", triple)
        record(layer, "mesh.get", triple, {"remove_duplicate_vertices": False})
        record(layer, "mesh.get", triple, {"fuse": False})
        for segid in (ids[0], ids[2]):
            record(layer, "mesh.get", segid, {"chunk_size": MESH_TASK.tolist()})
        record(layer, "mesh.get", MISSING_ID)
        record(layer, "mesh.exists", [ids[0], MISSING_ID])
    for layer in ("multilod", "multilod_sharded", "multilod_sharded_gzip"):
        for segid in ids:
            record(layer, "mesh.get", segid)
            for lod in (1, 2):
                record(layer, "mesh.get", segid, {"lod": lod})
        record(layer, "mesh.get", triple, {"lod": 1})
        record(layer, "mesh.get", ids[2], {"lod": 3})
        record(layer, "mesh.get", ids[2], {"lod": -1})
        record(layer, "mesh.get", ids[2], {"concat": False})
        record(layer, "mesh.get", MISSING_ID)
        record(layer, "mesh.get", [ids[2], MISSING_ID])
        record(layer, "mesh.exists", [ids[0], MISSING_ID], note=(
            "unsharded multilod exists() builds CloudFiles(mesh_dir) relative to the process CWD "
            "(a cloud-volume bug): False unless CWD/mesh/<id>.index happens to exist"
            if layer == "multilod" else None))
    for layer in ("skeletons", "skeletons_sharded"):
        for s in skels:
            record(layer, "skeleton.get", int(s.id))
        record(layer, "skeleton.get", [int(skels[0].id), int(skels[1].id)])
        record(layer, "skeleton.get", MISSING_ID)
    # bad inputs
    for segid in ids[:1] + ids[2:4]:
        record("bad/legacy", "mesh.get", segid, bad=True)
    record("bad/legacy", "mesh.get", ids[3], {"remove_duplicate_vertices": False}, bad=True)
    for segid in ids[:5]:
        for lod in (0, 1):
            record("bad/multilod", "mesh.get", segid, {"lod": lod}, bad=True)
    for segid in (101, 102, 103, 104):
        record("bad/skeletons", "skeleton.get", segid, bad=True)


def save_texts(ids, skels):
    vol = cv_open("legacy")
    for segid in (ids[0], ids[1]):
        m = vol.mesh.get(segid)
        for fmt, data in (("obj", m.to_obj()), ("ply", bytes(m.to_ply()))):
            path = rel("expected/text", "legacy.%d.%s" % (segid, fmt))
            write_bytes(path, data)
            TEXTS.append({"layer": "legacy", "segid": segid, "format": fmt, "file": path,
                          "python": "vol.mesh.get(%d).to_%s()" % (segid, fmt),
                          "source_read": "vol.mesh.get(%d)" % segid})
    vol = cv_open("multilod")
    m = vol.mesh.get(ids[2])[ids[2]]
    for fmt, data in (("obj", m.to_obj()), ("ply", bytes(m.to_ply()))):
        path = rel("expected/text", "multilod.%d.lod0.%s" % (ids[2], fmt))
        write_bytes(path, data)
        TEXTS.append({"layer": "multilod", "segid": ids[2], "format": fmt, "file": path,
                      "python": "vol.mesh.get(%d)[%d].to_%s()" % (ids[2], ids[2], fmt)})
    vol = cv_open("skeletons")
    for s in (skels[0], skels[5], skels[3]):
        sk = vol.skeleton.get(int(s.id))
        path = rel("expected/text", "skeletons.%d.swc" % s.id)
        write_bytes(path, sk.to_swc().encode())
        TEXTS.append({"layer": "skeletons", "segid": int(s.id), "format": "swc", "file": path,
                      "python": "vol.skeleton.get(%d).to_swc()" % s.id,
                      "nondeterministic_lines": ["# VERSION_DATE "]})


# ----------------------------------------------------------------------------------------------
# Checking


def compare_entry(entry):
    """Re-run one recorded call on a fresh CloudVolume and compare with the saved files."""
    vol = cv_open(entry["layer"])
    try:
        with contextlib_quiet():
            res = run_call(vol, entry["call"], entry["segids"], entry["kwargs"])
    except Exception as err:  # noqa: BLE001
        assert "error" in entry and entry["error"]["type"] == type(err).__name__, (entry["python"], err)
        return
    assert "outputs" in entry, (entry["python"], "now succeeds")
    out = entry["outputs"]
    if entry["call"] == "mesh.exists":
        assert jsonable(res) == out["value"], entry["python"]
        return
    if entry["call"] == "skeleton.get":
        got = res if isinstance(res, list) else ([] if res is None else [res])
        assert len(got) == len(out["items"]), entry["python"]
        for sk, item in zip(got, out["items"]):
            assert np.array_equal(np.load(absp(item["vertices"])), np.asarray(sk.vertices, np.float32))
            assert np.array_equal(np.load(absp(item["edges"])), np.asarray(sk.edges, np.uint32))
            for a, d in item["attributes"].items():
                assert np.array_equal(np.load(absp(d["file"])), np.asarray(getattr(sk, a))), (entry["python"], a)
        return
    if isinstance(res, Mesh):
        got = [res]
    else:
        got = []
        for segid in sorted(res):
            got += res[segid] if isinstance(res[segid], list) else [res[segid]]
    assert len(got) == len(out["items"]), entry["python"]
    for m, item in zip(got, out["items"]):
        assert np.array_equal(np.load(absp(item["vertices"])), np.asarray(m.vertices).astype(np.float32)), entry["python"]
        assert np.array_equal(np.load(absp(item["faces"])), np.asarray(m.faces, np.uint32)), entry["python"]


def independent_checks(manifest):
    """Cross-checks that do not go through cloud-volume's readers: they re-derive every recorded
    good read from the files with the rules written in docs/meshes.md, so they prove both the
    files and those rules."""
    import trimesh
    for t in manifest["texts"]:
        p = absp(t["file"])
        if t["format"] in ("obj", "ply"):
            tm = trimesh.load(p, file_type=t["format"], process=False, force="mesh")
            src = [r for r in manifest["reads"] if r["layer"] == t["layer"] and r["segids"] == t["segid"]
                   and r["call"] == "mesh.get" and not r["kwargs"]][0]
            item = [i for i in src["outputs"]["items"] if i["segid"] in (None, t["segid"])][0]
            v = np.load(absp(item["vertices"]))
            f = np.load(absp(item["faces"]))
            assert tm.faces.shape == f.shape and np.array_equal(tm.faces, f), t["file"]
            tol = 1e-5 * max(1.0, float(np.abs(v).max())) if t["format"] == "obj" else 0
            assert np.allclose(tm.vertices, v, atol=tol, rtol=0), t["file"]
    layers = {L["name"]: L for L in manifest["layers"]}
    n = 0
    for r in manifest["reads"]:
        if "outputs" not in r or r.get("bad") or r["call"] == "mesh.exists":
            continue
        kind = layers[r["layer"]]["kind"]
        if kind == "neuroglancer_legacy_mesh":
            n += check_legacy_read(layers[r["layer"]], r)
        elif kind == "neuroglancer_multilod_draco":
            n += check_multilod_read(layers[r["layer"]], r)
        elif kind == "neuroglancer_skeletons":
            n += check_skeleton_read(layers[r["layer"]], r)
    return n


def read_maybe_gz(path):
    if os.path.exists(path):
        return open(path, "rb").read()
    if os.path.exists(path + ".gz"):
        return gzip.decompress(open(path + ".gz", "rb").read())
    return None


def legacy_concat(layer, segids):
    mdir = rel(layer["name"], layer["mesh_dir"])
    owner = {}
    for segid in sorted(segids):
        for name in json.loads(read_maybe_gz(absp(rel(mdir, "%d:0" % segid))))["fragments"]:
            owner[name] = segid  # a name listed twice is read once
    by_seg = {}
    for name in sorted(owner, key=lambda nm: rel(layer["mesh_dir"], nm)):  # sorted by path
        buf = read_maybe_gz(absp(rel(mdir, name)))
        nv = struct.unpack_from("<I", buf, 0)[0]
        v = np.frombuffer(buf, "<f4", 3 * nv, 4).reshape(nv, 3)
        f = np.frombuffer(buf, "<u4", -1, 4 + 12 * nv).reshape(-1, 3)
        by_seg.setdefault(owner[name], []).append((v, f))
    vs, fs, base = [], [], 0
    for segid in sorted(by_seg):
        for v, f in by_seg[segid]:
            vs.append(v)
            fs.append(f.astype(np.int64) + base)
            base += len(v)
    v, f = np.concatenate(vs), np.concatenate(fs)
    if "transform" in layer:
        T = np.array(layer["transform"], dtype=np.float64).reshape(3, 4)
        v = v.astype(np.float64)
        v = v[:, 0:1] * T[:, 0] + v[:, 1:2] * T[:, 1] + v[:, 2:3] * T[:, 2] + T[:, 3]
    return v, f


def check_legacy_read(layer, r):
    kw = r["kwargs"]
    segids = r["segids"] if isinstance(r["segids"], list) else [r["segids"]]
    if kw.get("fuse") is False:
        for item in r["outputs"]["items"]:
            v, f = legacy_concat(layer, [item["segid"]])
            assert_mesh(item, v, f, r)
        return 1
    v, f = legacy_concat(layer, segids)
    if kw.get("remove_duplicate_vertices", True) and not kw.get("chunk_size"):
        # Mesh.consolidate: np.unique rows (lexicographic x,y,z), faces remapped, then unique
        # face rows (lexicographic); nothing else dropped.
        v, inv = np.unique(v, axis=0, return_inverse=True)
        f = np.unique(inv.reshape(-1)[f], axis=0)
    elif kw.get("chunk_size"):
        # Mesh.deduplicate_chunk_boundaries (see docs/meshes.md)
        res = np.array(manifest_geometry["resolution"], dtype=np.int64)
        offset = np.array(manifest_geometry["voxel_offset"], dtype=np.int64) * res
        csz = np.array(kw["chunk_size"]) * res
        rel_v = v - offset
        aligned = np.any(np.mod(rel_v, csz) == 0, axis=1)
        _, inv, counts = np.unique(v, axis=0, return_inverse=True, return_counts=True)
        merge = (counts[inv.reshape(-1)] == 2) & aligned
        tagged = np.hstack([v, np.arange(len(v))[:, None]]).astype(np.float64)
        tagged[merge, 3] = -1
        v, finv = np.unique(tagged[f.reshape(-1)], axis=0, return_inverse=True)
        v = v[:, :3]
        f = finv.reshape(-1, 3)
    assert_mesh(r["outputs"]["items"][0], v, f, r)
    return 1


def assert_mesh(item, v, f, r):
    got_v = np.load(absp(item["vertices"]))
    got_f = np.load(absp(item["faces"]))
    assert np.array_equal(got_f, np.asarray(f, dtype=np.uint32)), ("faces", r["python"], r["layer"])
    assert np.array_equal(got_v, np.asarray(v).astype(np.float32)), ("vertices", r["python"], r["layer"])
    if item.get("vertices_f64"):
        assert np.array_equal(np.load(absp(item["vertices_f64"])), np.asarray(v, np.float64)), r["python"]


def shard_lookup(layer, segid):
    """(shard bytes, start, end) of segid's stored value, or None. Own reader."""
    sh = layer["sharding"]
    spec = ShardingSpecification.from_dict(sh)
    key = np.uint64(segid) >> np.uint64(sh["preshift_bits"])
    h = int(key) if sh["hash"] == "identity" else int(spec.hashfn(key))
    mini = h & ((1 << sh["minishard_bits"]) - 1)
    shard = (h >> sh["minishard_bits"]) & ((1 << sh["shard_bits"]) - 1)
    digits = max(1, -(-sh["shard_bits"] // 4))
    path = absp(rel(layer["name"], layer.get("mesh_dir") or layer.get("skeleton_dir"),
                    "%0*x.shard" % (digits, shard)))
    if not os.path.exists(path):
        return None
    blob = open(path, "rb").read()
    S = 16 * (1 << sh["minishard_bits"])
    a, b = struct.unpack_from("<QQ", blob, 16 * mini)
    if a == b:
        return None
    msi = blob[S + a:S + b]
    if sh["minishard_index_encoding"] == "gzip":
        msi = gzip.decompress(msi)
    arr = np.frombuffer(msi, "<u8").reshape(3, -1)
    ids_, pos = np.cumsum(arr[0], dtype=np.uint64), S
    for i in range(arr.shape[1]):
        start = pos + int(arr[1, i])
        end = start + int(arr[2, i])
        pos = end
        if int(ids_[i]) == segid:
            return blob, start, end
    return None


def multilod_raw(layer, segid):
    mdir = rel(layer["name"], layer["mesh_dir"])
    if not layer.get("sharding"):
        return (open(absp(rel(mdir, "%d.index" % segid)), "rb").read(),
                open(absp(rel(mdir, "%d" % segid)), "rb").read())
    blob, start, end = shard_lookup(layer, segid)
    manifest = blob[start:end]
    if layer["sharding"]["data_encoding"] == "gzip":
        manifest = gzip.decompress(manifest)
    total = sum(sum(s) for s in manifest_lod_sizes(manifest))
    return manifest, blob[start - total:start]


def check_multilod_read(layer, r):
    q = layer["vertex_quantization_bits"]
    T = np.array(layer["transform"], dtype=np.float64).reshape(3, 4)
    lod = r["kwargs"].get("lod", 0)
    segids = r["segids"] if isinstance(r["segids"], list) else [r["segids"]]
    items = r["outputs"]["items"]
    k = 0
    for segid in sorted(segids):
        mbytes, data = multilod_raw(layer, segid)
        chunk = np.frombuffer(mbytes, "<f4", 3, 0)
        origin = np.frombuffer(mbytes, "<f4", 3, 12)
        nl = struct.unpack_from("<I", mbytes, 24)[0]
        voffs = np.frombuffer(mbytes, "<f4", 3 * nl, 28 + 4 * nl).reshape(nl, 3)
        counts = np.frombuffer(mbytes, "<u4", nl, 28 + 16 * nl)
        if lod == -1:  # sharded sources only: the coarsest lod
            lod = nl - 1
        off, pos, sizes = 28 + 20 * nl, [], []
        for cnt in counts:
            pos.append(np.frombuffer(mbytes, "<u4", 3 * cnt, off).reshape(3, cnt).T)
            off += 12 * cnt
            sizes.append(np.frombuffer(mbytes, "<u4", cnt, off))
            off += 4 * cnt
        start = int(sum(int(s.sum()) for s in sizes[:lod]))
        frags = []
        for p, sz in zip(pos[lod], sizes[lod]):
            sz = int(sz)
            if sz == 0:
                continue
            dm = DracoPy.decode(data[start:start + sz])
            start += sz
            pts = np.asarray(dm.points, np.float32)
            s32 = pts / np.float32(2**q - 1)                                  # float32 division
            a = p.astype(np.float64) + s32.astype(np.float64)                 # uint32 + f32 -> f64
            o = (origin + voffs[lod]).astype(np.float64)                      # f32 sum
            c = (chunk * np.float32(2**lod)).astype(np.float64)
            x = o + c * a
            x = x[:, 0:1] * T[:, 0] + x[:, 1:2] * T[:, 1] + x[:, 2:3] * T[:, 2] + T[:, 3]
            frags.append((x, np.asarray(dm.faces, np.int64)))
        if not frags:
            continue
        if r["kwargs"].get("concat", True):
            vs, fs, base = [], [], 0
            for x, f in frags:
                vs.append(x)
                fs.append(f + base)
                base += len(x)
            assert_mesh(items[k], np.concatenate(vs), np.concatenate(fs), r)
            k += 1
        else:
            for x, f in frags:
                assert_mesh(items[k], x, f, r)
                k += 1
    assert k == len(items), r["python"]
    return 1


def check_skeleton_read(layer, r):
    segids = r["segids"] if isinstance(r["segids"], list) else [r["segids"]]
    T = np.array(layer["transform"], dtype=np.float32).reshape(3, 4)
    assert sorted(i["segid"] for i in r["outputs"]["items"]) == sorted(segids), r["python"]
    for item in r["outputs"]["items"]:  # unsharded multi-id reads return them in any order
        segid = item["segid"]
        if layer.get("sharding"):
            blob, a, b = shard_lookup(layer, segid)
            buf = blob[a:b]
            if layer["sharding"]["data_encoding"] == "gzip":
                buf = gzip.decompress(buf)
        else:
            buf = read_maybe_gz(absp(rel(layer["name"], layer["skeleton_dir"], str(segid))))
        nv, ne = struct.unpack_from("<II", buf, 0)
        v = np.frombuffer(buf, "<f4", 3 * nv, 8).reshape(nv, 3)
        e = np.frombuffer(buf, "<u4", 2 * ne, 8 + 12 * nv).reshape(ne, 2)
        off = 8 + 12 * nv + 8 * ne
        x = v[:, 0:1] * T[:, 0] + v[:, 1:2] * T[:, 1] + v[:, 2:3] * T[:, 2] + T[:, 3]  # float32
        assert np.array_equal(np.load(absp(item["vertices"])), x), r["python"]
        assert np.array_equal(np.load(absp(item["edges"])), e), r["python"]
        for a in layer["vertex_attributes"]:
            dt = np.dtype(a["data_type"]).newbyteorder("<")
            nc = a["num_components"]
            arr = np.frombuffer(buf, dt, nv * nc, off)
            off += arr.nbytes
            arr = arr.reshape(nv, nc) if nc > 1 else arr
            got = np.load(absp(item["attributes"][a["id"]]["file"]))
            assert got.shape == arr.shape and np.array_equal(got, arr), (r["python"], a["id"])
        assert off == len(buf)
    return 1


def check(outdir, quick=False):
    global OUT
    OUT = os.path.abspath(outdir)
    manifest = json.load(open(os.path.join(OUT, "manifest.json")))
    manifest_geometry.update(manifest["geometry"])
    entries = manifest["reads"]
    if quick:  # a sample from every layer and call shape
        seen, sample = set(), []
        for e in entries:
            key = (e["layer"], e["call"], tuple(sorted(e["kwargs"])), isinstance(e["segids"], list))
            if key not in seen:
                seen.add(key)
                sample.append(e)
        entries = sample
    for e in entries:
        compare_entry(e)
    n_ind = independent_checks(manifest)
    return len(entries), n_ind


# ----------------------------------------------------------------------------------------------


def main():
    global OUT
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--check":
        t0 = time.time()
        n, n_ind = check(args[1])
        print("re-ran %d recorded calls with cloud-volume and re-derived %d reads from the files "
              "independently: all match (%.1f s)" % (n, n_ind, time.time() - t0))
        return
    if len(args) != 1 or args[0].startswith("-"):
        raise SystemExit(__doc__)
    OUT = os.path.abspath(args[0])
    t0 = time.time()
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)

    labels, ids = make_labels()
    write_legacy_layers(labels, ids)
    lodm = lod_meshes_for(labels)
    write_multilod_layers(ids, lodm)
    skels = write_skeleton_layers(ids)
    default_layers = write_skeleton_default_layers()
    legacy_frags = legacy_fragments(labels, RES.tolist(), lambda lo: ((lo + OFFSET) * RES).astype(np.float32))
    write_bad_layers(ids, lodm, legacy_frags)
    t_write = time.time() - t0

    record_all(ids, skels)
    for layer in default_layers:
        for segid in (1, 2, 3, 4):
            record(layer, "skeleton.get", segid)
    save_texts(ids, skels)

    manifest = {
        "generator": "tests/reference/make_meshes.py",
        "versions": {p: md.version(p) for p in ("cloud-volume", "osteoid", "DracoPy", "zmesh", "numpy",
                                                "cloud-files", "trimesh")},
        "geometry": {"size": SHAPE.tolist(), "resolution": RES.tolist(), "voxel_offset": OFFSET.tolist(),
                     "chunk_size": CHUNK.tolist(), "data_type": "uint64"},
        "ids": ids,
        "missing_id": MISSING_ID,
        "triple": [ids[2], ids[3], ids[4]],
        "schema": {
            "layers[]": "name (directory under OUTDIR), kind, mesh_dir|skeleton_dir, writer, and per-object facts",
            "reads[]": "layer, call ('mesh.get'|'mesh.exists'|'skeleton.get'), segids (int or list), kwargs "
                       "(passed verbatim), python (the exact call on vol = CloudVolume('file://'+OUTDIR/layer)), "
                       "bad (true for bad/ inputs), and either error {type, message, mro} or outputs "
                       "{result_type ('Mesh'|'defaultdict'|'dict'|'list'|'Skeleton'|...), keys (dict results), "
                       "items[]}. Mesh items: segid (null for a fused legacy mesh), vertices (.npy float32 Nx3, "
                       "cast from vertices_dtype, which is what cloud-volume returned), faces (.npy uint32 Mx3), "
                       "normals (.npy or null), vertex_count, face_count. Skeleton items: segid, space, transform, "
                       "vertices (float32 Nx3), edges (uint32 Ex2), extra_attributes (as cloud-volume holds them), "
                       "attributes {id: {file, dtype, shape}} with cloud-volume's dtype and shape ((N,) for one "
                       "component, (N,k) otherwise). Files are relative to OUTDIR.",
            "texts[]": "layer, segid, format (obj|ply|swc), file, python (the call that produced the bytes)",
        },
        "layers": LAYERS,
        "reads": READS,
        "texts": TEXTS,
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)

    # Self-check: a fresh CloudVolume re-reads a sample, plus independent decoding and parsing.
    n, n_ind = check(OUT, quick=True)
    print("wrote %d layers, %d recorded calls (%d errors), %d texts in %.1f s (writing %.1f s); "
          "self-check: re-ran %d calls, re-derived %d reads independently" % (
              len(LAYERS), len(READS), sum(1 for r in READS if "error" in r), len(TEXTS),
              time.time() - t0, t_write, n, n_ind))


if __name__ == "__main__":
    main()
