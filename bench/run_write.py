#!/usr/bin/env python3
"""Benchmark, writes: whole volumes written by this library (through its C ABI), cloud-volume
and tensorstore.

    target/venv/bin/python bench/run_write.py [--quick] [--rounds N] [--repeats N] [--out FILE]

Steps:
 1. build the release library and the latency proxy (cargo), compile bench/write_bench.c
    against a private copy of libcloudvolume.so in target/bench/write/;
 2. generate the sources once into target/bench-layers/write/ (reused while the stamp matches):
    1024x1024x128 uint8 EM-like image and 512x512x128 uint64 labels (common.py's generators),
    Fortran order, plus the info JSON of each layer (cloud-volume's create_new_info);
 3. write each whole volume with each writer, each in its own processes: raw (uncompressed),
    raw + gzip, jpeg (uint8) and compressed_segmentation (uint64), chunks 128x128x64, to
    file:// and over loopback HTTP to nginx (dav PUT); verify every written layer once by
    reading its chunks back from disk;
 4. write the markdown table to target/bench/write.md (or --out).

Over HTTP: cloud-files' HTTP interface cannot write (put_file raises NotImplementedError) and
tensorstore's http kvstore is read-only, so both write through their S3 clients pointed at the
same nginx (cloud-files alias `s3://http://127.0.0.1:PORT/` with placeholder keys; tensorstore
`{"driver": "s3", "endpoint": ...}` with anonymous credentials). The server speaks just enough
S3 for them (see Nginx in common.py); ours PUTs plain HTTP.
"""

import argparse
import gzip
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import MIB, ROOT, BENCH, fmt, log, ratio  # noqa: E402

BUILD = BENCH / "write"
SRC_ROOT = ROOT / "target" / "bench-layers" / "write"
WRITE_ROOT = ROOT / "target" / "bench-write"
GENERATOR_VERSION = 1
SIZES = {
    "full": {"img": (1024, 1024, 128), "seg": (512, 512, 128), "chunk": (128, 128, 64)},
    "quick": {"img": (512, 512, 128), "seg": (256, 256, 128), "chunk": (128, 128, 64)},
}
# layer: (description, source, encoding, content compression)
LAYERS = {
    "raw": ("uint8 raw, uncompressed", "img", "raw", None),
    "gzip": ("uint8 raw, gzip", "img", "raw", "gzip"),
    "jpeg": ("uint8 jpeg (quality 85)", "img", "jpeg", None),
    "cseg": ("uint64 compressed_segmentation (8³ blocks), uncompressed", "seg", "compressed_segmentation", None),
}
TRANSPORTS = ["file", "tmpfs", "http"]
TMPFS_ROOT = Path("/dev/shm/cv-bench-write")
WRITERS = ["ours", "cloud-volume", "tensorstore"]
OURS_L9 = "ours (gzip level 9)"
TS_NOSYNC = "tensorstore (file_io_sync=false)"
ALIAS = "cvbench"
BUCKET = "bkt"
JPEG_QUALITY = 85
FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}  # nginx checks nothing


def slug(writer):
    return {"ours": "ours", "cloud-volume": "cv", "tensorstore": "ts", OURS_L9: "ours9", TS_NOSYNC: "tsnosync"}[writer]


def writers_for(layer, transport):
    w = list(WRITERS)
    if layer == "gzip":
        w.append(OURS_L9)
    if transport in ("file", "tmpfs"):
        w.append(TS_NOSYNC)
    return w


def na_reason(writer, layer, transport):
    if writer in ("tensorstore", TS_NOSYNC) and layer == "gzip":
        return ("tensorstore writes no gzip'd chunks of unsharded precomputed layers (no `.gz` files on file://, "
                "no Content-Encoding on s3)")
    if writer == TS_NOSYNC and transport == "http":
        return "file only"
    return None


# ----------------------------------------------------------------------------------------------
# Sources


def make_sources(size_name):
    """Source volumes (raw Fortran-order files) and the info of each layer."""
    from cloudvolume import CloudVolume

    sz = SIZES[size_name]
    base = SRC_ROOT / size_name
    stamp = json.dumps({"gen": GENERATOR_VERSION, "sizes": sz}, sort_keys=True)
    if (base / "stamp").exists() and (base / "stamp").read_text() == stamp:
        log(f"sources: reusing {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        t = time.time()
        img = common.image_volume(sz["img"])
        img.reshape(-1, order="F").tofile(base / "img.bin")
        (base / "img.sum").write_text(common.checksum_bytes(img))
        del img
        seg = common.seg_volume(sz["seg"])
        seg.reshape(-1, order="F").tofile(base / "seg.bin")
        (base / "seg.sum").write_text(common.checksum_bytes(seg))
        del seg
        for layer, (_, src, encoding, _) in LAYERS.items():
            info = CloudVolume.create_new_info(
                num_channels=1, layer_type="segmentation" if src == "seg" else "image",
                data_type="uint64" if src == "seg" else "uint8", encoding=encoding, resolution=[8, 8, 40],
                voxel_offset=[0, 0, 0], volume_size=list(sz[src]), chunk_size=list(sz["chunk"]))
            (base / f"{layer}.info").write_text(json.dumps(info))
        (base / "stamp").write_text(stamp)
        log(f"sources: wrote {base} in {time.time() - t:.1f} s")
    return base


# ----------------------------------------------------------------------------------------------
# Writer subprocesses: python bench/run_write.py --writer W --layer L --dest D ...


def writer_main(args):
    import numpy as np

    sz = SIZES[args.size]
    _, src, encoding, compress = LAYERS[args.layer]
    shape = sz[src]
    dtype = np.uint64 if src == "seg" else np.uint8
    t = time.perf_counter()
    arr = np.fromfile(Path(args.src) / f"{src}.bin", dtype=dtype).reshape(shape, order="F")
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    if args.writer == "cloud-volume":
        from cloudvolume import CloudVolume

        kw = {}
        if args.transport == "http":
            from cloudfiles.paths import add_alias

            add_alias(ALIAS, f"s3://http://127.0.0.1:{args.port}/")
            kw["secrets"] = FAKE_KEYS
        info = json.loads((Path(args.src) / f"{args.layer}.info").read_text())
        vol = CloudVolume(args.dest, info=info, compress=compress or False, progress=False, **kw)
        vol.commit_info()

        def write():
            vol[0:shape[0], 0:shape[1], 0:shape[2]] = arr

    elif args.writer in ("tensorstore", TS_NOSYNC):
        import tensorstore as ts

        scale = {"size": list(shape), "resolution": [8, 8, 40], "voxel_offset": [0, 0, 0], "encoding": encoding,
                 "chunk_size": list(sz["chunk"])}
        if encoding == "compressed_segmentation":
            scale["compressed_segmentation_block_size"] = [8, 8, 8]
        if encoding == "jpeg":
            scale["jpeg_quality"] = JPEG_QUALITY
        spec = {
            "driver": "neuroglancer_precomputed",
            "kvstore": json.loads(args.dest),
            "multiscale_metadata": {"type": "segmentation" if src == "seg" else "image",
                                    "data_type": "uint64" if src == "seg" else "uint8", "num_channels": 1},
            "scale_metadata": scale,
            "create": True,
        }
        if args.transport == "http":
            spec["context"] = {"aws_credentials": {"type": "anonymous"}}
        if args.writer == TS_NOSYNC:
            spec["kvstore"]["file_io_sync"] = False
        store = ts.open(spec).result()
        view = store[:, :, :, 0]

        def write():
            view.write(arr).result()

    else:
        raise SystemExit(f"unknown writer {args.writer}")
    create_s = time.perf_counter() - t
    hwm_before = common.hwm_kb()
    runs, cpus = [], []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        write()
        runs.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    print(json.dumps({"bytes": int(arr.nbytes), "load_s": load_s, "create_s": create_s, "runs_s": runs,
                      "cpu_s": cpus, "hwm_before_kb": hwm_before, "hwm_kb": common.hwm_kb(),
                      "checksum": common.checksum_bytes(arr)}), flush=True)


# ----------------------------------------------------------------------------------------------
# Driver


def dest_dir(writer, layer, transport):
    """Where the layer lands on disk."""
    if transport == "file":
        return WRITE_ROOT / "file" / slug(writer) / layer
    if transport == "tmpfs":
        return TMPFS_ROOT / slug(writer) / layer
    return WRITE_ROOT / "http" / BUCKET / slug(writer) / layer


def writer_cmd(writer, layer, transport, src_base, size_name, port, repeats):
    d = dest_dir(writer, layer, transport)
    _, _, _, compress = LAYERS[layer]
    if writer in ("ours", OURS_L9):
        url = f"file://{d}" if transport != "http" else f"http://127.0.0.1:{port}/{BUCKET}/{slug(writer)}/{layer}"
        opts = {"overwrite": True, "compress": compress or False}
        if writer == OURS_L9:
            opts["compress_level"] = 9
        return [str(BUILD / "write_bench"), url, str(src_base / f"{layer}.info"),
                str(src_base / f"{LAYERS[layer][1]}.bin"), str(repeats), json.dumps(opts)]
    if writer == "cloud-volume":
        dest = f"file://{d}" if transport != "http" else f"{ALIAS}://{BUCKET}/{slug(writer)}/{layer}"
    else:
        dest = json.dumps({"driver": "file", "path": f"{d}/"} if transport != "http" else
                          {"driver": "s3", "bucket": BUCKET, "endpoint": f"http://127.0.0.1:{port}",
                           "aws_region": "us-east-1", "path": f"{slug(writer)}/{layer}/"})
    return [sys.executable, str(Path(__file__).resolve()), "--writer", writer, "--layer", layer, "--transport",
            transport, "--dest", dest, "--src", str(src_base), "--size", size_name, "--port", str(port or 0),
            "--repeats", str(repeats)]


def verify(writer, layer, transport, src_base, size_name):
    """Read the written layer back from disk (chunk files, gzip by magic or .gz suffix, decoded
    with cloud-volume's chunk decoders) and compare it with the source."""
    import numpy as np
    from cloudvolume import chunks

    d = dest_dir(writer, layer, transport)
    sz = SIZES[size_name]
    _, src, encoding, _ = LAYERS[layer]
    shape, chunk = sz[src], sz["chunk"]
    dtype = np.uint64 if src == "seg" else np.uint8
    try:
        info = json.loads((d / "info").read_bytes())
    except (OSError, ValueError) as e:
        return {"ok": False, "what": f"no readable info: {e}"}
    scale = info["scales"][0]
    key = scale["key"]
    out = np.zeros(shape, dtype=dtype, order="F")
    files = stored = gz = 0
    for z0 in range(0, shape[2], chunk[2]):
        for y0 in range(0, shape[1], chunk[1]):
            for x0 in range(0, shape[0], chunk[0]):
                x1, y1, z1 = min(shape[0], x0 + chunk[0]), min(shape[1], y0 + chunk[1]), min(shape[2], z0 + chunk[2])
                name = d / key / f"{x0}-{x1}_{y0}-{y1}_{z0}-{z1}"
                p = name if name.exists() else Path(str(name) + ".gz")
                if not p.exists():
                    return {"ok": False, "what": f"missing chunk {name.name}"}
                data = p.read_bytes()
                files += 1
                stored += len(data)
                if data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                    gz += 1
                block = scale.get("compressed_segmentation_block_size")
                arr = chunks.decode(data, encoding, shape=(x1 - x0, y1 - y0, z1 - z0, 1), dtype=dtype,
                                    block_size=block)
                out[x0:x1, y0:y1, z0:z1] = arr[..., 0]
    res = {"files": files, "stored_bytes": stored, "gzip_files": gz}
    want = (src_base / f"{src}.sum").read_text()
    got = common.checksum_bytes(out)
    res["checksum"] = got
    if encoding == "jpeg":
        srcv = np.fromfile(src_base / f"{src}.bin", dtype=dtype).reshape(shape, order="F")
        diff = out.astype(np.int16) - srcv.astype(np.int16)
        mse = float((diff.astype(np.float64) ** 2).mean())
        res["psnr_db"] = 10 * np.log10(255.0 ** 2 / mse) if mse > 0 else float("inf")
        res["max_abs_diff"] = int(np.abs(diff).max())
        res["ok"] = res["psnr_db"] > 30
        res["what"] = f"PSNR {res['psnr_db']:.1f} dB against the source (max |diff| {res['max_abs_diff']})"
    else:
        res["ok"] = got == want
        res["what"] = "checksum matches the source" if got == want else f"checksum {got} != source {want}"
    if (LAYERS[layer][3] == "gzip") != (gz == files):
        res["ok"] = False
        res["what"] += f"; {gz} of {files} chunks gzip'd"
    return res


def build_report(results, verifications, args, sizes, machine, vers, all_procs):
    L = ["# Writes\n"]
    L.append("Whole volumes written with this library (through its C ABI, `bench/write_bench.c`), cloud-volume and "
             "tensorstore. Generated by `target/venv/bin/python bench/run_write.py"
             f"{' --quick' if args.quick else ''}`.\n")
    L.extend(common.machine_lines(machine, vers))
    L.append("")
    L.append("Method:\n")
    img, seg, ch = ("x".join(map(str, sizes[k])) for k in ("img", "seg", "chunk"))
    L.append(f"- Volumes: {img} uint8 EM-like image ({sizes['img'][0] * sizes['img'][1] * sizes['img'][2] / MIB:.0f} "
             f"MiB; smooth field, dark ridges, noise σ=10) written as **raw** (uncompressed), **gzip** (raw + gzip: "
             f"`.gz` files on file://, `Content-Encoding: gzip` over HTTP) and **jpeg** (quality {JPEG_QUALITY}); "
             f"{seg} uint64 blocky labels ({sizes['seg'][0] * sizes['seg'][1] * sizes['seg'][2] * 8 / MIB:.0f} MiB) "
             f"as **cseg** (compressed_segmentation, 8³ blocks, uncompressed). Chunks {ch}; every write is the whole "
             "volume, chunk-aligned, at mip 0, from an array already in memory.")
    L.append("- **ours**: `write_bench` (C, linked to `libcloudvolume.so`): `cv_create` with the info of cloud-volume's "
             "`create_new_info` and `{\"overwrite\": true, \"compress\": false | \"gzip\"}` (gzip level: the default 6; "
             f"`{OURS_L9}` adds `\"compress_level\": 9`), then `cv_write_from` of the bounds from the loaded buffer. "
             "**cloud-volume**: `CloudVolume(url, info=..., compress=False | 'gzip', progress=False)`, `commit_info()`, "
             "`vol[bounds] = arr` with its defaults (parallel=1; gzip level 9). **tensorstore**: "
             "`ts.open({'driver': 'neuroglancer_precomputed', 'create': True, 'scale_metadata': ...})` (jpeg_quality "
             f"{JPEG_QUALITY}), `store[..., 0].write(arr)`, default context; its file kvstore fsyncs every chunk by "
             f"default (`file_io_sync`), so `{TS_NOSYNC}` is also shown. cloud-volume and ours write no fsync.")
    L.append("- **file**: `file://` on the local disk (ext4 on virtio). The page cache takes the writes, but "
             "replacing files (every write after the first: ours and tensorstore rename a new file over the old, "
             "cloud-volume truncates and rewrites) makes ext4 start writing the new data back at once "
             "(`auto_da_alloc`), and from the third write of a process on, writers wait for the disk: wall time "
             "grows while CPU time stays (ours, raw: about 0.1 s per write for the first two, about 0.3 s after). "
             f"**tmpfs**: `file://` on `/dev/shm` (no disk), for the layers {', '.join(args.tmpfs_layers.split(','))}: "
             "the writers' own cost. **http**: nginx (1 worker) on loopback with the dav module "
             "(`dav_methods PUT`, `create_full_put_path on`) storing into the same disk. cloud-files' HTTP interface "
             "cannot write (`put_file` raises NotImplementedError) and tensorstore's `http` kvstore is read-only, so "
             "both write through their **S3 clients** pointed at the nginx: cloud-volume through a cloud-files alias "
             "`s3://http://127.0.0.1:PORT/` (boto3, SigV4-signed with placeholder keys, a CRC32C per object), "
             "tensorstore through `{'driver': 's3', 'endpoint': ...}` with anonymous credentials. The nginx answers "
             "404s with S3 `NoSuchKey` XML and PUTs with an ETag, which these clients need. Ours PUTs plain HTTP "
             "(default 24 requests in flight).")
    L.append(f"- Every writer runs in its own processes: {args.rounds} process(es) per writer and cell, writers "
             f"interleaved (order rotated each round), each process writing the volume {args.repeats + 1} times into a "
             "layer directory emptied before the process; the first write (which creates the files) is a warm-up "
             "and later writes replace every chunk. The table shows the **median** MB/s (10⁶ bytes of the decoded "
             "volume per second) over all timed writes, and the peak RSS (VmHWM, the source array included; "
             "interpreter included for Python). Before each process the driver waits until the CPUs are ≥ "
             f"{args.min_idle:.0%} idle (at most {args.max_wait:.0f} s) and re-runs a process during which other work "
             f"used more than {args.max_others} cores ({args.attempts} attempts at most); "
             + common.idle_summary(all_procs) + ".")
    L.append("- Verification: after the first process of each writer and cell, every chunk file is read back from "
             "disk (gunzipped when gzip'd), decoded with cloud-volume's chunk decoders and compared with the source "
             "(checksum of the whole volume; PSNR for jpeg).\n")

    names = WRITERS
    L.append("| layer | transport | ours MB/s | cloud-volume MB/s | tensorstore MB/s | ours ÷ cv | ours ÷ ts "
             "| peak RSS MiB ours / cv / ts (source) | stored MiB ours / cv / ts |")
    L.append("|---|---|--:|--:|--:|--:|--:|---|---|")
    notes = []
    for (layer, transport), row in results.items():
        def cell(r, name):
            if r is None:
                return "n/a"
            if r.get("na"):
                return "n/a"
            if "error" in r:
                notes.append(f"{layer}/{transport}/{name}: failed: {' '.join(r['error'])}")
                return "fail"
            return fmt(r["mbps"])

        def mb(r):
            return None if r is None or r.get("na") or "error" in r else r["mbps"]

        def rss(r):
            return "–" if r is None or r.get("na") or "error" in r else fmt(r["rss_mib"])

        def stored(name):
            v = verifications.get((layer, transport, name))
            return fmt(v["stored_bytes"] / MIB, 1) if v and "stored_bytes" in v else "–"

        o, c, t = (row.get(k) for k in names)
        rc, rt = ratio(mb(o), mb(c)), ratio(mb(o), mb(t))
        src_mib = (o or c or {}).get("bytes", 0) / MIB
        L.append(f"| {layer} | {transport} | {cell(o, 'ours')} | {cell(c, 'cloud-volume')} | {cell(t, 'tensorstore')} "
                 f"| {fmt(rc, 2) + '×' if rc else '–'} | {fmt(rt, 2) + '×' if rt else '–'} "
                 f"| {rss(o)} / {rss(c)} / {rss(t)} ({fmt(src_mib)}) | {stored('ours')} / {stored('cloud-volume')} / "
                 f"{stored('tensorstore')} |")
        for name, r in row.items():
            if r and r.get("na"):
                notes.append(f"n/a: {layer}/{transport}/{name}: {r['reason']}")
    L.append("")
    for n in sorted(set(notes)):
        L.append(f"- {n}")
    L.append("")
    extra_rows = [(k, row) for k, row in results.items() if OURS_L9 in row or TS_NOSYNC in row]
    if extra_rows:
        L.append("Extra writers (MB/s; stored MiB):\n")
        L.append(f"| layer | transport | ours | {OURS_L9} | cloud-volume (gzip level 9) | tensorstore | {TS_NOSYNC} |")
        L.append("|---|---|--:|--:|--:|--:|--:|")
        for (layer, transport), row in extra_rows:
            cells = []
            for n in ("ours", OURS_L9, "cloud-volume", "tensorstore", TS_NOSYNC):
                r = row.get(n)
                v = verifications.get((layer, transport, n))
                if r is None or r.get("na") or "error" in r:
                    cells.append("n/a" if (r is None or r.get("na")) else "fail")
                else:
                    cells.append(fmt(r["mbps"]) + (f" ({v['stored_bytes'] / MIB:.1f})" if v and "stored_bytes" in v else ""))
            L.append(f"| {layer} | {transport} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("CPU (median CPU-seconds of the writing process per write ÷ wall seconds):\n")
    L.append("| layer | transport | ours | cloud-volume | tensorstore |")
    L.append("|---|---|--:|--:|--:|")
    for (layer, transport), row in results.items():
        cs = []
        for n in names:
            r = row.get(n)
            cs.append(fmt(r["busy"], 2) if r and not r.get("na") and "error" not in r and r.get("busy") else "–")
        L.append(f"| {layer} | {transport} | " + " | ".join(cs) + " |")
    L.append("")
    L.append("Verification (read back from disk once per writer and cell):\n")
    for (layer, transport, name), v in verifications.items():
        L.append(f"- {layer}/{transport}/{name}: {'ok' if v.get('ok') else '**FAILED**'}: {v.get('what')}"
                 + (f" ({v['files']} chunk files, {v['stored_bytes'] / MIB:.1f} MiB)" if "files" in v else ""))
    L.append("")
    L.append("Targets (≥ 3× cloud-volume and ≥ tensorstore on each):\n")
    L.append("| target | measured | |")
    L.append("|---|---|---|")
    for (layer, transport), row in results.items():
        o = row.get("ours")
        if not o or o.get("na") or "error" in o:
            continue
        for name, factor in (("cloud-volume", 3), ("tensorstore", 1)):
            r = row.get(name)
            if not r or r.get("na") or "error" in r:
                continue
            rr = o["mbps"] / r["mbps"]
            st = "met" if rr >= factor else (f"**missed** (needs {factor * r['mbps']:,.0f} MB/s; "
                                              f"{100 * (1 - rr / factor):.0f}% short)")
            extra = ""
            if name == "tensorstore" and transport != "http" and row.get(TS_NOSYNC) and "mbps" in row[TS_NOSYNC]:
                r2 = row[TS_NOSYNC]["mbps"]
                extra = f"; against {TS_NOSYNC} {r2:,.0f} MB/s: {o['mbps'] / r2:.2f}×"
            L.append(f"| {layer}, {transport}: ≥ {factor}× {name} | {rr:.2f}× ({o['mbps']:,.0f} vs "
                     f"{r['mbps']:,.0f} MB/s{extra}) | {st} |")
    L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.base_args(ap)
    ap.add_argument("--only", help="comma-separated layers (raw,gzip,jpeg,cseg)")
    ap.add_argument("--keep", action="store_true", help="keep the written layers in target/bench-write")
    ap.add_argument("--tmpfs-layers", default="raw",
                    help="layers also written to file:// on tmpfs (/dev/shm), comma-separated (default raw)")
    ap.add_argument("--writer", help=argparse.SUPPRESS)
    ap.add_argument("--layer", help=argparse.SUPPRESS)
    ap.add_argument("--transport", help=argparse.SUPPRESS)
    ap.add_argument("--dest", help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--size", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.writer:
        args.repeats = args.repeats or 1
        return writer_main(args)
    size_name = "quick" if args.quick else "full"
    sizes = SIZES[size_name]
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.repeats = args.repeats or (1 if args.quick else 2)
    args.max_wait = args.max_wait if args.max_wait is not None else (5.0 if args.quick else 300.0)
    layers = [l for l in LAYERS if not args.only or l in args.only.split(",")]
    transports = [t for t in TRANSPORTS if not args.transports or t in args.transports.split(",")]
    out = Path(args.out) if args.out else BENCH / ("write.quick.md" if args.quick else "write.md")
    t_start = time.time()

    if not args.skip_build:
        common.build(BUILD, ["write_bench"])
    src_base = make_sources(size_name)
    shutil.rmtree(WRITE_ROOT, ignore_errors=True)
    (WRITE_ROOT / "http").mkdir(parents=True)
    nginx = common.Nginx(WRITE_ROOT / "http", dav=True)
    results, verifications, all_procs = {}, {}, []
    try:
        for transport in transports:
            servers = [nginx.proc.pid] if transport == "http" else []
            for layer in layers:
                if transport == "tmpfs" and layer not in args.tmpfs_layers.split(","):
                    continue
                writers = writers_for(layer, transport)
                procs = {w: [] for w in writers}
                row = {}
                for rnd in range(args.rounds):
                    order = writers[rnd % len(writers):] + writers[: rnd % len(writers)]
                    for w in order:
                        why = na_reason(w, layer, transport)
                        if why:
                            row[w] = {"na": True, "reason": why}
                            continue
                        cmd = writer_cmd(w, layer, transport, src_base, size_name, nginx.port, args.repeats + 1)
                        d = dest_dir(w, layer, transport)

                        def clear(d=d):
                            shutil.rmtree(d, ignore_errors=True)

                        res = common.measured(lambda: common.run_json(cmd), args, servers, before=clear)
                        all_procs.append(res)
                        procs[w].append(res)
                        if "error" in res:
                            log(f"{layer:5s} {transport:5s} {w:34s} FAILED: {res['error']}")
                            continue
                        med = statistics.median(res["runs_s"][1:] or res["runs_s"])
                        log(f"{layer:5s} {transport:5s} {w:34s} round {rnd}: {res['bytes'] / med / 1e6:8.1f} MB/s  "
                            f"runs {[round(x, 3) for x in res['runs_s']]}  hwm {res['hwm_kb'] / 1024:6.1f} MiB  "
                            f"idle {res['cpu_idle_before']:.0%} others {res['other_cores']:.2f}")
                        if (layer, transport, w) not in verifications:
                            v = verify(w, layer, transport, src_base, size_name)
                            verifications[(layer, transport, w)] = v
                            log(f"  verify: {'ok' if v.get('ok') else 'FAILED'}: {v.get('what')}")
                        clear()
                for w in writers:
                    if w not in row and procs[w]:
                        row[w] = common.merge(procs[w])
                results[(layer, transport)] = row
    finally:
        nginx.stop()
        if not args.keep:
            shutil.rmtree(WRITE_ROOT, ignore_errors=True)
            shutil.rmtree(TMPFS_ROOT, ignore_errors=True)

    report = build_report(results, verifications, args, sizes, common.machine_info(), common.versions(BUILD), all_procs)
    report += f"\n(run took {(time.time() - t_start) / 60:.1f} min, waits for an idle machine included)\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)
    log(f"wrote {out}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": {f"{k[0]}/{k[1]}": v for k, v in results.items()},
                                               "verify": {"/".join(k): v for k, v in verifications.items()}},
                                              indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
