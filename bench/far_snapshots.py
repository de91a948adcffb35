#!/usr/bin/env python3
"""Far-away snapshots, for measuring garment localisation (BENCHMARKS.md, "Fashion model").

Each street photo of the test part (file names whose BLAKE3 hash falls below 30 %, as
lookalike's `split::query_in_test`: photos the model never trained on) is shrunk to
35-50 % of a 480x360 frame and put at a random place on a procedural floor or fabric
(wood grain, stripes, checks, mottled, plain): a shopper's photo taken from further away.
Seeded: the same set on every run. Writes OUT/images/<file> and OUT/queries.csv (the
rows of the test part, unchanged).

    bench/.venv/bin/python bench/far_snapshots.py --queries ../shared/data/street-photos/queries.csv --out target/bench/far
"""

import argparse
import csv
import os

import blake3
import numpy as np
from PIL import Image

W, H = 480, 360


def in_test(name):
    return int.from_bytes(blake3.blake3(name.encode()).digest()[:8], "little") % 100 < 30


def texture(rng):
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32) / W
    base = rng.uniform(40, 230, 3)
    kind = rng.integers(0, 5)
    if kind == 0:  # wood grain, boards
        a = rng.uniform(0, np.pi)
        u = xx * np.cos(a) + yy * np.sin(a)
        v = xx * np.sin(a) - yy * np.cos(a)
        tex = np.sin(u * rng.uniform(8, 40) + 3 * np.sin(v * rng.uniform(2, 6)))[..., None] * rng.uniform(10, 35)
        tex = tex + (np.floor(v * rng.uniform(3, 8)) % 2)[..., None] * rng.uniform(-20, 20)
    elif kind == 1:  # stripes
        u = xx if rng.random() < 0.5 else yy
        tex = (np.sin(u * rng.uniform(4, 30) * 2 * np.pi) > rng.uniform(-0.5, 0.5))[..., None] * (rng.uniform(40, 230, 3) - base)
    elif kind == 2:  # checks
        f1, f2 = rng.uniform(3, 16, 2)
        t = 0.5 * (np.sin(xx * f1 * 2 * np.pi) > 0) + 0.5 * (np.sin(yy * f2 * 2 * np.pi) > 0)
        tex = t[..., None] * (rng.uniform(40, 230, 3) - base)
    elif kind == 3:  # mottled
        small = rng.normal(0, 1, (H // 8, W // 8)).astype(np.float32)
        img = Image.fromarray(((small + 3) * 40).clip(0, 255).astype(np.uint8)).resize((W, H), Image.BICUBIC)
        tex = (np.asarray(img, np.float32)[..., None] - 120) * rng.uniform(0.2, 0.8)
    else:  # plain, a light gradient
        tex = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))[..., None] * rng.uniform(10, 60)
    return Image.fromarray(np.clip(base + tex, 0, 255).astype(np.uint8))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--images", help="default: images/ beside the queries CSV")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    images = a.images or os.path.join(os.path.dirname(a.queries), "images")
    with open(a.queries, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if in_test(r["file"])]
        fields = reader.fieldnames
    os.makedirs(os.path.join(a.out, "images"), exist_ok=True)
    rng = np.random.default_rng(a.seed)
    with open(os.path.join(a.out, "queries.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            photo = Image.open(os.path.join(images, r["file"])).convert("RGB")
            frame = texture(rng)
            share = rng.uniform(0.35, 0.5)
            scale = min(W * share / photo.width, H * share / photo.height)
            small = photo.resize((max(1, int(photo.width * scale)), max(1, int(photo.height * scale))), Image.BICUBIC)
            x = int(rng.integers(0, W - small.width))
            y = int(rng.integers(0, H - small.height))
            frame.paste(small, (x, y))
            frame.save(os.path.join(a.out, "images", r["file"]), quality=90)
            w.writerow(r)
    print(f"{len(rows)} far-away snapshots in {a.out}")


if __name__ == "__main__":
    main()
