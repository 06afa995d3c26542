#!/usr/bin/env python3
"""Aligned image + segmentation cutouts as ImageryClient computes them, for tests/imagery.rs.

Usage: target/venv/bin/python tests/reference/imagery_check.py OUT GRAPHENE

GRAPHENE is the graphene fixture of tests/reference/graphene_check.py (its watershed layer `ws`
and the chunkedgraph double's input). OUT is deleted and rebuilt, deterministically:

  img/           an image layer (uint8, raw, written by cloud-volume) over the watershed's
                 region: mip 0 is keyed "placeholder" (4,4,40, no chunk files: ImageryClient
                 skips it), then 8,8,40 (the watershed's mip 0), 16,16,40 and 24,24,40, each
                 with its own pseudo-random voxels (so a misaligned sample shows).
  expected/*.bin outputs, Fortran order, little-endian
  manifest.json  {"format": 1, "generated_by", "cases": [...]}; each case:
    id, source ("imageryclient": unmodified ImageryClient 1.0.4 with explicit sources, opened
    as it opens them; "model": cases where ImageryClient's scipy zoom and physical alignment
    differ (odd box corners, a factor of 3, downsampling), computed here from plain cloud-volume
    cutouts of each layer by nearest neighbour on physical position), image_layer ("img"),
    seg ("ws": Precomputed, or "graphene:<table>"), request {bounds [[lo],[hi]] in voxels of
    resolution, resolution or null, image_mip, segmentation_mip (null: default), root_ids
    ("all", null or a list), scale_to_bounds, split_segmentations, timestamp},
    grid {lo, hi, resolution} (what our library must report; model cases and where
    ImageryClient's shape determines it), image {file, shape}, seg {file, shape} or masks
    {ids, files}.

The graphene cases start the double on GRAPHENE (its token from GRAPHENE/manifest.json and
CLOUD_VOLUME_DIR=GRAPHENE for the secret, as graphene_check.py does).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DOUBLE = HERE.parent / "servers" / "chunkedgraph.py"

# The watershed's mip 0 (graphene_check.py): 200x160x40 at 64,32,8, resolution 8,8,40.
WS_OFF, WS_SIZE = np.array([64, 32, 8]), np.array([200, 160, 40])
IMG_SCALES = [  # (key, resolution, written)
    ("placeholder", (4, 4, 40), False),
    ("8_8_40", (8, 8, 40), True),
    ("16_16_40", (16, 16, 40), True),
    ("24_24_40", (24, 24, 40), True),
]


def image_layer(path):
    from cloudvolume import CloudVolume

    scales = []
    for key, res, _ in IMG_SCALES:
        f = np.array([8, 8, 40]) / np.array(res)
        lo = np.floor(WS_OFF * f).astype(int)
        hi = np.ceil((WS_OFF + WS_SIZE) * f).astype(int)
        scales.append({"key": key, "resolution": list(res), "voxel_offset": lo.tolist(),
                       "size": (hi - lo).tolist(), "chunk_sizes": [[64, 64, 16]], "encoding": "raw"})
    info = {"type": "image", "data_type": "uint8", "num_channels": 1, "scales": scales}
    vol = CloudVolume(f"file://{path}", info=info, progress=False)
    vol.commit_info()
    rng = np.random.default_rng(20261204)
    for mip, (_, _, written) in enumerate(IMG_SCALES):
        if not written:
            continue
        v = CloudVolume(f"file://{path}", mip=mip, progress=False)
        lo, hi = np.array(v.voxel_offset), np.array(v.voxel_offset) + np.array(v.volume_size)
        data = rng.integers(0, 256, size=tuple(hi - lo), dtype=np.uint8)
        v[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = data


class Double:
    def __init__(self, fixture, token):
        argv = [sys.executable, str(DOUBLE), "--fixture", str(fixture), "--token", token, "--port", "0"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise SystemExit(f"the chunkedgraph double did not start: {line!r}")
        self.port = int(line.split()[1])

    def url(self, table):
        return f"graphene://http://127.0.0.1:{self.port}/segmentation/table/{table}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def source_index(i, r_out, r_src):
    """The source voxel holding the centre of output voxel i (a border: the lower)."""
    i = np.asarray(i, dtype=np.int64)
    if r_out == r_src:
        return i
    return (np.ceil((2 * i + 1) * float(r_out) / (2.0 * r_src)) - 1).astype(np.int64)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    t0 = time.time()
    out, gdir = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    gman = json.loads((gdir / "manifest.json").read_text())
    if out.exists():
        shutil.rmtree(out)
    (out / "expected").mkdir(parents=True)
    os.environ["CLOUD_VOLUME_DIR"] = str(gdir)  # the token: GRAPHENE/secrets/cave-secret.json

    import cloudvolume
    import imageryclient
    from cloudvolume import CloudVolume
    from importlib.metadata import version
    from imageryclient import ImageryClient

    image_layer(out / "img")
    img_src = f"file://{out / 'img'}"
    ws_src = f"file://{gdir / 'ws'}"
    double = Double(gdir, gman["token"])
    cases = []

    def save(arr, stem):
        arr = np.asarray(arr)
        rel = f"expected/{stem}.bin"
        (out / rel).write_bytes(np.asfortranarray(arr).tobytes(order="F"))
        return {"file": rel, "shape": list(arr.shape), "dtype": str(arr.dtype)}

    def seg_source(seg):
        return ws_src if seg == "ws" else double.url(seg.split(":", 1)[1])

    def ic_case(cid, seg, bounds=None, center=None, bbox_size=None, resolution=None, image_mip=None,
                segmentation_mip=None, root_ids="all", scale_to_bounds=None, split=False, timestamp=None,
                grid=None):
        ic = ImageryClient(image_source=img_src, segmentation_source=seg_source(seg),
                           resolution=resolution, timestamp=timestamp)
        if center is not None:
            b = imageryclient.bounds_from_center(np.array(center), *bbox_size)
            bounds_arg, size_arg = np.array(center), bbox_size
        else:
            b = np.array(bounds)
            bounds_arg, size_arg = np.array(bounds), None
        img, sg = ic.image_and_segmentation_cutout(
            bounds_arg, image_mip=image_mip, segmentation_mip=segmentation_mip, root_ids=root_ids,
            split_segmentations=split, bbox_size=size_arg, resolution=resolution, timestamp=timestamp,
            scale_to_bounds=scale_to_bounds)
        req = {"bounds": [list(map(int, b[0])), list(map(int, b[1]))],
               "resolution": None if resolution is None else list(resolution),
               "image_mip": image_mip, "segmentation_mip": segmentation_mip,
               "root_ids": root_ids if root_ids in ("all", None) else [str(r) for r in root_ids],
               "scale_to_bounds": bool(scale_to_bounds), "split_segmentations": split, "timestamp": timestamp,
               "defaults": {"image_mip": int(ic._base_imagery_mip), "segmentation_mip": int(ic._base_segmentation_mip),
                            "resolution": [float(r) for r in ic.resolution]}}
        case = {"id": cid, "source": "imageryclient", "image_layer": "img", "seg": seg, "request": req,
                "grid": grid, "image": save(img, f"{cid}.image")}
        if split:
            ids = sorted(int(k) for k in sg)
            case["masks"] = {"ids": [str(i) for i in ids],
                             "files": [save(np.asarray(sg[k]).astype(np.uint8), f"{cid}.mask{n}")
                                       for n, k in enumerate(sorted(sg, key=int))]}
        else:
            case["seg"] = seg
            case["segmentation"] = save(np.asarray(sg).astype(np.uint64), f"{cid}.seg")
        cases.append(case)
        return img, sg

    # 1. Same resolution (image mip 1 = 8 nm, its mip 0 a placeholder), Precomputed seg, defaults.
    ic_case("same_res_precomputed", "ws", bounds=[[100, 80, 20], [228, 180, 24]])
    # 2. Image twice as coarse (mip 2), graphene roots; even corners (where ImageryClient's zoom
    #    and physical alignment agree).
    ic_case("graphene_roots_image_coarser", "graphene:test", bounds=[[96, 64, 16], [224, 192, 20]],
            resolution=[8, 8, 40], image_mip=2, segmentation_mip=0)
    # 3. Segmentation twice as coarse (its mip 1), a list of roots to keep.
    sv = CloudVolume(double.url("test"), progress=False, fill_missing=True, bounded=False, use_https=True)
    roots = np.unique(sv.download(cloudvolume.Bbox((96, 64, 16), (224, 192, 20)), mip=0, agglomerate=True))
    keep = [int(r) for r in roots if r != 0][:3]
    assert len(keep) == 3, roots
    # ImageryClient zooms the segmentation with scipy.ndimage.zoom, which computes in float64:
    # ids above 2^53 come back rounded (graphene ids are ~2^58). The case is marked so; the
    # test compares our ids rounded the same way, and the model case below exactly.
    ic_case("graphene_keep_ids_seg_coarser", "graphene:test", bounds=[[96, 64, 16], [224, 192, 20]],
            resolution=[8, 8, 40], image_mip=1, segmentation_mip=1, root_ids=keep)
    cases[-1]["float64_ids"] = True
    # 4. One mask per root.
    ic_case("graphene_split", "graphene:test", bounds=[[120, 96, 10], [184, 160, 12]], split=True)
    # 5. Centre and bbox_size in 4 nm voxels (both layers at 8 nm).
    ic_case("center_in_4nm", "graphene:test", center=[400, 300, 30], bbox_size=[256, 200, 2],
            resolution=[4, 4, 40])
    # 6. scale_to_bounds onto 4 nm voxels.
    ic_case("scale_to_bounds_4nm", "ws", bounds=[[300, 200, 12], [428, 328, 14]], resolution=[4, 4, 40],
            scale_to_bounds=True, root_ids=None)
    cases[-1]["float64_ids"] = True  # rescale_to_bounds zooms the segmentation too
    # 7. A timestamp before the fixture's edit.
    ic_case("graphene_timestamp", "graphene:test", bounds=[[96, 64, 16], [224, 192, 18]],
            timestamp=gman["edit_timestamp"] - 100)
    # 8. Supervoxels (root_ids=None) from graphene.
    ic_case("graphene_supervoxels", "graphene:test", bounds=[[96, 64, 16], [224, 192, 18]], root_ids=None)

    # Model cases: physical nearest neighbour from plain cloud-volume cutouts.
    img_cv = [CloudVolume(img_src, mip=m, progress=False, fill_missing=True, bounded=False)
              for m in range(len(IMG_SCALES))]
    ws_cv = [CloudVolume(ws_src, mip=m, progress=False, fill_missing=True, bounded=False) for m in range(2)]
    g_cv = [CloudVolume(double.url("test"), mip=m, progress=False, fill_missing=True, bounded=False)
            for m in range(2)]

    def model_case(cid, bounds, resolution, image_mip, seg_mip, scale_to_bounds, keep=None):
        res = np.array(resolution, dtype=float)
        ri = np.array(img_cv[image_mip].resolution, dtype=float)
        rs = np.array(ws_cv[seg_mip].resolution, dtype=float)
        lo, hi = np.array(bounds[0]), np.array(bounds[1])
        if scale_to_bounds:
            r_out, olo, ohi = res, lo, hi
        else:
            r_out = rs if np.all(ri >= rs) else ri
            olo = (lo / (r_out / res)).astype(np.int64)
            ohi = (hi / (r_out / res)).astype(np.int64)
        layers = []
        seg_vol = ws_cv[seg_mip] if keep is None else g_cv[seg_mip]
        for vol, r_src in ((img_cv[image_mip], ri), (seg_vol, rs)):
            idx = [source_index(np.arange(olo[d], ohi[d]), r_out[d], r_src[d]) for d in range(3)]
            slo = [int(i.min()) for i in idx]
            shi = [int(i.max()) + 1 for i in idx]
            box = cloudvolume.Bbox(slo, shi)
            if vol is seg_vol and keep is not None:
                src = np.asarray(vol.download(box, agglomerate=True))[..., 0]
                src = np.where(np.isin(src, np.array(keep, dtype=np.uint64)), src, 0)
            else:
                src = np.asarray(vol.download(box))[..., 0]
            rel = [i - s for i, s in zip(idx, slo)]
            layers.append(src[np.ix_(rel[0], rel[1], rel[2])])
        req = {"bounds": [lo.tolist(), hi.tolist()], "resolution": list(resolution), "image_mip": image_mip,
               "segmentation_mip": seg_mip, "root_ids": None if keep is None else [str(k) for k in keep],
               "scale_to_bounds": scale_to_bounds, "split_segmentations": False, "timestamp": None}
        cases.append({"id": cid, "source": "model", "image_layer": "img",
                      "seg": "ws" if keep is None else "graphene:test", "request": req,
                      "grid": {"lo": olo.tolist(), "hi": ohi.tolist(), "resolution": r_out.tolist()},
                      "image": save(layers[0], f"{cid}.image"),
                      "segmentation": save(layers[1].astype(np.uint64), f"{cid}.seg")})

    model_case("model_odd_corners", [[101, 81, 21], [229, 179, 23]], [8, 8, 40], 2, 0, False)
    model_case("model_factor_3", [[101, 81, 21], [229, 179, 23]], [8, 8, 40], 3, 0, False)
    model_case("model_seg_coarser_odd", [[99, 77, 21], [201, 179, 22]], [8, 8, 40], 1, 1, False)
    model_case("model_scale_down_12nm", [[70, 50, 21], [150, 110, 23]], [12, 12, 40], 1, 0, True)
    model_case("model_keep_ids_seg_coarser", [[96, 64, 16], [224, 192, 20]], [8, 8, 40], 1, 1, False, keep)
    model_case("model_keep_ids_odd", [[97, 63, 16], [223, 191, 18]], [8, 8, 40], 1, 1, False, keep)
    model_case("model_scale_down_16nm_ties", [[51, 41, 21], [111, 89, 23]], [16, 16, 40], 1, 0, True)
    model_case("model_4nm_odd", [[301, 203, 12], [433, 331, 13]], [4, 4, 40], 2, 1, True)
    double.stop()

    manifest = {"format": 1,
                "generated_by": {"script": "tests/reference/imagery_check.py", "imageryclient": version("imageryclient"),
                                 "cloud-volume": version("cloud-volume"), "scipy": version("scipy")},
                "cases": cases}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"imagery_check: {len(cases)} cases ({sum(c['source'] == 'imageryclient' for c in cases)} ImageryClient, "
          f"{sum(c['source'] == 'model' for c in cases)} model) in {time.time() - t0:.1f} s -> {out}")


if __name__ == "__main__":
    main()
