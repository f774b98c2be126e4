#!/usr/bin/env python3
"""Writes the example MLP's Flax variables and input, deterministically.

The Flax model this stands for (32 input features, batch 8):

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(64)(x)          # Dense_0
            x = nn.relu(x)
            return nn.Dense(10)(x)       # Dense_1

    seq = nn.Sequential([nn.Dense(64), nn.relu, nn.Dense(10)])  # layers_0, layers_2

Outputs (next to this script):
    params.msgpack             {"params": {"Dense_0": ..., "Dense_1": ...}}
    params_sequential.msgpack  the same numbers as {"params": {"layers_0": ..., "layers_2": ...}}
    input.npy                  float32 (8, 32)

The msgpack files are what flax.serialization.to_bytes(variables) writes:
arrays are msgpack extension type 1 holding [shape, dtype name, C-order bytes].
"""
import os

import msgpack
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
IN_FEATURES, HIDDEN, OUT, BATCH = 32, 64, 10, 8


def to_bytes(tree):
    def ext(x):
        if isinstance(x, np.ndarray):
            return msgpack.ExtType(1, msgpack.packb([list(x.shape), x.dtype.name, x.tobytes("C")]))
        raise TypeError(type(x))
    return msgpack.packb(tree, default=ext, strict_types=True)


def main():
    rng = np.random.default_rng(20240601)
    k0 = (rng.standard_normal((IN_FEATURES, HIDDEN)) / np.sqrt(IN_FEATURES)).astype(np.float32)
    b0 = (0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)
    k1 = (rng.standard_normal((HIDDEN, OUT)) / np.sqrt(HIDDEN)).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(OUT)).astype(np.float32)
    x = rng.standard_normal((BATCH, IN_FEATURES)).astype(np.float32)

    compact = {"params": {"Dense_0": {"kernel": k0, "bias": b0}, "Dense_1": {"kernel": k1, "bias": b1}}}
    sequential = {"params": {"layers_0": {"kernel": k0, "bias": b0}, "layers_2": {"kernel": k1, "bias": b1}}}
    with open(os.path.join(HERE, "params.msgpack"), "wb") as f:
        f.write(to_bytes(compact))
    with open(os.path.join(HERE, "params_sequential.msgpack"), "wb") as f:
        f.write(to_bytes(sequential))
    np.save(os.path.join(HERE, "input.npy"), x)


if __name__ == "__main__":
    main()
