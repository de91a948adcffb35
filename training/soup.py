#!/usr/bin/env python3
"""Average exported fashion models weight by weight (a "model soup", WiSE-FT style).

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

With several --b (each with its --run, in order), A and every B get equal shares:
`--b r4 --b r5` averages r3, r4 and r5 in thirds (`RECIPE=r5 training/run.sh`).
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def weighted(weights, arrays):
    """sum(w * a) in float64, from the first term (not from 0, which would turn -0.0 into 0.0
    and the two-model soup's bytes with it)."""
    z = weights[0] * arrays[0].astype(np.float64)
    for w, a in zip(weights[1:], arrays[1:]):
        z = z + w * a.astype(np.float64)
    return z


def average(a_path, b_paths, weights, name):
    """A's graph with every float tensor the weighted sum of A's and each B's (weights: A's
    first, summing to 1)."""
    import export
    import onnx
    from onnx import numpy_helper

    a = onnx.load(a_path + ".onnx")
    names = {t.name for t in a.graph.initializer}
    bs = []
    for b_path in b_paths:
        b = {t.name: numpy_helper.to_array(t) for t in onnx.load(b_path + ".onnx").graph.initializer}
        if names != set(b):
            raise SystemExit(f"{a_path}.onnx and {b_path}.onnx are not the same network")
        bs.append(b)
    for t in a.graph.initializer:
        x = numpy_helper.to_array(t)
        ys = [b[t.name] for b in bs]
        for y in ys:
            if x.shape != y.shape:
                raise SystemExit(f"{t.name}: shape {x.shape} against {y.shape}")
        if x.dtype.kind != "f" or x.ndim == 0:
            continue  # constants (clip bounds, axes, eps) are the same in all
        z = weighted(weights, [x] + ys)
        if t.name.endswith(".scaled"):
            # proxies.T * scale: each class's column back to the length it had (the scale).
            z = z / np.linalg.norm(z, axis=0, keepdims=True) * np.linalg.norm(x, axis=0, keepdims=True)
        t.CopyFrom(numpy_helper.from_array(z.astype(x.dtype), t.name))
    a.graph.name = name
    heads = []
    for path in [a_path] + list(b_paths):
        with open(path + ".heads.json") as f:
            heads.append(json.load(f))
    ha = heads[0]
    if any(len(hb["heads"]) != len(ha["heads"]) for hb in heads[1:]):
        raise SystemExit("the models have different class heads")
    for i, h in enumerate(ha["heads"]):
        others = [hb["heads"][i] for hb in heads[1:]]
        if any(g["classes"] != h["classes"] for g in others):
            raise SystemExit(f"the {h['column']} classes differ")
        h["proxies"] = export.unit_proxies(weighted(weights, [np.array(g["proxies"]) for g in [h] + others]))
    ha["model"] = name
    return a, ha


SOUP_TWO = """# {name}: model card

Written by `training/soup.py` (nothing here is written by hand). **{name} is the average,
weight by weight, of two exported models**: `{a}` and `{b}`, the second fine-tuned from the
first (the run whose card follows). Every convolution (batch norms folded), the embedding
layer and the mask head are {wa:g} x the first + {wb:g} x the second; the class proxies are
averaged and renormalised. Averaging a model with its own fine-tune (a "model soup",
WiSE-FT) keeps what each learnt: on the street photos no training saw, it beats both
(BENCHMARKS.md, "r4 and the soup"). Reproduce with `training/run.sh` (trains the
fine-tune, exports it into its run folder, then averages).

"""


SOUP = """# {name}: model card

Written by `training/soup.py` (nothing here is written by hand). **{name} is the average,
weight by weight, of {n} exported models**: {models}, each after the first fine-tuned from
it (the runs whose cards follow). Every convolution (batch norms folded), the embedding
layer and the mask head are {shares}; the class proxies are averaged and renormalised.
Averaging a model with its own fine-tunes (a "model soup", WiSE-FT) keeps what each
learnt (BENCHMARKS.md, "r4 and the soup", "r5: hierarchical heads, and three in the
soup"). `RECIPE=r5 training/run.sh` makes the three-model soup (trains the fine-tunes,
exports each into its run folder, then averages).

"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="the first model, without .onnx (e.g. models/lookalike-fashion-3)")
    ap.add_argument("--b", required=True, action="append",
                    help="a model fine-tuned from the first (once per fine-tune)")
    ap.add_argument("--run", required=True, action="append",
                    help="each --b's training run, in the same order (their cards)")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "models"))
    ap.add_argument("--name", default="lookalike-fashion-4")
    ap.add_argument("--alpha", type=float, default=None,
                    help="with one --b, its share (default: every model the same share, the plain average)")
    args = ap.parse_args(argv)
    if len(args.run) != len(args.b):
        raise SystemExit(f"{len(args.b)} --b but {len(args.run)} --run: one run per fine-tune")
    if args.alpha is not None and len(args.b) != 1:
        raise SystemExit("--alpha goes with one --b; several are averaged in equal shares")
    if args.alpha is not None and not 0.0 <= args.alpha <= 1.0:
        raise SystemExit(f"--alpha {args.alpha} is not in 0..1")
    n = len(args.b) + 1
    weights = [1 - args.alpha, args.alpha] if args.alpha is not None else [1 / n] * n
    import export

    model, heads = average(args.a, args.b, weights, args.name)
    names = [os.path.basename(p) for p in [args.a] + args.b]
    if n == 2:  # the card lookalike-fashion-4 shipped with, word for word
        card = SOUP_TWO.format(name=args.name, a=names[0], b=names[1], wa=weights[0], wb=weights[1])
    else:
        card = SOUP.format(name=args.name, n=n, models=", ".join(f"`{m}`" for m in names),
                           shares=" + ".join(f"{w:.4g} x {m}" for w, m in zip(weights, names)))
    for b, run in zip(args.b, args.run):
        _, ckpt = export.load(run)
        run_card = export.card(ckpt, args.name).split("\n", 2)[2]  # the run's card without its title
        card += ("## The fine-tune\n\n" if n == 2 else f"## The fine-tune {os.path.basename(b)}\n\n") + run_card
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
    print(f"{args.name}: " + " + ".join(f"{w:.4g} x {m}" for w, m in zip(weights, names))
          + f"; onnx sha256 {hashlib.sha256(open(onnx_path, 'rb').read()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
