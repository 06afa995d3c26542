#!/usr/bin/env python3
"""Benchmark, meshes and skeletons: this library (through its C ABI) against cloud-volume,
fetching and decoding 100 sharded multi-resolution Draco meshes (all fragments of lod 0) and
1,000 sharded skeletons from loopback HTTP.

    target/venv/bin/python bench/run_objects.py [--quick] [--rounds N] [--repeats N] [--out FILE]
                                                 [--skip-build] [--no-perf] [--budget SECONDS]

Steps:
 1. build the release library and the latency proxy (cargo), compile bench/objects_bench.c
    against a private copy of libcloudvolume.so in target/bench/objects/;
 2. write the layer into target/bench-layers/objects/ (reused while its stamp matches): a
    uint64 segmentation info (no image chunks) with
    - `mesh/`: neuroglancer_multilod_draco, sharded (murmurhash3_x86_128, gzip minishard
      indices, raw data, as igneous writes them), 100 segments: irregular blobs (unions of
      ellipsoids along a random walk) meshed by zmesh, ~10-50k triangles at lod 0, 3 lods
      (zmesh simplification 4x and 16x), fragments cut at the octree nodes, Draco-encoded by
      DracoPy, the shard files made by cloud-volume's sharding.synthesize_shard_files, the
      bench-sized variant of tests/reference/make_meshes.py's writer (its helpers imported);
    - `skeletons/`: 1,000 random trees of 200-600 vertices with radius (float32) and
      vertex_types (uint8) attributes, sharded (murmurhash3_x86_128, gzip index and data,
      MICrONS-like), written by cloud-volume's sharded `vol.skeleton.upload` once per shard;
 3. serve it with nginx (1 worker) on loopback; read all 100 meshes (`mesh`) and all 1,000
    skeletons (`skeleton`) with each reader in its own processes, interleaved: ours is
    `objects_bench` (cv_mesh_get_each lod 0, weld -1; cv_skeleton_get_each), cloud-volume is
    `CloudVolume(url).mesh.get(ids, lod=0)` / `.skeleton.get(ids)`; a warm-up run and
    --repeats timed runs per process; medians; peak RSS (VmHWM) per process; the outputs'
    counts and checksums must agree;
 4. count requests: each reader once more through examples/latency_proxy (no delay), the
    counter read after open, after the first (cold) run and after each warm run;
 5. breakdown for ours: the same reads from file:// (no HTTP), and the CPU-seconds per run;
    DracoPy decoding the same lod-0 fragments alone in one thread (C++ Draco); where perf works,
    `perf record` of ours (file://) with its self time grouped (draco-core, gzip, allocation...);
    past --budget seconds (default 480) the driver stops waiting for an idle machine, so a busy
    machine does not stretch the run much past ~10 minutes;
 6. write target/bench/objects.md and (unless --quick or --out) the section
    "## Meshes and skeletons (bench/run_objects.py)" at the end of BENCHMARKS.md, between the
    markers <!-- objects:start --> and <!-- objects:end --> (replaced on every run).

Shared helpers (idle waits, servers, merging) live in bench/common.py.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BENCH, MIB, ROOT, Nginx, Proxy, base_args, build, checksum_bytes, fmt, hwm_kb, idle_summary, log, machine_info,
    machine_lines, measured, merge, ratio, run_json, versions, wait_quiet,
)

BUILD = BENCH / "objects"
LAYER = ROOT / "target" / "bench-layers" / "objects"
GENERATOR_VERSION = 1
SEED = 20_261_205
N_MESHES = 100
N_SKELETONS = 1000
RESOLUTION = [8, 8, 40]
VOLUME = [4096, 4096, 1024]
# Multi-resolution meshes: stored model space is voxels; lod 0 octree nodes of 32x32x16 voxels.
MESH_Q = 16
MESH_CHUNK = [32.0, 32.0, 16.0]
LOD_REDUCTION = [0, 4, 16]
MESH_TRANSFORM = [8, 0, 0, 0, 0, 8, 0, 0, 0, 0, 40, 0]
MESH_SHARDING = {"@type": "neuroglancer_uint64_sharded_v1", "hash": "murmurhash3_x86_128", "preshift_bits": 0,
                 "minishard_bits": 3, "shard_bits": 1, "minishard_index_encoding": "gzip", "data_encoding": "raw"}
SKEL_TRANSFORM = [8, 0, 0, 0, 0, 8, 0, 0, 0, 0, 40, 0]
SKEL_ATTRS = [{"id": "radius", "data_type": "float32", "num_components": 1},
              {"id": "vertex_types", "data_type": "uint8", "num_components": 1}]
SKEL_SHARDING = {"@type": "neuroglancer_uint64_sharded_v1", "hash": "murmurhash3_x86_128", "preshift_bits": 0,
                 "minishard_bits": 4, "shard_bits": 2, "minishard_index_encoding": "gzip", "data_encoding": "gzip"}
READERS = ["ours", "cloud-volume"]
# Also interleaved in the rounds, for the breakdown: ours from file:// (no HTTP), and DracoPy
# decoding the meshes' lod-0 fragments alone.
FILE = "ours, file://"
ROUND_READERS = {"mesh": READERS + [FILE, "dracopy"], "skeleton": READERS + [FILE]}
MODES = {"mesh": (N_MESHES, "mesh_ids.u64"), "skeleton": (N_SKELETONS, "skeleton_ids.u64")}
TARGET_RATIO = 5.0
SECTION = "## Meshes and skeletons (bench/run_objects.py)"
MARK_START, MARK_END = "<!-- objects:start -->", "<!-- objects:end -->"


# ----------------------------------------------------------------------------------------------
# The layer


def segment_ids(rng, n):
    """MICrONS-magnitude uint64 ids (~8.6e17), distinct, sorted."""
    ids = set()
    while len(ids) < n:
        ids.add(864691135000000000 + int(rng.integers(0, 10**9)))
    return sorted(ids)


def blob(rng):
    """An irregular object in its own box (voxels): 3-11 overlapping ellipsoids along a random
    walk, flatter in z (the 8x8x40 nm anisotropy). Returns the F-ordered uint32 mask."""
    import numpy as np

    box = np.array([176, 176, 80])
    m = np.zeros(tuple(box), dtype=np.uint32, order="F")
    c = box / 2 + rng.normal(0, 4, 3)
    d = rng.normal(0, 1, 3)
    d /= np.linalg.norm(d)
    lo_c, hi_c = np.array([32, 32, 14]), box - np.array([32, 32, 14])
    for _ in range(int(rng.integers(3, 12))):
        r = rng.uniform([9, 9, 4], [30, 30, 12])
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, box)
        x, y, z = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        e = ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0
        m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= e.astype(np.uint32)
        d = d + rng.normal(0, 0.6, 3)
        d /= np.linalg.norm(d)
        c = np.clip(c + d * rng.uniform(10, 22) * np.array([1, 1, 0.4]), lo_c, hi_c)
    return m


def build_multilod(mm, lods, q, chunk):
    """(manifest bytes, fragment bytes, fragments per lod, triangles per lod) of one mesh:
    tests/reference/make_meshes.py's build_multilod without its special cases, zero vertex
    offsets and every fragment edgebreaker-encoded (DracoPy's default, as igneous writes)."""
    import struct

    import numpy as np

    chunk = np.array(chunk)
    qmax = 2**q - 1
    grid_origin = (np.floor(lods[0][0].min(axis=0)) - 1.0).astype(np.float32)
    origin = grid_origin.astype(np.float64)
    nodes_by_lod, prev, tris = [], set(), []
    for L, (v, f) in enumerate(lods):
        size = chunk * 2**L
        content = {}
        if L == 0:
            for key, (vv, ff) in mm.chunk_pieces(v, f, size, origin).items():
                content[key] = [(key, vv, ff)]
        else:  # cut at the octant planes too, so no triangle crosses a child boundary
            for key, (vv, ff) in mm.chunk_pieces(v, f, size / 2, origin).items():
                content.setdefault(tuple(k // 2 for k in key), []).append((key, vv, ff))
        nodes = set(content) | {tuple(k // 2 for k in n) for n in prev}
        order = sorted(nodes, key=mm.morton_key)
        frags, ntri = [], 0
        for p in order:
            if p not in content:
                frags.append((p, b""))
                continue
            node_lo = origin + np.array(p) * size
            vs, fs, base = [], [], 0
            for key, vv, ff in content[p]:
                qv = np.clip(np.round((vv - node_lo) / size * qmax), 0, qmax)
                if L > 0:
                    octant = np.array(key) - 2 * np.array(p)
                    qv = np.clip(qv, np.where(octant == 1, 2 ** (q - 1), 0), np.where(octant == 1, qmax, 2 ** (q - 1)))
                vs.append(qv)
                fs.append(ff + base)
                base += len(qv)
            qv, ff = mm.weld(np.concatenate(vs), np.concatenate(fs))
            if len(ff) == 0:
                frags.append((p, b""))
                continue
            if L > 0:
                assert mm.partition_ok(q, qv, ff)
            frags.append((p, mm.draco_encode(qv, ff, sequential=False)))
            ntri += len(ff)
        nodes_by_lod.append(frags)
        tris.append(ntri)
        prev = set(order)
    n = len(lods)
    parts = [chunk.astype("<f4").tobytes(), grid_origin.astype("<f4").tobytes(), struct.pack("<I", n),
             (np.float32(chunk.max()) * 2.0 ** np.arange(n)).astype("<f4").tobytes(),
             np.zeros((n, 3), "<f4").tobytes(), np.array([len(fr) for fr in nodes_by_lod], "<u4").tobytes()]
    for frags in nodes_by_lod:
        parts.append(np.array([p for p, _ in frags], dtype="<u4").reshape(-1, 3).T.copy().tobytes())
        parts.append(np.array([len(d) for _, d in frags], dtype="<u4").tobytes())
    data = b"".join(d for frags in nodes_by_lod for _, d in frags)
    return b"".join(parts), data, [len(fr) for fr in nodes_by_lod], tris


def random_skeleton(rng, segid, n, Skeleton):
    """A random tree of n vertices (voxel coordinates, multiples of 1/16) with radius and
    vertex_types."""
    import numpy as np

    steps = rng.normal(0, [3.0, 3.0, 0.6], (n, 3))
    parent = np.concatenate([[-1], [int(rng.integers(max(0, i - 8), i)) for i in range(1, n)]])
    verts = np.zeros((n, 3))
    verts[0] = rng.uniform([200, 200, 50], np.array(VOLUME) - [200, 200, 50])
    for i in range(1, n):
        verts[i] = verts[parent[i]] + steps[i]
    verts = (np.round(verts * 16) / 16).astype(np.float32)
    edges = np.stack([parent[1:], np.arange(1, n)], axis=1).astype(np.uint32)
    radius = (np.round(rng.uniform(20, 400, n) * 4) / 4).astype(np.float32)
    vtypes = rng.integers(0, 4, n).astype(np.uint8)
    return Skeleton(verts, edges, radius, vtypes, segid=segid, extra_attributes=[dict(a) for a in SKEL_ATTRS])


def layer_stamp():
    import importlib.metadata as md

    return json.dumps({"gen": GENERATOR_VERSION, "seed": SEED, "meshes": N_MESHES, "skeletons": N_SKELETONS,
                       "q": MESH_Q, "chunk": MESH_CHUNK, "lods": LOD_REDUCTION, "mesh_sharding": MESH_SHARDING,
                       "skel_sharding": SKEL_SHARDING, "versions": {p: md.version(p) for p in (
                           "cloud-volume", "DracoPy", "zmesh")}}, sort_keys=True)


def make_layer():
    """Write the layer (meshes, skeletons, id files); returns the facts kept in layer.json."""
    stamp = layer_stamp()
    stamp_file = LAYER / "stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp and (LAYER / "layer.json").exists():
        log(f"layer: reusing {LAYER}")
        return dict(json.loads((LAYER / "layer.json").read_text()), reused=True)
    import numpy as np
    import zmesh

    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    import make_meshes as mm  # its helpers: zmesh chunking, welding, Morton order, Draco encoding
    from cloudvolume import CloudVolume
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, synthesize_shard_files
    from cloudvolume.skeleton import Skeleton

    shutil.rmtree(LAYER, ignore_errors=True)
    LAYER.mkdir(parents=True)
    t0 = time.time()
    rng = np.random.default_rng(SEED)
    info = CloudVolume.create_new_info(
        num_channels=1, layer_type="segmentation", data_type="uint64", encoding="compressed_segmentation",
        resolution=RESOLUTION, voxel_offset=[0, 0, 0], volume_size=VOLUME, mesh="mesh", skeletons="skeletons",
        chunk_size=[128, 128, 64])
    url = f"file://{LAYER}"
    vol = CloudVolume(url, info=info, progress=False)
    vol.commit_info()

    # Meshes.
    vol.mesh.meta.mip = 0
    vol.mesh.meta.to_multi_resolution(MESH_Q)
    vol.mesh.meta.info["transform"] = MESH_TRANSFORM
    vol.mesh.meta.info["lod_scale_multiplier"] = 1.0
    vol.mesh.meta.info["sharding"] = MESH_SHARDING
    vol.mesh.meta.commit_info()
    mesh_ids = segment_ids(rng, N_MESHES)
    built, frags, tris = {}, [], []
    for segid in mesh_ids:
        mask = blob(rng)
        mesher = zmesh.Mesher((1, 1, 1))
        mesher.mesh(mask)
        shift = rng.integers([0, 0, 0], np.array(VOLUME) - mask.shape).astype(np.float64)
        lods = []
        for L, red in enumerate(LOD_REDUCTION):
            m = mesher.get(1, normals=False, reduction_factor=red, max_error=1.5 * 2**L)
            lods.append((m.vertices.astype(np.float64) + shift, m.faces.astype(np.uint32)))
        manifest, data, nfr, ntri = build_multilod(mm, lods, MESH_Q, MESH_CHUNK)
        built[segid] = (manifest, data)
        frags.append(nfr)
        tris.append(ntri)
    spec = ShardingSpecification.from_dict(MESH_SHARDING)
    files = synthesize_shard_files(spec, {s: d + m for s, (m, d) in built.items()},
                                   data_offset={s: len(m) for s, (m, d) in built.items()})
    for name, blob_ in files.items():
        (LAYER / "mesh" / name).write_bytes(blob_)
    t_mesh = time.time() - t0

    # Skeletons.
    vol = CloudVolume(url, progress=False)
    vol.skeleton.meta.info["transform"] = SKEL_TRANSFORM
    vol.skeleton.meta.info["vertex_attributes"] = [dict(a) for a in SKEL_ATTRS]
    vol.skeleton.meta.info["sharding"] = SKEL_SHARDING
    vol.skeleton.meta.commit_info()
    vol = CloudVolume(url, progress=False)
    skel_ids = segment_ids(rng, N_SKELETONS)
    sspec = ShardingSpecification.from_dict(SKEL_SHARDING)
    by_shard, nverts = {}, []
    for segid in skel_ids:
        n = int(rng.integers(200, 601))
        nverts.append(n)
        by_shard.setdefault(sspec.compute_shard_location(segid).shard_number, []).append(
            random_skeleton(rng, segid, n, Skeleton))
    for shard in sorted(by_shard):
        vol.skeleton.upload(by_shard[shard])  # cloud-volume's sharded writer: one call per shard

    np.array(mesh_ids, dtype="<u8").tofile(LAYER / "mesh_ids.u64")
    np.array(skel_ids, dtype="<u8").tofile(LAYER / "skeleton_ids.u64")

    def stored(d):
        fs = [p for p in (LAYER / d).iterdir() if p.suffix == ".shard"]
        return {"files": len(fs), "bytes": sum(p.stat().st_size for p in fs)}

    lod0 = [f[0] for f in frags]
    facts = {
        "mesh_triangles_lod": [int(sum(t[L] for t in tris)) for L in range(len(LOD_REDUCTION))],
        "mesh_triangles_lod0_min_median_max": [min(t[0] for t in tris), statistics.median(t[0] for t in tris),
                                              max(t[0] for t in tris)],
        "mesh_fragments_lod": [int(sum(f[L] for f in frags)) for L in range(len(LOD_REDUCTION))],
        "mesh_fragments_lod0_min_median_max": [min(lod0), statistics.median(lod0), max(lod0)],
        "mesh_lod0_bytes": int(sum(sum(len(d) for d in _lod_slices(built[s], 0)) for s in mesh_ids)),
        "mesh_stored": stored("mesh"),
        "skeleton_vertices_total": int(sum(nverts)),
        "skeleton_vertices_min_median_max": [min(nverts), statistics.median(nverts), max(nverts)],
        "skeleton_stored": stored("skeletons"),
        "write_s": {"meshes": round(t_mesh, 1), "total": round(time.time() - t0, 1)},
    }
    (LAYER / "layer.json").write_text(json.dumps(facts, indent=1))
    stamp_file.write_text(stamp)
    log(f"layer: wrote {LAYER} in {time.time() - t0:.0f} s: {facts}")
    return facts


def _manifest_sizes(manifest):
    """Fragment sizes per lod of a multi-resolution manifest."""
    import struct

    import numpy as np

    nl = struct.unpack_from("<I", manifest, 24)[0]
    counts = np.frombuffer(manifest, "<u4", nl, 28 + 16 * nl)
    off, sizes = 28 + 20 * nl, []
    for c in counts:
        off += 12 * int(c)
        sizes.append(np.frombuffer(manifest, "<u4", int(c), off).astype(np.int64))
        off += 4 * int(c)
    return sizes


def _lod_slices(built, lod):
    """The fragments (bytes) of one lod of a built mesh (manifest, data)."""
    manifest, data = built
    sizes = _manifest_sizes(manifest)
    start = int(sum(int(s.sum()) for s in sizes[:lod]))
    out = []
    for s in sizes[lod]:
        out.append(data[start:start + int(s)])
        start += int(s)
    return out


# ----------------------------------------------------------------------------------------------
# Reader subprocesses: python bench/run_objects.py --reader cloud-volume|dracopy --mode M ...


def _sum64(arr):
    import numpy as np

    return int(checksum_bytes(np.ascontiguousarray(arr).reshape(-1)), 16)


def reader_main(args):
    import numpy as np

    ids = [int(i) for i in np.fromfile(args.ids, dtype="<u8")]
    sync = os.environ.get("OBJECTS_BENCH_SYNC", "0") not in ("", "0")

    def sync_point(what):
        if sync:
            print(what, flush=True)
            sys.stdin.readline()

    if args.reader == "dracopy":
        return dracopy_main(args, ids)
    if args.reader != "cloud-volume":
        raise SystemExit(f"unknown reader {args.reader}")
    from cloudvolume import CloudVolume

    t = time.perf_counter()
    vol = CloudVolume(args.target, progress=False)
    open_s = time.perf_counter() - t
    hwm_before = hwm_kb()
    sync_point("open")

    if args.mode == "mesh":
        def read():
            got = vol.mesh.get(ids, lod=0)
            return [got[i] for i in ids]
    else:
        def read():
            return vol.skeleton.get(ids)

    runs, cpus, first = [], [], None
    for k in range(args.repeats):
        objs = None
        t, c = time.perf_counter(), time.process_time()
        objs = read()
        runs.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        M = (1 << 64) - 1
        tally = {"vertices": 0, "n_vertices": 0, "n_other": 0, "vertex_sum": 0.0, "bytes": 0, "parts": {}}
        parts = tally["parts"]
        for o in objs:
            v = np.asarray(o.vertices, dtype="<f4")
            tally["n_vertices"] += len(v)
            tally["vertex_sum"] += float(v.astype(np.float64).sum())
            arrays = [("vertices", v)]
            if args.mode == "mesh":
                arrays.append(("faces", np.asarray(o.faces, dtype="<u4")))
            else:
                arrays.append(("edges", np.asarray(o.edges, dtype="<u4")))
                for a in SKEL_ATTRS:
                    arrays.append((a["id"], np.asarray(getattr(o, a["id"]), dtype=a["data_type"])))
            tally["n_other"] += len(arrays[1][1])
            for name, arr in arrays:
                parts[name] = (parts.get(name, 0) + _sum64(arr)) & M
                tally["bytes"] += arr.nbytes
        if first is None:
            first = tally
        elif parts != first["parts"]:
            raise SystemExit(f"run {k + 1} returned other objects than run 1")
        sync_point(f"run {k + 1}")
    hwm = hwm_kb()
    total = sum(first["parts"].values()) & ((1 << 64) - 1)
    out = {"kind": args.mode, "n_ids": len(ids), "open_s": open_s, "runs_s": runs, "cpu_s": cpus,
           "bytes": first["bytes"], "n_vertices": first["n_vertices"],
           ("n_faces" if args.mode == "mesh" else "n_edges"): first["n_other"], "vertex_sum": first["vertex_sum"],
           "checksum": "0x%016x" % total, "parts": {k: "0x%016x" % v for k, v in first["parts"].items()},
           "hwm_before_kb": hwm_before, "hwm_kb": hwm}
    print(json.dumps(out), flush=True)


def dracopy_main(args, ids):
    """DracoPy (Google's C++ Draco) decoding every lod-0 fragment of the meshes, one thread,
    bytes read from the shard files beforehand: the decode cost alone."""
    import DracoPy
    import numpy as np
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, ShardReader  # noqa: F401
    from cloudvolume import CloudVolume

    vol = CloudVolume(f"file://{LAYER}", progress=False)
    frags = []
    for segid in ids:
        man = vol.mesh.get_manifest(segid)
        sizes = [np.asarray(s, dtype=np.int64) for s in man.fragment_offsets]
        total = int(sum(int(s.sum()) for s in sizes))
        path = LAYER / "mesh" / Path(man.path).name
        with open(path, "rb") as f:
            f.seek(int(man.shard_offset) - total)
            data = f.read(int(sizes[0].sum()))
        at = 0
        for s in sizes[0]:
            if s:
                frags.append(data[at:at + int(s)])
            at += int(s)
    runs, cpus, nv = [], [], 0
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        nv = 0
        for b in frags:
            nv += len(DracoPy.decode(b).points)
        runs.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    print(json.dumps({"runs_s": runs, "cpu_s": cpus, "n_fragments": len(frags), "n_points": nv,
                      "bytes": sum(len(b) for b in frags), "hwm_kb": hwm_kb(), "checksum": "-"}), flush=True)


def reader_cmd(reader, mode, target, repeats):
    ids = str(LAYER / MODES[mode][1])
    if reader == FILE:
        reader, target = "ours", f"file://{LAYER}"
    if reader == "ours":
        return [str(BUILD / "objects_bench"), mode, target, ids, str(repeats)]
    return [sys.executable, str(Path(__file__).resolve()), "--reader", reader, "--mode", mode, "--target", target,
            "--ids", ids, "--repeats", str(repeats)]


def count_requests(reader, mode, target, proxy, runs=3):
    """One process through the counting proxy: requests after open, in the first (cold) run and
    in each later (warm) run."""
    env = dict(os.environ, OBJECTS_BENCH_SYNC="1")
    proxy.reset()
    p = subprocess.Popen(reader_cmd(reader, mode, target, runs), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    phases = []
    try:
        for what in ["open"] + [f"run {k + 1}" for k in range(runs)]:
            line = p.stdout.readline().strip()
            if line != what:
                p.kill()
                return {"error": [line or p.stderr.read().strip()[-300:]]}
            s = proxy.stats()
            proxy.reset()
            phases.append({"phase": what, "requests": s["requests"], "connections": s["connections"],
                           "bytes_down": s["bytes_down"], "peak_in_flight": s["peak_in_flight"]})
            p.stdin.write("go\n")
            p.stdin.flush()
        out, err = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
    if p.returncode != 0:
        return {"error": [err.strip()[-300:]]}
    res = json.loads(out.strip().splitlines()[-1])
    return {"phases": phases, "runs_s": res["runs_s"], "checksum": res["checksum"]}


def perf_breakdown(mode, repeats):
    """Where ours' CPU goes: `perf record` (self time by symbol, sampled) of objects_bench reading
    every object REPEATS times from file://, grouped. None without a usable perf."""
    perf = shutil.which("perf")
    if not perf:
        return None
    data = BUILD / f"perf-{mode}.data"
    cmd = [perf, "record", "-q", "-F", "2999", "-o", str(data), "--", *reader_cmd("ours", mode, f"file://{LAYER}",
                                                                             repeats)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not data.exists():
        return {"error": [(r.stderr or r.stdout).strip()[-200:]]}
    rep = subprocess.run([perf, "report", "-i", str(data), "--no-children", "--sort", "dso,symbol", "-g", "none",
                          "--stdio"], capture_output=True, text=True).stdout
    data.unlink()
    groups = {}
    for line in rep.splitlines():
        m = re.match(r"\s+([0-9.]+)%\s+(\S+)\s+\[(.)\]\s+(.+?)\s*$", line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(4)
        if m.group(3) == "k" or "kernel" in dso:
            g = "kernel (page faults of fresh allocations, mostly)"
        elif dso.startswith("libc.so"):
            g = ("libc memmove/memset/memcpy" if re.search(r"mem(move|set|cpy)", sym) else
                 "libc malloc/free" if re.search(r"malloc|free|_int_|chunk|realloc|calloc", sym) else "libc, other")
        elif dso == "libcloudvolume.so":
            g = ("draco-core: rANS decoder set-up (create, prepare_run, fill_slots)"
                 if "rans_symbol_decoder" in sym or "fill_slots" in sym else
                 "draco-core: the rest of Draco decoding" if "draco_core" in sym else
                 "gzip (libdeflate inflate, crc32)" if re.search(r"deflate|crc32|build_decode_table", sym) else
                 "cloudvolume:: functions" if "cloudvolume::" in sym else
                 "generic Rust code (iterator closures, Vec growth, array maps; draco-core's or this library's)"
                 if re.match(r"<?(core|alloc)::", sym) else
                 "other code in the library (rayon, HTTP, ...)")
        elif dso == "objects_bench":
            g = "objects_bench read-out (not timed)"
        else:
            g = f"other ({dso})"
        groups[g] = groups.get(g, 0.0) + pct
    return {"groups": sorted(groups.items(), key=lambda kv: -kv[1]), "repeats": repeats}


# ----------------------------------------------------------------------------------------------
# Report


def build_report(results, counts, extra, facts, args, machine, vers, all_procs, notes):
    L = [SECTION, ""]
    L.append("100 sharded multi-resolution Draco meshes (every fragment of lod 0) and 1,000 sharded skeletons "
             "fetched and decoded from loopback HTTP by this library (through its C ABI, `bench/objects_bench.c`) "
             "and by cloud-volume, in one run of "
             f"`target/venv/bin/python bench/run_objects.py{' --quick' if args.quick else ''}`.")
    L.append("")
    L.extend(machine_lines(machine, vers))
    L.append("")
    tl, fl = facts["mesh_triangles_lod"], facts["mesh_fragments_lod"]
    tmin, tmed, tmax = facts["mesh_triangles_lod0_min_median_max"]
    fmin, fmed, fmax = facts["mesh_fragments_lod0_min_median_max"]
    vmin, vmed, vmax = facts["skeleton_vertices_min_median_max"]
    L.append("Method:")
    L.append("")
    L.append(f"- Layer `target/bench-layers/objects/` (written once, kept while its stamp matches): a uint64 "
             f"segmentation info, resolution {RESOLUTION}. **Meshes** (`mesh/`): neuroglancer_multilod_draco, "
             f"vertex_quantization_bits {MESH_Q}, 3 lods, lod-0 octree nodes of {'×'.join(str(int(c)) for c in MESH_CHUNK)} "
             f"voxels; {N_MESHES} segments (ids ~8.6e17), each an irregular blob (3–11 ellipsoids along a random walk) "
             f"meshed by zmesh: {tmin:,}–{tmax:,} triangles at lod 0 (median {tmed:,.0f}; {tl[0]:,} in all, "
             f"{tl[1]:,} at lod 1, {tl[2]:,} at lod 2), {fmin}–{fmax} fragments at lod 0 (median {fmed:.0f}; "
             f"{fl[0]:,} / {fl[1]:,} / {fl[2]:,} per lod in all), DracoPy edgebreaker fragments "
             f"({facts['mesh_lod0_bytes'] / MIB:.1f} MiB at lod 0); sharded {_sh(MESH_SHARDING)}, shard files from "
             f"cloud-volume's `synthesize_shard_files` ({facts['mesh_stored']['files']} files, "
             f"{facts['mesh_stored']['bytes'] / MIB:.1f} MiB). **Skeletons** (`skeletons/`): {N_SKELETONS:,} random "
             f"trees of {vmin}–{vmax} vertices (median {vmed:.0f}; {facts['skeleton_vertices_total']:,} in all) with "
             f"`radius` float32 and `vertex_types` uint8, transform to nm; sharded {_sh(SKEL_SHARDING)} "
             f"(MICrONS-like), written by cloud-volume's sharded `skeleton.upload` ({facts['skeleton_stored']['files']} "
             f"files, {facts['skeleton_stored']['bytes'] / MIB:.1f} MiB).")
    L.append("- Served by nginx (1 worker) on loopback. **ours**: `objects_bench` (C, linked to `libcloudvolume.so`), "
             "`cv_open(url, NULL)`, then `cv_mesh_get_each(ids, lod 0, weld -1, NULL, 0)` (one mesh per id, "
             "cloud-volume's default of no welding for multi-resolution meshes) or `cv_skeleton_get_each(ids)`; "
             "only that call is timed, the objects are read out and freed after it. **cloud-volume**: "
             "`CloudVolume(url, progress=False)`, `vol.mesh.get(ids, lod=0)` (a dict of one concatenated Mesh per "
             "id) or `vol.skeleton.get(ids)` (a list), its defaults otherwise.")
    L.append(f"- Each reader in its own processes: {args.rounds} process(es) per reader and task, readers "
             "interleaved (order rotated per round; the breakdown's readers, ours from file:// and DracoPy alone, "
             f"take their turns in the same rounds), each doing {args.repeats + 1} calls of which the first is a "
             "warm-up (it fetches the shard and minishard indices; cloud-volume keeps them between calls too); the "
             f"table has the **median** over all timed calls. Before each process the driver waits until the CPUs "
             f"are ≥ {args.min_idle:.0%} idle (at most {args.max_wait:.0f} s) and re-runs a process during which other "
             f"work used more than {args.max_others} cores; " + idle_summary(all_procs) + ". Peak RSS is VmHWM of the "
             "process (the interpreter included for cloud-volume).")
    L.append("- Correctness: every process sums, per object, the uint64 words of its vertices (float32), faces or "
             "edges (uint32) and skeleton attributes; the sums and the vertex and face/edge counts must be equal "
             "between the readers and between the calls of one process.")
    L.append("- Requests: one more process per reader and task through `examples/latency_proxy` (no delay added), "
             "its counter read after `cv_open`/`CloudVolume()`, after the first call (cold: indices, manifests, "
             "data) and after each of two further calls (warm). A mesh's lod-0 fragments are one contiguous range "
             "of its shard file, so the floor for a warm mesh read is one request per mesh.")
    L.append("")
    L.append("| task | ours median s | cloud-volume median s | ratio (cv ÷ ours) | peak RSS MiB ours / cv "
             "| requests ours cold / warm (per object) | requests cv cold / warm (per object) | outputs agree |")
    L.append("|---|--:|--:|--:|--:|---|---|---|")
    for mode, (n, _) in MODES.items():
        row = results.get(mode, {})
        o, c = row.get("ours"), row.get("cloud-volume")
        ok = lambda r: r is not None and "error" not in r  # noqa: E731
        rr = ratio(c["median_s"], o["median_s"]) if ok(o) and ok(c) else None

        def req(reader):
            r = counts.get((reader, mode))
            if not r or "error" in r:
                return "–"
            cold = r["phases"][1]["requests"]
            warm = statistics.median(p["requests"] for p in r["phases"][2:])
            return f"{cold:,} ({cold / n:.2f}) / {warm:,.0f} ({warm / n:.2f})"

        agree = "–"
        if ok(o) and ok(c):
            same = (o["checksums"] == c["checksums"] and o["n_vertices"] == c["n_vertices"]
                    and o["n_other"] == c["n_other"])
            agree = "yes" if same else "**NO**"
        label = f"{N_MESHES} meshes, lod 0" if mode == "mesh" else f"{N_SKELETONS:,} skeletons"
        L.append(f"| {label} | {o['median_s']:.3f} | {c['median_s']:.3f} | {fmt(rr, 2)}× "
                 f"| {o['rss_mib']:.0f} / {c['rss_mib']:.0f} | {req('ours')} | {req('cloud-volume')} | {agree} |"
                 if ok(o) and ok(c) else
                 f"| {label} | {_cell(o)} | {_cell(c)} | – | – | {req('ours')} | {req('cloud-volume')} | – |")
    L.append("")
    # Output sizes.
    for mode in MODES:
        o = results.get(mode, {}).get("ours")
        if o and "error" not in o:
            other = "faces" if mode == "mesh" else "edges"
            L.append(f"- {mode} output per call: {o['n_vertices']:,} vertices, {o['n_other']:,} {other}, "
                     f"{o['bytes'] / MIB:.1f} MiB decoded; checksum {o['checksum']}.")
    L.append("")
    # Breakdown.
    L.append("Breakdown (medians; CPU-s is the process's CPU time per call, all threads; busy = CPU-s ÷ s):")
    L.append("")
    L.append("| task | reader | transport | median s | CPU-s per call | busy (cores) | nginx CPU-s per call |")
    L.append("|---|---|---|--:|--:|--:|--:|")
    for mode in MODES:
        for reader in READERS:
            r = results.get(mode, {}).get(reader)
            if r and "error" not in r:
                L.append(f"| {mode} | {reader} | http | {r['median_s']:.3f} | {r['median_cpu_s']:.3f} "
                         f"| {fmt(r['busy'], 2)} | {r['nginx_cpu_per_call']:.3f} |")
        r = results.get(mode, {}).get(FILE)
        if r and "error" not in r:
            L.append(f"| {mode} | ours | file:// | {r['median_s']:.3f} | {r['median_cpu_s']:.3f} | {fmt(r['busy'], 2)} "
                     "| – |")
    d = results.get("mesh", {}).get("dracopy")
    if d and "error" not in d:
        L.append(f"| mesh | DracoPy decode alone, 1 thread | (bytes in memory) | {d['median_s']:.3f} "
                 f"| {d['median_cpu_s']:.3f} | {fmt(d['busy'], 2)} | – |")
    L.append("")
    if d and "error" not in d:
        L.append(f"- DracoPy row: `DracoPy.decode` of the same {d['n_fragments']:,} lod-0 fragments "
                 f"({d['bytes'] / MIB:.1f} MiB, {d['n_points']:,} points) one after the other in one thread: what "
                 "Google's C++ decoder needs for them alone, without any fetching or transform.")
    L.append("")
    for mode in MODES:
        p = extra.get(("perf", mode))
        if p and "groups" in p:
            L.append(f"- `perf record` of ours, {mode}, file://, {p['repeats']} calls in one process (self time, "
                     "sampled, whole process): " + "; ".join(f"{name} {pct:.0f}%" for name, pct in p["groups"]
                                                            if pct >= 0.5) + ".")
    L.append("")
    if counts:
        L.append("Requests per phase (proxy counts; `open` is `cv_open` / `CloudVolume()`):")
        L.append("")
        L.append("| task | reader | open | call 1 (cold) | call 2 (warm) | call 3 (warm) | bytes down, cold / warm MiB "
                 "| peak in flight |")
        L.append("|---|---|--:|--:|--:|--:|---|--:|")
        for (reader, mode), r in counts.items():
            if "error" in r:
                L.append(f"| {mode} | {reader} | fail: {' '.join(r['error'])[:100]} | | | | | |")
                continue
            ph = r["phases"]
            L.append(f"| {mode} | {reader} | {ph[0]['requests']} | {ph[1]['requests']:,} | {ph[2]['requests']:,} "
                     f"| {ph[3]['requests']:,} | {ph[1]['bytes_down'] / MIB:.1f} / {ph[2]['bytes_down'] / MIB:.1f} "
                     f"| {max(p['peak_in_flight'] for p in ph)} |")
        L.append("")
    L.append("Targets:")
    L.append("")
    L.append("| target | measured | |")
    L.append("|---|---|---|")
    for mode in MODES:
        o, c = results.get(mode, {}).get("ours"), results.get(mode, {}).get("cloud-volume")
        if o and c and "error" not in o and "error" not in c:
            rr = c["median_s"] / o["median_s"]
            st = "met" if rr >= TARGET_RATIO else (f"**missed** (needs ≤ {c['median_s'] / TARGET_RATIO:.3f} s; "
                                                    f"{100 * (1 - rr / TARGET_RATIO):.0f}% short)")
            L.append(f"| {mode}: ≥ {TARGET_RATIO:.0f}× cloud-volume | {rr:.2f}× ({o['median_s']:.3f} vs "
                     f"{c['median_s']:.3f} s) | {st} |")
    r = counts.get(("ours", "mesh"))
    if r and "error" not in r:
        warm = max(p["requests"] for p in r["phases"][2:])
        L.append(f"| mesh, warm: ≤ 1 request per mesh (its lod-0 fragment range) | {warm / N_MESHES:.2f} "
                 f"({warm} requests for {N_MESHES} meshes) | {'met' if warm <= N_MESHES else '**missed**'} |")
    L.append("")
    # Bounds: what the CPU time measured allows on this machine's cores.
    cores = machine["cores"] or 1
    for mode in MODES:
        o, c = results.get(mode, {}).get("ours"), results.get(mode, {}).get("cloud-volume")
        f = results.get(mode, {}).get(FILE)
        if not (o and c and "error" not in o and "error" not in c):
            continue
        floor = o["median_cpu_s"] / cores
        s = (f"- {mode}: ours spends {o['median_cpu_s']:.3f} CPU-s per call over http "
             f"({f['median_cpu_s']:.3f} from file://) " if f and "error" not in f else
             f"- {mode}: ours spends {o['median_cpu_s']:.3f} CPU-s per call ")
        s += (f"and keeps {o['busy']:.2f} of {cores} cores busy: spread perfectly over the cores that CPU time alone "
              f"takes {floor:.3f} s, i.e. at most {c['median_s'] / floor:.1f}× cloud-volume without spending less CPU")
        if mode == "mesh" and d and "error" not in d:
            dd = d["median_cpu_s"] / cores
            s += (f"; Google's Draco decoder alone needs {dd * cores:.3f} CPU-s for the same fragments "
                  f"({dd:.3f} s on {cores} cores, {c['median_s'] / dd:.1f}× cloud-volume's time)")
        L.append(s + ".")
    L.append("")
    for n in notes:
        L.append(f"- {n}")
    if notes:
        L.append("")
    return "\n".join(L)


def _sh(s):
    return (f"({s['hash']}, preshift {s['preshift_bits']}, {2 ** s['shard_bits']} shards × "
            f"{2 ** s['minishard_bits']} minishards, {s['minishard_index_encoding']} minishard indices, "
            f"{s['data_encoding']} data)")


def _cell(r):
    if r is None:
        return "n/a"
    return "fail" if "error" in r else f"{r['median_s']:.3f}"


def write_section(path, text):
    """Put `text` between the markers at the end of `path` (replacing an older copy)."""
    old = path.read_text() if path.exists() else ""
    block = f"{MARK_START}\n{text.rstrip()}\n{MARK_END}"
    if MARK_START in old and MARK_END in old:
        new = re.sub(re.escape(MARK_START) + r".*?" + re.escape(MARK_END), lambda _: block, old, flags=re.S)
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)
    log(f"wrote {path}")


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    base_args(ap)
    ap.add_argument("--reader", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--target", help=argparse.SUPPRESS)
    ap.add_argument("--ids", help=argparse.SUPPRESS)
    ap.add_argument("--budget", type=float, default=480.0,
                    help="seconds after which the driver stops waiting for an idle machine (default 480)")
    ap.add_argument("--no-perf", action="store_true", help="skip the perf breakdown of ours")
    args = ap.parse_args()
    if args.reader:
        args.repeats = args.repeats or 1
        return reader_main(args)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.repeats = args.repeats or (2 if args.quick else 4)
    args.max_wait = args.max_wait if args.max_wait is not None else (5.0 if args.quick else 60.0)
    t_start = time.time()
    results, counts, extra, all_procs, notes = {}, {}, {}, [], []
    cut = []

    def budget():
        """Past --budget: no more waiting for an idle machine, no more re-runs."""
        if not cut and time.time() - t_start > args.budget:
            cut.append(True)
            args.max_wait, args.attempts = 2.0, 1
            notes.append(f"the run passed its {args.budget:.0f} s budget: the later processes did not wait for an idle "
                         "machine and were not re-run when disturbed")

    if not args.skip_build:
        build(BUILD, ["objects_bench"])
    facts = make_layer()
    nginx = Nginx(LAYER)
    try:
        proxy = Proxy(BUILD / "latency_proxy", nginx.port, 0)
    except BaseException:
        nginx.stop()
        raise
    url = f"http://127.0.0.1:{nginx.port}"
    try:
        for mode in MODES:
            readers = ROUND_READERS[mode]
            procs = {r: [] for r in readers}
            for rnd in range(args.rounds):
                order = readers[rnd % len(readers):] + readers[:rnd % len(readers)]
                for reader in order:
                    budget()
                    cmd = reader_cmd(reader, mode, url, args.repeats + 1)
                    servers = () if reader in (FILE, "dracopy") else (nginx.proc.pid,)
                    res = measured(lambda: run_json(cmd, timeout=900), args, servers=servers)
                    all_procs.append(res)
                    procs[reader].append(res)
                    if "error" in res:
                        log(f"{mode:8s} {reader:13s} round {rnd + 1}: FAILED {res['error']}")
                        continue
                    log(f"{mode:8s} {reader:13s} round {rnd + 1}: runs {', '.join(f'{x:.3f}' for x in res['runs_s'])} s"
                        f"  cpu {statistics.median(res['cpu_s'][1:]):.3f} s  hwm {res['hwm_kb'] / 1024:.0f} MiB"
                        f"  idle {res['cpu_idle_before']:.0%} others {res['other_cores']:.2f}")
            results[mode] = {}
            for r, p in procs.items():
                m = merge(p)
                ok = [x for x in p if "error" not in x]
                if ok and r != "dracopy":
                    m["n_vertices"] = ok[0]["n_vertices"]
                    m["n_other"] = ok[0].get("n_faces", ok[0].get("n_edges"))
                    m["parts"] = ok[0]["parts"]
                    m["vertex_sums"] = sorted({x["vertex_sum"] for x in ok})
                if ok and r == "dracopy":
                    m.update({k: ok[0][k] for k in ("n_fragments", "n_points")})
                if ok:
                    calls = sum(len(x["runs_s"]) for x in ok)
                    m["nginx_cpu_per_call"] = sum(x.get("servers_cpu_s", 0.0) for x in ok) / calls
                results[mode][r] = m
            o, c = results[mode].get("ours"), results[mode].get("cloud-volume")
            if o and c and "error" not in o and "error" not in c:
                if o["checksums"] != c["checksums"] or o["n_vertices"] != c["n_vertices"] or o["n_other"] != c["n_other"]:
                    notes.append(f"{mode}: outputs differ: ours {o['checksums']} {o['n_vertices']} vertices "
                                 f"{o['parts']}, cloud-volume {c['checksums']} {c['n_vertices']} vertices {c['parts']}")
        if not args.no_perf:
            for mode in MODES:
                wait_quiet(args.min_idle, min(args.max_wait, 30))
                extra[("perf", mode)] = perf_breakdown(mode, 10 if mode == "mesh" else 20)
                log(f"perf {mode}: {extra[('perf', mode)]}")
        # Request counts.
        for mode in MODES:
            for reader in READERS:
                wait_quiet(args.min_idle, min(args.max_wait, 30))
                counts[(reader, mode)] = count_requests(reader, mode, f"http://127.0.0.1:{proxy.port}", proxy)
                log(f"requests {reader} {mode}: {counts[(reader, mode)]}")
    finally:
        proxy.stop()
        nginx.stop()

    report = build_report(results, counts, extra, facts, args, machine_info(),
                          versions(BUILD, cc=True, packages=("DracoPy", "zmesh", "osteoid")), all_procs, notes)
    layer_note = ("the layer reused" if facts.get("reused") else
                  f"writing the layer included ({facts['write_s']['total']:.0f} s)")
    report += f"\n(run took {(time.time() - t_start) / 60:.1f} min, waits for an idle machine included, {layer_note})\n"
    out = Path(args.out) if args.out else BENCH / ("objects.quick.md" if args.quick else "objects.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)
    log(f"wrote {out}")
    if not args.quick and not args.out:
        write_section(ROOT / "BENCHMARKS.md", report)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "extra": {str(k): v for k, v in extra.items()},
                                               "counts": {f"{k[0]}/{k[1]}": v for k, v in counts.items()}},
                                              indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
