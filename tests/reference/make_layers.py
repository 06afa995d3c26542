#!/usr/bin/env python3
"""Write the reference Precomputed layers the conformance test (tests/conformance.rs) reads.

Usage: target/venv/bin/python tests/reference/make_layers.py OUTDIR

Layers are written with cloud-volume (OUTDIR/cv/...) and tensorstore (OUTDIR/ts/...). For each
layer, boxes are chosen with a fixed seed and read back with the library that wrote the layer (or,
where that library is known to decode wrongly, with the other one); each read is saved as raw
little-endian bytes in Fortran order x, y, z, channel (the layout of cv_cutout_into) and listed in
OUTDIR/manifest.json. Some boxes carry cv_open options (fill_missing, bounded, background_color);
their expectations come from cloud-volume opened with the same keyword arguments, and a box that
cloud-volume refuses records the error instead of bytes ("not_found", "out_of_bounds").

Sharded layers (neuroglancer_uint64_sharded_v1): tensorstore writes them with both hashes, both
encodings of minishard indices and data, shard_bits from 0 to 13 (FAFB's parameters), jpeg,
raw and compressed_segmentation, one or two mips (one layer with an unsharded second mip), plus
the worked example of the format digest §4.6 and a layer with omitted chunks and a deleted shard;
cloud-volume writes them shard by shard (`vol[shard box] = img`) with parameters from its own
compute_shard_params_for_image. Each layer (sharded, and a few unsharded) may list:
- "points": scattered-point sets, each read by the writing library (tensorstore's vindex,
  cloud-volume's scattered_points, or its reads of two voxels), saved point after point, channel after
  channel (the layout of cv_scattered_points), or the error cloud-volume raised;
- "chunks": per mip, the grid cells whose chunk the writer stored (tensorstore's sharded kvstore
  listing, cloud-volume's ShardReader.list_labels, or the chunk files on disk);
- "sharding": per mip, the sharding spec or null.

OUTDIR/encoded/{gzip,br,zstd}/... hold copies of some plain layers with every file (info too)
compressed under its plain name, to be served with a Content-Encoding header (tests/support/nginx.rs).

Everything is deterministic: the same script gives the same bytes (except for JPEG encoders,
which are deterministic too in practice). The top-level directory under OUTDIR is the "bucket"
for gs:// and s3:// tests.
"""

import contextlib
import hashlib
import io
import importlib.metadata as md
import itertools
import json
import os
import shutil
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import tensorstore as ts  # noqa: E402
from cloudvolume import CloudVolume  # noqa: E402
from cloudvolume.exceptions import EmptyVolumeException, OutOfBoundsError  # noqa: E402


class _QuickPoll:
    """cloud-files' ThreadedQueue polls its queue every 0.1 s (`time.sleep(0.1)`), which costs
    about that much per sharded cloud-volume read even on file://; poll every 0.1 ms."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds):
        time.sleep(min(seconds, 0.0001))


import cloudfiles.threaded_queue  # noqa: E402

cloudfiles.threaded_queue.time = _QuickPoll()

try:  # cloud-volume's png codec needs pyspng-seunglab, which is optional.
    import pyspng  # noqa: F401

    HAVE_PYSPNG = True
except ImportError:
    HAVE_PYSPNG = False

OUT = None  # set in main()
NOTES = []

# ----------------------------------------------------------------------------------------------
# Geometries: per mip, (size, voxel_offset, chunk_size, resolution). Odd sizes, offsets zero,
# positive and negative, chunk sizes that do not divide the size, one chunk bigger than the volume.

GEOMETRIES = [
    [  # 3 mips, negative offsets
        ([45, 29, 11], [-13, 7, -5], [16, 16, 4], [4, 4, 40]),
        ([23, 15, 11], [-7, 3, -5], [16, 8, 4], [8, 8, 40]),
        ([12, 8, 6], [-4, 1, -3], [8, 8, 4], [16, 16, 80]),
    ],
    [  # 2 mips, mixed offsets, cubic chunks
        ([37, 27, 19], [100, -60, 3], [16, 16, 16], [4, 4, 4]),
        ([19, 14, 10], [50, -30, 1], [8, 8, 8], [8, 8, 8]),
    ],
    [  # 2 mips, zero offset, chunk larger than the volume at mip 0
        ([40, 23, 9], [0, 0, 0], [64, 64, 64], [6, 6, 30]),
        ([20, 12, 9], [0, 0, 0], [8, 8, 4], [12, 12, 30]),
    ],
    [  # 3 mips, positive offsets, flat chunks
        ([33, 41, 13], [5, 6, 7], [32, 16, 2], [4, 4, 40]),
        ([17, 21, 13], [2, 3, 7], [8, 16, 8], [8, 8, 40]),
        ([9, 11, 7], [1, 1, 3], [4, 4, 4], [16, 16, 80]),
    ],
]

JPEG_TOLERANCE = 3

# ----------------------------------------------------------------------------------------------
# Data


def seed_of(*parts):
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


def smooth_field(shape, nc, rng):
    """Smooth values in [0, 1]: sums of low-frequency waves, different per channel."""
    x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    out = np.empty(tuple(shape) + (nc,), dtype=np.float64)
    for c in range(nc):
        f = np.zeros(shape, dtype=np.float64)
        for _ in range(3):
            k = rng.uniform(0.02, 0.15, size=3)
            ph = rng.uniform(0, 2 * np.pi)
            f += np.sin(k[0] * x + k[1] * y + k[2] * z + ph)
        f += 0.03 * (x + 2 * y + 3 * z) / max(1, sum(shape))
        f -= f.min()
        f /= max(f.max(), 1e-9)
        out[..., c] = f
    return out


def image_data(shape, nc, dtype, rng, noise=0.02, extremes=True):
    """Gradients plus a little noise, spread over the type's range; a few extreme values."""
    dtype = np.dtype(dtype)
    v = smooth_field(shape, nc, rng) + rng.normal(0, noise, size=tuple(shape) + (nc,))
    v = np.clip(v, 0, 1)
    if dtype.kind == "f":
        a = (v * 2000.0 - 1000.0).astype(dtype)
        if extremes:
            flat = a.reshape(-1, order="F")
            specials = [np.nan, np.inf, -np.inf, -0.0, 1e-40 if dtype == np.float32 else 1e-310,
                        np.finfo(dtype).max, np.finfo(dtype).min, 0.1]
            idx = rng.choice(flat.size, size=len(specials), replace=False)
            flat[idx] = np.array(specials, dtype=dtype)
            a = flat.reshape(a.shape, order="F")
        return a
    info = np.iinfo(dtype)
    if dtype.itemsize == 8:
        # Exact 64-bit integers: coarse value from the field, low 16 bits random.
        hi = (v * float(2**47)).astype(np.uint64) << np.uint64(16)
        lo = rng.integers(0, 2**16, size=v.shape, dtype=np.uint64)
        a = (hi | lo).astype(np.uint64)
        if dtype.kind == "i":
            a = (a.astype(np.int64) - np.int64(2**62)) * np.int64(2)  # spread over both signs
            a = a.astype(np.int64)
    else:
        a = np.round(info.min + v * (float(info.max) - float(info.min))).astype(np.int64)
        a = np.clip(a, info.min, info.max).astype(dtype)
    if extremes:
        flat = a.reshape(-1, order="F")
        idx = rng.choice(flat.size, size=4, replace=False)
        flat[idx] = np.array([info.min, info.max, info.min + 1, info.max - 1], dtype=dtype)
        a = flat.reshape(a.shape, order="F")
    return np.asfortranarray(a.astype(dtype))


def label_data(shape, nc, dtype, rng):
    """Blocky segmentation: boxes of a few large ids, one noisy corner (many distinct ids per
    compressed_segmentation block), some zeros."""
    dtype = np.dtype(dtype)
    base = np.uint64(0xFEDC_BA98_7654_0000) if dtype.itemsize == 8 else np.uint64(0x8765_0000)
    out = np.empty(tuple(shape) + (nc,), dtype=dtype)
    for c in range(nc):
        pool = (base + rng.choice(60000, size=24, replace=False).astype(np.uint64) * np.uint64(7)).astype(dtype)
        pool[0] = 0
        bs = rng.integers(3, 10, size=3)
        sh = rng.integers(0, 5, size=3)
        gx, gy, gz = np.meshgrid(*((np.arange(n) + sh[d]) // bs[d] for d, n in enumerate(shape)), indexing="ij")
        cell = (gx * 73856093 + gy * 19349663 + gz * 83492791 + c * 7) % len(pool)
        lab = pool[cell]
        # Noisy corner: per-voxel ids from a pool of 700.
        nx, ny, nz = (max(1, n // 2) for n in shape)
        noisy = (base + np.uint64(1_000_000) + rng.integers(0, 700, size=(nx, ny, nz)).astype(np.uint64)).astype(dtype)
        lab[:nx, :ny, :nz] = noisy
        out[..., c] = lab
    return np.asfortranarray(out)


def make_data(kind, shape, nc, dtype, rng):
    if kind == "labels":
        return label_data(shape, nc, dtype, rng)
    if kind == "jpeg":
        return image_data(shape, nc, dtype, rng, noise=0.01, extremes=False)
    return image_data(shape, nc, dtype, rng)


# ----------------------------------------------------------------------------------------------
# Boxes


def choose_boxes(geom, seed, per_mip=(10, 6, 4)):
    """(mip, lo, hi, kind) boxes inside the bounds of each mip."""
    rng = np.random.default_rng(seed)
    boxes = []
    for mip, (size, off, chunk, _res) in enumerate(geom):
        n = per_mip[min(mip, len(per_mip) - 1)]
        lo0 = np.array(off)
        hi0 = lo0 + np.array(size)
        sz = np.array(size)
        ch = np.array(chunk)
        cand = []
        cand.append((lo0, hi0, "whole"))
        p = lo0 + rng.integers(0, sz)
        cand.append((p, p + 1, "voxel"))
        corner = np.where(rng.integers(0, 2, size=3) == 1, hi0 - 1, lo0)
        cand.append((corner, corner + 1, "corner voxel"))
        cand.append((hi0 - 1, hi0, "last voxel"))
        # A box from a random point to the high corner, and from the low corner to a random point.
        a = lo0 + rng.integers(0, sz)
        cand.append((a, hi0, "to high edge"))
        b = lo0 + 1 + rng.integers(0, sz)
        cand.append((lo0, b, "from low edge"))
        # Exactly one chunk, and one chunk shifted by one voxel (clipped).
        g = rng.integers(0, -(-sz // ch))
        c_lo = lo0 + g * ch
        c_hi = np.minimum(c_lo + ch, hi0)
        cand.append((c_lo, c_hi, "one chunk"))
        s_lo = np.minimum(c_lo + 1, hi0 - 1)
        s_hi = np.minimum(s_lo + ch, hi0)
        cand.append((s_lo, s_hi, "chunk shifted by one"))
        # A slab one voxel thick along a random axis, full extent in the others.
        ax = int(rng.integers(0, 3))
        sl_lo, sl_hi = lo0.copy(), hi0.copy()
        sl_lo[ax] = lo0[ax] + rng.integers(0, sz[ax])
        sl_hi[ax] = sl_lo[ax] + 1
        cand.append((sl_lo, sl_hi, "slab"))
        # A line along x.
        ln_lo = lo0 + rng.integers(0, sz)
        ln_lo[0] = lo0[0]
        ln_hi = ln_lo + 1
        ln_hi[0] = hi0[0]
        cand.append((ln_lo, ln_hi, "x line"))
        while len(cand) < n + 3:
            x0 = lo0 + rng.integers(0, sz)
            x1 = lo0 + rng.integers(0, sz)
            bl, bh = np.minimum(x0, x1), np.maximum(x0, x1) + 1
            cand.append((bl, bh, "random"))
        # Keep the first 3 (whole, voxel, corner), then a seeded choice of the rest.
        rest = cand[3:]
        order = rng.permutation(len(rest))
        chosen = cand[:3] + [rest[i] for i in sorted(order[: max(0, n - 3)])]
        for lo, hi, kind in chosen:
            boxes.append((mip, [int(v) for v in lo], [int(v) for v in hi], kind))
    return boxes


def outside_boxes(geom, seed):
    """Boxes that leave the bounds: at mip 0 partly outside (below and above) and wholly outside;
    at the coarsest mip around the whole volume."""
    rng = np.random.default_rng(seed)
    size, off, chunk, _ = geom[0]
    lo0 = np.array(off)
    hi0 = lo0 + np.array(size)
    out = []
    a = lo0 - rng.integers(1, 6, size=3)
    b = lo0 + rng.integers(1, 6, size=3)
    out.append((0, a.tolist(), b.tolist(), "across low corner"))
    a = hi0 - rng.integers(1, 6, size=3)
    b = hi0 + rng.integers(1, 6, size=3)
    out.append((0, a.tolist(), b.tolist(), "across high corner"))
    last = len(geom) - 1
    size_l, off_l, _, _ = geom[last]
    a = np.array(off_l) - 3
    b = np.array(off_l) + np.array(size_l) + 2
    out.append((last, a.tolist(), b.tolist(), "around the whole volume"))
    a = hi0 + np.array([2, 0, 0])
    a[1:] = lo0[1:]
    b = a + np.array([4, 3, 2])
    out.append((0, a.tolist(), b.tolist(), "wholly outside"))
    return [(m, [int(v) for v in lo], [int(v) for v in hi], k) for m, lo, hi, k in out]


# ----------------------------------------------------------------------------------------------
# Writers


def scale_info(geom_mip, encoding, block, key):
    size, off, chunk, res = geom_mip
    s = {
        "key": key,
        "size": list(size),
        "voxel_offset": list(off),
        "resolution": list(res),
        "chunk_sizes": [list(chunk)],
        "encoding": encoding,
    }
    if encoding == "compressed_segmentation":
        s["compressed_segmentation_block_size"] = list(block)
    return s


def bounds_slices(geom_mip):
    size, off, _, _ = geom_mip
    return tuple(slice(o, o + s) for o, s in zip(off, size))


def write_cv(rel, geom, encoding, dtype, nc, kind, compress, block=None, layer_type=None):
    path = os.path.join(OUT, rel)
    info = {
        "type": layer_type or ("segmentation" if kind == "labels" else "image"),
        "data_type": dtype,
        "num_channels": nc,
        "scales": [scale_info(g, encoding, block, "_".join(str(int(r)) for r in g[3])) for g in geom],
    }
    vol = CloudVolume("file://" + path, info=info, progress=False, compress=compress)
    vol.commit_info()
    for mip, g in enumerate(geom):
        data = make_data(kind, g[0], nc, dtype, np.random.default_rng(seed_of(rel, mip)))
        v = CloudVolume("file://" + path, mip=mip, progress=False, compress=compress)
        v[bounds_slices(g)] = data


def ts_spec(path, mip=None):
    s = {"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": path}}
    if mip is not None:
        s["scale_index"] = mip
    return s


def write_ts(rel, geom, encoding, dtype, nc, kind, block=None, store_fill=True, data_fn=None, sharding=None):
    """`sharding`: per mip, a neuroglancer_uint64_sharded_v1 spec or None (unsharded)."""
    path = os.path.join(OUT, rel)
    for mip, g in enumerate(geom):
        size, off, chunk, res = g
        sm = {"size": list(size), "voxel_offset": list(off), "resolution": list(res),
              "chunk_size": list(chunk), "encoding": encoding}
        if encoding == "compressed_segmentation":
            sm["compressed_segmentation_block_size"] = list(block)
        if sharding and sharding[mip]:
            sm["sharding"] = dict(sharding[mip])
        spec = {
            "driver": "neuroglancer_precomputed",
            "kvstore": {"driver": "file", "path": path},
            "create": True,
            "open": True,
            "multiscale_metadata": {"type": "segmentation" if kind == "labels" else "image",
                                    "data_type": dtype, "num_channels": nc},
            "scale_metadata": sm,
            "store_data_equal_to_fill_value": store_fill,
        }
        t = ts.open(spec).result()
        rng = np.random.default_rng(seed_of(rel, mip))
        data = data_fn(g, rng) if data_fn else make_data(kind, size, nc, dtype, rng)
        t[...] = data


# ----------------------------------------------------------------------------------------------
# Readers (expectations)


def read_cv(rel, mip, lo, hi, options):
    kw = dict(options)
    v = CloudVolume("file://" + os.path.join(OUT, rel), mip=mip, progress=False, **kw)
    try:
        a = v[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    except EmptyVolumeException:
        return "not_found"
    except OutOfBoundsError:
        return "out_of_bounds"
    a = np.asarray(a)
    nc = v.num_channels
    if nc > 1 and all(h - l == 1 for l, h in zip(lo, hi)) and a.shape == (nc, 1, 1, 1):
        # cloud-volume's single-voxel path returns the channels along the first axis; the values
        # are right (checked against a two-voxel read), only the shape is transposed.
        a = a.reshape(1, 1, 1, nc)
        note = ("cloud-volume 12.15.2 returns a single voxel of a multi-channel layer with shape "
                "(channels,1,1,1); make_layers.py reshapes it to (1,1,1,channels)")
        if note not in NOTES:
            NOTES.append(note)
    return a


_TS_CACHE = {}


def read_ts(rel, mip, lo, hi):
    key = (rel, mip)
    if key not in _TS_CACHE:
        _TS_CACHE[key] = ts.open(ts_spec(os.path.join(OUT, rel), mip)).result()
    t = _TS_CACHE[key]
    return t[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].read().result()


def read_points(layer, mip, pts, options, reader):
    """Every channel of each point, shape (n, channels), or the error cloud-volume raised."""
    arr = np.array(pts, dtype=np.int64).reshape(-1, 3)
    if reader == "tensorstore":
        assert not options, "tensorstore expectations take no reader options"
        key = (layer.rel, mip)
        if key not in _TS_CACHE:
            _TS_CACHE[key] = ts.open(ts_spec(os.path.join(OUT, layer.rel), mip)).result()
        t = _TS_CACHE[key]
        # Point-wise indexing (vindex): one (x, y, z) per row, every channel.
        return np.asarray(t.vindex[arr[:, 0], arr[:, 1], arr[:, 2]].read().result())
    v = CloudVolume("file://" + os.path.join(OUT, layer.rel), mip=mip, progress=False, **options)
    nc = layer.nc
    try:
        if nc == 1 and options.get("bounded", True):
            # cloud-volume's own scattered-point reader (single channel: it mis-shapes several).
            # It takes mip-0 coordinates and answers in those of the mip.
            f = np.asarray(v.meta.resolution(mip)) / np.asarray(v.meta.resolution(0))
            assert np.all(f == np.round(f))
            got = v.scattered_points([tuple(int(c) for c in p * f.astype(np.int64)) for p in arr], mip=mip)
            return np.array([got[tuple(int(c) for c in p)] for p in arr], dtype=layer.dtype).reshape(-1, 1)
        out = np.empty((len(arr), nc), dtype=layer.dtype)
        hi_x = layer.geom[mip][1][0] + layer.geom[mip][0][0]
        for i, p in enumerate(arr):
            # cloud-volume's single-voxel path fails for several channels of a sharded scale (a
            # (c,1,1,1) array into a (1,1,1,c) buffer), outside the bounds of a sharded scale with
            # bounded=False (IndexError), and returns one value for several channels of a missing
            # chunk with fill_missing: read two voxels along x, which takes the general path.
            x0 = p[0] if p[0] + 2 <= hi_x or options.get("bounded", True) is False else p[0] - 1
            a = np.asarray(v[x0:x0 + 2, p[1]:p[1] + 1, p[2]:p[2] + 1])
            out[i] = a[p[0] - x0, 0, 0, :]
        note = ("cloud-volume 12.15.2 reads single voxels wrongly in several cases (several channels of a sharded "
                "scale: broadcast error; outside a sharded scale with bounded=False: IndexError; several channels "
                "of a missing chunk with fill_missing: one value); make_layers.py reads points as two voxels along x")
        if note not in NOTES:
            NOTES.append(note)
        return out
    except EmptyVolumeException:
        return "not_found"
    except OutOfBoundsError:
        return "out_of_bounds"


def choose_points(geom_mip, seed, n):
    """Random points inside the bounds of a mip, plus the two corners, a repeated point and a
    cluster of points in one chunk."""
    size, off, chunk, _ = geom_mip
    rng = np.random.default_rng(seed)
    lo = np.array(off)
    hi = lo + np.array(size)
    pts = [lo.copy(), hi - 1]
    pts += list(lo + rng.integers(0, size, size=(n, 3)))
    pts.append(pts[len(pts) // 2].copy())  # the same point twice
    c = lo + rng.integers(0, size)
    cell_lo = lo + (c - lo) // np.array(chunk) * np.array(chunk)
    cell_hi = np.minimum(cell_lo + np.array(chunk), hi)
    pts += list(rng.integers(cell_lo, cell_hi, size=(4, 3)))
    order = rng.permutation(len(pts))
    return [[int(v) for v in pts[i]] for i in order]


class Layer:
    def __init__(self, rel, writer, encoding, dtype, nc, geom, tolerance=0, file_compression=None,
                 block=None, reader=None, reader_note=None, http=True):
        self.rel = rel
        self.writer = writer
        self.encoding = encoding
        self.dtype = dtype
        self.nc = nc
        self.geom = geom
        self.tolerance = tolerance
        self.file_compression = file_compression
        self.block = block
        self.reader = reader or writer
        self.reader_note = reader_note
        self.http = http
        self.boxes = []
        self.encoded = []
        self.sharding = [None] * len(geom)  # per mip: the sharding spec, or None (unsharded)
        self.points = []  # scattered-point sets (cv_scattered_points)
        self.chunks = []  # per mip: the grid cells the writer stored (cv_chunks_exist)
        self.cross = True  # cross-check with the other library

    def read(self, mip, lo, hi, options, reader=None):
        reader = reader or self.reader
        if reader == "cloud-volume":
            return read_cv(self.rel, mip, lo, hi, options)
        assert not options, "tensorstore expectations take no reader options"
        return read_ts(self.rel, mip, lo, hi)

    def add_box(self, mip, lo, hi, kind, options=None, reader=None):
        options = options or {}
        reader = reader or self.reader
        res = self.read(mip, lo, hi, options, reader)
        box = {"mip": mip, "lo": lo, "hi": hi, "kind": kind, "reader": reader}
        if options:
            box["options"] = options
        if isinstance(res, str):
            box["error"] = res
        else:
            shape = tuple(h - l for l, h in zip(lo, hi)) + (self.nc,)
            if tuple(res.shape) != shape or res.dtype != np.dtype(self.dtype):
                raise SystemExit(f"{self.rel}: {reader} returned {res.shape} {res.dtype} for {lo}..{hi}, want {shape}")
            data = np.asarray(res).astype(np.dtype(self.dtype).newbyteorder("<"), copy=False).tobytes(order="F")
            self.save_expected(box, f"{len(self.boxes):03d}.bin", data)
        self.boxes.append(box)
        return res

    def add_points(self, mip, pts, kind, options=None, reader=None):
        """A scattered-point set: every channel of each point read by `reader`, saved point after
        point, channel after channel (the layout of cv_scattered_points), or the error."""
        options = options or {}
        reader = reader or self.reader
        pts = [[int(v) for v in p] for p in pts]
        res = read_points(self, mip, pts, options, reader)
        entry = {"mip": mip, "kind": kind, "reader": reader, "points": pts}
        if options:
            entry["options"] = options
        if isinstance(res, str):
            entry["error"] = res
        else:
            res = np.asarray(res)
            if res.shape != (len(pts), self.nc) or res.dtype != np.dtype(self.dtype):
                raise SystemExit(f"{self.rel}: {reader} returned {res.shape} {res.dtype} for {len(pts)} points")
            data = res.astype(np.dtype(self.dtype).newbyteorder("<"), copy=False).tobytes(order="C")
            self.save_expected(entry, f"points_{len(self.points):02d}.bin", data)
        self.points.append(entry)
        return res

    def save_expected(self, entry, file, data):
        """Write `data` as the expected bytes of `entry` (a box or point set), named `file`."""
        name = f"expected/{self.rel.replace('/', '__')}/{file}"
        full = os.path.join(OUT, name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        entry["expected"] = name
        entry["sha256"] = hashlib.sha256(data).hexdigest()[:16]

    def manifest(self):
        m = {
            "name": self.rel,
            "path": self.rel,
            "writer": self.writer,
            "encoding": self.encoding,
            "dtype": self.dtype,
            "channels": self.nc,
            "tolerance": self.tolerance,
            "file_compression": self.file_compression,
            "http": self.http,
            "mips": [{"size": g[0], "voxel_offset": g[1], "chunk_size": g[2], "resolution": g[3]} for g in self.geom],
            "boxes": self.boxes,
        }
        if self.block:
            m["compressed_segmentation_block_size"] = list(self.block)
        if self.reader_note:
            m["reader_note"] = self.reader_note
        if self.encoded:
            m["encoded_copies"] = self.encoded
        if any(self.sharding):
            m["sharding"] = self.sharding
        if self.points:
            m["points"] = self.points
        if self.chunks:
            m["chunks"] = self.chunks
        return m


# ----------------------------------------------------------------------------------------------
# Cross-checks: where both libraries can read a layer, they must agree (within the tolerance).

CROSS = {"agree": 0, "disagree": [], "failed": []}


def cross_check(layer, other):
    for b in layer.boxes:
        if "expected" not in b or b.get("options") or b["kind"] != "whole":
            continue
        try:
            # cloud-volume prints its own (red) "File Read Error" lines on the way: kept out of
            # the log, where they look like failures; the limitation is recorded below.
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                if other == "cloud-volume":
                    a = read_cv(layer.rel, b["mip"], b["lo"], b["hi"], {})
                else:
                    a = read_ts(layer.rel, b["mip"], b["lo"], b["hi"])
        except Exception as e:  # noqa: BLE001 (a limitation of the other library, not a mismatch)
            CROSS["failed"].append(f"{layer.rel} mip {b['mip']}: {other} cannot read it: {type(e).__name__}: "
                                   + str(e).splitlines()[0][:120])
            continue
        with open(os.path.join(OUT, b["expected"]), "rb") as f:
            want = f.read()
        got = np.asarray(a).astype(np.dtype(layer.dtype).newbyteorder("<")).tobytes(order="F")
        if layer.tolerance:
            d = np.abs(np.frombuffer(got, np.uint8).astype(int) - np.frombuffer(want, np.uint8).astype(int))
            ok = d.max() <= layer.tolerance
        else:
            ok = got == want
        if ok:
            CROSS["agree"] += 1
        else:
            CROSS["disagree"].append(f"{layer.rel} mip {b['mip']}: {layer.reader} and {other} differ")


# ----------------------------------------------------------------------------------------------
# Encoded copies: every file of a plain layer compressed under its plain name.


def compress_bytes(data, enc):
    if enc == "gzip":
        import gzip

        return gzip.compress(data, compresslevel=6, mtime=0)
    if enc == "br":
        import brotli

        return brotli.compress(data, quality=5)
    if enc == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(data)
    raise ValueError(enc)


def make_encoded_copy(layer, enc):
    src = os.path.join(OUT, layer.rel)
    rel = f"encoded/{enc}/{layer.rel}"
    dst = os.path.join(OUT, rel)
    for root, _dirs, files in os.walk(src):
        for fn in files:
            sp = os.path.join(root, fn)
            dp = os.path.join(dst, os.path.relpath(sp, src))
            os.makedirs(os.path.dirname(dp), exist_ok=True)
            with open(sp, "rb") as f:
                data = f.read()
            with open(dp, "wb") as f:
                f.write(compress_bytes(data, enc))
    layer.encoded.append({"content_encoding": enc, "path": rel})


# ----------------------------------------------------------------------------------------------
# Sharded layers (neuroglancer_uint64_sharded_v1, format digest §4)


def shard_spec(hash_, preshift, mb, sb, index_enc, data_enc):
    return {"@type": "neuroglancer_uint64_sharded_v1", "hash": hash_, "preshift_bits": preshift,
            "minishard_bits": mb, "shard_bits": sb, "minishard_index_encoding": index_enc,
            "data_encoding": data_enc}


# FAFB v14's image and segmentation scales use these parameters.
FAFB_SHARDING = shard_spec("identity", 9, 6, 13, "gzip", "gzip")

# Geometries of the sharded layers: odd sizes, zero/positive/negative offsets, chunk grids whose
# Morton codes take 4 to 7 bits (so that preshift+minishard+shard is below, equal to and above it).
SG_A = [([45, 29, 11], [-13, 7, -5], [8, 8, 4], [4, 4, 40]),      # grid 6x4x3, bits 3+2+2
        ([23, 15, 11], [-7, 3, -5], [8, 8, 4], [8, 8, 40])]       # grid 3x2x3, bits 2+1+2
SG_B = [([37, 27, 19], [100, -60, 3], [8, 8, 8], [4, 4, 4]),      # grid 5x4x3
        ([19, 14, 10], [50, -30, 1], [8, 8, 8], [8, 8, 8])]       # grid 3x2x2
SG_C = [([33, 41, 13], [5, 6, 7], [16, 8, 4], [4, 4, 40])]        # grid 3x6x4
SG_D = [([64, 48, 9], [-20, 30, 0], [16, 16, 3], [4, 4, 40]),     # grid 4x3x3 (jpeg)
        ([32, 24, 9], [-10, 15, 0], [16, 16, 3], [8, 8, 40])]     # grid 2x2x3
SG_E = [([29, 35, 17], [-3, -4, -5], [8, 8, 8], [8, 8, 8]),       # grid 4x5x3
        ([15, 18, 17], [-2, -2, -5], [8, 8, 8], [16, 16, 8])]     # grid 2x3x3
SG_FAFB = [([70, 50, 20], [-30, 10, 0], [16, 16, 8], [4, 4, 40]),  # grid 5x4x3: one shard
           ([35, 25, 20], [-15, 5, 0], [8, 8, 8], [8, 8, 40])]

# (name, encoding, dtype, channels, kind, geometry, sharding per mip (None: unsharded), extra)
SHARDED_TS = [
    ("ts/sharded_raw_uint8_c1", "raw", "uint8", 1, "image", SG_A,
     [shard_spec("identity", 2, 2, 3, "raw", "raw"), shard_spec("identity", 1, 1, 3, "gzip", "raw")], {}),
    ("ts/sharded_raw_uint16_c2_murmur", "raw", "uint16", 2, "image", SG_B,
     [shard_spec("murmurhash3_x86_128", 0, 1, 5, "gzip", "gzip"),
      shard_spec("murmurhash3_x86_128", 1, 0, 2, "raw", "gzip")], {}),
    ("ts/sharded_raw_float32_c1_shard0", "raw", "float32", 1, "image", SG_C,
     [shard_spec("identity", 3, 3, 0, "raw", "gzip")], {}),
    ("ts/sharded_raw_uint32_c1_mixed", "raw", "uint32", 1, "image", SG_A,
     # mip 0: 6 shard bits for 7 Morton bits (the top bit is dropped: two chunks per minishard
     # slot, 2-digit file names); mip 1 unsharded.
     [shard_spec("identity", 0, 0, 6, "raw", "raw"), None], {}),
    ("ts/sharded_jpeg_uint8_c1", "jpeg", "uint8", 1, "jpeg", SG_D,
     [shard_spec("identity", 1, 2, 3, "gzip", "raw"), shard_spec("identity", 0, 2, 2, "gzip", "raw")], {}),
    ("ts/sharded_jpeg_uint8_c3", "jpeg", "uint8", 3, "jpeg", SG_D[:1],
     [shard_spec("murmurhash3_x86_128", 0, 2, 2, "raw", "raw")], {}),
    ("ts/sharded_cseg_uint64_c1_murmur", "compressed_segmentation", "uint64", 1, "labels", SG_E,
     [shard_spec("murmurhash3_x86_128", 2, 2, 2, "gzip", "gzip"),
      shard_spec("murmurhash3_x86_128", 0, 3, 6, "raw", "raw")], {"block": [8, 8, 8]}),
    ("ts/sharded_cseg_uint32_c2", "compressed_segmentation", "uint32", 2, "labels", SG_C,
     [shard_spec("identity", 1, 2, 4, "raw", "gzip")], {"block": [4, 8, 2]}),
    ("ts/sharded_cseg_uint64_c1_fafb", "compressed_segmentation", "uint64", 1, "labels", SG_FAFB,
     [FAFB_SHARDING, FAFB_SHARDING], {"block": [8, 8, 8]}),
]

# cloud-volume writes one whole shard per `vol[box] = img`: parameters from its own
# compute_shard_params_for_image, with shards of a few chunks so that there are several.
SHARDED_CV = [
    ("cv/sharded_raw_uint16_c1", "raw", "uint16", 1, "image", SG_A, {}, dict(max_labels_per_minishard=4)),
    ("cv/sharded_cseg_uint64_c1", "compressed_segmentation", "uint64", 1, "labels", SG_E, {"block": [8, 8, 8]},
     dict(max_labels_per_minishard=2)),
    ("cv/sharded_jpeg_uint8_c1", "jpeg", "uint8", 1, "jpeg", SG_D, {}, dict(max_labels_per_minishard=4)),
]


def grid_of(g):
    return [-(-s // c) for s, c in zip(g[0], g[2])]


def morton_cells(grid):
    """compressed Morton code (format digest §4.4) -> grid cell, for every cell of `grid`."""
    bits = [int(n - 1).bit_length() for n in grid]
    out = {}
    for cell in itertools.product(*(range(n) for n in grid)):
        code, j = 0, 0
        for i in range(max(bits)):
            for d in range(3):
                if i < bits[d]:
                    code |= ((cell[d] >> i) & 1) << j
                    j += 1
        out[code] = [int(c) for c in cell]
    return out


def scale_key(rel, mip):
    with open(os.path.join(OUT, rel, "info")) as f:
        return json.load(f)["scales"][mip]["key"]


def stored_cells(layer, mip):
    """The grid cells whose chunk the writer stored, as the writing library lists them: the
    sharded kvstore's keys (tensorstore), the labels of every shard file (cloud-volume), or the
    chunk files (unsharded; a zero-byte file counts as stored)."""
    g = layer.geom[mip]
    key = scale_key(layer.rel, mip)
    d = os.path.join(OUT, layer.rel, key)
    spec = layer.sharding[mip]
    if spec is None:
        cells = []
        for fn in os.listdir(d):
            name = fn
            for suf in (".gz", ".br", ".zstd"):
                if name.endswith(suf):
                    name = name[: -len(suf)]
            lo = [int(p.split("-")[0]) if not p.startswith("-") else -int(p[1:].split("-")[0])
                  for p in name.split("_")]
            cells.append([(lo[i] - g[1][i]) // g[2][i] for i in range(3)])
        return sorted(cells), "chunk files"
    cells_of = morton_cells(grid_of(g))
    if layer.writer == "tensorstore":
        kv = ts.KvStore.open({"driver": "neuroglancer_uint64_sharded", "base": {"driver": "file", "path": d + "/"},
                              "metadata": spec}).result()
        ids = [int.from_bytes(k, "big") for k in kv.list().result()]
        how = "tensorstore neuroglancer_uint64_sharded kvstore list"
    else:
        reader = CloudVolume("file://" + os.path.join(OUT, layer.rel), mip=mip, progress=False).image.shard_reader(mip)
        ids = []
        for fn in os.listdir(d):
            ids += [int(i) for i in reader.list_labels(fn, path=key)]
        how = "cloud-volume ShardReader.list_labels"
    return sorted(cells_of[i] for i in ids), how


def add_chunks(layer, mips=None):
    for mip in (range(len(layer.geom)) if mips is None else mips):
        cells, how = stored_cells(layer, mip)
        layer.chunks.append({"mip": mip, "grid": grid_of(layer.geom[mip]), "present": cells, "source": how})


def write_cv_sharded(rel, geom, encoding, dtype, nc, kind, block, shard_kw):
    """A sharded layer written by cloud-volume, one `vol[shard box] = img` per shard."""
    from cloudvolume.datasource.precomputed.sharding import (compute_shard_params_for_image,
                                                             image_shard_shape_from_spec)
    path = os.path.join(OUT, rel)
    specs = []
    for size, _off, chunk, _res in geom:
        item = np.dtype(dtype).itemsize * nc * int(np.prod(chunk))
        sp = compute_shard_params_for_image(size, chunk, encoding, dtype, uncompressed_shard_bytesize=8 * item,
                                            **shard_kw).to_dict()
        specs.append({k: (int(v) if isinstance(v, np.integer) else v) for k, v in sp.items()})
    scales = []
    for m, g in enumerate(geom):
        s = scale_info(g, encoding, block, "_".join(str(int(r)) for r in g[3]))
        s["sharding"] = specs[m]
        scales.append(s)
    info = {"type": "segmentation" if kind == "labels" else "image", "data_type": dtype, "num_channels": nc,
            "scales": scales}
    CloudVolume("file://" + path, info=info, progress=False, compress=False).commit_info()
    for mip, g in enumerate(geom):
        size, off, chunk, _ = g
        data = make_data(kind, size, nc, dtype, np.random.default_rng(seed_of(rel, mip)))
        v = CloudVolume("file://" + path, mip=mip, progress=False, compress=False)
        shape = [int(s) for s in image_shard_shape_from_spec(specs[mip], size, chunk)]
        for idx in itertools.product(*(range(-(-s // h)) for s, h in zip(size, shape))):
            r = [i * h for i, h in zip(idx, shape)]
            q = [min(a + h, s) for a, h, s in zip(r, shape, size)]
            v[tuple(slice(o + a, o + b) for o, a, b in zip(off, r, q))] = \
                np.asfortranarray(data[r[0]:q[0], r[1]:q[1], r[2]:q[2]])
    return specs


def sharded_boxes_and_points(layer):
    for mip, lo, hi, k in choose_boxes(layer.geom, seed_of(layer.rel, "boxes"), per_mip=(10, 6)):
        layer.add_box(mip, lo, hi, k)
    for mip, g in enumerate(layer.geom):
        layer.add_points(mip, choose_points(g, seed_of(layer.rel, "points", mip), 30 if mip == 0 else 12),
                         "random, corners, a repeat, a cluster in one chunk")


def no_empty_chunks(a, chunk):
    """tensorstore omits a sharded chunk equal to the fill value (0) whatever
    store_data_equal_to_fill_value says; give every chunk of `a` a non-zero voxel so that these
    layers store all their chunks (the missing-chunk layer below omits some on purpose)."""
    for idx in itertools.product(*(range(-(-s // c)) for s, c in zip(a.shape[:3], chunk))):
        sl = tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, chunk))
        if not a[sl].any():
            a[tuple(i * c for i, c in zip(idx, chunk)) + (0,)] = 1
    return a


def make_sharded_layers():
    NOTES.append("tensorstore 0.1.86 omits all-zero chunks of sharded scales even with store_data_equal_to_fill_value "
                 "true; make_layers.py gives every chunk of the complete sharded layers a non-zero voxel")
    layers = []
    for rel, enc, dt, nc, kind, geom, shardings, extra in SHARDED_TS:
        block = extra.get("block")

        def data_fn(g, rng, kind=kind, nc=nc, dt=dt):
            return no_empty_chunks(make_data(kind, g[0], nc, dt, rng), g[2])

        write_ts(rel, geom, enc, dt, nc, kind, block, sharding=shardings, data_fn=data_fn)
        layer = Layer(rel, "tensorstore", enc, dt, nc, geom, JPEG_TOLERANCE if enc == "jpeg" else 0, None, block)
        layer.sharding = list(shardings)
        sharded_boxes_and_points(layer)
        add_chunks(layer)
        layers.append(layer)
    for rel, enc, dt, nc, kind, geom, extra, shard_kw in SHARDED_CV:
        block = extra.get("block")
        specs = write_cv_sharded(rel, geom, enc, dt, nc, kind, block, shard_kw)
        layer = Layer(rel, "cloud-volume", enc, dt, nc, geom, JPEG_TOLERANCE if enc == "jpeg" else 0, None, block)
        layer.sharding = specs
        sharded_boxes_and_points(layer)
        add_chunks(layer)
        layers.append(layer)

    # Points that leave the bounds, against cloud-volume's reads of the voxels: refused while
    # bounded, background without.
    for layer in layers:
        if layer.rel not in ("ts/sharded_raw_uint8_c1", "cv/sharded_cseg_uint64_c1", "ts/sharded_raw_uint16_c2_murmur"):
            continue
        size, off, _, _ = layer.geom[0]
        inside = choose_points(layer.geom[0], seed_of(layer.rel, "outside points"), 4)
        outside = [[off[0] - 1, off[1], off[2]], [off[0] + size[0], off[1] + size[1] - 1, off[2] + 2],
                   [off[0] + 3, off[1] + 2, off[2] + size[2] + 5]]
        pts = inside[:2] + outside[:1] + inside[2:] + outside[1:]
        layer.add_points(0, pts, "inside and outside the bounds", {}, reader="cloud-volume")
        bg = {"uint8": 200, "uint16": 4321, "uint64": 123456789}[layer.dtype]
        layer.add_points(0, pts, "inside and outside the bounds", {"bounded": False, "background_color": bg},
                         reader="cloud-volume")

    # The worked example of the format digest §4.6, byte for byte as tensorstore writes it.
    rel = "ts/sharded_worked_example"
    geom = [([10, 7, 5], [100, 200, 300], [4, 4, 4], [4, 4, 40])]

    def markers(g, _rng):
        x, y, z = np.meshgrid(*(np.arange(n) for n in g[0]), indexing="ij")
        return (16 * (x // 4) + 4 * (y // 4) + (z // 4) + 1).astype(np.uint8)[..., None]

    spec = shard_spec("identity", 1, 1, 2, "raw", "raw")
    write_ts(rel, geom, "raw", "uint8", 1, "image", sharding=[spec], data_fn=markers)
    layer = Layer(rel, "tensorstore", "raw", "uint8", 1, geom)
    layer.sharding = [spec]
    layer.add_box(0, [100, 200, 300], [110, 207, 305], "whole")
    layer.add_points(0, choose_points(geom[0], seed_of(rel, "points"), 10), "random")
    add_chunks(layer)
    layers.append(layer)

    # Missing chunks and a missing shard: tensorstore omits chunks equal to the fill value (the
    # low-x third of the volume is 0), and one shard file is deleted. fill_missing reads them as
    # background; without it cloud-volume refuses boxes and points that touch them.
    rel = "ts/sharded_missing_raw_uint16_c1"
    geom = SG_B
    shardings = [shard_spec("identity", 0, 1, 3, "raw", "gzip"), shard_spec("murmurhash3_x86_128", 0, 1, 1, "gzip", "raw")]

    def sparse_image(g, rng):
        a = image_data(g[0], 1, "uint16", rng)
        a[: g[2][0] * 2] = 0  # two columns of chunks all zero
        a[a == 0] = 1  # no stray zero elsewhere, so that only those columns are all-fill
        a[: g[2][0] * 2] = 0
        return a

    write_ts(rel, geom, "raw", "uint16", 1, "image", store_fill=False, data_fn=sparse_image, sharding=shardings)
    layer = Layer(rel, "tensorstore", "raw", "uint16", 1, geom, reader="cloud-volume")
    layer.sharding = shardings
    layer.cross = False
    key0 = scale_key(rel, 0)
    files = sorted(os.listdir(os.path.join(OUT, rel, key0)))
    gone = files[len(files) // 2]
    os.remove(os.path.join(OUT, rel, key0, gone))
    NOTES.append(f"{rel}: all-zero chunks omitted by tensorstore (store_data_equal_to_fill_value false); "
                 f"shard file {key0}/{gone} deleted")
    add_chunks(layer)
    present = {tuple(c) for c in layer.chunks[0]["present"]}
    grid = grid_of(geom[0])
    cells_of = morton_cells(grid)
    spec0 = shardings[0]
    shard_of = {tuple(c): (i >> spec0["preshift_bits"] >> spec0["minishard_bits"]) & ((1 << spec0["shard_bits"]) - 1)
                for i, c in cells_of.items()}
    gone_shard = int(gone.split(".")[0], 16)
    size, off, ch, _ = geom[0]

    def cell_box(c, shrink=0):
        lo = [off[d] + c[d] * ch[d] + shrink for d in range(3)]
        hi = [min(off[d] + (c[d] + 1) * ch[d], off[d] + size[d]) - shrink for d in range(3)]
        return lo, hi

    omitted = next(c for c in sorted(cells_of.values()) if tuple(c) not in present and shard_of[tuple(c)] != gone_shard)
    in_gone = next(c for c in sorted(cells_of.values()) if shard_of[tuple(c)] == gone_shard and c[0] >= 2)
    kept = next(c for c in sorted(cells_of.values()) if tuple(c) in present)
    special = [(cell_box(omitted, 1), "inside an omitted chunk"), (cell_box(in_gone, 1), "inside a chunk of the deleted shard"),
               (cell_box(kept), "one stored chunk"),
               (([off[0] + 10, off[1] + 3, off[2] + 2], [off[0] + 30, off[1] + 20, off[2] + 17]), "across missing and stored")]
    for opts in ({}, {"fill_missing": True}, {"fill_missing": True, "background_color": 9},
                 {"bounded": False, "fill_missing": True, "background_color": 9}):
        for (lo, hi), k in special:
            layer.add_box(0, lo, hi, k, opts)
        for mip, lo, hi, k in choose_boxes(geom, seed_of(rel, "boxes"), per_mip=(6, 4)):
            layer.add_box(mip, lo, hi, k, opts)
        layer.add_box(0, [off[0] - 3, off[1] - 2, off[2]], [off[0] + 12, off[1] + 9, off[2] + 5], "outside and across missing", opts)
    stored_pts = [[int(v) for v in np.array(off) + np.array(kept) * np.array(ch) + np.array(d)]
                  for d in ([0, 0, 0], [1, 2, 3], [7, 7, 7], [3, 0, 5])]
    layer.add_points(0, stored_pts, "in a stored chunk", {}, reader="cloud-volume")
    pts = choose_points(geom[0], seed_of(rel, "points"), 24)
    pts += [cell_box(omitted)[0], cell_box(in_gone)[0]]
    for opts in ({}, {"fill_missing": True}, {"fill_missing": True, "background_color": 9}):
        layer.add_points(0, pts, "random, and in missing chunks", opts, reader="cloud-volume")
    layer.add_points(1, choose_points(geom[1], seed_of(rel, "points", 1), 12), "random", {"fill_missing": True},
                     reader="cloud-volume")
    # tensorstore reads the missing chunks as 0, as cloud-volume's fill_missing does.
    for b in layer.boxes:
        if b.get("options") == {"fill_missing": True} and "expected" in b:
            a = read_ts(rel, b["mip"], b["lo"], b["hi"])
            with open(os.path.join(OUT, b["expected"]), "rb") as f:
                if np.asarray(a).tobytes(order="F") != f.read():
                    CROSS["disagree"].append(f"{rel}: tensorstore and cloud-volume (fill_missing) differ")
                else:
                    CROSS["agree"] += 1
    layers.append(layer)

    # Where both libraries read a point set, they must agree.
    for layer in layers:
        # (Single-channel layers: cloud-volume reads several channels voxel by voxel, slowly.)
        if layer.encoding == "jpeg" or layer.rel.startswith("ts/sharded_missing") or layer.nc > 1:
            continue
        other = "cloud-volume" if layer.writer == "tensorstore" else "tensorstore"
        for p in layer.points:
            if p.get("options") or "expected" not in p:
                continue
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    got = np.asarray(read_points(layer, p["mip"], p["points"], {}, other))
            except Exception as e:  # noqa: BLE001
                CROSS["failed"].append(f"{layer.rel} points: {other} cannot read them: {type(e).__name__}")
                continue
            with open(os.path.join(OUT, p["expected"]), "rb") as f:
                want = f.read()
            if isinstance(got, str) or got.astype(np.dtype(layer.dtype).newbyteorder("<")).tobytes() != want:
                CROSS["disagree"].append(f"{layer.rel} points mip {p['mip']}: {layer.reader} and {other} differ")
            else:
                CROSS["agree"] += 1
    return layers


# ----------------------------------------------------------------------------------------------
# The layer set


def layers_spec():
    """(writer, encoding, dtype, channels, kind, extra) for every regular layer."""
    specs = []
    raw_types = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "float32"]
    multi = {"uint8": 3, "int8": 2, "uint16": 2, "int16": 3, "uint32": 2, "int32": 3, "uint64": 2, "float32": 3,
             "int64": 2, "float64": 2}
    for dt in raw_types + ["int64", "float64"]:
        for nc in (1, multi[dt]):
            specs.append(("cv", "raw", dt, nc, "image", {}))
    for dt in raw_types:
        for nc in (1, multi[dt]):
            specs.append(("ts", "raw", dt, nc, "image", {}))
    for nc in (1, 3):
        specs.append(("cv", "jpeg", "uint8", nc, "jpeg", {}))
        specs.append(("ts", "jpeg", "uint8", nc, "jpeg", {}))
    for nc in (1, 2, 3, 4):
        specs.append(("ts", "png", "uint8", nc, "image", {}))
        specs.append(("ts", "png", "uint16", nc, "image", {}))
        if HAVE_PYSPNG:
            specs.append(("cv", "png", "uint8", nc, "image", {}))
    if HAVE_PYSPNG:
        specs.append(("cv", "png", "uint16", 2, "image", {}))  # pyspng writes 16-bit with 2 (and 4) channels only
    for dt in ("uint32", "uint64"):
        for block in ([8, 8, 8], [4, 8, 2]):
            specs.append(("cv", "compressed_segmentation", dt, 1, "labels", {"block": block}))
        for nc in (1, 2):
            for block in ([8, 8, 8], [4, 8, 2], [3, 5, 7]):
                if nc == 2 and block == [3, 5, 7]:
                    continue
                specs.append(("ts", "compressed_segmentation", dt, nc, "labels", {"block": block}))
    return specs


def layer_name(writer, enc, dt, nc, extra):
    short = {"compressed_segmentation": "cseg"}.get(enc, enc)
    name = f"{writer}/{short}_{dt}_c{nc}"
    if "block" in extra:
        name += "_b" + "x".join(map(str, extra["block"]))
    if extra.get("compress") not in (None, "gzip"):
        name += "_" + str(extra["compress"]).lower()
    return name


def main():
    global OUT
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    OUT = os.path.abspath(sys.argv[1])
    t0 = time.time()
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)

    layers = []
    specs = layers_spec()
    # cloud-volume's file:// compression variants: plain (compress=False) and brotli/zstd.
    specs.append(("cv", "raw", "uint16", 2, "image", {"compress": False}))
    specs.append(("cv", "raw", "int32", 1, "image", {"compress": "br"}))
    specs.append(("cv", "raw", "float32", 2, "image", {"compress": "zstd"}))
    specs.append(("cv", "compressed_segmentation", "uint64", 1, "labels", {"block": [8, 8, 8], "compress": "br"}))
    specs.append(("cv", "compressed_segmentation", "uint32", 1, "labels", {"block": [4, 8, 2], "compress": "zstd"}))
    specs.append(("cv", "compressed_segmentation", "uint64", 1, "labels", {"block": [8, 8, 8], "compress": False}))

    for i, (writer, enc, dt, nc, kind, extra) in enumerate(specs):
        geom = GEOMETRIES[i % len(GEOMETRIES)]
        rel = layer_name(writer, enc, dt, nc, extra)
        block = extra.get("block")
        tol = JPEG_TOLERANCE if enc == "jpeg" else 0
        if writer == "cv":
            compress = extra.get("compress", "gzip" if enc in ("raw", "compressed_segmentation") else None)
            write_cv(rel, geom, enc, dt, nc, kind, compress, block)
            suffix = {"gzip": "gzip", "br": "br", "zstd": "zstd"}.get(compress) if compress else None
            reader, note = "cloud-volume", None
            if enc in ("jpeg", "png") and nc > 1:
                reader = "tensorstore"
                note = ("cloud-volume 12.15.2 decodes multi-channel %s wrongly (reshapes interleaved pixels as "
                        "planar); expectations are tensorstore's read of this cloud-volume layer" % enc)
            layer = Layer(rel, "cloud-volume", enc, dt, nc, geom, tol, suffix, block, reader, note,
                          http=suffix in (None, "gzip"))
        else:
            write_ts(rel, geom, enc, dt, nc, kind, block)
            layer = Layer(rel, "tensorstore", enc, dt, nc, geom, tol, None, block)
        for mip, lo, hi, k in choose_boxes(geom, seed_of(rel, "boxes")):
            layer.add_box(mip, lo, hi, k)
        layers.append(layer)

    # Sharded layers (tensorstore and cloud-volume), with boxes, scattered points and the chunks
    # each writer stored.
    layers += make_sharded_layers()

    # Out-of-bounds and background behaviour, from cloud-volume, on a spread of layers.
    bg_for = {"uint8": 200, "int8": -3, "uint16": 4321, "int16": -1234, "uint32": 7, "int32": -70000,
              "uint64": 123456789, "int64": -5, "float32": 0.5, "float64": -2.25}
    for layer in layers:
        if not layer.cross:
            continue
        # Layers cloud-volume decodes correctly (not multi-channel jpeg/png; jpeg is lossy anyway),
        # not all of them: every multi-channel raw and every non-raw cloud-volume layer, the
        # single-channel raw layers of the unusual types, and every tensorstore raw layer.
        cv_decodes = (layer.reader == "cloud-volume" and layer.encoding != "jpeg") or \
            (layer.writer == "tensorstore" and layer.encoding == "raw")
        wanted = layer.encoding != "raw" or layer.nc > 1 or layer.writer == "tensorstore" or \
            layer.dtype in ("int8", "uint64", "int64", "float64")
        if not (cv_decodes and wanted):
            continue
        obs = outside_boxes(layer.geom, seed_of(layer.rel, "outside"))
        bg = bg_for[layer.dtype]
        # bounded (the default): refused
        m, lo, hi, k = obs[0]
        layer.add_box(m, lo, hi, k + ", bounded", reader="cloud-volume")
        for m, lo, hi, k in obs:
            layer.add_box(m, lo, hi, k, options={"bounded": False, "background_color": bg}, reader="cloud-volume")
        m, lo, hi, k = obs[2]
        layer.add_box(m, lo, hi, k + ", default background", options={"bounded": False}, reader="cloud-volume")

    # Missing chunks (cloud-volume layer, plain files): one chunk deleted and one chunk zero bytes
    # at mip 0, one chunk deleted at mip 1.
    geom = GEOMETRIES[0]
    rel = "cv/missing_raw_uint16_c2"
    write_cv(rel, geom, "raw", "uint16", 2, "image", False)
    layer = Layer(rel, "cloud-volume", "raw", "uint16", 2, geom, 0, None)
    key0 = "_".join(str(int(r)) for r in geom[0][3])
    key1 = "_".join(str(int(r)) for r in geom[1][3])
    size, off, ch, _ = geom[0]
    # mip 0 grid is 3x2x3 cells of 16x16x4: delete cell (1,1,1), empty cell (0,0,2).

    def cell_name(g, cell):
        size, off, ch, _ = g
        parts = []
        for d in range(3):
            lo = off[d] + cell[d] * ch[d]
            hi = min(lo + ch[d], off[d] + size[d])
            parts.append(f"{lo}-{hi}")
        return "_".join(parts)

    os.remove(os.path.join(OUT, rel, key0, cell_name(geom[0], (1, 1, 1))))
    open(os.path.join(OUT, rel, key0, cell_name(geom[0], (0, 0, 2))), "wb").close()
    os.remove(os.path.join(OUT, rel, key1, cell_name(geom[1], (0, 1, 1))))
    NOTES.append(f"{rel}: chunks {key0}/{cell_name(geom[0], (1, 1, 1))} and {key1}/{cell_name(geom[1], (0, 1, 1))} "
                 f"deleted, {key0}/{cell_name(geom[0], (0, 0, 2))} is zero bytes (cloud-volume reads it as missing)")
    lo0, hi0 = off, [o + s for o, s in zip(off, size)]
    # A box inside the deleted cell (1,1,1) and one inside the empty cell (0,0,2).
    in_del = ([off[0] + 16 + 3, off[1] + 16 + 2, off[2] + 4 + 1], [off[0] + 16 + 9, off[1] + 16 + 7, off[2] + 4 + 3])
    in_empty = ([off[0] + 2, off[1] + 5, off[2] + 8], [off[0] + 6, off[1] + 9, off[2] + 10])
    clear = ([off[0] + 33, off[1], off[2]], [off[0] + 40, off[1] + 10, off[2] + 4])  # cell (2,0,0)
    across = ([off[0] + 10, off[1] + 10, off[2] + 2], [off[0] + 30, off[1] + 20, off[2] + 9])
    mip1_all = (geom[1][1], [o + s for o, s in zip(geom[1][1], geom[1][0])])
    for opts in ({}, {"fill_missing": True}, {"fill_missing": True, "background_color": 7},
                 {"bounded": False, "background_color": 9}, {"bounded": False, "fill_missing": True, "background_color": 9}):
        layer.add_box(0, lo0, hi0, "whole", opts)
        layer.add_box(0, *in_del, "inside a deleted chunk", opts)
        layer.add_box(0, *in_empty, "inside a zero-byte chunk", opts)
        layer.add_box(0, *clear, "clear of missing chunks", opts)
        layer.add_box(0, *across, "across a deleted chunk", opts)
        layer.add_box(1, *mip1_all, "whole", opts)
        layer.add_box(0, [lo0[0] - 4, lo0[1] - 2, lo0[2] - 1], [lo0[0] + 20, lo0[1] + 20, lo0[2] + 6],
                      "outside and across the deleted and the zero-byte chunk", opts)
    layers.append(layer)

    # tensorstore omits chunks equal to the fill value: a sparse layer (some all-zero chunks),
    # read as 0 with fill_missing (and by tensorstore), refused without it (by cloud-volume).
    def sparse_data(g, rng):
        size = g[0]
        a = label_data(size, 1, "uint64", rng)
        a[: size[0] // 2, :, :, :] = 0  # the low-x half of the cells is zero
        return a

    geom = GEOMETRIES[1]
    rel = "ts/sparse_cseg_uint64_c1"
    write_ts(rel, geom, "compressed_segmentation", "uint64", 1, "labels", [8, 8, 8], store_fill=False, data_fn=sparse_data)
    layer = Layer(rel, "tensorstore", "compressed_segmentation", "uint64", 1, geom, 0, None, [8, 8, 8])
    for mip, lo, hi, k in choose_boxes(geom, seed_of(rel, "boxes")):
        layer.add_box(mip, lo, hi, k + ", fill_missing", {"fill_missing": True}, reader="cloud-volume")
        layer.add_box(mip, lo, hi, k, {}, reader="cloud-volume")
    # tensorstore's reads (missing = 0) must equal cloud-volume's fill_missing reads.
    for b in list(layer.boxes):
        if b.get("options") == {"fill_missing": True} and "expected" in b:
            a = read_ts(rel, b["mip"], b["lo"], b["hi"])
            with open(os.path.join(OUT, b["expected"]), "rb") as f:
                if np.asarray(a).tobytes(order="F") != f.read():
                    CROSS["disagree"].append(f"{rel}: tensorstore and cloud-volume (fill_missing) differ")
                else:
                    CROSS["agree"] += 1
    layers.append(layer)

    # Scattered points and stored chunks of some unsharded layers (raw, compressed_segmentation,
    # png and jpeg; missing and zero-byte chunks; chunks tensorstore omitted).
    named = {l.rel: l for l in layers}
    for rel in ("ts/raw_uint16_c2", "cv/cseg_uint64_c1_b8x8x8", "ts/png_uint8_c3", "cv/jpeg_uint8_c1"):
        layer = named[rel]
        for mip, g in enumerate(layer.geom):
            layer.add_points(mip, choose_points(g, seed_of(rel, "points", mip), 20 if mip == 0 else 8), "random")
        add_chunks(layer, [0])
    layer = named["cv/missing_raw_uint16_c2"]
    g = layer.geom[0]
    pts = choose_points(g, seed_of(layer.rel, "points"), 20)
    pts += [in_del[0], in_empty[0]]  # a deleted and a zero-byte chunk
    for opts in ({}, {"fill_missing": True}, {"fill_missing": True, "background_color": 7}):
        layer.add_points(0, pts, "random, and in a deleted and a zero-byte chunk", opts)
    layer.add_points(0, [clear[0], [clear[0][0] + 3, clear[0][1] + 4, clear[0][2] + 1]], "clear of missing chunks", {})
    add_chunks(layer)
    layer = named["ts/sparse_cseg_uint64_c1"]
    for mip, g in enumerate(layer.geom):
        pts = choose_points(g, seed_of(layer.rel, "points", mip), 16)
        layer.add_points(mip, pts, "random", {}, reader="cloud-volume")
        filled = layer.add_points(mip, pts, "random", {"fill_missing": True}, reader="cloud-volume")
        # tensorstore reads the omitted chunks as 0, as fill_missing does.
        if np.array_equal(np.asarray(read_points(layer, mip, pts, {}, "tensorstore")), filled):
            CROSS["agree"] += 1
        else:
            CROSS["disagree"].append(f"{layer.rel} points mip {mip}: tensorstore and cloud-volume (fill_missing) differ")
    add_chunks(layer)

    # Cross-checks: cloud-volume layers with plain files through tensorstore, tensorstore layers
    # through cloud-volume (where cloud-volume decodes correctly).
    for layer in layers:
        if layer.rel.startswith("cv/missing") or layer.rel.startswith("ts/sparse") or not layer.cross:
            continue
        if layer.writer == "cloud-volume" and layer.file_compression is None and layer.reader == "cloud-volume" \
                and layer.dtype not in ("int64", "float64"):
            cross_check(layer, "tensorstore")
        elif layer.writer == "tensorstore" and not (layer.encoding in ("jpeg", "png") and layer.nc > 1) \
                and not (layer.encoding == "png" and not HAVE_PYSPNG) \
                and not (layer.encoding == "compressed_segmentation" and layer.nc > 1):
            cross_check(layer, "cloud-volume")

    # Content-Encoding copies of a few plain layers.
    by_name = {l.rel: l for l in layers}
    for rel, encs in [
        ("ts/raw_uint16_c2", ("gzip", "br", "zstd")),
        ("ts/cseg_uint64_c2_b4x8x2", ("gzip", "br", "zstd")),
        ("ts/png_uint8_c3", ("gzip",)),
        ("ts/jpeg_uint8_c1", ("br",)),
        ("ts/raw_float32_c1", ("zstd",)),
        ("cv/raw_uint16_c2_false", ("br", "zstd")),
    ]:
        for enc in encs:
            make_encoded_copy(by_name[rel], enc)

    if CROSS["disagree"]:
        NOTES.append("cross-check disagreements: " + "; ".join(CROSS["disagree"]))
        print("WARNING:", *CROSS["disagree"], sep="\n  ", file=sys.stderr)
    if not HAVE_PYSPNG:
        NOTES.append("pyspng-seunglab is not installed: no cloud-volume png layers (cloud-volume needs it to write png)")

    manifest = {
        "format": 1,
        "generated_by": {
            "script": "tests/reference/make_layers.py",
            "cloud-volume": md.version("cloud-volume"),
            "tensorstore": md.version("tensorstore"),
            "numpy": np.__version__,
        },
        "layout": "expected files: raw little-endian elements, Fortran order x, y, z, channel (cv_cutout_into)",
        "errors": {"not_found": "cloud-volume raised EmptyVolumeException (CV_ERR_NOT_FOUND)",
                   "out_of_bounds": "cloud-volume raised OutOfBoundsError (CV_ERR_OUT_OF_BOUNDS)"},
        "cross_checks": CROSS,
        "notes": NOTES,
        "layers": [l.manifest() for l in layers],
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    nboxes = sum(len(l.boxes) for l in layers)
    total = 0
    for root, _d, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(root, fn)) for fn in files)
    npoints = sum(len(p["points"]) for l in layers for p in l.points)
    nsharded = sum(1 for l in layers if any(l.sharding))
    print(f"make_layers: {len(layers)} layers ({nsharded} sharded), {nboxes} boxes, {npoints} points, "
          f"{CROSS['agree']} cross-checks agree, "
          f"{len(CROSS['disagree'])} disagree, {total / 1e6:.1f} MB, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
