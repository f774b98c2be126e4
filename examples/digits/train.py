#!/usr/bin/python3
"""Trains two small digit classifiers with torch and exports them for flaxdrm.

sklearn's load_digits (1797 8x8 images, 0..16) scaled to [0, 1] as NHWC
float32 [N, 8, 8, 1]; a stratified 20 % held-out split (random_state 0).

  cnn: Conv(16, 3x3, SAME) -> BatchNorm -> relu -> avg_pool 2x2
       -> Conv(32, 3x3, SAME) -> BatchNorm -> relu -> avg_pool 2x2
       -> flatten -> Dense(64) -> relu -> Dense(10)
  mlp: flatten -> Dense(128) -> relu -> Dense(10)   (an nn.Sequential)

The torch models compute in NHWC order where it matters (the activations
are permuted back to NHWC before flatten) so the exported Dense kernels
match Flax's x.reshape((x.shape[0], -1)) on NHWC.

Writes, next to this script:
  cnn.json, mlp.json                  the flaxdrm/Flax model descriptions
  cnn.msgpack, mlp.msgpack            Flax variables (flax.serialization.to_bytes
                                      layout: params and batch_stats trees)
  test_x.npy (float32 [N, 8, 8, 1]), test_y.npy (int32 [N])
  expected.json                       held-out accuracy measured here (eval mode)
  expected_logits_cnn.npy, expected_logits_mlp.npy   torch's held-out logits

Run with Debian's python3 (python3-torch, python3-sklearn, python3-msgpack):
  /usr/bin/python3 examples/digits/train.py
"""
import json
import os
import sys

import msgpack
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0
EPOCHS = {"cnn": 30, "mlp": 60}


def to_bytes(tree):
    """flax.serialization.to_bytes for a dict tree of float32 numpy arrays."""

    def ext(x):
        if isinstance(x, np.ndarray):
            x = np.ascontiguousarray(x)
            payload = msgpack.packb([list(x.shape), x.dtype.name, x.tobytes("C")], use_bin_type=True)
            return msgpack.ExtType(1, payload)
        raise TypeError(type(x))

    return msgpack.packb(tree, default=ext, strict_types=True, use_bin_type=True)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(16, eps=1e-5, momentum=0.01)  # Flax momentum 0.99
        self.conv1 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(32, eps=1e-5, momentum=0.01)
        self.dense0 = nn.Linear(2 * 2 * 32, 64)
        self.dense1 = nn.Linear(64, 10)

    def forward(self, x):  # x: NHWC
        x = x.permute(0, 3, 1, 2)
        x = F.avg_pool2d(F.relu(self.bn0(self.conv0(x))), 2, 2)
        x = F.avg_pool2d(F.relu(self.bn1(self.conv1(x))), 2, 2)
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # flatten NHWC, as Flax
        return self.dense1(F.relu(self.dense0(x)))

    def variables(self):
        def conv(c):  # OIHW -> HWIO
            return {"kernel": c.weight.detach().permute(2, 3, 1, 0).numpy(), "bias": c.bias.detach().numpy()}

        def dense(d):  # (out, in) -> (in, out)
            return {"kernel": d.weight.detach().t().numpy(), "bias": d.bias.detach().numpy()}

        def bn(b):
            return ({"scale": b.weight.detach().numpy(), "bias": b.bias.detach().numpy()},
                    {"mean": b.running_mean.numpy(), "var": b.running_var.numpy()})

        p0, s0 = bn(self.bn0)
        p1, s1 = bn(self.bn1)
        return {
            "params": {"Conv_0": conv(self.conv0), "BatchNorm_0": p0, "Conv_1": conv(self.conv1),
                       "BatchNorm_1": p1, "Dense_0": dense(self.dense0), "Dense_1": dense(self.dense1)},
            "batch_stats": {"BatchNorm_0": s0, "BatchNorm_1": s1},
        }


CNN_JSON = {
    "module": "Compact", "class": "CNN",
    "layers": [
        {"module": "Conv", "features": 16, "kernel_size": [3, 3], "padding": "SAME"},
        {"module": "BatchNorm", "use_running_average": True, "momentum": 0.99, "epsilon": 1e-5},
        {"module": "relu"},
        {"module": "avg_pool", "window_shape": [2, 2], "strides": [2, 2]},
        {"module": "Conv", "features": 32, "kernel_size": [3, 3]},
        {"module": "BatchNorm", "use_running_average": True},
        {"module": "relu"},
        {"module": "avg_pool", "window_shape": [2, 2], "strides": [2, 2]},
        {"module": "flatten"},
        {"module": "Dense", "features": 64},
        {"module": "relu"},
        {"module": "Dense", "features": 10},
    ],
}


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense0 = nn.Linear(64, 128)
        self.dense1 = nn.Linear(128, 10)

    def forward(self, x):
        return self.dense1(F.relu(self.dense0(x.reshape(x.shape[0], -1))))

    def variables(self):
        def dense(d):
            return {"kernel": d.weight.detach().t().numpy(), "bias": d.bias.detach().numpy()}

        # nn.Sequential([flatten, Dense, relu, Dense]): layers_1, layers_3
        return {"params": {"layers_1": dense(self.dense0), "layers_3": dense(self.dense1)}}


MLP_JSON = {
    "module": "Sequential",
    "layers": [
        {"module": "flatten"},
        {"module": "Dense", "features": 128},
        {"module": "relu"},
        {"module": "Dense", "features": 10},
    ],
}


def train(name, model, xtr, ytr, xte, yte):
    torch.manual_seed(SEED)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(SEED)
    n = xtr.shape[0]
    for epoch in range(EPOCHS[name]):
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        logits = model(xte)
    pred = logits.argmax(dim=1)
    correct = int((pred == yte).sum())
    acc = correct / len(yte)
    print(f"{name}: held-out accuracy {acc:.4f} ({correct}/{len(yte)}), final train loss {loss.item():.4f}")
    return logits.numpy().astype(np.float32), correct


def main():
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    np.random.seed(SEED)
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., None]  # NHWC [N, 8, 8, 1]
    y = digits.target.astype(np.int32)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    xtr_t, xte_t = torch.from_numpy(xtr), torch.from_numpy(xte)
    ytr_t, yte_t = torch.from_numpy(ytr).long(), torch.from_numpy(yte).long()

    expected = {"dataset": "sklearn load_digits, 8x8 NHWC float32 /16, stratified 20% held out (random_state 0)",
                "n_test": int(len(yte))}
    for name, ctor, spec in (("mlp", MLP, MLP_JSON), ("cnn", CNN, CNN_JSON)):
        torch.manual_seed(SEED)
        model = ctor()
        logits, correct = train(name, model, xtr_t, ytr_t, xte_t, yte_t)
        with open(os.path.join(HERE, f"{name}.msgpack"), "wb") as f:
            f.write(to_bytes(model.variables()))
        with open(os.path.join(HERE, f"{name}.json"), "w") as f:
            json.dump(spec, f, indent=2)
            f.write("\n")
        np.save(os.path.join(HERE, f"expected_logits_{name}.npy"), logits)
        expected[name] = {"correct": correct, "accuracy": correct / len(yte)}
    np.save(os.path.join(HERE, "test_x.npy"), np.ascontiguousarray(xte, dtype=np.float32))
    np.save(os.path.join(HERE, "test_y.npy"), yte.astype(np.int32))
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
