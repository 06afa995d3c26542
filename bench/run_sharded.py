#!/usr/bin/env python3
"""Benchmark, sharded layers: this library (through its C ABI) against cloud-volume and
tensorstore on a sharded compressed_segmentation layer.

    target/venv/bin/python bench/run_sharded.py [--quick] [--rounds N] [--repeats N] [--out FILE]

Steps:
 1. build the release library and the latency proxy (cargo), compile bench/points_bench.c
    against a private copy of libcloudvolume.so in target/bench/sharded/;
 2. write the layer with tensorstore into target/bench-layers/sharded/seg (reused while its
    stamp matches): 512x512x128 uint64 compressed_segmentation (8^3 blocks), 64^3 chunks,
    sharded neuroglancer_uint64_sharded_v1 with identity hash and gzip data and indices
    (FAFB-like settings: 4 shards of 4 minishards of 8 chunks); 10,000 random points (fixed
    seed) as int64 x,y,z;
 3. read the whole volume, and the points, with each reader in its own processes, over
    file:// and over loopback HTTP (nginx) behind the latency proxy (+20 ms per request);
    count ours' requests per point after a warm-up (points_bench twice);
 4. write the markdown table to target/bench/sharded.md (or --out).

Shared helpers (idle waits, servers, merging) live in bench/common.py.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BENCH, MIB, ROOT, Nginx, Proxy, base_args, build, checksum_bytes, fmt, hwm_kb, idle_summary, log,
    machine_info, machine_lines, measured, merge, ratio, run_json, seg_volume, versions, wait_quiet,
)

BUILD = BENCH / "sharded"
LAYER_ROOT = ROOT / "target" / "bench-layers" / "sharded"
LATENCY_MS = 20

SHAPE = (512, 512, 128)
CHUNK = (64, 64, 64)
BLOCK = (8, 8, 8)
# Grid 8x8x2 = 128 chunks, 7 bits of compressed Morton code: 2^3 chunks (a 128x128x128 cube) per
# minishard entry group, 4 minishards per shard, 4 shards (each a 256x256x128 region).
SHARDING = {
    "@type": "neuroglancer_uint64_sharded_v1",
    "hash": "identity",
    "preshift_bits": 3,
    "minishard_bits": 2,
    "shard_bits": 2,
    "minishard_index_encoding": "gzip",
    "data_encoding": "gzip",
}
N_POINTS = 10_000
SEED = 20_261_121
GENERATOR_VERSION = 1
READERS = ["ours", "cloud-volume", "tensorstore"]






# ----------------------------------------------------------------------------------------------
# Sharded part: layer, points




def make_layer():
    """The sharded layer (written by tensorstore), the points, and the expected outputs."""
    import numpy as np
    import tensorstore as ts

    stamp = json.dumps({"gen": GENERATOR_VERSION, "shape": SHAPE, "chunk": CHUNK, "block": BLOCK,
                        "sharding": SHARDING, "n_points": N_POINTS, "seed": SEED, "tensorstore": __import__("importlib.metadata").metadata.version("tensorstore")},
                       sort_keys=True)
    stamp_file = LAYER_ROOT / "stamp"
    if stamp_file.exists() and stamp_file.read_text() == stamp and (LAYER_ROOT / "expected.json").exists():
        log(f"layer: reusing {LAYER_ROOT}")
        return json.loads((LAYER_ROOT / "expected.json").read_text())
    shutil.rmtree(LAYER_ROOT, ignore_errors=True)
    LAYER_ROOT.mkdir(parents=True)
    t = time.time()
    vol = seg_volume(SHAPE)
    vol.reshape(-1, order="F").tofile(LAYER_ROOT / "source.u64")
    spec = {
        "driver": "neuroglancer_precomputed",
        "kvstore": {"driver": "file", "path": f"{LAYER_ROOT / 'seg'}/"},
        "multiscale_metadata": {"type": "segmentation", "data_type": "uint64", "num_channels": 1},
        "scale_metadata": {"size": list(SHAPE), "resolution": [8, 8, 40], "voxel_offset": [0, 0, 0],
                           "encoding": "compressed_segmentation", "compressed_segmentation_block_size": list(BLOCK),
                           "chunk_size": list(CHUNK), "sharding": SHARDING},
        "create": True,
    }
    store = ts.open(spec).result()
    store[:, :, :, 0].write(vol).result()
    rng = np.random.default_rng(SEED)
    pts = np.stack([rng.integers(0, SHAPE[d], N_POINTS, dtype=np.int64) for d in range(3)], axis=1)
    pts.astype("<i8").tofile(LAYER_ROOT / "points.i64")
    vals = vol[pts[:, 0], pts[:, 1], pts[:, 2]]
    expected = {
        "whole_checksum": checksum_bytes(vol),
        "points_checksum": checksum_bytes(vals),
        "stored_bytes": sum(p.stat().st_size for p in (LAYER_ROOT / "seg").rglob("*") if p.is_file()),
        "files": sorted(str(p.relative_to(LAYER_ROOT / "seg")) for p in (LAYER_ROOT / "seg").rglob("*") if p.is_file()),
        "distinct_chunks_hit": len({tuple(p // np.array(CHUNK)) for p in pts}),
    }
    (LAYER_ROOT / "expected.json").write_text(json.dumps(expected, indent=1))
    stamp_file.write_text(stamp)
    log(f"layer: wrote {LAYER_ROOT / 'seg'} ({expected['stored_bytes'] / MIB:.2f} MiB stored) in {time.time() - t:.1f} s")
    return expected


# ----------------------------------------------------------------------------------------------
# Reader subprocesses: python bench/run_sharded.py --reader R --mode whole|points ...


def reader_main(args):
    import numpy as np

    pts = None
    if args.mode == "points":
        pts = np.fromfile(args.points, dtype="<i8").reshape(-1, 3)
    t = time.perf_counter()
    if args.reader == "cloud-volume":
        from cloudvolume import CloudVolume

        vol = CloudVolume(args.target, mip=0, progress=False)
        if args.mode == "whole":
            b = vol.bounds

            def read():
                return vol[b.minpt[0]:b.maxpt[0], b.minpt[1]:b.maxpt[1], b.minpt[2]:b.maxpt[2]]
        else:
            plist = [tuple(int(v) for v in p) for p in pts]

            def read():
                res = vol.scattered_points(plist)
                return np.array([res[p] for p in plist], dtype=vol.dtype)

    elif args.reader == "tensorstore":
        import tensorstore as ts

        store = ts.open(json.loads(args.target), read=True).result()
        if args.mode == "whole":
            def read():
                return store.read(order="F").result()
        else:
            xs, ys, zs = (np.ascontiguousarray(pts[:, d]) for d in range(3))

            def read():
                return store.vindex[xs, ys, zs].read().result()
    else:
        raise SystemExit(f"unknown reader {args.reader}")
    open_s = time.perf_counter() - t
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
    if args.mode == "points":
        arr = np.ascontiguousarray(arr.reshape(-1))
    if args.dump:
        arr.reshape(-1, order="F").tofile(args.dump)
    print(json.dumps({"bytes": int(arr.nbytes), "open_s": open_s, "runs_s": runs, "cpu_s": cpus,
                      "hwm_before_kb": hwm_before, "hwm_kb": hwm, "checksum": checksum_bytes(arr),
                      "n_points": 0 if pts is None else len(pts)}), flush=True)


def target_for(reader, transport, port):
    layer = LAYER_ROOT / "seg"
    if reader in ("ours", "cloud-volume"):
        return f"file://{layer}" if transport == "file" else f"http://127.0.0.1:{port}/seg"
    kv = ({"driver": "file", "path": f"{layer}/"} if transport == "file"
          else {"driver": "http", "base_url": f"http://127.0.0.1:{port}/seg/"})
    return json.dumps({"driver": "neuroglancer_precomputed", "kvstore": kv})


def reader_cmd(reader, mode, target, repeats, dump=None):
    pfile = str(LAYER_ROOT / "points.i64")
    env = dict(os.environ)
    if reader == "ours":
        cmd = [str(BUILD / "points_bench"), "cutout" if mode == "whole" else "points", target, str(repeats),
               "-" if mode == "whole" else pfile]
        if dump:
            env["POINTS_BENCH_DUMP"] = str(dump)
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--reader", reader, "--mode", mode, "--target", target,
               "--points", pfile, "--repeats", str(repeats)]
        if dump:
            cmd += ["--dump", str(dump)]
    return cmd, env


def runs_for(reader, mode, args):
    """Runs per process: a warm-up and --repeats timed runs; cloud-volume's points take 25-40 s
    a run (one download per point), so its processes do one run, timed, without warm-up (it
    keeps no cache between runs anyway)."""
    if reader == "cloud-volume" and mode == "points":
        return 1
    return args.repeats + 1


def twice_requests(target, proxy):
    """Ours, points twice in one process: proxy requests of the second (warm) run."""
    cmd = [str(BUILD / "points_bench"), "twice", target, "2", str(LAYER_ROOT / "points.i64")]
    proxy.reset()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if '"warm"' not in line:
        err = p.stderr.read()
        p.wait()
        return {"error": [err.strip() or line.strip()]}
    first = proxy.stats()
    proxy.reset()
    p.stdin.write("go\n")
    p.stdin.flush()
    out, err = p.communicate()
    second = proxy.stats()
    if p.returncode != 0:
        return {"error": [err.strip()]}
    res = json.loads(out.strip().splitlines()[-1])
    return {"first": first, "second": second, "runs_s": res["runs_s"], "n_points": res["n_points"],
            "checksum": res["checksum"]}


# ----------------------------------------------------------------------------------------------
# Report


def build_report(results, requests, expected, args, machine, vers, all_procs, comparisons):
    L = ["# Sharded layers\n"]
    L.append("A sharded compressed_segmentation layer read whole and at 10,000 scattered points with this library "
             "(through its C ABI, `bench/points_bench.c`), cloud-volume and tensorstore. Generated by "
             f"`target/venv/bin/python bench/run_sharded.py{' --quick' if args.quick else ''}`.\n")
    L.extend(machine_lines(machine, vers))
    L.append("")
    L.append("Method:\n")
    sh = SHARDING
    L.append(f"- Layer written by tensorstore {vers['tensorstore']}: {'x'.join(map(str, SHAPE))} uint64 "
             f"({SHAPE[0] * SHAPE[1] * SHAPE[2] * 8 / MIB:.0f} MiB decoded; blocky labels, ids ~7e17, some 0, the "
             f"generator of bench/run.py), compressed_segmentation with {'x'.join(map(str, BLOCK))} blocks, chunks "
             f"{'x'.join(map(str, CHUNK))} (grid 8x8x2 = 128 chunks), `neuroglancer_uint64_sharded_v1` with "
             f"identity hash, preshift_bits {sh['preshift_bits']}, minishard_bits {sh['minishard_bits']}, "
             f"shard_bits {sh['shard_bits']}, gzip data and gzip minishard indices (FAFB-like encodings; "
             f"{2 ** sh['shard_bits']} shards of {2 ** sh['minishard_bits']} minishards of "
             f"{2 ** sh['preshift_bits']} chunks). Stored: {expected['stored_bytes'] / MIB:.2f} MiB in "
             f"{len(expected['files'])} files.")
    L.append(f"- **whole**: the whole volume at mip 0 into memory. **points**: {N_POINTS:,} random voxels "
             f"(uniform over the volume, seed {SEED}); they touch {expected['distinct_chunks_hit']} distinct chunks "
             "(all of them), so every reader fetches and decodes every chunk once per call.")
    L.append(f"- Every reader runs in its own processes: {args.rounds} process(es) per reader and cell, readers "
             f"interleaved (order rotated each round), each doing {args.repeats + 1} runs of which the first is a "
             "warm-up (cloud-volume's points: one run per process, no warm-up, as a run takes half a minute and "
             "cloud-volume keeps nothing between runs); the table shows the **median** over all timed runs. Before each process the driver waits "
             f"until the CPUs are ≥ {args.min_idle:.0%} idle (at most {args.max_wait:.0f} s) and re-runs a process "
             f"during which other work used more than {args.max_others} cores ({args.attempts} attempts at most); "
             + idle_summary(all_procs) + ". Peak RSS is VmHWM of the process (interpreter included for Python).")
    L.append("- **ours**: `points_bench` (C, linked to `libcloudvolume.so`), `cv_open` with default options, "
             "`cv_cutout_into` of the bounds (whole) or `cv_scattered_points` (points), output buffer allocated "
             "once. **cloud-volume**: `CloudVolume(url, progress=False)`, `vol[bounds]` or "
             "`vol.scattered_points(pts)` (a dict, put back in point order). **tensorstore**: "
             "`ts.open({'driver': 'neuroglancer_precomputed', 'kvstore': ...})` with the default context, "
             "`store.read(order='F')` or `store.vindex[xs, ys, zs].read()`.")
    L.append(f"- **file**: `file://` (warm page cache). **http+20ms**: nginx (1 worker) on loopback behind "
             f"`examples/latency_proxy.rs`, which holds each request {LATENCY_MS} ms (Range requests for shard "
             "parts). The proxy counts requests; *requests per run* is the requests of a process divided by its "
             "runs (open included); the *requests per point* table counts ours' second of two point reads in one "
             "process (`points_bench twice`), i.e. after the shard and minishard indices are cached.")
    L.append("- Correctness: every output's checksum (sum of uint64 words) is compared with the source volume's "
             "and with the values at the points; over `file://` the first process of each reader also dumps its "
             "whole output, compared byte for byte with the source.\n")

    L.append("| read | transport | ours | cloud-volume | tensorstore | ours ÷ cv | ours ÷ ts "
             "| peak RSS MiB ours / cv / ts | requests per run ours / cv / ts |")
    L.append("|---|---|--:|--:|--:|--:|--:|---|---|")
    notes = []
    for (mode, transport), row in results.items():
        def speed(r):
            if r is None or "error" in r:
                return None
            return r["mbps"] if mode == "whole" else r["n_points"] / r["median_s"]

        def cell(r, name):
            if r is None:
                return "n/a"
            if "error" in r:
                notes.append(f"{mode}/{transport}/{name}: failed: {' '.join(r['error'])}")
                return "fail"
            unit = "MB/s" if mode == "whole" else "pts/s"
            return f"{fmt(speed(r))} {unit}"

        def rss(r):
            return "–" if r is None or "error" in r else fmt(r["rss_mib"])

        def reqs(r):
            if r is None or "error" in r or "proxy" not in r:
                return "–"
            return fmt(r["proxy"]["requests_per_process"] / r["proxy"]["runs_per_process"], 1)

        o, c, t = (row.get(k) for k in READERS)
        rc, rt = ratio(speed(o), speed(c)), ratio(speed(o), speed(t))
        L.append(f"| {mode} | {transport} | {cell(o, 'ours')} | {cell(c, 'cloud-volume')} | {cell(t, 'tensorstore')} "
                 f"| {fmt(rc, 2) + '×' if rc else '–'} | {fmt(rt, 2) + '×' if rt else '–'} "
                 f"| {rss(o)} / {rss(c)} / {rss(t)} "
                 f"| {reqs(o) + ' / ' + reqs(c) + ' / ' + reqs(t) if transport != 'file' else ''} |")
        for name, r in zip(READERS, (o, c, t)):
            if r and "error" not in r:
                want = expected["whole_checksum" if mode == "whole" else "points_checksum"]
                if any(cs != want for cs in r["checksums"]):
                    notes.append(f"{mode}/{transport}/{name}: output checksum {r['checksums']} differs from the "
                                 f"source's {want}")
                if r.get("failed_processes"):
                    notes.append(f"{mode}/{transport}/{name}: some processes failed: {r['failed_processes']}")
    L.append("")
    if not any("differs" in n for n in notes):
        L.append("- All outputs match the source (checksums of every process; full buffers over `file://`).")
    for n in notes:
        L.append(f"- {n}")
    for k, v in comparisons.items():
        L.append(f"- full output, {k}: {v}")
    L.append("")
    if requests:
        L.append("Requests per point, ours (`points_bench twice`, proxy counts; 10,000 points in "
                 f"{expected['distinct_chunks_hit']} chunks):\n")
        L.append("| transport | first run: requests (per point) | second run, warm: requests (per point) | "
                 "second run s |")
        L.append("|---|--:|--:|--:|")
        for transport, r in requests.items():
            if "error" in r:
                L.append(f"| {transport} | fail: {' '.join(r['error'])} | | |")
                continue
            n = r["n_points"]
            a, b = r["first"]["requests"], r["second"]["requests"]
            L.append(f"| {transport} | {a} ({a / n:.4f}) | {b} ({b / n:.4f}) | {r['runs_s'][1]:.3f} |")
        L.append("")
    L.append("CPU (median CPU-seconds of the process per run ÷ wall seconds: threads kept busy):\n")
    L.append("| read | transport | ours | cloud-volume | tensorstore |")
    L.append("|---|---|--:|--:|--:|")
    for (mode, transport), row in results.items():
        cells = [fmt(row[k]["busy"], 2) if row.get(k) and "error" not in row[k] else "–" for k in READERS]
        L.append(f"| {mode} | {transport} | " + " | ".join(cells) + " |")
    L.append("")

    L.append("Targets:\n")
    L.append("| target | measured | |")
    L.append("|---|---|---|")

    def get(mode, transport, reader):
        r = results.get((mode, transport), {}).get(reader)
        return None if r is None or "error" in r else r

    def spd(mode, r):
        return r["mbps"] if mode == "whole" else r["n_points"] / r["median_s"]

    for transport in [t for t in ("file", "http", "http+20ms") if ("whole", t) in results]:
        o = get("whole", transport, "ours")
        refs = [(n, get("whole", transport, n)) for n in ("cloud-volume", "tensorstore")]
        refs = [(n, r) for n, r in refs if r]
        if o and refs:
            n, best = max(refs, key=lambda x: spd("whole", x[1]))
            rr = spd("whole", o) / spd("whole", best)
            st = "met" if rr >= 2 else f"**missed** (needs {2 * spd('whole', best):,.0f} MB/s; {100 * (1 - rr / 2):.0f}% short)"
            L.append(f"| whole volume, {transport}: ≥ 2× the faster of cv and ts | {rr:.2f}× "
                     f"({spd('whole', o):,.0f} vs {n} {spd('whole', best):,.0f} MB/s) | {st} |")
    for transport in [t for t in ("file", "http", "http+20ms") if ("points", t) in results]:
        o = get("points", transport, "ours")
        for name, factor in (("cloud-volume", 5), ("tensorstore", 1)):
            r = get("points", transport, name)
            if o and r:
                rr = spd("points", o) / spd("points", r)
                st = ("met" if rr >= factor else
                      f"**missed** (needs {factor * spd('points', r):,.0f} pts/s; {100 * (1 - rr / factor):.0f}% short)")
                L.append(f"| points, {transport}: ≥ {factor}× {name} | {rr:.2f}× ({spd('points', o):,.0f} vs "
                         f"{spd('points', r):,.0f} pts/s) | {st} |")
    for transport, r in requests.items():
        if "error" not in r:
            per = r["second"]["requests"] / r["n_points"]
            L.append(f"| requests per point after warm-up, {transport}: ≤ 1 | {per:.4f} "
                     f"({r['second']['requests']} requests for {r['n_points']:,} points) | {'met' if per <= 1 else '**missed**'} |")
    L.append("")
    return "\n".join(L)


def compare_full(dump, source):
    import numpy as np

    a = np.fromfile(dump, dtype="<u8")
    b = np.memmap(source, dtype="<u8", mode="r")
    if a.shape != b.shape:
        return f"size differs ({a.size} vs {b.size} voxels)"
    n = int((a != b).sum())
    return "identical to the source" if n == 0 else f"{n} of {a.size} voxels differ from the source"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    base_args(ap)
    ap.add_argument("--reader", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--target", help=argparse.SUPPRESS)
    ap.add_argument("--points", help=argparse.SUPPRESS)
    ap.add_argument("--dump", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reader:
        args.repeats = args.repeats or 1
        return reader_main(args)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.repeats = args.repeats or (1 if args.quick else 2)
    args.max_wait = args.max_wait if args.max_wait is not None else (5.0 if args.quick else 300.0)
    transports = ["file", "http+20ms"]
    if args.transports:
        transports = [t for t in args.transports.split(",") if t in ("file", "http", "http+20ms")]
    out = Path(args.out) if args.out else BENCH / ("sharded.quick.md" if args.quick else "sharded.md")
    t_start = time.time()

    if not args.skip_build:
        build(BUILD, ["points_bench"])
    expected = make_layer()
    nginx = Nginx(LAYER_ROOT)
    try:
        proxy = Proxy(BUILD / "latency_proxy", nginx.port, LATENCY_MS)
    except BaseException:
        nginx.stop()
        raise
    ports = {"http": nginx.port, "http+20ms": proxy.port}
    results, requests, all_procs, comparisons = {}, {}, [], {}
    dump_dir = Path(tempfile.mkdtemp(prefix="cv-sharded-dump-", dir=BENCH))
    try:
        for transport in transports:
            servers = [] if transport == "file" else [nginx.proc.pid, proxy.proc.pid]
            latency = transport == "http+20ms"
            for mode in ("whole", "points"):
                procs = {r: [] for r in READERS}
                for rnd in range(args.rounds):
                    order = READERS[rnd % 3:] + READERS[: rnd % 3]
                    for reader in order:
                        target = target_for(reader, transport, ports.get(transport))
                        dump = (dump_dir / f"{reader}.bin") if (transport == "file" and mode == "whole" and rnd == 0) else None
                        cmd, env = reader_cmd(reader, mode, target, runs_for(reader, mode, args), dump)

                        def take(res):
                            res["proxy"] = proxy.stats()

                        res = measured(lambda: run_json(cmd, env), args, servers,
                                       proxy.reset if latency else None, take if latency else None)
                        all_procs.append(res)
                        procs[reader].append(res)
                        if "error" in res:
                            log(f"{mode:6s} {transport:9s} {reader:12s} FAILED: {res['error']}")
                            continue
                        med = statistics.median(res["runs_s"][1:] or res["runs_s"])
                        sp = (f"{res['bytes'] / med / 1e6:8.1f} MB/s" if mode == "whole"
                              else f"{res['n_points'] / med:10.0f} pts/s")
                        log(f"{mode:6s} {transport:9s} {reader:12s} round {rnd}: {sp}  hwm {res['hwm_kb'] / 1024:6.1f} MiB"
                            f"  idle {res['cpu_idle_before']:.0%} others {res['other_cores']:.2f}"
                            + (f"  proxy {res['proxy']['requests']} req, peak {res['proxy']['peak_in_flight']}" if "proxy" in res else ""))
                        if dump and dump.exists():
                            comparisons[f"{reader}, file"] = compare_full(dump, LAYER_ROOT / "source.u64")
                            dump.unlink()
                results[(mode, transport)] = {r: merge(p, warmup=1 if runs_for(r, mode, args) > 1 else 0)
                                              for r, p in procs.items() if p}
            if transport == "http+20ms":  # the only transport with a request counter in front
                target = target_for("ours", transport, ports[transport])
                wait_quiet(args.min_idle, args.max_wait)
                requests[transport] = twice_requests(target, proxy)
                log(f"requests {transport}: {requests[transport]}")
    finally:
        proxy.stop()
        nginx.stop()
        shutil.rmtree(dump_dir, ignore_errors=True)

    report = build_report(results, requests, expected, args, machine_info(), versions(BUILD), all_procs, comparisons)
    report += f"\n(run took {(time.time() - t_start) / 60:.1f} min, waits for an idle machine included)\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)
    log(f"wrote {out}")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{k[0]}/{k[1]}": v for k, v in results.items()} | {"requests": requests},
                                              indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
