"""Flax-format helpers for tests, written without Flax itself.

- to_bytes / from_bytes: what flax.serialization.to_bytes(variables) writes and
  from_bytes reads: a msgpack map tree whose array leaves are msgpack
  extension type 1 holding msgpack [shape, dtype name, C-order bytes].
- model_variables: the variables a model JSON expects, named as Flax names
  them (Compact: Dense_0, Dense_1 per class; Sequential: layers_<position>).
- apply: the model's forward pass in float64, the numpy reference.

This is an independent implementation of the naming rules (the C++ client
has its own), so the two check each other.
"""
import json

import msgpack
import numpy as np

EXT_NDARRAY = 1
EXT_NPSCALAR = 3


def _ext_pack(x):
    if isinstance(x, np.ndarray):
        payload = msgpack.packb([list(x.shape), x.dtype.name, x.tobytes("C")], use_bin_type=True)
        return msgpack.ExtType(EXT_NDARRAY, payload)
    if isinstance(x, np.generic):
        payload = msgpack.packb([x.dtype.name, x.tobytes()], use_bin_type=True)
        return msgpack.ExtType(EXT_NPSCALAR, payload)
    raise TypeError(f"cannot serialize {type(x)}")


def _ext_unpack(code, data):
    if code == EXT_NDARRAY:
        shape, dtype, buf = msgpack.unpackb(data, raw=False)
        return np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape)
    if code == EXT_NPSCALAR:
        dtype, buf = msgpack.unpackb(data, raw=False)
        return np.frombuffer(buf, dtype=np.dtype(dtype))[0]
    return msgpack.ExtType(code, data)


def to_bytes(tree):
    """flax.serialization.to_bytes for a dict tree of numpy arrays."""
    return msgpack.packb(tree, default=_ext_pack, strict_types=True, use_bin_type=True)


def from_bytes(data):
    return msgpack.unpackb(data, ext_hook=_ext_unpack, raw=False)


def flatten(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        path = f"{prefix}/{k}" if prefix else k
        if isinstance(v, dict):
            out.update(flatten(v, path))
        else:
            out[path] = v
    return out


def unflatten(flat):
    tree = {}
    for path, v in flat.items():
        node = tree
        parts = path.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return tree


FUNCTIONS = {"relu"}


def _walk(layer, path, in_features, out):
    """Returns out_features; records (path, module) of every Dense in order."""
    kind = layer["module"]
    if kind in ("Compact", "Sequential"):
        counters = {}
        f = in_features
        for i, child in enumerate(layer["layers"]):
            ckind = child["module"]
            if kind == "Sequential":
                name = f"layers_{i}"
            elif ckind in FUNCTIONS:
                name = None
            elif "name" in child:
                name = child["name"]
            else:
                cls = child.get("class", ckind) if ckind == "Compact" else ckind
                n = counters.get(cls, 0)
                counters[cls] = n + 1
                name = f"{cls}_{n}"
            cpath = path if name is None else (f"{path}/{name}" if path else name)
            f = _walk(child, cpath, f, out)
        return f
    if kind == "Dense":
        out.append((path, layer, in_features))
        return layer["features"]
    if kind in FUNCTIONS:
        return in_features
    raise ValueError(f"unsupported module {kind}")


def model_variables(model, in_features):
    """{'params/Dense_0/kernel': (in, out), ...} for a model JSON dict."""
    dense = []
    _walk(model, "", in_features, dense)
    shapes = {}
    for path, layer, fin in dense:
        prefix = f"params/{path}/" if path else "params/"
        shapes[prefix + "kernel"] = (fin, layer["features"])
        if layer.get("use_bias", True):
            shapes[prefix + "bias"] = (layer["features"],)
    return shapes


def init_variables(model, in_features, seed=0, dtype=np.float32):
    """Deterministic lecun-normal-like kernels and small random biases."""
    rng = np.random.default_rng(seed)
    flat = {}
    for path, shape in model_variables(model, in_features).items():
        if path.endswith("kernel"):
            arr = rng.standard_normal(shape) / np.sqrt(shape[0])
        else:
            arr = 0.1 * rng.standard_normal(shape)
        flat[path] = arr.astype(dtype)
    return unflatten(flat)


def apply(model, variables, x):
    """The model's forward pass in float64."""
    params = flatten(variables)

    def run(layer, path, h):
        kind = layer["module"]
        if kind in ("Compact", "Sequential"):
            counters = {}
            for i, child in enumerate(layer["layers"]):
                ckind = child["module"]
                if kind == "Sequential":
                    name = f"layers_{i}"
                elif ckind in FUNCTIONS:
                    name = None
                elif "name" in child:
                    name = child["name"]
                else:
                    cls = child.get("class", ckind) if ckind == "Compact" else ckind
                    n = counters.get(cls, 0)
                    counters[cls] = n + 1
                    name = f"{cls}_{n}"
                cpath = path if name is None else (f"{path}/{name}" if path else name)
                h = run(child, cpath, h)
            return h
        if kind == "Dense":
            prefix = f"params/{path}/" if path else "params/"
            y = h @ np.asarray(params[prefix + "kernel"], dtype=np.float64)
            if layer.get("use_bias", True):
                y = y + np.asarray(params[prefix + "bias"], dtype=np.float64)
            return y
        if kind == "relu":
            return np.maximum(h, 0.0)
        raise ValueError(f"unsupported module {kind}")

    return run(model, "", np.asarray(x, dtype=np.float64))


def load_model(path):
    with open(path) as f:
        return json.load(f)
