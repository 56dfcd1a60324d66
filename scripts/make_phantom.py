#!/usr/bin/python3
"""Writes tests/data/demo/phantom_mr.nii.gz: a small synthetic brain-like MR phantom with a
bright lesion, and its label. Made by us (no patient data), so the demo needs nothing from
../shared. Deterministic: run it again and the bytes are the same.

Uses only numpy (Debian python3-numpy) and writes the NIfTI-1 header by hand."""
import gzip
import os
import struct
import sys

import numpy as np


def nifti_bytes(data: np.ndarray, spacing, origin_ras, datatype: int, bitpix: int) -> bytes:
    nx, ny, nz = data.shape
    hdr = bytearray(348)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<hh", hdr, 70, datatype, bitpix)
    struct.pack_into("<8f", hdr, 76, 1.0, *spacing, 0, 0, 0, 0)
    struct.pack_into("<f", hdr, 108, 352.0)      # vox_offset
    struct.pack_into("<ff", hdr, 112, 1.0, 0.0)  # scl_slope, scl_inter
    struct.pack_into("<B", hdr, 123, 10)         # xyzt_units: mm, s
    struct.pack_into("<hh", hdr, 252, 1, 1)      # qform_code, sform_code: scanner
    struct.pack_into("<3f", hdr, 256, 0, 0, 0)   # quaternion b, c, d: identity (RAS axes)
    struct.pack_into("<3f", hdr, 268, *origin_ras)
    srow = [[spacing[0], 0, 0, origin_ras[0]], [0, spacing[1], 0, origin_ras[1]], [0, 0, spacing[2], origin_ras[2]]]
    for r in range(3):
        struct.pack_into("<4f", hdr, 280 + 16 * r, *srow[r])
    hdr[344:348] = b"n+1\0"
    return bytes(hdr) + b"\0\0\0\0" + np.asfortranarray(data).tobytes(order="F")


def main(out_dir: str) -> None:
    rng = np.random.default_rng(7)
    nx, ny, nz = 96, 96, 24
    spacing = (2.0, 2.0, 5.0)
    i, j, k = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    x, y, z = (i - nx / 2) * spacing[0], (j - ny / 2) * spacing[1], (k - nz / 2) * spacing[2]
    head = (x / 80) ** 2 + (y / 95) ** 2 + (z / 70) ** 2
    brain = (x / 72) ** 2 + (y / 86) ** 2 + (z / 62) ** 2
    img = np.where(head < 1, 180.0, 0.0)           # scalp
    img = np.where(brain < 1, 90.0, img)            # brain
    ventricles = ((np.abs(x) - 12) / 8) ** 2 + (y / 26) ** 2 + (z / 20) ** 2 < 1
    img = np.where(ventricles & (brain < 1), 30.0, img)
    lesion = ((x + 30) / 18) ** 2 + ((y - 20) / 14) ** 2 + ((z - 8) / 16) ** 2 < 1
    img = np.where(lesion, 160.0, img)
    img = img + rng.normal(0, 6, img.shape) * (head < 1)
    img = np.clip(img, 0, 400).astype(np.int16)
    label = lesion.astype(np.uint8)
    origin = (-nx / 2 * spacing[0], -ny / 2 * spacing[1], -nz / 2 * spacing[2])
    os.makedirs(out_dir, exist_ok=True)
    for name, data, dt, bp in (("phantom_mr.nii.gz", img, 4, 16), ("phantom_mr_label.nii.gz", label, 2, 8)):
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(gzip.compress(nifti_bytes(data, spacing, origin, dt, bp), mtime=0))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "demo"))
