#!/usr/bin/env python3
"""Benchmark, volume services: this library (through its C ABI) reading from the loopback DVID
and BOSS doubles (tests/servers/dvid.py, tests/servers/boss.py), against intern (the BOSS's
reference client) and against each double's own ceiling.

    target/venv/bin/python bench/run_services.py [--quick] [--rounds N] [--repeats N] [--out FILE]

Cells (each a whole-volume cutout; the volume is exactly the box):
  dvid-uint8   1024x1024x64 uint8blk (blocks 64^3): ours `cv_cutout_into` (bench/points_bench.c
               cutout) vs "double alone": one plain HTTP GET of the whole box, raw, from Python
               (the server's own time to answer, which bounds any client; the double serves one
               request at a time, as DVID throttles, so tiles in parallel cannot beat it).
  dvid-labels  512x512x64 labelmap (uint64, blocks 64^3; ~10,000 labels in blobs): ours (LZ4
               bodies) vs one GET of the whole box with compression=lz4 decoded in Python.
  boss-uint8   1024x1024x64 uint8 channel (cuboids 512x512x16): ours vs intern's
               `get_cutout` (its default: parallel tiles of 512x512x96), and "double alone"
               (one GET of the whole box, blosc decoded in Python).
Readers run in their own processes, interleaved, after the CPUs are idle; medians over every
timed run (the first run of each process is a warm-up); peak RSS (VmHWM) per process. The
outputs' checksums must agree. Writes target/bench/services.md (or --out).
"""

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.request
import zlib  # noqa: F401  (kept for parity with the doubles' codecs)
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BENCH, MIB, ROOT, base_args, build, checksum_bytes, fmt, hwm_kb, idle_summary, log, machine_info,
    machine_lines, measured, merge, ratio, run_json, versions,
)

BUILD = BENCH / "services"
TOKEN = "bench-token"
DVID_IMG = (1024, 1024, 64)
DVID_LAB = (512, 512, 64)
BOSS_IMG = (1024, 1024, 64)


def start(script, *args):
    p = subprocess.Popen([sys.executable, str(ROOT / "tests" / "servers" / script), "--port", "0", *args],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("PORT "):
        p.kill()
        raise SystemExit(f"{script} did not start: {line!r}")
    return p, int(line.split()[1])


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, method=method, data=body, headers=headers or {})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def image(shape, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    # Smooth-ish greyscale: compressible like EM, not constant.
    z, y, x = np.meshgrid(np.arange(shape[2]), np.arange(shape[1]), np.arange(shape[0]), indexing="ij")
    base = ((x // 3 + y // 5 + z * 7) % 200).astype(np.uint8)
    return (base + rng.integers(0, 40, size=base.shape, dtype=np.uint8)).astype(np.uint8)  # (z, y, x)


def labels(shape):
    import numpy as np

    z, y, x = np.meshgrid(np.arange(shape[2]), np.arange(shape[1]), np.arange(shape[0]), indexing="ij")
    return ((x // 24) + (y // 24) * 64 + (z // 16) * 4096 + 1).astype(np.uint64) * np.uint64(7919)


def setup_dvid(port):
    base = f"http://127.0.0.1:{port}/api"
    root = json.loads(http("POST", f"{base}/repos", json.dumps({"alias": "bench"}).encode()))["root"]
    for name, typ in (("grey", "uint8blk"), ("seg", "labelmap")):
        http("POST", f"{base}/repo/{root}/instance",
             json.dumps({"typename": typ, "dataname": name, "BlockSize": "64,64,64", "VoxelSize": "8,8,8"}).encode())
    img = image(DVID_IMG, 1)
    sx, sy, sz = DVID_IMG
    http("POST", f"{base}/node/{root}/grey/raw/0_1_2/{sx}_{sy}_{sz}/0_0_0", img.tobytes())
    lab = labels(DVID_LAB)
    sx, sy, sz = DVID_LAB
    http("POST", f"{base}/node/{root}/seg/raw/0_1_2/{sx}_{sy}_{sz}/0_0_0", lab.tobytes())
    return root


def setup_boss(port):
    from intern.remote.boss import BossRemote
    from intern.resource.boss.resource import (ChannelResource, CollectionResource, CoordinateFrameResource,
                                               ExperimentResource)

    rmt = BossRemote({"protocol": "http", "host": f"127.0.0.1:{port}", "token": TOKEN})
    x, y, z = BOSS_IMG
    rmt.create_project(CoordinateFrameResource("cf", "bench", 0, x, 0, y, 0, z, 4, 4, 40))
    rmt.create_project(CollectionResource("col", "bench"))
    rmt.create_project(ExperimentResource("exp", "col", "cf", "bench", num_hierarchy_levels=1,
                                          hierarchy_method="anisotropic"))
    ch = rmt.create_project(ChannelResource("img", "col", "exp", "image", datatype="uint8"))
    rmt.create_cutout(ch, 0, [0, x], [0, y], [0, z], image(BOSS_IMG, 2))


# ---------------------------------------------------------------------------------------------
# Reader subprocesses: python bench/run_services.py --reader R --mode M --target URL ...


def reader_main(args):
    import numpy as np

    t = json.loads(args.target)
    if args.reader == "intern":
        from intern.remote.boss import BossRemote

        rmt = BossRemote({"protocol": "http", "host": t["host"], "token": TOKEN})
        ch = rmt.get_channel("img", "col", "exp")
        x, y, z = BOSS_IMG

        def read():
            return rmt.get_cutout(ch, 0, [0, x], [0, y], [0, z])
    elif args.mode == "boss-uint8":
        import blosc

        x, y, z = BOSS_IMG
        url = f"http://{t['host']}/v1/cutout/col/exp/img/0/0:{x}/0:{y}/0:{z}/"

        def read():
            body = http("GET", url, headers={"Authorization": f"Token {TOKEN}", "Accept": "application/blosc"})
            return np.frombuffer(blosc.decompress(body), dtype=np.uint8)
    else:
        import lz4.block

        shape = DVID_IMG if args.mode == "dvid-uint8" else DVID_LAB
        name = "grey" if args.mode == "dvid-uint8" else "seg"
        q = "" if args.mode == "dvid-uint8" else "?compression=lz4"
        url = f"http://{t['host']}/api/node/{t['uuid']}/{name}/raw/0_1_2/{shape[0]}_{shape[1]}_{shape[2]}/0_0_0{q}"
        n = shape[0] * shape[1] * shape[2] * (1 if args.mode == "dvid-uint8" else 8)

        def read():
            body = http("GET", url)
            return np.frombuffer(lz4.block.decompress(body, uncompressed_size=n) if q else body, dtype=np.uint8)
    hwm_before = hwm_kb()
    runs, cpus, arr = [], [], None
    for _ in range(args.repeats):
        arr = None
        t0, c0 = time.perf_counter(), time.process_time()
        arr = read()
        runs.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    hwm = hwm_kb()
    arr = np.ascontiguousarray(arr)
    print(json.dumps({"bytes": int(arr.nbytes), "runs_s": runs, "cpu_s": cpus, "hwm_before_kb": hwm_before,
                      "hwm_kb": hwm, "checksum": checksum_bytes(arr.view(np.uint8).reshape(-1))}), flush=True)


def reader_cmd(reader, mode, target, repeats):
    t = json.loads(target)
    if reader == "ours":
        return [str(BUILD / "points_bench"), "cutout", t["url"], str(repeats), "-", json.dumps(t.get("options", {}))]
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
        build(BUILD, ["points_bench"], examples=())
    dvid, dport = start("dvid.py")
    boss, bport = start("boss.py", "--token", TOKEN)
    results, every = {}, []
    try:
        uuid = setup_dvid(dport)
        setup_boss(bport)
        dhost, bhost = f"127.0.0.1:{dport}", f"127.0.0.1:{bport}"
        secrets = {"protocol": "http", "host": bhost, "token": TOKEN}
        cells = {
            "dvid-uint8": ({"url": f"dvid://{dhost}/{uuid}/grey", "host": dhost, "uuid": uuid},
                           ["ours", "double alone"], dvid.pid),
            "dvid-labels": ({"url": f"dvid://{dhost}/{uuid}/seg", "host": dhost, "uuid": uuid},
                            ["ours", "double alone"], dvid.pid),
            "boss-uint8": ({"url": "boss://col/exp/img", "host": bhost, "options": {"secrets": secrets}},
                           ["ours", "intern", "double alone"], boss.pid),
        }
        for mode, (target, readers, pid) in cells.items():
            target = json.dumps(target)
            procs = {r: [] for r in readers}
            for rnd in range(rounds):
                order = readers[rnd % len(readers):] + readers[:rnd % len(readers)]
                for r in order:
                    res = measured(lambda: run_json(reader_cmd(r, mode, target, repeats)), args, servers=(pid,))
                    log(f"{mode:12s} {r:13s} round {rnd + 1}: "
                        + (f"{min(res['runs_s'][1:] or res['runs_s']):.3f} s  hwm {res['hwm_kb'] / 1024:.1f} MiB"
                           if "error" not in res else f"ERROR {res['error']}"))
                    procs[r].append(res)
                    every.append(res)
            results[mode] = {r: merge(p) for r, p in procs.items()}
    finally:
        for p in (dvid, boss):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
    lines = ["| cell | reader | median s | MB/s | peak RSS MiB | this ÷ ours (time) | output MiB | checksum agrees |",
             "|---|---|--:|--:|--:|--:|--:|---|"]
    for mode, res in results.items():
        o = res["ours"]
        for r, v in res.items():
            if "error" in v:
                lines.append(f"| {mode} | {r} | error: {v['error']} |")
                continue
            agree = "error" not in o and v["checksum"] == o["checksum"]
            speed = "—" if r == "ours" or "error" in o else f"{fmt(ratio(v['median_s'], o['median_s']), 2)}×"
            lines.append(f"| {mode} | {r} | {v['median_s']:.3f} | {fmt(v['mbps'], 0)} | {v['rss_mib']:.1f} | {speed} "
                         f"| {v['bytes'] / MIB:.0f} | {'yes' if agree else 'NO'} |")
    machine = machine_info()
    report = "\n".join([
        "## Volume services: DVID and the BOSS (bench/run_services.py)", "",
        *machine_lines(machine, versions(BUILD, packages=("intern", "blosc", "lz4"))), "",
        f"- {rounds} process(es) per reader and cell, {repeats} runs each (first a warm-up); medians. "
        + idle_summary(every) + ".", "",
        *lines, ""])
    out = Path(args.out) if args.out else BENCH / ("services.quick.md" if args.quick else "services.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
