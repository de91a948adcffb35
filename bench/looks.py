#!/usr/bin/env python3
"""Looks whose garments are known, for measuring "shop the look" (finding every garment
of a photo, `lookalike search --all-garments`; BENCHMARKS.md, "Every garment in a photo").

Only catalogue items of the held-out split (`in_holdout`, as lookalike's `split` and
training/ leave out) are used, so neither the fashion model nor the garment finder has
seen them. Two sets, both written as OUT/looks.csv, one row per garment:

    file,kind,x,y,w,h,item,article_type

`kind` is top, outerwear, bottom, dress, shoes, bag or hat (training/garments.py's
`kind_of`), `x,y,w,h` the garment's box in pixels of the written photo (the bounding box
of its pasted mask, alpha > 0.5; a later garment covering part of it is not subtracted),
`item` its catalogue id and `article_type` its articleType.

* default: COUNT flat-lay photos (OUT/images/look-NNNN.jpg, `file` relative to OUT), each
  2-4 garments of different kinds (at most one of top, outerwear and dress; no bottom with
  a dress) cut out of their white studio background, scaled up to 20-55 % of the side and
  laid out in a loose grid with little or no overlap, on backgrounds training never uses
  (dots, diagonal pinstripes, linen weave, terrazzo flecks, a paper sweep), with global
  light, contrast and blur jitter. Training stacks garments as worn or scatters them on
  floors and snapshot borders; this tests whether the finder generalises past that.
* --worn: no photos; every held-out Topwear, Bottomwear and Dress item (their catalogue
  photos mostly show a model wearing the product) with `file` the absolute path of its
  photo and an empty box, in a seeded order, at most COUNT.

Seeded: the same set on every run with the same seed.

    training/.venv/bin/python bench/looks.py --out /root/looks --count 300
    training/.venv/bin/python bench/looks.py --worn --out /root/looks-worn
"""

import argparse
import collections
import csv
import os
import sys

import numpy as np
from PIL import Image, ImageFilter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "training"))

import data  # noqa: E402
import garments  # noqa: E402

KINDS = garments.KINDS  # index 0 is none, never written
UPPER = (1, 2, 4)  # top, outerwear, dress: one person wears one of them on top
SMALL = (5, 6, 7)  # shoes, bag, hat: laid out smaller than clothes
WORN = {"Topwear", "Bottomwear", "Dress"}


def held_out(catalog):
    """Held-out rows with a photo and a kind, by numeric id (stable whatever the CSV order)."""
    out = []
    for r in data.read_csv(os.path.join(catalog, "styles.csv")):
        item = r.get("id", "").strip()
        sub, typ = r.get("subCategory", "").strip(), r.get("articleType", "").strip()
        k = garments.kind_of(sub, typ)
        if k and data.in_holdout(item) and os.path.exists(os.path.join(catalog, "images", item + ".jpg")):
            out.append((int(item), item, k, sub, typ))
    return sorted(out)


def cutouts(catalog, rows):
    """Each usable item's pixels and mask cropped to the mask, by kind. Left out: masks
    filling > 97 % of their box (a grey or coloured backdrop, not white: the cut-out would
    be the whole photo) or < 35 % of it (a white garment that leaks into the backdrop)."""
    imgs = np.stack([data.pad_square(Image.open(os.path.join(catalog, "images", r[1] + ".jpg")), data.SQUARE) for r in rows])
    masks = data.garment_masks(imgs)
    by_kind = collections.defaultdict(list)
    for r, im, m in zip(rows, imgs, masks):
        ys, xs = np.nonzero(m)
        if len(ys) < 150:
            continue
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        if not 0.35 <= len(ys) / ((y1 - y0) * (x1 - x0)) <= 0.97:
            continue
        by_kind[r[2]].append((r, im[y0:y1, x0:x1], m[y0:y1, x0:x1]))
    return by_kind


def background(rng, side):
    """A backdrop of a kind training's bank (data.background_bank) does not have."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    base = rng.uniform(70, 225) + rng.uniform(-30, 30, 3)  # muted: a tint on a grey
    other = np.clip(base + rng.choice([-1, 1]) * rng.uniform(15, 50) + rng.uniform(-15, 15, 3), 0, 255)
    kind = rng.integers(0, 5)
    if kind == 0:  # polka dots on a (sometimes offset) grid
        n = rng.uniform(6, 18)
        u, v = xx * n, yy * n
        u = u + 0.5 * (np.floor(v) % 2) * (rng.random() < 0.5)
        d = np.hypot(u % 1 - 0.5, v % 1 - 0.5) < rng.uniform(0.12, 0.32)
        tex = d[..., None] * (other - base)
    elif kind == 1:  # thin diagonal pinstripes (training's stripes are axis-aligned and wide)
        a = rng.choice([1, -1]) * rng.uniform(np.pi / 8, 3 * np.pi / 8)
        u = (xx * np.cos(a) + yy * np.sin(a)) * rng.uniform(15, 45)
        tex = ((u % 1) < rng.uniform(0.08, 0.25))[..., None] * (other - base)
    elif kind == 2:  # linen: streaky threads along rows and columns plus fine grain
        rows_ = np.repeat(rng.normal(0, 1, (side, 1)), side, 1)
        cols = np.repeat(rng.normal(0, 1, (1, side)), side, 0)
        tex = ((rows_ + cols) * rng.uniform(4, 10) + rng.normal(0, 3, (side, side)))[..., None].astype(np.float32)
    elif kind == 3:  # terrazzo: small flecks of a few colours
        tex = np.zeros((side, side, 3), np.float32)
        r2 = (rng.uniform(0.004, 0.012) * side) ** 2
        ys, xs = np.mgrid[0:side, 0:side]
        for c in rng.uniform(40, 230, (3, 3)):
            for cy, cx in rng.uniform(0, side, (int(rng.integers(40, 120)), 2)):
                y0, x0 = int(max(0, cy - 8)), int(max(0, cx - 8))
                patch = (ys[y0:int(cy) + 8, x0:int(cx) + 8] - cy) ** 2 + (xs[y0:int(cy) + 8, x0:int(cx) + 8] - cx) ** 2 < r2
                tex[y0:int(cy) + 8, x0:int(cx) + 8][patch] = c - base
    else:  # paper sweep: plain, lit from one point (radial, not training's linear ramp)
        cy, cx = rng.uniform(0.2, 0.8, 2)
        tex = -np.hypot(yy - cy, xx - cx)[..., None] * rng.uniform(30, 70)
    return np.clip(base + tex, 0, 255).astype(np.float32)


def piece(img, mask, long_px, angle, flip):
    """The cut-out scaled so its long side is long_px, flipped and turned a little:
    (RGB float [h, w, 3], alpha float [h, w]) cropped to alpha > 0."""
    if flip:
        img, mask = img[:, ::-1], mask[:, ::-1]
    s = long_px / max(mask.shape)
    size = (max(2, round(mask.shape[1] * s)), max(2, round(mask.shape[0] * s)))
    im = Image.fromarray(np.ascontiguousarray(img)).resize(size, Image.BICUBIC)
    al = Image.fromarray(np.ascontiguousarray(mask) * 255).resize(size, Image.BILINEAR)
    im = im.rotate(angle, Image.BICUBIC, expand=True, fillcolor=(255, 255, 255))
    al = np.asarray(al.rotate(angle, Image.BILINEAR, expand=True), np.float32) / 255
    # Only the inner half of the upscaled edge ramp: the outer half shows the studio's white
    # (and JPEG-pale edge pixels) as a halo round the garment that no real photo has.
    al = np.clip(2 * al - 1, 0, 1)
    ys, xs = np.nonzero(al > 0)
    sl = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return np.asarray(im, np.float32)[sl], al[sl]


def cells(n, rng):
    """n rectangles (x0, y0, x1, y1 in [0, 1]) tiling the frame: split the largest along its
    longer side near the middle, as garments are spread out on a bed or floor."""
    rects = [(0.0, 0.0, 1.0, 1.0)]
    while len(rects) < n:
        rects.sort(key=lambda r: (r[2] - r[0]) * (r[3] - r[1]))
        x0, y0, x1, y1 = rects.pop()
        t = rng.uniform(0.4, 0.6)
        if x1 - x0 >= y1 - y0:
            m = x0 + t * (x1 - x0)
            rects += [(x0, y0, m, y1), (m, y0, x1, y1)]
        else:
            m = y0 + t * (y1 - y0)
            rects += [(x0, y0, x1, m), (x0, m, x1, y1)]
    return sorted(rects, key=lambda r: -(r[2] - r[0]) * (r[3] - r[1]))


def kind_set(rng):
    """2-4 different kinds: at most one upper garment, no bottom with a dress; the upper one
    is left out now and then so that outfits of only bottoms and accessories occur too."""
    n = int(rng.integers(2, 5))
    kinds = [int(rng.choice(UPPER))] if rng.random() < 0.85 else []
    rest = [k for k in (3, 5, 6, 7) if not (k == 3 and 4 in kinds)]
    rng.shuffle(rest)
    return kinds + rest[: n - len(kinds)]


def overlap_ok(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy <= 0.1 * small


def look(by_kind, rng, side):
    """One photo (uint8) and its garments [(kind, (x0, y0, x1, y1), row)]."""
    canvas = background(rng, side)
    kinds = kind_set(rng)
    target = {k: side * (rng.uniform(0.2, 0.32) if k in SMALL else rng.uniform(0.36, 0.55)) for k in kinds}
    kinds.sort(key=lambda k: -target[k])  # the biggest garment gets the biggest cell
    placed = []
    margin = 0.025 * side
    for k, (cx0, cy0, cx1, cy1) in zip(kinds, cells(len(kinds), rng)):
        r, img, mask = by_kind[k][int(rng.integers(len(by_kind[k])))]
        angle, flip = rng.uniform(-10, 10), rng.random() < 0.5
        room_w, room_h = (cx1 - cx0) * side - 2 * margin, (cy1 - cy0) * side - 2 * margin
        rgb, al = piece(img, mask, target[k], angle, flip)
        fit = min(1.0, room_w / al.shape[1], room_h / al.shape[0])
        if fit < 1:  # cells are smaller than the wish: shrink to fit, from the source again
            rgb, al = piece(img, mask, target[k] * fit * 0.98, angle, flip)
        h, w = al.shape
        # Anywhere in the cell, then a small nudge past it, kept only if boxes stay apart.
        lo_x, lo_y = cx0 * side + margin, cy0 * side + margin
        x = lo_x + rng.uniform(0, max(0.0, room_w - w))
        y = lo_y + rng.uniform(0, max(0.0, room_h - h))
        for nudge in (0.04 * side, 0.0):
            nx = int(np.clip(x + rng.uniform(-nudge, nudge), 0, side - w))
            ny = int(np.clip(y + rng.uniform(-nudge, nudge), 0, side - h))
            ys, xs = np.nonzero(al > 0.5)
            box = (nx + xs.min(), ny + ys.min(), nx + xs.max() + 1, ny + ys.max() + 1)
            if all(overlap_ok(box, b) for _, b, _ in placed):
                break
        a = al[..., None]
        canvas[ny:ny + h, nx:nx + w] = a * rgb + (1 - a) * canvas[ny:ny + h, nx:nx + w]
        placed.append((k, tuple(int(v) for v in box), r))
    # The whole photo's light, contrast and tint, as a phone might take it.
    mean = canvas.mean()
    canvas = (canvas - mean) * rng.uniform(0.85, 1.15) + mean * rng.uniform(0.85, 1.15)
    canvas = canvas * rng.uniform(0.96, 1.04, 3)
    out = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    return out, placed


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "kind", "x", "y", "w", "h", "item", "article_type"])
        w.writerows(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--catalog", default=os.path.join(HERE, "..", "..", "shared", "data", "fashion-product-images-small"),
                    help="folder with images/ and styles.csv")
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, help="photos (default 300), or with --worn rows (default all)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--worn", action="store_true", help="the held-out catalogue photos of a model wearing the garment")
    a = ap.parse_args()
    rows = held_out(a.catalog)
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    out = []
    if a.worn:
        rows = [rows[i] for i in rng.permutation(len(rows)) if rows[i][3] in WORN][: a.count]
        for _, item, k, _, typ in rows:
            out.append([os.path.abspath(os.path.join(a.catalog, "images", item + ".jpg")), KINDS[k], "", "", "", "", item, typ])
        photos = None
    else:
        by_kind = cutouts(a.catalog, rows)
        photos = 300 if a.count is None else a.count
        os.makedirs(os.path.join(a.out, "images"), exist_ok=True)
        for n in range(1, photos + 1):
            im, placed = look(by_kind, rng, a.side)
            name = f"images/look-{n:04d}.jpg"
            im.save(os.path.join(a.out, name), quality=int(rng.integers(85, 93)))
            for k, (x0, y0, x1, y1), r in placed:
                out.append([name, KINDS[k], x0, y0, x1 - x0, y1 - y0, r[1], r[4]])
    write_csv(os.path.join(a.out, "looks.csv"), out)
    per = collections.Counter(r[1] for r in out)
    what = f"{len(out)} worn items" if photos is None else f"{photos} photos, {len(out)} garments"
    print(f"{what} ({', '.join(f'{k} {per[k]}' for k in KINDS[1:] if per[k])}) in {os.path.join(a.out, 'looks.csv')}")


if __name__ == "__main__":
    main()
