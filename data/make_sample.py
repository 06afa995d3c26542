"""Writes data/sample_layer: a small synthetic EM-like uint8 image (96x80x24, two mips,
gzip-compressed 32x32x16 chunks, voxel_offset [-16, 8, 0]) with cloud-volume, the way users'
layers look on disk. Run once; the result is committed.

    target/venv/bin/python data/make_sample.py
"""
import os
import shutil

import numpy as np
from cloudvolume import CloudVolume

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "sample_layer")
shutil.rmtree(out, ignore_errors=True)

size = (96, 80, 24)
x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in size], indexing="ij")
# Membrane-like ridges over a smooth background, plus deterministic noise.
ridges = np.abs(np.sin(x / 7.0 + np.cos(y / 11.0) * 2.0 + z / 13.0))
img = 60 + 150 * (ridges > 0.9) + 30 * np.cos(x / 19.0) * np.sin(y / 23.0)
rng = np.random.default_rng(7)
img = np.clip(img + rng.normal(0, 6, size), 0, 255).astype(np.uint8)

info = CloudVolume.create_new_info(
    num_channels=1, layer_type="image", data_type="uint8", encoding="raw",
    resolution=[8, 8, 40], voxel_offset=[-16, 8, 0], volume_size=size, chunk_size=[32, 32, 16])
vol = CloudVolume("file://" + out, info=info, compress="gzip", progress=False)
vol.add_scale((2, 2, 1), chunk_size=[32, 32, 16])
vol.commit_info()
vol[:, :, :] = img
mip1 = CloudVolume("file://" + out, mip=1, compress="gzip", progress=False)
down = img.reshape(48, 2, 40, 2, 24).mean(axis=(1, 3)).astype(np.uint8)
mip1[:, :, :] = down
print("wrote", out)
