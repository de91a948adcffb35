#!/usr/bin/env python3
"""Snapshots whose colour is known, for measuring type+colour on shopper-like photos
(BENCHMARKS.md, "Colour of snapshots").

Street photos name the garment's kind but not its colour, so they cannot tell whether a
snapshot's colour helps. These can: catalogue items of the held-out split (ids whose
BLAKE3 bucket is below 20, as lookalike's `split` and training/ leave out) cut out of
their white studio background and put, at 45-85 % of the frame and a random place, on a
procedural floor or fabric (bench/far_snapshots.py's textures), under uneven light, with
a little noise. Seeded: the same set on every run. Writes OUT/images/<id>.jpg and
OUT/queries.csv (`file,label,match_article_types,match_base_colours,item`: the item's
subCategory, its own articleType and baseColour, strict labels, and its id, which `eval`
leaves out of its results), for

    lookalike eval --index IDX44K --queries OUT/queries.csv

    training/.venv/bin/python bench/held_out_snapshots.py \
        --catalog ../shared/data/fashion-product-images-small --out target/bench/held-out-snaps
"""

import argparse
import csv
import os

import blake3
import numpy as np
from PIL import Image

from far_snapshots import texture

SIDE = 240
TOLERANCE = 10  # a pixel this close to the backdrop's colour in every channel is backdrop
GARMENTS = {"Apparel", "Footwear", "Accessories"}


def in_holdout(item_id):
    return int.from_bytes(blake3.blake3(item_id.encode()).digest()[:8], "little") % 100 < 20


def cut_out(photo):
    """The photo's alpha: not the region of the studio backdrop's colour (the median of
    the border, white or light grey) connected to the border."""
    a = np.asarray(photo).astype(np.int16)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    backdrop = np.median(border, axis=0)
    white = np.abs(a - backdrop).max(axis=2) <= TOLERANCE
    bg = np.zeros_like(white)
    bg[0], bg[-1], bg[:, 0], bg[:, -1] = white[0], white[-1], white[:, 0], white[:, -1]
    while True:
        grown = bg.copy()
        grown[1:] |= bg[:-1]
        grown[:-1] |= bg[1:]
        grown[:, 1:] |= bg[:, :-1]
        grown[:, :-1] |= bg[:, 1:]
        grown &= white
        if (grown == bg).all():
            break
        bg = grown
    return Image.fromarray(np.where(bg, 0, 255).astype(np.uint8))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", required=True, help="folder with images/ and styles.csv")
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=600)
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    with open(os.path.join(a.catalog, "styles.csv"), newline="", encoding="utf-8-sig") as f:
        rows = [
            r for r in csv.DictReader(f)
            if in_holdout(r["id"].strip())
            and r.get("masterCategory", "").strip() in GARMENTS
            and r.get("baseColour", "").strip()
            and os.path.exists(os.path.join(a.catalog, "images", r["id"].strip() + ".jpg"))
        ]
    rows.sort(key=lambda r: int(r["id"]))
    rng = np.random.default_rng(a.seed)
    rows = [rows[i] for i in sorted(rng.choice(len(rows), min(a.count, len(rows)), replace=False))]
    os.makedirs(os.path.join(a.out, "images"), exist_ok=True)
    with open(os.path.join(a.out, "queries.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "match_article_types", "match_base_colours", "item"])
        for r in rows:
            item = r["id"].strip()
            photo = Image.open(os.path.join(a.catalog, "images", item + ".jpg")).convert("RGB")
            alpha = cut_out(photo)
            frame = texture(rng).resize((SIDE * 4 // 3, SIDE)).crop((SIDE // 6, 0, SIDE // 6 + SIDE, SIDE))
            scale = SIDE * rng.uniform(0.45, 0.85) / max(photo.size)
            size = (max(1, round(photo.width * scale)), max(1, round(photo.height * scale)))
            photo, alpha = photo.resize(size, Image.BICUBIC), alpha.resize(size, Image.BILINEAR)
            frame.paste(photo, (int(rng.integers(0, SIDE - size[0] + 1)), int(rng.integers(0, SIDE - size[1] + 1))), alpha)
            # Uneven light and a little sensor noise, as at home.
            yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE - 0.5
            light = 1 + rng.uniform(-0.25, 0.25) * xx + rng.uniform(-0.25, 0.25) * yy
            x = np.asarray(frame, np.float32) * light[..., None] + rng.normal(0, 3, (SIDE, SIDE, 3))
            Image.fromarray(x.clip(0, 255).astype(np.uint8)).save(os.path.join(a.out, "images", item + ".jpg"), quality=90)
            w.writerow([item + ".jpg", r.get("subCategory", "").strip(), r["articleType"].strip(), r["baseColour"].strip(), item])
    print(f"{len(rows)} held-out snapshots in {a.out}")


if __name__ == "__main__":
    main()
