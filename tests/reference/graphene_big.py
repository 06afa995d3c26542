#!/usr/bin/env python3
"""A graphene fixture whose one cutout holds more than 300,000 distinct supervoxels, and what
unmodified cloud-volume reads from it through the loopback PyChunkedGraph double
(tests/servers/chunkedgraph.py): root-id cutouts whose ids go to `roots_binary` in more than one
batch (cloud-volume sends at most 250,000 ids per request), with request and answer bodies past
1 MB (gzipped both ways).

Usage: target/venv/bin/python tests/reference/graphene_big.py OUT

OUT is deleted and rebuilt; everything is deterministic (fixed seeds; the token, label layout,
graph geometry, table info and double launcher are tests/reference/graphene_check.py's, imported).
It exits non-zero on any failure and prints one summary line.

Files under OUT
  ws/            the watershed layer: uint64 compressed_segmentation (8x8x8 blocks, so most blocks
                 need 16-bit indices and lookup tables of several hundred labels), gzip files,
                 unsharded, one scale: 128x128x32 voxels at 64,32,8, resolution 8,8,40, chunks
                 64x64x16. Supervoxels are graphene layer-1 labels (graphene_check.encode: graph
                 chunk 64x64x16 counted from voxel_offset, so 2x2x2 graph chunks) of one voxel or
                 of two neighbours along x; segids sparse and scattered within each chunk (sorted
                 ids are not in voxel order); about 2% of them background (0).
  graph.npy      rows [supervoxel, L2, L3, root] (uint64); the double's older graph form
  graph.json     {"format": 2, "tables": {"big": {info, data_dir "ws", dataset}}, "n_layers": 4,
                 "n_bits_for_layer_id": 8, "spatial_bit_masks", "fan_out": 2, "edit_timestamp": 0,
                 "before": "graph.npy", "after": "graph.npy"}. L2 nodes: supervoxels of one graph
                 chunk and one object, in runs of up to 64; L3 nodes: L2 nodes of one object in
                 runs of up to 4 (one layer-3 chunk); a root per object. Objects are cells of a
                 warped 12x12x5 grid, so roots span graph chunks. A few supervoxels ("orphans")
                 are left out of the graph: PyChunkedGraph answers 0 for them.
  expected/*.bin cloud-volume's cutouts: raw little-endian uint64, Fortran order x, y, z
  double_requests.jsonl  every request the double saw (its --log)
  manifest.json
    format 1; generated_by {script, cloud-volume, numpy}; token (the double's --token);
    table "big"; url_template; size, voxel_offset; supervoxels (distinct nonzero ids of the
    whole layer, the number of ids a whole-layer cutout asks about), orphans, l2_nodes,
    l3_nodes, roots; batch_limit 250000 (cloud-volume's); gzip_over 1000000 (bytes);
    cutouts: [{id, mip, lo, hi, options {agglomerate, stop_layer}, file, sha256,
    distinct_out (distinct labels of the answer), requests (what the double recorded during
    cloud-volume's download call: its records, time left out)}]; notes; seconds.
"""

import hashlib
import importlib.metadata as md
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import graphene_check as gc  # noqa: E402  (label layout, graph geometry, table info, the double)

TABLE = "big"
SIZE = (128, 128, 32)
OFFSET = (64, 32, 8)
RES = (8, 8, 40)
CHUNK = (64, 64, 16)
MERGE_P = 0.72        # a voxel pair along x is one supervoxel with this probability
BACKGROUND_P = 0.02   # a supervoxel is background (0) with this probability
ORPHAN_P = 0.001      # a nonzero supervoxel has no parent in the graph with this probability
OBJECT_CELL = (12, 12, 5)
L2_RUN, L3_RUN = 64, 4
BATCH = 250_000
GZIP_OVER = 1_000_000


def rng_of(name):
    return np.random.default_rng(gc.seed_of("graphene_big", name))


def supervoxels():
    """(vol uint64 F-order, svs sorted, object index per sv): ids of 1-2 voxel supervoxels."""
    assert tuple(gc.GRAPH_CHUNK) == CHUNK and all(s % c == 0 for s, c in zip(SIZE, CHUNK))
    nx, ny, nz = SIZE
    x, y, z = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    merge = rng_of("merge").random((nx // 2, ny, nz)) < MERGE_P
    kx = np.where(merge[x // 2, y, z], x - x % 2, x)                  # the pair's first voxel, or itself
    key = kx + nx * (y + ny * z)
    chunk = (x // CHUNK[0]) * 4 + (y // CHUNK[1]) * 2 + z // CHUNK[2]  # 2x2x2 graph chunks
    uniq, inv = np.unique(chunk.astype(np.int64) * key.size + key, return_inverse=True)
    u_chunk, u_key = uniq // key.size, uniq % key.size
    ids = np.zeros(len(uniq), dtype=np.uint64)
    rng = rng_of("segids")
    for c in range(8):
        m = np.nonzero(u_chunk == c)[0]
        segs = 1 + rng.choice(1 << 24, size=len(m), replace=False)    # sparse, in no spatial order
        cx, cy, cz = c // 4, (c // 2) % 2, c % 2
        base = gc.encode(1, cx, cy, cz, 0)
        ids[m] = np.uint64(base) + segs.astype(np.uint64)
    ids[rng_of("background").random(len(uniq)) < BACKGROUND_P] = 0
    vol = np.asfortranarray(ids[inv.reshape(-1)].reshape(SIZE))
    # Objects: cells of a warped grid, taken at each supervoxel's first voxel.
    ph = rng_of("warp").uniform(0, 2 * np.pi, size=4)
    kxs, kys, kzs = u_key % nx, (u_key // nx) % ny, u_key // (nx * ny)
    wx = kxs + 3 * np.sin(2 * np.pi * kys / 29 + ph[0]) + 2 * np.sin(2 * np.pi * kzs / 17 + ph[1])
    wy = kys + 3 * np.sin(2 * np.pi * kxs / 31 + ph[2]) + 2 * np.sin(2 * np.pi * kzs / 13 + ph[3])
    cell = ((np.floor((wx + 6) / OBJECT_CELL[0]).astype(np.int64) * 64
             + np.floor((wy + 6) / OBJECT_CELL[1]).astype(np.int64)) * 64 + kzs // OBJECT_CELL[2])
    keep = ids != 0
    order = np.argsort(ids[keep])
    svs, cells = ids[keep][order], cell[keep][order]
    _, obj = np.unique(cells, return_inverse=True)
    return vol, svs, obj.reshape(-1)


def hierarchy(svs, obj):
    """rows [sv, l2, l3, root] for every supervoxel but the orphans; (rows, orphans, counts)."""
    orphan = rng_of("orphans").random(len(svs)) < ORPHAN_P
    svs, obj = svs[~orphan], obj[~orphan]
    chunks = np.array([gc.chunk_of(int(v)) for v in svs], dtype=np.int64)
    cid = (chunks[:, 0] * 4 + chunks[:, 1] * 2 + chunks[:, 2])
    # L2: (chunk, object) groups of supervoxels (id order), runs of L2_RUN; segids per chunk from 1.
    order = np.lexsort((svs, obj, cid))
    l2 = np.zeros(len(svs), dtype=np.uint64)
    l2_chunk = []
    count, prev, run = {}, None, 0
    for i in order.tolist():
        g = (int(cid[i]), int(obj[i]))
        if g != prev or run == L2_RUN:
            c = tuple(int(v) for v in chunks[i])
            count[c] = count.get(c, 0) + 1
            cur = gc.encode(2, c[0], c[1], c[2], count[c])
            l2_chunk.append(c)
            prev, run = g, 0
        l2[i] = cur
        run += 1
    # L3: the L2 nodes of one object (all in layer-3 chunk 0,0,0: coordinates >> 1), runs of L3_RUN.
    assert all(tuple(v >> 1 for v in c) == (0, 0, 0) for c in l2_chunk)
    l2_ids = np.unique(l2)
    l2_of = {}  # L2 node -> its object
    for n, o in zip(l2.tolist(), obj.tolist()):
        l2_of.setdefault(n, int(o))
    l3_of, per_obj = {}, {}
    for n in sorted(l2_of, key=lambda n: (l2_of[n], n)):
        o = l2_of[n]
        k = per_obj.get(o, 0)
        per_obj[o] = k + 1
        l3_of[n] = (o, k // L3_RUN)
    l3_keys = sorted(set(l3_of.values()))
    l3_id = {kk: gc.encode(3, 0, 0, 0, i + 1) for i, kk in enumerate(l3_keys)}
    l3 = np.array([l3_id[l3_of[int(n)]] for n in l2.tolist()], dtype=np.uint64)
    roots = np.array([gc.encode(4, 0, 0, 0, int(o) + 1) for o in obj.tolist()], dtype=np.uint64)
    rows = np.stack([svs, l2, l3, roots], axis=1)
    counts = {"l2_nodes": int(len(l2_ids)), "l3_nodes": len(l3_keys), "roots": int(len(np.unique(roots)))}
    return rows, int(orphan.sum()), counts


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    t0 = time.time()
    out = Path(sys.argv[1]).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    os.environ["CLOUD_VOLUME_DIR"] = str(out)  # no real secret is read
    gc.OUT = out  # graphene_check's table_info and Double work under OUT

    import cloudfiles.threaded_queue
    from cloudvolume import CloudVolume
    from make_layers import _QuickPoll

    cloudfiles.threaded_queue.time = _QuickPoll()

    vol, svs, obj = supervoxels()
    rows, n_orphans, counts = hierarchy(svs, obj)
    assert len(svs) > 300_000, len(svs)
    np.save(out / "graph.npy", rows)
    info = {"type": "segmentation", "data_type": "uint64", "num_channels": 1,
            "scales": [{"key": "_".join(map(str, RES)), "size": list(SIZE), "voxel_offset": list(OFFSET),
                        "resolution": list(RES), "chunk_sizes": [list(CHUNK)], "encoding": "compressed_segmentation",
                        "compressed_segmentation_block_size": [8, 8, 8]}]}
    path = "file://" + str(out / "ws")
    CloudVolume(path, info=info, progress=False, compress="gzip").commit_info()
    w = CloudVolume(path, mip=0, progress=False, compress="gzip")
    w[w.bounds.to_slices()] = vol
    back = np.asarray(CloudVolume(path, progress=False)[w.bounds.to_slices()])[..., 0]
    assert np.array_equal(back, vol), "ws round trip"
    graph = {"format": 2,
             "tables": {TABLE: {"info": gc.table_info("ws"), "data_dir": "ws", "dataset": "big_dataset"}},
             "n_layers": gc.N_LAYERS, "n_bits_for_layer_id": gc.LAYER_BITS, "spatial_bit_masks": dict(gc.BITS),
             "fan_out": gc.FAN_OUT, "edit_timestamp": 0, "before": "graph.npy", "after": "graph.npy"}
    (out / "graph.json").write_text(json.dumps(graph, indent=1))

    # The model: supervoxel -> ancestor at a layer (orphans -> 0, as PyChunkedGraph answers them).
    def model(img, col):
        u, inv = np.unique(img, return_inverse=True)
        idx = np.minimum(np.searchsorted(rows[:, 0], u), len(rows) - 1)
        found = rows[idx, 0] == u
        mapped = np.where(found, rows[idx, col], np.uint64(0))
        return mapped[inv.reshape(-1)].reshape(img.shape)

    double = gc.Double()
    cutouts = []
    try:
        gv = CloudVolume(double.url(TABLE), mip=0, progress=False, secrets=gc.TOKEN)
        lo, hi = list(OFFSET), [OFFSET[d] + SIZE[d] for d in range(3)]
        for name, mode, col in (("whole/agglomerate", {"agglomerate": True}, 3),
                                ("whole/stop_layer_2", {"agglomerate": True, "stop_layer": 2}, 1)):
            double.control(clear_log=True)
            img = np.asarray(gv.download(gv.bounds, mip=0, **mode))[..., 0]
            reqs = double.requests()
            assert np.array_equal(img, model(vol, col)), f"{name}: cloud-volume disagrees with the graph"
            roots = [r for r in reqs if r["route"] == "roots_binary"]
            assert len(roots) >= 2 and all(r["n_ids"] <= BATCH and r["status"] == 200 for r in roots), roots
            assert sum(r["n_ids"] for r in roots) == len(svs), (name, [r["n_ids"] for r in roots])
            assert any(r["n_ids"] * 8 > GZIP_OVER and r["content_encoding"] == "gzip"
                       and r["response_encoding"] == "gzip" for r in roots), roots
            data = np.asfortranarray(img.astype("<u8")).tobytes(order="F")
            rel = "expected/" + name.replace("/", "_") + ".bin"
            (out / "expected").mkdir(exist_ok=True)
            (out / rel).write_bytes(data)
            cutouts.append({"id": name, "mip": 0, "lo": lo, "hi": hi,
                            "options": {"agglomerate": True, "stop_layer": mode.get("stop_layer")},
                            "file": rel, "sha256": hashlib.sha256(data).hexdigest(),
                            "distinct_out": int(len(np.unique(img))), "requests": reqs})
    finally:
        double.stop()

    n_ids = [r["n_ids"] for r in cutouts[0]["requests"] if r["route"] == "roots_binary"]
    manifest = {
        "format": 1,
        "generated_by": {"script": "tests/reference/graphene_big.py", "cloud-volume": md.version("cloud-volume"),
                         "numpy": np.__version__},
        "token": gc.TOKEN, "table": TABLE,
        "url_template": "graphene://http://127.0.0.1:{port}/segmentation/table/{table}",
        "size": list(SIZE), "voxel_offset": list(OFFSET),
        "supervoxels": int(len(svs)), "orphans": n_orphans, **counts,
        "batch_limit": BATCH, "gzip_over": GZIP_OVER,
        "cutouts": cutouts,
        "notes": ["cloud-volume 12.15.2 sorts the distinct ids (fastremap.unique) and sends batches of 250,000; it "
                  "gzips every batch, and asks for gzip, when all the ids together pass 1 MB (len(segids) * 8 > "
                  "1e6), so a small last batch is gzipped too"],
        "seconds": round(time.time() - t0, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"graphene_big: {len(svs)} supervoxels ({n_orphans} orphans), {counts['l2_nodes']} L2, "
          f"{counts['l3_nodes']} L3, {counts['roots']} roots; cloud-volume's roots_binary batches {n_ids}; "
          f"{len(cutouts)} cutouts; {total / 1e6:.1f} MB, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
