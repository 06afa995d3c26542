#!/usr/bin/env python3
"""Drives tests/servers/boss.py with the unmodified reference client intern (PyPI 1.4.2) and raw
requests, and checks the double answers as the BOSS's source says. Exit status 0 when every check
passes; prints one line per check and a JSON summary of what it observed (metadata bodies, error
bodies, intern's behaviour on 429).

    target/venv/bin/python tests/servers/boss_selfcheck.py [-v]
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
import io

import blosc
import numpy as np
import requests
from requests import HTTPError

from intern.remote.boss import BossRemote
from intern.resource.boss.resource import (ChannelResource, CollectionResource, CoordinateFrameResource,
                                           ExperimentResource)

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN, READER = "s3cr3t-admin", "s3cr3t-reader"
LIMIT = 1048576  # --max-cutout-bytes for the main instance
failures, observed = [], {}
VERBOSE = "-v" in sys.argv


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + (("  -- " + str(detail)) if (detail and (VERBOSE or not cond)) else ""))
    if not cond:
        failures.append(name)


def start(*args):
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "boss.py"), "--port", "0", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("PORT "):
        p.kill()
        raise SystemExit("double did not start: %r %s" % (line, p.stderr.read()))
    return p, int(line.split()[1])


def main():
    tmp = tempfile.mkdtemp(prefix="boss-selfcheck-")
    cvroot = os.path.join(tmp, "s3")
    make_cloudvol_layer(os.path.join(cvroot, "bkt", "col1", "exp1", "cvimg"))
    proc, port = start("--token", TOKEN, "--read-token", READER, "--max-cutout-bytes", str(LIMIT),
                       "--cloudvol-root", cvroot, "--log", os.path.join(tmp, "log.jsonl"))
    procs = [proc]
    try:
        run(port, procs)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(observed, indent=1, default=str))
    print("\n%d check(s) failed: %s" % (len(failures), failures) if failures else "\nall checks passed")
    return 1 if failures else 0


def make_cloudvol_layer(path):
    from cloudvolume import CloudVolume
    info = CloudVolume.create_new_info(1, "image", "uint8", "raw", [4, 4, 40], [0, 0, 0], [1124, 1024, 64],
                                       chunk_size=[64, 64, 16])
    vol = CloudVolume("file://" + path, info=info, progress=False)
    vol.commit_info()
    rng = np.random.default_rng(7)
    xyz = rng.integers(1, 255, (128, 64, 16), dtype=np.uint8)
    vol[128:256, 64:128, 16:32] = xyz
    global CV_XYZ
    CV_XYZ = xyz


def run(port, procs):
    base = "http://127.0.0.1:%d" % port
    v1 = base + "/v1"
    H = {"Authorization": "Token " + TOKEN}
    rmt = BossRemote({"protocol": "http", "host": "127.0.0.1:%d" % port, "token": TOKEN})

    # --- set up through intern's create_project (the real POST endpoints)
    cf = rmt.create_project(CoordinateFrameResource("cf1", "frame", 100, 1124, 0, 1024, 0, 64, 4, 4, 40))
    col = rmt.create_project(CollectionResource("col1", "a collection"))
    exp = rmt.create_project(ExperimentResource("exp1", "col1", "cf1", "an experiment", num_hierarchy_levels=3,
                                                hierarchy_method="anisotropic", num_time_samples=3))
    chans = {}
    for name, dt, typ in (("img8", "uint8", "image"), ("img16", "uint16", "image"),
                          ("ann64", "uint64", "annotation")):
        chans[name] = rmt.create_project(ChannelResource(name, "col1", "exp1", typ, datatype=dt))
    # intern's ChannelResource refuses uint32; the BOSS's model accepts it, so create it raw
    r = requests.post(v1 + "/collection/col1/experiment/exp1/channel/img32/", headers=H,
                      json={"type": "image", "datatype": "uint32"})
    check("raw POST of a uint32 channel: 201", r.status_code == 201, r.text)
    check("intern create_project: coord/collection/experiment/channels", all(
        [cf.name == "cf1", col.name == "col1", exp.num_hierarchy_levels == 3] +
        [chans[n].datatype == d for n, d in (("img8", "uint8"), ("ann64", "uint64"))]))
    r = requests.post(base + "/__seed", json={"channels": [
        {"collection": "col1", "experiment": "exp1", "name": "cvimg", "type": "image", "datatype": "uint8",
         "storage_type": "cloudvol", "bucket": "bkt"},
        {"collection": "col1", "experiment": "exp1", "name": "pubimg", "type": "image", "datatype": "uint8",
         "public": True}]})
    check("__seed creates a cloudvol and a public channel", r.status_code == 200, r.text)

    # --- metadata shapes
    meta = {}
    for key, url in (("collection", "/collection/col1/"), ("experiment", "/collection/col1/experiment/exp1/"),
                     ("channel", "/collection/col1/experiment/exp1/channel/img8/"), ("coord", "/coord/cf1/"),
                     ("downsample", "/downsample/col1/exp1/img8/"),
                     ("downsample_iso", "/downsample/col1/exp1/img8/?iso=true"),
                     ("channel_cloudvol", "/collection/col1/experiment/exp1/channel/cvimg/"),
                     ("collection_list", "/collection/"), ("coord_list", "/coord/")):
        r = requests.get(v1 + url, headers=H)
        meta[key] = {"status": r.status_code, "content_type": r.headers.get("Content-Type"), "body": r.text}
    observed["metadata"] = meta
    j = {k: json.loads(v["body"]) for k, v in meta.items()}
    check("collection JSON keys", list(j["collection"]) == ["name", "public", "description", "experiments", "creator"]
          and j["collection"]["experiments"] == ["exp1"], j["collection"])
    check("experiment JSON keys", list(j["experiment"]) == [
        "channels", "name", "public", "description", "collection", "coord_frame", "num_hierarchy_levels",
        "hierarchy_method", "num_time_samples", "time_step", "time_step_unit", "creator"], j["experiment"])
    check("channel JSON keys", list(j["channel"]) == [
        "name", "public", "description", "experiment", "default_time_sample", "type", "base_resolution",
        "datatype", "creator", "sources", "downsample_status", "related", "storage_type", "bucket", "cv_path"]
        and j["channel"]["storage_type"] == "spdb" and j["channel"]["bucket"] is None, j["channel"])
    check("cloudvol channel: cv_path defaults to /c/e/ch, DOWNSAMPLED",
          j["channel_cloudvol"]["cv_path"] == "/col1/exp1/cvimg" and
          j["channel_cloudvol"]["downsample_status"] == "DOWNSAMPLED", j["channel_cloudvol"])
    check("coord JSON: voxel sizes are floats", j["coord"]["x_voxel_size"] == 4.0 and
          isinstance(j["coord"]["z_voxel_size"], float) and '"x_voxel_size":4.0' in meta["coord"]["body"])
    ds = j["downsample"]
    check("downsample: anisotropic voxel/extent/cuboid per level",
          ds["voxel_size"] == {"0": [4.0, 4.0, 40.0], "1": [8.0, 8.0, 40.0], "2": [16.0, 16.0, 40.0]} and
          ds["extent"] == {"0": [1124, 1024, 64], "1": [562, 512, 64], "2": [281, 256, 64]} and
          ds["cuboid_size"] == {"0": [512, 512, 16], "1": [512, 512, 16], "2": [512, 512, 16]} and
          ds["status"] == "NOT_DOWNSAMPLED" and ds["num_hierarchy_levels"] == 3, ds)
    # isotropic level of 4x4x40 is 3 (40/(4*8)=1.25 nearest 1), so iso=true changes nothing below level 3
    check("downsample ?iso=true below the isotropic level is unchanged", j["downsample_iso"] == ds)
    ch8 = rmt.get_channel("img8", "col1", "exp1")
    check("intern get_channel parses the channel", ch8.datatype == "uint8" and ch8.type == "image")
    check("intern list_collections / list_coordinate_frames",
          rmt.list_collections() == ["col1"] and rmt.list_coordinate_frames() == ["cf1"])

    # --- cutout round trips through intern, each dtype, res 0 and 1, offsets absolute in the frame
    rng = np.random.default_rng(1)
    box = ([300, 364], [40, 104], [8, 24])  # x0 >= frame x_start 100, not block aligned
    shape = tuple(b[1] - b[0] for b in box[::-1])
    written = {}
    for name, dt in (("img8", np.uint8), ("img16", np.uint16), ("ann64", np.uint64)):
        for res in (0, 1):
            hi = np.iinfo(dt).max
            d = rng.integers(1, hi, size=shape, dtype=dt, endpoint=True)
            rmt.create_cutout(chans[name], res, *box, d)
            back = rmt.get_cutout(chans[name], res, *box)
            written[(name, res)] = d
            check("intern create_cutout/get_cutout %s res %d" % (name, res),
                  back.dtype == dt and back.shape == shape and np.array_equal(back, d))
        z = rmt.get_cutout(chans[name], 2, *box)
        check("never-written res 2 of %s reads zeros" % name, z.shape == shape and not z.any())
    # res 0 and 1 are stored independently
    check("res 0 and res 1 stored independently", not np.array_equal(written[("img8", 0)], written[("img8", 1)]) and
          np.array_equal(rmt.get_cutout(chans["img8"], 0, *box), written[("img8", 0)]))
    # a partly overlapping read: written part + zeros
    part = rmt.get_cutout(chans["img16"], 0, [332, 400], [40, 104], [8, 24])
    check("read overlapping written and unwritten voxels",
          np.array_equal(part[:, :, :32], written[("img16", 0)][:, :, 32:]) and not part[:, :, 32:].any())

    # --- raw GET, Accept application/blosc: blosc of C-order ZYX bytes, typesize = bit depth
    url = v1 + "/cutout/col1/exp1/img16/0/300:364/40:104/8:24/"
    r = requests.get(url, headers=dict(H, Accept="application/blosc"))
    raw = r.content
    check("raw blosc GET: 200 application/blosc", r.status_code == 200 and
          r.headers.get("Content-Type") == "application/blosc", (r.status_code, r.headers.get("Content-Type")))
    check("raw blosc GET decodes to the C-order ZYX bytes", blosc.decompress(raw) == written[("img16", 0)].tobytes())
    observed["blosc_header"] = {"version": raw[0], "versionlz": raw[1], "flags": raw[2], "typesize": raw[3],
                                "nbytes": int.from_bytes(raw[4:8], "little"), "cname": blosc.get_clib(raw)}
    check("blosc header: typesize byte = 16 (bits), byte shuffle, blosclz",
          raw[3] == 16 and raw[2] & 0x1 and blosc.get_clib(raw) == "BloscLZ", observed["blosc_header"])
    r = requests.get(url, headers=dict(H, Accept="application/npygz"))
    arr = np.load(io.BytesIO(zlib.decompress(r.content)))
    check("raw npygz GET", r.status_code == 200 and np.array_equal(arr, written[("img16", 0)]))
    r = requests.get(v1 + "/cutout/col1/exp1/img8/0/300:364/40:104/8:24", headers=dict(H, Accept="image/jpeg"))
    check("raw jpeg GET of uint8 (no trailing slash)", r.status_code == 200 and r.content[:2] == b"\xff\xd8")
    r = requests.get(url, headers=dict(H, Accept="image/jpeg"))
    observed["jpeg_uint16"] = (r.status_code, r.text)
    check("jpeg of uint16: 400 code 2001", r.status_code == 400 and json.loads(r.text)["code"] == 2001, r.text)

    # --- time series (4-D), through intern
    d4 = rng.integers(1, 255, size=(2,) + shape, dtype=np.uint8)
    rmt.create_cutout(chans["img8"], 0, *box, d4, time_range=[1, 3])
    back4 = rmt.get_cutout(chans["img8"], 0, *box, time_range=[1, 3])
    check("time range [1,3) round trip (TZYX)", back4.shape == d4.shape and np.array_equal(back4, d4))
    check("without a time range the default_time_sample (0) is read",
          np.array_equal(rmt.get_cutout(chans["img8"], 0, *box), written[("img8", 0)]))
    r = requests.get(v1 + "/cutout/col1/exp1/img8/0/300:364/40:104/8:24/0:5/", headers=H)
    observed["time_out_of_range"] = (r.status_code, r.text)
    check("time range past num_time_samples+1: 400 code 1000", r.status_code == 400 and
          json.loads(r.text)["code"] == 1000, r.text)

    # --- merge semantics, filter, to_black
    zero_patch = np.zeros((1, 4, 4), dtype=np.uint8)
    r = requests.post(v1 + "/cutout/col1/exp1/img8/0/300:304/40:44/8:9/", data=blosc.compress(zero_patch.tobytes(), 1),
                      headers=dict(H, **{"Content-Type": "application/blosc"}))
    check("POST of zeros: 201 and nothing changes (non-zero overwrite)", r.status_code == 201 and r.content == b"" and
          np.array_equal(rmt.get_cutout(chans["img8"], 0, *box), written[("img8", 0)]), r.status_code)
    ann = written[("ann64", 0)]
    keep = [int(ann[0, 0, 0]), int(ann[3, 5, 7])]
    f = rmt.get_cutout(chans["ann64"], 0, *box, id_list=keep)
    check("?filter= on annotation keeps only those ids", np.array_equal(f, np.where(np.isin(ann, keep), ann, 0)))
    r = requests.get(v1 + "/cutout/col1/exp1/img8/0/300:364/40:104/8:24/?filter=1,2", headers=H)
    observed["filter_on_image"] = (r.status_code, r.text)
    check("filter on an image channel: 400 code 2003", r.status_code == 400 and json.loads(r.text)["code"] == 2003)
    rmt.create_cutout_to_black(chans["img8"], 0, [300, 310], [40, 104], [8, 24])
    tb = rmt.get_cutout(chans["img8"], 0, *box)
    check("intern create_cutout_to_black zeroes the box", not tb[:, :, :10].any() and
          np.array_equal(tb[:, :, 10:], written[("img8", 0)][:, :, 10:]))

    # --- bad requests
    bad = {}

    def raw_get(tag, path, headers=H, **kw):
        r = requests.get(v1 + path, headers=headers, **kw)
        bad[tag] = {"status": r.status_code, "content_type": r.headers.get("Content-Type"),
                    "www_authenticate": r.headers.get("WWW-Authenticate"),
                    "body": r.text[:300] if "json" in (r.headers.get("Content-Type") or "") or
                    "html" in (r.headers.get("Content-Type") or "") else "<%d bytes>" % len(r.content)}
        return r

    r = raw_get("x_below_frame_start", "/cutout/col1/exp1/img8/0/50:120/0:10/0:1/")
    check("x0 below the frame's x_start: 400 code 1001", r.status_code == 400 and r.json() == {
        "status": 400, "code": 1001, "message": "Incorrect cutout arguments 0/50:120/0:10/0:1"}, r.text)
    check("BossHTTPError body uses json.dumps spacing", r.text.startswith('{"status": 400, "code": 1001, '), r.text)
    r = raw_get("beyond_frame_stop", "/cutout/col1/exp1/img8/0/1000:1125/0:10/0:1/")
    check("x1 past x_stop: 400", r.status_code == 400)
    r = raw_get("res1_frame_not_scaled", "/cutout/col1/exp1/img8/1/1000:1124/0:10/0:1/")
    check("res 1 bounds are the res-0 frame (not scaled): 200", r.status_code == 200, r.text[:100])
    r = raw_get("empty_range", "/cutout/col1/exp1/img8/0/200:200/0:10/0:1/")
    check("empty range: 400 code 1001", r.status_code == 400)
    r = raw_get("res_out_of_hierarchy", "/cutout/col1/exp1/img8/3/200:210/0:10/0:1/")
    check("res >= num_hierarchy_levels: 400 code 1002", r.status_code == 400 and r.json()["code"] == 1002, r.text)
    r = raw_get("two_digit_res", "/cutout/col1/exp1/img8/10/200:210/0:10/0:1/")
    check("two-digit resolution: Django 404 HTML", r.status_code == 404 and "Not Found" in r.text)
    r = raw_get("unknown_channel", "/cutout/col1/exp1/nope/0/200:210/0:10/0:1/")
    check("unknown channel: 404 code 4000", r.status_code == 404 and r.json()["message"] == "Channel nope not found")
    r = raw_get("unknown_channel_meta", "/collection/col1/experiment/exp1/channel/nope/")
    check("unknown channel metadata: 404 'nope does not exist.'", r.status_code == 404 and
          r.json()["message"] == "nope does not exist.")
    r = raw_get("uint32_cutout", "/cutout/col1/exp1/img32/0/200:210/0:10/0:1/",
                headers=dict(H, Accept="application/blosc"))
    check("uint32 channel cutout: 500 (spdb has no uint32 bit depth)", r.status_code == 500)
    # size limit (this instance: --max-cutout-bytes 1 MiB)
    r = raw_get("too_large_uint8", "/cutout/col1/exp1/img8/0/200:328/0:130/0:64/")
    check("uint8 128x130x64 > 1 MiB: 413 code 2000", r.status_code == 413 and r.json() == {
        "status": 413, "code": 2000,
        "message": "Cutout request is over 500MB when uncompressed. Reduce cutout dimensions."}, r.text)
    r = raw_get("at_limit_uint8", "/cutout/col1/exp1/img8/0/200:328/0:128/0:64/")
    check("uint8 exactly at the limit: 200", r.status_code == 200)
    r = raw_get("uint64_4x", "/cutout/col1/exp1/ann64/0/200:328/0:128/0:16/")
    check("uint64 2 MiB box allowed (4x rule): 200", r.status_code == 200)
    r = raw_get("too_large_uint64", "/cutout/col1/exp1/ann64/0/200:328/0:128/0:40/")
    check("uint64 5 MiB box: 413", r.status_code == 413)
    # intern's view of a 413
    try:
        rmt.get_cutout(chans["img8"], 0, [200, 328], [0, 130], [0, 64], parallel=False)
        check("intern raises on 413", False)
    except HTTPError as e:
        check("intern raises HTTPError on 413", e.response.status_code == 413)
    # POST body mismatches
    ph = dict(H, **{"Content-Type": "application/blosc"})
    curl = v1 + "/cutout/col1/exp1/img16/0/300:304/40:44/8:9/"
    for tag, body in (("post_wrong_shape", blosc.compress(np.ones(20, np.uint16).tobytes(), 2)),
                      ("post_odd_bytes", blosc.compress(b"\x01\x02\x03", 1)),
                      ("post_not_blosc", b"this is not blosc"),
                      ("post_uint8_to_uint16", blosc.compress(np.ones(16, np.uint8).tobytes(), 1))):
        r = requests.post(curl, data=body, headers=ph)
        bad[tag] = {"status": r.status_code, "body": r.text}
    check("POST wrong voxel count: 400 code 2002", bad["post_wrong_shape"]["status"] == 400 and
          json.loads(bad["post_wrong_shape"]["body"])["code"] == 2002, bad["post_wrong_shape"])
    check("POST bytes not a multiple of the dtype: 400 code 2001", bad["post_odd_bytes"]["status"] == 400 and
          json.loads(bad["post_odd_bytes"]["body"])["code"] == 2001, bad["post_odd_bytes"])
    check("POST undecodable body: 400 code 2001", bad["post_not_blosc"]["status"] == 400 and
          json.loads(bad["post_not_blosc"]["body"])["code"] == 2001, bad["post_not_blosc"])
    check("POST uint8 bytes to a uint16 channel (half the voxels): 400 code 2002",
          bad["post_uint8_to_uint16"]["status"] == 400 and
          json.loads(bad["post_uint8_to_uint16"]["body"])["code"] == 2002, bad["post_uint8_to_uint16"])
    buf = io.BytesIO()
    np.save(buf, np.ones((1, 4, 4), np.uint8))
    r = requests.post(curl, data=zlib.compress(buf.getvalue()), headers=dict(H, **{"Content-Type": "application/npygz"}))
    bad["post_npygz_wrong_dtype"] = {"status": r.status_code, "body": r.text}
    check("POST npygz of another dtype: 400 'Datatype does not match channel'", r.status_code == 400 and
          r.json()["message"] == "Datatype does not match channel", r.text)
    try:
        rmt.create_cutout(chans["img8"], 2, *box, written[("img8", 0)])
        check("write at base_resolution+2 refused", False)
    except HTTPError as e:
        bad["post_res2"] = {"status": e.response.status_code, "body": e.response.text}
        check("write at base_resolution+2: 400 code 9001 (spdb Resolution Mismatch)",
              e.response.status_code == 400 and e.response.json()["code"] == 9001, e.response.text)

    # --- auth
    wrong = BossRemote({"protocol": "http", "host": "127.0.0.1:%d" % port, "token": "wrong-token"})
    try:
        wrong.get_channel("img8", "col1", "exp1")
        check("wrong token on metadata refused", False)
    except HTTPError as e:
        check("wrong token, metadata (intern): 401 {\"detail\":\"Invalid token.\"}",
              e.response.status_code == 401 and e.response.text == '{"detail":"Invalid token."}' and
              e.response.headers.get("WWW-Authenticate") == 'Bearer realm="api"', e.response.text)
    try:
        wrong.get_cutout(chans["img8"], 0, *box)
        check("wrong token on cutout refused", False)
    except HTTPError as e:
        bad["wrong_token_cutout_intern"] = {"status": e.response.status_code, "body": e.response.text[:200]}
        check("wrong token, cutout (intern, Accept blosc): 500 (BloscRenderer cannot render the 401)",
              e.response.status_code == 500, e.response.status_code)
    raw_get("wrong_token_cutout_json", "/cutout/col1/exp1/img8/0/300:364/40:104/8:24/",
            headers={"Authorization": "Token nope", "Accept": "application/json"})
    check("wrong token, cutout, Accept application/json: 401 JSON", bad["wrong_token_cutout_json"]["status"] == 401)
    raw_get("token_header_no_key", "/collection/col1/", headers={"Authorization": "Token"})
    check("'Token' without key: 401 'Invalid token header. No credentials provided.'",
          bad["token_header_no_key"]["status"] == 401 and "No credentials provided" in bad["token_header_no_key"]["body"])
    raw_get("anonymous_get_private", "/collection/col1/experiment/exp1/channel/img8/", headers={})
    check("anonymous GET of a private channel: 403 code 3001", bad["anonymous_get_private"]["status"] == 403 and
          json.loads(bad["anonymous_get_private"]["body"]) == {
              "status": 403, "code": 3001, "message": "Missing read permissions on the resource img8"})
    raw_get("reader_cutout_private", "/cutout/col1/exp1/img8/0/300:364/40:104/8:24/",
            headers={"Authorization": "Token " + READER, "Accept": "application/blosc"})
    check("valid reader token, private cutout: 403 code 3001", bad["reader_cutout_private"]["status"] == 403 and
          json.loads(bad["reader_cutout_private"]["body"])["message"] ==
          "This user does not have the required permissions")
    r = raw_get("anonymous_cutout_public", "/cutout/col1/exp1/pubimg/0/300:364/40:104/8:24/",
                headers={"Accept": "application/blosc"})
    check("anonymous GET of a public channel's cutout: 200", r.status_code == 200)
    reader = BossRemote({"protocol": "http", "host": "127.0.0.1:%d" % port, "token": READER})
    try:
        reader.create_project(CollectionResource("col2"))
        check("reader cannot create", False)
    except HTTPError as e:
        bad["reader_create_collection"] = {"status": e.response.status_code, "body": e.response.text}
        check("reader create collection: 403 code 3000 (role)", e.response.status_code == 403 and
              e.response.json()["code"] == 3000, e.response.text)
    r = requests.post(v1 + "/collection/col3/", json={"description": ""})
    bad["anonymous_post"] = {"status": r.status_code, "body": r.text}
    check("anonymous POST: 401 'Authentication credentials were not provided.'", r.status_code == 401 and
          r.json() == {"detail": "Authentication credentials were not provided."}, r.text)
    r = requests.post(v1 + "/collection/col1/", json={}, headers=H)
    bad["duplicate_collection"] = {"status": r.status_code, "body": r.text}
    check("duplicate collection: 400 code 1003 with serializer errors", r.status_code == 400 and
          r.json()["code"] == 1003 and "already exists" in r.json()["message"], r.text)
    r = requests.post(v1 + "/collection/col1/experiment/exp1/channel/bad/", json={"type": "image", "datatype": "float"},
                      headers=H)
    bad["bad_datatype"] = {"status": r.status_code, "body": r.text}
    check("channel with datatype float: 400 invalid_choice", r.status_code == 400 and
          "invalid_choice" in r.json()["message"], r.text)
    observed["error_bodies"] = bad

    # --- throttling: what intern does with a 429
    requests.post(base + "/__control", json={"clear_log": True, "throttle": 1})
    t0 = time.time()
    try:
        rmt.get_cutout(chans["img8"], 0, *box)
        intern_429 = "returned data (retried?)"
    except HTTPError as e:
        intern_429 = "raised HTTPError %d: %s" % (e.response.status_code, e.response.text)
    log = requests.get(base + "/__requests").json()
    observed["intern_on_429"] = {"outcome": intern_429, "requests_sent": len(log),
                                 "statuses": [x["status"] for x in log], "seconds": round(time.time() - t0, 3)}
    check("throttle: 429 body via BloscRenderer, intern raises without retrying",
          intern_429.startswith("raised HTTPError 429") and len(log) == 1 and
          '{"status":429,"message":"User is throttled. Expected available tomorrow.","code":3004}' in intern_429,
          observed["intern_on_429"])
    check("after the throttle: success", np.array_equal(rmt.get_cutout(chans["img16"], 0, *box), written[("img16", 0)]))
    requests.post(base + "/__control", json={"throttle": 1})
    try:
        rmt.create_cutout(chans["img8"], 0, *box, written[("img8", 0)])
        post_429 = "no error"
    except HTTPError as e:
        post_429 = "raised HTTPError %d" % e.response.status_code
    observed["intern_create_cutout_on_429"] = post_429
    check("throttled POST: intern create_cutout raises 429", post_429 == "raised HTTPError 429")
    requests.post(base + "/__control", json={"fail": 1, "status": 503})
    try:
        rmt.get_channel("img8", "col1", "exp1")
        fail_503 = "no error"
    except HTTPError as e:
        fail_503 = "raised HTTPError %d" % e.response.status_code
    observed["intern_on_503"] = fail_503
    check("injected 503: intern raises (no retry)", fail_503 == "raised HTTPError 503")

    # --- the request record
    requests.post(base + "/__control", json={"clear_log": True})
    rmt.get_cutout(chans["img8"], 0, *box)
    rec = requests.get(base + "/__requests").json()[-1]
    observed["request_record"] = rec
    check("__requests records Accept, Content-Type, auth validity", rec["accept"] == "application/blosc" and
          rec["content_type"] == "application/blosc" and rec["authorization"] == "valid" and rec["status"] == 200 and
          rec["path"] == "/v1/cutout/col1/exp1/img8/0/300:364/40:104/8:24/" and
          rec["query"] == {"access-mode": "no-cache"}, rec)

    # --- storage_type cloudvol: the cutout GET reads the local Precomputed layer
    r = requests.get(v1 + "/cutout/col1/exp1/cvimg/0/228:356/64:128/16:32/", headers=dict(H, Accept="application/blosc"))
    got = np.frombuffer(blosc.decompress(r.content), np.uint8).reshape(16, 64, 128) if r.status_code == 200 else None
    exp_zyx = np.zeros((16, 64, 128), np.uint8)
    exp_zyx[:, :, :28] = CV_XYZ[100:, :, :].transpose(2, 1, 0)
    check("cloudvol channel GET reads the Precomputed layer (XYZ -> ZYX)", got is not None and
          np.array_equal(got, exp_zyx), r.status_code)

    # --- a second instance with the default limit (520 MiB)
    p2, port2 = start("--token", TOKEN)
    procs.append(p2)
    r2 = BossRemote({"protocol": "http", "host": "127.0.0.1:%d" % port2, "token": TOKEN})
    r2.create_project(CoordinateFrameResource("big", "", 0, 2048, 0, 2048, 0, 1024, 4, 4, 40))
    r2.create_project(CollectionResource("c"))
    r2.create_project(ExperimentResource("e", "c", "big"))
    r2.create_project(ChannelResource("u8", "c", "e", datatype="uint8"))
    r2.create_project(ChannelResource("u64", "c", "e", "annotation", datatype="uint64"))
    r = requests.get("http://127.0.0.1:%d/v1/cutout/c/e/u8/0/0:1024/0:1024/0:521/" % port2, headers=H)
    check("default CUTOUT_MAX_SIZE: uint8 1024x1024x521 (> 520 MiB): 413", r.status_code == 413, r.status_code)
    r = requests.get("http://127.0.0.1:%d/v1/cutout/c/e/u64/0/0:1024/0:1024/0:261/" % port2, headers=H)
    check("default limit: uint64 1024x1024x261 (2088 MiB / 4 > 520 MiB): 413", r.status_code == 413)


if __name__ == "__main__":
    sys.exit(main())
