"""Start a run from a model lookalike already ships (`train.py --init models/NAME.onnx`).

An exported model has its batch norms folded into its convolutions (export.py), so its
weights cannot be loaded as they are: training re-normalises each layer by the batch's
statistics, and a folded layer would lose its scale. Each trainable convolution takes the
folded weight; its batch norm is set so that it computes exactly what the folded layer
computed (`y = x + bias`) while holding the statistics of real inputs:

    running_mean = m, running_var = v   (of the convolution's output on calibration photos)
    weight = sqrt(v + eps), bias = m + folded_bias

In eval mode that is `(x - m) / sqrt(v + eps) * sqrt(v + eps) + m + b = x + b`; in training
mode the batch's statistics stand close to (m, v), so the first steps start from the shipped
network rather than from a rescaled one. Frozen layers (stem and first blocks) stay
ImageNet's, as they were in the shipped run. The heads (embedding, cosine proxies, mask)
are copied; the proxies come back from the exported `proxies.T * scale` matrices.
"""

import json
import os

import numpy as np
import torch

import lite0


def _initializers(onnx_path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(onnx_path)
    return {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer}  # writable


def vocab_of(onnx_path):
    """The class lists of the model beside its .onnx (NAME.heads.json)."""
    heads_path = onnx_path[: -len(".onnx")] + ".heads.json"
    with open(heads_path) as f:
        heads = json.load(f)["heads"]
    by_column = {h["column"]: list(h["classes"]) for h in heads}
    return {"types": by_column["articleType"], "colours": by_column.get("baseColour", [])}


def conv_bn_pairs(model):
    """(exported name, conv module, bn module) of every conv + batch norm pair."""
    pairs = [("stem", model._conv_stem, model._bn0)]
    for i, b in enumerate(model._blocks):
        n = f"blocks.{i}"
        if b.expand:
            pairs.append((n + ".expand", b._expand_conv, b._bn0))
        pairs.append((n + ".depthwise", b._depthwise_conv, b._bn1))
        pairs.append((n + ".project", b._project_conv, b._bn2))
    pairs.append(("head", model._conv_head, model._bn1))
    return pairs


@torch.no_grad()
def load_exported(model, onnx_path, scale, calibration):
    """Copy the exported network into `model` (a FashionNet of the same shape), with batch
    norms re-expanded on `calibration` (a list of float image batches in [0, 1]; None: left
    folded, for measuring in eval mode only)."""
    import data

    init = _initializers(onnx_path)
    # Frozen layers (stem, first blocks) keep ImageNet's weights, as in the shipped run.
    frozen = {id(m) for part in model.frozen for m in part.modules()}
    trainable = [(n, c, bn) for n, c, bn in conv_bn_pairs(model) if id(c) not in frozen]
    for name, c, bn in trainable:
        w, b = init[name + ".weight"], init[name + ".bias"]
        if tuple(w.shape) != tuple(c.weight.shape):
            raise SystemExit(f"{onnx_path}: {name} has shape {w.shape}, the network {tuple(c.weight.shape)}")
        c.weight.copy_(torch.from_numpy(w))
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.fill_(1.0)
        bn.bias.copy_(torch.from_numpy(b))
    model.embed.weight.copy_(torch.from_numpy(init["embed.weight"]))
    model.embed.bias.copy_(torch.from_numpy(init["embed.bias"]))
    model.type_proxies.copy_(torch.from_numpy(init["type_proxies.scaled"].T / scale))
    if "colour_proxies.scaled" in init:
        model.colour_proxies.copy_(torch.from_numpy(init["colour_proxies.scaled"].T / scale))
    model.mask_head.weight.copy_(torch.from_numpy(init["mask.weight"]))
    model.mask_head.bias.copy_(torch.from_numpy(init["mask.bias"]))

    if calibration is None:  # measuring only: the folded layers as they are (eval mode)
        return len(trainable)
    # The statistics of each trainable convolution's output on real photos.
    sums = {}

    def hook(name):
        def f(module, inputs, output):
            x = output.detach().double()
            s = sums.setdefault(name, [0, 0.0, 0.0])
            s[0] += x.shape[0] * x.shape[2] * x.shape[3]
            s[1] = s[1] + x.sum(dim=(0, 2, 3))
            s[2] = s[2] + (x * x).sum(dim=(0, 2, 3))
        return f

    handles = [c.register_forward_hook(hook(n)) for n, c, _ in trainable]
    model.eval()
    for x in calibration:
        model(data.normalise(x).contiguous(memory_format=torch.channels_last))
    for h in handles:
        h.remove()
    for name, c, bn in trainable:
        n, s1, s2 = sums[name]
        m = s1 / n
        v = (s2 / n - m * m).clamp(min=1e-6)
        b = bn.bias.clone()
        bn.running_mean.copy_(m.float())
        bn.running_var.copy_(v.float())
        bn.weight.copy_(torch.sqrt(v + bn.eps).float())
        bn.bias.copy_((m + b.double()).float())
    return len(trainable)


def check_against_onnx(model, onnx_path, size=160, tol=2e-3):
    """The loaded network computes the exported one's embedding (max abs difference)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
    got = sess.run(["embedding"], {"input": x})[0]
    model.eval()
    with torch.no_grad():
        want = model(torch.from_numpy(x))[0].numpy()
    d = float(np.abs(got - want).max())
    if d > tol:
        raise SystemExit(f"{os.path.basename(onnx_path)} loaded with a difference of {d:.2e} (> {tol})")
    return d
