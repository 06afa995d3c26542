#!/usr/bin/env python3
"""A loopback stand-in for the BOSS (bossdb) REST API v1, as the reference client `intern` (PyPI 1.4.2)
and this library use it. Stdlib http.server plus numpy and python-blosc; in-memory state.

    python tests/servers/boss.py [--port 0] [--token T] [--read-token R] [--user NAME]
        [--max-cutout-bytes N] [--log FILE] [--cloudvol-root DIR] [--auth-errors-as-json]

Prints exactly one line `PORT <n>` (flushed) once listening on 127.0.0.1, then serves until killed
(SIGTERM), or until the process that started it goes away.

Behaviour follows the BOSS's own source, jhuapl-boss/boss @db9628b (2023-10) -- django/boss/urls.py,
django/bossspatialdb/{urls,urls_downsample,urls_to_black,views,parsers,renderers}.py,
django/bosscore/{urls/resource_urls,urls/coord_urls,views/views_resource,serializers,models,request,
error,renderer_helper,privileges}.py, django/boss/{authentication,throttling,utils}.py,
django/boss/settings/{base,production}.py -- and jhuapl-boss/spdb @9eecbc34 (spdb/project/resource.py,
spdb/spatialdb/spatialdb.py write_cuboid/cutout, spdb/c_lib/ndtype.py CUBOIDSIZE, ndlib.py
overwriteDense*), plus Django 2.2 / DRF 3.11 / mozilla-django-oidc as pinned in the BOSS's
requirements.txt. No code is copied; where the double departs from the BOSS it says so below.

Users (only with --token; without it every request is the admin user and auth is unchecked):
  --token T        `Authorization: Token T` is user --user (default "bossadmin"): admin and
                   resource-manager roles, every permission, creator of what it makes.
  --read-token R   `Token R` is a valid user "reader" with no role and no object permission (it can
                   read public resources only) -- to provoke the BOSS's 403s.
  no Authorization header (or a scheme other than Token/Bearer): the anonymous user, as DRF has it.
  How DRF answers a bad credential (production.py's DEFAULT_AUTHENTICATION_CLASSES: mozilla OIDC first,
  whose authenticate_header gives 401 + `WWW-Authenticate: Bearer realm="api"`):
    `Token <unknown>`         401 {"detail":"Invalid token."}
    `Token` alone             401 {"detail":"Invalid token header. No credentials provided."}
    `Token a b`               401 {"detail":"Invalid token header. Token string should not contain spaces."}
    `Bearer ...`              401 {"detail":"Invalid token."} (departure: no OIDC provider here)
    anonymous POST/PUT/DELETE 401 {"detail":"Authentication credentials were not provided."}
                              (IsAuthenticatedOrReadOnly)
  These DRF-level errors are rendered by the renderer content negotiation picked. On the metadata
  and downsample views that is JSON. On the cutout view, Accept application/blosc (what intern sends)
  or */* (requests' default, so every intern POST) picks BloscRenderer, which only special-cases 403
  and 429 and otherwise indexes data["data"] -> KeyError -> Django's HTML 500 "Server Error (500)".
  So a bad token on a cutout is a 500, derived from the source, not observed on a live BOSS;
  --auth-errors-as-json answers the 401 JSON there instead.
  Anonymous or reader GET of a non-public resource: 403 {"status": 403, "code": 3001, "message":
  "Missing read permissions on the resource <name>"} (metadata), or "This user does not have the
  required permissions" (cutout/downsample, bosscore/request.py check_permissions); coord frames
  have no permission check. A reader's POST to create: 403 code 3000 "<user> does not have the
  required role resource-manager" (privileges.check_role).

Routes (all under /v1; a trailing slash is optional wherever the BOSS's regex makes it so):
  GET|POST|DELETE collection/<c>/                      CollectionDetail (views_resource.py)
  GET|POST|DELETE collection/<c>/experiment/<e>/       ExperimentDetail
  GET|POST|DELETE collection/<c>/experiment/<e>/channel/<ch>/   ChannelDetail
  GET collection/, collection/<c>/experiment/, .../channel/      {"collections"|"experiments"|"channels": [names]}
  GET|POST|DELETE coord/<name>/                        CoordinateFrameDetail; GET coord/ -> {"coords": [...]}
  GET downsample/<c>/<e>/<ch>/[?iso=true]              Downsample.get (bossspatialdb/views.py)
  GET|POST cutout/<c>/<e>/<ch>/<res>/<x0:x1>/<y0:y1>/<z0:z1>/[<t0:t1>/][?filter=&iso=&access-mode=]
  PUT cutout/to_black/<c>/<e>/<ch>/<res>/<x0:x1>/<y0:y1>/<z0:z1>/[<t0:t1>/]   CutoutToBlack -> 200
  <res> is ONE digit (the URL regex); anything unrouted is Django's HTML 404.
  JSON of DRF Responses is DRF's JSONRenderer (compact); the BossHTTPError bodies are Django
  JsonResponse (json.dumps defaults: ", " and ": "): {"status": S, "code": C, "message": M}.

Metadata JSON (serializers.py field order; creator is the username; voxel sizes are floats):
  collection  {"name","public","description","experiments":[...],"creator"}
  experiment  {"channels":[...],"name","public","description","collection","coord_frame",
               "num_hierarchy_levels","hierarchy_method","num_time_samples","time_step",
               "time_step_unit","creator"}
  channel     {"name","public","description","experiment","default_time_sample","type",
               "base_resolution","datatype","creator","sources","downsample_status","related",
               "storage_type","bucket","cv_path"}
  coord       {"name","description","x_start","x_stop","y_start","y_stop","z_start","z_stop",
               "x_voxel_size","y_voxel_size","z_voxel_size","voxel_unit"}
  downsample  {"status","num_hierarchy_levels","voxel_size":{"0":[x,y,z],..},"extent":{"0":[..]},
               "cuboid_size":{"0":[512,512,16],..}}; spdb resource.py: voxel size doubles in x,y
               (and z when isotropic, or above the isotropic level with ?iso=true); extent starts
               at the frame's *_stop (not stop-start) and halves with ceil likewise; an anisotropic
               experiment whose frame has x_voxel_size != y_voxel_size is a 400 code 9001.
  Creating (POST, JSON body, 201 + the read serializer) validates as the serializers do: names
  ^[a-zA-Z0-9_-]*$, choices (datatype uint8|uint16|uint32|uint64, type image|annotation,
  hierarchy_method, voxel_unit, time_step_unit), required fields, uniqueness, default_time_sample <
  num_time_samples, cv_path only with storage_type "cloudvol" (which forces downsample_status
  DOWNSAMPLED and cv_path "/<c>/<e>/<ch>" when not given); errors are 400 code 1003 whose message
  is str() of DRF's serializer.errors, e.g. "{'datatype': [ErrorDetail(string='\\"x\\" is not a valid
  choice.', code='invalid_choice')]}". Only admins may set bucket/cv_path (403 3001).

Cutout (Cutout.get/post, parsers.py, renderers.py, request.py):
  Coordinates are absolute: the box must satisfy start < stop and frame.start <= start, stop <=
  frame.stop -- checked against the coordinate frame at EVERY resolution (the BOSS does not scale
  the frame for res > 0) -- else 400 code 1001 "Incorrect cutout arguments <res>/<x>/<y>/<z>".
  res outside [base_resolution, base_resolution + num_hierarchy_levels): 400 code 1002 "Invalid
  resolution ...". Time: t0 > num_time_samples or t1 > num_time_samples + 1 or t0 > t1: 400 code
  1000 (the BOSS's own off-by-one bounds); without a time range the channel's default_time_sample.
  Size: x*y*z*t*bits/8 bytes (divided by 4 for uint64) > --max-cutout-bytes (default CUTOUT_MAX_SIZE
  = 520 MiB) -> 413 {"status": 413, "code": 2000, "message": "Cutout request is over 500MB when
  uncompressed. Reduce cutout dimensions."}, for GET, POST and to_black, before any data is read.
  uint32 channels can be created, but spdb's get_bit_depth *returns* a ValueError for them, so every
  cutout on one is a 500 (a TypeError in is_too_large) -- as here.
  GET renderers, chosen by Accept as DRF does (q-values ignored; ?format=bin|jpg|json too):
    application/blosc         blosc.compress(C-order (t)ZYX bytes, typesize=<bit depth: 8/16/64>),
                              python-blosc defaults otherwise: clevel 9, byte shuffle, blosclz.
                              The t axis is dropped when no time range was in the URL.
    application/blosc-python  blosc.pack_array(array) (a pickle)
    application/npygz         zlib.compress(np.save(array)) (level 6, zlib's default)
    image/jpeg                uint8 only, z slices stacked to a (z*y, x) greyscale JPEG, quality 85;
                              a time range or another dtype is a 400 JSON (codes 2005 / 2001)
    application/json          500 (the BOSS's JSONRenderer cannot serialize its Cube)
    none matching             DRF's 406 rendered by BloscRenderer -> 500 (JSON views: 406 JSON);
                              an unknown ?format= is DRF's Http404, likewise -> 500 (JSON views: 404)
  intern sends Accept application/blosc AND Content-Type application/blosc on every cutout GET, and
  ?access-mode=no-cache; its create_cutout sends nothing at all for an all-zero array (client side).
  Unwritten voxels read as 0, per resolution (each resolution is its own store, as spdb keys it;
  no downsampling happens here). ?filter=id,id (annotation channels only, else 400 code 2003) zeroes
  every other id. ?iso=true reads/writes the separate "ISO" store above the isotropic level of an
  anisotropic experiment, as spdb keys it. access-mode/no-cache are accepted and ignored.
  POST: Content-Type application/blosc (blosc.decompress, then np.fromstring in the channel dtype,
  reshape C-order to (z,y,x) or (t,z,y,x) when the URL had a time range) or application/npygz.
    undecodable blosc / bytes not a multiple of the dtype -> 400 code 2001 "Failed to decompress
    data. Verify the datatype/bitdepth of your data matches the channel."; a voxel count that is
    not the URL box -> 400 code 2002 "Failed to unpack data. ..."; npygz of another dtype -> 400 2001
    "Datatype does not match channel", of another shape -> 400 2002 "Data dimensions in URL do not
    match POSTed data."; application/blosc-python -> 501 (departure: the double will not unpickle);
    no Content-Type -> 500 (the view indexes an empty dict); another type -> DRF 415 -> 500 via
    BloscRenderer (or 415 JSON with Accept application/json).
    Writes only at base_resolution or base_resolution+1 (spdb write_cuboid), else 400 code 9001
    "Error during write_cuboid: ('Resolution Mismatch', ...)". A write merges: only NON-ZERO voxels
    replace what is stored (spdb's overwriteDense), so posting zeros changes nothing; use to_black.
    Success: 201, empty body (Django HttpResponse, text/html; charset=utf-8). A write to a
    DOWNSAMPLED channel sets it NOT_DOWNSAMPLED.
  storage_type "cloudvol": GET reads the Precomputed layer s3://<bucket><cv_path> as
    --cloudvol-root/<bucket><cv_path> (file://, mip = res) through the installed cloud-volume, XYZ ->
    ZYX; without --cloudvol-root such a read is a 500. POST still goes to the spdb store, as in the
    BOSS (Cutout.post always uses SpatialDB). Departure: the BOSS's cvdb module was not at hand.
  Throttling (boss/throttling.py via {"throttle": N}): the next N cutout requests that get as far
  as the BOSS's throttle check (after validation, the size check and, for POST, the body checks)
  answer 429. Through BloscRenderer & co (check_for_429): {"status":429,"message":"User is
  throttled. Expected available tomorrow.","code":3004}, Content-Type application/json, no
  Retry-After; through JSON: {"detail":"User is throttled. Expected available tomorrow."}.

Test controls (never authenticated, never recorded):
  POST /__control with a JSON object, keys combinable:
    {"throttle": N}            the next N cutout requests reaching the throttle check get the 429
    {"fail": N, "status": S}   the next N requests answer S (default 503) with a small HTML body,
                               before anything else, as a proxy in front of the BOSS would
    {"drop": N}                the next N requests get no answer: the connection is closed
    {"delay": SECONDS, "count": N}   the next N (default 1) requests wait that long first
    {"clear_log": true}        forget the recorded requests
    {"max_cutout_bytes": N}    from now on the size limit is N bytes (as --max-cutout-bytes)
    {"corrupt": N}             the next N successful cutout GETs answer the first half of their
                               blosc body, with that length (blosc1 has no checksum: flipped bytes
                               in stored blocks could not be told from data by any client)
    {"reset": true}            clear_log and cancel every pending fault
  POST /__seed  {"coords": [{...}], "collections": [{...}], "experiments": [{"collection": c, ...}],
                 "channels": [{"collection": c, "experiment": e, ...}]}: creates directly (no auth,
                 no role check; fields as the POST bodies; "public": true makes a resource public;
                 channels may set storage_type/bucket/cv_path/downsample_status). Answers
                 {"ok": true, "created": [...]} or 400 {"error": ...}.
  GET /__requests   the JSON list of records since start or the last clear_log: method, path, query
    (first value of each name), route, accept, content_type, authorization ("valid", "reader",
    "invalid", "missing", or "unchecked" without --token; never the token), body_bytes (request
    body length), status, response_bytes, response_type, fault (the control that answered, or
    null), time. --log FILE appends each record as a JSON line too.

Left out: PUT updates of resources, metadata (/v1/meta), ids/reserve/boundingbox, image/tile
services, downsample POST/DELETE, permissions/groups/sso/ingest, OIDC Bearer tokens, Dynamo/Redis
cache semantics (access-mode is ignored), blosc-python POST, real downsampling.
"""

import argparse
import io
import json
import math
import os
import re
import sys
import threading
import time
import zlib
from enum import IntEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import blosc
import numpy as np

CUTOUT_MAX_SIZE = 520 * 1048576            # boss/settings/base.py
CUBOIDSIZE = [512, 512, 16]                # spdb/c_lib/ndtype.py (the same at every level)
NAME_RX = re.compile(r"^[a-zA-Z0-9_-]*$")  # bosscore/models.py NameValidator
THROTTLE_DETAIL = "User is throttled. Expected available tomorrow."
BLOCK = (16, 128, 128)                     # the double's own storage block (z, y, x); invisible outside

# bosscore/error.py ErrorCodes -> HTTP status (the subset this double uses)
E_INVALID_URL, E_INVALID_CUTOUT_ARGS, E_TYPE_ERROR, E_INVALID_POST_ARGUMENT = 1000, 1001, 1002, 1003
E_REQUEST_TOO_LARGE, E_DATATYPE_DOES_NOT_MATCH, E_DATA_DIMENSION_MISMATCH = 2000, 2001, 2002
E_DATATYPE_NOT_SUPPORTED, E_INVALID_STATE = 2003, 2006
E_MISSING_ROLE, E_MISSING_PERMISSION, E_ACCESS_DENIED_UNKNOWN = 3000, 3001, 3004
E_RESOURCE_NOT_FOUND, E_INTEGRITY_ERROR = 4000, 4003
E_BOSS_SYSTEM_ERROR = 9001
STATUS_OF = {1000: 400, 1001: 400, 1002: 400, 1003: 400, 1006: 400, 2000: 413, 2001: 400, 2002: 400, 2003: 400,
             2006: 409, 3000: 403, 3001: 403, 4000: 404, 4003: 400, 9001: 400}

DTYPES = {"uint8": (np.uint8, 8), "uint16": (np.uint16, 16), "uint64": (np.uint64, 64)}  # spdb get_bit_depth
DATATYPE_CHOICES = ("uint8", "uint16", "uint32", "uint64")                              # models.Channel

DJANGO_PAGE = ('\n<!doctype html>\n<html lang="en">\n<head>\n  <title>%s</title>\n</head>\n<body>\n'
               '  <h1>%s</h1><p>%s</p>\n</body>\n</html>\n')


class ErrorCodes(IntEnum):  # spdb/spatialdb/error.py, for the repr inside the write_cuboid message
    RESOLUTION_MISMATCH = 109


class Answer(Exception):
    """A complete answer decided somewhere inside a route."""

    def __init__(self, status, body=b"", ctype="application/json", headers=None):
        super().__init__(status)
        self.status, self.body, self.ctype, self.headers = status, body, ctype, headers or {}


def boss_error(message, code):
    """bosscore.error.BossHTTPError: a Django JsonResponse (json.dumps default separators)."""
    status = STATUS_OF[code]
    return Answer(status, json.dumps({"status": status, "code": code, "message": message}).encode())


def drf_json(obj):
    """DRF 3.11 JSONRenderer: compact, ensure_ascii=False."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def django_500():
    return Answer(500, (DJANGO_PAGE % ("Server Error (500)", "Server Error (500)", "")).encode(), "text/html")


def django_404():
    return Answer(404, (DJANGO_PAGE % ("Not Found", "Not Found",
                                       "The requested resource was not found on this server.")).encode(), "text/html")


# ----------------------------------------------------------------------------------------------
# Content negotiation (DRF DefaultContentNegotiation, q ignored; URL_FORMAT_OVERRIDE "format")

CUTOUT_RENDERERS = [("application/blosc", "bin"), ("application/blosc-python", "bin"),
                    ("application/npygz", "bin"), ("image/jpeg", "jpg"), ("application/json", "json"),
                    ("text/html", "api")]
JSON_RENDERERS = [("application/json", "json"), ("text/html", "api")]


def _precedence(mt):
    base = mt.split(";")[0].strip()
    if base == "*/*":
        return 0
    if base.endswith("/*"):
        return 1
    return 3 if ";" in mt else 2


def negotiate(accept, renderers, fmt=None):
    """The media type of the renderer DRF would pick, or None (406)."""
    if fmt:
        renderers = [r for r in renderers if r[1] == fmt]
        if not renderers:
            return "404"  # DRF filter_renderers raises Http404
    tokens = [t.strip() for t in (accept or "*/*").split(",") if t.strip()] or ["*/*"]
    for level in (3, 2, 1, 0):
        group = [t.split(";")[0].strip() for t in tokens if _precedence(t) == level]
        for media, _ in renderers:
            for want in group:
                if want == "*/*" or want == media or (want.endswith("/*") and media.split("/")[0] == want[:-2]):
                    return media
    return None


def drf_exception(status, detail, renderer, headers=None, as_json_anyway=False):
    """A DRF APIException answered through the negotiated renderer."""
    headers = dict(headers or {})
    if renderer in ("application/json", "text/html", None) or as_json_anyway:
        return Answer(status, drf_json({"detail": detail}), "application/json", headers)
    # the cutout renderers: check_for_403 / check_for_429, else data["data"] -> KeyError -> 500
    if status == 403:
        return Answer(403, drf_json({"status": 403, "message": "Access denied, are you logged in?",
                                     "code": E_ACCESS_DENIED_UNKNOWN}), "application/json", headers)
    if status == 429:
        return Answer(429, drf_json({"status": 429, "message": detail, "code": E_ACCESS_DENIED_UNKNOWN}),
                      "application/json", headers)
    return django_500()


# ----------------------------------------------------------------------------------------------
# State


class Store:
    """Voxels per (channel, resolution, iso, time sample), in blocks; unwritten reads as 0."""

    def __init__(self):
        self.blocks = {}

    @staticmethod
    def _ranges(lo, hi, b):
        i = lo // b
        while i * b < hi:
            yield i, max(lo, i * b), min(hi, (i + 1) * b)
            i += 1

    def read(self, key, dtype, t0, t1, box):
        (x0, x1), (y0, y1), (z0, z1) = box
        out = np.zeros((t1 - t0, z1 - z0, y1 - y0, x1 - x0), dtype=dtype)
        for t in range(t0, t1):
            blocks = self.blocks.get(key + (t,))
            if not blocks:
                continue
            for bz, za, zb in self._ranges(z0, z1, BLOCK[0]):
                for by, ya, yb in self._ranges(y0, y1, BLOCK[1]):
                    for bx, xa, xb in self._ranges(x0, x1, BLOCK[2]):
                        blk = blocks.get((bz, by, bx))
                        if blk is None:
                            continue
                        out[t - t0, za - z0:zb - z0, ya - y0:yb - y0, xa - x0:xb - x0] = \
                            blk[za - bz * BLOCK[0]:zb - bz * BLOCK[0], ya - by * BLOCK[1]:yb - by * BLOCK[1],
                                xa - bx * BLOCK[2]:xb - bx * BLOCK[2]]
        return out

    def write(self, key, t0, corner, data, to_black=False):
        """data (t, z, y, x); only non-zero voxels replace stored ones (to_black: the box becomes 0)."""
        x0, y0, z0 = corner
        nt, nz, ny, nx = data.shape
        for ti in range(nt):
            blocks = self.blocks.setdefault(key + (t0 + ti,), {})
            for bz, za, zb in self._ranges(z0, z0 + nz, BLOCK[0]):
                for by, ya, yb in self._ranges(y0, y0 + ny, BLOCK[1]):
                    for bx, xa, xb in self._ranges(x0, x0 + nx, BLOCK[2]):
                        blk = blocks.get((bz, by, bx))
                        if blk is None:
                            if to_black:
                                continue
                            blk = blocks[(bz, by, bx)] = np.zeros(BLOCK, dtype=data.dtype)
                        dst = blk[za - bz * BLOCK[0]:zb - bz * BLOCK[0], ya - by * BLOCK[1]:yb - by * BLOCK[1],
                                  xa - bx * BLOCK[2]:xb - bx * BLOCK[2]]
                        if to_black:
                            dst[...] = 0
                            continue
                        src = data[ti, za - z0:zb - z0, ya - y0:yb - y0, xa - x0:xb - x0]
                        nz_mask = src != 0
                        dst[nz_mask] = src[nz_mask]


class State:
    def __init__(self):
        self.lock = threading.RLock()
        self.log = []
        self.coords = {}        # name -> dict
        self.collections = {}   # name -> dict (+ "_exps": [names])
        self.experiments = {}   # (c, e) -> dict (+ "_chans": [names])
        self.channels = {}      # (c, e, ch) -> dict
        self.store = Store()
        self.reset()

    def reset(self):
        self.fail = 0
        self.fail_status = 503
        self.throttle = 0
        self.drop = 0
        self.corrupt = 0
        self.delay = 0.0
        self.delay_count = 0


# ----------------------------------------------------------------------------------------------
# Serializers (bosscore/serializers.py read shapes) and validation


def ser_collection(st, c):
    col = st.collections[c]
    return {"name": col["name"], "public": col["public"], "description": col["description"],
            "experiments": list(col["_exps"]), "creator": col["creator"]}


def ser_experiment(st, c, e):
    ex = st.experiments[(c, e)]
    return {"channels": list(ex["_chans"]), "name": ex["name"], "public": ex["public"],
            "description": ex["description"], "collection": c, "coord_frame": ex["coord_frame"],
            "num_hierarchy_levels": ex["num_hierarchy_levels"], "hierarchy_method": ex["hierarchy_method"],
            "num_time_samples": ex["num_time_samples"], "time_step": ex["time_step"],
            "time_step_unit": ex["time_step_unit"], "creator": ex["creator"]}


CHANNEL_FIELDS = ("name", "public", "description", "experiment", "default_time_sample", "type", "base_resolution",
                  "datatype", "creator", "sources", "downsample_status", "related", "storage_type", "bucket",
                  "cv_path")
COORD_FIELDS = ("name", "description", "x_start", "x_stop", "y_start", "y_stop", "z_start", "z_stop",
                "x_voxel_size", "y_voxel_size", "z_voxel_size", "voxel_unit")


def ser_channel(st, c, e, ch):
    chan = st.channels[(c, e, ch)]
    return {k: (list(chan[k]) if k in ("sources", "related") else chan[k]) for k in CHANNEL_FIELDS}


def ser_coord(st, name):
    return {k: st.coords[name][k] for k in COORD_FIELDS}


def err_detail(msg, code):
    return "ErrorDetail(string=%r, code=%r)" % (msg, code)


class Fields:
    """A tiny stand-in for DRF field validation that keeps DRF's error text."""

    def __init__(self, data):
        self.data, self.errors, self.out = data, {}, {}

    def _err(self, name, msg, code):
        self.errors.setdefault(name, []).append(err_detail(msg, code))

    def char(self, name, required=False, default="", blank=True, name_rx=False, choices=None, null=False):
        if name not in self.data:
            if required:
                self._err(name, "This field is required.", "required")
            else:
                self.out[name] = default
            return
        v = self.data[name]
        if v is None:
            if null:
                self.out[name] = None
            else:
                self._err(name, "This field may not be null.", "null")
            return
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            self._err(name, "Not a valid string.", "invalid")
            return
        v = str(v)
        if choices is not None:
            if v not in choices and not (v == "" and blank):
                self._err(name, '"%s" is not a valid choice.' % v, "invalid_choice")
                return
        elif v == "" and not blank:
            self._err(name, "This field may not be blank.", "blank")
            return
        if name_rx and not NAME_RX.match(v):
            self._err(name, "Invalid Name.", "invalid")
            return
        self.out[name] = v

    def integer(self, name, required=False, default=None, null=False):
        if name not in self.data:
            if required:
                self._err(name, "This field is required.", "required")
            else:
                self.out[name] = default
            return
        v = self.data[name]
        if v is None:
            if null:
                self.out[name] = None
            else:
                self._err(name, "This field may not be null.", "null")
            return
        try:
            if isinstance(v, bool) or (isinstance(v, float) and v != int(v)):
                raise ValueError
            self.out[name] = int(str(v).strip()) if not isinstance(v, float) else int(v)
        except (TypeError, ValueError):
            self._err(name, "A valid integer is required.", "invalid")

    def floating(self, name, required=True):
        if name not in self.data:
            if required:
                self._err(name, "This field is required.", "required")
            return
        try:
            if isinstance(self.data[name], bool):
                raise ValueError
            self.out[name] = float(self.data[name])
        except (TypeError, ValueError):
            self._err(name, "A valid number is required.", "invalid")

    def boolean(self, name, default=False):
        v = self.data.get(name, default)
        if v in (True, "true", "True", "1", 1, "on"):
            self.out[name] = True
        elif v in (False, "false", "False", "0", 0, "off", None, ""):
            self.out[name] = False
        else:
            self._err(name, "Must be a valid boolean.", "invalid")

    def fail_message(self):
        """str() of DRF's ReturnDict of errors, as the views put it in the BossHTTPError message."""
        return "{" + ", ".join("%r: [%s]" % (k, ", ".join(v)) for k, v in self.errors.items()) + "}"


def validate_collection(st, data):
    f = Fields(data)
    f.char("name", required=True, blank=False, name_rx=True)
    f.char("description")
    f.boolean("public")
    if "name" in f.out and f.out["name"] in st.collections:
        f._err("name", "collection with this Name of the Collection already exists.", "unique")
    return f


def validate_coord(st, data):
    f = Fields(data)
    f.char("name", required=True, blank=False, name_rx=True)
    f.char("description")
    for k in ("x_start", "x_stop", "y_start", "y_stop", "z_start", "z_stop"):
        f.integer(k, required=True)
    for k in ("x_voxel_size", "y_voxel_size", "z_voxel_size"):
        f.floating(k)
    f.char("voxel_unit", required=True, blank=False,
           choices=("nanometers", "micrometers", "millimeters", "centimeters"))
    if "name" in f.out and f.out["name"] in st.coords:
        f._err("name", "coordinate frame with this Name of the Coordinate reference frame already exists.", "unique")
    return f


def validate_experiment(st, c, data):
    f = Fields(data)
    f.char("name", required=True, blank=False, name_rx=True)
    f.boolean("public")
    f.char("description")
    f.integer("num_hierarchy_levels", default=1)
    f.char("hierarchy_method", default="anisotropic", blank=False, choices=("anisotropic", "isotropic"))
    f.integer("num_time_samples", default=1)
    f.integer("time_step", null=True)
    f.char("time_step_unit", default=None, null=True,
           choices=("nanoseconds", "microseconds", "milliseconds", "seconds"))
    if not f.errors and (c, f.out["name"]) in st.experiments:
        f.errors["non_field_errors"] = [err_detail("The fields collection, name must make a unique set.", "unique")]
    return f


def validate_channel(st, c, e, data):
    f = Fields(data)
    f.char("name", required=True, blank=False, name_rx=True)
    f.boolean("public")
    f.char("description")
    f.integer("default_time_sample", default=0)
    f.char("type", required=True, blank=False, choices=("image", "annotation"))
    f.integer("base_resolution", default=0)
    f.char("datatype", required=True, blank=False, choices=DATATYPE_CHOICES)
    f.char("downsample_status", default="NOT_DOWNSAMPLED", blank=False,
           choices=("NOT_DOWNSAMPLED", "QUEUED", "IN_PROGRESS", "DOWNSAMPLED", "FAILED"))
    f.char("storage_type", default="spdb", blank=False, choices=("spdb", "cloudvol"))
    f.char("bucket", default=None, null=True)
    f.char("cv_path", default=None, null=True)
    if f.errors:
        return f
    errors = {}
    exp = st.experiments[(c, e)]
    if f.out["default_time_sample"] is not None and f.out["default_time_sample"] >= exp["num_time_samples"]:
        errors["default_time_sample"] = ("Ensure this value is less that the experiments num_time_samples %d."
                                         % exp["num_time_samples"])
    is_cv = f.out["storage_type"] == "cloudvol"
    if not is_cv and f.out["cv_path"] not in (None, ""):
        errors["storage_type"] = "Must be set to cloudvol, if setting cv_path"
    if is_cv and f.out["downsample_status"] != "DOWNSAMPLED":
        errors["downsample_status"] = "cloudvol channels must be already downsampled."
    for k, msg in errors.items():
        f.errors[k] = [err_detail(msg, "invalid")]
    if not f.errors and (c, e, f.out["name"]) in st.channels:
        f.errors["non_field_errors"] = [err_detail("The fields experiment, name must make a unique set.", "unique")]
    return f


# ----------------------------------------------------------------------------------------------
# The model's "resource" computations (spdb/project/resource.py)


def isotropic_level(exp, cf):
    if exp["hierarchy_method"] == "isotropic":
        return 0
    if cf["x_voxel_size"] != cf["y_voxel_size"]:
        raise ValueError("X voxel size != Y voxel size. Currently unable to determine isotropic level")
    ratios = np.array([float(cf["z_voxel_size"]) / (cf["x_voxel_size"] * 2 ** r) for r in range(30)])
    return int(np.abs(ratios - 1).argmin())


def downsampled(exp, cf, iso, start):
    """(voxel dims, extent dims) per level."""
    lvl = isotropic_level(exp, cf)
    vox = [[cf["x_voxel_size"], cf["y_voxel_size"], cf["z_voxel_size"]]]
    ext = [list(start)]
    for res in range(1, exp["num_hierarchy_levels"]):
        z_too = exp["hierarchy_method"] == "isotropic" or (res > lvl and iso)
        pv, pe = vox[-1], ext[-1]
        vox.append([pv[0] * 2, pv[1] * 2, pv[2] * 2 if z_too else pv[2]])
        ext.append([math.ceil(pe[0] / 2.0), math.ceil(pe[1] / 2.0),
                    math.ceil(pe[2] / 2.0) if z_too else math.ceil(pe[2])])
    return vox, ext


# ----------------------------------------------------------------------------------------------
# HTTP

ROUTES = [  # (name, regex over the path after /v1/)
    ("to_black", r"cutout/to_black/(?P<c>[\w-]+)/(?P<e>[\w-]+)/(?P<ch>[\w-]+)/(?P<res>\d)/(?P<x>\d+:\d+)/"
                 r"(?P<y>\d+:\d+)/(?P<z>\d+:\d+)(?:/(?P<t>\d+:\d+))?/?"),
    ("cutout", r"cutout/(?P<c>[\w-]+)/(?P<e>[\w-]+)/(?P<ch>[\w-]+)/(?P<res>\d)/(?P<x>\d+:\d+)/(?P<y>\d+:\d+)/"
               r"(?P<z>\d+:\d+)(?:/(?P<t>\d+:\d+))?/?"),
    ("downsample", r"downsample/(?P<c>[\w-]+)/(?P<e>[\w-]+)/(?P<ch>[\w-]+)/?"),
]
COMPILED = [(n, re.compile("/v1/" + rx)) for n, rx in ROUTES]
# bosscore/urls/resource_urls.py and coord_urls.py: Django 2.2 url() patterns are tried with
# regex.search() on what follows "v1/collection/" (resp. "v1/coord/"), in this order, and most are
# unanchored -- so e.g. intern's list URL "/v1/collection//" is the collection list.
RESOURCE_ROUTES = {
    "/v1/collection/": [
        ("channel", re.compile(r"(?P<c>[\w_-]+)/experiment/(?P<e>[\w_-]+)/channel/(?P<ch>[\w_-]+)/?")),
        ("channel_list", re.compile(r"(?P<c>[\w_-]+)/experiment/(?P<e>[\w_-]+)/channel/?")),
        ("experiment", re.compile(r"(?P<c>[\w_-]+)/experiment/(?P<e>[\w_-]+)/?")),
        ("experiment_list", re.compile(r"(?P<c>[\w_-]+)/experiment/?")),
        ("collection", re.compile(r"(?P<c>[\w-]+)/?")),
        ("collection_list", re.compile(r"^")),
    ],
    "/v1/coord/": [
        ("coord", re.compile(r"(?P<cf>[\w_-]+)/?$")),
        ("coord_list", re.compile(r"^$")),
    ],
}


def route(path):
    for name, rx in COMPILED:
        m = rx.fullmatch(path)
        if m:
            return name, m.groupdict()
    for prefix, pats in RESOURCE_ROUTES.items():
        if path.startswith(prefix):
            rest = path[len(prefix):]
            for name, rx in pats:
                m = rx.search(rest)
                if m:
                    return name, m.groupdict()
    if path in ("/v1/collection", "/v1/coord"):
        return None  # Django's CommonMiddleware would redirect (APPEND_SLASH); not modelled: 404
    return None
METHODS = {"to_black": ("PUT",), "cutout": ("GET", "POST"), "downsample": ("GET",),
           "channel": ("GET", "POST", "DELETE"), "experiment": ("GET", "POST", "DELETE"),
           "collection": ("GET", "POST", "DELETE"), "coord": ("GET", "POST", "DELETE"),
           "channel_list": ("GET",), "experiment_list": ("GET",), "collection_list": ("GET",),
           "coord_list": ("GET",)}


class User:
    def __init__(self, name, admin, authenticated=True):
        self.name, self.admin, self.authenticated = name, admin, authenticated


ANON = User("", False, authenticated=False)


def make_handler(opts, st):
    admin_user = User(opts.user, True)
    reader = User("reader", False)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        server_version = "boss-double/1"
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
            self.send_header("Vary", "Accept, Cookie")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            if rec is not None:
                rec["status"], rec["response_bytes"], rec["response_type"] = status, len(body), ctype

        def record(self, rec):
            rec["time"] = time.time()
            with st.lock:
                st.log.append(rec)
                if opts.log:
                    with open(opts.log, "a") as f:
                        f.write(json.dumps(rec) + "\n")

        # --- controls
        def control(self, method, path):
            if path == "/__requests" and method == "GET":
                with st.lock:
                    body = json.dumps(st.log).encode()
                self.send(200, body, "application/json")
                return True
            if path in ("/__control", "/__seed") and method == "POST":
                try:
                    cmd = json.loads(self.read_body() or b"{}")
                    assert isinstance(cmd, dict)
                except Exception as e:  # noqa: BLE001
                    self.send(400, json.dumps({"error": f"not a JSON object ({e})"}).encode(), "application/json")
                    return True
                if path == "/__seed":
                    try:
                        created = self.seed(cmd)
                        self.send(200, json.dumps({"ok": True, "created": created}).encode(), "application/json")
                    except Answer as a:
                        self.send(400, json.dumps({"error": a.body.decode(errors="replace")}).encode(),
                                  "application/json")
                    return True
                with st.lock:
                    if cmd.get("reset"):
                        st.reset()
                        st.log.clear()
                    if cmd.get("clear_log"):
                        st.log.clear()
                    if "fail" in cmd:
                        st.fail = int(cmd["fail"])
                        st.fail_status = int(cmd.get("status", 503))
                    if "throttle" in cmd:
                        st.throttle = int(cmd["throttle"])
                    if "drop" in cmd:
                        st.drop = int(cmd["drop"])
                    if "corrupt" in cmd:
                        st.corrupt = int(cmd["corrupt"])
                    if "max_cutout_bytes" in cmd:
                        opts.max_cutout_bytes = int(cmd["max_cutout_bytes"])
                    if "delay" in cmd:
                        st.delay = float(cmd["delay"])
                        st.delay_count = int(cmd.get("count", 1))
                    pending = {"fail": st.fail, "status": st.fail_status, "throttle": st.throttle,
                               "drop": st.drop, "delay": st.delay, "delay_count": st.delay_count}
                self.send(200, json.dumps({"ok": True, "pending": pending}).encode(), "application/json")
                return True
            return False

        def seed(self, cmd):
            created = []
            with st.lock:
                for d in cmd.get("coords", []):
                    self.create_coord(d.get("name"), d, admin_user)
                    created.append("coord/" + d["name"])
                for d in cmd.get("collections", []):
                    self.create_collection(d.get("name"), d, admin_user)
                    created.append("collection/" + d["name"])
                for d in cmd.get("experiments", []):
                    self.create_experiment(d.get("collection"), d.get("name"), d, admin_user)
                    created.append("experiment/%s/%s" % (d["collection"], d["name"]))
                for d in cmd.get("channels", []):
                    self.create_channel(d.get("collection"), d.get("experiment"), d.get("name"), d, admin_user,
                                        seeding=True)
                    created.append("channel/%s/%s/%s" % (d["collection"], d["experiment"], d["name"]))
            return created

        # --- auth (DRF authenticators as configured in settings/production.py)
        def authenticate(self, rec):
            """The user, or a (status, detail) DRF AuthenticationFailed."""
            header = self.headers.get("Authorization")
            if opts.token is None:
                rec["authorization"] = "unchecked"
                return admin_user, None
            if not header:
                rec["authorization"] = "missing"
                return ANON, None
            parts = header.split()
            scheme = parts[0].lower() if parts else ""
            if scheme == "bearer":
                rec["authorization"] = "invalid"
                if len(parts) == 1:
                    return None, 'Invalid "bearer" header: No credentials provided.'
                if len(parts) > 2:
                    return None, 'Invalid "bearer" header: Credentials string should not contain spaces.'
                return None, "Invalid token."
            if scheme != "token":
                rec["authorization"] = "missing"
                return ANON, None
            if len(parts) == 1:
                rec["authorization"] = "invalid"
                return None, "Invalid token header. No credentials provided."
            if len(parts) > 2:
                rec["authorization"] = "invalid"
                return None, "Invalid token header. Token string should not contain spaces."
            if parts[1] == opts.token:
                rec["authorization"] = "valid"
                return admin_user, None
            if opts.read_token and parts[1] == opts.read_token:
                rec["authorization"] = "reader"
                return reader, None
            rec["authorization"] = "invalid"
            return None, "Invalid token."

        # --- dispatch
        def handle_any(self, method):
            url = urlsplit(self.path)
            if self.control(method, url.path):
                return
            query = {}
            for k, v in parse_qsl(url.query, keep_blank_values=True):
                query.setdefault(k, v)
            rec = {"method": method, "path": url.path, "query": query, "route": None,
                   "accept": self.headers.get("Accept"), "content_type": self.headers.get("Content-Type"),
                   "authorization": None, "body_bytes": 0, "status": None, "response_bytes": None,
                   "response_type": None, "fault": None}
            body = self.read_body() if method in ("POST", "PUT", "PATCH") or self.headers.get("Content-Length") else b""
            rec["body_bytes"] = len(body)
            with st.lock:
                delay = 0.0
                if st.delay_count > 0:
                    st.delay_count -= 1
                    delay = st.delay
                drop = st.drop > 0
                st.drop -= int(drop)
                fail = st.fail > 0 and not drop
                st.fail -= int(fail)
                fail_status = st.fail_status
            if delay:
                time.sleep(delay)
            if drop:
                rec["fault"] = "drop"
                self.record(rec)
                self.close_connection = True
                return
            if fail:
                rec["fault"] = "fail"
                page = ("<html><head><title>%d</title></head><body><h1>%d</h1>"
                        "<p>Injected fault (test double).</p></body></html>\n" % (fail_status, fail_status))
                self.send(fail_status, page.encode(), "text/html", rec=rec)
                self.record(rec)
                return
            try:
                a = self.dispatch(method, url.path, query, body, rec)
            except Answer as e:
                a = e
            except Exception as e:  # noqa: BLE001 - a bug in the double; say so
                a = Answer(500, ("test double bug: %s: %s" % (type(e).__name__, e)).encode(), "text/plain")
            with st.lock:
                corrupt = st.corrupt > 0 and a.status == 200 and method == "GET" and rec["route"] == "cutout"
                st.corrupt -= int(corrupt)
            if corrupt:  # a body cut short, sent with its own (short) length (test control)
                rec["fault"] = "corrupt"
                a = Answer(a.status, bytes(a.body[:len(a.body) // 2]), a.ctype, a.headers)
            self.send(a.status, a.body, a.ctype, a.headers, rec=rec)
            self.record(rec)

        def dispatch(self, method, path, query, body, rec):
            hit = route(path)
            if hit is None:
                raise django_404()
            name, g = hit
            rec["route"] = name
            renderers = CUTOUT_RENDERERS if name == "cutout" else JSON_RENDERERS
            renderer = negotiate(self.headers.get("Accept"), renderers, query.get("format"))
            as_json = opts.auth_errors_as_json
            if renderer in (None, "404"):  # NotAcceptable / Http404; DRF then renders with the first renderer
                first = renderers[0][0]
                if renderer == "404":
                    raise drf_exception(404, "Not found.", first)
                raise drf_exception(406, "Could not satisfy the request Accept header.", first)
            user, failed = self.authenticate(rec)
            www = {"WWW-Authenticate": 'Bearer realm="api"'}
            if failed:
                raise drf_exception(401, failed, renderer, www, as_json_anyway=as_json)
            if method not in ("GET", "HEAD", "OPTIONS") and not user.authenticated:
                raise drf_exception(401, "Authentication credentials were not provided.", renderer, www,
                                    as_json_anyway=as_json)
            if method not in METHODS[name]:
                raise drf_exception(405, 'Method "%s" not allowed.' % method, renderer)
            with st.lock:
                if name == "cutout" and method == "GET":
                    return self.cutout_get(g, query, user, renderer)
                if name == "cutout":
                    return self.cutout_post(g, query, body, user, renderer)
                if name == "to_black":
                    return self.to_black(g, query, user)
                if name == "downsample":
                    return self.downsample(g, query, user)
                return self.resource(name, method, g, body, user)

        # --- resources (views_resource.py)
        def json_body(self, body):
            if not body:
                return {}
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype != "application/json":
                raise Answer(415, drf_json({"detail": 'Unsupported media type "%s" in request.' % ctype}))
            try:
                d = json.loads(body)
            except ValueError as e:
                raise Answer(400, drf_json({"detail": "JSON parse error - %s" % e}))
            return d if isinstance(d, dict) else {}

        def resource(self, name, method, g, body, user):
            ok = lambda obj, status=200: Answer(status, drf_json(obj))  # noqa: E731
            c, e, ch, cf = g.get("c"), g.get("e"), g.get("ch"), g.get("cf")
            if name == "collection_list":
                return ok({"collections": [n for n, v in st.collections.items() if v["public"] or user.admin]})
            if name == "coord_list":
                return ok({"coords": list(st.coords)})
            if name == "experiment_list":
                if c not in st.collections:
                    return django_500()  # Collection.objects.get raises DoesNotExist, uncaught
                return ok({"experiments": [x for x in st.collections[c]["_exps"]
                                           if st.experiments[(c, x)]["public"] or user.admin]})
            if name == "channel_list":
                if c not in st.collections or (c, e) not in st.experiments:
                    return django_500()
                return ok({"channels": [x for x in st.experiments[(c, e)]["_chans"]
                                        if st.channels[(c, e, x)]["public"] or user.admin]})
            if method == "POST":
                if not user.admin:  # check_role("resource-manager")
                    raise boss_error("%s does not have the required role resource-manager" % user.name,
                                     E_MISSING_ROLE)
                data = self.json_body(body)
                if name == "collection":
                    self.create_collection(c, data, user)
                    return ok(ser_collection(st, c), 201)
                if name == "coord":
                    self.create_coord(cf, data, user)
                    return ok(ser_coord(st, cf), 201)
                if name == "experiment":
                    self.create_experiment(c, e, data, user)
                    return ok(ser_experiment(st, c, e), 201)
                self.create_channel(c, e, ch, data, user)
                return ok(ser_channel(st, c, e, ch), 201)
            if method == "DELETE":
                if not user.admin:
                    raise boss_error("%s does not have the required role resource-manager" % user.name,
                                     E_MISSING_ROLE)
                return self.delete(name, c, e, ch, cf)
            # GET
            if name == "coord":
                if cf not in st.coords:
                    raise boss_error("%s does not exist." % cf, E_RESOURCE_NOT_FOUND)
                return ok(ser_coord(st, cf))
            if c not in st.collections:
                raise boss_error("%s does not exist." % c, E_RESOURCE_NOT_FOUND)
            if name == "collection":
                if not (st.collections[c]["public"] or user.admin):
                    raise boss_error("Missing read permissions on the resource %s" % c, E_MISSING_PERMISSION)
                return ok(ser_collection(st, c))
            if (c, e) not in st.experiments:
                raise boss_error("%s does not exist." % e, E_RESOURCE_NOT_FOUND)
            if name == "experiment":
                if not (st.experiments[(c, e)]["public"] or user.admin):
                    raise boss_error("Missing read permissions on the resource %s" % e, E_MISSING_PERMISSION)
                return ok(ser_experiment(st, c, e))
            if (c, e, ch) not in st.channels:
                raise boss_error("%s does not exist." % ch, E_RESOURCE_NOT_FOUND)
            if not (st.channels[(c, e, ch)]["public"] or user.admin):
                raise boss_error("Missing read permissions on the resource %s" % ch, E_MISSING_PERMISSION)
            return ok(ser_channel(st, c, e, ch))

        def create_collection(self, c, data, user):
            data = dict(data, name=c)
            f = validate_collection(st, data)
            if f.errors:
                raise boss_error(f.fail_message(), E_INVALID_POST_ARGUMENT)
            st.collections[c] = dict(f.out, creator=user.name, _exps=[])

        def create_coord(self, cf, data, user):
            data = dict(data, name=cf)
            f = validate_coord(st, data)
            if f.errors:
                raise boss_error(f.fail_message(), E_INVALID_POST_ARGUMENT)
            st.coords[cf] = dict(f.out, creator=user.name)

        def create_experiment(self, c, e, data, user):
            data = dict(data, name=e)
            if c not in st.collections:
                raise boss_error("%s does not exist." % c, E_RESOURCE_NOT_FOUND)
            if "coord_frame" not in data:
                raise boss_error("This request requires a valid coordinate frame", E_INVALID_POST_ARGUMENT)
            if data["coord_frame"] not in st.coords:
                raise boss_error("%s does not exist." % data["coord_frame"], E_RESOURCE_NOT_FOUND)
            f = validate_experiment(st, c, data)
            if f.errors:
                raise boss_error(f.fail_message(), E_INVALID_POST_ARGUMENT)
            st.experiments[(c, e)] = dict(f.out, coord_frame=data["coord_frame"], creator=user.name, _chans=[])
            st.collections[c]["_exps"].append(e)

        def create_channel(self, c, e, ch, data, user, seeding=False):
            data = dict(data, name=ch)
            if not user.admin and data.get("bucket"):
                raise boss_error("Only admins can set bucket name", E_MISSING_PERMISSION)
            if not user.admin and data.get("cv_path"):
                raise boss_error("Only admins can set cv_path", E_MISSING_PERMISSION)
            if c not in st.collections:
                raise boss_error("%s does not exist." % c, E_RESOURCE_NOT_FOUND)
            if (c, e) not in st.experiments:
                raise boss_error("%s does not exist." % e, E_RESOURCE_NOT_FOUND)
            if data.get("storage_type") == "cloudvol":
                if not data.get("cv_path"):
                    data["cv_path"] = "/%s/%s/%s" % (c, e, ch)
                data["downsample_status"] = "DOWNSAMPLED"
            elif not seeding:
                data.pop("downsample_status", None)  # not settable through the BOSS's POST... kept for __seed
            sources = list(data.pop("sources", None) or [])
            related = list(data.pop("related", None) or [])
            if set(sources) & set(related):
                raise boss_error("Related channels have to be different from source channels", E_INVALID_POST_ARGUMENT)
            for n in sources + related:
                if (c, e, n) not in st.channels:
                    raise boss_error("Invalid channel names %s in the list of source/related channels channels " % n,
                                     E_INVALID_POST_ARGUMENT)
            f = validate_channel(st, c, e, data)
            if f.errors:
                raise boss_error(f.fail_message(), E_INVALID_POST_ARGUMENT)
            st.channels[(c, e, ch)] = dict(f.out, experiment=e, creator=user.name, sources=sources, related=related)
            st.experiments[(c, e)]["_chans"].append(ch)

        def delete(self, name, c, e, ch, cf):
            if name == "coord":
                if cf not in st.coords:
                    raise boss_error("%s does not exist." % cf, E_RESOURCE_NOT_FOUND)
                if any(x["coord_frame"] == cf for x in st.experiments.values()):
                    raise boss_error(" Coordinate frame %s has experiments that reference it and cannot be deleted."
                                     "Please delete the experiments first." % cf, E_INTEGRITY_ERROR)
                del st.coords[cf]
                return Answer(204, b"", "text/html; charset=utf-8")
            if c not in st.collections:
                raise boss_error("%s does not exist." % c, E_RESOURCE_NOT_FOUND)
            if name == "collection":
                if st.collections[c]["_exps"]:
                    raise boss_error("Collection %s has experiments that reference it and cannot be deleted."
                                     "Please delete the experiments first." % c, E_INTEGRITY_ERROR)
                del st.collections[c]
                return Answer(204, b"", "text/html; charset=utf-8")
            if (c, e) not in st.experiments:
                raise boss_error("%s does not exist." % e, E_RESOURCE_NOT_FOUND)
            if name == "experiment":
                if st.experiments[(c, e)]["_chans"]:
                    raise boss_error(" Experiment %s has channels that reference it and cannot be deleted."
                                     "Please delete the channels first." % e, E_INTEGRITY_ERROR)
                del st.experiments[(c, e)]
                st.collections[c]["_exps"].remove(e)
                return Answer(204, b"", "text/html; charset=utf-8")
            if (c, e, ch) not in st.channels:
                raise boss_error("%s does not exist." % ch, E_RESOURCE_NOT_FOUND)
            if any(ch in v["sources"] for k, v in st.channels.items() if k[:2] == (c, e)):
                raise boss_error("Channel %s is the source channel of other channels and cannot be deleted" % ch,
                                 E_INTEGRITY_ERROR)
            del st.channels[(c, e, ch)]
            st.experiments[(c, e)]["_chans"].remove(ch)
            for k in [k for k in st.store.blocks if k[:3] == (c, e, ch)]:
                del st.store.blocks[k]
            return Answer(204, b"", "text/html; charset=utf-8")

        # --- BossRequest (bosscore/request.py)
        def boss_request(self, g, user, method, service="cutout", ids=None):
            c, e, ch = g["c"], g["e"], g["ch"]
            if c not in st.collections:
                raise boss_error("Collection %s not found" % c, E_RESOURCE_NOT_FOUND)
            if (c, e) not in st.experiments:
                raise boss_error("Experiment %s not found" % e, E_RESOURCE_NOT_FOUND)
            if (c, e, ch) not in st.channels:
                raise boss_error("Channel %s not found" % ch, E_RESOURCE_NOT_FOUND)
            chan, exp = st.channels[(c, e, ch)], st.experiments[(c, e)]
            cf = st.coords[exp["coord_frame"]]
            if not (chan["public"] and method == "GET") and not user.admin:
                raise boss_error("This user does not have the required permissions", E_MISSING_PERMISSION)
            req = {"chan": chan, "exp": exp, "cf": cf, "key": (c, e, ch)}
            if service == "downsample":
                return req
            req["filter"] = None
            if ids is not None:
                if chan["type"] != "annotation":
                    raise boss_error("The channel in request has type %s. Filter is only valid for annotation "
                                     "channels" % chan["type"], E_DATATYPE_NOT_SUPPORTED)
                try:
                    req["filter"] = np.array([int(v) for v in ids.split(",") if v.strip() != ""], dtype=np.uint64)
                except (TypeError, ValueError, OverflowError) as err:
                    raise boss_error("Invalid id in list of filter ids %s. %s" % (ids, err), E_INVALID_CUTOUT_ARGS)
            t = g.get("t")
            if not t:
                req["t0"], req["t1"], req["time_request"] = (chan["default_time_sample"],
                                                             chan["default_time_sample"] + 1, False)
            else:
                t0, t1 = (int(v) for v in t.split(":"))
                n = exp["num_time_samples"]
                if t0 > n:
                    raise boss_error("Invalid time range %s. Start time is greater than the maximum time sample %d"
                                     % (t, n), E_INVALID_URL)
                if t0 > t1 or t1 > n + 1:
                    raise boss_error("Invalid time range %s. End time is greater than the start time or out of "
                                     "bounds with maximum time sample %d" % (t, n), E_INVALID_URL)
                req["t0"], req["t1"], req["time_request"] = t0, t1, True
            res = int(g["res"])
            base = chan["base_resolution"]
            if not base <= res < base + exp["num_hierarchy_levels"]:
                raise boss_error("Invalid resolution %s. The resolution has to be within %d and %d"
                                 % (g["res"], base, base + exp["num_hierarchy_levels"]), E_TYPE_ERROR)
            req["res"] = res
            box = []
            for axis in "xyz":
                a0, a1 = (int(v) for v in g[axis].split(":"))
                box.append((a0, a1))
            bad = any(a0 >= a1 for a0, a1 in box) or any(
                a0 < cf[ax + "_start"] or a1 > cf[ax + "_stop"] for (a0, a1), ax in zip(box, "xyz"))
            if bad:
                raise boss_error("Incorrect cutout arguments %s/%s/%s/%s" % (res, g["x"], g["y"], g["z"]),
                                 E_INVALID_CUTOUT_ARGS)
            req["box"] = box
            return req

        def bit_depth(self, req):
            dt = DTYPES.get(req["chan"]["datatype"].lower())
            if dt is None:  # get_bit_depth *returns* ValueError; is_too_large then raises TypeError
                raise django_500()
            return dt

        def too_large(self, req, bits):
            (x0, x1), (y0, y1), (z0, z1) = req["box"]
            total = (x1 - x0) * (y1 - y0) * (z1 - z0) * (req["t1"] - req["t0"]) * bits / 8
            if bits == 64:
                total /= 4
            return total > opts.max_cutout_bytes

        def throttled(self):
            if st.throttle > 0:
                st.throttle -= 1
                return True
            return False

        def iso_key(self, req, iso):
            exp = req["exp"]
            use_iso = False
            if iso and exp["hierarchy_method"].lower() == "anisotropic":
                try:
                    use_iso = req["res"] > isotropic_level(exp, req["cf"])
                except ValueError:
                    raise django_500()
            return req["key"] + (req["res"], use_iso)

        # --- cutout GET (Cutout.get + renderers.py)
        def cutout_get(self, g, query, user, renderer):
            iso = query.get("iso", "").lower() == "true"
            req = self.boss_request(g, user, "GET", ids=query.get("filter"))
            dtype, bits = self.bit_depth(req)
            if self.too_large(req, bits):
                raise boss_error("Cutout request is over 500MB when uncompressed. Reduce cutout dimensions.",
                                 E_REQUEST_TOO_LARGE)
            if self.throttled():
                raise drf_exception(429, THROTTLE_DETAIL, renderer)
            chan = req["chan"]
            (x0, x1), (y0, y1), (z0, z1) = req["box"]
            if chan["storage_type"] == "cloudvol":
                data = self.cloudvol_read(chan, req, dtype)
            else:
                if chan["type"] != "image" and chan["base_resolution"] > req["res"] and \
                        chan["downsample_status"].lower() != "downsampled":
                    raise django_500()  # SpdbError 'Dynamic resolution up-sampling not yet implemented.'
                data = st.store.read(self.iso_key(req, iso), dtype, req["t0"], req["t1"], req["box"])
            if req["filter"] is not None:
                data = np.where(np.isin(data, req["filter"]), data, np.zeros((), dtype=dtype))
            if not req["time_request"]:
                data = data[0]
            data = np.ascontiguousarray(data)
            if renderer == "application/blosc":
                return Answer(200, blosc.compress(data.tobytes(), typesize=bits), "application/blosc")
            if renderer == "application/blosc-python":
                return Answer(200, blosc.pack_array(data), "application/blosc-python")
            if renderer == "application/npygz":
                buf = io.BytesIO()
                np.save(buf, data, allow_pickle=False)
                return Answer(200, zlib.compress(buf.getvalue()), "application/npygz")
            if renderer == "image/jpeg":
                if req["time_request"]:
                    return Answer(400, drf_json({"status": 400, "message": "The cutout service JPEG interface does "
                                                 "not support 4D cutouts", "code": 2005}))
                if bits != 8:
                    return Answer(400, drf_json({"status": 400, "message": "The cutout service JPEG interface only "
                                                 "supports uint8 image data", "code": 2001}))
                from PIL import Image
                img = Image.fromarray(data.reshape(data.shape[0] * data.shape[1], data.shape[2]))
                out = io.BytesIO()
                img.save(out, "JPEG", quality=85)
                return Answer(200, out.getvalue(), "image/jpeg")
            return django_500()  # JSONRenderer / BrowsableAPIRenderer cannot serialize the Cube

        def cloudvol_read(self, chan, req, dtype):
            if not opts.cloudvol_root:
                raise django_500()
            try:
                from cloudvolume import CloudVolume
                path = os.path.join(opts.cloudvol_root, (chan["bucket"] or "") + (chan["cv_path"] or ""))
                vol = CloudVolume("file://" + os.path.abspath(path), mip=req["res"], fill_missing=True,
                                  progress=False, bounded=False)
                (x0, x1), (y0, y1), (z0, z1) = req["box"]
                arr = np.asarray(vol[x0:x1, y0:y1, z0:z1])[..., 0]
            except Exception:  # noqa: BLE001 - CVDBError -> uncaught -> 500
                raise django_500()
            zyx = np.ascontiguousarray(arr.transpose(2, 1, 0)).astype(dtype, copy=False)
            return np.broadcast_to(zyx, (req["t1"] - req["t0"],) + zyx.shape)

        # --- cutout POST (parsers.py + Cutout.post)
        def cutout_post(self, g, query, body, user, renderer):
            iso = query.get("iso", "").lower() == "true"
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if not ctype:
                raise django_500()  # request.data is {} -> request.data[0] KeyError
            if ctype not in ("application/blosc", "application/blosc-python", "application/npygz"):
                raise drf_exception(415, 'Unsupported media type "%s" in request.' % ctype, renderer)
            g = dict(g)
            req = self.boss_request(g, user, "POST")
            dtype, bits = self.bit_depth(req)
            if self.too_large(req, bits):
                raise boss_error("Cutout request is over 500MB when uncompressed. Reduce cutout dimensions.",
                                 E_REQUEST_TOO_LARGE)
            (x0, x1), (y0, y1), (z0, z1) = req["box"]
            nt = req["t1"] - req["t0"]
            shape3 = (z1 - z0, y1 - y0, x1 - x0)
            if ctype == "application/blosc-python":
                return Answer(501, json.dumps({"status": 501, "code": 9000, "message": "test double: "
                                               "application/blosc-python POST (a pickle) is not implemented"}).encode())
            if ctype == "application/blosc":
                try:
                    raw = blosc.decompress(body)
                    flat = np.frombuffer(raw, dtype=dtype)
                except Exception:  # noqa: BLE001
                    raise boss_error("Failed to decompress data. Verify the datatype/bitdepth of your data "
                                     "matches the channel.", E_DATATYPE_DOES_NOT_MATCH)
                try:
                    data = flat.reshape((nt,) + shape3 if req["time_request"] else shape3)
                except ValueError:
                    raise boss_error("Failed to unpack data. Verify the datatype of your POSTed data and "
                                     "xyz dimensions used in the POST URL.", E_DATA_DIMENSION_MISMATCH)
            else:
                try:
                    data = np.load(io.BytesIO(zlib.decompress(body)), allow_pickle=False)
                except EOFError:
                    raise boss_error("Failed to unpack data. Verify the datatype of your POSTed data and "
                                     "xyz dimensions used in the POST URL.", E_DATA_DIMENSION_MISMATCH)
                except Exception:  # noqa: BLE001 - zlib.error / ValueError are not caught there
                    raise django_500()
                if data.dtype != np.dtype(dtype):
                    raise boss_error("Datatype does not match channel", E_DATATYPE_DOES_NOT_MATCH)
                expected = (len(range(req["t0"], req["t1"])),) + shape3 if data.ndim == 4 else shape3
                if tuple(data.shape) != expected:
                    raise boss_error("Data dimensions in URL do not match POSTed data.", E_DATA_DIMENSION_MISMATCH)
            if self.throttled():
                raise drf_exception(429, THROTTLE_DETAIL, renderer)
            self.write(req, data if data.ndim == 4 else data[None], iso)
            chan = req["chan"]
            if chan["downsample_status"].upper() == "DOWNSAMPLED":
                chan["downsample_status"] = "NOT_DOWNSAMPLED"
            return Answer(201, b"", "text/html; charset=utf-8")

        def write(self, req, data4, iso, to_black=False):
            chan, res = req["chan"], req["res"]
            base = chan["base_resolution"]
            if res != base and res != base + 1:
                msg = ("You can only write data to a channel's base resolution or one resolution above it. "
                       "Base Resolution: {}, Request Resolution: {}".format(base, res))
                inner = str(("Resolution Mismatch", msg, ErrorCodes.RESOLUTION_MISMATCH))
                if to_black:  # its except block calls the undefined BossLogger: NameError -> 500
                    raise django_500()
                raise boss_error("Error during write_cuboid: %s" % inner, E_BOSS_SYSTEM_ERROR)
            (x0, x1), (y0, y1), (z0, z1) = req["box"]
            st.store.write(self.iso_key(req, iso), req["t0"], (x0, y0, z0), data4, to_black=to_black)

        # --- PUT cutout/to_black (CutoutToBlack.put)
        def to_black(self, g, query, user):
            iso = query.get("iso", "").lower() == "true"
            req = self.boss_request(g, user, "PUT")
            dtype, bits = self.bit_depth(req)
            if self.too_large(req, bits):
                raise boss_error("Cutout overwrite is over 500MB when uncompressed. Reduce overwrite dimensions.",
                                 E_REQUEST_TOO_LARGE)
            (x0, x1), (y0, y1), (z0, z1) = req["box"]
            shape = (req["t1"] - req["t0"], z1 - z0, y1 - y0, x1 - x0)
            self.write(req, np.zeros(shape, dtype=dtype), iso, to_black=True)
            chan = req["chan"]
            if chan["downsample_status"].upper() == "DOWNSAMPLED":
                chan["downsample_status"] = "NOT_DOWNSAMPLED"
            return Answer(200, b"", "text/html; charset=utf-8")

        # --- downsample GET (Downsample.get)
        def downsample(self, g, query, user):
            iso = query.get("iso", "").lower() == "true"
            req = self.boss_request(g, user, "GET", service="downsample")
            exp, cf = req["exp"], req["cf"]
            try:
                vox, ext = downsampled(exp, cf, iso, (cf["x_stop"], cf["y_stop"], cf["z_stop"]))
            except ValueError as err:
                raise boss_error("Error while getting downsampled voxel dimensions: %s" % err, E_BOSS_SYSTEM_ERROR)
            n = exp["num_hierarchy_levels"]
            if n > 13:
                raise django_500()  # CUBOIDSIZE has 13 levels
            return Answer(200, drf_json({"status": req["chan"]["downsample_status"], "num_hierarchy_levels": n,
                                         "voxel_size": {str(r): v for r, v in enumerate(vox)},
                                         "extent": {str(r): v for r, v in enumerate(ext)},
                                         "cuboid_size": {str(r): list(CUBOIDSIZE) for r in range(n)}}))

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_DELETE(self):
            self.handle_any("DELETE")

        def do_PATCH(self):
            self.handle_any("PATCH")

    return Handler


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", help="the valid (admin) token; without it auth is disabled")
    ap.add_argument("--read-token", help="a valid token of a user without permissions (403s)")
    ap.add_argument("--user", default="bossadmin", help="username of the --token user (the 'creator')")
    ap.add_argument("--max-cutout-bytes", type=int, default=CUTOUT_MAX_SIZE,
                    help="CUTOUT_MAX_SIZE (default 520 MiB)")
    ap.add_argument("--log", help="append each request record to this file as a JSON line")
    ap.add_argument("--cloudvol-root", help="directory standing for s3:// for storage_type cloudvol channels")
    ap.add_argument("--auth-errors-as-json", action="store_true",
                    help="answer DRF 401s on cutouts as JSON instead of the BOSS's renderer 500")
    opts = ap.parse_args()
    st = State()
    server = QuietServer(("127.0.0.1", opts.port), make_handler(opts, st))
    server.daemon_threads = True
    parent = os.getppid()

    def watch_parent():
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(0.5)

    threading.Thread(target=watch_parent, daemon=True).start()
    import signal
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
