#!/usr/bin/env python3
"""An independent forward pass of an exported longnet model, in numpy, from the files of
`longnet export` alone: config.json, model.safetensors (read with the safetensors package) and
sample.safetensors (`--sample-tokens N`: tokens and longnet's logits for them).

  reference_forward.py EXPORT_DIR [--tol 1e-4]

Covers dense causal attention with model.norm: pre, layernorm or rmsnorm, gelu or swiglu, rope
or no positions, biases or not, grouped-query attention. Checks that the file holds exactly the
tensors those settings name, with their shapes, then that its logits equal longnet's to --tol.
Exit 1 on a difference."""
import argparse
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file

EPS = 1e-5


def fail(why):
    print("FAIL", why)
    sys.exit(1)


def expected_shapes(m):
    C, V, H = m["d_model"], m["vocab_size"], m["n_heads"]
    G = m["n_kv_heads"] or H
    D = C // H
    F = m["d_ff"] or (4 * C if m["mlp"] == "gelu" else (8 * C // 3 + 63) // 64 * 64)
    fc1 = 2 * F if m["mlp"] == "swiglu" else F
    shapes = {"embed.weight": (V, C), "norm.weight": (C,)}
    if m["bias"] and m["norm_type"] == "layernorm":
        shapes["norm.bias"] = (C,)
    for i in range(m["n_layers"]):
        b = f"blocks.{i}."
        for n in ("norm1", "norm2"):
            shapes[b + n + ".weight"] = (C,)
            if m["bias"] and m["norm_type"] == "layernorm":
                shapes[b + n + ".bias"] = (C,)
        layers = {"attn.qkv": ((H + 2 * G) * D, C), "attn.out": (C, C), "mlp.fc1": (fc1, C), "mlp.fc2": (C, F)}
        for n, shape in layers.items():
            shapes[b + n + ".weight"] = shape
            if m["bias"]:
                shapes[b + n + ".bias"] = (shape[0],)
    return shapes, F


def norm(x, w, b, kind):
    if kind == "rmsnorm":
        return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + EPS) * w
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + EPS) * w
    return y + b if b is not None else y


def linear(x, W, b):
    y = x @ W.T
    return y + b if b is not None else y


erf = np.vectorize(math.erf)


def rope(x, theta):
    # x [H, T, D]: pairs (i, i + D/2) turn by t * theta^(-2i/D).
    H, T, D = x.shape
    inv = theta ** (-np.arange(0, D, 2, dtype=np.float64) / D)
    ang = np.outer(np.arange(T, dtype=np.float64), np.concatenate([inv, inv]))
    rot = np.concatenate([-x[..., D // 2:], x[..., : D // 2]], -1)
    return x * np.cos(ang) + rot * np.sin(ang)


def forward(w, m, tokens, F):
    C, H = m["d_model"], m["n_heads"]
    G = m["n_kv_heads"] or H
    D = C // H
    get = lambda name: w.get(name)
    x = w["embed.weight"][tokens].astype(np.float64)  # [T, C]
    T = x.shape[0]
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    scale = m.get("softmax_scale") or 1.0 / math.sqrt(D)
    for i in range(m["n_layers"]):
        b = f"blocks.{i}."
        h = norm(x, w[b + "norm1.weight"], get(b + "norm1.bias"), m["norm_type"])
        qkv = linear(h, w[b + "attn.qkv.weight"], get(b + "attn.qkv.bias"))
        q = qkv[:, : H * D].reshape(T, H, D).transpose(1, 0, 2)
        k = qkv[:, H * D : (H + G) * D].reshape(T, G, D).transpose(1, 0, 2)
        v = qkv[:, (H + G) * D :].reshape(T, G, D).transpose(1, 0, 2)
        if m["pos"] == "rope":
            q, k = rope(q, m["rope_theta"]), rope(k, m["rope_theta"])
        k, v = np.repeat(k, H // G, 0), np.repeat(v, H // G, 0)
        s = q @ k.transpose(0, 2, 1) * scale
        s[:, mask] = -np.inf
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        a = (p @ v).transpose(1, 0, 2).reshape(T, C)
        x = x + linear(a, w[b + "attn.out.weight"], get(b + "attn.out.bias"))
        h = norm(x, w[b + "norm2.weight"], get(b + "norm2.bias"), m["norm_type"])
        u = linear(h, w[b + "mlp.fc1.weight"], get(b + "mlp.fc1.bias"))
        if m["mlp"] == "swiglu":
            g, up = u[:, :F], u[:, F:]
            u = g / (1 + np.exp(-g)) * up
        else:
            u = 0.5 * u * (1 + erf(u / math.sqrt(2)))
        x = x + linear(u, w[b + "mlp.fc2.weight"], get(b + "mlp.fc2.bias"))
    x = norm(x, w["norm.weight"], get("norm.bias"), m["norm_type"])
    return x @ w["embed.weight"].T.astype(np.float64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    with open(os.path.join(args.export_dir, "config.json")) as f:
        config = json.load(f)
    m = dict(config["model"])
    m["softmax_scale"] = config["attention"].get("softmax_scale", 0)
    if config["attention"]["kind"] != "dense" or m["norm"] != "pre" or m["pos"] not in ("rope", "none"):
        fail(f"the reference covers dense attention, model.norm pre and rope or no positions; this export has "
             f"{config['attention']['kind']}, {m['norm']}, {m['pos']}")
    if m.get("document_mask"):
        fail("the reference attends over the whole sequence; this export has model.document_mask: true "
             "(each document attends only to itself)")
    w = load_file(os.path.join(args.export_dir, "model.safetensors"))
    shapes, F = expected_shapes(m)
    got = {k: tuple(v.shape) for k, v in w.items()}
    if got != shapes:
        fail(f"tensors differ from the config's: missing {sorted(set(shapes) - set(got))[:3]}, "
             f"extra {sorted(set(got) - set(shapes))[:3]}, "
             f"other shape {[k for k in shapes if k in got and got[k] != shapes[k]][:3]}")
    if any(v.dtype != np.float32 for v in w.values()):
        fail("a tensor that is not float32")
    print(f"ok {len(w)} tensors, names and shapes as config.json says, float32")
    sample = load_file(os.path.join(args.export_dir, "sample.safetensors"))
    tokens, want = sample["tokens"][0], sample["logits"][0]
    logits = forward(w, m, tokens, F)
    diff = float(np.abs(logits - want).max())
    if not diff <= args.tol:
        fail(f"logits differ from longnet's by {diff:.3g} (tolerance {args.tol:g})")
    print(f"ok logits of {len(tokens)} tokens equal longnet's: max difference {diff:.2e} (tolerance {args.tol:g})")


if __name__ == "__main__":
    main()
