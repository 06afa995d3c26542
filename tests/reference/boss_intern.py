#!/usr/bin/env python3
"""Unmodified intern (PyPI 1.4.2) against the BOSS double, for tests/boss.rs.

    target/venv/bin/python tests/reference/boss_intern.py setup PORT TOKEN OUT
    target/venv/bin/python tests/reference/boss_intern.py read PORT TOKEN OUT BOXES.json

setup: creates (through intern's create_project, the BOSS's real POST endpoints) the coordinate
frame cf (x 100..1124, y 0..1024, z 0..64 at 4x4x40 nm), collection col, experiment exp (3
anisotropic levels) and channels img8 (uint8), img16 (uint16), ann64 (uint64 annotation); writes
deterministic random data with create_cutout at resolutions 0 and 1; reads boxes with get_cutout
and saves them (x fastest, as our cutouts lay them) with OUT/manifest.json: {"cases": [{"channel",
"res", "lo", "hi", "dtype", "file"}]}.
read: get_cutout of each {"channel", "res", "lo", "hi"} in BOXES.json into OUT/<i>.bin.
"""

import json
import sys
from pathlib import Path

import numpy as np
from intern.remote.boss import BossRemote
from intern.resource.boss.resource import (ChannelResource, CollectionResource, CoordinateFrameResource,
                                           ExperimentResource)

CHANNELS = (("img8", "uint8", "image"), ("img16", "uint16", "image"), ("ann64", "uint64", "annotation"))


def remote(port, token):
    return BossRemote({"protocol": "http", "host": "127.0.0.1:%s" % port, "token": token})


def chan(rmt, name):
    return rmt.get_channel(name, "col", "exp")


def save(arr_zyx, path):
    # (z, y, x) C order is x fastest: our Fortran [x, y, z] bytes.
    Path(path).write_bytes(np.ascontiguousarray(arr_zyx).astype(arr_zyx.dtype.newbyteorder("<")).tobytes())


def setup(port, token, out):
    rmt = remote(port, token)
    rmt.create_project(CoordinateFrameResource("cf", "frame", 100, 1124, 0, 1024, 0, 64, 4, 4, 40))
    rmt.create_project(CollectionResource("col", "tests"))
    rmt.create_project(ExperimentResource("exp", "col", "cf", "tests", num_hierarchy_levels=3,
                                          hierarchy_method="anisotropic"))
    rng = np.random.default_rng(15)
    cases = []
    for name, dt, typ in CHANNELS:
        ch = rmt.create_project(ChannelResource(name, "col", "exp", typ, datatype=dt))
        for res, (x, y, z) in ((0, ([400, 700], [450, 650], [8, 40])), (1, ([200, 360], [200, 330], [0, 20]))):
            shape = (z[1] - z[0], y[1] - y[0], x[1] - x[0])
            if dt == "uint64":
                data = (rng.integers(1, 40, size=shape, dtype=np.uint64) + np.uint64(1 << 50))
            else:
                data = rng.integers(1, np.iinfo(dt).max, size=shape, dtype=dt)
            rmt.create_cutout(ch, res, x, y, z, data)
        for i, (res, lo, hi) in enumerate(((0, [400, 450, 8], [700, 650, 40]), (0, [417, 463, 9], [689, 641, 39]),
                                           (0, [600, 600, 30], [900, 800, 50]), (1, [210, 205, 3], [350, 320, 19]))):
            got = rmt.get_cutout(ch, res, [lo[0], hi[0]], [lo[1], hi[1]], [lo[2], hi[2]])
            f = out / f"{name}_{i}.bin"
            save(got, f)
            cases.append({"channel": name, "res": res, "lo": lo, "hi": hi, "dtype": dt, "file": f.name})
    (out / "manifest.json").write_text(json.dumps({"cases": cases}, indent=1))
    print(f"boss_intern: {len(cases)} cutouts by intern")


def read(port, token, out, boxes):
    rmt = remote(port, token)
    for i, b in enumerate(json.loads(Path(boxes).read_text())):
        lo, hi = b["lo"], b["hi"]
        got = rmt.get_cutout(chan(rmt, b["channel"]), b["res"], [lo[0], hi[0]], [lo[1], hi[1]], [lo[2], hi[2]])
        save(got, out / f"{i}.bin")


if __name__ == "__main__":
    mode, port, token, out = sys.argv[1:5]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if mode == "setup":
        setup(port, token, out)
    else:
        read(port, token, out, sys.argv[5])
