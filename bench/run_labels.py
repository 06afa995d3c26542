#!/usr/bin/env python3
"""Benchmark, label operations and graphene: this library (through its C ABI) against
cloud-volume.

    target/venv/bin/python bench/run_labels.py [--quick] [--rounds N] [--repeats N] [--out FILE]

Cells:
  unique    `unique` of the whole 512x512x128 uint64 compressed_segmentation layer of
            bench/run.py (target/bench-layers/full/cseg, gzip'd chunk files): ours
            `cv_unique` (bench/labels_bench.c) vs cloud-volume's `vol.unique(vol.bounds)`;
  graphene  a root-id cutout of a whole 512x512x64 graphene layer (uint64 compressed_segmentation
            supervoxels, about 5,000 distinct ids, chunks 128x128x64, gzip) through the
            loopback PyChunkedGraph double (tests/servers/chunkedgraph.py): ours
            `cv_cutout_into` on graphene:// (bench/points_bench.c cutout) vs cloud-volume's
            `CloudVolume(url, agglomerate=True)[bounds]`.
Each reader runs in its own processes, readers interleaved, after the CPUs are idle; the table
shows medians over every timed run (the first run of each process is a warm-up) and the peak
RSS (VmHWM) of the process. Outputs are checked: the unique labels' sum, and the cutouts'
checksums, must agree between the readers. Writes target/bench/labels.md (or --out).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BENCH, MIB, ROOT, base_args, build, checksum_bytes, fmt, hwm_kb, idle_summary, log, machine_info,
    machine_lines, make_read_layers, measured, merge, ratio, run_json, versions,
)

BUILD = BENCH / "labels"
GRAPH_ROOT = ROOT / "target" / "bench-layers" / "graphene"
DOUBLE = ROOT / "tests" / "servers" / "chunkedgraph.py"
TOKEN = "0123456789abcdef0123456789abcdef"
SHAPE = (512, 512, 64)
CHUNK = (128, 128, 64)
BLOB = (20, 20, 8)
BITS = {"1": 10, "2": 10, "3": 9, "4": 8}
GENERATOR_VERSION = 1
READERS = ["ours", "cloud-volume"]


def encode(layer, x, y, z, segid):
    import numpy as np

    ct = BITS[str(layer)]
    sb = 64 - 8 - 3 * ct
    u = np.uint64
    return (u(layer) << u(56)) | (u(x) << u(sb + 2 * ct)) | (u(y) << u(sb + ct)) | (u(z) << u(sb)) | u(segid)


def make_graphene():
    """The graphene fixture: supervoxels written by cloud-volume, a four-layer graph."""
    import numpy as np
    from cloudvolume import CloudVolume

    stamp = json.dumps({"gen": GENERATOR_VERSION, "shape": SHAPE, "chunk": CHUNK, "blob": BLOB}, sort_keys=True)
    if (GRAPH_ROOT / "stamp").exists() and (GRAPH_ROOT / "stamp").read_text() == stamp:
        log(f"graphene: reusing {GRAPH_ROOT}")
        return
    shutil.rmtree(GRAPH_ROOT, ignore_errors=True)
    GRAPH_ROOT.mkdir(parents=True)
    t = time.time()
    x, y, z = np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij")
    blob = ((x // BLOB[0]) * 1000 + (y // BLOB[1])) * 100 + z // BLOB[2]
    chunk = (x // CHUNK[0]) * 16 + (y // CHUNK[1]) * 4 + z // CHUNK[2]
    uniq, inv = np.unique(blob * 64 + chunk, return_inverse=True)
    cx, cy, cz = (uniq % 64) // 16, (uniq % 16) // 4, uniq % 4
    segid = np.zeros(len(uniq), dtype=np.int64)
    seen = {}
    for i, c in enumerate(zip(cx.tolist(), cy.tolist(), cz.tolist())):
        seen[c] = seen.get(c, 0) + 1
        segid[i] = seen[c]
    svs = np.array([encode(1, a, b, c, s) for a, b, c, s in zip(cx, cy, cz, segid)], dtype=np.uint64)
    l2 = np.array([encode(2, a, b, c, 1 + s // 4) for a, b, c, s in zip(cx, cy, cz, segid)], dtype=np.uint64)
    l3 = np.array([encode(3, a // 2, b // 2, c // 2, 1 + (s // 16) + 100 * (a % 2) + 200 * (b % 2))
                   for a, b, c, s in zip(cx, cy, cz, segid)], dtype=np.uint64)
    roots = np.array([encode(4, 0, 0, 0, 1 + int(v % np.uint64(1 << 20)) // 3) for v in l3], dtype=np.uint64)
    rows = np.stack([svs, l2, l3, roots], axis=1)
    np.save(GRAPH_ROOT / "graph.npy", rows)
    vol = svs[inv].reshape(SHAPE)
    info = CloudVolume.create_new_info(1, "segmentation", "uint64", "compressed_segmentation", [8, 8, 40],
                                       [0, 0, 0], list(SHAPE), chunk_size=list(CHUNK))
    cv = CloudVolume(f"file://{GRAPH_ROOT / 'ws'}", info=info, progress=False)
    cv.commit_info()
    cv[:, :, :] = vol
    tinfo = dict(info, graph={"chunk_size": list(CHUNK), "n_bits_for_layer_id": 8, "cv_mip": 0, "n_layers": 4,
                              "spatial_bit_masks": BITS, "fan_out": 2},
                 app={"supported_api_versions": [0, 1]}, chunks_start_at_voxel_offset=True)
    (GRAPH_ROOT / "graph.json").write_text(json.dumps({
        "tables": {"bench": {"info": tinfo, "data_dir": "ws"}}, "n_layers": 4, "n_bits_for_layer_id": 8,
        "edit_timestamp": 0, "before": "graph.npy", "after": "graph.npy"}))
    (GRAPH_ROOT / "stamp").write_text(stamp)
    log(f"graphene: {len(svs)} supervoxels, {len(np.unique(roots))} roots, written in {time.time() - t:.1f} s")


# ----------------------------------------------------------------------------------------------
# Reader subprocesses: python bench/run_labels.py --reader cloud-volume --mode unique|graphene ...


def reader_main(args):
    import numpy as np
    from cloudvolume import CloudVolume

    if args.mode == "unique":
        vol = CloudVolume(args.target, progress=False)

        def read():
            return np.array(sorted(int(v) for v in vol.unique(vol.bounds, 0)), dtype=np.uint64)
    else:
        vol = CloudVolume(args.target, progress=False, secrets=TOKEN, agglomerate=True)
        b = vol.bounds

        def read():
            return vol[b.minpt[0]:b.maxpt[0], b.minpt[1]:b.maxpt[1], b.minpt[2]:b.maxpt[2]]
    hwm_before = hwm_kb()
    runs, cpus, arr = [], [], None
    for _ in range(args.repeats):
        arr = None
        t, c = time.perf_counter(), time.process_time()
        arr = read()
        runs.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    hwm = hwm_kb()
    arr = np.asarray(arr)
    if args.mode == "unique":
        checksum = f"0x{int(arr.astype(np.uint64).sum(dtype=np.uint64)):016x}"
        nbytes = int(np.prod(vol.bounds.size3())) * 8
    else:
        checksum = checksum_bytes(arr)
        nbytes = int(arr.nbytes)
    print(json.dumps({"bytes": nbytes, "runs_s": runs, "cpu_s": cpus, "hwm_before_kb": hwm_before, "hwm_kb": hwm,
                      "checksum": checksum, "n_labels": int(arr.size) if args.mode == "unique" else None}), flush=True)


def reader_cmd(reader, mode, target, repeats):
    if reader == "ours":
        if mode == "unique":
            return [str(BUILD / "labels_bench"), "unique", target, str(repeats)]
        return [str(BUILD / "points_bench"), "cutout", target, str(repeats), "-", json.dumps({"secrets": TOKEN})]
    return [sys.executable, str(Path(__file__).resolve()), "--reader", reader, "--mode", mode, "--target", target,
            "--repeats", str(repeats)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    base_args(ap)
    ap.add_argument("--reader", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--target", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reader:
        return reader_main(args)
    rounds = args.rounds or (1 if args.quick else 3)
    repeats = args.repeats or (2 if args.quick else 4)
    if args.max_wait is None:
        args.max_wait = 5 if args.quick else 300
    if not args.skip_build:
        build(BUILD, ["labels_bench", "points_bench"], examples=())
    seg_dir = make_read_layers("full", ["cseg"])
    make_graphene()
    double = subprocess.Popen([sys.executable, str(DOUBLE), "--fixture", str(GRAPH_ROOT), "--token", TOKEN,
                               "--port", "0"], stdout=subprocess.PIPE, text=True)
    port = int(double.stdout.readline().split()[1])
    targets = {"unique": f"file://{seg_dir / 'cseg'}",
               "graphene": f"graphene://http://127.0.0.1:{port}/segmentation/table/bench"}
    results = {}
    every = []
    try:
        for mode, target in targets.items():
            procs = {r: [] for r in READERS}
            for rnd in range(rounds):
                order = READERS[rnd % 2:] + READERS[:rnd % 2]
                for r in order:
                    res = measured(lambda: run_json(reader_cmd(r, mode, target, repeats)), args, servers=(double.pid,))
                    if "voxels" in res:  # labels_bench: the layer's bytes, as the Python reader reports them
                        res.setdefault("bytes", res["voxels"] * 8)
                    log(f"{mode:9s} {r:13s} round {rnd + 1}: "
                        + (f"{min(res['runs_s'][1:] or res['runs_s']):.3f} s  hwm {res['hwm_kb'] / 1024:.1f} MiB"
                           if "error" not in res else f"ERROR {res['error']}"))
                    procs[r].append(res)
                    every.append(res)
            results[mode] = {r: merge(p) for r, p in procs.items()}
    finally:
        double.send_signal(signal.SIGTERM)
        double.wait(timeout=10)
    lines = ["| cell | ours s | cloud-volume s | cloud-volume ÷ ours | peak RSS MiB: ours / cv | output MiB | outputs agree |",
             "|---|--:|--:|--:|--:|--:|---|"]
    for mode, res in results.items():
        o, c = res["ours"], res["cloud-volume"]
        if "error" in o or "error" in c:
            lines.append(f"| {mode} | error: {o.get('error') or c.get('error')} |")
            continue
        out_mib = o["bytes"] / MIB if mode == "graphene" else None
        lines.append(f"| {mode} | {o['median_s']:.4f} | {c['median_s']:.4f} | {fmt(ratio(c['median_s'], o['median_s']), 2)}× "
                     f"| {o['rss_mib']:.1f} / {c['rss_mib']:.1f} | {fmt(out_mib, 0)} "
                     f"| {'yes' if o['checksums'] == c['checksums'] else 'NO: ' + str(o['checksums'] + c['checksums'])} |")
    machine = machine_info()
    report = "\n".join([
        "## Label operations and graphene (bench/run_labels.py)", "",
        *machine_lines(machine, versions(BUILD)), "",
        f"- {rounds} process(es) per reader and cell, {repeats} runs each (first a warm-up); medians. "
        + idle_summary(every) + ".", "",
        *lines, ""])
    out = Path(args.out) if args.out else BENCH / ("labels.quick.md" if args.quick else "labels.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
