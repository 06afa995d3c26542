#!/usr/bin/env python3
"""A loopback stand-in for the legacy Open Connectome Project / ndstore cutout service (sd/ca), as
ndio and old OCP scripts use it. Stdlib http.server plus numpy and h5py (python-blosc optional);
in-memory state.

    python tests/servers/ocp.py [--port 0] [--token-required T] [--log FILE] [--hdf5-layout L]

Prints exactly one line `PORT <n>` (flushed) once listening on 127.0.0.1, then serves until killed
(SIGTERM), or until the process that started it goes away.

Behaviour is taken from ndstore's own source, neurodata/ndstore @32ca3362 (2017-05) with its
submodules neurodata/ndlib @eeb80d75 and neurodata/spdb (as fetched): django/ND/urls.py,
django/sd/urls.py, django/sd/views.py (cutout, jsoninfo, publictokens, publicdatasets),
django/ndauth/authentication.py, django/nduser/models.py, webservices/restargs.py (cutoutArgs),
webservices/ndwsrest.py (cutout, channelIterCutout, numpyZip, RAW, BLOSC, binZip, HDF5, window,
selectService, selectPost, getCutout, postCutout, jsonInfo), webservices/ndwserror.py,
ndproj/nddataset.py, ndproj/ndproject.py, ndproj/ndchannel.py, ndproj/jsonprojinfo.py,
ndlib/ndtype.py, ndlib/windowcutout.py, ndlib/c_version/overwriteDense.c, spdb/spatialdb.py
(cutout, writeCuboid). No code is copied. Where the double departs from ndstore it says so.

Routes. ndstore mounts sd.urls at `sd/` and (legacy) `ca/`, both at the root and under `nd/`
(ND/urls.py), so every route below exists as /sd/..., /ca/..., /nd/sd/..., /nd/ca/...:
  GET       <token>/info/                     jsonprojinfo.jsonInfo (sd/urls.py `^\\w+/info/[\\w,/]*$`)
  GET       public_tokens/, public_datasets/  json lists (AllowAny)
  GET|POST  <token>/[<chan>[,<chan>...]/]<svc>/<res>/<x0>,<x1>/<y0>,<y1>/<z0>,<z1>/[<t0>,<t1>/]
            [neariso/][window/<a>,<b>/][filter/<id>,.../]
            svc (GET): hdf5, npz, raw, zip, blosc (only when python-blosc imports)
            svc (POST): hdf5, npz, blosc (same condition); raw is in ndstore's POST list but
            selectPost has no branch for it -> its own 404 "illegal Web POST service" text.
            Without a channel the project's default channel (Channel.default) is used, as
            views.cutout rewrites the URL to <token>/default/...
  Other services of that URL regex (xy, xz, yz, tiff, jpeg, id, ids, diff, *anno) and the other sd
  views (projinfo, nii, swc, query, reserve, exceptions, mcfc, minproj/maxproj, getField, setField,
  getPropagate, setPropagate, merge, csv, ramon, annotation): 501 text "ocp double: ... not
  implemented" (a departure: ndstore answers them). Unrouted paths: Django's 404 page; a GET
  without its trailing slash that would route with one: 301 to it (CommonMiddleware APPEND_SLASH).

Arguments (restargs.cutoutArgs): coordinates are absolute; the dataset offset at that resolution is
subtracted; the box must satisfy 0 <= start < end <= imagesize per axis (neariso: the neariso
imagesize). A time range is the first `/t0,t1/` after z. The time range is not bounds-checked (as
there); never-written voxels read 0.

Bodies (ndwsrest.py):
  hdf5  an HDF5 file (h5py defaults: libver earliest, superblock v0): one group per requested
        channel named after it, holding CUTOUT (channel dtype, (z,y,x) or with a time range (t,z,y,x),
        chunked with h5py's guessed chunk shape, gzip level 4, no shuffle), CHANNELTYPE and DATATYPE
        (shape (1,) variable-length ASCII strings, as Python-2 h5py wrote `vlen=str`).
        Content-Type product/hdf5, Content-Disposition attachment; filename=<args>ndcutout.h5.
        --hdf5-layout ocp2014 instead writes the pre-ndstore OCP layout (ocpca/ocpcarest.py HDF5 at
        ndstore commit a8ee422e~1, 2014): root dataset CUTOUT (gzip) and root DATATYPE uint32 (1,)
        holding the old dbtype enum (1 8-bit image, 8 16-bit image, 2 32-bit annotation,
        7 64-bit annotation, 5 float32 probmap); multi-channel requests then give group CUTOUT
        with one dataset per channel, as ocpca did for channel projects.
  npz   zlib.compress (level 6) of a .npy file of shape (channels,z,y,x) (or (channels,t,z,y,x));
        the .npy is written as numpy <= 1.13 (Python-2 era) did: format 1.0, header padded with
        spaces to a multiple of 16 bytes. NOT a zip archive. Content-Type product/npz.
  raw   the same array's C-order bytes, little-endian. Content-Type product/raw.
  zip   zlib.compress of the raw bytes (binZip). Content-Type product/zip.
  blosc blosc.pack_array (a pickle). Content-Type product/blosc.
  All channels of an npz/raw/zip/blosc request must share one dtype; a channel named `0` is left
  zero (channelIterCutout).
Writes (selectPost): POST the cutout URL with an hdf5 (group per channel, CUTOUT + DATATYPE +
CHANNELTYPE), npz or blosc body; dtype and shape are checked; data are merged as spdb writeCuboid
does: only NON-ZERO posted voxels overwrite (ndlib overwriteDense); zeros never erase. Success: 200
`Success` (text/html).

Errors (views.cutout/jsoninfo catch NDWSError -> 404 text/html; charset=utf-8 with the message).
ndstore's Python-2 exceptions stringify as repr() of their message, and every layer re-wraps it
with "{}".format(e), so the text carries one more layer of quotes per layer it crossed:
  hdf5 GET, bad box:   '"Illegal arguments to cutout. Check cube failed \\'Illegal range. Image size:
                       [x, y, z] at offset [ox, oy, oz]\\'"'   (2 repr layers: cutout, HDF5)
  npz/raw GET:         one more repr layer (cutout, channelIterCutout, numpyZip/RAW)
  POST, bad box:       "Illegal arguments to cutout. Check cube failed 'Illegal range. ...'" (with the
                       double quotes: one repr layer, str() of the RESTArgsError Django was handed)
  POST body problems:  "POST transaction rollback. <str of the error>"
  Unknown resolution:  "Illegal scaling level <args>" (wrapped the same way).
  Non-matching args:   "Incorrect cutout arguments <args>. 'NoneType' object has no attribute 'groups'"
The double computes these with the same wrapping, so they are exact for Python-2 ints. (Under
Python 2 + MySQLdb, integer model fields may have been `long`, which would have printed as
`[1000L, 800L, 100L]`; the double prints plain ints.) h5py/zlib messages are the Python-2-era
texts as far as known.

Auth (ndauth PublicAuthentication + AnonAllowedAuthentication, a DRF TokenAuthentication):
  A project token marked public needs nothing. Otherwise the request must carry
  `Authorization: Token <key>` of a user owning the token. --token-required T makes T the key of
  the one user, who owns every seeded token, and makes seeded tokens private unless the seed says
  "public": true. Denials are DRF's: cutout view (SessionAuthentication first, no
  WWW-Authenticate) -> 403 {"detail":"Authentication credentials were not provided."}; info view
  -> 401 with WWW-Authenticate: Token; a valid key not owning the token -> 403 {"detail":"You do not
  have permission to perform this action."}; `Token a b` -> "Invalid token header. Token string
  should not contain spaces." (401/403 as above). An unknown token is never public, so anonymous
  requests for it are denied the same way (ndstore's 404 "Token X does not exist" is only reachable
  by a superuser; the double has none).

Departures (left out): zoom-in/zoom-out of unpropagated channels (ndstore reads other resolutions
than the channel's base resolution by scaling; the double reads what was written at the requested
resolution, as for a PROPAGATED channel); neariso data are a separate store, not derived (read
from it only when nearisoscaledown > 1, as spdb does; /neariso/ writes always go to it); the
`direct`/`aligned` flags are parsed and ignored; annotation writes use the same non-zero overwrite
(conflict option 'O') without RAMON indexes; filter/ works on annotation channels (keeps listed ids).

Test controls (not ndstore):
  POST /__seed     {"token", "project"?: name, "public"?: bool, "description"?,
                    "dataset": {"name"?, "imagesize": [x,y,z] (resolution 0; derived per level as
                      NDDataset does) or {res: [x,y,z]}, "offset": [x,y,z] or {res: [...]},
                      "voxelres": [x,y,z] or {res: [...]}, "scalinglevels"?: n,
                      "scaling"?: "zslices"|"xyz", "resolutions"?: [...], "cube_dimension"?: {res: [...]},
                      "description"?},
                    "channels": {name: {"channel_type": image|annotation|timeseries|oldchannel,
                      "datatype": uint8|uint16|uint32|uint64|float32|int8|int16|int32,
                      "resolution"?, "readonly"?, "windowrange"?, "timerange"?, "propagate"?,
                      "exceptions"?, "description"?, "default"?: bool}}}
                   -> {"ok": true, "info": <the info JSON object>}
  POST /__control  {"fail": N, "status": S} the next N requests answer S (default 503);
                   {"drop": N} close the next N connections without answering;
                   {"truncate": N} the next N bodies are cut short (full Content-Length, half sent);
                   {"clear_log": true}; {"reset": true} clears faults and log (projects stay);
                   {"hdf5_layout": "ndstore"|"ocp2014"};
                   {"corrupt": N, "how"?: "xor"|"short"} the next N successful cutout GETs answer a
                     damaged body: "xor" (default) every byte XOR 0xA5 at the full length, "short"
                     the first half sent with its own (short) Content-Length
  GET  /__requests the request records: method, path, query, status, request_bytes,
                   response_bytes, fault, view, service, auth.
"""

import argparse
import io
import json
import math
import os
import re
import struct
import sys
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import h5py

try:
    import blosc  # optional: blosc bodies are pickles, the double serves them only when available
except Exception:  # noqa: BLE001
    blosc = None

# ndlib/ndtype.py
IMAGE, ANNOTATION, TIMESERIES, OLDCHANNEL = "image", "annotation", "timeseries", "oldchannel"
ANNOTATION_CHANNELS = [ANNOTATION]
ND_DTYPETONP = {"uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
                "float32": np.float32, "int8": np.int8, "int16": np.int16, "int32": np.int32}
ZSLICES, ISOTROPIC = 0, 1
SUPERCUBESIZE = [4, 4, 4]
ND_VERSION, SCHEMA_VERSION = "1.2.0", "1.1.0"
PROPAGATED, UNDER_PROPAGATION, NOT_PROPAGATED = 2, 1, 0
READONLY_TRUE = 1

# sd/views.py
GET_SLICE_SERVICES = ["xy", "yz", "xz"]
GET_ANNO_SERVICES = ["xyanno", "yzanno", "xzanno"]
POST_SERVICES = ["hdf5", "npz", "raw", "hdf5_async", "propagate", "tiff", "blosc", "blaze"]

# sd/urls.py, in order (name, regex over the path after sd/ or ca/); Django uses re.search and the
# patterns anchor with a ^ inside the group.
SD_ROUTES = [
    ("catmaid", r"^catmaid/(?P<webargs>\w+/.*)$"),
    ("nifti", r"(?P<webargs>^\w+/[\w+,/]*nii/[\w,/]*)$"),
    ("swc", r"(?P<token_name>^\w+)/(?P<channel_name>[\w+,]*)/swc/?P<ids>([\w,/]*)$"),
    ("query", r"(?P<webargs>^\w+/\w+/query/[\w\.,/]*)$"),
    ("projinfo", r"(?P<webargs>^\w+/projinfo/[\w,/]*)$"),
    ("jsoninfo", r"(?P<webargs>^\w+/info/[\w,/]*)$"),
    ("xmlinfo", r"(?P<webargs>^\w+/volume.vikingxml)$"),
    ("publictokens", r"(?P<webargs>^public_tokens/)$"),
    ("publicdatasets", r"(?P<webargs>^public_datasets/)$"),
    ("reserve", r"(?P<webargs>^\w+/\w+/reserve/[\w+,/]*)$"),
    ("exceptions", r"(?P<webargs>^\w+/exceptions/[\w,/]*)$"),
    ("mcfc", r"(?P<webargs>^\w+/[\w,]+/mcfc/[\w,/-]+)$"),
    ("minmaxproject", r"(?P<webargs>^\w+/[\w,]+/(minproj|maxproj)/[\w,/-]+)$"),
    ("cutout", r"(?P<webargs>^\w+/([\w+,]*/)*(xy|xz|yz|tiff|hdf5|blosc|blaze|jpeg|npz|raw|zip|diff|id|ids|"
               r"xyanno|xzanno|yzanno)/[\w\.,/-]*)$"),
    ("getField", r"(?P<webargs>^\w+/\w+/getField/\d+/[\w+,/]*)$"),
    ("setField", r"(?P<webargs>^\w+/\w+/setField/\d+/[\w+,./]*)$"),
    ("getPropagate", r"(?P<webargs>^\w+/[\w+,]+/getPropagate/)$"),
    ("setPropagate", r"(?P<webargs>^\w+/[\w+,]+/setPropagate/[\d+,]+/)$"),
    ("merge", r"(?P<webargs>^\w+/\w+/merge/[\w,/]+)$"),
    ("csv", r"(?P<webargs>^\w+/(csv)[\d+/]?[\w,/]*)$"),
    ("jsonramon", r"(?P<webargs>^\w+/\w+/ramon/[\w,/]*)$"),
    ("annotation", r"(?P<webargs>^\w+/\w+/[\d+/]?[\w,/]*)$"),
    ("autoIngest", r"(?P<webargs>^autoIngest/)$"),
]
SD_COMPILED = [(n, re.compile(rx)) for n, rx in SD_ROUTES]
# ND/urls.py: ca/ and sd/ (the other apps are not part of the double), at / and under nd/
MOUNT = re.compile(r"^/(?:nd/)?(?:ca|sd)/(?P<rest>.*)$", re.S)
IMPLEMENTED_VIEWS = {"jsoninfo", "publictokens", "publicdatasets", "cutout"}
# DRF: views declared with @api_view([...])
VIEW_METHODS = {"jsoninfo": ("GET",), "publictokens": ("GET",), "publicdatasets": ("GET",),
                "cutout": ("GET", "POST")}

# Pre-ndstore OCP dbtype enumeration (ocpca/ocpcaproj.py)
OCP_DBTYPE = {("image", "uint8"): 1, ("image", "uint16"): 8, ("annotation", "uint32"): 2,
              ("annotation", "uint64"): 7, ("image", "float32"): 5, ("timeseries", "uint8"): 11,
              ("timeseries", "uint16"): 12}


# ----------------------------------------------------------------------------------------------
# Python-2 exception semantics: ndstore's own exceptions print as repr() of their value.

class Py2Error(Exception):
    def __init__(self, value):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return repr(self.value) if isinstance(self.value, str) else str(self.value)


class PlainError(Exception):
    """A Python-2 built-in exception (IOError, ValueError, zlib.error): str() is the bare message."""


class RESTArgsError(Py2Error):
    pass


class NDWSError(Py2Error):
    pass


class ChannelDoesNotExist(Exception):
    """Django's Channel.DoesNotExist. Raised bare by NDChannel.fromName (str ""), with Django's
    message by Channel.objects.get."""


class Server500(Exception):
    """An exception ndstore lets escape to Django: its HTML 500."""


def fmt(e):
    """"{}".format(e) on a Python-2 exception."""
    return str(e)


# ----------------------------------------------------------------------------------------------
# The model

def _per_res(value, resolutions, name):
    if isinstance(value, dict):
        out = {int(k): list(v) for k, v in value.items()}
        missing = [r for r in resolutions if r not in out]
        if missing:
            raise ValueError(f"{name} lacks resolutions {missing}")
        return out
    return None


class Dataset:
    """NDDataset: per-level geometry derived from the level-0 fields, as ndstore computes it."""

    def __init__(self, d, default_name):
        self.name = d.get("name", default_name)
        self.description = d.get("description", "")
        scaling = d.get("scaling", d.get("scalingoption", "zslices"))
        self.scalingoption = {"zslices": ZSLICES, "xyz": ISOTROPIC, 0: ZSLICES, 1: ISOTROPIC}[scaling]
        self.public = 1 if d.get("public", False) else 0
        isz = d.get("imagesize")
        if isinstance(isz, dict):
            res = sorted(int(k) for k in isz)
            self.resolutions = [int(r) for r in d.get("resolutions", res)]
        else:
            levels = int(d.get("scalinglevels", 0))
            self.resolutions = list(range(levels + 1))
        self.scalinglevels = int(d.get("scalinglevels", max(self.resolutions)))
        self.image_size, self.offset, self.voxelres = {}, {}, {}
        self.cubedim, self.supercubedim, self.scale = {}, {}, {}
        self.nearisoscaledown, self.neariso_voxelres, self.neariso_imagesz, self.neariso_offset = {}, {}, {}, {}
        ex_isz = _per_res(isz, self.resolutions, "imagesize")
        ex_off = _per_res(d.get("offset"), self.resolutions, "offset")
        ex_vr = _per_res(d.get("voxelres"), self.resolutions, "voxelres")
        ex_cd = _per_res(d.get("cube_dimension"), self.resolutions, "cube_dimension") \
            if isinstance(d.get("cube_dimension"), dict) else None
        X, Y, Z = (ex_isz[self.resolutions[0]] if ex_isz else [int(v) for v in isz])
        xo, yo, zo = (ex_off[self.resolutions[0]] if ex_off else [int(v) for v in d.get("offset", [0, 0, 0])])
        xv, yv, zv = (ex_vr[self.resolutions[0]] if ex_vr else [float(v) for v in d.get("voxelres", [1.0, 1.0, 1.0])])
        xv, yv, zv = float(xv), float(yv), float(zv)
        zs = self.scalingoption == ZSLICES
        for i in self.resolutions:
            f = 2 ** i
            if ex_isz:
                xp, yp, zp = [int(v) for v in ex_isz[i]]
            else:
                xp, yp = (X - 1) // f + 1, (Y - 1) // f + 1
                zp = Z if zs else (Z - 1) // f + 1
            self.image_size[i] = [xp, yp, zp]
            if ex_off:
                self.offset[i] = [int(v) for v in ex_off[i]]
            else:
                self.offset[i] = [0 if xo == 0 else xo // f, 0 if yo == 0 else yo // f,
                                  0 if zo == 0 else (zo if zs else zo // f)]
            if ex_vr:
                xvi, yvi, zvi = [float(v) for v in ex_vr[i]]
            else:
                xvi, yvi = xv * float(f), yv * float(f)
                zvi = zv if zs else zv * float(f)
            self.voxelres[i] = [xvi, yvi, zvi]
            self.scale[i] = {"xy": xvi / yvi, "yz": zvi / xvi, "xz": zvi / yvi}
            if ex_cd:
                self.cubedim[i] = [int(v) for v in ex_cd[i]]
            elif zs:
                self.cubedim[i] = [128, 128, 16] if float(zv / xv) / f > 0.5 else [64, 64, 64]
                if X == 135424 and i == 5:  # NDDataset's bock11 exception
                    self.cubedim[i] = [128, 128, 16]
            else:
                self.cubedim[i] = [64, 64, 64]
            self.supercubedim[i] = [a * b for a, b in zip(self.cubedim[i], SUPERCUBESIZE)]
            if self.scale[i]["xz"] < 1.0:
                sp = 1 / self.scale[i]["xz"]
                if ((math.ceil(sp) - sp) / sp) <= ((sp - math.floor(sp)) / sp):
                    self.nearisoscaledown[i] = int(math.ceil(sp))
                else:
                    self.nearisoscaledown[i] = int(math.floor(sp))
            else:
                self.nearisoscaledown[i] = 1
            sd = self.nearisoscaledown[i]
            self.neariso_imagesz[i] = [xp, yp, zp // sd]
            self.neariso_voxelres[i] = [xvi, yvi, zvi * sd]
            ox, oy, oz = self.offset[i]
            self.neariso_offset[i] = [float(ox), float(oy), float(oz) / sd]

    def check_cube(self, res, corner, dim, neariso=False):
        size = self.neariso_imagesz[res] if neariso else self.image_size[res]
        for a in range(3):
            s, e = corner[a], corner[a] + dim[a]
            if not (s >= 0 and s < e and e <= size[a]):
                return False
        return True

    def as_dict(self):  # jsonprojinfo.datasetdict
        d = {"name": self.name, "scalinglevels": self.scalinglevels,
             "scaling": "zslices" if self.scalingoption == ZSLICES else "xyz",
             "resolutions": self.resolutions, "imagesize": self.image_size, "offset": self.offset,
             "voxelres": self.voxelres, "cube_dimension": self.cubedim,
             "supercube_dimension": self.supercubedim}
        if self.scalingoption == ZSLICES:
            d["neariso_scaledown"] = self.nearisoscaledown
            d["neariso_offset"] = self.neariso_offset
            d["neariso_voxelres"] = self.neariso_voxelres
            d["neariso_imagesize"] = self.neariso_imagesz
        d["description"] = self.description
        return d


class Channel:
    def __init__(self, name, c):
        self.name = name
        self.channel_type = c.get("channel_type", IMAGE)
        if self.channel_type not in (IMAGE, ANNOTATION, TIMESERIES, OLDCHANNEL):
            raise ValueError(f"channel_type {self.channel_type!r}")
        self.datatype = c.get("datatype", "uint8")
        if self.datatype not in ND_DTYPETONP:
            raise ValueError(f"datatype {self.datatype!r} (ndstore maps only {sorted(ND_DTYPETONP)})")
        self.dtype = np.dtype(ND_DTYPETONP[self.datatype])
        self.resolution = int(c.get("resolution", 0))
        self.readonly = int(c.get("readonly", 0))
        self.propagate = int(c.get("propagate", NOT_PROPAGATED))
        self.exceptions = int(c.get("exceptions", 0))
        self.description = c.get("description", "")
        self.window_range = [int(v) for v in c.get("windowrange", [0, 0])]
        self.time_range = [int(v) for v in c.get("timerange", [0, 1])]
        self.default = bool(c.get("default", False))

    @property
    def default_time_range(self):
        return [self.time_range[0], self.time_range[0] + 1]

    def as_dict(self):  # jsonprojinfo.chandict
        return {"channel_type": self.channel_type, "datatype": self.datatype,
                "exceptions": self.exceptions, "readonly": self.readonly,
                "resolution": self.resolution, "propagate": self.propagate,
                "windowrange": self.window_range, "description": self.description,
                "timerange": self.time_range}


class Project:
    def __init__(self, seed, default_public):
        self.token = str(seed["token"])
        if not re.fullmatch(r"\w+", self.token):
            raise ValueError("token must match \\w+ (the URL regexes)")
        self.public = bool(seed.get("public", default_public))
        self.name = seed.get("project", self.token)
        self.description = seed.get("description", "")
        self.s3backend = int(seed.get("s3backend", 1))
        self.dataset = Dataset(seed.get("dataset", {}), self.token)
        self.channels = {}
        for name, c in (seed.get("channels") or {}).items():
            self.channels[name] = Channel(name, c)
        self.store = {}  # (channel, res, neariso) -> {(t, cz, cy, cx): ndarray (z, y, x)}
        self.lock = threading.Lock()

    def info_json(self):
        d = {"dataset": self.dataset.as_dict(),
             "project": {"name": self.name, "description": self.description,
                         "schema_version": SCHEMA_VERSION, "ndstore_version": ND_VERSION,
                         "s3backend": self.s3backend},
             "channels": {n: c.as_dict() for n, c in self.channels.items()},
             "metadata": {}}
        # json.dumps(sort_keys=True, indent=4) under Python 2: item separator ", " even at line ends
        return json.dumps(d, sort_keys=True, indent=4, separators=(", ", ": "))

    def get_channel(self, name="default"):  # NDProject.getChannelObj
        if name == "default":
            defaults = [c for c in self.channels.values() if c.default]
            if not defaults:
                raise ChannelDoesNotExist("Channel matching query does not exist.")
            if len(defaults) > 1:
                raise ChannelDoesNotExist(f"get() returned more than one Channel -- it returned {len(defaults)}!")
            return defaults[0]
        if name not in self.channels:
            raise ChannelDoesNotExist()  # NDChannel.fromName raises the bare class
        return self.channels[name]

    # --- the cube store (spdb: cubes of cube_dimension per resolution, one per time step)
    def read(self, ch, corner, dim, res, timerange, neariso):
        cd = self.dataset.cubedim[res]
        t0, t1 = timerange
        out = np.zeros((max(t1 - t0, 0), dim[2], dim[1], dim[0]), dtype=ch.dtype)
        key = (ch.name, res, bool(neariso))
        with self.lock:
            cubes = self.store.get(key, {})
            if not cubes:
                return out
            lo = [corner[a] // cd[a] for a in range(3)]
            hi = [(corner[a] + dim[a] - 1) // cd[a] for a in range(3)]
            for t in range(t0, t1):
                for cz in range(lo[2], hi[2] + 1):
                    for cy in range(lo[1], hi[1] + 1):
                        for cx in range(lo[0], hi[0] + 1):
                            cube = cubes.get((t, cz, cy, cx))
                            if cube is None:
                                continue
                            self._copy(out[t - t0], corner, dim, cube, (cx, cy, cz), cd, to_out=True)
        return out

    def write(self, ch, corner, res, data, timerange, neariso):
        """spdb writeCuboid: data (t, z, y, x); non-zero voxels overwrite (overwriteDense)."""
        cd = self.dataset.cubedim[res]
        dim = [data.shape[3], data.shape[2], data.shape[1]]
        key = (ch.name, res, bool(neariso))
        with self.lock:
            cubes = self.store.setdefault(key, {})
            lo = [corner[a] // cd[a] for a in range(3)]
            hi = [(corner[a] + dim[a] - 1) // cd[a] for a in range(3)]
            for i, t in enumerate(range(timerange[0], timerange[1])):
                for cz in range(lo[2], hi[2] + 1):
                    for cy in range(lo[1], hi[1] + 1):
                        for cx in range(lo[0], hi[0] + 1):
                            k = (t, cz, cy, cx)
                            cube = cubes.get(k)
                            if cube is None:
                                cube = cubes[k] = np.zeros((cd[2], cd[1], cd[0]), dtype=ch.dtype)
                            self._copy(data[i], corner, dim, cube, (cx, cy, cz), cd, to_out=False)

    @staticmethod
    def _copy(box, corner, dim, cube, cidx, cd, to_out):
        sl_box, sl_cube = [], []
        for a in (2, 1, 0):  # z, y, x
            c0 = cidx[a] * cd[a]
            s = max(corner[a], c0)
            e = min(corner[a] + dim[a], c0 + cd[a])
            sl_box.append(slice(s - corner[a], e - corner[a]))
            sl_cube.append(slice(s - c0, e - c0))
        sl_box, sl_cube = tuple(sl_box), tuple(sl_cube)
        if to_out:
            box[sl_box] = cube[sl_cube]
        else:
            src = box[sl_box]
            dst = cube[sl_cube]
            m = src != 0
            dst[m] = src[m]


# ----------------------------------------------------------------------------------------------
# ndstore's request logic

class CutoutArgs:
    pass


def cutout_args(imageargs, ds):
    """restargs.BrainRestArgs.cutoutArgs."""
    a = CutoutArgs()
    m = re.match(r"([0-9]+)/([0-9]+),([0-9]+)/([0-9]+),([0-9]+)/([0-9]+),([0-9]+)(.*)?$", imageargs)
    if m is None:
        raise RESTArgsError("Incorrect cutout arguments {}. {}".format(
            imageargs, "'NoneType' object has no attribute 'groups'"))
    res, x1, x2, y1, y2, z1, z2 = [int(i) for i in m.groups()[:-1]]
    rest = m.groups()[-1] or ""
    a.resolution = res
    if res not in ds.resolutions:
        raise RESTArgsError("Illegal scaling level {}".format(imageargs))
    xo, yo, zo = ds.offset[res]
    x1, x2, y1, y2, z1, z2 = x1 - xo, x2 - xo, y1 - yo, y2 - yo, z1 - zo, z2 - zo
    a.corner = [x1, y1, z1]
    a.dim = [x2 - x1, y2 - y1, z2 - z1]
    t = re.match(r"/(\d+),(\d+)/", rest)
    a.time = [int(i) for i in t.groups()] if t else None
    a.zscaling = re.search("/neariso/", rest) is not None
    if not ds.check_cube(res, a.corner, a.dim, neariso=a.zscaling):
        if a.zscaling:
            inner = RESTArgsError("Illegal range. Neariso Image size: {} at offset {}".format(
                str(ds.neariso_imagesz[res]), str(ds.offset[res])))
        else:
            inner = RESTArgsError("Illegal range. Image size: {} at offset {}".format(
                str(ds.image_size[res]), str(ds.offset[res])))
        raise RESTArgsError("Illegal arguments to cutout. Check cube failed {}".format(str(inner)))
    w = re.search(r"/window/([\d\.]+),([\d\.]+)/", rest)
    a.window = [str(i) for i in w.groups()] if w else None
    f = re.search(r"/filter/([\d/,]+)/", rest)
    if f:
        try:
            a.filterlist = np.array(f.group(1).split(","), dtype=np.uint32)
        except ValueError as e:  # "1/2" in the list: numpy's complaint, unwrapped, as there
            raise PlainError(f"invalid literal for long() with base 10: {str(e).split(': ', 1)[-1]}")
    else:
        a.filterlist = None
    a.direct = re.search("/direct/", rest) is not None
    a.aligned = re.search("/aligned/", rest) is not None
    return a


def window(data, ch, window_range):
    """ndwsrest.window + ndlib windowCutout."""
    start, end = window_range
    if start == end == 0:
        return np.uint8(data)
    if end != 0:
        data = data.copy()
        np.clip(data, start, end, out=data)
        np.subtract(data, data.dtype.type(start), out=data)
        return np.uint8(np.multiply(data, 255.0 / (end - start)))
    return data


def do_cutout(imageargs, ch, proj):
    """ndwsrest.cutout: the (t,)z,y,x array of one channel."""
    try:
        a = cutout_args(imageargs, proj.dataset)
    except RESTArgsError as e:
        raise NDWSError(str(e))
    tr = a.time if a.time is not None else ch.default_time_range
    # spdb cutout reads the neariso cubes only when nearisoscaledown > 1 (writeCuboid always
    # writes where /neariso/ says)
    neariso = a.zscaling and proj.dataset.nearisoscaledown[a.resolution] > 1
    data = proj.read(ch, a.corner, a.dim, a.resolution, tr, neariso)
    if ch.channel_type in ANNOTATION_CHANNELS and a.filterlist is not None:
        data = np.where(np.isin(data, a.filterlist.astype(data.dtype)), data, 0).astype(data.dtype)
    elif a.filterlist is not None:
        raise NDWSError("Filter only possible for Annotation Channels")
    if a.time is None:
        data = data.reshape(data.shape[1:])
    if a.window is not None:
        if ch.datatype == "float32":
            wr = [float(x) for x in a.window]
        else:
            try:
                wr = [int(x) for x in a.window]
            except ValueError as e:
                raise PlainError(f"invalid literal for int() with base 10: {str(e).split(': ', 1)[-1]}")
        data = window(data, ch, wr)
    return data


def channel_iter_cutout(channels, imageargs, proj):
    try:
        names = channels.split(",")
        ch = proj.get_channel(names[0])
        first = do_cutout(imageargs, ch, proj)
        cube = np.zeros((len(names),) + first.shape, dtype=first.dtype)
        cube[0] = first
        for idx, name in enumerate(names[1:]):
            if name == "0":
                continue
            ch = proj.get_channel(name)
            if ch.dtype == cube.dtype:
                cube[idx + 1] = do_cutout(imageargs, ch, proj)
            else:
                # "...{}...".format() with no argument: ndstore's own IndexError
                raise IndexError("tuple index out of range")
        return cube
    except Exception as e:  # noqa: BLE001
        raise NDWSError(fmt(e))


def npy_bytes_py2(arr):
    """np.save as numpy <= 1.13 wrote it: format 1.0, header padded to 16 bytes."""
    arr = np.ascontiguousarray(arr)
    header = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (arr.dtype.str, tuple(arr.shape))
    total = 6 + 2 + 2 + len(header) + 1
    header += " " * ((16 - total % 16) % 16) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + arr.tobytes("C")


def parse_chanargs(chanargs, pattern, syntax_error_is_500=False):
    m = re.match(pattern, chanargs)
    if m is None:
        msg = "Arguments not in the correct format {}. {}".format(chanargs, "'NoneType' object has no attribute 'groups'")
        if syntax_error_is_500:  # HDF5 raises IncorrectSyntaxError(msg): a TypeError (2 args needed)
            raise Server500(msg)
        raise NDWSError(msg)
    return m.groups()


def svc_npz(chanargs, proj):
    channels, _, imageargs = parse_chanargs(chanargs, r"([\w+,]+)/(\w+)/([\w\.,/-]+)$")
    try:
        cube = channel_iter_cutout(channels, imageargs, proj)
        return zlib.compress(npy_bytes_py2(cube))
    except Exception as e:  # noqa: BLE001
        raise NDWSError(fmt(e))


def svc_bytes(chanargs, proj, how):
    channels, _, imageargs = parse_chanargs(chanargs, r"([\w+,]+)/(\w+)/([\w+,/-]+)$")
    try:
        cube = channel_iter_cutout(channels, imageargs, proj)
        if how == "raw":
            return cube.tobytes("C")
        if how == "zip":
            return zlib.compress(cube.tobytes("C"))
        return blosc.pack_array(cube)
    except Exception as e:  # noqa: BLE001
        raise NDWSError(fmt(e))


def vlen_ascii():
    return h5py.special_dtype(vlen=bytes)


def svc_hdf5(chanargs, proj, layout):
    channels, _, imageargs = parse_chanargs(chanargs, r"([\w+,]+)/(\w+)/([\w+,/-]+)$", syntax_error_is_500=True)
    with tempfile.NamedTemporaryFile(suffix=".h5") as tmp:
        f = h5py.File(tmp.name, "w", driver="core", backing_store=True)
        try:
            names = channels.split(",")
            if layout == "ocp2014":
                cubes = [(proj.get_channel(n), None) for n in names]
                cubes = [(ch, do_cutout(imageargs, ch, proj)) for ch, _ in cubes]
                if len(cubes) == 1:
                    ch, data = cubes[0]
                    f.create_dataset("CUTOUT", tuple(data.shape), data.dtype, compression="gzip", data=data)
                    f.create_dataset("DATATYPE", (1,), dtype=np.uint32,
                                     data=OCP_DBTYPE.get((ch.channel_type, ch.datatype), 0))
                else:
                    g = f.create_group("CUTOUT")
                    for ch, data in cubes:
                        g.create_dataset(ch.name, tuple(data.shape), data.dtype, compression="gzip", data=data)
                    f.create_dataset("DATATYPE", (1,), dtype=np.uint32,  # CHANNELS_8bit / CHANNELS_16bit
                                     data={"uint8": 4, "uint16": 3}.get(cubes[0][0].datatype, 0))
            else:
                for name in names:
                    ch = proj.get_channel(name)
                    data = do_cutout(imageargs, ch, proj)
                    g = f.create_group(name)
                    g.create_dataset("CUTOUT", tuple(data.shape), data.dtype, compression="gzip", data=data)
                    g.create_dataset("CHANNELTYPE", (1,), dtype=vlen_ascii(), data=ch.channel_type.encode())
                    g.create_dataset("DATATYPE", (1,), dtype=vlen_ascii(), data=ch.datatype.encode())
            f.close()
            tmp.seek(0)
            return tmp.read()
        except Exception as e:  # noqa: BLE001
            f.close()
            raise NDWSError(fmt(e))


def select_post(rangeargs, proj, body):
    """ndwsrest.selectPost (rangeargs = channel/service/postargs)."""
    channel, service, postargs = rangeargs.split("/", 2)
    names = channel.split(",")
    try:
        a = cutout_args(postargs, proj.dataset)
    except RESTArgsError as e:
        raise NDWSError(str(e))  # NDWSError(e): the response is str(e), one repr layer
    try:
        if service == "tiff":
            raise NotImplementedError("tiff")
        if service == "blaze":
            raise NotImplementedError("blaze")
        if service == "hdf5":
            try:
                h5 = h5py.File(io.BytesIO(body), "r")
            except OSError:
                raise PlainError("Unable to open file (File signature not found)")
            with h5:
                for name in names:
                    ch = proj.get_channel(name)
                    grp = h5.get(ch.name)
                    if grp is None:
                        raise TypeError("'NoneType' object has no attribute '__getitem__'")
                    for item in ("CUTOUT", "DATATYPE", "CHANNELTYPE"):
                        if item not in grp:
                            raise KeyError(f"Unable to open object (Object '{item}' doesn't exist)")
                    vox = grp["CUTOUT"][()]
                    h5dt = grp["DATATYPE"][()][0] if grp["DATATYPE"].shape else grp["DATATYPE"][()]
                    if isinstance(h5dt, bytes):
                        h5dt = h5dt.decode("latin1")
                    if vox.dtype != ch.dtype:
                        raise NDWSError("Channel datatype {} in the HDF5 file does not match with the {} in "
                                        "the database.".format(h5dt, ch.datatype))
                    if ch.readonly == READONLY_TRUE:
                        raise NDWSError("Attempt to write to read only channel {} in project. Web Args: {}".format(
                            ch.name, proj.name))
                    if a.time is None:
                        if vox.ndim != 3:
                            raise ValueError("total size of new array must be unchanged")
                        vox = vox.reshape((1,) + vox.shape)
                        tr = ch.default_time_range
                    else:
                        tr = a.time
                    if tuple(vox.shape[::-1]) != tuple(a.dim + [tr[1] - tr[0]]):
                        raise NDWSError("The data has mismatched dimensions {} compared to the arguments {}".format(
                            tuple(vox.shape[1:]), a.dim))
                    proj.write(ch, a.corner, a.resolution, vox, tr, a.zscaling)
        elif service in ("npz", "blosc"):
            if service == "npz":
                try:
                    raw = zlib.decompress(body)
                except zlib.error as e:
                    raise PlainError(str(e))
                vox = np.load(io.BytesIO(raw), allow_pickle=False)
            else:
                if blosc is None:
                    raise NotImplementedError("blosc")
                vox = blosc.unpack_array(body)
            if vox.shape[0] != len(names):
                raise NDWSError("The data has some missing channels")
            if a.time is None:
                if vox.ndim != 4:
                    raise IndexError("tuple index out of range")
                vox = vox.reshape((vox.shape[0], 1) + vox.shape[1:])
                tr = proj.get_channel(names[0]).default_time_range
            else:
                tr = a.time
            if tuple(vox.shape[1:][::-1]) != tuple(a.dim + [tr[1] - tr[0]]):
                raise NDWSError("The data has mismatched dimensions {} compared to the arguments {}".format(
                    tuple(vox.shape[1:]), a.dim))
            for idx, name in enumerate(names):
                ch = proj.get_channel(name)
                if ch.readonly == READONLY_TRUE:
                    raise NDWSError("Attempt to write to read only channel {} in project. Web Args: {}".format(
                        ch.name, proj.name))
                if vox.dtype != ch.dtype:
                    raise NDWSError("Wrong datatype in POST")
                proj.write(ch, a.corner, a.resolution, vox[idx], tr, a.zscaling)
        else:
            raise NDWSError("An illegal Web POST service was requested: {}. Args {}".format(service, rangeargs))
    except NotImplementedError:
        raise
    except Exception as e:  # noqa: BLE001
        raise NDWSError("POST transaction rollback. {}".format(fmt(e)))


# ----------------------------------------------------------------------------------------------
# HTTP

DJANGO_404 = ("<h1>Not Found</h1><p>The requested URL {} was not found on this server.</p>")
DJANGO_500 = "<h1>Server Error (500)</h1>"
HTML = "text/html; charset=utf-8"


class Reply(Exception):
    def __init__(self, status, body, ctype=HTML, headers=None):
        super().__init__(status)
        self.status, self.body, self.ctype, self.headers = status, body, ctype, dict(headers or {})


def drf_json(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


class State:
    def __init__(self, opts):
        self.lock = threading.Lock()
        self.projects = {}
        self.log = []
        self.hdf5_layout = opts.hdf5_layout
        self.reset()

    def reset(self):
        self.fail = 0
        self.fail_status = 503
        self.drop = 0
        self.truncate = 0
        self.corrupt = 0
        self.corrupt_how = "xor"


def make_handler(opts, state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        server_version = "ocp-double/1"
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

        def send(self, status, body, ctype, headers=None, rec=None, truncate=False):
            if isinstance(body, str):
                body = body.encode("utf-8")
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            if truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            out = body[: len(body) // 2] if truncate else body
            if self.command != "HEAD":
                self.wfile.write(out)
            if truncate:
                self.wfile.flush()
                self.close_connection = True
            if rec is not None:
                rec["status"] = status
                rec["response_bytes"] = len(out)

        def record(self, rec):
            rec["time"] = time.time()
            with state.lock:
                state.log.append(rec)
                if opts.log:
                    with open(opts.log, "a") as f:
                        f.write(json.dumps(rec) + "\n")

        def controls(self, method, url):
            if url.path == "/__requests" and method == "GET":
                with state.lock:
                    body = json.dumps(state.log).encode()
                self.send(200, body, "application/json")
                return True
            if url.path in ("/__control", "/__seed") and method == "POST":
                try:
                    cmd = json.loads(self.read_body() or b"{}")
                    assert isinstance(cmd, dict)
                except Exception as e:  # noqa: BLE001
                    self.send(400, json.dumps({"error": f"not a JSON object ({e})"}), "application/json")
                    return True
                if url.path == "/__seed":
                    try:
                        proj = Project(cmd, default_public=opts.token_required is None)
                    except Exception as e:  # noqa: BLE001
                        self.send(400, json.dumps({"error": f"seed: {type(e).__name__}: {e}"}), "application/json")
                        return True
                    with state.lock:
                        state.projects[proj.token] = proj
                    self.send(200, json.dumps({"ok": True, "info": json.loads(proj.info_json())}), "application/json")
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
                    if "drop" in cmd:
                        state.drop = int(cmd["drop"])
                    if "truncate" in cmd:
                        state.truncate = int(cmd["truncate"])
                    if "hdf5_layout" in cmd:
                        state.hdf5_layout = str(cmd["hdf5_layout"])
                    if "corrupt" in cmd:
                        state.corrupt = int(cmd["corrupt"])
                        state.corrupt_how = str(cmd.get("how", "xor"))
                    pending = {"fail": state.fail, "status": state.fail_status, "drop": state.drop,
                               "truncate": state.truncate, "hdf5_layout": state.hdf5_layout,
                               "corrupt": state.corrupt}
                self.send(200, json.dumps({"ok": True, "pending": pending}), "application/json")
                return True
            return False

        def handle_any(self, method):
            url = urlsplit(self.path)
            if self.controls(method, url):
                return
            body = self.read_body() if method in ("POST", "PUT", "PATCH") or self.headers.get("Content-Length") else b""
            rec = {"method": method, "path": url.path, "query": dict(parse_qsl(url.query, keep_blank_values=True)),
                   "request_bytes": len(body), "status": None, "response_bytes": None, "fault": None,
                   "view": None, "service": None, "auth": None}
            with state.lock:
                drop = state.drop > 0
                state.drop -= int(drop)
                fail = state.fail > 0 and not drop
                state.fail -= int(fail)
                fail_status = state.fail_status
            if drop:
                rec["fault"] = "drop"
                self.record(rec)
                self.close_connection = True
                return
            if fail:
                rec["fault"] = "fail"
                self.send(fail_status, f"<h1>Injected fault {fail_status}</h1>", HTML, rec=rec)
                self.record(rec)
                return
            try:
                status, out, ctype, headers = self.dispatch(method, url, body, rec)
            except Reply as r:
                status, out, ctype, headers = r.status, r.body, r.ctype, r.headers
            except Exception as e:  # noqa: BLE001 - a bug in the double
                status, out, ctype, headers = 500, f"ocp double bug: {type(e).__name__}: {e}", "text/plain", {}
            truncate = False
            with state.lock:
                if state.truncate > 0:
                    state.truncate -= 1
                    truncate = True
                corrupt = (state.corrupt > 0 and status == 200 and method == "GET" and not truncate
                           and rec.get("view") == "cutout")
                state.corrupt -= int(corrupt)
                how = state.corrupt_how
            if truncate:
                rec["fault"] = "truncate"
            if corrupt:  # a damaged body (test control)
                rec["fault"] = "corrupt"
                out = out.encode() if isinstance(out, str) else out
                out = bytes(b ^ 0xA5 for b in out) if how == "xor" else out[: len(out) // 2]
            self.send(status, out, ctype, headers, rec=rec, truncate=truncate)
            self.record(rec)

        # --- Django URL resolution + DRF
        def resolve(self, path):
            m = MOUNT.match(path)
            if not m:
                return None
            rest = m.group("rest")
            for name, rx in SD_COMPILED:
                hit = rx.search(rest)
                if hit:
                    return name, hit
            return None

        def authorize(self, view, path, rec):
            if view in ("publictokens", "publicdatasets"):
                return
            header = self.headers.get("Authorization") or ""
            parts = header.split()
            user = None
            www = {"WWW-Authenticate": "Token"} if view == "jsoninfo" else {}
            status_na = 401 if view == "jsoninfo" else 403
            if parts and parts[0].lower() == "token" and len(parts) > 1:
                if len(parts) > 2:
                    rec["auth"] = "bad_header"
                    raise Reply(status_na, drf_json({"detail": "Invalid token header. Token string should not contain spaces."}),
                                "application/json", www)
                if opts.token_required is not None and parts[1] == opts.token_required:
                    user = "owner"
            argus = path.split("/")
            for _ in range(3):
                if argus and argus[0] in ("", "nd", "ocp"):
                    argus = argus[1:]
            exp_token = argus[2] if argus and argus[0] == "catmaid" else (argus[1] if len(argus) > 1 else "")
            with state.lock:
                proj = state.projects.get(exp_token)
            if proj is not None and proj.public:
                rec["auth"] = "public"
                return
            if user == "owner" and proj is not None:
                rec["auth"] = "ok"
                return
            if user is None:
                rec["auth"] = "anonymous"
                raise Reply(status_na, drf_json({"detail": "Authentication credentials were not provided."}),
                            "application/json", www)
            rec["auth"] = "forbidden"
            raise Reply(403, drf_json({"detail": "You do not have permission to perform this action."}), "application/json")

        def dispatch(self, method, url, body, rec):
            path = url.path
            hit = self.resolve(path)
            if hit is None:
                if method in ("GET", "HEAD") and not path.endswith("/") and self.resolve(path + "/") is not None:
                    loc = path + "/" + ("?" + url.query if url.query else "")
                    raise Reply(301, b"", HTML, {"Location": loc})
                raise Reply(404, DJANGO_404.format(path), HTML)
            view, m = hit
            rec["view"] = view
            if view not in IMPLEMENTED_VIEWS:
                raise Reply(501, f"ocp double: the sd view {view} is not implemented", "text/plain")
            self.authorize(view, path, rec)
            if method not in VIEW_METHODS[view]:
                raise Reply(405, drf_json({"detail": f'Method "{method}" not allowed.'}), "application/json",
                            {"Allow": ", ".join(VIEW_METHODS[view] + ("OPTIONS",))})
            webargs = m.group("webargs")
            try:
                if view == "jsoninfo":
                    tm = re.match(r"(\w+)/info/", webargs)
                    proj = self.project(tm.group(1))
                    return 200, proj.info_json(), "application/json", {}
                if view == "publictokens":
                    with state.lock:
                        toks = sorted(t for t, p in state.projects.items() if p.public)
                    return 200, json.dumps(toks, sort_keys=True, indent=4, separators=(", ", ": ")), "application/json", {}
                if view == "publicdatasets":
                    with state.lock:
                        names = sorted({p.dataset.name for p in state.projects.values() if p.dataset.public})
                    return 200, json.dumps(names, sort_keys=True, indent=4, separators=(", ", ": ")), "application/json", {}
                return self.cutout_view(method, webargs, body, rec)
            except NDWSError as e:
                return 404, e.value if isinstance(e.value, str) else str(e.value), HTML, {}
            except Server500:
                return 500, DJANGO_500, HTML, {}
            except NotImplementedError as e:
                return 501, f"ocp double: {e} is not implemented", "text/plain", {}

        def project(self, token):
            with state.lock:
                proj = state.projects.get(token)
            if proj is None:
                raise NDWSError("Token {} does not exist. Token matching query does not exist.".format(token))
            return proj

        def cutout_view(self, method, webargs, body, rec):
            m = re.match(r"(\w+)/(?P<channel>[\w+,-]+)?/?(xy|xz|yz|tiff|hdf5|jpeg|blosc|blaze|npz|raw|zip|id|diff|ids|"
                         r"xyanno|xzanno|yzanno)/([\w\.,/-]*)$", webargs)
            if m is None:
                raise Server500("IncorrectSyntaxError(...) raises TypeError")
            token, channel, service, cutoutargs = m.groups()
            rec["service"] = service
            if channel is None:
                webargs = "{}/default/{}/{}".format(token, service, cutoutargs)
            fname = webargs.replace(",", "_").replace("/", "-")
            if method == "GET":
                if service == "blaze":
                    return 400, "{} service not supported for GET. Only for POST".format(service), HTML, {}
                if service not in ("hdf5", "npz", "raw", "zip", "blosc") or (service == "blosc" and blosc is None):
                    raise NotImplementedError(f"GET {service}")
                tok, rest = webargs.split("/", 1)
                proj = self.project(tok)
                if service == "hdf5":
                    out = svc_hdf5(rest, proj, state.hdf5_layout)
                    return 200, out, "product/hdf5", {"Content-Disposition": f"attachment; filename={fname}ndcutout.h5"}
                if service == "npz":
                    return 200, svc_npz(rest, proj), "product/npz", {}
                if service == "raw":
                    return 200, svc_bytes(rest, proj, "raw"), "product/raw", \
                        {"Content-Disposition": f"attachment; filename={fname}ndcutout.raw"}
                if service == "zip":
                    return 200, svc_bytes(rest, proj, "zip"), "product/zip", {}
                return 200, svc_bytes(rest, proj, "blosc"), "product/blosc", \
                    {"Content-Disposition": f"attachment; filename={fname}ndcutout.blosc"}
            # POST
            if service not in POST_SERVICES:
                return 400, "Could not find service {}".format(service), HTML, {}
            tok, rangeargs = webargs.split("/", 1)
            proj = self.project(tok)
            select_post(rangeargs, proj, body)
            return 200, "Success", "text/html", {}

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


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token-required", help="the API key (Authorization: Token T) of the user owning every "
                                             "seeded token; seeded tokens are then private by default")
    ap.add_argument("--log", help="append each request record to this file as a JSON line")
    ap.add_argument("--hdf5-layout", default="ndstore", choices=("ndstore", "ocp2014"))
    opts = ap.parse_args()
    state = State(opts)
    server = QuietServer(("127.0.0.1", opts.port), make_handler(opts, state))
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
