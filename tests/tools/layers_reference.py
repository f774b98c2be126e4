#!/usr/bin/python3
"""Test cases for every layer of the flaxdrm model JSON, with references.

  layers_reference.py --list             the case names
  layers_reference.py --many ROOT CASE... the same for each CASE into ROOT/CASE (one
                                         torch import: slow under TCG in the VM)
  layers_reference.py CASE OUTDIR        writes OUTDIR/{model.json, params.msgpack,
                                         params.safetensors, input.npy, expected.npy}
                                         (expected.npy: the float64 reference as float32)

Variables are random (seeded per case) and named as Flax names them; the
expected output is computed in float64 with torch and numpy, independently
of the flaxdrm lowering: lax.conv_general_dilated is spelled out (input
dilation by inserting zeros, explicit or circular padding, then torch's
conv2d), padding strings follow jax's own formulas (lax.padtype_to_pads,
jax's _conv_transpose_padding) and Flax's (CIRCULAR, CAUSAL).
Run with Debian's /usr/bin/python3 (numpy, torch, msgpack).
"""
import json
import math
import os
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flax_format  # noqa: E402

torch.set_default_dtype(torch.float64)


# ------------------------------------------------------------- references
def t(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def same_pads(n, k, s, d=1):
    kd = (k - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + kd - n, 0)
    return (total // 2, total - total // 2)


def conv_transpose_pads(k, s, d, same):
    kd = (k - 1) * d + 1
    if same:
        pad_len = kd + s - 2
        pad_a = kd - 1 if s > kd - 1 else int(math.ceil(pad_len / 2))
    else:
        pad_len = kd + s - 2 + max(kd - s, 0)
        pad_a = kd - 1
    return (pad_a, pad_len - pad_a)


def conv_general(x, kernel, strides, pads, lhs_dil=(1, 1), rhs_dil=(1, 1), groups=1, circular=False):
    """lax.conv_general_dilated, NHWC x HWIO -> NHWC, in float64."""
    x = t(x).permute(0, 3, 1, 2)
    n, c, h, w = x.shape
    if lhs_dil != (1, 1):
        z = torch.zeros(n, c, (h - 1) * lhs_dil[0] + 1, (w - 1) * lhs_dil[1] + 1)
        z[:, :, ::lhs_dil[0], ::lhs_dil[1]] = x
        x = z
    (pt, pb), (pl, pr) = pads
    x = F.pad(x, (pl, pr, pt, pb), mode="circular" if circular else "constant")
    wgt = t(kernel).permute(3, 2, 0, 1)  # HWIO -> OIHW
    y = F.conv2d(x, wgt, stride=tuple(strides), dilation=tuple(rhs_dil), groups=groups)
    return y.permute(0, 2, 3, 1).numpy()


def pool(x, window, strides, pads, kind, count_include_pad=True):
    x = t(x).permute(0, 3, 1, 2)
    (pt, pb), (pl, pr) = pads
    if kind == "max":
        xp = F.pad(x, (pl, pr, pt, pb), value=-math.inf)
        y = F.max_pool2d(xp, window, strides)
    else:
        xp = F.pad(x, (pl, pr, pt, pb))
        s = F.avg_pool2d(xp, window, strides) * (window[0] * window[1])
        if count_include_pad:
            y = s / (window[0] * window[1])
        else:
            ones = F.pad(torch.ones_like(x), (pl, pr, pt, pb))
            y = s / (F.avg_pool2d(ones, window, strides) * (window[0] * window[1]))
    return y.permute(0, 2, 3, 1).numpy()


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


# ------------------------------------------------------------------ cases
class Case:
    def __init__(self, name):
        self.rng = np.random.default_rng(zlib.crc32(name.encode()))
        self.vars = {}

    def param(self, path, shape, scale=0.5, positive=False, coll="params"):
        a = self.rng.standard_normal(shape) * scale
        if positive:
            a = np.abs(a) + 0.5
        a = a.astype(np.float32)
        self.vars[coll + "/" + path] = a
        return a.astype(np.float64)

    def input(self, shape):
        return self.rng.standard_normal(shape).astype(np.float32)


def dense(c, path, x, features, bias=True):
    k = c.param(path + "/kernel", (x.shape[-1], features))
    y = x.astype(np.float64) @ k
    return y + c.param(path + "/bias", (features,)) if bias else y


def conv_case(spec, x_shape, ref):
    def build(c):
        x = c.input(x_shape)
        return {"module": "Compact", "layers": [spec]}, x, ref(c, x)
    return build


def conv2d_ref(features, k, strides=(1, 1), pads=None, padding="SAME", lhs=(1, 1), rhs=(1, 1), groups=1,
               bias=True, circular=False, path="Conv_0"):
    def ref(c, x):
        cin = x.shape[-1]
        kern = c.param(path + "/kernel", (k[0], k[1], cin // groups, features))
        if pads is not None:
            p = pads
        elif padding == "SAME":
            p = [same_pads(x.shape[1 + i], k[i], strides[i], rhs[i]) for i in range(2)]
        elif padding == "CIRCULAR":
            kd = [(k[i] - 1) * rhs[i] + 1 for i in range(2)]
            p = [((kd[i] - 1) // 2, kd[i] // 2) for i in range(2)]
        else:
            p = [(0, 0), (0, 0)]
        y = conv_general(x, kern, strides, p, lhs, rhs, groups, circular)
        return y + c.param(path + "/bias", (features,)) if bias else y
    return ref


CASES = {}


def case(name):
    def deco(f):
        CASES[name] = f
        return f
    return deco


@case("dense_general")
def _(c):
    x = c.input((2, 3, 4, 5))
    k = c.param("DenseGeneral_0/kernel", (4, 5, 3, 2))
    b = c.param("DenseGeneral_0/bias", (3, 2))
    y = np.tensordot(x.astype(np.float64), k, axes=([2, 3], [0, 1])) + b
    return ({"module": "Compact", "layers": [{"module": "DenseGeneral", "features": [3, 2], "axis": [-2, -1]}]},
            x, y)


CASES["conv_same"] = conv_case({"module": "Conv", "features": 6, "kernel_size": [3, 3]}, (2, 7, 6, 3),
                               conv2d_ref(6, (3, 3)))
CASES["conv_same_strided"] = conv_case(
    {"module": "Conv", "features": 4, "kernel_size": [4, 3], "strides": [2, 3], "padding": "SAME"},
    (2, 9, 8, 3), conv2d_ref(4, (4, 3), strides=(2, 3)))
CASES["conv_valid_nobias"] = conv_case(
    {"module": "Conv", "features": 5, "kernel_size": [3, 2], "padding": "VALID", "use_bias": False},
    (1, 6, 5, 2), conv2d_ref(5, (3, 2), padding="VALID", bias=False))
CASES["conv_explicit_pairs"] = conv_case(
    {"module": "Conv", "features": 3, "kernel_size": [3, 3], "padding": [[2, 0], 1]},
    (1, 5, 5, 2), conv2d_ref(3, (3, 3), pads=[(2, 0), (1, 1)]))
CASES["conv_dilations_groups"] = conv_case(
    {"module": "Conv", "features": 6, "kernel_size": [3, 3], "input_dilation": [2, 1], "kernel_dilation": [1, 2],
     "feature_group_count": 2, "padding": "SAME"},
    (2, 5, 7, 4), conv2d_ref(6, (3, 3), lhs=(2, 1), rhs=(1, 2), groups=2))
CASES["conv_circular"] = conv_case(
    {"module": "Conv", "features": 3, "kernel_size": [3, 4], "padding": "CIRCULAR"},
    (1, 5, 6, 2), conv2d_ref(3, (3, 4), padding="CIRCULAR", circular=True))


@case("conv1d_causal")
def _(c):
    x = c.input((2, 9, 3))
    kern = c.param("Conv_0/kernel", (3, 3, 4))
    b = c.param("Conv_0/bias", (4,))
    y = conv_general(x[:, None], kern[None], (1, 1), [(0, 0), (4, 0)], rhs_dil=(1, 2))[:, 0] + b
    return ({"module": "Compact", "layers": [{"module": "Conv", "features": 4, "kernel_size": [3],
                                              "kernel_dilation": 2, "padding": "CAUSAL"}]}, x, y)


def conv_transpose_case(k, s, padding, x_shape, feats):
    def build(c):
        x = c.input(x_shape)
        kern = c.param("ConvTranspose_0/kernel", (k[0], k[1], x_shape[-1], feats))
        b = c.param("ConvTranspose_0/bias", (feats,))
        pads = [conv_transpose_pads(k[i], s[i], 1, padding == "SAME") for i in range(2)]
        y = conv_general(x, kern, (1, 1), pads, lhs_dil=tuple(s)) + b
        return ({"module": "Compact", "layers": [{"module": "ConvTranspose", "features": feats, "kernel_size": k,
                                                  "strides": s, "padding": padding}]}, x, y)
    return build


CASES["conv_transpose_same"] = conv_transpose_case([3, 3], [2, 2], "SAME", (2, 4, 5, 3), 4)
CASES["conv_transpose_valid"] = conv_transpose_case([3, 2], [2, 1], "VALID", (1, 3, 4, 2), 3)


@case("layer_norm")
def _(c):
    x = c.input((3, 4, 8)) * 3 + 1
    s = c.param("LayerNorm_0/scale", (8,))
    b = c.param("LayerNorm_0/bias", (8,))
    y = F.layer_norm(t(x), (8,), t(s), t(b), eps=1e-6).numpy()
    return {"module": "Compact", "layers": [{"module": "LayerNorm"}]}, x, y


@case("rms_norm")
def _(c):
    x = c.input((3, 8)) * 2
    s = c.param("RMSNorm_0/scale", (8,))
    xd = x.astype(np.float64)
    y = xd / np.sqrt(np.mean(xd ** 2, axis=-1, keepdims=True) + 1e-6) * s
    return {"module": "Compact", "layers": [{"module": "RMSNorm"}]}, x, y


@case("group_norm")
def _(c):
    x = c.input((2, 3, 3, 8)) + 0.5
    s = c.param("GroupNorm_0/scale", (8,))
    b = c.param("GroupNorm_0/bias", (8,))
    y = F.group_norm(t(x).permute(0, 3, 1, 2), 4, t(s), t(b), eps=1e-6).permute(0, 2, 3, 1).numpy()
    return {"module": "Compact", "layers": [{"module": "GroupNorm", "num_groups": 4}]}, x, y


@case("group_norm_default_32")
def _(c):
    x = c.input((2, 5, 64))
    s = c.param("GroupNorm_0/scale", (64,))
    b = c.param("GroupNorm_0/bias", (64,))
    y = F.group_norm(t(x).permute(0, 2, 1), 32, t(s), t(b), eps=1e-6).permute(0, 2, 1).numpy()
    return {"module": "Compact", "layers": [{"module": "GroupNorm"}]}, x, y


@case("batch_norm")
def _(c):
    x = c.input((4, 3, 3, 5))
    m = c.param("BatchNorm_0/mean", (5,), coll="batch_stats")
    v = c.param("BatchNorm_0/var", (5,), positive=True, coll="batch_stats")
    s = c.param("BatchNorm_0/scale", (5,))
    b = c.param("BatchNorm_0/bias", (5,))
    y = (x - m) / np.sqrt(v + 1e-5) * s + b
    return {"module": "Compact", "layers": [{"module": "BatchNorm", "use_running_average": True}]}, x, y


@case("embed")
def _(c):
    idx = c.rng.integers(0, 11, size=(3, 4)).astype(np.int32)
    table = c.param("Embed_0/embedding", (11, 6))
    y = table[idx]
    return ({"module": "Compact", "layers": [{"module": "Embed", "num_embeddings": 11, "features": 6},
                                             {"module": "Dense", "features": 3}]},
            idx, dense(c, "Dense_0", y, 3))


@case("attention")
def _(c):
    B, L, Fe, H, qkv, out = 2, 5, 8, 2, 6, 7
    x = c.input((B, L, Fe))
    D = qkv // H
    xd = x.astype(np.float64)
    proj = {}
    for n in ("query", "key", "value"):
        k = c.param(f"MultiHeadDotProductAttention_0/{n}/kernel", (Fe, H, D))
        b = c.param(f"MultiHeadDotProductAttention_0/{n}/bias", (H, D))
        proj[n] = np.einsum("blf,fhd->blhd", xd, k) + b
    q = proj["query"] / np.sqrt(D)
    logits = np.einsum("bqhd,bkhd->bhqk", q, proj["key"])
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    a = np.einsum("bhqk,bkhd->bqhd", w, proj["value"])
    ko = c.param("MultiHeadDotProductAttention_0/out/kernel", (H, D, out))
    bo = c.param("MultiHeadDotProductAttention_0/out/bias", (out,))
    y = np.einsum("bqhd,hdo->bqo", a, ko) + bo
    return ({"module": "Compact", "layers": [{"module": "MultiHeadDotProductAttention", "num_heads": H,
                                              "qkv_features": qkv, "out_features": out}]}, x, y)


@case("activations")
def _(c):
    x = c.input((3, 7)) * 2
    xd = t(x)
    fns = [({"module": "relu"}, F.relu), ({"module": "gelu"}, lambda v: t(gelu_tanh(v.numpy()))),
           ({"module": "gelu", "approximate": False}, lambda v: F.gelu(v)),
           ({"module": "silu"}, F.silu), ({"module": "swish"}, F.silu), ({"module": "sigmoid"}, torch.sigmoid),
           ({"module": "tanh"}, torch.tanh), ({"module": "elu"}, F.elu),
           ({"module": "elu", "alpha": 0.5}, lambda v: F.elu(v, 0.5)),
           ({"module": "leaky_relu"}, lambda v: F.leaky_relu(v, 0.01)),
           ({"module": "leaky_relu", "negative_slope": 0.2}, lambda v: F.leaky_relu(v, 0.2)),
           ({"module": "softplus"}, F.softplus), ({"module": "softmax"}, lambda v: F.softmax(v, -1)),
           ({"module": "log_softmax"}, lambda v: F.log_softmax(v, -1))]
    # each function on its own Residual branch would hide errors; chain them
    # with a Dense between so each sees a spread of values
    layers = []
    v = xd
    for i, (spec, fn) in enumerate(fns):
        layers.append(spec)
        v = fn(v)
        layers.append({"module": "Dense", "features": 7})
        v = t(dense(c, f"Dense_{i}", v.numpy(), 7))
    return {"module": "Compact", "layers": layers}, x, v.numpy()


@case("pools")
def _(c):
    x = c.input((2, 7, 6, 3))
    y1 = pool(x, (2, 2), (2, 2), [(0, 0), (0, 0)], "avg")
    y2 = pool(y1, (3, 2), (1, 1), [same_pads(3, 3, 1), same_pads(3, 2, 1)], "max")
    y3 = pool(y2, (2, 2), (1, 2), [(1, 0), (1, 1)], "avg", count_include_pad=False)
    y4 = pool(y3, (2, 2), (1, 1), [(0, 0), (0, 0)], "avg")  # default strides 1
    return ({"module": "Compact", "layers": [
        {"module": "avg_pool", "window_shape": [2, 2], "strides": [2, 2]},
        {"module": "max_pool", "window_shape": [3, 2], "padding": "SAME"},
        {"module": "avg_pool", "window_shape": [2, 2], "strides": [1, 2], "padding": [[1, 0], [1, 1]],
         "count_include_pad": False},
        {"module": "avg_pool", "window_shape": [2, 2]}]}, x, y4)


@case("pool1d")
def _(c):
    x = c.input((2, 9, 3))
    y = pool(x[:, None], (1, 3), (1, 2), [(0, 0), (0, 0)], "max")[:, 0]
    return {"module": "Compact", "layers": [{"module": "max_pool", "window_shape": [3], "strides": [2]}]}, x, y


@case("flatten_reshape_dropout")
def _(c):
    x = c.input((2, 3, 4, 2))
    h = x.reshape(2, -1)
    h = dense(c, "Dense_0", h, 12)
    h = h.reshape(-1, 4)
    h = dense(c, "Dense_1", h, 5)
    return ({"module": "Compact", "layers": [
        {"module": "flatten"}, {"module": "Dropout", "rate": 0.5}, {"module": "Dense", "features": 12},
        {"module": "reshape", "shape": [-1, 4]}, {"module": "Dense", "features": 5},
        {"module": "Dropout", "rate": 0.1, "deterministic": True}]}, x, h)


@case("residual")
def _(c):
    x = c.input((3, 6))
    h = dense(c, "Residual_0/Dense_0", x, 6)
    h = x + np.maximum(h, 0)
    h2 = h
    s = c.param("block/LayerNorm_0/scale", (6,))
    b = c.param("block/LayerNorm_0/bias", (6,))
    ln = F.layer_norm(t(h2), (6,), t(s), t(b), eps=1e-6).numpy()
    y = h2 + dense(c, "block/Dense_0", ln, 6)
    return ({"module": "Compact", "layers": [
        {"module": "Residual", "layers": [{"module": "Dense", "features": 6}, {"module": "relu"}]},
        {"module": "Residual", "name": "block", "layers": [{"module": "LayerNorm"},
                                                           {"module": "Dense", "features": 6}]}]}, x, y)


def safetensors_bytes(flat):
    header, blobs, off = {}, [], 0
    for name in sorted(flat):
        a = np.ascontiguousarray(flat[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    header["__metadata__"] = {"format": "flax"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def main(argv):
    if argv[1:] == ["--list"]:
        print("\n".join(CASES))
        return 0
    if argv[1] == "--many":
        for name in argv[3:]:
            write_case(name, os.path.join(argv[2], name))
        return 0
    write_case(argv[1], argv[2])
    return 0


def write_case(name, out):
    c = Case(name)
    model, x, y = CASES[name](c)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump(model, f)
    with open(os.path.join(out, "params.msgpack"), "wb") as f:
        f.write(flax_format.to_bytes(flax_format.unflatten(c.vars)))
    with open(os.path.join(out, "params.safetensors"), "wb") as f:
        f.write(safetensors_bytes(c.vars))
    np.save(os.path.join(out, "input.npy"), x)
    np.save(os.path.join(out, "expected.npy"), np.asarray(y, dtype=np.float32))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
