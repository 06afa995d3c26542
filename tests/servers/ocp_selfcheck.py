#!/usr/bin/env python3
"""Drives tests/servers/ocp.py (the OCP / ndstore double) over HTTP and checks it answers as
ndstore's source says: info JSON, hdf5/npz/raw round trips for every dtype at two resolutions,
offset subtraction, the exact error texts, the ca/ and nd/ aliases, auth and the test controls.
Exit status 0 when every check passes; prints one line per check.

    target/venv/bin/python tests/servers/ocp_selfcheck.py [-v]
"""

import io
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import zlib

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
VERBOSE = "-v" in sys.argv
failures = []
KEY = "0123456789abcdef"


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + (("  -- " + str(detail)) if (detail and (VERBOSE or not cond)) else ""))
    if not cond:
        failures.append(name)


def start(*args):
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "ocp.py"), "--port", "0", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("PORT "):
        p.kill()
        raise SystemExit("double did not start: %r %s" % (line, p.stderr.read()))
    return p, int(line.split()[1])


class Client:
    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def req(self, method, path, body=None, headers=None):
        r = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.req("POST", path, body, **kw)

    def control(self, obj, path="/__control"):
        s, b, _ = self.post(path, json.dumps(obj).encode())
        assert s == 200, (s, b)
        return json.loads(b)


def h5_body(groups, layout="groups"):
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        for name, (arr, ctype, dtype) in groups.items():
            g = f.create_group(name)
            g.create_dataset("CUTOUT", data=arr, compression="gzip")
            g.create_dataset("CHANNELTYPE", (1,), dtype=h5py.special_dtype(vlen=bytes), data=ctype.encode())
            g.create_dataset("DATATYPE", (1,), dtype=h5py.special_dtype(vlen=bytes), data=dtype.encode())
    return bio.getvalue()


def npz_body(arr):
    bio = io.BytesIO()
    np.save(bio, arr)
    return zlib.compress(bio.getvalue())


def read_npz(body):
    return np.load(io.BytesIO(zlib.decompress(body)))


DTYPES = {"img8": ("image", "uint8"), "img16": ("image", "uint16"), "ann32": ("annotation", "uint32"),
          "ann64": ("annotation", "uint64"), "prob": ("image", "float32"), "img8b": ("image", "uint8"),
          "ts": ("timeseries", "uint16")}
OFFSET = [100, 50, 10]
SIZE = [300, 200, 48]


def seed(c, token="ocptest", public=None):
    chans = {n: {"channel_type": t, "datatype": d} for n, (t, d) in DTYPES.items()}
    chans["img8"]["default"] = True
    chans["ts"]["timerange"] = [0, 4]
    obj = {"token": token, "dataset": {"imagesize": SIZE, "offset": OFFSET, "voxelres": [4.0, 4.0, 40.0],
                                       "scalinglevels": 1, "scaling": "zslices"},
           "channels": chans}
    if public is not None:
        obj["public"] = public
    return c.control(obj, "/__seed")


def rand(rng, dtype, shape):
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = rng.random(shape, dtype=np.float32)
        a[a < 0.2] = 0
        return a
    hi = min(np.iinfo(dt).max, 2**40)
    return rng.integers(0, hi, size=shape, dtype=dt)


def box(res, x, y, z, t=None):
    s = "%d/%d,%d/%d,%d/%d,%d/" % (res, x[0], x[1], y[0], y[1], z[0], z[1])
    if t is not None:
        s += "%d,%d/" % tuple(t)
    return s


def run(c):
    rng = np.random.default_rng(5)
    info = seed(c)["info"]

    # --- info JSON
    s, b, h = c.get("/sd/ocptest/info/")
    j = json.loads(b)
    check("info 200 application/json", s == 200 and h.get("Content-Type") == "application/json", (s, h))
    check("info top-level keys", sorted(j) == ["channels", "dataset", "metadata", "project"], sorted(j))
    check("info dataset keys", sorted(j["dataset"]) == sorted(
        ["cube_dimension", "description", "imagesize", "name", "neariso_imagesize", "neariso_offset",
         "neariso_scaledown", "neariso_voxelres", "offset", "resolutions", "scaling", "scalinglevels",
         "supercube_dimension", "voxelres"]), sorted(j["dataset"]))
    d = j["dataset"]
    check("info per-level geometry (NDDataset, zslices)",
          d["imagesize"] == {"0": [300, 200, 48], "1": [150, 100, 48]} and d["offset"] == {"0": [100, 50, 10], "1": [50, 25, 10]}
          and d["voxelres"] == {"0": [4.0, 4.0, 40.0], "1": [8.0, 8.0, 40.0]} and d["resolutions"] == [0, 1]
          and d["cube_dimension"] == {"0": [128, 128, 16], "1": [128, 128, 16]} and d["scaling"] == "zslices", d)
    check("info channels", {n: (v["channel_type"], v["datatype"]) for n, v in j["channels"].items()} == DTYPES
          and sorted(j["channels"]["img8"]) == ["channel_type", "datatype", "description", "exceptions", "propagate",
                                                "readonly", "resolution", "timerange", "windowrange"], j["channels"])
    check("info project", j["project"] == {"description": "", "name": "ocptest", "ndstore_version": "1.2.0",
                                           "s3backend": 1, "schema_version": "1.1.0"}, j["project"])
    check("info text is Python-2 json.dumps(indent=4, sort_keys)", b.startswith(b'{\n    "channels": {\n') and b", \n" in b)
    check("seed answer equals info", info == j)

    # --- round trips, every dtype, two resolutions, three formats
    for res in (0, 1):
        size, off = d["imagesize"][str(res)], d["offset"][str(res)]
        for k, (name, (ctype, dtype)) in enumerate(DTYPES.items()):
            if ctype == "timeseries":
                continue
            lo = [3 + k, 5 + 2 * k, 1 + k]
            dim = [40 + k, 30, 20]  # crosses the 16-deep z cubes
            x = (off[0] + lo[0], off[0] + lo[0] + dim[0])
            y = (off[1] + lo[1], off[1] + lo[1] + dim[1])
            z = (off[2] + lo[2], off[2] + lo[2] + dim[2])
            arr = rand(rng, dtype, (dim[2], dim[1], dim[0]))
            url = "/sd/ocptest/%s/%%s/" % name + box(res, x, y, z)
            if k % 2 == 0:
                s, b, _ = c.post((url % "npz"), npz_body(arr[None]))
            else:
                s, b, _ = c.post((url % "hdf5"), h5_body({name: (arr, ctype, dtype)}))
            check("POST %s res %d (%s) -> 200 Success" % (name, res, "npz" if k % 2 == 0 else "hdf5"),
                  s == 200 and b == b"Success", (s, b[:300]))
            s, b, h = c.get(url % "hdf5")
            ok = s == 200 and h.get("Content-Type") == "product/hdf5"
            if ok:
                with h5py.File(io.BytesIO(b), "r") as f:
                    ds = f[name]["CUTOUT"]
                    got = ds[()]
                    ok = (got.dtype == np.dtype(dtype) and np.array_equal(got, arr) and ds.compression == "gzip"
                          and ds.chunks is not None and f[name]["DATATYPE"][0] == dtype.encode()
                          and f[name]["CHANNELTYPE"][0] == ctype.encode())
            check("GET hdf5 %s res %d" % (name, res), ok, (s, b[:200]))
            s, b, h = c.get(url % "npz")
            got = read_npz(b) if s == 200 else None
            check("GET npz %s res %d (zlib .npy, (1,z,y,x))" % (name, res),
                  s == 200 and h.get("Content-Type") == "product/npz" and got.shape == (1,) + arr.shape
                  and got.dtype == np.dtype(dtype) and np.array_equal(got[0], arr), (s, b[:200]))
            s, b, h = c.get(url % "raw")
            check("GET raw %s res %d" % (name, res),
                  s == 200 and h.get("Content-Type") == "product/raw"
                  and np.array_equal(np.frombuffer(b, dtype=np.dtype(dtype).newbyteorder("<")).reshape(arr.shape), arr),
                  (s, b[:200]))
            # offset subtraction: the same voxels from a box one voxel larger on each low side
            s, b, _ = c.get("/sd/ocptest/%s/raw/" % name + box(res, (x[0] - 1, x[1]), (y[0] - 1, y[1]), (z[0] - 1, z[1])))
            big = np.frombuffer(b, dtype=dtype).reshape(dim[2] + 1, dim[1] + 1, dim[0] + 1) if s == 200 else None
            check("offset subtracted (%s res %d)" % (name, res),
                  big is not None and np.array_equal(big[1:, 1:, 1:], arr) and not big[0].any(), s)
            if name == "img8" and res == 0:
                saved = (url, arr)

    url, arr = saved
    # non-zero overwrite: zeros never erase, non-zeros replace
    z = np.zeros_like(arr)
    z[0, 0, 0] = 7
    c.post(url % "npz", npz_body(z[None]))
    s, b, _ = c.get(url % "raw")
    exp = arr.copy()
    exp[0, 0, 0] = 7
    check("POST merges only non-zero voxels (overwriteDense)", np.array_equal(np.frombuffer(b, np.uint8).reshape(arr.shape), exp))
    arr = exp

    # aliases
    ref = c.get(url % "raw")[1]
    for prefix in ("/ca/", "/nd/sd/", "/nd/ca/"):
        s, b, _ = c.get(url.replace("/sd/", prefix, 1) % "raw")
        check("alias %s" % prefix, s == 200 and b == ref, s)
    # default channel
    s, b, _ = c.get((url % "hdf5").replace("/img8/", "/", 1))
    with h5py.File(io.BytesIO(b), "r") as f:
        # HDF5() names each group after the URL's channel word, which views.cutout rewrote to "default"
        check("no channel -> default channel, group named 'default'",
              list(f) == ["default"] and np.array_equal(f["default/CUTOUT"][()], arr), list(f))
    # multi-channel
    s, b, _ = c.get((url % "npz").replace("/img8/", "/img8,0,img8b/", 1))
    got = read_npz(b) if s == 200 else None
    check("multi-channel npz (channels,z,y,x), '0' left zero",
          got is not None and got.shape == (3,) + arr.shape and np.array_equal(got[0], arr) and not got[1].any(), s)
    s, b, _ = c.get((url % "hdf5").replace("/img8/", "/img8,img16/", 1))
    with h5py.File(io.BytesIO(b), "r") as f:
        check("multi-channel hdf5: a group per channel, own dtypes",
              sorted(f) == ["img16", "img8"] and f["img16/CUTOUT"].dtype == np.uint16)
    s, b, _ = c.get((url % "npz").replace("/img8/", "/img8,img16/", 1))
    check("mixed-dtype npz -> ndstore's own IndexError text", (s, b) == (404, b"'tuple index out of range'"), (s, b))

    # zip, blosc, window, filter
    s, b, h = c.get(url % "zip")
    check("GET zip = zlib of the raw bytes", s == 200 and h.get("Content-Type") == "product/zip"
          and np.array_equal(np.frombuffer(zlib.decompress(b), np.uint8).reshape(arr.shape), arr), s)
    try:
        import blosc
    except ImportError:
        blosc = None
    if blosc is not None:
        s, b, h = c.get(url % "blosc")
        check("GET blosc = blosc.pack_array (channels,z,y,x)", s == 200 and np.array_equal(blosc.unpack_array(b)[0], arr), s)
    s, b, _ = c.get((url % "raw") + "window/0,100/")
    w = np.uint8(np.clip(arr, 0, 100).astype(np.uint8) * (255.0 / 100))
    check("window/a,b/ -> uint8 scaled (ndlib windowCutout)", s == 200 and np.array_equal(np.frombuffer(b, np.uint8).reshape(arr.shape), w), s)
    s, b, _ = c.get((url % "raw") + "filter/1,2/")
    check("filter on an image channel -> ndstore's text",
          (s, b.decode()) == (404, repr(repr("Filter only possible for Annotation Channels"))), (s, b))
    au = url.replace("/img8/", "/ann32/") % "raw"
    lab = np.zeros(arr.shape, np.uint32)
    lab[:5] = 3
    lab[5:] = 9
    c.post(url.replace("/img8/", "/ann32/") % "npz", npz_body(lab[None]))
    s, b, _ = c.get(au + "filter/9/")
    got = np.frombuffer(b, np.uint32).reshape(arr.shape) if s == 200 else None
    check("filter/ids/ on an annotation channel keeps only those ids", got is not None and not got[:5].any() and (got[5:] == 9).all(), s)

    # time series
    t_arr = rand(rng, "uint16", (3, 8, 10, 12))
    tu = "/sd/ocptest/ts/%s/" + box(0, (110, 122), (60, 70), (12, 20), (0, 3))
    s, b, _ = c.post(tu % "npz", npz_body(t_arr[None]))
    check("POST timeseries npz (1,t,z,y,x)", s == 200, b)
    s, b, _ = c.get(tu % "hdf5")
    with h5py.File(io.BytesIO(b), "r") as f:
        check("GET timeseries hdf5 CUTOUT (t,z,y,x)", np.array_equal(f["ts/CUTOUT"][()], t_arr))
    s, b, _ = c.get(tu % "npz")
    check("GET timeseries npz (1,t,z,y,x)", np.array_equal(read_npz(b)[0], t_arr))

    # --- errors (exact texts)
    inner = "Illegal range. Image size: [300, 200, 48] at offset [100, 50, 10]"
    v1 = "Illegal arguments to cutout. Check cube failed " + repr(inner)
    v2 = repr(v1)
    oob = "/sd/ocptest/img8/%s/" + box(0, (0, 10), (50, 60), (10, 20))  # x below the offset
    for svc, layers in (("hdf5", 1), ("npz", 2), ("raw", 2)):
        exp = v2
        for _ in range(layers):
            exp = repr(exp)
        s, b, h = c.get(oob % svc)
        check("out-of-bounds %s -> 404 exact text" % svc,
              s == 404 and b.decode() == exp and h.get("Content-Type") == "text/html; charset=utf-8", (s, b))
    s, b, _ = c.get("/sd/ocptest/img8/hdf5/" + box(0, (390, 401), (50, 60), (10, 20)))
    check("beyond imagesize -> 404", s == 404 and b.decode() == repr(v2), b)
    s, b, _ = c.post(oob % "npz", npz_body(np.zeros((1, 10, 10, 10), np.uint8)))
    check("POST out-of-bounds -> 404 one repr layer", (s, b.decode()) == (404, repr(v1)), (s, b))
    s, b, _ = c.get("/sd/ocptest/img8/hdf5/5/100,110/50,60/10,20/")
    check("unknown resolution text", s == 404 and b.decode() == repr(repr("Illegal scaling level 5/100,110/50,60/10,20/")), b)
    s, b, _ = c.post(url % "npz", npz_body(np.zeros((1, 2, 2, 2), np.uint8)))
    check("POST shape mismatch text", s == 404 and b.decode().startswith(
        "POST transaction rollback. 'The data has mismatched dimensions (1, 2, 2, 2) compared to the arguments [40, 30, 20]'"), b)
    s, b, _ = c.post(url % "npz", npz_body(np.zeros((1,) + arr.shape, np.uint16)))
    check("POST wrong dtype text", (s, b) == (404, b"POST transaction rollback. 'Wrong datatype in POST'"), b)
    s, b, _ = c.post(url % "npz", npz_body(np.zeros((2,) + arr.shape, np.uint8)))
    check("POST missing channels text", (s, b) == (404, b"POST transaction rollback. 'The data has some missing channels'"), b)
    s, b, _ = c.post(url % "hdf5", h5_body({"img8": (arr.astype(np.uint16), "image", "uint16")}))
    check("POST hdf5 dtype mismatch text", s == 404 and b.decode() == "POST transaction rollback. 'Channel datatype uint16 in "
          "the HDF5 file does not match with the uint8 in the database.'", b)
    s, b, _ = c.post(url % "hdf5", h5_body({"other": (arr, "image", "uint8")}))
    check("POST hdf5 without the channel group", (s, b) == (404, b"POST transaction rollback. 'NoneType' object has no attribute '__getitem__'"), b)
    s, b, _ = c.post(url % "raw", arr.tobytes())
    check("POST raw -> illegal POST service text", s == 404 and b.decode().startswith(
        "POST transaction rollback. 'An illegal Web POST service was requested: raw. Args img8/raw/0/"), b)
    s, b, _ = c.get("/sd/ocptest/nochan/hdf5/" + box(0, (100, 110), (50, 60), (10, 20)))
    check("unknown channel hdf5 -> 404 empty (bare DoesNotExist)", (s, b) == (404, b""), (s, b))
    s, b, _ = c.get("/sd/nosuchtoken/img8/hdf5/" + box(0, (100, 110), (50, 60), (10, 20)))
    check("unknown token (anonymous) -> DRF 403", (s, b) == (403, b'{"detail":"Authentication credentials were not provided."}'), (s, b))
    s, b, _ = c.get("/sd/nosuchtoken/info/")
    check("unknown token info -> DRF 401", s == 401, (s, b))
    s, b, h = c.get("/sd/ocptest/info")
    check("missing slash -> 301", s in (200, 301), s)  # urllib follows the redirect
    s, b, _ = c.get("/xx/ocptest/info/")
    check("unrouted -> Django 404", s == 404 and b.startswith(b"<h1>Not Found</h1>"), b)

    # --- the HDF5 bytes
    b = c.get(url % "hdf5")[1]
    check("HDF5 signature + superblock version 0", b[:8] == b"\x89HDF\r\n\x1a\n" and b[8] == 0, b[:9])
    npy = zlib.decompress(c.get(url % "npz")[1])
    hl = int.from_bytes(npy[8:10], "little")
    check("npz is zlib (78 9c) of .npy v1.0, 16-byte-aligned header",
          c.get(url % "npz")[1][:2] == b"\x78\x9c" and npy[:8] == b"\x93NUMPY\x01\x00" and (10 + hl) % 16 == 0, npy[:80])

    # legacy OCP layout
    c.control({"hdf5_layout": "ocp2014"})
    b = c.get(url % "hdf5")[1]
    with h5py.File(io.BytesIO(b), "r") as f:
        check("ocp2014 layout: root CUTOUT + DATATYPE uint32", sorted(f) == ["CUTOUT", "DATATYPE"]
              and np.array_equal(f["CUTOUT"][()], arr) and f["DATATYPE"][0] == 1)
    c.control({"hdf5_layout": "ndstore"})

    # --- controls
    c.control({"clear_log": True})
    c.control({"fail": 2, "status": 502})
    s1, s2, s3 = (c.get(url % "raw")[0] for _ in range(3))
    check("fail N -> status S then normal", (s1, s2, s3) == (502, 502, 200), (s1, s2, s3))
    c.control({"truncate": 1})
    try:
        s, b, _ = c.get(url % "raw")
        short = len(b) < arr.size
    except Exception:  # noqa: BLE001 - IncompleteRead is the expected outcome
        short = True
    check("truncate -> body cut short", short)
    c.control({"drop": 1})
    try:
        c.get(url % "raw")
        dropped = False
    except Exception:  # noqa: BLE001
        dropped = True
    check("drop -> connection closed without answer", dropped)
    s, b, _ = c.get("/__requests")
    log = json.loads(b)
    check("request log records", len(log) == 5 and [r["status"] for r in log[:3]] == [502, 502, 200]
          and log[2]["response_bytes"] == arr.size and log[3]["fault"] == "truncate" and log[4]["fault"] == "drop"
          and all({"method", "path", "query", "status", "request_bytes", "response_bytes"} <= set(r) for r in log), log)


def run_auth(c):
    seed(c, "private1")
    seed(c, "open1", public=True)
    u = "/sd/private1/img8/raw/" + box(0, (100, 110), (50, 60), (10, 20))
    s, b, _ = c.get(u)
    check("private token, anonymous cutout -> 403", (s, b) == (403, b'{"detail":"Authentication credentials were not provided."}'), (s, b))
    s, b, h = c.get("/sd/private1/info/")
    check("private token, anonymous info -> 401 WWW-Authenticate: Token", s == 401 and h.get("WWW-Authenticate") == "Token", (s, h))
    s, b, _ = c.get(u, headers={"Authorization": "Token " + KEY})
    check("private token with key -> 200", s == 200 and len(b) == 1000, s)
    s, b, _ = c.get("/nd/sd/private1/info/", headers={"Authorization": "Token " + KEY})
    check("info with key under nd/ -> 200", s == 200, s)
    s, b, _ = c.get(u, headers={"Authorization": "Token wrong"})
    check("wrong key -> anonymous -> 403", s == 403, s)
    s, b, _ = c.get("/sd/nope/info/", headers={"Authorization": "Token " + KEY})
    check("key but token not owned -> 403 permission", (s, b) == (403, b'{"detail":"You do not have permission to perform this action."}'), (s, b))
    s, b, _ = c.get("/sd/open1/img8/raw/" + box(0, (100, 110), (50, 60), (10, 20)))
    check("public token needs nothing", s == 200, s)
    s, b, _ = c.get("/sd/public_tokens/")
    check("public_tokens", s == 200 and json.loads(b) == ["open1"], b)


def main():
    procs = []
    try:
        p, port = start()
        procs.append(p)
        run(Client(port))
        p2, port2 = start("--token-required", KEY)
        procs.append(p2)
        run_auth(Client(port2))
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    print("\n%d check(s) failed: %s" % (len(failures), failures) if failures else "\nall checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    sys.exit(main())
