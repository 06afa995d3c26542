#!/usr/bin/env python3
"""The graphene fixture, and what unmodified cloud-volume reads from it through the loopback
PyChunkedGraph double (tests/servers/chunkedgraph.py), plus cloud-volume's label operations on
the watershed layers themselves.

Usage: target/venv/bin/python tests/reference/graphene_check.py OUT

OUT is deleted and rebuilt; everything is deterministic (fixed seeds, a fixed token). The script
starts the double itself (`chunkedgraph.py --fixture OUT --token TOKEN --forbidden-token FTOKEN
--port 0 --log OUT/double_requests.jsonl`), points CLOUD_VOLUME_DIR at OUT so that cloud-volume
finds OUT/secrets/cave-secret.json, and reads
`graphene://http://127.0.0.1:<port>/segmentation/table/<t>` (plain http works: cloud-volume
only rewrites data_dir for use_https, and the info/roots URLs keep the scheme given).
It exits non-zero on any failure and prints one summary line.

Files under OUT
  ws/            watershed layer, uint64, compressed_segmentation (8x8x8 blocks), gzip files,
                 unsharded; mip 0 200x160x40 at 64,32,8, resolution 8,8,40, chunks 64x64x16;
                 mip 1 100x80x40 at 32,16,8 (every other voxel in x and y), chunks 64x64x16.
                 Supervoxels are graphene layer-1 labels (layer | x | y | z | segid, chunk
                 coordinates of the 64x64x16 graph chunk counted from voxel_offset); blob-like
                 regions cut at graph-chunk borders, some background (0) regions and one
                 all-zero storage chunk (the corner chunk x>=256, y>=160, z>=40).
  ws_sharded/    the same voxels: mip 0 neuroglancer_uint64_sharded_v1 (identity hash,
                 preshift 3, minishard 1, shard 2 bits: 4 shards of 256x128x32 voxels; raw;
                 gzip data and minishard indices), mip 1 unsharded raw; written by cloud-volume
                 shard by shard.
  ws_empty_mip/  a copy of ws whose info has a third scale (32_32_40) with no chunk files.
  (ws_missing does not exist: table `missing` points at it.)
  graph.json     the double's input: {"format": 2, "tables": {"test"|"sharded"|"missing":
                 {"info", "data_dir", "dataset"}}, "n_layers", "n_bits_for_layer_id",
                 "spatial_bit_masks", "fan_out", "created_timestamp", "edit_timestamp",
                 "hierarchy": {"before"|"after": {child: parent}}, "edit": {what changed},
                 "supervoxels": {sv: [x0,y0,z0,x1,y1,z1] mip-0 box, half-open}}; uint64 ids as
                 decimal strings. Layer-3 chunk = layer-1 chunk >> 1 (fan_out 2), root chunk 0.
                 Supervoxels of one chunk and one of 12 "objects" form L2 nodes of 2-5; L2 nodes
                 of one layer-3 chunk and object form L3 nodes of up to 4; an object is a root.
                 "after" = "before" with three roots merged into a new one and one L2 node split
                 (new L2, L3 and root ids above it), at edit_timestamp 1700000000; "before"
                 exists from created_timestamp 1690000000.
  secrets/cave-secret.json   {"token": TOKEN}
  expected/*.bin cloud-volume's outputs (identical outputs share one file)
  double_requests.jsonl      every request the double saw (its --log)
  manifest.json  described below

manifest.json
  format 2; generated_by {script, cloud-volume, numpy}; token, forbidden_token (a valid user
  without view permission: the double answers 403), bad_token (one the double does not know:
  401); edit_timestamp, created_timestamp,
  n_layers, supervoxels, roots_before, roots_after (counts), sharded_files (ws_sharded's mip-0
  file names); url_template "graphene://http://127.0.0.1:{port}/segmentation/table/{table}";
  double_command (argv, OUT left as a placeholder); layout; notes [cloud-volume behaviour met on
  the way]; counts {kind: n}; double_checks [names of the assertions this script made on the
  double's own answers: routes and auth paths cloud-volume does not use, faults, gzip; the
  script fails if one does not hold];
  cases: a list, each with
    id        unique name, e.g. "cutout/test/mip0_partial/stop_layer_2"
    kind      cutout | unique | label_mask | segids_mask | renumber | download_point | has_data |
              download_files | get_roots | get_leaves | chunk_mappings | error
    layer     a Precomputed layer's path relative to OUT ("ws", "ws_sharded", "ws_empty_mip"),
              or "graphene:<table>"
    mip, lo, hi   the box: absolute voxel coordinates at that mip, half-open (null when the
              call takes none)
    options   the keyword arguments given to cloud-volume, constructor and call merged
              (agglomerate, timestamp, stop_layer, label, segids, renumber, bounded,
              fill_missing, secrets ("<TOKEN>"/"<FORBIDDEN>" placeholders or the literal bad
              token), size, coord_resolution, point, binary, ...); uint64 ids as decimal strings
    expected  file relative to OUT: the raw little-endian elements, Fortran order x, y, z (one
              channel) for images, the elements in cloud-volume's order for lists; or null
    dtype     numpy name of the expected file's elements ("uint64", "bool", "uint16", ...)
    shape     of the expected array
    requests  graphene cases: what the double recorded during the call only (the
              CloudVolume was opened, info fetched, before): [{method, path, query, route,
              table, content_encoding, accept_encoding, content_length, auth, auth_source,
              n_ids, status, response_encoding, response_bytes, fault}]; [] when cloud-volume
              made none
    per kind, also:
      renumber        mapping: [[old, new], ...] (decimal strings), as cloud-volume returned it
      download_point  point, size, coord_resolution (as given) and read_lo/read_hi: the box
                      cloud-volume read (the returned cutout's bounds, at that mip)
      has_data        value (bool)
      download_files  files: [{name, bytes, sha256}] sorted by name
      get_roots       input (file of the uint64 ids given, in order), the roots in `expected`
      chunk_mappings  chunk_id, mapping [[l2, [sv, ...]], ...] sorted
      error           error {class, module, message} (127.0.0.1:<port> replaced by
                      127.0.0.1:PORT; an EmptyVolumeException's chunk name, which depends on
                      thread timing, by <chunk>), where: "open" (the constructor) or "call"
      fault cases     fault: the /__control command sent first; retried: the statuses seen
      any case        note: what it shows, when not obvious
  Compatibility views of some of the cases (the shape tests/graphene.rs reads):
    cutouts  the 30 basic root-id cutouts: {table, mip, lo, hi, agglomerate, timestamp,
             stop_layer, file, requests}
    unique   graphene unique cases: {table, mip, lo, hi, agglomerate, file}
    errors   {"wrong_token": "Class: message", "missing_data_dir": "Class: message"}
"""

import hashlib
import importlib.metadata as md
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

HERE = Path(__file__).resolve().parent
DOUBLE = HERE.parent / "servers" / "chunkedgraph.py"

# Graph parameters
N_LAYERS = 4
LAYER_BITS = 8
BITS = {"1": 10, "2": 10, "3": 9, "4": 8}
FAN_OUT = 2
GRAPH_CHUNK = (64, 64, 16)
# Watershed geometry (mip 0)
SIZE = (200, 160, 40)
OFFSET = (64, 32, 8)
RES = (8, 8, 40)
CHUNK = (64, 64, 16)
MIP1 = {"size": (100, 80, 40), "offset": (32, 16, 8), "res": (16, 16, 40)}
CREATED = 1_690_000_000
EDIT = 1_700_000_000
TOKEN = hashlib.sha256(b"graphene_check token").hexdigest()[:32]
FORBIDDEN = hashlib.sha256(b"graphene_check forbidden token").hexdigest()[:32]
BAD_TOKEN = "badc0ffee0ddf00d"
N_OBJECTS = 12
SEED = 20261204

OUT = None
NOTES = []


def seed_of(*parts):
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


# ----------------------------------------------------------------------------------------------
# Labels


def encode(layer, x, y, z, segid):
    """A graphene label, as cloud-volume's GrapheneMetadata.encode_label builds it."""
    b = BITS[str(layer)]
    lo = 64 - LAYER_BITS
    xo, yo, zo = lo - b, lo - 2 * b, lo - 3 * b
    assert max(x, y, z) < 2 ** b and segid < 2 ** zo
    return (layer << lo) | (x << xo) | (y << yo) | (z << zo) | segid


def layer_of(v):
    return int(v) >> (64 - LAYER_BITS)


def chunk_of(v):
    layer = layer_of(v)
    b = BITS[str(layer)]
    lo = 64 - LAYER_BITS
    m = (1 << b) - 1
    return ((int(v) >> (lo - b)) & m, (int(v) >> (lo - 2 * b)) & m, (int(v) >> (lo - 3 * b)) & m)


def segid_of(v):
    layer = layer_of(v)
    return int(v) & ((1 << (64 - LAYER_BITS - 3 * BITS[str(layer)])) - 1)


def supervoxels():
    """(volume uint64 F-order, svs, sv chunk coords, sv cell) -- blob-like cells split at graph
    chunk borders; cells picked as background are 0, and so is one whole storage chunk."""
    rng = np.random.default_rng(seed_of("supervoxels"))
    x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in SIZE), indexing="ij")
    ph = rng.uniform(0, 2 * np.pi, size=6)
    wx = x + 4 * np.sin(2 * np.pi * y / 37 + ph[0]) + 3 * np.sin(2 * np.pi * z / 23 + ph[1])
    wy = y + 4 * np.sin(2 * np.pi * x / 41 + ph[2]) + 2 * np.sin(2 * np.pi * z / 19 + ph[3])
    wz = z + 1.5 * np.sin(2 * np.pi * x / 29 + ph[4]) + 1.5 * np.sin(2 * np.pi * y / 31 + ph[5])
    cx = np.floor((wx + 10) / 18).astype(np.int64)
    cy = np.floor((wy + 10) / 16).astype(np.int64)
    cz = np.floor((wz + 4) / 8).astype(np.int64)
    cell = (cx * 64 + cy) * 64 + cz
    gx, gy, gz = (np.arange(n)[:, None, None] // c for n, c in zip(SIZE, GRAPH_CHUNK))
    gx, gy, gz = np.broadcast_to(gx, SIZE), np.broadcast_to(gy.reshape(1, -1, 1), SIZE), \
        np.broadcast_to(gz.reshape(1, 1, -1), SIZE)
    gchunk = (gx * 16 + gy) * 16 + gz
    key = cell * 4096 + gchunk
    uniq, inv = np.unique(key.reshape(-1), return_inverse=True)
    u_cell = uniq // 4096
    u_chunk = uniq % 4096
    ch = np.stack([u_chunk // 256, (u_chunk // 16) % 16, u_chunk % 16], axis=1)
    # Background cells: a hash of the cell.
    background = ((u_cell * 2654435761) % 97) < 8
    # segids numbered within each chunk, in key order, from 1.
    ids = np.zeros(len(uniq), dtype=np.uint64)
    counters = {}
    for i in range(len(uniq)):
        if background[i]:
            continue
        c = tuple(int(v) for v in ch[i])
        counters[c] = counters.get(c, 0) + 1
        ids[i] = encode(1, c[0], c[1], c[2], counters[c])
    vol = ids[inv.reshape(-1)].reshape(SIZE)
    # One all-zero storage chunk: the partial corner chunk.
    vol[192:, 128:, 32:] = 0
    vol = np.asfortranarray(vol)
    present = np.unique(vol)
    present = present[present != 0]
    keep = np.isin(ids, present)
    order = np.argsort(ids[keep])
    return vol, ids[keep][order], ch[keep][order], u_cell[keep][order]


def sv_boxes(vol):
    """{sv: [x0,y0,z0,x1,y1,z1]} absolute mip-0 voxels, half-open."""
    flat = vol.reshape(-1, order="F")
    nz = np.nonzero(flat)[0]
    labels = flat[nz]
    xs, ys, zs = np.unravel_index(nz, SIZE, order="F")
    uniq, inv = np.unique(labels, return_inverse=True)
    out = {}
    mins = [np.full(len(uniq), 1 << 30, dtype=np.int64) for _ in range(3)]
    maxs = [np.full(len(uniq), -1, dtype=np.int64) for _ in range(3)]
    for d, a in enumerate((xs, ys, zs)):
        np.minimum.at(mins[d], inv, a)
        np.maximum.at(maxs[d], inv, a)
    for i, v in enumerate(uniq.tolist()):
        out[int(v)] = [int(mins[d][i]) + OFFSET[d] for d in range(3)] + [int(maxs[d][i]) + 1 + OFFSET[d] for d in range(3)]
    return out


def hierarchy(svs, sv_chunks, sv_cells):
    """before and after {child: parent} maps, and a description of the edit."""
    rng = np.random.default_rng(seed_of("hierarchy"))
    obj_of_cell = {}
    cells = sorted(set(int(c) for c in sv_cells))
    perm = rng.permutation(len(cells))
    for i, c in enumerate(cells):
        obj_of_cell[c] = int(perm[i] % N_OBJECTS)
    before = {}
    # L2: supervoxels of one chunk and one object, in runs of 2 to 5.
    groups = {}
    for sv, c, cell in zip(svs.tolist(), map(tuple, sv_chunks.tolist()), sv_cells.tolist()):
        groups.setdefault((c, obj_of_cell[int(cell)]), []).append(int(sv))
    l2_count, l2_obj = {}, {}
    for (c, obj), members in sorted(groups.items()):
        size = int(rng.integers(2, 6))
        for k in range(0, len(members), size):
            l2_count[c] = l2_count.get(c, 0) + 1
            l2 = encode(2, c[0], c[1], c[2], l2_count[c])
            l2_obj[l2] = obj
            for sv in members[k:k + size]:
                before[sv] = l2
    # L3: L2 nodes of one layer-3 chunk (coordinates >> 1) and one object, in runs of at most 4.
    groups = {}
    for l2, obj in sorted(l2_obj.items()):
        c = tuple(v >> 1 for v in chunk_of(l2))
        groups.setdefault((c, obj), []).append(l2)
    l3_count, l3_obj = {}, {}
    for (c, obj), members in sorted(groups.items()):
        for k in range(0, len(members), 4):
            l3_count[c] = l3_count.get(c, 0) + 1
            l3 = encode(3, c[0], c[1], c[2], l3_count[c])
            l3_obj[l3] = obj
            for l2 in members[k:k + 4]:
                before[l2] = l3
    # Roots: one per object, root chunk (0,0,0).
    root_of_obj = {obj: encode(4, 0, 0, 0, obj + 1) for obj in sorted(set(l3_obj.values()))}
    for l3, obj in l3_obj.items():
        before[l3] = root_of_obj[obj]

    children = {}
    for c, p in before.items():
        children.setdefault(p, []).append(c)
    for v in children.values():
        v.sort()
    after = dict(before)
    roots = sorted(root_of_obj.values())
    next_seg = {}

    def fresh(layer, c):
        key = (layer, c)
        if key not in next_seg:
            used = [segid_of(n) for n in set(before) | set(before.values()) if layer_of(n) == layer and chunk_of(n) == c]
            next_seg[key] = max(used, default=0)
        next_seg[key] += 1
        return encode(layer, c[0], c[1], c[2], next_seg[key])

    # Merge: three roots into a new one.
    merged = [roots[2], roots[5], roots[9]]
    r_m = fresh(4, (0, 0, 0))
    for r in merged:
        for l3 in children[r]:
            after[l3] = r_m
    # Split: an L2 node of another object with >= 2 supervoxels whose L3 has >= 2 L2 nodes,
    # preferring one inside the partial test box.
    split_root = roots[0]
    candidates = []
    for l3 in children[split_root]:
        for l2 in children[l3]:
            if len(children[l2]) >= 2 and len(children[l3]) >= 2:
                c = chunk_of(l2)
                inside = 1 <= c[0] <= 2 and 1 <= c[1] <= 2 and 0 <= c[2] <= 1
                candidates.append((not inside, l2, l3))
    assert candidates, "no L2 node to split"
    _, L, P3 = sorted(candidates)[0]
    svs_L = children[L]
    c2, c3 = chunk_of(L), chunk_of(P3)
    L_a, L_b = fresh(2, c2), fresh(2, c2)
    P3_a, P3_b = fresh(3, c3), fresh(3, c3)
    D_a, D_b = fresh(4, (0, 0, 0)), fresh(4, (0, 0, 0))
    half = max(1, len(svs_L) // 2)
    for sv in svs_L[:half]:
        after[sv] = L_a
    for sv in svs_L[half:]:
        after[sv] = L_b
    del after[L]
    after[L_a], after[L_b] = P3_a, P3_b
    for l2 in children[P3]:
        if l2 != L:
            after[l2] = P3_a
    del after[P3]
    after[P3_a], after[P3_b] = D_a, D_b
    for l3 in children[split_root]:
        if l3 != P3:
            after[l3] = D_a
    # Invariant: a node in both graphs has the same children in both (nodes are immutable).
    kids_after = {}
    for c, p in after.items():
        kids_after.setdefault(p, []).append(c)
    nodes_b = set(before) | set(before.values())
    for p, ks in kids_after.items():
        if p in nodes_b:
            assert sorted(ks) == children[p], f"node {p} changed children"
    edit = {"merged_roots": [str(r) for r in merged], "merged_into": str(r_m),
            "split": {"l2": str(L), "l2_into": [str(L_a), str(L_b)],
                      "l3": str(P3), "l3_into": [str(P3_a), str(P3_b)],
                      "root": str(split_root), "root_into": [str(D_a), str(D_b)],
                      "supervoxels": [str(s) for s in svs_L]}}
    return before, after, edit


# ----------------------------------------------------------------------------------------------
# Layers (written by cloud-volume)


def scale(mip, encoding, sharding=None):
    if mip == 0:
        size, off, res = SIZE, OFFSET, RES
    else:
        size, off, res = MIP1["size"], MIP1["offset"], MIP1["res"]
    s = {"key": "_".join(str(r) for r in res), "size": list(size), "voxel_offset": list(off),
         "resolution": list(res), "chunk_sizes": [list(CHUNK)], "encoding": encoding}
    if encoding == "compressed_segmentation":
        s["compressed_segmentation_block_size"] = [8, 8, 8]
    if sharding:
        s["sharding"] = sharding
    return s


# 6 bits of compressed Morton code (grid 4x3x3): 8 chunks per minishard, 2 minishards per shard, 4
# shards of 256x128x32 voxels. (Fewer bits in all than the code has would make two shard boxes
# share a file, and cloud-volume's shard-by-shard writes would overwrite each other.)
SHARDING = {"@type": "neuroglancer_uint64_sharded_v1", "hash": "identity", "preshift_bits": 3,
            "minishard_bits": 1, "shard_bits": 2, "minishard_index_encoding": "gzip", "data_encoding": "gzip"}


def write_layers(vol):
    from cloudvolume import CloudVolume
    from cloudvolume.datasource.precomputed.sharding import image_shard_shape_from_spec

    mip1 = np.asfortranarray(vol[::2, ::2, :])
    assert mip1.shape == MIP1["size"]
    # ws: compressed_segmentation, unsharded, both mips.
    info = {"type": "segmentation", "data_type": "uint64", "num_channels": 1,
            "scales": [scale(0, "compressed_segmentation"), scale(1, "compressed_segmentation")]}
    path = "file://" + str(OUT / "ws")
    CloudVolume(path, info=info, progress=False, compress="gzip").commit_info()
    for mip, data in ((0, vol), (1, mip1)):
        v = CloudVolume(path, mip=mip, progress=False, compress="gzip")
        v[v.bounds.to_slices()] = data
    # ws_sharded: mip 0 sharded raw, mip 1 unsharded raw.
    info_s = {"type": "segmentation", "data_type": "uint64", "num_channels": 1,
              "scales": [scale(0, "raw", dict(SHARDING)), scale(1, "raw")]}
    path_s = "file://" + str(OUT / "ws_sharded")
    CloudVolume(path_s, info=info_s, progress=False, compress=False).commit_info()
    v = CloudVolume(path_s, mip=0, progress=False, compress=False)
    shape = [int(s) for s in image_shard_shape_from_spec(SHARDING, list(SIZE), list(CHUNK))]
    n_shards = 0
    for i in range(-(-SIZE[0] // shape[0])):
        for j in range(-(-SIZE[1] // shape[1])):
            for k in range(-(-SIZE[2] // shape[2])):
                a = [i * shape[0], j * shape[1], k * shape[2]]
                b = [min(a[d] + shape[d], SIZE[d]) for d in range(3)]
                v[tuple(slice(OFFSET[d] + a[d], OFFSET[d] + b[d]) for d in range(3))] = \
                    np.asfortranarray(vol[a[0]:b[0], a[1]:b[1], a[2]:b[2]])
                n_shards += 1
    v1 = CloudVolume(path_s, mip=1, progress=False, compress=False)
    v1[v1.bounds.to_slices()] = mip1
    for mip, data in ((0, vol), (1, mip1)):
        back = CloudVolume(path_s, mip=mip, progress=False)
        assert np.array_equal(np.asarray(back[back.bounds.to_slices()])[..., 0], data), f"ws_sharded mip {mip}"
    shard_files = sorted(p.name for p in (OUT / "ws_sharded" / "8_8_40").iterdir())
    assert sum(1 for n in shard_files if n.endswith(".shard")) > 1, shard_files
    # ws_empty_mip: ws with a third scale that has no chunks.
    shutil.copytree(OUT / "ws", OUT / "ws_empty_mip")
    with open(OUT / "ws_empty_mip" / "info") as f:
        ie = json.load(f)
    ie["scales"].append({"key": "32_32_40", "size": [50, 40, 40], "voxel_offset": [16, 8, 8],
                         "resolution": [32, 32, 40], "chunk_sizes": [list(CHUNK)],
                         "encoding": "compressed_segmentation", "compressed_segmentation_block_size": [8, 8, 8]})
    with open(OUT / "ws_empty_mip" / "info", "w") as f:
        json.dump(ie, f)
    return shard_files


def table_info(layer_dir):
    """PyChunkedGraph's handle_info: the watershed info plus the graph's (meta.dataset_info)."""
    with open(OUT / layer_dir / "info") as f:
        info = json.load(f)
    info.update({
        "chunks_start_at_voxel_offset": True,
        "graph": {"chunk_size": list(GRAPH_CHUNK), "bounding_box": [2048, 2048, 512],
                  "n_bits_for_layer_id": LAYER_BITS, "cv_mip": 0, "n_layers": N_LAYERS,
                  "spatial_bit_masks": dict(BITS), "fan_out": FAN_OUT},
        "app": {"supported_api_versions": [0, 1]},
        "sharded_mesh": True,
        "verify_mesh": False,
    })
    return info


# ----------------------------------------------------------------------------------------------
# The double


class Double:
    def __init__(self):
        self.log = OUT / "double_requests.jsonl"
        self.argv = [sys.executable, str(DOUBLE), "--fixture", str(OUT), "--token", TOKEN,
                     "--forbidden-token", FORBIDDEN, "--port", "0", "--log", str(self.log)]
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise SystemExit(f"the chunkedgraph double did not start: {line!r}")
        self.port = int(line.split()[1])
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def url(self, table):
        return f"graphene://http://127.0.0.1:{self.port}/segmentation/table/{table}"

    def _http(self, method, path, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
        with self.opener.open(req, timeout=30) as r:
            return json.loads(r.read())

    def control(self, **cmd):
        return self._http("POST", "/__control", cmd)

    def requests(self):
        out = []
        for r in self._http("GET", "/__requests"):
            r = dict(r)
            r.pop("time", None)
            out.append(r)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ----------------------------------------------------------------------------------------------
# Recording


class Recorder:
    def __init__(self):
        self.cases = []
        self.by_hash = {}
        (OUT / "expected").mkdir()
        self.ids = set()

    def save(self, arr, stem):
        """Write arr's elements (F order, little-endian) unless an identical file exists."""
        arr = np.asarray(arr)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        data = np.asfortranarray(arr).tobytes(order="F")
        h = hashlib.sha256(data + str(arr.dtype).encode()).hexdigest()
        if h not in self.by_hash:
            rel = f"expected/{stem}.bin"
            (OUT / rel).write_bytes(data)
            self.by_hash[h] = rel
        return self.by_hash[h]

    def add(self, case):
        assert case["id"] not in self.ids, case["id"]
        self.ids.add(case["id"])
        base = {"id": None, "kind": None, "layer": None, "mip": None, "lo": None, "hi": None, "options": {},
                "expected": None, "dtype": None, "shape": None, "requests": None}
        base.update(case)
        self.cases.append(base)
        return base

    def image(self, cid, kind, layer, mip, lo, hi, options, img, requests=None, **extra):
        arr = np.asarray(img)
        if arr.ndim == 4:
            assert arr.shape[3] == 1, arr.shape
            arr = arr[..., 0]
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", cid)
        return self.add(dict(id=cid, kind=kind, layer=layer, mip=mip, lo=list(map(int, lo)), hi=list(map(int, hi)),
                             options=options, expected=self.save(arr, stem), dtype=str(arr.dtype),
                             shape=list(arr.shape), requests=requests, **extra))


def err_info(e, port):
    msg = str(e).replace(f"127.0.0.1:{port}", "127.0.0.1:PORT")
    if type(e).__name__ == "EmptyVolumeException":
        # Names the first missing chunk cloud-volume noticed, which depends on thread timing.
        msg = re.sub(r"-?\d+--?\d+_-?\d+--?\d+_-?\d+--?\d+", "<chunk>", msg)
    return {"class": type(e).__name__, "module": type(e).__module__, "message": msg[:500]}


def jsonable_opts(options):
    out = {}
    for k, v in options.items():
        if isinstance(v, (list, tuple)):
            v = [str(int(x)) if isinstance(x, (np.integer,)) or (isinstance(x, int) and x > 2 ** 53) else x for x in v]
        elif isinstance(v, np.integer):
            v = int(v)
        out[k] = v
    if out.get("secrets") == TOKEN:
        out["secrets"] = "<TOKEN>"
    elif out.get("secrets") == FORBIDDEN:
        out["secrets"] = "<FORBIDDEN>"
    return out


# ----------------------------------------------------------------------------------------------
# The double's own answers on routes and paths cloud-volume does not exercise


def check_double(double, svs, before, after, edit, roots_of):
    """Asserts on the double's wire behaviour (PyChunkedGraph's and middle_auth_client's, as
    tests/servers/chunkedgraph.py documents it); returns the names of the checks."""
    import gzip
    import http.client

    done = []
    api = "/segmentation/api/v1/table/test"
    bearer = {"Authorization": "Bearer " + TOKEN}

    def call(method, path, headers=None, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", double.port, timeout=30)
        conn.request(method, path, body=body, headers=dict(headers or {}))
        r = conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        conn.close()
        for secret in (TOKEN, FORBIDDEN):
            assert secret not in data.decode("latin-1") and secret not in json.dumps(hdrs), f"{path}: token echoed"
        if hdrs.get("content-encoding") == "gzip":
            data = gzip.decompress(data)
        return r.status, hdrs, data

    def ok(name, cond, detail=""):
        if not cond:
            raise SystemExit(f"the chunkedgraph double failed check {name!r} {detail}")
        done.append(name)

    sv_a, sv_b = int(svs[0]), int(svs[-1])
    unknown = encode(1, 1, 1, 1, 77777)
    ids = np.array([sv_a, 0, sv_b, unknown], dtype=np.uint64)
    want = roots_of(ids[:3], after)
    st, h, d = call("POST", api + "/roots_binary", bearer, ids.tobytes())
    got = np.frombuffer(d, dtype="<u8")
    ok("roots_binary", st == 200 and list(got[:3]) == list(want) and got[3] == 0, (st, got))
    ok("roots_binary content type is Flask's default", h.get("content-type") == "text/html; charset=utf-8", h)
    st, h, d = call("POST", api + "/roots", dict(bearer, **{"Content-Type": "application/json"}),
                    json.dumps({"node_ids": [int(i) for i in ids]}))
    ok("roots JSON", st == 200 and json.loads(d)["root_ids"] == [int(v) for v in got], d)
    st, h, d = call("POST", api + "/roots?int64_as_str=true", bearer, json.dumps({"node_ids": [str(sv_a)]}))
    ok("roots JSON int64_as_str", json.loads(d)["root_ids"] == [str(int(want[0]))], d)
    st, h, d = call("POST", api + "/roots_binary?timestamp=" + str(EDIT - 1),
                    dict(bearer, **{"Content-Encoding": "gzip", "Accept-Encoding": "gzip"}), gzip.compress(ids[:3].tobytes()))
    ok("gzip both ways, before the edit", st == 200 and h.get("content-encoding") == "gzip"
       and list(np.frombuffer(d, dtype="<u8")) == list(roots_of(ids[:3], before)), (st, h))
    st, h, d = call("POST", api + "/roots_binary", dict(bearer, **{"Accept-Encoding": "gzip;q=0"}), ids.tobytes())
    ok("gzip whenever 'gzip' occurs in Accept-Encoding", h.get("content-encoding") == "gzip", h)
    st, h, d = call("POST", api + "/roots_binary", dict(bearer, **{"Accept-Encoding": "identity"}), b"\0" * 7)
    ok("7-byte body: 500", st == 500 and "multiple of element size" in json.loads(d)["message"], (st, d))
    st, h, d = call("POST", api + "/roots_binary", bearer, b"")
    ok("empty body: empty answer", st == 200 and d == b"", (st, d))
    st, h, d = call("POST", api + "/roots_binary", bearer, np.array([unknown], dtype=np.uint64).tobytes())
    ok("a batch of only unknown ids comes back unchanged", np.frombuffer(d, dtype="<u8").tolist() == [unknown], d)
    st, h, d = call("POST", api + "/roots_binary?timestamp=abc", bearer, ids.tobytes())
    ok("bad timestamp: 400", st == 400 and json.loads(d)["message"].startswith("[400]: Timestamp parameter"), d)
    st, h, d = call("POST", api + "/roots_binary?stop_layer=9", bearer, ids.tobytes())
    ok("stop_layer above the root layer: 500", st == 500, st)
    st, h, d = call("POST", api + "/roots_binary?stop_layer=2&timestamp=1699999999.5", bearer, ids[:1].tobytes())
    ok("float timestamp, stop_layer", np.frombuffer(d, dtype="<u8").tolist() == [before[sv_a]], d)
    st, h, d = call("GET", api + f"/node/{sv_a}/root", bearer)
    ok("node root", json.loads(d) == {"root_id": int(want[0])}, d)
    st, h, d = call("GET", f"/segmentation/1.0/test/graph/{sv_a}/root?timestamp={EDIT - 1}", bearer)
    ok("legacy root reads the query timestamp", np.frombuffer(d, dtype="<u8").tolist() == roots_of([sv_a], before).tolist(), d)
    st, h, d = call("GET", "/segmentation/1.0/test/graph/0/root", bearer)
    ok("legacy root of 0: 500", st == 500 and "Cannot find root id" in json.loads(d)["message"], d)
    l2 = int(edit["split"]["l2"])
    st, h, d = call("GET", api + f"/node/{before[l2]}/children", bearer)
    ok("children", l2 in json.loads(d)["children_ids"], d)
    st, h, d = call("GET", api + f"/node/{l2}/leaves?bounds=0-1_0-1_0-1", bearer)
    ok("an L2 node's leaves are not filtered by bounds",
       sorted(json.loads(d)["leaf_ids"]) == sorted(int(x) for x in edit["split"]["supervoxels"]), d)
    st, h, d = call("GET", api + f"/node/{after[after[l2 if l2 in after else int(edit['split']['l2_into'][0])]]}"
                    "/leaves?bounds=-5-10_0-1_0-1", bearer)
    ok("negative bounds: 500 (PyChunkedGraph splits on '-')", st == 500, st)
    st, h, d = call("GET", api + f"/l2_chunk_children_binary/{before[before[sv_a]]}?as_array=true", bearer)
    ok("l2_chunk_children of a layer-3 id: 500", st == 500, st)
    st, h, d = call("GET", "/segmentation/table/test/info", {"Authorization": "Bearer " + TOKEN, "Accept-Encoding": "gzip"})
    info = json.loads(d)
    ok("info", st == 200 and info["data_dir"] == "file://" + str(OUT / "ws")
       and info["app"]["supported_api_versions"] == [0, 1], info.get("data_dir"))
    # middle_auth_client
    path = "/segmentation/table/test/info"
    st, h, d = call("GET", path)
    ok("no token, not programmatic: 302 to the authorize page",
       st == 302 and h["location"].startswith("https://localhost:5000/auth/api/v1/authorize?redirect="), (st, h))
    st, h, d = call("GET", path, {"X-Requested-With": "XMLHttpRequest"})
    ok("no token, programmatic: 401 no_token", st == 401 and json.loads(d)["error"] == "no_token"
       and h.get("www-authenticate", "").startswith("Bearer realm="), (st, d))
    st, h, d = call("GET", path, {"Authorization": "Token " + TOKEN})
    ok("not Bearer: 400 bad_auth_header", st == 400 and json.loads(d)["error"] == "bad_auth_header", (st, d))
    st, h, d = call("GET", path, {"Authorization": "Bearer " + BAD_TOKEN})
    ok("wrong token: 401 invalid_token", st == 401 and json.loads(d)["error"] == "invalid_token", (st, d))
    st, h, d = call("GET", path, {"Authorization": "Bearer " + FORBIDDEN})
    ok("forbidden token: 403 missing_permission", st == 403 and json.loads(d)["error"] == "missing_permission", (st, d))
    st, h, d = call("GET", path, {"Cookie": "middle_auth_token=" + TOKEN})
    ok("token in the cookie", st == 200, st)
    st, h, d = call("GET", path + "?middle_auth_token=" + TOKEN + "&x=1")
    ok("token in the query, not programmatic: 302 without it",
       st == 302 and h["location"].endswith(path + "?x=1") and "set-cookie" not in h, (st, h))
    st, h, d = call("GET", path + "?middle_auth_token=" + TOKEN, {"X-Requested-With": "x"})
    ok("token in the query, programmatic", st == 200, st)
    st, h, d = call("GET", "/segmentation/table/nosuch/info", bearer)
    ok("unknown table: 400 invalid_table_id", st == 400 and json.loads(d)["error"] == "invalid_table_id", (st, d))
    st, h, d = call("GET", "/segmentation/api/versions", bearer)
    ok("api versions", json.loads(d) == [0, 1], d)
    st, h, d = call("GET", "/nothing/here", bearer)
    ok("unknown path: 404", st == 404, st)
    st, h, d = call("GET", api + "/roots_binary", bearer)
    ok("wrong method: 405", st == 405, st)
    # Faults.
    double.control(fail=1, status=502)
    st, h, d = call("GET", path, bearer)
    ok("scripted 502", st == 502, st)
    double.control(garbage=1, bytes=13)
    st, h, d = call("POST", api + "/roots_binary", bearer, ids.tobytes())
    ok("scripted garbage", st == 200 and len(d) == 13, (st, len(d)))
    double.control(drop=1)
    try:
        call("GET", path, bearer)
        ok("scripted drop", False)
    except (http.client.HTTPException, ConnectionError):
        ok("scripted drop", True)
    log = double.requests()
    ok("the log records faults and never a token", log[-1]["fault"] == "drop" and log[-2]["fault"] == "garbage"
       and all(TOKEN not in json.dumps(r) for r in log), log[-2:])
    double.control(reset=True)
    return done


def main():
    global OUT
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    t0 = time.time()
    OUT = Path(sys.argv[1]).resolve()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    os.environ["CLOUD_VOLUME_DIR"] = str(OUT)  # read when cloudvolume is imported
    (OUT / "secrets").mkdir()
    (OUT / "secrets" / "cave-secret.json").write_text(json.dumps({"token": TOKEN}))

    import cloudfiles.threaded_queue
    import cloudvolume
    from cloudvolume import Bbox, CloudVolume

    # cloud-files polls its queue every 0.1 s; sharded reads pay that each time (make_layers.py's fix).
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_layers import _QuickPoll

    cloudfiles.threaded_queue.time = _QuickPoll()
    assert cloudvolume.secrets.CLOUD_VOLUME_DIR == str(OUT)

    # --- fixture
    vol, svs, sv_chunks, sv_cells = supervoxels()
    before, after, edit = hierarchy(svs, sv_chunks, sv_cells)
    boxes = sv_boxes(vol)
    shard_files = write_layers(vol)
    graph = {
        "format": 2,
        "tables": {"test": {"info": table_info("ws"), "data_dir": "ws", "dataset": "test_dataset"},
                   "sharded": {"info": table_info("ws_sharded"), "data_dir": "ws_sharded", "dataset": "test_dataset"},
                   "missing": {"info": table_info("ws"), "data_dir": "ws_missing", "dataset": "test_dataset"}},
        "n_layers": N_LAYERS, "n_bits_for_layer_id": LAYER_BITS, "spatial_bit_masks": dict(BITS),
        "fan_out": FAN_OUT, "created_timestamp": CREATED, "edit_timestamp": EDIT,
        "hierarchy": {"before": {str(k): str(v) for k, v in sorted(before.items())},
                      "after": {str(k): str(v) for k, v in sorted(after.items())}},
        "edit": edit,
        "supervoxels": {str(k): v for k, v in sorted(boxes.items())},
    }
    (OUT / "graph.json").write_text(json.dumps(graph, indent=0))
    n_roots_before = len({v for k, v in before.items() if layer_of(k) == 3})
    n_roots_after = len({v for k, v in after.items() if layer_of(k) == 3})

    def roots_of(ids, parent, stop=N_LAYERS):
        out = []
        for v in ids:
            v = int(v)
            while v and layer_of(v) < stop:
                v = parent[v]
            out.append(v)
        return np.array(out, dtype=np.uint64)

    rec = Recorder()
    double = Double()
    port = double.port
    try:
        run_cases(rec, double, vol, svs, before, after, edit, boxes, roots_of, Bbox, CloudVolume)
        checks = check_double(double, svs, before, after, edit, roots_of)
    finally:
        double.stop()

    # --- manifest
    counts = {}
    for c in rec.cases:
        counts[c["kind"]] = counts.get(c["kind"], 0) + 1
    compat_cutouts = []
    compat_unique = []
    for c in rec.cases:
        o = c["options"]
        if c["kind"] == "cutout" and c.get("basic"):
            compat_cutouts.append({"table": c["layer"].split(":", 1)[1], "mip": c["mip"], "lo": c["lo"], "hi": c["hi"],
                                   "agglomerate": o.get("agglomerate", False), "timestamp": o.get("timestamp"),
                                   "stop_layer": o.get("stop_layer"), "file": c["expected"],
                                   "requests": c["requests"]})
        if c["kind"] == "unique" and c["layer"].startswith("graphene:"):
            compat_unique.append({"table": c["layer"].split(":", 1)[1], "mip": c["mip"], "lo": c["lo"], "hi": c["hi"],
                                  "agglomerate": o.get("agglomerate", False), "file": c["expected"]})
    for c in rec.cases:
        c.pop("basic", None)
    errors = {}
    for cid, key in (("error/wrong_token", "wrong_token"), ("error/missing_data_dir_agglomerated", "missing_data_dir")):
        c = next(c for c in rec.cases if c["id"] == cid)
        errors[key] = f"{c['error']['class']}: {c['error']['message']}"
    manifest = {
        "format": 2,
        "generated_by": {"script": "tests/reference/graphene_check.py", "cloud-volume": md.version("cloud-volume"),
                         "numpy": np.__version__},
        "token": TOKEN, "forbidden_token": FORBIDDEN, "bad_token": BAD_TOKEN,
        "edit_timestamp": EDIT, "created_timestamp": CREATED, "n_layers": N_LAYERS,
        "supervoxels": len(svs), "roots_before": n_roots_before, "roots_after": n_roots_after,
        "sharded_files": shard_files,
        "url_template": "graphene://http://127.0.0.1:{port}/segmentation/table/{table}",
        "double_command": ["python", "tests/servers/chunkedgraph.py", "--fixture", "<OUT>", "--token", TOKEN,
                           "--forbidden-token", FORBIDDEN, "--port", "0"],
        "layout": "expected files: raw little-endian elements; images in Fortran order x, y, z (one channel)",
        "notes": NOTES,
        "counts": counts,
        "double_checks": checks,
        "cases": rec.cases,
        "cutouts": compat_cutouts,
        "unique": compat_unique,
        "errors": errors,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1))
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print("graphene_check: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
          + f"; {len(checks)} double checks; {len(svs)} supervoxels, {n_roots_before}->{n_roots_after} roots, "
            f"{total / 1e6:.1f} MB, "
            f"{time.time() - t0:.1f} s")


def run_cases(rec, double, vol, svs, before, after, edit, boxes, roots_of, Bbox, CloudVolume):
    port = double.port
    lo0, hi0 = list(OFFSET), [OFFSET[d] + SIZE[d] for d in range(3)]
    lo1, hi1 = list(MIP1["offset"]), [MIP1["offset"][d] + MIP1["size"][d] for d in range(3)]
    BOXES = {
        "mip0_whole": (0, lo0, hi0),
        "mip0_partial": (0, [77, 45, 13], [201, 170, 39]),
        "mip1_box": (1, [35, 19, 10], [120, 90, 45]),
    }
    cvs = {}

    def gcv(table, mip=0, **kw):
        """A graphene CloudVolume opened at `mip`: its download() checks a box against the bounds
        of the mip it was opened at, whatever mip= the call names."""
        key = (table, mip, tuple(sorted(kw.items())))
        if key not in cvs:
            kw.setdefault("secrets", TOKEN)
            cvs[key] = CloudVolume(double.url(table), mip=mip, progress=False, **kw)
        return cvs[key]

    def pcv(layer, mip=0, **kw):
        key = (layer, mip, tuple(sorted(kw.items())))
        if key not in cvs:
            cvs[key] = CloudVolume("file://" + str(OUT / layer), mip=mip, progress=False, **kw)
        return cvs[key]

    def sv_cut(mip, lo, hi):
        if mip == 0:
            return vol[lo[0] - OFFSET[0]:hi[0] - OFFSET[0], lo[1] - OFFSET[1]:hi[1] - OFFSET[1],
                       lo[2] - OFFSET[2]:hi[2] - OFFSET[2]]
        m1 = vol[::2, ::2, :]
        o = MIP1["offset"]
        return m1[lo[0] - o[0]:hi[0] - o[0], lo[1] - o[1]:hi[1] - o[1], lo[2] - o[2]:hi[2] - o[2]]

    def model(img, parent, stop):
        u, inv = np.unique(img, return_inverse=True)
        return roots_of(u, parent, stop)[inv.reshape(-1)].reshape(img.shape)

    # Cross-check our label encoding against cloud-volume's.
    meta = gcv("test").meta
    for v in list(svs[:3]) + [int(k) for k in list(after)[-3:]]:
        lab = meta.decode_label(v)
        assert int(meta.encode_label(*lab)) == int(v), v
        assert (int(lab.level), int(lab.x), int(lab.y), int(lab.z)) == (layer_of(v),) + chunk_of(v), (v, lab)

    # --- root-id cutouts
    MODES = [("agglomerate", {"agglomerate": True}), ("supervoxels", {"agglomerate": False}),
             ("before_edit", {"agglomerate": True, "timestamp": EDIT - 1}),
             ("stop_layer_2", {"agglomerate": True, "stop_layer": 2}),
             ("stop_layer_3", {"agglomerate": True, "stop_layer": 3})]
    NOTES.append("cloud-volume 12.15.2's graphene download() checks the box against the bounds of the mip the "
                 "CloudVolume was opened at, not the mip= it is given: mip-1 cases open it with mip=1")
    for table in ("test", "sharded"):
        for bname, (mip, lo, hi) in BOXES.items():
            v = gcv(table, mip)
            for mname, mode in MODES:
                double.control(clear_log=True)
                img = np.asarray(v.download(Bbox(lo, hi), mip=mip, **mode))[..., 0]
                reqs = double.requests()
                parent = before if mode.get("timestamp") else after
                want = sv_cut(mip, lo, hi) if not mode["agglomerate"] else \
                    model(sv_cut(mip, lo, hi), parent, mode.get("stop_layer", N_LAYERS))
                assert np.array_equal(img, want), f"{table} {bname} {mname}: cloud-volume disagrees with the graph"
                c = rec.image(f"cutout/{table}/{bname}/{mname}", "cutout", f"graphene:{table}", mip, lo, hi,
                              dict(mode), img, reqs)
                c["basic"] = True
    # Extra cutouts.
    v = gcv("test")
    extra = [
        ("timestamp_at_edit", BOXES["mip0_partial"], {"agglomerate": True, "timestamp": EDIT},
         "a timestamp equal to the edit's sees the edit (Bigtable reads are inclusive of the end time)"),
        ("before_graph_existed", BOXES["mip0_partial"], {"agglomerate": True, "timestamp": CREATED - 1},
         "before created_timestamp no node has a parent: PyChunkedGraph returns every id unchanged"),
        ("stop_layer_1", BOXES["mip0_partial"], {"agglomerate": True, "stop_layer": 1},
         "cloud-volume makes no request for stop_layer 1"),
        ("stop_layer_4", BOXES["mip0_partial"], {"agglomerate": True, "stop_layer": 4}, None),
        ("all_background", (0, [256, 160, 40], [264, 192, 48]), {"agglomerate": True},
         "an all-zero box: cloud-volume makes no request"),
        ("one_voxel", (0, [150, 100, 30], [151, 101, 31]), {"agglomerate": True}, None),
    ]
    for name, (mip, lo, hi), mode, note in extra:
        double.control(clear_log=True)
        img = np.asarray(v.download(Bbox(lo, hi), mip=mip, **mode))[..., 0]
        c = rec.image(f"cutout/test/{name}", "cutout", "graphene:test", mip, lo, hi, dict(mode), img, double.requests())
        if note:
            c["note"] = note
    # Outside the bounds with bounded=False, fill_missing=True.
    mip, lo, hi = 0, [40, 20, 0], [100, 70, 20]
    try:
        vb = gcv("test", bounded=False, fill_missing=True)
        double.control(clear_log=True)
        img = np.asarray(vb.download(Bbox(lo, hi), mip=mip, agglomerate=True))[..., 0]
        c = rec.image("cutout/test/outside_bounds_unbounded", "cutout", "graphene:test", mip, lo, hi,
                      {"agglomerate": True, "bounded": False, "fill_missing": True}, img, double.requests())
        c["note"] = "voxels outside the bounds are 0 (background_color)"
    except Exception as e:  # noqa: BLE001
        rec.add(dict(id="cutout/test/outside_bounds_unbounded", kind="error", layer="graphene:test", mip=mip, lo=lo,
                     hi=hi, options={"agglomerate": True, "bounded": False, "fill_missing": True},
                     error=err_info(e, port), where="call", requests=double.requests()))
    # bounded=True and a box leaving the bounds.
    double.control(clear_log=True)
    try:
        v.download(Bbox(lo, hi), mip=0, agglomerate=True)
        raise SystemExit("cloud-volume read outside the bounds with bounded=True")
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001
        rec.add(dict(id="error/outside_bounds_bounded", kind="error", layer="graphene:test", mip=0, lo=lo, hi=hi,
                     options={"agglomerate": True}, error=err_info(e, port), where="call", requests=double.requests()))

    # --- graphene masks through leaves
    mip, lo, hi = BOXES["mip0_partial"]
    part_sv = sv_cut(mip, lo, hi)
    part_roots = model(part_sv, after, N_LAYERS)
    ur, cnt = np.unique(part_roots[part_roots != 0], return_counts=True)
    top = [int(r) for r in ur[np.argsort(-cnt, kind="stable")][:2]]
    double.control(clear_log=True)
    img = np.asarray(v.download(Bbox(lo, hi), mip=mip, agglomerate=False, segids=list(top)))[..., 0]
    c = rec.image("segids_mask/test/mip0_partial", "segids_mask", "graphene:test", mip, lo, hi,
                  {"agglomerate": False, "segids": [str(t) for t in top]}, img, double.requests())
    c["note"] = "supervoxels under each segid (leaves in the mip-0 box) become that segid, all else 0"
    double.control(clear_log=True)
    img = np.asarray(v.download(Bbox(lo, hi), mip=mip, agglomerate=True, label=top[0]))[..., 0]
    rec.image("label_mask/graphene_test/mip0_partial", "label_mask", "graphene:test", mip, lo, hi,
              {"agglomerate": True, "label": str(top[0])}, img, double.requests())

    # --- unique
    for table in ("test", "sharded"):
        for bname in ("mip0_partial", "mip1_box", "mip0_whole"):
            mip, lo, hi = BOXES[bname]
            gv = gcv(table, mip)
            for agg in (True, False):
                double.control(clear_log=True)
                labels = np.array(sorted(int(x) for x in gv.unique(Bbox(lo, hi), mip=mip, agglomerate=agg)), dtype=np.uint64)
                want = np.unique(model(sv_cut(mip, lo, hi), after, N_LAYERS) if agg else sv_cut(mip, lo, hi))
                assert np.array_equal(labels, want), f"unique {table} {bname} {agg}"
                rec.image(f"unique/graphene_{table}/{bname}/{'agglomerate' if agg else 'supervoxels'}", "unique",
                          f"graphene:{table}", mip, lo, hi, {"agglomerate": agg}, labels, double.requests())
    for layer in ("ws", "ws_sharded"):
        for bname, (mip, lo, hi) in list(BOXES.items()) + [("mip0_one_chunk", (0, [128, 96, 24], [192, 160, 40]))]:
            pv = pcv(layer, mip)
            labels = np.array(sorted(int(x) for x in pv.unique(Bbox(lo, hi), mip=mip)), dtype=np.uint64)
            assert np.array_equal(labels, np.unique(sv_cut(mip, lo, hi))), f"unique {layer} {bname}"
            rec.image(f"unique/{layer}/{bname}", "unique", layer, mip, lo, hi, {}, labels)

    # --- label masks, renumber, download_point on ws
    pv = pcv("ws")
    mip, lo, hi = BOXES["mip0_partial"]
    u, cnt = np.unique(part_sv[part_sv != 0], return_counts=True)
    lab_a = int(u[np.argmax(cnt)])
    img = np.asarray(pv.download(Bbox(lo, hi), mip=mip, label=lab_a))
    rec.image("label_mask/ws/mip0_partial", "label_mask", "ws", mip, lo, hi, {"label": str(lab_a)}, img)
    mip1, lo1b, hi1b = BOXES["mip1_box"]
    m1 = sv_cut(mip1, lo1b, hi1b)
    u1, cnt1 = np.unique(m1[m1 != 0], return_counts=True)
    lab_b = int(u1[np.argsort(-cnt1, kind="stable")[1]])
    img = np.asarray(pcv("ws", 1).download(Bbox(lo1b, hi1b), mip=mip1, label=lab_b))
    rec.image("label_mask/ws/mip1_box", "label_mask", "ws", mip1, lo1b, hi1b, {"label": str(lab_b)}, img)
    absent = encode(1, 0, 0, 0, 99999)
    img = np.asarray(pv.download(Bbox(lo, hi), mip=mip, label=absent))
    c = rec.image("label_mask/ws/absent_label", "label_mask", "ws", mip, lo, hi, {"label": str(absent)}, img)
    c["note"] = "a label that does not occur: all false"
    for name, (m, a, b) in (("mip0_partial", BOXES["mip0_partial"]), ("mip1_box", BOXES["mip1_box"])):
        img, mapping = pcv("ws", m).download(Bbox(a, b), mip=m, renumber=True)
        img = np.asarray(img)
        pairs = sorted([[str(int(k)), str(int(val))] for k, val in mapping.items()], key=lambda p: int(p[1]))
        rec.image(f"renumber/ws/{name}", "renumber", "ws", m, a, b, {"renumber": True}, img, mapping=pairs)
    for name, pt, size, mip, cres in (
        ("int_size", (150, 100, 30), 32, 0, None),
        ("tuple_size_with_1", (150, 100, 30), (20, 1, 8), 0, None),
        ("coord_resolution_mip1", (300, 200, 30), 16, 1, (4, 4, 40)),
    ):
        kw = {"size": size, "mip": mip}
        if cres is not None:
            kw["coord_resolution"] = cres
        img = pcv("ws", mip).download_point(pt, **kw)
        bb = img.bounds
        opts = {"point": list(pt), "size": list(size) if isinstance(size, tuple) else size, "mip": mip}
        if cres is not None:
            opts["coord_resolution"] = list(cres)
        rec.image(f"download_point/ws/{name}", "download_point", "ws", mip, [int(x) for x in bb.minpt],
                  [int(x) for x in bb.maxpt], opts, np.asarray(img), point=list(pt),
                  size=list(size) if isinstance(size, tuple) else size,
                  coord_resolution=list(cres) if cres else None,
                  read_lo=[int(x) for x in bb.minpt], read_hi=[int(x) for x in bb.maxpt])
    # has_data
    for layer, mips in (("ws", (0, 1)), ("ws_empty_mip", (0, 1, 2)), ("ws_sharded", (0, 1))):
        lv = pcv(layer)
        for m in mips:
            rec.add(dict(id=f"has_data/{layer}/mip{m}", kind="has_data", layer=layer, mip=m,
                         options={}, value=bool(lv.image.has_data(m)),
                         note="cloud-volume 12.15.2 has it on the image source only: vol.image.has_data(mip); "
                              "True when any file name starts with the scale's key"))
    # download_files
    for layer, (m, a, b) in (("ws", BOXES["mip0_partial"]), ("ws", BOXES["mip1_box"]),
                             ("ws_sharded", BOXES["mip0_partial"]), ("ws_sharded", BOXES["mip1_box"])):
        lv = pcv(layer, m)
        cid = f"download_files/{layer}/mip{m}"
        try:
            files = lv.download_files(Bbox(a, b), mip=m, decompress=True)
            listing = [{"name": str(k), "bytes": len(val), "sha256": hashlib.sha256(val).hexdigest()}
                       for k, val in sorted(files.items(), key=lambda kv: str(kv[0]))]
            rec.add(dict(id=cid, kind="download_files", layer=layer, mip=m, lo=a, hi=b,
                         options={"decompress": True}, files=listing))
        except Exception as e:  # noqa: BLE001
            rec.add(dict(id=cid, kind="error", layer=layer, mip=m, lo=a, hi=b, options={"decompress": True},
                         error=err_info(e, port), where="call"))

    # --- the graph API
    # Many ids: two batches (cloud-volume sends at most 250,000), gzip both ways.
    rng = np.random.default_rng(seed_of("many"))
    n_many = 260_000
    unknown = np.array([encode(1, 7, 0, 0, s) for s in range(1, n_many - len(svs) + 1)], dtype=np.uint64)
    ids = np.concatenate([svs, unknown])[rng.permutation(n_many)]
    double.control(clear_log=True)
    got = np.asarray(v.get_roots(ids), dtype=np.uint64)
    reqs = double.requests()
    known = np.isin(ids, svs)
    assert np.array_equal(got[known], roots_of(ids[known], after)), "many: known ids"
    c = rec.add(dict(id="get_roots/many", kind="get_roots", layer="graphene:test", options={"binary": True},
                     input=rec.save(ids, "get_roots_many_input"), expected=rec.save(got, "get_roots_many"),
                     dtype="uint64", shape=[n_many], requests=reqs))
    c["note"] = ("cloud-volume sorts the distinct ids and sends batches of 250,000, gzipped (over 1 MB); "
                 "ids with no parent become 0 where the batch holds known ids, and stay unchanged in a batch "
                 "of only unknown ids (PyChunkedGraph's get_parents finds no row and the climb stops)")
    # Mixed layers, a duplicate, 0 and an unknown id.
    sv_a, sv_b = int(svs[0]), int(svs[len(svs) // 2])
    l2_x = before[int(svs[-1])]
    l3_y = before[before[int(svs[len(svs) // 3])]]
    root_z = roots_of([svs[7]], after)[0]
    mixed = np.array([sv_a, 0, sv_b, l2_x, l3_y, int(root_z), encode(1, 1, 1, 1, 77777), sv_a], dtype=np.uint64)
    for stop in (None, 2, 3):
        double.control(clear_log=True)
        got = np.asarray(v.get_roots(mixed, stop_layer=stop), dtype=np.uint64)
        rec.add(dict(id=f"get_roots/mixed/stop_{stop}", kind="get_roots", layer="graphene:test",
                     options={"stop_layer": stop, "binary": True}, input=rec.save(mixed, "get_roots_mixed_input"),
                     expected=rec.save(got, f"get_roots_mixed_stop_{stop}"), dtype="uint64", shape=[len(mixed)],
                     requests=double.requests(),
                     note="ids already at the stop layer (or the root layer) and 0 are answered by cloud-volume "
                          "itself; an L3 id with stop_layer 2 comes back unchanged from the server"))
    # The split supervoxels before/after, one at a time through the legacy API.
    split_svs = [int(s) for s in edit["split"]["supervoxels"]]
    for ts in (EDIT - 1, None):
        double.control(clear_log=True)
        got = np.asarray(v.get_roots(np.array(split_svs, dtype=np.uint64), timestamp=ts), dtype=np.uint64)
        rec.add(dict(id=f"get_roots/split_svs/ts_{ts}", kind="get_roots", layer="graphene:test",
                     options={"timestamp": ts}, input=rec.save(np.array(split_svs, dtype=np.uint64), "split_svs"),
                     expected=rec.save(got, f"get_roots_split_{ts}"), dtype="uint64", shape=[len(split_svs)],
                     requests=double.requests()))
    double.control(clear_log=True)
    try:
        got = np.asarray(v._get_roots_legacy(np.array(split_svs, dtype=np.uint64), EDIT - 1), dtype=np.uint64)
        rec.add(dict(id="get_roots/legacy_1.0", kind="get_roots", layer="graphene:test",
                     options={"api": "1.0", "timestamp": EDIT - 1},
                     input=rec.save(np.array(split_svs, dtype=np.uint64), "split_svs"),
                     expected=rec.save(got, "get_roots_legacy"), dtype="uint64", shape=[len(split_svs)],
                     requests=double.requests(),
                     note="cloud-volume's private _get_roots_legacy: GET /segmentation/1.0/<t>/graph/<id>/root per "
                          "id with the timestamp in a JSON body, which PyChunkedGraph ignores (it reads the query "
                          "string), so these are the latest roots"))
    except Exception as e:  # noqa: BLE001
        rec.add(dict(id="get_roots/legacy_1.0", kind="error", layer="graphene:test", options={"api": "1.0"},
                     error=err_info(e, port), where="call", requests=double.requests()))
    NOTES.append("cloud-volume 12.15.2's get_roots(binary=False) (the JSON /roots route) raises TypeError "
                 "('Type is not JSON serializable: numpy.uint64', orjson) before sending anything, and tenacity "
                 "retries that 7 times (tens of seconds of waits): not run here; the double's /roots is "
                 "checked directly instead")
    # Leaves.
    mip, lo, hi = BOXES["mip0_partial"]
    for name, node, bbox_, stop in (("root_partial", top[0], (lo, hi), None),
                                    ("root_partial_stop2", top[0], (lo, hi), 2),
                                    ("root_whole", top[0], (lo0, hi0), None),
                                    ("split_l2_old", int(edit["split"]["l2"]), (lo0, hi0), None)):
        double.control(clear_log=True)
        got = np.asarray(v.get_leaves(node, Bbox(*bbox_), 0, stop_layer=stop), dtype=np.uint64)
        rec.add(dict(id=f"get_leaves/{name}", kind="get_leaves", layer="graphene:test", mip=0, lo=list(bbox_[0]),
                     hi=list(bbox_[1]), options={"node": str(node), "stop_layer": stop},
                     expected=rec.save(got, f"get_leaves_{name}"), dtype="uint64", shape=[len(got)],
                     requests=double.requests()))
    # L2 chunk children (the split L2's chunk), latest and before the edit.
    l2 = int(edit["split"]["l2"])
    for ts in (None, EDIT - 1):
        double.control(clear_log=True)
        m = v.get_chunk_mappings(l2, timestamp=ts)
        pairs = sorted([[str(int(k)), [str(int(s)) for s in vals]] for k, vals in m.items()], key=lambda p: int(p[0]))
        rec.add(dict(id=f"chunk_mappings/split_chunk/ts_{ts}", kind="chunk_mappings", layer="graphene:test",
                     options={"timestamp": ts}, chunk_id=str(int(meta.decode_chunk_id(l2))), mapping=pairs,
                     requests=double.requests(),
                     note="a range read of the chunk: superseded L2 nodes are listed too"))

    # --- faults, with cloud-volume's retries
    mip, lo, hi = BOXES["mip0_partial"]
    want = next(c for c in rec.cases if c["id"] == "cutout/test/mip0_partial/agglomerate")
    for name, ctl in (("503_twice", {"fail": 2, "status": 503}), ("garbage_once", {"garbage": 1})):
        double.control(clear_log=True, **ctl)
        img = np.asarray(v.download(Bbox(lo, hi), mip=mip, agglomerate=True))[..., 0]
        reqs = double.requests()
        c = rec.image(f"cutout/test/fault_{name}", "cutout", "graphene:test", mip, lo, hi, {"agglomerate": True},
                      img, reqs, fault=ctl, retried=[r["status"] for r in reqs])
        assert c["expected"] == want["expected"], name
        c["note"] = "cloud-volume retries any exception (tenacity, 7 attempts), a short body included"
    double.control(reset=True)

    # --- errors
    def open_error(cid, table, note=None, **kw):
        double.control(clear_log=True)
        try:
            CloudVolume(double.url(table), mip=0, progress=False, **kw)
            raise SystemExit(f"{cid}: cloud-volume opened it")
        except SystemExit:
            raise
        except Exception as e:  # noqa: BLE001
            c = rec.add(dict(id=cid, kind="error", layer=f"graphene:{table}", options=jsonable_opts(kw),
                             error=err_info(e, port), where="open", requests=double.requests()))
            if note:
                c["note"] = note

    open_error("error/wrong_token", "test", secrets={"token": BAD_TOKEN},
               note="middle_auth_client: a token the auth service does not know is 401 invalid_token")
    open_error("error/forbidden_token", "test", secrets=FORBIDDEN,
               note="a valid user without view permission: 403 missing_permission")
    open_error("error/malformed_token", "test", secrets="not a token!",
               note="cloud-volume refuses a token that is neither hex nor base64 before any request")
    open_error("error/unknown_table", "nosuch", secrets=TOKEN,
               note="middle_auth_client cannot map the table to a dataset: 400 invalid_table_id")
    for agg in (True, False):
        cid = f"error/missing_data_dir_{'agglomerated' if agg else 'supervoxels'}"
        mv = gcv("missing")
        double.control(clear_log=True)
        try:
            mv.download(Bbox(*BOXES["mip0_partial"][1:]), mip=0, agglomerate=agg)
            raise SystemExit(f"{cid}: cloud-volume read a data_dir that does not exist")
        except SystemExit:
            raise
        except Exception as e:  # noqa: BLE001
            rec.add(dict(id=cid, kind="error", layer="graphene:missing", mip=0, lo=BOXES["mip0_partial"][1],
                         hi=BOXES["mip0_partial"][2], options={"agglomerate": agg}, error=err_info(e, port),
                         where="call", requests=double.requests()))
    try:
        mvf = gcv("missing", fill_missing=True)
        double.control(clear_log=True)
        img = np.asarray(mvf.download(Bbox(*BOXES["mip0_partial"][1:]), mip=0, agglomerate=True))[..., 0]
        rec.image("cutout/missing/fill_missing", "cutout", "graphene:missing", 0, BOXES["mip0_partial"][1],
                  BOXES["mip0_partial"][2], {"agglomerate": True, "fill_missing": True}, img, double.requests())
    except Exception as e:  # noqa: BLE001
        rec.add(dict(id="cutout/missing/fill_missing", kind="error", layer="graphene:missing", mip=0,
                     lo=BOXES["mip0_partial"][1], hi=BOXES["mip0_partial"][2],
                     options={"agglomerate": True, "fill_missing": True}, error=err_info(e, port), where="call",
                     requests=double.requests()))
    for c in rec.cases:
        c["options"] = jsonable_opts(c["options"])


if __name__ == "__main__":
    main()
