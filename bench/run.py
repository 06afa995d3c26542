#!/usr/bin/env python3
"""Benchmark: this library (through its C ABI) against cloud-volume and tensorstore.

    target/venv/bin/python bench/run.py [--quick] [--repeats N] [--out FILE] [--only LAYER,...]

Steps:
 1. build the release library and the latency proxy example (cargo), compile
    bench/cutout_bench.c against a private copy of libcloudvolume.so;
 2. write the test layers with cloud-volume into target/bench-layers/<size>/ (reused when the
    stamp matches): 1024x1024x128 uint8 raw uncompressed, the same gzip'd (cloud-volume's
    default .gz files), the same as jpeg, and 512x512x128 uint64 compressed_segmentation
    (gzip'd, as cloud-volume writes it); chunks 128x128x64;
 3. read each whole volume with each reader, each in its own subprocess, over file://, over
    loopback HTTP (nginx) and over loopback HTTP with 20 ms added per request (latency proxy);
 4. print the table and write BENCHMARKS.md (or --out) with the machine, versions, method,
    results and targets.

`--quick` uses small volumes and fewer repeats (a smoke run) and writes
target/bench/BENCHMARKS.quick.md unless --out is given.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import (  # noqa: E402
    BENCH, MIB, READ_LAYERS, READ_SIZES, ROOT, Nginx, Proxy, build, checksum_bytes, fmt, hwm_kb, idle_summary,
    log, machine_info, make_read_layers, measured, merge, ratio, read_layer_shape, run_json, versions,
)

BUILD = BENCH
LATENCY_MS = 20

TRANSPORTS = ["file", "http", "http+20ms"]
READERS = ["ours", "cloud-volume", "tensorstore"]
# Extra reader on the latency-bound layer: ours with more requests in flight than the default.
EXTRA_PARALLEL = 128
OURS_MORE = f"ours, parallel={EXTRA_PARALLEL}"


def readers_for(layer):
    return READERS + ([OURS_MORE] if layer == "small" else [])


# ----------------------------------------------------------------------------------------------
# Reader subprocesses (python bench/run.py --reader ...): one reader, one volume, N cutouts.


def reader_main(args):
    import resource

    import numpy as np

    box = [int(v) for v in args.box.split(",")]
    x0, y0, z0, x1, y1, z1 = box
    t = time.perf_counter()
    if args.reader == "cloud-volume":
        from cloudvolume import CloudVolume

        import_s = time.perf_counter() - t
        t = time.perf_counter()
        # Defaults for parallelism (parallel=1: one process; cloud-files threads for http).
        vol = CloudVolume(args.target, mip=0, progress=False)

        def read():
            return vol[x0:x1, y0:y1, z0:z1]

    elif args.reader == "tensorstore":
        import tensorstore as ts

        import_s = time.perf_counter() - t
        t = time.perf_counter()
        store = ts.open(json.loads(args.target), read=True).result()  # default context
        view = store[x0:x1, y0:y1, z0:z1, :]

        def read():
            return view.read(order="F").result()

    else:
        raise SystemExit(f"unknown reader {args.reader}")
    open_s = time.perf_counter() - t
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm_before = hwm_kb()
    runs, cpus = [], []
    arr = None
    for i in range(args.repeats):
        arr = None  # free the previous result first, as a caller reusing its variable would
        t, c = time.perf_counter(), time.process_time()
        arr = read()
        runs.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = hwm_kb()
    arr = np.asarray(arr)
    if not arr.flags["F_CONTIGUOUS"]:
        arr = np.asfortranarray(arr)
    out = {
        "bytes": int(arr.nbytes),
        "shape": list(arr.shape),
        "import_s": import_s,
        "open_s": open_s,
        "runs_s": runs,
        "cpu_s": cpus,
        "rss_before_kb": rss_before,
        "max_rss_kb": max_rss,
        "hwm_before_kb": hwm_before,
        "hwm_kb": hwm,
        "checksum": checksum_bytes(arr),
    }
    if args.dump:
        arr.reshape(-1, order="F").tofile(args.dump)
    print(json.dumps(out), flush=True)


def layer_bytes(base, layers):
    return {n: sum(p.stat().st_size for p in (base / n).rglob("*") if p.is_file()) for n in layers}


# ----------------------------------------------------------------------------------------------
# The matrix


def target_for(reader, layer, transport, base, ports):
    """What the reader opens, or (None, reason) when it cannot read this layer this way."""
    if transport == "file":
        prefix = None
    else:
        prefix = f"http://127.0.0.1:{ports[transport]}"
    if reader in ("ours", OURS_MORE, "cloud-volume"):
        return (f"file://{base / layer}" if prefix is None else f"{prefix}/{layer}"), None
    # tensorstore
    ts_layer = layer
    note = None
    if transport == "file":
        if layer == "gzip":
            return None, "tensorstore reads no .gz-suffixed files (gzip is an HTTP Content-Encoding to it)"
        if layer == "cseg":
            ts_layer, note = "cseg_plain", "un-gzipped copy (tensorstore reads no .gz files)"
        kv = {"driver": "file", "path": f"{base / ts_layer}/"}
    else:
        kv = {"driver": "http", "base_url": f"{prefix}/{ts_layer}/"}
    return json.dumps({"driver": "neuroglancer_precomputed", "kvstore": kv}), note


ALONE_PARALLEL = 128


def server_alone(port, base, layer, servers, runs=5):
    """The transport alone, as no reader can beat it: curl fetching every stored chunk file of
    the layer through `port` ({ALONE_PARALLEL} requests in flight, the bodies as stored,
    dropped), once to warm up and then `runs` times; the median seconds and the servers' CPU
    seconds per fetch (nginx, proxy)."""
    curl = shutil.which("curl")
    if not curl:
        return None
    layer_dir = base / layer
    urls = []
    for p in sorted(layer_dir.rglob("*")):
        if p.is_file() and p.name != "info" and not p.name.endswith(".stamp"):
            rel = p.relative_to(layer_dir).as_posix()
            urls.append(f"http://127.0.0.1:{port}/{layer}/{rel[:-3] if rel.endswith('.gz') else rel}")
    cfg = Path(tempfile.mkstemp(prefix="cv-bench-curl-", suffix=".cfg", dir=BUILD)[1])
    cfg.write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls))
    cmd = [curl, "-s", "--fail", "--parallel", "--parallel-max", str(ALONE_PARALLEL), "-K", str(cfg)]
    times, cpu = [], []
    try:
        for i in range(runs + 1):
            s0 = sum(common.pid_cpu_s(p) for p in servers)
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t1 = time.perf_counter()
            s1 = sum(common.pid_cpu_s(p) for p in servers)
            if i:
                times.append(t1 - t0)
                cpu.append(s1 - s0)
    finally:
        cfg.unlink(missing_ok=True)
    return {"s": statistics.median(times), "servers_cpu_s": statistics.median(cpu), "requests": len(urls)}


def reader_cmd(reader, target, box, repeats, dump=None):
    """(command line, environment) of one reader process doing `repeats` cutouts of `box`."""
    boxs = [str(v) for v in box]
    env = dict(os.environ)
    if reader in ("ours", OURS_MORE):
        cmd = [str(BUILD / "cutout_bench"), target, "0", *boxs, str(repeats)]
        if reader == OURS_MORE:
            cmd.append(json.dumps({"parallel": EXTRA_PARALLEL}))
        if dump:
            env["CUTOUT_BENCH_DUMP"] = str(dump)
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--reader", reader, "--target", target,
               "--box", ",".join(boxs), "--repeats", str(repeats)]
        if dump:
            cmd += ["--dump", str(dump)]
    return cmd, env


def compare_dumps(a, b, dtype):
    import numpy as np

    x = np.fromfile(a, dtype=dtype)
    y = np.fromfile(b, dtype=dtype)
    if x.shape != y.shape:
        return f"size differs ({x.size} vs {y.size})"
    ne = x != y
    n = int(ne.sum())
    if n == 0:
        return "identical"
    d = np.abs(x.astype(np.int64) - y.astype(np.int64)).max() if dtype == "uint8" else "-"
    return f"{n} of {x.size} voxels differ ({100.0 * n / x.size:.2f}%), max |diff| {d}"


# ----------------------------------------------------------------------------------------------
# Report


def capital(s):
    return s[:1].upper() + s[1:]


def build_report(results, layers_info, args, machine, vers, dumps_cmp, sizes, all_procs):
    L = []
    L.append("# Benchmarks\n")
    L.append(
        "Whole-volume reads with this library (through its C ABI, `bench/cutout_bench.c`), "
        "cloud-volume and tensorstore, over `file://`, loopback HTTP, and loopback HTTP with "
        f"{LATENCY_MS} ms added to every request. Generated by `target/venv/bin/python bench/run.py"
        f"{' --quick' if args.quick else ''}`; the notes at the end are kept across runs.\n"
    )
    L.append("## Machine and versions\n")
    L.append(f"- {machine['cores']} cores, {machine['cpu']} ({machine['cpu_flags']}), {machine['memory']} RAM, "
             f"Linux {machine['kernel']}")
    L.append(f"- date: {machine['date']}")
    for k, v in vers.items():
        L.append(f"- {k}: {v}")
    L.append("")
    L.append("## Method\n")
    sz = sizes
    L.append(
        f"- Layers written by cloud-volume {vers['cloud-volume']} into `target/bench-layers/`: "
        f"{'x'.join(map(str, sz['img']))} uint8 (EM-like: smooth field, dark ridges, Gaussian noise σ=10) as "
        f"raw uncompressed, raw gzip (cloud-volume's default `.gz` files, level 9) and jpeg (cloud-volume's "
        f"default quality); {'x'.join(map(str, sz['seg']))} uint64 blocky labels (ids ~7e17, some 0) as "
        f"compressed_segmentation (8³ blocks) gzip'd; all with chunks {'x'.join(map(str, sz['chunk']))} "
        f"(cloud-volume's default). Extra, latency-bound: `small`, {'x'.join(map(str, sz['small']))} uint8 raw "
        f"in {'x'.join(map(str, sz['small_chunk']))} chunks (32 KiB each). Stored sizes: "
        + ", ".join(f"{n} {b / MIB:.2f} MiB" for n, b in layers_info.items()) + "."
    )
    L.append(
        "- Each cell reads the whole volume at mip 0 into memory. Every reader runs in its own processes: "
        f"{args.rounds} process(es) per reader and cell, the readers interleaved (order rotated each round), "
        f"each process doing {args.repeats + 1} cutouts of which the first is a warm-up. The table shows the "
        "**median** over all timed cutouts as MB/s of decoded output (10⁶ bytes/s), and the peak resident "
        "memory of the process (VmHWM from `/proc/self/status`, max over processes, including the interpreter "
        "for the Python readers; `ru_maxrss` is recorded too but on Linux it inherits the parent's peak over "
        "fork+exec). The page cache is warm (files just written or read)."
    )
    L.append(
        "- Other work on the machine (this is a shared 2-core box) is kept out: before each process the driver "
        f"waits until the CPUs are ≥ {args.min_idle:.0%} idle (at most {args.max_wait:.0f} s), and while it runs "
        "it measures the cores used by anything other than the driver, the reader, nginx and the proxy "
        f"(from `/proc/stat`) and the hypervisor's steal time; a process disturbed by more than {args.max_others} "
        "cores (other work + steal) is re-run (up to "
        f"{args.attempts} attempts, the least disturbed kept). "
        + capital(idle_summary(all_procs, below=0.9, steal=True)) + ". "
        "The VM's speed still drifts: the CPU time of the same binary on the same data varied by up to 2× "
        "between runs minutes apart, also when no other work was measured (contention on the host), which is "
        "why readers are interleaved and the targets table also shows the ratio per round."
    )
    L.append(
        "- **ours**: `cutout_bench` (C, linked to `libcloudvolume.so`): `cv_open` with default options, "
        "one buffer allocated once, `cv_cutout_into` repeated. Default parallelism: threads = cores for "
        f"`file://`; for HTTP {machine.get('net_parallel', '?')} (`DEFAULT_NETWORK_FETCHES`, "
        "`DEFAULT_MAX_INFLIGHT_BYTES` in `src/options.rs` when built)."
    )
    L.append(
        "- **cloud-volume**: `CloudVolume(url, progress=False)[x0:x1, y0:y1, z0:z1]` with its defaults for "
        "parallelism: `parallel=1` (one process), no threads for `file://`, cloud-files' 20 threads for "
        "HTTP; the previous result is released before each cutout."
    )
    L.append(
        "- **tensorstore**: `ts.open({'driver': 'neuroglancer_precomputed', 'kvstore': ...})` with the "
        "default context (no cache pool; default data-copy and HTTP concurrency), `store[box].read(order='F')`. "
        "tensorstore does not read cloud-volume's `.gz`-suffixed files: over `file://` the gzip layer is n/a and "
        "the compressed_segmentation layer is read from an un-gzipped copy; over HTTP nginx serves the `.gz` "
        "files with `Content-Encoding: gzip` (`gzip_static always`), which all three readers decode."
    )
    L.append(
        "- **HTTP**: nginx (1 worker, sendfile, keep-alive) on a loopback port. **HTTP+20ms**: the same "
        f"behind `examples/latency_proxy.rs`, which holds each request {LATENCY_MS} ms before forwarding it "
        "(keep-alive requests included; connection setup is not delayed). The proxy counts requests and the "
        "peak number in flight, shown per reader. Server, proxy and reader share the 2 cores."
    )
    L.append(
        "- Outputs are checked: every run's checksum (sum of the Fortran-order buffer as uint64 words) is "
        "compared with ours, and over `file://` the full outputs are compared byte for byte.\n"
    )

    L.append("## Results\n")
    L.append("| layer | transport | ours MB/s | cloud-volume MB/s | tensorstore MB/s | ours ÷ cv | ours ÷ ts "
             "| peak RSS MiB: ours (buffer) / cv / ts | requests in flight (peak): ours / cv / ts |")
    L.append("|---|---|--:|--:|--:|--:|--:|---|---|")
    notes = []
    for (layer, transport), row in results.items():
        o, c, t = row.get("ours"), row.get("cloud-volume"), row.get("tensorstore")

        def mb(r):
            if r is None:
                return None
            return r.get("mbps")

        def cell(r, name):
            if r is None:
                return "n/a"
            if "error" in r:
                notes.append(f"{layer}/{transport}/{name}: failed: {' '.join(r['error'])}")
                return "fail"
            if r.get("na"):
                return "n/a"
            s = fmt(r["mbps"])
            if r.get("note"):
                s += "\\*"
            return s

        def rss(r):
            if r is None or "error" in r or r.get("na"):
                return "–"
            return fmt(r["rss_mib"])

        def peak(r):
            if r is None or "error" in r or r.get("na") or "proxy" not in r:
                return "–"
            return str(r["proxy"]["peak_in_flight"])

        buf = fmt(o["bytes"] / MIB) if o and "bytes" in o else "?"
        rc = ratio(mb(o), mb(c))
        rt = ratio(mb(o), mb(t))
        fl = f"{peak(o)} / {peak(c)} / {peak(t)}" if transport == "http+20ms" else ""
        L.append(
            f"| {layer} | {transport} | {cell(o, 'ours')} | {cell(c, 'cloud-volume')} | {cell(t, 'tensorstore')} "
            f"| {fmt(rc, 2) + '×' if rc else '–'} | {fmt(rt, 2) + '×' if rt else '–'} "
            f"| {rss(o)} ({buf}) / {rss(c)} / {rss(t)} | {fl} |"
        )
        for name, r in (("tensorstore", t),):
            if r and r.get("note"):
                notes.append(f"\\* {layer}/{transport}/{name}: {r['note']}")
            if r and r.get("na"):
                notes.append(f"n/a: {layer}/{transport}/{name}: {r['reason']}")
        for name, r in (("ours", o), ("cloud-volume", c), ("tensorstore", t)):
            if r and r.get("checksum_mismatch"):
                why = " (jpeg decoders round differently; see the comparison below)" if layer == "jpeg" else ""
                notes.append(f"{layer}/{transport}/{name}: output checksum differs from ours{why}")
            if r and r.get("checksums_agree") is False:
                notes.append(f"{layer}/{transport}/{name}: processes returned different outputs")
            if r and r.get("failed_processes"):
                notes.append(f"{layer}/{transport}/{name}: some processes failed: {r['failed_processes']}")
    L.append("")
    for n in sorted(set(notes)):
        L.append(f"- {n}")
    if dumps_cmp:
        L.append("")
        L.append("Output comparison over `file://` (full buffers, against ours):\n")
        for k, v in dumps_cmp.items():
            L.append(f"- {k}: {v}")
    L.append("")
    small = [(k, row) for k, row in results.items() if k[0] == "small"]
    if small:
        L.append(f"Latency-bound extra (`small`: many 32 KiB chunks), with ours also at parallel={EXTRA_PARALLEL} "
                 "(MB/s; requests per cutout and peak in flight at the proxy):\n")
        names = READERS + [OURS_MORE]
        L.append("| transport | " + " | ".join(names) + " |")
        L.append("|---|" + "--:|" * len(names))
        for (layer, transport), row in small:
            cells = []
            for n in names:
                r = row.get(n)
                if r is None or "error" in r or r.get("na"):
                    cells.append("–")
                    continue
                c = fmt(r["mbps"])
                if "proxy" in r:
                    c += f" ({fmt(r['proxy']['requests_per_process'] / (len(r['runs_s']) / r['processes'] + 1))} req, peak {r['proxy']['peak_in_flight']})"
                cells.append(c)
            L.append(f"| {transport} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("CPU efficiency (MB of output per CPU-second of the process, all threads, median over cutouts; "
             "less sensitive to other load than MB/s):\n")
    L.append("| layer | transport | ours | cloud-volume | tensorstore | ours threads busy (CPU-s ÷ wall-s) |")
    L.append("|---|---|--:|--:|--:|--:|")
    for (layer, transport), row in results.items():
        def eff(r):
            if r is None or "error" in r or r.get("na") or not r.get("mb_per_cpu_s"):
                return "–"
            return fmt(r["mb_per_cpu_s"])
        o = row.get("ours")
        busy = fmt(o["median_cpu_s"] / o["median_s"], 2) if o and "median_s" in o else "–"
        L.append(f"| {layer} | {transport} | {eff(o)} | {eff(row.get('cloud-volume'))} | {eff(row.get('tensorstore'))} | {busy} |")
    L.append("")

    # Targets
    L.append("## Targets\n")
    L.append("| target | measured | |")
    L.append("|---|---|---|")

    def get(layer, transport, reader):
        r = results.get((layer, transport), {}).get(reader)
        if r is None or "error" in r or r.get("na"):
            return None
        return r

    def speed_target(name, layer, transport, factor, against):
        o = get(layer, transport, "ours")
        refs = [get(layer, transport, a) for a in against]
        refs = [r for r in refs if r]
        if not o or not refs:
            L.append(f"| {name} | not measured | – |")
            return
        best = max(r["mbps"] for r in refs)
        rr = o["mbps"] / best
        # The same ratio per round (process medians of the same round; the reference is the faster one).
        per_round = []
        for i, t_o in enumerate(o.get("process_median_s", [])):
            ts_ = [r["process_median_s"][i] for r in refs if len(r.get("process_median_s", [])) > i]
            if ts_:
                per_round.append(min(ts_) / t_o)
        spread = f"; per round {min(per_round):.2f}–{max(per_round):.2f}×" if len(per_round) > 1 else ""
        status = "met" if rr >= factor else f"**missed** (needs {factor * best:,.0f} MB/s, {100 * (factor - rr) / factor:.0f}% short)"
        L.append(f"| {name} | {rr:.2f}× ({o['mbps']:,.0f} vs {best:,.0f} MB/s{spread}) | {status} |")

    speed_target("raw uncompressed files: ≥ 3× cloud-volume", "raw", "file", 3.0, ["cloud-volume"])
    speed_target("raw gzip files: ≥ 3× cloud-volume", "gzip", "file", 3.0, ["cloud-volume"])
    speed_target("compressed_segmentation: ≥ 2× cloud-volume", "cseg", "file", 2.0, ["cloud-volume"])
    speed_target("jpeg: ≥ 1.3× the faster of cloud-volume and tensorstore", "jpeg", "file", 1.3,
                 ["cloud-volume", "tensorstore"])
    # The network pipeline's targets (issue 17): over HTTP + 20 ms against each peer.
    net = f"HTTP + {LATENCY_MS} ms"
    speed_target(f"{net}, small: ≥ 2× tensorstore", "small", "http+20ms", 2.0, ["tensorstore"])
    speed_target(f"{net}, small: ≥ 8× cloud-volume", "small", "http+20ms", 8.0, ["cloud-volume"])
    for layer in ("raw", "cseg"):
        speed_target(f"{net}, {layer}: ≥ 2× tensorstore", layer, "http+20ms", 2.0, ["tensorstore"])
    for layer in ("gzip", "jpeg"):
        speed_target(f"{net}, {layer}: ≥ 1.3× tensorstore", layer, "http+20ms", 1.3, ["tensorstore"])
        # Decode-bound: ours over the network as a fraction of ours over file:// (the decoder
        # on both cores, the bytes from the page cache), in the same run.
        o, f = get(layer, "http+20ms", "ours"), get(layer, "file", "ours")
        if o and f:
            frac = o["mbps"] / f["mbps"]
            status = "met" if frac >= 0.9 else f"**missed** ({100 * (0.9 - frac) / 0.9:.0f}% short)"
            L.append(f"| {net}, {layer}: ≥ 90% of the decoder's 2-core speed (ours over file://) | "
                     f"{100 * frac:.0f}% ({o['mbps']:,.0f} of {f['mbps']:,.0f} MB/s) | {status} |")
    bounds = bound_rows(results, args)
    worst = None
    for (layer, transport), row in results.items():
        o = row.get("ours")
        if not o or "error" in o:
            continue
        over = o["hwm_kb"] * 1024 - o["bytes"]
        if worst is None or over > worst[0]:
            worst = (over, layer, transport, o)
    if worst:
        over, layer, transport, o = worst
        status = "met" if over <= 64 * MIB else f"**missed** by {(over - 64 * MIB) / MIB:.1f} MiB"
        L.append(
            f"| C caller peak RSS ≤ output buffer + 64 MiB (worst row) | buffer + {over / MIB:.1f} MiB "
            f"({layer}/{transport}: {o['rss_mib']:.1f} MiB for a {o['bytes'] / MIB:.1f} MiB buffer) | {status} |"
        )
    L.append("")
    if bounds:
        L.append(f"Bounds over HTTP + {LATENCY_MS} ms (same run): what stops a reader here. **Transport**: curl "
                 f"fetching every chunk file through the proxy with {ALONE_PARALLEL} requests in flight, bodies "
                 "dropped (median of 5 after a warm-up), as decoded MB/s. **Decode**: ours' own CPU per cutout over "
                 "`file://` (decoding, the stored bytes read from the page cache) plus the CPU nginx and the proxy "
                 f"spent per cutout in our runs, shared by the {os.cpu_count()} cores. The bound is the lower.\n")
        L.append("| layer | ours MB/s | transport alone MB/s | decode bound MB/s | ours ÷ bound |")
        L.append("|---|--:|--:|--:|--:|")
        L.extend(bounds)
        L.append("")
    return "\n".join(L)


def bound_rows(results, args):
    """One line per layer read over HTTP + 20 ms with the two bounds on the reader (see the
    report's text) and ours as a fraction of the lower one."""
    lines = []
    for (layer, transport), row in results.items():
        o, alone = row.get("ours"), row.get("_alone")
        f = results.get((layer, "file"), {}).get("ours")
        if transport != "http+20ms" or not o or "error" in o or not alone:
            continue
        transport_mbps = o["bytes"] / alone["s"] / 1e6
        decode = None
        if f and "error" not in f and o.get("servers_cpu_s") is not None:
            per_cutout = o["servers_cpu_s"] / (o["processes"] * (args.repeats + 1))
            decode = o["bytes"] / ((f["median_cpu_s"] + per_cutout) / (os.cpu_count() or 1)) / 1e6
        bound = min(transport_mbps, decode) if decode else transport_mbps
        lines.append(f"| {layer} | {o['mbps']:,.0f} | {transport_mbps:,.0f} | {fmt(decode)} | "
                     f"{100 * o['mbps'] / bound:.0f}% |")
    return lines


NOTES_BEGIN = "<!-- notes: kept by bench/run.py -->"
NOTES_END = "<!-- /notes -->"


def write_report(path, text):
    """Replace the report before the notes; keep the notes and every section after them (the
    sharded, write and object-store sections the other bench scripts merge in)."""
    notes = f"{NOTES_BEGIN}\n## Notes\n\n(none yet)\n{NOTES_END}\n"
    if path.exists():
        old = path.read_text()
        i, j = old.find(NOTES_BEGIN), old.find(NOTES_END)
        if i >= 0 and j > i:
            notes = old[i:].rstrip("\n") + "\n"
    path.write_text(text + "\n" + notes)


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small volumes, fewer repeats (smoke run)")
    ap.add_argument("--repeats", type=int, help="timed cutouts per process (after one warm-up)")
    ap.add_argument("--rounds", type=int, help="processes per reader and cell (interleaved with the other readers)")
    ap.add_argument("--min-idle", type=float, default=0.9,
                    help="before each process, wait until the CPUs are this idle (default 0.9) ...")
    ap.add_argument("--max-wait", type=float, help="... but at most this many seconds (default 300; quick: 5)")
    ap.add_argument("--max-others", type=float, default=0.25,
                    help="retry a process when other work used more than this many cores during it (default 0.25)")
    ap.add_argument("--attempts", type=int, default=4, help="attempts per process (default 4)")
    ap.add_argument("--out", help="report path (default BENCHMARKS.md; quick: target/bench/BENCHMARKS.quick.md)")
    ap.add_argument("--only", help="comma-separated layers to run (raw,gzip,jpeg,cseg)")
    ap.add_argument("--transports", help="comma-separated transports (file,http,http+20ms)")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--json", help="also write the raw results here")
    # Internal: one reader in a subprocess.
    ap.add_argument("--reader", help=argparse.SUPPRESS)
    ap.add_argument("--target", help=argparse.SUPPRESS)
    ap.add_argument("--box", help=argparse.SUPPRESS)
    ap.add_argument("--dump", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reader:
        args.repeats = args.repeats or 1
        return reader_main(args)

    size_name = "quick" if args.quick else "full"
    sizes = READ_SIZES[size_name]
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.max_wait is None:
        args.max_wait = 5.0 if args.quick else 300.0
    out = Path(args.out) if args.out else (BUILD / "BENCHMARKS.quick.md" if args.quick else ROOT / "BENCHMARKS.md")
    layers = [l for l in READ_LAYERS if not args.only or l in args.only.split(",")]
    transports = [t for t in TRANSPORTS if not args.transports or t in args.transports.split(",")]

    if not args.skip_build:
        build(BUILD, ["cutout_bench"])
    opts_rs = (ROOT / "src" / "options.rs").read_text()

    def const(name):
        m = re.search(name + r"\s*:\s*usize\s*=\s*([^;]+);", opts_rs)
        return m.group(1).strip() if m else "?"

    net_parallel = (f"up to {const('DEFAULT_NETWORK_FETCHES')} chunk requests in flight, as many as a byte budget "
                    f"of `{const('DEFAULT_MAX_INFLIGHT_BYTES')}` bytes of bodies held lets be out")
    base = make_read_layers(size_name, layers)
    nginx = Nginx(base, gzip_static=True)
    proxy = Proxy(BUILD / "latency_proxy", nginx.port, LATENCY_MS)
    ports = {"http": nginx.port, "http+20ms": proxy.port}
    results = {}
    dumps_cmp = {}
    dump_dir = Path(tempfile.mkdtemp(prefix="cv-bench-dump-", dir=BUILD))
    all_procs = []
    try:
        for transport in transports:
            for layer in layers:
                shape, _ = read_layer_shape(sizes, layer)
                box = [0, 0, 0, *shape]
                readers = readers_for(layer)
                procs = {r: [] for r in readers}
                na = {}
                dumps = {}
                for rnd in range(args.rounds):
                    # Rotate the order each round so that noise and thermal drift hit all readers alike.
                    order = readers[rnd % len(readers):] + readers[: rnd % len(readers)]
                    for reader in order:
                        target, note = target_for(reader, layer, transport, base, ports)
                        if target is None:
                            na[reader] = {"na": True, "reason": note}
                            continue
                        dump = dump_dir / f"{reader}.bin" if transport == "file" and rnd == 0 else None
                        servers = [nginx.proc.pid, proxy.proc.pid] if transport != "file" else []
                        latency = transport == "http+20ms"

                        def take_stats(r):
                            r["proxy"] = proxy.stats()

                        cmd, env = reader_cmd(reader, target, box, args.repeats + 1, dump)
                        res = measured(lambda: run_json(cmd, env, tail=1), args, servers,
                                       proxy.reset if latency else None, take_stats if latency else None, steal=True)
                        idle = res["cpu_idle_before"]
                        all_procs.append(res)
                        if note:
                            res["note"] = note
                        if dump and "error" not in res:
                            dumps[reader] = dump
                        procs[reader].append(res)
                        if "error" in res:
                            log(f"{layer:5s} {transport:9s} {reader:13s} FAILED: {res['error']}")
                        else:
                            med = statistics.median(res["runs_s"][1:] or res["runs_s"])
                            extra = f"  proxy {res['proxy']}" if "proxy" in res else ""
                            log(f"{layer:5s} {transport:9s} {reader:13s} round {rnd}: {res['bytes'] / med / 1e6:8.1f} MB/s"
                                f"  hwm {res['hwm_kb'] / 1024:7.1f} MiB  idle before {idle:.0%}"
                                f"  others {res['other_cores']:.2f} cores{extra}")
                row = {}
                for reader in readers:
                    if reader in na:
                        row[reader] = na[reader]
                    elif procs[reader]:
                        row[reader] = merge(procs[reader], warmup=1, detail=True)
                        if procs[reader][0].get("note"):
                            row[reader]["note"] = procs[reader][0]["note"]
                ours = row.get("ours")
                for reader, r in row.items():
                    if reader != "ours" and ours and "checksum" in ours and "checksum" in r:
                        if r["checksum"] != ours["checksum"] and r.get("note") is None:
                            r["checksum_mismatch"] = True
                if "ours" in dumps:
                    dtype = "uint64" if layer == "cseg" else "uint8"
                    for reader, d in dumps.items():
                        if reader != "ours":
                            dumps_cmp[f"{layer}, {reader}"] = compare_dumps(dumps["ours"], d, dtype)
                for d in dumps.values():
                    d.unlink(missing_ok=True)
                if transport != "file":
                    common.wait_quiet(args.min_idle, args.max_wait or 300)
                    alone = server_alone(ports[transport], base, layer, [nginx.proc.pid, proxy.proc.pid])
                    if alone:
                        row["_alone"] = alone
                        log(f"{layer:5s} {transport:9s} server alone (curl, {ALONE_PARALLEL} in flight): "
                            f"{alone['s'] * 1e3:.0f} ms per fetch, servers {alone['servers_cpu_s']:.3f} CPU-s")
                results[(layer, transport)] = row
    finally:
        proxy.stop()
        nginx.stop()
        shutil.rmtree(dump_dir, ignore_errors=True)

    machine = machine_info()
    machine["net_parallel"] = net_parallel
    vers = versions(BUILD, cc=True, packages=("simplejpeg", "compressed-segmentation"))
    report = build_report(results, layer_bytes(base, layers), args, machine, vers, dumps_cmp, sizes, all_procs)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, report)
    print(report)
    log(f"wrote {out}")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{k[0]}/{k[1]}": v for k, v in results.items()}, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
