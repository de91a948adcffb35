#!/usr/bin/env python3
"""Average two exported fashion models weight by weight (a "model soup", WiSE-FT style).

    training/.venv/bin/python training/soup.py --a models/lookalike-fashion-3 \
        --b training/runs/r4/lookalike-fashion-r4 --run training/runs/r4 \
        --out models --name lookalike-fashion-4 [--alpha 0.5]

A and B are exported models of the same shape (NAME.onnx + NAME.heads.json; B fine-tuned
from A, as r4 is from r3, so that both lie in one basin and their average is a network of
its own). Every float tensor becomes (1 - alpha) * A + alpha * B: the convolutions (batch
norms already folded), the embedding layer, the mask head; class proxies are averaged and
renormalised (the heads are cosine classifiers). Writes NAME.onnx, NAME.heads.json and
NAME.card.md (B's run card, from --run's checkpoint, with the soup said first), and checks
the averaged graph with ONNX Runtime. alpha 0.5 is the plain average, not a value tuned on
any test set (BENCHMARKS.md, "r4 and the soup").
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def average(a_path, b_path, alpha, name):
    import export
    import onnx
    from onnx import numpy_helper

    a = onnx.load(a_path + ".onnx")
    b = {t.name: numpy_helper.to_array(t) for t in onnx.load(b_path + ".onnx").graph.initializer}
    names = {t.name for t in a.graph.initializer}
    if names != set(b):
        raise SystemExit(f"{a_path}.onnx and {b_path}.onnx are not the same network")
    for t in a.graph.initializer:
        x = numpy_helper.to_array(t)
        y = b[t.name]
        if x.shape != y.shape:
            raise SystemExit(f"{t.name}: shape {x.shape} against {y.shape}")
        if x.dtype.kind != "f" or x.ndim == 0:
            continue  # constants (clip bounds, axes, eps) are the same in both
        z = (1 - alpha) * x.astype(np.float64) + alpha * y.astype(np.float64)
        if t.name.endswith(".scaled"):
            # proxies.T * scale: each class's column back to the length it had (the scale).
            z = z / np.linalg.norm(z, axis=0, keepdims=True) * np.linalg.norm(x, axis=0, keepdims=True)
        t.CopyFrom(numpy_helper.from_array(z.astype(x.dtype), t.name))
    a.graph.name = name
    with open(a_path + ".heads.json") as f:
        ha = json.load(f)
    with open(b_path + ".heads.json") as f:
        hb = json.load(f)
    for h, g in zip(ha["heads"], hb["heads"], strict=True):
        if h["classes"] != g["classes"]:
            raise SystemExit(f"the {h['column']} classes differ")
        h["proxies"] = export.unit_proxies((1 - alpha) * np.array(h["proxies"]) + alpha * np.array(g["proxies"]))
    ha["model"] = name
    return a, ha


SOUP = """# {name}: model card

Written by `training/soup.py` (nothing here is written by hand). **{name} is the average,
weight by weight, of two exported models**: `{a}` and `{b}`, the second fine-tuned from the
first (the run whose card follows). Every convolution (batch norms folded), the embedding
layer and the mask head are {wa:g} x the first + {wb:g} x the second; the class proxies are
averaged and renormalised. Averaging a model with its own fine-tune (a "model soup",
WiSE-FT) keeps what each learnt: on the street photos no training saw, it beats both
(BENCHMARKS.md, "r4 and the soup"). Reproduce with `training/run.sh` (trains the
fine-tune, exports it into its run folder, then averages).

"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="the first model, without .onnx (e.g. models/lookalike-fashion-3)")
    ap.add_argument("--b", required=True, help="the second model, fine-tuned from the first")
    ap.add_argument("--run", required=True, help="the second model's training run (its card)")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "models"))
    ap.add_argument("--name", default="lookalike-fashion-4")
    ap.add_argument("--alpha", type=float, default=0.5, help="the second model's share (0.5: the plain average)")
    args = ap.parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        raise SystemExit(f"--alpha {args.alpha} is not in 0..1")
    import export

    model, heads = average(args.a, args.b, args.alpha, args.name)
    _, ckpt = export.load(args.run)
    card = SOUP.format(name=args.name, a=os.path.basename(args.a), b=os.path.basename(args.b),
                       wa=1 - args.alpha, wb=args.alpha)
    run_card = export.card(ckpt, args.name).split("\n", 2)[2]  # the run's card without its title
    card += "## The fine-tune\n\n" + run_card
    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, args.name + ".onnx")
    export.write_files([
        (onnx_path, model.SerializeToString(deterministic=True)),
        (os.path.join(args.out, args.name + ".heads.json"),
         (json.dumps(heads, separators=(",", ":")) + "\n").encode()),
        (os.path.join(args.out, args.name + ".card.md"), card.encode()),
    ])
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 160, 160)).astype(np.float32)
    e = sess.run(["embedding"], {"input": x})[0]
    if not np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4):
        raise SystemExit("the averaged model's embeddings are not unit vectors")
    print(f"{args.name}: {1 - args.alpha:g} x {os.path.basename(args.a)} + {args.alpha:g} x "
          f"{os.path.basename(args.b)}; onnx sha256 {hashlib.sha256(open(onnx_path, 'rb').read()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
