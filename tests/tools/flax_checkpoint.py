#!/usr/bin/python3
"""Flax msgpack checkpoints with python3-msgpack + numpy, as
flax.serialization does it (ext type 1 = msgpack [shape, dtype name, bytes];
arrays over MAX_CHUNK_SIZE as {"__msgpack_chunked_array__": True, "shape":
{"0": ...}, "chunks": {"0": ..., ...}}), for tests/host/flax_checkpoint_test.

  flax_checkpoint.py dump FILE          JSON {path: {shape, dtype, values}} on stdout
  flax_checkpoint.py write FILE CHUNK   writes the reference tree (arrays over
                                        CHUNK bytes chunked)
"""
import json
import sys

import msgpack
import numpy as np


def bf16_to_f32(raw):
    u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
    return (u16 << 16).view(np.float32)


def f32_to_bf16_bytes(a):
    u32 = np.asarray(a, dtype=np.float32).view(np.uint32)
    return ((u32 + 0x7FFF + ((u32 >> 16) & 1)) >> 16).astype("<u2").tobytes()


def ext_hook(code, data):
    if code in (1, 3):
        shape, dtype, buf = msgpack.unpackb(data, raw=False)
        if dtype == "bfloat16":
            arr = bf16_to_f32(buf).reshape(shape)
        else:
            arr = np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape)
        return (dtype, arr)
    return msgpack.ExtType(code, data)


def unchunk(d):
    if isinstance(d, dict):
        if "__msgpack_chunked_array__" in d:
            shape = tuple(d["shape"][str(i)] for i in range(len(d["shape"])))
            parts = [d["chunks"][str(i)] for i in range(len(d["chunks"]))]
            flat = np.concatenate([p[1] for p in parts])
            return (parts[0][0] + "+chunked:" + str(len(parts)), flat.reshape(shape))
        return {k: unchunk(v) for k, v in d.items()}
    return d


def flatten(d, prefix, out):
    for k, v in d.items():
        p = prefix + "/" + k if prefix else k
        if isinstance(v, dict):
            flatten(v, p, out)
        else:
            dtype, arr = v
            out[p] = {"shape": list(arr.shape), "dtype": dtype,
                      "values": [float(x) for x in np.asarray(arr, dtype=np.float64).reshape(-1)]}


def ndarray(arr, dtype=None):
    dtype = dtype or arr.dtype.name
    raw = f32_to_bf16_bytes(arr) if dtype == "bfloat16" else np.ascontiguousarray(arr).tobytes()
    return msgpack.ExtType(1, msgpack.packb((list(arr.shape), dtype, raw), use_bin_type=True))


def leaf(arr, chunk, dtype=None):
    itemsize = 2 if dtype == "bfloat16" else arr.dtype.itemsize
    if arr.size * itemsize > chunk:
        n = max(1, chunk // itemsize)
        flat = arr.reshape(-1)
        chunks = {str(i): ndarray(flat[j:j + n], dtype) for i, j in enumerate(range(0, flat.size, n))}
        return {"__msgpack_chunked_array__": True,
                "shape": {str(i): s for i, s in enumerate(arr.shape)}, "chunks": chunks}
    return ndarray(arr, dtype)


def reference(chunk):
    return {
        "params": {
            "Dense_0": {
                "kernel": leaf((np.arange(12, dtype=np.float32) * 0.5 - 2).reshape(3, 4), chunk),
                "bias": leaf(np.array([1, 2, 3, 4], dtype=np.float16), chunk),
            },
            "scale": leaf(np.array([0.5, -1.25, 3.0], dtype=np.float32), chunk, "bfloat16"),
        },
        "counts": {"i32": leaf(np.array([[1, -2], [3, 4]], dtype=np.int32), chunk),
                   "i64": leaf(np.array([7, 1 << 20], dtype=np.int64), chunk)},
    }


def main():
    if sys.argv[1] == "dump":
        with open(sys.argv[2], "rb") as f:
            tree = msgpack.unpackb(f.read(), ext_hook=ext_hook, raw=False, strict_map_key=False)
        out = {}
        flatten(unchunk(tree), "", out)
        json.dump(out, sys.stdout)
    elif sys.argv[1] == "write":
        with open(sys.argv[2], "wb") as f:
            f.write(msgpack.packb(reference(int(sys.argv[3])), use_bin_type=True))
    else:
        sys.exit("usage: flax_checkpoint.py dump FILE | write FILE CHUNK")


if __name__ == "__main__":
    main()
