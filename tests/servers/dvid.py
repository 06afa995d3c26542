#!/usr/bin/env python3
"""A loopback stand-in for a DVID server (janelia-flyem/dvid), the subset this library's DVID volume
source uses. Stdlib http.server plus numpy and the `lz4` package; everything is kept in memory.

    python tests/servers/dvid.py [--port 0] [--token T] [--admin-token A] [--log FILE]
        [--mutation-start N]

Prints exactly one line `PORT <n>` (flushed) once listening on 127.0.0.1, then serves until killed
(SIGTERM exits cleanly), or until the process that started it goes away.

Behaviour is read from DVID's own Go source (janelia-flyem/dvid @3400c2cb, 2026-06); no DVID code
is copied. Files, by behaviour:
  server/web.go          routes (initRoutes), middleware order (httpAvailHandler -> repoRawSelector ->
                         isAuthorized -> nodeSelector/instanceSelector), BadRequest's text
                         "<msg> (<path>)." + "\n" as http.Error writes it (text/plain; charset=utf-8,
                         X-Content-Type-Options: nosniff), ThrottledHTTP, httpUnavailable, the repo /
                         node / instance handlers (reposPostHandler, repoNewDataHandler,
                         repoCommitHandler, repoBranchHandler, repoNewVersionHandler, ...)
  server/server.go       AboutJSON (/api/server/info), maxThrottledOps = 1, MaxDataRequest = 3 GB
  server/auth.go         DSG mode: extractDSGToken (Bearer header, else dsg_token cookie),
                         getDSGUser's 401 texts, writeAuthError, adminPrivileged (admintoken query)
  datastore/repo_local.go  matchingUUID (unique hex prefix, "uuid:branch", ":branch", "~N"),
                         getBranchVersion, newRepo, newVersion, commit, newData, getDataByUUIDName,
                         repoT / dagT / nodeT MarshalJSON
  datastore/repo.go      error texts (ErrInvalidDataName "invalid data instance name", ...)
  datastore/datainstance.go  Data.MarshalJSON (the "Base" object), NewDataService, ModifyConfig
                         (Compression, Checksum, Versioned, Tags), reserved names
  datastore/datatype.go  TypeServiceByName's error text
  dvid/command.go        Config: JSON keys lower-cased, GetString/GetBool/GetInt texts
  dvid/serialize.go      Compression.String "<format>, level <n>", SerializeData (lz4 = u32 size + block)
  dvid/datavalues.go     DataValue JSON {"DataType","Label"}
  dvid/geometry.go, dvid/point.go  NewSubvolumeFromStrings, StringToPoint, BlockAligned, DataShape
                         strings ("0_1_2", "0,1,2", "vol"), Subvolume/Point3d String()
  datatype/imageblk/imageblk.go  Properties, setDefault/setByConfig (defaults: block 32^3, 8 nm),
                         MarshalJSONExtents, NdDataMetadata, GetExtents/PostExtents, NewVoxels,
                         ServeHTTP (info, metadata, raw, subvolblocks), SendBlocks/SendSerializedBlock
  datatype/imageblk/{uint8,uint16,uint32,uint64,float32,rgba8}.go  type names, URLs, versions, values
  datatype/imageblk/write.go, read.go  PutVoxels (alignment), GetVoxels (unwritten blocks stay 0)
  datatype/labelmap/labelmap.go  NewData (BlockSize multiple of 16, default 64^3, default gzip,
                         IndexedLabels, MaxDownresLevel), propsJSON, ServeHTTP, getScale
  datatype/labelmap/handlers.go  handleDataRequest, handleBlocks, handleMerge, handleMapping
  datatype/labelmap/compression.go  uncompressReaderData / writeCompressedToHTTP (bare LZ4 block)
  datatype/labelmap/blocks.go  writeBlock (record stream), transcodeBlock, sendBlocksVolume,
                         writeBlockToHTTP / streamRawBlock / sendCompressedBlock (one-block GETs)
  datatype/labelmap/write.go, read.go, downres.go  PutLabels, storeBlocks, readStreamedBlock,
                         StoreDownres / downresOctant (down-res on write)
  datatype/labelarray/labelarray.go, write.go  the same for labelarray (no supervoxel mapping)
  datatype/labelblk/labelblk.go  labelblk (imageblk-based; info without "Extents")
  datatype/common/labels/compressed.go  the native label Block (MakeBlock/encodeBlock,
                         setExportedVars, getPackedValue MSB-first), downresArray (vote),
                         events.go MergeTuple.Op

Routes (all answers as DVID gives them; errors are text/plain "<message> (<path>).")
  GET  /api/server/info | /api/server/types | /api/server/compiled-types
  POST /api/server/settings            {"throttle": "N"} sets the throttle limit (DVID: admin only)
  GET  /api/repos/info                 every repo keyed by root UUID
  POST /api/repos                      {"alias","description","root"?,"passcode"?} -> {"root": uuid}
  GET  /api/repo/{uuid}/info           one repo (Root, Alias, Description, Log, Properties,
                                       DataInstances, DAG, MutationID, SavedMutationID, Created, Updated)
  POST /api/repo/{uuid}/instance       {"typename","dataname", plus type settings as strings:
                                       BlockSize "64,64,64", VoxelSize "8,8,8", VoxelUnits
                                       "nanometers,...", Compression none|snappy|lz4|gzip[:N]|jpeg,
                                       Checksum, Versioned, Tags "a=b,c=d", Background, MinPoint,
                                       MaxPoint, ScaleLevel; labels: IndexedLabels, CountLabels
                                       (labelarray), MaxDownresLevel}
                                       -> {"result": "Added <name> [<type>] to node <uuid>"}
  GET  /api/node/{uuid}/commit|status  {"Locked": bool}
  POST /api/node/{uuid}/commit         {"note","log"} -> {"committed": uuid}
  POST /api/node/{uuid}/branch         {"branch","note","uuid"?} -> {"child": uuid} (parent locked)
  POST /api/node/{uuid}/newversion     {"note","uuid"?} -> {"child": uuid} (same branch)
  GET  /api/node/{uuid}/{data}/info | /metadata
  GET|POST /api/node/{uuid}/{data}/raw/{0_1_2|0,1,2|vol}/{sx_sy_sz}/{ox_oy_oz}
       imageblk: POST must be block aligned; no compression option. labels: ?compression=lz4|gzip
       (GET answer and POST body; lz4 = one bare LZ4 block), ?supervoxels=true (labelmap),
       ?scale=N (GET only: DVID's raw POST always writes scale 0 and computes the down-res levels
       1..MaxDownresLevel itself), ?throttle=true|on. 2-d shapes (xy, 0_1, ...) are not served.
  GET  /api/node/{uuid}/{data}/blocks/{size}/{offset}   labelmap/labelarray: ?compression=
       lz4 (default)|gzip|uncompressed|blocks, ?supervoxels, ?scale, ?throttle; labelblk: ""|
       uncompressed (imageblk's SendBlocks). Records: int32 bx, by, bz, int32 nbytes, payload;
       unwritten blocks are left out.
  POST /api/node/{uuid}/{data}/blocks[?scale=N&downres=true&noindexing=true]  labelmap/labelarray:
       the same record stream, each payload gzip of a native Block (stored as sent)
  GET  /api/node/{uuid}/{data}/subvolblocks/{size}/{offset}[?compression=uncompressed]  imageblk
  POST /api/node/{uuid}/{data}/merge   labelmap: [target, merged...] -> {"MutationID": n}
  GET  /api/node/{uuid}/{data}/mapping labelmap: body [sv, ...] -> [label, ...]
  GET  /api/node/{uuid}/{data}/maxlabel  labelmap/labelarray: {"maxlabel": n}

DVID behaviours kept on purpose (they are in the source):
  - An unknown or ambiguous UUID, an unknown instance and bad sizes are 400s (BadRequest), not
    404s; e.g. "could not find UUID with partial match to abc (/api/node/abc/grey/info)." and
    "invalid data instance name (/api/node/<uuid>/nosuch/info).". Unknown paths outside those
    routers: 404 "404 page not found".
  - labelmap raw GET of exactly one block-aligned block that was never written:
    with ?compression=... -> 400 "unable to get label block (x, y, z) (<path>)."; without it
    DVID's streamRawBlock dereferences a nil block and the recover middleware answers 500
    "Panic detected on request ...". Switch off with /__control {"empty_block_panic": false}.
  - labelmap /blocks with compression=lz4|uncompressed|"" on an instance stored with the same
    format passes the stored bytes through (i.e. the native Block, not voxels): transcodeBlock only
    re-encodes when the formats differ, for gzip, or when a mapping is in use. Default label
    instances are stored gzip, so lz4/uncompressed/gzip give raw uint64 voxels and "blocks" gives
    gzip(native Block).
  - Extents grow with every write (MinPoint/MaxPoint of written boxes; MinIndex/MaxIndex their block
    coordinates) and are versioned (a child version starts from its parent's).
  - Without --token auth is off. With it (DSG mode): repo/node/instance routes need
    "Authorization: Bearer <T>" or a dsg_token cookie; none -> 401 "dsg token required via
    Authorization header or dsg_token cookie (<path>)."; another token -> 401 "invalid DSG token
    (<path>).". UUID resolution runs first (an unknown UUID is a 400 even without a token).
    /api/server/* are not checked; /api/repos/info answers {} without the token (DVID shows only
    public versions then, and this double has none).
  - Real DVID refuses POST /api/repos and /api/server/settings without admin privilege. This
    double allows them unless --admin-token A is given; then ?admintoken=A is required and
    the refusal is DVID's 400 "Creating a repo requires admin privileges ...".
Departures: 2-d slices, png/jpg, roi=, mutate= semantics, jpeg/snappy storage (stored raw but
  reported as configured), label indexing endpoints other than maxlabel/mapping/merge, kafka,
  mirrors, the JWT auth modes, blobstore, tags/sync POSTs. Block label tables list labels in first
  appearance order (DVID's order comes from a Go map, so it varies).

Test controls (never authenticated, never recorded):
  POST /__control with a JSON object, keys combinable:
    {"busy": N}          the next N requests that ask for throttle=true|on answer 503
                         "Server already running 1 throttled operations (max = 1)" (ThrottledHTTP)
    {"unavailable": N}   the next N requests (any route) answer 503 "DVID server is unavailable."
    {"fail": N, "status": S}  the next N requests answer S (default 503), plain text
    {"drop": N}          the next N requests get no answer: the connection is closed
    {"corrupt": N}       the next N successful raw GETs answer their body with every byte XOR 0xA5
    {"delay": SECONDS, "count": N}  the next N (default 1) requests wait that long first
    {"empty_block_panic": bool}  see above (default true)
    {"clear_log": true}  forget the recorded requests
    {"reset": true}      clear_log and cancel every pending fault
  GET /__requests   the JSON list of records since start or the last clear_log: method, path, query
    (first value of each name; admintoken left out), route, uuid, data, content_type,
    content_encoding, accept_encoding, auth_scheme (the Authorization header's first word, e.g.
    "Bearer"), content_length (body bytes), auth ("ok", "missing", "wrong",
    or "unchecked" without --token -- never the token), status, response_bytes, fault, time.
    --log FILE appends each record as a JSON line too.
"""

import argparse
import datetime
import gzip
import io
import json
import os
import re
import struct
import sys
import threading
import time
import uuid as uuidlib
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import lz4.block
import numpy as np

DATASTORE_VERSION = "0.11.0"
DVID_VERSION = "v1.x-test-double"
MAX_DATA_REQUEST = 3 * 1000 * 1000 * 1000  # server.MaxDataRequest = 3 * dvid.Giga
SUB = 8  # labels.SubBlockSize

# --- compression formats (dvid/serialize.go)
UNCOMPRESSED, SNAPPY, GZIP, LZ4, JPEG = 0, 1, 2, 4, 5
FORMAT_NAMES = {UNCOMPRESSED: "No compression", SNAPPY: "Go Snappy compression", LZ4: "LZ4 compression",
                JPEG: "jpeg compression", GZIP: "gzip compression"}

# --- types: name -> (url, version, values [(dtype, label)], interpolable, kind)
IMG = "imageblk"
TYPES = {
    "uint8blk": ("github.com/janelia-flyem/dvid/datatype/imageblk/uint8.go", "0.2", [("uint8", "uint8")], True, IMG),
    "uint16blk": ("github.com/janelia-flyem/dvid/datatype/imageblk/uint16.go", "0.1", [("uint16", "uint16")], True, IMG),
    "uint32blk": ("github.com/janelia-flyem/dvid/datatype/imageblk/uint32.go", "0.1", [("uint32", "uint32")], True, IMG),
    "uint64blk": ("github.com/janelia-flyem/dvid/datatype/imageblk/uint64.go", "0.1", [("uint64", "uint64")], True, IMG),
    "float32blk": ("github.com/janelia-flyem/dvid/datatype/imageblk/float32.go", "0.1", [("float32", "float32")], True, IMG),
    "rgba8blk": ("github.com/janelia-flyem/dvid/datatype/imageblk/rgba8.go", "0.2",
                 [("uint8", "red"), ("uint8", "green"), ("uint8", "blue"), ("uint8", "alpha")], True, IMG),
    "labelblk": ("github.com/janelia-flyem/dvid/datatype/labelblk", "0.1", [("uint64", "labelblk")], False, "labelblk"),
    "labelarray": ("github.com/janelia-flyem/dvid/datatype/labelarray", "0.1", [("uint64", "labelarray")], False, "labelarray"),
    "labelmap": ("github.com/janelia-flyem/dvid/datatype/labelmap", "0.1", [("uint64", "labelmap")], False, "labelmap"),
}
DTYPE_BYTES = {"uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "uint32": 4, "int32": 4, "uint64": 8,
               "int64": 8, "float32": 4, "float64": 8}
RESERVED = {"log", "branch", "note", "commit", "newversion"}


class HttpError(Exception):
    def __init__(self, status, body, ctype="text/plain; charset=utf-8", headers=None):
        super().__init__(status)
        self.status, self.body, self.ctype, self.headers = status, body, ctype, headers or {}


class DvidError(Exception):
    """An error value as DVID's Go code returns it (text only); BadRequest turns it into a 400."""


def bad_request(msg, path):
    """server.BadRequest: "<msg> (<path>)." as http.Error writes it."""
    return HttpError(400, f"{msg} ({path}).\n".encode(), headers={"X-Content-Type-Options": "nosniff"})


def http_error(status, msg):
    """Go's http.Error."""
    return HttpError(status, (msg + "\n").encode(), headers={"X-Content-Type-Options": "nosniff"})


# ----------------------------------------------------------------------------------------------
# Go-flavoured JSON (struct field order kept, maps sorted, float32 printed as Go prints it)


class F32(float):
    pass


class Raw(str):
    """Already-encoded JSON."""


def go_float32(f):
    v = np.float32(f)
    if v == 0:
        return "0"
    a = abs(float(v))
    if a < 1e-6 or a >= 1e21:
        s = np.format_float_scientific(v, unique=True, trim="-")
        mant, exp = s.split("e")
        e = int(exp)
        return f"{mant}e{'-' if e < 0 else '+'}{abs(e):02d}"
    s = np.format_float_positional(v, unique=True, trim="-")
    return s


def gojson(obj):
    if isinstance(obj, Raw):
        return str(obj)
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, F32):
        return go_float32(obj)
    if isinstance(obj, (int, np.integer)):
        return str(int(obj))
    if isinstance(obj, float):
        return json.dumps(obj)
    if isinstance(obj, str):
        return json.dumps(obj, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    if isinstance(obj, GoMap):
        return "{" + ",".join(gojson(str(k)) + ":" + gojson(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))) + "}"
    if isinstance(obj, dict):  # a struct: keep field order
        return "{" + ",".join(gojson(k) + ":" + gojson(v) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(gojson(v) for v in obj) + "]"
    raise TypeError(type(obj))


class GoMap(dict):
    """A Go map: marshalled with sorted keys."""


def go_time(t):
    dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    frac = f"{dt.microsecond:06d}".rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "Z"


def go_value(v):
    """Go's %v of a decoded JSON value (float64, string, []interface{}, map)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + " ".join(go_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_value(x)}" for k, x in sorted(v.items())) + "]"
    if v is None:
        return "<nil>"
    return str(v)


# ----------------------------------------------------------------------------------------------
# dvid.Config (dvid/command.go)


class Config:
    def __init__(self, values=None):
        self.values = {}
        for k, v in (values or {}).items():
            self.values[k.lower()] = v

    @classmethod
    def from_body(cls, body):
        if not body.strip():
            return cls()
        try:
            v = json.loads(body)
        except ValueError as e:
            raise DvidError(f"Malformed JSON request in body: {e}")
        if not isinstance(v, dict):
            raise DvidError("Malformed JSON request in body: json: cannot unmarshal into Go value of type map[string]interface {}")
        return cls(v)

    def get(self, key):
        return self.values.get(key.lower()), key.lower() in self.values

    def set(self, key, value):
        self.values[key.lower()] = value

    def get_string(self, key):
        v, found = self.get(key)
        if not found:
            return None, False
        if not isinstance(v, str):
            raise DvidError(f"Setting for '{key}' was not a string: {go_value(v)}")
        return v, True

    def get_bool(self, key):
        s, found = self.get_string(key)
        if not found:
            return False, False
        if s.lower() in ("false", "0"):
            return False, True
        if s.lower() in ("true", "1"):
            return True, True
        raise DvidError(f"Cannot parse '{s}' as a boolean.  Use 'true', 'false', '0', or '1'.")

    def get_int(self, key):
        s, found = self.get_string(key)
        if not found:
            return 0, False
        return go_atoi(s), True

    def go_string(self):
        return "{map[" + " ".join(f"{k}:{go_value(v)}" for k, v in sorted(self.values.items())) + "]}"


def go_atoi(s, fn="Atoi", bits=64):
    if not re.fullmatch(r"[+-]?[0-9]+", s):
        raise DvidError(f'strconv.{fn}: parsing {json.dumps(s)}: invalid syntax')
    v = int(s)
    lim = 1 << (bits - 1)
    if not -lim <= v < lim:
        raise DvidError(f'strconv.{fn}: parsing {json.dumps(s)}: value out of range')
    return v


def parse_int32(s):
    return go_atoi(s.strip(), "ParseInt", 32)


def string_to_point(s, sep):
    """dvid.StringToPoint: 2 or 3 (or more) int32 elements."""
    elems = s.split(sep)
    if len(elems) < 2:
        raise DvidError(f"cannot convert '{s}' into a Point.")
    return tuple(parse_int32(e) for e in elems)


def fmt_point(p):
    return "(" + ",".join(str(v) for v in p) + ")"


class Subvol:
    def __init__(self, offset, size):
        self.offset, self.size = tuple(offset), tuple(size)

    @property
    def end(self):
        return tuple(o + s - 1 for o, s in zip(self.offset, self.size))

    def nvox(self):
        n = 1
        for s in self.size:
            n *= s
        return n

    def __str__(self):
        return f"3d volume {fmt_point(self.size)} at offset {fmt_point(self.offset)}"


def subvol_from_strings(offset_str, size_str, sep="_"):
    offset = string_to_point(offset_str, sep)
    if len(offset) != 3:
        raise DvidError(f"Offset must be 3d coordinate, not {len(offset)}-d coordinate")
    size = string_to_point(size_str, sep)
    if len(size) != 3:
        raise DvidError(f"Size must be 3 (not {len(size)}) dimensions")
    return Subvol(offset, size)


def block_aligned(sv, bs):
    """dvid.BlockAligned (a zero remainder is the same under Go's and Python's %)."""
    if len(bs) != 3:
        return False
    for d in range(3):
        if sv.offset[d] % bs[d] != 0 or (sv.end[d] + 1) % bs[d] != 0:
            return False
    return True


def go_mod(a, b):
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def go_div(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


SHAPES = {"xy": 2, "xz": 2, "yz": 2, "vol": 3, "arb": 2, "0_1": 2, "0_2": 2, "1_2": 2, "0_1_2": 3,
          "0,1": 2, "0,2": 2, "1,2": 2, "0,1,2": 3}


# ----------------------------------------------------------------------------------------------
# The native DVID label Block (datatype/common/labels/compressed.go), written from its description


def bits_for(n):
    if n < 2:
        return 0
    n -= 1
    b = 0
    while n > 0:
        b += 1
        n >>= 1
    return b


def encode_block(arr):
    """uint64 (nz, ny, nx) -> serialized Block bytes (MakeBlock)."""
    nz, ny, nx = arr.shape
    gx, gy, gz = nx // SUB, ny // SUB, nz // SUB
    arr = np.ascontiguousarray(arr, dtype="<u8")
    allu = np.unique(arr)
    if allu.size == 1:
        return struct.pack("<IIII", gx, gy, gz, 1) + struct.pack("<Q", int(allu[0]))
    subs = arr.reshape(gz, SUB, gy, SUB, gx, SUB).transpose(0, 2, 4, 1, 3, 5).reshape(-1, SUB * SUB * SUB)
    nums, sb_labels, values = [], [], []
    for row in subs:
        # sub-block indices in first-appearance order, as encodeBlock's voxel walk assigns them
        u, first, inv = np.unique(row, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty(len(u), dtype=np.int64)
        rank[order] = np.arange(len(u))
        sb_labels.append(u[order])
        nums.append(len(u))
        b = bits_for(len(u))
        if b:
            v = rank[inv.reshape(-1)]
            bitmat = ((v[:, None] >> np.arange(b - 1, -1, -1)) & 1).astype(np.uint8)
            values.append(np.packbits(bitmat.reshape(-1)).tobytes())  # 512*b bits: whole bytes
    # block-level table: labels in order of first appearance over the sub-blocks
    flat = np.concatenate(sb_labels)
    u, first = np.unique(flat, return_index=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(u), dtype=np.int64)
    rank[order] = np.arange(len(u))
    table = u[order]
    sbidx = rank[np.searchsorted(u, flat)].astype("<u4")
    out = io.BytesIO()
    out.write(struct.pack("<IIII", gx, gy, gz, len(table)))
    out.write(table.astype("<u8").tobytes())
    out.write(np.array(nums, dtype="<u2").tobytes())
    out.write(sbidx.tobytes())
    for v in values:
        out.write(v)
    return out.getvalue()


def decode_block(data):
    """serialized Block bytes -> uint64 (nz, ny, nx) (setExportedVars + MakeLabelVolume)."""
    if len(data) < 24:
        raise DvidError(f"can't unmarshal block binary of length {len(data)}")
    gx, gy, gz, n = struct.unpack_from("<IIII", data, 0)
    if n == 0:
        raise DvidError("block has 0 labels, which is not allowed")
    if gx > 256 or gy > 256 or gz > 256:
        raise DvidError(f"{gx} x {gy} x {gz} sub-blocks exceed max dimension of 2048 voxels (256 sub-blocks)")
    labels = np.frombuffer(data, dtype="<u8", count=n, offset=16)
    shape = (gz * SUB, gy * SUB, gx * SUB)
    if n == 1:
        return np.full(shape, labels[0], dtype="<u8")
    nsb = gx * gy * gz
    pos = 16 + 8 * n
    nums = np.frombuffer(data, dtype="<u2", count=nsb, offset=pos).astype(np.int64)
    pos += 2 * nsb
    total = int(nums.sum())
    sbidx = np.frombuffer(data, dtype="<u4", count=total, offset=pos).astype(np.int64)
    pos += 4 * total
    vals = np.frombuffer(data, dtype=np.uint8, offset=pos)
    subs = np.zeros((nsb, SUB * SUB * SUB), dtype="<u8")
    ipos, vpos = 0, 0
    weights_cache = {}
    for i in range(nsb):
        k = int(nums[i])
        idx = sbidx[ipos:ipos + k]
        ipos += k
        if k == 0:
            continue
        if k == 1:
            subs[i, :] = labels[idx[0]]
            continue
        b = bits_for(k)
        nbytes = SUB * SUB * SUB * b // 8
        bits = np.unpackbits(vals[vpos:vpos + nbytes]).reshape(-1, b).astype(np.int64)
        vpos += nbytes
        w = weights_cache.get(b)
        if w is None:
            w = weights_cache[b] = 1 << np.arange(b - 1, -1, -1)
        subs[i, :] = labels[idx[bits @ w]]
    return subs.reshape(gz, gy, gx, SUB, SUB, SUB).transpose(0, 3, 1, 4, 2, 5).reshape(shape)


def downres_labels(hi):
    """downresArray: 2x2x2 vote of non-zero labels, ties to the smaller label, all-zero -> 0."""
    nz, ny, nx = hi.shape
    v = hi.reshape(nz // 2, 2, ny // 2, 2, nx // 2, 2).transpose(0, 2, 4, 1, 3, 5).reshape(-1, 8)
    eq = (v[:, :, None] == v[:, None, :])
    counts = eq.sum(axis=2)
    counts[v == 0] = 0
    best = counts.max(axis=1)
    cand = np.where((counts == best[:, None]) & (best[:, None] > 0), v, np.uint64(0xFFFFFFFFFFFFFFFF))
    win = cand.min(axis=1)
    win[best == 0] = 0
    return win.reshape(nz // 2, ny // 2, nx // 2).astype("<u8")


def lz4_compress(data):
    return lz4.block.compress(data, store_size=False)


def lz4_uncompress(data, size):
    """golz4 Uncompress(in, out) with len(out) == size: a short result leaves zeros after it."""
    try:
        out = lz4.block.decompress(data, uncompressed_size=size)
    except Exception:  # noqa: BLE001
        raise DvidError("Malformed compression stream")
    if len(out) < size:
        out = out + bytes(size - len(out))
    return out


def go_gzip(data, level=-1):
    return gzip.compress(data, compresslevel=6 if level in (-1, None) else level, mtime=0)


# ----------------------------------------------------------------------------------------------
# Repos, versions, data instances


class Node:
    def __init__(self, uuid, vid, t):
        self.uuid, self.version = uuid, vid
        self.branch, self.note, self.log = "", "", []
        self.locked = False
        self.parents, self.children = [], []
        self.created = self.updated = t

    def json(self):
        return {"Branch": self.branch, "Note": self.note, "Log": list(self.log), "UUID": self.uuid,
                "VersionID": self.version, "Locked": self.locked, "Parents": list(self.parents),
                "Children": list(self.children), "Created": go_time(self.created), "Updated": go_time(self.updated)}


class Repo:
    def __init__(self, root, vid, alias, description, passcode, mutation_start):
        t = time.time()
        self.root, self.alias, self.description, self.passcode = root, alias, description, passcode
        self.log, self.properties = [], GoMap()
        self.data = {}  # name -> Instance
        self.nodes = {vid: Node(root, vid, t)}
        self.root_version = vid
        self.created = self.updated = t
        self.mut_id = mutation_start

    def new_mutation_id(self):
        m = self.mut_id
        self.mut_id += 1
        return m


class Instance:
    def __init__(self, store, typename, name, root_uuid, config):
        url, version, values, interpolable, kind = TYPES[typename]
        self.typename, self.url, self.version, self.kind = typename, url, version, kind
        self.name, self.root_uuid = name, root_uuid
        self.data_uuid = new_uuid()
        self.values, self.interpolable = values, interpolable
        self.bpv = sum(DTYPE_BYTES[t] for t, _ in values)
        self.is_label = kind != IMG
        self.compression = (LZ4, -1)
        self.checksum = "No checksum"
        self.versioned, self.tags = True, None
        if kind in ("labelmap", "labelarray"):
            bs, found = config.get_string("BlockSize")
            if found:
                if kind == "labelmap":
                    m = re.match(r"\s*([+-]?\d+),([+-]?\d+),([+-]?\d+)", bs)
                    nx, ny, nz = (int(g) for g in m.groups()) if m else (0, 0, 0)
                    if nx % 16 or ny % 16 or nz % 16:
                        raise DvidError("BlockSize must be multiples of 16")
            else:
                config.set("BlockSize", "64,64,64")
            if not config.get("Compression")[1]:
                config.set("Compression", "gzip")
        if name in RESERVED:  # datastore.NewDataService
            raise DvidError(f"cannot use reserved name {json.dumps(name)}")
        self.modify_config(config)
        # imageblk Properties: defaults then config
        default_bs = 32
        self.block_size = (default_bs,) * 3
        self.voxel_size = [F32(8)] * 3
        self.voxel_units = ["nanometers"] * 3
        self.cfg_min = self.cfg_max = None
        self.background = 0
        self.gridstore, self.scale_level = "", 0
        s, found = config.get_string("BlockSize")
        if found:
            self.block_size = string_to_point(s, ",")
        s, found = config.get_string("VoxelSize")
        if found:
            vs = []
            for e in s.split(","):
                try:
                    vs.append(F32(float(e.strip())))
                except ValueError:
                    raise DvidError(f'strconv.ParseFloat: parsing {json.dumps(e.strip())}: invalid syntax')
            self.voxel_size = vs
        s, found = config.get_string("VoxelUnits")
        if found:
            self.voxel_units = s.split(",")
        s, found = config.get_string("MinPoint")
        if found:
            self.cfg_min = string_to_point(s, ",")
        s, found = config.get_string("MaxPoint")
        if found:
            self.cfg_max = string_to_point(s, ",")
        s, found = config.get_string("Background")
        if found:
            v = go_atoi(s, "ParseUint", 64)
            if not 0 <= v <= 255:
                raise DvidError(f'strconv.ParseUint: parsing {json.dumps(s)}: value out of range')
            self.background = v
        s, found = config.get_string("GridStore")
        if found:
            raise DvidError(f'bad store ({s}) designated for GridStore: no store found with alias "{s}"')
        s, found = config.get_string("ScaleLevel")
        if found:
            self.scale_level = go_atoi(s)
        # label types
        self.max_label = {}  # version id -> max label
        self.max_repo_label = 0
        self.next_label = 0
        self.indexed_labels = True
        self.count_labels = True
        self.max_downres = 0
        if kind in ("labelmap", "labelarray"):
            b, found = config.get_bool("IndexedLabels")
            if found:
                self.indexed_labels = b
            if kind == "labelarray":
                b, found = config.get_bool("CountLabels")
                if found:
                    self.count_labels = b
            levels, found = config.get_int("MaxDownresLevel")
            if found:
                if levels < 0 or levels > 255:
                    raise DvidError(f"illegal number of down-res levels specified ({levels}): must be 0 <= n <= 255")
                self.max_downres = levels
        # storage: blocks[vid][(scale, bx, by, bz)] = StoredBlock; extents[vid] = (min, max)
        self.blocks = {}
        self.extents = {}
        self.mapping = {}  # labelmap: vid -> {supervoxel: label}
        self.mapping_used = False
        self.store = store

    def modify_config(self, config):
        """datastore.Data.ModifyConfig."""
        s, found = config.get_string("Compression")
        if found:
            f = s.lower()
            if f == "none":
                self.compression = (UNCOMPRESSED, -1)
            elif f == "snappy":
                self.compression = (SNAPPY, -1)
            elif f == "lz4":
                self.compression = (LZ4, -1)
            elif f == "gzip":
                self.compression = (GZIP, -1)
            elif f == "jpeg":
                first = 32
                bs, bfound = config.get_string("BlockSize")
                if bfound:
                    p0 = bs.split(",")[0]
                    try:
                        first = go_atoi(p0)
                    except DvidError:
                        raise DvidError(f'unable to parse first block dim ({json.dumps(p0)})')
                    if first <= 0:
                        raise DvidError("Invalid blocksize dim for jpeg compression")
                self.compression = (JPEG, first)
            else:
                parts = f.split(":")
                if len(parts) == 2 and parts[0] == "gzip":
                    try:
                        level = go_atoi(parts[1])
                    except DvidError:
                        raise DvidError(f"unable to parse gzip compression level ({json.dumps(parts[1])}).  Should be 'gzip:<level>'")
                    if level != -1 and not 1 <= level <= 9:
                        # NewCompression's error is dropped there (`d.compression, _ =`), leaving a zero
                        # Compression{}: "No compression, level 0"
                        self.compression = (0, 0)
                    else:
                        self.compression = (GZIP, level)
                else:
                    raise DvidError(f"Illegal compression specified: {s}")
        s, found = config.get_string("Checksum")
        if found:
            c = s.lower()
            if c == "none":
                self.checksum = "No checksum"
            elif c == "crc32":
                self.checksum = "CRC32 checksum"
            else:
                raise DvidError(f"Illegal checksum specified: {s}")
        v, found = config.get("Versioned")
        if isinstance(v, bool):
            self.versioned = v
        else:
            s, found = config.get_string("Versioned")
            if found:
                if s.lower() in ("false", "0"):
                    self.versioned = False
                elif s.lower() in ("true", "1"):
                    self.versioned = True
                else:
                    raise DvidError(f"Illegal setting for 'versioned' (needs to be 'false', '0', 'true', or '1'): {s}")
        s, found = config.get_string("Tags")
        if found:
            self.tags = GoMap()
            for assign in s.split(","):
                el = assign.split("=")
                if len(el) == 2 and el[0]:
                    self.tags[el[0]] = el[1]

    # --- JSON
    def base_json(self):
        fmt, level = self.compression
        return {"TypeName": self.typename, "TypeURL": self.url, "TypeVersion": self.version,
                "DataUUID": self.data_uuid, "Name": self.name, "RepoUUID": self.root_uuid,
                "Compression": f"{FORMAT_NAMES.get(fmt, 'Unknown compression')}, level {level}",
                "Checksum": self.checksum, "Syncs": [], "Versioned": self.versioned,
                "KVStore": "basholeveldb @ (in-memory test double)",
                "LogStore": "write logs @ (in-memory test double)" if self.kind in ("labelmap", "labelarray") else "no mutation log set",
                "Tags": self.tags}

    def get_extents(self, vid):
        """GetExtents: (MinPoint, MaxPoint, MinIndex, MaxIndex), each None when unset."""
        ext = self.lookup_extents(vid)
        if ext is None:
            if self.cfg_min is None or self.cfg_max is None:
                return None, None, None, None
            ext = (self.cfg_min, self.cfg_max)
        mn, mx = ext
        bs = self.block_size
        return mn, mx, tuple(mn[i] // bs[i] for i in range(3)), tuple(mx[i] // bs[i] for i in range(3))

    def lookup_extents(self, vid):
        for v in self.store.ancestry(self, vid):
            if v in self.extents:
                return self.extents[v]
        return None

    def grow_extents(self, vid, lo, hi):
        cur = self.lookup_extents(vid)
        if cur is None:
            self.extents[vid] = (tuple(lo), tuple(hi))
        else:
            mn = tuple(min(a, b) for a, b in zip(cur[0], lo))
            mx = tuple(max(a, b) for a, b in zip(cur[1], hi))
            if (mn, mx) != cur or vid not in self.extents:
                self.extents[vid] = (mn, mx)

    def props_json(self, vid, with_extents=True):
        if with_extents:
            mn, mx, mni, mxi = self.get_extents(vid)
        else:
            mn, mx, mni, mxi = self.props_extents_memory()
        p = {"Values": [{"DataType": t, "Label": l} for t, l in self.values], "Interpolable": self.interpolable,
             "BlockSize": list(self.block_size), "VoxelSize": list(self.voxel_size),
             "VoxelUnits": list(self.voxel_units), "MinPoint": mn and list(mn), "MaxPoint": mx and list(mx),
             "MinIndex": mni and list(mni), "MaxIndex": mxi and list(mxi), "Background": self.background,
             "GridStore": self.gridstore, "ScaleLevel": self.scale_level}
        if self.kind == "labelmap":
            p.update({"MaxLabel": GoMap(self.max_label), "MaxRepoLabel": self.max_repo_label,
                      "NextLabel": self.next_label, "IndexedLabels": self.indexed_labels,
                      "MaxDownresLevel": self.max_downres})
        elif self.kind == "labelarray":
            p.update({"MaxLabel": GoMap(self.max_label), "MaxRepoLabel": self.max_repo_label,
                      "IndexedLabels": self.indexed_labels, "CountLabels": self.count_labels,
                      "MaxDownresLevel": self.max_downres})
        return p

    def props_extents_memory(self):
        """labelblk's info marshals d.Properties, whose Extents PostExtents keeps (points only)."""
        mn = mx = None
        for ext in self.extents.values():
            if mn is None:
                mn, mx = ext
            else:
                mn = tuple(min(a, b) for a, b in zip(mn, ext[0]))
                mx = tuple(max(a, b) for a, b in zip(mx, ext[1]))
        if mn is None:
            mn, mx = self.cfg_min, self.cfg_max
        return mn, mx, None, None

    def info_json(self, vid):
        if self.kind == "labelblk":
            return gojson({"Base": self.base_json(), "Extended": self.props_json(vid, with_extents=False)})
        mn, mx, _, _ = self.get_extents(vid)
        return gojson({"Base": self.base_json(), "Extended": self.props_json(vid),
                       "Extents": {"MinPoint": mn and list(mn), "MaxPoint": mx and list(mx)}})

    def metadata_json(self, vid):
        dims = len(self.block_size)
        mn, mx, _, _ = self.get_extents(vid)
        if mn is None or mx is None:
            size = offset = (0,) * dims
        else:
            size = tuple(b - a + 1 for a, b in zip(mn, mx))
            offset = mn
        names = ["X", "Y", "Z", "t", "c"]
        axes = []
        for d in range(dims):
            axes.append({"Label": names[d], "Resolution": self.voxel_size[d] if d < len(self.voxel_size) else F32(0),
                         "Units": self.voxel_units[d] if d < len(self.voxel_units) else "",
                         "Size": size[d] if d < len(size) else 0, "Offset": offset[d] if d < len(offset) else 0})
        props = self.props_json(vid)
        for k in ("MaxLabel", "MaxRepoLabel", "NextLabel", "IndexedLabels", "CountLabels", "MaxDownresLevel"):
            props.pop(k, None)  # metadataT.Properties is imageblk.Properties
        return gojson({"Axes": axes, "Properties": props})

    # --- voxel storage
    def np_dtype(self):
        if self.is_label:
            return np.dtype("<u8")
        t = self.values[0][0]
        return np.dtype({"uint8": "u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8", "float32": "<f4"}[t])

    def shape_of(self, size):
        """numpy shape (z, y, x[, channels]) of a ZYX body."""
        if self.typename == "rgba8blk":
            return (size[2], size[1], size[0], 4)
        return (size[2], size[1], size[0])

    def block_dtype(self):
        return np.dtype("u1") if self.typename == "rgba8blk" else self.np_dtype()

    def get_block(self, vid, key):
        for v in self.store.ancestry(self, vid):
            b = self.blocks.get(v, {}).get(key)
            if b is not None:
                return b
        return None

    def put_block(self, vid, key, block):
        self.blocks.setdefault(vid, {})[key] = block

    def block_keys(self, vid, scale):
        keys = set()
        for v in self.store.ancestry(self, vid):
            for k in self.blocks.get(v, {}):
                if k[0] == scale:
                    keys.add(k)
        return keys

    def read_volume(self, vid, sv, scale=0):
        """GetVoxels / GetLabels: unwritten blocks stay 0."""
        out = np.zeros(self.shape_of(sv.size), dtype=self.block_dtype())
        bs = self.block_size
        lo = [sv.offset[d] // bs[d] for d in range(3)]  # the block holding the voxel (floor)
        hi = [sv.end[d] // bs[d] for d in range(3)]
        for bz in range(lo[2], hi[2] + 1):
            for by in range(lo[1], hi[1] + 1):
                for bx in range(lo[0], hi[0] + 1):
                    b = self.get_block(vid, (scale, bx, by, bz))
                    if b is None:
                        continue
                    arr = b.array()
                    org = (bx * bs[0], by * bs[1], bz * bs[2])
                    s0 = [max(sv.offset[d], org[d]) for d in range(3)]
                    s1 = [min(sv.end[d], org[d] + bs[d] - 1) + 1 for d in range(3)]
                    if any(s1[d] <= s0[d] for d in range(3)):
                        continue
                    out[s0[2] - sv.offset[2]:s1[2] - sv.offset[2], s0[1] - sv.offset[1]:s1[1] - sv.offset[1],
                        s0[0] - sv.offset[0]:s1[0] - sv.offset[0]] = \
                        arr[s0[2] - org[2]:s1[2] - org[2], s0[1] - org[1]:s1[1] - org[1], s0[0] - org[0]:s1[0] - org[0]]
        return out

    def split_blocks(self, sv, vol):
        """An aligned volume -> {(bx, by, bz): block array}."""
        bs = self.block_size
        out = {}
        for z in range(0, sv.size[2], bs[2]):
            for y in range(0, sv.size[1], bs[1]):
                for x in range(0, sv.size[0], bs[0]):
                    key = ((sv.offset[0] + x) // bs[0], (sv.offset[1] + y) // bs[1], (sv.offset[2] + z) // bs[2])
                    out[key] = np.ascontiguousarray(vol[z:z + bs[2], y:y + bs[1], x:x + bs[0]])
        return out

    def map_labels(self, vid, arr):
        m = self.current_mapping(vid)
        if not m:
            return arr
        keys = np.fromiter(m.keys(), dtype=np.uint64, count=len(m))
        vals = np.fromiter(m.values(), dtype=np.uint64, count=len(m))
        order = np.argsort(keys)
        keys, vals = keys[order], vals[order]
        flat = arr.reshape(-1)
        pos = np.searchsorted(keys, flat)
        pos[pos >= len(keys)] = 0
        hit = keys[pos] == flat
        out = flat.copy()
        out[hit] = vals[pos[hit]]
        return out.reshape(arr.shape)

    def current_mapping(self, vid):
        m = {}
        for v in reversed(self.store.ancestry(self, vid)):
            m.update(self.mapping.get(v, {}))
        return m

    def update_max_label(self, vid, arr):
        mx = int(arr.max()) if arr.size else 0
        if mx == 0:
            return
        inherited = None
        for v in self.store.ancestry(self, vid):
            if v in self.max_label:
                inherited = self.max_label[v]
                break
        cur = self.max_label.get(vid)
        if cur is not None and cur >= mx:
            return
        if inherited is not None and inherited > mx:
            mx = inherited
            if cur is not None and cur >= mx:
                return
        self.max_label[vid] = mx
        if mx > self.max_repo_label:
            self.max_repo_label = mx


class StoredBlock:
    """One stored block: the voxels (numpy) and, lazily, DVID's serialization of it."""

    def __init__(self, inst, arr=None, stored=None):
        self.inst, self._arr, self._stored = inst, arr, stored  # stored: (format, payload bytes)

    def array(self):
        if self._arr is None:
            fmt, payload = self._stored
            raw = unserialize(fmt, payload)
            if self.inst.is_label and self.inst.kind != "labelblk":
                self._arr = decode_block(raw)
            else:
                bs = self.inst.block_size
                self._arr = np.frombuffer(raw, dtype=self.inst.block_dtype()).reshape(self.inst.shape_of(bs))
        return self._arr

    def stored(self):
        """(format, payload after DVID's 1-byte serialization header)."""
        if self._stored is None:
            if self.inst.is_label and self.inst.kind != "labelblk":
                raw = encode_block(self._arr)
            else:
                raw = np.ascontiguousarray(self._arr).tobytes()
            self._stored = serialize(raw, self.inst.compression)
        return self._stored


def serialize(raw, compression):
    fmt, level = compression
    if fmt == LZ4:
        return LZ4, struct.pack("<I", len(raw)) + lz4_compress(raw)
    if fmt == GZIP:
        return GZIP, go_gzip(raw, level)
    return fmt, raw  # none; snappy/jpeg are not implemented here and are kept raw (see the docstring)


def unserialize(fmt, payload):
    if fmt == LZ4:
        size = struct.unpack_from("<I", payload, 0)[0]
        return lz4_uncompress(payload[4:], size)
    if fmt == GZIP:
        return gzip.decompress(payload)
    return payload


def new_uuid():
    return uuidlib.uuid4().hex


class Store:
    def __init__(self, mutation_start=0):
        self.lock = threading.RLock()
        self.repos = {}  # root uuid -> Repo
        self.node_repo = {}  # uuid -> Repo
        self.uuid_to_version = {}
        self.version_to_uuid = {}
        self.branch = {}  # root+name -> leaf uuid
        self.next_version = 1
        self.mutation_start = mutation_start
        self.max_throttled = 1
        self.cur_throttled = 0

    def new_version(self, assign=None):
        u = assign or new_uuid()
        v = self.next_version
        self.next_version += 1
        self.uuid_to_version[u] = v
        self.version_to_uuid[v] = u
        return u, v

    def new_repo(self, alias, description, assign, passcode):
        if assign is not None and assign in self.repos:
            raise DvidError("UUID already exists in datastore")
        u, v = self.new_version(assign)
        r = Repo(u, v, alias, description, passcode, self.mutation_start)
        self.repos[u] = r
        self.node_repo[u] = r
        self.branch[u + "master"] = u
        return r

    def matching_uuid(self, s):
        splits = s.split(":")
        branch = None
        if len(splits) == 2:
            branch = splits[1]
            if splits[0] == "":
                return self.branch_version(None, branch)
            s = splits[0]
        elif len(splits) > 2:
            raise DvidError(f"bad UUID specification {json.dumps(s)}")
        matches = [u for u in self.uuid_to_version if u.startswith(s)]
        if len(matches) > 1:
            raise DvidError(f"more than one UUID matches {s}")
        if not matches:
            raise DvidError(f"could not find UUID with partial match to {s}")
        if branch:
            return self.branch_version(matches[0], branch)
        return matches[0], self.uuid_to_version[matches[0]]

    def branch_version(self, u, name):
        if u is None:
            if len(self.repos) > 1:
                raise DvidError("UUID must be specified if more than one repo exists")
            if not self.repos:
                raise DvidError("could not find UUID with partial match to ")  # a nil repo: see the docstring
            r = next(iter(self.repos.values()))
        else:
            r = self.repo_of(u)
        parts = name.split("~")
        if len(parts) == 2:
            name = parts[0]
            anc = self.ancestry_by_branch(r, name)
            try:
                parent = go_atoi(parts[1])
            except DvidError:
                raise DvidError(f"can't parse parent {json.dumps(parts[1])} in branch {json.dumps(name)}")
            if parent >= len(anc) or parent < 0:
                raise DvidError(f"parent {parent} is out of range for branch {json.dumps(name)}")
            leaf = anc[parent]
        else:
            if name == "":
                name = "master"
            leaf = self.branch.get(r.root + name)
            if leaf is None:
                raise DvidError(f"branch {json.dumps(name)} not found in repo {json.dumps(u or '')}")
        return leaf, self.uuid_to_version[leaf]

    def ancestry_by_branch(self, r, name):
        """dagT.getAncestryByBranch: walk down the branch to its leaf, then up to the root.
        An unknown branch gives an empty list (no error), as there."""
        node = None
        for n in r.nodes.values():
            if n.branch == name or (name == "master" and n.branch == ""):
                node = n
        if node is None:
            return []
        bname = node.branch
        while True:
            nxt = [r.nodes[c] for c in node.children if r.nodes[c].branch == bname]
            if not nxt:
                break
            if len(nxt) > 1:
                raise DvidError(f"branch {json.dumps(bname)} has more than 1 child: {nxt[1].uuid} and {node.uuid}")
            node = nxt[0]
        out = []
        while node is not None:
            out.append(node.uuid)
            node = r.nodes[node.parents[-1]] if node.parents else None
        return out

    def repo_of(self, u):
        r = self.node_repo.get(u)
        if r is None:
            raise DvidError("UUID is not present in datastore")
        return r

    def ancestry(self, inst, vid):
        """Versions to look in for a read at vid, nearest first (unversioned data: the root only)."""
        r = self.repo_of(self.version_to_uuid[vid])
        if not inst.versioned:
            return [r.root_version]
        out = []
        v = vid
        while v is not None:
            out.append(v)
            ps = r.nodes[v].parents
            v = ps[0] if ps else None
        return out

    def master_leaf_version(self, inst):
        r = self.repo_of(inst.root_uuid)
        leaf = self.branch.get(r.root + "master")
        return self.uuid_to_version[leaf] if leaf else r.root_version

    def repo_json(self, r):
        dag = {"Root": r.root, "Nodes": GoMap({n.uuid: Raw(gojson(n.json())) for n in r.nodes.values()})}
        data = GoMap({name: Raw(inst.info_json(self.master_leaf_version(inst))) for name, inst in r.data.items()})
        return gojson({"Root": r.root, "Alias": r.alias, "Description": r.description, "Log": list(r.log),
                       "Properties": r.properties, "DataInstances": data, "DAG": dag, "MutationID": r.mut_id,
                       "SavedMutationID": r.mut_id,
                       "Created": go_time(r.created), "Updated": go_time(r.updated)})


# ----------------------------------------------------------------------------------------------
# HTTP


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.log = []
        self.reset()

    def reset(self):
        self.busy = 0
        self.unavailable = 0
        self.fail = 0
        self.fail_status = 503
        self.drop = 0
        self.delay = 0.0
        self.delay_count = 0
        self.corrupt = 0
        self.empty_block_panic = True


LABEL_COMPRESSIONS = ("", "lz4", "gzip", "blocks", "uncompressed")


def make_handler(store, opts, state):
    req_counter = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        server_version = "dvid-double/1"
        timeout = 120

        def log_message(self, *args):
            pass

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

        def send(self, status, body, ctype, headers=None, rec=None):
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            if rec is not None:
                rec["status"] = status
                rec["response_bytes"] = len(body)

        def record(self, rec):
            rec["time"] = time.time()
            with state.lock:
                state.log.append(rec)
            if opts.log:
                with state.lock, open(opts.log, "a") as f:
                    f.write(json.dumps(rec) + "\n")

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
                    self.send(400, json.dumps({"error": f"control: not a JSON object ({e})"}).encode(), "application/json")
                    return True
                with state.lock:
                    if cmd.get("reset"):
                        state.reset()
                        state.log.clear()
                    if cmd.get("clear_log"):
                        state.log.clear()
                    if "busy" in cmd:
                        state.busy = int(cmd["busy"])
                    if "unavailable" in cmd:
                        state.unavailable = int(cmd["unavailable"])
                    if "fail" in cmd:
                        state.fail = int(cmd["fail"])
                        state.fail_status = int(cmd.get("status", 503))
                    if "drop" in cmd:
                        state.drop = int(cmd["drop"])
                    if "corrupt" in cmd:
                        state.corrupt = int(cmd["corrupt"])
                    if "delay" in cmd:
                        state.delay = float(cmd["delay"])
                        state.delay_count = int(cmd.get("count", 1))
                    if "empty_block_panic" in cmd:
                        state.empty_block_panic = bool(cmd["empty_block_panic"])
                    pending = {"busy": state.busy, "unavailable": state.unavailable, "fail": state.fail,
                               "status": state.fail_status, "drop": state.drop, "delay": state.delay,
                               "delay_count": state.delay_count, "empty_block_panic": state.empty_block_panic}
                self.send(200, json.dumps({"ok": True, "pending": pending}).encode(), "application/json")
                return True
            return False

        def handle_any(self, method):
            url = urlsplit(self.path)
            if self.control(method, url):
                return
            query = {}
            for k, v in parse_qsl(url.query, keep_blank_values=True):
                query.setdefault(k, v)
            rec = {"method": method, "path": url.path, "query": {k: v for k, v in query.items() if k != "admintoken"},
                   "route": None, "uuid": None, "data": None,
                   "content_type": self.headers.get("Content-Type"),
                   "content_encoding": self.headers.get("Content-Encoding"),
                   "accept_encoding": self.headers.get("Accept-Encoding"),
                   "auth_scheme": (self.headers.get("Authorization") or "").split(" ")[0] or None,
                   "content_length": None, "auth": None, "status": None, "response_bytes": None, "fault": None}
            body = self.read_body() if method in ("POST", "PUT") or self.headers.get("Content-Length") or \
                self.headers.get("Transfer-Encoding") else b""
            rec["content_length"] = len(body)
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
                unavailable = not drop and not fail and state.unavailable > 0
                state.unavailable -= int(unavailable)
            if delay:
                time.sleep(delay)
            if drop:
                rec["fault"] = "drop"
                self.record(rec)
                self.close_connection = True
                return
            try:
                if fail:
                    rec["fault"] = "fail"
                    raise http_error(fail_status, "Injected fault (test double)")
                if unavailable:  # httpAvailHandler, the first middleware
                    rec["fault"] = "unavailable"
                    raise http_error(503, "DVID server is unavailable.")
                status, out, ctype, headers = self.dispatch(method, url, query, body, rec)
                with state.lock:
                    corrupt = state.corrupt > 0 and status == 200 and method == "GET" and "/raw/" in url.path
                    state.corrupt -= int(corrupt)
                if corrupt:  # a damaged body of the right length (test control)
                    rec["fault"] = "corrupt"
                    out = bytes(b ^ 0xA5 for b in out)
                self.send(status, out, ctype, headers, rec=rec)
            except HttpError as e:
                self.send(e.status, e.body, e.ctype, e.headers, rec=rec)
            except Exception as e:  # noqa: BLE001 - a bug in the double: a 500 that says so
                import traceback
                traceback.print_exc(file=sys.stderr)
                self.send(500, f"test double bug: {type(e).__name__}: {e}\n".encode(), "text/plain; charset=utf-8", rec=rec)
            self.record(rec)

        # --- helpers
        def admin_priv(self, query):
            return opts.admin_token is not None and query.get("admintoken") == opts.admin_token

        def allow_admin(self, query):
            return opts.admin_token is None or self.admin_priv(query)

        def authorize(self, path, rec):
            """isAuthorized in DSG mode (after repoRawSelector)."""
            if opts.token is None:
                rec["auth"] = "unchecked"
                return
            header = self.headers.get("Authorization") or ""
            token = ""
            if len(header) > 7 and header[:7].lower() == "bearer ":
                token = header[7:].strip()
            if not token:
                token = self.cookie("dsg_token") or ""
            if not token:
                rec["auth"] = "missing"
                raise http_error(401, f"dsg token required via Authorization header or dsg_token cookie ({path}).")
            if token != opts.token:
                rec["auth"] = "wrong"
                raise http_error(401, f"invalid DSG token ({path}).")
            rec["auth"] = "ok"

        def cookie(self, name):
            for part in (self.headers.get("Cookie") or "").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v
            return None

        def resolve(self, s, path):
            try:
                return store.matching_uuid(s)
            except DvidError as e:
                raise bad_request(str(e), path)

        # --- routing (server/web.go initRoutes)
        def dispatch(self, method, url, query, body, rec):
            path = url.path
            parts = path.split("/")
            json_t = "application/json"
            with store.lock:
                if path in ("/api/server/info", "/api/server/info/") and method == "GET":
                    rec["route"] = "server_info"
                    info = {"Cores": str(os.cpu_count()), "Maximum Cores": str(os.cpu_count()),
                            "Datastore Version": DATASTORE_VERSION, "DVID Version": DVID_VERSION,
                            "Storage backend": "basholeveldb", "Server time": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime()),
                            "Server uptime": f"{time.time() - START:.3f}s", "RPC Address": "",
                            "Host": self.headers.get("Host") or "", "Note": "", "TOML location": ""}
                    return 200, gojson(GoMap(info)).encode(), json_t, {}
                if path in ("/api/server/types", "/api/server/types/") and method == "GET":
                    rec["route"] = "server_types"
                    used = GoMap()
                    for r in store.repos.values():
                        for inst in r.data.values():
                            used[inst.typename] = inst.url
                    return 200, gojson(used).encode(), json_t, {}
                if path in ("/api/server/compiled-types", "/api/server/compiled-types/") and method == "GET":
                    rec["route"] = "server_compiled_types"
                    return 200, gojson(GoMap({k: v[0] for k, v in TYPES.items()})).encode(), json_t, {}
                if path == "/api/server/settings" and method == "POST":
                    rec["route"] = "server_settings"
                    if not self.allow_admin(query):
                        raise bad_request("POST /api/server/settings requires admin privileges (admintoken or DSG admin)", path)
                    try:
                        cfg = Config.from_body(body)
                    except DvidError as e:
                        raise bad_request(f"Error decoding POSTed JSON config for 'new': {e}", path)
                    out = ""
                    try:
                        n, found = cfg.get_int("throttle")
                    except DvidError as e:
                        raise bad_request(f"POST on settings endpoint had bad parsing of 'throttle' key: {e}", path)
                    if found:
                        old = store.max_throttled
                        store.max_throttled = n
                        out += f"Maximum throttled ops set to {n} from {old}\n"
                    return 200, out.encode(), "text/plain", {}
                if path == "/api/repos" and method == "POST":
                    rec["route"] = "repos_post"
                    if not self.allow_admin(query):
                        raise bad_request("Creating a repo requires admin privileges (admintoken or DSG admin) on a server that is not read-only", path)
                    try:
                        cfg = Config.from_body(body)
                    except DvidError as e:
                        raise bad_request(f"Error decoding POSTed JSON config for new repo: {e}", path)
                    vals = {}
                    for key, what in (("alias", "requires valid 'alias'"), ("description", "requires valid 'description'"),
                                      ("passcode", "requires valid 'passcode'"), ("root", "with error on getting 'root'")):
                        try:
                            vals[key] = cfg.get_string(key)
                        except DvidError as e:
                            raise bad_request(f"POST on repos endpoint {what}: {e}", path)
                    assign = vals["root"][0] if vals["root"][1] else None
                    try:
                        r = store.new_repo(vals["alias"][0] or "", vals["description"][0] or "", assign, vals["passcode"][0] or "")
                    except DvidError as e:
                        raise bad_request(str(e), path)
                    return 200, ('{"root": %s}' % json.dumps(r.root)).encode(), json_t, {}
                if path == "/api/repos/info" and method == "GET":
                    rec["route"] = "repos_info"
                    if opts.token is not None and not self.admin_priv(query):
                        try:
                            self.authorize(path, rec)
                        except HttpError:  # requestAccessScope: RepoPublicOnly, and no node is public here
                            return 200, b"{}", json_t, {}
                    return 200, gojson(GoMap({u: Raw(store.repo_json(r)) for u, r in store.repos.items()})).encode(), json_t, {}
                if len(parts) >= 4 and parts[1] == "api" and parts[2] == "repo" and parts[3]:
                    return self.repo_route(method, path, parts, query, body, rec)
                if len(parts) >= 4 and parts[1] == "api" and parts[2] == "node" and parts[3]:
                    if len(parts) <= 5 or (len(parts) == 6 and parts[5] == ""):
                        return self.node_route(method, path, parts, query, body, rec)
                    return self.instance_route(method, path, parts, query, body, rec)
            raise http_error(404, "404 page not found")

        def repo_route(self, method, path, parts, query, body, rec):
            action = parts[4] if len(parts) > 4 else ""
            u, vid = self.resolve(parts[3], path)
            rec["uuid"] = u
            self.authorize(path, rec)
            repo = store.repo_of(u)
            json_t = "application/json"
            if action == "info" and method == "GET" and len(parts) == 5:
                rec["route"] = "repo_info"
                return 200, store.repo_json(repo).encode(), json_t, {}
            if action == "instance" and method == "POST" and len(parts) == 5:
                rec["route"] = "repo_instance"
                node = repo.nodes[vid]
                if node.locked and not self.admin_priv(query):
                    raise bad_request(f"New data instance cannot be created on locked node {u}", path)
                try:
                    cfg = Config.from_body(body)
                except DvidError as e:
                    raise bad_request(f"Error decoding POSTed JSON config for 'new': {e}", path)
                try:
                    typename, found = cfg.get_string("typename")
                except DvidError:
                    found = False
                if not found:
                    raise bad_request("POST on repo endpoint requires specification of valid 'typename'", path)
                try:
                    dataname, found = cfg.get_string("dataname")
                except DvidError:
                    found = False
                if not found:
                    raise bad_request("POST on repo endpoint requires specification of valid 'dataname'", path)
                if typename not in TYPES:
                    raise bad_request(f"Data type {json.dumps(typename)} is not supported by current DVID server", path)
                if dataname in repo.data:
                    raise bad_request(f"Data named {json.dumps(dataname)} already exists in repo (root {repo.root})", path)
                try:
                    inst = Instance(store, typename, dataname, u, cfg)
                except DvidError as e:
                    raise bad_request(str(e), path)
                repo.data[dataname] = inst
                t = time.time()
                repo.updated = t
                repo.log.append(f"{go_time(t)[:19]}Z  New data instance {json.dumps(dataname)} of type "
                                f"{json.dumps(typename)} with config {cfg.go_string()}")
                return 200, ('{"result": "Added %s [%s] to node %s"}' % (dataname, typename, u)).encode(), json_t, {}
            if action == "branch-versions" and method == "GET" and len(parts) == 6:
                rec["route"] = "repo_branch_versions"
                try:
                    anc = store.ancestry_by_branch(repo, parts[5])
                except DvidError as e:
                    raise bad_request(str(e), path)
                return 200, json.dumps(anc, separators=(",", ":")).encode(), json_t, {}
            raise http_error(404, "404 page not found")

        def node_route(self, method, path, parts, query, body, rec):
            action = parts[4] if len(parts) > 4 else ""
            u, vid = self.resolve(parts[3], path)
            rec["uuid"] = u
            self.authorize(path, rec)
            repo = store.repo_of(u)
            node = repo.nodes[vid]
            json_t = "application/json"
            if node.locked and action not in ("branch", "newversion", "tag") and method not in ("GET", "HEAD") \
                    and not self.admin_priv(query):
                raise bad_request(f"Cannot do {method.lower()} on locked node {u}", path)
            if action in ("commit", "status") and method == "GET":
                rec["route"] = "node_status"
                return 200, ('{"Locked":%s}' % ("true" if node.locked else "false")).encode(), json_t, {}
            if action == "commit" and method == "POST":
                rec["route"] = "node_commit"
                try:
                    d = json.loads(body) if body.strip() else {}
                    note = d.get("note", "") if isinstance(d, dict) else ""
                    log = d.get("log", []) if isinstance(d, dict) else []
                except ValueError as e:
                    raise bad_request(f"Malformed JSON request in body: {e}", path)
                if node.locked:
                    raise bad_request(f"node {u} already committed", path)
                node.locked = True
                if note:
                    node.note = note
                t = time.time()
                for msg in log or []:
                    node.log.append(f"{go_time(t)[:19]}Z  {msg}")
                repo.updated = node.updated = t
                return 200, ('{"committed": %s}' % json.dumps(u)).encode(), json_t, {}
            if action in ("branch", "newversion") and method == "POST":
                rec["route"] = "node_" + action
                try:
                    d = json.loads(body) if body.strip() else {}
                    assert isinstance(d, dict)
                except (ValueError, AssertionError) as e:
                    raise bad_request(f"Malformed JSON request in body: {e}", path)
                assign = d.get("uuid") or None
                if assign is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", assign):
                    raise bad_request("Bad UUID provided: UUID must be 32 character hexadecimal string", path)
                branch = d.get("branch", "") if action == "branch" else ""
                if action == "branch" and branch in ("", "master"):
                    raise bad_request("Cannot create a master branch", path)
                if not node.locked:
                    raise bad_request("can't branch an unlocked node", path)
                if branch == "" or branch == node.branch:
                    branch = node.branch
                    for c in node.children:
                        if repo.nodes[c].branch == branch:
                            raise bad_request("branch already exists with given name", path)
                else:
                    if any(n.branch == branch for n in repo.nodes.values()):
                        raise bad_request("branch already exists with given name", path)
                cu, cv = store.new_version(assign)
                child = Node(cu, cv, time.time())
                child.parents = [vid]
                child.note = d.get("note", "")
                child.branch = branch
                store.branch[repo.root + (branch or "master")] = cu
                store.node_repo[cu] = repo
                node.children.append(cv)
                node.updated = repo.updated = time.time()
                repo.nodes[cv] = child
                return 200, ('{"child": %s}' % json.dumps(cu)).encode(), json_t, {}
            raise http_error(404, "404 page not found")

        # --- instances (instanceSelector, then the type's ServeHTTP)
        def instance_route(self, method, path, parts, query, body, rec):
            u, vid = self.resolve(parts[3], path)
            rec["uuid"] = u
            self.authorize(path, rec)
            repo = store.repo_of(u)
            name = parts[4]
            rec["data"] = name
            inst = repo.data.get(name)
            if inst is None:
                raise bad_request("invalid data instance name", path)
            keyword = parts[5]
            rec["route"] = keyword
            mutation = method in ("POST", "PUT", "DELETE") and keyword in (
                "raw", "isotropic", "blocks", "merge", "split", "cleave", "extents", "resolution", "ingest-supervoxels")
            if inst.versioned:
                if repo.nodes[vid].locked and mutation and not self.admin_priv(query):
                    raise bad_request(f"Cannot do {method} on endpoint {json.dumps(keyword)} of locked node {u}", path)
            else:
                vid = repo.root_version
            # ServeHTTP's own URL split
            sub = path[len("/api/"):].split("/")
            if sub and sub[-1] == "":
                sub = sub[:-1]
            if inst.kind == IMG and method not in ("GET", "POST"):
                raise bad_request(f"Data {json.dumps(name)} can only handle GET or POST HTTP verbs", path)
            if len(sub) < 4:
                raise bad_request("Incomplete API request", path)
            if inst.kind == "labelmap" and not inst.indexed_labels and keyword in (
                    "sparsevol", "sparsevol-by-point", "sparsevol-coarse", "maxlabel", "nextlabel",
                    "split-supervoxel", "cleave", "merge", "fvdb"):
                raise bad_request(f"data {json.dumps(name)} is not label indexed (IndexedLabels=false): "
                                  f"{json.dumps(keyword)} endpoint is not supported", path)
            try:
                return self.serve_instance(inst, vid, u, method, path, sub, query, body, rec)
            except DvidError as e:
                raise bad_request(str(e), path)

        def throttled(self):
            """server.ThrottledHTTP: raises the 503 or takes a slot (release with throttle_done)."""
            with state.lock:
                busy = state.busy > 0
                state.busy -= int(busy)
            with store.lock:
                if not busy and store.cur_throttled < store.max_throttled:
                    store.cur_throttled += 1
                    return
                cur = store.cur_throttled if not busy else max(store.cur_throttled, store.max_throttled)
                mx = store.max_throttled
            raise http_error(503, f"Server already running {cur} throttled operations (max = {mx})\n")

        def throttle_done(self):
            with store.lock:
                store.cur_throttled -= 1

        def serve_instance(self, inst, vid, u, method, path, sub, query, body, rec):
            kw = sub[3]
            octet = "application/octet-stream"
            if kw == "help":
                return 200, f"test double: see DVID's help for {inst.typename}\n".encode(), "text/plain", {}
            if kw == "info":
                if method == "POST" and inst.kind == IMG:
                    raise DvidError("info endpoint only supports GET HTTP verb")
                if method == "POST":
                    raise DvidError("the test double does not change instance settings (POST info)")
                return 200, inst.info_json(vid).encode(), "application/json", {}
            if kw == "metadata":
                return 200, (inst.metadata_json(vid) + "\n").encode(), "application/vnd.dvid-nd-data+json", {}
            if kw in ("raw", "isotropic"):
                return self.serve_raw(inst, vid, u, method, path, sub, query, body, rec)
            if kw == "subvolblocks" and inst.kind == IMG:
                if len(sub) < 6:
                    raise DvidError("the test double needs subvolblocks/<size>/<offset>")
                return self.serve_image_blocks(inst, vid, method, sub, query)
            if kw == "blocks":
                if inst.kind == "labelblk":
                    if len(sub) < 6:  # labelblk indexes parts[4], parts[5] unchecked: a recovered panic
                        req_counter[0] += 1
                        raise http_error(500, f"Panic detected on request dvid-double/{req_counter[0]:06d}:\n"
                                              f"runtime error: index out of range [{len(sub)}] with length {len(sub)}\n"
                                              f"IP: {self.client_address[0]}:{self.client_address[1]}, URL: {path}\n")
                    return self.serve_image_blocks(inst, vid, method, sub, query)
                if inst.kind in ("labelmap", "labelarray"):
                    return self.serve_label_blocks(inst, vid, method, sub, query, body)
            if kw == "maxlabel" and inst.kind in ("labelmap", "labelarray") and method == "GET":
                mx = 0
                for v in store.ancestry(inst, vid):
                    if v in inst.max_label:
                        mx = inst.max_label[v]
                        break
                return 200, ('{"maxlabel": %d}' % mx).encode(), "application/json", {}
            if kw == "merge" and inst.kind == "labelmap":
                return self.serve_merge(inst, vid, method, body)
            if kw == "mapping" and inst.kind == "labelmap":
                return self.serve_mapping(inst, vid, method, body, query)
            host = self.headers.get("Host") or "localhost:8000"
            raise http_error(400, f"Bad API call ({path}) for data {json.dumps(inst.name)}.  See API help at "
                                  f"http://{host}/api/help/{inst.typename}")

        def serve_raw(self, inst, vid, u, method, path, sub, query, body, rec):
            octet = "application/octet-stream"
            label = inst.kind in ("labelmap", "labelarray")
            if len(sub) < 7:
                if inst.kind == IMG:
                    raise DvidError(f"{json.dumps(sub[3])} must be followed by shape/size/offset")
                raise DvidError(f"'{sub[3]}' must be followed by shape/size/offset")
            shape_str, size_str, offset_str = sub[4], sub[5], sub[6]
            dims = SHAPES.get(shape_str.lower())
            if dims is None:
                raise DvidError(f"Unknown data shape specification ({shape_str})")
            supervoxels = query.get("supervoxels") == "true"
            scale = 0
            if label:
                try:
                    s = query.get("scale", "")
                    scale = go_atoi(s) & 0xFF if s else 0
                except DvidError as e:
                    raise DvidError(f"bad scale specified: {e}")
            if dims == 2:
                raise DvidError("the test double does not serve 2-d slices (xy/xz/yz, png/jpg)")
            throttle = query.get("throttle") in ("on", "true")
            if throttle:
                self.throttled()
            try:
                compression = query.get("compression", "")
                sv = subvol_from_strings(offset_str, size_str, "_")
                if method == "GET":
                    if inst.kind == "labelmap":
                        done = self.labelmap_single_block(inst, vid, sv, compression, supervoxels, scale, path, query)
                        if done is not None:
                            return done
                    nvox = sv.nvox()
                    if nvox <= 0:
                        word = "illegal" if inst.kind == "labelmap" else "Illegal"
                        raise DvidError(f"{word} geometry requested: {sv}")
                    if nvox * inst.bpv > MAX_DATA_REQUEST:
                        word = "requested" if inst.kind == "labelmap" else "Requested"
                        raise DvidError(f"{word} payload ({nvox * inst.bpv} bytes) exceeds this DVID server's set limit ({MAX_DATA_REQUEST})")
                    if len(sub) >= 8 and sub[7] in ("jpeg", "jpg") and inst.kind == IMG:
                        raise DvidError("the test double does not encode jpeg")
                    vol = inst.read_volume(vid, sv, scale if inst.is_label else 0)
                    if inst.kind == "labelmap" and not supervoxels:
                        vol = inst.map_labels(vid, vol)
                    data = np.ascontiguousarray(vol).tobytes()
                    if inst.is_label:
                        return 200, compress_out(compression, data), octet, {}
                    return 200, data, octet, {}
                # POST
                if sub[3] == "isotropic":
                    if inst.kind == IMG:
                        raise DvidError("can only POST 'raw' not 'isotropic' images")
                    raise DvidError("can only POST 'raw' not 'isotropic' images")
                if inst.is_label:
                    data = uncompress_in(compression, body, sv.nvox() * 8)
                else:
                    data = body
                if label:
                    if not block_aligned(sv, inst.block_size):
                        raise DvidError(f"cannot store labels for data {json.dumps(inst.name)} in non-block aligned "
                                        f"geometry {fmt_point(sv.offset)} -> {fmt_point(sv.end)}")
                    want = sv.nvox() * 8
                    if want != len(data):
                        raise DvidError(f"expected {want} bytes for data {json.dumps(inst.name)} label PUT but only received {len(data)} bytes")
                else:
                    want = inst.bpv * sv.nvox()
                    if len(data) != want:
                        word = "labels" if inst.kind == "labelblk" else "voxels"
                        raise DvidError(f"{word} data was {len(data)} bytes, expected {want} bytes for {sv}")
                    if not block_aligned(sv, inst.block_size):
                        raise DvidError(f"cannot store voxels in non-block aligned geometry {fmt_point(sv.offset)} -> {fmt_point(sv.end)}")
                repo = store.repo_of(u)
                repo.new_mutation_id()
                vol = np.frombuffer(data, dtype=inst.block_dtype()).reshape(inst.shape_of(sv.size))
                inst.grow_extents(vid, sv.offset, sv.end)
                blocks = inst.split_blocks(sv, vol)
                for (bx, by, bz), arr in blocks.items():
                    inst.put_block(vid, (0, bx, by, bz), StoredBlock(inst, arr.copy()))
                if label:
                    inst.update_max_label(vid, vol)
                    self.downres(inst, vid, {k: v for k, v in blocks.items()})
                return 200, b"", None, {}
            finally:
                if throttle:
                    self.throttle_done()

        def labelmap_single_block(self, inst, vid, sv, compression, supervoxels, scale, path, query):
            """writeBlockToHTTP: exactly one aligned block goes through its own path."""
            if query.get("roi"):
                return None
            bs = inst.block_size
            if len(bs) != 3 or tuple(sv.size) != tuple(bs):
                return None
            if any(go_mod(sv.offset[d], bs[d]) != 0 for d in range(3)):
                return None
            bc = tuple(go_div(sv.offset[d], bs[d]) for d in range(3))
            b = inst.get_block(vid, (scale, bc[0], bc[1], bc[2]))
            if b is None:
                if compression != "":
                    raise DvidError(f"unable to get label block ({bc[0]}, {bc[1]}, {bc[2]})")
                with state.lock:
                    panic = state.empty_block_panic
                if panic:
                    req_counter[0] += 1
                    msg = (f"Panic detected on request dvid-double/{req_counter[0]:06d}:\n"
                           f"runtime error: invalid memory address or nil pointer dereference\n"
                           f"IP: {self.client_address[0]}:{self.client_address[1]}, URL: {path}\n")
                    raise http_error(500, msg)
                arr = np.zeros(inst.shape_of(bs), dtype="<u8")
            else:
                arr = b.array()
            if not supervoxels:
                arr = inst.map_labels(vid, arr)
            data = np.ascontiguousarray(arr).tobytes()
            if compression != "":
                return 200, compress_out(compression, data), "application/octet-stream", {}
            # streamRawBlock sets no Content-Type; Go's sniffing names binary data application/octet-stream
            return 200, data, "application/octet-stream", {}

        def downres(self, inst, vid, changed, start_scale=0):
            """downres.Mutation.Execute -> StoreDownres per scale (labelmap/labelarray)."""
            bs = inst.block_size
            hires = changed
            for scale in range(start_scale, inst.max_downres):
                octants = {}
                for (bx, by, bz), arr in hires.items():
                    lo = (bx >> 1, by >> 1, bz >> 1)
                    octants.setdefault(lo, {})[((bz % 2) << 2) + ((by % 2) << 1) + (bx % 2)] = arr
                lores = {}
                for lo, octs in octants.items():
                    if len(octs) < 8:
                        prev = inst.get_block(vid, (scale + 1,) + lo)
                        base = prev.array().copy() if prev is not None else np.zeros(inst.shape_of(bs), dtype="<u8")
                    else:
                        base = np.zeros(inst.shape_of(bs), dtype="<u8")
                    for i, arr in octs.items():
                        oz, oy, ox = i >> 2, (i >> 1) & 1, i & 1
                        hz, hy, hx = bs[2] // 2, bs[1] // 2, bs[0] // 2
                        base[oz * hz:(oz + 1) * hz, oy * hy:(oy + 1) * hy, ox * hx:(ox + 1) * hx] = downres_labels(arr)
                    inst.put_block(vid, (scale + 1,) + lo, StoredBlock(inst, base))
                    lores[lo] = base
                hires = lores

        def serve_label_blocks(self, inst, vid, method, sub, query, body):
            throttle = query.get("throttle") in ("on", "true")
            if throttle:
                self.throttled()
            try:
                s = query.get("scale", "")
                try:
                    scale = go_atoi(s) & 0xFF if s else 0
                except DvidError as e:
                    raise DvidError(f"bad scale specified: {e}")
                compression = query.get("compression", "")
                downscale = query.get("downres") == "true"
                supervoxels = query.get("supervoxels") == "true" and inst.kind == "labelmap"
                if method == "GET":
                    if len(sub) < 6:
                        raise DvidError("must specify size and offset with GET /blocks endpoint")
                    sv = subvol_from_strings(sub[5], sub[4], "_")
                    if not block_aligned(sv, inst.block_size):
                        word = "blocks" if inst.kind == "labelmap" else "block"
                        raise DvidError(f"cannot use labels via '{word}' endpoint in non-block aligned geometry "
                                        f"{fmt_point(sv.offset)} -> {fmt_point(sv.end)}")
                    if compression not in LABEL_COMPRESSIONS:
                        raise DvidError('compression must be "lz4" (default), "gzip", "blocks" or "uncompressed"')
                    bs = inst.block_size
                    b0 = [go_div(sv.offset[d], bs[d]) for d in range(3)]
                    nb = [go_div(sv.size[d], bs[d]) for d in range(3)]
                    out = io.BytesIO()
                    mapping = inst.current_mapping(vid) if (inst.kind == "labelmap" and not supervoxels) else {}
                    for bz in range(b0[2], b0[2] + nb[2]):
                        for by in range(b0[1], b0[1] + nb[1]):
                            for bx in range(b0[0], b0[0] + nb[0]):
                                b = inst.get_block(vid, (scale, bx, by, bz))
                                if b is None:
                                    continue
                                payload = self.transcode(inst, vid, b, compression, bool(mapping) and inst.mapping_used)
                                out.write(struct.pack("<iiiI", bx, by, bz, len(payload)))
                                out.write(payload)
                    return 200, out.getvalue(), "application/octet-stream", {}
                # POST /blocks (storeBlocks / ReceiveBlocks)
                if downscale and scale != 0:
                    raise DvidError("cannot downscale blocks of scale > 0")
                if compression not in ("", "blocks"):
                    raise DvidError('compression must be "blocks" (default) at this time')
                if inst.compression[0] != GZIP:
                    raise DvidError(f"labelmap {json.dumps(inst.name)} cannot accept GZIP /blocks POST since it internally uses "
                                    f"{FORMAT_NAMES.get(inst.compression[0], 'Unknown compression')}")
                repo = store.repo_of(store.version_to_uuid[vid])
                repo.new_mutation_id()
                pos, changed = 0, {}
                bs = inst.block_size
                ext = inst.lookup_extents(vid)
                mn, mx = (list(ext[0]), list(ext[1])) if ext else (None, None)
                while pos < len(body):
                    if len(body) - pos < 16:
                        raise DvidError(f"error reading header bytes, only got {len(body) - pos} bytes not 16")
                    bx, by, bz, n = struct.unpack_from("<iiiI", body, pos)
                    pos += 16
                    if n == 0:
                        raise DvidError(f"illegal zero length block at block ({bx}, {by}, {bz}) detected")
                    comp = body[pos:pos + n]
                    if len(comp) != n:
                        raise DvidError(f"error reading {n} bytes for block ({bx}, {by}, {bz}): {len(comp)} actually read (unexpected EOF)")
                    pos += n
                    try:
                        raw = gzip.decompress(comp)
                    except (OSError, EOFError, zlib.error) as e:
                        raise DvidError(f"can't initiate gzip reader on compressed data of length {n}: {e}")
                    arr = decode_block(raw)
                    if arr.shape != inst.shape_of(bs):
                        raise DvidError(f"block ({bx}, {by}, {bz}) has size {fmt_point(arr.shape[::-1])}, not the instance's {fmt_point(bs)} (test double check)")
                    inst.put_block(vid, (scale, bx, by, bz), StoredBlock(inst, arr, (GZIP, comp)))
                    if scale == 0:
                        lo = (bx * bs[0], by * bs[1], bz * bs[2])
                        hi = (lo[0] + bs[0] - 1, lo[1] + bs[1] - 1, lo[2] + bs[2] - 1)
                        mn = list(lo) if mn is None else [min(a, b) for a, b in zip(mn, lo)]
                        mx = list(hi) if mx is None else [max(a, b) for a, b in zip(mx, hi)]
                        inst.update_max_label(vid, arr)
                        changed[(bx, by, bz)] = arr
                if mn is not None and scale == 0:
                    inst.grow_extents(vid, mn, mx)
                if downscale:
                    self.downres(inst, vid, changed)
                return 200, b"", None, {}
            finally:
                if throttle:
                    self.throttle_done()

        def transcode(self, inst, vid, b, compression, do_mapping):
            """blocks.go transcodeBlock."""
            fmt_in, payload = b.stored()
            if fmt_in == LZ4:
                out = payload[4:]
            elif fmt_in in (UNCOMPRESSED, GZIP):
                out = payload
            else:
                raise DvidError(f"{inst.kind} data was stored in unknown compressed format: {FORMAT_NAMES.get(fmt_in)}")
            fmt_out = {"": LZ4, "lz4": LZ4, "blocks": fmt_in, "gzip": GZIP, "uncompressed": UNCOMPRESSED}[compression]
            if fmt_in == fmt_out and compression != "gzip" and not do_mapping:
                return out
            arr = b.array()
            if do_mapping:
                arr = inst.map_labels(vid, arr)
            if compression == "blocks":
                return go_gzip(encode_block(arr))
            raw = np.ascontiguousarray(arr).tobytes()
            if fmt_out == LZ4:
                return lz4_compress(raw)
            if fmt_out == GZIP:
                return go_gzip(raw)
            return raw

        def serve_image_blocks(self, inst, vid, method, sub, query):
            """imageblk subvolblocks and labelblk blocks: SendBlocks / SendSerializedBlock."""
            throttle = query.get("throttle") in ("on", "true")
            if throttle:
                self.throttled()
            try:
                compression = query.get("compression", "")
                sv = subvol_from_strings(sub[5], sub[4], "_")
                if not block_aligned(sv, inst.block_size):
                    raise DvidError(f"cannot use labels via 'block' endpoint in non-block aligned geometry "
                                    f"{fmt_point(sv.offset)} -> {fmt_point(sv.end)}")
                if method != "GET":
                    raise DvidError(f"DVID does not accept the {method.lower()} action on the 'blocks' endpoint")
                if compression not in ("uncompressed", "jpeg", ""):
                    raise DvidError(f"don't understand 'compression' query string value: {compression}")
                bs = inst.block_size
                b0 = [go_div(sv.offset[d], bs[d]) for d in range(3)]
                nb = [go_div(sv.size[d], bs[d]) for d in range(3)]
                out = io.BytesIO()
                for bz in range(b0[2], b0[2] + nb[2]):
                    for by in range(b0[1], b0[1] + nb[1]):
                        for bx in range(b0[0], b0[0] + nb[0]):
                            b = inst.get_block(vid, (0, bx, by, bz))
                            if b is None:
                                continue
                            fmt_in, payload = b.stored()
                            if compression == "jpeg" and fmt_in != JPEG:
                                raise DvidError(f"can't encode JPEG: expected internal block data to be JPEG, was "
                                                f"{FORMAT_NAMES.get(fmt_in)} instead")
                            data = np.ascontiguousarray(b.array()).tobytes() if compression == "uncompressed" else payload
                            out.write(struct.pack("<iiii", bx, by, bz, len(data)))
                            out.write(data)
                return 200, out.getvalue(), "application/octet-stream", {}
            finally:
                if throttle:
                    self.throttle_done()

        def labels_present(self, inst, vid):
            """Mapped labels with voxels at scale 0 (the label index, reduced)."""
            present = set()
            for key in inst.block_keys(vid, 0):
                b = inst.get_block(vid, key)
                present.update(np.unique(b.array()).tolist())
            return present

        def serve_merge(self, inst, vid, method, body):
            if method != "POST":
                raise DvidError("Merge requests must be POST actions.")
            try:
                tup = json.loads(body)
                assert isinstance(tup, list) and all(isinstance(x, int) and x >= 0 for x in tup)
            except (ValueError, AssertionError) as e:
                raise DvidError(f"Bad merge op JSON: {e}")
            if len(tup) == 1:
                raise DvidError(f"invalid merge tuple [{' '.join(map(str, tup))}], need at least target and to-merge labels")
            if not tup:
                raise DvidError("invalid merge tuple [], need at least target and to-merge labels")
            if 0 in tup[1:]:
                raise DvidError(f"invalid merge tuple [{' '.join(map(str, tup))}] -- cannot contain background label 0")
            target, merged = tup[0], set(tup[1:])
            svs = self.labels_present(inst, vid)
            mapping = inst.current_mapping(vid)
            bodies = {mapping.get(sv, sv) for sv in svs} - {0}
            for lbl in sorted(merged):
                if lbl not in bodies:
                    raise DvidError(f"Error on merge: can't merge non-existent label {lbl}")
            if target not in bodies:
                raise DvidError(f"Error on merge: can't merge into a non-existent label {target}")
            repo = store.repo_of(store.version_to_uuid[vid])
            mut = repo.new_mutation_id()
            m = inst.mapping.setdefault(vid, {})
            for sv in svs:
                if mapping.get(sv, sv) in merged:
                    m[sv] = target
            inst.mapping_used = True
            return 200, ('{"MutationID": %d}' % mut).encode(), "application/json", {}

        def serve_mapping(self, inst, vid, method, body, query):
            if method != "GET":
                raise DvidError("Batch mapping query must be a GET request")
            try:
                svs = json.loads(body)
                assert isinstance(svs, list)
            except (ValueError, AssertionError) as e:
                raise DvidError(f"Bad mapping request JSON: {e}")
            mapping = inst.current_mapping(vid)
            present = None
            out = []
            for sv in svs:
                if sv in mapping:
                    out.append(mapping[sv])
                elif query.get("nolookup") == "true" or sv == 0:
                    out.append(sv)
                else:
                    if present is None:
                        present = self.labels_present(inst, vid)
                    out.append(sv if sv in present else 0)
            return 200, ("[" + ",".join(str(int(x)) for x in out) + "]").encode(), "application/json", {}

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_DELETE(self):
            self.handle_any("DELETE")

        def do_HEAD(self):
            self.handle_any("HEAD")

    return Handler


def compress_out(compression, data):
    """writeCompressedToHTTP (labelmap) / sendBinaryData (labelarray, labelblk)."""
    if compression == "":
        return data
    if compression == "lz4":
        return lz4_compress(data)
    if compression == "gzip":
        return go_gzip(data)
    if compression in ("google", "googlegzip"):
        raise DvidError("the test double does not encode compressed_segmentation (google)")
    raise DvidError(f"unknown compression type {json.dumps(compression)}")


def uncompress_in(compression, body, estsize):
    """uncompressReaderData / getBinaryData."""
    if compression == "":
        return body
    if compression == "lz4":
        if len(body) == 0:
            raise DvidError("received 0 LZ4 compressed bytes")
        return lz4_uncompress(body, estsize)
    if compression == "gzip":
        try:
            return gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as e:
            raise DvidError(str(e) if str(e) else "gzip: invalid header")
    raise DvidError(f"unknown compression type {json.dumps(compression)}")


class QuietServer(ThreadingHTTPServer):
    """A client closing a kept-alive connection is not an error worth a traceback."""

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


START = time.time()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", help="the valid DSG bearer token; without it auth is off")
    ap.add_argument("--admin-token", help="require ?admintoken= for POST /api/repos and /api/server/settings")
    ap.add_argument("--log", help="append each request record to this file as a JSON line")
    ap.add_argument("--mutation-start", type=int, default=0, help="first mutation id of a repo")
    opts = ap.parse_args()
    import signal
    store = Store(opts.mutation_start)
    server = QuietServer(("127.0.0.1", opts.port), make_handler(store, opts, State()))
    server.daemon_threads = True
    parent = os.getppid()

    def watch_parent():
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(0.5)

    threading.Thread(target=watch_parent, daemon=True).start()

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
