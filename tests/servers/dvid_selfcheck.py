#!/usr/bin/env python3
"""Self-check of tests/servers/dvid.py (the DVID test double): starts it, drives it over HTTP and
compares every answer with numpy references. Exits non-zero on the first failed group.

    target/venv/bin/python tests/servers/dvid_selfcheck.py [--golden DIR]

--golden DIR holds DVID's test_data/fib19-64x64x64-sample1.dat.gz (raw uint64 64^3, gzip) and
fib19-64x64x64-sample1-block.dat.gz (its native label Block, gzip). Without it the files are read
from a local mirror of janelia-flyem/dvid (git show, read-only) when one is found, else that group
is skipped (and says so).

The native Block decoder below is this check's own, written from the format description in
docs/services.md section 1 (and DVID's compressed.go comment), independently of the double's.
"""

import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

import lz4.block
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MIRROR = "/work/.mirror/janelia-flyem+dvid/repo"
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL", what, flush=True)
    return cond


class Double:
    def __init__(self, *args):
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "dvid.py"), "--port", "0", *args],
                                  stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        assert line.startswith("PORT "), line
        self.base = f"http://127.0.0.1:{int(line.split()[1])}"

    def req(self, method, path, body=None, headers=None):
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        r = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(r, timeout=60) as resp:
                return resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=b"", **kw):
        return self.req("POST", path, body, **kw)

    def stop(self):
        self.p.terminate()
        try:
            rc = self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = None
        return rc


# --- an independent decoder of DVID's native label Block

def decode_native_block(buf):
    gx, gy, gz, n = struct.unpack_from("<4I", buf, 0)
    labels = struct.unpack_from(f"<{n}Q", buf, 16)
    nx, ny, nz = gx * 8, gy * 8, gz * 8
    out = np.zeros((nz, ny, nx), dtype=np.uint64)
    if n == 1:
        out[:] = labels[0]
        return out
    nsb = gx * gy * gz
    pos = 16 + 8 * n
    counts = struct.unpack_from(f"<{nsb}H", buf, pos)
    pos += 2 * nsb
    total = sum(counts)
    indices = struct.unpack_from(f"<{total}I", buf, pos)
    pos += 4 * total
    bitpos = pos * 8
    ipos = 0
    sb = 0
    for sz in range(gz):
        for sy in range(gy):
            for sx in range(gx):
                c = counts[sb]
                idx = indices[ipos:ipos + c]
                ipos += c
                sb += 1
                region = out[sz * 8:sz * 8 + 8, sy * 8:sy * 8 + 8, sx * 8:sx * 8 + 8]
                if c == 0:
                    continue
                if c == 1:
                    region[:] = labels[idx[0]]
                    continue
                bits = (c - 1).bit_length()
                vals = []
                for _ in range(512):  # MSB-first, as getPackedValue reads them
                    v = 0
                    for _ in range(bits):
                        byte = buf[bitpos >> 3]
                        v = (v << 1) | ((byte >> (7 - (bitpos & 7))) & 1)
                        bitpos += 1
                    vals.append(labels[idx[v]])
                region[:] = np.array(vals, dtype=np.uint64).reshape(8, 8, 8)
                if bitpos % 8:
                    bitpos += 8 - bitpos % 8
    return out


def parse_records(buf):
    recs, pos = {}, 0
    while pos < len(buf):
        bx, by, bz, n = struct.unpack_from("<iiii", buf, pos)
        pos += 16
        recs[(bx, by, bz)] = buf[pos:pos + n]
        pos += n
    return recs


def ref_downres(hi):
    """2x2x2 vote (non-zero labels, ties to the smaller label), written plainly."""
    nz, ny, nx = hi.shape
    lo = np.zeros((nz // 2, ny // 2, nx // 2), dtype=np.uint64)
    for z in range(nz // 2):
        for y in range(ny // 2):
            for x in range(nx // 2):
                cell = hi[2 * z:2 * z + 2, 2 * y:2 * y + 2, 2 * x:2 * x + 2].reshape(-1).tolist()
                votes = {}
                for v in cell:
                    if v:
                        votes[v] = votes.get(v, 0) + 1
                if votes:
                    lo[z, y, x] = min(votes, key=lambda k: (-votes[k], k))
    return lo


def golden_files(gdir):
    names = ("fib19-64x64x64-sample1.dat.gz", "fib19-64x64x64-sample1-block.dat.gz")
    if gdir:
        return [open(os.path.join(gdir, n), "rb").read() for n in names]
    if os.path.isdir(MIRROR):
        try:
            return [subprocess.run(["git", "--git-dir", MIRROR, "show", f"HEAD:test_data/{n}"], check=True,
                                   capture_output=True).stdout for n in names]
        except (subprocess.CalledProcessError, FileNotFoundError):
            return None
    return None


TYPES = {"uint8blk": "u1", "uint16blk": "<u2", "uint32blk": "<u4", "uint64blk": "<u8", "float32blk": "<f4",
         "rgba8blk": "u1", "labelblk": "<u8", "labelarray": "<u8", "labelmap": "<u8"}


def rand_vol(rng, typename, size):
    sx, sy, sz = size
    if typename == "rgba8blk":
        return rng.integers(0, 256, (sz, sy, sx, 4), dtype=np.uint8)
    if typename == "float32blk":
        return rng.standard_normal((sz, sy, sx)).astype("<f4")
    if typename in ("labelblk", "labelarray", "labelmap"):
        return rng.integers(1, 40, (sz, sy, sx)).astype("<u8") * np.uint64(1 << 33)  # > 32-bit ids
    dt = np.dtype(TYPES[typename])
    return rng.integers(0, np.iinfo(dt).max, (sz, sy, sx), dtype=dt, endpoint=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden", help="directory with the two fib19 golden files")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    d = Double()
    try:
        run(d, rng, args)
    finally:
        rc = d.stop()
        check(rc == 0, f"SIGTERM exit status {rc}")
    dt = Double("--token", "sekrit")
    try:
        run_auth(dt)
    finally:
        dt.stop()
    if FAILS:
        print(f"{len(FAILS)} check(s) failed", flush=True)
        return 1
    print("ALL OK", flush=True)
    return 0


def run(d, rng, args):
    st, body, _ = d.get("/api/server/info")
    check(st == 200 and "DVID Version" in json.loads(body), "server/info")
    st, body, _ = d.post("/api/repos", {"alias": "selfcheck", "description": "dvid double"})
    check(st == 200, f"POST /api/repos {st} {body!r}")
    root = json.loads(body)["root"]
    check(len(root) == 32, "root uuid is 32 hex")
    pre = root[:5]

    # --- instances of every type; random data, aligned POST, unaligned GET
    bs = {"uint8blk": 32, "uint16blk": 32, "uint32blk": 32, "uint64blk": 32, "float32blk": 32, "rgba8blk": 32,
          "labelblk": 32, "labelarray": 32, "labelmap": 32}
    for t in TYPES:
        cfg = {"typename": t, "dataname": "d_" + t, "BlockSize": f"{bs[t]},{bs[t]},{bs[t]}", "VoxelSize": "4,4,40",
               "VoxelUnits": "nanometers,nanometers,nanometers"}
        if t in ("labelarray", "labelmap"):
            cfg["MaxDownresLevel"] = "1"
        st, body, _ = d.post(f"/api/repo/{pre}/instance", cfg)
        check(st == 200 and json.loads(body)["result"] == f"Added d_{t} [{t}] to node {root}", f"create {t}: {st} {body!r}")
    st, body, _ = d.get("/api/server/types")
    check(st == 200 and set(json.loads(body)) == set(TYPES), "server/types lists the types in use")

    origin, size = (32, 64, 0), (64, 64, 64)  # block aligned for 32^3
    refs = {}
    for t in TYPES:
        vol = rand_vol(rng, t, size)
        refs[t] = vol
        path = f"/api/node/{pre}/d_{t}/raw/0_1_2/{size[0]}_{size[1]}_{size[2]}/{origin[0]}_{origin[1]}_{origin[2]}"
        st, body, _ = d.post(path, vol.tobytes())
        check(st == 200, f"POST raw {t}: {st} {body!r}")
        # unaligned GET that sticks out of the written box (outside reads 0)
        go, gs = (20, 70, 5), (50, 45, 70)
        st, body, hdr = d.get(f"/api/node/{root}/d_{t}/raw/0_1_2/{gs[0]}_{gs[1]}_{gs[2]}/{go[0]}_{go[1]}_{go[2]}")
        exp = np.zeros((gs[2], gs[1], gs[0]) + vol.shape[3:], dtype=vol.dtype)
        # copy the overlap
        lo = [max(go[i], origin[i]) for i in range(3)]
        hi = [min(go[i] + gs[i], origin[i] + size[i]) for i in range(3)]
        exp[lo[2] - go[2]:hi[2] - go[2], lo[1] - go[1]:hi[1] - go[1], lo[0] - go[0]:hi[0] - go[0]] = \
            vol[lo[2] - origin[2]:hi[2] - origin[2], lo[1] - origin[1]:hi[1] - origin[1], lo[0] - origin[0]:hi[0] - origin[0]]
        check(st == 200 and body == exp.tobytes(), f"GET raw unaligned {t}: {st} len {len(body)} vs {exp.nbytes}")
        check(hdr.get("Content-Type") == "application/octet-stream", f"raw content type {t}")

    # --- info / metadata shapes and extents
    st, body, _ = d.get(f"/api/node/{pre}/d_uint8blk/info")
    info = json.loads(body)
    check(list(info) == ["Base", "Extended", "Extents"], "uint8blk info keys")
    check(info["Extents"] == {"MinPoint": [32, 64, 0], "MaxPoint": [95, 127, 63]}, f"extents {info['Extents']}")
    ext = info["Extended"]
    check(ext["MinIndex"] == [1, 2, 0] and ext["MaxIndex"] == [2, 3, 1], "Min/MaxIndex")
    check(ext["Values"] == [{"DataType": "uint8", "Label": "uint8"}] and ext["BlockSize"] == [32, 32, 32]
          and ext["VoxelSize"] == [4, 4, 40], "uint8blk Extended")
    check(info["Base"]["TypeName"] == "uint8blk" and info["Base"]["Compression"] == "LZ4 compression, level -1", "Base")
    print("uint8blk info:", body.decode())
    st, body, hdr = d.get(f"/api/node/{pre}/d_uint8blk/metadata")
    md = json.loads(body)
    check(hdr.get("Content-Type") == "application/vnd.dvid-nd-data+json", "metadata content type")
    check([a["Size"] for a in md["Axes"]] == [64, 64, 64] and [a["Offset"] for a in md["Axes"]] == [32, 64, 0]
          and [a["Resolution"] for a in md["Axes"]] == [4, 4, 40], f"metadata axes {md['Axes']}")
    st, body, _ = d.get(f"/api/node/{pre}/d_labelmap/info")
    li = json.loads(body)["Extended"]
    check(li["MaxDownresLevel"] == 1 and li["IndexedLabels"] is True and "NextLabel" in li, "labelmap Extended")
    check(li["MaxRepoLabel"] == int(refs["labelmap"].max()), "labelmap MaxRepoLabel")
    print("labelmap info:", body.decode())
    st, body, _ = d.get(f"/api/node/{pre}/d_rgba8blk/info")
    check([v["Label"] for v in json.loads(body)["Extended"]["Values"]] == ["red", "green", "blue", "alpha"], "rgba8 values")
    st, body, _ = d.get(f"/api/node/{pre}/d_labelblk/info")
    check(list(json.loads(body)) == ["Base", "Extended"], "labelblk info has no Extents")

    # --- label compressions on raw
    for t in ("labelmap", "labelarray", "labelblk"):
        vol = rand_vol(rng, t, (32, 32, 64))
        raw = vol.tobytes()
        p = f"/api/node/{pre}/d_{t}/raw/0_1_2/32_32_64/0_0_128"
        st, body, _ = d.post(p + "?compression=lz4", lz4.block.compress(raw, store_size=False))
        check(st == 200, f"{t} lz4 POST {st} {body!r}")
        st, body, _ = d.get(p + "?compression=lz4")
        check(st == 200 and lz4.block.decompress(body, uncompressed_size=len(raw)) == raw, f"{t} lz4 GET")
        vol2 = rand_vol(rng, t, (32, 32, 64))
        st, body, _ = d.post(p + "?compression=gzip", gzip.compress(vol2.tobytes()))
        check(st == 200, f"{t} gzip POST {st}")
        st, body, _ = d.get(p + "?compression=gzip")
        check(st == 200 and gzip.decompress(body) == vol2.tobytes(), f"{t} gzip GET")
        st, body, _ = d.get(p + "?compression=bogus")
        check(st == 400 and body == f'unknown compression type "bogus" ({p}).\n'.encode(), f"{t} bad compression: {body!r}")

    # --- blocks stream (labelmap): four compressions, unwritten blocks left out
    lm = refs["labelmap"]
    bp = f"/api/node/{pre}/d_labelmap/blocks/128_64_64/0_64_0"  # blocks x 0..3, y 2..3, z 0..1
    expected = {}
    for bz in range(2):
        for by in range(2, 4):
            for bx in range(1, 3):
                z0, y0, x0 = bz * 32, (by - 2) * 32, (bx - 1) * 32
                expected[(bx, by, bz)] = lm[z0:z0 + 32, y0:y0 + 32, x0:x0 + 32]
    for comp in ("uncompressed", "lz4", "gzip", "blocks", ""):
        st, body, _ = d.get(bp + (f"?compression={comp}" if comp else ""))
        recs = parse_records(body) if st == 200 else {}
        check(set(recs) == set(expected), f"blocks {comp or 'default'}: keys {sorted(recs)}")
        for k, payload in recs.items():
            if comp == "uncompressed":
                arr = np.frombuffer(payload, "<u8").reshape(32, 32, 32)
            elif comp in ("lz4", ""):
                arr = np.frombuffer(lz4.block.decompress(payload, uncompressed_size=32 ** 3 * 8), "<u8").reshape(32, 32, 32)
            elif comp == "gzip":
                arr = np.frombuffer(gzip.decompress(payload), "<u8").reshape(32, 32, 32)
            else:
                arr = decode_native_block(gzip.decompress(payload))
            check(np.array_equal(arr, expected[k]), f"blocks {comp or 'default'} block {k}")
    st, body, _ = d.get(f"/api/node/{pre}/d_labelmap/blocks/64_64_64/16_0_0")
    check(st == 400 and b"non-block aligned" in body, f"blocks misaligned: {body!r}")

    # --- down-res: raw POST computed scale 1 (MaxDownresLevel=1)
    st, body, _ = d.get(f"/api/node/{pre}/d_labelmap/raw/0_1_2/32_32_32/16_32_0?scale=1")
    lo = np.frombuffer(body, "<u8").reshape(32, 32, 32)
    check(st == 200 and np.array_equal(lo, ref_downres(lm)), "labelmap scale=1 from raw POST")
    # POST /blocks?scale=1 stores that level verbatim
    solid = np.full((32, 32, 32), 77, dtype="<u8")
    from dvid import encode_block  # the double's encoder, only to build a request body
    payload = gzip.compress(encode_block(solid))
    st, body, _ = d.post(f"/api/node/{pre}/d_labelmap/blocks?scale=1", struct.pack("<iiiI", 5, 5, 5, len(payload)) + payload)
    check(st == 200, f"POST blocks scale=1 {st} {body!r}")
    st, body, _ = d.get(f"/api/node/{pre}/d_labelmap/raw/0_1_2/32_32_32/160_160_160?scale=1")
    check(st == 200 and np.array_equal(np.frombuffer(body, "<u8").reshape(32, 32, 32), solid), "GET scale=1 of POSTed block")
    st, body, _ = d.get(f"/api/node/{pre}/d_labelmap/raw/0_1_2/32_32_32/160_160_160")
    check(st == 500 and body.startswith(b"Panic detected on request"), f"empty one-block GET (DVID's nil block): {st}")
    st, body, _ = d.get(f"/api/node/{pre}/d_labelmap/raw/0_1_2/32_32_32/160_160_160?compression=lz4")
    check(st == 400 and body.startswith(b"unable to get label block (5, 5, 5)"), f"empty one-block lz4 GET: {body!r}")

    # --- golden pair from DVID's test_data
    g = golden_files(args.golden)
    if g is None:
        print("SKIP golden pair: files not found", flush=True)
    else:
        vol_gz, block_gz = g
        print(f"golden sizes: sample1.dat.gz {len(vol_gz)} B, sample1-block.dat.gz {len(block_gz)} B", flush=True)
        gvol = np.frombuffer(gzip.decompress(vol_gz), "<u8").reshape(64, 64, 64)
        check(np.array_equal(decode_native_block(gzip.decompress(block_gz)), gvol), "own decoder reproduces golden volume")
        st, body, _ = d.post(f"/api/repo/{pre}/instance", {"typename": "labelmap", "dataname": "fib"})
        st, body, _ = d.post(f"/api/node/{pre}/fib/blocks", struct.pack("<iiiI", 0, 0, 0, len(block_gz)) + block_gz)
        check(st == 200, f"POST golden block {st} {body!r}")
        st, body, _ = d.get(f"/api/node/{pre}/fib/raw/0_1_2/64_64_64/0_0_0")
        check(st == 200 and body == gvol.tobytes(), "golden block -> raw GET")
        st, body, _ = d.get(f"/api/node/{pre}/fib/blocks/64_64_64/0_0_0?compression=blocks")
        check(st == 200 and parse_records(body).get((0, 0, 0)) == block_gz, "compression=blocks echoes the stored gzip")
        # the double's own encoder, decoded by this check's decoder
        from dvid import encode_block as enc
        check(np.array_equal(decode_native_block(enc(gvol)), gvol), "double's encoder round-trips the golden volume")
        check(enc(gvol) == gzip.decompress(block_gz), "double's encoder gives DVID's golden Block byte for byte")
        st, body, _ = d.post(f"/api/node/{pre}/fib/raw/0_1_2/64_64_64/64_0_0", gvol.tobytes())
        st, body, _ = d.get(f"/api/node/{pre}/fib/blocks/64_64_64/64_0_0?compression=blocks")
        rec = parse_records(body).get((1, 0, 0))
        check(rec is not None and np.array_equal(decode_native_block(gzip.decompress(rec)), gvol),
              "raw POST -> blocks (native) decodes")

    # --- supervoxels vs mapped after a merge (labelmap)
    a, b = int(lm[0, 0, 0]), int(lm[0, 0, 1])
    if a == b:
        b = int(np.unique(lm)[1]) if int(np.unique(lm)[0]) == a else int(np.unique(lm)[0])
    st, body, _ = d.post(f"/api/node/{pre}/d_labelmap/merge", json.dumps([a, b]).encode())
    check(st == 200 and "MutationID" in json.loads(body), f"merge {st} {body!r}")
    p = f"/api/node/{pre}/d_labelmap/raw/0_1_2/64_64_64/32_64_0"
    st, sv, _ = d.get(p + "?supervoxels=true")
    st2, mapped, _ = d.get(p)
    svv, mv = np.frombuffer(sv, "<u8"), np.frombuffer(mapped, "<u8")
    check(np.array_equal(svv, lm.reshape(-1)), "supervoxels=true gives the written ids")
    check(np.array_equal(mv, np.where(svv == b, a, svv)), "mapped ids follow the merge")
    st, body, _ = d.get(f"/api/node/{pre}/d_labelmap/mapping", body=json.dumps([b, a, 12345]).encode())
    check(json.loads(body) == [a, a, 0], f"mapping {body!r}")
    st, body, _ = d.post(f"/api/node/{pre}/d_labelmap/merge", b"[1, 999]")
    check(st == 400 and b"can't merge non-existent label 999" in body, f"merge non-existent: {body!r}")

    # --- errors
    p = f"/api/node/{pre}/d_uint8blk/raw/0_1_2/32_32_32/16_0_0"
    st, body, _ = d.post(p, bytes(32 ** 3))
    check(st == 400 and body == f"cannot store voxels in non-block aligned geometry (16,0,0) -> (47,31,31) ({p}).\n".encode(),
          f"misaligned imageblk POST: {body!r}")
    p = f"/api/node/{pre}/d_labelmap/raw/0_1_2/32_32_32/16_0_0"
    st, body, _ = d.post(p, bytes(32 ** 3 * 8))
    check(st == 400 and body == (f'cannot store labels for data "d_labelmap" in non-block aligned geometry (16,0,0) -> '
                                 f'(47,31,31) ({p}).\n').encode(), f"misaligned labelmap POST: {body!r}")
    p = f"/api/node/{pre}/d_uint8blk/raw/0_1_2/32_32_32/0_0_0"
    st, body, _ = d.post(p, bytes(10))
    check(st == 400 and body == f"voxels data was 10 bytes, expected 32768 bytes for 3d volume (32,32,32) at offset (0,0,0) ({p}).\n".encode(),
          f"short body: {body!r}")
    st, body, _ = d.get("/api/node/ffff/d_uint8blk/info")
    check(st == 400 and body == b"could not find UUID with partial match to ffff (/api/node/ffff/d_uint8blk/info).\n",
          f"unknown uuid {body!r}")
    st, body, _ = d.get(f"/api/node/{pre}/nosuch/info")
    check(st == 400 and body == f"invalid data instance name (/api/node/{pre}/nosuch/info).\n".encode(), f"unknown instance {body!r}")
    p = f"/api/node/{pre}/d_uint8blk/raw/0_1_2/32_x_32/0_0_0"
    st, body, _ = d.get(p)
    check(st == 400 and body == f'strconv.ParseInt: parsing "x": invalid syntax ({p}).\n'.encode(), f"bad size {body!r}")
    p = f"/api/node/{pre}/d_uint8blk/raw/0_1_2/32_32/0_0_0"
    st, body, _ = d.get(p)
    check(st == 400 and body == f"Size must be 3 (not 2) dimensions ({p}).\n".encode(), f"2-d size {body!r}")
    p = f"/api/node/{pre}/d_uint8blk/raw/0_1_3/32_32_32/0_0_0"
    st, body, _ = d.get(p)
    check(st == 400 and body == f"Unknown data shape specification (0_1_3) ({p}).\n".encode(), f"bad shape {body!r}")
    st, body, _ = d.post(f"/api/repo/{pre}/instance", {"typename": "labelmap", "dataname": "x", "BlockSize": "24,24,24"})
    check(st == 400 and body.startswith(b"BlockSize must be multiples of 16"), f"labelmap block size {body!r}")
    st, body, _ = d.post(f"/api/repo/{pre}/instance", {"typename": "grayscale8", "dataname": "x"})
    check(st == 400 and body.startswith(b'Data type "grayscale8" is not supported by current DVID server'), f"bad type {body!r}")

    # --- throttle and availability
    p = f"/api/node/{pre}/d_uint8blk/raw/0_1_2/32_32_32/32_64_0?throttle=true"
    d.post("/__control", {"busy": 2})
    s1, b1, _ = d.get(p)
    s2, _, _ = d.get(p)
    s3, _, _ = d.get(p)
    check((s1, s2, s3) == (503, 503, 200) and b1 == b"Server already running 1 throttled operations (max = 1)\n\n",
          f"busy: {(s1, s2, s3)} {b1!r}")
    d.post("/__control", {"busy": 1})
    s4, _, _ = d.get(p.split("?")[0])
    check(s4 == 200, "busy only affects throttle=true requests")
    d.get(p)  # consume
    d.post("/__control", {"unavailable": 1})
    s5, b5, _ = d.get(f"/api/node/{pre}/d_uint8blk/info")
    check(s5 == 503 and b5 == b"DVID server is unavailable.\n", f"unavailable {s5} {b5!r}")

    # --- versions: commit, branch, uuid:branch, prefix resolution
    st, body, _ = d.post(f"/api/node/{pre}/commit", {"note": "v1"})
    check(st == 200 and json.loads(body) == {"committed": root}, f"commit {body!r}")
    p = f"/api/node/{pre}/d_uint8blk/raw/0_1_2/32_32_32/32_64_0"
    st, body, _ = d.post(p, bytes(32 ** 3))
    check(st == 400 and b"of locked node" in body, f"write to locked node {body!r}")
    st, body, _ = d.post(f"/api/node/{pre}/branch", {"branch": "dev", "note": "work"})
    child = json.loads(body)["child"]
    st, body, _ = d.post(f"/api/node/{root}:dev/d_uint8blk/raw/0_1_2/32_32_32/32_64_0", np.full(32 ** 3, 9, np.uint8).tobytes())
    check(st == 200, f"write via uuid:branch {st} {body!r}")
    st, body, _ = d.get(f"/api/node/{child[:6]}/d_uint8blk/raw/0_1_2/32_32_32/32_64_0")
    check(body == np.full(32 ** 3, 9, np.uint8).tobytes(), "child sees its write")
    st, body, _ = d.get(f"/api/node/{root}:master/d_uint8blk/raw/0_1_2/32_32_32/32_64_0")
    check(body == refs["uint8blk"][:32, :32, :32].tobytes(), "master leaf keeps the parent's data")
    st, body, _ = d.get(f"/api/node/{child[:6]}/d_uint8blk/raw/0_1_2/32_32_32/64_64_0")
    check(body == refs["uint8blk"][:32, :32, 32:64].tobytes(), "child inherits unwritten blocks from the parent")
    st, body, _ = d.get(f"/api/node/{root}:dev~1/d_uint8blk/raw/0_1_2/32_32_32/32_64_0")
    check(st == 200 and body == refs["uint8blk"][:32, :32, :32].tobytes(), "uuid:branch~1 is the branch leaf's parent")
    st, body, _ = d.get(f"/api/repo/{pre}/branch-versions/dev")
    check(json.loads(body) == [child, root], f"branch-versions {body!r}")
    st, body, _ = d.get(f"/api/node/{pre}:nosuch/d_uint8blk/info")
    check(st == 400 and b'branch "nosuch" not found' in body, f"bad branch {body!r}")
    st, body, _ = d.get(f"/api/repo/{child[:4]}/info")
    ri = json.loads(body)
    check(ri["Root"] == root and set(ri["DAG"]["Nodes"]) == {root, child} and "d_labelmap" in ri["DataInstances"],
          "repo info")

    # --- the request record
    st, body, _ = d.get("/__requests")
    log = json.loads(body)
    check(any(r["path"].endswith("/raw/0_1_2/32_32_64/0_0_128") and r["query"].get("compression") == "lz4"
              and r["method"] == "POST" and r["content_length"] > 0 and r["status"] == 200 for r in log), "request log")


def run_auth(d):
    st, body, _ = d.post("/api/repos", {"alias": "a", "description": ""})
    root = json.loads(body)["root"]
    p = f"/api/node/{root}/x/info"
    st, body, _ = d.get(p)
    check(st == 401 and body == f"dsg token required via Authorization header or dsg_token cookie ({p}).\n".encode(),
          f"no token {st} {body!r}")
    st, body, _ = d.get(p, headers={"Authorization": "Bearer nope"})
    check(st == 401 and body == f"invalid DSG token ({p}).\n".encode(), f"wrong token {st} {body!r}")
    st, body, _ = d.get(p, headers={"Authorization": "Bearer sekrit"})
    check(st == 400 and b"invalid data instance name" in body, f"good token reaches the instance {st} {body!r}")
    st, body, _ = d.get(p, headers={"Cookie": "dsg_token=sekrit"})
    check(st == 400, "dsg_token cookie")
    st, body, _ = d.get("/api/node/abcd/x/info")
    check(st == 400 and b"could not find UUID" in body, "uuid resolution precedes auth")
    st, body, _ = d.get("/api/repos/info")
    check(st == 200 and body == b"{}", "repos/info without a token: no public repos")
    st, body, _ = d.get("/api/repos/info", headers={"Authorization": "Bearer sekrit"})
    check(st == 200 and root in json.loads(body), "repos/info with the token")
    st, log, _ = d.get("/__requests")
    check([r["auth"] for r in json.loads(log) if r["path"] == p] == ["missing", "wrong", "ok", "ok"], "auth recorded")
    check(b"sekrit" not in log, "token never recorded")


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
