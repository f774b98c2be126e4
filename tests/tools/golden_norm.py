#!/usr/bin/env python3
"""Golden values for the normalisation layers and attention, from torch.

    golden_norm.py OUTDIR

Writes, for every case below, its inputs and the expected outputs as float32
.npy files named <case>.<tensor>.npy into OUTDIR. Everything is computed in
float64 by torch (Debian's python3-torch) and cast to float32 at the end;
inputs are generated here with a fixed seed and cast to float32 first, so
the expected values are those of the exact float32 inputs. Masks are stored
as float32 0/1 (the test converts them to int32).

Used by tests/host/ops_norm_test.cpp and ops_attention_test.cpp at test
time; nothing here is committed.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

F32_LOWEST = float(np.finfo(np.float32).min)


def f32(a):
    """float32-rounded inputs, as float64 tensors."""
    return torch.from_numpy(np.asarray(a, dtype=np.float32).astype(np.float64))


def save(out, case, **arrays):
    for name, a in arrays.items():
        if isinstance(a, torch.Tensor):
            a = a.detach().numpy()
        np.save(os.path.join(out, f"{case}.{name}.npy"), np.ascontiguousarray(a, dtype=np.float32))


def layer_norm_case(out, rng, case, shape, axes, eps, use_scale, use_bias, offset=0.0, spread=1.0):
    x = f32(rng.uniform(-spread, spread, shape) + offset)
    C = shape[-1]
    scale = f32(rng.uniform(0.5, 1.5, C))
    bias = f32(rng.uniform(-1, 1, C))
    norm_shape = tuple(shape[-axes:])
    w = scale.expand(norm_shape).contiguous() if use_scale else None
    b = bias.expand(norm_shape).contiguous() if use_bias else None
    y = F.layer_norm(x, norm_shape, w, b, eps)
    arrays = {"x": x, "y": y}
    if use_scale:
        arrays["scale"] = scale
    if use_bias:
        arrays["bias"] = bias
    save(out, case, **arrays)


def rms_norm_case(out, rng, case, shape, eps, use_scale):
    x = f32(rng.uniform(-2, 2, shape))
    scale = f32(rng.uniform(0.5, 1.5, shape[-1]))
    # torch 1.13 has no rms_norm: Flax's formula in float64.
    y = x * torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True) + eps)
    arrays = {"x": x}
    if use_scale:
        y = y * scale
        arrays["scale"] = scale
    arrays["y"] = y
    save(out, case, **arrays)


def channels_first(x):
    """[N, spatial..., C] -> [N, C, spatial...]"""
    return x.permute(0, x.dim() - 1, *range(1, x.dim() - 1))


def channels_last(x):
    return x.permute(0, *range(2, x.dim()), 1)


def group_norm_case(out, rng, case, shape, groups, eps, use_scale, use_bias):
    x = f32(rng.uniform(-1, 3, shape))
    C = shape[-1]
    scale = f32(rng.uniform(0.5, 1.5, C))
    bias = f32(rng.uniform(-1, 1, C))
    y = F.group_norm(channels_first(x), groups, scale if use_scale else None,
                     bias if use_bias else None, eps)
    arrays = {"x": x, "y": channels_last(y)}
    if use_scale:
        arrays["scale"] = scale
    if use_bias:
        arrays["bias"] = bias
    save(out, case, **arrays)


def batch_norm_case(out, rng, case, shape, eps, momentum, training, offset=0.0):
    x = f32(rng.uniform(-1, 1, shape) * 2 + offset)
    C = shape[-1]
    mean = f32(rng.uniform(-0.5, 0.5, C))
    var = f32(rng.uniform(0.5, 2.0, C))
    scale = f32(rng.uniform(0.5, 1.5, C))
    bias = f32(rng.uniform(-1, 1, C))
    xc = channels_first(x) if x.dim() > 2 else x
    y = F.batch_norm(xc, mean.clone(), var.clone(), scale, bias, training=training, eps=eps)
    y = channels_last(y) if x.dim() > 2 else y
    arrays = {"x": x, "mean": mean, "var": var, "scale": scale, "bias": bias, "y": y}
    if training:
        # Flax's update (biased variance; torch's own running_var update is
        # unbiased and its momentum the other way round).
        flat = x.reshape(-1, C)
        arrays["new_mean"] = momentum * mean + (1 - momentum) * flat.mean(0)
        arrays["new_var"] = momentum * var + (1 - momentum) * flat.var(0, unbiased=False)
    save(out, case, **arrays)


def attention_case(out, rng, case, B, Lq, Lk, H, D, Dv, scale=0.0, causal=False, mask_shape=None,
                   masked_rows=()):
    q = f32(rng.standard_normal((B, Lq, H, D)))
    k = f32(rng.standard_normal((B, Lk, H, D)))
    v = f32(rng.standard_normal((B, Lk, H, Dv)))
    s = scale if scale else 1.0 / math.sqrt(D)
    logits = torch.einsum("bqhd,bkhd->bhqk", q, k) * s
    keep = torch.ones(B, H, Lq, Lk, dtype=torch.bool)
    arrays = {"q": q, "k": k, "v": v}
    if mask_shape is not None:
        m = rng.uniform(0, 1, mask_shape) < 0.7
        for r in masked_rows:  # fully masked query rows
            m[..., r, :] = False
        arrays["mask"] = m.astype(np.float32)
        keep = keep & torch.from_numpy(m)
    if causal:
        keep = keep & torch.tril(torch.ones(Lq, Lk, dtype=torch.bool))
    logits = logits.masked_fill(~keep, F32_LOWEST)
    w = torch.softmax(logits, dim=-1)
    arrays["y"] = torch.einsum("bhqk,bkhd->bqhd", w, v)
    save(out, case, **arrays)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: golden_norm.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(20240601)

    layer_norm_case(out, rng, "ln_a", (4, 37, 96), 1, 1e-6, True, True, offset=5.0, spread=3.0)
    layer_norm_case(out, rng, "ln_b", (6, 10, 12), 2, 1e-5, True, False)
    layer_norm_case(out, rng, "ln_c", (3, 5000), 1, 1e-6, False, True, offset=100.0)
    rms_norm_case(out, rng, "rms_a", (8, 3, 256), 1e-6, True)
    rms_norm_case(out, rng, "rms_b", (5, 7), 1e-6, False)
    group_norm_case(out, rng, "gn_a", (2, 9, 11, 64), 32, 1e-6, True, True)
    group_norm_case(out, rng, "gn_b", (3, 50, 12), 4, 1e-6, False, False)
    group_norm_case(out, rng, "gn_c", (40, 3, 3, 16), 8, 1e-5, True, False)
    batch_norm_case(out, rng, "bn_infer", (4, 7, 7, 24), 1e-5, 0.99, False)
    batch_norm_case(out, rng, "bn_train", (16, 5, 5, 32), 1e-5, 0.99, True, offset=3.0)
    batch_norm_case(out, rng, "bn_train2", (300, 5), 1e-3, 0.9, True)

    attention_case(out, rng, "attn_a", 2, 37, 53, 3, 16, 24)
    attention_case(out, rng, "attn_causal", 1, 100, 100, 4, 64, 64, causal=True)
    attention_case(out, rng, "attn_mask", 2, 20, 33, 2, 8, 8, scale=0.3, mask_shape=(2, 1, 20, 33),
                   masked_rows=(0, 7))
    attention_case(out, rng, "attn_mask_causal", 1, 24, 24, 2, 12, 5, causal=True, mask_shape=(1, 2, 24, 24),
                   masked_rows=(3,))


if __name__ == "__main__":
    main()
