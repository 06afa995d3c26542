#!/usr/bin/env python3
"""Graphene sharded meshes, and what unmodified cloud-volume reads of them through the loopback
PyChunkedGraph double's meshing manifest route (tests/servers/chunkedgraph.py).

Usage: target/venv/bin/python tests/reference/graphene_meshes.py OUT

OUT is deleted and rebuilt; everything is deterministic (fixed seeds, a fixed token). The script
starts the double itself (`chunkedgraph.py --fixture OUT --token TOKEN --forbidden-token FTOKEN
--port 0 --log OUT/double_requests.jsonl`), points CLOUD_VOLUME_DIR at OUT so that cloud-volume
finds OUT/secrets/cave-secret.json, reads
`graphene://http://127.0.0.1:<port>/segmentation/table/<t>` with `.mesh.get(ids, ...)`, and
exits non-zero on any failure, printing one summary line.

The graph (one for every table, as the double serves it)
  5 layers, 8 layer bits, spatial bits {1: 10, 2: 10, 3: 9, 4: 8, 5: 8}, fan_out 2, graph chunk
  64x64x16 voxels at mip 0, so a 4x4x4 grid of layer-2 chunks, 2x2x2 of layer 3, one chunk at
  layers 4 and 5. Supervoxels: 16 objects (9 warped Voronoi cells between membranes, 5 small
  ellipsoids inside one graph chunk each, one ellipsoid over 8 chunks of one layer-3 chunk, one
  over 2 chunks), cut at graph-chunk borders and into ~20-voxel cells. L2 nodes: one object's
  supervoxels in one chunk (three such pieces split in two L2 nodes). Above, PyChunkedGraph's
  skip connections: a node gets a parent at the lowest layer where its object has >= 2 members in
  that layer's chunk, else at the root layer (5), so most roots have one child; two objects are
  "flat" (no L4 node: the root's children are L3 nodes and L2 nodes), one is a "chain" (an L4
  node with a single L3 child, which PyChunkedGraph's check_skips steps over).
  "before" nodes exist from created_timestamp 1690000000, "after"-only nodes from
  edit_timestamp 1700000000; the tables' mesh initial_ts is 1695000000. The edit: a split (an L2
  node of object A into two new L2 nodes; one stays with A under a new L3, L4 and root, the
  other becomes a new root with that single child) and a merge (objects X and Y: a new L3 from
  an L3 of each in one layer-3 chunk, a new L4 and root).

Layers under OUT
  ws/      watershed, uint64 compressed_segmentation, gzip; mip 0 256x256x64 at 0,0,0,
           resolution 8,8,40; mip 1 128x128x64 (every other voxel in x and y), 16,16,40; both
           in 64x64x16 storage chunks.
  ws/graphene_meshes/        info {"@type": "neuroglancer_legacy_mesh", "mip": 1, "chunk_size":
           [32, 32, 16], "sharding": {"2", "3", "4": neuroglancer_uint64_sharded_v1,
           murmurhash3_x86_128, preshift 0, gzip minishard indices, raw data; minishard/shard bits
           2/0, 1/0, 0/1}}; initial/<layer>/<chunk position number>-<shard>.shard (one set per
           graph chunk, cloud-volume's synthesize_shards over the chunk's meshes, named by its
           GrapheneShardReader.compute_shard_location); dynamic/<id>:0:<x0-x1_y0-y1_z0-z1> (draco).
  ws/graphene_meshes_levels/ the same meshes except layers 3 and 4 (initial and dynamic), which
           are quantized to 17 and 29 nm grids instead of 11 (table "levels").
  ws_cs/   the same voxels at voxel offset 96,40,8 (mip 1: 48,20,8), meshes in
           ws_cs/graphene_meshes shifted accordingly (draco origins included).
  Meshes: per graph chunk and layer, the nodes' voxels at mip 1 over the chunk plus one voxel of
  high padding (padding voxels take the chunk's node of the same object, ambiguous ones resolved
  by connected components, PyChunkedGraph's remap_seg_using_unsafe_dict), zmesh (resolution of
  mip 1, reduction_factor 100, max_error 40), vertices + chunk offset in nm, DracoPy with
  PyChunkedGraph's settings (meshgen.py get_draco_encoding_settings_for_chunk for layer 2, the
  get_next_layer_draco_encoding_settings chain above: an 11 nm grid at every layer here).
  Layer-2 nodes all have meshes except the meshless object's and two others; about 60% of the
  multi-child L3 nodes and half of the L4 ones have their own; new nodes: the two split L2 nodes
  and the split's new L3 have dynamic meshes, the other new nodes none.

Other files under OUT
  graph.json     the double's input: {"format": 2, "tables": {<t>: {"info", "data_dir", "dataset",
                 "mesh": {"initial_ts", "max_layer", "dir"}}}, "n_layers", "n_bits_for_layer_id",
                 "spatial_bit_masks", "fan_out", "created_timestamp", "edit_timestamp",
                 "hierarchy": {"before"|"after": {child: parent}}} (uint64 as decimal strings)
  secrets/cave-secret.json   {"token": TOKEN}
  expected/*.npy             cloud-volume's results (np.save, C order)
  manifests/<table>/<id>.json  below
  double_requests.jsonl      every request the double saw (its --log)
  manifest.json              below

Tables (graph.json; all with "mesh": {"initial_ts": 1695000000, "max_layer": 4, "dir": ...})
  meshes             ws, graphene_meshes, mesh_metadata {"uniform_draco_grid_size": 11.0,
                     "unsharded_mesh_dir": "dynamic", "max_meshed_layer": 4}
  levels             ws, graphene_meshes_levels, mesh_metadata with "draco_grid_sizes"
                     {"2": 11.0, "3": 17.0, "4": 29.0} instead of the uniform size
  chunkstart         ws_cs, chunks_start_at_voxel_offset true
  chunkstart_noflag  ws_cs, chunks_start_at_voxel_offset false (cloud-volume then tests chunk
                     alignment from the origin, not from the voxel offset)

manifest.json (format 1)
  {"format": 1, "generated_by": {script, cloud-volume, cloud-files, DracoPy, zmesh, numpy},
   "token": TOKEN, "forbidden_token": FTOKEN, "bad_token": "...",
   "url_template": "graphene://http://127.0.0.1:{port}/segmentation/table/{table}",
   "double_command": [argv, "OUT" for the fixture directory],
   "fixture": {ids by role: roots_before, roots_after, edit {...}, meshless_root, ...},
   "cases": [{
     "id": "mesh/<table>/<id or ids>/<variant>",
     "table": "<t>",
     "ids": ["<decimal>", ...]        as given to mesh.get
     "options": {...}                 the keyword arguments given: mesh.get's, plus the
                                      constructor's "mip", "timestamp" (unix s), "secrets"
                                      ("<FORBIDDEN>" or the literal bad token; the valid token is
                                      the default and left out) and "info" ("<table info>": the
                                      table's info, given instead of fetched); bounding_box as
                                      [[x0,y0,z0],[x1,y1,z1]] (mip-0 voxels, absolute)
     "fused": bool                    fuse=True: one mesh, "id" null
     "expected": [{"id": "<decimal>" or null, "vertices": "expected/<f>.npy" (float32 Nx3),
                   "faces": "expected/<f>.npy" (uint32 Mx3)}, ...] in cloud-volume's dict order
                 (list(set(ids)): compare by id), [] when allow_missing left every id out, null
                 when the call raised
     "error": null or {"type": "IndexError", "message": "...", "status": <HTTP status>?}
                 (127.0.0.1:<port> in messages as 127.0.0.1:PORT)
     "manifest_requests": [{"method", "path", "query" (first value per name), "body" (text),
                            "status"}] the manifest calls the double saw during mesh.get
     "fragments": total count of fragment names in those answers (status 200 only)}],
   "notes": [cloud-volume behaviour met]}
OUT/manifests/<table>/<id>.json: the double's raw manifest answers for every id a case read:
  [{"variant": "cloudvolume" (a request cloud-volume made) | "speculative" (the same with
    verify=False; "verified", verify=True, when cloud-volume's was speculative) |
    "prepend_seg_ids" (the same plus prepend_seg_ids=true), "path", "query", "body", "status",
    "answer": the exact answer text (JSON, gunzipped)}, ...], three per distinct request
Every verified answer is checked here against the fixture's own model of PyChunkedGraph's rules
(the set of seg ids) and against the files (each "~L/file:offset:size" holds exactly the mesh
written for that id, each dynamic name is cloud-volume's compute_filename); and every successful
case but bypass and use_byte_offsets=False is rebuilt from those answers and files by the rules
of docs/graphene-meshes.md and must equal cloud-volume's arrays exactly.
"""

import contextlib
import hashlib
import importlib.metadata as md
import http.client
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

HERE = Path(__file__).resolve().parent
DOUBLE = HERE.parent / "servers" / "chunkedgraph.py"

N_LAYERS = 5
LAYER_BITS = 8
BITS = {1: 10, 2: 10, 3: 9, 4: 8, 5: 8}
FAN_OUT = 2
GRAPH_CHUNK = (64, 64, 16)  # mip-0 voxels
SIZE = (256, 256, 64)
RES = (8, 8, 40)
STORE_CHUNK = (64, 64, 16)
MESH_MIP = 1
RES1 = (16, 16, 40)
SIZE1 = (128, 128, 64)
BLOCK1 = (32, 32, 16)  # a layer-2 chunk at mip 1
MAX_LAYER = 4
CS_OFFSET = (96, 40, 8)  # mip 0; mip 1 is (48, 20, 8)
CREATED = 1_690_000_000
INITIAL_TS = 1_695_000_000
EDIT = 1_700_000_000
TOKEN = hashlib.sha256(b"graphene_meshes token").hexdigest()[:32]
FORBIDDEN = hashlib.sha256(b"graphene_meshes forbidden token").hexdigest()[:32]
BAD_TOKEN = "badc0ffee0ddf00d"
LEVEL_BINS = {3: 17.0, 4: 29.0}
SHARD_BITS = {2: (2, 0), 3: (1, 0), 4: (0, 1)}  # layer: (minishard bits, shard bits)
MAX_ERROR = 40

OUT = None
NOTES = []


def note(text):
    if text not in NOTES:
        NOTES.append(text)


def seed_of(*parts):
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


# ----------------------------------------------------------------------------------------------
# Labels


def encode(layer, x, y, z, segid):
    b = BITS[layer]
    lo = 64 - LAYER_BITS
    xo, yo, zo = lo - b, lo - 2 * b, lo - 3 * b
    assert max(x, y, z) < 2 ** b and 0 < segid < 2 ** zo
    return (layer << lo) | (x << xo) | (y << yo) | (z << zo) | segid


def layer_of(v):
    return int(v) >> (64 - LAYER_BITS)


def chunk_of(v):
    layer = layer_of(v)
    b = BITS[layer]
    lo = 64 - LAYER_BITS
    m = (1 << b) - 1
    return ((int(v) >> (lo - b)) & m, (int(v) >> (lo - 2 * b)) & m, (int(v) >> (lo - 3 * b)) & m)


# ----------------------------------------------------------------------------------------------
# Supervoxels and the graph

N_BIG = 9
SINGLES = [(0, 3, 1), (3, 0, 2), (1, 2, 3), (2, 1, 0), (3, 3, 3)]  # L2 chunks of the one-chunk objects
MEDIUM = {"center": (64, 64, 16), "radius": (22, 22, 6)}  # 8 L2 chunks of L3 chunk (0,0,0)
MESHLESS = {"center": (192, 160, 40), "radius": (12, 10, 3)}  # 2 L2 chunks
OBJ_SINGLE0 = N_BIG
OBJ_MEDIUM = N_BIG + len(SINGLES)
OBJ_MESHLESS = OBJ_MEDIUM + 1
N_OBJECTS = OBJ_MESHLESS + 1


def make_volume():
    """(mip-0 uint64 supervoxel volume (F order), {sv: object})."""
    rng = np.random.default_rng(seed_of("volume"))
    x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in SIZE), indexing="ij")
    ph = rng.uniform(0, 2 * np.pi, size=6).astype(np.float32)
    X = x * RES[0] + 60 * np.sin(2 * np.pi * y / 90 + ph[0]) + 40 * np.sin(2 * np.pi * z / 20 + ph[1])
    Y = y * RES[1] + 60 * np.sin(2 * np.pi * x / 110 + ph[2]) + 40 * np.sin(2 * np.pi * z / 17 + ph[3])
    Z = z * RES[2] + 80 * np.sin(2 * np.pi * x / 70 + ph[4]) + 80 * np.sin(2 * np.pi * y / 80 + ph[5])
    ext = np.array(SIZE, dtype=np.float64) * RES
    seeds = rng.uniform(0, 1, size=(N_BIG, 3)) * ext
    best = np.full(SIZE, np.inf, dtype=np.float32)
    second = np.full(SIZE, np.inf, dtype=np.float32)
    obj = np.zeros(SIZE, dtype=np.int16)
    for i, s in enumerate(seeds):
        d = np.sqrt((X - s[0]) ** 2 + (Y - s[1]) ** 2 + ((Z - s[2]) * 0.8) ** 2)
        closer = d < best
        second = np.where(closer, best, np.minimum(second, d))
        obj = np.where(closer, i, obj).astype(np.int16)
        best = np.where(closer, d, best)
    obj = obj + 1  # 0: background
    obj[(second - best) < 36] = 0  # membranes
    del best, second, X, Y, Z

    def ellipsoid(center, radius, label):
        box = tuple(slice(max(0, int(np.floor(c - 1.3 * r))), min(n, int(np.ceil(c + 1.3 * r)) + 1))
                    for c, r, n in zip(center, radius, SIZE))
        m = (((x[box] - center[0]) / radius[0]) ** 2 + ((y[box] - center[1]) / radius[1]) ** 2
             + ((z[box] - center[2]) / radius[2]) ** 2)
        sub = obj[box]
        sub[m <= 1.0] = label + 1
        sub[(m > 1.0) & (m <= 1.6)] = 0  # a gap around it

    for k, (cx, cy, cz) in enumerate(SINGLES):
        c = (cx * 64 + 32, cy * 64 + 32, cz * 16 + 8)
        r = (8 + 2 * (k % 3), 7 + (k % 2) * 3, 2.5 + 0.5 * (k % 2))
        ellipsoid(c, r, OBJ_SINGLE0 + k)
    ellipsoid(MEDIUM["center"], MEDIUM["radius"], OBJ_MEDIUM)
    ellipsoid(MESHLESS["center"], MESHLESS["radius"], OBJ_MESHLESS)
    # Supervoxels: object x graph chunk x warped ~20-voxel cell.
    cxw = np.floor((x + 3 * np.sin(2 * np.pi * y / 37 + 1.0)) / 20).astype(np.int64)
    cyw = np.floor((y + 3 * np.sin(2 * np.pi * x / 41 + 2.0)) / 20).astype(np.int64)
    czw = np.floor((z + 1.5 * np.sin(2 * np.pi * x / 29 + 3.0)) / 6).astype(np.int64)
    cell = ((cxw + 1) * 32 + (cyw + 1)) * 32 + (czw + 1)
    gx, gy, gz = (np.floor(a / c).astype(np.int64) for a, c in zip((x, y, z), GRAPH_CHUNK))
    gchunk = (gx * 16 + gy) * 16 + gz
    key = (obj.astype(np.int64) * 4096 + gchunk) * 32768 + cell
    key[obj == 0] = -1
    uniq, inv = np.unique(key.reshape(-1), return_inverse=True)
    ids = np.zeros(len(uniq), dtype=np.uint64)
    sv_obj = {}
    counters = {}
    for i, k in enumerate(uniq.tolist()):
        if k < 0:
            continue
        o, rest = divmod(k, 4096 * 32768)
        g = rest // 32768
        c = (g // 256, (g // 16) % 16, g % 16)
        counters[c] = counters.get(c, 0) + 1
        ids[i] = encode(1, c[0], c[1], c[2], counters[c])
        sv_obj[int(ids[i])] = o - 1
    vol = np.asfortranarray(ids[inv.reshape(-1)].reshape(SIZE))
    present = set(np.unique(vol).tolist()) - {0}
    sv_obj = {k: v for k, v in sv_obj.items() if k in present}
    return vol, sv_obj


def sv_centroids(vol):
    flat = vol.reshape(-1, order="F")
    nz = np.nonzero(flat)[0]
    labels = flat[nz]
    coords = np.stack(np.unravel_index(nz, SIZE, order="F"), axis=1).astype(np.float64)
    uniq, inv = np.unique(labels, return_inverse=True)
    sums = np.zeros((len(uniq), 3))
    np.add.at(sums, inv, coords)
    counts = np.bincount(inv)
    return {int(u): sums[i] / counts[i] for i, u in enumerate(uniq.tolist())}


class Hierarchy:
    """The before graph, its edit, and the choices of meshes."""

    def __init__(self, vol, sv_obj):
        rng = np.random.default_rng(seed_of("hierarchy"))
        self.rng = rng
        cents = sv_centroids(vol)
        before = {}
        # L2 nodes
        pieces = {}
        for sv, o in sorted(sv_obj.items()):
            pieces.setdefault((o, chunk_of(sv)), []).append(sv)
        split_pieces = set()
        big = sorted(k for k, v in pieces.items() if k[0] < N_BIG and len(v) >= 4)
        for i in rng.choice(len(big), size=3, replace=False):
            split_pieces.add(big[int(i)])
        l2_count, l2_obj = {}, {}
        for (o, c), svs in sorted(pieces.items()):
            groups = [svs]
            if (o, c) in split_pieces:
                ax = int(np.argmax(np.ptp([cents[s] for s in svs], axis=0)))
                med = np.median([cents[s][ax] for s in svs])
                groups = [[s for s in svs if cents[s][ax] <= med], [s for s in svs if cents[s][ax] > med]]
            for grp in groups:
                l2_count[c] = l2_count.get(c, 0) + 1
                l2 = encode(2, *c, l2_count[c])
                l2_obj[l2] = o
                for s in grp:
                    before[s] = l2
        self.split_pieces = sorted(split_pieces)
        # Styles
        self.flat = set(int(i) for i in rng.choice([o for o in range(N_BIG)], size=2, replace=False))
        self.chain = {OBJ_MEDIUM}
        # L3: L2 nodes of one object in one layer-3 chunk, when >= 2
        counts = {(2, c): n for c, n in l2_count.items()}

        def fresh(layer, c):
            counts[(layer, c)] = counts.get((layer, c), 0) + 1
            return encode(layer, *c, counts[(layer, c)])

        self.fresh = fresh
        lvl3 = {}
        for l2, o in sorted(l2_obj.items()):
            lvl3.setdefault((o, tuple(v >> 1 for v in chunk_of(l2))), []).append(l2)
        members3 = {}  # object -> level-3 members (L3 nodes or L2 nodes passed up)
        for (o, c3), l2s in sorted(lvl3.items()):
            if len(l2s) >= 2:
                p = fresh(3, c3)
                for l2 in l2s:
                    before[l2] = p
                members3.setdefault(o, []).append(p)
            else:
                members3.setdefault(o, []).extend(l2s)
        self.roots = {}
        for o in sorted(members3):
            mem = sorted(members3[o])
            root = encode(5, 0, 0, 0, o + 1)
            counts[(5, (0, 0, 0))] = max(counts.get((5, (0, 0, 0)), 0), o + 1)
            self.roots[o] = root
            if o in self.flat or len(mem) == 1 and not (o in self.chain and layer_of(mem[0]) == 3):
                top = mem
            else:  # an L4 node over them (in a chain, over a single L3 node)
                q = fresh(4, (0, 0, 0))
                for m in mem:
                    before[m] = q
                top = [q]
            for m in top:
                before[m] = root
        self.before = before
        self.children_b = self._children(before)
        self.sv_obj = sv_obj
        self.cents = cents

    @staticmethod
    def _children(parent):
        ch = {}
        for c, p in parent.items():
            ch.setdefault(p, []).append(c)
        return {k: sorted(v) for k, v in ch.items()}

    def edit(self):
        """The split and the merge (the "after" map and a description)."""
        before, ch = self.before, self.children_b
        after = dict(before)
        fresh = self.fresh
        big_skip = [o for o in range(N_BIG) if o not in self.flat]
        # Split: object A, an L3 node P (child of the root's L4 node) with >= 3 L2 children, one of
        # which (L, not a split piece, >= 2 supervoxels) is split.
        cand = []
        for o in big_skip:
            root = self.roots[o]
            (q,) = ch[root]
            if layer_of(q) != 4:
                continue
            for p in ch[q]:
                if layer_of(p) == 3 and len(ch[p]) >= 3:
                    for l2 in ch[p]:
                        if len(ch[l2]) >= 3:
                            cand.append((o, q, p, l2))
        o_a, Q, P, L = cand[int(self.rng.integers(len(cand)))]
        svs = ch[L]
        c2 = chunk_of(L)
        ax = int(np.argmax(np.ptp([self.cents[s] for s in svs], axis=0)))
        order = sorted(svs, key=lambda s: (self.cents[s][ax], s))
        half = len(order) // 2
        L_a, L_b = fresh(2, c2), fresh(2, c2)
        for s in order[:half]:
            after[s] = L_a
        for s in order[half:]:
            after[s] = L_b
        del after[L]
        P_a = fresh(3, chunk_of(P))
        for l2 in ch[P]:
            if l2 != L:
                after[l2] = P_a
        after[L_a] = P_a
        del after[P]
        Q_a = fresh(4, (0, 0, 0))
        for m in ch[Q]:
            if m != P:
                after[m] = Q_a
        after[P_a] = Q_a
        del after[Q]
        R_a, R_b = fresh(5, (0, 0, 0)), fresh(5, (0, 0, 0))
        after[Q_a] = R_a
        after[L_b] = R_b
        # Merge: objects X, Y (skip style, root -> L4) with L3 nodes in one layer-3 chunk.
        pairs = []
        others = [o for o in big_skip if o != o_a]
        for i, ox in enumerate(others):
            for oy in others[i + 1:]:
                qx, qy = ch[self.roots[ox]][0], ch[self.roots[oy]][0]
                if layer_of(qx) != 4 or layer_of(qy) != 4:
                    continue
                for px in ch[qx]:
                    for py in ch[qy]:
                        if layer_of(px) == 3 and layer_of(py) == 3 and chunk_of(px) == chunk_of(py):
                            pairs.append((ox, oy, qx, qy, px, py))
        ox, oy, Qx, Qy, Px, Py = pairs[int(self.rng.integers(len(pairs)))]
        P_m = fresh(3, chunk_of(Px))
        for l2 in ch[Px] + ch[Py]:
            after[l2] = P_m
        del after[Px], after[Py]
        Q_m = fresh(4, (0, 0, 0))
        for m in ch[Qx] + ch[Qy]:
            if m not in (Px, Py):
                after[m] = Q_m
        after[P_m] = Q_m
        del after[Qx], after[Qy]
        R_m = fresh(5, (0, 0, 0))
        after[Q_m] = R_m
        # Invariant: a node in both graphs has the same children in both.
        ch_a = self._children(after)
        nodes_b = set(before) | set(before.values())
        for p, ks in ch_a.items():
            if p in nodes_b:
                assert ks == ch[p], f"node {p} changed children"
        self.after = after
        self.children_a = ch_a
        self.children = dict(ch)
        self.children.update({k: v for k, v in ch_a.items() if k not in nodes_b})
        self.new_nodes = (set(after) | set(after.values())) - nodes_b
        self.ed = {"split": {"object": o_a, "l2": L, "l2_into": [L_a, L_b], "l3": P, "l3_into": P_a,
                             "l4": Q, "l4_into": Q_a, "root": self.roots[o_a], "root_into": [R_a, R_b]},
                   "merge": {"objects": [ox, oy], "roots": [self.roots[ox], self.roots[oy]], "l3s": [Px, Py],
                             "l3_into": P_m, "l4s": [Qx, Qy], "l4_into": Q_m, "root_into": R_m}}
        return after

    def root_of(self, node, parent):
        while node in parent:
            node = parent[node]
        return node

    def descendants_svs(self, node):
        out, stack = [], [node]
        while stack:
            n = stack.pop()
            if layer_of(n) == 1:
                out.append(n)
            else:
                stack.extend(self.children.get(n, []))
        return out


# ----------------------------------------------------------------------------------------------
# Meshing (PyChunkedGraph's meshgen.py, reduced)


def calculate_quantization_bits_and_range(min_quantization_range, max_draco_bin_size, draco_quantization_bits=None):
    if draco_quantization_bits is None:
        draco_quantization_bits = np.ceil(np.log2(min_quantization_range / max_draco_bin_size + 1))
    num_draco_bins = 2 ** draco_quantization_bits - 1
    draco_bin_size = np.ceil(min_quantization_range / num_draco_bins)
    draco_quantization_range = draco_bin_size * num_draco_bins
    if draco_quantization_range < min_quantization_range + draco_bin_size:
        if draco_bin_size == max_draco_bin_size:
            return calculate_quantization_bits_and_range(min_quantization_range, max_draco_bin_size,
                                                         draco_quantization_bits + 1)
        draco_bin_size = draco_bin_size + 1
        draco_quantization_range = draco_quantization_range + num_draco_bins
    return draco_quantization_bits, draco_quantization_range, draco_bin_size


def block_shape(layer):
    return np.array(BLOCK1, dtype=np.int64) * FAN_OUT ** max(0, layer - 2)


def chunk_offset_nm(layer, c, voxel_offset1):
    return (np.array(c) * block_shape(layer) + np.array(voxel_offset1)) * np.array(RES1, dtype=np.float64)


def l2_settings(c, voxel_offset1, high_padding=1):
    """get_draco_encoding_settings_for_chunk."""
    res = np.array(RES1, dtype=np.float64)
    offset = chunk_offset_nm(2, c, voxel_offset1)
    min_range = max((block_shape(2) + high_padding) * res)
    max_bin = np.floor(min(res) / np.sqrt(2))
    bits, rng, bin_size = calculate_quantization_bits_and_range(min_range, max_bin)
    return {"quantization_bits": bits, "compression_level": 1, "quantization_range": rng,
            "quantization_origin": offset - (offset % bin_size), "create_metadata": True}


def next_layer_settings(prev, layer, c, voxel_offset1):
    """get_next_layer_draco_encoding_settings."""
    res = np.array(RES1, dtype=np.float64)
    old_bin = prev["quantization_range"] // (2 ** prev["quantization_bits"] - 1)
    offset = chunk_offset_nm(layer, c, voxel_offset1)
    min_range = max(block_shape(layer) * res) + 2 * old_bin
    max_bin = np.floor(min(res) / np.sqrt(2))
    bits, rng, bin_size = calculate_quantization_bits_and_range(min_range, max_bin)
    return {"quantization_bits": bits, "compression_level": 1, "quantization_range": rng,
            "quantization_origin": offset - old_bin - ((offset - old_bin) % bin_size), "create_metadata": True}


def layer_settings(layer, c, voxel_offset1):
    """The settings a layer-`layer` mesh of chunk c gets: layer 2's, then the chain up to it (the
    fragments' encoding options do not depend on which child chunk they came from)."""
    s = l2_settings(tuple(v * FAN_OUT ** (layer - 2) for v in c), voxel_offset1)
    for lay in range(3, layer + 1):
        s = next_layer_settings(s, lay, tuple(v >> (layer - lay) for v in c), voxel_offset1)
    return s


def fixed_bin_settings(layer, c, voxel_offset1, bin_size):
    """A grid of bin_size nm (table "levels"): the origin a multiple of it, the range covering
    the chunk, its padding and one bin either side."""
    res = np.array(RES1, dtype=np.float64)
    offset = chunk_offset_nm(layer, c, voxel_offset1)
    min_range = max((block_shape(layer) + 1) * res) + 2 * bin_size
    bits = np.ceil(np.log2(min_range / bin_size + 1))
    rng = bin_size * (2 ** bits - 1)
    return {"quantization_bits": bits, "compression_level": 1, "quantization_range": rng,
            "quantization_origin": (offset - bin_size) - ((offset - bin_size) % bin_size), "create_metadata": True}


def bin_of(settings):
    return settings["quantization_range"] / (2 ** settings["quantization_bits"] - 1)


def remap_seg_using_unsafe_dict(seg, unsafe_dict):
    from scipy import ndimage

    for unsafe_root_id in unsafe_dict.keys():
        bin_seg = seg == unsafe_root_id
        if np.sum(bin_seg) == 0:
            continue
        cc_seg, n_cc = ndimage.label(bin_seg)
        for i_cc in range(1, n_cc + 1):
            bin_cc_seg = cc_seg == i_cc
            overlaps = []
            overlaps.extend(np.unique(seg[-2, :, :][bin_cc_seg[-1, :, :]]))
            overlaps.extend(np.unique(seg[:, -2, :][bin_cc_seg[:, -1, :]]))
            overlaps.extend(np.unique(seg[:, :, -2][bin_cc_seg[:, :, -1]]))
            overlaps = np.unique(np.array(overlaps, dtype=np.uint64))
            linked = overlaps[np.isin(overlaps, unsafe_dict[unsafe_root_id])]
            seg[bin_cc_seg] = 0 if len(linked) == 0 else linked[0]
    return seg


def mesh_chunk(vol1, layer, c, nodes, node_svs, sv_root, root_of_node):
    """zmesh the layer-`layer` chunk c at mip 1 with one voxel of high padding; nodes: the
    chunk's nodes of that layer (in one era). Returns {node: (vertices float32 relative to the
    chunk origin, faces uint32)} for the nodes zmesh found."""
    import zmesh

    block = block_shape(layer)
    lo = np.array(c) * block
    hi = np.minimum(lo + block + 1, SIZE1)
    region = vol1[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    uniq, inv = np.unique(region, return_inverse=True)
    inv = inv.reshape(region.shape)
    sv_node = {}
    for n in nodes:
        for s in node_svs[n]:
            sv_node[s] = n
    cand = {}
    for n in sorted(nodes):
        cand.setdefault(root_of_node[n], []).append(n)
    interior_val = np.array([sv_node.get(int(u), 0) for u in uniq.tolist()], dtype=np.uint64)
    pad_val = np.zeros(len(uniq), dtype=np.uint64)
    unsafe = {}
    for i, u in enumerate(uniq.tolist()):
        if u == 0 or u not in sv_root:
            continue
        r = sv_root[u]
        cs = cand.get(r, [])
        if len(cs) == 1:
            pad_val[i] = cs[0]
        elif len(cs) > 1:
            pad_val[i] = r
            unsafe[r] = np.array(cs, dtype=np.uint64)
    rel = np.meshgrid(*(np.arange(n) for n in region.shape), indexing="ij")
    interior = (rel[0] < block[0]) & (rel[1] < block[1]) & (rel[2] < block[2])
    seg = np.where(interior, interior_val[inv], pad_val[inv]).astype(np.uint64)
    seg = remap_seg_using_unsafe_dict(np.asfortranarray(seg), unsafe)
    mesher = zmesh.Mesher(RES1)
    mesher.mesh(np.asfortranarray(seg))
    out = {}
    present = set(int(i) for i in mesher.ids())
    for n in sorted(nodes):
        if n not in present:
            continue
        m = mesher.get(n, reduction_factor=100, max_error=MAX_ERROR)
        mesher.erase(n)
        out[n] = (np.array(m.vertices, dtype=np.float32), np.array(m.faces, dtype=np.uint32))
    return out


def draco(vertices_rel, faces, layer, c, voxel_offset1, settings):
    import DracoPy

    v = vertices_rel.copy()
    v[:] += chunk_offset_nm(layer, c, voxel_offset1)  # float32, in place, as PyChunkedGraph does
    opts = dict(settings)
    opts["quantization_bits"] = int(opts["quantization_bits"])
    opts["quantization_range"] = float(opts["quantization_range"])
    opts["quantization_origin"] = np.asarray(opts["quantization_origin"], dtype=np.float64)
    buf = DracoPy.encode(v.reshape(-1, 3), faces.reshape(-1, 3), **opts)
    back = DracoPy.decode(buf)
    grid = bin_of(settings)
    pts = np.asarray(back.points, dtype=np.float64)
    assert np.allclose(np.round(pts / grid) * grid, pts, atol=1e-3), "draco grid"
    return buf


class Meshes:
    """Which nodes have meshes, the meshes themselves (relative vertices), per era."""

    def __init__(self, H, vol):
        self.H = H
        rng = np.random.default_rng(seed_of("meshes"))
        self.vol1 = np.asfortranarray(vol[::2, ::2, :])
        assert self.vol1.shape == SIZE1
        nodes_b = set(H.before) | set(H.before.values())
        nodes_a = set(H.after) | set(H.after.values())
        self.nodes_b, self.nodes_a = nodes_b, nodes_a
        self.node_svs = {n: H.descendants_svs(n) for n in nodes_b | nodes_a if layer_of(n) >= 2}
        self.sv_root_b = {s: H.root_of(s, H.before) for s in H.sv_obj}
        self.sv_root_a = {s: H.root_of(s, H.after) for s in H.sv_obj}
        self.root_b = {n: H.root_of(n, H.before) for n in nodes_b}
        self.root_a = {n: H.root_of(n, H.after) for n in nodes_a}
        ed = H.ed
        involved = {ed["split"]["object"], *ed["merge"]["objects"]}
        meshless_root = H.roots[OBJ_MESHLESS]
        # Initial meshes: every L2 node but the meshless object's and two others; ~60% of the
        # multi-child L3 nodes, half of the L4 ones (never the meshless object's).
        l2s = sorted(n for n in nodes_b if layer_of(n) == 2)
        pool = [n for n in l2s if H.sv_obj[self.node_svs[n][0]] < N_BIG and H.sv_obj[self.node_svs[n][0]] not in involved
                and len(H.children[H.before[n]]) > 2]
        self.l2_dropped = sorted(int(pool[int(i)]) for i in rng.choice(len(pool), size=2, replace=False))
        want = set(n for n in l2s if self.root_b[n] != meshless_root) - set(self.l2_dropped)
        for layer, p in ((3, 0.6), (4, 0.5)):
            multi = sorted(n for n in nodes_b if layer_of(n) == layer and len(H.children[n]) > 1
                           and self.root_b[n] != meshless_root)
            pick = rng.uniform(size=len(multi)) < p
            want |= set(n for n, k in zip(multi, pick) if k)
        self.initial = {}  # node -> (vertices, faces)
        for layer in (2, 3, 4):
            by_chunk = {}
            for n in nodes_b:
                if layer_of(n) == layer:
                    by_chunk.setdefault(chunk_of(n), []).append(n)
            for c, ns in sorted(by_chunk.items()):
                got = mesh_chunk(self.vol1, layer, c, ns, self.node_svs, self.sv_root_b, self.root_b)
                for n, m in got.items():
                    if n in want and len(m[1]) > 0:
                        self.initial[n] = m
        # Dynamic meshes: the split's two L2 nodes and its new L3.
        self.dynamic = {}
        for n in ed["split"]["l2_into"] + [ed["split"]["l3_into"]]:
            layer, c = layer_of(n), chunk_of(n)
            ns = [m for m in nodes_a if layer_of(m) == layer and chunk_of(m) == c]
            got = mesh_chunk(self.vol1, layer, c, ns, self.node_svs, self.sv_root_a, self.root_a)
            assert n in got and len(got[n][1]) > 0, f"no dynamic mesh for {n}"
            self.dynamic[n] = got[n]

    def encode_all(self, voxel_offset1, levels=False):
        """{node: draco bytes} for the initial and the dynamic meshes."""
        def settings(layer, c):
            if levels and layer in LEVEL_BINS:
                return fixed_bin_settings(layer, c, voxel_offset1, LEVEL_BINS[layer])
            return layer_settings(layer, c, voxel_offset1)

        out = {}
        for group in (self.initial, self.dynamic):
            enc = {}
            for n, (v, f) in sorted(group.items()):
                layer, c = layer_of(n), chunk_of(n)
                enc[n] = draco(v, f, layer, c, voxel_offset1, settings(layer, c))
            out[id(group)] = enc
        return out[id(self.initial)], out[id(self.dynamic)]


def sharding_spec(layer):
    mb, sb = SHARD_BITS[layer]
    return {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0, "hash": "murmurhash3_x86_128",
            "minishard_bits": mb, "shard_bits": sb, "minishard_index_encoding": "gzip", "data_encoding": "raw"}


def scale(mip, offset0):
    if mip == 0:
        size, off, res = SIZE, offset0, RES
    else:
        size, off, res = SIZE1, (offset0[0] // 2, offset0[1] // 2, offset0[2]), RES1
    return {"key": "_".join(str(r) for r in res), "size": list(size), "voxel_offset": list(off),
            "resolution": list(res), "chunk_sizes": [list(STORE_CHUNK)], "encoding": "compressed_segmentation",
            "compressed_segmentation_block_size": [8, 8, 8]}


def write_watershed(name, vol, vol1, offset0):
    from cloudvolume import CloudVolume

    info = {"type": "segmentation", "data_type": "uint64", "num_channels": 1,
            "scales": [scale(0, offset0), scale(1, offset0)]}
    path = "file://" + str(OUT / name)
    CloudVolume(path, info=info, progress=False, compress="gzip").commit_info()
    for mip, data in ((0, vol), (1, vol1)):
        v = CloudVolume(path, mip=mip, progress=False, compress="gzip")
        v[v.bounds.to_slices()] = data
    return info


def table_info(ws_info, mesh_dir, mesh_metadata, chunks_start):
    """PyChunkedGraph's handle_info: the watershed info plus the graph's (meta.dataset_info)."""
    info = json.loads(json.dumps(ws_info))
    info.update({
        "mesh": mesh_dir,
        "mesh_metadata": mesh_metadata,
        "chunks_start_at_voxel_offset": chunks_start,
        "graph": {"chunk_size": list(GRAPH_CHUNK), "bounding_box": [2048, 2048, 512],
                  "n_bits_for_layer_id": LAYER_BITS, "cv_mip": 0, "n_layers": N_LAYERS,
                  "spatial_bit_masks": {str(k): v for k, v in BITS.items()}, "fan_out": FAN_OUT},
        "app": {"supported_api_versions": [0, 1]},
        "sharded_mesh": True,
        "verify_mesh": False,
    })
    return info


def write_mesh_dir(ws_name, mesh_dir, info, initial, dynamic):
    """Mesh info, initial shards (per layer and graph chunk), dynamic files. Returns
    {node: (shard path relative to the mesh dir, draco bytes)} for the initial meshes."""
    from cloudvolume import CloudVolume
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

    root = OUT / ws_name / mesh_dir
    (root / "initial").mkdir(parents=True)
    (root / "dynamic").mkdir()
    mesh_info = {"@type": "neuroglancer_legacy_mesh", "mip": MESH_MIP, "chunk_size": list(BLOCK1),
                 "sharding": {str(L): sharding_spec(L) for L in (2, 3, 4)}}
    (root / "info").write_text(json.dumps(mesh_info))
    cv_info = dict(info)
    cv_info["data_dir"] = "file://" + str(OUT / ws_name)
    cv = CloudVolume("graphene://https://localhost/segmentation/table/dummy", mesh_dir=mesh_dir, info=cv_info,
                     secrets=TOKEN, progress=False)
    readers = cv.mesh.readers
    where = {}
    by_chunk = {}
    for n, buf in initial.items():
        by_chunk.setdefault((layer_of(n), chunk_of(n)), {})[n] = buf
    for (layer, c), data in sorted(by_chunk.items()):
        spec = ShardingSpecification.from_dict(sharding_spec(layer))
        files = spec.synthesize_shards({int(k): v for k, v in data.items()})
        pos = int(cv.meta.decode_chunk_position_number(next(iter(data))))
        (root / "initial" / str(layer)).mkdir(exist_ok=True)
        for fname, binary in sorted(files.items()):
            name = f"{pos}-{fname}"
            (root / "initial" / str(layer) / name).write_bytes(binary)
        for n in data:
            fname, _ = readers[layer].compute_shard_location(n)
            assert f"{fname[len(str(pos)) + 1:]}" in files, (fname, list(files))
            where[n] = (f"initial/{layer}/{fname}", data[n])
    for n, buf in dynamic.items():
        (root / "dynamic" / cv.mesh.compute_filename(n)).write_bytes(buf)
    return where


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

    def url(self, table):
        return f"graphene://http://127.0.0.1:{self.port}/segmentation/table/{table}"

    def raw(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            if r.getheader("Content-Encoding") == "gzip":
                import gzip
                data = gzip.decompress(data)
            return r.status, data
        finally:
            conn.close()

    def control(self, **cmd):
        return json.loads(self.raw("POST", "/__control", json.dumps(cmd).encode())[1])

    def requests(self):
        return json.loads(self.raw("GET", "/__requests")[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ----------------------------------------------------------------------------------------------
# Recording


class QuickPoll:
    """cloud-files' ThreadedQueue polls its queue every 0.1 s (`time.sleep(0.1)`), which each
    sharded cloud-volume read pays even on file://; poll every 0.1 ms (make_layers.py's fix)."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds):
        time.sleep(min(seconds, 0.0001))


def stem_of(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


class Runner:
    def __init__(self, double, CloudVolume, infos):
        self.double = double
        self.CloudVolume = CloudVolume
        self.infos = infos
        self.cases = []
        self.cvs = {}
        self.seen = {}  # (table, id) -> [(query, body)]
        (OUT / "expected").mkdir()

    def open(self, table, **ctor):
        key = (table, json.dumps(ctor, sort_keys=True, default=str))
        if key not in self.cvs:
            kw = dict(ctor)
            kw.setdefault("secrets", TOKEN)
            if kw.get("info") == "<table info>":
                kw["info"] = json.loads(json.dumps(self.infos["meshes"]))
                kw["info"]["data_dir"] = "file://" + str(OUT / "ws")
            self.cvs[key] = self.CloudVolume(self.double.url(table), progress=False, **kw)
        return self.cvs[key]

    def run(self, cid, table, ids, options=None, ctor=None, expect=None):
        """One mesh.get; expect: None (success) or the exception class name it must raise."""
        options, ctor = dict(options or {}), dict(ctor or {})
        ids = [int(i) for i in ids]
        vol = self.open(table, **ctor)
        self.double.control(clear_log=True)
        printed = io.StringIO()
        res, err = None, None
        call = dict(options)
        if "bounding_box" in call:
            from cloudvolume import Bbox
            call["bounding_box"] = Bbox(call["bounding_box"][0], call["bounding_box"][1])
        with contextlib.redirect_stdout(printed):
            try:
                res = vol.mesh.get(ids, **call)
            except Exception as e:  # noqa: BLE001 - recorded
                err = e
        if printed.getvalue().strip():
            for line in sorted(set(printed.getvalue().strip().splitlines())):
                note(f"cloud-volume printed during mesh.get: {line!r} (ids above layer 2 with "
                     f"deduplicate_chunk_boundaries=True and remove_duplicate_vertices=False)")
        got = type(err).__name__ if err is not None else None
        if got != expect:
            raise SystemExit(f"{cid}: expected {expect or 'success'}, got {got}: {err!r}")
        reqs = [r for r in self.double.requests() if r["route"] == "manifest"]
        mreqs = [{"method": r["method"], "path": r["path"], "query": r["query"], "body": r["body"],
                  "status": r["status"]} for r in reqs]
        for r in reqs:
            m = re.search(r"/manifest/(\d+):0$", r["path"])
            if m and r["status"] == 200:
                lst = self.seen.setdefault((r["table"], m.group(1)), [])
                if (r["query"], r["body"]) not in lst:
                    lst.append((r["query"], r["body"]))
        expected = None
        fused = bool(options.get("fuse"))
        if err is None:
            expected = []
            meshes = [(None, res)] if fused else list(res.items())
            for k, (segid, mesh) in enumerate(meshes):
                name = stem_of(cid) + (f"__{segid}" if segid is not None else "__fused")
                v = np.ascontiguousarray(mesh.vertices, dtype=np.float32).reshape(-1, 3)
                f = np.ascontiguousarray(mesh.faces, dtype=np.uint32).reshape(-1, 3)
                assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.uint32
                np.save(OUT / "expected" / f"{name}_vertices.npy", v)
                np.save(OUT / "expected" / f"{name}_faces.npy", f)
                expected.append({"id": None if segid is None else str(int(segid)),
                                 "vertices": f"expected/{name}_vertices.npy", "faces": f"expected/{name}_faces.npy"})
        error = None
        if err is not None:
            msg = str(err).replace(f"127.0.0.1:{self.double.port}", "127.0.0.1:PORT")
            error = {"type": type(err).__name__, "message": msg[:500]}
            resp = getattr(err, "response", None)
            if resp is not None and getattr(resp, "status_code", None) is not None:
                error["status"] = int(resp.status_code)
        opts = {}
        for k, v in ctor.items():
            opts[k] = v if k != "secrets" else ("<FORBIDDEN>" if v == FORBIDDEN else v)
        opts.update(options)
        case = {"id": cid, "table": table, "ids": [str(i) for i in ids], "options": opts, "fused": fused,
                "expected": expected, "error": error, "manifest_requests": mreqs,
                "fragments": sum(r["n_fragments"] or 0 for r in reqs if r["status"] == 200)}
        assert cid not in {c["id"] for c in self.cases}, cid
        self.cases.append(case)
        return case


def replay_manifests(double, seen):
    """OUT/manifests/<table>/<id>.json: the double's answers to cloud-volume's requests, and to
    the speculative and prepend_seg_ids variants of them."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    written = {}
    for (table, ident), reqs in sorted(seen.items()):
        out = []
        for query, body in reqs:
            verified = query.get("verify") in ("True", "true", "1")
            variants = [("cloudvolume", dict(query)),
                        ("speculative", {**query, "verify": "False"}) if verified else ("verified", {**query, "verify": "True"}),
                        ("prepend_seg_ids", {**query, "prepend_seg_ids": "true"})]
            for variant, q in variants:
                path = f"/meshing/api/v1/table/{table}/manifest/{ident}:0"
                full = path + ("?" + urllib.parse.urlencode(q) if q else "")
                status, data = double.raw("GET", full, body=body.encode() if body else None, headers=auth)
                out.append({"variant": variant, "path": path, "query": q, "body": body, "status": status,
                            "answer": data.decode()})
        d = OUT / "manifests" / table
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{ident}.json").write_text(json.dumps(out, indent=1))
        written[(table, ident)] = out
    return written


def model_manifest(H, M, node, start_layer):
    """The seg ids PyChunkedGraph's verified manifest lists, by its rules (as a set)."""
    def walk():
        if layer_of(node) == 2:
            return [node]
        out, parents = [], [node]
        while parents:
            kids = [c for p in parents for c in H.children.get(p, [])]
            out += [c for c in kids if layer_of(c) <= start_layer]
            parents = [c for c in kids if layer_of(c) > start_layer]
        return out

    def resolve(n):
        if layer_of(n) < 2:
            return []
        kids = H.children.get(n, [])
        if n not in H.new_nodes:
            if layer_of(n) > 2 and len(kids) == 1:
                return resolve(kids[0])
            if n in M.initial:
                return [n]
        elif n in M.dynamic:
            return [n]
        return [x for c in kids for x in resolve(c)] if layer_of(n) > 2 else []

    return {x for n in walk() for x in resolve(n)}


def check_answers(H, M, answers, wheres, infos):
    """The double's manifests against this fixture's own model: seg ids, shard byte ranges
    holding exactly the meshes written, dynamic names. Returns the number of checks."""
    n = 0
    for (table, ident), out in answers.items():
        node = int(ident)
        where, dyn_names = wheres[table]
        for a in out:
            assert a["status"] == 200, (table, ident, a)
            ans = json.loads(a["answer"])
            assert a["answer"] == json.dumps(ans, sort_keys=True, separators=(",", ":")) + "\n", "Flask's JSON"
            frags, segs = ans["fragments"], [int(s) for s in ans["seg_ids"]]
            assert len(frags) == len(segs) == len(set(segs)), (table, ident)
            start = json.loads(a["body"])["start_layer"] if a["body"] else MAX_LAYER
            if a["query"].get("verify") not in ("True", "true", "1"):  # speculative
                for f, s in zip(frags, segs):
                    if a["variant"] == "prepend_seg_ids":
                        assert f.startswith(f"~{s}:"), f
                        f = f[len(f"~{s}:"):]
                    if s in H.new_nodes:
                        assert f == f"{s}:0:" + f.split(":0:", 1)[1], f
                    else:
                        m = re.fullmatch(r"~(\d+):(\d+):(\d+):(\d+-[0-9a-f]+\.shard):(\d+)", f)
                        assert m and int(m.group(1)) == s and int(m.group(2)) == layer_of(s), f
                        if s in where:
                            assert where[s][0] == f"initial/{m.group(2)}/{m.group(4)}", (f, where[s][0])
                    n += 1
                continue
            if "bounds" not in a["query"]:
                want = model_manifest(H, M, node, start)
                assert set(segs) == want, (table, ident, sorted(set(segs) ^ want))
            for f, s in zip(frags, segs):
                if a["variant"] == "prepend_seg_ids":
                    assert f.startswith(f"~{s}:"), f
                    f = f[len(f"~{s}:"):]
                if f.startswith("~"):
                    m = re.fullmatch(r"~(\d+)/(\d+-[0-9a-f]+\.shard):(\d+):(\d+)", f)
                    assert m, f
                    rel, data = where[s]
                    assert rel == f"initial/{m.group(1)}/{m.group(2)}", (rel, f)
                    path = OUT / infos[table]["_ws"] / infos[table]["mesh"] / rel
                    with open(path, "rb") as fh:
                        fh.seek(int(m.group(3)))
                        assert fh.read(int(m.group(4))) == data, f
                else:
                    assert dyn_names[s] == f, (f, dyn_names.get(s))
                n += 1
    return n


def emulate(case, answers, infos):
    """cloud-volume's mesh.get for a case that went through the verified manifest, rebuilt from
    the manifest answers and the files with the rules docs/graphene-meshes.md states (fragment
    order on file://: the dynamic ones in reverse manifest order, then the initial ones in
    reverse manifest order). Returns [(segid or None, vertices, faces)]."""
    from cloudvolume.mesh import Mesh, is_draco_chunk_aligned

    info = infos[case["table"]]
    opts = case["options"]
    mip = opts.get("mip", 0)
    scales = info["scales"]
    res = lambda m: np.array(scales[m]["resolution"], dtype=np.float64)  # noqa: E731
    flag = info["chunks_start_at_voxel_offset"]
    meta = info["mesh_metadata"]

    def grid(layer):
        if "uniform_draco_grid_size" in meta:
            return meta["uniform_draco_grid_size"]
        return meta["draco_grid_sizes"][str(layer)]

    ws_dir = OUT / info["_ws"]
    mesh_dir = ws_dir / info["mesh"]
    reqs = iter(r for r in case["manifest_requests"])
    out = []
    for ident in list(set(int(i) for i in case["ids"])):  # mesh.get's own order
        r = next(reqs)
        ans = next(a for a in answers[(case["table"], str(ident))]
                   if a["variant"] == "cloudvolume" and a["query"] == r["query"] and a["body"] == r["body"])
        body = json.loads(ans["answer"])
        dyn, ini = [], []
        for f, sid in zip(body["fragments"], body["seg_ids"]):
            if f.startswith("~"):
                m = re.fullmatch(r"~(\d+)/([\d-]+\.shard):(\d+):(\d+)", f)
                with open(mesh_dir / "initial" / m.group(1) / m.group(2), "rb") as fh:
                    fh.seek(int(m.group(3)))
                    ini.append((int(sid), fh.read(int(m.group(4)))))
            else:
                dyn.append((int(f.split(":")[0]), (mesh_dir / meta["unsharded_mesh_dir"] / f).read_bytes()))
        frags = [Mesh.from_draco(b, segid=sid) for sid, b in dyn[::-1] + ini[::-1]]
        if not frags:
            out.append((ident, None, None))  # IndexError("No meshes found.")
            continue
        g = grid(layer_of(frags[0].segid))
        voff = np.array(scales[1]["voxel_offset"]) if flag else np.zeros(3)
        lvl2_nm = np.array(scales[1]["chunk_sizes"][0]) * res(mip)
        masks = [is_draco_chunk_aligned(m.vertices - voff * res(1), lvl2_nm * 2 ** (layer_of(m.segid) - 2), g)
                 for m in frags]
        mesh = Mesh.concatenate(*frags).deduplicate_vertices(np.concatenate(masks))
        if opts.get("remove_duplicate_vertices"):
            mesh = mesh.consolidate()
        elif opts.get("deduplicate_chunk_boundaries", True) and layer_of(ident) == 2:
            off = (np.array(scales[mip]["voxel_offset"]) if flag else np.zeros(3)) * res(mip)
            mesh = mesh.deduplicate_chunk_boundaries(np.array(info["graph"]["chunk_size"]) * res(mip), offset=off,
                                                     is_draco=True, draco_grid_size=grid(2))
        out.append((ident, mesh.vertices, mesh.faces))
    if case["fused"]:
        meshes = [Mesh(v, f) for _, v, f in out if v is not None]
        m = Mesh.concatenate(*meshes).consolidate()
        return [(None, m.vertices, m.faces)]
    return [(i, v, f) for i, v, f in out if v is not None or not case["options"].get("allow_missing")]


def check_emulation(cases, answers, infos):
    n = 0
    for c in cases:
        o = c["options"]
        if c["error"] or o.get("bypass") or o.get("use_byte_offsets") is False:
            continue
        got = emulate(c, answers, infos)
        got = [g for g in got if g[1] is not None]
        assert len(got) == len(c["expected"]), c["id"]
        for (sid, v, f), e in zip(got, c["expected"]):
            ev, ef = np.load(OUT / e["vertices"]), np.load(OUT / e["faces"])
            assert (e["id"] is None and sid is None) or e["id"] == str(sid), (c["id"], e["id"], sid)
            assert np.array_equal(ev, np.asarray(v, dtype=np.float32).reshape(-1, 3)), c["id"]
            assert np.array_equal(ef, np.asarray(f, dtype=np.uint32).reshape(-1, 3)), c["id"]
        n += 1
    note(f"{n} recorded cases (all but errors, bypass and use_byte_offsets=False) were rebuilt exactly "
         "from the manifest answers and the mesh files by the stitching rules of docs/graphene-meshes.md, "
         "fragments ordered as cloud-files on file:// yields them: the dynamic fragments in reverse "
         "manifest order, then the initial ones in reverse manifest order")
    return n


def case_notes(cases, roles):
    """Facts the recorded cases show, checked here."""
    by = {c["id"]: c for c in cases}

    def arrays(cid):
        return [(e["id"], np.load(OUT / e["vertices"]).tobytes(), np.load(OUT / e["faces"]).tobytes())
                for e in by[cid]["expected"]]

    ra, l2, l3 = roles["roots_created_by_the_edit"][0], roles["l2_with_mesh"], roles["l3_with_mesh"]
    assert arrays(f"mesh/meshes/{ra}/open_timestamp_before_edit") == arrays(f"mesh/meshes/{ra}/default")
    assert all("timestamp" not in r["query"] for c in cases for r in c["manifest_requests"])
    note("CloudVolume(timestamp=...) does not reach the manifest (no timestamp parameter): a root made "
         "by the edit reads the same with a timestamp from before the edit; superseded roots still read, "
         "as their nodes never change")
    assert arrays(f"mesh/meshes/{l2}/no_chunk_dedup") == arrays(f"mesh/meshes/{l2}/default")
    note("for a layer-2 id, deduplicate_chunk_boundaries=False changes nothing here: the stitching step "
         "already merged the chunk-aligned pairs with the same chunk size (watershed chunk at the mesh mip "
         "x resolution of the config mip = graph chunk x mip-0 resolution = 512x512x640 nm)")
    (e1,), (e2,) = by[f"mesh/meshes/{ra}/bounding_box"]["expected"], by[f"mesh/meshes/{ra}/bounding_box_no_byte_offsets"]["expected"]
    v1, v2 = np.load(OUT / e1["vertices"]), np.load(OUT / e2["vertices"])
    f1, f2 = np.load(OUT / e1["faces"]), np.load(OUT / e2["faces"])
    assert np.array_equal(np.unique(v1, axis=0), np.unique(v2, axis=0)) and len(f1) == len(f2)
    same = np.array_equal(v1, v2) and np.array_equal(f1, f2)
    note("bounding_box sends bounds=x0-x1_y0-y1_z0-z1 (mip-0 voxels) and start_layer 2; with "
         "use_byte_offsets=False the manifest is the speculative one (verify=False) and the meshes come "
         "from get_meshes_on_bypass(allow_missing=True) in that function's dict order (dynamic files "
         "found, then shards layer by layer): "
         + ("the same arrays here" if same else "the same vertices and face count here, in another order"))
    assert arrays(f"mesh/meshes/{l3}/bypass") != arrays(f"mesh/meshes/{l3}/default")
    note("bypass=True skips the manifest and reads the id's own mesh (dynamic file, else its shard): for an "
         "L3 node with its own initial mesh that differs from the default, which asks the manifest with "
         "start_layer 3 and so stitches the node's children")
    assert arrays(f"mesh/chunkstart/{ra}/default") != arrays(f"mesh/chunkstart_noflag/{ra}/default")
    note("chunks_start_at_voxel_offset=false over a watershed with voxel offset 96,40,8: cloud-volume "
         "tests alignment from the origin, so vertices on chunk faces are not merged (more vertices)")
    assert by[f"mesh/meshes/{ra}/no_byte_offsets"]["error"]["type"] == "TypeError"
    note("use_byte_offsets=False without a bounding box raises TypeError before any request: "
         "get_fragment_labels passes level=None and fetch_manifest_remote does min(None, max_meshed_layer)")
    note("a manifest with no fragments (every descendant without a mesh, or an L2 without one) raises "
         "IndexError('No meshes found.') from get_chunk_aligned_mask; allow_missing=True leaves the id out "
         "of the result dict")
    note("fuse=True concatenates the meshes in list(set(ids)) order and consolidates (np.unique of "
         "vertices, faces remapped and np.unique'd), so the fused result does not depend on any order; nor "
         "does remove_duplicate_vertices=True (consolidate per id)")


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
    from cloudvolume import CloudVolume

    cloudfiles.threaded_queue.time = QuickPoll()
    assert cloudvolume.secrets.CLOUD_VOLUME_DIR == str(OUT)

    # --- fixture
    vol, sv_obj = make_volume()
    H = Hierarchy(vol, sv_obj)
    H.edit()
    M = Meshes(H, vol)
    t_mesh = time.time()
    grid = bin_of(layer_settings(2, (0, 0, 0), (0, 0, 0)))
    for layer in (2, 3, 4):
        for off in ((0, 0, 0), (48, 20, 8)):
            assert bin_of(layer_settings(layer, (0, 0, 0), off)) == grid
    ws_info = write_watershed("ws", vol, M.vol1, (0, 0, 0))
    cs_info = write_watershed("ws_cs", vol, M.vol1, CS_OFFSET)
    uniform = {"uniform_draco_grid_size": float(grid), "unsharded_mesh_dir": "dynamic", "max_meshed_layer": MAX_LAYER}
    levels = {"draco_grid_sizes": {"2": float(grid), **{str(k): v for k, v in LEVEL_BINS.items()}},
              "unsharded_mesh_dir": "dynamic", "max_meshed_layer": MAX_LAYER}
    spec = {"meshes": ("ws", "graphene_meshes", uniform, True, (0, 0, 0), False),
            "levels": ("ws", "graphene_meshes_levels", levels, True, (0, 0, 0), True),
            "chunkstart": ("ws_cs", "graphene_meshes", uniform, True, (48, 20, 8), False),
            "chunkstart_noflag": ("ws_cs", "graphene_meshes", uniform, False, (48, 20, 8), False)}
    infos, wheres, tables, written = {}, {}, {}, {}
    for t, (ws, mdir, meta, flag, off1, lv) in spec.items():
        infos[t] = table_info(ws_info if ws == "ws" else cs_info, mdir, meta, flag)
        if (ws, mdir) not in written:
            initial, dynamic = M.encode_all(off1, levels=lv)
            where = write_mesh_dir(ws, mdir, infos[t], initial, dynamic)
            probe = CloudVolume("graphene://https://localhost/segmentation/table/dummy", mesh_dir=mdir,
                                info={**infos[t], "data_dir": "file://" + str(OUT / ws)}, secrets=TOKEN, progress=False)
            written[(ws, mdir)] = (where, {n: probe.mesh.compute_filename(n) for n in dynamic})
        wheres[t] = written[(ws, mdir)]
        tables[t] = {"info": infos[t], "data_dir": ws, "dataset": "mesh_dataset",
                     "mesh": {"initial_ts": INITIAL_TS, "max_layer": MAX_LAYER, "dir": mdir}}
    graph = {
        "format": 2, "tables": tables, "n_layers": N_LAYERS, "n_bits_for_layer_id": LAYER_BITS,
        "spatial_bit_masks": {str(k): v for k, v in BITS.items()}, "fan_out": FAN_OUT,
        "created_timestamp": CREATED, "edit_timestamp": EDIT,
        "hierarchy": {"before": {str(k): str(v) for k, v in sorted(H.before.items())},
                      "after": {str(k): str(v) for k, v in sorted(H.after.items())}},
    }
    (OUT / "graph.json").write_text(json.dumps(graph, indent=0))
    for t in infos:
        infos[t]["_ws"] = tables[t]["data_dir"]

    double = Double()
    try:
        run = Runner(double, CloudVolume, {t: {k: v for k, v in i.items() if k != "_ws"} for t, i in infos.items()})
        roles = run_cases(run, H, M)
        answers = replay_manifests(double, run.seen)
        n_checks = check_answers(H, M, answers, wheres, infos)
        n_emulated = check_emulation(run.cases, answers, infos)
        case_notes(run.cases, roles)
    finally:
        double.stop()

    counts = {}
    for c in run.cases:
        counts[c["table"]] = counts.get(c["table"], 0) + 1
    manifest = {
        "format": 1,
        "generated_by": {"script": "tests/reference/graphene_meshes.py", "cloud-volume": md.version("cloud-volume"),
                         "cloud-files": md.version("cloud-files"), "DracoPy": md.version("DracoPy"),
                         "zmesh": md.version("zmesh"), "numpy": np.__version__},
        "token": TOKEN, "forbidden_token": FORBIDDEN, "bad_token": BAD_TOKEN,
        "url_template": "graphene://http://127.0.0.1:{port}/segmentation/table/{table}",
        "double_command": ["python", "tests/servers/chunkedgraph.py", "--fixture", "OUT", "--token", TOKEN,
                           "--forbidden-token", FORBIDDEN, "--port", "0"],
        "fixture": roles,
        "cases": run.cases,
        "notes": NOTES,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1))
    n_err = sum(1 for c in run.cases if c["error"])
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"graphene_meshes: {len(run.cases)} cases ({', '.join(f'{k} {v}' for k, v in counts.items())}; "
          f"{n_err} errors), {len(M.initial)} initial + {len(M.dynamic)} dynamic meshes, "
          f"{len(answers)} manifests replayed, {n_checks} fragment checks, {n_emulated} cases rebuilt, {total / 1e6:.1f} MB, "
          f"meshing {t_mesh - t0:.1f} s, total {time.time() - t0:.1f} s")


def run_cases(run, H, M):
    ed = H.ed
    sp, mg = ed["split"], ed["merge"]
    roots_before = sorted(H.roots.values())
    roots_new = list(sp["root_into"]) + [mg["root_into"]]
    superseded = [sp["root"]] + list(mg["roots"])
    meshless = H.roots[OBJ_MESHLESS]
    singles = [H.roots[OBJ_SINGLE0 + k] for k in range(len(SINGLES))]
    chain = H.roots[OBJ_MEDIUM]
    flat = [H.roots[o] for o in sorted(H.flat)]
    big = [H.roots[o] for o in range(N_BIG)]
    involved = set(superseded)
    l2_meshed = next(n for n in sorted(M.initial) if layer_of(n) == 2 and H.sv_obj[M.node_svs[n][0]] < N_BIG
                     and all(1 <= v <= 2 for v in chunk_of(n)[:2]) and M.root_b[n] not in involved)
    l2_dyn = sp["l2_into"][0]
    l2_unmeshed = M.l2_dropped[0]
    l3_meshed = next(n for n in sorted(M.initial) if layer_of(n) == 3 and n in M.nodes_a)
    l3_new, l4_old, l4_new = sp["l3_into"], sp["l4"], sp["l4_into"]
    big_root = next(r for r in big if r not in involved and r not in flat)
    roles = {
        "roots_before": [str(r) for r in roots_before],
        "roots_after": [str(r) for r in sorted((set(roots_before) - set(superseded)) | set(roots_new))],
        "roots_superseded_by_the_edit": [str(r) for r in superseded],
        "roots_created_by_the_edit": [str(r) for r in roots_new],
        "edit": json.loads(json.dumps(ed, default=int), parse_int=str),
        "meshless_root": str(meshless), "single_l2_roots": [str(r) for r in singles],
        "chain_root": str(chain), "flat_roots": [str(r) for r in flat],
        "l2_with_mesh": str(l2_meshed), "l2_dynamic": str(l2_dyn), "l2_without_mesh": str(l2_unmeshed),
        "l3_with_mesh": str(l3_meshed), "l3_new_with_dynamic_mesh": str(l3_new), "l4_old": str(l4_old),
        "l4_new": str(l4_new),
        "initial_meshes": {str(L): sum(1 for n in M.initial if layer_of(n) == L) for L in (2, 3, 4)},
        "dynamic_meshes": [str(n) for n in sorted(M.dynamic)],
        "created_timestamp": CREATED, "edit_timestamp": EDIT, "initial_ts": INITIAL_TS,
    }
    T = "meshes"
    # Defaults: every root (those the edit superseded still read: nodes are immutable), then
    # the roots it made, then single nodes below the root layer.
    for r in roots_before + roots_new:
        run.run(f"mesh/{T}/{r}/default", T, [r], expect="IndexError" if r == meshless else None)
    for n in (l2_meshed, l2_dyn, l3_meshed, l3_new, l4_old, l4_new):
        run.run(f"mesh/{T}/{n}/default", T, [n])
    run.run(f"mesh/{T}/{l2_unmeshed}/default", T, [l2_unmeshed], expect="IndexError")
    for n in (mg["root_into"], sp["root_into"][0], big_root, l2_meshed):
        run.run(f"mesh/{T}/{n}/remove_duplicate_vertices", T, [n], {"remove_duplicate_vertices": True})
    for n in (l2_meshed, l2_dyn, sp["root_into"][0]):
        run.run(f"mesh/{T}/{n}/no_chunk_dedup", T, [n], {"deduplicate_chunk_boundaries": False})
    three = roots_new
    run.run(f"mesh/{T}/{'+'.join(map(str, three))}/fuse", T, three, {"fuse": True})
    mixed = [singles[0], l2_meshed, chain]
    run.run(f"mesh/{T}/{'+'.join(map(str, mixed))}/fuse", T, mixed, {"fuse": True})
    run.run(f"mesh/{T}/{'+'.join(map(str, mixed))}/several", T, mixed)
    run.run(f"mesh/{T}/{meshless}/allow_missing", T, [meshless], {"allow_missing": True})
    run.run(f"mesh/{T}/{meshless}+{singles[1]}/allow_missing", T, [meshless, singles[1]], {"allow_missing": True})
    run.run(f"mesh/{T}/{l2_unmeshed}+{l2_meshed}/allow_missing", T, [l2_unmeshed, l2_meshed], {"allow_missing": True})
    box = [[64, 64, 0], [192, 192, 32]]
    run.run(f"mesh/{T}/{sp['root_into'][0]}/bounding_box", T, [sp["root_into"][0]], {"bounding_box": box})
    run.run(f"mesh/{T}/{sp['root_into'][0]}/bounding_box_no_byte_offsets", T, [sp["root_into"][0]],
            {"bounding_box": box, "use_byte_offsets": False})
    run.run(f"mesh/{T}/{sp['root_into'][0]}/no_byte_offsets", T, [sp["root_into"][0]], {"use_byte_offsets": False},
            expect="TypeError")
    for n in (l2_meshed, l3_meshed, l2_dyn):
        run.run(f"mesh/{T}/{n}/bypass", T, [n], {"bypass": True})
    for n in (sp["root_into"][0], l2_meshed):
        run.run(f"mesh/{T}/{n}/open_mip1", T, [n], ctor={"mip": 1})
    for n in (sp["root_into"][0], sp["root"]):
        run.run(f"mesh/{T}/{n}/open_timestamp_before_edit", T, [n], ctor={"timestamp": CREATED + 1000})
    # Errors answered by the manifest route (the info given, so the constructor asks nothing).
    run.run(f"mesh/nosuch/{l2_meshed}/unknown_table", "nosuch", [l2_meshed], ctor={"info": "<table info>"},
            expect="HTTPError")
    run.run(f"mesh/{T}/{l2_meshed}/bad_token", T, [l2_meshed], ctor={"info": "<table info>", "secrets": BAD_TOKEN},
            expect="HTTPError")
    run.run(f"mesh/{T}/{l2_meshed}/forbidden", T, [l2_meshed], ctor={"info": "<table info>", "secrets": FORBIDDEN},
            expect="HTTPError")
    # levels: ids whose fragments are all of one layer (cloud-volume takes the grid size of the
    # layer of whichever fragment it puts first).
    T = "levels"
    single_layer = []
    for r in roots_before + roots_new:
        ids = model_manifest(H, M, r, MAX_LAYER)
        if ids and len({layer_of(i) for i in ids}) == 1:
            single_layer.append((r, layer_of(next(iter(ids)))))
    by_layer = {}
    for r, L in single_layer:
        by_layer.setdefault(L, []).append(r)
    picks = [l2_meshed, l2_dyn, l3_meshed] + [r for L in sorted(by_layer) for r in by_layer[L][:3]]
    assert {L for L in by_layer} >= {2, 3, 4} or len(by_layer) >= 2, by_layer
    for n in picks:
        run.run(f"mesh/{T}/{n}/default", T, [n])
    for L in sorted(by_layer):
        r = by_layer[L][0]
        run.run(f"mesh/{T}/{r}/remove_duplicate_vertices", T, [r], {"remove_duplicate_vertices": True})
    roles["levels_single_layer_roots"] = {str(L): [str(r) for r in v] for L, v in sorted(by_layer.items())}
    # chunkstart: the same graph at a voxel offset, with and without chunks_start_at_voxel_offset.
    cs_ids = [sp["root_into"][0], mg["root_into"], chain, singles[0], flat[0], big_root, l2_meshed]
    for T in ("chunkstart", "chunkstart_noflag"):
        for n in cs_ids:
            run.run(f"mesh/{T}/{n}/default", T, [n])
        run.run(f"mesh/{T}/{l2_meshed}/no_chunk_dedup", T, [l2_meshed], {"deduplicate_chunk_boundaries": False})
    off = CS_OFFSET
    cbox = [[64 + off[0], 64 + off[1], 0 + off[2]], [192 + off[0], 192 + off[1], 32 + off[2]]]
    run.run(f"mesh/chunkstart/{sp['root_into'][0]}/bounding_box", "chunkstart", [sp["root_into"][0]],
            {"bounding_box": cbox})
    return roles


if __name__ == "__main__":
    main()
