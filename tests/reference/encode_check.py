#!/usr/bin/env python3
"""Reference side of tests/encode.rs (the chunk encoders of src/codec/encode.rs).

Usage:
  target/venv/bin/python tests/reference/encode_check.py write OUTDIR
      Write compressed_segmentation volumes with tensorstore (unsharded: every chunk is a plain
      file holding the canonical encoding), each beside its voxels (volume.bin: the whole
      volume, raw little-endian, Fortran order x, y, z, channel), and JPEG references from
      simplejpeg (cloud-volume's encoder) with their pixels. OUTDIR/manifest.json lists it all.
  target/venv/bin/python tests/reference/encode_check.py read DIR
      Read every layer listed in DIR/manifest.json (written by the Rust test from our encoders)
      with tensorstore, and with cloud-volume where asked, and compare with the expected voxels;
      write the results to DIR/results.json (cloud-volume prints its errors on stdout).

Everything is deterministic (fixed seeds).
"""

import json
import os
import shutil
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import tensorstore as ts  # noqa: E402

# name, data type, channels, size, voxel offset, chunk size, block size, noise amplitudes
CSEG_CASES = [
    ("u32_20x12x9_b8", "uint32", 1, [20, 12, 9], [0, 0, 0], [20, 12, 9], [8, 8, 8]),
    ("u64_37x29x11_b8", "uint64", 1, [37, 29, 11], [-5, 3, 0], [16, 16, 8], [8, 8, 8]),
    ("u64_13x7x5_3ch_b8", "uint64", 3, [13, 7, 5], [0, 0, 0], [13, 7, 5], [8, 8, 8]),
    ("u32_30x20x10_2ch_b435", "uint32", 2, [30, 20, 10], [1, 2, 3], [16, 16, 16], [4, 3, 5]),
    ("u64_64x64x16_b16x16x4", "uint64", 1, [64, 64, 16], [0, 0, 0], [64, 64, 16], [16, 16, 4]),
    ("u32_9x10x11_b1", "uint32", 1, [9, 10, 11], [0, 0, 0], [9, 10, 11], [1, 1, 1]),
    ("u64_9x10x11_b327", "uint64", 1, [9, 10, 11], [0, 0, 0], [9, 10, 11], [3, 2, 7]),
    ("u64_40x40x40_2ch_b32", "uint64", 2, [40, 40, 40], [0, 0, 0], [32, 32, 32], [32, 32, 32]),
    ("u32_10x10x10_b16_bigger_than_chunk", "uint32", 1, [10, 10, 10], [0, 0, 0], [10, 10, 10], [16, 16, 16]),
    ("u64_24x24x24_b8_labels_only", "uint64", 1, [24, 24, 24], [0, 0, 0], [24, 24, 24], [8, 8, 8]),
]


def labels(name, dtype, channels, size, seed):
    """Label-like voxels mixing, region by region: zeros, piecewise-constant labels, noise with 3,
    20 and ~2^31 values, and a checkerboard of two values (tables repeated across blocks)."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.arange(s, dtype=np.int64) for s in size), indexing="ij")
    out = np.zeros(list(size) + [channels], dtype=np.uint64)
    big = np.uint64(0x9E3779B97F4A7C15)
    for c in range(channels):
        region = ((x // 5) + 3 * (y // 4) + 7 * (z // 3) + 11 * c) % 97
        with np.errstate(over="ignore"):
            ids = region.astype(np.uint64) * big + np.uint64(1 + c)
        if name.endswith("labels_only"):
            out[..., c] = ids
            continue
        sel = ((x // 8) + 2 * (y // 8) + 3 * (z // 4) + c) % 6
        v = np.zeros(size, dtype=np.uint64)
        v[sel == 1] = ids[sel == 1]
        for s, n in ((2, 3), (3, 20), (4, 1 << 31)):
            m = sel == s
            v[m] = rng.integers(0, n, size=int(m.sum()), dtype=np.uint64) * np.uint64(2654435761) + np.uint64(c)
        m = sel == 5
        v[m] = (1 + (x + y + z) % 2)[m].astype(np.uint64)
        out[..., c] = v
    if dtype == "uint32":
        out = (out & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return out


def parse_key(name):
    """'-5-3_3-11_0-8' -> ([-5, 3, 0], [3, 11, 8])."""
    lo, hi = [], []
    for part in name.split("_"):
        i = part.index("-", 1)
        lo.append(int(part[:i]))
        hi.append(int(part[i + 1:]))
    return lo, hi


def write(outdir):
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    manifest = {"cseg": [], "jpeg": []}
    for i, (name, dtype, nc, size, off, chunk, block) in enumerate(CSEG_CASES):
        d = os.path.join(outdir, "cseg", name)
        arr = labels(name, dtype, nc, size, 1000 + i)
        t = ts.open({
            "driver": "neuroglancer_precomputed",
            "kvstore": {"driver": "file", "path": d},
            "create": True,
            "delete_existing": True,
            "store_data_equal_to_fill_value": True,
            "multiscale_metadata": {"type": "segmentation", "data_type": dtype, "num_channels": nc},
            "scale_metadata": {
                "size": size, "voxel_offset": off, "resolution": [4, 4, 40], "chunk_size": chunk,
                "encoding": "compressed_segmentation", "compressed_segmentation_block_size": block,
            },
        }).result()
        t[...] = arr
        key = json.load(open(os.path.join(d, "info")))["scales"][0]["key"]
        with open(os.path.join(d, "volume.bin"), "wb") as f:
            f.write(arr.tobytes(order="F"))
        chunks = []
        for fname in sorted(os.listdir(os.path.join(d, key))):
            lo, hi = parse_key(fname)
            chunks.append({"file": os.path.join(key, fname), "lo": lo, "hi": hi})
        manifest["cseg"].append({
            "name": name, "dir": d, "data_type": dtype, "num_channels": nc, "size": size,
            "voxel_offset": off, "chunk_size": chunk, "block_size": block, "chunks": chunks,
        })

    # JPEG references from cloud-volume's encoder (simplejpeg = TurboJPEG, quality 85, 4:4:4).
    import simplejpeg
    rng = np.random.default_rng(7)
    for name, shape, nc in (("gray_16x8x4", [16, 8, 4], 1), ("rgb_16x8x4", [16, 8, 4], 3),
                            ("gray_37x13x3", [37, 13, 3], 1), ("rgb_21x11x2", [21, 11, 2], 3)):
        x, y, z = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
        img = np.zeros(shape + [nc], dtype=np.uint8)
        for c in range(nc):
            v = 128 + 60 * np.sin(x / 5.0 + c) * np.cos(y / 7.0) + 5 * z + rng.integers(0, 8, size=shape)
            img[..., c] = np.clip(v, 0, 255).astype(np.uint8)
        # Canonical image: width sx, height sy*sz, pixel x + sx*(y + sy*z), channels interleaved.
        pix = np.ascontiguousarray(img.transpose(2, 1, 0, 3).reshape(shape[2] * shape[1], shape[0], nc))
        if nc == 1:
            enc = simplejpeg.encode_jpeg(pix, quality=85, colorspace="GRAY", colorsubsampling="GRAY")
        else:
            enc = simplejpeg.encode_jpeg(pix, quality=85, colorspace="RGB")
        d = os.path.join(outdir, "jpeg")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(img.tobytes(order="F"))
        with open(os.path.join(d, name + ".jpg"), "wb") as f:
            f.write(enc)
        manifest["jpeg"].append({"name": name, "shape": shape, "num_channels": nc,
                                 "data": os.path.join(d, name + ".bin"), "jpeg": os.path.join(d, name + ".jpg")})
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def read(d):
    manifest = json.load(open(os.path.join(d, "manifest.json")))
    results = []
    for layer in manifest:
        res = {"name": layer["name"]}
        shape = list(layer["size"]) + [layer["num_channels"]]
        want = np.frombuffer(open(layer["expected"], "rb").read(), dtype=layer["data_type"]).reshape(shape, order="F")
        readers = ["tensorstore"] + (["cloudvolume"] if layer.get("cloudvolume") else [])
        for reader in readers:
            try:
                if reader == "tensorstore":
                    t = ts.open({"driver": "neuroglancer_precomputed",
                                 "kvstore": {"driver": "file", "path": layer["path"]}}).result()
                    got = np.asarray(t.read().result())
                else:
                    from cloudvolume import CloudVolume
                    cv = CloudVolume("file://" + layer["path"], mip=0, progress=False)
                    got = np.asarray(cv[cv.bounds])
                if list(got.shape) != shape:
                    res[reader] = {"error": f"shape {list(got.shape)}, expected {shape}"}
                    continue
                if want.dtype.kind == "f":
                    # Bit patterns (NaNs included): the count of differing elements.
                    u = "u%d" % want.dtype.itemsize
                    bad = float((got.astype(want.dtype).view(u) != want.view(u)).sum())
                    res[reader] = {"max_diff": bad, "mean_diff": bad / want.size}
                    continue
                diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
                res[reader] = {"max_diff": float(diff.max()), "mean_diff": float(diff.mean())}
            except Exception as e:  # noqa: BLE001 - reported to the Rust test
                res[reader] = {"error": f"{type(e).__name__}: {e}"}
        results.append(res)
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "read"):
        sys.exit(__doc__)
    (write if sys.argv[1] == "write" else read)(sys.argv[2])
