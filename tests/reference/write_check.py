#!/usr/bin/env python3
"""Reference side of tests/write.rs (layers written by this library through the C ABI).

Usage:
  target/venv/bin/python tests/reference/write_check.py MANIFEST.json

MANIFEST.json:
  {"outdir": DIR,
   "tswrite": [{"name", "path", "info", "scales": [{"scale_index", "data", "dtype", "shape"}]}],
   "read":    [{"name", "path", "dtype", "mips": [..], "readers": ["tensorstore", "cloudvolume"],
                "fill_missing": false}]}

tswrite: tensorstore writes the given voxels (raw little-endian, Fortran order x, y, z, channel,
of the given shape) into a new layer at `path` whose info is a copy of `info`, one scale at a
time, storing every chunk (also those equal to the fill value), so the Rust test can compare
tensorstore's chunk files with ours byte for byte.

read: every layer, at every listed mip, read whole by every listed reader; the voxels go to
DIR/<name>.<reader>.<mip>.bin (Fortran order, the layer's data type), the outcome to
DIR/results.json: {name: {reader: {mip: {"shape": [...]} | {"error": "..."}}}}. Comparison is
the Rust test's job.
"""

import json
import os
import shutil
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import tensorstore as ts  # noqa: E402


def ts_spec(path, scale_index):
    return {"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": path},
            "scale_index": scale_index}


def tswrite(task):
    path = task["path"]
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    shutil.copy(task["info"], os.path.join(path, "info"))
    for s in task["scales"]:
        arr = np.frombuffer(open(s["data"], "rb").read(), dtype=s["dtype"]).reshape(s["shape"], order="F")
        spec = ts_spec(path, s["scale_index"])
        spec["store_data_equal_to_fill_value"] = True
        t = ts.open(spec).result()
        t[...] = arr


def read_one(layer, reader, mip):
    path = layer["path"]
    if reader == "tensorstore":
        t = ts.open(ts_spec(path, mip)).result()
        return np.asarray(t.read().result())
    from cloudvolume import CloudVolume
    cv = CloudVolume("file://" + path, mip=mip, progress=False, fill_missing=layer.get("fill_missing", False))
    return np.asarray(cv.download(cv.bounds, mip=mip))


def main(manifest_path):
    manifest = json.load(open(manifest_path))
    outdir = manifest["outdir"]
    os.makedirs(outdir, exist_ok=True)
    for task in manifest.get("tswrite", []):
        tswrite(task)
    results = {}
    for layer in manifest.get("read", []):
        res = results.setdefault(layer["name"], {})
        for reader in layer["readers"]:
            per = res.setdefault(reader, {})
            for mip in layer["mips"]:
                try:
                    got = read_one(layer, reader, mip)
                    out = np.asarray(got, dtype=layer["dtype"])
                    if out.ndim == 3:
                        out = out[..., np.newaxis]
                    with open(os.path.join(outdir, f"{layer['name']}.{reader}.{mip}.bin"), "wb") as f:
                        f.write(out.tobytes(order="F"))
                    per[str(mip)] = {"shape": list(out.shape), "dtype": str(np.asarray(got).dtype)}
                except Exception as e:  # noqa: BLE001 - reported to the Rust test
                    per[str(mip)] = {"error": f"{type(e).__name__}: {e}"}
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
