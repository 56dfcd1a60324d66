#!/usr/bin/python3
"""Speed and memory of `tumorlab predict` against the same network in plain PyTorch (issue 3).

    /usr/bin/python3 bench/model_bench.py [--build build/ci] [--reps 5] [--ct-reps 3] [--tta]
        [--mip-bundle models/mip-pet-2d] [--lgg-bundle models/lgg-flair-3d] [--cases mip,lgg,ct]

Cases:
  mip  the MIP-PET 2D model on one Dataset001 image (400 x ~991 PNG)           target < 0.5 s
  lgg  the LGG model on one Dataset002 volume (256 x 256 x ~40, 2 channels)     target < 3 s
  ct   a synthetic 512 x 512 x 100 CT volume (int16 .nii.gz, made here) through the 3D U-Net of
       bench/ct_net_plans.json (5 stages, 16..128 features, patch 128x128x16: the size of the 3D
       LGG model of 2026-12-01/02) with 1 channel and CT normalisation          target < 20 s
mip and lgg need ../shared/data (TUMORLAB_SHARED_DATA) and are skipped with a message without it.
A bundle folder without model.pt (the trained models are not there yet) is replaced by an
untrained bundle with the same plans.json (build/<...>/bench/model_tool untrained): weights do not
change the speed.

Every configuration runs in its own process, which predicts R copies of the case (symlinks) in
one run: the first copy is "cold" (first forward pass: oneDNN primitives, allocator), the others
"warm"; tables show medians over the warm copies. tumorlab's phases come from
`tumorlab predict --timings` (read, preprocess, infer, resample back, postprocess = small-lesion
removal, write); the process's peak RSS from os.wait4's ru_maxrss.

The PyTorch run (this script with `_pytorch`, a separate python3 process, torch.set_num_threads(2))
does the same pipeline in plain PyTorch + numpy: read (NIfTI/NRRD parsed with numpy + gzip; the
PNG is converted to NRRD by `tumorlab convert` beforehand, untimed, as there is no PNG reader
here), inversion, linear resampling to the plans' spacing (F.interpolate), z-score or CT
normalisation, the same sliding window (window positions, patch, overlap, window batch, Gaussian
importance, mirroring TTA as tumorlab), linear resampling of the probabilities back, threshold,
write (.nii.gz / .png with gzip/zlib). It does no small-lesion removal (tumorlab's "postprocess").

Before timing, one input per network is run through both (build/.../bench/model_tool logits and
bench/pytorch_unet.py) and the max abs difference of logits and sliding-window probabilities is
printed: the PyTorch mirror must compute what tumorlab computes.
"""
import argparse
import gzip
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PHASES = ["read", "preprocess", "infer", "resample", "postprocess", "write"]
TARGETS = {"mip": 0.5, "lgg": 3.0, "ct": 20.0}

# ----------------------------------------------------------------------------------------------
# Minimal image I/O with numpy (no nibabel / PIL on the machine): NIfTI-1, NRRD, PNG writing.

NIFTI_TYPES = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64, 256: np.int8, 512: np.uint16,
               768: np.uint32}


def read_nifti(path):
    """-> (array (Z, Y, X) or (T, Z, Y, X), spacing (x, y, z)). Applies scl_slope/scl_inter."""
    with (gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")) as fh:
        raw = fh.read()
    if struct.unpack_from("<i", raw, 0)[0] != 348:
        raise ValueError(f"{path}: not a little-endian NIfTI-1 file")
    dim = struct.unpack_from("<8h", raw, 40)
    datatype = struct.unpack_from("<h", raw, 70)[0]
    pixdim = struct.unpack_from("<8f", raw, 76)
    vox_offset = int(struct.unpack_from("<f", raw, 108)[0])
    slope, inter = struct.unpack_from("<2f", raw, 112)
    n = dim[0]
    shape = [max(1, d) for d in dim[1:1 + n]] + [1] * (3 - n)
    dtype = np.dtype(NIFTI_TYPES[datatype]).newbyteorder("<")
    count = int(np.prod(shape))
    a = np.frombuffer(raw, dtype=dtype, count=count, offset=vox_offset).reshape(list(reversed(shape)))
    if slope not in (0.0, 1.0) or inter != 0.0:
        a = a.astype(np.float32) * slope + inter
    if a.ndim > 3:
        a = a.reshape((-1,) + a.shape[-3:])
    return a, tuple(abs(p) if p else 1.0 for p in pixdim[1:4])


def nifti_header(shape_xyz, spacing, datatype, bitpix):
    h = bytearray(352)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, 3, shape_xyz[0], shape_xyz[1], shape_xyz[2], 1, 1, 1, 1)
    struct.pack_into("<hh", h, 70, datatype, bitpix)
    struct.pack_into("<8f", h, 76, 1.0, spacing[0], spacing[1], spacing[2], 1, 1, 1, 1)
    struct.pack_into("<f", h, 108, 352.0)
    struct.pack_into("<2f", h, 112, 1.0, 0.0)
    struct.pack_into("<B", h, 123, 10)  # xyzt_units: mm, s
    struct.pack_into("<hh", h, 252, 0, 1)  # qform_code 0, sform_code 1 (scanner)
    sx, sy, sz = spacing
    # sform: RAS = diag(-sx, -sy, sz) (LPS identity direction), origin 0
    struct.pack_into("<4f", h, 280, -sx, 0, 0, 0)
    struct.pack_into("<4f", h, 296, 0, -sy, 0, 0)
    struct.pack_into("<4f", h, 312, 0, 0, sz, 0)
    h[344:348] = b"n+1\0"
    return bytes(h)


def write_nifti_gz(path, array_zyx, spacing, level=6):
    types = {np.dtype(np.uint8): (2, 8), np.dtype(np.int16): (4, 16), np.dtype(np.float32): (16, 32)}
    datatype, bitpix = types[array_zyx.dtype]
    z, y, x = array_zyx.shape
    with gzip.open(path, "wb", compresslevel=level) as fh:
        fh.write(nifti_header((x, y, z), spacing, datatype, bitpix))
        fh.write(np.ascontiguousarray(array_zyx).astype(array_zyx.dtype.newbyteorder("<")).tobytes())


NRRD_TYPES = {"uchar": np.uint8, "unsigned char": np.uint8, "uint8": np.uint8, "short": np.int16, "int16": np.int16,
              "ushort": np.uint16, "unsigned short": np.uint16, "uint16": np.uint16, "float": np.float32,
              "int": np.int32, "double": np.float64}


def read_nrrd(path):
    """-> (array (Z, Y, X), spacing (x, y, z)). Attached header, raw or gzip encoding."""
    with open(path, "rb") as fh:
        raw = fh.read()
    end = raw.index(b"\n\n")
    fields = {}
    for line in raw[:end].decode("latin-1").splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        k, v = line.split(":", 1)
        fields[k.strip().lower()] = v.strip().lstrip("=").strip()
    sizes = [int(s) for s in fields["sizes"].split()] + [1] * 3
    sizes = sizes[:3]
    spacing = [1.0, 1.0, 1.0]
    if "space directions" in fields:
        vecs = [v for v in fields["space directions"].replace(")", "").split("(") if v.strip()]
        for i, v in enumerate(vecs[:3]):
            spacing[i] = float(np.linalg.norm([float(t) for t in v.split(",")]))
    elif "spacings" in fields:
        for i, v in enumerate(fields["spacings"].split()[:3]):
            spacing[i] = float(v)
    body = raw[end + 2:]
    if fields.get("encoding", "raw") in ("gzip", "gz"):
        body = zlib.decompress(body, 47)
    dtype = np.dtype(NRRD_TYPES[fields["type"]])
    dtype = dtype.newbyteorder(">" if fields.get("endian") == "big" else "<")
    a = np.frombuffer(body, dtype=dtype, count=int(np.prod(sizes))).reshape(sizes[2], sizes[1], sizes[0])
    return a, tuple(spacing)


def write_png(path, array_yx):
    a = np.ascontiguousarray(array_yx.astype(np.uint8))
    h, w = a.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), a], axis=1).tobytes()

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
                 chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


def read_any(path):
    s = str(path)
    if s.endswith(".nrrd"):
        return read_nrrd(path)
    return read_nifti(path)


# ----------------------------------------------------------------------------------------------
# The PyTorch run (a separate process: `model_bench.py _pytorch SPEC.json`)

def window_starts(size, patch, overlap):
    import math
    if size <= patch:
        return [0]
    target = max(1e-9, patch * (1.0 - overlap))
    steps = int(math.ceil((size - patch) / target)) + 1
    steps = min(steps, size - patch + 1)
    step = (size - patch) / (steps - 1)
    return [int(round(step * s)) for s in range(steps)]  # llround: halves away from zero (>= 0 here)


def gaussian_importance(torch, patch_xyz):
    def axis(p):
        if p <= 1:
            return torch.ones(max(p, 1), dtype=torch.float64)
        sigma, centre = p / 8.0, (p - 1) / 2.0
        d = torch.arange(p, dtype=torch.float64) - centre
        return torch.exp(-(d * d) / (2 * sigma * sigma))

    g = axis(patch_xyz[2]).view(-1, 1, 1) * axis(patch_xyz[1]).view(1, -1, 1) * axis(patch_xyz[0]).view(1, 1, -1)
    return (g / g.max()).to(torch.float32).contiguous()


def mirror_variants(axes, patch_xyz):
    dims = sorted({4 - a for a in axes if patch_xyz[a] > 1})
    out = []
    for mask in range(1 << len(dims)):
        out.append([dims[b] for b in range(len(dims)) if mask & (1 << b)])
    return out


def sliding_window(torch, net, image, patch_xyz, overlap, batch, mirror_axes, dims, bf16=False):
    """image (C, Z, Y, X) float32 -> (K, Z, Y, X) mean softmax; as tumorlab's sliding_window()."""
    import torch.nn.functional as F
    patch = (patch_xyz[2], patch_xyz[1], patch_xyz[0])
    size = tuple(image.shape[1:])
    pad_lo = [0, 0, 0]
    pad = [0] * 6
    padded = False
    for d in range(3):
        if size[d] < patch[d]:
            total = patch[d] - size[d]
            pad_lo[d] = total // 2
            pad[2 * (2 - d)] = pad_lo[d]
            pad[2 * (2 - d) + 1] = total - pad_lo[d]
            padded = True
    if padded:
        image = F.pad(image, pad)
    full = tuple(image.shape[1:])
    windows = [(z, y, x) for z in window_starts(full[0], patch[0], overlap)
               for y in window_starts(full[1], patch[1], overlap) for x in window_starts(full[2], patch[2], overlap)]
    gauss = gaussian_importance(torch, patch_xyz)
    classes = net.heads[0].out_channels
    probs = torch.zeros((classes,) + full, dtype=torch.float32)
    weight = torch.zeros(full, dtype=torch.float32)
    variants = mirror_variants(mirror_axes, patch_xyz)
    passes = len(variants)
    for first in range(0, len(windows), batch):
        ws = windows[first:first + batch]
        x = torch.stack([image[:, z:z + patch[0], y:y + patch[1], x0:x0 + patch[2]] for z, y, x0 in ws])
        mean = None
        for v in variants:
            xv = x.flip(v) if v else x
            inp = xv.squeeze(2) if dims == 2 else xv
            if bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits = net(inp)
            else:
                logits = net(inp)
            if dims == 2:
                logits = logits.unsqueeze(2)
            p = torch.softmax(logits.float(), 1)
            if v:
                p = p.flip(v)
            mean = p if mean is None else mean.add_(p)
        if passes > 1:
            mean.div_(passes)
        for b, (z, y, x0) in enumerate(ws):
            probs[:, z:z + patch[0], y:y + patch[1], x0:x0 + patch[2]].add_(mean[b] * gauss)
            weight[z:z + patch[0], y:y + patch[1], x0:x0 + patch[2]].add_(gauss)
    probs.div_(weight.unsqueeze(0))
    if padded:
        probs = probs[:, pad_lo[0]:pad_lo[0] + size[0], pad_lo[1]:pad_lo[1] + size[1], pad_lo[2]:pad_lo[2] + size[2]]
    return probs.contiguous()


def pytorch_worker(spec_path):
    """Runs spec["reps"] cases in this process; prints one JSON line of per-case phase seconds."""
    t_start = time.perf_counter()
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, str(HERE))
    import pytorch_unet

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    t0 = time.perf_counter()
    plans, net = pytorch_unet.load(spec["bundle"])
    model_load = time.perf_counter() - t0
    dims = plans["network"]["dims"]
    inf = plans["inference"]
    patch = plans["patch_size"]
    target_spacing = plans["target_spacing_mm"]
    results = []
    out_dir = Path(spec["output"])
    out_dir.mkdir(parents=True, exist_ok=True)
    for rep in range(spec["reps"]):
        t = {}
        c0 = time.perf_counter()
        # read
        chans = []
        spacing = None
        for f in spec["inputs"]:
            a, spacing = read_any(f)
            chans.append(a)
        t["read"] = time.perf_counter() - c0
        c0 = time.perf_counter()
        with torch.inference_mode():
            # preprocess: invert, resample to the plans' spacing, normalise
            vols = []
            for c, a in enumerate(chans):
                cp = plans["channels"][c]
                v = torch.from_numpy(a.astype(np.float32))
                if cp.get("invert"):
                    m = 255.0 if a.dtype == np.uint8 else (65535.0 if a.dtype == np.uint16 else float(v.max()))
                    v = m - v
                vols.append(v)
            img = torch.stack(vols)  # (C, Z, Y, X)
            in_size = tuple(img.shape[1:])
            ts = list(target_spacing)
            if dims == 2:
                ts[2] = spacing[2]
            tsize = tuple(max(1, int(round(in_size[2 - a] * spacing[a] / ts[a]))) for a in (2, 1, 0))
            if tsize != in_size:
                if dims == 2 or tsize[0] == in_size[0] == 1:
                    img = F.interpolate(img.permute(1, 0, 2, 3), size=tsize[1:], mode="bilinear",
                                        align_corners=False).permute(1, 0, 2, 3)
                else:
                    img = F.interpolate(img.unsqueeze(0), size=tsize, mode="trilinear", align_corners=False)[0]
            img = img.contiguous()
            for c, cp in enumerate(plans["channels"]):
                nrm = cp["normalization"]
                ch = img[c]
                if nrm["scheme"] == "CT":
                    ch.clamp_(nrm["clip_low"], nrm["clip_high"]).sub_(nrm["mean"]).div_(max(nrm["std"], 1e-8))
                elif nrm["scheme"] == "ZScore":
                    fg = ch[ch > 0] if cp["normalization"].get("foreground", "above_zero") == "above_zero" else ch
                    if fg.numel() == 0:
                        fg = ch
                    mean, std = float(fg.mean()), float(fg.std(unbiased=False))
                    ch.sub_(mean).div_(max(std, 1e-8))
            ctx = plans["network"].get("context_slices", 0)
            if ctx > 0:  # neighbouring slices as channels, clamped at the ends (tumorlab's with_context_slices)
                z = img.shape[1]
                img = torch.stack([img[c].index_select(0, (torch.arange(z) + dz).clamp(0, z - 1))
                                   for c in range(img.shape[0]) for dz in range(-ctx, ctx + 1)])
            t["preprocess"] = time.perf_counter() - c0
            c0 = time.perf_counter()
            probs = sliding_window(torch, net, img, patch, inf["overlap"], inf["window_batch"],
                                   inf["tta_mirror_axes"] if spec["tta"] else [], dims, spec.get("bf16", False))
            t["infer"] = time.perf_counter() - c0
            c0 = time.perf_counter()
            if tuple(probs.shape[1:]) != in_size:
                if dims == 2 or in_size[0] == 1:
                    probs = F.interpolate(probs.permute(1, 0, 2, 3), size=in_size[1:], mode="bilinear",
                                          align_corners=False).permute(1, 0, 2, 3)
                else:
                    probs = F.interpolate(probs.unsqueeze(0), size=in_size, mode="trilinear", align_corners=False)[0]
            if probs.shape[0] == 2:
                label = (probs[1] >= inf["threshold"]).to(torch.uint8)
            else:
                label = probs.argmax(0).to(torch.uint8)
            label = label.numpy()
            t["resample"] = time.perf_counter() - c0
        t["postprocess"] = 0.0
        c0 = time.perf_counter()
        if spec["png"]:
            write_png(out_dir / f"rep{rep}.png", label[0])
        else:
            write_nifti_gz(out_dir / f"rep{rep}.nii.gz", label, spacing)
        t["write"] = time.perf_counter() - c0
        t["seconds"] = sum(t[p] for p in PHASES)
        results.append(t)
    print(json.dumps({"model_load_seconds": model_load, "startup_seconds": t0 - t_start, "cases": results}))


# ----------------------------------------------------------------------------------------------
# Driver

def run_measured(cmd, env=None):
    """Runs cmd; returns (exit code, stdout, stderr, wall seconds, peak RSS MiB) of the child."""
    t0 = time.perf_counter()
    out_f = open(os.devnull if False else "/tmp/.model_bench_out.%d" % os.getpid(), "w+")
    err_f = open("/tmp/.model_bench_err.%d" % os.getpid(), "w+")
    p = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, env=env)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out_f.seek(0)
    err_f.seek(0)
    out, err = out_f.read(), err_f.read()
    out_f.close()
    err_f.close()
    return p.returncode, out, err, wall, usage.ru_maxrss / 1024.0


def shared_data_dir():
    env = os.environ.get("TUMORLAB_SHARED_DATA")
    d = Path(env) if env else ROOT.parent / "shared" / "data"
    if not d.is_dir():
        d = ROOT.parent.parent / "shared" / "data"
    return d if d.is_dir() else None


def ensure_bundle(tool, folder, work, name):
    """The bundle folder when it holds model.pt; else an untrained bundle with its plans.json."""
    folder = Path(folder)
    meta = folder / "bundle.json"
    if meta.is_file() and len(json.loads(meta.read_text()).get("weights", ["model.pt"])) > 1:
        raise SystemExit(f"{folder}: an ensemble bundle (bundle.json \"weights\"); this benchmark compares one "
                         "network with the same network in PyTorch: benchmark a member bundle (an ensemble "
                         "costs one member's time per member)")
    if (folder / "model.pt").is_file():
        return folder, "trained"
    plans = folder / "plans.json"
    if not plans.is_file():
        raise SystemExit(f"{folder}: neither model.pt nor plans.json")
    out = work / "bundles" / name
    stamp = out / ".plans_source"
    if not (out / "model.pt").is_file() or not stamp.is_file() or stamp.read_text() != plans.read_text():
        if out.exists():
            shutil.rmtree(out)
        subprocess.run([str(tool), "untrained", str(plans), str(out), "1"], check=True, stdout=subprocess.DEVNULL)
        stamp.write_text(plans.read_text())
    return out, "untrained (same plans; model.pt missing in " + str(folder) + ")"


def make_ct_volume(path, size=(512, 512, 100), spacing=(0.78125, 0.78125, 2.5), seed=7):
    """Body-like CT in HU: air, an elliptic body (fat rim, soft tissue), lungs in the upper part,
    a spine, a liver-like organ and a lesion; int16; noise sigma 15 HU."""
    if path.is_file():
        return
    rng = np.random.default_rng(seed)
    x, y, z = size
    yy, xx = np.mgrid[0:y, 0:x].astype(np.float32)
    cx, cy = x / 2, y / 2 + 10
    ell = ((xx - cx) / 220) ** 2 + ((yy - cy) / 160) ** 2
    vol = np.empty((z, y, x), np.int16)
    for k in range(z):
        s = np.full((y, x), -1000.0, np.float32)
        scale = 1.0 + 0.05 * np.sin(k / z * np.pi)
        e = ell / scale ** 2
        s[e < 1.0] = -100.0  # fat
        s[e < 0.85] = 40.0  # soft tissue
        if k > z * 0.55:  # lungs
            for lx in (cx - 95, cx + 95):
                s[((xx - lx) / 70) ** 2 + ((yy - cy + 10) / 90) ** 2 < 1] = -850.0
        else:  # liver and a lesion
            s[((xx - cx + 80) / 90) ** 2 + ((yy - cy + 20) / 70) ** 2 < 1] = 60.0
            if abs(k - z * 0.3) < 8:
                s[((xx - cx + 90) / 18) ** 2 + ((yy - cy + 15) / 15) ** 2 < 1] = 20.0
        s[((xx - cx) / 25) ** 2 + ((yy - cy - 110) / 25) ** 2 < 1] = 700.0  # spine
        s += rng.normal(0, 15, size=s.shape).astype(np.float32)
        vol[k] = np.clip(s, -1024, 3071).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_nifti_gz(path, vol, spacing)


def ct_plans(net_plans_path, out_path, spacing):
    """The network of net_plans_path (features, strides, patch, inference settings) with 1 CT channel."""
    p = json.loads(Path(net_plans_path).read_text())
    p["name"] = "ct-synthetic-3d"
    p["modality"] = "CT"
    p["channels"] = [{"name": "CT", "invert": False,
                      "normalization": {"scheme": "CT", "clip_low": -160.0, "clip_high": 240.0, "mean": 60.0,
                                        "std": 70.0, "foreground": "all"}}]
    p["target_spacing_mm"] = list(spacing)
    p["file_ending"] = ".nii.gz"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(p, indent=2)
    if not out_path.is_file() or out_path.read_text() != text:
        out_path.write_text(text)
    return out_path


def sanity_check(tool, bundle, work, label):
    """Runs sanity_worker in a separate process: the driver must not import torch, as a child's
    ru_maxrss starts from the driver's RSS at fork (Linux keeps the larger of the two at exec)."""
    r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "_sanity", str(tool), str(bundle), str(work),
                        label], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"sanity check failed: {r.stderr.strip()[-2000:]}")
    print(r.stdout.rstrip())


def sanity_worker(tool, bundle, work, label):
    """Max abs difference of logits and sliding-window probabilities, tumorlab vs pytorch_unet.py."""
    work = Path(work)
    import torch
    sys.path.insert(0, str(HERE))
    import pytorch_unet
    plans, net = pytorch_unet.load(str(bundle))
    px, py, pz = plans["patch_size"]
    c = len(plans["channels"]) * (2 * plans["network"].get("context_slices", 0) + 1)  # the network's input channels
    shape = (c, pz if pz > 1 else 1, py + py // 3, px + px // 5)  # a few windows
    g = torch.Generator().manual_seed(3)
    image = torch.randn(shape, generator=g, dtype=torch.float32)
    d = work / "sanity"
    d.mkdir(parents=True, exist_ok=True)
    image.numpy().tofile(d / "input.f32")
    r = subprocess.run([str(tool), "logits", str(bundle), str(d / "input.f32"), *map(str, shape), str(d / "logits.f32"),
                        str(d / "probs.f32"), "--tta", "--threads", "1"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"model_tool logits failed: {r.stderr}")
    torch.set_num_threads(1)
    with torch.inference_mode():
        win = image[:, :pz, :py, :px].unsqueeze(0)
        logits = net(win.squeeze(2)).unsqueeze(2) if plans["network"]["dims"] == 2 else net(win)
        probs = sliding_window(torch, net, image, plans["patch_size"], plans["inference"]["overlap"],
                               plans["inference"]["window_batch"], plans["inference"]["tta_mirror_axes"],
                               plans["network"]["dims"])
    tl_logits = torch.from_numpy(np.fromfile(d / "logits.f32", np.float32)).view(logits[0].shape)
    tl_probs = torch.from_numpy(np.fromfile(d / "probs.f32", np.float32)).view(probs.shape)
    dl = float((tl_logits - logits[0]).abs().max())
    dp = float((tl_probs - probs).abs().max())
    scale = float(logits.abs().max())
    print(f"  sanity {label}: PyTorch mirror vs tumorlab on a random {tuple(shape)} input: max |logit diff| "
          f"{dl:.2e} (logits up to {scale:.2f}), max |prob diff| with TTA {dp:.2e}")
    if not (dl <= 1e-3 * max(1.0, scale) and dp <= 1e-4):
        print("  WARNING: the PyTorch mirror does not compute tumorlab's network; ratios are not comparable")
    return dl, dp


def median(v):
    return statistics.median(v) if v else float("nan")


def summarise(cases):
    """cases: list of dicts with PHASES + seconds -> (cold, warm medians)."""
    cold = cases[0]
    warm = cases[1:] or cases
    med = {p: median([c[p] for c in warm]) for p in PHASES + ["seconds"]}
    return cold, med


def run_tumorlab(args, bundle, inputs_for_reps, work, tag, threads, bf16, is_png, env=None):
    out = work / "out" / tag
    if out.exists():
        shutil.rmtree(out)
    timings = work / "out" / f"{tag}.json"
    cmd = [str(args.tumorlab), "predict", "-m", str(bundle), *map(str, inputs_for_reps), "-o", str(out),
           "--threads", str(threads), "--timings", str(timings)]
    cmd.append("--bf16" if bf16 else "--fp32")  # explicit: the plans may default to bf16
    if args.tta:
        cmd.append("--tta")
    rc, so, se, wall, rss = run_measured(cmd, env)
    if rc != 0:
        raise SystemExit(f"tumorlab predict failed ({rc}): {se.strip()}")
    t = json.loads(timings.read_text())
    cases = [{p: c[p + "_seconds"] for p in PHASES} | {"seconds": c["seconds"]} for c in t["cases"]]
    return {"cases": cases, "wall": wall, "rss": rss, "model_load": t["model_load_seconds"]}


def run_pytorch(args, bundle, channel_files, work, tag, reps, is_png, threads=2, bf16=False, passive=False):
    spec = {"bundle": str(bundle), "inputs": [str(f) for f in channel_files], "reps": reps, "threads": threads,
            "tta": args.tta, "png": is_png, "output": str(work / "out" / tag), "bf16": bf16}
    spec_path = work / "out" / f"{tag}.spec.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    env.pop("OMP_WAIT_POLICY", None)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    rc, so, se, wall, rss = run_measured([sys.executable, str(Path(__file__).resolve()), "_pytorch", str(spec_path)],
                                         env)
    if rc != 0:
        raise SystemExit(f"PyTorch run failed ({rc}): {se.strip()[-2000:]}")
    r = json.loads(so.strip().splitlines()[-1])
    return {"cases": r["cases"], "wall": wall, "rss": rss, "model_load": r["model_load_seconds"]}


def print_table(title, rows, target):
    print(f"\n{title}")
    head = f"  {'run':<32}" + "".join(f"{p:>11}" for p in PHASES) + f"{'total':>9}{'cold':>8}{'load':>7}" \
           f"{'wall':>7}{'RSS MiB':>9}"
    print(head)
    for name, r in rows:
        cold, med = summarise(r["cases"])
        print(f"  {name:<32}" + "".join(f"{med[p]:>11.3f}" for p in PHASES) + f"{med['seconds']:>9.3f}"
              f"{cold['seconds']:>8.2f}{r['model_load']:>7.2f}{r['wall']:>7.1f}{r['rss']:>9.0f}")
    print("  (seconds; medians over the warm repetitions; cold = first case in the process; load = model "
          "load; wall = whole process incl. start-up and all repetitions)")
    base = dict(rows)
    if "tumorlab fp32 2 thr" in base and "pytorch fp32 2 thr" in base:
        _, tl = summarise(base["tumorlab fp32 2 thr"]["cases"])
        _, pt = summarise(base["pytorch fp32 2 thr"]["cases"])
        ratio = "  ratio PyTorch/tumorlab (fp32, 2 threads):" + "".join(
            f" {p} {pt[p] / tl[p]:.2f}" for p in ("read", "preprocess", "infer", "resample", "write") if tl[p] > 0)
        ratio += f"; total {pt['seconds'] / tl['seconds']:.2f}; peak RSS {base['pytorch fp32 2 thr']['rss'] / base['tumorlab fp32 2 thr']['rss']:.2f}"
        print(ratio)
        best = min(summarise(r["cases"])[1]["seconds"] for n, r in rows if n.startswith("tumorlab"))
        print(f"  target < {target} s per case: tumorlab fp32 2 thr {tl['seconds']:.2f} s, best tumorlab "
              f"{best:.2f} s -> {'met' if best < target else 'NOT met'}")
    return base


def bench_case(args, key, title, bundle, channel_files, work, is_png, reps):
    """channel_files: the case's files in channel order."""
    if is_png:
        # tumorlab reads the PNG; PyTorch reads the same pixels from an NRRD (no PNG reader here).
        nrrd = work / "inputs" / (Path(channel_files[0]).stem + ".nrrd")
        if not nrrd.is_file():
            nrrd.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([str(args.tumorlab), "convert", str(channel_files[0]), str(nrrd)], check=True,
                           stdout=subprocess.DEVNULL)
        py_files = [nrrd]
    else:
        py_files = channel_files
    # R copies of the case under different names (tumorlab refuses two inputs with one case name).
    reps_dir = work / "inputs" / f"{key}_reps"
    if reps_dir.exists():
        shutil.rmtree(reps_dir)
    reps_dir.mkdir(parents=True)
    ending = ".png" if is_png else ".nii.gz"
    for r in range(reps):
        for c, f in enumerate(channel_files):
            os.symlink(Path(f).resolve(), reps_dir / f"rep{r}_{c:04d}{ending}")
    rows = []
    configs = [("tumorlab fp32 2 thr", 2, False, None), ("tumorlab fp32 1 thr", 1, False, None),
               ("tumorlab bf16 2 thr", 2, True, None)]
    if args.default_allocator:
        # tensor_memory.h switched off: LibTorch's default CPU allocator (the state before it)
        configs.append(("tumorlab fp32 2 thr, dflt alloc", 2, False,
                        dict(os.environ, TUMORLAB_TENSOR_MEMORY="off")))
    if args.omp_passive:
        # libgomp's threads sleep at barriers instead of spinning (helps when other work shares the cores)
        configs.append(("tumorlab fp32 2 thr, OMP passive", 2, False, dict(os.environ, OMP_WAIT_POLICY="PASSIVE")))
    for name, threads, bf16, env in configs:
        rows.append((name, run_tumorlab(args, bundle, [reps_dir], work, f"{key}_tl_{threads}_{int(bf16)}_{env is None}",
                                        threads, bf16, is_png, env)))
        print(f"    {name}: done", file=sys.stderr)
    rows.append(("pytorch fp32 2 thr", run_pytorch(args, bundle, py_files, work, f"{key}_pt", reps, is_png)))
    if args.omp_passive:
        rows.append(("pytorch fp32 2 thr, OMP passive", run_pytorch(args, bundle, py_files, work, f"{key}_pt_passive", reps,
                                                                   is_png, passive=True)))
    if args.pytorch_bf16:
        rows.append(("pytorch bf16 2 thr", run_pytorch(args, bundle, py_files, work, f"{key}_pt_bf16", reps, is_png,
                                                      bf16=True)))
    return print_table(title, rows, TARGETS[key])


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "_pytorch":
        return pytorch_worker(sys.argv[2])
    if len(sys.argv) > 5 and sys.argv[1] == "_sanity":
        return sanity_worker(*sys.argv[2:6])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build" / "ci"), help="build folder with src/cli/tumorlab and "
                    "bench/model_tool (default build/ci)")
    ap.add_argument("--mip-bundle", default=str(ROOT / "models" / "mip-pet-2d"))
    ap.add_argument("--lgg-bundle", default=str(ROOT / "models" / "lgg-flair-3d"))
    ap.add_argument("--cases", default="mip,lgg,ct")
    ap.add_argument("--reps", type=int, default=5, help="cases per process for mip and lgg (first = cold)")
    ap.add_argument("--ct-reps", type=int, default=3, help="cases per process for ct (first = cold)")
    ap.add_argument("--ct-net", default=str(ROOT / "bench" / "ct_net_plans.json"),
                    help="plans.json whose network the CT case runs (its channels are replaced by 1 CT channel)")
    ap.add_argument("--ct-spacing", default="1.5625,1.5625,2.5",
                    help="target spacing (mm, x,y,z) of the CT network's plans; the volume is 0.78x0.78x2.5 mm")
    ap.add_argument("--tta", action="store_true", help="mirroring TTA in every run (tumorlab --tta and PyTorch)")
    ap.add_argument("--default-allocator", action="store_true",
                    help="also run tumorlab with TUMORLAB_TENSOR_MEMORY=off (LibTorch's default CPU allocator)")
    ap.add_argument("--omp-passive", action="store_true",
                    help="also run tumorlab and PyTorch with OMP_WAIT_POLICY=PASSIVE (2 threads)")
    ap.add_argument("--pytorch-bf16", action="store_true", help="also time PyTorch with bf16 autocast")
    ap.add_argument("--sanity-only", action="store_true", help="only the PyTorch-mirror check, no timing")
    ap.add_argument("--work", default=None, help="scratch folder (default BUILD/model_bench)")
    args = ap.parse_args()
    build = Path(args.build)
    args.tumorlab = build / "src" / "cli" / "tumorlab"
    tool = build / "bench" / "model_tool"
    for f in (args.tumorlab, tool):
        if not f.is_file():
            raise SystemExit(f"{f}: missing; build it first: cmake --build {build} --target tumorlab model_tool")
    work = Path(args.work) if args.work else build / "model_bench"
    work.mkdir(parents=True, exist_ok=True)
    cases = args.cases.split(",")
    data = shared_data_dir()
    print(f"model_bench: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; TTA "
          f"{'on' if args.tta else 'off'}; {args.tumorlab}")

    if "mip" in cases:
        if data is None:
            print("\nmip: SKIPPED: ../shared/data is absent (set TUMORLAB_SHARED_DATA)")
        else:
            bundle, kind = ensure_bundle(tool, args.mip_bundle, work, "mip-pet-2d")
            images = sorted((data / "Dataset001_MIPPET" / "imagesTr").glob("patient_*_0000.png"))

            def png_height(p):
                with open(p, "rb") as fh:
                    return struct.unpack(">I", fh.read(24)[20:24])[0]

            image = max(images, key=png_height)  # the tallest patient image (400 x ~991)
            print(f"\nmip: bundle {bundle} ({kind})")
            sanity_check(tool, bundle, work, "mip-pet-2d")
            if not args.sanity_only:
                bench_case(args, "mip", f"case 1: MIP-PET 2D on {image.name}", bundle, [image], work, True, args.reps)

    if "lgg" in cases:
        if data is None:
            print("\nlgg: SKIPPED: ../shared/data is absent (set TUMORLAB_SHARED_DATA)")
        else:
            bundle, kind = ensure_bundle(tool, args.lgg_bundle, work, "lgg-flair-3d")
            d = data / "Dataset002_LGGFLAIR" / "imagesTr"
            # a volume of about 40 slices
            best = None
            for f in sorted(d.glob("*_0000.nii.gz")):
                with gzip.open(f, "rb") as fh:
                    z = struct.unpack_from("<8h", fh.read(348), 40)[3]
                if best is None or abs(z - 40) < abs(best[1] - 40):
                    best = (f, z)
            flair = best[0]
            t1c = d / flair.name.replace("_0000", "_0001")
            print(f"\nlgg: bundle {bundle} ({kind})")
            sanity_check(tool, bundle, work, "lgg-flair-3d")
            if not args.sanity_only:
                dims = json.loads((Path(bundle) / "plans.json").read_text())["network"]["dims"]
                bench_case(args, "lgg", f"case 2: LGG ({dims}D network) on {flair.name[:-12]} (256x256x{best[1]}, 2 channels)", bundle,
                       [flair, t1c], work, False, args.reps)

    if "ct" in cases:
        spacing = [float(s) for s in args.ct_spacing.split(",")]
        net_plans = Path(args.ct_net)
        plans = ct_plans(net_plans, work / "ct_plans" / "plans.json", spacing)
        bundle, _ = ensure_bundle(tool, plans.parent, work, "ct-synthetic-3d")
        ct = work / "inputs" / "ct_512x512x100.nii.gz"
        make_ct_volume(ct)
        print(f"\nct: bundle {bundle} (untrained; network of {net_plans}, 1 CT channel, target spacing "
              f"{spacing} mm)")
        if args.sanity_only:
            sanity_check(tool, bundle, work, "ct-synthetic-3d")
        else:
            bench_case(args, "ct", "case 3: synthetic CT 512x512x100 (0.78x0.78x2.5 mm, int16 .nii.gz)", bundle, [ct],
                   work, False, args.ct_reps)


if __name__ == "__main__":
    main()
