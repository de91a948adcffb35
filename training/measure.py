#!/usr/bin/env python3
"""The training run's quick figures for an exported model (BENCHMARKS.md, "r4"):

    training/.venv/bin/python training/measure.py models/lookalike-fashion-3.onnx [...]

For each model: held-out P@5 by the embedding alone (articleType; articleType+baseColour on
the strict 46 labels and on colour families, data.COLOUR_FAMILIES), the class heads'
accuracy (type; colour strict and by family), and the 300 test street photos against the
held-out items, as train.py's end-of-epoch check computes them. One JSON line per model.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import data  # noqa: E402
import train  # noqa: E402
import warm  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="exported .onnx files (their .heads.json beside them)")
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--limit", type=int, default=0, help="held-out items to use (0: all)")
    args = ap.parse_args(argv)
    root = os.path.abspath(args.data)
    cat = data.Catalogue(os.path.join(root, "fashion-product-images-small"), os.path.join(HERE, "cache"))
    cfg = vars(train.parse_args([]))
    streets = {}  # the test street photos, read once per set of classes
    for path in args.models:
        vocab = warm.vocab_of(path)
        tidx = {t: i for i, t in enumerate(vocab["types"])}
        key = tuple(vocab["types"])
        if key not in streets:
            streets[key] = data.Snapshots(os.path.join(root, "street-photos"), None, tidx, "test")
        street_test = streets[key]
        model = train.build(cfg, len(vocab["types"]), len(vocab["colours"]), train.lite0_pth())
        warm.load_exported(model, path, cfg["scale"], None)
        warm.check_against_onnx(model, path)
        res = train.quick_eval(model, cat, vocab, street_test, cfg, args.limit)
        print(json.dumps({"model": os.path.basename(path), **res}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
