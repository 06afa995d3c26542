#!/usr/bin/env python3
"""A loopback stand-in for PyChunkedGraph's segmentation API and middle_auth_client's checks, as
cloud-volume and this library use them. Stdlib http.server plus numpy (the meshing manifest route
also cloud-volume, as PyChunkedGraph itself uses it); no Bigtable.

    python tests/servers/chunkedgraph.py --fixture DIR [--port 0] [--token TOKEN]
        [--forbidden-token TOKEN] [--log FILE] [--data-base URL] [--prefix segmentation]
        [--meshing-prefix meshing]

Prints exactly one line `PORT <n>` (flushed) once listening on 127.0.0.1, then serves until killed
(SIGTERM), or until the process that started it goes away.

Behaviour is taken from PyChunkedGraph's source (seung-lab/PyChunkedGraph @c1b7740d, May 2024:
app/common.py, app/app_utils.py, app/segmentation/{generic,v1,legacy}/routes.py,
app/segmentation/common.py, graph/chunkedgraph.py get_roots/get_root, graph/subgraph.py,
graph/chunks/utils.py; for meshes app/meshing/{common,v1/routes}.py, meshing/manifest/{sharded,
utils,cache}.py, meshing/meshgen_utils.py) and middle_auth_client 3.19.2 (decorators.py); where
this double departs from them it says so below.

Fixture (DIR/graph.json, written by tests/reference/graphene_check.py, graphene_meshes.py, ...)
  {"format": 2,
   "tables": {"<t>": {"info": {...}, "data_dir": "<path relative to DIR>", "dataset": "<name>"?,
                      "mesh": {"initial_ts": <unix s>, "max_layer": <n>, "dir": "<mesh dir>"}?}},
   "n_layers": 4, "n_bits_for_layer_id": 8,
   "created_timestamp": <unix s>,        the graph's nodes "before" exist from then on (default: always)
   "edit_timestamp": <unix s>,           the nodes and parent pointers of "after" from then on
   "hierarchy": {"before": {"<child>": "<parent>", ...}, "after": {...}}   uint64 as decimal strings
   ...}                                  (other keys are the fixture's own and are ignored here)
  "mesh" is the table's custom_data["mesh"] (only the manifest route reads it): initial_ts splits
  the nodes into "initial" (Child cell older than it: meshes in the shards) and "new" (dynamic
  mesh files); max_layer is the default start_layer (2 without it); dir the mesh directory under
  data_dir (default "graphene_meshes"; PyChunkedGraph overrides the info's "mesh" with it). A
  table without "mesh" answers every manifest with a 500 ('mesh'), as segregate_node_ids fails.
  Every table shares the one graph. The older form {"before": "x.npy", "after": "y.npy"} (uint64
  rows [supervoxel, L2, ..., root]; bench/run_labels.py writes it) is read too.
  The info served is the table's info with `data_dir` made absolute: `file://<DIR>/<data_dir>`, or
  `<--data-base>/<data_dir>` when given.

Graph model (PyChunkedGraph's Bigtable rows, reduced): a node is immutable (its children never
change); "before" nodes are created at created_timestamp, nodes only in "after" at
edit_timestamp; a node in both whose parent differs gets the new parent at edit_timestamp; a node
only in "before" (superseded by the edit) keeps its old parent forever. A lookup at time T sees the
cells with timestamp <= T (ms resolution, T rounded down); no timestamp means now.

Routes (<p> is the URL prefix, "segmentation"; <t> a table):
  GET  /<p>/table/<t>/info                    the info (generic blueprint)
  GET  /<p>/1.0/<t>/info                      the same (legacy blueprint)
  GET  /<p>/api/versions                      [0, 1]
  POST /<p>/api/v1/table/<t>/roots_binary[?timestamp=&stop_layer=&assert_roots=&fail_to_zero=]
       body: raw uint64 ids (np.frombuffer, so native = little-endian); answer: the uint64
       ancestors in order, Content-Type text/html; charset=utf-8 (Flask's default for bytes, as
       PyChunkedGraph sends it). A body that is not a whole number of ids: 500 (numpy's
       "buffer size must be a multiple of element size"); no limit on the count; empty -> empty.
  POST /<p>/api/v1/table/<t>/roots            {"node_ids": [...]} -> {"root_ids": [...]}
                                              (?int64_as_str=true: strings; ?as_binary=root_ids: bytes)
  GET  /<p>/api/v1/table/<t>/node/<id>/root   {"root_id": n}
  GET  /<p>/api/v1/table/<t>/node/<id>/children   {"children_ids": [...]}
  GET  /<p>/api/v1/table/<t>/node/<id>/leaves[?bounds=x0-x1_y0-y1_z0-z1&stop_layer=L]
       {"leaf_ids": [...]}: the layer-L (default 1: supervoxel) descendants. As PyChunkedGraph
       does, bounds (voxels at the watershed resolution) are turned into graph-chunk coordinates
       (lo truncated, hi rounded up, relative to the watershed voxel_offset) and the walk down
       keeps a child of a node above layer 2 only if the child's chunk (scaled by fan_out per layer
       above 2) meets them; an L2 node's children are never filtered. So the test is per chunk, not
       per supervoxel bounding box. A "-" inside a number (negative bounds) is a 500, as there.
  GET  /<p>/api/v1/table/<t>/l2_chunk_children_binary/<chunk>?as_array=true[&timestamp=]
       uint64 pairs (l2, sv) of every L2 node of that chunk created by then (superseded ones
       included, as a Bigtable range read returns them); without as_array a pickle of {l2: svs}.
       A chunk id of another layer: 500.
  GET  /<p>/api/v1/table/<t>/l2_chunk_children/<chunk>?as_array=true   {"l2_chunk_children": [...]}
  GET|POST /<p>/1.0/<t>/graph/<id>/root[?timestamp=&stop_layer=]   legacy: 8 bytes, one uint64
       (a JSON body's timestamp is ignored, as there: only the query string is read). An id with
       no parent below the root layer (unknown, 0): 500 "Cannot find root id ...".
  GET  /meshing/api/v1/table/<t>/manifest/<id>:0[?verify=&return_seg_ids=&prepend_seg_ids=&bounds=]
       body (a GET with a body, as cloud-volume sends it): optional JSON {"start_layer": L,
       "return_seg_ids", "return_seg_id_layers", "return_seg_chunk_coordinates"} (the last three
       through app_utils.toboolean: true/"true"/"1", false/"false"/"0", anything else a 500);
       start_layer defaults to the table's mesh max_layer. Query flags are true when exactly
       "True", "true" or "1". Answer {"fragments": [...], "seg_ids": [...]?} (seg_ids only when
       asked; numpy arrays as JSON integers, as PyChunkedGraph's CustomJsonEncoder writes them).
       The walk (manifest/utils.py get_children_before_start_layer): an L2 id is its own list;
       otherwise children level by level, keeping those at layers <= start_layer (and, with
       bounds, in the box's graph chunks -- as for leaves, but an empty child list with bounds is
       numpy's broadcast error, a 500), descending into the others.
       verify=true (verified_manifest / get_mesh_paths): each node is "initial" or "new" by its
       timestamp against the table's initial_ts; initial ones go through cloud-volume's graphene
       mesh source -- CloudVolume("graphene://https://localhost/segmentation/table/dummy",
       mesh_dir=dir, info=<this info, app, mesh=dir>).mesh.initial_exists(ids,
       return_byte_range=True) -- where a node above layer 2 with one child is replaced by it
       (check_skips) and one without a mesh by its children, down to layer 2 (an L2 without one
       is dropped); new ones are the files <data_dir>/<dir>/dynamic/<id>:0:<x0-x1_y0-y1_z0-z1>
       (the graph chunk's box in watershed voxels, no voxel offset; "dynamic" is PyChunkedGraph's
       literal, whatever mesh_metadata.unsharded_mesh_dir says), and a missing one is replaced by
       its children, which go through the same split again. Fragments: "~<layer>/<chunk position
       number>-<shard>.shard:<byte offset>:<byte size>" (initial) or the dynamic file name, in the
       order of PyChunkedGraph's dicts; seg_ids the matching node ids.
       verify absent/false (speculative_manifest): no existence checks; nodes above layer 2 with
       one child are replaced by it, every other node from the walk is listed as
       "~<id>:<layer>:<chunk id>:<shard file>:<minishard>" (initial) or its dynamic file name (new).
       prepend_seg_ids=true prefixes each fragment with "~<seg id>:".
       Test control (not PyChunkedGraph): POST /__control {"manifest_damage": "past_end" |
       "garbage" | "bad_name", "count": n} breaks the next n manifest answers: initial offsets moved
       10^9 bytes on, a JSON text cut short, initial names without their ":offset:size". No manifest cache (redis),
       as a server without one. Needs cloud-volume and cloud-files in the double's Python, imported
       on the first manifest request (the double shortens cloud-files' 0.1 s queue poll to 0.1 ms).
       Unknown ids have no children: an empty answer. Other errors (a layer without a sharding
       spec, a node without children asked for its timestamp, bad bounds): 500.
Semantics of roots (graph/chunkedgraph.py get_roots, fail_to_zero=True as the route passes it):
  stop_layer missing or 0 means n_layers; > n_layers is a 500 (assert). Ids at a layer >= stop_layer
  and 0 map to themselves; the others climb parent by parent until their layer >= stop_layer
  (an ancestor above the stop layer is returned when there is none at it). An id without a parent
  at that time becomes 0 -- unless no id of the batch has one, in which case every id comes back
  unchanged (PyChunkedGraph's get_parents returns nothing and the climb stops).
  timestamp: float() of the argument; not a number -> 400 "[400]: Timestamp parameter timestamp
  is not a valid unix timestamp"; stop_layer not an int -> 500.
Errors have PyChunkedGraph's JSON shapes: 400 {"code","duration","message","timestamp"}; 500 the
same plus "traceback" (a one-line stand-in). Unknown paths: Flask's HTML 404; wrong method: 405.
Compression (app/common.py): a request body is gunzipped when Content-Encoding contains "gzip"
(bad gzip: 500); a 2xx answer is gzipped (Content-Encoding: gzip, Vary: Accept-Encoding) whenever
"gzip" occurs anywhere in Accept-Encoding -- even "gzip;q=0", as that substring test does.
JSON answers are Flask's: sorted keys, compact, a trailing newline, application/json.

Auth (middle_auth_client auth_required + auth_requires_permission("view"); only with --token):
  The token is the cookie middle_auth_token, else the query parameter middle_auth_token, else (and
  winning over both) the Authorization header, which must start with "Bearer " (else 400
  {"error":"bad_auth_header",...}). A request is "programmatic" when it has an Authorization,
  X-Requested-With or Origin header.
  - programmatic, no token            -> 401 {"error":"no_token","message":"Unauthorized - No Token Provided"}
  - a token other than --token/--forbidden-token: programmatic -> 401 {"error":"invalid_token",
    "message":"Unauthorized - Token is Invalid or Expired"}; otherwise a 302 to the auth service's
    authorize page (--auth-url, default middle_auth_client's localhost:5000/auth)
  - no token, not programmatic        -> that same 302
  - token in the query string, not programmatic -> 302 to the same URL without it (middle_auth_client
    also sets a cookie holding the token; this double never echoes a token, so it does not)
  - a table the auth service does not know (not in graph.json) -> 400 {"error":"invalid_table_id",...}
  - --forbidden-token (a user without "view" on the table's dataset) -> 403
    {"error":"missing_permission","message":"Missing permission: view for dataset <d>",...}
  401s carry WWW-Authenticate as middle_auth_client sends it. Without --token auth is disabled
  (AUTH_DISABLED) and an unknown table is a 500, as get_cg fails there.

Test controls (never authenticated, never recorded):
  POST /__control with a JSON object, keys combinable:
    {"fail": N, "status": S}    the next N requests answer S (default 503) with a small HTML body,
                                before auth, as a proxy in front of the app would
    {"garbage": N, "bytes": K}  the next N roots_binary answers are 200 with K (default 7) bytes
    {"drop": N}                 the next N requests get no answer: the connection is closed
    {"delay": SECONDS, "count": N}  the next N (default 1) requests wait that long first
    {"clear_log": true}         forget the recorded requests
    {"reset": true}             clear_log and cancel every pending fault
  GET /__requests   the JSON list of records since start or the last clear_log: method, path,
    query (first value of each name; middle_auth_token left out), route, table, content_encoding, accept_encoding,
    content_length (body bytes on the wire), auth ("ok", "missing", "wrong", "forbidden",
    "bad_header", or "unchecked" without --token -- never the token), auth_source ("header",
    "cookie", "query" or null), n_ids (roots routes: ids in the request; legacy root: 1),
    body and n_fragments (manifest records only: the request body as text, the fragments answered), status,
    response_encoding ("gzip" or null), response_bytes, fault (the control that answered, or null),
    time (unix s). --log FILE appends each record as a JSON line too.
"""

import argparse
import datetime
import gzip
import json
import math
import os
import pickle
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import numpy as np

U64 = np.uint64
TOKEN_NAME = "middle_auth_token"
SERVER_VERSION = "2.0.0-test-double"


class ApiError(Exception):
    """An answer other than 200 decided inside a route (status, body bytes, content type)."""

    def __init__(self, status, body, ctype="application/json", headers=None):
        super().__init__(status)
        self.status, self.body, self.ctype, self.headers = status, body, ctype, headers or {}


def flask_json(obj):
    return (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode()


def now_str():
    return str(datetime.datetime.utcnow())


def bad_request(message, t0):
    """PyChunkedGraph's api_exception answer for cg_exceptions.BadRequest."""
    return ApiError(400, flask_json({"code": 400, "duration": (time.time() - t0) * 1000,
                                     "message": f"[400]: {message}", "timestamp": now_str()}))


def server_error(exc, t0):
    """PyChunkedGraph's unhandled_exception answer (a 500 with the exception's text)."""
    return ApiError(500, flask_json({"code": 500, "duration": (time.time() - t0) * 1000, "message": str(exc),
                                     "timestamp": now_str(),
                                     "traceback": [f"{type(exc).__name__}: {exc} (test double: no traceback)\n"]}))


def html_page(status, title, text):
    return ("<!doctype html>\n<html lang=en>\n<title>%d %s</title>\n<h1>%s</h1>\n<p>%s</p>\n"
            % (status, title, title, text)).encode()


# ----------------------------------------------------------------------------------------------
# The graph


class Graph:
    def __init__(self, fixture):
        self.dir = os.path.abspath(fixture)
        with open(os.path.join(self.dir, "graph.json")) as f:
            g = json.load(f)
        self.tables = g["tables"]
        self.geometry = {t: self._geometry(v["info"]) for t, v in self.tables.items()}
        self.n_layers = int(g["n_layers"])
        self.shift = 64 - int(g.get("n_bits_for_layer_id", 8))
        self.created_ms = None if g.get("created_timestamp") is None else int(round(float(g["created_timestamp"]) * 1000))
        self.edit_ms = int(round(float(g.get("edit_timestamp", 0)) * 1000))
        if isinstance(g.get("hierarchy"), dict):
            before = {int(k): int(v) for k, v in g["hierarchy"]["before"].items()}
            after = {int(k): int(v) for k, v in g["hierarchy"]["after"].items()}
        else:  # rows [sv, l2, ..., root] in .npy files
            before, after = ({}, {})
            for name, m in (("before", before), ("after", after)):
                rows = np.load(os.path.join(self.dir, g[name])).astype(np.uint64)
                for j in range(rows.shape[1] - 1):
                    for c, p in zip(rows[:, j].tolist(), rows[:, j + 1].tolist()):
                        m[int(c)] = int(p)
        self.before_nodes = set(before) | set(before.values())
        children = {}
        for c, p in before.items():
            children.setdefault(p, []).append(c)
        new_children = {}
        for c, p in after.items():
            if p not in self.before_nodes:
                new_children.setdefault(p, []).append(c)
        children.update(new_children)
        self.children = {k: np.array(sorted(v), dtype=U64) for k, v in children.items()}
        self.after_only = (set(after) | set(after.values())) - self.before_nodes
        merged = dict(before)
        merged.update(after)
        self.tables_by_era = {"before": self._table(before), "after": self._table(merged)}
        # L2 nodes per chunk id, with the time (ms) each appeared.
        self.l2_by_chunk = {}
        for n in self.before_nodes | self.after_only:
            if self.layer(n) == 2:
                t = self.edit_ms if n in self.after_only else (self.created_ms if self.created_ms is not None else -2**62)
                self.l2_by_chunk.setdefault(self.chunk_id(n), []).append((n, t))
        for v in self.l2_by_chunk.values():
            v.sort()

    @staticmethod
    def _table(m):
        keys = np.array(sorted(m), dtype=U64)
        vals = np.array([m[int(k)] for k in keys.tolist()], dtype=U64)
        return keys, vals

    @staticmethod
    def _geometry(info):
        g = info.get("graph", {})
        mip = int(g.get("cv_mip", 0))
        sc = info["scales"][mip]
        return {"voxel_offset": np.array(sc.get("voxel_offset", [0, 0, 0]), dtype=np.float64),
                "chunk_size": np.array(g.get("chunk_size", [1, 1, 1]), dtype=np.float64),
                "fan_out": int(g.get("fan_out", 2)),
                "bits": {int(k): int(v) for k, v in g.get("spatial_bit_masks", {}).items()}}

    def info(self, table, data_base):
        t = self.tables[table]
        info = dict(t["info"])
        rel = t.get("data_dir", "")
        if data_base:
            info["data_dir"] = data_base.rstrip("/") + "/" + rel
        else:
            info["data_dir"] = "file://" + os.path.join(self.dir, rel)
        return info

    # --- ids
    def layer(self, node):
        return int(node) >> self.shift

    def layers(self, ids):
        return (np.asarray(ids, dtype=U64) >> U64(self.shift)).astype(np.int64)

    def bits(self, layer, table=None):
        geo = self.geometry[table] if table else next(iter(self.geometry.values()))
        return geo["bits"][layer]

    def chunk_id(self, node, table=None):
        layer = self.layer(node)
        if layer < 1 or layer > self.n_layers:
            return int(node)
        segid_bits = self.shift - 3 * self.bits(layer, table)
        return (int(node) >> segid_bits) << segid_bits

    def chunk_coords(self, ids, table):
        ids = np.asarray(ids, dtype=U64)
        out = np.zeros((len(ids), 3), dtype=np.int64)
        lay = self.layers(ids)
        for layer in set(lay.tolist()):
            m = lay == layer
            b = self.geometry[table]["bits"].get(layer, 0)
            xo = self.shift - b
            for d, off in enumerate((xo, xo - b, xo - 2 * b)):
                out[m, d] = ((ids[m] >> U64(off)) & U64((1 << b) - 1)).astype(np.int64)
        return out

    # --- time
    def era(self, t_ms):
        if self.created_ms is not None and t_ms < self.created_ms:
            return None
        return "before" if t_ms < self.edit_ms else "after"

    def parents(self, ids, t_ms):
        """(found mask, parents) of unique ids at time t_ms."""
        era = self.era(t_ms)
        if era is None:
            return np.zeros(len(ids), dtype=bool), np.zeros(len(ids), dtype=U64)
        keys, vals = self.tables_by_era[era]
        if len(keys) == 0:
            return np.zeros(len(ids), dtype=bool), np.zeros(len(ids), dtype=U64)
        idx = np.searchsorted(keys, ids)
        idx = np.minimum(idx, len(keys) - 1)
        found = keys[idx] == ids
        par = np.where(found, vals[idx], U64(0)).astype(U64)
        return found, par

    # --- PyChunkedGraph's algorithms
    def get_roots(self, node_ids, t_ms, stop_layer=None, fail_to_zero=True, assert_roots=False):
        node_ids = np.asarray(node_ids, dtype=U64)
        stop = self.n_layers if not stop_layer else int(stop_layer)
        assert stop <= self.n_layers
        mask = np.ones(len(node_ids), dtype=bool)
        mask[self.layers(node_ids) >= stop] = False
        mask[node_ids == 0] = False
        parent_ids = node_ids.copy()

        def check():
            if assert_roots:
                assert not np.any(self.layers(parent_ids) < self.n_layers), "roots not found for some IDs"

        for _ in range(stop + 1):
            filtered = parent_ids[mask]
            uniq, inverse = np.unique(filtered, return_inverse=True)
            found, par = self.parents(uniq, t_ms)
            if not found.any():  # read_nodes found no row: get_parents returns an empty array
                break
            if not fail_to_zero and not found.all():
                raise KeyError()  # get_parents: `raise KeyError from exc`
            temp = par[inverse.reshape(-1)]
            new_mask = mask.copy()
            new_mask[mask] = self.layers(temp) < stop
            parent_ids[mask] = temp
            mask = new_mask
            if not mask.any():
                check()
                return parent_ids
        check()
        return parent_ids

    def get_root(self, node_id, t_ms, stop_layer=None):
        stop = self.n_layers if not stop_layer else int(stop_layer)
        node_id = int(node_id)
        if self.layer(node_id) == stop:
            return node_id
        parent = node_id
        chain = []
        for _ in range(self.layer(node_id), stop + 1):
            found, par = self.parents(np.array([parent], dtype=U64), t_ms)
            if not found[0]:
                break
            parent = int(par[0])
            if self.layer(parent) >= stop:
                chain.append(parent)
                break
            chain.append(parent)
        if self.layer(parent) < stop:
            raise RuntimeError(f"Cannot find root id {node_id}, {stop}, "
                               f"{datetime.datetime.fromtimestamp(t_ms / 1000, datetime.timezone.utc)}")
        return chain[-1] if chain else node_id

    def kids(self, node):
        return self.children.get(int(node), np.zeros(0, dtype=U64))

    def subgraph(self, node, chunk_bbox, return_layer, table):
        """graph/subgraph.py _get_subgraph_multiple_nodes for one node and one return layer."""
        geo = self.geometry[table]
        stop = max(1, return_layer)
        out = []
        if self.layer(node) == return_layer:
            out.append(np.array([node], dtype=U64))
        cur = [int(node)]
        while cur:
            nxt = []
            for n in cur:
                ch = self.kids(n)
                if chunk_bbox is not None and self.layer(n) != 2 and len(ch):
                    coords = self.chunk_coords(ch, table)
                    adapt = np.maximum(self.layers(ch) - 2, 0)
                    scale = (geo["fan_out"] ** adapt).astype(np.float64)[:, None]
                    lo = chunk_bbox[0][None, :] / scale
                    hi = chunk_bbox[1][None, :] / scale
                    keep = np.all(coords < hi, axis=1) & np.all(coords + 1 > lo, axis=1)
                    ch = ch[keep]
                lay = self.layers(ch)
                nxt.extend(ch[lay > stop].tolist())
                if np.any(lay == return_layer):
                    out.append(ch[lay == return_layer])
            cur = nxt
        return np.concatenate(out) if out else np.zeros(0, dtype=U64)

    def leaves(self, node, bounds, stop_layer, table):
        chunk_bbox = None
        if bounds is not None:
            geo = self.geometry[table]
            lo = np.trunc((bounds[0] - geo["voxel_offset"]) / geo["chunk_size"])
            hi = np.ceil((bounds[1] - geo["voxel_offset"]) / geo["chunk_size"])
            chunk_bbox = (lo.astype(np.int64).astype(np.float64), hi.astype(np.int64).astype(np.float64))
        if stop_layer > 1:
            return self.subgraph(node, chunk_bbox, stop_layer, table)
        l2s = self.subgraph(node, chunk_bbox, 2, table)
        parts = [self.kids(n) for n in l2s.tolist()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=U64)

    def l2_chunk_children(self, chunk, t_ms, table):
        chunk = int(chunk)
        layer = self.layer(chunk)
        if layer != 2:
            raise RuntimeError(f"This function only accepts level 2 chunks, the chunk requested is a level {layer} chunk")
        era_ok = self.era(t_ms) is not None
        out = {}
        for n, t in self.l2_by_chunk.get(self.chunk_id(chunk, table), []):
            if era_ok and t <= t_ms and n >= chunk:
                out[n] = self.kids(n)
        return out


# ----------------------------------------------------------------------------------------------
# Meshing: the sharded manifest (app/meshing/common.py, meshing/manifest/{sharded,utils}.py)

# cloud-volume's graphene mesh source wants a CAVE token when it is built, although the manifest
# code never talks to a graph server with it (PyChunkedGraph's servers have one in their
# environment); a fixed dummy keeps the double independent of ~/.cloudvolume.
_DUMMY_TOKEN = "0" * 32
_CV_READY = False


def _cloudvolume():
    """cloud-volume and cloud-files, imported on the first manifest request only. cloud-files'
    ThreadedQueue polls every 0.1 s, which each sharded read pays even on file://; the double
    polls every 0.1 ms instead (what it reads is unchanged)."""
    global _CV_READY
    import cloudfiles.threaded_queue
    from cloudfiles import CloudFiles
    from cloudvolume import CloudVolume

    if not _CV_READY:
        class _QuickPoll:
            def __getattr__(self, name):
                return getattr(time, name)

            @staticmethod
            def sleep(seconds):
                time.sleep(min(seconds, 0.0001))

        cloudfiles.threaded_queue.time = _QuickPoll()
        _CV_READY = True
    return CloudVolume, CloudFiles


def pcg_toboolean(value):
    """app_utils.toboolean as _check_post_options calls it (errors are 500s)."""
    if not value:
        raise ValueError("Can't convert null to boolean")
    if isinstance(value, bool):
        return value
    try:
        value = value.lower()
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"Can't convert {value} to boolean: {exc}") from exc
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError(f"Can't convert {value} to boolean")


class Meshing:
    """One manifest request of one table: PyChunkedGraph's code path, step by step and in its
    order (the order of the answer's fragments is the order of its dicts and arrays). No redis:
    ManifestCache misses everything and stores nothing, as on a server without one."""

    def __init__(self, graph, table, info):
        self.g = graph
        self.table = table
        self.info = info
        self.custom = graph.tables[table].get("mesh")  # cg.meta.custom_data["mesh"]
        self.mesh_dir = (self.custom or {}).get("dir", "graphene_meshes")
        self.geo = graph.geometry[table]
        self._readers = None

    # --- ChunkedGraph helpers
    def layers(self, ids):
        return self.g.layers(np.asarray(ids, dtype=U64))

    def get_children(self, ids, flatten=False):
        """cg.get_children(ids): {id: children} in the order given (a repeated id once, where it
        first occurs), or their concatenation."""
        d = {}
        for x in np.asarray(ids, dtype=U64):
            if x not in d:
                d[x] = self.g.kids(x)
        if flatten:
            return np.concatenate(list(d.values())).astype(U64) if d else np.zeros(0, dtype=U64)
        return d

    def node_timestamps_us(self, ids):
        """cg.get_node_timestamps: the time of each node's Child cell (a node without one: KeyError)."""
        out = []
        for x in np.asarray(ids, dtype=U64).tolist():
            if x not in self.g.children:
                raise KeyError(x)
            if x in self.g.after_only:
                out.append(self.g.edit_ms * 1000)
            else:
                out.append(-2 ** 62 if self.g.created_ms is None else self.g.created_ms * 1000)
        return np.array(out, dtype=np.int64)

    def chunk_bbox_str(self, node):
        """meshgen_utils.get_chunk_bbox_str: graph chunk coordinates times CHUNK_SIZE *
        FANOUT**max(0, layer-2), in watershed voxels, NOT shifted by the voxel offset."""
        layer = self.g.layer(node)
        shape = self.geo["chunk_size"].astype(np.int64) * self.geo["fan_out"] ** max(0, layer - 2)
        start = self.g.chunk_coords(np.array([node], dtype=U64), self.table)[0] * shape
        end = start + shape
        return "_".join(f"{a}-{b}" for a, b in zip(start.tolist(), end.tolist()))

    def mesh_name(self, node):
        return f"{node}:0:{self.chunk_bbox_str(node)}"  # meshgen_utils.get_mesh_name

    def json_info(self):
        """meshgen_utils.get_json_info: the dataset info, the app versions, the custom mesh dir."""
        info = dict(self.info)
        info["app"] = {"supported_api_versions": [0, 1]}
        info["mesh"] = self.mesh_dir
        return json.loads(json.dumps(info))

    def mesh_source(self):
        CloudVolume, _ = _cloudvolume()
        return CloudVolume("graphene://https://localhost/segmentation/table/dummy", mesh_dir=self.mesh_dir,
                           info=self.json_info(), secrets=_DUMMY_TOKEN, progress=False).mesh

    # --- bounds
    def normalize_bounding_box(self, bbox):
        """chunks/utils.py normalize_bounding_box(bbox_is_coordinate=True): watershed voxels ->
        graph chunk coordinates, lo truncated and hi rounded up (meta.resolution both ways, so no
        scaling), relative to the voxel offset."""
        if bbox is None:
            return None
        out = bbox.copy()
        lo = (bbox[0] / 1 - self.geo["voxel_offset"]) / self.geo["chunk_size"]
        hi = np.ceil((bbox[1] / 1 - self.geo["voxel_offset"]) / self.geo["chunk_size"])
        out[0] = lo.astype(int)
        out[1] = hi.astype(int)
        return np.array(out, dtype=int)

    def mask_nodes_by_bounding_box(self, nodes, bbox):
        if bbox is None:
            return np.ones(len(nodes), bool)
        if len(nodes) == 0:  # np.array([]) of shape (0,) against (0, 3): numpy refuses
            raise ValueError("operands could not be broadcast together with shapes (0,) (0,3) ")
        coords = self.g.chunk_coords(nodes, self.table)
        adapt = self.layers(nodes) - 2
        adapt[adapt < 0] = 0
        layer_box = bbox[None] / (self.geo["fan_out"] ** adapt)[:, None, None]
        check = np.array([np.all(coords < layer_box[:, 1], axis=1),
                          np.all(coords + 1 > layer_box[:, 0], axis=1)]).T
        return np.all(check, axis=1)

    # --- manifest/utils.py
    def get_children_before_start_layer(self, node_id, start_layer, bounding_box=None):
        node_id = np.uint64(node_id)
        if self.g.layer(node_id) == 2:
            return np.array([node_id], dtype=U64)
        result = [np.zeros(0, dtype=U64)]
        parents = np.array([node_id], dtype=U64)
        while parents.size:
            children = self.get_children(parents, flatten=True)
            bound_mask = self.mask_nodes_by_bounding_box(children, bounding_box)
            layers = self.layers(children)
            result.append(children[(layers <= start_layer) & bound_mask])
            parents = children[(layers > start_layer) & bound_mask]
        return np.concatenate(result).astype(U64)

    def check_skips(self, node_ids, children_cache=None):
        """A node above layer 2 with a single child has no mesh of its own: its child stands in."""
        if children_cache is None:
            children_cache = {}
        node_ids = np.asarray(node_ids, dtype=U64)
        layers = self.layers(node_ids)
        skips = []
        result = [np.zeros(0, dtype=U64), node_ids[layers == 2]]
        for p, c in self.get_children(node_ids[layers > 2]).items():
            if c.size > 1:
                result.append(np.array([p], dtype=U64))
                children_cache[p] = c
                continue
            assert c.size == 1, f"{p} does not seem to have children."
            skips.append(c[0])
        return np.concatenate(result).astype(U64), np.array(skips, dtype=U64)

    def segregate_node_ids(self, node_ids):
        """initial = created before custom_data["mesh"]["initial_ts"] (datetime.fromtimestamp:
        the server's local time, UTC here), new = the others."""
        initial_ts = self.custom["initial_ts"] if self.custom is not None else {}["mesh"]
        initial_us = int(round(float(initial_ts) * 1e6))
        node_ids = np.asarray(node_ids, dtype=U64)
        mask = self.node_timestamps_us(node_ids) < initial_us
        return node_ids[mask], node_ids[~mask]

    def _get_children_cached(self, node_ids, cache):
        if len(node_ids) == 0:
            return np.zeros(0, dtype=U64)
        node_ids = np.array(node_ids, dtype=U64)
        missing = [x for x in node_ids if x not in cache]
        cache.update(self.get_children(np.array(missing, dtype=U64)))
        return np.concatenate([np.zeros(0, dtype=U64)] + [cache[x] for x in node_ids]).astype(U64)

    @staticmethod
    def _del_none_keys(d):
        kept = dict(d)
        none_keys = []
        for k, v in d.items():
            if v:
                continue
            none_keys.append(k)
            del kept[k]
        return kept, none_keys

    def _get_initial_meshes(self, shard_readers, node_ids, stop_layer=2):
        children_cache = {}
        result = {}
        if len(node_ids) == 0:
            return result
        node_layers = self.layers(node_ids)
        stop_layer_ids = [node_ids[node_layers == stop_layer]]
        while np.any(node_layers > stop_layer):
            stop_layer_ids.append(node_ids[node_layers == stop_layer])
            ids_ = node_ids[node_layers > stop_layer]
            ids_, skips = self.check_skips(ids_, children_cache=children_cache)
            found = shard_readers.initial_exists(ids_, return_byte_range=True)
            found, not_existing = self._del_none_keys(found)
            result.update(found)
            node_ids = self._get_children_cached(not_existing, children_cache)
            node_ids = np.concatenate([node_ids, skips]).astype(U64)
            node_layers = self.layers(node_ids)
        stop_layer_ids = np.concatenate([*stop_layer_ids, node_ids[node_layers == stop_layer]]).astype(U64)
        found = shard_readers.initial_exists(stop_layer_ids, return_byte_range=True)
        found, _ = self._del_none_keys(found)
        result.update(found)
        return result

    def _get_dynamic_meshes(self, node_ids):
        result = {}
        not_existing = []
        if len(node_ids) == 0:
            return result, not_existing
        _, CloudFiles = _cloudvolume()
        # "dynamic", whatever the info's mesh_metadata.unsharded_mesh_dir says (cloud-volume
        # reads the files from unsharded_mesh_dir).
        cf = CloudFiles(f"{self.info['data_dir']}/{self.mesh_dir}/dynamic")
        exists = cf.exists([self.mesh_name(x) for x in node_ids])
        for key in exists:
            node = np.uint64(key.split(":")[0])
            if exists[key]:
                result[node] = key
                continue
            not_existing.append(node)
        return result, np.array(not_existing, dtype=U64)

    def _get_initial_and_dynamic_meshes(self, shard_readers, node_ids):
        if len(node_ids) == 0:
            return {}, {}, []
        node_ids = np.array(node_ids, dtype=U64)
        initial_ids, new_ids = self.segregate_node_ids(node_ids)
        initial = self._get_initial_meshes(shard_readers, initial_ids)
        new, missing = self._get_dynamic_meshes(new_ids)
        return initial, new, missing

    def get_mesh_paths(self, node_ids, stop_layer=2):
        shard_readers = self.mesh_source()
        result = {}
        node_layers = self.layers(node_ids)
        while np.any(node_layers > stop_layer):
            node_ids = node_ids[node_layers > 1]
            initial, new, missing = self._get_initial_and_dynamic_meshes(shard_readers, node_ids)
            result.update(initial)
            result.update(new)
            node_ids = self.get_children(missing, flatten=True)
            node_layers = self.layers(node_ids)
        node_ids = node_ids[node_layers > 1]
        initial, new, _ = self._get_initial_and_dynamic_meshes(shard_readers, node_ids)
        result.update(initial)
        result.update(new)
        return result

    # --- manifest/sharded.py
    def verified_manifest(self, node_id, start_layer, bounding_box=None):
        bounding_box = self.normalize_bounding_box(bounding_box)
        node_ids = self.get_children_before_start_layer(node_id, start_layer, bounding_box=bounding_box)
        result = self.get_mesh_paths(node_ids)
        node_ids = np.fromiter(result.keys(), dtype=U64)
        mesh_files = []
        for val in result.values():
            try:
                path, offset, size = val  # [shard path, byte offset, byte size]
                path = path.split("initial/")[-1]
                mesh_files.append(f"~{path}:{offset}:{size}")
            except ValueError:  # a dynamic file name
                mesh_files.append(val)
        return node_ids, mesh_files

    def speculative_manifest(self, node_id, start_layer, stop_layer=2, bounding_box=None):
        if start_layer is None:
            start_layer = (self.custom or {}).get("max_layer", 2)
        bounding_box = self.normalize_bounding_box(bounding_box)
        node_ids = self.get_children_before_start_layer(node_id, start_layer=start_layer, bounding_box=bounding_box)
        result = [np.zeros(0, dtype=U64)]
        node_layers = self.layers(node_ids)
        while np.any(node_layers > stop_layer):
            result.append(node_ids[node_layers == stop_layer])
            ids_ = node_ids[node_layers > stop_layer]
            ids_, skips = self.check_skips(ids_)
            result.append(ids_)
            node_ids = skips.copy()
            node_layers = self.layers(node_ids)
        result.append(node_ids[node_layers == stop_layer])
        readers = self.mesh_source().readers
        node_ids = np.concatenate(result).astype(U64)
        initial_ids, new_ids = self.segregate_node_ids(node_ids)
        layers = self.layers(initial_ids)
        shards = []
        for id_, layer in zip(initial_ids, layers.tolist()):
            chunk_id = self.g.chunk_id(int(id_), self.table)
            fname, minishard = readers[layer].compute_shard_location(id_)
            shards.append(f"~{id_}:{layer}:{chunk_id}:{fname}:{minishard}")
        files = [self.mesh_name(int(x)) for x in new_ids]
        return np.concatenate([initial_ids, new_ids]).astype(U64), shards + files

    # --- app/meshing/common.py
    def handle_get_manifest(self, node_id, args, raw_body):
        data = json.loads(raw_body) if len(raw_body) > 0 else {}
        bounding_box = None
        if "bounds" in args:
            bounding_box = np.array([b.split("-") for b in args["bounds"].split("_")], dtype=int).T
        verify = args.get("verify", False) in ["True", "true", "1", True]
        return_seg_ids = args.get("return_seg_ids", False) in ["True", "true", "1", True]
        prepend_seg_ids = args.get("prepend_seg_ids", False) in ["True", "true", "1", True]
        start_layer = (self.custom or {}).get("max_layer", 2)
        if "start_layer" in data:
            start_layer = int(data["start_layer"])
        resp = {}
        if not verify:
            seg_ids, resp["fragments"] = self.speculative_manifest(node_id, start_layer=start_layer,
                                                                   bounding_box=bounding_box)
        else:
            seg_ids, resp["fragments"] = self.verified_manifest(np.uint64(node_id), start_layer=start_layer,
                                                                bounding_box=bounding_box)
        if prepend_seg_ids:
            resp["fragments"] = [f"~{i}:{f}" for i, f in zip(seg_ids, resp["fragments"])]
        if return_seg_ids:
            resp["seg_ids"] = seg_ids
        # _check_post_options
        if pcg_toboolean(data.get("return_seg_ids", "false")):
            resp["seg_ids"] = seg_ids
        if pcg_toboolean(data.get("return_seg_id_layers", "false")):
            resp["seg_id_layers"] = self.layers(seg_ids)
        if pcg_toboolean(data.get("return_seg_chunk_coordinates", "false")):
            resp["seg_chunk_coordinates"] = [self.g.chunk_coords(np.array([s], dtype=U64), self.table)[0]
                                             for s in seg_ids]
        # The Flask app's CustomJsonEncoder: numpy arrays and scalars through tolist()/item().
        return json.loads(json.dumps(resp, default=lambda o: o.tolist() if isinstance(o, (np.ndarray, np.generic))
                                     else str(o)))


# ----------------------------------------------------------------------------------------------
# The server


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.log = []
        self.reset()

    def reset(self):
        self.fail = 0
        self.fail_status = 503
        self.garbage = 0
        self.garbage_bytes = 7
        self.drop = 0
        self.delay = 0.0
        self.delay_count = 0
        self.manifest_damage = None  # "past_end" | "garbage" | "bad_name": the next manifest answers
        self.manifest_damage_count = 0


ROUTES = [  # (name, methods, regex over the path after the prefix)
    ("info", ("GET",), r"/table/(?P<t>[^/]+)/info"),
    ("info_legacy", ("GET",), r"/1\.0/(?P<t>[^/]+)/info"),
    ("api_versions", ("GET",), r"/api/versions"),
    ("roots_binary", ("POST",), r"/api/v1/table/(?P<t>[^/]+)/roots_binary"),
    ("roots", ("POST",), r"/api/v1/table/(?P<t>[^/]+)/roots"),
    ("root", ("GET",), r"/api/v1/table/(?P<t>[^/]+)/node/(?P<id>[^/]+)/root"),
    ("children", ("GET",), r"/api/v1/table/(?P<t>[^/]+)/node/(?P<id>[^/]+)/children"),
    ("leaves", ("GET",), r"/api/v1/table/(?P<t>[^/]+)/node/(?P<id>[^/]+)/leaves"),
    ("l2_chunk_children_binary", ("GET",), r"/api/v1/table/(?P<t>[^/]+)/l2_chunk_children_binary/(?P<id>[^/]+)"),
    ("l2_chunk_children", ("GET",), r"/api/v1/table/(?P<t>[^/]+)/l2_chunk_children/(?P<id>[^/]+)"),
    ("legacy_root", ("GET", "POST"), r"/1\.0/(?P<t>[^/]+)/graph/(?P<id>[^/]+)/root"),
]
MESHING_ROUTES = [  # the same, under the meshing prefix (MESHING_URL_PREFIX, "meshing")
    # Werkzeug's rule "/manifest/<node_id>:0": the default converter [^/]+, then a literal ":0".
    ("manifest", ("GET",), r"/api/v1/table/(?P<t>[^/]+)/manifest/(?P<id>[^/]+):0"),
]


def toboolean(value, default=False):
    """app_utils.toboolean as request.args.get(type=...) uses it (a ValueError gives the default)."""
    if not value:
        return default
    v = value.lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    return default


def make_handler(graph, opts, state):
    prefix = "/" + opts.prefix.strip("/")
    authorize = "https://" + opts.auth_url + "/api/v1/authorize"
    compiled = [(n, m, re.compile(re.escape(prefix) + rx)) for n, m, rx in ROUTES]
    mesh_prefix = "/" + opts.meshing_prefix.strip("/")
    compiled += [(n, m, re.compile(re.escape(mesh_prefix) + rx)) for n, m, rx in MESHING_ROUTES]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY, as the servers in front of PyChunkedGraph set it: without it the body written
        # after the headers waits for the client's delayed ACK (~40 ms per answer).
        disable_nagle_algorithm = True
        server_version = "chunkedgraph-double/1"
        timeout = 120

        def log_message(self, *args):
            pass

        # --- plumbing
        def read_body(self):
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n > 0 else b""

        def send(self, status, body, ctype, headers=None, compress=False, rec=None):
            headers = dict(headers or {})
            enc = None
            if compress and 200 <= status < 300 and "Content-Encoding" not in headers:
                body = gzip.compress(body)
                headers["Content-Encoding"] = "gzip"
                headers["Vary"] = "Accept-Encoding"
                enc = "gzip"
            if rec is not None:
                # Logged before a byte of the answer leaves, so that a client that has its answer
                # always finds the request in /__requests.
                rec["status"] = status
                rec["response_encoding"] = enc
                rec["response_bytes"] = len(body)
                self.record(rec)
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def record(self, rec):
            if getattr(self, "_recorded", None) is rec:  # once per request
                return
            self._recorded = rec
            rec["time"] = time.time()
            with state.lock:
                state.log.append(rec)
            if opts.log:
                with state.lock, open(opts.log, "a") as f:
                    f.write(json.dumps(rec) + "\n")

        # --- controls
        def control(self, method, url):
            if url.path == "/__requests" and method == "GET":
                with state.lock:
                    body = json.dumps(state.log).encode()
                self.send(200, body, "application/json")
                return True
            if url.path == "/__control" and method == "POST":
                try:
                    cmd = json.loads(self.read_body() or b"{}")
                    assert isinstance(cmd, dict)
                except Exception as e:  # noqa: BLE001
                    self.send(400, flask_json({"error": f"control: not a JSON object ({e})"}), "application/json")
                    return True
                with state.lock:
                    if cmd.get("reset"):
                        state.reset()
                        state.log.clear()
                    if cmd.get("clear_log"):
                        state.log.clear()
                    if "fail" in cmd:
                        state.fail = int(cmd["fail"])
                        state.fail_status = int(cmd.get("status", 503))
                    if "garbage" in cmd:
                        state.garbage = int(cmd["garbage"])
                        state.garbage_bytes = int(cmd.get("bytes", 7))
                    if "drop" in cmd:
                        state.drop = int(cmd["drop"])
                    if "delay" in cmd:
                        state.delay = float(cmd["delay"])
                        state.delay_count = int(cmd.get("count", 1))
                    if "manifest_damage" in cmd:
                        state.manifest_damage = cmd["manifest_damage"]
                        state.manifest_damage_count = int(cmd.get("count", 1))
                    pending = {"fail": state.fail, "status": state.fail_status, "garbage": state.garbage,
                               "drop": state.drop, "delay": state.delay, "delay_count": state.delay_count}
                self.send(200, flask_json({"ok": True, "pending": pending}), "application/json")
                return True
            return False

        # --- auth (middle_auth_client)
        def authenticate(self, url, query, table, rec):
            """None when the request may go on, else an ApiError to answer."""
            if opts.token is None:
                supplied = (self.headers.get("Authorization") or self.cookie(TOKEN_NAME) or query.get(TOKEN_NAME))
                rec["auth"] = "unchecked" if supplied else "missing"
                rec["auth_source"] = None
                return None
            token, source = self.cookie(TOKEN_NAME), None
            if token:
                source = "cookie"
            qtoken = query.get(TOKEN_NAME)
            if qtoken:
                token, source = qtoken, "query"
            header = self.headers.get("Authorization")
            programmatic = bool(header or self.headers.get("X-Requested-With") or self.headers.get("Origin"))
            if header:
                if not header.startswith("Bearer "):
                    rec["auth"], rec["auth_source"] = "bad_header", "header"
                    return ApiError(400, flask_json({"error": "bad_auth_header",
                                                     "message": "Authorization header must begin with 'Bearer'"}),
                                    headers={"WWW-Authenticate": 'Bearer realm="' + authorize + '", error="invalid_request", '
                                             'error_description="Header must begin with \'Bearer\'"'})
                token, source = header.split(" ")[1], "header"
            rec["auth_source"] = source
            if not token:
                rec["auth"] = "missing"
            elif token == opts.token:
                rec["auth"] = "ok"
            elif opts.forbidden_token and token == opts.forbidden_token:
                rec["auth"] = "forbidden"
            else:
                rec["auth"] = "wrong"
            if programmatic and not token:
                return ApiError(401, flask_json({"error": "no_token", "message": "Unauthorized - No Token Provided"}),
                                headers={"WWW-Authenticate": 'Bearer realm="' + authorize + '"'})
            if not programmatic and qtoken:
                kept = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k not in (TOKEN_NAME, "token")]
                loc = urlunsplit(("http", self.headers.get("Host") or "127.0.0.1", url.path, urlencode(kept), ""))
                return ApiError(302, html_page(302, "Redirecting...", "You should be redirected automatically."),
                                "text/html; charset=utf-8", {"Location": loc})
            if rec["auth"] not in ("ok", "forbidden"):
                if not programmatic:
                    here = f"http://{self.headers.get('Host') or '127.0.0.1'}{self.path}"
                    return ApiError(302, html_page(302, "Redirecting...", "You should be redirected automatically."),
                                    "text/html; charset=utf-8", {"Location": authorize + "?redirect=" + quote(here)})
                return ApiError(401, flask_json({"error": "invalid_token",
                                                 "message": "Unauthorized - Token is Invalid or Expired"}),
                                headers={"WWW-Authenticate": 'Bearer realm="' + authorize + '", error="invalid_token", '
                                         'error_description="Invalid/Expired Token"'})
            if table is None:  # auth_required only (api/versions)
                return None
            if table not in graph.tables:
                return ApiError(400, flask_json({"data": {"resource_namespace": "datastack", "table_id": table},
                                                 "error": "invalid_table_id", "message": "Invalid table_id for service"}))
            if rec["auth"] == "forbidden":
                ds = graph.tables[table].get("dataset", table)
                return ApiError(403, flask_json({"data": {"auth_dataset": ds, "required_permission": "view"},
                                                 "error": "missing_permission",
                                                 "message": f"Missing permission: view for dataset {ds}"}))
            return None

        def cookie(self, name):
            for part in (self.headers.get("Cookie") or "").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v
            return None

        # --- dispatch
        def handle_any(self, method):
            t0 = time.time()
            url = urlsplit(self.path)
            if self.control(method, url):
                return
            query = {}
            for k, v in parse_qsl(url.query, keep_blank_values=True):
                query.setdefault(k, v)
            logged_query = {k: v for k, v in query.items() if k != TOKEN_NAME}  # as PyChunkedGraph's log does
            rec = {"method": method, "path": url.path, "query": logged_query, "route": None, "table": None,
                   "content_encoding": self.headers.get("Content-Encoding"),
                   "accept_encoding": self.headers.get("Accept-Encoding"),
                   "content_length": None, "auth": None, "auth_source": None, "n_ids": None,
                   "status": None, "response_encoding": None, "response_bytes": None, "fault": None}
            body = self.read_body() if method in ("POST", "PUT", "PATCH") or self.headers.get("Content-Length") else b""
            rec["content_length"] = len(body)
            hit = self.match(url.path)
            if hit is not None:
                rec["route"], rec["table"] = hit[0], hit[2].get("t")
                if hit[0] == "manifest":
                    raw = body
                    if "gzip" in (self.headers.get("Content-Encoding") or "").lower():
                        try:
                            raw = gzip.decompress(raw)
                        except Exception:  # noqa: BLE001 - the route answers that with a 500
                            pass
                    rec["body"], rec["n_fragments"] = raw.decode("utf-8", "replace"), None
            with state.lock:
                delay = 0.0
                if state.delay_count > 0:
                    state.delay_count -= 1
                    delay = state.delay
                drop = state.drop > 0
                state.drop -= int(drop)
                fail = state.fail > 0 and not drop
                state.fail -= int(fail)
                fail_status = state.fail_status
            if delay:
                time.sleep(delay)
            if drop:
                rec["fault"] = "drop"
                self.record(rec)
                self.close_connection = True
                return
            if fail:
                rec["fault"] = "fail"
                self.send(fail_status, html_page(fail_status, "Injected fault", "The test double was told to fail."),
                          "text/html; charset=utf-8", rec=rec)
                return
            accept = self.headers.get("Accept-Encoding") or ""
            compress = "gzip" in accept.lower()
            try:
                status, out, ctype = self.dispatch(method, url, query, body, rec, t0)
                self.send(status, out, ctype, compress=compress, rec=rec)
            except ApiError as e:
                self.send(e.status, e.body, e.ctype, e.headers, rec=rec)
            except Exception as e:  # noqa: BLE001 - a bug in the double: a 500 that says so
                err = server_error(RuntimeError(f"test double bug: {type(e).__name__}: {e}"), t0)
                self.send(500, err.body, err.ctype, rec=rec)

        @staticmethod
        def match(path):
            for name, methods, rx in compiled:
                m = rx.fullmatch(path)
                if m:
                    return name, methods, m.groupdict()
            return None

        def dispatch(self, method, url, query, body, rec, t0):
            hit = self.match(url.path)
            if hit is not None:
                name, methods, groups = hit
                if method not in methods:
                    raise ApiError(405, html_page(405, "Method Not Allowed",
                                                  "The method is not allowed for the requested URL."),
                                   "text/html; charset=utf-8", {"Allow": ", ".join(sorted(set(methods) | {"OPTIONS"}))})
                table = groups.get("t")
                denied = self.authenticate(url, query, table, rec)
                if denied is not None:
                    raise denied
                try:
                    if "gzip" in (self.headers.get("Content-Encoding") or "").lower():
                        body = gzip.decompress(body)
                    if table is not None and table not in graph.tables:
                        raise LookupError(f"graph {table} not found (the test double has no such table)")
                    return self.route(name, table, groups.get("id"), query, body, rec, t0)
                except ApiError:
                    raise
                except Exception as e:  # noqa: BLE001 - PyChunkedGraph's errorhandler(Exception)
                    raise server_error(e, t0)
            raise ApiError(404, html_page(404, "Not Found", "The requested URL was not found on the server. If you "
                                          "entered the URL manually please check your spelling and try again."),
                           "text/html; charset=utf-8")

        def timestamp_ms(self, query, t0):
            raw = query.get("timestamp")
            if raw is None:
                ts = time.time()
            else:
                try:
                    ts = float(raw)
                    datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
                except (TypeError, ValueError):
                    raise bad_request("Timestamp parameter timestamp is not a valid unix timestamp", t0)
            return math.floor(ts * 1000)

        def route(self, name, table, ident, query, body, rec, t0):
            html = "text/html; charset=utf-8"
            if name in ("info", "info_legacy"):
                return 200, flask_json(graph.info(table, opts.data_base)), "application/json"
            if name == "api_versions":
                return 200, flask_json([0, 1]), "application/json"
            as_str = toboolean(query.get("int64_as_str"))

            def ids_json(key, values):
                vals = [str(int(v)) if as_str else int(v) for v in np.asarray(values, dtype=U64).tolist()]
                return 200, flask_json({key: vals}), "application/json"

            if name in ("roots_binary", "roots"):
                if name == "roots_binary":
                    node_ids = np.frombuffer(body, np.uint64)
                else:
                    node_ids = np.array(json.loads(body)["node_ids"], dtype=np.uint64)
                rec["n_ids"] = int(node_ids.size)
                t_ms = self.timestamp_ms(query, t0)
                stop = int(query.get("stop_layer", graph.n_layers))
                roots = graph.get_roots(node_ids, t_ms, stop_layer=stop,
                                        fail_to_zero=bool(query.get("fail_to_zero", True)),
                                        assert_roots=bool(query.get("assert_roots", False)) and stop == graph.n_layers)
                if name == "roots_binary":
                    with state.lock:
                        garbage = state.garbage > 0
                        state.garbage -= int(garbage)
                        nbytes = state.garbage_bytes
                    if garbage:
                        rec["fault"] = "garbage"
                        return 200, bytes((i * 37 + 11) % 256 for i in range(nbytes)), html
                    return 200, roots.astype(U64).tobytes(), html
                if query.get("as_binary", "") == "root_ids":
                    return 200, roots.astype(U64).tobytes(), html
                return ids_json("root_ids", roots)
            if name in ("root", "legacy_root"):
                t_ms = self.timestamp_ms(query, t0)
                stop = query.get("stop_layer")
                if stop is not None:
                    try:
                        stop = int(stop)
                    except ValueError as e:
                        raise bad_request(f"stop_layer is not an integer {e}", t0)
                rec["n_ids"] = 1
                root = graph.get_root(np.uint64(ident), t_ms, stop_layer=stop)
                if name == "legacy_root":
                    return 200, np.array(root, dtype=U64).tobytes(), html
                return 200, flask_json({"root_id": str(root) if as_str else int(root)}), "application/json"
            if name == "manifest":
                answer = Meshing(graph, table, graph.info(table, opts.data_base)).handle_get_manifest(ident, query, body)
                rec["n_fragments"] = len(answer["fragments"])
                with state.lock:
                    damage = state.manifest_damage if state.manifest_damage_count > 0 else None
                    state.manifest_damage_count -= int(damage is not None)
                if damage is not None:  # test control, not PyChunkedGraph: a broken answer
                    rec["fault"] = "manifest_" + damage
                    if damage == "garbage":
                        return 200, b'{"fragments": ["~2/1-0.shard:', "application/json"
                    frags = list(answer["fragments"])
                    for k, f in enumerate(frags):
                        if f.startswith("~"):
                            head, off, size = f.rsplit(":", 2)
                            frags[k] = (f"{head}:{int(off) + 10**9}:{size}" if damage == "past_end"
                                        else f"~2/{head[1:].split('/')[-1].replace('.shard', '')}.shard{off}")
                    answer = dict(answer, fragments=frags)
                return 200, flask_json(answer), "application/json"
            if name == "children":
                node = np.uint64(ident)
                kids = graph.kids(node) if graph.layer(node) > 1 else np.zeros(0, dtype=U64)
                return ids_json("children_ids", kids)
            if name == "leaves":
                stop = int(query.get("stop_layer", 1))
                bounds = None
                if "bounds" in query:
                    bounds = np.array([b.split("-") for b in query["bounds"].split("_")], dtype=int).T
                    bounds = bounds.astype(np.float64)
                return ids_json("leaf_ids", graph.leaves(int(ident), bounds, stop, table))
            if name in ("l2_chunk_children_binary", "l2_chunk_children"):
                as_array = toboolean(query.get("as_array"))
                t_ms = self.timestamp_ms(query, t0)
                rows = graph.l2_chunk_children(int(ident), t_ms, table)
                if as_array:
                    flat = []
                    for l2, svs in rows.items():
                        for sv in svs.tolist():
                            flat.extend([l2, sv])
                    arr = np.array(flat, dtype=U64) if flat else np.array([])
                    if name == "l2_chunk_children_binary":
                        return 200, arr.tobytes(), html
                    return ids_json("l2_chunk_children", arr.astype(U64))
                d = {U64(k): v for k, v in rows.items()}
                if name == "l2_chunk_children_binary":
                    return 200, pickle.dumps(d), html
                raise TypeError("Object of type bytes is not JSON serializable")
            raise LookupError(name)

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_DELETE(self):
            self.handle_any("DELETE")

    return Handler


class QuietServer(ThreadingHTTPServer):
    """A client closing a kept-alive connection is not an error worth a traceback."""

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture", required=True, help="directory holding graph.json")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", help="the valid CAVE token; without it auth is disabled")
    ap.add_argument("--forbidden-token", help="a valid token whose user lacks view permission (403)")
    ap.add_argument("--log", help="append each request record to this file as a JSON line")
    ap.add_argument("--data-base", help="serve data_dir as URL/<data_dir> instead of file://DIR/<data_dir>")
    ap.add_argument("--prefix", default="segmentation", help="PyChunkedGraph's SEGMENTATION_URL_PREFIX")
    ap.add_argument("--meshing-prefix", default="meshing", help="PyChunkedGraph's MESHING_URL_PREFIX")
    ap.add_argument("--auth-url", default="localhost:5000/auth", help="middle_auth_client's STICKY_AUTH_URL")
    opts = ap.parse_args()
    graph = Graph(opts.fixture)
    server = QuietServer(("127.0.0.1", opts.port), make_handler(graph, opts, State()))
    server.daemon_threads = True
    parent = os.getppid()

    def watch_parent():  # a double whose starter died goes too
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(0.5)

    threading.Thread(target=watch_parent, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
