#!/usr/bin/env python3
"""Writes a Flax variables checkpoint (flax.serialization.to_bytes format)
and an input .npy for a model JSON, deterministically from a seed.

  make_params.py --model M.json --input-shape 4,32 --params P.msgpack --input X.npy
                 [--seed 0] [--dtype float32]
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
    ap.add_argument("--input-shape", required=True, help="comma-separated, e.g. 4,32")
    ap.add_argument("--params", required=True)
    ap.add_argument("--input")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="float32", help="dtype of the params")
    args = ap.parse_args()

    model = flax_format.load_model(args.model)
    shape = tuple(int(d) for d in args.input_shape.split(","))
    variables = flax_format.init_variables(model, shape[-1], args.seed, np.dtype(args.dtype))
    with open(args.params, "wb") as f:
        f.write(flax_format.to_bytes(variables))
    if args.input:
        rng = np.random.default_rng(args.seed + 1000)
        np.save(args.input, rng.standard_normal(shape).astype(np.float32))


if __name__ == "__main__":
    main()
