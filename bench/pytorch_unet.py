#!/usr/bin/python3
"""The tumorlab U-Net (src/model/unet.cpp) written again in plain PyTorch, module for module,
so that the weights tumorlab saves (model.pt, torch::save of the C++ module) load into it and
the same network can be timed in PyTorch beside tumorlab (bench/model_bench.sh).

Parameter names match the C++ registration: encoder.<s>.convs.<c>.conv.weight, ...norm.weight,
upsample.<d>.weight, decoder.<d>..., gates.<d>.wx/wg/psi, heads.<d>.weight."""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(dims, i, o, k, stride, bias):
    s = tuple(reversed(stride[:dims]))  # plans store (x, y, z); tensors are (N, C, [Z,] Y, X)
    return (nn.Conv2d if dims == 2 else nn.Conv3d)(i, o, k, stride=s, padding=k // 2, bias=bias)


class ConvNormAct(nn.Module):
    def __init__(self, dims, i, o, stride, act=True):
        super().__init__()
        self.conv = conv(dims, i, o, 3, stride, True)
        self.norm = (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(o, affine=True)
        self.act = act

    def forward(self, x):
        x = self.norm(self.conv(x))
        return F.leaky_relu(x, 0.01) if self.act else x


class Stage(nn.Module):
    def __init__(self, dims, i, o, stride, convs, residual, p):
        super().__init__()
        self.residual = residual
        self.convs = nn.ModuleList(
            [ConvNormAct(dims, i if c == 0 else o, o, stride if c == 0 else [1, 1, 1], not (residual and c == convs - 1))
             for c in range(convs)])
        self.projection = conv(dims, i, o, 1, stride, False) if residual and (i != o or stride != [1, 1, 1]) else None
        self.dropout = (nn.Dropout2d if dims == 2 else nn.Dropout3d)(p) if p > 0 else None

    def forward(self, x):
        identity = x
        for c, m in enumerate(self.convs):
            if c == 1 and self.dropout is not None:
                x = self.dropout(x)
            x = m(x)
        if self.residual:
            x = F.leaky_relu(x + (self.projection(identity) if self.projection is not None else identity), 0.01)
        return x


class AttentionGate(nn.Module):
    def __init__(self, dims, ch):
        super().__init__()
        inter = max(1, ch // 2)
        self.wx = conv(dims, ch, inter, 1, [1, 1, 1], False)
        self.wg = conv(dims, ch, inter, 1, [1, 1, 1], True)
        self.psi = conv(dims, inter, 1, 1, [1, 1, 1], True)

    def forward(self, skip, gate):
        return skip * torch.sigmoid(self.psi(F.relu(self.wx(skip) + self.wg(gate))))


class UNet(nn.Module):
    def __init__(self, plans):
        super().__init__()
        n = plans["network"]
        dims, f = n["dims"], n["features"]
        strides = n["strides"] or [[2, 2, 2 if dims == 3 else 1]] * (len(f) - 1)
        # 2D networks with context see 2k+1 slices per channel (plans' network.context_slices)
        cin = len(plans["channels"]) * (2 * n.get("context_slices", 0) + 1)
        classes = max(plans["labels"].values()) + 1
        self.dims = dims
        self.encoder = nn.ModuleList(
            [Stage(dims, cin if s == 0 else f[s - 1], f[s], [1, 1, 1] if s == 0 else strides[s - 1],
                   n["convs_per_stage"], n["residual_encoder"], 0.0) for s in range(len(f))])
        up = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.heads = nn.ModuleList()
        for d in range(len(f) - 1):
            s = tuple(reversed(strides[d][:dims]))
            self.upsample.append(up(f[d + 1], f[d], s, stride=s))
            self.decoder.append(Stage(dims, 2 * f[d], f[d], [1, 1, 1], n["convs_per_stage"], False, n["dropout"]))
            if n["attention_gates"]:
                self.gates.append(AttentionGate(dims, f[d]))
            self.heads.append(conv(dims, f[d], classes, 1, [1, 1, 1], True))

    def forward(self, x):
        skips = []
        for s, e in enumerate(self.encoder):
            x = e(x)
            if s < len(self.encoder) - 1:
                skips.append(x)
        for d in reversed(range(len(self.decoder))):
            u = self.upsample[d](x)
            skip = self.gates[d](skips[d], u) if len(self.gates) else skips[d]
            x = self.decoder[d](torch.cat([u, skip], 1))
        return self.heads[0](x)


def load(bundle_dir):
    with open(f"{bundle_dir}/plans.json") as fh:
        plans = json.load(fh)
    net = UNet(plans)
    saved = torch.jit.load(f"{bundle_dir}/model.pt", map_location="cpu")
    state = {k: v for k, v in saved.state_dict().items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weights do not match: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return plans, net.eval()


if __name__ == "__main__":
    plans, net = load(sys.argv[1])
    print(plans["name"], sum(p.numel() for p in net.parameters()), "parameters")
