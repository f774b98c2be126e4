#!/usr/bin/env python3
"""Golden values for the convolution family, computed with torch (float64).

Usage: golden_conv.py OUTDIR

Writes OUTDIR/manifest.txt, one case per line:
    <op> <name> key=value ...
with op one of conv, avg_pool, max_pool, and for each case the float32
arrays <name>_x.npy, <name>_w.npy, <name>_b.npy (conv with bias) and
<name>_y.npy (the expected output), all NHWC / HWIO as flaxdrm takes them.

Conv semantics are lax.conv_general_dilated's (what flax.linen.Conv and
ConvTranspose lower to): explicit zero padding (possibly asymmetric) or
circular padding, input (lhs) dilation, kernel (rhs) dilation, feature
groups. torch's conv2d is NCHW / OIHW and symmetric-padded, so the input is
transposed, zero-stuffed for input dilation and padded with F.pad first.
Flax's ConvTranspose (transpose_kernel=False) is such a conv with
lhs_dilation = strides, window strides 1 and jax's _conv_transpose_padding,
which is written out below; the 'pad' key says which formula gave the pads
(same, valid, ct_same, ct_valid, explicit, circular) so the C++ test can
check userspace/include/flaxdrm/conv_padding.hpp against it.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def same_padding(n, k, s, d=1):
    """XLA's SAME (lax.padtype_to_pads), smaller half before."""
    kd = (k - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + kd - n, 0)
    return total // 2, total - total // 2


def conv_transpose_padding(k, s, d, same):
    """jax._src.lax.convolution._conv_transpose_padding on the dilated k."""
    k = (k - 1) * d + 1
    if same:
        pad_len = k + s - 2
        pad_a = k - 1 if s > k - 1 else int(math.ceil(pad_len / 2))
    else:
        pad_len = k + s - 2 + max(k - s, 0)
        pad_a = k - 1
    return pad_a, pad_len - pad_a


def save(outdir, name, suffix, a):
    np.save(os.path.join(outdir, f"{name}_{suffix}.npy"), np.ascontiguousarray(a, dtype=np.float32))


def conv_ref(x, w, b, strides, lhs, rhs, groups, pads, circular):
    """x NHWC, w HWIO (float64 tensors) -> y NHWC."""
    xt = x.permute(0, 3, 1, 2)
    n, c, h, wd = xt.shape
    if lhs != (1, 1):
        z = torch.zeros(n, c, (h - 1) * lhs[0] + 1, (wd - 1) * lhs[1] + 1, dtype=xt.dtype)
        z[:, :, ::lhs[0], ::lhs[1]] = xt
        xt = z
    pt, pb, pl, pr = pads
    xt = F.pad(xt, (pl, pr, pt, pb), mode="circular" if circular else "constant")
    wt = w.permute(3, 2, 0, 1)
    y = F.conv2d(xt, wt, b, stride=strides, dilation=rhs, groups=groups)
    return y.permute(0, 2, 3, 1)


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    lines = []

    def conv_case(name, N, H, W, C, KH, KW, Fo, strides=(1, 1), lhs=(1, 1), rhs=(1, 1), groups=1,
                  pad="valid", explicit=(0, 0, 0, 0), bias=True, ct_strides=None):
        if pad in ("same", "circular"):
            ph = same_padding(H, KH, strides[0], rhs[0])
            pw = same_padding(W, KW, strides[1], rhs[1])
            pads = (*ph, *pw)
        elif pad == "valid":
            pads = (0, 0, 0, 0)
        elif pad in ("ct_same", "ct_valid"):
            lhs = ct_strides
            strides = (1, 1)
            ph = conv_transpose_padding(KH, ct_strides[0], rhs[0], pad == "ct_same")
            pw = conv_transpose_padding(KW, ct_strides[1], rhs[1], pad == "ct_same")
            pads = (*ph, *pw)
        else:
            pads = explicit
        circular = pad == "circular"
        x = torch.rand(N, H, W, C, generator=gen, dtype=torch.float64) * 2 - 1
        w = torch.rand(KH, KW, C // groups, Fo, generator=gen, dtype=torch.float64) * 2 - 1
        b = torch.rand(Fo, generator=gen, dtype=torch.float64) * 2 - 1 if bias else None
        y = conv_ref(x, w, b, strides, lhs, rhs, groups, pads, circular)
        save(outdir, name, "x", x)
        save(outdir, name, "w", w)
        if bias:
            save(outdir, name, "b", b)
        save(outdir, name, "y", y)
        kv = dict(N=N, H=H, W=W, C=C, KH=KH, KW=KW, F=Fo, sh=strides[0], sw=strides[1], lh=lhs[0],
                  lw=lhs[1], dh=rhs[0], dw=rhs[1], G=groups, circular=int(circular), pt=pads[0],
                  pb=pads[1], pl=pads[2], pr=pads[3], bias=int(bias), pad=pad)
        lines.append("conv " + name + " " + " ".join(f"{k}={v}" for k, v in kv.items()))

    # Plain, SAME, strided, odd shapes
    conv_case("tiny", 1, 3, 3, 1, 1, 1, 1)
    conv_case("same3x3", 2, 7, 9, 3, 3, 3, 5, pad="same")
    conv_case("same3x3_c8", 1, 10, 11, 8, 3, 3, 12, pad="same")
    conv_case("stride2_same", 2, 9, 8, 4, 3, 3, 8, strides=(2, 2), pad="same")
    conv_case("stride2_even_k", 1, 8, 8, 4, 4, 2, 4, strides=(2, 3), pad="same", bias=False)
    conv_case("valid5x5", 1, 12, 10, 6, 5, 5, 7)
    conv_case("explicit_asym", 1, 6, 7, 4, 3, 2, 8, strides=(1, 2), pad="explicit", explicit=(2, 0, 1, 3))
    conv_case("kdil2", 1, 11, 12, 4, 3, 3, 8, rhs=(2, 3), pad="same")
    conv_case("lhsdil", 1, 5, 4, 4, 3, 3, 4, lhs=(2, 3), pad="explicit", explicit=(1, 2, 2, 1))
    conv_case("groups2", 2, 8, 8, 8, 3, 3, 12, groups=2, pad="same")
    conv_case("groups3_odd", 1, 7, 6, 9, 3, 1, 6, groups=3, pad="same")
    conv_case("depthwise", 1, 9, 9, 16, 3, 3, 16, groups=16, pad="same")
    conv_case("depthwise_mult2", 1, 6, 6, 8, 3, 3, 16, groups=8, strides=(2, 2), pad="same")
    conv_case("circular", 1, 6, 7, 4, 3, 3, 8, pad="circular")
    conv_case("circular_k5_odd", 2, 5, 4, 3, 5, 3, 5, pad="circular", bias=False)
    conv_case("circular_dil", 1, 8, 8, 4, 3, 3, 4, rhs=(2, 2), pad="circular")
    conv_case("pointwise", 2, 14, 14, 32, 1, 1, 64)
    # Flax ConvTranspose (transpose_kernel=False)
    conv_case("ct_same_s2", 1, 5, 6, 4, 3, 3, 8, pad="ct_same", ct_strides=(2, 2))
    conv_case("ct_valid_s2", 2, 4, 5, 3, 3, 3, 5, pad="ct_valid", ct_strides=(2, 2))
    conv_case("ct_same_s3_k2", 1, 4, 4, 8, 2, 2, 4, pad="ct_same", ct_strides=(3, 3))
    conv_case("ct_valid_s1_k4_dil", 1, 5, 5, 4, 4, 3, 4, rhs=(2, 1), pad="ct_valid", ct_strides=(1, 2))
    # ResNet-style layer
    conv_case("resnet3x3", 1, 56, 56, 64, 3, 3, 64, pad="same")

    def pool_case(op, name, N, H, W, C, win, strides, pad="valid", explicit=(0, 0, 0, 0),
                  include_pad=True, special=False):
        if pad == "same":
            pads = (*same_padding(H, win[0], strides[0]), *same_padding(W, win[1], strides[1]))
        elif pad == "valid":
            pads = (0, 0, 0, 0)
        else:
            pads = explicit
        x = torch.rand(N, H, W, C, generator=gen, dtype=torch.float64) * 2 - 1
        if special:
            x[0, 0, 0, 0] = float("nan")
            x[0, 1, 1, 1 % C] = float("inf")
            x[0, H - 1, W - 1, 0] = -float("inf")
        xt = x.permute(0, 3, 1, 2)
        pt, pb, pl, pr = pads
        if op == "max_pool":
            xp = F.pad(xt, (pl, pr, pt, pb), value=-float("inf"))
            y = F.max_pool2d(xp, win, strides)
            # torch's max_pool2d propagates NaN like lax.max
        else:
            xp = F.pad(xt, (pl, pr, pt, pb))
            s = F.avg_pool2d(xp, win, strides) * (win[0] * win[1])
            if include_pad:
                y = s / (win[0] * win[1])
            else:
                ones = F.pad(torch.ones_like(xt), (pl, pr, pt, pb))
                y = s / (F.avg_pool2d(ones, win, strides) * (win[0] * win[1]))
        y = y.permute(0, 2, 3, 1)
        save(outdir, name, "x", x)
        save(outdir, name, "y", y)
        kv = dict(N=N, H=H, W=W, C=C, wh=win[0], ww=win[1], sh=strides[0], sw=strides[1], pt=pads[0],
                  pb=pads[1], pl=pads[2], pr=pads[3], include_pad=int(include_pad), pad=pad)
        lines.append(op + " " + name + " " + " ".join(f"{k}={v}" for k, v in kv.items()))

    pool_case("avg_pool", "avg2x2", 2, 8, 8, 3, (2, 2), (2, 2))
    pool_case("avg_pool", "avg3x3_same_incl", 1, 7, 9, 5, (3, 3), (2, 2), pad="same")
    pool_case("avg_pool", "avg3x3_same_excl", 1, 7, 9, 5, (3, 3), (2, 2), pad="same", include_pad=False)
    pool_case("avg_pool", "avg_explicit_excl", 2, 6, 5, 4, (3, 2), (1, 2), pad="explicit",
              explicit=(2, 1, 0, 1), include_pad=False)
    pool_case("avg_pool", "avg_overlap", 1, 10, 10, 16, (3, 3), (1, 1))
    pool_case("max_pool", "max2x2", 2, 8, 8, 3, (2, 2), (2, 2))
    pool_case("max_pool", "max3x3_s2_same", 1, 9, 11, 8, (3, 3), (2, 2), pad="same")
    pool_case("max_pool", "max_explicit", 1, 5, 6, 2, (2, 3), (1, 1), pad="explicit", explicit=(1, 0, 2, 2))
    pool_case("max_pool", "max_special", 1, 6, 6, 3, (2, 2), (2, 2), special=True)
    pool_case("avg_pool", "avg_special", 1, 6, 6, 3, (2, 2), (2, 2), special=True)
    pool_case("max_pool", "max_resnet", 1, 112, 112, 64, (3, 3), (2, 2), pad="same")

    with open(os.path.join(outdir, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
