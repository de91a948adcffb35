#!/usr/bin/env python3
"""Verify an EfficientNet-Lite ONNX model produced by tools/convert_efficientnet_lite.py.

(a) Numerical equivalence: an independent numpy reference forward pass computed
    directly from the raw .pth state_dict (float64, batch-norm NOT folded, TF "SAME"
    padding via np.pad, im2col + matmul convolutions, its own depthwise convolution,
    architecture taken from the published EfficientNet-Lite block table and checked
    against the weight shapes) is compared with onnxruntime's output.
(b) ImageNet top-1 with onnxruntime on scikit-image's bundled sample photos:
    coffee.png must be class 967 "espresso"; chelsea.png (a cat) must be one of
    281 tabby / 282 tiger cat / 285 Egyptian cat.

Preprocessing (both checks): decode, convert to RGB, centre square crop (side =
min(w, h), left = (w - side) // 2, top = (h - side) // 2), resize to S x S with PIL
Image.BICUBIC, float32 (x - 127) / 128, HWC -> CHW, add batch dim.

Exits non-zero on any failure.

Usage:
    python tools/verify_model.py --variant lite0 --model models/efficientnet-lite0.onnx
    python tools/verify_model.py --variant lite2 --model models/efficientnet-lite2.onnx
    # also (re)write the Rust test fixture's expected embeddings (lite0 only):
    python tools/verify_model.py --variant lite0 --model models/efficientnet-lite0.onnx \
        --write-expected tests/fixtures/imagenet/expected.json
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
from PIL import Image

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_efficientnet_lite import default_pth, load_legacy_state_dict  # noqa: E402  (checkpoint reader only)

# (width multiplier, depth multiplier, resolution) -- EfficientNet-Lite paper / TF repo.
LITE_PARAMS = {"lite0": (1.0, 1.0, 224), "lite1": (1.0, 1.1, 240), "lite2": (1.1, 1.2, 260),
               "lite3": (1.2, 1.4, 280), "lite4": (1.4, 1.8, 300)}
# EfficientNet-B0 base block args: (repeats, kernel, stride, expand ratio, in, out).
BASE_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
               (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
EPS = 1e-3

LABELS = {967: "espresso", 281: "tabby", 282: "tiger cat", 285: "Egyptian cat", 283: "Persian cat",
          284: "Siamese cat", 287: "lynx", 504: "coffee mug", 968: "cup"}
CAT_CLASSES = [281, 282, 285]


def round_filters(c, w):
    if w == 1.0:
        return c
    c *= w
    new = max(8, int(c + 4) // 8 * 8)
    if new < 0.9 * c:
        new += 8
    return int(new)


def lite_blocks(variant):
    """Per-block (kernel, stride, expand, cin, cout) for a Lite variant (stem/head fixed,
    first and last stage repeats not scaled, no squeeze-excite)."""
    w, d, _ = LITE_PARAMS[variant]
    out = []
    for i, (r, k, s, e, ci, co) in enumerate(BASE_STAGES):
        ci, co = (32 if i == 0 else round_filters(ci, w)), round_filters(co, w)
        if 0 < i < len(BASE_STAGES) - 1:
            r = int(math.ceil(d * r))
        for j in range(r):
            out.append((k, s if j == 0 else 1, e, ci if j == 0 else co, co))
    return out


# ---------------------------------------------------------------- numpy reference (NHWC, float64)

def pad_same(x, k, s):
    """TF SAME padding of an NHWC tensor: extra pixel at the bottom / right."""
    def one(n):
        out = -(-n // s)
        tot = max((out - 1) * s + k - n, 0)
        return tot // 2, tot - tot // 2
    return np.pad(x, ((0, 0), one(x.shape[1]), one(x.shape[2]), (0, 0)))


def conv(x, w, s):
    """Dense conv, NHWC input, torch OIHW weight, SAME padding, via im2col + matmul."""
    o, i, k, _ = w.shape
    n, h, wd, c = x.shape
    assert c == i
    if k == 1 and s == 1:
        return x @ w.reshape(o, i).T
    xp = pad_same(x, k, s)
    ho, wo = -(-h // s), -(-wd // s)
    cols = np.empty((n, ho, wo, k, k, c), x.dtype)
    for dy in range(k):
        for dx in range(k):
            cols[:, :, :, dy, dx, :] = xp[:, dy:dy + s * (ho - 1) + 1:s, dx:dx + s * (wo - 1) + 1:s, :]
    wm = w.transpose(2, 3, 1, 0).reshape(k * k * i, o)  # (ky, kx, cin) x cout
    return (cols.reshape(n * ho * wo, k * k * c) @ wm).reshape(n, ho, wo, o)


def depthwise(x, w, s):
    """Depthwise conv, NHWC input, torch (C, 1, k, k) weight, SAME padding, tap by tap."""
    c, _, k, _ = w.shape
    n, h, wd, _ = x.shape
    xp = pad_same(x, k, s)
    ho, wo = -(-h // s), -(-wd // s)
    out = np.zeros((n, ho, wo, c), x.dtype)
    for dy in range(k):
        for dx in range(k):
            out += xp[:, dy:dy + s * (ho - 1) + 1:s, dx:dx + s * (wo - 1) + 1:s, :] * w[:, 0, dy, dx]
    return out


def bn(x, sd, p):
    return (x - sd[p + ".running_mean"]) / np.sqrt(sd[p + ".running_var"] + EPS) * sd[p + ".weight"] + sd[p + ".bias"]


def relu6(x):
    return np.minimum(np.maximum(x, 0.0), 6.0)


def reference_forward(sd, variant, x_nchw):
    """Returns (embedding, logits) in float64."""
    sd = {k: v.astype(np.float64) for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    x = x_nchw.astype(np.float64).transpose(0, 2, 3, 1)
    x = relu6(bn(conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    blocks = lite_blocks(variant)
    nblocks = len({k.split(".")[1] for k in sd if k.startswith("_blocks.")})
    if nblocks != len(blocks):
        raise SystemExit(f"checkpoint has {nblocks} blocks, {variant} table says {len(blocks)}")
    for i, (k, s, e, ci, co) in enumerate(blocks):
        p = f"_blocks.{i}."
        inp = x
        if e != 1:
            we = sd[p + "_expand_conv.weight"]
            assert we.shape == (ci * e, ci, 1, 1), (p, we.shape)
            x = relu6(bn(conv(x, we, 1), sd, p + "_bn0"))
        else:
            assert p + "_expand_conv.weight" not in sd
        wd = sd[p + "_depthwise_conv.weight"]
        assert wd.shape == (ci * e, 1, k, k), (p, wd.shape)
        x = relu6(bn(depthwise(x, wd, s), sd, p + "_bn1"))
        wp = sd[p + "_project_conv.weight"]
        assert wp.shape == (co, ci * e, 1, 1), (p, wp.shape)
        x = bn(conv(x, wp, 1), sd, p + "_bn2")
        if s == 1 and ci == co:
            x = x + inp
    x = relu6(bn(conv(x, sd["_conv_head.weight"], 1), sd, "_bn1"))
    emb = x.mean(axis=(1, 2))
    logits = emb @ sd["_fc.weight"].T + sd["_fc.bias"]
    return emb, logits


# ---------------------------------------------------------------- images

def skimage_data_dir():
    import importlib.util
    spec = importlib.util.find_spec("skimage")
    if spec is None:
        raise SystemExit("scikit-image is not installed (pip install scikit-image) -- it provides the sample photos")
    return os.path.join(os.path.dirname(spec.origin), "data")


def preprocess(path, size):
    """decode -> RGB -> centre square crop -> PIL BICUBIC resize to size -> (x-127)/128 -> NCHW."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    x = (np.asarray(im, dtype=np.float32) - 127.0) / 128.0
    return x.transpose(2, 0, 1)[None]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", required=True, choices=sorted(LITE_PARAMS))
    ap.add_argument("--model", required=True)
    ap.add_argument("--pth", help="checkpoint (default: the one inside the installed pip package)")
    ap.add_argument("--images", nargs="*", help="photos to compare on (default: skimage coffee, chelsea, astronaut, rocket)")
    ap.add_argument("--write-expected", metavar="JSON", help="write the fixture expected.json (lite0 embeddings)")
    args = ap.parse_args(argv)

    import onnxruntime as ort

    size = LITE_PARAMS[args.variant][2]
    data = skimage_data_dir()
    coffee, chelsea = os.path.join(data, "coffee.png"), os.path.join(data, "chelsea.png")
    images = args.images or [coffee, chelsea, os.path.join(data, "astronaut.png"), os.path.join(data, "rocket.jpg")]

    sd = load_legacy_state_dict(args.pth or default_pth(args.variant))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1  # deterministic reduction order
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    print(f"model {args.model}: input {inp.name} {inp.shape}, outputs "
          + ", ".join(f"{o.name} {o.shape}" for o in sess.get_outputs()))
    failures = []
    if inp.shape[1:] != [3, size, size]:
        failures.append(f"input shape {inp.shape} != [batch, 3, {size}, {size}]")

    # (a) reference vs onnxruntime
    worst_diff, worst_logit_diff, worst_cos = 0.0, 0.0, 1.0
    for path in images:
        x = preprocess(path, size)
        t0 = time.time()
        ref_emb, ref_logits = reference_forward(sd, args.variant, x)
        dt = time.time() - t0
        emb, logits = sess.run(["embedding", "logits"], {"input": x})
        diff = float(np.abs(emb.astype(np.float64) - ref_emb).max())
        ldiff = float(np.abs(logits.astype(np.float64) - ref_logits).max())
        e = emb[0].astype(np.float64)
        cos = float((e @ ref_emb[0]) / (np.linalg.norm(e) * np.linalg.norm(ref_emb[0])))
        same_top1 = int(np.argmax(logits[0])) == int(np.argmax(ref_logits[0]))
        print(f"  {os.path.basename(path):14s} embedding max|diff| {diff:.3e}  cosine {cos:.9f} (1-cos {1 - cos:.1e})  "
              f"logits max|diff| {ldiff:.3e}  top1 ort/ref {np.argmax(logits[0])}/{np.argmax(ref_logits[0])}  "
              f"(reference {dt:.1f}s, |emb| {np.linalg.norm(ref_emb[0]):.3f})")
        worst_diff, worst_logit_diff, worst_cos = max(worst_diff, diff), max(worst_logit_diff, ldiff), min(worst_cos, cos)
        if not (cos > 0.99999):
            failures.append(f"{path}: cosine {cos} <= 0.99999")
        if not same_top1:
            failures.append(f"{path}: top-1 differs between onnxruntime and reference")
    print(f"(a) worst over {len(images)} images: embedding max|diff| {worst_diff:.3e}, "
          f"logits max|diff| {worst_logit_diff:.3e}, min cosine {worst_cos:.9f} (1-cos {1 - worst_cos:.1e})")

    # (b) ImageNet top-1
    results = {}
    for path, ok_set in [(coffee, [967]), (chelsea, CAT_CLASSES)]:
        x = preprocess(path, size)
        emb, logits = sess.run(["embedding", "logits"], {"input": x})
        z = logits[0].astype(np.float64)
        prob = np.exp(z - z.max())
        prob /= prob.sum()
        top5 = np.argsort(-z)[:5]
        top1 = int(top5[0])
        name = os.path.basename(path)
        desc = ", ".join(f"{c} {LABELS.get(int(c), '')} {prob[c]:.3f}".replace("  ", " ") for c in top5)
        verdict = "OK" if top1 in ok_set else "FAIL"
        print(f"(b) {name:12s} top-5: {desc}  -> {verdict} (want {ok_set})")
        if top1 not in ok_set:
            failures.append(f"{name}: top-1 {top1}, want one of {ok_set}")
        results[name] = emb[0]

    if args.write_expected:
        if args.variant != "lite0":
            failures.append("--write-expected stores embedding_lite0; use --variant lite0")
        else:
            def fl(v):
                return [float(f"{float(a):.7g}") for a in v]
            exp = {
                "coffee.png": {"top1": 967, "label": "espresso", "embedding_lite0": fl(results["coffee.png"])},
                "chelsea.png": {"top1_any_of": CAT_CLASSES, "embedding_lite0": fl(results["chelsea.png"])},
            }
            os.makedirs(os.path.dirname(os.path.abspath(args.write_expected)), exist_ok=True)
            # pretty at the top level, one line per embedding array
            lines = ["{"]
            for i, (img, entry) in enumerate(exp.items()):
                fields = [f"    {json.dumps(k)}: {json.dumps(val)}" for k, val in entry.items()]
                lines.append(f"  {json.dumps(img)}: {{\n" + ",\n".join(fields) + "\n  }" + ("," if i < len(exp) - 1 else ""))
            lines.append("}")
            with open(args.write_expected, "w") as f:
                f.write("\n".join(lines) + "\n")
            assert json.load(open(args.write_expected)) == exp
            print(f"wrote {args.write_expected}")

    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
