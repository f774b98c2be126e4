#!/usr/bin/env python3
"""The numpy reference of a model: reads the model JSON, the Flax msgpack
params and the .npy input, computes the forward pass (Dense, relu) in
float64 and writes it as float32 .npy.

  mlp_reference.py --model M.json --params P.msgpack --input X.npy --output R.npy

With --compare Y.npy it also checks Y against the reference and exits 1 if
the max abs difference exceeds --tolerance (default 1e-5).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flax_format  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output")
    ap.add_argument("--compare", action="append", default=[])
    ap.add_argument("--tolerance", type=float, default=1e-5)
    args = ap.parse_args()

    model = flax_format.load_model(args.model)
    with open(args.params, "rb") as f:
        variables = flax_format.from_bytes(f.read())
    x = np.load(args.input)
    ref = flax_format.apply(model, variables, x)
    if args.output:
        np.save(args.output, ref.astype(np.float32))
    status = 0
    for path in args.compare:
        y = np.load(path)
        if y.shape != ref.shape:
            print(f"{path}: shape {y.shape}, reference {ref.shape}")
            status = 1
            continue
        diff = float(np.max(np.abs(y.astype(np.float64) - ref))) if ref.size else 0.0
        ok = diff <= args.tolerance
        print(f"{path}: max abs diff {diff:.3g} ({'ok' if ok else 'FAIL'}, tolerance {args.tolerance:g})")
        if not ok:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
