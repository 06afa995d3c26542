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

OUTDIR/encoded/{gzip,br,zstd}/... hold copies of some plain layers with every file (info too)
compressed under its plain name, to be served with a Content-Encoding header (tests/support/nginx.rs).

Everything is deterministic: the same script gives the same bytes (except for JPEG encoders,
which are deterministic too in practice). The top-level directory under OUTDIR is the "bucket"
for gs:// and s3:// tests.
"""

import hashlib
import importlib.metadata as md
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


def write_ts(rel, geom, encoding, dtype, nc, kind, block=None, store_fill=True, data_fn=None):
    path = os.path.join(OUT, rel)
    for mip, g in enumerate(geom):
        size, off, chunk, res = g
        sm = {"size": list(size), "voxel_offset": list(off), "resolution": list(res),
              "chunk_size": list(chunk), "encoding": encoding}
        if encoding == "compressed_segmentation":
            sm["compressed_segmentation_block_size"] = list(block)
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
            name = f"expected/{self.rel.replace('/', '__')}/{len(self.boxes):03d}.bin"
            full = os.path.join(OUT, name)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(data)
            box["expected"] = name
            box["sha256"] = hashlib.sha256(data).hexdigest()[:16]
        self.boxes.append(box)
        return res

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
        return m


# ----------------------------------------------------------------------------------------------
# Cross-checks: where both libraries can read a layer, they must agree (within the tolerance).

CROSS = {"agree": 0, "disagree": [], "failed": []}


def cross_check(layer, other):
    for b in layer.boxes:
        if "expected" not in b or b.get("options") or b["kind"] != "whole":
            continue
        try:
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

    # Out-of-bounds and background behaviour, from cloud-volume, on a spread of layers.
    bg_for = {"uint8": 200, "int8": -3, "uint16": 4321, "int16": -1234, "uint32": 7, "int32": -70000,
              "uint64": 123456789, "int64": -5, "float32": 0.5, "float64": -2.25}
    for layer in layers:
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

    # Cross-checks: cloud-volume layers with plain files through tensorstore, tensorstore layers
    # through cloud-volume (where cloud-volume decodes correctly).
    for layer in layers:
        if layer.rel.startswith("cv/missing") or layer.rel.startswith("ts/sparse"):
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
    print(f"make_layers: {len(layers)} layers, {nboxes} boxes, {CROSS['agree']} cross-checks agree, "
          f"{len(CROSS['disagree'])} disagree, {total / 1e6:.1f} MB, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
