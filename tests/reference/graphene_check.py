#!/usr/bin/env python3
"""The graphene fixture, and what unmodified cloud-volume reads from it through the loopback
chunkedgraph double (tests/servers/chunkedgraph.py).

    target/venv/bin/python tests/reference/graphene_check.py OUT

Writes under OUT (deleted first), deterministically:
  ws/          the watershed layer: uint64 graphene supervoxel labels, compressed_segmentation
               (8x8x8 blocks), 200x160x40 at offset 64,32,8, chunks 64x64x16, mips 0 and 1
               (x, y halved), written by cloud-volume;
  ws_sharded/  the same voxels, mip 0 sharded (neuroglancer_uint64_sharded_v1, raw, gzip),
               mip 1 unsharded raw, written by tensorstore;
  before.npy, after.npy   uint64 rows [supervoxel, L2, L3, root] (4 layers): the graph before and
               after an edit at edit_timestamp (some roots merged, one split);
  sv_bounds.npy  per supervoxel (rows of before.npy) its mip-0 box x0,y0,z0,x1,y1,z1;
  graph.json   the double's input: tables `test` (data_dir ws), `sharded` (ws_sharded) and
               `missing` (a data_dir that does not exist), each with its chunkedgraph info;
  secrets/cave-secret.json   {"token": TOKEN};
  expected/*.bin  cloud-volume's outputs;
  manifest.json:
    token, edit_timestamp, n_layers;
    cutouts: [{table, mip, lo, hi (absolute voxels at mip, half-open), agglomerate, timestamp,
               stop_layer, file (F-order little-endian uint64), requests: [{path, query, n_ids,
               auth, content_encoding, accept_encoding}] (the roots requests cloud-volume made)}];
    unique: [{table, mip, lo, hi, agglomerate, file (sorted uint64 labels)}];
    errors: {wrong_token: cloud-volume's exception, missing_data_dir: ...}.
Exits non-zero on any failure; prints one summary line.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

HERE = Path(__file__).resolve().parent
DOUBLE = HERE.parent / "servers" / "chunkedgraph.py"
TOKEN = "5eed0f1a2b3c4d5e6f708192a3b4c5d6"
N_LAYERS = 4
BITS = {"1": 10, "2": 10, "3": 9, "4": 8}
SIZE = (200, 160, 40)
OFFSET = (64, 32, 8)
CHUNK = (64, 64, 16)
RES = (8, 8, 40)
EDIT = 1_700_000_000


def encode(layer, x, y, z, segid):
    ct = BITS[str(layer)]
    sb = 64 - 8 - 3 * ct
    return (np.uint64(layer) << np.uint64(56)) | (np.uint64(x) << np.uint64(sb + 2 * ct)) | \
        (np.uint64(y) << np.uint64(sb + ct)) | (np.uint64(z) << np.uint64(sb)) | np.uint64(segid)


def supervoxels(rng):
    """Blob-like regions, split at graph chunk borders, some background."""
    sx, sy, sz = SIZE
    x, y, z = np.meshgrid(np.arange(sx), np.arange(sy), np.arange(sz), indexing="ij")
    # Wavy region borders.
    wx = (x + 3 * np.sin(y / 7.0) + 2 * np.sin(z / 3.0)).astype(np.int64) // 11
    wy = (y + 3 * np.sin(x / 5.0)).astype(np.int64) // 9
    wz = z // 4
    region = (wx * 1000 + wy) * 100 + wz
    gc = np.stack([x // CHUNK[0], y // CHUNK[1], z // CHUNK[2]])  # graph chunk of each voxel
    key = region * 64 + (gc[0] * 16 + gc[1] * 4 + gc[2])
    uniq, inv = np.unique(key, return_inverse=True)
    inv = inv.reshape(SIZE)
    # Per (region, chunk): a segid numbered within its chunk.
    chunk_of = np.zeros((len(uniq), 3), dtype=np.int64)
    flat = inv.reshape(-1)
    for d in range(3):
        chunk_of[flat, d] = gc[d].reshape(-1)
    ids = np.zeros(len(uniq), dtype=np.uint64)
    counters = {}
    for i, c in enumerate(map(tuple, chunk_of)):
        counters[c] = counters.get(c, 0) + 1
        ids[i] = encode(1, c[0], c[1], c[2], counters[c])
    background = rng.random(len(uniq)) < 0.06
    ids[background] = 0
    return ids[inv], ids[~background], chunk_of[~background]


def hierarchy(svs, chunks, rng):
    """Rows [sv, l2, l3, root] before and after the edit."""
    n = len(svs)
    l2 = np.zeros(n, dtype=np.uint64)
    l3 = np.zeros(n, dtype=np.uint64)
    counters = {}
    # L2: groups of about 3 supervoxels in one chunk.
    group = rng.integers(0, 1 << 30, n) // 3
    for i in range(n):
        c = tuple(chunks[i])
        k = (c, int(group[i] % max(1, 1 + counters.get(("n", c), 0) // 3)))
        counters[("n", c)] = counters.get(("n", c), 0) + 1
        if k not in counters:
            counters[("l2", c)] = counters.get(("l2", c), 0) + 1
            counters[k] = encode(2, c[0], c[1], c[2], counters[("l2", c)])
        l2[i] = counters[k]
    # L3: L2 nodes of one parent chunk (coordinates halved) in groups of about 4.
    l2_ids = np.unique(l2)
    l3_of = {}
    per = {}
    for v in l2_ids:
        i = int(np.argmax(l2 == v))
        c = tuple(int(a) // 2 for a in chunks[i])
        per[c] = per.get(c, 0) + 1
        l3_of[int(v)] = encode(3, c[0], c[1], c[2], 1 + (per[c] - 1) // 4)
    for i in range(n):
        l3[i] = l3_of[int(l2[i])]
    # Roots: L3 nodes in groups of about 3.
    l3_ids = np.unique(l3)
    order = rng.permutation(len(l3_ids))
    root_of = {int(l3_ids[j]): encode(4, 0, 0, 0, 1 + rank // 3) for rank, j in enumerate(order)}
    before = np.stack([svs, l2, l3, np.array([root_of[int(v)] for v in l3], dtype=np.uint64)], axis=1)
    after = before.copy()
    roots = np.unique(before[:, 3])
    # Merge: every 10th root joins the next one.
    for j in range(0, len(roots) - 1, 10):
        after[before[:, 3] == roots[j], 3] = roots[j + 1]
    # Split: the L3 nodes of one root get a new root each.
    victim = roots[len(roots) // 2]
    fresh = int(roots.max() & np.uint64((1 << 32) - 1)) + 1
    for k, v in enumerate(np.unique(before[before[:, 3] == victim, 2])):
        after[(before[:, 2] == v), 3] = encode(4, 0, 0, 0, fresh + k)
    return before, after


def sv_bounds(vol, svs):
    out = np.zeros((len(svs), 6), dtype=np.int64)
    pos = {int(v): i for i, v in enumerate(svs)}
    flat = vol.reshape(-1, order="F")
    idx = np.nonzero(flat)[0]
    x, y, z = np.unravel_index(idx, SIZE, order="F")
    labels = flat[idx]
    order = np.argsort(labels, kind="stable")
    labels, x, y, z = labels[order], x[order], y[order], z[order]
    starts = np.r_[0, np.nonzero(np.diff(labels))[0] + 1]
    ends = np.r_[starts[1:], len(labels)]
    for s, e in zip(starts, ends):
        i = pos[int(labels[s])]
        out[i] = [x[s:e].min() + OFFSET[0], y[s:e].min() + OFFSET[1], z[s:e].min() + OFFSET[2],
                  x[s:e].max() + 1 + OFFSET[0], y[s:e].max() + 1 + OFFSET[1], z[s:e].max() + 1 + OFFSET[2]]
    return out


def scales(sharded):
    mip1_size = [(SIZE[0] + 1) // 2, (SIZE[1] + 1) // 2, SIZE[2]]
    s0 = {"key": "8_8_40", "resolution": list(RES), "voxel_offset": list(OFFSET), "size": list(SIZE),
          "chunk_sizes": [list(CHUNK)], "encoding": "compressed_segmentation",
          "compressed_segmentation_block_size": [8, 8, 8]}
    s1 = {"key": "16_16_40", "resolution": [16, 16, 40], "voxel_offset": [OFFSET[0] // 2, OFFSET[1] // 2, OFFSET[2]],
          "size": mip1_size, "chunk_sizes": [list(CHUNK)], "encoding": "compressed_segmentation",
          "compressed_segmentation_block_size": [8, 8, 8]}
    if sharded:
        s0 = dict(s0, encoding="raw")
        s0.pop("compressed_segmentation_block_size")
        s0["sharding"] = {"@type": "neuroglancer_uint64_sharded_v1", "hash": "identity", "preshift_bits": 1,
                          "minishard_bits": 1, "shard_bits": 2, "minishard_index_encoding": "gzip",
                          "data_encoding": "gzip"}
        s1 = dict(s1, encoding="raw")
        s1.pop("compressed_segmentation_block_size")
    return [s0, s1]


def write_layers(out, vol):
    from cloudvolume import CloudVolume
    import tensorstore as ts

    mip1 = vol[::2, ::2, :]
    info = {"type": "segmentation", "data_type": "uint64", "num_channels": 1, "scales": scales(False)}
    cv = CloudVolume(f"file://{out / 'ws'}", info=info, progress=False, compress=False)
    cv.commit_info()
    cv[:, :, :] = vol
    cv1 = CloudVolume(f"file://{out / 'ws'}", mip=1, progress=False, compress=False)
    cv1[:, :, :] = mip1
    for mip, data in ((0, vol), (1, mip1)):
        sc = scales(True)[mip]
        spec = {"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": f"{out / 'ws_sharded'}/"},
                "multiscale_metadata": {"type": "segmentation", "data_type": "uint64", "num_channels": 1},
                "scale_metadata": {"size": sc["size"], "resolution": sc["resolution"], "voxel_offset": sc["voxel_offset"],
                                   "encoding": "raw", "chunk_size": list(CHUNK), "key": sc["key"]},
                "create": True}
        if "sharding" in sc:
            spec["scale_metadata"]["sharding"] = sc["sharding"]
        store = ts.open(spec).result()
        store[:, :, :, 0].write(data).result()
    return info


def table_info(sharded):
    return {"@type": "neuroglancer_multiscale_volume", "type": "segmentation", "data_type": "uint64",
            "num_channels": 1, "scales": scales(sharded),
            "graph": {"chunk_size": list(CHUNK), "n_bits_for_layer_id": 8, "cv_mip": 0, "n_layers": N_LAYERS,
                      "spatial_bit_masks": BITS, "fan_out": 2},
            "app": {"supported_api_versions": [0, 1]}, "chunks_start_at_voxel_offset": True,
            "mesh": "graphene_meshes", "verify_mesh": False}


def start_double(out):
    p = subprocess.Popen([sys.executable, str(DOUBLE), "--fixture", str(out), "--token", TOKEN, "--port", "0"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("PORT "):
        p.kill()
        raise SystemExit(f"the chunkedgraph double did not start: {line!r}")
    return p, int(line.split()[1])


def http(port, method, path, body=None):
    import urllib.request
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    t0 = time.time()
    out = Path(sys.argv[1]).resolve()
    shutil.rmtree(out, ignore_errors=True)
    (out / "expected").mkdir(parents=True)
    rng = np.random.default_rng(20261203)
    vol, svs, chunks = supervoxels(rng)
    before, after = hierarchy(svs, chunks, rng)
    np.save(out / "before.npy", before)
    np.save(out / "after.npy", after)
    np.save(out / "sv_bounds.npy", sv_bounds(vol, before[:, 0]))
    write_layers(out, vol)
    graph = {"tables": {"test": {"info": table_info(False), "data_dir": "ws"},
                        "sharded": {"info": table_info(True), "data_dir": "ws_sharded"},
                        "missing": {"info": table_info(False), "data_dir": "ws_missing"}},
             "n_layers": N_LAYERS, "n_bits_for_layer_id": 8, "edit_timestamp": EDIT,
             "before": "before.npy", "after": "after.npy", "sv_bounds": "sv_bounds.npy"}
    (out / "graph.json").write_text(json.dumps(graph, indent=1))
    (out / "secrets").mkdir()
    (out / "secrets" / "cave-secret.json").write_text(json.dumps({"token": TOKEN}))

    from cloudvolume import CloudVolume, Bbox

    double, port = start_double(out)
    manifest = {"token": TOKEN, "edit_timestamp": EDIT, "n_layers": N_LAYERS, "svs": int(len(svs)),
                "cutouts": [], "unique": [], "errors": {}}
    try:
        base = f"graphene://http://127.0.0.1:{port}/segmentation/table"
        boxes = [
            (0, OFFSET, tuple(OFFSET[d] + SIZE[d] for d in range(3))),
            (0, (70, 50, 11), (190, 133, 37)),
            (1, (OFFSET[0] // 2 + 3, OFFSET[1] // 2 + 5, OFFSET[2] + 2), (OFFSET[0] // 2 + 90, OFFSET[1] // 2 + 70, OFFSET[2] + 30)),
        ]
        modes = [dict(agglomerate=True), dict(agglomerate=False), dict(agglomerate=True, timestamp=EDIT - 1),
                 dict(agglomerate=True, stop_layer=2), dict(agglomerate=True, stop_layer=3)]
        n = 0
        for table in ("test", "sharded"):
            for mip, lo, hi in boxes:
                for mode in modes:
                    vol_cv = CloudVolume(f"{base}/{table}", mip=mip, secrets=TOKEN, progress=False,
                                         agglomerate=mode["agglomerate"])
                    http(port, "POST", "/__control", {"clear_log": True})
                    img = vol_cv.download(Bbox(lo, hi), mip=mip, **{k: v for k, v in mode.items() if k != "agglomerate"})
                    img = np.asarray(img)[..., 0]
                    reqs = [r for r in http(port, "GET", "/__requests") if "roots" in r["path"]]
                    name = f"expected/cutout_{n:03d}.bin"
                    np.asfortranarray(img).reshape(-1, order="F").astype("<u8").tofile(out / name)
                    manifest["cutouts"].append({"table": table, "mip": mip, "lo": list(lo), "hi": list(hi),
                                                "agglomerate": mode["agglomerate"], "timestamp": mode.get("timestamp"),
                                                "stop_layer": mode.get("stop_layer"), "file": name,
                                                "distinct": int(len(np.unique(img))),
                                                "requests": [{k: r.get(k) for k in ("path", "query", "n_ids", "auth",
                                                                                     "content_encoding", "accept_encoding")}
                                                             for r in reqs]})
                    n += 1
        for table in ("test", "sharded"):
            for mip, lo, hi in boxes[:2]:
                for agg in (True, False):
                    vol_cv = CloudVolume(f"{base}/{table}", mip=mip, secrets=TOKEN, progress=False, agglomerate=agg)
                    labels = np.array(sorted(int(v) for v in vol_cv.unique(Bbox(lo, hi), mip=mip, agglomerate=agg)),
                                      dtype="<u8")
                    name = f"expected/unique_{len(manifest['unique']):03d}.bin"
                    labels.tofile(out / name)
                    manifest["unique"].append({"table": table, "mip": mip, "lo": list(lo), "hi": list(hi),
                                               "agglomerate": agg, "file": name, "n": int(len(labels))})
        try:
            CloudVolume(f"{base}/test", secrets="0123abcd", progress=False)
            manifest["errors"]["wrong_token"] = None
        except Exception as e:  # noqa: BLE001 - recorded, not raised
            manifest["errors"]["wrong_token"] = f"{type(e).__name__}: {str(e)[:200]}"
        try:
            v = CloudVolume(f"{base}/missing", secrets=TOKEN, progress=False, agglomerate=True)
            v.download(Bbox(OFFSET, (OFFSET[0] + 8, OFFSET[1] + 8, OFFSET[2] + 8)), mip=0)
            manifest["errors"]["missing_data_dir"] = None
        except Exception as e:  # noqa: BLE001
            manifest["errors"]["missing_data_dir"] = f"{type(e).__name__}: {str(e)[:200]}"
    finally:
        double.send_signal(signal.SIGTERM)
        double.wait(timeout=10)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"graphene_check: {len(svs)} supervoxels, {len(manifest['cutouts'])} cutouts, "
          f"{len(manifest['unique'])} unique sets, errors {manifest['errors']}, in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
