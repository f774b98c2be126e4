#!/usr/bin/env python3
"""torch CPU baselines for `make bench` (tests/bench/run.sh).

    torch_baseline.py [--threads N] [--min-time S]

Times, in float32 on the CPU with N threads (default: all cores), the ops
that flaxdrm-bench runs on the Vulkan device, and prints one JSON object
{case: seconds per call (best of repeated calls)}:
  attention_L512_H8_D64[_causal]  softmax(q k^T / sqrt(D) [+ causal mask]) v,
                                   batch 1, as batched matmuls (torch 1.13
                                   has no fused scaled_dot_product_attention)
  conv3x3_N1                      conv2d 56x56x64 -> 64, 3x3, stride 1,
                                   padding 1, bias; the faster of NCHW and
                                   channels_last
  layer_norm_4096x512             layer_norm over the last axis, scale, bias
  batch_norm_train_N8             batch_norm training on 8x64x56x56
                                   (channels_last, i.e. NHWC)
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F


def best_time(fn, min_time):
    fn()  # warm-up: allocations, kernel selection
    best, spent, reps = math.inf, 0.0, 0
    while spent < min_time or reps < 3:
        t0 = time.perf_counter()
        fn()
        s = time.perf_counter() - t0
        best = min(best, s)
        spent += s
        reps += 1
    return best


def attention(q, k, v, causal):
    # q, k, v: [B, L, H, D] as flaxdrm; heads to the batch like Flax's einsum.
    qh, kh, vh = (t.permute(0, 2, 1, 3) for t in (q, k, v))
    logits = torch.matmul(qh, kh.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if causal:
        L = q.shape[1]
        mask = torch.ones(L, L, dtype=torch.bool).tril()
        logits = logits.masked_fill(~mask, torch.finfo(torch.float32).min)
    w = torch.softmax(logits, dim=-1)
    return torch.matmul(w, vh).permute(0, 2, 1, 3).contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--min-time", type=float, default=0.5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {"_threads": args.threads, "_torch": torch.__version__}

    with torch.no_grad():
        B, L, H, D = 1, 512, 8, 64
        q, k, v = (torch.randn(B, L, H, D) for _ in range(3))
        for causal in (False, True):
            name = f"attention_L{L}_H{H}_D{D}" + ("_causal" if causal else "")
            out[name] = best_time(lambda: attention(q, k, v, causal), args.min_time)

        x = torch.randn(1, 64, 56, 56)
        w = torch.randn(64, 64, 3, 3)
        b = torch.randn(64)
        nchw = best_time(lambda: F.conv2d(x, w, b, padding=1), args.min_time)
        xl = x.to(memory_format=torch.channels_last)
        wl = w.to(memory_format=torch.channels_last)
        nhwc = best_time(lambda: F.conv2d(xl, wl, b, padding=1), args.min_time)
        out["conv3x3_N1"] = min(nchw, nhwc)
        out["_conv3x3_N1_nchw"] = nchw
        out["_conv3x3_N1_channels_last"] = nhwc

        x = torch.randn(4096, 512)
        g, b = torch.randn(512), torch.randn(512)
        out["layer_norm_4096x512"] = best_time(lambda: F.layer_norm(x, (512,), g, b, 1e-6), args.min_time)

        # BatchNorm training on NHWC data: channels_last is torch's match.
        x = torch.randn(8, 64, 56, 56).to(memory_format=torch.channels_last)
        g, b = torch.randn(64), torch.randn(64)
        rm, rv = torch.zeros(64), torch.ones(64)
        out["batch_norm_train_N8"] = best_time(
            lambda: F.batch_norm(x, rm, rv, g, b, training=True, momentum=0.01, eps=1e-5), args.min_time)

    print(json.dumps(out))


if __name__ == "__main__":
    main()
