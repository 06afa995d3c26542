#!/usr/bin/env python3
"""h5py and numpy against the ndstore double (tests/servers/ocp.py), for the bindings' OCP tests.

    target/venv/bin/python tests/reference/ocp_h5py.py setup PORT OUT

setup: seeds the public project `ocpref` (image 300x200x48 at offset 100,50,10, 4x4x40 nm, two
resolution levels scaled in x and y) with the channels img8 (uint8), img16 (uint16), anno32
(uint32), anno64 (uint64) and f32 (float32); posts deterministic random data as ndstore's own
clients did, an `hdf5` body written by h5py (group CHANNEL with a gzip CUTOUT, DATATYPE,
CHANNELTYPE), at resolutions 0 and 1; then reads each box back as the `hdf5` answer with h5py
and saves it (x fastest, as our cutouts lay them) with OUT/manifest.json:
{"project", "cases": [{"channel", "res", "lo", "hi", "dtype", "file"}]}. The bindings read the
same boxes through ocp:// with every ocp_format and compare.
"""

import io
import json
import sys
import urllib.request
from pathlib import Path

import h5py
import numpy as np

CHANNELS = (("img8", "uint8", "image"), ("img16", "uint16", "image"), ("anno32", "uint32", "annotation"),
            ("anno64", "uint64", "annotation"), ("f32", "float32", "image"))
BOXES = ((0, (100, 50, 10), (400, 250, 40)), (1, (60, 30, 12), (190, 120, 30)))


def call(url, data=None):
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req) as r:
        return r.read()


def setup(port, out):
    base = "http://127.0.0.1:%s" % port
    chans = {n: {"channel_type": k, "datatype": t} for n, t, k in CHANNELS}
    seed = {"token": "ocpref", "public": True, "channels": chans,
            "dataset": {"imagesize": [300, 200, 48], "offset": [100, 50, 10], "voxelres": [4.0, 4.0, 40.0],
                        "scalinglevels": 1, "scaling": "zslices"}}
    call(base + "/__seed", json.dumps(seed).encode())
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for ci, (name, dtype, kind) in enumerate(CHANNELS):
        for res, lo, hi in BOXES:
            rng = np.random.default_rng(1000 + 10 * ci + res)
            dt = np.dtype(dtype)
            shape = (hi[2] - lo[2], hi[1] - lo[1], hi[0] - lo[0])
            if dt.kind == "f":
                a = (rng.random(shape, dtype=np.float32) + 0.5).astype(dt)
            else:
                a = rng.integers(1, min(np.iinfo(dt).max, 2 ** 40), size=shape, dtype=dt)
            args = "%d/%d,%d/%d,%d/%d,%d/" % (res, lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
            url = "%s/sd/ocpref/%s/hdf5/%s" % (base, name, args)
            f = io.BytesIO()
            with h5py.File(f, "w") as h:
                g = h.create_group(name)
                g.create_dataset("CUTOUT", data=a, compression="gzip")
                g.create_dataset("DATATYPE", data=[dtype.encode()])
                g.create_dataset("CHANNELTYPE", data=[kind.encode()])
            call(url, f.getvalue())
            with h5py.File(io.BytesIO(call(url)), "r") as h:
                back = h[name]["CUTOUT"][...]
            assert back.dtype == dt and back.shape == shape and (back == a).all(), url
            fname = "%s_%d.bin" % (name, res)
            (out / fname).write_bytes(np.ascontiguousarray(back).astype(dt.newbyteorder("<")).tobytes())
            cases.append({"channel": name, "res": res, "lo": list(lo), "hi": list(hi), "dtype": dtype, "file": fname})
    (out / "manifest.json").write_text(json.dumps({"project": "ocpref", "cases": cases}, indent=1))
    print("h5py posted and read back %d OCP boxes" % len(cases))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "setup":
        sys.exit(__doc__)
    setup(sys.argv[2], Path(sys.argv[3]))
